//! Node identities, the federation CA and mTLS credentials.
//!
//! Every node (site, coordinator, researcher) has an Ed25519 identity key. Its mTLS leaf
//! certificate is issued by the federation CA **for that same key**, with the node id as the
//! subject common name and as the only DNS subject-alternative name. So the TLS peer key *is* the
//! node's identity key, and the roster check is a key comparison.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ED25519,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

use crate::error::NetError;

/// Longest node id, in bytes (a DNS label).
pub const MAX_NODE_ID_BYTES: usize = 63;

/// A node's name on the roster: 1 to 63 characters `a-z`, `0-9`, `-`, not starting or ending with
/// `-` (a DNS label, so it can be a certificate DNS name).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(String);

impl NodeId {
    /// Parses a node id. Errors: [`NetError::InvalidNodeId`].
    pub fn parse(text: &str) -> Result<Self, NetError> {
        let b = text.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= MAX_NODE_ID_BYTES
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b.first() != Some(&b'-')
            && b.last() != Some(&b'-');
        if ok {
            Ok(NodeId(text.to_owned()))
        } else {
            Err(NetError::InvalidNodeId)
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a node is allowed to be on the federation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// A data-holding site (speaks `SiteLink`).
    Site,
    /// The coordinator (serves both services).
    Coordinator,
    /// A researcher (speaks `ResearcherApi`).
    Researcher,
}

/// A node's id and Ed25519 identity key. The key is zeroized on drop; `Debug` redacts it.
pub struct NodeIdentity {
    id: NodeId,
    key: SigningKey,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity").field("id", &self.id).field("key", &"<redacted>").finish()
    }
}

impl NodeIdentity {
    /// Wraps an existing key.
    pub fn new(id: NodeId, key: SigningKey) -> Self {
        NodeIdentity { id, key }
    }

    /// A fresh identity from the operating system's random source.
    pub fn generate(id: NodeId) -> Self {
        NodeIdentity { id, key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// The node id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The public identity key (what the roster lists).
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The signing key (for signing envelopes).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The private key as PKCS#8 v1 DER (RFC 8410), zeroized on drop.
    fn pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        // SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
        const PREFIX: [u8; 16] =
            [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&PREFIX);
        der.extend_from_slice(self.key.as_bytes());
        der
    }

    /// mTLS credentials with a certificate this node signs itself, for its own identity key, naming
    /// the node id as subject CN and only DNS name. Used by a federation that trusts its roster's
    /// pinned keys rather than a CA ([`crate::Trust::Roster`]): each party makes its own key and
    /// certificate on its own machine, and no one holds a key that could issue another's.
    pub fn self_signed(&self) -> Result<TlsCredentials, NetError> {
        let key = self.rcgen_key()?;
        let cert = self.leaf_params()?.self_signed(&key).map_err(|e| NetError::Certificate(e.to_string()))?;
        Ok(self.credentials(cert.der().clone()))
    }

    /// The parameters of this node's mTLS leaf: the node id as subject CN and only DNS name,
    /// not a CA, for both client and server authentication.
    fn leaf_params(&self) -> Result<CertificateParams, NetError> {
        let mut params = CertificateParams::new(vec![self.id.as_str().to_owned()])
            .map_err(|e| NetError::Certificate(e.to_string()))?;
        params.distinguished_name.push(DnType::CommonName, self.id.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params)
    }

    /// Credentials of `leaf` (a certificate for this node's key) with this node's key.
    fn credentials(&self, leaf: CertificateDer<'static>) -> TlsCredentials {
        TlsCredentials { chain: vec![leaf], key: PrivatePkcs8KeyDer::from(self.pkcs8_der().to_vec()) }
    }

    fn rcgen_key(&self) -> Result<KeyPair, NetError> {
        let der = self.pkcs8_der();
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der.as_slice()), &PKCS_ED25519)
            .map_err(|e| NetError::Certificate(e.to_string()))
    }
}

/// The DER of an Ed25519 SubjectPublicKeyInfo for `key` (RFC 8410).
pub(crate) fn ed25519_spki(key: &VerifyingKey) -> Vec<u8> {
    const PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    let mut der = Vec::with_capacity(44);
    der.extend_from_slice(&PREFIX);
    der.extend_from_slice(key.as_bytes());
    der
}

/// A certificate chain and private key for one end of an mTLS connection.
pub struct TlsCredentials {
    /// Leaf first, then intermediates (not the root).
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivatePkcs8KeyDer<'static>,
}

impl fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredentials").field("chain_len", &self.chain.len()).field("key", &"<redacted>").finish()
    }
}

impl TlsCredentials {
    /// Credentials from a DER chain (leaf first) and a PKCS#8 private key.
    pub fn from_der(chain: Vec<Vec<u8>>, pkcs8_key: Vec<u8>) -> Self {
        TlsCredentials {
            chain: chain.into_iter().map(CertificateDer::from).collect(),
            key: PrivatePkcs8KeyDer::from(pkcs8_key),
        }
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> Option<&[u8]> {
        self.chain.first().map(|c| c.as_ref())
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// The federation certificate authority: issues node certificates.
///
/// Interim design: one CA key held by the federation operator. The roster (who may connect) is
/// checked separately, so a leaked CA key alone does not let a stranger in.
pub struct FederationCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
}

impl fmt::Debug for FederationCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FederationCa").field("cert_len", &self.cert_der.len()).field("key", &"<redacted>").finish()
    }
}

impl FederationCa {
    /// Generates a new CA with an Ed25519 key and the given common name.
    pub fn generate(common_name: &str) -> Result<Self, NetError> {
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(|e| NetError::Certificate(e.to_string()))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| NetError::Certificate(e.to_string()))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(|e| NetError::Certificate(e.to_string()))?;
        Ok(FederationCa { cert_der: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate (DER), the trust anchor every node is configured with.
    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// Issues an mTLS leaf certificate for `node`'s identity key, naming the node id in the subject
    /// CN and as the DNS subject-alternative name, valid for both client and server auth.
    pub fn issue(&self, node: &NodeIdentity) -> Result<TlsCredentials, NetError> {
        let key = node.rcgen_key()?;
        let mut params = node.leaf_params()?;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| NetError::Certificate(e.to_string()))?;
        Ok(node.credentials(cert.der().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_rules() {
        for ok in ["site-a", "coordinator", "h1", &"a".repeat(63)] {
            assert!(NodeId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Site", "a.b", "a_b", "é", &"a".repeat(64)] {
            assert!(NodeId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issued_leaf_carries_node_key_and_name() {
        let ca = FederationCa::generate("test CA").unwrap();
        let node = NodeIdentity::generate(NodeId::parse("site-a").unwrap());
        let creds = ca.issue(&node).unwrap();
        let leaf = CertificateDer::from(creds.leaf_der().unwrap().to_vec());
        let parsed = webpki::EndEntityCert::try_from(&leaf).unwrap();
        assert_eq!(parsed.subject_public_key_info().as_ref(), ed25519_spki(&node.verifying_key()).as_slice());
        assert_eq!(parsed.valid_dns_names().collect::<Vec<_>>(), vec!["site-a"]);
        assert!(!format!("{node:?} {creds:?} {ca:?}").contains(&format!("{:?}", node.signing_key().as_bytes())));
    }
}
