//! The coordinator's FROST signing phases: the release, and the co-signing of its audit-log head
//! after the study. Both run the same commit → request → share → aggregate flow; the group
//! signature is checked share by share, so a site whose share is invalid (a corrupted key share,
//! or a site that misbehaves) is **named and left out**: the phase starts again in a fresh round
//! among the other signers, and completes with any `t` of them. The excluded sites are kept in
//! the checkpoint ([`Checkpoint::excluded_signers`]) so a restarted coordinator does not ask
//! them again; the study fails only when fewer than `t` signers are left.

use std::collections::{BTreeMap, BTreeSet};

use seh_crypto::frost::sign::{SignatureShare, SigningRequest};
use seh_crypto::frost::{self, FrostError, GroupPublicKey, Signature};
use seh_crypto::wire::{PartyId, ProtocolId, SessionGuard};

#[cfg(doc)]
use super::Checkpoint;
use super::{Action, CoordinatorStudy, Phase, Purpose};
use crate::describe;
use crate::hex;
use crate::log_head::{HeadSignStart, SignedHead};
use crate::messages::{self, control, frost_step, Released, SignStart};
use crate::release::{ReleaseDocument, SignedRelease};
use crate::site::MAX_MESSAGES_PER_ROUND;
use crate::spec::Analysis;

/// What aggregating a FROST signing round gave.
#[derive(Debug)]
pub(crate) enum SignOutcome {
    /// The group signature.
    Signed(Signature),
    /// These signers sent invalid signature shares (named by the share check): sign again
    /// without them.
    Culprits(Vec<PartyId>, String),
    /// Any other failure (too few shares, shares that do not match the request).
    Failed(String),
}

/// Aggregates `shares` for `request` under `group`, the one check every coordinator-side FROST
/// collector uses (the release, the log head, the release from the encrypted store): a failure
/// that names culprits among the senders is [`SignOutcome::Culprits`], so the caller can leave
/// them out and sign again with the others.
pub(crate) fn aggregate_or_culprits(
    request: &SigningRequest,
    shares: &BTreeMap<PartyId, SignatureShare>,
    group: &GroupPublicKey,
) -> SignOutcome {
    match frost::aggregate(request, shares, group) {
        Ok(sig) => SignOutcome::Signed(sig),
        Err(e) => {
            let bad: Vec<PartyId> = e.culprits().into_iter().filter(|p| shares.contains_key(p)).collect();
            if bad.is_empty() || matches!(e, FrostError::NotEnoughSigners { .. }) {
                SignOutcome::Failed(e.to_string())
            } else {
                SignOutcome::Culprits(bad, e.to_string())
            }
        }
    }
}

impl CoordinatorStudy {
    fn excluded(&self) -> BTreeSet<PartyId> {
        self.cp.excluded_signers.iter().map(|p| PartyId(*p)).collect()
    }

    fn names(&self, parties: impl IntoIterator<Item = PartyId>) -> String {
        parties.into_iter().map(|p| self.name(p)).collect::<Vec<_>>().join(", ")
    }

    /// `candidates` without the excluded signers, or `Err` (the reason) if fewer than the FROST
    /// threshold are left.
    fn signers(&self, candidates: Vec<PartyId>) -> Result<Vec<PartyId>, String> {
        let excluded = self.excluded();
        let left: Vec<PartyId> = candidates.into_iter().filter(|p| !excluded.contains(p)).collect();
        let t = usize::from(self.fed.frost_threshold);
        if left.len() < t {
            return Err(format!(
                "{} signers left after excluding {} (invalid signature shares); t = {t} are needed",
                left.len(),
                self.names(excluded)
            ));
        }
        Ok(left)
    }

