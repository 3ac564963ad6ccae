//! Error types of the transport.

use crate::identity::Role;

/// Why a peer was refused before any handler ran. Names the fault, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusalReason {
    /// The peer presented no client certificate.
    #[error("no client certificate presented")]
    NoClientCertificate,
    /// The certificate chain does not lead to the federation CA (or is expired or malformed).
    #[error("certificate not issued by the federation CA or otherwise invalid ({0})")]
    UntrustedCertificate(String),
    /// The certificate's key is not on the roster.
    #[error("certificate key is not on the federation roster")]
    NotOnRoster,
    /// The node is on the roster but revoked.
    #[error("node `{0}` is revoked")]
    Revoked(String),
    /// The certificate's names do not match the roster entry for its key.
    #[error("certificate does not name node `{0}` (and only it)")]
    NameMismatch(String),
    /// The node's role may not use this service.
    #[error("node `{node}` has role {actual:?}, this service needs {required:?}")]
    WrongRole {
        /// The node.
        node: String,
        /// The role it has.
        actual: Role,
        /// The role the service needs.
        required: Role,
    },
    /// The TLS handshake failed for another reason (protocol error, timeout).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
}

/// Transport errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A node id is not a lower-case DNS label of 1 to 63 characters.
    #[error("node id must be 1 to 63 characters a-z, 0-9, '-', not starting or ending with '-'")]
    InvalidNodeId,
    /// Certificate generation or parsing failed.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// TLS configuration could not be built.
    #[error("TLS configuration error: {0}")]
    TlsConfig(String),
    /// A socket operation failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The peer (or this node, for the in-memory transport) was refused.
    #[error("refused: {0}")]
    Refused(RefusalReason),
    /// Connecting or calling the remote service failed (refusal by the remote side shows up here,
    /// since TLS 1.3 reports a rejected client certificate only after the client's handshake).
    #[error("remote call failed ({code}): {message}")]
    Rpc {
        /// gRPC status code name.
        code: String,
        /// Status message from the remote or the transport.
        message: String,
    },
    /// A frame field is invalid (from the peer, or built locally).
    #[error("invalid frame: field `{field}` {problem}")]
    InvalidFrame {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A roster change was refused.
    #[error("roster: {0}")]
    Roster(&'static str),
    /// The session or server is closed.
    #[error("session closed")]
    Closed,
}

impl From<tonic::Status> for NetError {
    fn from(s: tonic::Status) -> Self {
        NetError::Rpc { code: format!("{:?}", s.code()), message: s.message().to_owned() }
    }
}
