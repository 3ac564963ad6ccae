//! Collective relinearisation key: the two-round "RelinKeyGen" protocol of
//! Mouchet, Troncoso-Pastoriza, Bossuat, Hubaux, "Multiparty Homomorphic
//! Encryption from Ring-Learning-with-Errors" (PETS 2021, ePrint 2020/304,
//! Protocol 2), written here on `fhe-math` polynomials because `fhe` 0.1.1's
//! `mbfv::RelinKeyGenerator` shares cannot be serialised (sites run in
//! separate processes), then handed to `fhe` as an ordinary
//! [`fhe::bfv::RelinearizationKey`] through its public protobuf decoder.
//!
//! # Who runs it
//!
//! Any set `T` of at least `t` key holders (the *participants*), on their
//! Lagrange-weighted Shamir shares `s'_j = λ_j^T·S(j)`, exactly as threshold
//! decryption does (Mouchet, Bertrand, Hubaux, ePrint 2022/780, run every
//! `N`-party protocol among `T` on these additive shares). Every step of the
//! protocol is linear in the parties' secrets, and every noise term multiplies
//! only *aggregated* secrets (`s = Σ s'_j`, `u = Σ u_j`), so the uniform
//! (non-small) shares `s'_j` do not enlarge the key noise. Reasons for `T`
//! rather than all `n`: the [`ThresholdKeyShare`] is the only secret a site
//! persists (the ternary `s_i` is dropped after setup), only `t` sites need to
//! be online, and a key can be made later, when a product is first needed.
//!
//! # Protocol (gadget: the RNS basis `g_i ≡ δ_ik (mod q_k)`, `i < ℓ`, as in
//! `fhe`'s key switching)
//!
//! | step | who | message |
//! |---|---|---|
//! | 0 | everyone | [`RelinSession::new`]: CRP `a_i` from a joint seed; transcript digest binding parameters, collective public key, holders, threshold, `T`, seed |
//! | 1 | `j ∈ T` | [`RelinRound1Share`]: `h0_{j,i} = −u_j·a_i + g_i·s'_j + e0`, `h1_{j,i} = s'_j·a_i + e1` (`u_j` fresh ternary) |
//! | 1→2 | each `j ∈ T` (or the coordinator) | [`RelinRound1Aggregate`]: `h0_i = Σ_j h0_{j,i}`, `h1_i = Σ_j h1_{j,i}` |
//! | 2 | `j ∈ T` | [`RelinRound2Share`]: `h'_{j,i} = s'_j·h0_i + (u_j − s'_j)·h1_i + e2 + e3` |
//! | end | coordinator | [`CollectiveRelinKey`]: `b_i = Σ_j h'_{j,i}`, `a'_i = h1_i` |
//!
//! Then `b_i + a'_i·s = g_i·s² + s·e0_i + u·e1_i + e2_i + e3_i`: a key-switching
//! key from `s²` to `s` (the paper sends the two summands of round 2
//! separately; only their sum is ever used, so a party sends the sum).
//! Noise: [`HeParams::relin_key_noise_log2`](super::HeParams::relin_key_noise_log2).
//!
//! # Security (honest-but-curious, unreviewed)
//!
//! Every message is an RLWE sample in a party's secret (`u_j`, `s'_j` or
//! `u_j − s'_j`) under public uniform-looking polynomials, as in the paper.
//! That argument needs the round-1 aggregate to be the honest sum: a
//! participant should compute it itself from the other participants' signed
//! round-1 shares ([`RelinSession::aggregate_round1`]) rather than accept one
//! from the coordinator, because a crafted `h0` (e.g. the constant 1) would
//! make the round-2 share reveal `s'_j` up to small noise. Each generator
//! produces one round-1 and one round-2 share only. Shares made with a wrong
//! secret are not detectable (no zero-knowledge proofs): the key then fails to
//! relinearise (products decrypt to garbage), it is not silently weaker.

