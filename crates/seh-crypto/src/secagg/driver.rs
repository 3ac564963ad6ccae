//! [`SecAgg`]: SecAgg+ behind the [`SecureSum`] trait, as envelope-driven
//! state machines for a site ([`SecAggSite`]) and the coordinator
//! ([`SecAggCoordinator`]).

use super::server::{ServerRound0, ServerRound1, ServerRound2, ServerRound3, ServerRound4, UnmaskPlan};
use super::{round0, round1, round2, round3, SecAggMessage, SecAggParams, Step};
use super::{AdvertiseKeys, ConsistencySignature, MaskedInput, ShareKeys, UnmaskShares};
use super::{ConsistencyRequest, ForwardedShares, KeyList, UnmaskRequest};
use crate::error::{SecAggError, WireError};
use crate::fixed::FixedParams;
use crate::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use crate::wire::{Envelope, EnvelopeRef, Header, PartyId, ProtocolId, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// SecAgg+ configuration shared by the sites and the coordinator.
#[derive(Clone, Debug)]
pub struct SecAgg {
    params: SecAggParams,
    fixed: FixedParams,
    roster: Arc<BTreeMap<PartyId, VerifyingKey>>,
}

impl SecAgg {
    /// Configure. `roster` must hold the identity key of every party in `params`.
    /// Errors if `fixed` was checked for fewer parties than `params` has.
    pub fn new(
        params: SecAggParams,
        fixed: FixedParams,
        roster: BTreeMap<PartyId, VerifyingKey>,
    ) -> Result<SecAgg, SecAggError> {
        if fixed.parties() < params.parties().len() {
            return Err(SecAggError::InvalidParameter {
                field: "fixed.parties",
                reason: format!("range checked for {} parties, {} take part", fixed.parties(), params.parties().len()),
            });
        }
        if let Some(p) = params.parties().iter().find(|p| !roster.contains_key(p)) {
            return Err(SecAggError::InvalidParameter { field: "roster", reason: format!("no identity key for {p}") });
        }
        Ok(SecAgg { params, fixed, roster: Arc::new(roster) })
    }

    /// The protocol parameters.
    pub fn params(&self) -> &SecAggParams {
        &self.params
    }
}

impl SecureSum for SecAgg {
    type Site = SecAggSite;
    type Coordinator = SecAggCoordinator;

    fn fixed(&self) -> &FixedParams {
        &self.fixed
    }

    fn contribute(&self, me: PartyId, identity: &SigningKey, input: Vec<u64>) -> Result<SecAggSite, SecAggError> {
        if input.len() != self.params.length() {
            return Err(SecAggError::InvalidParameter {
                field: "input",
                reason: format!("length {} differs from the agreed {}", input.len(), self.params.length()),
            });
        }
        Ok(SecAggSite {
            state: SiteState::Init,
            params: self.params.clone(),
            roster: Arc::clone(&self.roster),
            me,
            identity: identity.clone(),
            input: Zeroizing::new(input),
            nonce: 0,
        })
    }

    fn combine(&self) -> SecAggCoordinator {
        SecAggCoordinator {
            state: CoordState::R0(ServerRound0::new(self.params.clone())),
            roster: Arc::clone(&self.roster),
            session: self.params.session(),
            nonce: 0,
        }
    }
}

enum SiteState {
    Init,
    R0(round0::Round0Secret),
    R1(round1::Round1Secret),
    R2(round2::Round2Secret),
    R3(round3::Round3Secret),
    Done,
    Failed,
}

/// A site's SecAgg+ state machine (see [`SiteProtocol`]).
pub struct SecAggSite {
    state: SiteState,
    params: SecAggParams,
    roster: Arc<BTreeMap<PartyId, VerifyingKey>>,
    me: PartyId,
    identity: SigningKey,
    input: Zeroizing<Vec<u64>>,
    nonce: u64,
}

impl fmt::Debug for SecAggSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecAggSite").field("me", &self.me).field("done", &self.is_done()).finish_non_exhaustive()
    }
}

impl SecAggSite {
    fn out<M: SecAggMessage>(&mut self, msg: &M) -> Vec<Envelope> {
        self.nonce += 1;
        vec![msg.to_envelope(self.params.session(), self.me, PartyId::COORDINATOR, self.nonce)]
    }

    /// The header of my next message of kind `step`.
    fn next_header(&mut self, step: Step) -> Header {
        self.nonce += 1;
        Header {
            protocol: ProtocolId::SecAgg,
            step: step as u8,
            sender: self.me,
            recipient: PartyId::COORDINATOR,
            session: self.params.session(),
            nonce: self.nonce,
        }
    }

