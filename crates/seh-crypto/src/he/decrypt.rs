//! Threshold decryption with noise flooding, and public-key switching of a
//! result to the researcher's own key.
//!
//! Decryption is Mouchet et al. (ePrint 2020/304) Protocol 3 ("KeySwitch" to
//! the zero key) run by a set `T` of at least `t` holders on Lagrange-weighted
//! Shamir shares (ePrint 2022/780): holder `j` sends
//! `h_j = λ_j^T·S(j)·c1 + e_j` with `e_j` **flooding noise** uniform in
//! `[−2^b, 2^b)`; the coordinator adds `c0 + Σ h_j` and rounds. Key switching is
//! Protocol 4 ("PubKeySwitch") to the researcher's public key `(p0', p1')`:
//! `h0_j = λ_j^T·S(j)·c1 + u_j·p0' + e0_j` (flooded), `h1_j = u_j·p1' + e1_j`.
//!
//! `fhe`'s `mbfv` adds only ordinary noise here (its TODO notes it should be
//! exponential in the ciphertext noise), which over repeated decryptions leaks
//! the secret; these steps are therefore implemented here. Every share a key
//! share produces is counted ([`ThresholdKeyShare::used`]) and refused beyond
//! the parameter set's budget, and a ciphertext whose tracked noise exceeds
//! what the flooding hides is refused ([`HeError::NoiseBudgetExceeded`]).

use super::cipher::{hex6, HeVector};
use super::error::HeError;
use super::keygen::{HeContext, ThresholdKeyShare};
use super::ring::{poly_len, read_poly, rng09, write_poly};
use crate::wire::{PartyId, Reader, Writer};
use fhe_math::rq::Poly;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroizing;

const REQ_MAGIC: &[u8; 8] = b"SEHHER01";
const SHARE_MAGIC: &[u8; 8] = b"SEHHES01";
const RPK_MAGIC: &[u8; 8] = b"SEHHEP01";

/// What the coordinator sends holders to obtain shares: the `c1` components,
/// the decryptor set, the tracked noise bound and, for a key switch, the
/// target public key.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareRequest {
    pub(crate) fingerprint: [u8; 32],
    pub(crate) decryptors: Vec<PartyId>,
    pub(crate) noise_log2: f64,
    pub(crate) c1: Vec<Poly>,
    pub(crate) target: Option<ResearcherPublicKey>,
}

impl HeVector {
    /// A request for decryption shares from `decryptors` (at least `t` holders).
    pub fn decrypt_request(&self, decryptors: &[PartyId]) -> ShareRequest {
        ShareRequest {
            fingerprint: self.fingerprint,
            decryptors: sorted(decryptors),
            noise_log2: self.noise_log2,
            c1: self.cts.iter().map(|(_, c1)| c1.clone()).collect(),
            target: None,
        }
    }

    /// A request for key-switching shares to `target` from `decryptors`.
    pub fn key_switch_request(&self, decryptors: &[PartyId], target: &ResearcherPublicKey) -> ShareRequest {
        ShareRequest { target: Some(target.clone()), ..self.decrypt_request(decryptors) }
    }
}

fn sorted(p: &[PartyId]) -> Vec<PartyId> {
    let mut v = p.to_vec();
    v.sort();
    v
}

impl ShareRequest {
    /// The decryptor set.
    pub fn decryptors(&self) -> &[PartyId] {
        &self.decryptors
    }
    /// True for a key-switch request.
    pub fn is_key_switch(&self) -> bool {
        self.target.is_some()
    }
    /// The researcher public key a key-switch request switches to (`None`: a decryption).
    pub fn target(&self) -> Option<&ResearcherPublicKey> {
        self.target.as_ref()
    }
    /// Ciphertexts in the request (what one share of it charges to a key share's budget).
    pub fn ciphertexts(&self) -> usize {
        self.c1.len()
    }

