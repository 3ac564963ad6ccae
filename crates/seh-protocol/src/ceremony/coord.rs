//! The coordinator's side of the key ceremony, sans-IO: relays the sites' key-generation
//! messages, checks that every site derived the same group key, runs the FROST signature over the
//! roster with `t` sites, and produces the signed federation file. It never holds a share.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seh_crypto::frost::sign::{SignatureShare, SigningCommitment, SigningRequest};
use seh_crypto::frost::{self, GroupPublicKey};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionGuard, SessionId, SigningKey, StudyId};

use super::{
    encode_bundle, file_text, kind_label, sha256_hex, step, CeremonyStart, Enrolled, FailureReport, KeyReport,
    RosterSignStart, RosterSigned, ROUND_DKG, ROUND_SIGN,
};
use crate::coordinator::Outbound;
use crate::error::ProtocolError;
use crate::federation::{roster_signing_message, Federation, Membership, RosterSignature};
use crate::hex;
use crate::messages::{self, frost_step};
use crate::site::MAX_MESSAGES_PER_ROUND;
use crate::site_dkg;

/// Why a ceremony failed; names the site(s) at fault.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum CeremonyError {
    /// Sites did not answer a step in time.
    #[error("no answer from {} in the {step} step", sites.join(", "))]
    Silent {
        /// The step.
        step: &'static str,
        /// The silent sites.
        sites: Vec<String>,
    },
    /// A site sent a message the coordinator could check and refuse.
    #[error("site `{site}` misbehaved: {reason}")]
    Misbehaved {
        /// The site.
        site: String,
        /// Why.
        reason: String,
    },
    /// A site reported that another site sent it a bad message (e.g. a share that does not
    /// decrypt or does not match its dealer's commitments).
    #[error("site `{culprit}` is at fault (reported by `{reporter}`): {reason}")]
    Reported {
        /// The site that reported.
        reporter: String,
        /// The site at fault.
        culprit: String,
        /// What the reporter found.
        reason: String,
    },
    /// A site could not go on and could not tell whose fault it was.
    #[error("site `{reporter}` could not go on: {reason}")]
    Failed {
        /// The site that reported.
        reporter: String,
        /// Why.
        reason: String,
    },
    /// Sites derived different group keys.
    #[error("the sites derived different group keys: {} disagree with the others", sites.join(", "))]
    GroupKeyMismatch {
        /// The sites whose key differs from the most common one.
        sites: Vec<String>,
    },
    /// The roster signature could not be made.
    #[error("roster signature: {0}")]
    Signing(String),
}

/// The ceremony's result.
#[derive(Clone, Debug)]
pub struct SignedRoster {
    /// Ceremony id (hex).
    pub ceremony: String,
    /// The signed federation file text (identical at every site).
    pub text: String,
    /// The verified federation.
    pub federation: Federation,
    /// Group verifying key (64 hex).
    pub group_key: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
    /// Sites that confirmed they persisted the same file.
    pub confirmed: Vec<String>,
}

/// What the runtime must do, in order.
#[derive(Clone, Debug)]
pub enum CeremonyAction {
    /// Send to a site.
    Send(Outbound),
    /// Record an audit line (metadata only).
    Log(String),
    /// The ceremony succeeded: write [`SignedRoster::text`] as the federation file.
    Done(Box<SignedRoster>),
    /// The ceremony failed.
    Failed(CeremonyError),
}

enum Stage {
    Round1(BTreeMap<PartyId, Vec<u8>>),
    Round2(BTreeMap<PartyId, Vec<u8>>),
    Keys(BTreeMap<PartyId, Vec<u8>>),
    Commit {
        group: GroupPublicKey,
        document: String,
        commitments: BTreeMap<PartyId, SigningCommitment>,
    },
    Share {
        group: GroupPublicKey,
        document: String,
        request: SigningRequest,
        shares: BTreeMap<PartyId, SignatureShare>,
    },
    Ack {
        roster: Box<SignedRoster>,
        digest: String,
    },
    Over,
}

/// The coordinator's ceremony driver.
pub struct CeremonyCoordinator {
    members: Arc<Membership>,
    key: SigningKey,
    id: StudyId,
    guard: SessionGuard,
    expected: BTreeSet<PartyId>,
    got: BTreeSet<PartyId>,
    stage: Stage,
}

