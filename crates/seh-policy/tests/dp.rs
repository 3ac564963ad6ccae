//! Differential privacy: noise scale (statistical tests with a fixed seed), calibration, and the
//! persistent budget ledger.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_policy::dp::{
    analytic_gaussian_sigma, gaussian_sigma, release_gaussian_counts, release_laplace_counts, release_laplace_sum,
    sample_discrete_gaussian, sample_discrete_laplace, zcdp_delta, BudgetLedger, ChargeError,
};
use seh_policy::{Rule, SitePolicy};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy/site-policy.toml");

fn policy() -> SitePolicy {
    SitePolicy::load(std::path::Path::new(EXAMPLE)).unwrap()
}

fn variance(xs: &[i64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

/// Variance of the discrete Laplace with scale b: 2p/(1−p)², p = e^{−1/b} (→ 2b² for large b).
fn dlap_var(b: f64) -> f64 {
    let p = (-1.0 / b).exp();
    2.0 * p / (1.0 - p).powi(2)
}

/// The acceptance rule: sample variance within `tol` (relative) of `target`.
fn within(sample_var: f64, target: f64, tol: f64) -> bool {
    (sample_var - target).abs() <= tol * target
}

const N: usize = 20_000;
// Laplace kurtosis 6: SE of the sample variance ≈ σ²·√(5/N) ≈ 1.6 %; 8 % is five SEs.
const TOL_LAP: f64 = 0.08;
// Gaussian kurtosis 3: SE ≈ σ²·√(2/N) = 1 %; 5 % is five SEs.
const TOL_GAUSS: f64 = 0.05;

#[test]
fn laplace_noise_has_the_stated_scale() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let b = 10.0;
    let xs = sample_discrete_laplace(10, 1, N, &mut rng).unwrap();
    let v = variance(&xs);
    assert!((dlap_var(b) - 2.0 * b * b).abs() < 0.01 * 2.0 * b * b, "discrete ≈ continuous variance");
    assert!(within(v, 2.0 * b * b, TOL_LAP), "variance {v} vs 2b² = {}", 2.0 * b * b);
    // The same check rejects a wrong scale.
    assert!(!within(v, 2.0 * (1.2 * b).powi(2), TOL_LAP));
    assert!(!within(v, 2.0 * (0.8 * b).powi(2), TOL_LAP));
    // Mean ≈ 0 (SE ≈ √(2b²/N) ≈ 0.1).
    let mean = xs.iter().sum::<i64>() as f64 / N as f64;
    assert!(mean.abs() < 0.5, "{mean}");
    // A rational scale 5/2.
    let ys = sample_discrete_laplace(5, 2, N, &mut rng).unwrap();
    assert!(within(variance(&ys), dlap_var(2.5), TOL_LAP));
}

#[test]
fn gaussian_noise_has_the_stated_scale() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let sigma2 = 64.0;
    let xs = sample_discrete_gaussian(64, 1, N, &mut rng).unwrap();
    let v = variance(&xs);
    assert!(within(v, sigma2, TOL_GAUSS), "variance {v} vs σ² = {sigma2}");
    assert!(!within(v, 1.1f64.powi(2) * sigma2, TOL_GAUSS));
    assert!(!within(v, 0.9f64.powi(2) * sigma2, TOL_GAUSS));
    // σ² = 12.5 as 25/2.
    let ys = sample_discrete_gaussian(25, 2, N, &mut rng).unwrap();
    assert!(within(variance(&ys), 12.5, TOL_GAUSS));
}

#[test]
fn released_counts_carry_the_calibrated_noise() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = BudgetLedger::open(&dir.path().join("ledger.json")).unwrap();
    let p = policy();
    let who = [1u8; 32];
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // Laplace, ε = 0.5, L1 sensitivity 1 → b = 2, applied independently to every bin.
    let charge = ledger.charge(&p, &who, 0.5, 0.0).unwrap();
    let zeros = vec![0i64; N];
    let out = release_laplace_counts(charge, &zeros, 1, &mut rng).unwrap().into_inner();
    let v = variance(&out);
    assert!(within(v, dlap_var(2.0), TOL_LAP), "{v}");
    assert!(!within(v, dlap_var(2.4), TOL_LAP));
    // Gaussian, ε = 1, δ = 1e-6, L2 sensitivity 1.
    let charge = ledger.charge(&p, &who, 1.0, 1e-6).unwrap();
    let sigma = gaussian_sigma(1.0, 1.0, 1e-6).unwrap();
    let out = release_gaussian_counts(charge, &zeros, 1, &mut rng).unwrap().into_inner();
    assert!(within(variance(&out), sigma * sigma, TOL_GAUSS), "{} vs {}", variance(&out), sigma * sigma);
    // A real-valued sum on a 2^-20 grid keeps its value up to noise.
    let charge = ledger.charge(&p, &who, 1.0, 0.0).unwrap();
    let s = *release_laplace_sum(charge, 1234.5, 1.0, 20, &mut rng).unwrap().get();
    assert!((s - 1234.5).abs() < 50.0, "{s}");
}