use super::cipher::hex6;
use super::decrypt::check_decryptors;
use super::error::HeError;
use super::keygen::{CollectivePublicKey, HeContext, ThresholdKeyShare};
use super::ring::{poly_len, read_poly, rng09, rng_from_seed, write_poly};
use crate::wire::{PartyId, Reader, Writer};
use fhe::bfv::{Multiplicator, RelinearizationKey};
use fhe_math::rq::{Poly, Representation};
use fhe_traits::{DeserializeParametrized as _, Serialize as _};
use prost::Message as _;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A share seen by [`RelinSession::collect`]: party, fingerprint, transcript, polynomials.
type ShareView<'a> = (PartyId, &'a [u8; 32], &'a [u8; 32], [&'a Vec<Poly>; 2]);

const R1_MAGIC: &[u8; 8] = b"SEHHRG1S";
const A1_MAGIC: &[u8; 8] = b"SEHHRG1A";
const R2_MAGIC: &[u8; 8] = b"SEHHRG2S";
const RLK_MAGIC: &[u8; 8] = b"SEHHRLK1";

/// The public parameters of one run of the relinearisation-key protocol:
/// participants, common random polynomials and the transcript digest every
/// message carries. Both the participants and the coordinator build it.
#[derive(Clone, Debug)]
pub struct RelinSession {
    ctx: HeContext,
    transcript: [u8; 32],
    holders: Vec<PartyId>,
    threshold: usize,
    participants: Vec<PartyId>,
    crp: Arc<Vec<Poly>>,
}

fn key_digest(ctx: &HeContext, pk: &CollectivePublicKey) -> [u8; 32] {
    let mut w = Writer::with_capacity(2 * poly_len(&ctx.ring));
    write_poly(&mut w, &ctx.ring, &pk.p0);
    write_poly(&mut w, &ctx.ring, &pk.p1);
    *blake3::hash(&w.into_bytes()).as_bytes()
}

impl RelinSession {
    /// Set up a run among `participants` (at least `t` distinct holders of
    /// `pk`) with common random polynomials from `seed`, a 32-byte seed the
    /// participants derived jointly (e.g. with [`super::keygen::seed_commit`] /
    /// [`super::keygen::joint_seed`] under a fresh session id; reuse of a seed
    /// across runs is harmless for correctness but gives the same CRP).
    ///
    /// Errors: fewer than `t` participants, a repeated or foreign participant,
    /// or a parameter set with a single RNS prime.
    pub fn new(pk: &CollectivePublicKey, participants: &[PartyId], seed: &[u8; 32]) -> Result<RelinSession, HeError> {
        let ctx = pk.ctx.clone();
        if ctx.ring.moduli.len() < 2 {
            return Err(HeError::invalid("moduli_sizes", "relinearisation needs at least two RNS primes"));
        }
        check_decryptors(&pk.holders, pk.threshold, participants)?;
        let mut participants = participants.to_vec();
        participants.sort();
        let mut h = blake3::Hasher::new_derive_key("secur-e-health he rkg transcript v1");
        h.update(ctx.params.fingerprint());
        h.update(&key_digest(&ctx, pk));
        h.update(&(pk.threshold as u64).to_be_bytes());
        for list in [&pk.holders, &participants] {
            h.update(&(list.len() as u64).to_be_bytes());
            for p in list.iter() {
                h.update(&p.0.to_be_bytes());
            }
        }
        h.update(seed);
        let transcript = *h.finalize().as_bytes();
        let mut r = rng_from_seed(seed, "secur-e-health he rkg crp v1");
        let crp = (0..ctx.ring.moduli.len()).map(|_| ctx.ring.uniform_ntt(&mut r)).collect();
        Ok(RelinSession {
            ctx,
            transcript,
            holders: pk.holders.clone(),
            threshold: pk.threshold,
            participants,
            crp: Arc::new(crp),
        })
    }

