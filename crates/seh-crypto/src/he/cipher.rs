//! Encrypted vectors: encryption at the source under the collective key,
//! homomorphic addition and plaintext scaling with a tracked noise bound, and
//! a strict serialisation.
//!
//! A vector of `M` values occupies `⌈M/N⌉` BFV ciphertexts, one value per SIMD
//! slot (slot order is the NTT order mod `t`; only slot-wise operations are
//! offered, so the order never shows). Ciphertexts follow `fhe`'s encoding
//! (`c0 + c1·s = (−t)^{-1}·[m·q]_t + e mod q`), under which a wrap of the
//! plaintext sum modulo `t` adds only `±1` to the noise.

use super::error::HeError;
use super::keygen::{CollectivePublicKey, HeContext};
use super::ring::{poly_len, read_poly, rng09, write_poly};
use crate::fixed::FixedParams;
use crate::wire::{PartyId, Reader, Writer};
use fhe_math::rq::Poly;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

const CT_MAGIC: &[u8; 8] = b"SEHHEV01";
/// Largest vector length accepted (10^7 values).
pub const MAX_VALUES: usize = 10_000_000;

/// An encrypted vector of integers mod `t` (centred) with its noise bound.
#[derive(Clone, Debug, PartialEq)]
pub struct HeVector {
    pub(crate) fingerprint: [u8; 32],
    pub(crate) len: usize,
    pub(crate) cts: Vec<(Poly, Poly)>,
    pub(crate) noise_log2: f64,
}

pub(crate) fn log2_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + (2f64.powf(a - m) + 2f64.powf(b - m)).log2()
}

impl CollectivePublicKey {
    /// Encrypt integers (each `|v| ≤ (t−1)/2`). Public-key BFV encryption with
    /// ternary `u` and binomial errors: `(p0·u + e1 + Δm, p1·u + e2)`.
    pub fn encrypt_i64<R: RngCore + CryptoRng>(&self, values: &[i64], rng: &mut R) -> Result<HeVector, HeError> {
        let ring = &self.ctx.ring;
        let max = self.ctx.params.max_plain_magnitude();
        if values.len() > MAX_VALUES || values.is_empty() {
            return Err(HeError::invalid("values", format!("length must be 1..={MAX_VALUES}")));
        }
        if let Some(index) = values.iter().position(|v| v.unsigned_abs() > max) {
            return Err(HeError::PlaintextRange { index });
        }
        let mut r = rng09(rng);
        let n = ring.degree();
        let variance = self.ctx.params.set().variance;
        let mut cts = Vec::with_capacity(values.len().div_ceil(n));
        let mut slots = Zeroizing::new(vec![0u64; n]);
        for chunk in values.chunks(n) {
            slots.iter_mut().for_each(|s| *s = 0);
            for (s, &v) in slots.iter_mut().zip(chunk) {
                *s = ring.to_t(v);
            }
            let u = Zeroizing::new(ring.small_ntt(&ring.ternary(&mut r))?);
            let e1 = Zeroizing::new(fhe_util_cbd(n, variance, &mut r).map_err(|e| HeError::lib("error sampling", e))?);
            let mut c0 = &self.p0 * u.as_ref();
            c0 += &ring.embed_message(&slots, &e1)?;
            let mut c1 = &self.p1 * u.as_ref();
            c1 += &ring.error_ntt(variance, &mut r)?;
            cts.push((c0, c1));
        }
        Ok(HeVector {
            fingerprint: *self.ctx.params.fingerprint(),
            len: values.len(),
            cts,
            noise_log2: self.fresh_noise_log2(),
        })
    }

    /// Encode `x` with `fixed` (errors on a non-finite or out-of-bound entry)
    /// and encrypt it. `fixed` must have been checked for the plaintext
    /// modulus with [`check_fixed`].
    pub fn encrypt_f64<R: RngCore + CryptoRng>(
        &self,
        fixed: &FixedParams,
        x: &[f64],
        rng: &mut R,
    ) -> Result<HeVector, HeError> {
        check_fixed(&self.ctx, fixed)?;
        let enc = Zeroizing::new(fixed.encode(x)?);
        let v: Zeroizing<Vec<i64>> = Zeroizing::new(enc.iter().map(|&w| w as i64).collect());
        self.encrypt_i64(&v, rng)
    }
}

/// Centred binomial sample (the same sampler `fhe` uses for errors).
fn fhe_util_cbd(n: usize, variance: usize, rng: &mut super::ring::Rng09) -> Result<Vec<i64>, &'static str> {
    // Sum of `2·variance` coin differences: |e| ≤ 2·variance, variance `variance`.
    use rand09::RngCore as _;
    let k = 2 * variance as u32;
    let mask = if k >= 64 { u64::MAX } else { (1u64 << k) - 1 };
    Ok((0..n)
        .map(|_| {
            let a = rng.next_u64() & mask;
            let b = rng.next_u64() & mask;
            i64::from(a.count_ones()) - i64::from(b.count_ones())
        })
        .collect())
}

