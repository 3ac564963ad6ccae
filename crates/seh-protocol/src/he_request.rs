//! The researcher's signed request for a release from the coordinator's encrypted store
//! (`seh study release`). The researcher signs it with the same Ed25519 identity key and in the
//! same form as a study ([`crate::spec::SignedStudy`]: the exact JSON text and a signature over a
//! domain-separation prefix followed by that text); the coordinator forwards it unchanged in every
//! release offer ([`crate::he_release::HeReleaseOffer::request`]), and each key holder checks it
//! ([`SignedStoreRelease::check_offer`]) before it agrees: so a coordinator can neither invent a
//! release nor switch the result to a key other than the one the researcher named.
//!
//! A site does not remember the nonces it has seen: a coordinator that replays a signed request
//! gets a second release of the same round, to the same key, over the same sites (sites refuse
//! another set), which costs decryption budget but reveals nothing new.

use seh_crypto::wire::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::federation::Federation;
use crate::he_release::HeReleaseOffer;
use crate::hex;
use crate::spec::StudySpec;

/// Domain-separation prefix of the bytes a researcher signs to request a release from the store.
pub const RELEASE_REQUEST_SIGNING_CONTEXT: &[u8] = b"secur-e-health release from the encrypted store v1\0";
/// The [`StoreReleaseRequest::to_key`] of a release decrypted to the coordinator.
pub const PLAIN: &str = "plain";
/// Most characters of a signed request's JSON text.
const MAX_TEXT: usize = 4096;

/// What the researcher asks for: a release of one stored encrypted round of one of its studies.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreReleaseRequest {
    /// The study (hex id).
    pub study_id: String,
    /// The researcher's name on the federation file (the signer; must be the study's researcher).
    pub researcher: String,
    /// The stored encrypted round; `None`: the last one the coordinator stored (the coordinator
    /// chooses it, and the sites accept any stored round of the study).
    pub round: Option<u32>,
    /// The digest (hex, `ResearcherPublicKey::digest`) of the researcher's BFV public key the
    /// result is switched to, or [`PLAIN`] for a decryption to the coordinator.
    pub to_key: String,
    /// 32 fresh random hex characters (two requests never sign the same bytes).
    pub nonce: String,
    /// When the researcher signed it (seconds since 1970, the researcher's clock; informative).
    pub issued_at: u64,
}

/// A [`StoreReleaseRequest`] as the researcher signed it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedStoreRelease {
    /// The request, JSON (the exact text signed).
    pub request: String,
    /// Ed25519 signature over [`RELEASE_REQUEST_SIGNING_CONTEXT`] followed by `request`, 128 hex
    /// characters.
    pub signature: String,
}

impl StoreReleaseRequest {
    /// A request with a fresh random nonce and the current time. `to_key`: the researcher key
    /// digest (hex) or `None` for a decryption to the coordinator.
    pub fn new(study_id: &str, researcher: &str, round: Option<u32>, to_key: Option<&str>) -> Self {
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let issued_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        StoreReleaseRequest {
            study_id: study_id.to_owned(),
            researcher: researcher.to_owned(),
            round,
            to_key: to_key.map_or_else(|| PLAIN.to_owned(), str::to_ascii_lowercase),
            nonce: hex::encode(&nonce),
            issued_at,
        }
    }

    /// The key digest a key switch goes to, or `None` for a decryption to the coordinator.
    pub fn target(&self) -> Option<&str> {
        (self.to_key != PLAIN).then_some(self.to_key.as_str())
    }

    fn check_fields(&self) -> Result<(), ProtocolError> {
        const W: &str = "release request";
        if hex::decode_array::<16>(&self.study_id).is_none() {
            return Err(ProtocolError::invalid(W, "study_id", "not 32 hex characters"));
        }
        if self.to_key != PLAIN && hex::decode_array::<32>(&self.to_key).is_none() {
            return Err(ProtocolError::invalid(W, "to_key", "neither `plain` nor 64 hex characters"));
        }
        if hex::decode_array::<16>(&self.nonce).is_none() {
            return Err(ProtocolError::invalid(W, "nonce", "not 32 hex characters"));
        }
        Ok(())
    }
}

impl SignedStoreRelease {
    /// Signs `request` with the researcher's identity key (the key that signs its studies).
    ///
    /// Errors: a malformed field ([`ProtocolError::Invalid`] naming it).
    pub fn sign(request: &StoreReleaseRequest, key: &SigningKey) -> Result<Self, ProtocolError> {
        request.check_fields()?;
        let text = serde_json::to_string(request).map_err(|e| ProtocolError::parse("release request", &e))?;
        let signature = crate::spec::sign_text(RELEASE_REQUEST_SIGNING_CONTEXT, &text, key);
        Ok(SignedStoreRelease { request: text, signature })
    }

    /// The request without checking the signature (for routing). Errors: text that does not parse
    /// or a malformed field.
    pub fn unverified(&self) -> Result<StoreReleaseRequest, ProtocolError> {
        if self.request.len() > MAX_TEXT {
            return Err(ProtocolError::invalid("release request", "request", "longer than 4096 characters"));
        }
        let r: StoreReleaseRequest =
            serde_json::from_str(&self.request).map_err(|e| ProtocolError::parse("release request", &e))?;
        r.check_fields()?;
        Ok(r)
    }