#[test]
fn gaussian_calibration_is_sound() {
    // Balle–Wang: known value σ ≈ 3.73 for Δ = 1, ε = 1, δ = 1e-5 (classical bound: 4.84).
    let bw = analytic_gaussian_sigma(1.0, 1.0, 1e-5).unwrap();
    let classical = (2.0 * (1.25f64 / 1e-5).ln()).sqrt();
    assert!(bw > 3.6 && bw < 3.9 && bw < classical, "{bw}");
    // The zCDP-based σ for the discrete Gaussian is never below the exact continuous calibration.
    for (eps, delta) in [(0.1, 1e-6), (1.0, 1e-5), (3.0, 1e-9), (0.5, 1e-3)] {
        let ours = gaussian_sigma(1.0, eps, delta).unwrap();
        let exact = analytic_gaussian_sigma(1.0, eps, delta).unwrap();
        assert!(ours >= exact, "ε={eps} δ={delta}: {ours} < {exact}");
        assert!(ours < 1.5 * exact, "ε={eps} δ={delta}: {ours} too conservative vs {exact}");
        // And it meets δ via the conversion.
        let rho = 1.0 / (2.0 * ours * ours);
        assert!(zcdp_delta(rho, eps) <= delta * (1.0 + 1e-9));
    }
    // Sensitivity scales σ linearly.
    let s1 = gaussian_sigma(1.0, 1.0, 1e-6).unwrap();
    let s3 = gaussian_sigma(3.0, 1.0, 1e-6).unwrap();
    assert!((s3 / s1 - 3.0).abs() < 1e-9);
    assert!(gaussian_sigma(1.0, 1.0, 0.0).is_err());
}

#[test]
fn ledger_survives_a_restart_and_refuses_when_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    let p = policy(); // ε total 10, per query 1; δ total 1e-5, per query 1e-6.
    let alice = [1u8; 32];
    let bob = [2u8; 32];
    {
        let mut ledger = BudgetLedger::open(&path).unwrap();
        for _ in 0..9 {
            ledger.charge(&p, &alice, 1.0, 0.0).unwrap();
        }
        ledger.charge(&p, &bob, 0.25, 1e-6).unwrap();
    }
    // "Restart": a new process opens the same file.
    let mut ledger = BudgetLedger::open(&path).unwrap();
    assert_eq!(ledger.spent(&alice).queries, 9);
    assert!((ledger.spent(&alice).epsilon() - 9.0).abs() < 1e-9);
    assert!((ledger.spent(&bob).delta() - 1e-6).abs() < 1e-15);
    assert!(ledger.check(&p, &alice, 1.0, 0.0).is_ok());
    ledger.charge(&p, &alice, 1.0, 0.0).unwrap();
    // Exhausted: even a tiny query is refused, with the rule.
    match ledger.charge(&p, &alice, 0.001, 0.0) {
        Err(ChargeError::Refused(r)) => assert_eq!(r.rule, Rule::DpBudgetExhausted),
        other => panic!("{other:?}"),
    }
    assert_eq!(ledger.check(&p, &alice, 0.001, 0.0).unwrap_err().rule, Rule::DpBudgetExhausted);
    // A refused charge does not change the ledger, in memory or on disk.
    drop(ledger);
    let mut ledger = BudgetLedger::open(&path).unwrap();
    assert_eq!(ledger.spent(&alice).queries, 10);
    // Bob is unaffected; per-query limits have their own rules.
    assert!(ledger.charge(&p, &bob, 1.0, 0.0).is_ok());
    assert!(
        matches!(ledger.charge(&p, &bob, 1.5, 0.0), Err(ChargeError::Refused(r)) if r.rule == Rule::DpEpsilonPerQuery)
    );
    assert!(
        matches!(ledger.charge(&p, &bob, 0.1, 1e-5), Err(ChargeError::Refused(r)) if r.rule == Rule::DpDeltaPerQuery)
    );
    // δ budget: 1e-5 total, 1e-6 per query; bob has spent 1e-6 → nine more, then refused.
    for _ in 0..9 {
        ledger.charge(&p, &bob, 0.01, 1e-6).unwrap();
    }
    assert!(
        matches!(ledger.charge(&p, &bob, 0.01, 1e-6), Err(ChargeError::Refused(r)) if r.rule == Rule::DpBudgetExhausted)
    );
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
}

#[test]
fn corrupt_ledger_is_an_error_not_a_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    std::fs::write(&path, b"{\"version\":1,\"researchers\":{\"ab\":{}}").unwrap();
    assert!(BudgetLedger::open(&path).is_err());
    std::fs::write(&path, b"not json").unwrap();
    assert!(BudgetLedger::open(&path).is_err());
    std::fs::write(&path, b"{\"version\":2,\"researchers\":{}}").unwrap();
    assert!(BudgetLedger::open(&path).is_err());
}
