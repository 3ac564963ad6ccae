//! The site machine's part in co-signing the coordinator's audit-log head: check that the
//! document extends the head this site co-signed last and that every covered entry's log line
//! recomputes to the stated chain, persist the new head, then commit with FROST (the signature
//! share follows through the release's `frost/1` request step).

use seh_crypto::wire::Envelope;
use serde_json::json;

use super::{audit, AuditKind, SiteMachine, SiteOutput, Stage};
use crate::error::ProtocolError;
use crate::log_head::{HeadRef, HeadSignStart};
use crate::messages;

impl SiteMachine {
    /// Restores the coordinator log head this site co-signed last (what
    /// [`SiteOutput::RecordLogHead`] asked to persist); `None` before the first co-signature.
    pub fn with_cosigned_head(mut self, head: Option<HeadRef>) -> Self {
        self.cosigned_head = head;
        self
    }

    /// The coordinator log head this site co-signed last.
    pub fn cosigned_head(&self) -> Option<&HeadRef> {
        self.cosigned_head.as_ref()
    }

    /// `control::HEAD_SIGN_START`: refuses a head that does not extend the last one this site
    /// co-signed (the refusal is audited with its reason by [`SiteMachine::handle`]); otherwise
    /// records the new head, then answers with a FROST commitment.
    pub(super) fn head_sign_start(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let start: HeadSignStart = messages::from_payload("head sign start", &env.payload)?;
        // Extends this site's last head, and every covered entry recomputes from its log line.
        let doc = start.check(&self.fed.name, &self.fed.coordinator_key, self.cosigned_head.as_ref())?;
        out.push(audit(
            AuditKind::Request,
            study_id,
            json!({ "round": env.session.round, "what": "co-sign coordinator log head", "seq": doc.seq,
                    "hash": doc.hash, "from_seq": doc.start() }),
        ));
        // Persisted before anything leaves: a restarted site still refuses a rewritten history.
        let head = doc.head();
        out.push(SiteOutput::RecordLogHead(head.clone()));
        self.cosigned_head = Some(head);
        self.frost_commit(out, study_id, env.session, |nonces| Stage::CommittedHead(nonces, start.document))
    }
}