    /// Serialise.
    pub fn to_bytes(&self, ctx: &HeContext) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + self.c1.len() * poly_len(&ctx.ring) * 3);
        w.raw(REQ_MAGIC).raw(&self.fingerprint).u64(self.noise_log2.to_bits());
        w.u32(self.decryptors.len() as u32);
        for d in &self.decryptors {
            w.u32(d.0);
        }
        w.u32(self.c1.len() as u32);
        for c in &self.c1 {
            write_poly(&mut w, &ctx.ring, c);
        }
        match &self.target {
            None => {
                w.u8(0);
            }
            Some(t) => {
                w.u8(1);
                write_poly(&mut w, &ctx.ring, &t.p0);
                write_poly(&mut w, &ctx.ring, &t.p1);
            }
        }
        w.into_bytes()
    }

    /// Strictly decode (`party`: the claimed sender).
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], party: Option<PartyId>) -> Result<ShareRequest, HeError> {
        let what = "share request";
        let mut r = Reader::new(bytes, party);
        if r.take("magic", 8)? != REQ_MAGIC {
            return Err(HeError::Malformed { what, party, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, party)?;
        let noise_log2 = f64::from_bits(r.u64("noise")?);
        if !(noise_log2.is_finite() && (0.0..1024.0).contains(&noise_log2)) {
            return Err(HeError::Malformed { what, party, reason: "noise bound out of range" });
        }
        let nd = r.count_u32("decryptors", ctx.params.set().max_parties)?;
        let decryptors = (0..nd).map(|_| r.u32("decryptor").map(PartyId)).collect::<Result<Vec<_>, _>>()?;
        let max_ct = super::cipher::MAX_VALUES.div_ceil(ctx.params.slots());
        let nc = r.count_u32("ciphertexts", max_ct)?;
        if nc == 0 {
            return Err(HeError::Malformed { what, party, reason: "no ciphertext" });
        }
        let c1 = (0..nc).map(|_| read_poly(&mut r, &ctx.ring, what, party)).collect::<Result<Vec<_>, _>>()?;
        let target = match r.u8("target")? {
            0 => None,
            1 => Some(ResearcherPublicKey {
                fingerprint,
                p0: read_poly(&mut r, &ctx.ring, what, party)?,
                p1: read_poly(&mut r, &ctx.ring, what, party)?,
            }),
            _ => return Err(HeError::Malformed { what, party, reason: "bad target flag" }),
        };
        r.finish(what)?;
        Ok(ShareRequest { fingerprint, decryptors, noise_log2, c1, target })
    }
}

/// A holder's decryption or key-switching share.
#[derive(Clone, Debug, PartialEq)]
pub struct DecryptionShare {
    /// The holder that produced it.
    pub party: PartyId,
    pub(crate) fingerprint: [u8; 32],
    /// `h_j` (decryption) or `h0_j` (key switch), one per ciphertext.
    pub(crate) h0: Vec<Poly>,
    /// `h1_j` per ciphertext for a key switch; empty for a decryption.
    pub(crate) h1: Vec<Poly>,
}

impl DecryptionShare {
    /// Serialise.
    pub fn to_bytes(&self, ctx: &HeContext) -> Vec<u8> {
        let mut w = Writer::with_capacity(64 + (self.h0.len() + self.h1.len()) * poly_len(&ctx.ring));
        w.raw(SHARE_MAGIC).raw(&self.fingerprint).u32(self.party.0);
        w.u32(self.h0.len() as u32).u8(u8::from(!self.h1.is_empty()));
        for (i, h) in self.h0.iter().enumerate() {
            write_poly(&mut w, &ctx.ring, h);
            if let Some(h1) = self.h1.get(i) {
                write_poly(&mut w, &ctx.ring, h1);
            }
        }
        w.into_bytes()
    }

    /// Strictly decode; `sender` is the authenticated sender, which must be the
    /// party named inside.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], sender: PartyId) -> Result<DecryptionShare, HeError> {
        let what = "decryption share";
        let party = Some(sender);
        let mut r = Reader::new(bytes, party);
        if r.take("magic", 8)? != SHARE_MAGIC {
            return Err(HeError::Malformed { what, party, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, party)?;
        if r.u32("party")? != sender.0 {
            return Err(HeError::Malformed { what, party, reason: "share names another party" });
        }
        let n = r.count_u32("ciphertexts", super::cipher::MAX_VALUES.div_ceil(ctx.params.slots()))?;
        let ks = match r.u8("kind")? {
            0 => false,
            1 => true,
            _ => return Err(HeError::Malformed { what, party, reason: "bad kind" }),
        };
        let (mut h0, mut h1) = (Vec::with_capacity(n), Vec::new());
        for _ in 0..n {
            h0.push(read_poly(&mut r, &ctx.ring, what, party)?);
            if ks {
                h1.push(read_poly(&mut r, &ctx.ring, what, party)?);
            }
        }
        r.finish(what)?;
        Ok(DecryptionShare { party: sender, fingerprint, h0, h1 })
    }
}

impl ThresholdKeyShare {
    fn check_request(&self, req: &ShareRequest) -> Result<Zeroizing<Poly>, HeError> {
        let p = &self.ctx.params;
        p.check_fingerprint(&req.fingerprint, "share request", None)?;
        check_decryptors(&self.holders, self.threshold, &req.decryptors)?;
        if !req.decryptors.contains(&self.me) {
            return Err(HeError::invalid("decryptors", "this holder is not in the decryptor set"));
        }
        let hidden = p.hidden_noise_log2();
        if req.noise_log2 > hidden {
            return Err(HeError::NoiseBudgetExceeded { noise_log2: req.noise_log2, hidden_log2: hidden });
        }
        let allowed = p.max_decryptions();
        if self.used.saturating_add(req.c1.len() as u64) > allowed {
            return Err(HeError::DecryptionBudgetExhausted { used: self.used, allowed });
        }
        let lambda = self.ctx.ring.constant_ntt(&self.ctx.ring.lagrange_at_zero(&req.decryptors, self.me)?)?;
        let mut w = Zeroizing::new(lambda);
        *w *= self.share.as_ref();
        Ok(w)
    }

    /// This holder's flooded share for `req` (decryption, or key switch when
    /// the request names a target). Counts one use per ciphertext.
    pub fn share<R: RngCore + CryptoRng>(
        &mut self,
        req: &ShareRequest,
        rng: &mut R,
    ) -> Result<DecryptionShare, HeError> {
        let w = self.check_request(req)?;
        self.used += req.c1.len() as u64;
        let ring = &self.ctx.ring;
        let set = self.ctx.params.set();
        let mut r = rng09(rng);
        let mut h0 = Vec::with_capacity(req.c1.len());
        let mut h1 = Vec::new();
        for c1 in &req.c1 {
            let mut h = c1 * w.as_ref();
            h += &ring.flood_ntt(set.flood_bits, &mut r)?;
            if let Some(target) = &req.target {
                let u = Zeroizing::new(ring.small_ntt(&ring.ternary(&mut r))?);
                h += &(&target.p0 * u.as_ref());
                let mut g = &target.p1 * u.as_ref();
                g += &ring.error_ntt(set.variance, &mut r)?;
                h1.push(g);
            }
            h0.push(h);
        }
        Ok(DecryptionShare { party: self.me, fingerprint: *self.ctx.params.fingerprint(), h0, h1 })
    }
}

pub(crate) fn check_decryptors(holders: &[PartyId], threshold: usize, set: &[PartyId]) -> Result<(), HeError> {
    let mut s = set.to_vec();
    s.sort();
    s.dedup();
    if s.len() != set.len() {
        return Err(HeError::invalid("decryptors", "repeated party"));
    }
    if let Some(p) = set.iter().find(|p| !holders.contains(p)) {
        return Err(HeError::UnexpectedParty { party: *p, reason: "not a key holder" });
    }
    if set.len() < threshold {
        return Err(HeError::NotEnoughParties { what: "threshold decryption", needed: threshold, got: set.len() });
    }
    Ok(())
}

fn collect_shares<'a>(
    ctx: &HeContext,
    ct: &HeVector,
    req_decryptors: &[PartyId],
    shares: &'a [DecryptionShare],
    key_switch: bool,
) -> Result<Vec<&'a DecryptionShare>, HeError> {
    let mut by: BTreeMap<PartyId, &DecryptionShare> = BTreeMap::new();
    for s in shares {
        ctx.params.check_fingerprint(&s.fingerprint, "decryption share", Some(s.party))?;
        if !req_decryptors.contains(&s.party) {
            return Err(HeError::UnexpectedParty { party: s.party, reason: "not in the decryptor set" });
        }
        if s.h0.len() != ct.cts.len() || (key_switch && s.h1.len() != ct.cts.len()) || (!key_switch && !s.h1.is_empty())
        {
            return Err(HeError::Malformed {
                what: "decryption share",
                party: Some(s.party),
                reason: "wrong number or kind of polynomials",
            });
        }
        if by.insert(s.party, s).is_some() {
            return Err(HeError::UnexpectedParty { party: s.party, reason: "sent two shares" });
        }
    }
    let missing: Vec<PartyId> = req_decryptors.iter().filter(|p| !by.contains_key(p)).copied().collect();
    if !missing.is_empty() {
        return Err(HeError::MissingShares { missing });
    }
    Ok(by.into_values().collect())
}

