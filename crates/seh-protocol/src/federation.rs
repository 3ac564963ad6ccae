//! The federation's public description (`federation.json`): the coordinator, the sites with their
//! party ids and Ed25519 identity keys, the researchers, the FROST group key that signs releases,
//! and the sites' FROST signature over all of it (the **roster signature**). Holds no secret; every
//! node and researcher reads the same file.
//!
//! Two stages of one file:
//! - **members** ([`Membership`]): written by `seh keys init`, no group key yet. Enough to run the
//!   key ceremony (`crate::ceremony`), in which the sites generate the group key among themselves
//!   and then sign the roster.
//! - **signed** ([`Federation`]): the group key filled in and the roster signature attached.
//!   [`Federation::verify_roster`] checks that signature under the file's own group key; a node
//!   also checks that this group key is the one of its own key share, so an edited roster (a
//!   researcher added, a key swapped) or a roster re-signed under another key is refused.
//!
//! What is signed ([`Membership::roster_document`]): the compact JSON of the file with the group
//! key filled in and without the signature block, re-serialised from the parsed (strict) file, so
//! whitespace does not matter and every field does.

use std::collections::BTreeMap;

use seh_crypto::frost::{self, GroupPublicKey, GroupVerifyingKey};
use seh_crypto::wire::{PartyId, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::hex;

/// FROST document purpose bound into a roster signature (never accepted for a release).
pub const ROSTER_PURPOSE: &str = "roster";

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

/// The sites' threshold signature over the roster, as stored in the file.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSignature {
    /// Id of the key ceremony that produced the group key (32 hex characters).
    pub ceremony: String,
    /// FROST signature over `frost::document_message("roster", roster document)`, 128 hex.
    pub signature: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
}

/// The file form of [`Federation`] (and of [`Membership`] before the key ceremony).
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
    /// FROST public key package of the site group (hex of its strict encoding); empty (absent)
    /// until the sites ran the key ceremony.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub frost_group: String,
    /// The sites' signature over the roster; absent until they signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_signature: Option<RosterSignature>,
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

/// The validated members of a federation (everything but the group key): what the key ceremony
/// runs on, and the part of [`Federation`] the transport needs.
#[derive(Clone, Debug)]
pub struct Membership {
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
    roster: BTreeMap<PartyId, VerifyingKey>,
    file: FederationFile,
}

/// The validated federation description (members and group key).
#[derive(Clone, Debug)]
pub struct Federation {
    /// Federation name.
    pub name: String,
    /// Coordinator node id.
    pub coordinator_name: String,
    /// Coordinator identity key.
    pub coordinator_key: VerifyingKey,
    /// FROST threshold.
    pub frost_threshold: u16,
    /// FROST group public key package.
    pub frost_group: GroupPublicKey,
    members: Membership,
}

