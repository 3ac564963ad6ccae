//! FROST threshold Schnorr signatures (RFC 9591, ciphersuite
//! FROST(ristretto255, SHA-512)) as sans-IO rounds over `frost-ristretto255`.
//!
//! Used to sign the federation roster and released results so that anyone
//! can check provenance with [`verify`] and the 32-byte group key alone.
//!
//! * [`dkg`]: distributed key generation (`part1` → `part2` → `part3`), no
//!   trusted dealer; a bad proof of knowledge or a bad share names its sender.
//! * [`sign`]: `commit` (round 1) → coordinator builds a [`sign::SigningRequest`]
//!   → `sign` (round 2) → coordinator [`sign::aggregate`]s, naming every
//!   participant whose signature share is invalid.
//! * [`document_message`] / [`CanonicalDocument`]: the domain-separated byte
//!   string that is actually signed for a roster or a result.
//!
//! Each round's secret state is its own type, taken **by value** by the next
//! round, zeroized on drop (by the underlying crate) and printed as
//! `<redacted>`. Participants are identified by their [`PartyId`]; FROST
//! identifiers are the party id as a scalar, so they agree with the Shamir
//! share indices used elsewhere in this crate.
//!
//! This key is used for signing only; the threshold-decryption key of
//! [`crate::dkg`] is separate.

pub mod dkg;
pub mod sign;

use crate::wire::PartyId;
use frost_ristretto255 as frost;
use std::fmt;
use thiserror::Error;

pub use sign::{aggregate, commit, sign_share};

/// Errors from FROST key generation, signing and verification. Variants
/// caused by a peer name it; see [`FrostError::culprits`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrostError {
    /// Threshold / party count / party id not acceptable (API misuse).
    #[error("invalid FROST parameters: {reason}")]
    InvalidParameters {
        /// What is wrong.
        reason: &'static str,
    },
    /// A DKG round-1 package's proof of knowledge of its secret is invalid.
    #[error("DKG: invalid proof of knowledge from {culprit}")]
    InvalidProofOfKnowledge {
        /// The dealer that sent it.
        culprit: PartyId,
    },
    /// A DKG round-2 share does not match its dealer's commitments.
    #[error("DKG: invalid secret share from {}", fmt_opt(culprit))]
    InvalidSecretShare {
        /// The dealer, when identifiable.
        culprit: Option<PartyId>,
    },
    /// One or more signature shares do not verify (cheater detection).
    #[error("invalid signature share(s) from {culprits:?}")]
    InvalidSignatureShares {
        /// Every participant whose share failed.
        culprits: Vec<PartyId>,
    },
    /// Fewer participants than the threshold.
    #[error("{got} participants, the threshold is {threshold}")]
    NotEnoughSigners {
        /// Participants present.
        got: usize,
        /// Required threshold (when known).
        threshold: usize,
    },
    /// The set of packages / shares does not match the expected participants.
    #[error("unexpected or missing participant: {reason}")]
    WrongParticipants {
        /// What did not match.
        reason: &'static str,
    },
    /// The (aggregate) signature does not verify.
    #[error("signature does not verify under the group key")]
    InvalidSignature,
    /// A message failed strict decoding.
    #[error("malformed {message}{}", sender.map(|s| format!(" from {s}")).unwrap_or_default())]
    Malformed {
        /// Which message type.
        message: &'static str,
        /// Sender, when known to the caller.
        sender: Option<PartyId>,
    },
    /// Any other failure reported by the FROST implementation (no secret data).
    #[error("FROST: {0}")]
    Other(String),
}

fn fmt_opt(p: &Option<PartyId>) -> String {
    p.map(|p| p.to_string()).unwrap_or_else(|| "an unidentified dealer".to_owned())
}

impl FrostError {
    /// The parties at fault, if the error was caused by peers.
    pub fn culprits(&self) -> Vec<PartyId> {
        match self {
            FrostError::InvalidProofOfKnowledge { culprit } => vec![*culprit],
            FrostError::InvalidSecretShare { culprit: Some(c) } => vec![*c],
            FrostError::InvalidSignatureShares { culprits } => culprits.clone(),
            _ => vec![],
        }
    }
}

