//! The site's side of a study, sans-IO: fed with the bytes of authenticated-transport frames from
//! the coordinator, it answers with signed messages to send, audit events to record, and reveal
//! records to persist. It owns the site's data and policy; the policy is re-applied before every
//! contribution, so it cannot be skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::OsRng;
use seh_crypto::frost::sign::{SigningNonces, SigningRequest};
use seh_crypto::frost::{self, KeyShare};
use seh_crypto::secagg::{
    round0, round1, round2, round3, ConsistencyRequest, ForwardedShares, Graph, KeyList, SecAggMessage, SecAggParams,
    Step, UnmaskRequest,
};
use seh_crypto::wire::{Envelope, Header, PartyId, ProtocolId, SessionGuard, SessionId, SigningKey, VerifyingKey};
use seh_stats::DataFrame;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::describe::{self, respects_min_count};
use crate::error::ProtocolError;
use crate::fed;
use crate::federation::Federation;
use crate::hex;
use crate::messages::{self, control, frost_step, AggregateStart, DecisionMsg, Offer, Released, SignStart};
use crate::policy::{Admitted, Refused, SiteGovernance};
use crate::release::{signing_message, ReleaseDocument};
use crate::spec::{Aggregation, Analysis, SignedStudy, StudySpec};

mod he_phase;
mod log_head;

/// Most messages one sender may send in one round.
pub const MAX_MESSAGES_PER_ROUND: usize = 16;

/// Audit event kinds (mapped onto the audit log's kinds by the runtime).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuditKind {
    /// A study request or phase request arrived.
    Request,
    /// The policy accepted or refused.
    PolicyDecision,
    /// A protected contribution left the site (metadata only).
    Contribution,
    /// A release was co-signed or announced.
    Release,
    /// A message was rejected or a protocol step failed.
    Rejected,
}

/// One audit event: never a data value or a secret.
#[derive(Clone, PartialEq, Debug)]
pub struct AuditEvent {
    /// Kind.
    pub kind: AuditKind,
    /// Details (ids, counts, sizes, reasons, digests).
    pub details: Map<String, Value>,
}

/// What the runtime must do, in order.
#[derive(Clone, PartialEq, Debug)]
pub enum SiteOutput {
    /// Send these signed envelope bytes to the coordinator.
    Send {
        /// Study id (hex).
        study_id: String,
        /// Round.
        round: u32,
        /// Routing label.
        kind: String,
        /// Signed envelope.
        bytes: Vec<u8>,
    },
    /// Record this audit event.
    Audit(AuditEvent),
    /// Persist that this site revealed unmasking shares for `survivors` in `study_id` **before**
    /// sending the following message; pass the record back to [`SiteMachine::new`] after a restart.
    RecordReveal {
        /// Study id.
        study_id: String,
        /// Survivor party ids.
        survivors: Vec<u32>,
    },
    /// Persist this coordinator log head as the one this site co-signed last **before** sending
    /// the following message; pass it back to [`SiteMachine::with_cosigned_head`] after a restart.
    RecordLogHead(crate::log_head::HeadRef),
    /// Persist this study's threshold-HE key state (secret: encrypt it at rest) **before** sending
    /// the following message, replacing the study's earlier record; pass the records back to
    /// [`SiteMachine::with_he_keys`] after a restart.
    RecordHeKey(Box<crate::he_keyrec::HeKeyRecord>),
}

enum Stage {
    Idle,
    Advertised(round0::Round0Secret, Zeroizing<Vec<u64>>),
    Shared(round1::Round1Secret, Zeroizing<Vec<u64>>),
    Masked(round2::Round2Secret),
    Signed(round3::Round3Secret),
    Committed(SigningNonces, String),
    /// FROST commitment sent for this coordinator log-head document.
    CommittedHead(SigningNonces, String),
    /// FROST commitment sent for this release-from-the-store document.
    CommittedStore(SigningNonces, String),
    /// Signature share sent for this release document; kept so the release need not resend it.
    CoSigned(String),
    Finished,
}

struct SiteStudy {
    round: u32,
    guard: SessionGuard,
    stage: Stage,
}

