//! Error types. None of them ever carries a patient value, a count computed from patient rows,
//! or a secret.

use std::path::PathBuf;

/// A date string or date parts that are not a valid calendar date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not of the form `YYYY-MM-DD` (optionally followed by `T` and a time).
    #[error("date is not of the form YYYY-MM-DD")]
    Syntax,
    /// A part is out of range.
    #[error("date {field} is out of range")]
    OutOfRange {
        /// `year`, `month` or `day`.
        field: &'static str,
    },
}

/// A consent record that cannot be evaluated as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// A field of a consent record is invalid.
    #[error("consent record `{record}`: field `{field}`: {reason}")]
    Invalid {
        /// The record's id (a site-local resource id, never a patient identifier).
        record: String,
        /// The field at fault, e.g. `provision[0].period`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

/// A site policy file that could not be accepted. Every variant names the line (1-based) and,
/// where there is one, the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The file is not valid TOML, or a value has the wrong type.
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        /// The file name or other label given by the caller.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message (it names the key where it knows it).
        message: String,
    },
    /// A key this version does not know (a typo would otherwise silently leave a default).
    #[error("{source_name}:{line}: unknown key `{key}`")]
    UnknownKey {
        /// The file name or label.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// The unknown key as written.
        key: String,
    },
    /// A required key is absent.
    #[error("{source_name}: missing key `{key}`")]
    MissingKey {
        /// The file name or label.
        source_name: String,
        /// The dotted key, e.g. `disclosure.min_cell_count`.
        key: String,
    },
    /// A value is invalid on its own (bad key encoding, unknown analysis kind, negative ε, …).
    #[error("{source_name}:{line}: `{key}`: {reason}")]
    Invalid {
        /// The file name or label.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// The dotted key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is looser than the DataSHIELD-derived floor a site may only tighten.
    #[error("{source_name}:{line}: `{key}` = {value} is looser than the floor {floor} (a site may only tighten it)")]
    LooserThanFloor {
        /// The file name or label.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// The dotted key.
        key: String,
        /// The configured value, as written.
        value: String,
        /// The floor.
        floor: String,
    },
}

/// Invalid parameters for a differential-privacy mechanism (API misuse, not a refusal).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DpError {
    /// A parameter is out of its domain.
    #[error("DP parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter, e.g. `epsilon`.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The budget ledger file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An I/O operation failed.
    #[error("budget ledger {}: {op}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done (`read`, `write temp file`, `fsync`, `rename`, …).
        op: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file exists but is not a valid ledger.
    #[error("budget ledger {}: corrupt: {reason}", path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong (never a researcher's spending beyond the field name).
        reason: String,
    },
    /// A DP parameter given to the ledger is invalid.
    #[error(transparent)]
    Parameter(#[from] DpError),
}