/// Convert a FROST error, translating identifiers back to party ids.
pub(crate) fn from_frost(e: frost::Error) -> FrostError {
    use frost::Error as E;
    match e {
        E::InvalidMinSigners => FrostError::InvalidParameters { reason: "threshold must be >= 2 and <= parties" },
        E::InvalidMaxSigners => FrostError::InvalidParameters { reason: "at least 2 parties are needed" },
        E::InvalidProofOfKnowledge { culprit } => match to_party(&culprit) {
            Some(c) => FrostError::InvalidProofOfKnowledge { culprit: c },
            None => FrostError::Other("invalid proof of knowledge from an unmapped identifier".into()),
        },
        E::InvalidSecretShare { culprit } => {
            FrostError::InvalidSecretShare { culprit: culprit.as_ref().and_then(to_party) }
        }
        E::InvalidSignatureShare { culprits } => {
            FrostError::InvalidSignatureShares { culprits: culprits.iter().filter_map(to_party).collect() }
        }
        E::InvalidSignature => FrostError::InvalidSignature,
        E::IncorrectNumberOfCommitments | E::IncorrectNumberOfShares => {
            FrostError::NotEnoughSigners { got: 0, threshold: 0 }
        }
        E::UnknownIdentifier | E::MissingCommitment | E::PackageNotFound | E::IncorrectNumberOfPackages => {
            FrostError::WrongParticipants { reason: "packages do not match the participant set" }
        }
        other => FrostError::Other(other.to_string()),
    }
}

/// The FROST identifier of a site: its [`PartyId`] as a scalar.
///
/// # Errors
/// [`FrostError::InvalidParameters`] for the coordinator id 0 or the broadcast id.
pub fn identifier(party: PartyId) -> Result<frost::Identifier, FrostError> {
    if !party.is_site() {
        return Err(FrostError::InvalidParameters { reason: "only site ids (1..u32::MAX) can sign" });
    }
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&party.0.to_le_bytes());
    frost::Identifier::deserialize(&bytes)
        .map_err(|_| FrostError::InvalidParameters { reason: "party id is not a valid identifier" })
}

/// The party id of a FROST identifier created by [`identifier`]; `None` for
/// identifiers outside the `u32` range.
pub fn to_party(id: &frost::Identifier) -> Option<PartyId> {
    let bytes = id.serialize();
    if bytes.len() != 32 || bytes[4..].iter().any(|&b| b != 0) {
        return None;
    }
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[..4]);
    Some(PartyId(u32::from_le_bytes(le)))
}

/// Decode with `decode`, then insist that re-encoding gives back exactly the
/// input (rejects trailing bytes and non-canonical encodings).
pub(crate) fn strict<T>(
    bytes: &[u8],
    message: &'static str,
    decode: impl Fn(&[u8]) -> Result<T, frost::Error>,
    encode: impl Fn(&T) -> Result<Vec<u8>, frost::Error>,
) -> Result<T, FrostError> {
    let malformed = || FrostError::Malformed { message, sender: None };
    let value = decode(bytes).map_err(|_| malformed())?;
    match encode(&value) {
        Ok(again) if again == bytes => Ok(value),
        _ => Err(malformed()),
    }
}

/// A participant's long-lived signing key share (FROST `KeyPackage`).
/// Zeroized on drop by the underlying crate; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShare(pub(crate) frost::keys::KeyPackage);

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyShare {{ party: {:?}, secret: <redacted> }}", self.party())
    }
}

impl KeyShare {
    /// Wrap a FROST key package (e.g. from test vectors or a trusted-dealer split).
    pub fn from_frost(package: frost::keys::KeyPackage) -> Self {
        Self(package)
    }

    /// The owner of this share (`None` only for foreign identifiers).
    pub fn party(&self) -> Option<PartyId> {
        to_party(self.0.identifier())
    }

    /// The signing threshold `t`.
    pub fn threshold(&self) -> u16 {
        *self.0.min_signers()
    }

    /// The group verifying key this share belongs to.
    pub fn group_key(&self) -> GroupVerifyingKey {
        GroupVerifyingKey(*self.0.verifying_key())
    }

    /// Serialize for encrypted at-rest storage. The result is secret.
    pub fn to_secret_bytes(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, FrostError> {
        self.0.serialize().map(zeroize::Zeroizing::new).map_err(from_frost)
    }

    /// Strict inverse of [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "KeyShare", frost::keys::KeyPackage::deserialize, |k| k.serialize()).map(Self)
    }
}

/// The public outcome of key generation that a coordinator needs to
/// aggregate: the group key and every participant's verifying share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPublicKey(pub(crate) frost::keys::PublicKeyPackage);

impl GroupPublicKey {
    /// Wrap a FROST public key package.
    pub fn from_frost(package: frost::keys::PublicKeyPackage) -> Self {
        Self(package)
    }

    /// The 32-byte group verifying key anyone uses with [`verify`].
    pub fn verifying_key(&self) -> GroupVerifyingKey {
        GroupVerifyingKey(*self.0.verifying_key())
    }

    /// The participants that hold shares.
    pub fn parties(&self) -> Vec<PartyId> {
        self.0.verifying_shares().keys().filter_map(to_party).collect()
    }

