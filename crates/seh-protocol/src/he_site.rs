//! The site's side of `aggregation = "he"`: the per-study collective-key set-up (commit-reveal
//! seed, public-key share, `t`-of-`n` Shamir re-sharing of the secret with end-to-end encrypted
//! deals), then per aggregation round: encrypt the contribution under the collective key, and
//! answer the coordinator's request for a flooded decryption share of the sum.
//!
//! One key per study (DESIGN §3): the holders are exactly the sites that accepted the study and
//! its threshold is the study's `t`; a key share never serves another study, so a compromise or
//! an exhausted decryption budget stays within one study. Every change to a study's key state
//! (set-up done, contribution, decryption share, release from the encrypted store) yields a
//! [`HeKeyRecord`] the node persists, encrypted at rest, before the next message leaves; a
//! restarted node restores its shares and their decryption-budget counters from them
//! ([`SiteHe::restore`]).

use std::collections::BTreeMap;

use rand::rngs::OsRng;
use seh_crypto::he::keygen::{common_random_poly, joint_seed, seed_commit};
use seh_crypto::he::{
    CollectivePublicKey, DecryptionShare, HeContext, HeParams, KeyShareDeal, PartySecret, PublicKeyShare,
    SeedCommitment, SeedReveal, SeedSecret, ShareRequest, ThresholdKeyShare, BFV_8192,
};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionId, SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::he_keyrec::{HeKeyRecord, ReleaseRecord, MAX_RELEASES};
use crate::he_release::HeReleaseOffer;
use crate::he_wire::{self, he_error, open_inner, sign_inner, step, Bundle};
use crate::messages;

mod cosign;
mod store;

pub use store::{HeKeySource, MAX_CACHED_KEYS};
/// Most decryption shares a site gives for one aggregation round (a retry after a decryptor
/// dropped needs a second; more would only serve a coordinator probing the key).
pub const MAX_SHARES_PER_ROUND: u32 = 2;

/// The threshold-BFV parameters of the runtime (`bfv-8192`).
pub fn context() -> Result<HeContext, ProtocolError> {
    HeContext::new(HeParams::new(BFV_8192).map_err(he_error)?).map_err(he_error)
}

enum Stage {
    Committed(SeedSecret),
    Revealed { commits: Vec<SeedCommitment>, xkeys: BTreeMap<PartyId, [u8; 32]> },
    Dealt { seed: [u8; 32], xkeys: BTreeMap<PartyId, [u8; 32]>, own: KeyShareDeal },
}

struct Setup {
    session: SessionId,
    holders: Vec<PartyId>,
    threshold: usize,
    x: StaticSecret,
    stage: Stage,
}

struct StudyKey {
    session: SessionId,
    seed: [u8; 32],
    digest: [u8; 32],
    pk_bytes: Vec<(PartyId, Vec<u8>)>,
    pk: CollectivePublicKey,
    share: ThresholdKeyShare,
    releases: Vec<ReleaseRecord>,
}

/// A release from the encrypted store this site agreed to (offer accepted, share not yet given).
struct PendingRelease {
    session: SessionId,
    round: u32,
    sites: Vec<u32>,
    shares_given: u32,
    /// Hex digest of the researcher public key a key-switched release goes to (`None`: a
    /// decryption to the coordinator). The share request must match it.
    target: Option<String>,
    /// SHA-256 (hex) of the study's signed spec and of the researcher's signed request: what the
    /// co-signed document must name.
    spec_sha256: String,
    request_sha256: String,
}

struct Contributed {
    round: u32,
    shares_given: u32,
}

/// A site's threshold-HE state across studies.
#[derive(Default)]
pub struct SiteHe {
    ctx: Option<HeContext>,
    setups: BTreeMap<String, Setup>,
    keys: BTreeMap<String, StudyKey>,
    contributed: BTreeMap<String, Contributed>,
    releases: BTreeMap<String, PendingRelease>,
    /// Persisted key records, read on demand ([`store`]); `None`: everything stays in memory.
    source: Option<(PartyId, Box<dyn HeKeySource>)>,
    /// Use counter and each key state's last use (least recently used is dropped first).
    tick: u64,
    used_at: BTreeMap<String, u64>,
}

impl std::fmt::Debug for SiteHe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteHe").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