impl HeVector {
    /// Combine the shares of every party in `decryptors` (the set the request
    /// named) and return the centred plaintext values.
    pub fn threshold_decrypt(
        &self,
        ctx: &HeContext,
        decryptors: &[PartyId],
        shares: &[DecryptionShare],
    ) -> Result<Vec<i64>, HeError> {
        ctx.params.check_fingerprint(&self.fingerprint, "encrypted vector", None)?;
        let shares = collect_shares(ctx, self, decryptors, shares, false)?;
        let mut out = Vec::with_capacity(self.len);
        for (i, (c0, _)) in self.cts.iter().enumerate() {
            let mut phase = Zeroizing::new(c0.clone());
            for s in &shares {
                *phase += &s.h0[i];
            }
            let slots = ctx.ring.phase_to_slots(&phase)?;
            let take = (self.len - out.len()).min(slots.len());
            out.extend(slots[..take].iter().map(|&v| ctx.ring.centre_t(v)));
        }
        Ok(out)
    }

    /// Combine key-switching shares into a ciphertext under the researcher's key.
    pub fn key_switch(
        &self,
        ctx: &HeContext,
        decryptors: &[PartyId],
        shares: &[DecryptionShare],
    ) -> Result<HeVector, HeError> {
        ctx.params.check_fingerprint(&self.fingerprint, "encrypted vector", None)?;
        let shares = collect_shares(ctx, self, decryptors, shares, true)?;
        let mut cts = Vec::with_capacity(self.cts.len());
        for (i, (c0, _)) in self.cts.iter().enumerate() {
            let mut a = c0.clone();
            let mut b = Poly::zero(&ctx.ring.ctx, fhe_math::rq::Representation::Ntt);
            for s in &shares {
                a += &s.h0[i];
                b += &s.h1[i];
            }
            cts.push((a, b));
        }
        let noise = ctx.params.key_switch_noise_log2(self.noise_log2, shares.len());
        Ok(HeVector { fingerprint: self.fingerprint, len: self.len, cts, noise_log2: noise })
    }
}

