//! Fixed-point encoding of `f64` vectors into the ring `Z_{2^64}` for secure summation.
//!
//! A value `x` with `|x| ≤ bound` is encoded as `round(x · 2^f)` (f = `frac_bits`)
//! in two's complement, i.e. as a `u64` residue. Sums of encodings are computed
//! with wrapping addition and decoded by reading the residue as a signed `i64`
//! (centred representative) and dividing by `2^f`.
//!
//! # Resolution and range
//!
//! * Resolution: `2^-f`. Each encoded entry is within `2^-(f+1)` of the input;
//!   a sum of `n` encodings is within `n · 2^-(f+1)` of the exact sum.
//! * Range: every partial sum of at most `n` encodings must stay inside the
//!   signed range. [`FixedParams::new`] requires
//!   `n · (bound · 2^f + 1/2) ≤ 2^62`, one guard bit below `2^63`, so the centred
//!   decoding is unambiguous. Parameters that do not satisfy this are rejected
//!   with [`FixedError::RingOverflow`] *before* anything is encoded or masked.
//!   An input entry beyond `bound` is rejected ([`FixedError::OutOfBound`]),
//!   never clipped or wrapped.
//! * Example: `f = 24`, `bound = 10^6`, `n = 1000` parties needs
//!   `log2(1000 · 10^6 · 2^24) ≈ 53.9` bits: fine, resolution `6·10^-8`.
//!
//! Decoded values are exact multiples of `2^-f`; they are exact in `f64`
//! whenever `|sum| · 2^f < 2^53`.

use crate::error::FixedError;

/// Entries validated and encoded per pass (32 KiB of input).
const ENCODE_CHUNK: usize = 4096;
/// Largest supported number of fraction bits.
pub const MAX_FRAC_BITS: u32 = 60;
/// The largest encoded sum magnitude allowed (one guard bit below `2^63`).
const RING_LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62

/// Validated fixed-point parameters: scale `2^frac_bits`, per-entry bound and
/// the number of parties whose encodings will be summed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedParams {
    frac_bits: u32,
    bound: f64,
    parties: usize,
}

impl FixedParams {
    /// Check and build parameters.
    ///
    /// Errors: [`FixedError::InvalidParameter`] if `frac_bits > MAX_FRAC_BITS`,
    /// `bound` is not finite and positive, or `parties == 0`;
    /// [`FixedError::RingOverflow`] if `parties · (bound · 2^frac_bits + 1/2) > 2^62`.
    pub fn new(frac_bits: u32, bound: f64, parties: usize) -> Result<FixedParams, FixedError> {
        if frac_bits > MAX_FRAC_BITS {
            return Err(FixedError::InvalidParameter { field: "frac_bits", reason: "more than 60 fraction bits" });
        }
        if !(bound.is_finite() && bound > 0.0) {
            return Err(FixedError::InvalidParameter { field: "bound", reason: "must be finite and positive" });
        }
        if parties == 0 {
            return Err(FixedError::InvalidParameter { field: "parties", reason: "must be at least 1" });
        }
        let scale = scale(frac_bits);
        let needed = parties as f64 * (bound * scale + 0.5);
        if needed > RING_LIMIT {
            return Err(FixedError::RingOverflow { parties, bound, frac_bits, needed_bits: needed.log2() + 1.0 });
        }
        Ok(FixedParams { frac_bits, bound, parties })
    }

    /// The largest `frac_bits` (≤ [`MAX_FRAC_BITS`]) for which `parties` entries
    /// bounded by `bound` can be summed; `None` if even `0` does not fit.
    pub fn max_frac_bits(bound: f64, parties: usize) -> Option<u32> {
        (0..=MAX_FRAC_BITS).rev().find(|&f| FixedParams::new(f, bound, parties).is_ok())
    }

    /// Fraction bits `f`.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Per-entry absolute bound.
    pub fn bound(&self) -> f64 {
        self.bound
    }

    /// Number of parties the range check was made for.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Resolution `2^-f`.
    pub fn resolution(&self) -> f64 {
        1.0 / scale(self.frac_bits)
    }

