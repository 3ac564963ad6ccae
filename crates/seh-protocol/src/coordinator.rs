//! The coordinator's side of a study, sans-IO: phases *offer → aggregate → sign*, each run in a
//! fresh round. Fed with authenticated site messages and timeouts, it emits checkpoints to
//! persist (before the messages that follow them), messages to send, and log lines.
//!
//! Restart: a coordinator that stops mid-phase resumes from its last checkpoint by re-running the
//! unfinished phase in a new round ([`CoordinatorStudy::resume`]); SecAgg+ keys are per round, so
//! nothing is reused, and sites reveal unmasking shares for at most one survivor set per study.
//! The coordinator never holds an unmasked site input or a key share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seh_crypto::frost::sign::{SignatureShare, SigningCommitment, SigningRequest};
use seh_crypto::secagg::server::{ServerRound0, ServerRound1, ServerRound2, ServerRound3, ServerRound4};
use seh_crypto::secagg::{
    AdvertiseKeys, ConsistencySignature, Graph, SecAggMessage, SecAggParams, ShareKeys, UnmaskShares,
};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionGuard, SessionId, SigningKey, StudyId};
use serde::{Deserialize, Serialize};

use crate::describe;
use crate::error::ProtocolError;
use crate::fed::planner::{merge_info, plan, Step};
use crate::fed::{self, site::ModelInfo};
use crate::federation::Federation;
use crate::log_head::SignedHead;
use crate::messages::{self, control, frost_step, AggregateStart, DecisionMsg, Offer};
use crate::release::{signing_message, SignedRelease};
use crate::site::MAX_MESSAGES_PER_ROUND;
use crate::spec::{Aggregation, Analysis, SignedStudy, StudySpec};

mod he_phase;
mod sign_phase;

pub(crate) use sign_phase::{aggregate_or_culprits, SignOutcome};

/// Failed attempts of a phase before the study fails.
pub const MAX_PHASE_ATTEMPTS: u32 = 3;

/// Outcome of the offer phase.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Decided {
    /// Accepting sites (party ids).
    pub accepted: Vec<u32>,
    /// Largest minimum cell count among them.
    pub min_cell_count: u64,
    /// Model analyses: the sites' merged model description (design columns, group labels).
    #[serde(default)]
    pub model: Option<ModelInfo>,
}

/// Outcome of the aggregation phase: the secure sum over the survivors.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Aggregated {
    /// Sum mod 2^64 of the survivors' vectors.
    pub sum: Vec<u64>,
    /// Survivors (party ids).
    pub survivors: Vec<u32>,
}

/// Everything the coordinator persists about a study (never a site's contribution).
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Last round used (a resumed study continues with a larger one).
    pub round: u32,
    /// Offer outcome.
    pub decided: Option<Decided>,
    /// Aggregation outcome.
    pub aggregated: Option<Aggregated>,
    /// Release document being signed.
    pub document: Option<String>,
    /// The signed release.
    pub release: Option<SignedRelease>,
    /// Why the study failed or was refused.
    pub failure: Option<String>,
    /// Failed attempts of the current phase.
    pub failed_attempts: u32,
    /// Which phase is running (`offer`, `aggregate`, `sign`, `done`, `failed`).
    pub phase: String,
    /// Model analyses: the result (JSON) once the last aggregation round is done.
    #[serde(default)]
    pub model_result: Option<String>,
    /// Model analyses: the secure sums of the rounds so far (kept in memory only; a restarted
    /// coordinator re-runs the rounds of an unfinished aggregation from the start).
    #[serde(skip)]
    pub transcript: Vec<Vec<u64>>,
    /// Model analyses: aggregation rounds completed.
    #[serde(default)]
    pub model_rounds: u32,
    /// The coordinator's audit-log head co-signed after the study ended
    /// ([`CoordinatorStudy::cosign_log_head`]); the runtime records it in its log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_head: Option<SignedHead>,
    /// Sites left out of this study's FROST signing after they sent an invalid signature share
    /// (party ids, ascending); the release and the log head are co-signed by any `t` others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_signers: Vec<u32>,
}

/// A message to send to a site.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Outbound {
    /// Recipient.
    pub to: PartyId,
    /// Round.
    pub round: u32,
    /// Routing label.
    pub kind: String,
    /// Signed envelope.
    pub bytes: Vec<u8>,
}

