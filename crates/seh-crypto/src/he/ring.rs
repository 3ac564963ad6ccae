//! Ring helpers on `fhe-math` polynomials: samplers (ternary, flooding),
//! constants, Lagrange coefficients over the RNS limbs, the BFV plaintext
//! embedding and a strict, packed codec for NTT-form polynomials.

use super::error::HeError;
use super::params::HeParams;
use crate::wire::{PartyId, Reader, Writer};
use fhe_math::ntt::NttOperator;
use fhe_math::rns::ScalingFactor;
use fhe_math::rq::scaler::Scaler;
use fhe_math::rq::traits::TryConvertFrom;
use fhe_math::rq::{Context, Poly, Representation};
use fhe_math::zq::Modulus;
use num_bigint::BigUint;
use rand09::{RngCore as _, SeedableRng as _};
use rand_chacha09::ChaCha20Rng;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The RNG type handed to `fhe` / `fhe-math` (they use `rand` 0.9).
pub(crate) type Rng09 = ChaCha20Rng;

/// A `rand` 0.9 ChaCha20 generator seeded from the caller's (`rand` 0.8) CSPRNG.
pub(crate) fn rng09<R: rand::RngCore + rand::CryptoRng>(rng: &mut R) -> Rng09 {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    ChaCha20Rng::from_seed(*seed)
}

/// A ChaCha20 generator from a public seed and a domain label.
pub(crate) fn rng_from_seed(seed: &[u8; 32], label: &str) -> Rng09 {
    ChaCha20Rng::from_seed(blake3::derive_key(label, seed))
}

/// Precomputed per-parameter ring data.
#[derive(Debug)]
pub(crate) struct Ring {
    pub ctx: Arc<Context>,
    pub moduli: Vec<Modulus>,
    pub t: Modulus,
    /// `q mod t`.
    pub q_mod_t: u64,
    /// `(-t)^{-1} mod q_j`, the `fhe` BFV scaling factor per limb.
    pub delta: Vec<u64>,
    pub ntt_t: NttOperator,
    pub degree: usize,
    pub scaler: Scaler,
}

impl Ring {
    pub(crate) fn new(params: &HeParams) -> Result<Ring, HeError> {
        let ctx = params.bfv().context_at_level(0).map_err(|e| HeError::lib("context", e))?.clone();
        let moduli = ctx.moduli_operators().to_vec();
        let t = Modulus::new(params.plaintext()).map_err(|e| HeError::lib("plaintext modulus", e))?;
        let q_mod_t = moduli.iter().fold(1u64, |acc, q| t.mul(acc, t.reduce(**q)));
        let mut delta = Vec::with_capacity(moduli.len());
        for q in &moduli {
            let neg_t = q.neg(q.reduce(params.plaintext()));
            delta.push(q.inv(neg_t).ok_or_else(|| HeError::invalid("plaintext", "not invertible mod q"))?);
        }
        let ntt_t = NttOperator::new(&t, params.slots())
            .ok_or_else(|| HeError::invalid("plaintext", "no NTT of this size mod t"))?;
        let q0 = Context::new_arc(&ctx.moduli()[..1], params.slots()).map_err(|e| HeError::lib("context", e))?;
        let factor = ScalingFactor::new(&BigUint::from(params.plaintext()), ctx.modulus());
        let scaler = Scaler::new(&ctx, &q0, factor).map_err(|e| HeError::lib("scaler", e))?;
        Ok(Ring { ctx, moduli, t, q_mod_t, delta, ntt_t, degree: params.slots(), scaler })
    }

    pub(crate) fn degree(&self) -> usize {
        self.degree
    }

    /// Uniform ternary coefficients (rejection sampling on 2-bit chunks).
    pub(crate) fn ternary(&self, rng: &mut Rng09) -> Zeroizing<Vec<i64>> {
        let n = self.degree();
        let mut out = Zeroizing::new(Vec::with_capacity(n));
        while out.len() < n {
            let mut w = rng.next_u64();
            for _ in 0..32 {
                let c = (w & 3) as i64;
                w >>= 2;
                if c < 3 && out.len() < n {
                    out.push(c - 1);
                }
            }
        }
        out
    }