impl std::fmt::Debug for CeremonyCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CeremonyCoordinator").field("ceremony", &hex::encode(&self.id.0)).finish_non_exhaustive()
    }
}

impl CeremonyCoordinator {
    /// Starts ceremony `id` (fresh random bytes per ceremony) among every site of `members`;
    /// `key` is the coordinator's identity key. Returns the driver and the start messages.
    ///
    /// Errors: [`ProtocolError`] if the members cannot be encoded.
    pub fn start(
        members: Arc<Membership>,
        key: SigningKey,
        id: [u8; 16],
    ) -> Result<(Self, Vec<CeremonyAction>), ProtocolError> {
        let id = StudyId(id);
        let session = SessionId { study: id, round: ROUND_DKG };
        let start = CeremonyStart { members_sha256: hex::encode(&members.members_digest()?) };
        let sites: BTreeSet<PartyId> = members.sites().map(|s| s.party).collect();
        let me = CeremonyCoordinator {
            members,
            key,
            id,
            guard: SessionGuard::new(session, MAX_MESSAGES_PER_ROUND),
            expected: sites.clone(),
            got: BTreeSet::new(),
            stage: Stage::Round1(BTreeMap::new()),
        };
        let mut out = vec![CeremonyAction::Log(format!(
            "key ceremony started among {} sites (t = {})",
            sites.len(),
            me.members.frost_threshold
        ))];
        let payload = messages::to_payload(&start);
        for &p in &sites {
            me.send(&mut out, p, ProtocolId::Dkg, step::START, payload.clone());
        }
        Ok((me, out))
    }

    /// Ceremony id (hex).
    pub fn id(&self) -> String {
        hex::encode(&self.id.0)
    }

    /// Sites the current step still waits for.
    pub fn waiting_for(&self) -> Vec<PartyId> {
        self.expected.difference(&self.got).copied().collect()
    }

    /// True once done or failed.
    pub fn is_over(&self) -> bool {
        matches!(self.stage, Stage::Over)
    }

    fn name(&self, p: PartyId) -> String {
        self.members.site(p).map(|s| s.name.clone()).unwrap_or_else(|| p.to_string())
    }

    fn names(&self, ps: impl IntoIterator<Item = PartyId>) -> Vec<String> {
        ps.into_iter().map(|p| self.name(p)).collect()
    }

    fn send(&self, out: &mut Vec<CeremonyAction>, to: PartyId, protocol: ProtocolId, step: u8, payload: Vec<u8>) {
        let session = self.guard.session();
        let env = Envelope {
            protocol,
            step,
            sender: PartyId::COORDINATOR,
            recipient: to,
            session,
            nonce: messages::nonce(),
            payload,
        };
        match messages::seal_envelope(&self.key, env) {
            Ok(bytes) => out.push(CeremonyAction::Send(Outbound {
                to,
                round: session.round,
                kind: kind_label(protocol, step),
                bytes,
            })),
            Err(e) => out.push(CeremonyAction::Log(format!("cannot seal a message to {to}: {e}"))),
        }
    }

    fn fail(&mut self, out: &mut Vec<CeremonyAction>, e: CeremonyError) {
        out.push(CeremonyAction::Log(format!("key ceremony failed: {e}")));
        out.push(CeremonyAction::Failed(e));
        self.stage = Stage::Over;
    }

    fn all_sites(&self) -> BTreeSet<PartyId> {
        self.members.sites().map(|s| s.party).collect()
    }

