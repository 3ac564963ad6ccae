//! The coordinator's side of `aggregation = "he"`, as plain state machines (no I/O): the relay of
//! the per-study key set-up ([`Setup`]) and one encrypted aggregation round ([`Round`]).
//!
//! The coordinator never holds a key share or a deal in clear: it forwards site-signed envelopes
//! unchanged, checks the joint seed's commitments (so it can name a site that opened another
//! value), and checks that every holder derived the same collective key. In a round it adds the
//! sites' ciphertexts, keeps each site's ciphertext (the round's encrypted store, re-aggregable
//! over any subset without the sites), asks `t` contributors for flooded decryption shares and
//! combines them; a decryptor that drops or sends a malformed share is replaced by another
//! contributor in one more request.

use std::collections::{BTreeMap, BTreeSet};

use seh_crypto::he::keygen::joint_seed;
use seh_crypto::he::{DecryptionShare, HeContext, HeVector, SeedCommitment, SeedReveal};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionId, VerifyingKey};

use crate::error::ProtocolError;
use crate::he_wire::{self, he_error, open_inner, step, Bundle};

/// Most words one encrypted round carries: 20 ciphertexts of `bfv-8192` (≈ 7.6 MB per site
/// message, under the transport's 8 MiB frame). A longer round fails with a clear error rather
/// than timing out; `secagg` has no such limit.
pub const MAX_HE_WORDS: usize = 20 * 8192;
/// Most share requests in one round (the first, and one retry without failed decryptors).
pub const MAX_REQUESTS: u32 = 2;

fn from_site(party: PartyId, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::Unexpected { party, reason: reason.into() }
}

fn check_step(env: &Envelope, want: u8) -> Result<(), ProtocolError> {
    if env.protocol != ProtocolId::ThresholdBfv || env.step != want {
        return Err(from_site(env.sender, format!("threshold-HE message of step {} where {want} was due", env.step)));
    }
    Ok(())
}

/// What to send after closing a step: one payload per recipient, all of `step`.
#[derive(Debug)]
pub struct Sends {
    /// Envelope step.
    pub step: u8,
    /// Recipient and payload.
    pub to: Vec<(PartyId, Vec<u8>)>,
}

/// Outcome of closing a key set-up step.
#[derive(Debug)]
pub enum SetupClose {
    /// Send these and wait for the next step from every holder.
    Send(Sends),
    /// Every holder derived the collective key with this digest.
    Done([u8; 32]),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SetupStage {
    Commit,
    Reveal,
    Keys,
    Ready,
}

/// The relay of one key set-up among `holders` (all must take part in every step).
#[derive(Debug)]
pub struct Setup {
    session: SessionId,
    holders: Vec<PartyId>,
    stage: SetupStage,
    raw: BTreeMap<PartyId, Vec<u8>>,
    commits: Vec<SeedCommitment>,
    reveals: Vec<SeedReveal>,
    seed: Option<[u8; 32]>,
    pk_items: BTreeMap<PartyId, (Vec<u8>, Vec<u8>)>,
    deals: BTreeMap<PartyId, Vec<Vec<u8>>>,
    ready: BTreeMap<PartyId, [u8; 32]>,
}

impl Setup {
    /// A set-up in `session` among `holders` (the study's accepting sites).
    pub fn new(session: SessionId, holders: &[PartyId]) -> Setup {
        let mut holders = holders.to_vec();
        holders.sort();
        Setup {
            session,
            holders,
            stage: SetupStage::Commit,
            raw: BTreeMap::new(),
            commits: Vec::new(),
            reveals: Vec::new(),
            seed: None,
            pk_items: BTreeMap::new(),
            deals: BTreeMap::new(),
            ready: BTreeMap::new(),
        }
    }

    /// The key holders, ascending.
    pub fn holders(&self) -> &[PartyId] {
        &self.holders
    }