/// What the site sends and records after a threshold-HE message.
#[derive(Debug, Default)]
pub struct Reply {
    /// Envelopes to sign and send to the coordinator.
    pub send: Vec<Envelope>,
    /// A short audit description (`"key set-up: committed"`, `"decryption share"`); never a value.
    pub what: Option<&'static str>,
    /// The study's key state changed: persist [`SiteHe::record`] before sending `send`.
    pub persist: bool,
}

fn env(session: SessionId, me: PartyId, step: u8, payload: Vec<u8>) -> Envelope {
    Envelope {
        protocol: ProtocolId::ThresholdBfv,
        step,
        sender: me,
        recipient: PartyId::COORDINATOR,
        session,
        nonce: messages::nonce(),
        payload,
    }
}

fn unexpected(reason: &str) -> ProtocolError {
    ProtocolError::Unexpected { party: PartyId::COORDINATOR, reason: reason.to_owned() }
}

impl SiteHe {
    fn ctx(&mut self) -> Result<HeContext, ProtocolError> {
        if self.ctx.is_none() {
            self.ctx = Some(context()?);
        }
        self.ctx.clone().ok_or_else(|| unexpected("no HE context"))
    }

    /// True once this site holds a key share for `study_id`.
    pub fn has_key(&self, study_id: &str) -> bool {
        self.keys.contains_key(study_id)
    }

    /// Starts the key set-up of `study_id` among `holders` (which must include `me`): draws a seed
    /// contribution and a fresh X25519 key, and returns the `COMMIT` envelope.
    pub fn start_setup(
        &mut self,
        study_id: &str,
        session: SessionId,
        me: PartyId,
        holders: &[u32],
        threshold: usize,
    ) -> Result<Reply, ProtocolError> {
        let mut holders: Vec<PartyId> = holders.iter().map(|p| PartyId(*p)).collect();
        holders.sort();
        holders.dedup();
        if !holders.contains(&me) || holders.len() < threshold || threshold < 2 {
            return Err(ProtocolError::invalid("he setup start", "holders", "must include this site and t sites"));
        }
        let (seed, commitment) = seed_commit(&session, me, &mut OsRng);
        let x = StaticSecret::random_from_rng(OsRng);
        let mut payload = commitment.digest.to_vec();
        payload.extend_from_slice(PublicKey::from(&x).as_bytes());
        self.keys.remove(study_id);
        self.setups
            .insert(study_id.to_owned(), Setup { session, holders, threshold, x, stage: Stage::Committed(seed) });
        Ok(Reply {
            send: vec![env(session, me, step::COMMIT, payload)],
            what: Some("key set-up: seed committed"),
            persist: false,
        })
    }

    /// Handles a `ThresholdBfv` envelope from the coordinator (already authenticated and
    /// round-checked by the caller).
    pub fn handle(
        &mut self,
        study_id: &str,
        e: &Envelope,
        me: PartyId,
        key: &SigningKey,
        roster: &BTreeMap<PartyId, VerifyingKey>,
    ) -> Result<Reply, ProtocolError> {
        match e.step {
            step::COMMITS | step::REVEALS | step::FORWARD => self.setup_step(study_id, e, me, key, roster),
            step::SHARE_REQUEST => self.share(study_id, e, me),
            _ => Err(unexpected("threshold-HE message of an unknown step")),
        }
    }

