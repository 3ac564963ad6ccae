//! Deterministic synthetic Cox data for benchmarks (`seh bench cox`).
//!
//! No external RNG: a SplitMix64 stream seeded by the caller, so the same
//! `(n, p, seed, counting_process)` always gives the same data on every platform.

use super::data::CoxData;

/// SplitMix64 pseudo-random generator (public-domain algorithm by S. Vigna).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Build a synthetic data set of `n` rows and `p` covariates.
///
/// Covariates alternate standard normal and Bernoulli(0.4) columns; true
/// coefficients are `0.3, -0.2, 0.1, ...`. Times are integers in 1..=1000
/// (heavy ties) from an exponential model; about 69 % of rows are censored at
/// random (plus administrative censoring at 1000), leaving about 30 % events.
/// With `counting_process`, each row gets an integer entry time in 0..=500 and
/// is followed over `(start, stop]` (left truncation), stop ≤ 1000.
pub fn generate(n: usize, p: usize, seed: u64, counting_process: bool) -> CoxData {
    let mut rng = SplitMix64(seed ^ 0x5EED_C0C5_0000_0001);
    let beta: Vec<f64> = (0..p).map(|j| [0.3, -0.2, 0.1][j % 3] / (1 + j / 3) as f64).collect();
    let mut x = Vec::with_capacity(n * p);
    let mut stop = Vec::with_capacity(n);
    let mut event = Vec::with_capacity(n);
    let mut start = Vec::with_capacity(if counting_process { n } else { 0 });
    for _ in 0..n {
        let mut eta = 0.0;
        for (j, b) in beta.iter().enumerate() {
            let v = if j % 2 == 0 {
                rng.normal()
            } else if rng.uniform() < 0.4 {
                1.0
            } else {
                0.0
            };
            eta += b * v;
            x.push(v);
        }
        let t0 = if counting_process { (rng.uniform() * 501.0).floor() } else { 0.0 };
        let life = -rng.uniform().ln() / (0.004 * f64::exp(eta));
        let t = (t0 + life.ceil()).min(1000.0);
        let censored = rng.uniform() < 0.69 || t0 + life > 1000.0;
        stop.push(t.max(t0 + 1.0));
        event.push(if censored { 0.0 } else { 1.0 });
        if counting_process {
            start.push(t0);
        }
    }
    let terms = (1..=p).map(|j| format!("x{j}")).collect();
    let mut d = CoxData::new(stop, event, x, terms);
    if counting_process {
        d.start = Some(start);
    }
    d
}
