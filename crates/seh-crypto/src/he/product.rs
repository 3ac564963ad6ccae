//! Slot-wise products of encrypted vectors (multiplicative depth 1).
//!
//! [`HeVector::mul`] multiplies two vectors ciphertext by ciphertext with
//! `fhe`'s [`fhe::bfv::Multiplicator`] (tensoring in an extended RNS basis,
//! scaling by `t/q`) and relinearises with the [`CollectiveRelinKey`]. The
//! result decrypts, by threshold decryption or key switching as usual, to the
//! slot-wise product modulo `t` (centred).
//!
//! Its tracked noise is the worst-case bound
//! [`HeParams::product_noise_log2`](super::HeParams::product_noise_log2) plus
//! the relinearisation noise. A product whose bound exceeds what the
//! decryption flooding hides is refused up front
//! ([`HeError::NoiseBudgetExceeded`]), so in practice: `bfv-8192` has no
//! products, `bfv-16384` has one level (a product of two products is refused).
//!
//! # Fixed point
//!
//! Two vectors encoded with `f_a` and `f_b` fractional bits multiply to a
//! vector with `f_a + f_b` fractional bits ("scale squared" when equal):
//! decode with [`decode_product`]. The encrypted product cannot be range
//! checked, so check the encodings first ([`check_product_fixed`]): the
//! largest product of two sums must stay below `(t−1)/2 ≈ 2^60`, otherwise it
//! wraps modulo `t`.

use super::cipher::{log2_add, HeVector};
use super::error::HeError;
use super::keygen::HeContext;
use super::relin::CollectiveRelinKey;
use crate::fixed::FixedParams;
use crate::wire::PartyId;
use fhe::bfv::Ciphertext;

impl HeVector {
    /// The slot-wise product `self · other`, relinearised with `rlk`
    /// (`party` names the source of `other` in errors).
    ///
    /// Errors: different parameter sets or lengths, a key of other
    /// parameters, or a product whose worst-case noise exceeds what the
    /// decryption flooding hides ([`HeError::NoiseBudgetExceeded`]).
    pub fn mul(&self, other: &HeVector, rlk: &CollectiveRelinKey, party: Option<PartyId>) -> Result<HeVector, HeError> {
        self.check_compatible(other, party)?;
        let p = &rlk.ctx.params;
        p.check_fingerprint(&self.fingerprint, "encrypted vector", None)?;
        let noise = self.product_noise_log2(other, rlk);
        let hidden = p.hidden_noise_log2();
        if noise > hidden {
            return Err(HeError::NoiseBudgetExceeded { noise_log2: noise, hidden_log2: hidden });
        }
        let bfv = p.bfv();
        let mut cts = Vec::with_capacity(self.cts.len());
        for ((a0, a1), (b0, b1)) in self.cts.iter().zip(&other.cts) {
            let x = Ciphertext::new(vec![a0.clone(), a1.clone()], bfv).map_err(|e| HeError::lib("product", e))?;
            let y = Ciphertext::new(vec![b0.clone(), b1.clone()], bfv).map_err(|e| HeError::lib("product", e))?;
            let z = rlk.mul.multiply(&x, &y).map_err(|e| HeError::lib("product", e))?;
            let [c0, c1] = [0, 1].map(|i| {
                let mut c = z[i].clone();
                // fhe marks relinearised polynomials variable-time; holders
                // multiply these by secret shares, so turn that off.
                c.disallow_variable_time_computations();
                c
            });
            cts.push((c0, c1));
        }
        Ok(HeVector { fingerprint: self.fingerprint, len: self.len, cts, noise_log2: noise })
    }

    /// Worst-case noise bound (log2) of `self · other` relinearised with `rlk`.
    pub fn product_noise_log2(&self, other: &HeVector, rlk: &CollectiveRelinKey) -> f64 {
        let p = &rlk.ctx.params;
        log2_add(p.product_noise_log2(self.noise_log2, other.noise_log2, rlk.holders), rlk.noise_log2())
    }
}

/// Check that products of two fixed-point sums cannot wrap modulo `t`:
/// `a.parties·(a.bound·2^f_a + ½) · b.parties·(b.bound·2^f_b + ½) < (t−1)/2`.
pub fn check_product_fixed(ctx: &HeContext, a: &FixedParams, b: &FixedParams) -> Result<(), HeError> {
    let side = |f: &FixedParams| f.parties() as f64 * (f.bound() * 2f64.powi(f.frac_bits() as i32) + 0.5);
    let need = side(a) * side(b);
    let max = ctx.params.max_plain_magnitude() as f64;
    if need >= max {
        return Err(HeError::invalid(
            "fixed",
            format!("products need {:.1} bits, the plaintext modulus holds {:.1}", need.log2() + 1.0, max.log2() + 1.0),
        ));
    }
    Ok(())
}

