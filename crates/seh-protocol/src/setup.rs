//! Federation set-up: identity keys for every member (`seh keys init`), and — **for in-memory test
//! harnesses only** — a trusted dealer of the sites' FROST key.
//!
//! A deployment creates the members with [`identities`] (no FROST key: the file has no group key)
//! and then runs the key ceremony among the site nodes (`crate::ceremony`), in which the sites
//! generate the group key by distributed key generation and FROST-sign the roster; no process ever
//! holds more than its own share.
//!
//! [`generate`] and [`sign_with_dealer`] instead deal every share in this one process and sign the
//! roster with them. They exist so that protocol tests and simulations can build a signed
//! federation without running node processes; **never use them for a federation that serves
//! patient data** (whoever ran them held every site's share).

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};
use seh_crypto::frost::{self, dkg, KeyShare};
use seh_crypto::wire::{PartyId, SigningKey};

use crate::error::ProtocolError;
use crate::federation::{roster_signing_message, FederationFile, MemberEntry, Membership, RosterSignature, SiteEntry};
use crate::hex;

/// Identity keys created at set-up, to be written to each member's own directory.
#[derive(Debug)]
pub struct Identities {
    /// Coordinator identity key.
    pub coordinator: SigningKey,
    /// Site identity keys, by site name.
    pub sites: BTreeMap<String, SigningKey>,
    /// Researcher identity keys, by name.
    pub researchers: BTreeMap<String, SigningKey>,
}

/// Secrets created by the test-harness dealer ([`generate`]).
#[derive(Debug)]
pub struct SetupSecrets {
    /// Coordinator identity key.
    pub coordinator: SigningKey,
    /// Site identity keys and FROST shares, by site name.
    pub sites: BTreeMap<String, (SigningKey, KeyShare)>,
    /// Researcher identity keys, by name.
    pub researchers: BTreeMap<String, SigningKey>,
}

fn bad(field: &str, reason: &str) -> ProtocolError {
    ProtocolError::invalid("setup", field, reason)
}

/// Creates the members of a federation: `sites` get party ids `1..=n` in the given order; the
/// FROST group will need `frost_threshold` signers. The returned file has no group key and no
/// roster signature: the sites' key ceremony adds both.
///
/// Errors: [`ProtocolError::Invalid`] for fewer than two sites or a threshold outside `2..=n`.
pub fn identities<R: RngCore + CryptoRng>(
    name: &str,
    coordinator: &str,
    sites: &[String],
    researchers: &[String],
    frost_threshold: u16,
    rng: &mut R,
) -> Result<(FederationFile, Identities), ProtocolError> {
    let n = u16::try_from(sites.len()).map_err(|_| bad("sites", "too many sites"))?;
    if n < 2 || frost_threshold < 2 || frost_threshold > n {
        return Err(bad("threshold", "need at least two sites and 2 <= t <= sites"));
    }
    let coordinator_key = SigningKey::generate(rng);
    let mut site_entries = Vec::new();
    let mut site_secrets = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        let key = SigningKey::generate(rng);
        let party = u32::try_from(i + 1).map_err(|_| bad("sites", "too many sites"))?;
        site_entries.push(SiteEntry { name: s.clone(), party, key: hex::encode(key.verifying_key().as_bytes()) });
        site_secrets.insert(s.clone(), key);
    }
    let mut researcher_entries = Vec::new();
    let mut researcher_secrets = BTreeMap::new();
    for r in researchers {
        let key = SigningKey::generate(rng);
        researcher_entries.push(MemberEntry { name: r.clone(), key: hex::encode(key.verifying_key().as_bytes()) });
        researcher_secrets.insert(r.clone(), key);
    }
    let file = FederationFile {
        name: name.to_owned(),
        coordinator: MemberEntry {
            name: coordinator.to_owned(),
            key: hex::encode(coordinator_key.verifying_key().as_bytes()),
        },
        sites: site_entries,
        researchers: researcher_entries,
        frost_threshold,
        frost_group: String::new(),
        roster_signature: None,
    };
    Membership::from_file(file.clone())?;
    Ok((file, Identities { coordinator: coordinator_key, sites: site_secrets, researchers: researcher_secrets }))
}

/// **Test harnesses only** (see the module documentation): deals a FROST key for the sites of
/// `file` (party ids must be `1..=n`) in this process and signs the roster with `t` of the shares.
/// Returns the signed file and every site's share by name.
///
/// Errors: [`ProtocolError::Invalid`] for an invalid roster or party ids that are not `1..=n`.
pub fn sign_with_dealer<R: RngCore + CryptoRng>(
    file: FederationFile,
    rng: &mut R,
) -> Result<(FederationFile, BTreeMap<String, KeyShare>), ProtocolError> {
    let members = Membership::from_file(file)?;
    let n = u16::try_from(members.sites().count()).map_err(|_| bad("sites", "too many sites"))?;
    if members.sites().map(|s| s.party).ne((1..=u32::from(n)).map(PartyId)) {
        return Err(bad("sites", "the test dealer needs party ids 1..=n"));
    }
    let (shares, group) = dkg::run_locally(n, members.frost_threshold, rng)?;
    let signers: Vec<&KeyShare> = shares.values().take(usize::from(members.frost_threshold)).collect();
    let document = members.roster_document(&group)?;
    let sig = frost::sign::sign_locally(&signers, &group, &roster_signing_message(&document), rng)?;
    let names = |p: Option<PartyId>| p.and_then(|p| members.site(p)).map(|s| s.name.clone()).unwrap_or_default();
    let signature = RosterSignature {
        ceremony: "00000000000000000000000000000000".into(),
        signature: hex::encode(&sig.to_bytes()),
        signers: signers.iter().map(|k| names(k.party())).collect(),
    };
    let signed = members.signed_file(&group, signature)?;
    let by_name = shares.into_iter().map(|(p, k)| (names(Some(p)), k)).collect();
    Ok((signed, by_name))
}

/// **Test harnesses only** (see the module documentation): [`identities`] plus
/// [`sign_with_dealer`] — a complete signed federation and every member's secrets.
///
/// Errors: [`ProtocolError::Invalid`] for fewer than two sites or a threshold outside `2..=n`.
pub fn generate<R: RngCore + CryptoRng>(
    name: &str,
    coordinator: &str,
    sites: &[String],
    researchers: &[String],
    frost_threshold: u16,
    rng: &mut R,
) -> Result<(FederationFile, SetupSecrets), ProtocolError> {
    let (file, ids) = identities(name, coordinator, sites, researchers, frost_threshold, rng)?;
    let (file, mut shares) = sign_with_dealer(file, rng)?;
    let mut site_secrets = BTreeMap::new();
    for (name, key) in ids.sites {
        let share = shares.remove(&name).ok_or_else(|| bad("frost", "missing share"))?;
        site_secrets.insert(name, (key, share));
    }
    Ok((file, SetupSecrets { coordinator: ids.coordinator, sites: site_secrets, researchers: ids.researchers }))
}
