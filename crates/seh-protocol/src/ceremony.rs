//! The key ceremony: the sites generate the federation's FROST group key by distributed key
//! generation ([`crate::site_dkg`]) and then FROST-sign the roster, relayed by the coordinator.
//! Sans-IO: [`site::CeremonySite`] runs in each site node (which keeps the round secrets in
//! memory), [`coord::CeremonyCoordinator`] in the coordinator, which only relays and checks.
//!
//! Every message is a signed envelope (`ProtocolId::Dkg`, or `ProtocolId::Frost` for the signing
//! commit/share steps) in the session `(ceremony id, round)`; round 0 is the key generation,
//! round 1 the roster signature. The ceremony id is fresh per ceremony (chosen by the
//! coordinator).
//!
//! | round | step | direction | payload |
//! |---|---|---|---|
//! | 0 | [`step::START`] | coordinator → site | [`CeremonyStart`] (JSON) |
//! | 0 | [`step::ROUND1`] | site → coordinator | the site's signed `site_dkg` round-1 broadcast |
//! | 0 | [`step::ROUND1_ALL`] | coordinator → site | bundle of every site's round-1 broadcast |
//! | 0 | [`step::ROUND2`] | site → coordinator | the site's signed round-2 bundle (shares sealed per recipient) |
//! | 0 | [`step::ROUND2_ALL`] | coordinator → site | bundle of every site's round-2 bundle |
//! | 0 | [`step::KEYED`] | site → coordinator | [`KeyReport`]: the group key it derived (after persisting its share) |
//! | 1 | [`step::SIGN_START`] | coordinator → site | [`RosterSignStart`]: the roster document |
//! | 1 | `frost/0`, `frost/1`, `frost/2` | both | commitment, signing request, signature share (as for a release) |
//! | 1 | [`step::SIGNED`] | coordinator → site | [`RosterSigned`]: the aggregated signature |
//! | 1 | [`step::ENROLLED`] | site → coordinator | [`Enrolled`]: digest of the signed file it persisted |
//! | any | [`step::FAILED`] | site → coordinator | [`FailureReport`]: why, naming the site at fault |
//!
//! What the coordinator can and cannot do: it sees the round-1 commitments (public) and the
//! round-2 bundles, whose shares are sealed site-to-site (ChaCha20-Poly1305 under X25519 keys
//! bound to each site's identity signature), so it never holds a share. It cannot alter or forge a
//! relayed message (each is signed by its author), cannot make a site sign another roster (each
//! site rebuilds the document from its own federation file and refuses any other), and cannot
//! make the sites agree on a key they did not derive (each reports its group key; the coordinator
//! names a site that disagrees, and every node checks the signed file against its own share). It
//! can stall the ceremony or run it again.

use seh_crypto::wire::{PartyId, Reader, Writer};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

pub mod coord;
pub mod site;

/// `ProtocolId::Dkg` envelope steps of the ceremony between sites and coordinator (the inner,
/// relayed `site_dkg` messages use its steps 1 and 2).
pub mod step {
    /// Coordinator → site: [`super::CeremonyStart`].
    pub const START: u8 = 10;
    /// Site → coordinator: the site's round-1 broadcast (an inner signed envelope).
    pub const ROUND1: u8 = 11;
    /// Coordinator → site: bundle of every site's round-1 broadcast.
    pub const ROUND1_ALL: u8 = 12;
    /// Site → coordinator: the site's round-2 bundle (an inner signed envelope).
    pub const ROUND2: u8 = 13;
    /// Coordinator → site: bundle of every site's round-2 bundle.
    pub const ROUND2_ALL: u8 = 14;
    /// Site → coordinator: [`super::KeyReport`].
    pub const KEYED: u8 = 15;
    /// Site → coordinator: [`super::FailureReport`].
    pub const FAILED: u8 = 16;
    /// Coordinator → site: [`super::RosterSignStart`].
    pub const SIGN_START: u8 = 17;
    /// Coordinator → site: [`super::RosterSigned`].
    pub const SIGNED: u8 = 18;
    /// Site → coordinator: [`super::Enrolled`].
    pub const ENROLLED: u8 = 19;
}

/// Round of the key generation.
pub const ROUND_DKG: u32 = 0;
/// Round of the roster signature.
pub const ROUND_SIGN: u32 = 1;
/// Most sites a ceremony relays (bounds bundle decoding).
pub const MAX_CEREMONY_SITES: usize = 256;
/// Largest relayed item (a round-2 bundle of 256 sites is ≈ 30 kB).
pub const MAX_ITEM_BYTES: usize = 1 << 20;

/// Starts a ceremony.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyStart {
    /// SHA-256 (hex) of the members ([`crate::federation::Membership::members_digest`]): a site
    /// whose own federation file differs refuses.
    pub members_sha256: String,
}

/// A site's group key after the key generation.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyReport {
    /// Hex of the FROST public key package the site derived.
    pub group: String,
}

/// A site could not go on; names the site at fault when known. Never carries a secret.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureReport {
    /// Party id of the site at fault, if the reporter can tell.
    pub culprit: Option<u32>,
    /// What went wrong.
    pub reason: String,
}

/// Asks a site to FROST-sign the roster document.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSignStart {
    /// [`crate::federation::Membership::roster_document`] text.
    pub document: String,
}

/// The aggregated roster signature.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterSigned {
    /// 128 hex characters.
    pub signature: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
}

/// A site persisted the signed federation file.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    /// SHA-256 (hex) of the signed file text it wrote.
    pub file_sha256: String,
}

/// Encodes a bundle of relayed envelopes: count (u32), then each as u32 length ‖ bytes.
pub fn encode_bundle(items: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::with_capacity(4 + items.iter().map(|b| b.len() + 4).sum::<usize>());
    w.u32(items.len() as u32);
    for item in items {
        w.bytes_u32(item);
    }
    w.into_bytes()
}

/// Strictly decodes [`encode_bundle`] (bounded counts and sizes, no trailing bytes); `sender`
/// is named in errors.
pub fn decode_bundle(bytes: &[u8], sender: PartyId) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut r = Reader::new(bytes, Some(sender));
    let n = r.count_u32("bundle items", MAX_CEREMONY_SITES)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(r.bytes_u32("bundle item", MAX_ITEM_BYTES)?.to_vec());
    }
    r.finish("bundle")?;
    Ok(items)
}

/// Routing label of a ceremony envelope (`dkg/11`, `frost/0`).
pub fn kind_label(protocol: seh_crypto::wire::ProtocolId, step: u8) -> String {
    match protocol {
        seh_crypto::wire::ProtocolId::Dkg => format!("dkg/{step}"),
        other => crate::messages::kind_label(other, step),
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::hex::encode(&Sha256::digest(bytes))
}

/// The text of a signed federation file as every party writes it (pretty JSON, final newline).
pub fn file_text(file: &crate::federation::FederationFile) -> Result<String, ProtocolError> {
    let mut text = serde_json::to_string_pretty(file).map_err(|e| ProtocolError::parse("federation file", &e))?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_round_trip_and_reject_trailing_or_truncated_bytes() {
        let items = vec![vec![1, 2, 3], vec![], vec![7; 50]];
        let bytes = encode_bundle(&items);
        assert_eq!(decode_bundle(&bytes, PartyId(1)).unwrap(), items);
        assert!(decode_bundle(&[bytes.as_slice(), &[0]].concat(), PartyId(1)).is_err());
        assert!(decode_bundle(&bytes[..bytes.len() - 1], PartyId(1)).is_err());
    }
}
