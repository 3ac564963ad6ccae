//! [`HeSum`]: threshold BFV behind the [`SecureSum`] trait, so analyses choose
//! `--aggregation secagg|he` without other changes.
//!
//! | step | message | from → to |
//! |---|---|---|
//! | 0 | encrypted input ([`HeVector`]) | site → coordinator |
//! | 1 | [`ShareRequest`] naming `t` decryptors (the first `t` contributors) | coordinator → all |
//! | 2 | flooded [`DecryptionShare`] | each decryptor → coordinator |
//!
//! The coordinator learns the sum (as with SecAgg+); to keep it from the
//! coordinator, use [`HeVector::key_switch_request`] instead. Inputs are the
//! two's-complement fixed-point words of [`crate::fixed`]; each must lie within
//! the fixed-point range (checked, so a word can never silently wrap mod `t`)
//! and sums of `fixed.parties()` words must fit `t` ([`check_fixed`]).

use super::cipher::{check_fixed, HeVector};
use super::decrypt::{DecryptionShare, ShareRequest};
use super::error::HeError;
use super::keygen::{CollectivePublicKey, HeContext, ThresholdKeyShare};
use crate::error::WireError;
use crate::fixed::FixedParams;
use crate::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use crate::wire::{Envelope, PartyId, ProtocolId, SessionId, SigningKey};
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Envelope step numbers of [`HeSum`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HeStep {
    /// Encrypted input, site → coordinator.
    Contribution = 0,
    /// Share request, coordinator → sites.
    ShareRequest = 1,
    /// Decryption share, site → coordinator.
    DecryptionShare = 2,
}

/// Threshold-BFV secure sum configuration. A site's instance carries its key
/// share; the coordinator's carries none.
#[derive(Clone)]
pub struct HeSum {
    pk: Arc<CollectivePublicKey>,
    fixed: FixedParams,
    session: SessionId,
    length: usize,
    key: Option<Arc<Mutex<ThresholdKeyShare>>>,
}

impl fmt::Debug for HeSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeSum").field("session", &self.session).field("length", &self.length).finish_non_exhaustive()
    }
}

impl HeSum {
    /// The coordinator's configuration. Errors if `fixed` does not fit the
    /// plaintext modulus, was checked for fewer parties than hold the key, or
    /// `length` is 0 or above [`super::cipher::MAX_VALUES`].
    pub fn coordinator(
        pk: Arc<CollectivePublicKey>,
        fixed: FixedParams,
        session: SessionId,
        length: usize,
    ) -> Result<HeSum, HeError> {
        check_fixed(&pk.ctx, &fixed)?;
        if fixed.parties() < pk.holders.len() {
            return Err(HeError::invalid("fixed", "range checked for fewer parties than hold the key"));
        }
        if length == 0 || length > super::cipher::MAX_VALUES {
            return Err(HeError::invalid("length", "must be 1..=10^7"));
        }
        Ok(HeSum { pk, fixed, session, length, key: None })
    }

    /// A site's configuration: as [`HeSum::coordinator`] plus its key share
    /// (shared so its use counter persists across sums).
    pub fn site(
        pk: Arc<CollectivePublicKey>,
        fixed: FixedParams,
        session: SessionId,
        length: usize,
        key: Arc<Mutex<ThresholdKeyShare>>,
    ) -> Result<HeSum, HeError> {
        let mut s = HeSum::coordinator(pk, fixed, session, length)?;
        s.key = Some(key);
        Ok(s)
    }

    fn ctx(&self) -> &HeContext {
        &self.pk.ctx
    }
}

fn envelope(session: SessionId, step: HeStep, from: PartyId, to: PartyId, nonce: u64, payload: Vec<u8>) -> Envelope {
    Envelope {
        protocol: ProtocolId::ThresholdBfv,
        step: step as u8,
        sender: from,
        recipient: to,
        session,
        nonce,
        payload,
    }
}

fn expect(env: &Envelope, step: HeStep) -> Result<(), HeError> {
    if env.protocol != ProtocolId::ThresholdBfv || env.step != step as u8 {
        return Err(HeError::Wire(WireError::WrongStep {
            sender: env.sender,
            expected: ProtocolId::ThresholdBfv,
            expected_step: step as u8,
            got: env.protocol,
            got_step: env.step,
        }));
    }
    Ok(())
}