    fn setup_step(
        &mut self,
        study_id: &str,
        e: &Envelope,
        me: PartyId,
        key: &SigningKey,
        roster: &BTreeMap<PartyId, VerifyingKey>,
    ) -> Result<Reply, ProtocolError> {
        let ctx = self.ctx()?;
        let mut setup =
            self.setups.remove(study_id).ok_or_else(|| unexpected("key set-up message without a set-up"))?;
        if setup.session != e.session {
            return Err(unexpected("key set-up message of another round"));
        }
        let bundle = Bundle::decode(&e.payload, PartyId::COORDINATOR)?;
        let s = setup.session;
        let holders = setup.holders.clone();
        match (e.step, setup.stage) {
            (step::COMMITS, Stage::Committed(seed)) => {
                let mut commits = Vec::new();
                let mut xkeys = BTreeMap::new();
                for item in &bundle.0 {
                    let inner = open_inner(item, roster, s, step::COMMIT, &holders, PartyId::COORDINATOR)?;
                    let p: [u8; 64] = inner.payload.as_slice().try_into().map_err(|_| ProtocolError::Unexpected {
                        party: inner.sender,
                        reason: "seed commitment is not 64 bytes".into(),
                    })?;
                    let mut digest = [0u8; 32];
                    digest.copy_from_slice(&p[..32]);
                    let mut xpk = [0u8; 32];
                    xpk.copy_from_slice(&p[32..]);
                    if xkeys.insert(inner.sender, xpk).is_some() {
                        return Err(ProtocolError::Unexpected {
                            party: inner.sender,
                            reason: "two commitments".into(),
                        });
                    }
                    commits.push(SeedCommitment { party: inner.sender, digest });
                }
                if let Some(p) = holders.iter().find(|p| !xkeys.contains_key(p)) {
                    return Err(ProtocolError::Unexpected { party: *p, reason: "no seed commitment relayed".into() });
                }
                let reveal = seed.reveal();
                let payload = reveal.contribution.to_vec();
                setup.stage = Stage::Revealed { commits, xkeys };
                self.setups.insert(study_id.to_owned(), setup);
                Ok(Reply {
                    send: vec![env(s, me, step::REVEAL, payload)],
                    what: Some("key set-up: seed revealed"),
                    persist: false,
                })
            }
            (step::REVEALS, Stage::Revealed { commits, xkeys }) => {
                let mut reveals = Vec::new();
                for item in &bundle.0 {
                    let inner = open_inner(item, roster, s, step::REVEAL, &holders, PartyId::COORDINATOR)?;
                    let contribution: [u8; 32] = inner.payload.as_slice().try_into().map_err(|_| {
                        ProtocolError::Unexpected { party: inner.sender, reason: "seed reveal is not 32 bytes".into() }
                    })?;
                    reveals.push(SeedReveal { party: inner.sender, contribution });
                }
                let seed = joint_seed(&s, &holders, &commits, &reveals).map_err(he_error)?;
                let a = common_random_poly(&ctx, &seed);
                let secret = PartySecret::generate(&ctx, me, &mut OsRng).map_err(he_error)?;
                let pk_share = secret.public_key_share(&ctx, &a, &mut OsRng).map_err(he_error)?;
                let deals = secret.deal(&ctx, &holders, setup.threshold, &mut OsRng).map_err(he_error)?;
                drop(secret);
                let mut items =
                    vec![sign_inner(key, s, step::PK_SHARE, me, PartyId::BROADCAST, pk_share.to_bytes(&ctx))?];
                let mut own = None;
                for d in deals {
                    if d.to == me {
                        own = Some(d);
                        continue;
                    }
                    let theirs = xkeys.get(&d.to).ok_or_else(|| unexpected("deal for a site without a key"))?;
                    let plain = d.to_bytes(&ctx);
                    let sealed = he_wire::seal_deal(&setup.x, theirs, s, me, d.to, &plain)?;
                    items.push(sign_inner(key, s, step::DEAL, me, d.to, sealed)?);
                }
                let own = own.ok_or_else(|| unexpected("no deal for this site"))?;
                setup.stage = Stage::Dealt { seed, xkeys, own };
                self.setups.insert(study_id.to_owned(), setup);
                Ok(Reply {
                    send: vec![env(s, me, step::KEYS, Bundle(items).encode())],
                    what: Some("key set-up: public-key share and encrypted deals"),
                    persist: false,
                })
            }
            (step::FORWARD, Stage::Dealt { seed, xkeys, own }) => {
                let mut pk_bytes: BTreeMap<PartyId, Vec<u8>> = BTreeMap::new();
                let mut deals = vec![own];
                for item in &bundle.0 {
                    let inner = messages::open(item, roster)?;
                    if inner.step == step::PK_SHARE {
                        let inner = open_inner(item, roster, s, step::PK_SHARE, &holders, PartyId::BROADCAST)?;
                        if pk_bytes.insert(inner.sender, inner.payload).is_some() {
                            return Err(ProtocolError::Unexpected {
                                party: inner.sender,
                                reason: "two public-key shares".into(),
                            });
                        }
                    } else {
                        let inner = open_inner(item, roster, s, step::DEAL, &holders, me)?;
                        let theirs = xkeys.get(&inner.sender).ok_or_else(|| unexpected("deal from an unknown site"))?;
                        let plain = he_wire::open_deal(&setup.x, theirs, s, inner.sender, me, &inner.payload)?;
                        let deal = KeyShareDeal::from_bytes(&ctx, &plain, Some(inner.sender)).map_err(he_error)?;
                        if deal.from != inner.sender || deal.to != me {
                            return Err(ProtocolError::Unexpected {
                                party: inner.sender,
                                reason: "deal names another dealer or recipient".into(),
                            });
                        }
                        deals.push(deal);
                    }
                }
                let mut shares = Vec::with_capacity(pk_bytes.len());
                for (p, b) in &pk_bytes {
                    let sh = PublicKeyShare::from_bytes(&ctx, b, Some(*p)).map_err(he_error)?;
                    if sh.party != *p {
                        return Err(ProtocolError::Unexpected {
                            party: *p,
                            reason: "public-key share names another site".into(),
                        });
                    }
                    shares.push(sh);
                }
                let a = common_random_poly(&ctx, &seed);
                let pk =
                    CollectivePublicKey::aggregate(&ctx, &a, &holders, setup.threshold, &shares).map_err(he_error)?;
                let share = ThresholdKeyShare::combine(&ctx, me, &holders, setup.threshold, deals).map_err(he_error)?;
                let list: Vec<(PartyId, Vec<u8>)> = pk_bytes.into_iter().collect();
                let digest = he_wire::key_digest(s, &seed, &list);
                self.make_room(study_id);
                self.contributed.remove(study_id);
                self.keys.insert(
                    study_id.to_owned(),
                    StudyKey { session: s, seed, digest, pk_bytes: list, pk, share, releases: Vec::new() },
                );
                Ok(Reply {
                    send: vec![env(s, me, step::READY, digest.to_vec())],
                    what: Some("key set-up: key share ready"),
                    persist: true,
                })
            }
            _ => Err(unexpected("key set-up message out of order")),
        }
    }

