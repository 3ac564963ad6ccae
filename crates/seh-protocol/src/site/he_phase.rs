//! The site machine's `aggregation = "he"` steps: key set-up start, relayed set-up steps, the
//! encrypted contribution, decryption shares, releases from the coordinator's encrypted store,
//! and the durable key records. The threshold-HE state is [`crate::he_site`]; this file only
//! wires it into [`SiteMachine`] (policy re-check, signing, persistence order, audit events).

use seh_crypto::wire::{Envelope, PartyId, SessionId};
use serde_json::json;

use super::{audit, AuditKind, SiteMachine, SiteOutput, Stage};
use crate::describe::respects_min_count;
use crate::error::ProtocolError;
use crate::he_cosign::{StoreReleaseDocument, StoreReleaseSignStart};
use crate::he_keyrec::HeKeyRecord;
use crate::he_release::{HeReleaseAnswer, HeReleaseOffer};
use crate::he_site::Reply;
use crate::he_wire::{step, HeSetupStart};
use crate::messages;
use crate::spec::Aggregation;

impl SiteMachine {
    /// Restores the threshold-HE key records a previous run persisted
    /// ([`SiteOutput::RecordHeKey`]): key shares, decryption-budget counters, releases given.
    ///
    /// Errors: a record that is not this site's or does not parse ([`ProtocolError::Invalid`]
    /// naming the study, never a key).
    pub fn with_he_keys(mut self, records: Vec<HeKeyRecord>) -> Result<Self, ProtocolError> {
        for rec in records {
            self.he.restore(self.me, rec)?;
        }
        Ok(self)
    }

    /// Reads this site's persisted threshold-HE key records from `source` on demand (a study's
    /// record when the study first needs its key after a restart), keeping at most
    /// [`crate::he_site::MAX_CACHED_KEYS`] in memory: every stored study stays releasable, and a
    /// record that cannot be used is refused naming its file.
    pub fn with_he_key_source(mut self, source: Box<dyn crate::he_site::HeKeySource>) -> Self {
        self.he.set_source(self.me, source);
        self
    }

    /// The decryption-budget counter of `study_id`'s threshold-HE key share (shares produced so
    /// far; `None` without a key share for the study).
    pub fn he_budget_used(&self, study_id: &str) -> Option<u64> {
        self.he.used(study_id)
    }

    fn persist_he(&self, study_id: &str, out: &mut Vec<SiteOutput>) {
        if let Some(rec) = self.he.record(study_id) {
            out.push(SiteOutput::RecordHeKey(Box::new(rec)));
        }
    }

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
        if env.step == step::RELEASE_OFFER {
            return self.he_release_offer(study_id, env, out);
        }
        if env.step == step::RELEASE_SIGN_START {
            return self.he_release_sign(study_id, env, out);
        }
        let reply = self.he.handle(study_id, env, self.me, &self.key, self.fed.roster())?;
        self.he_reply(study_id, env.session, reply, out)
    }

    /// [`step::RELEASE_OFFER`]: re-applies the policy to the signed study, lets the key state
    /// decide (key, sites, budget), audits the decision and answers.
    fn he_release_offer(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let offer: HeReleaseOffer = messages::from_payload("release offer", &env.payload)?;
        let (spec, decision) = self.check_study(&offer.study, &env.session)?;
        out.push(audit(
            AuditKind::Request,
            study_id,
            json!({ "round": env.session.round, "what": "release from the encrypted store",
                    "stored_round": offer.round, "sites": offer.sites.len() }),
        ));
        let verdict = match decision {
            Err(r) => Err(r.to_string()),
            Ok(_) if spec.aggregation != Aggregation::He => Err("the study does not use `he`".to_owned()),
            Ok(_) if !matches!(spec.analysis, crate::spec::Analysis::Describe(_)) => {
                Err("only descriptive studies are released from the encrypted store".to_owned())
            }
            // The researcher who signed the study (and whom the policy just admitted) must have
            // signed this very release; checked before any key state is touched.
            Ok(_) => match offer.request.check_offer(&self.fed, &spec, &offer) {
                Err(reason) => Err(reason),
                Ok(()) => self.he.release_offer(study_id, env.session, &offer)?,
            },
        };
        let answer = match verdict {
            Ok(()) => HeReleaseAnswer { accept: true, reason: String::new() },
            Err(reason) => HeReleaseAnswer { accept: false, reason },
        };
        out.push(audit(
            AuditKind::PolicyDecision,
            study_id,
            json!({ "what": "release from the encrypted store", "stored_round": offer.round,
                    "to_researcher_key": offer.to_researcher_key,
                    "signed_request": offer.request.digest(),
                    "accept": answer.accept, "reason": answer.reason }),
        ));
        let reply = crate::he_site::Reply {
            send: vec![Envelope {
                protocol: seh_crypto::wire::ProtocolId::ThresholdBfv,
                step: step::RELEASE_ANSWER,
                sender: self.me,
                recipient: seh_crypto::wire::PartyId::COORDINATOR,
                session: env.session,
                nonce: messages::nonce(),
                payload: messages::to_payload(&answer),
            }],
            what: None,
            persist: false,
        };
        self.he_reply(study_id, env.session, reply, out)
    }

    /// [`step::RELEASE_SIGN_START`]: checks that the document names the release this site accepted
    /// in this session (and, for a plain result, respects its minimum cell count), then answers
    /// with a FROST commitment; the signature share follows through the `frost` request step.
    /// A mismatch is an error naming it (audited as a rejection by [`SiteMachine::handle`]).
    fn he_release_sign(
        &mut self,
        study_id: &str,
        env: &Envelope,
        out: &mut Vec<SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let start: StoreReleaseSignStart = messages::from_payload("release sign start", &env.payload)?;
        let doc = StoreReleaseDocument::from_json(&start.document)?;
        self.he.ensure_key_or_err(study_id)?;
        let fed = self.fed.clone();
        let name = move |p: PartyId| fed.site(p).map_or_else(|| p.to_string(), |s| s.name.clone());
        self.he
            .check_release_document(study_id, env.session, &doc, &name)
            .map_err(|r| ProtocolError::invalid("store release document", "document", r))?;
        if let Some(result) = &doc.result {
            if doc.min_cell_count < self.gov.min_cell_count() || !respects_min_count(result, doc.min_cell_count) {
                return Err(ProtocolError::invalid(
                    "store release document",
                    "result",
                    "violates this site's minimum cell count",
                ));
            }
        }
        out.push(audit(
            AuditKind::Request,
            study_id,
            json!({ "round": env.session.round, "what": "co-sign release from the encrypted store",
                    "stored_round": doc.stored_round, "key_switch": doc.researcher_key.is_some() }),
        ));
        self.frost_commit(out, study_id, env.session, |nonces| Stage::CommittedStore(nonces, start.document))
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
        // The round this site contributed to is part of the key record (it bounds the shares
        // given per round across restarts).
        self.persist_he(study_id, out);
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
        if reply.persist {
            // Before the message leaves: a share's budget charge must survive a restart.
            self.persist_he(study_id, out);
        }
        for env in reply.send {
            self.send(out, study_id, env)?;
        }
        if let Some(what) = reply.what {
            let release = what.contains("release");
            out.push(audit(
                if release { AuditKind::Release } else { AuditKind::Contribution },
                study_id,
                json!({ "round": session.round, "what": what, "bytes": bytes }),
            ));
        }
        Ok(())
    }
}
