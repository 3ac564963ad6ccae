//! Parameter sets and the noise budget that justifies them.
//!
//! A [`ParameterSet`] fixes the ring degree `N`, the ciphertext moduli, the
//! plaintext modulus `t`, the error variance, the flooding width and the
//! number of decryption shares each key share may produce. [`HeParams::new`]
//! builds the `fhe` parameters and refuses a set that
//!
//! * exceeds the Homomorphic Encryption Security Standard bound on `log2 q`
//!   for 128-bit classical security ([`hes_max_log_q`]), or
//! * whose flooding does not hide the noise of the ciphertexts it will decrypt
//!   with statistical distance `≤ 2^-λ_s` over the allowed number of
//!   decryptions, or
//! * whose decryption (noise + flooding of up to `max_parties` decryptors, or
//!   the key-switching noise) could fail.
//!
//! # Noise model (worst case, infinity norm, no heuristics)
//!
//! Errors are centred binomial with variance `σ²` (`|e| ≤ 2σ²`), secrets and
//! the encryption randomness `u` are uniform ternary. With `n` key holders the
//! collective secret is `s = Σ s_i` (`|s|∞ ≤ n`) and the collective
//! public-key error `Σ e_i` (`≤ n·2σ²`). A fresh encryption has noise
//! `e_pk·u + e1 + e2·s`, bounded by `2·N·n·2σ² + 2σ²` ([`HeParams::fresh_noise_log2`]).
//! Sums and scalings are tracked by [`crate::he::HeVector`].
//!
//! # Flooding (smudging)
//!
//! Each decryption / key-switching share adds uniform noise from
//! `[-2^b, 2^b)`. Shifting that distribution by `e` changes it by
//! statistical distance `|e| / 2^(b+1)` per coefficient, so `Q` shares of
//! `N` coefficients each leak at most `Q·N·B / 2^(b+1)` about ciphertext noise
//! bounded by `B`. We require this to be `≤ 2^-λ_s`, i.e.
//! `B ≤ 2^(b + 1 - λ_s - log2 N - log2 Q)` ([`HeParams::hidden_noise_log2`]),
//! and refuse to produce a share for a ciphertext whose tracked noise exceeds
//! it. Decryption stays correct while `B + T·2^b < q / (2t)` for `T ≤
//! max_parties` decryptors (checked with one bit of margin).

use super::error::HeError;
use fhe::bfv::{BfvParameters, BfvParametersBuilder};
use std::sync::Arc;

/// A 61-bit prime `≡ 1 (mod 2^15)`: SIMD packing for `N ≤ 16384`.
pub const PLAINTEXT_61: u64 = 2_305_843_009_211_662_337;

/// A complete, named choice of parameters (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterSet {
    /// Short name, e.g. `"bfv-8192"`.
    pub name: &'static str,
    /// Ring degree `N` (also the number of SIMD slots per ciphertext).
    pub degree: usize,
    /// Bit sizes of the RNS ciphertext moduli (`log2 q ≤` their sum).
    pub moduli_sizes: &'static [usize],
    /// Plaintext modulus `t` (prime, `≡ 1 mod 2N`).
    pub plaintext: u64,
    /// Error variance `σ²` of the centred binomial errors (`1..=16`).
    pub variance: usize,
    /// Statistical security parameter `λ_s` of the flooding.
    pub lambda_s: u32,
    /// `log2` of the number of decryption or key-switching shares one key
    /// share may produce over its lifetime.
    pub log2_max_decryptions: u32,
    /// Flooding width: noise uniform in `[-2^b, 2^b)`, `64 ≤ b ≤ 320`.
    pub flood_bits: u32,
    /// Largest number of parties (key holders) the noise analysis covers.
    pub max_parties: usize,
}

/// `N = 8192`, `q` = three 62-bit primes (`log2 q ≈ 186 ≤ 218`), `t ≈ 2^61`,
/// `σ² = 11`, flooding `2^116`, `λ_s = 40`, `2^16` decryptions per key share.
/// Hides ciphertext noise up to `2^48` (a fresh ciphertext of 64 parties has
/// `≤ 2^24.5`). The default; no ciphertext products (their noise is too large
/// to be hidden).
pub const BFV_8192: ParameterSet = ParameterSet {
    name: "bfv-8192",
    degree: 8192,
    moduli_sizes: &[62, 62, 62],
    plaintext: PLAINTEXT_61,
    variance: 11,
    lambda_s: 40,
    log2_max_decryptions: 16,
    flood_bits: 116,
    max_parties: 64,
};