/// Everything a site node needs to take part in studies.
pub struct SiteMachine {
    fed: Arc<Federation>,
    me: PartyId,
    name: String,
    key: SigningKey,
    frost_share: KeyShare,
    gov: SiteGovernance,
    data: DataFrame,
    studies: BTreeMap<String, SiteStudy>,
    revealed: BTreeMap<String, Vec<u32>>,
    /// Per study, the model frame and prepared rows reused across rounds (at most 4 studies).
    caches: BTreeMap<String, fed::site::SiteCache>,
    /// Threshold-HE key shares and set-ups (`aggregation = "he"`).
    he: crate::he_site::SiteHe,
    /// The coordinator log head this site co-signed last ([`SiteOutput::RecordLogHead`]).
    cosigned_head: Option<crate::log_head::HeadRef>,
}

impl std::fmt::Debug for SiteMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteMachine").field("me", &self.me).field("name", &self.name).finish_non_exhaustive()
    }
}

fn audit(kind: AuditKind, study: &str, details: Value) -> SiteOutput {
    let mut map = Map::new();
    map.insert("study".into(), Value::String(study.to_owned()));
    if let Value::Object(d) = details {
        map.extend(d);
    }
    SiteOutput::Audit(AuditEvent { kind, details: map })
}

impl SiteMachine {
    /// A site `name` of `fed` with identity `key`, FROST share `frost_share`, governance `gov`
    /// (policy, consent, DP ledger) and `data`. `revealed` is what [`SiteOutput::RecordReveal`]
    /// asked to persist before a restart.
    ///
    /// Errors: [`ProtocolError::Invalid`] if `name` is not a site of `fed`, `key` is not its
    /// identity key, the FROST share is not this site's, or the governance's patient keys do not
    /// match the data rows.
    pub fn new(
        fed: Arc<Federation>,
        name: &str,
        key: SigningKey,
        frost_share: KeyShare,
        gov: SiteGovernance,
        data: DataFrame,
        revealed: BTreeMap<String, Vec<u32>>,
    ) -> Result<Self, ProtocolError> {
        let site =
            fed.site_by_name(name).ok_or_else(|| ProtocolError::invalid("site", "name", "not on the federation"))?;
        if site.key != key.verifying_key() {
            return Err(ProtocolError::invalid("site", "identity key", "does not match the federation file"));
        }
        if frost_share.party() != Some(site.party) || frost_share.group_key() != fed.group_key() {
            return Err(ProtocolError::invalid("site", "frost share", "not this site's share of the federation group"));
        }
        gov.check_rows(data.nrows())?;
        let me = site.party;
        Ok(SiteMachine {
            fed,
            me,
            name: name.to_owned(),
            key,
            frost_share,
            gov,
            data,
            studies: BTreeMap::new(),
            revealed,
            caches: BTreeMap::new(),
            he: Default::default(),
            cosigned_head: None,
        })
    }

    /// This site's party id.
    pub fn party(&self) -> PartyId {
        self.me
    }

    /// Handles one message from the coordinator. Rejected or failing messages yield an audit event
    /// (naming the reason) and nothing to send.
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<SiteOutput> {
        let mut out = Vec::new();
        let env = match messages::open(bytes, self.fed.roster()) {
            Ok(env) => env,
            Err(e) => {
                out.push(audit(AuditKind::Rejected, "-", json!({ "reason": e.to_string() })));
                return out;
            }
        };
        let study_id = hex::encode(&env.session.study.0);
        if env.sender != PartyId::COORDINATOR || (env.recipient != self.me && env.recipient != PartyId::BROADCAST) {
            let reason = "not from the coordinator or not addressed to this site";
            out.push(audit(AuditKind::Rejected, &study_id, json!({ "reason": reason })));
            return out;
        }
        let round = env.session.round;
        let entry = self.studies.entry(study_id.clone()).or_insert_with(|| SiteStudy {
            round,
            guard: SessionGuard::new(env.session, MAX_MESSAGES_PER_ROUND),
            stage: Stage::Idle,
        });
        if round > entry.round {
            *entry =
                SiteStudy { round, guard: SessionGuard::new(env.session, MAX_MESSAGES_PER_ROUND), stage: Stage::Idle };
        }
        if let Err(e) = entry.guard.check(&env) {
            out.push(audit(AuditKind::Rejected, &study_id, json!({ "round": round, "reason": e.to_string() })));
            return out;
        }
        if let Err(e) = self.dispatch(&study_id, &env, &mut out) {
            out.push(audit(
                AuditKind::Rejected,
                &study_id,
                json!({ "round": round, "step": messages::kind_label(env.protocol, env.step), "reason": e.to_string() }),
            ));
            if let Some(s) = self.studies.get_mut(&study_id) {
                s.stage = Stage::Idle;
            }
        }
        out
    }

