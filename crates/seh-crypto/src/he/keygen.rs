//! Collective key generation (Mouchet et al., "Multiparty Homomorphic
//! Encryption from Ring-Learning-with-Errors", PETS 2021, ePrint 2020/304,
//! Protocol 1 "EncKeyGen") and its t-out-of-n extension by Shamir re-sharing
//! of every party's secret (Mouchet, Bertrand, Hubaux, "An Efficient
//! Threshold Access-Structure for RLWE-Based Multiparty Homomorphic
//! Encryption", ePrint 2022/780, §4).
//!
//! # Rounds
//!
//! | round | each party | result |
//! |---|---|---|
//! | 1 seed | [`SeedCommitment`]: BLAKE3 commitment to 32 random bytes | — |
//! | 2 reveal | [`SeedReveal`] (after *all* commitments arrived) | joint seed → common random polynomial `a` |
//! | 3 key shares | [`PublicKeyShare`] `p0_i = −a·s_i + e_i`; one [`KeyShareDeal`] per holder `j`: `f_i(j)` with `f_i(0) = s_i`, degree `t−1` | [`CollectivePublicKey`] `(Σ p0_i, a)`; each holder's [`ThresholdKeyShare`] `S(j) = Σ_i f_i(j)` |
//!
//! Any `t` holders `T` then hold additive shares `λ_j^T·S(j)` of `s = Σ s_i`
//! (Lagrange coefficients at 0 over every RNS prime `q_l`; Shamir's scheme is
//! applied coefficient-wise in each limb, which by CRT is Shamir over `Z_q`,
//! and in the NTT domain, which is linear).
//!
//! Secrets `s_i` are uniform ternary; the collective key is never formed.
//! Deals are secret: the caller must send each one over the authenticated,
//! encrypted site-to-site channel (DESIGN §1), never in clear via the
//! coordinator. Deals are **not verifiable** (no commitments to `f_i`): a
//! malicious dealer can make decryption fail (detected, not silent) but this
//! back-end assumes honest-but-curious key generation.

use super::error::HeError;
use super::params::HeParams;
use super::ring::{read_poly, rng09, rng_from_seed, write_poly, Ring};
use crate::wire::{PartyId, Reader, SessionId, Writer};
use fhe_math::rq::Poly;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Shared, validated parameters plus precomputed ring data. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HeContext {
    pub(crate) params: Arc<HeParams>,
    pub(crate) ring: Arc<Ring>,
}

impl HeContext {
    /// Precompute the ring data of `params`.
    pub fn new(params: HeParams) -> Result<HeContext, HeError> {
        let ring = Ring::new(&params)?;
        Ok(HeContext { params: Arc::new(params), ring: Arc::new(ring) })
    }
    /// The parameters.
    pub fn params(&self) -> &HeParams {
        &self.params
    }
}

fn commit_digest(session: &SessionId, party: PartyId, contribution: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("secur-e-health he seed commitment v1");
    h.update(&session.to_bytes());
    h.update(&party.0.to_be_bytes());
    h.update(contribution);
    *h.finalize().as_bytes()
}

/// Round 1 secret: a party's seed contribution, kept until every commitment
/// has arrived. Consumed by [`SeedSecret::reveal`].
pub struct SeedSecret {
    party: PartyId,
    contribution: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SeedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedSecret").field("party", &self.party).field("contribution", &"<redacted>").finish()
    }
}

/// Round 1 message: commitment to a seed contribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedCommitment {
    /// Committing party.
    pub party: PartyId,
    /// `BLAKE3-derive-key(session ‖ party ‖ contribution)`.
    pub digest: [u8; 32],
}

/// Round 2 message: the opened contribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReveal {
    /// Revealing party.
    pub party: PartyId,
    /// The 32 random bytes committed to.
    pub contribution: [u8; 32],
}

/// Round 1: draw a contribution and commit to it (bound to the session).
pub fn seed_commit<R: RngCore + CryptoRng>(
    session: &SessionId,
    party: PartyId,
    rng: &mut R,
) -> (SeedSecret, SeedCommitment) {
    let mut c = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(c.as_mut());
    let digest = commit_digest(session, party, &c);
    (SeedSecret { party, contribution: c }, SeedCommitment { party, digest })
}

impl SeedSecret {
    /// Round 2: open the commitment. Call only after receiving every party's
    /// commitment (otherwise a late party could choose its contribution).
    pub fn reveal(self) -> SeedReveal {
        SeedReveal { party: self.party, contribution: *self.contribution }
    }
}

