//! The federation's public description (`federation.json`): the coordinator, the sites with their
//! party ids and Ed25519 identity keys, the researchers, and the FROST group key that signs
//! releases. Holds no secret; every node and researcher reads the same file.

use std::collections::BTreeMap;

use seh_crypto::frost::{GroupPublicKey, GroupVerifyingKey};
use seh_crypto::wire::{PartyId, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::hex;

/// One named member and its Ed25519 identity key (hex), as stored in the file.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// Node id (a DNS label, also the mTLS certificate name).
    pub name: String,
    /// Ed25519 public key, 64 hex characters.
    pub key: String,
}

/// One site as stored in the file.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEntry {
    /// Node id.
    pub name: String,
    /// Party id in protocol messages and Shamir / FROST share index (`1..`).
    pub party: u32,
    /// Ed25519 public key, 64 hex characters.
    pub key: String,
}

/// The file form of [`Federation`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationFile {
    /// Human-readable federation name.
    pub name: String,
    /// The coordinator (party 0).
    pub coordinator: MemberEntry,
    /// The sites.
    pub sites: Vec<SiteEntry>,
    /// Researchers allowed to submit studies.
    pub researchers: Vec<MemberEntry>,
    /// FROST signing threshold of the site group.
    pub frost_threshold: u16,
    /// FROST public key package of the site group (hex of its strict encoding).
    pub frost_group: String,
}

/// A site of the federation.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Site {
    /// Node id.
    pub name: String,
    /// Party id.
    pub party: PartyId,
    /// Identity key.
    pub key: VerifyingKey,
}

/// The validated federation description.
#[derive(Clone, Debug)]
pub struct Federation {
    /// Federation name.
    pub name: String,
    /// Coordinator node id.
    pub coordinator_name: String,
    /// Coordinator identity key.
    pub coordinator_key: VerifyingKey,
    sites: BTreeMap<PartyId, Site>,
    researchers: BTreeMap<String, VerifyingKey>,
    /// FROST threshold.
    pub frost_threshold: u16,
    /// FROST group public key package.
    pub frost_group: GroupPublicKey,
    roster: BTreeMap<PartyId, VerifyingKey>,
}

fn key_of(what: &'static str, field: String, text: &str) -> Result<VerifyingKey, ProtocolError> {
    let bytes = hex::decode_array::<32>(text)
        .ok_or_else(|| ProtocolError::invalid(what, field.clone(), "not 64 hex characters"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| ProtocolError::invalid(what, field, "not an Ed25519 public key"))
}

impl Federation {
    /// Parses and validates `federation.json` bytes.
    ///
    /// Errors: [`ProtocolError::Parse`] for malformed JSON; [`ProtocolError::Invalid`] naming the
    /// field for a bad key, duplicate name or party id, party id 0, or a FROST package that does not
    /// list exactly the sites.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let file: FederationFile =
            serde_json::from_slice(bytes).map_err(|e| ProtocolError::parse("federation file", &e))?;
        Self::from_file(file)
    }

    /// Validates the file form (see [`Federation::from_json`]).
    pub fn from_file(file: FederationFile) -> Result<Self, ProtocolError> {
        const W: &str = "federation";
        let coordinator_key = key_of(W, "coordinator.key".into(), &file.coordinator.key)?;
        let mut sites = BTreeMap::new();
        let mut roster = BTreeMap::new();
        roster.insert(PartyId::COORDINATOR, coordinator_key);
        for (i, s) in file.sites.iter().enumerate() {
            let party = PartyId(s.party);
            if !party.is_site() {
                return Err(ProtocolError::invalid(W, format!("sites[{i}].party"), "must be 1..4294967294"));
            }
            let key = key_of(W, format!("sites[{i}].key"), &s.key)?;
            if sites.values().any(|x: &Site| x.name == s.name) || s.name == file.coordinator.name {
                return Err(ProtocolError::invalid(W, format!("sites[{i}].name"), "duplicate node name"));
            }
            if sites.insert(party, Site { name: s.name.clone(), party, key }).is_some() {
                return Err(ProtocolError::invalid(W, format!("sites[{i}].party"), "duplicate party id"));
            }
            roster.insert(party, key);
        }
        if sites.len() < 2 {
            return Err(ProtocolError::invalid(W, "sites", "a federation needs at least two sites"));
        }
        let mut researchers = BTreeMap::new();
        for (i, r) in file.researchers.iter().enumerate() {
            let key = key_of(W, format!("researchers[{i}].key"), &r.key)?;
            if researchers.insert(r.name.clone(), key).is_some() {
                return Err(ProtocolError::invalid(W, format!("researchers[{i}].name"), "duplicate name"));
            }
        }
        let group_bytes =
            hex::decode(&file.frost_group).ok_or_else(|| ProtocolError::invalid(W, "frost_group", "not hex"))?;
        let frost_group = GroupPublicKey::decode(&group_bytes)
            .map_err(|_| ProtocolError::invalid(W, "frost_group", "not a FROST public key package"))?;
        let mut listed = frost_group.parties();
        listed.sort();
        if listed != sites.keys().copied().collect::<Vec<_>>() {
            return Err(ProtocolError::invalid(W, "frost_group", "does not list exactly the sites"));
        }
        let t = usize::from(file.frost_threshold);
        if t < 2 || t > sites.len() {
            return Err(ProtocolError::invalid(W, "frost_threshold", "must be 2..=number of sites"));
        }
        Ok(Federation {
            name: file.name,
            coordinator_name: file.coordinator.name,
            coordinator_key,
            sites,
            researchers,
            frost_threshold: file.frost_threshold,
            frost_group,
            roster,
        })
    }

    /// The sites by party id.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.values()
    }

    /// The site with party id `party`.
    pub fn site(&self, party: PartyId) -> Option<&Site> {
        self.sites.get(&party)
    }

    /// The site named `name`.
    pub fn site_by_name(&self, name: &str) -> Option<&Site> {
        self.sites.values().find(|s| s.name == name)
    }

    /// A researcher's identity key.
    pub fn researcher_key(&self, name: &str) -> Option<&VerifyingKey> {
        self.researchers.get(name)
    }

    /// Researchers and their identity keys.
    pub fn researchers(&self) -> impl Iterator<Item = (&String, &VerifyingKey)> {
        self.researchers.iter()
    }

    /// Identity keys by party id (coordinator = party 0), for envelope verification.
    pub fn roster(&self) -> &BTreeMap<PartyId, VerifyingKey> {
        &self.roster
    }

    /// The FROST group verifying key (what a release signature verifies under).
    pub fn group_key(&self) -> GroupVerifyingKey {
        self.frost_group.verifying_key()
    }
}