    /// The participants `T`, ascending.
    pub fn participants(&self) -> &[PartyId] {
        &self.participants
    }
    /// The transcript digest every message of this run carries.
    pub fn transcript(&self) -> &[u8; 32] {
        &self.transcript
    }
    /// The context.
    pub fn context(&self) -> &HeContext {
        &self.ctx
    }
    fn limbs(&self) -> usize {
        self.crp.len()
    }

    fn check_header(
        &self,
        fp: &[u8; 32],
        tr: &[u8; 32],
        what: &'static str,
        party: Option<PartyId>,
    ) -> Result<(), HeError> {
        self.ctx.params.check_fingerprint(fp, what, party)?;
        if tr != &self.transcript {
            return Err(HeError::ParameterMismatch {
                what: "relinearisation-key transcript (key, participants or seed)",
                party,
                expected: hex6(&self.transcript),
                got: hex6(tr),
            });
        }
        Ok(())
    }

    /// A participant's generator, from its threshold key share. Errors if the
    /// key share belongs to other parameters, holders or threshold, or its
    /// owner is not a participant.
    pub fn generator<R: RngCore + CryptoRng>(
        &self,
        key: &ThresholdKeyShare,
        rng: &mut R,
    ) -> Result<RelinKeyGenerator, HeError> {
        self.ctx.params.check_fingerprint(key.ctx.params.fingerprint(), "threshold key share", Some(key.me))?;
        if key.holders != self.holders || key.threshold != self.threshold {
            return Err(HeError::invalid("key", "key share of another federation (holders or threshold differ)"));
        }
        if !self.participants.contains(&key.me) {
            return Err(HeError::invalid("participants", "this holder is not a participant"));
        }
        let ring = &self.ctx.ring;
        let mut s = Zeroizing::new(ring.constant_ntt(&ring.lagrange_at_zero(&self.participants, key.me)?)?);
        *s *= key.share.as_ref();
        let mut r = rng09(rng);
        let u = Zeroizing::new(ring.small_ntt(&ring.ternary(&mut r))?);
        Ok(RelinKeyGenerator { session: self.clone(), me: key.me, s, u, sent_round1: false })
    }

    /// Sum the round-1 shares of exactly the participants (one each). Errors
    /// name the party whose share is foreign, repeated, of another run or
    /// parameter set, or misshapen; [`HeError::MissingShares`] lists absentees.
    pub fn aggregate_round1(&self, shares: &[RelinRound1Share]) -> Result<RelinRound1Aggregate, HeError> {
        let what = "relinearisation round-1 share";
        let by = self.collect(shares.iter().map(|s| (s.party, &s.fingerprint, &s.transcript, [&s.h0, &s.h1])), what)?;
        let zero = Poly::zero(&self.ctx.ring.ctx, Representation::Ntt);
        let (mut h0, mut h1) = (vec![zero.clone(); self.limbs()], vec![zero; self.limbs()]);
        for [s0, s1] in by {
            for i in 0..self.limbs() {
                h0[i] += &s0[i];
                h1[i] += &s1[i];
            }
        }
        Ok(RelinRound1Aggregate::new(self, h0, h1))
    }

    /// Combine the round-2 shares of exactly the participants, made on `round1`,
    /// into the collective relinearisation key. Errors as
    /// [`RelinSession::aggregate_round1`], plus a share made on another
    /// round-1 aggregate (named).
    pub fn aggregate_round2(
        &self,
        round1: &RelinRound1Aggregate,
        shares: &[RelinRound2Share],
    ) -> Result<CollectiveRelinKey, HeError> {
        let what = "relinearisation round-2 share";
        self.check_header(&round1.fingerprint, &round1.transcript, "relinearisation round-1 aggregate", None)?;
        if let Some(s) = shares.iter().find(|s| s.round1 != round1.digest) {
            return Err(HeError::ParameterMismatch {
                what: "relinearisation round-1 aggregate answered",
                party: Some(s.party),
                expected: hex6(&round1.digest),
                got: hex6(&s.round1),
            });
        }
        let by = self.collect(shares.iter().map(|s| (s.party, &s.fingerprint, &s.transcript, [&s.h, &s.h])), what)?;
        let mut b = vec![Poly::zero(&self.ctx.ring.ctx, Representation::Ntt); self.limbs()];
        for [h, _] in by {
            for (bi, hi) in b.iter_mut().zip(h.iter()) {
                *bi += hi;
            }
        }
        CollectiveRelinKey::build(
            &self.ctx,
            self.transcript,
            self.holders.len(),
            self.participants.len(),
            b,
            round1.h1.clone(),
        )
    }