/// `N = 16384`, `q` = seven 62-bit primes (`log2 q ≈ 434 ≤ 438`), `t ≈ 2^61`,
/// `σ² = 11`, flooding `2^240`, `λ_s = 40`, `2^20` decryptions per key share.
/// Hides noise up to `2^167`: one ciphertext product (multiplicative depth 1;
/// worst-case product noise of two 64-party sums `≈ 2^128`, see
/// [`HeParams::product_noise_log2`]) with room for sums of many products.
pub const BFV_16384: ParameterSet = ParameterSet {
    name: "bfv-16384",
    degree: 16384,
    moduli_sizes: &[62, 62, 62, 62, 62, 62, 62],
    plaintext: PLAINTEXT_61,
    variance: 11,
    lambda_s: 40,
    log2_max_decryptions: 20,
    flood_bits: 240,
    max_parties: 64,
};

/// All parameter sets this build offers.
pub const PARAMETER_SETS: [ParameterSet; 2] = [BFV_8192, BFV_16384];

/// The Homomorphic Encryption Security Standard (2018) bound on `log2 q` for
/// 128-bit classical security with a ternary secret and `σ ≈ 3.2`; `None` for
/// an unsupported degree.
pub fn hes_max_log_q(degree: usize) -> Option<u32> {
    match degree {
        1024 => Some(27),
        2048 => Some(54),
        4096 => Some(109),
        8192 => Some(218),
        16384 => Some(438),
        32768 => Some(881),
        _ => None,
    }
}

/// The noise budget of a parameter set, in bits (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseBudget {
    /// `log2 q` (exact, from the moduli).
    pub log2_q: f64,
    /// `log2 t`.
    pub log2_t: f64,
    /// Fresh-encryption noise bound with `max_parties` key holders.
    pub fresh_log2: f64,
    /// Largest ciphertext noise the flooding hides.
    pub hidden_log2: f64,
    /// Worst-case noise of a threshold decryption of a ciphertext at the
    /// hidden bound by `max_parties` decryptors.
    pub decrypt_log2: f64,
    /// Same for a key switch followed by the researcher's decryption.
    pub key_switch_log2: f64,
    /// Decryption is correct below this (`log2(q / 2t)` minus one bit margin).
    pub correct_below_log2: f64,
}

/// Validated parameters: the set, the `fhe` parameters and a fingerprint that
/// every serialised object carries.
#[derive(Clone, Debug)]
pub struct HeParams {
    set: ParameterSet,
    bfv: Arc<BfvParameters>,
    fingerprint: [u8; 32],
    log2_q: f64,
}

impl PartialEq for HeParams {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

fn log2_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + (2f64.powf(a - m) + 2f64.powf(b - m)).log2()
}

impl HeParams {
    /// Build and check a parameter set.
    ///
    /// Errors ([`HeError::InvalidParameter`]) if the degree has no HES bound,
    /// the moduli exceed it, `t` does not allow SIMD packing, or the noise
    /// budget fails (flooding too narrow to hide a fresh ciphertext, or
    /// decryption incorrect).
    pub fn new(set: ParameterSet) -> Result<HeParams, HeError> {
        let hes = hes_max_log_q(set.degree).ok_or_else(|| HeError::invalid("degree", "no HES bound for it"))?;
        let bits: usize = set.moduli_sizes.iter().sum();
        if bits as u32 > hes {
            return Err(HeError::invalid("moduli_sizes", format!("log2 q ≤ {bits} exceeds the HES bound {hes}")));
        }
        let t_ok = fhe_math::zq::Modulus::new(set.plaintext)
            .ok()
            .and_then(|t| fhe_math::ntt::NttOperator::new(&t, set.degree))
            .is_some();
        if !t_ok {
            return Err(HeError::invalid("plaintext", "must be a prime ≡ 1 mod 2N (SIMD packing)"));
        }
        if set.flood_bits > 320 || set.flood_bits < 64 {
            return Err(HeError::invalid("flood_bits", "must be in 64..=320"));
        }
        if set.max_parties < 2 || set.max_parties > 1024 {
            return Err(HeError::invalid("max_parties", "must be in 2..=1024"));
        }
        let bfv = BfvParametersBuilder::new()
            .set_degree(set.degree)
            .set_plaintext_modulus(set.plaintext)
            .set_moduli_sizes(set.moduli_sizes)
            .set_variance(set.variance)
            .build_arc()
            .map_err(|e| HeError::lib("building BFV parameters", e))?;
        let log2_q = bfv.moduli().iter().map(|&q| (q as f64).log2()).sum::<f64>();
        let mut h = blake3::Hasher::new();
        h.update(b"secur-e-health he params v1\0");
        h.update(&(set.degree as u64).to_be_bytes());
        for q in bfv.moduli() {
            h.update(&q.to_be_bytes());
        }
        for v in [set.plaintext, set.variance as u64, set.lambda_s.into(), set.log2_max_decryptions.into()] {
            h.update(&v.to_be_bytes());
        }
        h.update(&u64::from(set.flood_bits).to_be_bytes());
        h.update(&(set.max_parties as u64).to_be_bytes());
        let p = HeParams { set, bfv, fingerprint: *h.finalize().as_bytes(), log2_q };
        let b = p.budget();
        if b.hidden_log2 < b.fresh_log2 + 1.0 {
            return Err(HeError::invalid("flood_bits", "flooding does not hide even a fresh ciphertext"));
        }
        if b.decrypt_log2 >= b.correct_below_log2 || b.key_switch_log2 >= b.correct_below_log2 {
            return Err(HeError::invalid("flood_bits", "flooding noise would make decryption incorrect"));
        }
        Ok(p)
    }