    fn researcher_key(&self, spec: &StudySpec) -> Result<VerifyingKey, ProtocolError> {
        self.fed.researcher_key(&spec.researcher).copied().ok_or_else(|| ProtocolError::BadSignature {
            what: "study spec",
            signer: format!("{} (not a researcher of this federation)", spec.researcher),
        })
    }

    /// Verifies the study and applies the site's governance (policy, consent filter, floors);
    /// an admitted study carries the consented rows every computation must use.
    fn check_study(
        &mut self,
        study: &SignedStudy,
        session: &SessionId,
    ) -> Result<(StudySpec, Result<Admitted, Refused>), ProtocolError> {
        let unverified = study.unverified_spec()?;
        let spec = study.verify(&self.researcher_key(&unverified)?)?;
        if spec.id()? != session.study {
            return Err(ProtocolError::invalid("study", "study_id", "differs from the envelope's study"));
        }
        let rkey = self.researcher_key(&spec)?;
        let study_id = spec.study_id.clone();
        let admitted = self.gov.admit(&study_id, &self.name, &rkey, &spec, &self.data)?;
        Ok((spec, admitted))
    }

    /// Answers a FROST signing start (a release, a log head, a release from the store) with a fresh
    /// commitment and keeps the nonces in the stage `stage` builds, until the signing request.
    fn frost_commit(
        &mut self,
        out: &mut Vec<SiteOutput>,
        study_id: &str,
        session: SessionId,
        stage: impl FnOnce(SigningNonces) -> Stage,
    ) -> Result<(), ProtocolError> {
        let (nonces, commitment) = frost::commit(&self.frost_share, &mut OsRng);
        let env = Envelope {
            protocol: ProtocolId::Frost,
            step: frost_step::COMMITMENT,
            sender: self.me,
            recipient: PartyId::COORDINATOR,
            session,
            nonce: messages::nonce(),
            payload: commitment.encode()?,
        };
        self.send(out, study_id, env)?;
        self.set_stage(study_id, stage(nonces));
        Ok(())
    }

    fn send(&self, out: &mut Vec<SiteOutput>, study_id: &str, env: Envelope) -> Result<(), ProtocolError> {
        let (round, kind) = (env.session.round, messages::kind_label(env.protocol, env.step));
        let bytes = messages::seal_envelope(&self.key, env)?;
        out.push(SiteOutput::Send { study_id: study_id.to_owned(), round, kind, bytes });
        Ok(())
    }

    fn control(&self, session: SessionId, step: u8, payload: Vec<u8>) -> Envelope {
        Envelope {
            protocol: ProtocolId::Control,
            step,
            sender: self.me,
            recipient: PartyId::COORDINATOR,
            session,
            nonce: messages::nonce(),
            payload,
        }
    }

    fn secagg<M: SecAggMessage>(&self, session: SessionId, msg: &M) -> Envelope {
        msg.to_envelope(session, self.me, PartyId::COORDINATOR, messages::nonce())
    }

    fn take_stage(&mut self, study_id: &str) -> Stage {
        self.studies.get_mut(study_id).map(|s| std::mem::replace(&mut s.stage, Stage::Idle)).unwrap_or(Stage::Idle)
    }

    fn set_stage(&mut self, study_id: &str, stage: Stage) {
        if let Some(s) = self.studies.get_mut(study_id) {
            s.stage = stage;
        }
    }

    fn unexpected(reason: &str) -> ProtocolError {
        ProtocolError::Unexpected { party: PartyId::COORDINATOR, reason: reason.to_owned() }
    }

