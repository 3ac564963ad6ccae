//! FROST distributed key generation (RFC 9591 appendix / Komlo–Goldberg
//! PedPoP): three local steps, two message rounds.
//!
//! 1. [`part1`]: each party deals a random polynomial, broadcasts a
//!    [`Round1Package`] (Feldman commitments + proof of knowledge of its
//!    constant term) and keeps a [`Round1Secret`].
//! 2. [`part2`]: with every other party's round-1 package, check the proofs
//!    (a bad one names its sender) and produce one [`Round2Package`] per peer —
//!    a secret share that **must travel encrypted** to that peer only.
//! 3. [`part3`]: with the round-2 packages addressed to us, check each share
//!    against its dealer's commitments (a bad one names the dealer) and output
//!    the long-lived [`KeyShare`] and the [`GroupPublicKey`].

use super::{from_frost, identifier, strict, to_party, FrostError, GroupPublicKey, KeyShare};
use crate::wire::PartyId;
use frost_ristretto255 as frost;
use frost_ristretto255::keys::dkg as fdkg;
use rand::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;

/// Round-1 secret state (polynomial coefficients). Consumed by [`part2`].
pub struct Round1Secret(fdkg::round1::SecretPackage);

/// Round-2 secret state. Consumed by [`part3`].
pub struct Round2Secret(fdkg::round2::SecretPackage);

impl fmt::Debug for Round1Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Round1Secret(<redacted>)")
    }
}

impl fmt::Debug for Round2Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Round2Secret(<redacted>)")
    }
}

/// Broadcast in round 1: commitments and proof of knowledge. Public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round1Package(fdkg::round1::Package);

/// Sent to one peer in round 2: that peer's secret share. Confidential —
/// encrypt it to the recipient. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Round2Package(fdkg::round2::Package);

impl fmt::Debug for Round2Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Round2Package(<redacted>)")
    }
}

impl Round1Package {
    /// Encode as an envelope payload.
    pub fn encode(&self) -> Result<Vec<u8>, FrostError> {
        self.0.serialize().map_err(from_frost)
    }

    /// Strictly decode (re-encoding must reproduce the input exactly).
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "DKG Round1Package", fdkg::round1::Package::deserialize, |p| p.serialize()).map(Self)
    }
}

impl Round2Package {
    /// Encode as an (encrypted) envelope payload. The output is secret.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, FrostError> {
        self.0.serialize().map(zeroize::Zeroizing::new).map_err(from_frost)
    }

    /// Strictly decode (re-encoding must reproduce the input exactly).
    pub fn decode(bytes: &[u8]) -> Result<Self, FrostError> {
        strict(bytes, "DKG Round2Package", fdkg::round2::Package::deserialize, |p| p.serialize()).map(Self)
    }
}

fn check_params(parties: u16, threshold: u16) -> Result<(), FrostError> {
    if parties < 2 {
        return Err(FrostError::InvalidParameters { reason: "at least 2 parties are needed" });
    }
    if threshold < 2 || threshold > parties {
        return Err(FrostError::InvalidParameters { reason: "threshold must be >= 2 and <= parties" });
    }
    Ok(())
}

fn to_frost_map<T: Clone, U>(
    map: &BTreeMap<PartyId, T>,
    inner: impl Fn(&T) -> U,
) -> Result<BTreeMap<frost::Identifier, U>, FrostError> {
    map.iter().map(|(p, v)| Ok((identifier(*p)?, inner(v)))).collect()
}

