//! The coordinator's `aggregation = "he"` phases: the per-study key set-up among the accepting
//! sites and the encrypted aggregation rounds. The state machines are [`crate::he_coord`]; this
//! file wires them into [`CoordinatorStudy`] (sending, waiting, retries, checkpoints).
//!
//! Key set-up: one phase (one round) of four relayed steps among every holder. A holder that
//! stays silent fails the attempt; the next attempt runs among those that answered (if at least
//! `t`), so the study's holders — and the sites that can contribute — are those that finished
//! the set-up. A restarted coordinator runs the set-up again (new key; sites replace theirs).

use std::collections::BTreeMap;

use seh_crypto::he::{HeContext, HeVector};
use seh_crypto::wire::{PartyId, ProtocolId};

use super::{Action, CoordinatorStudy, Phase};
use crate::he_coord::{Round, RoundClose, Setup, SetupClose};
use crate::he_wire::{step, HeSetupStart};
use crate::messages::{self, control, AggregateStart};

/// The coordinator's threshold-HE state of one study (in memory only).
#[derive(Default)]
pub(crate) struct HeState {
    ctx: Option<HeContext>,
    /// Holders for the next set-up attempt (after a holder fell silent), if not every accepting site.
    retry_holders: Option<Vec<PartyId>>,
    /// Holders of the finished key and the digest every holder confirmed.
    key: Option<(Vec<PartyId>, [u8; 32])>,
    /// The last round's per-site ciphertexts and its round number.
    store: BTreeMap<PartyId, HeVector>,
    store_round: u32,
}

impl HeState {
    /// True once every holder confirmed the same collective key.
    pub(crate) fn ready(&self) -> bool {
        self.key.is_some()
    }
}

impl CoordinatorStudy {
    /// The last encrypted round's per-site ciphertexts (`aggregation = "he"`): the encrypted store
    /// a runtime may persist (`seh_crypto::he::EncryptedStore`) and re-aggregate later; any `t`
    /// holders can decrypt a sum of them. Empty for SecAgg+ studies.
    pub fn he_store(&self) -> &BTreeMap<PartyId, HeVector> {
        &self.he.store
    }

    /// [`CoordinatorStudy::he_store`] serialised for persistence: the round it was summed in and
    /// each contributor's `HeVector` bytes (ciphertexts only; reload them with
    /// [`crate::he_coord::reaggregate`]). `None` before the first encrypted round.
    pub fn he_store_encoded(&self) -> Option<(u32, crate::he_coord::StoredCiphertexts)> {
        let ctx = self.he.ctx.as_ref()?;
        if self.he.store.is_empty() {
            return None;
        }
        let items = self.he.store.iter().filter_map(|(p, ct)| ct.to_bytes(ctx).ok().map(|b| (*p, b))).collect();
        Some((self.he.store_round, items))
    }

    /// The threshold-HE key holders once the key set-up finished.
    pub fn he_holders(&self) -> Option<&[PartyId]> {
        self.he.key.as_ref().map(|(h, _)| h.as_slice())
    }

    /// The digest of the study's collective key once the key set-up finished (every holder
    /// confirmed it): persist it with the encrypted rounds, so a later release is offered for
    /// the key the round was encrypted under (`he_release::ReleaseInputs::key_digest`).
    pub fn he_key_digest(&self) -> Option<[u8; 32]> {
        self.he.key.as_ref().map(|(_, d)| *d)
    }

    fn he_context(&mut self) -> Result<HeContext, String> {
        if self.he.ctx.is_none() {
            self.he.ctx = Some(crate::he_site::context().map_err(|e| e.to_string())?);
        }
        self.he.ctx.clone().ok_or_else(|| "no HE context".to_owned())
    }

    pub(super) fn start_he_setup(&mut self, out: &mut Vec<Action>) {
        let Some(decided) = &self.cp.decided else { return };
        let holders: Vec<PartyId> =
            self.he.retry_holders.clone().unwrap_or_else(|| decided.accepted.iter().map(|p| PartyId(*p)).collect());
        out.push(Action::Log(format!(
            "round {}: threshold-HE key set-up among {} sites",
            self.cp.round,
            holders.len()
        )));
        let payload = messages::to_payload(&HeSetupStart {
            study: self.study.clone(),
            holders: holders.iter().map(|p| p.0).collect(),
        });
        for &p in &holders {
            self.send(out, p, ProtocolId::Control, control::HE_SETUP_START, payload.clone());
        }
        self.expected = holders.iter().copied().collect();
        self.phase = Phase::HeSetup(Box::new(Setup::new(self.session(), &holders)));
    }