    pub(super) fn start_sign(&mut self, out: &mut Vec<Action>) {
        let (Some(decided), Some(agg)) = (&self.cp.decided, &self.cp.aggregated) else { return };
        let document = match &self.cp.document {
            Some(d) => d.clone(),
            None => {
                let (result, model) = match &self.spec.analysis {
                    Analysis::Describe(d) => {
                        match crate::policy::release_describe(&self.spec, d, &agg.sum, decided.min_cell_count) {
                            Ok(r) => (r, None),
                            Err(e) => return self.fail(out, e.to_string()),
                        }
                    }
                    _ => {
                        let v = self.cp.model_result.as_deref().and_then(|t| serde_json::from_str(t).ok());
                        (describe::DescribeResult { columns: Vec::new(), histograms: Vec::new(), suppressed: 0 }, v)
                    }
                };
                let doc = ReleaseDocument {
                    study_id: self.spec.study_id.clone(),
                    spec_sha256: self.study.digest(),
                    analysis: self.spec.analysis.kind().to_owned(),
                    accepted: decided.accepted.iter().map(|p| self.name(PartyId(*p))).collect(),
                    contributors: agg.survivors.iter().map(|p| self.name(PartyId(*p))).collect(),
                    min_cell_count: decided.min_cell_count,
                    result,
                    model,
                };
                match doc.to_json() {
                    Ok(j) => j,
                    Err(e) => return self.fail(out, e.to_string()),
                }
            }
        };
        let survivors: Vec<PartyId> = agg.survivors.iter().map(|p| PartyId(*p)).collect();
        let signers = match self.signers(survivors) {
            Ok(s) => s,
            Err(reason) => return self.fail(out, format!("the release cannot be co-signed: {reason}")),
        };
        self.cp.document = Some(document.clone());
        out.push(Action::Checkpoint(Box::new(self.cp.clone())));
        let payload = messages::to_payload(&SignStart { study: self.study.clone(), document: document.clone() });
        for &p in &signers {
            self.send(out, p, ProtocolId::Control, control::SIGN_START, payload.clone());
        }
        self.expected = signers.into_iter().collect();
        self.phase = Phase::Commit { document, commitments: BTreeMap::new(), purpose: Purpose::Release };
    }

