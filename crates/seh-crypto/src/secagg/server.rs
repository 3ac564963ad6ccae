//! The server (coordinator) side of SecAgg+: one typed state per round, each
//! fed with authenticated messages (`receive`) and consumed by `finish`, which
//! emits the next broadcast. The server never holds an unmasked input: it
//! keeps the running sum of masked vectors and, in the last round, the
//! revealed shares; if fewer than `t` parties remain, `finish` returns
//! [`SecAggError::TooFewSurvivors`] and everything is dropped.

use super::keys::{advert_message, mask_secret, pair_mask_key, self_mask_key, survivors_message};
use super::prg::{apply_masks, MaskStream};
use super::{
    AdvertiseKeys, ConsistencyRequest, ConsistencySignature, ForwardedShare, ForwardedShares, KeyList, MaskedInput,
    SecAggParams, ShareKeys, UnmaskRequest, UnmaskShares,
};
use crate::error::SecAggError;
use crate::shamir::{Commitments, Lagrange, SecretShare};
use crate::wire::{PartyId, Roster};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signature;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn expect_participant(params: &SecAggParams, party: PartyId) -> Result<(), SecAggError> {
    if params.contains(party) {
        Ok(())
    } else {
        Err(SecAggError::UnexpectedParty { party, reason: "not a participant of this aggregation" })
    }
}

fn enough(round: u8, alive: usize, threshold: usize) -> Result<(), SecAggError> {
    if alive < threshold {
        Err(SecAggError::TooFewSurvivors { round, alive, threshold })
    } else {
        Ok(())
    }
}

/// Round 0: collecting key adverts.
#[derive(Debug)]
pub struct ServerRound0 {
    params: SecAggParams,
    adverts: BTreeMap<PartyId, AdvertiseKeys>,
}

impl ServerRound0 {
    /// Start an aggregation.
    pub fn new(params: SecAggParams) -> ServerRound0 {
        ServerRound0 { params, adverts: BTreeMap::new() }
    }

    /// Accept `sender`'s advert (signature checked against the roster).
    pub fn receive<Ro: Roster + ?Sized>(
        &mut self,
        sender: PartyId,
        msg: AdvertiseKeys,
        roster: &Ro,
    ) -> Result<(), SecAggError> {
        expect_participant(&self.params, sender)?;
        if msg.party != sender {
            return Err(SecAggError::Malformed { what: "advert", sender, reason: "advert names another party" });
        }
        if self.adverts.contains_key(&sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 0 });
        }
        let vk = roster
            .verifying_key(sender)
            .ok_or(SecAggError::UnexpectedParty { party: sender, reason: "no identity key" })?;
        let m = advert_message(&self.params.session(), sender, &msg.enc_pk, &msg.mask_pk);
        vk.verify_strict(&m, &Signature::from_bytes(&msg.signature))
            .map_err(|_| SecAggError::BadSignature { what: "advertise keys", sender })?;
        if self.adverts.values().any(|a| a.enc_pk == msg.enc_pk || a.mask_pk == msg.mask_pk || a.enc_pk == msg.mask_pk)
            || msg.enc_pk == msg.mask_pk
        {
            return Err(SecAggError::DuplicateKey { party: sender });
        }
        self.adverts.insert(sender, msg);
        Ok(())
    }

    /// Close round 0: at least `t` adverts are needed. Returns the key list to broadcast.
    pub fn finish(self) -> Result<(ServerRound1, KeyList), SecAggError> {
        enough(0, self.adverts.len(), self.params.threshold())?;
        let list = KeyList { adverts: self.adverts.values().cloned().collect() };
        Ok((ServerRound1 { params: self.params, keys: self.adverts, dealt: BTreeMap::new() }, list))
    }
}

/// Round 1: collecting encrypted shares.
#[derive(Debug)]
pub struct ServerRound1 {
    params: SecAggParams,
    keys: BTreeMap<PartyId, AdvertiseKeys>,
    dealt: BTreeMap<PartyId, ShareKeys>,
}