    /// Handles a message from site `from` (the transport-authenticated sender).
    pub fn receive(&mut self, from: PartyId, bytes: &[u8]) -> Vec<CeremonyAction> {
        let mut out = Vec::new();
        if self.is_over() {
            out.push(CeremonyAction::Log(format!(
                "message from {} after the ceremony ended; ignored",
                self.name(from)
            )));
            return out;
        }
        let env = match self.authenticate(from, bytes) {
            Ok(env) => env,
            Err(e) => {
                out.push(CeremonyAction::Log(format!("rejected message from {}: {e}", self.name(from))));
                return out;
            }
        };
        if (env.protocol, env.step) == (ProtocolId::Dkg, step::FAILED) {
            let report: FailureReport = match messages::from_payload("failure report", &env.payload) {
                Ok(r) => r,
                Err(e) => FailureReport { culprit: None, reason: format!("unreadable failure report ({e})") },
            };
            let reporter = self.name(from);
            let culprit = report.culprit.map(PartyId).filter(|p| self.members.site(*p).is_some());
            let e = match culprit {
                Some(c) => CeremonyError::Reported { reporter, culprit: self.name(c), reason: report.reason },
                None => CeremonyError::Failed { reporter, reason: report.reason },
            };
            self.fail(&mut out, e);
            return out;
        }
        if !self.expected.contains(&from) || self.got.contains(&from) {
            out.push(CeremonyAction::Log(format!(
                "rejected message from {}: not expected in this step",
                self.name(from)
            )));
            return out;
        }
        if let Err(reason) = self.take(from, &env) {
            let site = self.name(from);
            self.fail(&mut out, CeremonyError::Misbehaved { site, reason });
            return out;
        }
        self.got.insert(from);
        if self.got == self.expected {
            self.advance(&mut out, false);
        }
        out
    }

    fn authenticate(&mut self, from: PartyId, bytes: &[u8]) -> Result<Envelope, ProtocolError> {
        let env = messages::open(bytes, self.members.roster())?;
        if env.sender != from || env.recipient != PartyId::COORDINATOR {
            return Err(ProtocolError::Unexpected {
                party: from,
                reason: "envelope sender is not the connected site, or not addressed to the coordinator".into(),
            });
        }
        self.guard.check(&env)?;
        Ok(env)
    }

    /// Opens a relayed inner `site_dkg` message and checks it is `from`'s message of `inner_step`.
    fn inner(&self, from: PartyId, payload: &[u8], inner_step: u8) -> Result<(), String> {
        let inner = messages::open(payload, self.members.roster()).map_err(|e| e.to_string())?;
        if inner.sender != from
            || inner.protocol != ProtocolId::Dkg
            || inner.step != inner_step
            || inner.session != site_dkg::session(self.id.0)
            || inner.recipient != PartyId::BROADCAST
        {
            return Err("relayed key-generation message of another site, step or ceremony".into());
        }
        Ok(())
    }

    /// Stores `from`'s message of the current step; `Err` names what is wrong with it.
    fn take(&mut self, from: PartyId, env: &Envelope) -> Result<(), String> {
        let what = (env.protocol, env.step);
        match &mut self.stage {
            Stage::Round1(_) | Stage::Round2(_) => {
                let (want, inner_step) = match self.stage {
                    Stage::Round1(_) => (step::ROUND1, site_dkg::STEP_ROUND1),
                    _ => (step::ROUND2, site_dkg::STEP_ROUND2),
                };
                if what != (ProtocolId::Dkg, want) {
                    return Err("message of another step".into());
                }
                self.inner(from, &env.payload, inner_step)?;
                if let Stage::Round1(m) | Stage::Round2(m) = &mut self.stage {
                    m.insert(from, env.payload.clone());
                }
            }
            Stage::Keys(m) => {
                if what != (ProtocolId::Dkg, step::KEYED) {
                    return Err("message of another step".into());
                }
                let report: KeyReport =
                    messages::from_payload("key report", &env.payload).map_err(|e| e.to_string())?;
                m.insert(from, hex::decode(&report.group).ok_or("group key is not hex")?);
            }
            Stage::Commit { commitments, .. } => {
                if what != (ProtocolId::Frost, frost_step::COMMITMENT) {
                    return Err("message of another step".into());
                }
                commitments.insert(from, SigningCommitment::decode(&env.payload).map_err(|e| e.to_string())?);
            }
            Stage::Share { shares, .. } => {
                if what != (ProtocolId::Frost, frost_step::SHARE) {
                    return Err("message of another step".into());
                }
                shares.insert(from, SignatureShare::decode(&env.payload).map_err(|e| e.to_string())?);
            }
            Stage::Ack { digest, .. } => {
                if what != (ProtocolId::Dkg, step::ENROLLED) {
                    return Err("message of another step".into());
                }
                let ack: Enrolled = messages::from_payload("enrolled", &env.payload).map_err(|e| e.to_string())?;
                if ack.file_sha256 != *digest {
                    return Err("persisted a federation file that differs from the signed one".into());
                }
            }
            Stage::Over => return Err("the ceremony is over".into()),
        }
        Ok(())
    }