    /// The default set, [`BFV_8192`].
    pub fn default_set() -> Result<HeParams, HeError> {
        HeParams::new(BFV_8192)
    }

    /// The parameter set.
    pub fn set(&self) -> &ParameterSet {
        &self.set
    }
    /// The `fhe` BFV parameters.
    pub fn bfv(&self) -> &Arc<BfvParameters> {
        &self.bfv
    }
    /// BLAKE3 fingerprint of everything that must agree between parties.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }
    /// Hex prefix of the fingerprint (for error messages).
    pub fn short_id(&self) -> String {
        self.fingerprint[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
    /// SIMD slots per ciphertext (`N`).
    pub fn slots(&self) -> usize {
        self.set.degree
    }
    /// Plaintext modulus `t`.
    pub fn plaintext(&self) -> u64 {
        self.set.plaintext
    }
    /// Largest magnitude a centred plaintext value may have: `(t-1)/2`.
    pub fn max_plain_magnitude(&self) -> u64 {
        (self.set.plaintext - 1) / 2
    }
    /// Exact `log2 q`.
    pub fn log2_q(&self) -> f64 {
        self.log2_q
    }
    /// Bound on `|e|` for one centred-binomial error coefficient.
    pub(crate) fn error_bound(&self) -> f64 {
        2.0 * self.set.variance as f64
    }
    /// Number of shares one key share may produce.
    pub fn max_decryptions(&self) -> u64 {
        1u64 << self.set.log2_max_decryptions
    }

    /// Fresh-encryption noise bound (log2) under a key of `parties` holders.
    pub fn fresh_noise_log2(&self, parties: usize) -> f64 {
        let n = self.set.degree as f64;
        let be = self.error_bound();
        (2.0 * n * parties.max(1) as f64 * be + be).log2()
    }

    /// Largest ciphertext noise (log2) the flooding hides (module doc).
    pub fn hidden_noise_log2(&self) -> f64 {
        f64::from(self.set.flood_bits) + 1.0
            - f64::from(self.set.lambda_s)
            - (self.set.degree as f64).log2()
            - f64::from(self.set.log2_max_decryptions)
    }

    /// Noise (log2) after `decryptors` flooded decryption shares are added to
    /// a ciphertext with noise `2^noise_log2`.
    pub fn decrypt_noise_log2(&self, noise_log2: f64, decryptors: usize) -> f64 {
        log2_add(noise_log2, f64::from(self.set.flood_bits) + (decryptors.max(1) as f64).log2())
    }

    /// Noise (log2) seen by the researcher after a key switch by `decryptors`
    /// parties of a ciphertext with noise `2^noise_log2`: the flooding plus
    /// `u_j·e'` and `e1_j·s'` per share (researcher key ternary, error `2σ²`).
    pub fn key_switch_noise_log2(&self, noise_log2: f64, decryptors: usize) -> f64 {
        let n = self.set.degree as f64;
        let be = self.error_bound();
        let per_share = (n * be + n * be).log2();
        let extra = log2_add(f64::from(self.set.flood_bits), per_share) + (decryptors.max(1) as f64).log2();
        log2_add(noise_log2, extra)
    }

    /// Worst-case noise (log2) of a collective relinearisation key made by
    /// `participants` of the `holders` key holders ([`crate::he::relin`]):
    /// the key error is `s·e0 + u·e1 + e2 + e3` with `e0, e1, e2, e3` sums of
    /// `participants` binomial errors, `u` a sum of `participants` ternary
    /// polynomials and `|s|∞ ≤ holders`, so
    /// `‖e_rlk‖ ≤ d·B_e·(N·(n + d) + 2)` (`d` participants, `n` holders, `B_e = 2σ²`).
    pub fn relin_key_noise_log2(&self, holders: usize, participants: usize) -> f64 {
        let n = self.set.degree as f64;
        let (h, d) = (holders.max(1) as f64, participants.max(1) as f64);
        (d * self.error_bound() * (n * (h + d) + 2.0)).log2()
    }

    /// Worst-case noise (log2) that relinearisation with such a key adds: the
    /// degree-2 component is split into its `ℓ` RNS digits (each `< q_i`), each
    /// multiplied by a key error: `ℓ·N·max q_i·‖e_rlk‖`.
    pub fn relin_noise_log2(&self, holders: usize, participants: usize) -> f64 {
        let l = self.bfv.moduli().len() as f64;
        let qmax = self.bfv.moduli().iter().map(|&q| (q as f64).log2()).fold(0.0, f64::max);
        l.log2() + (self.set.degree as f64).log2() + qmax + self.relin_key_noise_log2(holders, participants)
    }

    /// Worst-case noise (log2) of the degree-2 product of two ciphertexts with
    /// noise `2^a_log2` and `2^b_log2` under a key of `holders` parties, before
    /// relinearisation (`fhe`'s tensoring in an extended basis, then scaling by
    /// `t/q` with rounding). Writing each phase as `Δm + v + q·r` with
    /// `|r|∞ ≤ N·n + 1` (`|s|∞ ≤ n`) and using `fhe`'s exact embedding
    /// `Δm = (q·m − [q·m]_t)/t` (no `t²` term):
    /// `‖v‖ ≤ N·t·(N·n + 2)·(B_a + B_b + 2) + N·t·(B_a + 1)(B_b + 1)/q + 1 + (1 + N·n + N²·n²)`,
    /// the last term bounding the rounding of the three components
    /// (`|ε| ≤ 1`, `‖s²‖∞ ≤ N·n²`).
    pub fn product_noise_log2(&self, a_log2: f64, b_log2: f64, holders: usize) -> f64 {
        let n = self.set.degree as f64;
        let t = self.set.plaintext as f64;
        let h = holders.max(1) as f64;
        let ba = log2_add(a_log2, 0.0);
        let bb = log2_add(b_log2, 0.0);
        let main = n.log2() + t.log2() + (n * h + 2.0).log2() + log2_add(log2_add(a_log2, b_log2), 1.0);
        let cross = n.log2() + t.log2() + ba + bb - self.log2_q;
        let round = (2.0 + n * h + n * n * h * h).log2();
        log2_add(log2_add(main, cross), round)
    }

    /// Decryption is correct while the noise (log2) is below this.
    pub fn correct_below_log2(&self) -> f64 {
        self.log2_q - (self.set.plaintext as f64).log2() - 1.0 - 1.0
    }

    /// The full budget for `max_parties` parties.
    pub fn budget(&self) -> NoiseBudget {
        let p = self.set.max_parties;
        let hidden = self.hidden_noise_log2();
        NoiseBudget {
            log2_q: self.log2_q,
            log2_t: (self.set.plaintext as f64).log2(),
            fresh_log2: self.fresh_noise_log2(p),
            hidden_log2: hidden,
            decrypt_log2: self.decrypt_noise_log2(hidden, p),
            key_switch_log2: self.key_switch_noise_log2(hidden, p),
            correct_below_log2: self.correct_below_log2(),
        }
    }

    /// Check that objects made under `other` (fingerprint) fit these parameters.
    pub(crate) fn check_fingerprint(
        &self,
        other: &[u8; 32],
        what: &'static str,
        party: Option<crate::wire::PartyId>,
    ) -> Result<(), HeError> {
        if other == &self.fingerprint {
            Ok(())
        } else {
            Err(HeError::ParameterMismatch {
                what,
                party,
                expected: self.short_id(),
                got: other[..6].iter().map(|b| format!("{b:02x}")).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_prime_supports_packing() {
        assert!(fhe_math::zq::Modulus::new(PLAINTEXT_61).is_ok());
        assert_eq!(PLAINTEXT_61 % (1 << 15), 1);
        const { assert!(PLAINTEXT_61 < 1 << 61 && PLAINTEXT_61 > 1 << 60) };
        // Trial division up to 2^16 and a Fermat test in base 2, 3, 5, 7.
        assert!((3..65536u64).step_by(2).all(|d| !PLAINTEXT_61.is_multiple_of(d)));
        let m = fhe_math::zq::Modulus::new(PLAINTEXT_61).unwrap();
        for a in [2, 3, 5, 7] {
            assert_eq!(m.pow(a, PLAINTEXT_61 - 1), 1);
        }
    }

    #[test]
    fn log2_add_is_log_of_sum() {
        assert!((log2_add(3.0, 3.0) - 4.0).abs() < 1e-12);
        assert!((log2_add(10.0, 0.0) - (1025f64).log2()).abs() < 1e-12);
    }
}
