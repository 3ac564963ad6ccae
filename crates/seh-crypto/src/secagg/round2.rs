//! Round 2 (client): decrypt and verify the shares dealt to me, then send the
//! masked input `y_u = x_u + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(s_uv)` (mod 2^64;
//! `+` when `u < v`, `−` otherwise, so pair masks cancel in the sum).

use super::keys::{decrypt_share, mask_secret, pair_mask_key, self_mask_key, share_aad};
use super::prg::{apply_masks, mask_into_payload, mask_to_le_bytes, MaskStream};
use super::round1::{commitments_hash, Round1Secret};
use super::{ForwardedShares, MaskedInput, SecAggParams};
use crate::error::{SecAggError, ShamirError};
use crate::shamir::{verify_batch, Commitments, SecretShare};
use crate::wire::{PartyId, PayloadBuf};
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroize;

/// Shares I hold of one dealer's two secrets.
pub(crate) struct Held {
    pub(crate) b: SecretShare,
    pub(crate) s: SecretShare,
}

/// Secret state after round 2; consumed by [`super::round3::sign_survivors`].
pub struct Round2Secret {
    pub(crate) params: SecAggParams,
    pub(crate) me: PartyId,
    /// Shares held, by dealer (`U2` neighbours and myself).
    pub(crate) held: BTreeMap<PartyId, Held>,
}

impl fmt::Debug for Round2Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Round2Secret")
            .field("me", &self.me)
            .field("dealers", &self.held.keys().collect::<Vec<_>>())
            .field("shares", &"<redacted>")
            .finish()
    }
}

fn scalar_at(bytes: &[u8], dealer: PartyId, recipient: PartyId) -> Result<Scalar, SecAggError> {
    let mut a = [0u8; 32];
    a.copy_from_slice(bytes.get(..32).ok_or(SecAggError::DecryptionFailed { sender: dealer, recipient })?);
    Option::from(Scalar::from_canonical_bytes(a))
        .ok_or(SecAggError::Shamir(ShamirError::InvalidShare { dealer, recipient }))
}

/// Check the forwarded shares and mask `input` (already fixed-point encoded,
/// length `params.length()`) in place; the masked vector is returned in the message.
///
/// Errors naming the dealer: [`SecAggError::UnexpectedParty`] (not a round-0
/// neighbour), [`SecAggError::Malformed`] (wrong commitment count),
/// [`SecAggError::DecryptionFailed`], [`SecAggError::Shamir`] with
/// `InvalidShare { dealer, recipient }` (share fails the dealer's commitments).
/// [`SecAggError::TooFewSurvivors`] if fewer than `t − 1` neighbours dealt.
pub fn masked_input<R: RngCore + CryptoRng>(
    state: Round1Secret,
    forwarded: &ForwardedShares,
    input: Vec<u64>,
    rng: &mut R,
) -> Result<(Round2Secret, MaskedInput), SecAggError> {
    let mut y = input;
    let (next, mut streams) = check_and_key(state, forwarded, y.len(), rng).inspect_err(|_| y.zeroize())?;
    apply_masks(&mut y, &mut streams);
    Ok((next, MaskedInput { y }))
}

/// [`masked_input`], returning the encoded [`MaskedInput`] payload
/// (`MaskedInput::decode` of it gives the masked vector) built in the same
/// pass over the vector as the masking. `input` is overwritten with the masked
/// words (so no plaintext is left in it) and dropped. Same errors.
pub fn masked_input_payload<R: RngCore + CryptoRng>(
    state: Round1Secret,
    forwarded: &ForwardedShares,
    mut input: Vec<u64>,
    rng: &mut R,
) -> Result<(Round2Secret, Vec<u8>), SecAggError> {
    let (next, mut streams) = check_and_key(state, forwarded, input.len(), rng).inspect_err(|_| input.zeroize())?;
    let mut payload = MaskedInput::payload_buffer(input.len());
    mask_to_le_bytes(&mut input, &mut streams, &mut payload);
    Ok((next, payload))
}

