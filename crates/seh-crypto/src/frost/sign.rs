//! FROST signing: round 1 ([`commit`]), the coordinator's
//! [`SigningRequest`], round 2 ([`sign_share`]) and [`aggregate`] with cheater
//! detection.
//!
//! The coordinator must attribute each [`SignatureShare`] to its sender from
//! the authenticated envelope, never from the payload; [`aggregate`] then
//! names every sender whose share is invalid.

use super::{from_frost, identifier, strict, to_party, FrostError, GroupPublicKey, KeyShare, Signature};
use crate::wire::PartyId;
use frost_ristretto255 as frost;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;

/// Single-use nonces of round 1. Consumed by [`sign_share`], so they cannot
/// be reused (reuse would leak the key share). Zeroized on drop.
pub struct SigningNonces(frost::round1::SigningNonces);

impl fmt::Debug for SigningNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningNonces(<redacted>)")
    }
}

impl SigningNonces {
    /// Wrap FROST nonces (test vectors with fixed nonces).
    pub fn from_frost(nonces: frost::round1::SigningNonces) -> Self {
        Self(nonces)
    }
}

/// Round-1 output sent to the coordinator: commitments to the nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningCommitment(frost::round1::SigningCommitments);

impl SigningCommitment {
    /// Wrap FROST commitments.
    pub fn from_frost(c: frost::round1::SigningCommitments) -> Self {
        Self(c)
    }

    /// Encode as an envelope payload.
    pub fn encode(&self) -> Result<Vec<u8>, FrostError> {
        self.0.serialize().map_err(from_frost)
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "SigningCommitment", frost::round1::SigningCommitments::deserialize, |c| c.serialize()).map(Self)
    }
}

/// What the coordinator sends every chosen signer: the message and all
/// chosen signers' commitments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRequest(frost::SigningPackage);

impl SigningRequest {
    /// Build a request for `message` from the commitments of the chosen
    /// signers (at least the threshold of them).
    ///
    /// # Errors
    /// [`FrostError::InvalidParameters`] for a non-site id.
    pub fn new(commitments: &BTreeMap<PartyId, SigningCommitment>, message: &[u8]) -> Result<Self, FrostError> {
        let map = commitments.iter().map(|(p, c)| Ok((identifier(*p)?, c.0))).collect::<Result<_, FrostError>>()?;
        Ok(Self(frost::SigningPackage::new(map, message)))
    }

    /// The message to be signed.
    pub fn message(&self) -> &[u8] {
        self.0.message()
    }

    /// The chosen signers.
    pub fn signers(&self) -> Vec<PartyId> {
        self.0.signing_commitments().keys().filter_map(to_party).collect()
    }

    /// Encode as an envelope payload.
    pub fn encode(&self) -> Result<Vec<u8>, FrostError> {
        self.0.serialize().map_err(from_frost)
    }

    /// Strict decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "SigningRequest", frost::SigningPackage::deserialize, |p| p.serialize()).map(Self)
    }
}

/// Round-2 output sent to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureShare(frost::round2::SignatureShare);

impl SignatureShare {
    /// Wrap a FROST signature share.
    pub fn from_frost(s: frost::round2::SignatureShare) -> Self {
        Self(s)
    }

    /// The 32-byte encoding (an envelope payload).
    pub fn encode(&self) -> Vec<u8> {
        self.0.serialize()
    }

    /// Strict decoding (canonical scalar, exactly 32 bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "SignatureShare", frost::round2::SignatureShare::deserialize, |s| Ok(s.serialize())).map(Self)
    }
}

/// Round 1: fresh nonces (keep, secret) and their commitment (send).
pub fn commit<R: RngCore + CryptoRng>(key: &KeyShare, rng: &mut R) -> (SigningNonces, SigningCommitment) {
    let (n, c) = frost::round1::commit(key.0.signing_share(), rng);
    (SigningNonces(n), SigningCommitment(c))
}

/// Round 2: sign the request with our key share, consuming our nonces.
///
/// # Errors
/// [`FrostError::NotEnoughSigners`] if the request has fewer signers than the
/// threshold; [`FrostError::WrongParticipants`] if we are not among them or
/// our commitment in the request is not ours.
pub fn sign_share(
    request: &SigningRequest,
    nonces: SigningNonces,
    key: &KeyShare,
) -> Result<SignatureShare, FrostError> {
    let got = request.0.signing_commitments().len();
    let threshold = usize::from(key.threshold());
    if got < threshold {
        return Err(FrostError::NotEnoughSigners { got, threshold });
    }
    frost::round2::sign(&request.0, &nonces.0, &key.0).map(SignatureShare).map_err(|e| match e {
        frost::Error::IncorrectCommitment | frost::Error::MissingCommitment => {
            FrostError::WrongParticipants { reason: "our commitment is missing or altered in the request" }
        }
        e => from_frost(e),
    })
}

/// Coordinator: combine the signature shares (keyed by authenticated sender)
/// into the group signature, checking every share.
///
/// # Errors
/// [`FrostError::InvalidSignatureShares`] naming **every** signer whose share
/// is invalid; [`FrostError::NotEnoughSigners`] below the threshold;
/// [`FrostError::WrongParticipants`] if the shares do not match the request.
pub fn aggregate(
    request: &SigningRequest,
    shares: &BTreeMap<PartyId, SignatureShare>,
    group: &GroupPublicKey,
) -> Result<Signature, FrostError> {
    if let Some(t) = group.0.min_signers() {
        let t = usize::from(t);
        if shares.len() < t {
            return Err(FrostError::NotEnoughSigners { got: shares.len(), threshold: t });
        }
    }
    let map = shares.iter().map(|(p, s)| Ok((identifier(*p)?, s.0))).collect::<Result<_, FrostError>>()?;
    frost::aggregate_custom(&request.0, &map, &group.0, frost::CheaterDetection::AllCheaters)
        .map(Signature)
        .map_err(from_frost)
}

/// Run both signing rounds in one process with the given key shares (tests,
/// demos). Real deployments run [`commit`] / [`sign_share`] at each site.
pub fn sign_locally<R: RngCore + CryptoRng>(
    keys: &[&KeyShare],
    group: &GroupPublicKey,
    message: &[u8],
    rng: &mut R,
) -> Result<Signature, FrostError> {
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for k in keys {
        let party = k.party().ok_or(FrostError::InvalidParameters { reason: "key share without party id" })?;
        let (n, c) = commit(k, rng);
        nonces.insert(party, n);
        commitments.insert(party, c);
    }
    let request = SigningRequest::new(&commitments, message)?;
    let mut shares = BTreeMap::new();
    for k in keys {
        let party = k.party().ok_or(FrostError::InvalidParameters { reason: "key share without party id" })?;
        let n = nonces.remove(&party).ok_or(FrostError::WrongParticipants { reason: "duplicate key share" })?;
        shares.insert(party, sign_share(&request, n, k)?);
    }
    aggregate(&request, &shares, group)
}
