//! Exact samplers for the discrete Laplace and discrete Gaussian distributions
//! (Canonne, Kamath & Steinke 2020, "The Discrete Gaussian for Differential Privacy",
//! Algorithms 1–3), in arbitrary-precision integer arithmetic.
//!
//! Why not floating point: sampling continuous Laplace noise with `f64` arithmetic leaks the
//! input through the set of reachable outputs (Mironov 2012). These samplers draw integers from
//! the exact distributions using only uniform integers and rational comparisons; callers put
//! real-valued statistics on a fixed-point grid first (see [`crate::dp`]).
//!
//! The random source must be a cryptographically secure generator (`R: CryptoRng`), e.g.
//! `rand::rngs::OsRng` or a `ChaCha20Rng` seeded from it.

use num_bigint::{BigUint, RandBigInt};
use num_traits::{One, ToPrimitive, Zero};
use rand::{CryptoRng, RngCore};

use crate::error::DpError;

/// Bernoulli(num/den) for 0 ≤ num ≤ den, den > 0.
fn bernoulli_ratio<R: RngCore + CryptoRng>(num: &BigUint, den: &BigUint, rng: &mut R) -> bool {
    rng.gen_biguint_below(den) < *num
}

/// Bernoulli(exp(−num/den)) for num ≥ 0, den > 0 (CKS20 Algorithm 1).
pub(crate) fn bernoulli_exp_neg<R: RngCore + CryptoRng>(num: &BigUint, den: &BigUint, rng: &mut R) -> bool {
    if num <= den {
        // exp(−γ) for γ ∈ [0, 1]: count K while Bernoulli(γ/K) succeeds; return K odd.
        let mut k = BigUint::one();
        loop {
            let kden = den * &k;
            if !bernoulli_ratio(num, &kden, rng) {
                break;
            }
            k += 1u32;
        }
        k.bit(0)
    } else {
        // exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)).
        let whole = num / den;
        let one = BigUint::one();
        let mut i = BigUint::zero();
        while i < whole {
            if !bernoulli_exp_neg(&one, &one, rng) {
                return false;
            }
            i += 1u32;
        }
        bernoulli_exp_neg(&(num % den), den, rng)
    }
}

/// One draw from the discrete Laplace distribution on ℤ with scale `t/s`:
/// P(x) ∝ exp(−|x|·s/t) (CKS20 Algorithm 2). `t` and `s` must be positive.
pub(crate) fn discrete_laplace<R: RngCore + CryptoRng>(t: &BigUint, s: &BigUint, rng: &mut R) -> Result<i64, DpError> {
    if t.is_zero() || s.is_zero() {
        return Err(DpError::InvalidParameter { name: "scale", reason: "must be positive" });
    }
    let one = BigUint::one();
    loop {
        let u = rng.gen_biguint_below(t);
        if !bernoulli_exp_neg(&u, t, rng) {
            continue;
        }
        let mut v = BigUint::zero();
        while bernoulli_exp_neg(&one, &one, rng) {
            v += 1u32;
        }
        let x = u + t * v;
        let y = x / s;
        let negative = rng.next_u32() & 1 == 1;
        if negative && y.is_zero() {
            continue;
        }
        let y = y.to_i64().ok_or(DpError::InvalidParameter { name: "scale", reason: "noise exceeds i64" })?;
        return Ok(if negative { -y } else { y });
    }
}

/// One draw from the discrete Gaussian on ℤ with variance parameter σ² = `num/den`:
/// P(x) ∝ exp(−x²/(2σ²)) (CKS20 Algorithm 3). `num` and `den` must be positive.
pub(crate) fn discrete_gaussian<R: RngCore + CryptoRng>(
    num: &BigUint,
    den: &BigUint,
    rng: &mut R,
) -> Result<i64, DpError> {
    if num.is_zero() || den.is_zero() {
        return Err(DpError::InvalidParameter { name: "sigma", reason: "must be positive" });
    }
    // t = ⌊σ⌋ + 1 = isqrt(⌊σ²⌋) + 1.
    let t = (num / den).sqrt() + 1u32;
    let one = BigUint::one();
    loop {
        let y = discrete_laplace(&t, &one, rng)?;
        let abs = BigUint::from(y.unsigned_abs());
        // γ = (|y| − σ²/t)² / (2σ²) = (|y|·den·t − num)² / (2·num·den·t²).
        let a = &abs * den * &t;
        let diff = if a >= *num { &a - num } else { num - &a };
        let gnum = &diff * &diff;
        let gden = (num * den * &t * &t) << 1u32;
        if bernoulli_exp_neg(&gnum, &gden, rng) {
            return Ok(y);
        }
    }
}