    /// [`SiteProtocol::receive`], returning the replies signed with this
    /// site's identity key and encoded (the bytes of
    /// `reply.sign(identity)?.encode()?`). The masked input is written
    /// straight into its wire buffer and signed in place
    /// ([`round2::masked_input_buf`]), so the vector is never moved. Same errors.
    pub fn receive_sealed<R: RngCore + CryptoRng>(
        &mut self,
        env: &Envelope,
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, SecAggError> {
        if env.sender == PartyId::COORDINATOR && matches!(self.state, SiteState::R1(_)) {
            let SiteState::R1(st) = std::mem::replace(&mut self.state, SiteState::Failed) else {
                return Err(SecAggError::InvalidParameter { field: "receive", reason: "unreachable".into() });
            };
            let fwd = ForwardedShares::from_envelope(env)?;
            let input = std::mem::take(&mut *self.input);
            let (st, buf) = round2::masked_input_buf(st, &fwd, input, rng)?;
            self.state = SiteState::R2(st);
            let header = self.next_header(Step::MaskedInput);
            return Ok(vec![buf.seal(&header, &self.identity)?]);
        }
        let replies = self.receive(env, rng)?;
        replies.into_iter().map(|e| Ok(e.sign(&self.identity)?.into_bytes()?)).collect()
    }
}

fn wrong_step(env: &Envelope, expected: Step) -> SecAggError {
    SecAggError::Wire(WireError::WrongStep {
        sender: env.sender,
        expected: ProtocolId::SecAgg,
        expected_step: expected as u8,
        got: env.protocol,
        got_step: env.step,
    })
}

impl SiteProtocol for SecAggSite {
    type Error = SecAggError;

    fn start<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<Vec<Envelope>, SecAggError> {
        if !matches!(self.state, SiteState::Init) {
            return Err(SecAggError::InvalidParameter { field: "start", reason: "already started".into() });
        }
        self.state = SiteState::Failed;
        let (st, msg) = round0::advertise(&self.params, self.me, &self.identity, rng)?;
        self.state = SiteState::R0(st);
        Ok(self.out(&msg))
    }

    fn receive<R: RngCore + CryptoRng>(&mut self, env: &Envelope, rng: &mut R) -> Result<Vec<Envelope>, SecAggError> {
        if env.sender != PartyId::COORDINATOR {
            return Err(SecAggError::UnexpectedParty {
                party: env.sender,
                reason: "sites only hear from the coordinator",
            });
        }
        let state = std::mem::replace(&mut self.state, SiteState::Failed);
        match state {
            SiteState::R0(st) => {
                let list = KeyList::from_envelope(env)?;
                let (st, msg) = round1::share_keys(st, &list, self.roster.as_ref(), rng)?;
                self.state = SiteState::R1(st);
                Ok(self.out(&msg))
            }
            SiteState::R1(st) => {
                let fwd = ForwardedShares::from_envelope(env)?;
                let input = std::mem::take(&mut *self.input);
                let (st, payload) = round2::masked_input_payload(st, &fwd, input, rng)?;
                self.state = SiteState::R2(st);
                let header = self.next_header(Step::MaskedInput);
                Ok(vec![Envelope::from_parts(header, payload)])
            }
            SiteState::R2(st) => {
                let req = ConsistencyRequest::from_envelope(env)?;
                let (st, msg) = round3::sign_survivors(st, &req, &self.identity)?;
                self.state = SiteState::R3(st);
                Ok(self.out(&msg))
            }
            SiteState::R3(st) => {
                let req = UnmaskRequest::from_envelope(env)?;
                let msg = round3::unmask(st, &req, self.roster.as_ref())?;
                self.state = SiteState::Done;
                Ok(self.out(&msg))
            }
            other => {
                self.state = other;
                Err(wrong_step(env, Step::KeyList))
            }
        }
    }

    fn is_done(&self) -> bool {
        matches!(self.state, SiteState::Done)
    }
}

enum CoordState {
    R0(ServerRound0),
    R1(ServerRound1),
    R2(ServerRound2),
    R3(ServerRound3),
    R4(ServerRound4),
    Done,
    Failed,
}

/// The coordinator's SecAgg+ state machine (see [`CoordinatorProtocol`]).
pub struct SecAggCoordinator {
    state: CoordState,
    roster: Arc<BTreeMap<PartyId, VerifyingKey>>,
    session: crate::wire::SessionId,
    nonce: u64,
}

impl fmt::Debug for SecAggCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecAggCoordinator").field("session", &self.session).finish_non_exhaustive()
    }
}

impl SecAggCoordinator {
    fn env<M: SecAggMessage>(&mut self, msg: &M, to: PartyId) -> Envelope {
        self.nonce += 1;
        msg.to_envelope(self.session, PartyId::COORDINATOR, to, self.nonce)
    }

    /// [`CoordinatorProtocol::close_round`], except that in the last round
    /// `unmask(plan, sum)` removes the masks from `sum` — e.g. by calling
    /// [`UnmaskPlan::unmask_range`] on disjoint chunks from several threads
    /// (this library starts none itself).
    pub fn close_round_with(
        &mut self,
        unmask: impl FnOnce(&UnmaskPlan, &mut [u64]),
    ) -> Result<RoundOutcome, SecAggError> {
        if let CoordState::R4(_) = self.state {
            let CoordState::R4(s) = std::mem::replace(&mut self.state, CoordState::Failed) else {
                return Err(SecAggError::InvalidParameter { field: "close_round", reason: "unreachable".into() });
            };
            let mut plan = s.finish_plan()?;
            let mut sum = std::mem::take(&mut plan.sum);
            unmask(&plan, &mut sum);
            self.state = CoordState::Done;
            return Ok(RoundOutcome::Done { sum, contributors: std::mem::take(&mut plan.survivors) });
        }
        self.close_round()
    }
}

