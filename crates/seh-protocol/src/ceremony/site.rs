//! A site's side of the key ceremony, sans-IO. A node without a FROST key share runs this
//! machine instead of [`crate::site::SiteMachine`] ("enrolment mode"): it takes part in the
//! ceremony, refuses every study with a named reason, and ends holding its key share and the
//! signed federation file.
//!
//! The runtime must act on [`CeremonyOutput`]s in order: [`CeremonyOutput::PersistShare`] and
//! [`CeremonyOutput::PersistFederation`] are written to disk **before** the message that follows
//! them is sent, so a site never reports a key (or confirms a roster) it could lose in a crash.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::OsRng;
use seh_crypto::frost::sign::{SigningNonces, SigningRequest};
use seh_crypto::frost::{self, GroupPublicKey, KeyShare};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionGuard, SessionId, SigningKey, StudyId};
use serde_json::{json, Map, Value};

use super::{
    decode_bundle, file_text, kind_label, sha256_hex, step, CeremonyStart, Enrolled, FailureReport, KeyReport,
    RosterSignStart, RosterSigned, ROUND_DKG, ROUND_SIGN,
};
use crate::error::ProtocolError;
use crate::federation::{roster_signing_message, Federation, Membership, RosterSignature};
use crate::hex;
use crate::messages::{self, control, frost_step, DecisionMsg};
use crate::site::{AuditEvent, AuditKind, MAX_MESSAGES_PER_ROUND};
use crate::site_dkg::DkgSite;

/// What the runtime must do, in order.
#[derive(Debug)]
pub enum CeremonyOutput {
    /// Send these signed envelope bytes to the coordinator.
    Send {
        /// Ceremony or study id (hex), for the transport frame.
        session: String,
        /// Round.
        round: u32,
        /// Routing label.
        kind: String,
        /// Signed envelope.
        bytes: Vec<u8>,
    },
    /// Record this audit event (metadata only).
    Audit(AuditEvent),
    /// Persist this site's FROST key share (owner-only, atomically) **before** sending the
    /// message that follows. Replaces any share of an earlier, unfinished ceremony.
    PersistShare(Box<KeyShare>),
    /// Persist this signed federation file **before** sending the message that follows.
    PersistFederation {
        /// The file text (identical at every site and at the coordinator).
        text: String,
    },
    /// The ceremony finished; [`CeremonySite::take_enrolled`] returns the share and federation.
    Enrolled,
}

enum Stage {
    Round1(Box<DkgSite>),
    Round2(Box<DkgSite>),
    Keyed { share: KeyShare, group: GroupPublicKey },
    Committed(Box<Committed>),
    Shared { share: KeyShare, group: GroupPublicKey },
    Done,
    Failed,
}

struct Committed {
    share: KeyShare,
    group: GroupPublicKey,
    nonces: SigningNonces,
    document: String,
}

struct Active {
    id: StudyId,
    guard: SessionGuard,
    stage: Stage,
}

/// Most studies whose offers an enrolling site remembers (replay guard of its refusals).
const MAX_REFUSED_STUDIES: usize = 16;

/// One site's side of the key ceremony (enrolment mode).
pub struct CeremonySite {
    members: Arc<Membership>,
    me: PartyId,
    name: String,
    key: SigningKey,
    active: Option<Active>,
    refused: BTreeMap<StudyId, SessionGuard>,
    enrolled: Option<(KeyShare, Federation)>,
}

impl std::fmt::Debug for CeremonySite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonySite").field("name", &self.name).field("secrets", &"<redacted>").finish()
    }
}

fn event(kind: AuditKind, ceremony: &str, details: Value) -> CeremonyOutput {
    let mut map = Map::new();
    map.insert("ceremony".into(), Value::String(ceremony.to_owned()));
    if let Value::Object(d) = details {
        map.extend(d);
    }
    CeremonyOutput::Audit(AuditEvent { kind, details: map })
}

/// The site a failure blames, if the error names one (never the coordinator: it only relays).
fn culprit(e: &ProtocolError) -> Option<PartyId> {
    match e {
        ProtocolError::Unexpected { party, .. } if party.is_site() => Some(*party),
        ProtocolError::Frost(f) => f.culprits().first().copied(),
        _ => None,
    }
}

