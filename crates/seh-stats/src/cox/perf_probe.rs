//! TEMPORARY timing probe (PERF helper); removed before hand-off.
#![allow(clippy::print_stdout)]

#[test]
#[ignore]
fn probe_timings() {
    use std::time::Instant;
    let cp = std::env::var("PROBE_CP").is_ok();
    let n: usize = std::env::var("PROBE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let d = super::synth::generate(n, 10, 20261123, cp);
    let beta = [0.3, -0.2, 0.1, 0.15, -0.1, 0.05, 0.1, -0.07, 0.03, 0.07];
    let p = 10;
    let lp: Vec<f64> = (0..n).map(|i| d.x[i * p..(i + 1) * p].iter().zip(&beta).map(|(x, b)| x * b).sum()).collect();
    for _ in 0..3 {
        let t = Instant::now();
        let c = crate::concordance::concordance(&d.stop, d.start.as_deref(), &d.event, None, None, &lp).unwrap();
        println!("concordance {:.3}s  c={} std={}", t.elapsed().as_secs_f64(), c.concordance, c.std);
    }
    let t = Instant::now();
    let prep = super::PreparedCox::new(&d, &Default::default()).unwrap();
    println!("prepare {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let out = super::fit::run_driver(&prep, super::Ties::Efron, Default::default(), &[0.0; 10]).unwrap();
    println!("newton {:.3}s iters {}", t.elapsed().as_secs_f64(), out.iterations);
    let t = Instant::now();
    let f = super::fit(&d, &Default::default()).unwrap();
    println!("full fit {:.3}s loglik {}", t.elapsed().as_secs_f64(), f.loglik);
}
