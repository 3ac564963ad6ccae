//! Differential privacy: exact discrete Laplace and Gaussian mechanisms, their calibration, and
//! the persistent per-researcher budget ledger.
//!
//! **Implementation choice.** OpenDP (`opendp` 0.14) was evaluated: it builds here without its
//! default features, but then its own sampler is documented as non-secure (its secure RNG needs
//! the `use-openssl` feature, which compiles a vendored OpenSSL), it draws from a process-global
//! RNG that cannot be injected (so no reproducible statistical tests and no per-study CSPRNG),
//! and it pulls a second copy of rand, statrs, nalgebra, num and thiserror. This module therefore
//! implements the mechanisms itself, following Canonne, Kamath & Steinke (2020): integer-valued
//! discrete Laplace / discrete Gaussian noise drawn exactly with big-integer arithmetic from a
//! caller-supplied `CryptoRng`, added to values on a fixed-point grid — which avoids the
//! floating-point attack on textbook Laplace sampling (Mironov 2012).
//!
//! **Fixed point.** A real statistic is rounded to the grid 2^-`grid_bits` before noise is added
//! in grid units; the rounding can move neighbouring datasets' values one extra grid step apart,
//! so the sensitivity used is ⌈Δ·2^bits⌉ + 1 (Laplace, per released number) or
//! ⌈Δ·2^bits + √d⌉ (Gaussian, vectors of length d). Counts use grid 1 and exact sensitivity.
//!
//! **Usage.** Charge the ledger first ([`BudgetLedger::charge`]), then pass the returned
//! [`BudgetCharge`] to one release function; the charge is consumed.

mod calibrate;
mod ledger;
mod sample;

use num_bigint::BigUint;
use num_traits::FromPrimitive;
use rand::{CryptoRng, RngCore};

pub use calibrate::{analytic_gaussian_sigma, gaussian_sigma, zcdp_delta, zcdp_rho_for};
pub use ledger::{BudgetCharge, BudgetLedger, ChargeError, Spent};

use crate::error::DpError;
use crate::release::Releasable;

/// ε is represented as the rational ⌊ε·2^32⌋ / 2^32 (never larger than ε, so the noise is never
/// smaller than requested).
const EPS_FRAC_BITS: u32 = 32;
/// Largest grid resolution for real-valued releases.
pub const MAX_GRID_BITS: u32 = 40;

fn param(name: &'static str, reason: &'static str) -> DpError {
    DpError::InvalidParameter { name, reason }
}

/// Laplace scale (sensitivity_units / ε) as the rational t/s.
fn laplace_scale(sensitivity_units: u64, epsilon: f64) -> Result<(BigUint, BigUint), DpError> {
    if sensitivity_units == 0 {
        return Err(param("sensitivity", "must be positive"));
    }
    let s = (epsilon * f64::from(1u32 << 16) * f64::from(1u32 << 16)).floor();
    if !(s.is_finite() && s >= 1.0) {
        return Err(param("epsilon", "too small or not finite"));
    }
    let s = BigUint::from_f64(s).ok_or(param("epsilon", "not representable"))?;
    let t = BigUint::from(sensitivity_units) << EPS_FRAC_BITS;
    Ok((t, s))
}

/// σ² (in grid units) as a rational rounded up: ⌈σ²·2^32⌉ / 2^32.
fn gaussian_var(sensitivity_units: f64, charge: &BudgetCharge) -> Result<(BigUint, BigUint), DpError> {
    let sigma = gaussian_sigma(sensitivity_units, charge.epsilon, charge.delta)?;
    let scaled = (sigma * sigma * 4_294_967_296.0).ceil();
    let num = BigUint::from_f64(scaled).ok_or(param("sigma", "not representable"))?;
    Ok((num, BigUint::from(1u64) << EPS_FRAC_BITS))
}

fn grid_units(value: f64, bits: u32) -> Result<i64, DpError> {
    if bits > MAX_GRID_BITS {
        return Err(param("grid_bits", "must be at most 40"));
    }
    let scaled = (value * 2f64.powi(bits as i32)).round();
    if !scaled.is_finite() || scaled.abs() >= 2f64.powi(62) {
        return Err(param("value", "not finite or too large for the fixed-point grid"));
    }
    Ok(scaled as i64)
}