/// The researcher's public key (target of a key switch).
#[derive(Clone, Debug, PartialEq)]
pub struct ResearcherPublicKey {
    pub(crate) fingerprint: [u8; 32],
    pub(crate) p0: Poly,
    pub(crate) p1: Poly,
}

impl ResearcherPublicKey {
    /// Serialise.
    pub fn to_bytes(&self, ctx: &HeContext) -> Vec<u8> {
        let mut w = Writer::with_capacity(40 + 2 * poly_len(&ctx.ring));
        w.raw(RPK_MAGIC).raw(&self.fingerprint);
        write_poly(&mut w, &ctx.ring, &self.p0);
        write_poly(&mut w, &ctx.ring, &self.p1);
        w.into_bytes()
    }
    /// Strictly decode.
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8]) -> Result<ResearcherPublicKey, HeError> {
        let what = "researcher public key";
        let mut r = Reader::new(bytes, None);
        if r.take("magic", 8)? != RPK_MAGIC {
            return Err(HeError::Malformed { what, party: None, reason: "bad magic" });
        }
        let fingerprint: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fingerprint, what, None)?;
        let p0 = read_poly(&mut r, &ctx.ring, what, None)?;
        let p1 = read_poly(&mut r, &ctx.ring, what, None)?;
        r.finish(what)?;
        Ok(ResearcherPublicKey { fingerprint, p0, p1 })
    }
}

/// The researcher's secret key (ternary), used only to read key-switched results.
///
/// Everything is derived from a 32-byte secret seed ([`ResearcherKey::from_seed`]); the key
/// file holds the seed (see `he::researcher` for the codec).
pub struct ResearcherKey {
    pub(crate) ctx: HeContext,
    pub(crate) seed: Zeroizing<[u8; 32]>,
    pub(crate) s: Zeroizing<Poly>,
    pub(crate) public: ResearcherPublicKey,
}

impl fmt::Debug for ResearcherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResearcherKey").field("secret", &"<redacted>").finish_non_exhaustive()
    }
}