impl ServerRound1 {
    /// Accept `sender`'s shares: it must have advertised, deal with threshold
    /// `t`, and address exactly its neighbours that advertised.
    pub fn receive(&mut self, sender: PartyId, msg: ShareKeys) -> Result<(), SecAggError> {
        if !self.keys.contains_key(&sender) {
            return Err(SecAggError::UnexpectedParty { party: sender, reason: "did not advertise keys in round 0" });
        }
        if self.dealt.contains_key(&sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 1 });
        }
        let t = self.params.threshold();
        if msg.commit_b.threshold() != t || msg.commit_s.threshold() != t {
            return Err(SecAggError::Malformed { what: "commitments", sender, reason: "count differs from t" });
        }
        let expected: Vec<PartyId> =
            self.params.neighbours(sender).into_iter().filter(|v| self.keys.contains_key(v)).collect();
        if !msg.shares.iter().map(|s| s.recipient).eq(expected.iter().copied()) {
            return Err(SecAggError::Malformed { what: "shares", sender, reason: "recipients differ from neighbours" });
        }
        self.dealt.insert(sender, msg);
        Ok(())
    }

    /// Close round 1 (`U2` = dealers, at least `t`). Returns, per dealer, the
    /// shares forwarded to it.
    pub fn finish(self) -> Result<(ServerRound2, BTreeMap<PartyId, ForwardedShares>), SecAggError> {
        enough(1, self.dealt.len(), self.params.threshold())?;
        let mut out: BTreeMap<PartyId, ForwardedShares> =
            self.dealt.keys().map(|&v| (v, ForwardedShares { shares: Vec::new() })).collect();
        let mut commitments = BTreeMap::new();
        let mut holders = BTreeMap::new();
        for (dealer, msg) in self.dealt {
            let mut h: Vec<PartyId> = msg.shares.iter().map(|s| s.recipient).collect();
            h.push(dealer);
            h.sort_unstable();
            holders.insert(dealer, h);
            for s in msg.shares {
                if let Some(f) = out.get_mut(&s.recipient) {
                    f.shares.push(ForwardedShare {
                        dealer,
                        commit_b: msg.commit_b.clone(),
                        commit_s: msg.commit_s.clone(),
                        ciphertext: s.ciphertext,
                    });
                }
            }
            commitments.insert(dealer, (msg.commit_b, msg.commit_s));
        }
        let next = ServerRound2 {
            sum: vec![0u64; self.params.length()],
            params: self.params,
            keys: self.keys,
            commitments,
            holders,
            received: BTreeSet::new(),
        };
        Ok((next, out))
    }
}

/// Round 2: collecting masked inputs (summed on arrival).
#[derive(Debug)]
pub struct ServerRound2 {
    params: SecAggParams,
    keys: BTreeMap<PartyId, AdvertiseKeys>,
    /// Dealers of round 1 (`U2`) and their commitments.
    commitments: BTreeMap<PartyId, (Commitments, Commitments)>,
    /// Holder set of each dealer (recipients plus itself).
    holders: BTreeMap<PartyId, Vec<PartyId>>,
    received: BTreeSet<PartyId>,
    sum: Vec<u64>,
}