impl CeremonySite {
    /// Site `name` of `members` with identity `key`.
    ///
    /// Errors: [`ProtocolError::Invalid`] if `name` is not a site or `key` is not its identity key.
    pub fn new(members: Arc<Membership>, name: &str, key: SigningKey) -> Result<Self, ProtocolError> {
        let site = members
            .site_by_name(name)
            .ok_or_else(|| ProtocolError::invalid("site", "name", "not on the federation"))?;
        if site.key != key.verifying_key() {
            return Err(ProtocolError::invalid("site", "identity key", "does not match the federation file"));
        }
        let me = site.party;
        Ok(CeremonySite {
            members,
            me,
            name: name.to_owned(),
            key,
            active: None,
            refused: BTreeMap::new(),
            enrolled: None,
        })
    }

    /// The share and the verified signed federation once [`CeremonyOutput::Enrolled`] was emitted.
    pub fn take_enrolled(&mut self) -> Option<(KeyShare, Federation)> {
        self.enrolled.take()
    }

    /// Handles one message from the coordinator. A rejected message yields an audit event naming
    /// the reason; a ceremony step that fails yields a [`FailureReport`] to the coordinator.
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<CeremonyOutput> {
        let mut out = Vec::new();
        let env = match messages::open(bytes, self.members.roster()) {
            Ok(env) => env,
            Err(e) => {
                out.push(event(AuditKind::Rejected, "-", json!({ "reason": e.to_string() })));
                return out;
            }
        };
        let id = hex::encode(&env.session.study.0);
        if env.sender != PartyId::COORDINATOR || (env.recipient != self.me && env.recipient != PartyId::BROADCAST) {
            let reason = "not from the coordinator or not addressed to this site";
            out.push(event(AuditKind::Rejected, &id, json!({ "reason": reason })));
            return out;
        }
        let ours = self.active.as_ref().is_some_and(|a| a.id == env.session.study);
        let result = match (env.protocol, env.step) {
            (ProtocolId::Dkg, step::START) => self.start(&env, &mut out),
            (ProtocolId::Control, control::OFFER) => self.refuse_study(&env, &mut out),
            _ if ours => self.step(&env, &mut out),
            _ => Err(ProtocolError::invalid(
                "message",
                messages::kind_label(env.protocol, env.step),
                "this site is enrolling (no FROST key share yet): it takes part only in the key ceremony",
            )),
        };
        if let Err(e) = result {
            out.push(event(AuditKind::Rejected, &id, json!({ "round": env.session.round, "reason": e.to_string() })));
        }
        out
    }

    fn send(
        &self,
        out: &mut Vec<CeremonyOutput>,
        session: SessionId,
        protocol: ProtocolId,
        step: u8,
        payload: Vec<u8>,
    ) -> Result<(), ProtocolError> {
        let bytes = messages::seal(&self.key, protocol, step, self.me, PartyId::COORDINATOR, session, payload)?;
        out.push(CeremonyOutput::Send {
            session: hex::encode(&session.study.0),
            round: session.round,
            kind: kind_label(protocol, step),
            bytes,
        });
        Ok(())
    }

    /// Enrolment mode answers every study offer with a refusal naming why.
    fn refuse_study(&mut self, env: &Envelope, out: &mut Vec<CeremonyOutput>) -> Result<(), ProtocolError> {
        if !self.refused.contains_key(&env.session.study) && self.refused.len() >= MAX_REFUSED_STUDIES {
            self.refused.pop_first();
        }
        let guard = self
            .refused
            .entry(env.session.study)
            .or_insert_with(|| SessionGuard::new(env.session, MAX_MESSAGES_PER_ROUND));
        if guard.session().round != env.session.round {
            guard.advance_round(env.session.round);
        }
        guard.check(env)?;
        let reason = format!(
            "site `{}` is enrolling: it has no FROST key share yet and takes part in no study until the \
             key ceremony has run (`seh coordinator ceremony`)",
            self.name
        );
        let study = hex::encode(&env.session.study.0);
        out.push(event(AuditKind::PolicyDecision, &study, json!({ "accept": false, "reason": reason })));
        let msg = DecisionMsg { accept: false, reason, min_cell_count: 0, model: None };
        self.send(out, env.session, ProtocolId::Control, control::DECISION, messages::to_payload(&msg))
    }

