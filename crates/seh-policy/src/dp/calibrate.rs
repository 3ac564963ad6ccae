//! Noise calibration.
//!
//! * Laplace: scale b = Δ₁/ε gives ε-DP (Dwork et al. 2006); the discrete Laplace on ℤ with the
//!   same scale and integer sensitivity is ε-DP as well (CKS20, Ghosh et al. 2009).
//! * Gaussian: the discrete Gaussian with variance parameter σ² and integer L2 sensitivity Δ₂
//!   satisfies ρ-zCDP with ρ = Δ₂²/(2σ²) (CKS20 Theorem 4). ρ-zCDP implies (ε, δ)-DP with
//!   δ = inf_{α>1} exp((α−1)(αρ−ε)) / (α−1) · (1 − 1/α)^α (CKS20 Corollary 13); any α gives a
//!   valid bound, so an imprecise minimisation only errs on the safe side. [`gaussian_sigma`]
//!   picks the largest ρ whose bound meets the requested δ.
//! * [`analytic_gaussian_sigma`] is Balle & Wang (2018)'s exact calibration for the *continuous*
//!   Gaussian; it is a lower bound for any valid σ and is used as a cross-check.

use statrs::function::erf::erfc;

use crate::error::DpError;

fn check_eps_delta(epsilon: f64, delta: f64) -> Result<(), DpError> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(DpError::InvalidParameter { name: "epsilon", reason: "must be finite and positive" });
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(DpError::InvalidParameter { name: "delta", reason: "must be in (0, 1) for Gaussian noise" });
    }
    Ok(())
}

/// δ such that ρ-zCDP implies (ε, δ)-DP (CKS20 Corollary 13), for ρ > 0, ε ≥ 0.
pub fn zcdp_delta(rho: f64, epsilon: f64) -> f64 {
    if rho <= 0.0 {
        return 0.0;
    }
    // The exponent's derivative in α, (2α−1)ρ − ε + ln(1 − 1/α), increases in α; the minimiser
    // lies below (ε+1)/(2ρ) + 2.
    let (mut lo, mut hi) = (1.01f64, (epsilon + 1.0) / (2.0 * rho) + 2.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        let d = (2.0 * mid - 1.0) * rho - epsilon + (-1.0 / mid).ln_1p();
        if d < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let a = hi;
    let log_delta = (a - 1.0) * (a * rho - epsilon) + a * (-1.0 / a).ln_1p() - (a - 1.0).ln();
    log_delta.exp().min(1.0)
}

/// The largest ρ (up to a relative 1e-9 safety margin) with [`zcdp_delta`]`(ρ, ε) ≤ δ`.
pub fn zcdp_rho_for(epsilon: f64, delta: f64) -> Result<f64, DpError> {
    check_eps_delta(epsilon, delta)?;
    // δ(ρ) increases with ρ; at ρ = ε the bound is already large.
    let (mut lo, mut hi) = (0.0f64, epsilon.max(1.0));
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if zcdp_delta(mid, epsilon) <= delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let rho = lo * (1.0 - 1e-9);
    if rho <= 0.0 {
        return Err(DpError::InvalidParameter { name: "delta", reason: "too small for any finite noise" });
    }
    Ok(rho)
}

/// σ of the discrete Gaussian for L2 sensitivity `sensitivity` (> 0) and (ε, δ):
/// Δ/√(2ρ) with ρ from [`zcdp_rho_for`].
pub fn gaussian_sigma(sensitivity: f64, epsilon: f64, delta: f64) -> Result<f64, DpError> {
    if !(sensitivity.is_finite() && sensitivity > 0.0) {
        return Err(DpError::InvalidParameter { name: "sensitivity", reason: "must be finite and positive" });
    }
    let rho = zcdp_rho_for(epsilon, delta)?;
    Ok(sensitivity / (2.0 * rho).sqrt())
}

fn std_normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Balle & Wang (2018) analytic Gaussian calibration for the continuous Gaussian mechanism: the
/// smallest σ with Φ(Δ/(2σ) − εσ/Δ) − e^ε Φ(−Δ/(2σ) − εσ/Δ) ≤ δ, found by bisection (relative
/// precision 1e-12). Intended for ε ≤ 50.
pub fn analytic_gaussian_sigma(sensitivity: f64, epsilon: f64, delta: f64) -> Result<f64, DpError> {
    check_eps_delta(epsilon, delta)?;
    if !(sensitivity.is_finite() && sensitivity > 0.0) {
        return Err(DpError::InvalidParameter { name: "sensitivity", reason: "must be finite and positive" });
    }
    let bw_delta = |sigma: f64| {
        let a = sensitivity / (2.0 * sigma);
        let b = epsilon * sigma / sensitivity;
        std_normal_cdf(a - b) - epsilon.exp() * std_normal_cdf(-a - b)
    };
    let (mut lo, mut hi) = (1e-12 * sensitivity, sensitivity);
    while bw_delta(hi) > delta {
        hi *= 2.0;
        if hi > 1e12 * sensitivity {
            return Err(DpError::InvalidParameter { name: "delta", reason: "too small" });
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if bw_delta(mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
        if (hi - lo) <= 1e-12 * hi {
            break;
        }
    }
    Ok(hi)
}
