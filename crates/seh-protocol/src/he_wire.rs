//! Wire forms of the threshold-HE path (`aggregation = "he"`): envelope steps, bundles of
//! site-signed envelopes relayed by the coordinator, and the site-to-site encryption of
//! key-share deals.
//!
//! During the key set-up every site message that another site must trust is a complete signed
//! envelope of its author; the coordinator forwards those bytes unchanged inside a [`Bundle`],
//! so a site checks every relayed item against the author's identity key (the coordinator
//! cannot forge or alter one). A key-share deal travels encrypted under a key only the two
//! sites can derive (X25519 between per-set-up keys, HKDF-SHA-256, ChaCha20-Poly1305 with the
//! session, dealer and recipient as associated data), so the coordinator relays ciphertext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, Reader, SessionId, SigningKey, Writer};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::messages;
use crate::spec::SignedStudy;

/// `ProtocolId::ThresholdBfv` envelope steps of the runtime. Steps 0–2 are those of
/// `seh_crypto::he::HeStep` (contribution, share request, decryption share).
pub mod step {
    /// Site → coordinator: the encrypted contribution (`HeVector`).
    pub const CONTRIBUTION: u8 = 0;
    /// Coordinator → decryptor: a `ShareRequest` for the encrypted sum.
    pub const SHARE_REQUEST: u8 = 1;
    /// Decryptor → coordinator: its flooded `DecryptionShare`.
    pub const DECRYPTION_SHARE: u8 = 2;
    /// Site → coordinator: seed commitment ‖ X25519 public key (64 bytes).
    pub const COMMIT: u8 = 10;
    /// Coordinator → site: [`super::Bundle`] of every holder's `COMMIT` envelope.
    pub const COMMITS: u8 = 11;
    /// Site → coordinator: the opened seed contribution (32 bytes).
    pub const REVEAL: u8 = 12;
    /// Coordinator → site: bundle of every holder's `REVEAL` envelope.
    pub const REVEALS: u8 = 13;
    /// Site → coordinator: bundle of its `PK_SHARE` envelope and one `DEAL` envelope per other holder.
    pub const KEYS: u8 = 14;
    /// Coordinator → site: bundle of every `PK_SHARE` envelope and the `DEAL`s addressed to the site.
    pub const FORWARD: u8 = 15;
    /// Site → coordinator: SHA-256 digest of the collective key it derived (32 bytes).
    pub const READY: u8 = 16;
    /// Inner (bundled), site → all: the site's public-key share.
    pub const PK_SHARE: u8 = 20;
    /// Inner (bundled), site → one site: an encrypted key-share deal.
    pub const DEAL: u8 = 21;
    /// Coordinator → holder: offer of a release from the encrypted store
    /// (`he_release::HeReleaseOffer`, JSON).
    pub const RELEASE_OFFER: u8 = 30;
    /// Holder → coordinator: accept or refuse it (`he_release::HeReleaseAnswer`, JSON).
    pub const RELEASE_ANSWER: u8 = 31;
    /// Coordinator → holder that accepted a release: co-sign its result
    /// (`he_cosign::StoreReleaseSignStart`, JSON); the FROST commitment, request and share follow
    /// as `frost` steps, as for a live release.
    pub const RELEASE_SIGN_START: u8 = 32;
}

/// Most items in one bundle (two per holder, plus slack).
pub const MAX_BUNDLE_ITEMS: usize = 2 * crate::spec::MAX_HE_SITES + 2;
/// Largest bundled item (one envelope carrying one polynomial of `bfv-8192`, ≈ 0.2 MB, plus slack).
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// Starts the key set-up of a study among `holders`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeSetupStart {
    /// The study (each site re-applies its policy).
    pub study: SignedStudy,
    /// Key holders (party ids, ascending): the sites that accepted the study.
    pub holders: Vec<u32>,
}

/// A list of signed envelopes, each exactly as its author signed it.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Bundle(pub Vec<Vec<u8>>);

impl Bundle {
    /// Encodes: item count (u32), then each item as u32 length ‖ bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(4 + self.0.iter().map(|b| b.len() + 4).sum::<usize>());
        w.u32(self.0.len() as u32);
        for item in &self.0 {
            w.bytes_u32(item);
        }
        w.into_bytes()
    }

    /// Strictly decodes [`Bundle::encode`] (bounded counts and sizes, no trailing bytes).
    pub fn decode(bytes: &[u8], sender: PartyId) -> Result<Bundle, ProtocolError> {
        let mut r = Reader::new(bytes, Some(sender));
        let n = r.count_u32("bundle items", MAX_BUNDLE_ITEMS)?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(r.bytes_u32("bundle item", MAX_ITEM_BYTES)?.to_vec());
        }
        r.finish("bundle")?;
        Ok(Bundle(items))
    }
}

/// Signs an inner envelope (`ThresholdBfv`, `step`) from `me` to `to` in `session`.
pub fn sign_inner(
    key: &SigningKey,
    session: SessionId,
    step: u8,
    me: PartyId,
    to: PartyId,
    payload: Vec<u8>,
) -> Result<Vec<u8>, ProtocolError> {
    messages::seal(key, ProtocolId::ThresholdBfv, step, me, to, session, payload)
}

