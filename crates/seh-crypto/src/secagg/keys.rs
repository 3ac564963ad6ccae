//! Key derivation, share encryption and the byte strings SecAgg+ signs.

use crate::wire::{PartyId, SessionId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Plaintext of an encrypted share pair: b-share (32) || s-share (32).
pub(crate) const SHARE_PLAINTEXT_LEN: usize = 64;
/// Ciphertext length (plaintext + 16-byte Poly1305 tag).
pub(crate) const SHARE_CIPHERTEXT_LEN: usize = SHARE_PLAINTEXT_LEN + 16;

fn hkdf<const N: usize>(ikm: &[u8], session: &SessionId, info: &[&[u8]]) -> Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(Some(&session.to_bytes()), ikm);
    let mut out = Zeroizing::new([0u8; N]);
    let info: Vec<u8> = info.concat();
    // N ≤ 32 here, far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    if hk.expand(&info, &mut out[..]).is_err() {
        out.fill(0);
    }
    out
}

/// The X25519 secret whose bytes are the (Shamir-shared) scalar `s`.
pub(crate) fn mask_secret(s: &Scalar) -> StaticSecret {
    StaticSecret::from(s.to_bytes())
}

/// AES key of the self-mask PRG of party `u` with seed `b`.
pub(crate) fn self_mask_key(b: &Scalar, session: &SessionId, u: PartyId) -> Zeroizing<[u8; 16]> {
    hkdf(b.as_bytes(), session, &[b"seh secagg self mask", &u.0.to_be_bytes()])
}

/// AES key of the pair mask between `u` (holding `s_u`) and `v` (public key `pk_v`).
/// `None` if the agreement is non-contributory (low-order public key).
pub(crate) fn pair_mask_key(
    s_u: &StaticSecret,
    pk_v: &[u8; 32],
    session: &SessionId,
    u: PartyId,
    v: PartyId,
) -> Option<Zeroizing<[u8; 16]>> {
    let shared = s_u.diffie_hellman(&PublicKey::from(*pk_v));
    if !shared.was_contributory() {
        return None;
    }
    let (lo, hi) = if u < v { (u, v) } else { (v, u) };
    Some(hkdf(shared.as_bytes(), session, &[b"seh secagg pair mask", &lo.0.to_be_bytes(), &hi.0.to_be_bytes()]))
}

/// A ChaCha20-Poly1305 key for one direction of share encryption.
pub(crate) type ShareKey = Zeroizing<[u8; 32]>;

/// ChaCha20-Poly1305 keys for shares between `me` and `them`, one per
/// direction, from one X25519 agreement: `(me → them, them → me)`. `None` if
/// the agreement is non-contributory (low-order public key).
pub(crate) fn share_keys_both(
    my_secret: &StaticSecret,
    their_pk: &[u8; 32],
    session: &SessionId,
    me: PartyId,
    them: PartyId,
) -> Option<(ShareKey, ShareKey)> {
    let shared = my_secret.diffie_hellman(&PublicKey::from(*their_pk));
    if !shared.was_contributory() {
        return None;
    }
    let ikm = shared.as_bytes();
    Some((directional_key(ikm, session, me, them), directional_key(ikm, session, them, me)))
}

fn directional_key(shared: &[u8; 32], session: &SessionId, sender: PartyId, recipient: PartyId) -> Zeroizing<[u8; 32]> {
    hkdf(shared, session, &[b"seh secagg share encryption", &sender.0.to_be_bytes(), &recipient.0.to_be_bytes()])
}

/// Associated data binding a share ciphertext to session, sender, recipient and
/// the dealer's commitments (so the server cannot swap them).
pub(crate) fn share_aad(
    session: &SessionId,
    sender: PartyId,
    recipient: PartyId,
    commitments_hash: &[u8; 32],
) -> Vec<u8> {
    [
        b"seh secagg share".as_slice(),
        &session.to_bytes(),
        &sender.0.to_be_bytes(),
        &recipient.0.to_be_bytes(),
        commitments_hash,
    ]
    .concat()
}

/// Encrypt a share pair (the key is single-use, so the nonce is zero).
pub(crate) fn encrypt_share(key: &Zeroizing<[u8; 32]>, aad: &[u8], plaintext: &[u8; SHARE_PLAINTEXT_LEN]) -> Vec<u8> {
    let k: &[u8; 32] = key;
    let cipher = ChaCha20Poly1305::new(k.into());
    // Encryption of 64 bytes cannot fail (only on > 2^38-byte messages).
    cipher.encrypt(&[0u8; 12].into(), Payload { msg: plaintext, aad }).unwrap_or_default()
}

/// Decrypt a share pair; `None` on authentication failure or wrong length.
pub(crate) fn decrypt_share(
    key: &Zeroizing<[u8; 32]>,
    aad: &[u8],
    ciphertext: &[u8],
) -> Option<Zeroizing<[u8; SHARE_PLAINTEXT_LEN]>> {
    let k: &[u8; 32] = key;
    let cipher = ChaCha20Poly1305::new(k.into());
    let pt = Zeroizing::new(cipher.decrypt(&[0u8; 12].into(), Payload { msg: ciphertext, aad }).ok()?);
    let mut out = Zeroizing::new([0u8; SHARE_PLAINTEXT_LEN]);
    if pt.len() != SHARE_PLAINTEXT_LEN {
        return None;
    }
    out.copy_from_slice(&pt);
    Some(out)
}

/// Bytes a client signs to advertise its keys.
pub(crate) fn advert_message(session: &SessionId, sender: PartyId, enc_pk: &[u8; 32], mask_pk: &[u8; 32]) -> Vec<u8> {
    [b"seh secagg advertise keys\0".as_slice(), &session.to_bytes(), &sender.0.to_be_bytes(), enc_pk, mask_pk].concat()
}

/// Bytes a client signs to confirm the survivor set (sorted ids).
pub(crate) fn survivors_message(session: &SessionId, survivors: &[PartyId]) -> Vec<u8> {
    let mut m = [b"seh secagg survivors\0".as_slice(), &session.to_bytes()].concat();
    m.extend_from_slice(&(survivors.len() as u32).to_be_bytes());
    for p in survivors {
        m.extend_from_slice(&p.0.to_be_bytes());
    }
    m
}