/// Decode decrypted products of values encoded with `a` and `b`: each
/// integer divided by `2^(f_a + f_b)`.
pub fn decode_product(a: &FixedParams, b: &FixedParams, values: &[i64]) -> Vec<f64> {
    let scale = 2f64.powi(-((a.frac_bits() + b.frac_bits()) as i32));
    values.iter().map(|&v| v as f64 * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::he::local::simulate_setup;
    use crate::he::params::{HeParams, BFV_16384};
    use crate::he::relin::RelinSession;
    use crate::wire::{SessionId, StudyId};
    use fhe_math::rq::{Poly, Representation};
    use num_bigint::BigUint;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// `log2` of the largest centred coefficient of `p` (CRT over all limbs).
    fn max_abs_log2(ctx: &HeContext, p: &Poly) -> f64 {
        let mut p = p.clone();
        p.change_representation(Representation::PowerBasis);
        let qs: Vec<BigUint> = ctx.ring.moduli.iter().map(|q| BigUint::from(**q)).collect();
        let q: BigUint = qs.iter().product();
        let basis: Vec<BigUint> = qs
            .iter()
            .zip(&ctx.ring.moduli)
            .map(|(qj, m)| {
                let rest = &q / qj;
                let r = (&rest % qj).to_u64_digits().first().copied().unwrap_or(0);
                rest * m.inv(r).unwrap()
            })
            .collect();
        let c = p.coefficients();
        let mut max = BigUint::from(0u32);
        for k in 0..ctx.ring.degree() {
            let mut v = BigUint::from(0u32);
            for (j, b) in basis.iter().enumerate() {
                v += b * c[[j, k]];
            }
            v %= &q;
            let v = if v > &q >> 1u32 { &q - v } else { v };
            max = max.max(v);
        }
        let bits = max.bits();
        let shift = bits.saturating_sub(53);
        ((&max >> shift).to_u64_digits().first().copied().unwrap_or(0) as f64).log2() + shift as f64
    }

    #[test]
    fn measured_noise_stays_below_the_tracked_bounds() {
        let ctx = HeContext::new(HeParams::new(BFV_16384).unwrap()).unwrap();
        let ring = &ctx.ring;
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        let holders: Vec<PartyId> = (1..=4).map(PartyId).collect();
        let sid = SessionId { study: StudyId([3; 16]), round: 0 };
        let fed = simulate_setup(&ctx, &sid, &holders, 2, &mut rng).unwrap();
        let mut s = Poly::zero(&ring.ctx, Representation::Ntt);
        for sec in &fed.secrets {
            s += &ring.small_ntt(sec.coeffs()).unwrap();
        }
        // The key: b_i + a'_i·s − g_i·s² is the key error.
        let ses = RelinSession::new(&fed.public_key, &[holders[0], holders[2]], &[1; 32]).unwrap();
        let mut g0 = ses.generator(&fed.shares[0], &mut rng).unwrap();
        let mut g2 = ses.generator(&fed.shares[2], &mut rng).unwrap();
        let agg = ses.aggregate_round1(&[g0.round_1(&mut rng).unwrap(), g2.round_1(&mut rng).unwrap()]).unwrap();
        let r2 = [g0.round_2(&agg, &mut rng).unwrap(), g2.round_2(&agg, &mut rng).unwrap()];
        let rlk = ses.aggregate_round2(&agg, &r2).unwrap();
        let s2 = &s * &s;
        let key_bound = ctx.params.relin_key_noise_log2(4, 2);
        for i in 0..rlk.b.len() {
            let mut e = &rlk.a[i] * &s;
            e += &rlk.b[i];
            e -= &(&ring.gadget_ntt(i).unwrap() * &s2);
            let got = max_abs_log2(&ctx, &e);
            assert!(got <= key_bound, "key error 2^{got} above the bound 2^{key_bound}");
            assert!(got > 3.0, "key error suspiciously small: 2^{got}");
        }
        // Sums of 4 encryptions and their product.
        let len = 300;
        let enc = |rng: &mut ChaCha20Rng| {
            let vals: Vec<Vec<i64>> =
                (0..4).map(|_| (0..len).map(|_| rng.gen_range(-(1i64 << 20)..=1 << 20)).collect()).collect();
            let mut ct = fed.public_key.encrypt_i64(&vals[0], rng).unwrap();
            for v in &vals[1..] {
                ct.add_assign(&fed.public_key.encrypt_i64(v, rng).unwrap(), None).unwrap();
            }
            let sum: Vec<i64> = (0..len).map(|j| vals.iter().map(|v| v[j]).sum()).collect();
            (ct, sum)
        };
        let (x, sx) = enc(&mut rng);
        let (y, sy) = enc(&mut rng);
        let noise = |ct: &HeVector, values: &[i64]| {
            let slots: Vec<u64> = values.iter().map(|&v| ring.to_t(v)).collect();
            let mut phase = &ct.cts[0].1 * &s;
            phase += &ct.cts[0].0;
            phase -= &ring.embed_message(&slots, &vec![0; ring.degree()]).unwrap();
            max_abs_log2(&ctx, &phase)
        };
        let nx = noise(&x, &sx);
        assert!(nx <= x.noise_log2(), "sum noise 2^{nx} above its bound 2^{}", x.noise_log2());
        let z = x.mul(&y, &rlk, None).unwrap();
        let prod: Vec<i64> = sx.iter().zip(&sy).map(|(a, b)| a * b).collect();
        let nz = noise(&z, &prod);
        assert!(nz <= z.noise_log2(), "product noise 2^{nz} above its bound 2^{}", z.noise_log2());
        assert!(nz > nx, "a product should be noisier than its factors");
        eprintln!(
            "measured: sum 2^{nx:.1} (bound 2^{:.1}), product 2^{nz:.1} (bound 2^{:.1})",
            x.noise_log2(),
            z.noise_log2()
        );
    }
}