/// Opens a relayed envelope: authenticates it under `roster`, and checks the session, the step,
/// that its author is one of `holders`, and its recipient. Errors name the claimed author.
pub fn open_inner<R: seh_crypto::wire::Roster + ?Sized>(
    bytes: &[u8],
    roster: &R,
    session: SessionId,
    step: u8,
    holders: &[PartyId],
    recipient: PartyId,
) -> Result<Envelope, ProtocolError> {
    let env = messages::open(bytes, roster)?;
    let bad = |reason: &str| ProtocolError::Unexpected { party: env.sender, reason: reason.to_owned() };
    if env.session != session {
        return Err(bad("relayed message of another study or round"));
    }
    if env.protocol != ProtocolId::ThresholdBfv || env.step != step {
        return Err(bad("relayed message of another step"));
    }
    if !holders.contains(&env.sender) {
        return Err(bad("relayed message from a site that holds no key share of this study"));
    }
    if env.recipient != recipient {
        return Err(bad("relayed message addressed to another party"));
    }
    Ok(env)
}

fn deal_key(
    mine: &StaticSecret,
    theirs: &[u8; 32],
    session: SessionId,
    from: PartyId,
    to: PartyId,
) -> Result<Zeroizing<[u8; 32]>, ProtocolError> {
    let shared = mine.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(ProtocolError::Unexpected {
            party: if to == PartyId::COORDINATOR { from } else { to },
            reason: "X25519 key of the key set-up is a low-order point".into(),
        });
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&session.to_bytes()), shared.as_bytes());
    let mut info = b"secur-e-health he deal v1".to_vec();
    info.extend_from_slice(&from.0.to_be_bytes());
    info.extend_from_slice(&to.0.to_be_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(&info, key.as_mut()).map_err(|_| ProtocolError::invalid("key set-up", "hkdf", "output length"))?;
    Ok(key)
}

fn aad(session: SessionId, from: PartyId, to: PartyId) -> Vec<u8> {
    let mut a = session.to_bytes().to_vec();
    a.extend_from_slice(&from.0.to_be_bytes());
    a.extend_from_slice(&to.0.to_be_bytes());
    a
}

/// Encrypts a serialised deal from `from` (secret `mine`) to `to` (X25519 key `theirs`). Each
/// (session, dealer, recipient) key encrypts exactly one message, so the nonce is fixed.
pub fn seal_deal(
    mine: &StaticSecret,
    theirs: &[u8; 32],
    session: SessionId,
    from: PartyId,
    to: PartyId,
    deal: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    let key = deal_key(mine, theirs, session, from, to)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .encrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: deal, aad: &aad(session, from, to) })
        .map_err(|_| ProtocolError::invalid("key set-up", "deal", "cannot encrypt"))
}

/// Decrypts a deal sealed by [`seal_deal`]. Errors name the dealer.
pub fn open_deal(
    mine: &StaticSecret,
    theirs: &[u8; 32],
    session: SessionId,
    from: PartyId,
    to: PartyId,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let key = deal_key(mine, theirs, session, from, to)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    cipher
        .decrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: sealed, aad: &aad(session, from, to) })
        .map(Zeroizing::new)
        .map_err(|_| ProtocolError::Unexpected {
            party: from,
            reason: "key-share deal does not decrypt (wrong key, or altered in transit)".into(),
        })
}

/// The digest every holder and the coordinator compute over the collective key's inputs:
/// SHA-256 of a context string, the session, the joint seed and each holder's public-key-share
/// bytes in holder order. Equal digests mean everyone encrypts under the same key.
pub fn key_digest(session: SessionId, seed: &[u8; 32], pk_shares: &[(PartyId, Vec<u8>)]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"secur-e-health he collective key v1\0");
    h.update(session.to_bytes());
    h.update(seed);
    for (p, b) in pk_shares {
        h.update(p.0.to_be_bytes());
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    }
    h.finalize().into()
}

/// Maps a threshold-HE error (which names the party at fault, never a value or key) to a
/// [`ProtocolError`].
pub fn he_error(e: seh_crypto::he::HeError) -> ProtocolError {
    ProtocolError::Analysis { step: "threshold HE", reason: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seh_crypto::wire::StudyId;

    fn session() -> SessionId {
        SessionId { study: StudyId([7; 16]), round: 3 }
    }

    #[test]
    fn bundles_round_trip_and_reject_trailing_bytes() {
        let b = Bundle(vec![vec![1, 2, 3], vec![], vec![9; 100]]);
        let bytes = b.encode();
        assert_eq!(Bundle::decode(&bytes, PartyId(1)).unwrap(), b);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Bundle::decode(&longer, PartyId(1)).is_err());
        assert!(Bundle::decode(&bytes[..bytes.len() - 1], PartyId(1)).is_err());
    }

    #[test]
    fn deals_open_only_for_their_recipient_and_context() {
        let rng = rand::rngs::OsRng;
        let (a, b, c) = (
            StaticSecret::random_from_rng(rng),
            StaticSecret::random_from_rng(rng),
            StaticSecret::random_from_rng(rng),
        );
        let (pa, pb) = (PublicKey::from(&a).to_bytes(), PublicKey::from(&b).to_bytes());
        let pc = PublicKey::from(&c).to_bytes();
        let sealed = seal_deal(&a, &pb, session(), PartyId(1), PartyId(2), b"secret deal").unwrap();
        assert_eq!(open_deal(&b, &pa, session(), PartyId(1), PartyId(2), &sealed).unwrap().as_slice(), b"secret deal");
        // Another recipient, another session, or a swapped direction: refused, naming the dealer.
        assert!(open_deal(&c, &pa, session(), PartyId(1), PartyId(2), &sealed).is_err());
        let other = SessionId { round: 4, ..session() };
        assert!(open_deal(&b, &pa, other, PartyId(1), PartyId(2), &sealed).is_err());
        let e = open_deal(&b, &pc, session(), PartyId(1), PartyId(2), &sealed).unwrap_err();
        assert!(e.to_string().contains("1"), "{e}");
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert!(open_deal(&b, &pa, session(), PartyId(1), PartyId(2), &tampered).is_err());
    }
}