impl ServerRound2 {
    /// Add `sender`'s masked vector to the running sum.
    pub fn receive(&mut self, sender: PartyId, msg: MaskedInput) -> Result<(), SecAggError> {
        if !self.commitments.contains_key(&sender) {
            return Err(SecAggError::UnexpectedParty { party: sender, reason: "did not deal shares in round 1" });
        }
        if msg.y.len() != self.params.length() {
            return Err(SecAggError::Malformed { what: "masked input", sender, reason: "wrong vector length" });
        }
        if !self.received.insert(sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 2 });
        }
        for (a, b) in self.sum.iter_mut().zip(&msg.y) {
            *a = a.wrapping_add(*b);
        }
        Ok(())
    }

    /// Like [`ServerRound2::receive`] but adds the encoded payload directly
    /// (strictly parsed) without building the vector.
    pub fn receive_encoded(&mut self, sender: PartyId, payload: &[u8]) -> Result<(), SecAggError> {
        if !self.commitments.contains_key(&sender) {
            return Err(SecAggError::UnexpectedParty { party: sender, reason: "did not deal shares in round 1" });
        }
        if self.received.contains(&sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 2 });
        }
        MaskedInput::add_encoded(payload, sender, &mut self.sum)?;
        self.received.insert(sender);
        Ok(())
    }

    /// Several encoded masked inputs at once: each is checked as in
    /// [`ServerRound2::receive_encoded`] (later duplicates in the batch
    /// included); then `add(sum, bodies)` must add every accepted body
    /// (`8·m` little-endian bytes) to `sum` mod 2^64 — e.g. by calling
    /// [`MaskedInput::add_bodies`] on disjoint ranges from several threads.
    /// Returns the rejected items' senders and errors; the others are counted.
    pub fn receive_encoded_batch_with(
        &mut self,
        items: &[(PartyId, &[u8])],
        add: impl FnOnce(&mut [u64], &[&[u8]]),
    ) -> Vec<(PartyId, SecAggError)> {
        let mut rejected = Vec::new();
        let mut bodies = Vec::with_capacity(items.len());
        for &(sender, payload) in items {
            let checked = if !self.commitments.contains_key(&sender) {
                Err(SecAggError::UnexpectedParty { party: sender, reason: "did not deal shares in round 1" })
            } else if self.received.contains(&sender) {
                Err(SecAggError::Duplicate { party: sender, round: 2 })
            } else {
                MaskedInput::body(payload, sender, self.sum.len()).map_err(SecAggError::from)
            };
            match checked {
                Ok(body) => {
                    self.received.insert(sender);
                    bodies.push(body);
                }
                Err(e) => rejected.push((sender, e)),
            }
        }
        if !bodies.is_empty() {
            add(&mut self.sum, &bodies);
        }
        rejected
    }

    /// Close round 2 (`U3` = senders, at least `t`). Returns the survivor set to broadcast.
    pub fn finish(self) -> Result<(ServerRound3, ConsistencyRequest), SecAggError> {
        enough(2, self.received.len(), self.params.threshold())?;
        let survivors: Vec<PartyId> = self.received.iter().copied().collect();
        let req = ConsistencyRequest { survivors: survivors.clone() };
        Ok((ServerRound3 { inner: self, survivors, signatures: BTreeMap::new() }, req))
    }
}

/// Round 3a: collecting signatures over the survivor set.
#[derive(Debug)]
pub struct ServerRound3 {
    inner: ServerRound2,
    survivors: Vec<PartyId>,
    signatures: BTreeMap<PartyId, [u8; 64]>,
}

impl ServerRound3 {
    /// Accept a survivor's signature over `U3` (checked against the roster).
    pub fn receive<Ro: Roster + ?Sized>(
        &mut self,
        sender: PartyId,
        msg: ConsistencySignature,
        roster: &Ro,
    ) -> Result<(), SecAggError> {
        if self.survivors.binary_search(&sender).is_err() {
            return Err(SecAggError::UnexpectedParty { party: sender, reason: "not a survivor" });
        }
        if self.signatures.contains_key(&sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 3 });
        }
        let vk = roster
            .verifying_key(sender)
            .ok_or(SecAggError::UnexpectedParty { party: sender, reason: "no identity key" })?;
        let m = survivors_message(&self.inner.params.session(), &self.survivors);
        vk.verify_strict(&m, &Signature::from_bytes(&msg.signature))
            .map_err(|_| SecAggError::BadSignature { what: "survivor set", sender })?;
        self.signatures.insert(sender, msg.signature);
        Ok(())
    }

    /// Close round 3a (at least `t` signatures). Returns the unmask request for the signers.
    pub fn finish(self) -> Result<(ServerRound4, UnmaskRequest), SecAggError> {
        enough(3, self.signatures.len(), self.inner.params.threshold())?;
        let dropped: Vec<PartyId> =
            self.inner.commitments.keys().copied().filter(|p| self.survivors.binary_search(p).is_err()).collect();
        let req = UnmaskRequest {
            survivors: self.survivors.clone(),
            dropped: dropped.clone(),
            signatures: self.signatures.iter().map(|(p, s)| (*p, *s)).collect(),
        };
        let signers = self.signatures.keys().copied().collect();
        Ok((
            ServerRound4 { inner: self.inner, survivors: self.survivors, dropped, signers, responses: BTreeMap::new() },
            req,
        ))
    }
}

