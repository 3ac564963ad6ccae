//! Exact wide fixed-point encoding for secure sums of real numbers.
//!
//! SecAgg+ sums `u64` words modulo `2^64`. A real value `v` is encoded as the integer
//! `V = round(v · 2^FRAC_BITS)` taken modulo `2^128` (two's complement), split into four 32-bit
//! limbs, each stored in its own `u64` word. Summing the words of up to `2^32` parties never
//! overflows a word, so the decoder can recombine `Σ limb_k · 2^(32k)` modulo `2^128` and read
//! the exact signed sum of the `V`s. Resolution `2^-40` (≈ 9.1·10^-13) per party; range
//! `|v| < 2^86` (≈ 7.7·10^25) per party and for the sum. A value outside the range is an error,
//! never a silent wrap.
//!
//! [`encode_narrow`] is the one-word form for sums that are exact in `Z_2^64` (SecAgg+): `V` is
//! taken modulo `2^64` and every party checks `|v| < 2^23 / parties` before sending, so the sum of
//! at most `parties` values satisfies `|Σ V| < 2^63` and reads back exactly as a signed 64-bit
//! integer. Same resolution (`2^-40`), a quarter of the words; a value outside the bound is
//! reported to the caller (who then asks again in the wide form), never wrapped.

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

/// Bound of the one-word form's decoded sum: `2^23` (`2^63` at resolution `2^-40`).
pub const NARROW_RANGE: f64 = 8_388_608.0;

/// Largest magnitude one of `parties` parties may encode in the one-word form (exclusive):
/// `2^23 / parties` less one resolution step of rounding margin.
pub fn narrow_bound(parties: u32) -> f64 {
    NARROW_RANGE / f64::from(parties.max(1)) - 2f64.powi(-FRAC_BITS)
}

/// Why a value has no one-word encoding.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NarrowError {
    /// NaN or infinite: no encoding in any form.
    NotFinite,
    /// Finite but `|v| ≥` [`narrow_bound`]: the wide form is needed.
    OutOfRange,
}

/// One-word encoding of `v` for a sum over at most `parties` parties (see the module docs).
pub fn encode_narrow(v: f64, parties: u32) -> Result<u64, NarrowError> {
    if !v.is_finite() {
        return Err(NarrowError::NotFinite);
    }
    if v.abs() >= narrow_bound(parties) {
        return Err(NarrowError::OutOfRange);
    }
    // |v · 2^40| < 2^63 / parties, so the conversion is exact and in range.
    Ok((v * 2f64.powi(FRAC_BITS)).round() as i64 as u64)
}

/// Decodes the wrapping sum of one-word encodings.
pub fn decode_narrow(word: u64) -> f64 {
    word as i64 as f64 / 2f64.powi(FRAC_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_sums_are_exact_within_the_bound() {
        let parties = 5;
        let b = narrow_bound(parties);
        let vals = [b * 0.999_999, b * 0.999_999, b * 0.999_999, b * 0.999_999, b * 0.999_999];
        let sum = vals.iter().map(|v| encode_narrow(*v, parties).unwrap()).fold(0u64, u64::wrapping_add);
        let exact: f64 = vals.iter().sum();
        assert!((decode_narrow(sum) - exact).abs() <= 5.0 * 2f64.powi(-41), "no wrap at the bound");
        let neg = vals.iter().map(|v| encode_narrow(-v, parties).unwrap()).fold(0u64, u64::wrapping_add);
        assert!((decode_narrow(neg) + exact).abs() <= 5.0 * 2f64.powi(-41));
        let small = [1.5, -2.25, 3.0e-6, 0.0];
        let s = small.iter().map(|v| encode_narrow(*v, 4).unwrap()).fold(0u64, u64::wrapping_add);
        assert!((decode_narrow(s) - small.iter().sum::<f64>()).abs() <= 4.0 * 2f64.powi(-41));
        assert_eq!(encode_narrow(b, parties), Err(NarrowError::OutOfRange));
        assert_eq!(encode_narrow(-b, parties), Err(NarrowError::OutOfRange));
        assert_eq!(encode_narrow(f64::NAN, parties), Err(NarrowError::NotFinite));
        assert!(encode_narrow(1e6, 8).is_ok() && encode_narrow(1e6, 9).is_err());
    }

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
