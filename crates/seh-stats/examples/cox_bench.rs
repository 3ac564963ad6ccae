//! Time a Cox fit (Efron, no concordance) on synthetic data; best of 3 runs.
//!
//! `cargo run --release -p seh-stats --example cox_bench -- [n] [p] [cp]`

use std::time::Instant;

use seh_stats::cox::fit::run_driver;
use seh_stats::cox::prepared::{PrepareOptions, PreparedCox};
use seh_stats::cox::{fit, synth, CoxOptions, Ties};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let p: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let cp = args.get(3).is_some_and(|s| s == "cp");
    let data = synth::generate(n, p, 42, cp);
    let opts = CoxOptions { ties: Ties::Efron, concordance: false, ..CoxOptions::default() };
    let mut best = [f64::INFINITY; 3];
    let mut iterations = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let f = fit(&data, &opts).expect("fit");
        best[0] = best[0].min(t0.elapsed().as_secs_f64());
        iterations = f.iterations;
        let t0 = Instant::now();
        let prep = PreparedCox::new(&data, &PrepareOptions::default()).expect("prepare");
        best[1] = best[1].min(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        run_driver(&prep, Ties::Efron, Default::default(), &vec![0.0; p]).expect("driver");
        best[2] = best[2].min(t0.elapsed().as_secs_f64());
    }
    println!(
        "n={n} p={p} counting_process={cp}: fit {:.3} s (prepare {:.3} s, Newton {:.3} s, {iterations} iterations)",
        best[0], best[1], best[2]
    );
}