/// Round 3b: collecting revealed shares; `finish` outputs the sum.
#[derive(Debug)]
pub struct ServerRound4 {
    inner: ServerRound2,
    survivors: Vec<PartyId>,
    dropped: Vec<PartyId>,
    signers: BTreeSet<PartyId>,
    responses: BTreeMap<PartyId, UnmaskShares>,
}

/// The result of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateOutput {
    /// `Σ_{u ∈ U3} x_u` mod 2^64.
    pub sum: Vec<u64>,
    /// The parties whose inputs are in the sum (`U3`).
    pub survivors: Vec<PartyId>,
}

impl ServerRound4 {
    /// Accept a signer's revealed shares: `b` shares only of survivors, `s`
    /// shares only of dropped parties, each only of a dealer that dealt to the sender.
    pub fn receive(&mut self, sender: PartyId, msg: UnmaskShares) -> Result<(), SecAggError> {
        if !self.signers.contains(&sender) {
            return Err(SecAggError::UnexpectedParty { party: sender, reason: "did not sign the survivor set" });
        }
        if self.responses.contains_key(&sender) {
            return Err(SecAggError::Duplicate { party: sender, round: 3 });
        }
        let holds = |owner: &PartyId| self.inner.holders.get(owner).is_some_and(|h| h.binary_search(&sender).is_ok());
        for (owner, _) in &msg.b_shares {
            if self.survivors.binary_search(owner).is_err() || !holds(owner) {
                return Err(SecAggError::Malformed {
                    what: "unmask shares",
                    sender,
                    reason: "b share of a non-survivor",
                });
            }
        }
        for (owner, _) in &msg.s_shares {
            if self.dropped.binary_search(owner).is_err() || !holds(owner) {
                return Err(SecAggError::Malformed {
                    what: "unmask shares",
                    sender,
                    reason: "s share of a non-dropped party",
                });
            }
        }
        self.responses.insert(sender, msg);
        Ok(())
    }

    /// Reconstruct the secrets and remove the masks in one call (see
    /// [`ServerRound4::finish_plan`] for the checks and errors).
    pub fn finish(self) -> Result<AggregateOutput, SecAggError> {
        let mut plan = self.finish_plan()?;
        let mut sum = std::mem::take(&mut plan.sum);
        plan.unmask_range(0, &mut sum);
        Ok(AggregateOutput { sum, survivors: plan.survivors })
    }