fn sens_units(sensitivity: f64, bits: u32, extra: f64) -> Result<u64, DpError> {
    if !(sensitivity.is_finite() && sensitivity > 0.0) {
        return Err(param("sensitivity", "must be finite and positive"));
    }
    let u = (sensitivity * 2f64.powi(bits as i32) + extra).ceil();
    if u >= 2f64.powi(62) {
        return Err(param("sensitivity", "too large for the fixed-point grid"));
    }
    Ok(u as u64)
}

fn add(a: i64, b: i64) -> Result<i64, DpError> {
    a.checked_add(b).ok_or(param("value", "noisy value overflows i64"))
}

/// Releases `counts` (a count, or a histogram whose bins change by at most `l1_sensitivity` in
/// total when one individual is added or removed) with discrete Laplace noise of scale
/// `l1_sensitivity / ε` per entry, ε-DP overall. Noisy counts may be negative; clamp after
/// release if needed (post-processing).
pub fn release_laplace_counts<R: RngCore + CryptoRng>(
    charge: BudgetCharge,
    counts: &[i64],
    l1_sensitivity: u64,
    rng: &mut R,
) -> Result<Releasable<Vec<i64>>, DpError> {
    let (t, s) = laplace_scale(l1_sensitivity, charge.epsilon)?;
    let noisy = counts
        .iter()
        .map(|&c| sample::discrete_laplace(&t, &s, rng).and_then(|z| add(c, z)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Releasable::new(noisy))
}

/// Releases a real-valued sum `value` of L1 sensitivity `sensitivity` with Laplace noise of scale
/// `sensitivity / ε` on the fixed-point grid 2^-`grid_bits` (≤ [`MAX_GRID_BITS`]).
pub fn release_laplace_sum<R: RngCore + CryptoRng>(
    charge: BudgetCharge,
    value: f64,
    sensitivity: f64,
    grid_bits: u32,
    rng: &mut R,
) -> Result<Releasable<f64>, DpError> {
    let v = grid_units(value, grid_bits)?;
    let (t, s) = laplace_scale(sens_units(sensitivity, grid_bits, 1.0)?, charge.epsilon)?;
    let z = sample::discrete_laplace(&t, &s, rng)?;
    Ok(Releasable::new(add(v, z)? as f64 / 2f64.powi(grid_bits as i32)))
}

/// Releases `counts` (L2 sensitivity `l2_sensitivity` under adding/removing one individual) with
/// discrete Gaussian noise calibrated to the charge's (ε, δ), δ > 0.
pub fn release_gaussian_counts<R: RngCore + CryptoRng>(
    charge: BudgetCharge,
    counts: &[i64],
    l2_sensitivity: u64,
    rng: &mut R,
) -> Result<Releasable<Vec<i64>>, DpError> {
    if l2_sensitivity == 0 {
        return Err(param("sensitivity", "must be positive"));
    }
    let (num, den) = gaussian_var(l2_sensitivity as f64, &charge)?;
    let noisy = counts
        .iter()
        .map(|&c| sample::discrete_gaussian(&num, &den, rng).and_then(|z| add(c, z)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Releasable::new(noisy))
}

/// σ² of one site's share of distributed discrete Gaussian noise: the (ε, δ)-calibrated σ² for
/// L2 sensitivity `l2_sensitivity` ([`gaussian_sigma`]) divided by `shares`, rounded up on the
/// 2^-32 grid. Errors on invalid parameters or `shares == 0`.
pub fn gaussian_share_variance(l2_sensitivity: f64, epsilon: f64, delta: f64, shares: u32) -> Result<f64, DpError> {
    let (num, den) = gaussian_share_var(l2_sensitivity, epsilon, delta, shares)?;
    use num_traits::ToPrimitive;
    Ok(num.to_f64().unwrap_or(f64::INFINITY) / den.to_f64().unwrap_or(1.0))
}

fn gaussian_share_var(l2: f64, epsilon: f64, delta: f64, shares: u32) -> Result<(BigUint, BigUint), DpError> {
    if shares == 0 {
        return Err(param("shares", "must be at least 1"));
    }
    let sigma = gaussian_sigma(l2, epsilon, delta)?;
    let scaled = (sigma * sigma * 4_294_967_296.0 / f64::from(shares)).ceil();
    let num = BigUint::from_f64(scaled).ok_or(param("sigma", "not representable"))?;
    Ok((num, BigUint::from(1u64) << EPS_FRAC_BITS))
}

/// Distributed DP for a sum over sites: adds to `counts` this site's share of discrete Gaussian
/// noise, variance σ²/`shares` per entry, where σ is calibrated to the charge's (ε, δ) for L2
/// sensitivity `l2_sensitivity` of the *summed* counts (one individual added or removed).
///
/// When at least `shares` sites each add their share, the noise in the sum has variance at least
/// σ². A sum of independent discrete Gaussians is not exactly a discrete Gaussian; Kairouz, Liu &
/// Steinke (2021, "The distributed discrete Gaussian mechanism") bound the extra privacy loss,
/// which is negligible once each share has σ²/`shares` ≥ 1 (this function refuses smaller
/// shares). The guarantee assumes the sites add their shares honestly: colluding sites that
/// remove their own noise leave only the honest sites' share in the sum.
pub fn release_gaussian_count_share<R: RngCore + CryptoRng>(
    charge: BudgetCharge,
    counts: &[i64],
    l2_sensitivity: f64,
    shares: u32,
    rng: &mut R,
) -> Result<Releasable<Vec<i64>>, DpError> {
    let (num, den) = gaussian_share_var(l2_sensitivity, charge.epsilon, charge.delta, shares)?;
    if num < den {
        return Err(param("shares", "each site's share of the noise would have variance below 1"));
    }
    let noisy = counts
        .iter()
        .map(|&c| sample::discrete_gaussian(&num, &den, rng).and_then(|z| add(c, z)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Releasable::new(noisy))
}

/// Releases a real vector `values` (e.g. a clipped model update) of L2 sensitivity
/// `l2_sensitivity` with discrete Gaussian noise on the grid 2^-`grid_bits`, (ε, δ)-DP.
pub fn release_gaussian_vector<R: RngCore + CryptoRng>(
    charge: BudgetCharge,
    values: &[f64],
    l2_sensitivity: f64,
    grid_bits: u32,
    rng: &mut R,
) -> Result<Releasable<Vec<f64>>, DpError> {
    let units = values.iter().map(|&v| grid_units(v, grid_bits)).collect::<Result<Vec<_>, _>>()?;
    let sens = sens_units(l2_sensitivity, grid_bits, (values.len() as f64).sqrt())?;
    let (num, den) = gaussian_var(sens as f64, &charge)?;
    let scale = 2f64.powi(grid_bits as i32);
    let noisy = units
        .into_iter()
        .map(|u| sample::discrete_gaussian(&num, &den, rng).and_then(|z| add(u, z)).map(|x| x as f64 / scale))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Releasable::new(noisy))
}

/// Raw noise draws for statistical validation (not a release): `n` draws of discrete Laplace
/// noise with scale `scale_num / scale_den`.
#[doc(hidden)]
pub fn sample_discrete_laplace<R: RngCore + CryptoRng>(
    scale_num: u64,
    scale_den: u64,
    n: usize,
    rng: &mut R,
) -> Result<Vec<i64>, DpError> {
    let (t, s) = (BigUint::from(scale_num), BigUint::from(scale_den));
    (0..n).map(|_| sample::discrete_laplace(&t, &s, rng)).collect()
}

/// Raw noise draws for statistical validation (not a release): `n` draws of discrete Gaussian
/// noise with σ² = `var_num / var_den`.
#[doc(hidden)]
pub fn sample_discrete_gaussian<R: RngCore + CryptoRng>(
    var_num: u64,
    var_den: u64,
    n: usize,
    rng: &mut R,
) -> Result<Vec<i64>, DpError> {
    let (a, b) = (BigUint::from(var_num), BigUint::from(var_den));
    (0..n).map(|_| sample::discrete_gaussian(&a, &b, rng)).collect()
}