/// Step 1 for party `me` in a `threshold`-of-`parties` group.
///
/// Returns the secret to keep for [`part2`] and the package to broadcast.
///
/// # Errors
/// [`FrostError::InvalidParameters`] unless `2 <= threshold <= parties` and
/// `me` is a site id.
pub fn part1<R: RngCore + CryptoRng>(
    me: PartyId,
    parties: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(Round1Secret, Round1Package), FrostError> {
    check_params(parties, threshold)?;
    let (secret, package) = fdkg::part1(identifier(me)?, parties, threshold, rng).map_err(from_frost)?;
    Ok((Round1Secret(secret), Round1Package(package)))
}

/// Step 2: `received` holds the round-1 package of every **other** party
/// (exactly `parties − 1` entries, not our own).
///
/// Returns the secret for [`part3`] and one confidential package per peer.
///
/// # Errors
/// [`FrostError::InvalidProofOfKnowledge`] naming the sender of a bad
/// package; [`FrostError::WrongParticipants`] if the set is incomplete.
pub fn part2(
    secret: Round1Secret,
    received: &BTreeMap<PartyId, Round1Package>,
) -> Result<(Round2Secret, BTreeMap<PartyId, Round2Package>), FrostError> {
    let r1 = to_frost_map(received, |p| p.0.clone())?;
    let (secret, out) = fdkg::part2(secret.0, &r1).map_err(from_frost)?;
    let mut packages = BTreeMap::new();
    for (id, pkg) in out {
        let party = to_party(&id).ok_or(FrostError::Other("unmapped identifier".into()))?;
        packages.insert(party, Round2Package(pkg));
    }
    Ok((Round2Secret(secret), packages))
}

/// Step 3: `round1` is the same map given to [`part2`]; `round2` holds the
/// package each other party addressed to us.
///
/// # Errors
/// [`FrostError::InvalidSecretShare`] naming the dealer of a share that does
/// not match its commitments; [`FrostError::WrongParticipants`] if the sets
/// differ.
pub fn part3(
    secret: Round2Secret,
    round1: &BTreeMap<PartyId, Round1Package>,
    round2: &BTreeMap<PartyId, Round2Package>,
) -> Result<(KeyShare, GroupPublicKey), FrostError> {
    let r1 = to_frost_map(round1, |p| p.0.clone())?;
    let r2 = to_frost_map(round2, |p| p.0.clone())?;
    let (key, public) = fdkg::part3(&secret.0, &r1, &r2).map_err(from_frost)?;
    Ok((KeyShare(key), GroupPublicKey(public)))
}

/// Run the whole DKG for `parties` sites numbered `1..=parties` in one
/// process (tests, demos, a single-operator federation bootstrap). Real
/// deployments run [`part1`]–[`part3`] at each site.
pub fn run_locally<R: RngCore + CryptoRng>(
    parties: u16,
    threshold: u16,
    rng: &mut R,
) -> Result<(BTreeMap<PartyId, KeyShare>, GroupPublicKey), FrostError> {
    check_params(parties, threshold)?;
    let ids: Vec<PartyId> = (1..=u32::from(parties)).map(PartyId).collect();
    let mut secrets1 = BTreeMap::new();
    let mut broadcast = BTreeMap::new();
    for &p in &ids {
        let (s, pkg) = part1(p, parties, threshold, rng)?;
        secrets1.insert(p, s);
        broadcast.insert(p, pkg);
    }
    let others = |me: PartyId| -> BTreeMap<PartyId, Round1Package> {
        broadcast.iter().filter(|(p, _)| **p != me).map(|(p, v)| (*p, v.clone())).collect()
    };
    let mut secrets2 = BTreeMap::new();
    let mut inbox: BTreeMap<PartyId, BTreeMap<PartyId, Round2Package>> = BTreeMap::new();
    for (p, s) in secrets1 {
        let (s2, out) = part2(s, &others(p))?;
        secrets2.insert(p, s2);
        for (to, pkg) in out {
            inbox.entry(to).or_default().insert(p, pkg);
        }
    }
    let mut shares = BTreeMap::new();
    let mut group = None;
    for (p, s2) in secrets2 {
        let received = inbox.remove(&p).unwrap_or_default();
        let (key, public) = part3(s2, &others(p), &received)?;
        shares.insert(p, key);
        group = Some(public);
    }
    let group = group.ok_or(FrostError::InvalidParameters { reason: "no parties" })?;
    Ok((shares, group))
}
