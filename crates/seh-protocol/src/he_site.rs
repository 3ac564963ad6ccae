//! The site's side of `aggregation = "he"`: the per-study collective-key set-up (commit-reveal
//! seed, public-key share, `t`-of-`n` Shamir re-sharing of the secret with end-to-end encrypted
//! deals), then per aggregation round: encrypt the contribution under the collective key, and
//! answer the coordinator's request for a flooded decryption share of the sum.
//!
//! One key per study (DESIGN §3): the holders are exactly the sites that accepted the study and
//! its threshold is the study's `t`; a key share never serves another study, so a compromise or
//! an exhausted decryption budget stays within one study. Key shares live in memory (a node
//! restart drops its share; any `t` other holders still decrypt).

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
use crate::he_wire::{self, he_error, open_inner, sign_inner, step, Bundle};
use crate::messages;

/// Most studies whose key a site keeps at once (the oldest is dropped beyond).
pub const MAX_KEYS: usize = 8;
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
    pk: CollectivePublicKey,
    share: ThresholdKeyShare,
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
        Ok(Reply { send: vec![env(session, me, step::COMMIT, payload)], what: Some("key set-up: seed committed") })
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
                Ok(Reply { send: vec![env(s, me, step::REVEAL, payload)], what: Some("key set-up: seed revealed") })
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
                if !self.keys.contains_key(study_id) && self.keys.len() >= MAX_KEYS {
                    self.keys.pop_first();
                }
                self.keys.insert(study_id.to_owned(), StudyKey { pk, share });
                Ok(Reply {
                    send: vec![env(s, me, step::READY, digest.to_vec())],
                    what: Some("key set-up: key share ready"),
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
        let ctx = self.ctx()?;
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
        })
    }
}