    /// Encode one vector. Errors on a non-finite entry or one beyond the bound
    /// (reporting its index, never its value).
    pub fn encode(&self, x: &[f64]) -> Result<Vec<u64>, FixedError> {
        let mut out = Vec::with_capacity(x.len());
        self.encode_into(x, &mut out)?;
        Ok(out)
    }

    /// Encode `x`, appending to `out` (cleared first). On error `out` holds
    /// an unspecified prefix of the encoding.
    pub fn encode_into(&self, x: &[f64], out: &mut Vec<u64>) -> Result<(), FixedError> {
        out.clear();
        out.reserve(x.len());
        let s = scale(self.frac_bits);
        let fast = self.bound * s < 2_251_799_813_685_248.0; // |v·s| < 2^51
                                                             // Per cache-sized chunk: one branch-free validation (NaN fails `<=`),
                                                             // then a vectorisable map, so `x` is read from memory once.
        for (c, chunk) in x.chunks(ENCODE_CHUNK).enumerate() {
            if !chunk.iter().fold(true, |ok, v| ok & (v.abs() <= self.bound)) {
                return Err(self.first_bad(chunk, c * ENCODE_CHUNK));
            }
            if fast {
                // Round with the 1.5·2^52 trick and read the integer straight
                // from the bits (no float→int conversion).
                const MAGIC: f64 = 6_755_399_441_055_744.0;
                let m = MAGIC.to_bits();
                out.extend(chunk.iter().map(|&v| (v * s + MAGIC).to_bits().wrapping_sub(m)));
            } else {
                out.extend(chunk.iter().map(|&v| round_to_i64(v * s) as u64));
            }
        }
        Ok(())
    }

    /// The error for the first non-finite or out-of-bound entry of `chunk`
    /// (which starts at index `base`).
    fn first_bad(&self, chunk: &[f64], base: usize) -> FixedError {
        let (i, v) = chunk
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite() || v.abs() > self.bound)
            .map_or((0, f64::NAN), |(i, v)| (i, *v));
        if v.is_finite() {
            FixedError::OutOfBound { index: base + i, bound: self.bound }
        } else {
            FixedError::NotFinite { index: base + i }
        }
    }

    /// Decode a sum of at most `parties` encodings. Errors with
    /// [`FixedError::SumOutOfRange`] if an entry lies outside `±parties·(bound·2^f + 1/2)`,
    /// which a correct sum never does (the aggregate is corrupted or came from
    /// more parties than declared).
    pub fn decode_sum(&self, sum: &[u64]) -> Result<Vec<f64>, FixedError> {
        let s = scale(self.frac_bits);
        let limit = self.parties as f64 * (self.bound * s + 0.5);
        // One vectorisable range check, then the map; `1/2^f` is exact, so
        // multiplying by it equals dividing by `2^f`.
        if !sum.iter().fold(true, |ok, &w| ok & ((w as i64 as f64).abs() <= limit)) {
            let index = sum.iter().position(|&w| (w as i64 as f64).abs() > limit).unwrap_or(0);
            return Err(FixedError::SumOutOfRange { index });
        }
        let inv = 1.0 / s;
        Ok(sum.iter().map(|&w| w as i64 as f64 * inv).collect())
    }
}

/// Round to nearest (ties to even) without a libm call: below 2^51 adding and
/// subtracting 1.5·2^52 leaves the rounded integer (the sum stays in
/// [2^52, 2^53), where the spacing of doubles is exactly 1); from 2^51 on the
/// sum would reach 2^53 and lose the last bit, so those values take
/// `round_ties_even`. Precondition: `|y| < 2^62` (guaranteed by the range
/// check), so the cast is exact and in range.
#[inline]
fn round_to_i64(y: f64) -> i64 {
    const MAGIC: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
    if y.abs() < 2_251_799_813_685_248.0 {
        // 2^51
        ((y + MAGIC) - MAGIC) as i64
    } else {
        y.round_ties_even() as i64
    }
}

fn scale(frac_bits: u32) -> f64 {
    (1u64 << frac_bits) as f64
}