    pub(super) fn advance_sign(&mut self, out: &mut Vec<Action>) {
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Commit { document, commitments, purpose } => {
                let t = usize::from(self.fed.frost_threshold);
                if commitments.len() < t {
                    return self.sign_failed(purpose, out, format!("{} of {t} signers committed", commitments.len()));
                }
                let request = match SigningRequest::new(&commitments, &purpose.message(&document)) {
                    Ok(r) => r,
                    Err(e) => return self.sign_failed(purpose, out, e.to_string()),
                };
                let payload = match request.encode() {
                    Ok(p) => p,
                    Err(e) => return self.sign_failed(purpose, out, e.to_string()),
                };
                for &p in commitments.keys() {
                    self.send(out, p, ProtocolId::Frost, frost_step::REQUEST, payload.clone());
                }
                self.expected = commitments.keys().copied().collect();
                self.got.clear();
                self.phase = Phase::Share { document, request, shares: BTreeMap::new(), purpose };
            }
            Phase::Share { document, request, shares, purpose } => {
                if shares.len() < request.signers().len() {
                    return self.sign_failed(purpose, out, "a signer did not return its signature share".into());
                }
                let sig = match aggregate_or_culprits(&request, &shares, &self.fed.frost_group) {
                    SignOutcome::Signed(s) => s,
                    SignOutcome::Culprits(bad, reason) => return self.exclude_signers(purpose, bad, reason, out),
                    SignOutcome::Failed(reason) => return self.sign_failed(purpose, out, reason),
                };
                if purpose == Purpose::LogHead {
                    let signers = shares.keys().map(|p| self.name(*p)).collect();
                    self.cp.log_head = Some(SignedHead { document, signature: hex::encode(&sig.to_bytes()), signers });
                    out.push(Action::Checkpoint(Box::new(self.cp.clone())));
                    self.phase = Phase::Done;
                    out.push(Action::Finished);
                    return;
                }
                let release = SignedRelease {
                    document,
                    signature: hex::encode(&sig.to_bytes()),
                    signers: shares.keys().map(|p| self.name(*p)).collect(),
                };
                self.cp.release = Some(release.clone());
                let accepted = self.cp.decided.as_ref().map(|d| d.accepted.clone()).unwrap_or_default();
                self.cp.phase = "done".into();
                out.push(Action::Checkpoint(Box::new(self.cp.clone())));
                // Co-signers hold the document already (from the sign start): send it only to the
                // accepting sites that did not sign.
                let short = SignedRelease { document: String::new(), ..release.clone() };
                let (full, short) =
                    (messages::to_payload(&Released { release }), messages::to_payload(&Released { release: short }));
                for p in accepted {
                    let payload = if shares.contains_key(&PartyId(p)) { short.clone() } else { full.clone() };
                    self.send(out, PartyId(p), ProtocolId::Control, control::RELEASED, payload);
                }
                self.phase = Phase::Done;
                out.push(Action::Finished);
            }
            other => self.phase = other,
        }
    }

    /// `bad` sent invalid signature shares: name them, leave them out of this study's signing
    /// from now on, and sign again in a fresh round with the others (not a failed attempt: each
    /// exclusion removes a site, so this ends). Fails (release) or ends without a co-signature
    /// (log head) when fewer than `t` signers are left.
    fn exclude_signers(&mut self, purpose: Purpose, bad: Vec<PartyId>, reason: String, out: &mut Vec<Action>) {
        out.push(Action::Log(format!(
            "round {}: excluded signer(s) {} from co-signing: {reason}",
            self.cp.round,
            self.names(bad.iter().copied())
        )));
        self.cp.excluded_signers.extend(bad.iter().map(|p| p.0));
        self.cp.excluded_signers.sort_unstable();
        self.cp.excluded_signers.dedup();
        match purpose {
            Purpose::Release => self.begin_phase(out),
            Purpose::LogHead => match self.head_request.take() {
                Some(request) => self.start_head_sign(request, &mut *out),
                None => self.sign_failed(purpose, out, reason),
            },
        }
    }

    /// A signing round failed: a release is retried (and the study fails after
    /// [`super::MAX_PHASE_ATTEMPTS`]); a log-head co-signing just ends without a co-signature (the
    /// study's outcome is unchanged; the next study's co-signing covers these entries too).
    fn sign_failed(&mut self, purpose: Purpose, out: &mut Vec<Action>, reason: String) {
        match purpose {
            Purpose::Release => self.retry(out, reason),
            Purpose::LogHead => {
                out.push(Action::Log(format!("audit-log head not co-signed: {reason}")));
                self.phase = Phase::Done;
                out.push(Action::Finished);
            }
        }
    }

    /// After the study finished (released, refused or failed): asks the study's sites to
    /// co-sign the coordinator's audit-log head: `request` carries a
    /// [`crate::log_head::HeadDocument`] as JSON and the covered log lines (see
    /// [`crate::log_head::next_segment`]).
    ///
    /// Runs in a fresh round with the release's FROST commit/share flow under purpose
    /// [`crate::log_head::AUDIT_HEAD_PURPOSE`]; feed replies to [`Self::receive`] and deadlines to
    /// [`Self::timeout`] as before. Ends with [`Action::Finished`]; on success the last checkpoint
    /// holds [`super::Checkpoint::log_head`]. Does nothing but finish if the study is still
    /// running. Sites excluded as bad signers are not asked; one that sends an invalid share
    /// now is excluded and the others sign again in a fresh round.
    pub fn cosign_log_head(&mut self, request: HeadSignStart) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.is_finished() {
            out.push(Action::Log("audit-log head co-signing asked for while the study runs; ignored".into()));
            return out;
        }
        self.start_head_sign(request, &mut out);
        out
    }

    fn start_head_sign(&mut self, request: HeadSignStart, out: &mut Vec<Action>) {
        self.cp.round = self.cp.round.saturating_add(1);
        self.cp.log_head = None;
        self.guard = SessionGuard::new(self.session(), MAX_MESSAGES_PER_ROUND);
        self.got.clear();
        out.push(Action::Checkpoint(Box::new(self.cp.clone())));
        let sites: Vec<PartyId> = self.spec.sites.iter().filter_map(|s| self.party(s)).collect();
        let sites = match self.signers(sites) {
            Ok(s) => s,
            Err(reason) => {
                self.expected.clear();
                self.phase = Phase::Commit {
                    document: request.document,
                    commitments: BTreeMap::new(),
                    purpose: Purpose::LogHead,
                };
                return self.sign_failed(Purpose::LogHead, out, reason);
            }
        };
        let payload = messages::to_payload(&request);
        for &p in &sites {
            self.send(out, p, ProtocolId::Control, control::HEAD_SIGN_START, payload.clone());
        }
        self.expected = sites.into_iter().collect();
        self.phase = Phase::Commit {
            document: request.document.clone(),
            commitments: BTreeMap::new(),
            purpose: Purpose::LogHead,
        };
        self.head_request = Some(request);
    }
}