/// What the runtime must do, in order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Action {
    /// Persist this checkpoint before doing anything that follows.
    Checkpoint(Box<Checkpoint>),
    /// Send.
    Send(Outbound),
    /// Record a log line (rejections, dropouts; never values).
    Log(String),
    /// The study ended (released, refused or failed); see the last checkpoint.
    Finished,
}

enum AggStep {
    R0(ServerRound0),
    R1(ServerRound1),
    R2(ServerRound2),
    R3(ServerRound3),
    R4(ServerRound4),
    Empty,
}

/// What a FROST signing phase signs: the release, or the coordinator's audit-log head.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Purpose {
    Release,
    LogHead,
}

impl Purpose {
    fn message(self, document: &str) -> Vec<u8> {
        match self {
            Purpose::Release => signing_message(document),
            Purpose::LogHead => crate::log_head::signing_message(document),
        }
    }
}

enum Phase {
    Offer { accepted: BTreeSet<PartyId>, refused: Vec<String>, min_cell: u64, infos: Vec<ModelInfo> },
    Aggregate(Box<AggStep>),
    HeSetup(Box<crate::he_coord::Setup>),
    HeRound(Box<crate::he_coord::Round>),
    Commit { document: String, commitments: BTreeMap<PartyId, SigningCommitment>, purpose: Purpose },
    Share { document: String, request: SigningRequest, shares: BTreeMap<PartyId, SignatureShare>, purpose: Purpose },
    Done,
}

/// One study as the coordinator drives it.
pub struct CoordinatorStudy {
    fed: Arc<Federation>,
    key: SigningKey,
    study: SignedStudy,
    spec: StudySpec,
    id: StudyId,
    cp: Checkpoint,
    phase: Phase,
    guard: SessionGuard,
    expected: BTreeSet<PartyId>,
    got: BTreeSet<PartyId>,
    he: he_phase::HeState,
    /// The log-head co-sign request being signed (kept to ask again without an excluded signer).
    head_request: Option<crate::log_head::HeadSignStart>,
}

impl std::fmt::Debug for CoordinatorStudy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorStudy").field("study", &self.spec.study_id).field("round", &self.cp.round).finish()
    }
}

impl CoordinatorStudy {
    /// Starts (`checkpoint` default) or resumes a study. `key` is the coordinator's identity key.
    ///
    /// Errors: [`ProtocolError`] if the study is not signed by a researcher of `fed` or names an
    /// unknown site.
    pub fn resume(
        fed: Arc<Federation>,
        key: SigningKey,
        study: SignedStudy,
        checkpoint: Checkpoint,
    ) -> Result<(Self, Vec<Action>), ProtocolError> {
        let unverified = study.unverified_spec()?;
        let rkey = fed.researcher_key(&unverified.researcher).copied().ok_or_else(|| ProtocolError::BadSignature {
            what: "study spec",
            signer: format!("{} (not a researcher of this federation)", unverified.researcher),
        })?;
        let spec = study.verify(&rkey)?;
        for s in &spec.sites {
            if fed.site_by_name(s).is_none() {
                return Err(ProtocolError::invalid(
                    "study spec",
                    "sites",
                    format!("`{s}` is not a site of the federation"),
                ));
            }
        }
        let id = spec.id()?;
        let guard = SessionGuard::new(SessionId { study: id, round: checkpoint.round }, MAX_MESSAGES_PER_ROUND);
        let mut me = CoordinatorStudy {
            fed,
            key,
            study,
            spec,
            id,
            cp: checkpoint,
            phase: Phase::Done,
            guard,
            expected: BTreeSet::new(),
            got: BTreeSet::new(),
            he: Default::default(),
            head_request: None,
        };
        let mut out = Vec::new();
        me.begin_phase(&mut out);
        Ok((me, out))
    }

    /// The study spec.
    pub fn spec(&self) -> &StudySpec {
        &self.spec
    }