    fn start(&mut self, env: &Envelope, out: &mut Vec<CeremonyOutput>) -> Result<(), ProtocolError> {
        if self.enrolled.is_some() || matches!(self.active.as_ref().map(|a| &a.stage), Some(Stage::Done)) {
            return Err(ProtocolError::invalid("ceremony start", "state", "this site already finished a ceremony"));
        }
        if env.session.round != ROUND_DKG {
            return Err(ProtocolError::invalid("ceremony start", "round", "a ceremony starts in round 0"));
        }
        let mut guard = SessionGuard::new(env.session, MAX_MESSAGES_PER_ROUND);
        guard.check(env)?;
        let id = hex::encode(&env.session.study.0);
        let start: CeremonyStart = messages::from_payload("ceremony start", &env.payload)?;
        let n = self.members.sites().count();
        out.push(event(
            AuditKind::Request,
            &id,
            json!({ "what": "key ceremony", "sites": n, "threshold": self.members.frost_threshold }),
        ));
        // A replacing ceremony drops the old one's secrets (zeroized by their types).
        self.active = Some(Active { id: env.session.study, guard, stage: Stage::Failed });
        if start.members_sha256 != hex::encode(&self.members.members_digest()?) {
            let e = ProtocolError::invalid(
                "ceremony start",
                "members_sha256",
                "the ceremony's roster differs from this site's federation file",
            );
            return self.fail(env.session, &id, e, out);
        }
        let sites = self.members.sites().map(|s| (s.party, s.key)).collect();
        let threshold = self.members.frost_threshold;
        match DkgSite::start(self.me, sites, threshold, env.session.study.0, self.key.clone(), &mut OsRng) {
            Ok((dkg, round1)) => {
                self.send(out, env.session, ProtocolId::Dkg, step::ROUND1, round1)?;
                if let Some(a) = self.active.as_mut() {
                    a.stage = Stage::Round1(Box::new(dkg));
                }
                Ok(())
            }
            Err(e) => self.fail(env.session, &id, e, out),
        }
    }

    /// Reports a failed step to the coordinator (naming the culprit when known) and forgets the
    /// ceremony's secrets.
    fn fail(
        &mut self,
        session: SessionId,
        id: &str,
        e: ProtocolError,
        out: &mut Vec<CeremonyOutput>,
    ) -> Result<(), ProtocolError> {
        if let Some(a) = self.active.as_mut() {
            a.stage = Stage::Failed;
        }
        let culprit = culprit(&e);
        let culprit_name = culprit.and_then(|p| self.members.site(p)).map(|s| s.name.clone());
        out.push(event(
            AuditKind::Rejected,
            id,
            json!({ "round": session.round, "event": "key ceremony failed", "culprit": culprit_name, "reason": e.to_string() }),
        ));
        let report = FailureReport { culprit: culprit.map(|p| p.0), reason: e.to_string() };
        self.send(out, session, ProtocolId::Dkg, step::FAILED, messages::to_payload(&report))
    }

    fn step(&mut self, env: &Envelope, out: &mut Vec<CeremonyOutput>) -> Result<(), ProtocolError> {
        let Some(mut active) = self.active.take() else { return Ok(()) };
        let id = hex::encode(&active.id.0);
        if env.session.round == ROUND_SIGN
            && active.guard.session().round == ROUND_DKG
            && matches!(active.stage, Stage::Keyed { .. })
        {
            active.guard.advance_round(ROUND_SIGN);
        }
        if let Err(e) = active.guard.check(env) {
            self.active = Some(active);
            return Err(e.into());
        }
        let stage = std::mem::replace(&mut active.stage, Stage::Failed);
        self.active = Some(active);
        match self.advance(stage, env, &id, out) {
            Ok(next) => {
                if let Some(a) = self.active.as_mut() {
                    a.stage = next;
                }
                Ok(())
            }
            Err(e) => self.fail(env.session, &id, e, out),
        }
    }