    /// Reconstruct the survivors' self-mask seeds and the dropped parties'
    /// masking keys; returns the masked sum and the mask keys, so the caller
    /// may remove the masks from disjoint ranges in parallel
    /// ([`UnmaskPlan::unmask_range`]).
    ///
    /// Each secret is rebuilt from the first `t` shares and checked against the
    /// dealer's commitment `C_0`; on mismatch every share is checked and the
    /// responder of a bad one is named ([`SecAggError::BadRevealedShare`]).
    /// Fewer than `t` shares for some secret: [`SecAggError::TooFewSurvivors`].
    pub fn finish_plan(self) -> Result<UnmaskPlan, SecAggError> {
        let ServerRound4 { inner, survivors, dropped, responses, .. } = self;
        let params = &inner.params;
        let session = params.session();
        let t = params.threshold();
        let mut b_of: BTreeMap<PartyId, Vec<SecretShare>> = BTreeMap::new();
        let mut s_of: BTreeMap<PartyId, Vec<SecretShare>> = BTreeMap::new();
        for (responder, r) in &responses {
            for (owner, v) in &r.b_shares {
                b_of.entry(*owner).or_default().push(SecretShare::new(*responder, *v)?);
            }
            for (owner, v) in &r.s_shares {
                s_of.entry(*owner).or_default().push(SecretShare::new(*responder, *v)?);
            }
        }
        let mut lagrange: HashMap<Vec<PartyId>, Lagrange> = HashMap::new();
        let mut recover = |owner: PartyId, shares: Option<&Vec<SecretShare>>, commit: &Commitments| {
            let shares = shares.map(Vec::as_slice).unwrap_or_default();
            enough(3, shares.len(), t)?;
            let used = &shares[..t];
            let idx: Vec<PartyId> = used.iter().map(SecretShare::index).collect();
            if !lagrange.contains_key(&idx) {
                let l = Lagrange::new(&idx)?;
                lagrange.insert(idx.clone(), l);
            }
            let lag = lagrange.get(&idx).ok_or(SecAggError::TooFewSurvivors { round: 3, alive: 0, threshold: t })?;
            let refs: Vec<&SecretShare> = used.iter().collect();
            let secret = lag.combine(&refs)?;
            if RISTRETTO_BASEPOINT_TABLE * &*secret == commit.public_secret() {
                return Ok(secret);
            }
            for s in shares {
                if commit.verify(owner, s).is_err() {
                    return Err(SecAggError::BadRevealedShare { responder: s.index(), owner });
                }
            }
            Err(SecAggError::BadRevealedShare { responder: PartyId::COORDINATOR, owner })
        };

        let mut keys = Vec::new();
        for &u in &survivors {
            let (cb, _) =
                inner.commitments.get(&u).ok_or(SecAggError::UnexpectedParty { party: u, reason: "no commitments" })?;
            let b = recover(u, b_of.get(&u), cb)?;
            keys.push((self_mask_key(&b, &session, u), true));
        }
        for &v in &dropped {
            let (_, cs) =
                inner.commitments.get(&v).ok_or(SecAggError::UnexpectedParty { party: v, reason: "no commitments" })?;
            let s_v: zeroize::Zeroizing<Scalar> = recover(v, s_of.get(&v), cs)?;
            let sk = mask_secret(&s_v);
            for u in params.neighbours(v) {
                if survivors.binary_search(&u).is_err() {
                    continue;
                }
                let pk = inner.keys.get(&u).map(|k| k.mask_pk).unwrap_or_default();
                let key = pair_mask_key(&sk, &pk, &session, v, u).ok_or(SecAggError::Malformed {
                    what: "mask key",
                    sender: u,
                    reason: "low-order X25519 public key",
                })?;
                // y_u holds +PRG(s_uv) if u < v, −PRG(s_uv) otherwise: undo it.
                keys.push((key, u < v));
            }
        }
        Ok(UnmaskPlan { sum: inner.sum, keys, survivors })
    }
}

/// The masked sum and the keys of the masks still in it (self masks of the
/// survivors, pair masks with dropped parties). Holds mask keys: zeroized on drop.
pub struct UnmaskPlan {
    /// The masked sum; take it, then call [`UnmaskPlan::unmask_range`] on it.
    pub sum: Vec<u64>,
    keys: Vec<(zeroize::Zeroizing<[u8; 16]>, bool)>,
    /// The parties whose inputs are in the sum.
    pub survivors: Vec<PartyId>,
}

impl std::fmt::Debug for UnmaskPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnmaskPlan").field("streams", &self.keys.len()).field("survivors", &self.survivors).finish()
    }
}

impl UnmaskPlan {
    /// Remove the masks from `chunk`, which holds words `offset..offset + chunk.len()`
    /// of the sum. Disjoint chunks may be processed on different threads.
    pub fn unmask_range(&self, offset: usize, chunk: &mut [u64]) {
        let mut streams: Vec<MaskStream> =
            self.keys.iter().map(|(k, neg)| MaskStream::new_at(k, *neg, offset)).collect();
        apply_masks(chunk, &mut streams);
    }
}