impl SecAggCoordinator {
    /// [`CoordinatorProtocol::receive`] for several envelopes. In the
    /// masked-input round all are checked first and their vectors are then
    /// added by `add(sum, bodies)` in one call (see
    /// [`ServerRound2::receive_encoded_batch_with`]), e.g. on disjoint ranges
    /// from several threads; other rounds take them one by one and do not call
    /// `add`. Returns the rejected envelopes' senders and errors.
    pub fn receive_batch_with(
        &mut self,
        envs: &[Envelope],
        add: impl FnOnce(&mut [u64], &[&[u8]]),
    ) -> Vec<(PartyId, SecAggError)> {
        let refs: Vec<EnvelopeRef<'_>> =
            envs.iter().map(|e| EnvelopeRef { header: e.header(), payload: &e.payload }).collect();
        self.receive_batch_refs(&refs, add)
    }

    /// [`SecAggCoordinator::receive_batch_with`] for authenticated envelopes
    /// whose payloads borrow the received bytes
    /// ([`crate::wire::SignedEnvelope::open_ref`]): the masked vectors are
    /// added straight from the wire bytes. Other rounds copy each (small)
    /// message and take it as [`CoordinatorProtocol::receive`] does.
    pub fn receive_batch_refs(
        &mut self,
        envs: &[EnvelopeRef<'_>],
        add: impl FnOnce(&mut [u64], &[&[u8]]),
    ) -> Vec<(PartyId, SecAggError)> {
        let mut rejected = Vec::new();
        if let CoordState::R2(s) = &mut self.state {
            let mut items = Vec::with_capacity(envs.len());
            for env in envs {
                match MaskedInput::check_header(&env.header) {
                    Ok(()) => items.push((env.header.sender, env.payload)),
                    Err(e) => rejected.push((env.header.sender, e.into())),
                }
            }
            rejected.extend(s.receive_encoded_batch_with(&items, add));
        } else {
            for env in envs {
                if let Err(e) = CoordinatorProtocol::receive(self, &env.to_envelope()) {
                    rejected.push((env.header.sender, e));
                }
            }
        }
        rejected
    }
}

impl CoordinatorProtocol for SecAggCoordinator {
    type Error = SecAggError;

    fn receive(&mut self, env: &Envelope) -> Result<(), SecAggError> {
        let from = env.sender;
        match &mut self.state {
            CoordState::R0(s) => s.receive(from, AdvertiseKeys::from_envelope(env)?, self.roster.as_ref()),
            CoordState::R1(s) => s.receive(from, ShareKeys::from_envelope(env)?),
            CoordState::R2(s) => {
                MaskedInput::check_envelope(env)?;
                s.receive_encoded(from, &env.payload)
            }
            CoordState::R3(s) => s.receive(from, ConsistencySignature::from_envelope(env)?, self.roster.as_ref()),
            CoordState::R4(s) => s.receive(from, UnmaskShares::from_envelope(env)?),
            CoordState::Done | CoordState::Failed => Err(wrong_step(env, Step::UnmaskShares)),
        }
    }

    fn close_round(&mut self) -> Result<RoundOutcome, SecAggError> {
        let state = std::mem::replace(&mut self.state, CoordState::Failed);
        let bcast = PartyId::BROADCAST;
        match state {
            CoordState::R0(s) => {
                let (next, list) = s.finish()?;
                self.state = CoordState::R1(next);
                Ok(RoundOutcome::Send(vec![self.env(&list, bcast)]))
            }
            CoordState::R1(s) => {
                let (next, fwd) = s.finish()?;
                self.state = CoordState::R2(next);
                Ok(RoundOutcome::Send(fwd.iter().map(|(to, m)| self.env(m, *to)).collect()))
            }
            CoordState::R2(s) => {
                let (next, req) = s.finish()?;
                self.state = CoordState::R3(next);
                Ok(RoundOutcome::Send(vec![self.env(&req, bcast)]))
            }
            CoordState::R3(s) => {
                let (next, req) = s.finish()?;
                self.state = CoordState::R4(next);
                Ok(RoundOutcome::Send(vec![self.env(&req, bcast)]))
            }
            CoordState::R4(s) => {
                let out = s.finish()?;
                self.state = CoordState::Done;
                Ok(RoundOutcome::Done { sum: out.sum, contributors: out.survivors })
            }
            other => {
                self.state = other;
                Err(SecAggError::InvalidParameter { field: "close_round", reason: "protocol already finished".into() })
            }
        }
    }
}