/// The joint seed: checks that `commitments` and `reveals` come from the same
/// parties (exactly `parties`), that every reveal opens its commitment, and
/// hashes all contributions in party order. Uniform as long as one party is honest.
pub fn joint_seed(
    session: &SessionId,
    parties: &[PartyId],
    commitments: &[SeedCommitment],
    reveals: &[SeedReveal],
) -> Result<[u8; 32], HeError> {
    let com: BTreeMap<PartyId, &SeedCommitment> = commitments.iter().map(|c| (c.party, c)).collect();
    let rev: BTreeMap<PartyId, &SeedReveal> = reveals.iter().map(|r| (r.party, r)).collect();
    if com.len() != commitments.len() || rev.len() != reveals.len() {
        return Err(HeError::invalid("seed", "duplicate commitment or reveal"));
    }
    for p in parties {
        let (Some(c), Some(r)) = (com.get(p), rev.get(p)) else {
            return Err(HeError::MissingShares { missing: vec![*p] });
        };
        if !bool::from(commit_digest(session, *p, &r.contribution).ct_eq(&c.digest)) {
            return Err(HeError::BadReveal { party: *p });
        }
    }
    if let Some(p) = com.keys().chain(rev.keys()).find(|p| !parties.contains(p)) {
        return Err(HeError::UnexpectedParty { party: *p, reason: "not a key holder" });
    }
    let mut h = blake3::Hasher::new_derive_key("secur-e-health he joint seed v1");
    h.update(&session.to_bytes());
    for (p, r) in &rev {
        h.update(&p.0.to_be_bytes());
        h.update(&r.contribution);
    }
    Ok(*h.finalize().as_bytes())
}

/// The common random polynomial `a` derived from the joint seed.
pub fn common_random_poly(ctx: &HeContext, seed: &[u8; 32]) -> Poly {
    ctx.ring.uniform_ntt(&mut rng_from_seed(seed, "secur-e-health he crp a v1"))
}

/// A party's ternary secret `s_i` (never leaves the party).
pub struct PartySecret {
    party: PartyId,
    coeffs: Zeroizing<Vec<i64>>,
    s: Zeroizing<Poly>,
}

impl fmt::Debug for PartySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartySecret").field("party", &self.party).field("s", &"<redacted>").finish()
    }
}

impl PartySecret {
    /// Draw a uniform ternary secret for `party` (a site id).
    pub fn generate<R: RngCore + CryptoRng>(ctx: &HeContext, party: PartyId, rng: &mut R) -> Result<Self, HeError> {
        if !party.is_site() {
            return Err(HeError::invalid("party", "key holders must be site ids"));
        }
        let mut r = rng09(rng);
        let coeffs = ctx.ring.ternary(&mut r);
        let s = Zeroizing::new(ctx.ring.small_ntt(&coeffs)?);
        Ok(PartySecret { party, coeffs, s })
    }

    /// The party.
    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The coefficients (for building an `fhe` secret key for relinearisation-key generation).
    #[allow(dead_code)] // kept for relinearisation-key generation (not yet wired)
    pub(crate) fn coeffs(&self) -> &[i64] {
        &self.coeffs
    }

    /// Round 3: this party's public-key share `p0_i = −a·s_i + e_i`.
    pub fn public_key_share<R: RngCore + CryptoRng>(
        &self,
        ctx: &HeContext,
        a: &Poly,
        rng: &mut R,
    ) -> Result<PublicKeyShare, HeError> {
        let mut r = rng09(rng);
        let e = Zeroizing::new(ctx.ring.error_ntt(ctx.params.set().variance, &mut r)?);
        let mut p0 = -(a * self.s.as_ref());
        p0 += e.as_ref();
        Ok(PublicKeyShare { party: self.party, fingerprint: *ctx.params.fingerprint(), p0 })
    }

