//! The site machine's part in FROST signing: the release's sign start (the document checked
//! against the study and this site's floors), and the signature share for any commitment this
//! site sent (a release, a coordinator log head, a release from the encrypted store).

use seh_crypto::frost;
use seh_crypto::frost::sign::SigningRequest;
use seh_crypto::wire::{Envelope, PartyId, ProtocolId};
use serde_json::json;

use super::{audit, sha2_digest, AuditKind, SiteMachine, SiteOutput, Stage};
use crate::describe::respects_min_count;
use crate::error::ProtocolError;
use crate::hex;
use crate::messages::{self, frost_step, SignStart};
use crate::release::{signing_message, ReleaseDocument};

impl SiteMachine {
    /// `control::SIGN_START`: checks the release document, then answers with a FROST commitment.
    pub(super) fn sign_start(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let session = env.session;
        let round = session.round;
        self.check_not_finished(study_id, "sign start")?;
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
        if doc.min_cell_count < self.gov.min_cell_count() || !respects_min_count(&doc.result, doc.min_cell_count) {
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

    /// `frost/1`: signs the approved document this site committed for.
    pub(super) fn frost_request(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let session = env.session;
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
        // A store release and a log head end the signing; a live release waits for the result.
        let (what, next) = if store {
            ("co-signed release from the encrypted store", Stage::Finished)
        } else if head {
            ("co-signed coordinator log head", Stage::Finished)
        } else {
            ("co-signed", Stage::CoSigned(document))
        };
        out.push(audit(AuditKind::Release, study_id, json!({ "what": what, "document_sha256": digest })));
        self.set_stage(study_id, next);
        Ok(())
    }
}
