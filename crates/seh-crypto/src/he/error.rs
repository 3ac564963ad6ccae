//! Errors of the threshold-BFV back-end.
//!
//! Split by fault as in the rest of the crate: a peer sent something malformed
//! or inconsistent (named by [`PartyId`] where known), the caller misused the
//! API, or a security gate refused an operation (noise budget, decryption
//! budget, threshold). No error carries a key, a share or an input value.

use crate::error::{FixedError, WireError};
use crate::wire::PartyId;
use thiserror::Error;

/// Errors from [`crate::he`].
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum HeError {
    /// A parameter is out of its domain (API misuse or an unsafe parameter set).
    #[error("invalid HE parameter `{field}`: {reason}")]
    InvalidParameter {
        /// Parameter name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Objects made under different parameter sets were combined.
    #[error("parameter mismatch in `{what}` (from {party:?}): expected set {expected}, got {got}")]
    ParameterMismatch {
        /// What was being combined or decoded.
        what: &'static str,
        /// The party that sent it, if known.
        party: Option<PartyId>,
        /// Expected parameter fingerprint (hex prefix).
        expected: String,
        /// Fingerprint found.
        got: String,
    },
    /// Bytes that do not decode to a valid object.
    #[error("malformed {what} from {party:?}: {reason}")]
    Malformed {
        /// Object kind.
        what: &'static str,
        /// Claimed author, if known.
        party: Option<PartyId>,
        /// What is wrong (never contains secret data).
        reason: &'static str,
    },
    /// Two vectors of different lengths were combined.
    #[error("length mismatch: expected {expected} values, got {got} (from {party:?})")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
        /// Party at fault, if known.
        party: Option<PartyId>,
    },
    /// A seed contribution does not match its commitment.
    #[error("{party} revealed a seed contribution that does not match its commitment")]
    BadReveal {
        /// The party whose reveal failed.
        party: PartyId,
    },
    /// A party sent a message it was not expected to send.
    #[error("unexpected message from {party}: {reason}")]
    UnexpectedParty {
        /// Sender.
        party: PartyId,
        /// Why it is unexpected.
        reason: &'static str,
    },
    /// Fewer parties than needed took part.
    #[error("{got} parties available, {needed} needed ({what})")]
    NotEnoughParties {
        /// What needs them.
        what: &'static str,
        /// Needed.
        needed: usize,
        /// Available.
        got: usize,
    },
    /// Parties that were asked for a share did not answer.
    #[error("missing shares from {missing:?}")]
    MissingShares {
        /// Parties that did not answer.
        missing: Vec<PartyId>,
    },
    /// The ciphertext carries more noise than the flooding of this parameter
    /// set hides; decrypting it could leak key material.
    #[error("ciphertext noise bound 2^{noise_log2:.1} exceeds the 2^{hidden_log2:.1} the decryption flooding hides")]
    NoiseBudgetExceeded {
        /// Tracked noise bound (log2).
        noise_log2: f64,
        /// Largest noise the flooding hides (log2).
        hidden_log2: f64,
    },
    /// This key share has produced as many decryption / key-switch shares as
    /// the parameter set allows.
    #[error("decryption budget exhausted: {used} of {allowed} shares already produced with this key share")]
    DecryptionBudgetExhausted {
        /// Shares produced so far.
        used: u64,
        /// Shares allowed.
        allowed: u64,
    },
    /// A plaintext value is outside the range the plaintext modulus can hold.
    #[error("value at index {index} is outside the plaintext range")]
    PlaintextRange {
        /// Index of the offending entry.
        index: usize,
    },
    /// Fixed-point encoding failed.
    #[error(transparent)]
    Fixed(#[from] FixedError),
    /// Envelope-level problem.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// An error reported by the `fhe` library.
    #[error("fhe library error in {context}: {message}")]
    Library {
        /// Where.
        context: &'static str,
        /// The library's message.
        message: String,
    },
    /// Reading or writing the encrypted store.
    #[error("encrypted store: {op} {path}: {message}")]
    Store {
        /// Operation.
        op: &'static str,
        /// File path.
        path: String,
        /// OS message.
        message: String,
    },
}

impl HeError {
    pub(crate) fn lib(context: &'static str, e: impl std::fmt::Display) -> HeError {
        HeError::Library { context, message: e.to_string() }
    }
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> HeError {
        HeError::InvalidParameter { field, reason: reason.into() }
    }
}
