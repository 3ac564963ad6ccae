//! Round 3 (client): the consistency check of the malicious-secure variant,
//! then unmasking.
//!
//! 3a. [`sign_survivors`]: the client signs the survivor set `U3` the server
//!     announces (after checking it contains itself and at least `t` parties).
//! 3b. [`unmask`]: given at least `t` valid signatures over the *same* `U3`,
//!     the client reveals, for every dealer whose shares it holds, the `b`
//!     share if the dealer survived and the `s` share if it dropped — never
//!     both for one party. A request listing a party both as survivor and as
//!     dropped is refused ([`SecAggError::UnsafeUnmaskRequest`]).

use super::keys::survivors_message;
use super::round2::Round2Secret;
use super::{ConsistencyRequest, ConsistencySignature, SecAggParams, UnmaskRequest, UnmaskShares};
use crate::error::SecAggError;
use crate::wire::{PartyId, Roster, SigningKey};
use ed25519_dalek::{Signature, Signer};
use std::collections::BTreeSet;
use std::fmt;

/// Secret state after signing the survivor set; consumed by [`unmask`].
pub struct Round3Secret {
    inner: Round2Secret,
    survivors: Vec<PartyId>,
}

impl fmt::Debug for Round3Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Round3Secret").field("inner", &self.inner).field("survivors", &self.survivors).finish()
    }
}

fn strictly_ascending(ids: &[PartyId]) -> bool {
    ids.windows(2).all(|w| w[0] < w[1])
}

/// Check the announced survivor set and sign it.
///
/// Errors: [`SecAggError::InconsistentSurvivors`] if `U3` is not strictly
/// ascending, omits me, names a non-participant, or names a neighbour that did
/// not deal me shares in round 1; [`SecAggError::TooFewSurvivors`] if `|U3| < t`.
pub fn sign_survivors(
    state: Round2Secret,
    request: &ConsistencyRequest,
    identity: &SigningKey,
) -> Result<(Round3Secret, ConsistencySignature), SecAggError> {
    let params: &SecAggParams = &state.params;
    let me = state.me;
    let u3 = &request.survivors;
    let t = params.threshold();
    let inconsistent = |party, reason| Err(SecAggError::InconsistentSurvivors { party, reason });
    if !strictly_ascending(u3) {
        return inconsistent(PartyId::COORDINATOR, "survivor list not strictly ascending");
    }
    if u3.binary_search(&me).is_err() {
        return inconsistent(me, "I sent my masked input but am not listed as a survivor");
    }
    let neighbours = params.neighbours(me);
    for &p in u3 {
        if !params.contains(p) {
            return inconsistent(p, "survivor is not a participant");
        }
        if neighbours.binary_search(&p).is_ok() && !state.held.contains_key(&p) {
            return inconsistent(p, "survivor dealt me no shares in round 1");
        }
    }
    if u3.len() < t {
        return Err(SecAggError::TooFewSurvivors { round: 2, alive: u3.len(), threshold: t });
    }
    let signature = identity.sign(&survivors_message(&params.session(), u3)).to_bytes();
    Ok((Round3Secret { inner: state, survivors: u3.clone() }, ConsistencySignature { signature }))
}

/// Verify the collected signatures and reveal shares.
///
/// Errors: [`SecAggError::InconsistentSurvivors`] if the survivor set differs
/// from the one I signed or a dealer I hold shares of is neither survivor nor
/// dropped; [`SecAggError::UnsafeUnmaskRequest`] if a party is listed both as
/// survivor and dropped; [`SecAggError::BadSignature`] for an invalid
/// signature (naming the signer); [`SecAggError::TooFewSurvivors`] with fewer
/// than `t` valid signatures from survivors. Signatures are checked in order
/// until `t` have verified; any beyond those are not checked (all must still
/// name survivors).
pub fn unmask<Ro: Roster + ?Sized>(
    state: Round3Secret,
    request: &UnmaskRequest,
    roster: &Ro,
) -> Result<UnmaskShares, SecAggError> {
    let params = &state.inner.params;
    let t = params.threshold();
    if request.survivors != state.survivors {
        return Err(SecAggError::InconsistentSurvivors {
            party: PartyId::COORDINATOR,
            reason: "survivor set differs from the one I signed",
        });
    }
    let survivors: BTreeSet<PartyId> = request.survivors.iter().copied().collect();
    let dropped: BTreeSet<PartyId> = request.dropped.iter().copied().collect();
    if let Some(&p) = survivors.intersection(&dropped).next() {
        return Err(SecAggError::UnsafeUnmaskRequest { party: p });
    }
    let msg = survivors_message(&params.session(), &request.survivors);
    let mut signers = BTreeSet::new();
    for (p, sig) in &request.signatures {
        if !survivors.contains(p) {
            return Err(SecAggError::UnexpectedParty { party: *p, reason: "signature from a non-survivor" });
        }
        if signers.len() >= t {
            // `t` distinct survivors vouched for this set: that is the whole
            // condition, so the remaining signatures need no check.
            continue;
        }
        let vk =
            roster.verifying_key(*p).ok_or(SecAggError::UnexpectedParty { party: *p, reason: "no identity key" })?;
        vk.verify_strict(&msg, &Signature::from_bytes(sig))
            .map_err(|_| SecAggError::BadSignature { what: "survivor set", sender: *p })?;
        signers.insert(*p);
    }
    if signers.len() < t {
        return Err(SecAggError::TooFewSurvivors { round: 3, alive: signers.len(), threshold: t });
    }
    let mut b_shares = Vec::new();
    let mut s_shares = Vec::new();
    for (dealer, h) in &state.inner.held {
        if survivors.contains(dealer) {
            b_shares.push((*dealer, *h.b.value()));
        } else if dropped.contains(dealer) {
            s_shares.push((*dealer, *h.s.value()));
        } else {
            return Err(SecAggError::InconsistentSurvivors {
                party: *dealer,
                reason: "dealt shares in round 1 but is neither survivor nor dropped",
            });
        }
    }
    Ok(UnmaskShares { b_shares, s_shares })
}
