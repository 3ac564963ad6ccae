//! The site machine's `aggregation = "he"` steps: key set-up start, relayed set-up steps, the
//! encrypted contribution and decryption shares. The threshold-HE state is [`crate::he_site`];
//! this file only wires it into [`SiteMachine`] (policy re-check, signing, audit events).

use seh_crypto::wire::{Envelope, SessionId};
use serde_json::json;

use super::{audit, AuditKind, SiteMachine, SiteOutput, Stage};
use crate::error::ProtocolError;
use crate::he_site::Reply;
use crate::he_wire::HeSetupStart;
use crate::messages;
use crate::spec::Aggregation;

impl SiteMachine {
    /// `control::HE_SETUP_START`: re-applies the policy, then commits to a seed contribution.
    pub(super) fn he_setup_start(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let start: HeSetupStart = messages::from_payload("he setup start", &env.payload)?;
        let (spec, decision) = self.check_study(&start.study, &env.session)?;
        decision.map_err(|r| ProtocolError::invalid("he setup start", "policy", r.to_string()))?;
        if spec.aggregation != Aggregation::He {
            return Err(ProtocolError::invalid("he setup start", "aggregation", "the study does not use `he`"));
        }
        out.push(audit(
            AuditKind::Request,
            study_id,
            json!({ "round": env.session.round, "what": "threshold-HE key set-up", "holders": start.holders.len() }),
        ));
        let reply = self.he.start_setup(study_id, env.session, self.me, &start.holders, spec.threshold as usize)?;
        self.he_reply(study_id, env.session, reply, out)
    }

    /// A `ThresholdBfv` envelope from the coordinator (set-up relay or share request).
    pub(super) fn he_message(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let reply = self.he.handle(study_id, env, self.me, &self.key, self.fed.roster())?;
        self.he_reply(study_id, env.session, reply, out)
    }

    /// Encrypts this round's contribution under the study's collective key and sends it.
    pub(super) fn he_contribute(
        &mut self,
        study_id: &str,
        session: SessionId,
        input: &[u64],
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let env = self.he.contribute(study_id, session, self.me, input)?;
        let bytes = env.payload.len();
        self.send(out, study_id, env)?;
        out.push(audit(
            AuditKind::Contribution,
            study_id,
            json!({ "round": session.round, "what": "encrypted vector (threshold HE)", "words": input.len(), "bytes": bytes }),
        ));
        self.set_stage(study_id, Stage::Finished);
        Ok(())
    }

    fn he_reply(
        &mut self,
        study_id: &str,
        session: SessionId,
        reply: Reply,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let bytes: usize = reply.send.iter().map(|e| e.payload.len()).sum();
        for env in reply.send {
            self.send(out, study_id, env)?;
        }
        if let Some(what) = reply.what {
            out.push(audit(
                AuditKind::Contribution,
                study_id,
                json!({ "round": session.round, "what": what, "bytes": bytes }),
            ));
        }
        Ok(())
    }
}