    fn advance(
        &mut self,
        stage: Stage,
        env: &Envelope,
        id: &str,
        out: &mut Vec<CeremonyOutput>,
    ) -> Result<Stage, ProtocolError> {
        let s = env.session;
        let unexpected = |r: &str| ProtocolError::Unexpected { party: PartyId::COORDINATOR, reason: r.to_owned() };
        match (env.protocol, env.step, stage) {
            (ProtocolId::Dkg, step::ROUND1_ALL, Stage::Round1(mut dkg)) => {
                let items = decode_bundle(&env.payload, PartyId::COORDINATOR)?;
                let round2 = dkg.round2(&items)?;
                self.send(out, s, ProtocolId::Dkg, step::ROUND2, round2)?;
                Ok(Stage::Round2(dkg))
            }
            (ProtocolId::Dkg, step::ROUND2_ALL, Stage::Round2(dkg)) => {
                let items = decode_bundle(&env.payload, PartyId::COORDINATOR)?;
                let (share, group) = dkg.finish(&items)?;
                if share.party() != Some(self.me) || share.group_key() != group.verifying_key() {
                    return Err(ProtocolError::invalid("key ceremony", "share", "does not belong to the group key"));
                }
                let group_hex = hex::encode(&group.encode()?);
                // Persisted before the key report leaves: the site never reports a key it could lose.
                out.push(CeremonyOutput::PersistShare(Box::new(share.clone())));
                out.push(event(
                    AuditKind::Contribution,
                    id,
                    json!({ "what": "key share generated and stored", "group_key": hex::encode(&group.verifying_key().to_bytes()) }),
                ));
                self.send(out, s, ProtocolId::Dkg, step::KEYED, messages::to_payload(&KeyReport { group: group_hex }))?;
                Ok(Stage::Keyed { share, group })
            }
            (ProtocolId::Dkg, step::SIGN_START, Stage::Keyed { share, group }) => {
                let start: RosterSignStart = messages::from_payload("roster sign start", &env.payload)?;
                // The site signs only the roster it holds itself, with the key it derived.
                if start.document != self.members.roster_document(&group)? {
                    return Err(ProtocolError::invalid(
                        "roster sign start",
                        "document",
                        "is not this site's federation file with the group key it derived; refusing to sign",
                    ));
                }
                out.push(event(
                    AuditKind::Request,
                    id,
                    json!({ "round": s.round, "what": "sign roster", "document_sha256": sha256_hex(start.document.as_bytes()) }),
                ));
                let (nonces, commitment) = frost::commit(&share, &mut OsRng);
                self.send(out, s, ProtocolId::Frost, frost_step::COMMITMENT, commitment.encode()?)?;
                Ok(Stage::Committed(Box::new(Committed { share, group, nonces, document: start.document })))
            }
            (ProtocolId::Frost, frost_step::REQUEST, Stage::Committed(c)) => {
                let Committed { share, group, nonces, document } = *c;
                let request = SigningRequest::decode(&env.payload)?;
                if request.message() != roster_signing_message(&document).as_slice() {
                    return Err(ProtocolError::invalid("signing request", "message", "is not the approved roster"));
                }
                let sig_share = frost::sign_share(&request, nonces, &share)?;
                self.send(out, s, ProtocolId::Frost, frost_step::SHARE, sig_share.encode())?;
                out.push(event(AuditKind::Release, id, json!({ "round": s.round, "what": "co-signed roster" })));
                Ok(Stage::Shared { share, group })
            }
            (ProtocolId::Dkg, step::SIGNED, stage @ (Stage::Committed(_) | Stage::Shared { .. })) => {
                let (share, group) = match stage {
                    Stage::Committed(c) => (c.share, c.group),
                    Stage::Shared { share, group } => (share, group),
                    _ => return Err(unexpected("roster signature outside the signing step")),
                };
                let signed: RosterSigned = messages::from_payload("roster signed", &env.payload)?;
                let signature =
                    RosterSignature { ceremony: id.to_owned(), signature: signed.signature, signers: signed.signers };
                let file = self.members.signed_file(&group, signature)?;
                let fed = Federation::from_file(file.clone())?;
                fed.verify_roster()?;
                if fed.group_key() != share.group_key() {
                    return Err(ProtocolError::invalid("roster signed", "group", "differs from this site's key share"));
                }
                let text = file_text(&file)?;
                let digest = sha256_hex(text.as_bytes());
                out.push(CeremonyOutput::PersistFederation { text });
                out.push(event(
                    AuditKind::Release,
                    id,
                    json!({ "what": "roster signed", "file_sha256": digest,
                            "signers": fed.roster_signature().map(|r| r.signers.clone()).unwrap_or_default() }),
                ));
                self.send(
                    out,
                    s,
                    ProtocolId::Dkg,
                    step::ENROLLED,
                    messages::to_payload(&Enrolled { file_sha256: digest }),
                )?;
                self.enrolled = Some((share, fed));
                out.push(CeremonyOutput::Enrolled);
                Ok(Stage::Done)
            }
            (_, _, Stage::Done) => Err(unexpected("the ceremony is over")),
            (_, _, Stage::Failed) => Err(unexpected("the ceremony failed at this site")),
            _ => Err(unexpected("message of another ceremony step")),
        }
    }
}