    /// Checks the signature under `key` and returns the request.
    ///
    /// Errors: as [`Self::unverified`], or [`ProtocolError::BadSignature`] naming the claimed signer.
    pub fn verify(&self, key: &VerifyingKey) -> Result<StoreReleaseRequest, ProtocolError> {
        let r = self.unverified()?;
        crate::spec::verify_text(
            RELEASE_REQUEST_SIGNING_CONTEXT,
            &self.request,
            &self.signature,
            key,
            "release request",
            &r.researcher,
        )?;
        Ok(r)
    }

    /// Checks the request against the federation's researchers: the signer is a researcher of the
    /// federation and its signature verifies. Returns the request.
    ///
    /// Errors: an unknown researcher or a bad signature ([`ProtocolError::BadSignature`]), a
    /// malformed request.
    pub fn verify_in(&self, fed: &Federation) -> Result<StoreReleaseRequest, ProtocolError> {
        let r = self.unverified()?;
        let key = fed.researcher_key(&r.researcher).ok_or_else(|| ProtocolError::BadSignature {
            what: "release request",
            signer: format!("{} (not a researcher of this federation)", r.researcher),
        })?;
        self.verify(key)
    }

    /// SHA-256 of the signed request text, hex (what the sites' audit names; no value or key).
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(self.request.as_bytes()))
    }

    /// A key holder's check of a release offer: the request verifies under the federation's key
    /// of the researcher it names, that researcher signed the study (`spec`, whose signature the
    /// caller has verified), and the offer is the release the researcher asked for — same study,
    /// the signed round (when one is named), and the same target (the signed key digest, or a
    /// decryption when the researcher asked for one).
    ///
    /// Returns `Err(reason)` (a refusal to audit and send; never a key or a value).
    pub fn check_offer(&self, fed: &Federation, spec: &StudySpec, offer: &HeReleaseOffer) -> Result<(), String> {
        let r = self.verify_in(fed).map_err(|e| format!("release not signed by a researcher: {e}"))?;
        if r.researcher != spec.researcher {
            return Err(format!(
                "release requested by {}, not by the study's researcher {}",
                r.researcher, spec.researcher
            ));
        }
        if r.study_id != spec.study_id {
            return Err("the signed release request names another study".into());
        }
        if let Some(round) = r.round {
            if round != offer.round {
                return Err(format!(
                    "the researcher asked for stored round {round}, the offer is for round {}",
                    offer.round
                ));
            }
        }
        let offered = offer.to_researcher_key.as_deref().map(str::to_ascii_lowercase);
        match (r.target(), offered.as_deref()) {
            (None, None) => Ok(()),
            (Some(want), Some(got)) if want == got => Ok(()),
            (None, Some(_)) => Err("the researcher asked for a decryption, the offer is a key switch".into()),
            (Some(_), None) => Err("the researcher asked for a key switch, the offer is a decryption".into()),
            (Some(_), Some(_)) => Err("the offer switches to another key than the researcher signed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn signs_and_verifies_and_rejects_tampering() {
        let req = StoreReleaseRequest::new(&"ab".repeat(16), "alice", Some(3), Some(&"cd".repeat(32)));
        let signed = SignedStoreRelease::sign(&req, &key(1)).unwrap();
        assert_eq!(signed.verify(&key(1).verifying_key()).unwrap(), req);
        assert!(matches!(signed.verify(&key(2).verifying_key()), Err(ProtocolError::BadSignature { .. })));
        let tampered = SignedStoreRelease { request: signed.request.replace("\"round\":3", "\"round\":4"), ..signed };
        assert_ne!(tampered.request, serde_json::to_string(&req).unwrap());
        assert!(matches!(tampered.verify(&key(1).verifying_key()), Err(ProtocolError::BadSignature { .. })));
    }

    #[test]
    fn a_study_signature_is_not_a_release_signature() {
        // Domain separation: the same key signing the same text under the study context does not
        // make a valid release request.
        let req = StoreReleaseRequest::new(&"ab".repeat(16), "alice", None, None);
        let text = serde_json::to_string(&req).unwrap();
        let sig = crate::spec::sign_text(crate::spec::SPEC_SIGNING_CONTEXT, &text, &key(1));
        let forged = SignedStoreRelease { request: text, signature: sig };
        assert!(forged.verify(&key(1).verifying_key()).is_err());
    }

    #[test]
    fn malformed_fields_are_named() {
        let mut req = StoreReleaseRequest::new(&"ab".repeat(16), "alice", None, None);
        req.to_key = "xyz".into();
        let e = SignedStoreRelease::sign(&req, &key(1)).unwrap_err().to_string();
        assert!(e.contains("to_key"), "{e}");
        let bad = SignedStoreRelease { request: "{\"study_id\":1}".into(), signature: "00".repeat(64) };
        assert!(bad.unverified().is_err());
    }
}
