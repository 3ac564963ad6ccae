//! Errors of the site data layer. Messages name the file, line, resource,
//! field or table at fault and never contain a patient value.

use std::path::PathBuf;

use seh_fhir::ParseError;

/// A storage-engine failure (SQLite or PostgreSQL), with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct BackendError {
    /// What the store was doing (`"inserting Condition"`).
    pub context: String,
    /// The engine's message (SQL errors name tables and constraints, not values).
    pub message: String,
}

/// Errors of [`crate::Store`] and the importers.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A FHIR resource failed parsing or validation.
    #[error("{file}: line {line}: {error}")]
    Resource {
        /// The NDJSON file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Type, id, field and problem.
        error: ParseError,
    },
    /// A line is not UTF-8.
    #[error("{file}: line {line}: not valid UTF-8")]
    Encoding {
        /// The file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// Reading a file or directory failed.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS message.
        message: String,
    },
    /// A directory holds no NDJSON file of a supported resource type.
    #[error("{dir}: no NDJSON file of a supported resource type (Patient.ndjson, Condition.ndjson, ...)")]
    NothingToImport {
        /// The directory.
        dir: PathBuf,
    },
    /// A CSV file failed the strict numeric reader.
    #[error(transparent)]
    Csv(#[from] seh_stats::FrameError),
    /// A CSV file that is not a numeric table (opt-out lists).
    #[error("{file}: line {line}: {problem}")]
    CsvFormat {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// A table name that is not `[A-Za-z_][A-Za-z0-9_]{0,62}`.
    #[error("table name `{name}` is not valid (letters, digits and `_`, starting with a letter or `_`, at most 63)")]
    BadTableName {
        /// The rejected name.
        name: String,
    },
    /// A table name that differs only by letter case from a table in the store (names are
    /// compared without case: see [`crate::store::table_key`]).
    #[error("table `{name}` differs only by letter case from the table `{existing}` in the store (table names are compared without case); use `{existing}` to replace or read that table, or choose another name")]
    TableNameCase {
        /// The name given.
        name: String,
        /// The spelling in the store.
        existing: String,
    },
    /// A column name containing a control character or longer than 128 bytes.
    #[error("column name at position {position} is not valid (control characters or longer than 128 bytes)")]
    BadColumnName {
        /// 1-based column position.
        position: usize,
    },
    /// No analysis table of that name.
    #[error("no table `{name}` in the store (tables: {available})")]
    NoSuchTable {
        /// The requested name.
        name: String,
        /// Tables present.
        available: String,
    },
    /// The table carries no patient keys (it was imported from CSV, not built by `seh data
    /// cohort`), so consent cannot be applied to its rows.
    #[error("table `{name}` has no patient keys (not stored by `seh data cohort`); consent cannot be applied to it")]
    NoPatientKeys {
        /// The table.
        name: String,
    },
    /// A table's patient keys do not match its rows (the store was edited by hand).
    #[error("table `{name}`: {problem}")]
    BadPatientKeys {
        /// The table.
        name: String,
        /// What is wrong (counts only).
        problem: String,
    },
    /// A site secret file is missing or malformed (the message never contains the secret).
    #[error("{}: {problem}", path.display())]
    Secret {
        /// The secret file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The store was created with another site secret: pseudonyms would not match.
    #[error("the site secret does not match the one this store was created with (pseudonyms would not join); use the store's own secret file")]
    SecretMismatch,
    /// The file is not a store of a schema version this build reads.
    #[error("store schema version {found} is not supported (this build reads version {supported})")]
    SchemaVersion {
        /// Version in the file.
        found: String,
        /// Version this build reads.
        supported: u32,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Wraps an engine error with context.
pub(crate) fn backend<E: std::fmt::Display>(context: &str) -> impl FnOnce(E) -> BackendError + '_ {
    move |e| BackendError { context: context.to_string(), message: e.to_string() }
}

impl From<rusqlite::Error> for BackendError {
    fn from(e: rusqlite::Error) -> Self {
        BackendError { context: "SQLite".to_string(), message: e.to_string() }
    }
}

impl From<rusqlite::Error> for DataError {
    fn from(e: rusqlite::Error) -> Self {
        DataError::Backend(e.into())
    }
}