    /// Check and order shares: one per participant, right run, right shape.
    fn collect<'a>(
        &self,
        shares: impl Iterator<Item = ShareView<'a>>,
        what: &'static str,
    ) -> Result<Vec<[&'a Vec<Poly>; 2]>, HeError> {
        let mut by: BTreeMap<PartyId, [&'a Vec<Poly>; 2]> = BTreeMap::new();
        for (party, fp, tr, polys) in shares {
            self.check_header(fp, tr, what, Some(party))?;
            if !self.participants.contains(&party) {
                return Err(HeError::UnexpectedParty {
                    party,
                    reason: "not a participant of this relinearisation-key run",
                });
            }
            if polys.iter().any(|v| v.len() != self.limbs()) {
                return Err(HeError::Malformed { what, party: Some(party), reason: "wrong number of polynomials" });
            }
            if by.insert(party, polys).is_some() {
                return Err(HeError::UnexpectedParty { party, reason: "sent two shares for one round" });
            }
        }
        let missing: Vec<PartyId> = self.participants.iter().filter(|p| !by.contains_key(p)).copied().collect();
        if !missing.is_empty() {
            return Err(HeError::MissingShares { missing });
        }
        Ok(by.into_values().collect())
    }
}

/// A participant's secret state between the two rounds: its additive share
/// `s'_j` and its ephemeral `u_j`. Produces one share per round.
pub struct RelinKeyGenerator {
    session: RelinSession,
    me: PartyId,
    s: Zeroizing<Poly>,
    u: Zeroizing<Poly>,
    sent_round1: bool,
}

impl fmt::Debug for RelinKeyGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelinKeyGenerator").field("me", &self.me).field("secrets", &"<redacted>").finish()
    }
}

impl RelinKeyGenerator {
    /// This participant.
    pub fn party(&self) -> PartyId {
        self.me
    }

    /// Round 1: `h0_i = −u_j·a_i + g_i·s'_j + e0`, `h1_i = s'_j·a_i + e1`.
    /// Errors if called twice.
    pub fn round_1<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<RelinRound1Share, HeError> {
        if self.sent_round1 {
            return Err(HeError::invalid("round", "round-1 share already produced by this generator"));
        }
        let ring = &self.session.ctx.ring;
        let var = self.session.ctx.params.set().variance;
        let mut r = rng09(rng);
        let (mut h0, mut h1) = (Vec::with_capacity(self.session.limbs()), Vec::with_capacity(self.session.limbs()));
        for (i, a) in self.session.crp.iter().enumerate() {
            let mut gs = Zeroizing::new(ring.gadget_ntt(i)?);
            *gs *= self.s.as_ref();
            let mut x = -(a * self.u.as_ref());
            x += gs.as_ref();
            x += &ring.error_ntt(var, &mut r)?;
            h0.push(x);
            let mut y = a * self.s.as_ref();
            y += &ring.error_ntt(var, &mut r)?;
            h1.push(y);
        }
        self.sent_round1 = true;
        Ok(RelinRound1Share {
            party: self.me,
            fingerprint: *self.session.ctx.params.fingerprint(),
            transcript: self.session.transcript,
            h0,
            h1,
        })
    }