    /// Round 3: Shamir shares of `s_i` for `holders` with threshold `t`
    /// (polynomial of degree `t−1`). Returns one deal per holder, including
    /// this party's own.
    pub fn deal<R: RngCore + CryptoRng>(
        &self,
        ctx: &HeContext,
        holders: &[PartyId],
        threshold: usize,
        rng: &mut R,
    ) -> Result<Vec<KeyShareDeal>, HeError> {
        check_holders(ctx, holders, threshold)?;
        let mut r = rng09(rng);
        let coeffs: Vec<Zeroizing<Poly>> =
            (1..threshold).map(|_| Zeroizing::new(ctx.ring.uniform_ntt(&mut r))).collect();
        let mut out = Vec::with_capacity(holders.len());
        for &h in holders {
            // Horner: f(x) = s + x(a1 + x(a2 + …)).
            let x = ctx.ring.scalar_ntt(u64::from(h.0))?;
            let mut acc = Zeroizing::new(Poly::zero(&ctx.ring.ctx, fhe_math::rq::Representation::Ntt));
            for c in coeffs.iter().rev() {
                *acc += c.as_ref();
                *acc *= &x;
            }
            *acc += self.s.as_ref();
            out.push(KeyShareDeal {
                from: self.party,
                to: h,
                fingerprint: *ctx.params.fingerprint(),
                share: Zeroizing::new(std::mem::replace(
                    &mut *acc,
                    Poly::zero(&ctx.ring.ctx, fhe_math::rq::Representation::Ntt),
                )),
            });
        }
        Ok(out)
    }
}

fn check_holders(ctx: &HeContext, holders: &[PartyId], threshold: usize) -> Result<(), HeError> {
    let mut sorted = holders.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != holders.len() || holders.iter().any(|p| !p.is_site()) {
        return Err(HeError::invalid("holders", "must be distinct site ids"));
    }
    if holders.len() < 2 || holders.len() > ctx.params.set().max_parties {
        return Err(HeError::invalid("holders", format!("need 2..={} holders", ctx.params.set().max_parties)));
    }
    if threshold < 1 || threshold > holders.len() {
        return Err(HeError::invalid("threshold", "must be in 1..=holders"));
    }
    Ok(())
}

/// A party's public-key share (round 3, sent to everyone via the coordinator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyShare {
    /// Sender.
    pub party: PartyId,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) p0: Poly,
}

/// One Shamir share of one party's secret for one holder. Secret: send it only
/// end-to-end encrypted to `to`.
pub struct KeyShareDeal {
    /// Dealer.
    pub from: PartyId,
    /// Recipient holder.
    pub to: PartyId,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) share: Zeroizing<Poly>,
}

impl fmt::Debug for KeyShareDeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShareDeal").field("from", &self.from).field("to", &self.to).finish_non_exhaustive()
    }
}

/// The collective public key `(Σ p0_i, a)` with its holders and threshold.
#[derive(Clone, Debug)]
pub struct CollectivePublicKey {
    pub(crate) ctx: HeContext,
    pub(crate) p0: Poly,
    pub(crate) p1: Poly,
    pub(crate) holders: Vec<PartyId>,
    pub(crate) threshold: usize,
}

impl CollectivePublicKey {
    /// Aggregate the shares of exactly `holders` (one each) under the common
    /// polynomial `a`. Errors name a missing, foreign or mismatched share.
    pub fn aggregate(
        ctx: &HeContext,
        a: &Poly,
        holders: &[PartyId],
        threshold: usize,
        shares: &[PublicKeyShare],
    ) -> Result<CollectivePublicKey, HeError> {
        check_holders(ctx, holders, threshold)?;
        let mut by: BTreeMap<PartyId, &PublicKeyShare> = BTreeMap::new();
        for s in shares {
            ctx.params.check_fingerprint(&s.fingerprint, "public-key share", Some(s.party))?;
            if !holders.contains(&s.party) {
                return Err(HeError::UnexpectedParty { party: s.party, reason: "not a key holder" });
            }
            if by.insert(s.party, s).is_some() {
                return Err(HeError::UnexpectedParty { party: s.party, reason: "sent two public-key shares" });
            }
        }
        let missing: Vec<PartyId> = holders.iter().filter(|p| !by.contains_key(p)).copied().collect();
        if !missing.is_empty() {
            return Err(HeError::MissingShares { missing });
        }
        let mut p0 = Poly::zero(&ctx.ring.ctx, fhe_math::rq::Representation::Ntt);
        for s in by.values() {
            p0 += &s.p0;
        }
        let mut holders = holders.to_vec();
        holders.sort();
        Ok(CollectivePublicKey { ctx: ctx.clone(), p0, p1: a.clone(), holders, threshold })
    }

    /// Key holders, ascending.
    pub fn holders(&self) -> &[PartyId] {
        &self.holders
    }
    /// Decryption threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// The context.
    pub fn context(&self) -> &HeContext {
        &self.ctx
    }
    /// Fresh-ciphertext noise bound (log2) under this key.
    pub fn fresh_noise_log2(&self) -> f64 {
        self.ctx.params.fresh_noise_log2(self.holders.len())
    }
}

