//! Federation set-up in one place (`seh keys init`, tests): identity keys for every member and a
//! FROST key for the site group.
//!
//! **Interim**: the FROST DKG is run for all sites inside this one process
//! (`frost::dkg::run_locally`), so whoever runs set-up briefly holds every share. A deployment
//! must run the DKG rounds at each site instead; the release format does not change.

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};
use seh_crypto::frost::{dkg, KeyShare};
use seh_crypto::wire::{PartyId, SigningKey};

use crate::error::ProtocolError;
use crate::federation::{FederationFile, MemberEntry, SiteEntry};
use crate::hex;

/// Secrets created at set-up, to be written to each member's own directory.
#[derive(Debug)]
pub struct SetupSecrets {
    /// Coordinator identity key.
    pub coordinator: SigningKey,
    /// Site identity keys and FROST shares, by site name.
    pub sites: BTreeMap<String, (SigningKey, KeyShare)>,
    /// Researcher identity keys, by name.
    pub researchers: BTreeMap<String, SigningKey>,
}

/// Creates a federation: `sites` get party ids `1..=n` in the given order; the FROST group needs
/// `frost_threshold` signers.
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
    let n = u16::try_from(sites.len()).map_err(|_| ProtocolError::invalid("setup", "sites", "too many sites"))?;
    if n < 2 || frost_threshold < 2 || frost_threshold > n {
        return Err(ProtocolError::invalid("setup", "threshold", "need at least two sites and 2 <= t <= sites"));
    }
    let (shares, group) = dkg::run_locally(n, frost_threshold, rng)?;
    let coordinator_key = SigningKey::generate(rng);
    let mut site_entries = Vec::new();
    let mut site_secrets = BTreeMap::new();
    for (i, s) in sites.iter().enumerate() {
        let party = PartyId(i as u32 + 1);
        let key = SigningKey::generate(rng);
        let share =
            shares.get(&party).cloned().ok_or_else(|| ProtocolError::invalid("setup", "frost", "missing share"))?;
        site_entries.push(SiteEntry {
            name: s.clone(),
            party: party.0,
            key: hex::encode(key.verifying_key().as_bytes()),
        });
        site_secrets.insert(s.clone(), (key, share));
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
        frost_group: hex::encode(&group.encode()?),
    };
    Ok((file, SetupSecrets { coordinator: coordinator_key, sites: site_secrets, researchers: researcher_secrets }))
}