    /// The current step's deadline passed. Key generation needs every site, so silence fails it
    /// (naming the silent sites); signing goes on with the sites that committed if at least `t`
    /// did; confirmations still missing are logged.
    pub fn timeout(&mut self) -> Vec<CeremonyAction> {
        let mut out = Vec::new();
        if !self.is_over() {
            self.advance(&mut out, true);
        }
        out
    }

    fn advance(&mut self, out: &mut Vec<CeremonyAction>, timed_out: bool) {
        let silent = self.waiting_for();
        let waiting = self.names(silent.iter().copied());
        let step_name = match &self.stage {
            Stage::Round1(_) => "round-1",
            Stage::Round2(_) => "round-2",
            Stage::Keys(_) => "group-key report",
            Stage::Commit { .. } => "roster commitment",
            Stage::Share { .. } => "roster signature share",
            Stage::Ack { .. } => "confirmation",
            Stage::Over => return,
        };
        let t = usize::from(self.members.frost_threshold);
        let partial_ok = match &self.stage {
            Stage::Commit { commitments, .. } => commitments.len() >= t,
            Stage::Ack { .. } => true,
            _ => false,
        };
        if timed_out && !waiting.is_empty() && !partial_ok {
            return self.fail(out, CeremonyError::Silent { step: step_name, sites: waiting });
        }
        if timed_out && !waiting.is_empty() {
            out.push(CeremonyAction::Log(format!("no answer from {} in the {step_name} step", waiting.join(", "))));
        }
        let all = self.all_sites();
        self.got.clear();
        self.expected = all.clone();
        match std::mem::replace(&mut self.stage, Stage::Over) {
            Stage::Round1(m) => {
                let bundle = encode_bundle(&m.into_values().collect::<Vec<_>>());
                for &p in &all {
                    self.send(out, p, ProtocolId::Dkg, step::ROUND1_ALL, bundle.clone());
                }
                out.push(CeremonyAction::Log("key ceremony: round-1 broadcasts relayed".into()));
                self.stage = Stage::Round2(BTreeMap::new());
            }
            Stage::Round2(m) => {
                let bundle = encode_bundle(&m.into_values().collect::<Vec<_>>());
                for &p in &all {
                    self.send(out, p, ProtocolId::Dkg, step::ROUND2_ALL, bundle.clone());
                }
                out.push(CeremonyAction::Log("key ceremony: sealed round-2 shares relayed".into()));
                self.stage = Stage::Keys(BTreeMap::new());
            }
            Stage::Keys(m) => self.check_keys(out, m),
            Stage::Commit { group, document, commitments } => self.request(out, group, document, commitments),
            Stage::Share { group, document, request, shares } => {
                self.aggregate(out, group, &document, &request, &shares)
            }
            Stage::Ack { mut roster, .. } => {
                roster.confirmed = self.names(all.iter().copied().filter(|p| !silent.contains(p)));
                out.push(CeremonyAction::Log(format!(
                    "key ceremony done: group key {}, roster signed by {}",
                    roster.group_key,
                    roster.signers.join(", ")
                )));
                out.push(CeremonyAction::Done(roster));
            }
            Stage::Over => {}
        }
    }