/// `acc[i] += x[i]` in `Z_{2^64}`. Errors if the lengths differ.
pub fn add_assign(acc: &mut [u64], x: &[u64]) -> Result<(), FixedError> {
    if acc.len() != x.len() {
        return Err(FixedError::LengthMismatch { expected: acc.len(), got: x.len() });
    }
    for (a, b) in acc.iter_mut().zip(x) {
        *a = a.wrapping_add(*b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overflow_is_an_error_before_encoding() {
        // 2^62 / (10 · 2^40) ≈ 4.2e5: bound 1e6 does not fit with 40 bits for 10 parties.
        assert!(matches!(FixedParams::new(40, 1e6, 10), Err(FixedError::RingOverflow { .. })));
        assert!(FixedParams::new(40, 1e5, 10).is_ok());
        assert!(FixedParams::new(61, 1.0, 1).is_err());
        assert!(FixedParams::new(10, f64::NAN, 1).is_err());
        assert!(FixedParams::new(10, 1.0, 0).is_err());
        assert_eq!(FixedParams::max_frac_bits(1e6, 1000), Some(32));
        assert_eq!(FixedParams::max_frac_bits(1e300, 1), None);
    }

    #[test]
    fn bad_entries_are_named_by_index() {
        let p = FixedParams::new(16, 10.0, 3).unwrap();
        assert_eq!(p.encode(&[1.0, f64::INFINITY]), Err(FixedError::NotFinite { index: 1 }));
        assert_eq!(p.encode(&[1.0, 2.0, -10.5]), Err(FixedError::OutOfBound { index: 2, bound: 10.0 }));
        let e = p.encode(&[1.0, 2.0, -10.5]).unwrap_err().to_string();
        assert!(!e.contains("10.5"), "{e}");
    }

    #[test]
    fn extreme_sums_decode_and_corruption_is_detected() {
        let p = FixedParams::new(20, 1000.0, 4).unwrap();
        let v = p.encode(&[-1000.0, 1000.0]).unwrap();
        let mut acc = vec![0u64; 2];
        for _ in 0..4 {
            add_assign(&mut acc, &v).unwrap();
        }
        assert_eq!(p.decode_sum(&acc).unwrap(), vec![-4000.0, 4000.0]);
        acc[0] = acc[0].wrapping_add(1 << 40);
        assert_eq!(p.decode_sum(&acc), Err(FixedError::SumOutOfRange { index: 0 }));
        assert!(add_assign(&mut acc, &[1]).is_err());
    }

    #[test]
    fn both_encoding_paths_round_to_nearest_even() {
        let xs = [0.5, -0.5, 1.5, -2.5, 3.25, -7.75, 0.0, -0.0, 100.0, -100.0];
        let fast = FixedParams::new(0, 100.0, 1).unwrap(); // 100 < 2^51: bit trick
        let slow = FixedParams::new(50, 100.0, 1).unwrap(); // 100·2^50 > 2^51: scalar path
        let f = fast.encode(&xs).unwrap();
        for (x, e) in xs.iter().zip(&f) {
            assert_eq!(*e as i64, x.round_ties_even() as i64, "{x}");
        }
        let s = slow.encode(&xs).unwrap();
        for (x, e) in xs.iter().zip(&s) {
            assert_eq!(*e as i64, (x * 2f64.powi(50)) as i64, "{x}");
        }
    }

    #[test]
    fn fast_rounding_matches_ties_to_even() {
        for y in [
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            0.49999999999999994,
            -2.4,
            1e15 + 0.5,
            3_756_679_068_754_029.0, // odd, in [2^51, 2^52): once rounded to even by the magic-number path
            2f64.powi(51) + 0.5,
            -(2f64.powi(51) + 1.5),
            2f64.powi(53) + 2.0,
            -3e18,
        ] {
            assert_eq!(round_to_i64(y), y.round_ties_even() as i64, "{y}");
        }
    }

    /// The scalar definition of `encode` for one entry at `index`: range
    /// check, then round-to-nearest-even of `v · 2^f`.
    fn reference(p: &FixedParams, index: usize, v: f64) -> Result<u64, FixedError> {
        if !v.is_finite() {
            return Err(FixedError::NotFinite { index });
        }
        if v.abs() > p.bound() {
            return Err(FixedError::OutOfBound { index, bound: p.bound() });
        }
        Ok((v * scale(p.frac_bits())).round_ties_even() as i64 as u64)
    }

    #[test]
    fn both_paths_equal_the_scalar_reference_on_edge_values() {
        let above = |b: f64| f64::from_bits(b.to_bits() + 1);
        for (f, bound) in [(0u32, 100.0), (20, 1.0), (40, 1.0), (50, 3.0), (60, 1.0)] {
            let p = FixedParams::new(f, bound, 1).unwrap();
            let s = scale(f);
            let edge = [
                bound,
                -bound,
                above(bound),
                -above(bound),
                f64::from_bits(bound.to_bits() - 1),
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                -0.0,
                f64::from_bits(1), // smallest subnormal
                -f64::from_bits(1),
                f64::MIN_POSITIVE,
                f64::MIN_POSITIVE / 2.0, // subnormal
                0.5 / s,                 // ties: round to even
                1.5 / s,
                -2.5 / s,
                f64::MAX,
            ];
            for &v in &edge {
                // Alone, and at the end of a first chunk / start of a second one.
                for at in [0usize, ENCODE_CHUNK - 1, ENCODE_CHUNK, ENCODE_CHUNK + 3] {
                    let mut x = vec![bound / 3.0; at + 5];
                    x[at] = v;
                    let got = p.encode(&x);
                    match reference(&p, at, v) {
                        Ok(w) => {
                            let got = got.unwrap();
                            assert_eq!(got[at], w, "f={f} v={v:e} at {at}");
                            assert_eq!(got[0], if at == 0 { w } else { reference(&p, 0, bound / 3.0).unwrap() });
                        }
                        Err(e) => assert_eq!(got, Err(e), "f={f} v={v:e} at {at}"),
                    }
                }
            }
            // −0.0 encodes as +0, not as the sign bit.
            assert_eq!(p.encode(&[-0.0]).unwrap(), vec![0]);
            // The first bad entry is named when several are bad.
            let mut x = vec![0.0; 3 * ENCODE_CHUNK];
            x[ENCODE_CHUNK + 7] = above(bound);
            x[ENCODE_CHUNK + 9] = f64::NAN;
            assert_eq!(p.encode(&x), Err(FixedError::OutOfBound { index: ENCODE_CHUNK + 7, bound }));
            x[ENCODE_CHUNK + 5] = f64::NAN;
            assert_eq!(p.encode(&x), Err(FixedError::NotFinite { index: ENCODE_CHUNK + 5 }));
        }
    }

    proptest! {
        #[test]
        fn encode_equals_the_scalar_reference(
            f in 0u32..=60,
            xs in proptest::collection::vec(proptest::num::f64::ANY, 0..40),
        ) {
            let p = FixedParams::new(f, 1.0, 1).unwrap();
            let expect: Result<Vec<u64>, FixedError> =
                xs.iter().enumerate().map(|(i, &v)| reference(&p, i, v)).collect();
            prop_assert_eq!(p.encode(&xs), expect);
        }

        #[test]
        fn fast_rounding_agrees(y in -4e18f64..4e18) {
            prop_assert_eq!(round_to_i64(y), y.round_ties_even() as i64);
        }

        #[test]
        fn round_trip_within_resolution(f in 0u32..=40, xs in proptest::collection::vec(-1e3f64..1e3, 0..50)) {
            let p = FixedParams::new(f, 1e3, 1).unwrap();
            let back = p.decode_sum(&p.encode(&xs).unwrap()).unwrap();
            for (a, b) in xs.iter().zip(&back) {
                prop_assert!((a - b).abs() <= p.resolution() / 2.0, "{a} vs {b}");
            }
        }

        #[test]
        fn sum_of_encodings_decodes_to_sum(
            f in 0u32..=30,
            vs in proptest::collection::vec(proptest::collection::vec(-1e4f64..1e4, 8), 1..20),
        ) {
            let n = vs.len();
            let p = FixedParams::new(f, 1e4, n).unwrap();
            let mut acc = vec![0u64; 8];
            for v in &vs {
                add_assign(&mut acc, &p.encode(v).unwrap()).unwrap();
            }
            let got = p.decode_sum(&acc).unwrap();
            for (j, g) in got.iter().enumerate() {
                let exact: f64 = vs.iter().map(|v| v[j]).sum();
                prop_assert!((g - exact).abs() <= n as f64 * p.resolution() / 2.0 + 1e-9 * exact.abs());
            }
        }
    }
}
