//! rustls configuration (ring provider, TLS 1.3 only) with roster-aware certificate verifiers.
//!
//! Server side: a client certificate is mandatory; its chain must lead to the federation CA and
//! its key and name must be an unrevoked roster member, all **during the handshake**, so a refused
//! peer never reaches HTTP/2, let alone a handler. Client side: the server's certificate must lead
//! to the federation CA, name the expected coordinator id and carry its roster key.

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
    let err = |e: rustls::Error| NetError::TlsConfig(e.to_string());
    let inner = WebPkiClientVerifier::builder_with_provider(roots(ca_der)?, provider())
        .build()
        .map_err(|e| NetError::TlsConfig(e.to_string()))?;
    let verifier = Arc::new(RosterClientVerifier { inner, roster });
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
        let err = |e: rustls::Error| NetError::TlsConfig(e.to_string());
        let inner = WebPkiServerVerifier::builder_with_provider(roots(ca_der)?, provider())
            .build()
            .map_err(|e| NetError::TlsConfig(e.to_string()))?;
        let verifier = Arc::new(PinnedServerVerifier { inner, expected_key: coordinator_key });
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