    fn check_keys(&mut self, out: &mut Vec<CeremonyAction>, keys: BTreeMap<PartyId, Vec<u8>>) {
        let mut counts: BTreeMap<&Vec<u8>, usize> = BTreeMap::new();
        for k in keys.values() {
            *counts.entry(k).or_default() += 1;
        }
        let Some((common, _)) = counts.iter().max_by_key(|(_, c)| **c) else {
            return self.fail(out, CeremonyError::Signing("no group key reported".into()));
        };
        let common = (*common).clone();
        let odd: Vec<PartyId> = keys.iter().filter(|(_, k)| **k != common).map(|(p, _)| *p).collect();
        if !odd.is_empty() {
            let sites = self.names(odd);
            return self.fail(out, CeremonyError::GroupKeyMismatch { sites });
        }
        let group = match GroupPublicKey::decode(&common) {
            Ok(g) => g,
            Err(e) => return self.fail(out, CeremonyError::Signing(format!("reported group key: {e}"))),
        };
        let mut listed = group.parties();
        listed.sort();
        if listed != self.all_sites().into_iter().collect::<Vec<_>>() {
            return self.fail(out, CeremonyError::Signing("the group key does not list exactly the sites".into()));
        }
        let document = match self.members.roster_document(&group) {
            Ok(d) => d,
            Err(e) => return self.fail(out, CeremonyError::Signing(e.to_string())),
        };
        out.push(CeremonyAction::Log(format!(
            "key ceremony: every site derived group key {}",
            hex::encode(&group.verifying_key().to_bytes())
        )));
        self.guard.advance_round(ROUND_SIGN);
        let payload = messages::to_payload(&RosterSignStart { document: document.clone() });
        for p in self.all_sites() {
            self.send(out, p, ProtocolId::Dkg, step::SIGN_START, payload.clone());
        }
        self.stage = Stage::Commit { group, document, commitments: BTreeMap::new() };
    }

    fn request(
        &mut self,
        out: &mut Vec<CeremonyAction>,
        group: GroupPublicKey,
        document: String,
        commitments: BTreeMap<PartyId, SigningCommitment>,
    ) {
        let t = usize::from(self.members.frost_threshold);
        // Exactly t signers: the lowest party ids among those that committed.
        let chosen: BTreeMap<PartyId, SigningCommitment> = commitments.into_iter().take(t).collect();
        let request = match SigningRequest::new(&chosen, &roster_signing_message(&document)) {
            Ok(r) => r,
            Err(e) => return self.fail(out, CeremonyError::Signing(e.to_string())),
        };
        let payload = match request.encode() {
            Ok(p) => p,
            Err(e) => return self.fail(out, CeremonyError::Signing(e.to_string())),
        };
        for &p in chosen.keys() {
            self.send(out, p, ProtocolId::Frost, frost_step::REQUEST, payload.clone());
        }
        self.expected = chosen.keys().copied().collect();
        self.stage = Stage::Share { group, document, request, shares: BTreeMap::new() };
    }

    fn aggregate(
        &mut self,
        out: &mut Vec<CeremonyAction>,
        group: GroupPublicKey,
        document: &str,
        request: &SigningRequest,
        shares: &BTreeMap<PartyId, SignatureShare>,
    ) {
        let sig = match frost::aggregate(request, shares, &group) {
            Ok(s) => s,
            Err(e) => {
                let culprits = e.culprits();
                return match culprits.first() {
                    Some(c) => {
                        let site = self.name(*c);
                        self.fail(out, CeremonyError::Misbehaved { site, reason: format!("bad signature share: {e}") })
                    }
                    None => self.fail(out, CeremonyError::Signing(e.to_string())),
                };
            }
        };
        if let Err(e) = frost::verify(&group.verifying_key(), &roster_signing_message(document), &sig) {
            return self.fail(out, CeremonyError::Signing(format!("aggregated signature does not verify: {e}")));
        }
        let signers = self.names(shares.keys().copied());
        let signature = RosterSignature { ceremony: self.id(), signature: hex::encode(&sig.to_bytes()), signers };
        let built = self.members.signed_file(&group, signature.clone()).and_then(|file| {
            let text = file_text(&file)?;
            let federation = Federation::from_file(file)?;
            federation.verify_roster()?;
            Ok((text, federation))
        });
        let (text, federation) = match built {
            Ok(x) => x,
            Err(e) => return self.fail(out, CeremonyError::Signing(e.to_string())),
        };
        let digest = sha256_hex(text.as_bytes());
        let roster = SignedRoster {
            ceremony: self.id(),
            group_key: hex::encode(&group.verifying_key().to_bytes()),
            signers: signature.signers.clone(),
            confirmed: Vec::new(),
            text,
            federation,
        };
        let payload =
            messages::to_payload(&RosterSigned { signature: signature.signature, signers: signature.signers });
        for p in self.all_sites() {
            self.send(out, p, ProtocolId::Dkg, step::SIGNED, payload.clone());
        }
        out.push(CeremonyAction::Log(format!("key ceremony: roster signed by {}", roster.signers.join(", "))));
        self.stage = Stage::Ack { roster: Box::new(roster), digest };
    }
}
