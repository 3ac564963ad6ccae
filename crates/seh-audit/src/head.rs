//! The log head: a short commitment to the whole log that other parties can co-sign.
//!
//! A head `(seq, hash)` names the last entry; because every entry hashes its predecessor, it
//! commits to the entire log up to that entry. A site publishes its head to the coordinator or to
//! the other sites; once they co-sign it (threshold signatures come from `seh-crypto` later), the
//! site can no longer silently drop or rewrite entries up to that point:
//! [`crate::verify_with_head`] checks a log file against a head.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canonical::{hex_decode, hex_encode};
use crate::entry::Hash32;

/// Domain separator in front of the head bytes that co-signers sign.
const HEAD_DOMAIN: &[u8] = b"seh-audit/v1/head\0";

/// The newest entry of a log: its sequence number and hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct LogHead {
    /// Sequence number of the newest entry.
    pub seq: u64,
    /// Hash of the newest entry.
    pub hash: Hash32,
}

impl LogHead {
    /// The exact bytes a co-signer signs: `"seh-audit/v1/head\0" || seq (8 bytes, big-endian) || hash`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD_DOMAIN.len() + 8 + 32);
        out.extend_from_slice(HEAD_DOMAIN);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.hash.0);
        out
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex_encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        hex_decode::<32>(&text, "hash").map(Hash32).map_err(serde::de::Error::custom)
    }
}

/// One co-signature over [`LogHead::signing_bytes`]. The scheme decides how `signature` is checked;
/// this crate only stores it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoSignature {
    /// Who signed (a node id, or a group id for a threshold signature).
    pub signer: String,
    /// Signature scheme name, e.g. `"ed25519"` or `"frost-ristretto255"`.
    pub scheme: String,
    /// The signature bytes (hex in JSON).
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

impl fmt::Debug for CoSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoSignature")
            .field("signer", &self.signer)
            .field("scheme", &self.scheme)
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

/// Errors when adding a co-signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoSignError {
    /// This signer already co-signed this head with this scheme.
    #[error("signer `{signer}` already co-signed this head with scheme `{scheme}`")]
    Duplicate {
        /// The signer.
        signer: String,
        /// The scheme.
        scheme: String,
    },
}

/// A head with the co-signatures collected for it; serialisable as JSON for storage beside the log.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CoSignedHead {
    /// The head that was signed.
    pub head: LogHead,
    /// Co-signatures over `head.signing_bytes()`, in the order they were added.
    pub cosignatures: Vec<CoSignature>,
}

impl CoSignedHead {
    /// A head with no co-signatures yet.
    pub fn new(head: LogHead) -> Self {
        CoSignedHead { head, cosignatures: Vec::new() }
    }

    /// Stores a co-signature. Does not check it (the scheme's verifier lives elsewhere).
    /// Errors: [`CoSignError::Duplicate`] if the same signer and scheme already signed.
    pub fn add(&mut self, cosig: CoSignature) -> Result<(), CoSignError> {
        if self.cosignatures.iter().any(|c| c.signer == cosig.signer && c.scheme == cosig.scheme) {
            return Err(CoSignError::Duplicate { signer: cosig.signer, scheme: cosig.scheme });
        }
        self.cosignatures.push(cosig);
        Ok(())
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::canonical::hex_encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        bytes
            .chunks_exact(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .filter(|p| p.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not lower-case hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes_layout_and_cosign_storage() {
        let head = LogHead { seq: 0x0102, hash: Hash32([7; 32]) };
        let bytes = head.signing_bytes();
        assert_eq!(&bytes[..HEAD_DOMAIN.len()], HEAD_DOMAIN);
        assert_eq!(&bytes[HEAD_DOMAIN.len()..HEAD_DOMAIN.len() + 8], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&bytes[HEAD_DOMAIN.len() + 8..], &[7; 32]);

        let mut signed = CoSignedHead::new(head);
        let c = CoSignature { signer: "site-b".into(), scheme: "ed25519".into(), signature: vec![1, 0xff] };
        signed.add(c.clone()).unwrap();
        assert!(matches!(signed.add(c), Err(CoSignError::Duplicate { .. })));
        let json = serde_json::to_string(&signed).unwrap();
        assert!(json.contains("\"01ff\""), "{json}");
        let back: CoSignedHead = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signed);
        assert!(serde_json::from_str::<CoSignedHead>(&json.replace("01ff", "01FF")).is_err());
    }
}