    /// Round 2 on the round-1 aggregate (compute it yourself from the signed
    /// round-1 shares; see the module doc): `h'_i = s'_j·h0_i + (u_j − s'_j)·h1_i + e2 + e3`.
    /// Consumes the generator. Errors if round 1 was not produced or the
    /// aggregate belongs to another run or parameter set.
    pub fn round_2<R: RngCore + CryptoRng>(
        self,
        round1: &RelinRound1Aggregate,
        rng: &mut R,
    ) -> Result<RelinRound2Share, HeError> {
        if !self.sent_round1 {
            return Err(HeError::invalid("round", "round 2 before round 1"));
        }
        let ses = &self.session;
        ses.check_header(&round1.fingerprint, &round1.transcript, "relinearisation round-1 aggregate", None)?;
        if round1.h0.len() != ses.limbs() || round1.h1.len() != ses.limbs() {
            return Err(HeError::Malformed {
                what: "relinearisation round-1 aggregate",
                party: None,
                reason: "wrong number of polynomials",
            });
        }
        let ring = &ses.ctx.ring;
        let var = ses.ctx.params.set().variance;
        let mut r = rng09(rng);
        let mut us = Zeroizing::new(self.u.as_ref().clone());
        *us -= self.s.as_ref();
        let mut h = Vec::with_capacity(ses.limbs());
        for (h0, h1) in round1.h0.iter().zip(&round1.h1) {
            let mut x = h0 * self.s.as_ref();
            x += &(h1 * us.as_ref());
            x += &ring.error_ntt(var, &mut r)?;
            x += &ring.error_ntt(var, &mut r)?;
            h.push(x);
        }
        Ok(RelinRound2Share {
            party: self.me,
            fingerprint: *ses.ctx.params.fingerprint(),
            transcript: ses.transcript,
            round1: round1.digest,
            h,
        })
    }
}

/// Round-1 share of one participant (public; send it signed to every participant).
#[derive(Clone, Debug, PartialEq)]
pub struct RelinRound1Share {
    /// The participant that produced it.
    pub party: PartyId,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) transcript: [u8; 32],
    pub(crate) h0: Vec<Poly>,
    pub(crate) h1: Vec<Poly>,
}

/// The sum of all round-1 shares (public).
#[derive(Clone, Debug, PartialEq)]
pub struct RelinRound1Aggregate {
    pub(crate) fingerprint: [u8; 32],
    pub(crate) transcript: [u8; 32],
    pub(crate) h0: Vec<Poly>,
    pub(crate) h1: Vec<Poly>,
    /// BLAKE3 of the canonical encoding; round-2 shares name it.
    pub(crate) digest: [u8; 32],
}

/// Round-2 share of one participant (public; send it to the coordinator).
#[derive(Clone, Debug, PartialEq)]
pub struct RelinRound2Share {
    /// The participant that produced it.
    pub party: PartyId,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) transcript: [u8; 32],
    pub(crate) round1: [u8; 32],
    pub(crate) h: Vec<Poly>,
}

fn header(w: &mut Writer, magic: &[u8; 8], fp: &[u8; 32], tr: &[u8; 32]) {
    w.raw(magic).raw(fp).raw(tr);
}

/// Read magic, fingerprint and transcript, checking all three against `session`.
fn read_header(
    r: &mut Reader<'_>,
    session: &RelinSession,
    magic: &[u8; 8],
    what: &'static str,
    party: Option<PartyId>,
) -> Result<([u8; 32], [u8; 32]), HeError> {
    if r.take("magic", 8)? != magic {
        return Err(HeError::Malformed { what, party, reason: "bad magic" });
    }
    let fp: [u8; 32] = r.array("fingerprint")?;
    let tr: [u8; 32] = r.array("transcript")?;
    session.check_header(&fp, &tr, what, party)?;
    Ok((fp, tr))
}

fn read_polys(
    r: &mut Reader<'_>,
    session: &RelinSession,
    count: usize,
    what: &'static str,
    party: Option<PartyId>,
) -> Result<Vec<Poly>, HeError> {
    let ring = &session.ctx.ring;
    if r.remaining() < count * poly_len(ring) {
        return Err(HeError::Malformed { what, party, reason: "truncated" });
    }
    (0..count).map(|_| read_poly(r, ring, what, party)).collect()
}