/// A holder's Shamir share `S(j)` of the collective secret, plus the count of
/// decryption / key-switching shares it has produced (persist it with the key).
pub struct ThresholdKeyShare {
    pub(crate) ctx: HeContext,
    pub(crate) me: PartyId,
    pub(crate) holders: Vec<PartyId>,
    pub(crate) threshold: usize,
    pub(crate) share: Zeroizing<Poly>,
    pub(crate) used: u64,
}

impl fmt::Debug for ThresholdKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThresholdKeyShare")
            .field("me", &self.me)
            .field("threshold", &self.threshold)
            .field("used", &self.used)
            .field("share", &"<redacted>")
            .finish()
    }
}

impl ThresholdKeyShare {
    /// Sum the deals addressed to `me` from every holder (one each).
    pub fn combine(
        ctx: &HeContext,
        me: PartyId,
        holders: &[PartyId],
        threshold: usize,
        deals: Vec<KeyShareDeal>,
    ) -> Result<ThresholdKeyShare, HeError> {
        check_holders(ctx, holders, threshold)?;
        if !holders.contains(&me) {
            return Err(HeError::invalid("me", "not a key holder"));
        }
        let mut seen = Vec::with_capacity(deals.len());
        let mut share = Zeroizing::new(Poly::zero(&ctx.ring.ctx, fhe_math::rq::Representation::Ntt));
        for d in &deals {
            ctx.params.check_fingerprint(&d.fingerprint, "key-share deal", Some(d.from))?;
            if d.to != me {
                return Err(HeError::UnexpectedParty { party: d.from, reason: "deal addressed to another holder" });
            }
            if !holders.contains(&d.from) || seen.contains(&d.from) {
                return Err(HeError::UnexpectedParty { party: d.from, reason: "unexpected or repeated deal" });
            }
            seen.push(d.from);
            *share += d.share.as_ref();
        }
        let missing: Vec<PartyId> = holders.iter().filter(|p| !seen.contains(p)).copied().collect();
        if !missing.is_empty() {
            return Err(HeError::MissingShares { missing });
        }
        let mut holders = holders.to_vec();
        holders.sort();
        Ok(ThresholdKeyShare { ctx: ctx.clone(), me, holders, threshold, share, used: 0 })
    }

    /// This holder.
    pub fn party(&self) -> PartyId {
        self.me
    }
    /// Shares produced so far (decryptions and key switches).
    pub fn used(&self) -> u64 {
        self.used
    }
    /// Threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// Holders.
    pub fn holders(&self) -> &[PartyId] {
        &self.holders
    }

    /// Serialise for the site's key store (secret: keep encrypted at rest).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::with_capacity(64 + super::ring::poly_len(&self.ctx.ring));
        w.raw(KEY_MAGIC).raw(self.ctx.params.fingerprint()).u32(self.me.0).u32(self.threshold as u32);
        w.u32(self.holders.len() as u32);
        for h in &self.holders {
            w.u32(h.0);
        }
        w.u64(self.used);
        write_poly(&mut w, &self.ctx.ring, &self.share);
        Zeroizing::new(w.into_bytes())
    }

    /// Strictly decode [`ThresholdKeyShare::to_bytes`].
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8]) -> Result<ThresholdKeyShare, HeError> {
        let mut r = Reader::new(bytes, None);
        let what = "threshold key share";
        if r.take("magic", 8)? != KEY_MAGIC {
            return Err(HeError::Malformed { what, party: None, reason: "bad magic" });
        }
        let fp: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fp, what, None)?;
        let me = PartyId(r.u32("me")?);
        let threshold = r.u32("threshold")? as usize;
        let n = r.count_u32("holders", ctx.params.set().max_parties)?;
        let holders = (0..n).map(|_| r.u32("holder").map(PartyId)).collect::<Result<Vec<_>, _>>()?;
        check_holders(ctx, &holders, threshold)?;
        if !holders.contains(&me) {
            return Err(HeError::Malformed { what, party: None, reason: "owner is not a holder" });
        }
        let used = r.u64("used")?;
        let share = Zeroizing::new(read_poly(&mut r, &ctx.ring, what, None)?);
        r.finish(what)?;
        Ok(ThresholdKeyShare { ctx: ctx.clone(), me, holders, threshold, share, used })
    }
}

const KEY_MAGIC: &[u8; 8] = b"SEHHEK01";