    /// Takes `from`'s message of the current step (`raw` is its signed envelope as received).
    pub fn receive(
        &mut self,
        from: PartyId,
        env: &Envelope,
        raw: &[u8],
        roster: &BTreeMap<PartyId, VerifyingKey>,
    ) -> Result<(), ProtocolError> {
        if !self.holders.contains(&from) {
            return Err(from_site(from, "not a key holder of this study"));
        }
        match self.stage {
            SetupStage::Commit => {
                check_step(env, step::COMMIT)?;
                let digest: [u8; 32] = env
                    .payload
                    .get(..32)
                    .filter(|_| env.payload.len() == 64)
                    .and_then(|d| d.try_into().ok())
                    .ok_or_else(|| from_site(from, "seed commitment is not 64 bytes"))?;
                self.commits.retain(|c| c.party != from);
                self.commits.push(SeedCommitment { party: from, digest });
                self.raw.insert(from, raw.to_vec());
            }
            SetupStage::Reveal => {
                check_step(env, step::REVEAL)?;
                let contribution: [u8; 32] =
                    env.payload.as_slice().try_into().map_err(|_| from_site(from, "seed reveal is not 32 bytes"))?;
                self.reveals.retain(|r| r.party != from);
                self.reveals.push(SeedReveal { party: from, contribution });
                self.raw.insert(from, raw.to_vec());
            }
            SetupStage::Keys => {
                check_step(env, step::KEYS)?;
                let bundle = Bundle::decode(&env.payload, from)?;
                let (mut pk, mut deals) = (None, BTreeMap::new());
                for item in bundle.0 {
                    let inner = crate::messages::open(&item, roster)?;
                    if inner.sender != from {
                        return Err(from_site(from, "bundled a message signed by another site"));
                    }
                    if inner.step == step::PK_SHARE && pk.is_none() {
                        let e =
                            open_inner(&item, roster, self.session, step::PK_SHARE, &self.holders, PartyId::BROADCAST)?;
                        pk = Some((item, e.payload));
                    } else {
                        let to = inner.recipient;
                        if to == from || !self.holders.contains(&to) {
                            return Err(from_site(from, "deal for a party that is not another holder"));
                        }
                        open_inner(&item, roster, self.session, step::DEAL, &self.holders, to)?;
                        if deals.insert(to, item).is_some() {
                            return Err(from_site(from, "two deals for one holder"));
                        }
                    }
                }
                let pk = pk.ok_or_else(|| from_site(from, "no public-key share"))?;
                if deals.len() + 1 != self.holders.len() {
                    return Err(from_site(from, "not one deal per other holder"));
                }
                self.pk_items.insert(from, pk);
                for (to, item) in deals {
                    self.deals.entry(to).or_default().push(item);
                }
            }
            SetupStage::Ready => {
                check_step(env, step::READY)?;
                let d: [u8; 32] =
                    env.payload.as_slice().try_into().map_err(|_| from_site(from, "key digest is not 32 bytes"))?;
                self.ready.insert(from, d);
            }
        }
        Ok(())
    }

