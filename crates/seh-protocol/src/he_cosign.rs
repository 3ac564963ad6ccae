//! The sites' co-signature on a release from the encrypted store ([`crate::he_release`]): once
//! the holders' shares have made the result, the coordinator asks the holders that accepted the
//! release to FROST-sign a [`StoreReleaseDocument`] with the live release's commit/share flow
//! (`frost` steps, under the document purpose [`STORE_RELEASE_PURPOSE`], so a store-release
//! signature is never a live-release or log-head signature). The researcher verifies it with the
//! federation file's group key before trusting the result ([`SignedStoreResult::verify`]).
//!
//! A plain release's document carries the finished descriptive result (as the live release's
//! does); a key-switched release's carries only the SHA-256 of the returned ciphertext and the
//! researcher key's digest, never a plaintext. A holder signs only a document that names the
//! release it took part in (session, stored round, summed sites, target key, the researcher's
//! signed request, the study) and, for a plain result, respects its minimum cell count. The sites
//! never see the sum, so they attest the release's parties and metadata, not the numbers.

use seh_crypto::frost::{self, GroupVerifyingKey};
use serde::{Deserialize, Serialize};

use crate::describe::DescribeResult;
use crate::error::ProtocolError;
use crate::hex;

/// FROST document purpose bound into a store-release signature.
pub const STORE_RELEASE_PURPOSE: &str = "release from the encrypted store";

/// What the holders co-sign after a release from the encrypted store.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreReleaseDocument {
    /// Study id.
    pub study_id: String,
    /// SHA-256 of the researcher-signed spec text ([`crate::spec::SignedStudy::digest`]).
    pub spec_sha256: String,
    /// The stored encrypted round released.
    pub stored_round: u32,
    /// The session round the release ran in.
    pub session_round: u32,
    /// SHA-256 of the researcher's signed request ([`crate::he_request::SignedStoreRelease::digest`]).
    pub request_sha256: String,
    /// The sites whose stored ciphertexts were summed (names, ascending party id).
    pub contributors: Vec<String>,
    /// The holders whose shares made the result (names).
    pub decryptors: Vec<String>,
    /// The sites' minimum cell count (applied to `result`, or by the researcher's client).
    pub min_cell_count: u64,
    /// A plain release: the finished descriptive result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DescribeResult>,
    /// A key switch: the digest (hex) of the researcher's BFV public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub researcher_key: Option<String>,
    /// A key switch: SHA-256 (hex) of the returned ciphertext bytes (`HeVector::to_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_sha256: Option<String>,
}

/// Coordinator → holder ([`crate::he_wire::step::RELEASE_SIGN_START`]): the document to co-sign.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreReleaseSignStart {
    /// [`StoreReleaseDocument`] as JSON (the exact text signed).
    pub document: String,
}

/// A co-signed release from the store: the document's JSON text, the FROST group signature over
/// `frost::document_message(STORE_RELEASE_PURPOSE, text)`, and the signers' names.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStoreResult {
    /// [`StoreReleaseDocument`] as JSON.
    pub document: String,
    /// 128 hex characters.
    pub signature: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
}

impl StoreReleaseDocument {
    /// The JSON text that is signed.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(|e| ProtocolError::parse("store release document", &e))
    }

    /// Parses a document (unknown fields refused).
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::parse("store release document", &e))
    }
}

/// The bytes a store-release signature covers.
pub fn signing_message(document: &str) -> Vec<u8> {
    frost::document_message(STORE_RELEASE_PURPOSE, document.as_bytes())
}

/// SHA-256 of `bytes`, hex (the ciphertext digest a key-switched document names).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes))
}

impl SignedStoreResult {
    /// Verifies the group signature and returns the document.
    ///
    /// Errors: [`ProtocolError::BadSignature`] if the signature does not verify under `group`;
    /// [`ProtocolError::Parse`] / [`ProtocolError::Invalid`] for malformed fields.
    pub fn verify(&self, group: &GroupVerifyingKey) -> Result<StoreReleaseDocument, ProtocolError> {
        let sig = hex::decode_array::<64>(&self.signature)
            .ok_or_else(|| ProtocolError::invalid("store release", "signature", "not 128 hex characters"))?;
        let sig = frost::Signature::from_bytes(&sig)?;
        frost::verify(group, &signing_message(&self.document), &sig)
            .map_err(|_| ProtocolError::BadSignature { what: "store release", signer: "the site group".into() })?;
        StoreReleaseDocument::from_json(&self.document)
    }
}