fn read_limbs(
    r: &mut Reader<'_>,
    session: &RelinSession,
    what: &'static str,
    party: Option<PartyId>,
) -> Result<(), HeError> {
    if r.u32("limbs")? as usize != session.limbs() {
        return Err(HeError::Malformed { what, party, reason: "wrong number of polynomials" });
    }
    Ok(())
}

impl RelinRound1Share {
    /// Serialise: magic, fingerprint, transcript, party, `ℓ`, then `h0_i, h1_i` per `i`.
    pub fn to_bytes(&self, session: &RelinSession) -> Vec<u8> {
        let ring = &session.ctx.ring;
        let mut w = Writer::with_capacity(80 + 2 * self.h0.len() * poly_len(ring));
        header(&mut w, R1_MAGIC, &self.fingerprint, &self.transcript);
        w.u32(self.party.0).u32(self.h0.len() as u32);
        for (a, b) in self.h0.iter().zip(&self.h1) {
            write_poly(&mut w, ring, a);
            write_poly(&mut w, ring, b);
        }
        w.into_bytes()
    }

    /// Strictly decode a share received from the authenticated `sender`, which
    /// must be the party named inside; other parameters or another run
    /// ([`HeError::ParameterMismatch`]) and malformed bytes are errors naming it.
    pub fn from_bytes(session: &RelinSession, bytes: &[u8], sender: PartyId) -> Result<RelinRound1Share, HeError> {
        let what = "relinearisation round-1 share";
        let party = Some(sender);
        let mut r = Reader::new(bytes, party);
        let (fingerprint, transcript) = read_header(&mut r, session, R1_MAGIC, what, party)?;
        if r.u32("party")? != sender.0 {
            return Err(HeError::Malformed { what, party, reason: "share names another party" });
        }
        read_limbs(&mut r, session, what, party)?;
        let polys = read_polys(&mut r, session, 2 * session.limbs(), what, party)?;
        r.finish(what)?;
        let (h0, h1) = polys.chunks(2).map(|c| (c[0].clone(), c[1].clone())).unzip();
        Ok(RelinRound1Share { party: sender, fingerprint, transcript, h0, h1 })
    }
}

impl RelinRound1Aggregate {
    fn new(session: &RelinSession, h0: Vec<Poly>, h1: Vec<Poly>) -> RelinRound1Aggregate {
        let mut a = RelinRound1Aggregate {
            fingerprint: *session.ctx.params.fingerprint(),
            transcript: session.transcript,
            h0,
            h1,
            digest: [0; 32],
        };
        a.digest = aggregate_digest(&a.to_bytes(session));
        a
    }

    /// Serialise: magic, fingerprint, transcript, `ℓ`, then `h0_i, h1_i` per `i`.
    pub fn to_bytes(&self, session: &RelinSession) -> Vec<u8> {
        let ring = &session.ctx.ring;
        let mut w = Writer::with_capacity(80 + 2 * self.h0.len() * poly_len(ring));
        header(&mut w, A1_MAGIC, &self.fingerprint, &self.transcript);
        w.u32(self.h0.len() as u32);
        for (a, b) in self.h0.iter().zip(&self.h1) {
            write_poly(&mut w, ring, a);
            write_poly(&mut w, ring, b);
        }
        w.into_bytes()
    }

    /// Strictly decode (`party`: the sender, for errors).
    pub fn from_bytes(
        session: &RelinSession,
        bytes: &[u8],
        party: Option<PartyId>,
    ) -> Result<RelinRound1Aggregate, HeError> {
        let what = "relinearisation round-1 aggregate";
        let mut r = Reader::new(bytes, party);
        let (fingerprint, transcript) = read_header(&mut r, session, A1_MAGIC, what, party)?;
        read_limbs(&mut r, session, what, party)?;
        let polys = read_polys(&mut r, session, 2 * session.limbs(), what, party)?;
        r.finish(what)?;
        let (h0, h1) = polys.chunks(2).map(|c| (c[0].clone(), c[1].clone())).unzip();
        Ok(RelinRound1Aggregate { fingerprint, transcript, h0, h1, digest: aggregate_digest(bytes) })
    }