    /// Closes the current step once every holder answered. Errors name the silent holders, a
    /// site whose reveal does not open its commitment, or one that derived another key.
    pub fn close(&mut self, answered: &BTreeSet<PartyId>) -> Result<SetupClose, ProtocolError> {
        let silent: Vec<String> =
            self.holders.iter().filter(|p| !answered.contains(p)).map(|p| p.to_string()).collect();
        if !silent.is_empty() {
            return Err(ProtocolError::invalid(
                "key set-up",
                "holders",
                format!("no answer from {} (every key holder must take part)", silent.join(", ")),
            ));
        }
        let raw = std::mem::take(&mut self.raw);
        let all = |step| Sends {
            step,
            to: self.holders.iter().map(|p| (*p, Bundle(raw.values().cloned().collect()).encode())).collect(),
        };
        match self.stage {
            SetupStage::Commit => {
                let sends = all(step::COMMITS);
                self.stage = SetupStage::Reveal;
                Ok(SetupClose::Send(sends))
            }
            SetupStage::Reveal => {
                self.seed =
                    Some(joint_seed(&self.session, &self.holders, &self.commits, &self.reveals).map_err(he_error)?);
                let sends = all(step::REVEALS);
                self.stage = SetupStage::Keys;
                Ok(SetupClose::Send(sends))
            }
            SetupStage::Keys => {
                let pks: Vec<Vec<u8>> = self.pk_items.values().map(|(item, _)| item.clone()).collect();
                let mut to = Vec::new();
                for p in &self.holders {
                    let mut items = pks.clone();
                    items.extend(self.deals.remove(p).unwrap_or_default());
                    to.push((*p, Bundle(items).encode()));
                }
                self.stage = SetupStage::Ready;
                Ok(SetupClose::Send(Sends { step: step::FORWARD, to }))
            }
            SetupStage::Ready => {
                let seed = self.seed.ok_or_else(|| ProtocolError::invalid("key set-up", "seed", "missing"))?;
                let list: Vec<(PartyId, Vec<u8>)> =
                    self.pk_items.iter().map(|(p, (_, payload))| (*p, payload.clone())).collect();
                let digest = he_wire::key_digest(self.session, &seed, &list);
                if let Some((p, _)) = self.ready.iter().find(|(_, d)| **d != digest) {
                    return Err(from_site(*p, "derived a collective key that differs from the other holders'"));
                }
                Ok(SetupClose::Done(digest))
            }
        }
    }
}

/// Outcome of closing a step of an encrypted round.
#[derive(Debug)]
pub enum RoundClose {
    /// Ask these decryptors (payload: the serialised share request).
    Request {
        /// Decryptors.
        to: Vec<PartyId>,
        /// Share request.
        payload: Vec<u8>,
    },
    /// The decrypted sum (the same words SecAgg+ would give) and the contributors.
    Done {
        /// Sum of the contributors' words.
        sum: Vec<u64>,
        /// Contributors.
        contributors: Vec<PartyId>,
    },
}

enum RoundStage {
    Collect(BTreeMap<PartyId, HeVector>),
    Shares {
        agg: HeVector,
        contributors: Vec<PartyId>,
        decryptors: Vec<PartyId>,
        shares: BTreeMap<PartyId, DecryptionShare>,
        failed: BTreeSet<PartyId>,
        requests: u32,
    },
    Done,
}

/// One encrypted aggregation round.
pub struct Round {
    ctx: HeContext,
    holders: Vec<PartyId>,
    threshold: usize,
    length: usize,
    stage: RoundStage,
    stored: BTreeMap<PartyId, HeVector>,
}

impl std::fmt::Debug for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Round")
            .field("length", &self.length)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl Round {
    /// A round over vectors of `length` words among `holders` with decryption threshold `threshold`.
    pub fn new(ctx: HeContext, holders: &[PartyId], threshold: usize, length: usize) -> Round {
        Round {
            ctx,
            holders: holders.to_vec(),
            threshold,
            length,
            stage: RoundStage::Collect(BTreeMap::new()),
            stored: BTreeMap::new(),
        }
    }

    /// The parties whose message the current step waits for.
    pub fn waiting_for(&self) -> Vec<PartyId> {
        match &self.stage {
            RoundStage::Collect(_) => self.holders.clone(),
            RoundStage::Shares { decryptors, .. } => decryptors.clone(),
            RoundStage::Done => Vec::new(),
        }
    }

    /// Each contributor's ciphertext of this round (the encrypted store: any subset can be
    /// re-added later, and decrypted by any `t` holders, without the contributors online).
    pub fn stored(&self) -> &BTreeMap<PartyId, HeVector> {
        &self.stored
    }

    /// The context.
    pub fn context(&self) -> &HeContext {
        &self.ctx
    }

    /// Takes `from`'s contribution or decryption share. Errors name `from`.
    pub fn receive(&mut self, from: PartyId, env: &Envelope) -> Result<(), ProtocolError> {
        match &mut self.stage {
            RoundStage::Collect(inputs) => {
                check_step(env, step::CONTRIBUTION)?;
                if !self.holders.contains(&from) {
                    return Err(from_site(from, "not a key holder of this study"));
                }
                let ct = HeVector::from_bytes(&self.ctx, &env.payload, Some(from)).map_err(he_error)?;
                if ct.len() != self.length {
                    return Err(from_site(
                        from,
                        format!("encrypted {} words, the round has {}", ct.len(), self.length),
                    ));
                }
                let fresh = self.ctx.params().fresh_noise_log2(self.holders.len());
                if ct.noise_log2() < fresh - 1e-9 {
                    return Err(from_site(from, "claims less noise than a fresh ciphertext has"));
                }
                inputs.insert(from, ct);
                Ok(())
            }
            RoundStage::Shares { decryptors, shares, .. } => {
                check_step(env, step::DECRYPTION_SHARE)?;
                if !decryptors.contains(&from) {
                    return Err(from_site(from, "decryption share from a party that was not asked"));
                }
                let share = DecryptionShare::from_bytes(&self.ctx, &env.payload, from).map_err(he_error)?;
                shares.insert(from, share);
                Ok(())
            }
            RoundStage::Done => Err(from_site(from, "the round is finished")),
        }
    }

    /// Closes the current step: after the contributions, sums them and requests `t` shares;
    /// after the shares, decrypts, or (when a decryptor failed) requests again from `t`
    /// contributors without it. Errors when fewer than `t` sites remain.
    pub fn close(&mut self) -> Result<RoundClose, ProtocolError> {
        let t = self.threshold;
        match std::mem::replace(&mut self.stage, RoundStage::Done) {
            RoundStage::Collect(inputs) => {
                if inputs.len() < t {
                    return Err(ProtocolError::invalid(
                        "encrypted aggregation",
                        "contributors",
                        format!("{} sites contributed, the threshold is {t}", inputs.len()),
                    ));
                }
                let contributors: Vec<PartyId> = inputs.keys().copied().collect();
                let mut agg: Option<HeVector> = None;
                for (p, ct) in &inputs {
                    match &mut agg {
                        None => agg = Some(ct.clone()),
                        Some(a) => a.add_assign(ct, Some(*p)).map_err(he_error)?,
                    }
                }
                let agg = agg.ok_or_else(|| ProtocolError::invalid("encrypted aggregation", "contributors", "none"))?;
                self.stored = inputs;
                let decryptors = contributors[..t].to_vec();
                self.request(agg, contributors, decryptors, BTreeMap::new(), BTreeSet::new(), 0)
            }
            RoundStage::Shares { agg, contributors, decryptors, shares, mut failed, requests } => {
                if decryptors.iter().all(|p| shares.contains_key(p)) {
                    let list: Vec<DecryptionShare> = decryptors.iter().filter_map(|p| shares.get(p).cloned()).collect();
                    let values = agg.threshold_decrypt(&self.ctx, &decryptors, &list).map_err(he_error)?;
                    // Each site's words were range-checked so the centred sum never wrapped mod t;
                    // two's complement then gives the sum mod 2^64, as SecAgg+ does.
                    let sum = values.into_iter().map(|v| v as u64).collect();
                    return Ok(RoundClose::Done { sum, contributors });
                }
                failed.extend(decryptors.iter().filter(|p| !shares.contains_key(p)));
                if requests >= MAX_REQUESTS {
                    return Err(ProtocolError::invalid(
                        "encrypted aggregation",
                        "decryptors",
                        format!("decryption shares still missing after {requests} requests"),
                    ));
                }
                // Those who answered first, then other contributors; never a failed one.
                let mut next: Vec<PartyId> = decryptors.iter().filter(|p| shares.contains_key(p)).copied().collect();
                let others: Vec<PartyId> =
                    contributors.iter().filter(|p| !failed.contains(p) && !next.contains(p)).copied().collect();
                next.extend(others);
                if next.len() < t {
                    let names: Vec<String> = failed.iter().map(|p| p.to_string()).collect();
                    return Err(ProtocolError::invalid(
                        "encrypted aggregation",
                        "decryptors",
                        format!("fewer than {t} contributors can decrypt (failed: {})", names.join(", ")),
                    ));
                }
                next.truncate(t);
                next.sort();
                self.request(agg, contributors, next, BTreeMap::new(), failed, requests)
            }
            RoundStage::Done => Err(ProtocolError::invalid("encrypted aggregation", "round", "already finished")),
        }
    }

    fn request(
        &mut self,
        agg: HeVector,
        contributors: Vec<PartyId>,
        decryptors: Vec<PartyId>,
        shares: BTreeMap<PartyId, DecryptionShare>,
        failed: BTreeSet<PartyId>,
        requests: u32,
    ) -> Result<RoundClose, ProtocolError> {
        let payload = agg.decrypt_request(&decryptors).to_bytes(&self.ctx);
        let to = decryptors.clone();
        self.stage = RoundStage::Shares { agg, contributors, decryptors, shares, failed, requests: requests + 1 };
        Ok(RoundClose::Request { to, payload })
    }
}

/// Each contributor's serialised ciphertext (`HeVector` bytes) of one encrypted round.
pub type StoredCiphertexts = Vec<(PartyId, Vec<u8>)>;

/// Re-aggregates stored ciphertexts later, without the sites: parses each `(site, HeVector bytes)`
/// of `items` (errors name the site), keeps those of `sites` (all when `None`) and adds them.
/// Any `t` key holders can then decrypt the sum (`decrypt_request` / `threshold_decrypt`).
pub fn reaggregate(
    ctx: &HeContext,
    items: &[(PartyId, Vec<u8>)],
    sites: Option<&[PartyId]>,
) -> Result<HeVector, ProtocolError> {
    let mut acc: Option<HeVector> = None;
    for (p, bytes) in items {
        if sites.is_some_and(|s| !s.contains(p)) {
            continue;
        }
        let ct = HeVector::from_bytes(ctx, bytes, Some(*p)).map_err(he_error)?;
        match &mut acc {
            None => acc = Some(ct),
            Some(a) => a.add_assign(&ct, Some(*p)).map_err(he_error)?,
        }
    }
    acc.ok_or_else(|| ProtocolError::invalid("encrypted store", "sites", "no stored ciphertext of these sites"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use seh_crypto::he::simulate_setup;
    use seh_crypto::wire::StudyId;

    #[test]
    fn stored_ciphertexts_re_aggregate_over_any_subset_and_any_t_decrypt() {
        let ctx = crate::he_site::context().unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let holders = [PartyId(1), PartyId(2), PartyId(3), PartyId(4)];
        let session = SessionId { study: StudyId([2; 16]), round: 5 };
        let mut fed = simulate_setup(&ctx, &session, &holders, 3, &mut rng).unwrap();
        let inputs: Vec<Vec<i64>> = (0..4).map(|i| (0..10).map(|k| (k * 1000 + i) as i64).collect()).collect();
        let items: Vec<(PartyId, Vec<u8>)> = holders
            .iter()
            .zip(&inputs)
            .map(|(p, x)| (*p, fed.public_key.encrypt_i64(x, &mut rng).unwrap().to_bytes(&ctx).unwrap()))
            .collect();
        // Later: sites 1, 3 and 4 only, decrypted by holders 2, 3 and 4 (site 1 offline).
        let sum = reaggregate(&ctx, &items, Some(&[PartyId(1), PartyId(3), PartyId(4)])).unwrap();
        let decryptors = [PartyId(2), PartyId(3), PartyId(4)];
        let req = sum.decrypt_request(&decryptors);
        let shares: Vec<_> = fed.shares[1..].iter_mut().map(|k| k.share(&req, &mut rng).unwrap()).collect();
        let got = sum.threshold_decrypt(&ctx, &decryptors, &shares).unwrap();
        let want: Vec<i64> = (0..10).map(|k| inputs[0][k] + inputs[2][k] + inputs[3][k]).collect();
        assert_eq!(got, want);
        // A corrupted entry names its site.
        let mut bad = items.clone();
        bad[1].1.truncate(100);
        let e = reaggregate(&ctx, &bad, None).unwrap_err().to_string();
        assert!(e.contains('2'), "{e}");
    }
}