    /// A polynomial with small signed coefficients, in NTT form.
    pub(crate) fn small_ntt(&self, coeffs: &[i64]) -> Result<Poly, HeError> {
        let mut p = Poly::try_convert_from(coeffs, &self.ctx, false, Representation::PowerBasis)
            .map_err(|e| HeError::lib("small polynomial", e))?;
        p.change_representation(Representation::Ntt);
        Ok(p)
    }

    /// A centred-binomial error polynomial (variance of the set), NTT form.
    pub(crate) fn error_ntt(&self, variance: usize, rng: &mut Rng09) -> Result<Poly, HeError> {
        Poly::small(&self.ctx, Representation::Ntt, variance, rng).map_err(|e| HeError::lib("error sampling", e))
    }

    /// A uniform polynomial (NTT form).
    pub(crate) fn uniform_ntt(&self, rng: &mut Rng09) -> Poly {
        Poly::random(&self.ctx, Representation::Ntt, rng)
    }

    /// Flooding noise: every coefficient uniform in `[-2^bits, 2^bits)`
    /// (`bits ≤ 320`), returned in NTT form.
    ///
    /// Each coefficient is `v − 2^bits` for `v` uniform in `[0, 2^(bits+1))`,
    /// drawn as little-endian 64-bit words; its residue modulo `q_j` is
    /// `Σ_k (w_k mod q_j)·(2^(64k) mod q_j) − (2^bits mod q_j)`, computed with
    /// `fhe-math`'s constant-time modular arithmetic (no branch on the value).
    pub(crate) fn flood_ntt(&self, bits: u32, rng: &mut Rng09) -> Result<Poly, HeError> {
        if !(1..=320).contains(&bits) {
            return Err(HeError::invalid("flood_bits", "must be in 1..=320"));
        }
        let n = self.degree();
        let l = self.moduli.len();
        let total = bits + 1;
        let words = total.div_ceil(64) as usize;
        let top_mask = if total.is_multiple_of(64) { u64::MAX } else { (1u64 << (total % 64)) - 1 };
        let mut w = Zeroizing::new(vec![0u64; n * words]);
        for (i, x) in w.iter_mut().enumerate() {
            let r = rng.next_u64();
            *x = if i % words == words - 1 { r & top_mask } else { r };
        }
        let mut coeffs = Zeroizing::new(vec![0u64; n * l]);
        for (j, q) in self.moduli.iter().enumerate() {
            let r64 = q.reduce_u128(1u128 << 64);
            let mut pow = Vec::with_capacity(words);
            let mut p = 1u64;
            for _ in 0..words {
                pow.push(p);
                p = q.mul(p, r64);
            }
            let offset = q.pow(2, u64::from(bits));
            let row = &mut coeffs[j * n..(j + 1) * n];
            for (k, c) in row.iter_mut().enumerate() {
                let mut acc = 0u64;
                for (x, pw) in w[k * words..(k + 1) * words].iter().zip(&pow) {
                    acc = q.add(acc, q.mul(q.reduce(*x), *pw));
                }
                *c = q.sub(acc, offset);
            }
        }
        let mut p = Poly::try_convert_from(coeffs.to_vec(), &self.ctx, false, Representation::PowerBasis)
            .map_err(|e| HeError::lib("flooding polynomial", e))?;
        p.change_representation(Representation::Ntt);
        Ok(p)
    }

    /// The `i`-th RNS gadget element (the CRT idempotent: `1 mod q_i`, `0 mod
    /// q_k` for `k ≠ i`), as a constant polynomial in NTT form.
    pub(crate) fn gadget_ntt(&self, i: usize) -> Result<Poly, HeError> {
        let per: Vec<u64> = (0..self.moduli.len()).map(|k| u64::from(k == i)).collect();
        self.constant_ntt(&per)
    }

    /// The constant polynomial with residue `per_limb[j]` in limb `j`, NTT form.
    pub(crate) fn constant_ntt(&self, per_limb: &[u64]) -> Result<Poly, HeError> {
        let n = self.degree();
        let mut v = Vec::with_capacity(n * per_limb.len());
        for &c in per_limb {
            v.extend(std::iter::repeat_n(c, n));
        }
        Poly::try_convert_from(v, &self.ctx, false, Representation::Ntt).map_err(|e| HeError::lib("constant", e))
    }

