//! The released result: a document naming the study, its participants and the statistics, signed
//! by a threshold of the sites with FROST, verifiable by anyone with the federation file.

use seh_crypto::frost::{self, GroupVerifyingKey};
use serde::{Deserialize, Serialize};

use crate::describe::DescribeResult;
use crate::error::ProtocolError;
use crate::hex;

/// FROST document purpose bound into a release signature.
pub const RELEASE_PURPOSE: &str = "result";

/// What is released and signed.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseDocument {
    /// Study id.
    pub study_id: String,
    /// SHA-256 of the researcher-signed spec text (binds the release to the exact request).
    pub spec_sha256: String,
    /// Analysis kind.
    pub analysis: String,
    /// Sites whose policy accepted the study.
    pub accepted: Vec<String>,
    /// Sites whose contribution is in the sum (survivors of the secure aggregation).
    pub contributors: Vec<String>,
    /// Minimum cell count applied (the largest over the accepting sites' policies).
    pub min_cell_count: u64,
    /// The statistics.
    pub result: DescribeResult,
    /// Model analyses (Cox, KM, GLM): the result, `seh fit` JSON plus federation metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<serde_json::Value>,
}

/// A release: the document's exact JSON text, the FROST group signature over
/// `frost::document_message("result", text)`, and the signers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRelease {
    /// [`ReleaseDocument`] as JSON.
    pub document: String,
    /// 128 hex characters.
    pub signature: String,
    /// Sites whose signature shares were aggregated.
    pub signers: Vec<String>,
}

impl ReleaseDocument {
    /// The JSON text that is signed.
    pub fn to_json(&self) -> Result<String, ProtocolError> {
        serde_json::to_string(self).map_err(|e| ProtocolError::parse("release document", &e))
    }

    /// Parses a document.
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::parse("release document", &e))
    }
}

/// The bytes a release signature covers.
pub fn signing_message(document: &str) -> Vec<u8> {
    frost::document_message(RELEASE_PURPOSE, document.as_bytes())
}

impl SignedRelease {
    /// Verifies the group signature and returns the document.
    ///
    /// Errors: [`ProtocolError::BadSignature`] if the signature does not verify under `group`;
    /// [`ProtocolError::Parse`] / [`ProtocolError::Invalid`] for malformed fields.
    pub fn verify(&self, group: &GroupVerifyingKey) -> Result<ReleaseDocument, ProtocolError> {
        let sig = hex::decode_array::<64>(&self.signature)
            .ok_or_else(|| ProtocolError::invalid("release", "signature", "not 128 hex characters"))?;
        let sig = frost::Signature::from_bytes(&sig)?;
        frost::verify(group, &signing_message(&self.document), &sig)
            .map_err(|_| ProtocolError::BadSignature { what: "release", signer: "the site group".into() })?;
        ReleaseDocument::from_json(&self.document)
    }
}