    /// Encrypts this site's contribution `words` (the two's-complement fixed-point words every
    /// analysis produces) under the study's collective key; returns the `CONTRIBUTION` envelope.
    ///
    /// Each word is read as a two's-complement `i64` and must be at most `(t_plain − 1) / (2·holders)`
    /// in magnitude, so that the sum of every holder's words fits the plaintext modulus without
    /// wrapping (the decrypted sum, taken mod 2^64, then equals SecAgg+'s); a larger word is an
    /// error naming its index, never a silent wrap. (The analyses' words under `he` are counts and
    /// 32-bit limbs, far inside the range.)
    pub fn contribute(
        &mut self,
        study_id: &str,
        session: SessionId,
        me: PartyId,
        words: &[u64],
    ) -> Result<Envelope, ProtocolError> {
        let ctx = self.ctx()?;
        self.ensure_key_or_err(study_id)?;
        let k = self.keys.get(study_id).ok_or_else(|| unexpected("aggregation under `he` before the key set-up"))?;
        let limit = ctx.params().max_plain_magnitude() / k.pk.holders().len() as u64;
        if let Some(i) = words.iter().position(|&w| (w as i64).unsigned_abs() > limit) {
            return Err(ProtocolError::Encoding {
                column: format!("word {i}"),
                reason: "exceeds the threshold-HE plaintext range (sum could wrap)",
            });
        }
        let values: Zeroizing<Vec<i64>> = Zeroizing::new(words.iter().map(|&w| w as i64).collect());
        let ct = k.pk.encrypt_i64(&values, &mut OsRng).map_err(he_error)?;
        let payload = ct.to_bytes(&ctx).map_err(he_error)?;
        self.contributed.insert(study_id.to_owned(), Contributed { round: session.round, shares_given: 0 });
        Ok(env(session, me, step::CONTRIBUTION, payload))
    }

    fn share(&mut self, study_id: &str, e: &Envelope, me: PartyId) -> Result<Reply, ProtocolError> {
        if self.releases.get(study_id).is_some_and(|r| r.session == e.session) {
            return self.release_share(study_id, e, me);
        }
        let ctx = self.ctx()?;
        self.ensure_key_or_err(study_id)?;
        let c = self.contributed.get_mut(study_id).ok_or_else(|| unexpected("share request before a contribution"))?;
        if c.round != e.session.round {
            return Err(unexpected("share request of another round"));
        }
        if c.shares_given >= MAX_SHARES_PER_ROUND {
            return Err(unexpected("more share requests than this site answers per round"));
        }
        let k = self.keys.get_mut(study_id).ok_or_else(|| unexpected("share request without a key share"))?;
        let req = ShareRequest::from_bytes(&ctx, &e.payload, Some(PartyId::COORDINATOR)).map_err(he_error)?;
        if req.is_key_switch() || !req.decryptors().contains(&me) {
            return Err(unexpected("share request that does not name this site as a decryptor"));
        }
        let share: DecryptionShare = k.share.share(&req, &mut OsRng).map_err(he_error)?;
        c.shares_given += 1;
        Ok(Reply {
            send: vec![env(e.session, me, step::DECRYPTION_SHARE, share.to_bytes(&ctx))],
            what: Some("decryption share"),
            persist: true,
        })
    }
}

