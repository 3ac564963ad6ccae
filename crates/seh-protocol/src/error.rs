//! Errors of the study protocol. Each names the party or field at fault and never carries a
//! data value or a secret.

use seh_crypto::error::{SecAggError, WireError};
use seh_crypto::frost::FrostError;
use seh_crypto::wire::PartyId;

/// Why a study specification, policy, federation file or message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// A field of a study spec, policy, federation file or control message is invalid.
    #[error("invalid {what}: field `{field}`: {reason}")]
    Invalid {
        /// Which document (`study spec`, `policy`, `federation`, a message name).
        what: &'static str,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON document failed to parse (position given by serde_json, never the value).
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// Which document.
        what: &'static str,
        /// Line/column and what was expected.
        detail: String,
    },
    /// A signature over a study spec or a release does not verify.
    #[error("bad signature on {what} by {signer}")]
    BadSignature {
        /// What was signed.
        what: &'static str,
        /// Who claims to have signed it.
        signer: String,
    },
    /// An envelope failed decoding, authentication, or the replay / round guard.
    #[error("rejected message: {0}")]
    Wire(#[from] WireError),
    /// SecAgg+ failed (names the culprit party where known).
    #[error("secure aggregation: {0}")]
    SecAgg(#[from] SecAggError),
    /// FROST signing failed (names culprits where known).
    #[error("threshold signature: {0}")]
    Frost(#[from] FrostError),
    /// A message arrived that the current state does not expect.
    #[error("unexpected message from {party}: {reason}")]
    Unexpected {
        /// The sender.
        party: PartyId,
        /// Why it is unexpected.
        reason: String,
    },
    /// A value cannot be encoded for secure summation (out of the encodable range). Names the
    /// column, never the value.
    /// A statistical step of an analysis failed (model frame, kernel, driver); names the step.
    #[error("{step}: {reason}")]
    Analysis {
        /// Which step.
        step: &'static str,
        /// Why (never a data value).
        reason: String,
    },
    #[error("column `{column}`: {reason}")]
    Encoding {
        /// The column.
        column: String,
        /// What went wrong.
        reason: &'static str,
    },
}

impl ProtocolError {
    /// Shorthand for [`ProtocolError::Invalid`].
    pub fn invalid(what: &'static str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        ProtocolError::Invalid { what, field: field.into(), reason: reason.into() }
    }

    /// Wraps a serde_json error (which reports positions, not values).
    pub fn parse(what: &'static str, e: &serde_json::Error) -> Self {
        ProtocolError::Parse { what, detail: format!("line {} column {}: {:?}", e.line(), e.column(), e.classify()) }
    }
}