    fn dispatch(&mut self, study_id: &str, env: &Envelope, out: &mut Vec<SiteOutput>) -> Result<(), ProtocolError> {
        let session = env.session;
        let round = session.round;
        match (env.protocol, env.step) {
            (ProtocolId::Control, control::OFFER) => {
                let offer: Offer = messages::from_payload("offer", &env.payload)?;
                let (spec, decision) = self.check_study(&offer.study, &session)?;
                out.push(audit(
                    AuditKind::Request,
                    study_id,
                    json!({ "researcher": spec.researcher, "analysis": spec.analysis.kind(), "spec_sha256": offer.study.digest() }),
                ));
                // The decision and what the consent filter removed go to this site's audit log;
                // the coordinator and researcher get only accept/refuse with the rule and reason.
                let (accept, reason, model) = match decision {
                    Ok(a) => {
                        let c = a.consent.audit_value();
                        out.push(audit(
                            AuditKind::PolicyDecision,
                            study_id,
                            json!({ "accept": true, "purpose": spec.purpose, "dp_epsilon": spec.dp_epsilon,
                                    "consent_removed": c.removed, "consent_opt_out": c.by_opt_out,
                                    "consent_deny": c.by_deny_provision, "consent_none": c.by_no_applicable_consent }),
                        ));
                        (true, String::new(), a.model)
                    }
                    Err(r) => {
                        let rule = match &r {
                            Refused::Policy(p) => Some(p.rule.key()),
                            Refused::Study(_) => None,
                        };
                        out.push(audit(
                            AuditKind::PolicyDecision,
                            study_id,
                            json!({ "accept": false, "rule": rule, "reason": r.to_string() }),
                        ));
                        (false, r.to_string(), None)
                    }
                };
                let msg = DecisionMsg { accept, reason, min_cell_count: self.gov.min_cell_count(), model };
                let env = self.control(session, control::DECISION, messages::to_payload(&msg));
                self.send(out, study_id, env)
            }
            (ProtocolId::Control, control::AGGREGATE_START) => {
                let start: AggregateStart = messages::from_payload("aggregate start", &env.payload)?;
                let (spec, decision) = self.check_study(&start.study, &session)?;
                let admitted =
                    decision.map_err(|r| ProtocolError::invalid("aggregate start", "policy", r.to_string()))?;
                let data = admitted.data.clone();
                let input = match (&spec.analysis, &start.query) {
                    (Analysis::Describe(d), None) => describe::local_vector(d, &data)?,
                    (Analysis::Describe(_), Some(_)) | (_, None) => {
                        return Err(ProtocolError::invalid("aggregate start", "query", "does not fit the analysis"))
                    }
                    (analysis, Some(q)) => {
                        out.push(audit(
                            AuditKind::Request,
                            study_id,
                            json!({ "round": round, "what": "compute", "query": q.label() }),
                        ));
                        if !self.caches.contains_key(study_id) && self.caches.len() >= 4 {
                            self.caches.pop_first();
                        }
                        let cache = self.caches.entry(study_id.to_owned()).or_default();
                        fed::site::answer_cached(analysis, q, &data, cache)?
                    }
                };
                // The only way out: seh-policy's admission (and DP noise, if the study asks).
                let input = self.gov.contribution(study_id, &spec, &admitted, input)?.into_inner();
                if spec.aggregation == Aggregation::He {
                    return self.he_contribute(study_id, session, &input, out);
                }
                let parties: Vec<PartyId> = start.parties.iter().map(|p| PartyId(*p)).collect();
                let params =
                    SecAggParams::new(session, &parties, spec.threshold as usize, input.len(), Graph::Complete)?;
                let (secret, advert) = round0::advertise(&params, self.me, &self.key, &mut OsRng)?;
                let env = self.secagg(session, &advert);
                self.send(out, study_id, env)?;
                self.set_stage(study_id, Stage::Advertised(secret, input));
                Ok(())
            }
            (ProtocolId::SecAgg, 1) => {
                let Stage::Advertised(secret, input) = self.take_stage(study_id) else {
                    return Err(Self::unexpected("key list outside the key-sharing step"));
                };
                let list = KeyList::from_envelope(env)?;
                let (secret, msg) = round1::share_keys(secret, &list, self.fed.roster(), &mut OsRng)?;
                let env = self.secagg(session, &msg);
                self.send(out, study_id, env)?;
                self.set_stage(study_id, Stage::Shared(secret, input));
                Ok(())
            }
            (ProtocolId::SecAgg, 3) => {
                let Stage::Shared(secret, mut input) = self.take_stage(study_id) else {
                    return Err(Self::unexpected("forwarded shares outside the masking step"));
                };
                let fwd = ForwardedShares::from_envelope(env)?;
                let words = input.len();
                // Masked by seh-crypto straight into the wire buffer, then framed and signed in
                // place; the plaintext never outlives this call.
                let (secret, buf) = round2::masked_input_buf(secret, &fwd, std::mem::take(&mut *input), &mut OsRng)?;
                let bytes = buf.len();
                let step = Step::MaskedInput as u8;
                let header = Header {
                    protocol: ProtocolId::SecAgg,
                    step,
                    sender: self.me,
                    recipient: PartyId::COORDINATOR,
                    session,
                    nonce: messages::nonce(),
                };
                let kind = messages::kind_label(ProtocolId::SecAgg, step);
                let sealed = buf.seal(&header, &self.key)?;
                out.push(SiteOutput::Send { study_id: study_id.to_owned(), round, kind, bytes: sealed });
                out.push(audit(
                    AuditKind::Contribution,
                    study_id,
                    json!({ "round": round, "what": "masked vector", "words": words, "bytes": bytes }),
                ));
                self.set_stage(study_id, Stage::Masked(secret));
                Ok(())
            }
            (ProtocolId::SecAgg, 5) => {
                let Stage::Masked(secret) = self.take_stage(study_id) else {
                    return Err(Self::unexpected("consistency request outside the consistency step"));
                };
                let req = ConsistencyRequest::from_envelope(env)?;
                let (secret, msg) = round3::sign_survivors(secret, &req, &self.key)?;
                let env = self.secagg(session, &msg);
                self.send(out, study_id, env)?;
                self.set_stage(study_id, Stage::Signed(secret));
                Ok(())
            }
            (ProtocolId::SecAgg, 7) => {
                let Stage::Signed(secret) = self.take_stage(study_id) else {
                    return Err(Self::unexpected("unmask request outside the unmasking step"));
                };
                let req = UnmaskRequest::from_envelope(env)?;
                let survivors: Vec<u32> = req.survivors.iter().map(|p| p.0).collect();
                // Reveal for at most one survivor set per study: two different survivor sets would
                // let the coordinator subtract two sums and learn one site's contribution.
                if let Some(prev) = self.revealed.get(study_id) {
                    if *prev != survivors {
                        return Err(ProtocolError::invalid(
                            "unmask request",
                            "survivors",
                            "this site already revealed shares for a different survivor set of this study",
                        ));
                    }
                }
                let shares = round3::unmask(secret, &req, self.fed.roster())?;
                self.revealed.insert(study_id.to_owned(), survivors.clone());
                out.push(SiteOutput::RecordReveal { study_id: study_id.to_owned(), survivors: survivors.clone() });
                let env = self.secagg(session, &shares);
                self.send(out, study_id, env)?;
                out.push(audit(
                    AuditKind::Contribution,
                    study_id,
                    json!({ "round": round, "what": "unmasking shares", "survivors": survivors.len() }),
                ));
                self.set_stage(study_id, Stage::Finished);
                Ok(())
            }
            (ProtocolId::Control, control::SIGN_START) => {
                let start: SignStart = messages::from_payload("sign start", &env.payload)?;
                let (spec, decision) = self.check_study(&start.study, &session)?;
                if let Err(r) = decision {
                    return Err(ProtocolError::invalid("sign start", "policy", r.to_string()));
                }
                let doc = ReleaseDocument::from_json(&start.document)?;
                let bad = |f: &str, r: &str| Err(ProtocolError::invalid("release document", f, r));
                if doc.study_id != spec.study_id || doc.spec_sha256 != start.study.digest() {
                    return bad("study_id", "does not name this study");
                }
                if doc.analysis != spec.analysis.kind() {
                    return bad("analysis", "differs from the study");
                }
                if !doc.contributors.contains(&self.name) {
                    return bad("contributors", "this site did not contribute to this result");
                }
                if doc.min_cell_count < self.gov.min_cell_count()
                    || !respects_min_count(&doc.result, doc.min_cell_count)
                {
                    return bad("result", "violates this site's minimum cell count");
                }
                if let Err(e) = self.gov.check_model_release(&doc.analysis, doc.model.as_ref()) {
                    return bad("model", &e);
                }
                out.push(audit(
                    AuditKind::Request,
                    study_id,
                    json!({ "round": round, "what": "co-sign release", "suppressed": doc.result.suppressed }),
                ));
                self.frost_commit(out, study_id, session, |nonces| Stage::Committed(nonces, start.document))
            }
            (ProtocolId::Frost, frost_step::REQUEST) => {
                let (nonces, document, head, store) = match self.take_stage(study_id) {
                    Stage::Committed(nonces, document) => (nonces, document, false, false),
                    Stage::CommittedHead(nonces, document) => (nonces, document, true, false),
                    Stage::CommittedStore(nonces, document) => (nonces, document, false, true),
                    _ => return Err(Self::unexpected("signing request without a commitment")),
                };
                let request = SigningRequest::decode(&env.payload)?;
                let message = if head {
                    crate::log_head::signing_message(&document)
                } else if store {
                    crate::he_cosign::signing_message(&document)
                } else {
                    signing_message(&document)
                };
                if request.message() != message.as_slice() {
                    return Err(ProtocolError::invalid("signing request", "message", "is not the approved document"));
                }
                let share = frost::sign_share(&request, nonces, &self.frost_share)?;
                let env = Envelope {
                    protocol: ProtocolId::Frost,
                    step: frost_step::SHARE,
                    sender: self.me,
                    recipient: PartyId::COORDINATOR,
                    session,
                    nonce: messages::nonce(),
                    payload: share.encode(),
                };
                self.send(out, study_id, env)?;
                let digest = hex::encode(&sha2_digest(document.as_bytes()));
                if store {
                    out.push(audit(
                        AuditKind::Release,
                        study_id,
                        json!({ "what": "co-signed release from the encrypted store", "document_sha256": digest }),
                    ));
                    self.set_stage(study_id, Stage::Finished);
                    return Ok(());
                }
                if head {
                    out.push(audit(
                        AuditKind::Release,
                        study_id,
                        json!({ "what": "co-signed coordinator log head", "document_sha256": digest }),
                    ));
                    self.set_stage(study_id, Stage::Finished);
                    return Ok(());
                }
                out.push(audit(
                    AuditKind::Release,
                    study_id,
                    json!({ "what": "co-signed", "document_sha256": digest }),
                ));
                self.set_stage(study_id, Stage::CoSigned(document));
                Ok(())
            }
            (ProtocolId::Control, control::RELEASED) => {
                let mut released: Released = messages::from_payload("released", &env.payload)?;
                // A co-signer already holds the document; the release then omits it.
                if released.release.document.is_empty() {
                    let Stage::CoSigned(document) = self.take_stage(study_id) else {
                        return Err(Self::unexpected("release without its document, and none co-signed"));
                    };
                    released.release.document = document;
                }
                let doc = released.release.verify(&self.fed.group_key())?;
                let digest = hex::encode(&sha2_digest(released.release.document.as_bytes()));
                out.push(audit(
                    AuditKind::Release,
                    study_id,
                    json!({ "what": "released", "document_sha256": digest, "signers": released.release.signers, "contributors": doc.contributors }),
                ));
                Ok(())
            }
            (ProtocolId::Control, control::HEAD_SIGN_START) => self.head_sign_start(study_id, env, out),
            (ProtocolId::Control, control::HE_SETUP_START) => self.he_setup_start(study_id, env, out),
            (ProtocolId::ThresholdBfv, _) => self.he_message(study_id, env, out),
            _ => Err(Self::unexpected("unknown message kind")),
        }
    }
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).into()
}