    /// The digest round-2 shares name.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }
}

fn aggregate_digest(bytes: &[u8]) -> [u8; 32] {
    blake3::derive_key("secur-e-health he rkg round-1 aggregate v1", bytes)
}

impl RelinRound2Share {
    /// Serialise: magic, fingerprint, transcript, party, round-1 digest, `ℓ`, `h'_i`.
    pub fn to_bytes(&self, session: &RelinSession) -> Vec<u8> {
        let ring = &session.ctx.ring;
        let mut w = Writer::with_capacity(112 + self.h.len() * poly_len(ring));
        header(&mut w, R2_MAGIC, &self.fingerprint, &self.transcript);
        w.u32(self.party.0).raw(&self.round1).u32(self.h.len() as u32);
        for h in &self.h {
            write_poly(&mut w, ring, h);
        }
        w.into_bytes()
    }

    /// Strictly decode a share from the authenticated `sender` (as
    /// [`RelinRound1Share::from_bytes`]).
    pub fn from_bytes(session: &RelinSession, bytes: &[u8], sender: PartyId) -> Result<RelinRound2Share, HeError> {
        let what = "relinearisation round-2 share";
        let party = Some(sender);
        let mut r = Reader::new(bytes, party);
        let (fingerprint, transcript) = read_header(&mut r, session, R2_MAGIC, what, party)?;
        if r.u32("party")? != sender.0 {
            return Err(HeError::Malformed { what, party, reason: "share names another party" });
        }
        let round1: [u8; 32] = r.array("round-1 digest")?;
        read_limbs(&mut r, session, what, party)?;
        let h = read_polys(&mut r, session, session.limbs(), what, party)?;
        r.finish(what)?;
        Ok(RelinRound2Share { party: sender, fingerprint, transcript, round1, h })
    }
}

/// The collective relinearisation key `(b_i, a'_i)_{i<ℓ}` with `b_i + a'_i·s ≈
/// g_i·s²`, as an `fhe` [`RelinearizationKey`] and a ready [`Multiplicator`].
#[derive(Clone)]
pub struct CollectiveRelinKey {
    pub(crate) ctx: HeContext,
    pub(crate) transcript: [u8; 32],
    pub(crate) holders: usize,
    pub(crate) participants: usize,
    pub(crate) b: Vec<Poly>,
    pub(crate) a: Vec<Poly>,
    key: RelinearizationKey,
    pub(crate) mul: Multiplicator,
}

impl fmt::Debug for CollectiveRelinKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CollectiveRelinKey")
            .field("transcript", &hex6(&self.transcript))
            .field("holders", &self.holders)
            .field("participants", &self.participants)
            .finish_non_exhaustive()
    }
}

impl PartialEq for CollectiveRelinKey {
    fn eq(&self, other: &Self) -> bool {
        self.ctx.params == other.ctx.params
            && self.transcript == other.transcript
            && (self.holders, self.participants) == (other.holders, other.participants)
            && self.b == other.b
            && self.a == other.a
    }
}

