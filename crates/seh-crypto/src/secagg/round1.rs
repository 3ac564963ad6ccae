//! Round 1 (client): check the advertised keys, then Shamir-share the self-mask
//! seed `b_u` and the masking key `s_u` among the holder set (neighbours that
//! advertised, plus the client itself), encrypting each neighbour's pair.

use super::keys::{advert_message, encrypt_share, share_aad, share_keys_both, SHARE_PLAINTEXT_LEN};
use super::round0::Round0Secret;
use super::{AdvertiseKeys, EncryptedShare, KeyList, SecAggParams, ShareKeys};
use crate::error::SecAggError;
use crate::shamir::{deal, Commitments, SecretShare};
use crate::wire::{PartyId, Roster};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signature;
use rand::{CryptoRng, RngCore};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use zeroize::Zeroizing;

/// Secret state after round 1; consumed by [`super::round2::masked_input`].
pub struct Round1Secret {
    pub(crate) params: SecAggParams,
    pub(crate) me: PartyId,
    pub(crate) mask_scalar: Zeroizing<Scalar>,
    pub(crate) b: Zeroizing<Scalar>,
    /// Advertised keys of round-0 survivors (`U1`).
    pub(crate) keys: BTreeMap<PartyId, AdvertiseKeys>,
    /// My own shares of `b_u` and `s_u`.
    pub(crate) own_shares: (SecretShare, SecretShare),
    /// Keys decrypting the shares each neighbour deals me (derived in round 1
    /// from the same X25519 agreement as the keys I encrypt with).
    pub(crate) share_keys_in: BTreeMap<PartyId, Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for Round1Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Round1Secret").field("me", &self.me).field("secrets", &"<redacted>").finish()
    }
}

/// Hash binding a dealer's commitments into the share ciphertexts' associated data.
pub(crate) fn commitments_hash(b: &Commitments, s: &Commitments) -> [u8; 32] {
    let mut w = crate::wire::Writer::default();
    b.encode(&mut w);
    s.encode(&mut w);
    *blake3::hash(&w.into_bytes()).as_bytes()
}

/// Verify the server's key list and deal shares.
///
/// Checks: every advert is from a participant, no party advertises twice
/// ([`SecAggError::Duplicate`]); the adverts of my neighbours carry a valid
/// signature under that party's roster key ([`SecAggError::BadSignature`];
/// other adverts are not used by me and not checked); my own advert
/// is present unchanged; no two parties share a public key
/// ([`SecAggError::DuplicateKey`]); at least `t` parties advertised and my
/// holder set has at least `t` members ([`SecAggError::TooFewSurvivors`]).
pub fn share_keys<R: RngCore + CryptoRng, Ro: Roster + ?Sized>(
    state: Round0Secret,
    key_list: &KeyList,
    roster: &Ro,
    rng: &mut R,
) -> Result<(Round1Secret, ShareKeys), SecAggError> {
    let params = &state.params;
    let session = params.session();
    let t = params.threshold();
    // Only my neighbours' keys are ever used (share encryption, pair masks),
    // so only their adverts (and mine) are signature-checked and kept; with a
    // sparse graph this saves n − k − 1 Ed25519 verifications per client.
    let all_neighbours = params.neighbours(state.me);
    let mut keys = BTreeMap::new();
    let mut seen_keys = BTreeSet::new();
    let mut advertised = BTreeSet::new();
    for a in &key_list.adverts {
        if !params.contains(a.party) {
            return Err(SecAggError::UnexpectedParty { party: a.party, reason: "advert from a non-participant" });
        }
        if !advertised.insert(a.party) {
            return Err(SecAggError::Duplicate { party: a.party, round: 0 });
        }
        if !seen_keys.insert(a.enc_pk) || !seen_keys.insert(a.mask_pk) {
            return Err(SecAggError::DuplicateKey { party: a.party });
        }
        if a.party != state.me && all_neighbours.binary_search(&a.party).is_err() {
            continue;
        }
        let vk = roster
            .verifying_key(a.party)
            .ok_or(SecAggError::UnexpectedParty { party: a.party, reason: "no identity key in the roster" })?;
        let msg = advert_message(&session, a.party, &a.enc_pk, &a.mask_pk);
        vk.verify_strict(&msg, &Signature::from_bytes(&a.signature))
            .map_err(|_| SecAggError::BadSignature { what: "advertise keys", sender: a.party })?;
        keys.insert(a.party, a.clone());
    }
    if keys.get(&state.me) != Some(&state.advert) {
        return Err(SecAggError::InconsistentSurvivors {
            party: state.me,
            reason: "my own advert is missing or altered",
        });
    }
    if advertised.len() < t {
        return Err(SecAggError::TooFewSurvivors { round: 0, alive: advertised.len(), threshold: t });
    }
    let neighbours: Vec<PartyId> = all_neighbours.into_iter().filter(|v| keys.contains_key(v)).collect();
    let mut holders = neighbours.clone();
    holders.push(state.me);
    holders.sort_unstable();
    if holders.len() < t {
        return Err(SecAggError::TooFewSurvivors { round: 0, alive: holders.len(), threshold: t });
    }

    let b = Zeroizing::new(Scalar::random(rng));
    let deal_b = deal(&b, t, &holders, rng)?;
    let deal_s = deal(&state.mask_scalar, t, &holders, rng)?;
    let hash = commitments_hash(&deal_b.commitments, &deal_s.commitments);
    let mut shares = Vec::with_capacity(neighbours.len());
    let mut own = None;
    let mut share_keys_in = BTreeMap::new();
    for (sb, ss) in deal_b.shares.iter().zip(&deal_s.shares) {
        let v = sb.index();
        if v == state.me {
            own = Some((sb.clone(), ss.clone()));
            continue;
        }
        let their = keys.get(&v).ok_or(SecAggError::UnexpectedParty { party: v, reason: "holder without keys" })?;
        let (key, key_in) =
            share_keys_both(&state.enc_sk, &their.enc_pk, &session, state.me, v).ok_or(SecAggError::Malformed {
                what: "encryption key",
                sender: v,
                reason: "low-order X25519 public key",
            })?;
        share_keys_in.insert(v, key_in);
        let mut pt = Zeroizing::new([0u8; SHARE_PLAINTEXT_LEN]);
        pt[..32].copy_from_slice(sb.value().as_bytes());
        pt[32..].copy_from_slice(ss.value().as_bytes());
        let ciphertext = encrypt_share(&key, &share_aad(&session, state.me, v, &hash), &pt);
        shares.push(EncryptedShare { recipient: v, ciphertext });
    }
    let own_shares = own.ok_or(SecAggError::UnexpectedParty { party: state.me, reason: "not among my own holders" })?;
    let msg = ShareKeys { commit_b: deal_b.commitments, commit_s: deal_s.commitments, shares };
    let Round0Secret { params, me, mask_scalar, .. } = state;
    let next = Round1Secret { params, me, mask_scalar, b, keys, own_shares, share_keys_in };
    Ok((next, msg))
}
