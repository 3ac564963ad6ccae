//! Coordinator errors.

/// Why the coordinator could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The SQLite store failed.
    #[error("study store: {0}")]
    Store(String),
    /// The database file cannot be used (empty, not SQLite, corrupt, not a coordinator's).
    #[error("coordinator database {}: {reason}", path.display())]
    Database {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A study with this id exists already.
    #[error("study {0} exists already")]
    Duplicate(String),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] seh_audit::LogError),
    /// The transport failed.
    #[error("transport: {0}")]
    Net(#[from] seh_net::NetError),
    /// A study or message was invalid.
    #[error("{0}")]
    Protocol(#[from] seh_protocol::ProtocolError),
}