    /// The constant `x` (a small non-negative integer) in NTT form.
    pub(crate) fn scalar_ntt(&self, x: u64) -> Result<Poly, HeError> {
        let per: Vec<u64> = self.moduli.iter().map(|q| q.reduce(x)).collect();
        self.constant_ntt(&per)
    }

    /// The signed constant `c` in NTT form.
    pub(crate) fn signed_ntt(&self, c: i64) -> Result<Poly, HeError> {
        let per: Vec<u64> = self
            .moduli
            .iter()
            .map(|q| {
                let a = q.reduce(c.unsigned_abs());
                if c < 0 {
                    q.neg(a)
                } else {
                    a
                }
            })
            .collect();
        self.constant_ntt(&per)
    }

    /// Lagrange coefficient at 0 of `me` for the evaluation points `set`
    /// (party ids), per limb: `Π_{m ≠ me} m / (m − me) mod q_j`.
    pub(crate) fn lagrange_at_zero(&self, set: &[PartyId], me: PartyId) -> Result<Vec<u64>, HeError> {
        let mut out = Vec::with_capacity(self.moduli.len());
        for q in &self.moduli {
            let (mut num, mut den) = (1u64, 1u64);
            for m in set.iter().filter(|m| **m != me) {
                num = q.mul(num, q.reduce(u64::from(m.0)));
                den = q.mul(den, q.sub(q.reduce(u64::from(m.0)), q.reduce(u64::from(me.0))));
            }
            let inv = q.inv(den).ok_or_else(|| HeError::invalid("decryptors", "duplicate party id"))?;
            out.push(q.mul(num, inv));
        }
        Ok(out)
    }

    /// Slot values (mod t, any order fixed by the NTT) → the BFV message term
    /// `Δ·m` plus `e1`, i.e. `e1 + (-t)^{-1}·[m·(q mod t)]_t` in NTT form
    /// (`fhe`'s plaintext embedding, so `fhe` decrypts these ciphertexts).
    pub(crate) fn embed_message(&self, slots: &[u64], e1: &[i64]) -> Result<Poly, HeError> {
        let n = self.degree();
        let mut m = Zeroizing::new(vec![0u64; n]);
        m[..slots.len()].copy_from_slice(slots);
        self.ntt_t.backward(&mut m);
        self.t.scalar_mul_vec(&mut m, self.q_mod_t);
        let mut coeffs = Zeroizing::new(vec![0u64; n * self.moduli.len()]);
        for (j, q) in self.moduli.iter().enumerate() {
            let row = &mut coeffs[j * n..(j + 1) * n];
            for k in 0..n {
                let e = q.reduce(e1[k].unsigned_abs());
                let e = if e1[k] < 0 { q.neg(e) } else { e };
                row[k] = q.add(q.mul(q.reduce(m[k]), self.delta[j]), e);
            }
        }
        let mut p = Poly::try_convert_from(coeffs.to_vec(), &self.ctx, false, Representation::PowerBasis)
            .map_err(|e| HeError::lib("message embedding", e))?;
        p.change_representation(Representation::Ntt);
        Ok(p)
    }

    /// The phase `c0 + c1·s` (NTT form) → slot values mod `t`.
    pub(crate) fn phase_to_slots(&self, phase: &Poly) -> Result<Zeroizing<Vec<u64>>, HeError> {
        let scaled = phase.scale(&self.scaler).map_err(|e| HeError::lib("scaling", e))?;
        let mut scaled = Zeroizing::new(scaled);
        scaled.change_representation(Representation::PowerBasis);
        let q0 = *self.moduli[0];
        let t = *self.t;
        let q0m = &self.moduli[0];
        let mut w: Zeroizing<Vec<u64>> =
            Zeroizing::new(scaled.coefficients().row(0).iter().map(|&v| self.t.reduce(q0m.add(v, t % q0))).collect());
        self.ntt_t.forward(&mut w);
        Ok(w)
    }

    /// Centre a residue mod `t` into `(-t/2, t/2]`.
    pub(crate) fn centre_t(&self, v: u64) -> i64 {
        let t = *self.t;
        if v > t / 2 {
            -((t - v) as i64)
        } else {
            v as i64
        }
    }