fn key_of(what: &'static str, field: String, text: &str) -> Result<VerifyingKey, ProtocolError> {
    let bytes = hex::decode_array::<32>(text)
        .ok_or_else(|| ProtocolError::invalid(what, field.clone(), "not 64 hex characters"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| ProtocolError::invalid(what, field, "not an Ed25519 public key"))
}

const W: &str = "federation";

fn parse_file(bytes: &[u8]) -> Result<FederationFile, ProtocolError> {
    serde_json::from_slice(bytes).map_err(|e| ProtocolError::parse("federation file", &e))
}

impl Membership {
    /// Parses and validates `federation.json` bytes, with or without a group key and signature
    /// (neither is checked here).
    ///
    /// Errors: [`ProtocolError::Parse`] for malformed JSON; [`ProtocolError::Invalid`] naming the
    /// field for a bad key, duplicate name or party id, party id 0, fewer than two sites, or a
    /// threshold outside `2..=sites`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Self::from_file(parse_file(bytes)?)
    }

    /// Validates the file form (see [`Membership::from_json`]).
    pub fn from_file(file: FederationFile) -> Result<Self, ProtocolError> {
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
        let t = usize::from(file.frost_threshold);
        if t < 2 || t > sites.len() {
            return Err(ProtocolError::invalid(W, "frost_threshold", "must be 2..=number of sites"));
        }
        Ok(Membership {
            name: file.name.clone(),
            coordinator_name: file.coordinator.name.clone(),
            coordinator_key,
            sites,
            researchers,
            frost_threshold: file.frost_threshold,
            roster,
            file,
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

    /// The file this was parsed from.
    pub fn file(&self) -> &FederationFile {
        &self.file
    }

    fn canonical(&self, frost_group: String) -> Result<String, ProtocolError> {
        let file = FederationFile { frost_group, roster_signature: None, ..self.file.clone() };
        serde_json::to_string(&file).map_err(|e| ProtocolError::parse("roster document", &e))
    }

    /// The roster document the sites sign once they hold `group`: the compact JSON of this file
    /// with `frost_group` set to `group` and no signature block. Deterministic: every site and
    /// the coordinator compute the same text from the same members.
    pub fn roster_document(&self, group: &GroupPublicKey) -> Result<String, ProtocolError> {
        self.canonical(hex::encode(&group.encode()?))
    }

    /// SHA-256 of the members alone (the file without group key and signature): what the key
    /// ceremony's start message names, so every site checks it runs on the same roster.
    pub fn members_digest(&self) -> Result<[u8; 32], ProtocolError> {
        use sha2::{Digest, Sha256};
        Ok(Sha256::digest(self.canonical(String::new())?.as_bytes()).into())
    }

    /// The signed file: this roster with `group` and `signature` (whose validity is not checked
    /// here; [`Federation::verify_roster`] does).
    pub fn signed_file(
        &self,
        group: &GroupPublicKey,
        signature: RosterSignature,
    ) -> Result<FederationFile, ProtocolError> {
        Ok(FederationFile {
            frost_group: hex::encode(&group.encode()?),
            roster_signature: Some(signature),
            ..self.file.clone()
        })
    }
}

impl AsRef<Membership> for Membership {
    fn as_ref(&self) -> &Membership {
        self
    }
}

impl AsRef<Membership> for Federation {
    fn as_ref(&self) -> &Membership {
        &self.members
    }
}

/// The bytes a roster signature covers.
pub fn roster_signing_message(document: &str) -> Vec<u8> {
    frost::document_message(ROSTER_PURPOSE, document.as_bytes())
}

impl Federation {
    /// Parses and validates `federation.json` bytes (members and group key; the roster signature
    /// is checked separately by [`Federation::verify_roster`]).
    ///
    /// Errors: those of [`Membership::from_json`]; [`ProtocolError::Invalid`] for a missing group
    /// key (the key ceremony has not run) or a FROST package that does not list exactly the sites.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Self::from_file(parse_file(bytes)?)
    }

    /// Validates the file form (see [`Federation::from_json`]).
    pub fn from_file(file: FederationFile) -> Result<Self, ProtocolError> {
        let members = Membership::from_file(file)?;
        if members.file.frost_group.is_empty() {
            return Err(ProtocolError::invalid(
                W,
                "frost_group",
                "missing: the sites have not run the key ceremony yet (`seh coordinator ceremony`)",
            ));
        }
        let group_bytes = hex::decode(&members.file.frost_group)
            .ok_or_else(|| ProtocolError::invalid(W, "frost_group", "not hex"))?;
        let frost_group = GroupPublicKey::decode(&group_bytes)
            .map_err(|_| ProtocolError::invalid(W, "frost_group", "not a FROST public key package"))?;
        let mut listed = frost_group.parties();
        listed.sort();
        if listed != members.sites.keys().copied().collect::<Vec<_>>() {
            return Err(ProtocolError::invalid(W, "frost_group", "does not list exactly the sites"));
        }
        Ok(Federation {
            name: members.name.clone(),
            coordinator_name: members.coordinator_name.clone(),
            coordinator_key: members.coordinator_key,
            frost_threshold: members.frost_threshold,
            frost_group,
            members,
        })
    }

    /// Parses the file and checks its roster signature ([`Federation::verify_roster`]): what a
    /// node, the coordinator and a researcher load.
    pub fn from_signed_json(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let fed = Self::from_json(bytes)?;
        fed.verify_roster()?;
        Ok(fed)
    }

    /// Checks the sites' roster signature under this file's group key.
    ///
    /// Errors: [`ProtocolError::Invalid`] (field `roster_signature`) if the file carries none, the
    /// signature is malformed, a signer is not a site, or it does not verify — the file was
    /// changed after the sites signed it.
    pub fn verify_roster(&self) -> Result<(), ProtocolError> {
        const F: &str = "roster_signature";
        let sig = self.members.file.roster_signature.as_ref().ok_or_else(|| {
            ProtocolError::invalid(W, F, "missing: the roster is not signed by the sites (run the key ceremony)")
        })?;
        if let Some(s) = sig.signers.iter().find(|s| self.site_by_name(s).is_none()) {
            return Err(ProtocolError::invalid(W, F, format!("signer `{s}` is not a site of this roster")));
        }
        let bytes = hex::decode_array::<64>(&sig.signature)
            .ok_or_else(|| ProtocolError::invalid(W, F, "signature is not 128 hex characters"))?;
        let signature = frost::Signature::from_bytes(&bytes)
            .map_err(|_| ProtocolError::invalid(W, F, "signature is not a FROST signature"))?;
        let document = self.members.roster_document(&self.frost_group)?;
        frost::verify(&self.group_key(), &roster_signing_message(&document), &signature).map_err(|_| {
            ProtocolError::invalid(
                W,
                F,
                "does not verify under the file's group key: the roster was changed after the sites signed it",
            )
        })
    }

    /// The roster signature, if the file carries one.
    pub fn roster_signature(&self) -> Option<&RosterSignature> {
        self.members.file.roster_signature.as_ref()
    }

    /// The members part (everything but the group key).
    pub fn membership(&self) -> &Membership {
        &self.members
    }

    /// The sites by party id.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.members.sites()
    }

    /// The site with party id `party`.
    pub fn site(&self, party: PartyId) -> Option<&Site> {
        self.members.site(party)
    }

    /// The site named `name`.
    pub fn site_by_name(&self, name: &str) -> Option<&Site> {
        self.members.site_by_name(name)
    }

    /// A researcher's identity key.
    pub fn researcher_key(&self, name: &str) -> Option<&VerifyingKey> {
        self.members.researcher_key(name)
    }

    /// Researchers and their identity keys.
    pub fn researchers(&self) -> impl Iterator<Item = (&String, &VerifyingKey)> {
        self.members.researchers()
    }

    /// Identity keys by party id (coordinator = party 0), for envelope verification.
    pub fn roster(&self) -> &BTreeMap<PartyId, VerifyingKey> {
        self.members.roster()
    }

    /// The FROST group verifying key (what release and roster signatures verify under).
    pub fn group_key(&self) -> GroupVerifyingKey {
        self.frost_group.verifying_key()
    }
}