/// Why a site declines a release from the encrypted store (sent to the coordinator and audited).
pub type Refusal = String;

impl SiteHe {
    /// The durable form of `study_id`'s key state (`None` without a key share for it). The node
    /// persists it, encrypted, whenever a [`Reply::persist`] or a contribution asks.
    pub fn record(&self, study_id: &str) -> Option<HeKeyRecord> {
        let k = self.keys.get(study_id)?;
        Some(HeKeyRecord {
            study_id: study_id.to_owned(),
            session: k.session,
            threshold: k.pk.threshold() as u32,
            seed: k.seed,
            digest: k.digest,
            pk_shares: k.pk_bytes.clone(),
            key_share: k.share.to_bytes(),
            contributed: self.contributed.get(study_id).map(|c| (c.round, c.shares_given)),
            releases: k.releases.clone(),
        })
    }

    /// Restores a key state persisted by [`SiteHe::record`] for site `me`: parses the key share
    /// (with its decryption-budget counter), rebuilds the collective public key from the joint
    /// seed and the holders' public-key shares, and checks it against the recorded digest.
    ///
    /// Errors (naming the study, never a key): a record of another site or parameter set, a
    /// malformed share, or public-key shares that do not give the confirmed key.
    pub fn restore(&mut self, me: PartyId, rec: HeKeyRecord) -> Result<(), ProtocolError> {
        let ctx = self.ctx()?;
        let bad = |reason: String| ProtocolError::invalid("threshold-HE key record", rec.study_id.clone(), reason);
        if crate::hex::encode(&rec.session.study.0) != rec.study_id {
            return Err(bad("the set-up session names another study".into()));
        }
        let share = ThresholdKeyShare::from_bytes(&ctx, &rec.key_share).map_err(|e| bad(e.to_string()))?;
        if share.party() != me {
            return Err(bad(format!("the key share belongs to {}, not this site", share.party())));
        }
        let holders = share.holders().to_vec();
        let listed: Vec<PartyId> = rec.pk_shares.iter().map(|(p, _)| *p).collect();
        if listed != holders || share.threshold() != rec.threshold as usize {
            return Err(bad("holders or threshold differ from the key share's".into()));
        }
        if he_wire::key_digest(rec.session, &rec.seed, &rec.pk_shares) != rec.digest {
            return Err(bad("public-key shares do not give the confirmed collective key".into()));
        }
        let mut shares = Vec::with_capacity(rec.pk_shares.len());
        for (p, b) in &rec.pk_shares {
            shares.push(PublicKeyShare::from_bytes(&ctx, b, Some(*p)).map_err(|e| bad(e.to_string()))?);
        }
        let a = common_random_poly(&ctx, &rec.seed);
        let pk = CollectivePublicKey::aggregate(&ctx, &a, &holders, share.threshold(), &shares)
            .map_err(|e| bad(e.to_string()))?;
        if let Some((round, shares_given)) = rec.contributed {
            self.contributed.insert(rec.study_id.clone(), Contributed { round, shares_given });
        }
        self.make_room(&rec.study_id);
        self.keys.insert(
            rec.study_id,
            StudyKey {
                session: rec.session,
                seed: rec.seed,
                digest: rec.digest,
                pk_bytes: rec.pk_shares,
                pk,
                share,
                releases: rec.releases,
            },
        );
        Ok(())
    }

