//! Replay refusal: a site remembers the studies it has finished — released (it verified the
//! group-signed release) or refused (its policy said no to the offer) — and refuses to start
//! any of them again (offer, aggregation, HE key set-up or release signing), by the rule
//! [`REPLAY_RULE`]. Without it a coordinator that resets a finished study's checkpoint gets every
//! site to recompute and co-sign the same study again (and, with DP, a fresh noise draw to
//! average). A study that stopped before its release may still be resumed (a restarted
//! coordinator re-runs its phase); releases from the encrypted store and log-head co-signing of
//! a finished study are not starts and stay allowed.
//!
//! The record is persisted by the runtime ([`super::SiteOutput::RecordFinished`]) and passed back
//! after a restart ([`super::SiteMachine::with_finished`]). It is bounded by count: the last
//! [`MAX_FINISHED`] studies, evicting the oldest finished first. A study spec carries no creation
//! time, so a time window cannot be checked against the spec; a count bound is safe because
//! evicting an id needs `MAX_FINISHED` *newer* studies that this site finished, each signed by a
//! researcher of the federation and accepted or refused by this site (and recorded in its audit
//! log) — a coordinator cannot produce them on its own.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// Most finished studies a site remembers (about 50 bytes each on disk).
pub const MAX_FINISHED: usize = 10_000;

/// The rule name of a refused replay, in the decision and the audit log.
pub const REPLAY_RULE: &str = "replay";

/// How a remembered study ended at this site.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// This site verified the group-signed release.
    Released,
    /// This site refused the offer.
    Refused,
}

/// One remembered study.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinishedStudy {
    /// Study id (32 lower-case hex characters).
    pub study_id: String,
    /// How it ended.
    pub outcome: Finish,
}

/// The studies a site finished, oldest first, at most [`MAX_FINISHED`].
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct FinishedStudies {
    order: VecDeque<FinishedStudy>,
    ids: BTreeSet<String>,
}

impl FinishedStudies {
    /// Builds the record from `entries` (oldest first), as [`Self::entries`] listed them.
    ///
    /// Errors: [`ProtocolError::Invalid`] naming the entry (its index) that is not a 32-hex study
    /// id or repeats one, or more than [`MAX_FINISHED`] entries.
    pub fn from_entries(entries: Vec<FinishedStudy>) -> Result<Self, ProtocolError> {
        if entries.len() > MAX_FINISHED {
            return Err(ProtocolError::invalid(
                "finished studies",
                "entries",
                format!("{} entries, at most {MAX_FINISHED}", entries.len()),
            ));
        }
        let mut me = FinishedStudies::default();
        for (i, e) in entries.into_iter().enumerate() {
            let ok =
                e.study_id.len() == 32 && e.study_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                return Err(ProtocolError::invalid(
                    "finished studies",
                    format!("[{i}].study_id"),
                    "not 32 lower-case hex",
                ));
            }
            if !me.ids.insert(e.study_id.clone()) {
                return Err(ProtocolError::invalid("finished studies", format!("[{i}].study_id"), "listed twice"));
            }
            me.order.push_back(e);
        }
        Ok(me)
    }

    /// The entries, oldest first (what the runtime persists).
    pub fn entries(&self) -> impl Iterator<Item = &FinishedStudy> {
        self.order.iter()
    }

    /// Number of remembered studies.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if none is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// How `study_id` ended here, if it is remembered.
    pub fn get(&self, study_id: &str) -> Option<Finish> {
        if !self.ids.contains(study_id) {
            return None;
        }
        self.order.iter().rev().find(|e| e.study_id == study_id).map(|e| e.outcome)
    }

    /// Remembers `study_id` as finished with `outcome`, evicting the oldest entry beyond
    /// [`MAX_FINISHED`]. Returns false (and changes nothing) if it is remembered already.
    pub fn record(&mut self, study_id: &str, outcome: Finish) -> bool {
        if !self.ids.insert(study_id.to_owned()) {
            return false;
        }
        self.order.push_back(FinishedStudy { study_id: study_id.to_owned(), outcome });
        while self.order.len() > MAX_FINISHED {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old.study_id);
            }
        }
        true
    }
}

/// The refusal of a replayed start of `study_id`, which ended here with `how`.
pub(super) fn replay_reason(how: Finish) -> String {
    let how = match how {
        Finish::Released => "released",
        Finish::Refused => "refused by this site",
    };
    format!("rule `{REPLAY_RULE}`: this study already finished at this site ({how}); a study id runs once")
}

impl super::SiteMachine {
    /// A replayed offer of a study this site finished: refused by the rule
    /// [`REPLAY_RULE`], audited as a policy decision, answered as a refusal.
    pub(super) fn refuse_replay(
        &mut self,
        study_id: &str,
        session: seh_crypto::wire::SessionId,
        how: Finish,
        out: &mut Vec<super::SiteOutput>,
    ) -> Result<(), ProtocolError> {
        let reason = replay_reason(how);
        out.push(super::audit(
            super::AuditKind::PolicyDecision,
            study_id,
            serde_json::json!({ "accept": false, "rule": REPLAY_RULE, "reason": reason }),
        ));
        let msg = crate::messages::DecisionMsg {
            accept: false,
            reason,
            min_cell_count: self.gov.min_cell_count(),
            model: None,
        };
        let env = self.control(session, crate::messages::control::DECISION, crate::messages::to_payload(&msg));
        self.send(out, study_id, env)
    }

    /// Restores the studies this site finished before a restart (what
    /// [`super::SiteOutput::RecordFinished`] asked to persist).
    pub fn with_finished(mut self, finished: FinishedStudies) -> Self {
        self.finished = finished;
        self
    }

    /// The studies this site finished (released or refused).
    pub fn finished(&self) -> &FinishedStudies {
        &self.finished
    }

    /// `Err` (rule [`REPLAY_RULE`]) if `study_id` already finished at this site.
    pub(super) fn check_not_finished(&self, study_id: &str, what: &'static str) -> Result<(), ProtocolError> {
        match self.finished.get(study_id) {
            Some(how) => Err(ProtocolError::invalid(what, "study_id", replay_reason(how))),
            None => Ok(()),
        }
    }

    /// Remembers `study_id` as finished; the runtime persists it before what follows.
    pub(super) fn mark_finished(&mut self, study_id: &str, outcome: Finish, out: &mut Vec<super::SiteOutput>) {
        if self.finished.record(study_id, outcome) {
            out.push(super::SiteOutput::RecordFinished { study_id: study_id.to_owned(), outcome });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> String {
        format!("{i:032x}")
    }

    #[test]
    fn keeps_the_last_max_finished_and_evicts_the_oldest_first() {
        let mut f = FinishedStudies::default();
        for i in 0..MAX_FINISHED + 5 {
            assert!(f.record(&id(i), Finish::Released));
        }
        assert!(!f.record(&id(MAX_FINISHED + 4), Finish::Refused));
        assert_eq!(f.len(), MAX_FINISHED);
        assert_eq!(f.get(&id(4)), None);
        assert_eq!(f.get(&id(5)), Some(Finish::Released));
        let again = FinishedStudies::from_entries(f.entries().cloned().collect()).unwrap();
        assert_eq!(again, f);
    }

    #[test]
    fn bad_entries_are_named() {
        let e = |s: &str| FinishedStudy { study_id: s.into(), outcome: Finish::Refused };
        let err = FinishedStudies::from_entries(vec![e(&id(1)), e("XYZ")]).unwrap_err().to_string();
        assert!(err.contains("[1].study_id"), "{err}");
        let err = FinishedStudies::from_entries(vec![e(&id(1)), e(&id(1))]).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }
}
