//! Exact wide fixed-point encoding for secure sums of real numbers.
//!
//! SecAgg+ sums `u64` words modulo `2^64`. A real value `v` is encoded as the integer
//! `V = round(v · 2^FRAC_BITS)` taken modulo `2^128` (two's complement), split into four 32-bit
//! limbs, each stored in its own `u64` word. Summing the words of up to `2^32` parties never
//! overflows a word, so the decoder can recombine `Σ limb_k · 2^(32k)` modulo `2^128` and read
//! the exact signed sum of the `V`s. Resolution `2^-40` (≈ 9.1·10^-13) per party; range
//! `|v| < 2^86` (≈ 7.7·10^25) per party and for the sum. A value outside the range is an error,
//! never a silent wrap.

/// Fraction bits.
pub const FRAC_BITS: i32 = 40;
/// Words per encoded value.
pub const WORDS: usize = 4;
/// Largest magnitude accepted for one party's value and for the decoded sum: `2^86`.
pub const MAX_ABS: f64 = 77_371_252_455_336_267_181_195_264.0;

/// Encodes `v` into four words. `None` if `v` is not finite or `|v| ≥ 2^86`.
pub fn encode(v: f64) -> Option<[u64; WORDS]> {
    if !v.is_finite() || v.abs() >= MAX_ABS {
        return None;
    }
    let scaled = (v * 2f64.powi(FRAC_BITS)).round();
    // |scaled| < 2^126, so the conversion is exact and in range.
    let x = scaled as i128 as u128;
    Some([x as u32 as u64, (x >> 32) as u32 as u64, (x >> 64) as u32 as u64, (x >> 96) as u32 as u64])
}

/// Decodes the word-wise sum of encodings (`words.len() == 4`). `None` on a wrong length.
pub fn decode(words: &[u64]) -> Option<f64> {
    if words.len() != WORDS {
        return None;
    }
    let mut x: u128 = 0;
    for (k, w) in words.iter().enumerate() {
        x = x.wrapping_add(u128::from(*w).wrapping_shl(32 * k as u32));
    }
    Some(x as i128 as f64 / 2f64.powi(FRAC_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_words(vals: &[f64]) -> f64 {
        let mut acc = [0u64; WORDS];
        for v in vals {
            for (a, w) in acc.iter_mut().zip(encode(*v).unwrap()) {
                *a = a.wrapping_add(w);
            }
        }
        decode(&acc).unwrap()
    }

    #[test]
    fn sums_are_exact_to_the_resolution() {
        let vals = [1.5, -2.25, 1e12, -1e12, 3.0e-6, 123456.789];
        let exact: f64 = vals.iter().sum();
        assert!((sum_words(&vals) - exact).abs() <= 6.0 * 2f64.powi(-41) + exact.abs() * 1e-15);
        assert_eq!(sum_words(&[-1.0, -1.0, -1.0]), -3.0);
        assert_eq!(sum_words(&[0.0]), 0.0);
        assert_eq!(sum_words(&[1e20, 1e20]), 2e20);
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(encode(f64::NAN).is_none());
        assert!(encode(f64::INFINITY).is_none());
        assert!(encode(MAX_ABS).is_none());
        assert!(encode(-MAX_ABS).is_none());
        assert!(encode(MAX_ABS / 2.0).is_some());
        assert!(decode(&[0, 0, 0]).is_none());
    }
}
