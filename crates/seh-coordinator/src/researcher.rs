//! The researcher-facing handler: submit a signed study, ask its status, fetch its release.

use std::sync::{Arc, Mutex};

use seh_audit::EntryKind;
use seh_net::{Frame, NetError, PeerInfo, RefusalReason, ResearcherHandler, StudyStatus};
use seh_protocol::federation::Federation;
use serde_json::json;
use tokio::sync::mpsc;

use crate::store::{Store, StoredStudy};
use crate::{lock, parse_submission, Audit, CoordinatorError};

pub(crate) struct Handler {
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) audit: Audit,
    pub(crate) fed: Arc<Federation>,
    pub(crate) queue: mpsc::UnboundedSender<String>,
}

fn refused(reason: String) -> NetError {
    NetError::Refused(RefusalReason::Handshake(reason))
}

fn not_found(id: &str) -> NetError {
    NetError::Rpc { code: "NotFound".into(), message: format!("no study {id} for this researcher") }
}

fn internal(e: CoordinatorError) -> NetError {
    NetError::Rpc { code: "Internal".into(), message: e.to_string() }
}

impl Handler {
    pub(crate) fn owned(&self, researcher: &PeerInfo, id: &str) -> Result<StoredStudy, NetError> {
        let s = lock(&self.store).get(id).map_err(internal)?.ok_or_else(|| not_found(id))?;
        let spec = s.study.unverified_spec().map_err(|e| internal(e.into()))?;
        if spec.researcher != researcher.id.as_str() {
            return Err(not_found(id));
        }
        Ok(s)
    }

    fn do_submit(&self, researcher: &PeerInfo, request: &Frame) -> Result<String, NetError> {
        let study = parse_submission(request.payload()).map_err(|e| refused(e.to_string()))?;
        let spec = study.unverified_spec().map_err(|e| refused(e.to_string()))?;
        if spec.researcher != researcher.id.as_str() {
            return Err(refused("the study names another researcher".into()));
        }
        let key = self.fed.researcher_key(&spec.researcher).ok_or_else(|| refused("unknown researcher".into()))?;
        if *key != researcher.key {
            return Err(refused("researcher key differs from the federation file".into()));
        }
        study.verify(key).map_err(|e| refused(e.to_string()))?;
        if let Some(s) = spec.sites.iter().find(|s| self.fed.site_by_name(s).is_none()) {
            return Err(refused(format!("`{s}` is not a site of this federation")));
        }
        lock(&self.store).insert(&spec.study_id, &study).map_err(|e| refused(e.to_string()))?;
        self.audit.record(
            EntryKind::Request,
            json!({ "study": spec.study_id, "researcher": spec.researcher, "analysis": spec.analysis.kind(), "sites": spec.sites, "spec_sha256": study.digest() }),
        );
        let _ = self.queue.send(spec.study_id.clone());
        Ok(spec.study_id)
    }
}

impl ResearcherHandler for Handler {
    /// A refused submission (a spec that fails validation — too long, nested too deep, a bad
    /// signature, ...) is audited like any other refusal, naming the researcher and the reason.
    async fn submit(&self, researcher: &PeerInfo, request: Frame) -> Result<String, NetError> {
        let done = if request.kind() == crate::he_release::SUBMIT_KIND {
            crate::he_release::submit(self, researcher, &request)
        } else {
            self.do_submit(researcher, &request)
        };
        if let Err(e) = &done {
            self.audit.record(
                EntryKind::Request,
                json!({ "event": "refused", "study": request.study_id(), "researcher": researcher.id.as_str(), "submission": request.kind(), "reason": e.to_string() }),
            );
        }
        done
    }

    async fn status(&self, researcher: &PeerInfo, study_id: &str) -> Result<StudyStatus, NetError> {
        if crate::he_release::parse_id(study_id).is_some() {
            return crate::he_release::status(self, researcher, study_id);
        }
        let s = self.owned(researcher, study_id)?;
        let (state, round, detail) = match &s.checkpoint {
            None => ("queued".to_owned(), 0, json!({ "phase": "queued" })),
            Some(cp) => {
                let state = match cp.phase.as_str() {
                    "done" => "done",
                    "failed" if cp.failure.as_deref().is_some_and(|f| f.starts_with("refused")) => "refused",
                    "failed" => "failed",
                    _ => "running",
                };
                let detail = json!({ "phase": cp.phase, "failure": cp.failure, "traffic": s.traffic });
                (state.to_owned(), u64::from(cp.round), detail)
            }
        };
        Ok(StudyStatus { study_id: study_id.to_owned(), state, round, detail: detail.to_string() })
    }

    async fn result(&self, researcher: &PeerInfo, study_id: &str) -> Result<Frame, NetError> {
        if crate::he_release::parse_id(study_id).is_some() {
            return crate::he_release::result(self, researcher, study_id);
        }
        let s = self.owned(researcher, study_id)?;
        let cp = s.checkpoint.unwrap_or_default();
        let release = cp.release.ok_or_else(|| NetError::Rpc {
            code: "NotFound".into(),
            message: format!("study {study_id} has no release (phase {})", cp.phase),
        })?;
        let payload = serde_json::to_vec(&release).unwrap_or_default();
        Frame::new(study_id, u64::from(cp.round), "release", payload)
    }
}