    /// Decides on a release of stored round `offer.round` from the coordinator's encrypted store
    /// (the caller has re-applied the policy). Accepts when this site holds the study's key the
    /// round was encrypted under, the summed sites are at least `t` holders, this site never
    /// released that round over another set of sites (two sums over different sets would reveal
    /// their difference), and the decryption budget covers it. `Ok(Err(reason))` is a refusal.
    pub fn release_offer(
        &mut self,
        study_id: &str,
        session: SessionId,
        offer: &HeReleaseOffer,
    ) -> Result<Result<(), Refusal>, ProtocolError> {
        let ctx = self.ctx()?;
        if let Err(reason) = self.ensure_key(study_id) {
            return Ok(Err(format!("this site cannot use its threshold-HE key record for the study: {reason}")));
        }
        let Some(k) = self.keys.get(study_id) else {
            return Ok(Err("this site holds no threshold-HE key share for the study".into()));
        };
        if crate::hex::encode(&k.digest) != offer.key_digest {
            return Ok(Err("this site holds another key of the study (the round was encrypted under an earlier \
                           key set-up)"
                .into()));
        }
        let mut sites = offer.sites.clone();
        sites.sort_unstable();
        sites.dedup();
        if sites.len() != offer.sites.len() || sites.len() < k.pk.threshold() {
            return Ok(Err(format!("a release must sum at least t = {} distinct sites", k.pk.threshold())));
        }
        if let Some(p) = sites.iter().find(|p| !k.pk.holders().contains(&PartyId(**p))) {
            return Ok(Err(format!("party {p} holds no key share of the study")));
        }
        if k.releases.iter().any(|r| r.round == offer.round && r.sites != sites) {
            return Ok(Err(format!("round {} was already released over another set of sites", offer.round)));
        }
        if k.releases.len() >= MAX_RELEASES && !k.releases.iter().any(|r| r.round == offer.round) {
            return Ok(Err("too many releases of this study".into()));
        }
        if let Some(d) = &offer.to_researcher_key {
            if crate::hex::decode_array::<32>(d).is_none() {
                return Err(unexpected("release offer names a malformed researcher-key digest"));
            }
        }
        let allowed = ctx.params().max_decryptions();
        let used = k.share.used();
        if used.saturating_add(u64::from(offer.ciphertexts)) > allowed || offer.ciphertexts == 0 {
            return Ok(Err(format!(
                "decryption budget exhausted: {used} of {allowed} shares already produced with this key share"
            )));
        }
        let target = offer.to_researcher_key.as_ref().map(|d| d.to_ascii_lowercase());
        self.releases.insert(
            study_id.to_owned(),
            PendingRelease {
                session,
                round: offer.round,
                sites,
                shares_given: 0,
                target,
                spec_sha256: offer.study.digest(),
                request_sha256: offer.request.digest(),
            },
        );
        Ok(Ok(()))
    }

    fn release_share(&mut self, study_id: &str, e: &Envelope, me: PartyId) -> Result<Reply, ProtocolError> {
        let ctx = self.ctx()?;
        self.ensure_key_or_err(study_id)?;
        let r = self.releases.get_mut(study_id).ok_or_else(|| unexpected("share request without a release"))?;
        if r.shares_given >= MAX_SHARES_PER_ROUND {
            return Err(unexpected("more share requests than this site answers per release"));
        }
        let k = self.keys.get_mut(study_id).ok_or_else(|| unexpected("share request without a key share"))?;
        let req = ShareRequest::from_bytes(&ctx, &e.payload, Some(PartyId::COORDINATOR)).map_err(he_error)?;
        if !req.decryptors().contains(&me) {
            return Err(unexpected("share request that does not name this site as a decryptor"));
        }
        // A key switch goes only to the researcher key the accepted offer named, and a
        // decryption only where the offer asked for one.
        let asked = req.target().map(|t| crate::hex::encode(&t.digest(&ctx)));
        match (&r.target, &asked) {
            (None, None) => {}
            (Some(want), Some(got)) if want == got => {}
            (None, Some(_)) => return Err(unexpected("key-switch request for a release offered as a decryption")),
            (Some(_), None) => return Err(unexpected("decryption request for a release offered as a key switch")),
            (Some(_), Some(_)) => return Err(unexpected("key-switch request to another researcher key than offered")),
        }
        let share: DecryptionShare = k.share.share(&req, &mut OsRng).map_err(he_error)?;
        r.shares_given += 1;
        if !k.releases.iter().any(|x| x.round == r.round) {
            k.releases.push(ReleaseRecord { round: r.round, sites: r.sites.clone() });
        }
        Ok(Reply {
            send: vec![env(e.session, me, step::DECRYPTION_SHARE, share.to_bytes(&ctx))],
            what: Some(if asked.is_some() {
                "key-switching share for a release from the encrypted store (to the researcher's key)"
            } else {
                "decryption share for a release from the encrypted store"
            }),
            persist: true,
        })
    }

    /// The decryption-budget counter of `study_id`'s key share (shares produced so far).
    pub fn used(&self, study_id: &str) -> Option<u64> {
        self.keys.get(study_id).map(|k| k.share.used())
    }
}