    /// Checks that `share` is a participant's share of this group: the group lists its party, its
    /// secret signing share matches its own verifying share (`s·G`), that verifying share is the
    /// one the group lists for the party, and the group key and threshold agree. A share whose
    /// secret was corrupted (on disk or in memory) fails here instead of at every signing.
    ///
    /// # Errors
    /// [`FrostError::WrongParticipants`] naming which check failed (never the secret).
    pub fn check_share(&self, share: &KeyShare) -> Result<(), FrostError> {
        let k = &share.0;
        let wrong = |reason| Err(FrostError::WrongParticipants { reason });
        if k.verifying_key() != self.0.verifying_key() {
            return wrong("the share is of another group key");
        }
        if self.0.min_signers().is_some_and(|t| t != *k.min_signers()) {
            return wrong("the share's threshold differs from the group's");
        }
        let Some(listed) = self.0.verifying_shares().get(k.identifier()) else {
            return wrong("the group lists no verifying share for the share's party");
        };
        if frost::keys::VerifyingShare::from(*k.signing_share()) != *k.verifying_share() {
            return wrong("the secret share does not match its own verifying share (corrupted)");
        }
        if k.verifying_share() != listed {
            return wrong("the share's verifying share is not the one the group lists for its party");
        }
        Ok(())
    }

    /// Encode as an envelope payload.
    pub fn encode(&self) -> Result<Vec<u8>, FrostError> {
        self.0.serialize().map_err(from_frost)
    }

    /// Strict decoding of [`Self::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "GroupPublicKey", frost::keys::PublicKeyPackage::deserialize, |k| k.serialize()).map(Self)
    }
}

/// The group's verifying key (32-byte compressed ristretto255 point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVerifyingKey(pub(crate) frost::VerifyingKey);

impl GroupVerifyingKey {
    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(v) = self.0.serialize() {
            if v.len() == 32 {
                out.copy_from_slice(&v);
            }
        }
        out
    }

    /// Decode 32 bytes; rejects non-canonical encodings and the identity.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, FrostError> {
        frost::VerifyingKey::deserialize(bytes)
            .map(Self)
            .map_err(|_| FrostError::Malformed { message: "GroupVerifyingKey", sender: None })
    }
}

/// A FROST signature: 64 bytes `R || z`, verifiable as plain Schnorr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub(crate) frost::Signature);

impl Signature {
    /// Wrap a FROST signature.
    pub fn from_frost(sig: frost::Signature) -> Self {
        Self(sig)
    }

    /// The 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        if let Ok(v) = self.0.serialize() {
            if v.len() == 64 {
                out.copy_from_slice(&v);
            }
        }
        out
    }

    /// Decode 64 bytes (canonical `R` and `z`).
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self, FrostError> {
        frost::Signature::deserialize(bytes)
            .map(Self)
            .map_err(|_| FrostError::Malformed { message: "Signature", sender: None })
    }
}

/// Verify `signature` on `message` under the group key. Anyone can run this;
/// it needs no key share.
///
/// # Errors
/// [`FrostError::InvalidSignature`] if it does not verify.
pub fn verify(group_key: &GroupVerifyingKey, message: &[u8], signature: &Signature) -> Result<(), FrostError> {
    group_key.0.verify(message, &signature.0).map_err(|_| FrostError::InvalidSignature)
}

/// Domain tag prefixed to every signed document.
pub const DOCUMENT_DST: &[u8] = b"SEH-FROST-v1/document";

/// The exact bytes signed for a document of kind `purpose` (e.g. `"roster"`,
/// `"result"`) whose canonical encoding is `body`:
/// `DOCUMENT_DST || u32 len(purpose) || purpose || u64 len(body) || body`
/// (lengths big-endian). Binding the purpose prevents a roster signature from
/// being replayed as a result signature.
pub fn document_message(purpose: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOCUMENT_DST.len() + 12 + purpose.len() + body.len());
    m.extend_from_slice(DOCUMENT_DST);
    m.extend_from_slice(&(purpose.len() as u32).to_be_bytes());
    m.extend_from_slice(purpose.as_bytes());
    m.extend_from_slice(&(body.len() as u64).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A value with one canonical byte encoding that the federation signs
/// (roster, released result). Implementors must make `canonical_bytes`
/// injective and deterministic (fixed field order, no maps with unordered
/// iteration, no floats printed with locale).
pub trait CanonicalDocument {
    /// The purpose label bound into the signature, e.g. `"roster"`.
    const PURPOSE: &'static str;
    /// The canonical encoding.
    fn canonical_bytes(&self) -> Vec<u8>;

    /// The message to sign: [`document_message`]`(PURPOSE, canonical_bytes())`.
    fn signing_message(&self) -> Vec<u8> {
        document_message(Self::PURPOSE, &self.canonical_bytes())
    }
}

/// Verify a document signature made over [`CanonicalDocument::signing_message`].
pub fn verify_document<D: CanonicalDocument>(
    group_key: &GroupVerifyingKey,
    document: &D,
    signature: &Signature,
) -> Result<(), FrostError> {
    verify(group_key, &document.signing_message(), signature)
}
