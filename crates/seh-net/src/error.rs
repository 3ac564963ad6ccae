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
    /// The TLS handshake with the coordinator failed; says which side refused and why.
    #[error("{0}")]
    Tls(TlsFailure),
}

/// Why a TLS connection to the coordinator failed, as far as this node can tell.
///
/// TLS 1.3 sends the server's verdict on a client certificate only as an alert after the client's
/// side of the handshake; the alert is the whole of what the coordinator says (it names no roster
/// details to a party it has not admitted), so the reasons below are as precise as the alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsFailure {
    /// The coordinator asked for a client certificate and this node presented none.
    #[error("refused by the coordinator: no client certificate was presented (TLS alert certificate_required)")]
    NoClientCertificate,
    /// The coordinator does not trust the issuer of this node's certificate.
    #[error(
        "refused by the coordinator: this node's certificate is not issued by the federation CA (TLS alert unknown_ca)"
    )]
    UnknownIssuer,
    /// The coordinator refused a certificate from its CA: key not on the roster, revoked, or the
    /// certificate names another node.
    #[error(
        "refused by the coordinator: this node's certificate is not admitted (key not on the federation roster, \
         revoked, or naming another node; TLS alert {alert})"
    )]
    NotAdmitted {
        /// The TLS alert received.
        alert: String,
    },
    /// The certificate is expired or not yet valid.
    #[error("refused by the coordinator: this node's certificate is expired or not yet valid")]
    Expired,
    /// Another fatal alert from the coordinator.
    #[error("refused by the coordinator in the TLS handshake (TLS alert {alert})")]
    OtherAlert {
        /// The TLS alert received.
        alert: String,
    },
    /// This node rejected the coordinator's certificate (wrong CA, name or pinned key).
    #[error("the coordinator's certificate was rejected: {0}")]
    UntrustedCoordinator(String),
    /// Another local TLS failure.
    #[error("TLS failure: {0}")]
    Local(String),
}

/// How rustls words a received alert (`Display` of `rustls::Error::AlertReceived`). h2 keeps only
/// the text of an I/O error (its errors must be `Clone`), so behind HTTP/2 this is all there is.
const ALERT_PREFIX: &str = "received fatal alert: ";

impl TlsFailure {
    fn from_rustls(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::AlertReceived(alert) => Self::from_alert(&format!("{alert:?}")),
            rustls::Error::InvalidCertificate(c) => TlsFailure::UntrustedCoordinator(format!("{c:?}")),
            other => TlsFailure::Local(other.to_string()),
        }
    }

    /// From rustls' name of an alert (`CertificateRequired`).
    fn from_alert(name: &str) -> Self {
        match name {
            "CertificateRequired" => TlsFailure::NoClientCertificate,
            "UnknownCA" => TlsFailure::UnknownIssuer,
            "CertificateExpired" => TlsFailure::Expired,
            "CertificateUnknown" | "BadCertificate" | "AccessDenied" | "CertificateRevoked" => {
                TlsFailure::NotAdmitted { alert: alert_name(name) }
            }
            other => TlsFailure::OtherAlert { alert: alert_name(other) },
        }
    }

    /// From an I/O error's text, if it is a received alert.
    fn from_text(text: &str) -> Option<Self> {
        let name = text.split(ALERT_PREFIX).nth(1)?.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
        (!name.is_empty()).then(|| Self::from_alert(name))
    }
}

/// The RFC 8446 name of an alert (`certificate_unknown`) from rustls' name (`CertificateUnknown`).
fn alert_name(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The TLS failure somewhere in `err`'s source chain (through I/O, hyper and h2 wrappers).
pub(crate) fn tls_failure_in(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(TlsFailure::from_rustls(t));
        }
        let io =
            e.downcast_ref::<std::io::Error>().or_else(|| e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(io) = io {
            if let Some(t) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(TlsFailure::from_rustls(t));
            }
            if let Some(t) = TlsFailure::from_text(&io.to_string()) {
                return Some(t);
            }
        }
        next = e.source();
    }
    None
}

/// `err`'s message followed by each of its sources (`a: b: c`), without repeats.
pub(crate) fn message_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = s.source();
    }
    message
}

impl From<tonic::Status> for NetError {
    /// A TLS refusal anywhere in the status' sources becomes [`NetError::Tls`]; otherwise the code
    /// and the message with its sources (not just "transport error").
    fn from(s: tonic::Status) -> Self {
        if let Some(t) = tls_failure_in(&s) {
            return NetError::Tls(t);
        }
        NetError::Rpc { code: format!("{:?}", s.code()), message: message_chain(&s) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_map_to_reasons() {
        let alert = |a| TlsFailure::from_rustls(&rustls::Error::AlertReceived(a));
        assert_eq!(alert(rustls::AlertDescription::CertificateRequired), TlsFailure::NoClientCertificate);
        assert_eq!(alert(rustls::AlertDescription::UnknownCA), TlsFailure::UnknownIssuer);
        assert_eq!(
            alert(rustls::AlertDescription::CertificateUnknown),
            TlsFailure::NotAdmitted { alert: "certificate_unknown".into() }
        );
        assert!(alert(rustls::AlertDescription::CertificateUnknown).to_string().contains("roster"));
    }

    #[test]
    fn finds_a_tls_error_behind_io() {
        // (Behind h2 it is found through `h2::Error::get_io`; the gRPC tests cover that path.)
        let io = std::io::Error::other(rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA));
        assert_eq!(tls_failure_in(&io), Some(TlsFailure::UnknownIssuer));
        // Behind h2 the alert survives only as text.
        let text = std::io::Error::new(std::io::ErrorKind::InvalidData, "received fatal alert: CertificateRequired");
        assert_eq!(tls_failure_in(&text), Some(TlsFailure::NoClientCertificate));
        let text = std::io::Error::other("received fatal alert: DecodeError");
        assert_eq!(tls_failure_in(&text), Some(TlsFailure::OtherAlert { alert: "decode_error".into() }));
        let plain = std::io::Error::other("connection reset");
        assert_eq!(tls_failure_in(&plain), None);
        assert_eq!(message_chain(&plain), "connection reset");
    }
}