impl SecureSum for HeSum {
    type Site = HeSite;
    type Coordinator = HeCoordinator;

    fn fixed(&self) -> &FixedParams {
        &self.fixed
    }

    fn contribute(&self, me: PartyId, _identity: &SigningKey, input: Vec<u64>) -> Result<HeSite, HeError> {
        let key = self.key.clone().ok_or_else(|| HeError::invalid("key", "a site needs its threshold key share"))?;
        let owner = key.lock().map_err(|_| HeError::invalid("key", "key share lock poisoned"))?.party();
        if owner != me {
            return Err(HeError::invalid("me", "the key share belongs to another party"));
        }
        if input.len() != self.length {
            return Err(HeError::LengthMismatch { expected: self.length, got: input.len(), party: Some(me) });
        }
        let limit = self.fixed.bound() * 2f64.powi(self.fixed.frac_bits() as i32) + 1.0;
        let input: Zeroizing<Vec<i64>> = Zeroizing::new(input.iter().map(|&w| w as i64).collect());
        if let Some(index) = input.iter().position(|&v| v.unsigned_abs() as f64 > limit) {
            return Err(HeError::PlaintextRange { index });
        }
        Ok(HeSite { cfg: self.clone(), me, key, input: Some(input), state: SiteState::Init, nonce: 0 })
    }

    fn combine(&self) -> HeCoordinator {
        HeCoordinator { cfg: self.clone(), state: CoordState::Collect(BTreeMap::new()), nonce: 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteState {
    Init,
    AwaitRequest,
    Done,
}

/// A site's state machine: encrypt, then answer one share request.
pub struct HeSite {
    cfg: HeSum,
    me: PartyId,
    key: Arc<Mutex<ThresholdKeyShare>>,
    input: Option<Zeroizing<Vec<i64>>>,
    state: SiteState,
    nonce: u64,
}

impl fmt::Debug for HeSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeSite").field("me", &self.me).field("state", &self.state).finish_non_exhaustive()
    }
}

impl SiteProtocol for HeSite {
    type Error = HeError;

    fn start<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<Vec<Envelope>, HeError> {
        let input = match (self.state, self.input.take()) {
            (SiteState::Init, Some(i)) => i,
            _ => return Err(HeError::invalid("start", "already started")),
        };
        let ct = self.cfg.pk.encrypt_i64(&input, rng)?;
        self.state = SiteState::AwaitRequest;
        self.nonce += 1;
        let payload = ct.to_bytes(self.cfg.ctx())?;
        Ok(vec![envelope(self.cfg.session, HeStep::Contribution, self.me, PartyId::COORDINATOR, self.nonce, payload)])
    }

    fn receive<R: RngCore + CryptoRng>(&mut self, env: &Envelope, rng: &mut R) -> Result<Vec<Envelope>, HeError> {
        if env.sender != PartyId::COORDINATOR {
            return Err(HeError::UnexpectedParty { party: env.sender, reason: "sites only hear from the coordinator" });
        }
        expect(env, HeStep::ShareRequest)?;
        if self.state != SiteState::AwaitRequest {
            return Err(HeError::UnexpectedParty { party: env.sender, reason: "no request expected now" });
        }
        let req = ShareRequest::from_bytes(self.cfg.ctx(), &env.payload, Some(env.sender))?;
        if req.is_key_switch() || req.c1.len() != self.cfg.length.div_ceil(self.cfg.ctx().params.slots()) {
            return Err(HeError::Malformed { what: "share request", party: Some(env.sender), reason: "wrong shape" });
        }
        self.state = SiteState::Done;
        if !req.decryptors().contains(&self.me) {
            return Ok(Vec::new());
        }
        let share =
            self.key.lock().map_err(|_| HeError::invalid("key", "key share lock poisoned"))?.share(&req, rng)?;
        self.nonce += 1;
        let payload = share.to_bytes(self.cfg.ctx());
        Ok(vec![envelope(
            self.cfg.session,
            HeStep::DecryptionShare,
            self.me,
            PartyId::COORDINATOR,
            self.nonce,
            payload,
        )])
    }