impl CollectiveRelinKey {
    fn build(
        ctx: &HeContext,
        transcript: [u8; 32],
        holders: usize,
        participants: usize,
        b: Vec<Poly>,
        a: Vec<Poly>,
    ) -> Result<CollectiveRelinKey, HeError> {
        // fhe's key-switching key: c0_i = b_i, c1_i = a'_i (NttShoup form), one
        // per RNS prime, no decomposition base, level 0; built through fhe's
        // public protobuf decoder (its fields are crate-private).
        let shoup = |p: &Poly| {
            let mut p = p.clone();
            p.change_representation(Representation::NttShoup);
            p.to_bytes()
        };
        let ksk = fhe::proto::bfv::KeySwitchingKey {
            c0: b.iter().map(shoup).collect(),
            c1: a.iter().map(shoup).collect(),
            seed: Vec::new(),
            ciphertext_level: 0,
            ksk_level: 0,
            log_base: 0,
        };
        let proto = fhe::proto::bfv::RelinearizationKey { ksk: Some(ksk) };
        let key = RelinearizationKey::from_bytes(&proto.encode_to_vec(), ctx.params.bfv())
            .map_err(|e| HeError::lib("relinearisation key", e))?;
        let mul = Multiplicator::default(&key).map_err(|e| HeError::lib("multiplicator", e))?;
        Ok(CollectiveRelinKey { ctx: ctx.clone(), transcript, holders, participants, b, a, key, mul })
    }

    /// The key as `fhe` uses it (e.g. with [`fhe::bfv::Multiplicator`]).
    pub fn fhe_key(&self) -> &RelinearizationKey {
        &self.key
    }
    /// Number of key holders `n` (bounds the collective secret: `|s|∞ ≤ n`).
    pub fn holders(&self) -> usize {
        self.holders
    }
    /// Number of participants that made the key.
    pub fn participants(&self) -> usize {
        self.participants
    }
    /// Transcript digest of the run that made it.
    pub fn transcript(&self) -> &[u8; 32] {
        &self.transcript
    }
    /// Worst-case noise (log2) one relinearisation with this key adds.
    pub fn noise_log2(&self) -> f64 {
        self.ctx.params.relin_noise_log2(self.holders, self.participants)
    }

    /// Serialise: magic, fingerprint, transcript, holders, participants, `ℓ`,
    /// then `b_i, a'_i` per `i`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = &self.ctx.ring;
        let mut w = Writer::with_capacity(96 + 2 * self.b.len() * poly_len(ring));
        header(&mut w, RLK_MAGIC, self.ctx.params.fingerprint(), &self.transcript);
        w.u32(self.holders as u32).u32(self.participants as u32).u32(self.b.len() as u32);
        for (b, a) in self.b.iter().zip(&self.a) {
            write_poly(&mut w, ring, b);
            write_poly(&mut w, ring, a);
        }
        w.into_bytes()
    }

    /// Strictly decode [`CollectiveRelinKey::to_bytes`] (`party`: the sender, for errors).
    pub fn from_bytes(ctx: &HeContext, bytes: &[u8], party: Option<PartyId>) -> Result<CollectiveRelinKey, HeError> {
        let what = "relinearisation key";
        let mut r = Reader::new(bytes, party);
        if r.take("magic", 8)? != RLK_MAGIC {
            return Err(HeError::Malformed { what, party, reason: "bad magic" });
        }
        let fp: [u8; 32] = r.array("fingerprint")?;
        ctx.params.check_fingerprint(&fp, what, party)?;
        let transcript: [u8; 32] = r.array("transcript")?;
        let holders = r.u32("holders")? as usize;
        let participants = r.u32("participants")? as usize;
        if !(2..=ctx.params.set().max_parties).contains(&holders) || !(1..=holders).contains(&participants) {
            return Err(HeError::Malformed { what, party, reason: "holder or participant count out of range" });
        }
        let l = ctx.ring.moduli.len();
        if r.u32("limbs")? as usize != l {
            return Err(HeError::Malformed { what, party, reason: "wrong number of polynomials" });
        }
        if r.remaining() != 2 * l * poly_len(&ctx.ring) {
            return Err(HeError::Malformed { what, party, reason: "wrong payload size" });
        }
        let (mut b, mut a) = (Vec::with_capacity(l), Vec::with_capacity(l));
        for _ in 0..l {
            b.push(read_poly(&mut r, &ctx.ring, what, party)?);
            a.push(read_poly(&mut r, &ctx.ring, what, party)?);
        }
        r.finish(what)?;
        CollectiveRelinKey::build(ctx, transcript, holders, participants, b, a)
    }
}
