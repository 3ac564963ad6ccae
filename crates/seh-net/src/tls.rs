//! rustls configuration (ring provider, TLS 1.3 only) with roster-aware certificate verifiers.
//!
//! Server side: a client certificate is mandatory; its chain must lead to the federation CA and
//! its key and name must be an unrevoked roster member, all **during the handshake**, so a refused
//! peer never reaches HTTP/2, let alone a handler. Client side: the server's certificate must lead
//! to the federation CA, name the expected coordinator id and carry its roster key.
//!
//! With [`Trust::Roster`] there is no CA: each party signs its own certificate for its identity
//! key, and a peer is accepted when its certificate's key *is* a roster member's (coordinator:
//! the pinned coordinator key) and names that member; the TLS 1.3 `CertificateVerify` signature,
//! checked with the same provider, proves the peer holds that key. The roster, signed by the
//! sites, is then the only trust anchor, and nobody holds a key that could mint another party's
//! certificate.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore};
use rustls::{ServerConfig, SignatureScheme};

use crate::error::{NetError, RefusalReason};
use crate::identity::{ed25519_spki, NodeId, TlsCredentials};
use crate::roster::RosterHandle;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &[u8]) -> Result<Arc<RootCertStore>, NetError> {
    let mut store = RootCertStore::empty();
    store.add(CertificateDer::from(ca_der.to_vec())).map_err(|e| NetError::TlsConfig(e.to_string()))?;
    Ok(Arc::new(store))
}

/// How a TLS peer's certificate is trusted.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// A federation CA certificate (DER): the peer's chain must lead to it (`seh keys init`).
    Ca(&'a [u8]),
    /// No CA: the peer's (self-signed) certificate must carry a roster member's identity key and
    /// name (`seh keys gen`; see the module docs).
    Roster,
}

fn refusal(reason: RefusalReason) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(reason))))
}

/// Maps a failed server-side handshake to the reason the peer was refused.
pub(crate) fn refusal_from_handshake(err: &std::io::Error) -> RefusalReason {
    let tls = err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) => inner
            .downcast_ref::<RefusalReason>()
            .cloned()
            .unwrap_or_else(|| RefusalReason::Handshake(inner.to_string())),
        Some(rustls::Error::NoCertificatesPresented) => RefusalReason::NoClientCertificate,
        Some(rustls::Error::InvalidCertificate(e)) => RefusalReason::UntrustedCertificate(format!("{e:?}")),
        Some(other) => RefusalReason::Handshake(other.to_string()),
        None => RefusalReason::Handshake(err.to_string()),
    }
}

#[derive(Debug)]
struct RosterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    roster: RosterHandle,
}

impl ClientCertVerifier for RosterClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        self.roster.read(|r| r.identify_certificate(end_entity)).map_err(refusal)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// A server (coordinator) TLS configuration: TLS 1.3, ALPN `h2`, mandatory client certificate
/// checked against the federation CA `ca_der` and `roster` during the handshake.
pub fn server_config(
    ca_der: &[u8],
    credentials: &TlsCredentials,
    roster: RosterHandle,
) -> Result<Arc<ServerConfig>, NetError> {
    server_config_with(Trust::Ca(ca_der), credentials, roster)
}

/// [`server_config`] with the trust mode `trust`: under [`Trust::Roster`] a client certificate
/// is accepted when its key and name are an unrevoked roster member's (no chain).
pub fn server_config_with(
    trust: Trust<'_>,
    credentials: &TlsCredentials,
    roster: RosterHandle,
) -> Result<Arc<ServerConfig>, NetError> {
    let err = |e: rustls::Error| NetError::TlsConfig(e.to_string());
    let verifier: Arc<dyn ClientCertVerifier> = match trust {
        Trust::Ca(ca_der) => {
            let inner = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider())
                .build()
                .map_err(|e| NetError::TlsConfig(e.to_string()))?;
            Arc::new(RosterClientVerifier { inner, roster })
        }
        Trust::Roster => Arc::new(PinnedClientVerifier { roster, provider: provider() }),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain.clone(), credentials.private_key())
        .map_err(err)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected_key: Option<VerifyingKey>,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Some(key) = &self.expected_key {
            let cert = webpki::EndEntityCert::try_from(end_entity)
                .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            if cert.subject_public_key_info().as_ref() != ed25519_spki(key).as_slice() {
                return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Everything a node needs to dial the coordinator over mTLS.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

impl ClientTls {
    /// A client configuration: TLS 1.3, ALPN `h2`, the server must present a certificate from the
    /// federation CA `ca_der` naming `coordinator` and, if given, carrying `coordinator_key`.
    /// `credentials` is this node's certificate; `None` connects without one (it will be refused;
    /// useful only for diagnostics and tests).
    pub fn new(
        ca_der: &[u8],
        credentials: Option<&TlsCredentials>,
        coordinator: &NodeId,
        coordinator_key: Option<VerifyingKey>,
    ) -> Result<Self, NetError> {
        Self::with_trust(Trust::Ca(ca_der), credentials, coordinator, coordinator_key)
    }

    /// [`ClientTls::new`] with the trust mode `trust`. Under [`Trust::Roster`] the coordinator's
    /// key must be given (it is the only anchor): its certificate must carry that key and name
    /// `coordinator`.
    pub fn with_trust(
        trust: Trust<'_>,
        credentials: Option<&TlsCredentials>,
        coordinator: &NodeId,
        coordinator_key: Option<VerifyingKey>,
    ) -> Result<Self, NetError> {
        let err = |e: rustls::Error| NetError::TlsConfig(e.to_string());
        let verifier: Arc<dyn ServerCertVerifier> = match trust {
            Trust::Ca(ca_der) => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider())
                    .build()
                    .map_err(|e| NetError::TlsConfig(e.to_string()))?;
                Arc::new(PinnedServerVerifier { inner, expected_key: coordinator_key })
            }
            Trust::Roster => {
                let key = coordinator_key.ok_or_else(|| {
                    NetError::TlsConfig("roster trust needs the coordinator's key from the roster".into())
                })?;
                Arc::new(RosterServerVerifier { expected_key: key, name: coordinator.clone(), provider: provider() })
            }
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match credentials {
            Some(c) => builder.with_client_auth_cert(c.chain.clone(), c.private_key()).map_err(err)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let server_name =
            ServerName::try_from(coordinator.as_str().to_owned()).map_err(|e| NetError::TlsConfig(e.to_string()))?;
        Ok(ClientTls { config: Arc::new(config), server_name })
    }
}

/// Server side of [`Trust::Roster`]: the client's certificate must carry an unrevoked roster
/// member's key and name it; no chain is built.
#[derive(Debug)]
struct PinnedClientVerifier {
    roster: RosterHandle,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PinnedClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.roster.read(|r| r.identify_certificate(end_entity)).map_err(refusal)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

/// Client side of [`Trust::Roster`]: the coordinator's certificate must carry its pinned roster
/// key and name exactly the coordinator's id.
#[derive(Debug)]
struct RosterServerVerifier {
    expected_key: VerifyingKey,
    name: NodeId,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RosterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if cert.subject_public_key_info().as_ref() != ed25519_spki(&self.expected_key).as_slice() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
        }
        let mut names = cert.valid_dns_names();
        if names.next() != Some(self.name.as_str()) || names.next().is_some() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
