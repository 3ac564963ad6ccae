//! FROST distributed key generation **at the sites**, relayed by an untrusted party (the
//! coordinator): the sans-IO state machine each site runs, so that no process ever holds more
//! than its own key share.
//!
//! Two message rounds, both signed envelopes (`ProtocolId::Dkg`) from the site's Ed25519
//! identity key, in the session `(ceremony id, round 0)`:
//!
//! 1. [`STEP_ROUND1`], broadcast: a fresh X25519 public key for this ceremony, then the FROST
//!    round-1 package (commitments and proof of knowledge). The identity signature binds the
//!    X25519 key to the site, so a relay cannot substitute its own.
//! 2. [`STEP_ROUND2`], broadcast: for every other site, its FROST round-2 package (a secret
//!    share) sealed with ChaCha20-Poly1305 under HKDF-SHA256(X25519(ours, theirs)) bound to the
//!    ceremony, dealer and recipient. The relay forwards the whole bundle; only the recipient can
//!    open its part, and an altered part fails to decrypt and names the dealer.
//!
//! [`DkgSite::finish`] checks each share against its dealer's commitments and returns the site's
//! [`KeyShare`] and the group key. Every site must reach the same group key; the set-up compares
//! them (e.g. each site signs its result) before the group key is written to the federation file.
//!
//! Not yet wired into `seh keys` / `seh node` (DESIGN §9): this module is the site-side logic and
//! its tests.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::{CryptoRng, RngCore};
use seh_crypto::frost::dkg::{self, Round1Package, Round1Secret, Round2Package, Round2Secret};
use seh_crypto::frost::{GroupPublicKey, KeyShare};
use seh_crypto::wire::{PartyId, ProtocolId, SessionId, SigningKey, StudyId, VerifyingKey};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::ProtocolError;
use crate::messages;

/// Envelope step of the round-1 broadcast.
pub const STEP_ROUND1: u8 = 1;
/// Envelope step of the round-2 bundle.
pub const STEP_ROUND2: u8 = 2;
/// HKDF info prefix of the round-2 sealing keys (domain separation from other X25519 uses).
const SEAL_INFO: &[u8] = b"secur-e-health frost dkg round2 v1";

/// The session of a ceremony: its 16-byte id (fresh per ceremony, agreed out of band or chosen by
/// the coordinator), round 0.
pub fn session(ceremony: [u8; 16]) -> SessionId {
    SessionId { study: StudyId(ceremony), round: 0 }
}

enum Stage {
    Round1(Round1Secret),
    Round2 { secret: Round2Secret, round1: BTreeMap<PartyId, Round1Package>, peers: BTreeMap<PartyId, [u8; 32]> },
    Spent,
}

/// One site's side of the ceremony. Secrets are dropped (zeroized by their types) as it advances.
pub struct DkgSite {
    me: PartyId,
    sites: BTreeMap<PartyId, VerifyingKey>,
    session: SessionId,
    identity: SigningKey,
    x_secret: StaticSecret,
    stage: Stage,
}

impl std::fmt::Debug for DkgSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkgSite").field("me", &self.me).field("secrets", &"<redacted>").finish()
    }
}

fn invalid(field: &str, reason: &str) -> ProtocolError {
    ProtocolError::invalid("key generation", field, reason)
}

fn from(party: PartyId, reason: &str) -> ProtocolError {
    ProtocolError::Unexpected { party, reason: reason.to_owned() }
}

/// The single-use key sealing `dealer`'s share for `recipient`; `peer` is the other site (named
/// in errors).
fn seal_key(
    mine: &StaticSecret,
    theirs: &[u8; 32],
    session: SessionId,
    (dealer, recipient, peer): (PartyId, PartyId, PartyId),
) -> Result<Zeroizing<[u8; 32]>, ProtocolError> {
    let shared = mine.diffie_hellman(&PublicKey::from(*theirs));
    if !shared.was_contributory() {
        return Err(from(peer, "X25519 key of the key generation is a low-order point"));
    }
    let hk = hkdf::Hkdf::<Sha256>::new(Some(&session.to_bytes()), shared.as_bytes());
    let info = [SEAL_INFO, &dealer.0.to_be_bytes(), &recipient.0.to_be_bytes()].concat();
    let mut key = Zeroizing::new([0u8; 32]);
    hk.expand(&info, key.as_mut()).map_err(|_| invalid("hkdf", "output length"))?;
    Ok(key)
}