/// [`masked_input_payload`] writing the payload into a [`PayloadBuf`], so the
/// site frames and signs it in place ([`PayloadBuf::seal`]) without moving
/// the `8·m`-byte vector; the payload is hashed for the signature in the
/// masking pass, 16 KiB at a time. `input` is overwritten with the masked words and
/// dropped. Same errors.
pub fn masked_input_buf<R: RngCore + CryptoRng>(
    state: Round1Secret,
    forwarded: &ForwardedShares,
    mut input: Vec<u64>,
    rng: &mut R,
) -> Result<(Round2Secret, PayloadBuf), SecAggError> {
    let (next, mut streams) = check_and_key(state, forwarded, input.len(), rng).inspect_err(|_| input.zeroize())?;
    let mut buf = PayloadBuf::with_capacity(4 + 8 * input.len());
    buf.extend_from_slice(&(input.len() as u32).to_be_bytes());
    mask_into_payload(&mut input, &mut streams, &mut buf);
    Ok((next, buf))
}

/// Verify and keep the forwarded shares; derive the mask streams (self mask
/// first, then one per dealing neighbour).
fn check_and_key<R: RngCore + CryptoRng>(
    state: Round1Secret,
    forwarded: &ForwardedShares,
    input_len: usize,
    rng: &mut R,
) -> Result<(Round2Secret, Vec<MaskStream>), SecAggError> {
    let params = &state.params;
    let session = params.session();
    let me = state.me;
    let t = params.threshold();
    if input_len != params.length() {
        return Err(SecAggError::InvalidParameter {
            field: "input",
            reason: format!("length {input_len} differs from the agreed {}", params.length()),
        });
    }
    let neighbours = params.neighbours(me);
    let mut held = BTreeMap::new();
    let mut commitments: Vec<(PartyId, &Commitments, &Commitments)> = Vec::with_capacity(forwarded.shares.len());
    for f in &forwarded.shares {
        let dealer = f.dealer;
        if !state.keys.contains_key(&dealer) || neighbours.binary_search(&dealer).is_err() {
            return Err(SecAggError::UnexpectedParty { party: dealer, reason: "not a neighbour that advertised keys" });
        }
        if held.contains_key(&dealer) {
            return Err(SecAggError::Duplicate { party: dealer, round: 1 });
        }
        if f.commit_b.threshold() != t || f.commit_s.threshold() != t {
            return Err(SecAggError::Malformed { what: "commitments", sender: dealer, reason: "count differs from t" });
        }
        // Every neighbour that advertised was a holder in round 1, which derived this key.
        let key = state
            .share_keys_in
            .get(&dealer)
            .ok_or(SecAggError::UnexpectedParty { party: dealer, reason: "not a neighbour that advertised keys" })?;
        let aad = share_aad(&session, dealer, me, &commitments_hash(&f.commit_b, &f.commit_s));
        let pt = decrypt_share(key, &aad, &f.ciphertext)
            .ok_or(SecAggError::DecryptionFailed { sender: dealer, recipient: me })?;
        let b = SecretShare::new(me, scalar_at(&pt[..32], dealer, me)?)?;
        let s = SecretShare::new(me, scalar_at(&pt[32..], dealer, me)?)?;
        held.insert(dealer, Held { b, s });
        commitments.push((dealer, &f.commit_b, &f.commit_s));
    }
    let mut items = Vec::with_capacity(2 * commitments.len());
    for &(dealer, cb, cs) in &commitments {
        if let Some(h) = held.get(&dealer) {
            items.push((dealer, cb, &h.b));
            items.push((dealer, cs, &h.s));
        }
    }
    verify_batch(&items, rng)?;
    let dealers: Vec<PartyId> = held.keys().copied().collect();
    if dealers.len() + 1 < t {
        return Err(SecAggError::TooFewSurvivors { round: 1, alive: dealers.len() + 1, threshold: t });
    }

    let mut streams = Vec::with_capacity(dealers.len() + 1);
    streams.push(MaskStream::new(&self_mask_key(&state.b, &session, me), false));
    let s_u = mask_secret(&state.mask_scalar);
    for v in &dealers {
        let pk = state.keys.get(v).map(|k| k.mask_pk).unwrap_or_default();
        let key = pair_mask_key(&s_u, &pk, &session, me, *v).ok_or(SecAggError::Malformed {
            what: "mask key",
            sender: *v,
            reason: "low-order X25519 public key",
        })?;
        streams.push(MaskStream::new(&key, me > *v));
    }

    let Round1Secret { params, own_shares, .. } = state;
    let (ob, os) = own_shares;
    held.insert(me, Held { b: ob, s: os });
    Ok((Round2Secret { params, me, held }, streams))
}
