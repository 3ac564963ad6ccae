//! Keyed pseudonyms.
//!
//! * **Site pseudonyms** ([`SiteSecret::pseudonym`]): HMAC-SHA256 of a patient
//!   identifier under a secret that never leaves the site, domain-separated
//!   by a *purpose* (e.g. a study id), so pseudonyms of two studies cannot be
//!   joined without the site secret. Used inside a site (audit log, cohort
//!   tables) wherever a stable id is needed but the raw id must not appear.
//! * **Linkage inputs** ([`linkage_input`]): the domain-separated byte string a
//!   site feeds to the OPRF ([`crate::oprf`]) to obtain a cross-site linkage
//!   pseudonym; sites of one federation get equal pseudonyms for equal ids,
//!   and pseudonyms of different federations (namespaces) are unrelated.

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use std::fmt;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain tag of site pseudonyms.
pub const SITE_PSEUDONYM_DST: &[u8] = b"SEH-pseudonym-v1/site/HMAC-SHA256";
/// Domain tag of OPRF linkage inputs.
pub const LINKAGE_DST: &[u8] = b"SEH-pseudonym-v1/linkage/OPRF-ristretto255-SHA512";

/// Errors from pseudonym derivation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PseudonymError {
    /// The site secret must be exactly 32 bytes.
    #[error("site secret must be 32 bytes, got {got}")]
    SecretLength {
        /// Length supplied.
        got: usize,
    },
    /// The framed linkage input exceeds the OPRF's 65535-byte input limit.
    #[error("linkage input of {len} bytes exceeds 65535")]
    InputTooLong {
        /// Framed length.
        len: usize,
    },
}

/// A site's 32-byte pseudonymisation secret. Zeroized on drop; `Debug`
/// prints `<redacted>`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SiteSecret([u8; 32]);

impl fmt::Debug for SiteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SiteSecret(<redacted>)")
    }
}

/// A site pseudonym (32 bytes). Displayed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SitePseudonym(pub [u8; 32]);

impl fmt::Display for SitePseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for SitePseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SitePseudonym({self})")
    }
}

impl SiteSecret {
    /// A fresh random secret.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        Self(k)
    }

    /// From stored key bytes (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PseudonymError> {
        let k: [u8; 32] = bytes.try_into().map_err(|_| PseudonymError::SecretLength { got: bytes.len() })?;
        Ok(Self(k))
    }

    /// The pseudonym of `id` for `purpose`:
    /// `HMAC-SHA256(secret, DST || u32 len(purpose) || purpose || u64 len(id) || id)`
    /// (lengths big-endian). Deterministic; different purposes give unrelated values.
    pub fn pseudonym(&self, purpose: &str, id: &[u8]) -> SitePseudonym {
        // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC-SHA256 accepts any key length"),
        };
        mac.update(SITE_PSEUDONYM_DST);
        mac.update(&(purpose.len() as u32).to_be_bytes());
        mac.update(purpose.as_bytes());
        mac.update(&(id.len() as u64).to_be_bytes());
        mac.update(id);
        SitePseudonym(mac.finalize().into_bytes().into())
    }
}

/// The OPRF input for identifier `id` in federation `namespace`:
/// `LINKAGE_DST || u16 len(namespace) || namespace || id` (big-endian length).
///
/// # Errors
/// [`PseudonymError::InputTooLong`] past the OPRF's 65535-byte limit.
pub fn linkage_input(namespace: &[u8], id: &[u8]) -> Result<Vec<u8>, PseudonymError> {
    let len = LINKAGE_DST.len() + 2 + namespace.len() + id.len();
    if len > usize::from(u16::MAX) || namespace.len() > usize::from(u16::MAX) {
        return Err(PseudonymError::InputTooLong { len });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(LINKAGE_DST);
    out.extend_from_slice(&(namespace.len() as u16).to_be_bytes());
    out.extend_from_slice(namespace);
    out.extend_from_slice(id);
    Ok(out)
}