fn aad(session: SessionId, dealer: PartyId, recipient: PartyId) -> Vec<u8> {
    [session.to_bytes().as_slice(), &dealer.0.to_be_bytes(), &recipient.0.to_be_bytes()].concat()
}

impl DkgSite {
    /// Starts the ceremony for site `me` among `sites` (party id → identity key, every site of
    /// the federation) with signing threshold `threshold`. Returns the state and the signed
    /// round-1 broadcast.
    ///
    /// Errors: `me` not among `sites`, fewer than two sites, threshold outside `2..=n`.
    pub fn start<R: RngCore + CryptoRng>(
        me: PartyId,
        sites: BTreeMap<PartyId, VerifyingKey>,
        threshold: u16,
        ceremony: [u8; 16],
        identity: SigningKey,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), ProtocolError> {
        if sites.get(&me) != Some(&identity.verifying_key()) {
            return Err(invalid("site", "this site's identity key is not the federation's key for it"));
        }
        let n = u16::try_from(sites.len()).map_err(|_| invalid("sites", "too many sites"))?;
        let (secret, package) = dkg::part1(me, n, threshold, rng)?;
        let x_secret = StaticSecret::random_from_rng(&mut *rng);
        let mut payload = PublicKey::from(&x_secret).as_bytes().to_vec();
        payload.extend_from_slice(&package.encode()?);
        let session = session(ceremony);
        let msg = messages::seal(&identity, ProtocolId::Dkg, STEP_ROUND1, me, PartyId::BROADCAST, session, payload)?;
        Ok((DkgSite { me, sites, session, identity, x_secret, stage: Stage::Round1(secret) }, msg))
    }

    /// Opens a relayed envelope of `step` from another site of this ceremony.
    fn open(&self, bytes: &[u8], step: u8) -> Result<(PartyId, Vec<u8>), ProtocolError> {
        let env = messages::open(bytes, &self.sites)?;
        if env.session != self.session || env.protocol != ProtocolId::Dkg || env.step != step {
            return Err(from(env.sender, "message of another ceremony or step"));
        }
        if env.recipient != PartyId::BROADCAST {
            return Err(from(env.sender, "key-generation message not addressed to all sites"));
        }
        Ok((env.sender, env.payload))
    }

    /// Round 2: takes the round-1 broadcasts of **every other** site (any order; our own may be
    /// included and is skipped) and returns the signed bundle of sealed shares to broadcast.
    ///
    /// Errors name the site at fault: a bad signature, a duplicate, a missing site, a bad proof
    /// of knowledge.
    pub fn round2(&mut self, round1: &[Vec<u8>]) -> Result<Vec<u8>, ProtocolError> {
        let Stage::Round1(secret) = std::mem::replace(&mut self.stage, Stage::Spent) else {
            return Err(invalid("state", "round 2 before round 1 or twice"));
        };
        let mut packages = BTreeMap::new();
        let mut peers = BTreeMap::new();
        for bytes in round1 {
            let (sender, payload) = self.open(bytes, STEP_ROUND1)?;
            if sender == self.me {
                continue;
            }
            let (x, package) =
                payload.split_first_chunk::<32>().ok_or_else(|| from(sender, "round-1 message too short"))?;
            if peers.insert(sender, *x).is_some() {
                return Err(from(sender, "two round-1 messages"));
            }
            packages.insert(sender, Round1Package::decode(package)?);
        }
        if let Some(missing) = self.sites.keys().find(|p| **p != self.me && !peers.contains_key(p)) {
            return Err(from(*missing, "no round-1 message from this site"));
        }
        let (secret2, shares) = dkg::part2(secret, &packages)?;
        let mut bundle = Vec::new();
        for (to, share) in &shares {
            let theirs = peers.get(to).ok_or_else(|| from(*to, "share for a site without a round-1 message"))?;
            let key = seal_key(&self.x_secret, theirs, self.session, (self.me, *to, *to))?;
            let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
            let plain = share.encode()?;
            let sealed = cipher
                .encrypt(Nonce::from_slice(&[0u8; 12]), Payload { msg: &plain, aad: &aad(self.session, self.me, *to) })
                .map_err(|_| invalid("share", "cannot encrypt"))?;
            let len = u32::try_from(sealed.len()).map_err(|_| invalid("share", "too long"))?;
            bundle.extend_from_slice(&to.0.to_be_bytes());
            bundle.extend_from_slice(&len.to_be_bytes());
            bundle.extend_from_slice(&sealed);
        }
        self.stage = Stage::Round2 { secret: secret2, round1: packages, peers };
        messages::seal(&self.identity, ProtocolId::Dkg, STEP_ROUND2, self.me, PartyId::BROADCAST, self.session, bundle)
    }