    /// The current checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.cp
    }

    /// Sites the current step still waits for.
    pub fn waiting_for(&self) -> Vec<PartyId> {
        self.expected.difference(&self.got).copied().collect()
    }

    /// True once released, refused or failed.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    fn session(&self) -> SessionId {
        SessionId { study: self.id, round: self.cp.round }
    }

    fn party(&self, name: &str) -> Option<PartyId> {
        self.fed.site_by_name(name).map(|s| s.party)
    }

    fn name(&self, p: PartyId) -> String {
        self.fed.site(p).map(|s| s.name.clone()).unwrap_or_else(|| p.to_string())
    }

    fn send(&self, out: &mut Vec<Action>, to: PartyId, protocol: ProtocolId, step: u8, payload: Vec<u8>) {
        let env = Envelope {
            protocol,
            step,
            sender: PartyId::COORDINATOR,
            recipient: to,
            session: self.session(),
            nonce: messages::nonce(),
            payload,
        };
        match messages::seal_envelope(&self.key, env) {
            Ok(bytes) => out.push(Action::Send(Outbound {
                to,
                round: self.cp.round,
                kind: messages::kind_label(protocol, step),
                bytes,
            })),
            Err(e) => out.push(Action::Log(format!("cannot seal a message to {to}: {e}"))),
        }
    }

    fn fail(&mut self, out: &mut Vec<Action>, reason: String) {
        out.push(Action::Log(format!("study failed: {reason}")));
        self.cp.failure = Some(reason);
        self.begin_phase(out);
    }

    /// Starts the next needed phase in a fresh round (persisting the round first).
    fn begin_phase(&mut self, out: &mut Vec<Action>) {
        self.cp.round = self.cp.round.saturating_add(1);
        self.guard = SessionGuard::new(self.session(), MAX_MESSAGES_PER_ROUND);
        self.got.clear();
        self.expected.clear();
        let phase = if self.cp.failure.is_some() {
            "failed"
        } else if self.cp.release.is_some() {
            "done"
        } else if self.cp.decided.is_none() {
            "offer"
        } else if self.cp.aggregated.is_none() && self.spec.aggregation == Aggregation::He && !self.he.ready() {
            "he_setup"
        } else if self.cp.aggregated.is_none() {
            "aggregate"
        } else {
            "sign"
        };
        self.cp.phase = phase.to_owned();
        out.push(Action::Checkpoint(Box::new(self.cp.clone())));
        match phase {
            "offer" => self.start_offer(out),
            "aggregate" => self.start_aggregate(out),
            "he_setup" => self.start_he_setup(out),
            "sign" => self.start_sign(out),
            _ => {
                self.phase = Phase::Done;
                out.push(Action::Finished);
            }
        }
    }

    fn retry(&mut self, out: &mut Vec<Action>, reason: String) {
        self.cp.failed_attempts += 1;
        out.push(Action::Log(format!(
            "round {} failed ({reason}); attempt {}",
            self.cp.round, self.cp.failed_attempts
        )));
        if self.cp.failed_attempts >= MAX_PHASE_ATTEMPTS {
            self.fail(out, format!("{} after {MAX_PHASE_ATTEMPTS} attempts", reason));
        } else {
            self.begin_phase(out);
        }
    }

    fn phase_done(&mut self, out: &mut Vec<Action>) {
        self.cp.failed_attempts = 0;
        self.begin_phase(out);
    }

    fn start_offer(&mut self, out: &mut Vec<Action>) {
        let payload = messages::to_payload(&Offer { study: self.study.clone() });
        let parties: Vec<PartyId> = self.spec.sites.iter().filter_map(|s| self.party(s)).collect();
        for &p in &parties {
            self.send(out, p, ProtocolId::Control, control::OFFER, payload.clone());
        }
        self.expected = parties.into_iter().collect();
        self.phase = Phase::Offer { accepted: BTreeSet::new(), refused: Vec::new(), min_cell: 1, infos: Vec::new() };
    }

    fn finish_offer(&mut self, out: &mut Vec<Action>) {
        let Phase::Offer { accepted, refused, min_cell, infos } = std::mem::replace(&mut self.phase, Phase::Done)
        else {
            return;
        };
        let silent: Vec<String> = self.waiting_for().into_iter().map(|p| self.name(p)).collect();
        if !refused.is_empty() {
            return self.fail(out, format!("refused: {}", refused.join("; ")));
        }
        if !silent.is_empty() {
            out.push(Action::Log(format!("no answer from {}", silent.join(", "))));
        }
        if accepted.len() < self.spec.threshold as usize {
            return self.fail(
                out,
                format!("only {} sites accepted, the threshold is {}", accepted.len(), self.spec.threshold),
            );
        }
        let model = if matches!(self.spec.analysis, Analysis::Describe(_)) {
            None
        } else {
            // Only SecAgg+ sums the words exactly modulo 2^64 (packed counts, one-word reals).
            let sum = match self.spec.aggregation {
                crate::spec::Aggregation::Secagg => fed::planner::WordSum::Modular64,
                crate::spec::Aggregation::He => fed::planner::WordSum::Limbs,
            };
            match merge_info(&infos, sum) {
                Ok(m) => Some(m),
                Err(e) => return self.fail(out, e.to_string()),
            }
        };
        self.cp.decided =
            Some(Decided { accepted: accepted.iter().map(|p| p.0).collect(), min_cell_count: min_cell, model });
        self.phase_done(out);
    }

    fn start_aggregate(&mut self, out: &mut Vec<Action>) {
        let Some(decided) = self.cp.decided.clone() else { return };
        let parties: Vec<PartyId> = decided.accepted.iter().map(|p| PartyId(*p)).collect();
        let (len, query) = match &self.spec.analysis {
            Analysis::Describe(d) => (describe::vector_len(d), None),
            analysis => {
                let model = decided.model.clone().unwrap_or_default();
                match plan(analysis, &model, &self.cp.transcript) {
                    Ok(Step::Query(q)) => (fed::vector_len_for(analysis, &model, &q), Some(q)),
                    Ok(Step::Done(result)) => {
                        self.cp.model_result = Some(result.to_string());
                        let survivors = decided.accepted.clone();
                        self.cp.aggregated = Some(Aggregated { sum: Vec::new(), survivors });
                        return self.phase_done(out);
                    }
                    Err(e) => return self.fail(out, e.to_string()),
                }
            }
        };
        let Some(decided) = &self.cp.decided else { return };
        let params =
            match SecAggParams::new(self.session(), &parties, self.spec.threshold as usize, len, Graph::Complete) {
                Ok(p) => p,
                Err(e) => return self.fail(out, format!("secure aggregation parameters: {e}")),
            };
        if let Some(q) = &query {
            out.push(Action::Log(format!(
                "round {}: aggregation {} ({}, {len} words)",
                self.cp.round,
                self.cp.model_rounds + 1,
                q.label()
            )));
        }
        if self.spec.aggregation == Aggregation::He {
            return self.start_he_round(out, len, query);
        }
        let payload = messages::to_payload(&AggregateStart {
            study: self.study.clone(),
            parties: decided.accepted.clone(),
            query,
        });
        for &p in &parties {
            self.send(out, p, ProtocolId::Control, control::AGGREGATE_START, payload.clone());
        }
        self.expected = parties.into_iter().collect();
        self.phase = Phase::Aggregate(Box::new(AggStep::R0(ServerRound0::new(params))));
    }

    /// Closes the current SecAgg+ step with the messages received so far.
    fn advance_aggregate(&mut self, out: &mut Vec<Action>) {
        let Phase::Aggregate(step) = &mut self.phase else { return };
        let step = std::mem::replace(&mut **step, AggStep::Empty);
        let senders: Vec<PartyId> = self.got.iter().copied().collect();
        let dropped: Vec<String> = self.waiting_for().into_iter().map(|p| self.name(p)).collect();
        if !dropped.is_empty() {
            out.push(Action::Log(format!("round {}: dropped out: {}", self.cp.round, dropped.join(", "))));
        }
        self.expected = senders.iter().copied().collect();
        self.got.clear();
        let next = match step {
            AggStep::R0(s) => s.finish().map(|(next, list)| {
                for &p in &senders {
                    self.send(out, p, ProtocolId::SecAgg, 1, list.encode());
                }
                AggStep::R1(next)
            }),
            AggStep::R1(s) => s.finish().map(|(next, fwd)| {
                for (p, f) in fwd {
                    self.send(out, p, ProtocolId::SecAgg, 3, f.encode());
                }
                AggStep::R2(next)
            }),
            AggStep::R2(s) => s.finish().map(|(next, req)| {
                for &p in &senders {
                    self.send(out, p, ProtocolId::SecAgg, 5, req.encode());
                }
                AggStep::R3(next)
            }),
            AggStep::R3(s) => s.finish().map(|(next, req)| {
                for &p in &senders {
                    self.send(out, p, ProtocolId::SecAgg, 7, req.encode());
                }
                AggStep::R4(next)
            }),
            AggStep::R4(s) => match s.finish() {
                Ok(agg) => {
                    let survivors = agg.survivors.iter().map(|p| p.0).collect();
                    return self.aggregation_done(agg.sum, survivors, out);
                }
                Err(e) => Err(e),
            },
            AggStep::Empty => return,
        };
        match next {
            Ok(step) => self.phase = Phase::Aggregate(Box::new(step)),
            Err(e) => self.retry(out, format!("secure aggregation: {e}")),
        }
    }

    /// One secure sum is known (SecAgg+ or threshold HE): the describe result, or another round
    /// of a model analysis (start_aggregate then plans the next query or the result).
    fn aggregation_done(&mut self, sum: Vec<u64>, survivors: Vec<u32>, out: &mut Vec<Action>) {
        if matches!(self.spec.analysis, Analysis::Describe(_)) {
            self.cp.aggregated = Some(Aggregated { sum, survivors });
        } else {
            self.cp.transcript.push(sum);
            self.cp.model_rounds += 1;
        }
        self.phase_done(out)
    }

    /// Handles a message from site `from` (the transport-authenticated sender).
    pub fn receive(&mut self, from: PartyId, bytes: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        if let Err(e) = self.try_receive(from, bytes, &mut out) {
            out.push(Action::Log(format!("rejected message from {}: {e}", self.name(from))));
        }
        out
    }

    fn try_receive(&mut self, from: PartyId, bytes: &[u8], out: &mut Vec<Action>) -> Result<(), ProtocolError> {
        let env = messages::open(bytes, self.fed.roster())?;
        if env.sender != from || env.recipient != PartyId::COORDINATOR {
            return Err(ProtocolError::Unexpected {
                party: from,
                reason: "envelope sender is not the connected site, or not addressed to the coordinator".into(),
            });
        }
        self.guard.check(&env)?;
        if !self.expected.contains(&from) || self.got.contains(&from) {
            return Err(ProtocolError::Unexpected { party: from, reason: "not expected in this step".into() });
        }
        let unexpected = |r: &str| ProtocolError::Unexpected { party: from, reason: r.to_owned() };
        match (&mut self.phase, env.protocol, env.step) {
            (Phase::Offer { accepted, refused, min_cell, infos }, ProtocolId::Control, control::DECISION) => {
                let d: DecisionMsg = messages::from_payload("decision", &env.payload)?;
                let name = self.fed.site(from).map(|s| s.name.clone()).unwrap_or_default();
                if d.accept {
                    accepted.insert(from);
                    if let Some(m) = d.model {
                        infos.push(m);
                    }
                    *min_cell = (*min_cell).max(d.min_cell_count);
                    out.push(Action::Log(format!("{name} accepted")));
                } else {
                    out.push(Action::Log(format!("{name} refused: {}", d.reason)));
                    refused.push(format!("{name}: {}", d.reason));
                }
            }
            (Phase::Aggregate(step), ProtocolId::SecAgg, s) => match &mut **step {
                AggStep::R0(r) if s == 0 => r.receive(from, AdvertiseKeys::from_envelope(&env)?, self.fed.roster())?,
                AggStep::R1(r) if s == 2 => r.receive(from, ShareKeys::from_envelope(&env)?)?,
                // Added to the running sum straight from the payload bytes (strictly parsed).
                AggStep::R2(r) if s == 4 => r.receive_encoded(from, &env.payload)?,
                AggStep::R3(r) if s == 6 => {
                    r.receive(from, ConsistencySignature::from_envelope(&env)?, self.fed.roster())?
                }
                AggStep::R4(r) if s == 8 => r.receive(from, UnmaskShares::from_envelope(&env)?)?,
                _ => return Err(unexpected("SecAgg+ message of another step")),
            },
            (Phase::HeSetup(setup), ProtocolId::ThresholdBfv, _) => {
                setup.receive(from, &env, bytes, self.fed.roster())?
            }
            (Phase::HeRound(round), ProtocolId::ThresholdBfv, _) => round.receive(from, &env)?,
            (Phase::Commit { commitments, .. }, ProtocolId::Frost, frost_step::COMMITMENT) => {
                commitments.insert(from, SigningCommitment::decode(&env.payload)?);
            }
            (Phase::Share { shares, .. }, ProtocolId::Frost, frost_step::SHARE) => {
                shares.insert(from, SignatureShare::decode(&env.payload)?);
            }
            _ => return Err(unexpected("message of another phase")),
        }
        self.got.insert(from);
        if self.got == self.expected {
            self.advance(out);
        }
        Ok(())
    }

    fn advance(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Offer { .. } => self.finish_offer(out),
            Phase::Aggregate(_) => self.advance_aggregate(out),
            Phase::HeSetup(_) => self.advance_he_setup(out),
            Phase::HeRound(_) => self.advance_he_round(out),
            Phase::Commit { .. } | Phase::Share { .. } => self.advance_sign(out),
            Phase::Done => {}
        }
    }

    /// The current step's deadline passed: close it with the sites that answered (sites that did
    /// not are treated as dropped out).
    pub fn timeout(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.advance(&mut out);
        out
    }
}