    /// A signed value (|v| < t/2) as a residue mod t.
    pub(crate) fn to_t(&self, v: i64) -> u64 {
        let a = self.t.reduce(v.unsigned_abs());
        if v < 0 {
            self.t.neg(a)
        } else {
            a
        }
    }
}

/// Write an NTT-form polynomial: per limb, `N` residues packed with
/// `bitlen(q_j)` bits each (little-endian bit order).
pub(crate) fn write_poly(w: &mut Writer, ring: &Ring, p: &Poly) {
    let c = p.coefficients();
    for (j, q) in ring.moduli.iter().enumerate() {
        let bits = 64 - (**q).leading_zeros();
        let row = c.row(j);
        let mut acc: u128 = 0;
        let mut nacc = 0u32;
        let mut out = Vec::with_capacity(ring.degree() * bits as usize / 8 + 8);
        for &v in row.iter() {
            acc |= (v as u128) << nacc;
            nacc += bits;
            while nacc >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                nacc -= 8;
            }
        }
        if nacc > 0 {
            out.push(acc as u8);
        }
        w.raw(&out);
    }
}

/// Bytes [`write_poly`] produces for one polynomial.
pub(crate) fn poly_len(ring: &Ring) -> usize {
    ring.moduli.iter().map(|q| (ring.degree() * (64 - (**q).leading_zeros()) as usize).div_ceil(8)).sum()
}

/// Read a polynomial written by [`write_poly`]; every residue must be `< q_j`.
pub(crate) fn read_poly(
    r: &mut Reader<'_>,
    ring: &Ring,
    what: &'static str,
    party: Option<PartyId>,
) -> Result<Poly, HeError> {
    let n = ring.degree();
    let mut v = Vec::with_capacity(n * ring.moduli.len());
    for q in &ring.moduli {
        let bits = 64 - (**q).leading_zeros();
        let bytes = r.take(what, (n * bits as usize).div_ceil(8))?;
        let mask = (1u128 << bits) - 1;
        let mut acc: u128 = 0;
        let mut nacc = 0u32;
        let mut it = bytes.iter();
        for _ in 0..n {
            while nacc < bits {
                let b = it.next().copied().unwrap_or(0);
                acc |= (b as u128) << nacc;
                nacc += 8;
            }
            let x = (acc & mask) as u64;
            acc >>= bits;
            nacc -= bits;
            if x >= **q {
                return Err(HeError::Malformed { what, party, reason: "residue not reduced modulo its prime" });
            }
            v.push(x);
        }
        if acc != 0 {
            return Err(HeError::Malformed { what, party, reason: "non-zero padding bits" });
        }
    }
    Poly::try_convert_from(v, &ring.ctx, false, Representation::Ntt).map_err(|e| HeError::lib("decode", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::params::{HeParams, BFV_8192};

    #[test]
    fn flooding_is_centred_and_consistent_across_limbs() {
        let ring = Ring::new(&HeParams::new(BFV_8192).unwrap()).unwrap();
        let mut rng = rng_from_seed(&[9; 32], "test");
        for bits in [20u32, 40, 59] {
            let mut p = ring.flood_ntt(bits, &mut rng).unwrap();
            p.change_representation(Representation::PowerBasis);
            let c = p.coefficients();
            let (mut max, mut neg) = (0u64, 0usize);
            for k in 0..ring.degree() {
                let (q0, r0) = (*ring.moduli[0], c[[0, k]]);
                let (mag, is_neg) = if r0 > q0 / 2 { (q0 - r0, true) } else { (r0, false) };
                assert!(mag <= 1u64 << bits && (is_neg || mag < 1u64 << bits), "out of range");
                for (j, q) in ring.moduli.iter().enumerate().skip(1) {
                    let want = if is_neg { q.neg(q.reduce(mag)) } else { q.reduce(mag) };
                    assert_eq!(c[[j, k]], want);
                }
                max = max.max(mag);
                neg += usize::from(is_neg);
            }
            assert!(max > 1u64 << (bits - 1), "width too small");
            assert!((3800..4400).contains(&neg), "{neg} negatives of 8192");
        }
        assert!(ring.flood_ntt(321, &mut rng).is_err());
    }
}