impl ResearcherKey {
    /// Generate a key pair from a fresh secret seed drawn from `rng`:
    /// `s'` ternary, `p1' = a'` uniform, `p0' = −a'·s' + e'`.
    pub fn generate<R: RngCore + CryptoRng>(ctx: &HeContext, rng: &mut R) -> Result<ResearcherKey, HeError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        ResearcherKey::from_seed(ctx, &seed)
    }

    /// The public key to give the federation.
    pub fn public_key(&self) -> &ResearcherPublicKey {
        &self.public
    }

    /// Decrypt a key-switched vector (centred values). Errors if it was made
    /// under other parameters or its noise bound makes decryption unreliable.
    pub fn decrypt(&self, ct: &HeVector) -> Result<Vec<i64>, HeError> {
        let p = &self.ctx.params;
        if ct.fingerprint != *p.fingerprint() {
            return Err(HeError::ParameterMismatch {
                what: "encrypted vector",
                party: None,
                expected: p.short_id(),
                got: hex6(&ct.fingerprint),
            });
        }
        if ct.noise_log2 >= p.correct_below_log2() {
            return Err(HeError::NoiseBudgetExceeded {
                noise_log2: ct.noise_log2,
                hidden_log2: p.correct_below_log2(),
            });
        }
        let mut out = Vec::with_capacity(ct.len);
        for (c0, c1) in &ct.cts {
            let mut phase = Zeroizing::new(c1 * self.s.as_ref());
            *phase += c0;
            let slots = self.ctx.ring.phase_to_slots(&phase)?;
            let take = (ct.len - out.len()).min(slots.len());
            out.extend(slots[..take].iter().map(|&v| self.ctx.ring.centre_t(v)));
        }
        Ok(out)
    }
}

/// Size of the difference of two shares of the same request (diagnostics and
/// tests): `log2` of the largest and the mean absolute centred coefficient of
/// `h_a − h_b` over all ciphertexts. For two shares by the same holder this is
/// the difference of their flooding noises.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareDifference {
    /// `log2 max |h_a − h_b|`.
    pub max: f64,
    /// Mean of `log2 |h_a − h_b|` over the coefficients.
    pub mean: f64,
}

/// Compute [`ShareDifference`] (errors if the shares have different shapes).
pub fn share_difference_log2(
    ctx: &HeContext,
    a: &DecryptionShare,
    b: &DecryptionShare,
) -> Result<ShareDifference, HeError> {
    use num_bigint::BigUint;
    if a.h0.len() != b.h0.len() {
        return Err(HeError::LengthMismatch { expected: a.h0.len(), got: b.h0.len(), party: Some(b.party) });
    }
    let qs: Vec<u64> = ctx.ring.moduli.iter().map(|q| **q).collect();
    let q: BigUint = qs.iter().map(|&x| BigUint::from(x)).product();
    let half = &q >> 1u32;
    // CRT basis: (q/q_j)·((q/q_j)^{-1} mod q_j).
    let basis: Vec<BigUint> = qs
        .iter()
        .zip(&ctx.ring.moduli)
        .map(|(&qj, m)| {
            let rest = &q / qj;
            let r = (&rest % qj).to_u64_digits().first().copied().unwrap_or(0);
            let inv = m.inv(r).unwrap_or(0);
            rest * inv
        })
        .collect();
    let log2 = |x: &BigUint| -> f64 {
        let bits = x.bits();
        if bits == 0 {
            return 0.0;
        }
        let shift = bits.saturating_sub(53);
        let top = (x >> shift).to_u64_digits().first().copied().unwrap_or(0) as f64;
        top.log2() + shift as f64
    };
    let (mut max, mut sum, mut count) = (0f64, 0f64, 0usize);
    for (x, y) in a.h0.iter().zip(&b.h0) {
        let mut d = x - y;
        d.change_representation(fhe_math::rq::Representation::PowerBasis);
        let c = d.coefficients();
        for k in 0..ctx.ring.degree() {
            let mut v = BigUint::from(0u32);
            for (j, bj) in basis.iter().enumerate() {
                v += bj * c[[j, k]];
            }
            v %= &q;
            let v = if v > half { &q - v } else { v };
            let l = log2(&v);
            max = max.max(l);
            sum += l;
            count += 1;
        }
    }
    Ok(ShareDifference { max, mean: sum / count.max(1) as f64 })
}