    /// Finishes: takes the round-2 bundles of every other site, opens the share each addressed to
    /// this site, checks it against the dealer's commitments, and returns this site's key share
    /// and the group key.
    ///
    /// Errors name the dealer of a share that is missing, does not decrypt, or does not match.
    pub fn finish(mut self, round2: &[Vec<u8>]) -> Result<(KeyShare, GroupPublicKey), ProtocolError> {
        let Stage::Round2 { secret, round1, peers } = std::mem::replace(&mut self.stage, Stage::Spent) else {
            return Err(invalid("state", "finish before round 2"));
        };
        let mut mine = BTreeMap::new();
        for bytes in round2 {
            let (dealer, bundle) = self.open(bytes, STEP_ROUND2)?;
            if dealer == self.me {
                continue;
            }
            let theirs =
                peers.get(&dealer).ok_or_else(|| from(dealer, "round-2 bundle from a site without round 1"))?;
            let sealed = find_part(&bundle, self.me).map_err(|r| from(dealer, r))?;
            let key = seal_key(&self.x_secret, theirs, self.session, (dealer, self.me, dealer))?;
            let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
            let plain = Zeroizing::new(
                cipher
                    .decrypt(
                        Nonce::from_slice(&[0u8; 12]),
                        Payload { msg: sealed, aad: &aad(self.session, dealer, self.me) },
                    )
                    .map_err(|_| {
                        from(dealer, "share does not decrypt (altered in transit, or sealed to another key)")
                    })?,
            );
            if mine.insert(dealer, Round2Package::decode(&plain)?).is_some() {
                return Err(from(dealer, "two round-2 bundles"));
            }
        }
        if let Some(missing) = peers.keys().find(|p| !mine.contains_key(p)) {
            return Err(from(*missing, "no round-2 share from this site"));
        }
        Ok(dkg::part3(secret, &round1, &mine)?)
    }
}

/// The sealed share addressed to `me` in a round-2 bundle (`party u32 | len u32 | bytes`, repeated).
fn find_part(bundle: &[u8], me: PartyId) -> Result<&[u8], &'static str> {
    let mut rest = bundle;
    let mut found = None;
    while !rest.is_empty() {
        let (to, tail) = rest.split_first_chunk::<4>().ok_or("round-2 bundle is truncated")?;
        let (len, tail) = tail.split_first_chunk::<4>().ok_or("round-2 bundle is truncated")?;
        let (to, len) = (u32::from_be_bytes(*to), u32::from_be_bytes(*len) as usize);
        let (part, tail) = tail.split_at_checked(len).ok_or("round-2 bundle is truncated")?;
        if to == me.0 {
            if found.is_some() {
                return Err("two shares for this site in one bundle");
            }
            found = Some(part);
        }
        rest = tail;
    }
    found.ok_or("round-2 bundle has no share for this site")
}

#[cfg(test)]
mod tests;