    pub(super) fn advance_he_setup(&mut self, out: &mut Vec<Action>) {
        let Phase::HeSetup(mut setup) = std::mem::replace(&mut self.phase, Phase::Done) else { return };
        let answered = std::mem::take(&mut self.got);
        match setup.close(&answered) {
            Ok(SetupClose::Send(sends)) => {
                for (to, payload) in sends.to {
                    self.send(out, to, ProtocolId::ThresholdBfv, sends.step, payload);
                }
                self.phase = Phase::HeSetup(setup);
            }
            Ok(SetupClose::Done(digest)) => {
                out.push(Action::Log(format!(
                    "round {}: threshold-HE collective key ready ({} holders, t = {})",
                    self.cp.round,
                    setup.holders().len(),
                    self.spec.threshold
                )));
                self.he.key = Some((setup.holders().to_vec(), digest));
                self.phase_done(out);
            }
            Err(e) => {
                let responders: Vec<PartyId> =
                    setup.holders().iter().filter(|p| answered.contains(p)).copied().collect();
                if responders.len() >= self.spec.threshold as usize && responders.len() < setup.holders().len() {
                    self.he.retry_holders = Some(responders);
                }
                self.retry(out, format!("threshold-HE key set-up: {e}"));
            }
        }
    }

    /// Starts an encrypted aggregation round of `len` words (`query` for model analyses).
    pub(super) fn start_he_round(&mut self, out: &mut Vec<Action>, len: usize, query: Option<crate::fed::Query>) {
        if len > crate::he_coord::MAX_HE_WORDS {
            return self.fail(
                out,
                format!(
                    "this round sums {len} words; `aggregation = \"he\"` carries at most {} per round (use secagg)",
                    crate::he_coord::MAX_HE_WORDS
                ),
            );
        }
        let Some((holders, _)) = self.he.key.clone() else {
            return self.fail(out, "threshold-HE aggregation without a collective key".into());
        };
        let ctx = match self.he_context() {
            Ok(c) => c,
            Err(e) => return self.fail(out, format!("threshold HE: {e}")),
        };
        let payload = messages::to_payload(&AggregateStart {
            study: self.study.clone(),
            parties: holders.iter().map(|p| p.0).collect(),
            query,
        });
        for &p in &holders {
            self.send(out, p, ProtocolId::Control, control::AGGREGATE_START, payload.clone());
        }
        self.expected = holders.iter().copied().collect();
        self.phase = Phase::HeRound(Box::new(Round::new(ctx, &holders, self.spec.threshold as usize, len)));
    }

    pub(super) fn advance_he_round(&mut self, out: &mut Vec<Action>) {
        let Phase::HeRound(mut round) = std::mem::replace(&mut self.phase, Phase::Done) else { return };
        let dropped: Vec<String> = self.waiting_for().into_iter().map(|p| self.name(p)).collect();
        if !dropped.is_empty() {
            out.push(Action::Log(format!("round {}: no answer from {}", self.cp.round, dropped.join(", "))));
        }
        self.got.clear();
        match round.close() {
            Ok(RoundClose::Request { to, payload }) => {
                for &p in &to {
                    self.send(out, p, ProtocolId::ThresholdBfv, step::SHARE_REQUEST, payload.clone());
                }
                self.expected = to.into_iter().collect();
                self.phase = Phase::HeRound(round);
            }
            Ok(RoundClose::Done { sum, contributors }) => {
                self.he.store = round.stored().clone();
                self.he.store_round = self.cp.round;
                let survivors = contributors.iter().map(|p| p.0).collect();
                self.aggregation_done(sum, survivors, out);
            }
            Err(e) => self.retry(out, format!("encrypted aggregation: {e}")),
        }
    }
}