/// Check that sums of `fixed.parties()` encodings fit the plaintext modulus:
/// `parties·(bound·2^f + 1/2) < (t−1)/2`.
pub fn check_fixed(ctx: &HeContext, fixed: &FixedParams) -> Result<(), HeError> {
    let need = fixed.parties() as f64 * (fixed.bound() * 2f64.powi(fixed.frac_bits() as i32) + 0.5);
    if need >= ctx.params.max_plain_magnitude() as f64 {
        return Err(HeError::invalid(
            "fixed",
            format!(
                "sums need {:.1} bits, the plaintext modulus holds {:.1}",
                need.log2() + 1.0,
                (ctx.params.max_plain_magnitude() as f64).log2() + 1.0
            ),
        ));
    }
    Ok(())
}

impl HeVector {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if it holds no value (never, for a constructed vector).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of BFV ciphertexts.
    pub fn ciphertexts(&self) -> usize {
        self.cts.len()
    }
    /// Tracked upper bound on the noise (log2).
    pub fn noise_log2(&self) -> f64 {
        self.noise_log2
    }

    pub(crate) fn check_compatible(&self, other: &HeVector, party: Option<PartyId>) -> Result<(), HeError> {
        if self.fingerprint != other.fingerprint {
            return Err(HeError::ParameterMismatch {
                what: "encrypted vector",
                party,
                expected: hex6(&self.fingerprint),
                got: hex6(&other.fingerprint),
            });
        }
        if self.len != other.len || self.cts.len() != other.cts.len() {
            return Err(HeError::LengthMismatch { expected: self.len, got: other.len, party });
        }
        Ok(())
    }

    /// `self += other` slot-wise (mod `t`); `party` names the source of
    /// `other` in errors. Noise: `B1 + B2 + 1`.
    pub fn add_assign(&mut self, other: &HeVector, party: Option<PartyId>) -> Result<(), HeError> {
        self.check_compatible(other, party)?;
        for ((a0, a1), (b0, b1)) in self.cts.iter_mut().zip(&other.cts) {
            *a0 += b0;
            *a1 += b1;
        }
        self.noise_log2 = log2_add(log2_add(self.noise_log2, other.noise_log2), 0.0);
        Ok(())
    }

    /// Multiply every slot by the integer `c` (mod `t`). Noise: `|c|·(B + 1)`.
    pub fn scale(&mut self, ctx: &HeContext, c: i64) -> Result<(), HeError> {
        ctx.params.check_fingerprint(&self.fingerprint, "encrypted vector", None)?;
        let k = ctx.ring.signed_ntt(c)?;
        for (a0, a1) in self.cts.iter_mut() {
            *a0 *= &k;
            *a1 *= &k;
        }
        let m = (c.unsigned_abs().max(1) as f64).log2();
        self.noise_log2 = m + log2_add(self.noise_log2, 0.0);
        Ok(())
    }

    /// Serialised size in bytes.
    pub fn encoded_len(&self, ctx: &HeContext) -> usize {
        8 + 32 + 4 + 4 + 8 + self.cts.len() * 2 * poly_len(&ctx.ring)
    }

    /// Serialise: magic, parameter fingerprint, length, ciphertext count,
    /// noise bound, then `c0, c1` of every ciphertext (packed residues).
    pub fn to_bytes(&self, ctx: &HeContext) -> Result<Vec<u8>, HeError> {
        ctx.params.check_fingerprint(&self.fingerprint, "encrypted vector", None)?;
        let mut w = Writer::with_capacity(self.encoded_len(ctx));
        w.raw(CT_MAGIC).raw(&self.fingerprint).u32(self.len as u32).u32(self.cts.len() as u32);
        w.u64(self.noise_log2.to_bits());
        for (c0, c1) in &self.cts {
            write_poly(&mut w, &ctx.ring, c0);
            write_poly(&mut w, &ctx.ring, c1);
        }
        Ok(w.into_bytes())
    }

    /// Strictly decode [`HeVector::to_bytes`] (`party`: the claimed author, for
    /// errors). Rejects another parameter set, inconsistent counts, unreduced
    /// residues, trailing bytes and a non-finite or negative noise bound.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], party: Option<PartyId>) -> Result<HeVector, HeError> {
        let what = "encrypted vector";
        let mut r = Reader::new(bytes, party);
        if r.take("magic", 8)? != CT_MAGIC {
            return Err(HeError::Malformed { what, party, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, party)?;
        let len = r.count_u32("length", MAX_VALUES)?;
        let count = r.u32("ciphertexts")? as usize;
        if len == 0 || count != len.div_ceil(ctx.params.slots()) {
            return Err(HeError::Malformed { what, party, reason: "ciphertext count does not match the length" });
        }
        let noise_log2 = f64::from_bits(r.u64("noise")?);
        if !(noise_log2.is_finite() && (0.0..1024.0).contains(&noise_log2)) {
            return Err(HeError::Malformed { what, party, reason: "noise bound out of range" });
        }
        if r.remaining() != count * 2 * poly_len(&ctx.ring) {
            return Err(HeError::Malformed { what, party, reason: "wrong payload size" });
        }
        let mut cts = Vec::with_capacity(count);
        for _ in 0..count {
            let c0 = read_poly(&mut r, &ctx.ring, what, party)?;
            let c1 = read_poly(&mut r, &ctx.ring, what, party)?;
            cts.push((c0, c1));
        }
        r.finish(what)?;
        Ok(HeVector { fingerprint, len, cts, noise_log2 })
    }
}

pub(crate) fn hex6(fp: &[u8; 32]) -> String {
    fp[..6].iter().map(|b| format!("{b:02x}")).collect()
}