    fn is_done(&self) -> bool {
        self.state == SiteState::Done
    }
}

enum CoordState {
    Collect(BTreeMap<PartyId, HeVector>),
    Shares { agg: HeVector, contributors: Vec<PartyId>, decryptors: Vec<PartyId>, shares: Vec<DecryptionShare> },
    Done,
    Failed,
}

/// The coordinator's state machine: add the encrypted inputs, request and
/// combine `t` decryption shares.
pub struct HeCoordinator {
    cfg: HeSum,
    state: CoordState,
    nonce: u64,
}

impl fmt::Debug for HeCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeCoordinator").field("session", &self.cfg.session).finish_non_exhaustive()
    }
}

impl CoordinatorProtocol for HeCoordinator {
    type Error = HeError;

    fn receive(&mut self, env: &Envelope) -> Result<(), HeError> {
        let from = env.sender;
        if !self.cfg.pk.holders.contains(&from) {
            return Err(HeError::UnexpectedParty { party: from, reason: "not a key holder" });
        }
        match &mut self.state {
            CoordState::Collect(inputs) => {
                expect(env, HeStep::Contribution)?;
                if inputs.contains_key(&from) {
                    return Err(HeError::UnexpectedParty { party: from, reason: "sent two inputs" });
                }
                let mut ct = HeVector::from_bytes(self.cfg.ctx(), &env.payload, Some(from))?;
                if ct.len() != self.cfg.length {
                    return Err(HeError::LengthMismatch {
                        expected: self.cfg.length,
                        got: ct.len(),
                        party: Some(from),
                    });
                }
                // Never trust a claimed noise bound below that of a fresh ciphertext.
                ct.noise_log2 = ct.noise_log2.max(self.cfg.pk.fresh_noise_log2());
                inputs.insert(from, ct);
                Ok(())
            }
            CoordState::Shares { decryptors, shares, .. } => {
                expect(env, HeStep::DecryptionShare)?;
                if !decryptors.contains(&from) || shares.iter().any(|s| s.party == from) {
                    return Err(HeError::UnexpectedParty { party: from, reason: "unexpected or repeated share" });
                }
                shares.push(DecryptionShare::from_bytes(self.cfg.ctx(), &env.payload, from)?);
                Ok(())
            }
            CoordState::Done | CoordState::Failed => {
                Err(HeError::UnexpectedParty { party: from, reason: "protocol finished" })
            }
        }
    }

    fn close_round(&mut self) -> Result<RoundOutcome, HeError> {
        match std::mem::replace(&mut self.state, CoordState::Failed) {
            CoordState::Collect(inputs) => {
                let t = self.cfg.pk.threshold;
                if inputs.len() < t {
                    return Err(HeError::NotEnoughParties {
                        what: "inputs (decryptors)",
                        needed: t,
                        got: inputs.len(),
                    });
                }
                let contributors: Vec<PartyId> = inputs.keys().copied().collect();
                let mut it = inputs.into_iter();
                let (first_party, mut agg) =
                    it.next().ok_or(HeError::NotEnoughParties { what: "inputs", needed: 1, got: 0 })?;
                for (p, ct) in it {
                    agg.add_assign(&ct, Some(p)).map_err(|e| match e {
                        HeError::LengthMismatch { expected, got, .. } => {
                            HeError::LengthMismatch { expected, got, party: Some(p) }
                        }
                        other => other,
                    })?;
                }
                let _ = first_party;
                let decryptors: Vec<PartyId> = contributors[..t].to_vec();
                let req = agg.decrypt_request(&decryptors);
                self.nonce += 1;
                let env = envelope(
                    self.cfg.session,
                    HeStep::ShareRequest,
                    PartyId::COORDINATOR,
                    PartyId::BROADCAST,
                    self.nonce,
                    req.to_bytes(self.cfg.ctx()),
                );
                self.state = CoordState::Shares { agg, contributors, decryptors, shares: Vec::new() };
                Ok(RoundOutcome::Send(vec![env]))
            }
            CoordState::Shares { agg, contributors, decryptors, shares } => {
                let values = agg.threshold_decrypt(self.cfg.ctx(), &decryptors, &shares)?;
                self.state = CoordState::Done;
                Ok(RoundOutcome::Done { sum: values.into_iter().map(|v| v as u64).collect(), contributors })
            }
            other => {
                self.state = other;
                Err(HeError::invalid("close_round", "protocol already finished"))
            }
        }
    }
}
