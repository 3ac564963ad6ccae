//! Verifiable oblivious PRF (RFC 9497, VOPRF mode, ciphersuite
//! ristretto255-SHA512) for cross-site linkage pseudonyms, over the `voprf`
//! crate.
//!
//! ```text
//! site (holds ids)                              key holder (holds k, publishes pk = k·G)
//!  blind(ids)        ── BlindedRequest ──▶
//!                                                evaluate: k·B_i + one batch DLEQ proof
//!                    ◀─ EvaluatedResponse ─
//!  finalize(ids, pk) → LinkagePseudonym_i = F(k, id_i)
//! ```
//!
//! The key holder learns nothing about the identifiers; the site learns
//! `F(k, id)` only for identifiers it holds, and the proof shows that every
//! evaluation used the key behind the published `pk` (so a key holder cannot
//! give different sites different keys and break, or fake, linkage). Two
//! sites that hold the same identifier obtain the same pseudonym.
//!
//! Feed identifiers through [`crate::pseudonym::linkage_input`] so that the
//! OPRF input is domain-separated per federation; the functions here take
//! the raw RFC input so that the RFC test vectors apply unchanged.

use curve25519_dalek::ristretto::CompressedRistretto;
use rand::{CryptoRng, RngCore};
use std::fmt;
use thiserror::Error;
use voprf::{BlindedElement, EvaluationElement, Proof, VoprfClient, VoprfServer};
use zeroize::Zeroizing;

/// The RFC 9497 ciphersuite used: ristretto255-SHA512.
pub type Suite = voprf::Ristretto255;

/// Maximum identifiers per request (the RFC batch limit).
pub const MAX_BATCH: usize = u16::MAX as usize;

/// Length of an OPRF output (SHA-512).
pub const OUTPUT_LEN: usize = 64;

/// Errors from the OPRF protocol. None contains an identifier or a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OprfError {
    /// Identifier `index` is longer than 65535 bytes.
    #[error("identifier {index} is longer than 65535 bytes")]
    InvalidInput {
        /// Position in the batch.
        index: usize,
    },
    /// More than [`MAX_BATCH`] identifiers, or an empty batch.
    #[error("batch of {len} identifiers; must be 1..={max}")]
    BatchSize {
        /// Batch length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The response does not match the request or the identifiers given.
    #[error("{what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// What was counted.
        what: &'static str,
        /// Expected count.
        expected: usize,
        /// Actual count.
        got: usize,
    },
    /// The key holder's proof does not verify: it did not use the key behind
    /// the published public key (the key holder is at fault).
    #[error("the key holder's evaluation proof does not verify against its public key")]
    ProofInvalid,
    /// Key material could not be derived or decoded.
    #[error("invalid OPRF key material")]
    InvalidKey,
    /// Strict decoding failed.
    #[error("malformed {message}: {reason} at byte {offset}")]
    Malformed {
        /// Message type.
        message: &'static str,
        /// What is wrong.
        reason: &'static str,
        /// Byte offset.
        offset: usize,
    },
}

/// A linkage pseudonym `F(k, id)` (64 bytes). Equal across sites for equal
/// identifiers. `Debug` shows only a short prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkagePseudonym(pub [u8; OUTPUT_LEN]);

impl fmt::Debug for LinkagePseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkagePseudonym({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// The key holder's public key `pk = k·G` (a valid non-identity point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OprfPublicKey([u8; 32]);

impl OprfPublicKey {
    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Decode; rejects non-canonical encodings and the identity.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, OprfError> {
        match CompressedRistretto(bytes).decompress() {
            Some(p) if p != curve25519_dalek::ristretto::RistrettoPoint::default() => Ok(Self(bytes)),
            _ => Err(OprfError::InvalidKey),
        }
    }

    fn point(&self) -> Result<curve25519_dalek::ristretto::RistrettoPoint, OprfError> {
        CompressedRistretto(self.0).decompress().ok_or(OprfError::InvalidKey)
    }
}

/// The OPRF key holder (RFC "server"). Zeroized on drop by `voprf`;
/// `Debug` prints `<redacted>`.
#[derive(Clone)]
pub struct OprfKeyHolder(VoprfServer<Suite>);

impl fmt::Debug for OprfKeyHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OprfKeyHolder(<redacted>)")
    }
}

impl OprfKeyHolder {
    /// A fresh random key.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Result<Self, OprfError> {
        VoprfServer::new(rng).map(Self).map_err(|_| OprfError::InvalidKey)
    }

    /// RFC 9497 `DeriveKeyPair(seed, info)` (deterministic key from a 32-byte seed).
    pub fn from_seed(seed: &[u8; 32], info: &[u8]) -> Result<Self, OprfError> {
        VoprfServer::new_from_seed(seed, info).map(Self).map_err(|_| OprfError::InvalidKey)
    }

    /// The key pair bytes (`sk || pk`, 64 bytes) for encrypted at-rest storage. Secret.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// Inverse of [`Self::to_secret_bytes`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        VoprfServer::deserialize(bytes).map(Self).map_err(|_| OprfError::InvalidKey)
    }

    /// The public key to publish (sites verify every evaluation against it).
    pub fn public_key(&self) -> OprfPublicKey {
        OprfPublicKey(self.0.get_public_key().compress().to_bytes())
    }

    /// Evaluate a site's blinded batch, with one DLEQ proof for the batch.
    ///
    /// # Errors
    /// [`OprfError::BatchSize`] for an empty or oversized batch.
    pub fn evaluate<R: RngCore + CryptoRng>(
        &self,
        request: &BlindedRequest,
        rng: &mut R,
    ) -> Result<EvaluatedResponse, OprfError> {
        check_batch(request.elements.len())?;
        let result = self
            .0
            .batch_blind_evaluate(rng, &request.elements)
            .map_err(|_| OprfError::BatchSize { len: request.elements.len(), max: MAX_BATCH })?;
        Ok(EvaluatedResponse { elements: result.messages, proof: result.proof })
    }
}

fn check_batch(len: usize) -> Result<(), OprfError> {
    if len == 0 || len > MAX_BATCH {
        return Err(OprfError::BatchSize { len, max: MAX_BATCH });
    }
    Ok(())
}

/// Site → key holder: blinded identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindedRequest {
    elements: Vec<BlindedElement<Suite>>,
}

/// Key holder → site: evaluated elements (request order) and a batch proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluatedResponse {
    elements: Vec<EvaluationElement<Suite>>,
    proof: Proof<Suite>,
}

/// The site's secret blinding state between [`blind`] and
/// [`PendingPseudonyms::finalize`]. `Debug` prints `<redacted>`.
pub struct PendingPseudonyms {
    clients: Vec<VoprfClient<Suite>>,
}

impl fmt::Debug for PendingPseudonyms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PendingPseudonyms {{ batch: {}, blinds: <redacted> }}", self.clients.len())
    }
}

/// Site, step 1: blind `inputs` (in order).
///
/// # Errors
/// [`OprfError::InvalidInput`] naming the first bad input;
/// [`OprfError::BatchSize`] for an empty or oversized batch.
pub fn blind<I: AsRef<[u8]>, R: RngCore + CryptoRng>(
    inputs: &[I],
    rng: &mut R,
) -> Result<(PendingPseudonyms, BlindedRequest), OprfError> {
    check_batch(inputs.len())?;
    let mut clients = Vec::with_capacity(inputs.len());
    let mut elements = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        // RFC 9497 frames the input with a 2-byte length in Finalize.
        if input.as_ref().len() > usize::from(u16::MAX) {
            return Err(OprfError::InvalidInput { index });
        }
        let r = VoprfClient::<Suite>::blind(input.as_ref(), rng).map_err(|_| OprfError::InvalidInput { index })?;
        clients.push(r.state);
        elements.push(r.message);
    }
    Ok((PendingPseudonyms { clients }, BlindedRequest { elements }))
}

impl PendingPseudonyms {
    /// Number of blinded inputs.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True if the batch is empty (never, for a state made by [`blind`]).
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Site, step 2: verify the proof against `pk` and unblind. `inputs` must
    /// be the same list, in the same order, as given to [`blind`].
    ///
    /// # Errors
    /// [`OprfError::ProofInvalid`] if the key holder cheated;
    /// [`OprfError::LengthMismatch`] if counts differ.
    pub fn finalize<I: AsRef<[u8]>>(
        self,
        inputs: &[I],
        response: &EvaluatedResponse,
        pk: &OprfPublicKey,
    ) -> Result<Vec<LinkagePseudonym>, OprfError> {
        let n = self.clients.len();
        if inputs.len() != n {
            return Err(OprfError::LengthMismatch { what: "identifiers", expected: n, got: inputs.len() });
        }
        if response.elements.len() != n {
            return Err(OprfError::LengthMismatch {
                what: "evaluated elements",
                expected: n,
                got: response.elements.len(),
            });
        }
        let inputs: Vec<&[u8]> = inputs.iter().map(|i| i.as_ref()).collect();
        let outputs =
            VoprfClient::batch_finalize(&inputs, &self.clients, &response.elements, &response.proof, pk.point()?)
                .map_err(|e| match e {
                    voprf::Error::ProofVerification => OprfError::ProofInvalid,
                    _ => OprfError::LengthMismatch { what: "batch", expected: n, got: response.elements.len() },
                })?;
        let mut out = Vec::with_capacity(n);
        for (index, o) in outputs.enumerate() {
            let o = o.map_err(|_| OprfError::InvalidInput { index })?;
            let mut p = [0u8; OUTPUT_LEN];
            p.copy_from_slice(&o);
            out.push(LinkagePseudonym(p));
        }
        Ok(out)
    }

    /// Serialize the blinding state (to survive a restart between rounds).
    /// Secret: store encrypted.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(4 + 64 * self.clients.len()));
        out.extend_from_slice(&(self.clients.len() as u32).to_be_bytes());
        for c in &self.clients {
            out.extend_from_slice(&c.serialize());
        }
        out
    }

    /// Strict inverse of [`Self::to_secret_bytes`]; also the way to rebuild a
    /// state from known blinds (`blind || blinded element`, 64 bytes each), as
    /// the RFC test vectors do.
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        let mut r = Cursor::new(bytes, "PendingPseudonyms");
        let n = r.count()?;
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let chunk = r.take(64)?;
            clients.push(VoprfClient::deserialize(chunk).map_err(|_| r.err("invalid blind or element", at))?);
        }
        r.finish()?;
        Ok(Self { clients })
    }
}

// ---------------------------------------------------------------- wire

const TAG_REQUEST: u8 = 0x01;
const TAG_RESPONSE: u8 = 0x02;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], message: &'static str) -> Self {
        Self { bytes, pos: 0, message }
    }

    fn err(&self, reason: &'static str, offset: usize) -> OprfError {
        OprfError::Malformed { message: self.message, reason, offset }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], OprfError> {
        let end = self.pos.checked_add(n).ok_or(self.err("length overflow", self.pos))?;
        let s = self.bytes.get(self.pos..end).ok_or(self.err("truncated", self.pos))?;
        self.pos = end;
        Ok(s)
    }

    fn tag(&mut self, tag: u8) -> Result<(), OprfError> {
        match self.take(1)? {
            [t] if *t == tag => Ok(()),
            _ => Err(self.err("wrong message tag", 0)),
        }
    }

    /// A u32 count in `1..=MAX_BATCH`.
    fn count(&mut self) -> Result<usize, OprfError> {
        let at = self.pos;
        let b = self.take(4)?;
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if n == 0 || n > MAX_BATCH {
            return Err(self.err("count outside 1..=65535", at));
        }
        Ok(n)
    }

    fn finish(&self) -> Result<(), OprfError> {
        if self.pos != self.bytes.len() {
            return Err(self.err("trailing bytes", self.pos));
        }
        Ok(())
    }
}

impl BlindedRequest {
    /// Number of blinded elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True if empty (never, for a decoded or constructed request).
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Payload: `0x01, u32 BE count, count × 32-byte element`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + 32 * self.elements.len());
        out.push(TAG_REQUEST);
        out.extend_from_slice(&(self.elements.len() as u32).to_be_bytes());
        for e in &self.elements {
            out.extend_from_slice(&e.serialize());
        }
        out
    }

    /// Strict decoding; every element must be a valid non-identity point.
    pub fn decode(bytes: &[u8]) -> Result<Self, OprfError> {
        let mut r = Cursor::new(bytes, "BlindedRequest");
        r.tag(TAG_REQUEST)?;
        let n = r.count()?;
        let mut elements = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let chunk = r.take(32)?;
            elements.push(BlindedElement::deserialize(chunk).map_err(|_| r.err("invalid group element", at))?);
        }
        r.finish()?;
        Ok(Self { elements })
    }
}

impl EvaluatedResponse {
    /// Number of evaluated elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Payload: `0x02, u32 BE count, count × 32-byte element, 64-byte proof`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(69 + 32 * self.elements.len());
        out.push(TAG_RESPONSE);
        out.extend_from_slice(&(self.elements.len() as u32).to_be_bytes());
        for e in &self.elements {
            out.extend_from_slice(&e.serialize());
        }
        out.extend_from_slice(&self.proof.serialize());
        out
    }

    /// Strict decoding (valid points, canonical proof scalars, no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, OprfError> {
        let mut r = Cursor::new(bytes, "EvaluatedResponse");
        r.tag(TAG_RESPONSE)?;
        let n = r.count()?;
        let mut elements = Vec::with_capacity(n);
        for _ in 0..n {
            let at = r.pos;
            let chunk = r.take(32)?;
            elements.push(EvaluationElement::deserialize(chunk).map_err(|_| r.err("invalid group element", at))?);
        }
        let at = r.pos;
        let proof = Proof::deserialize(r.take(64)?).map_err(|_| r.err("invalid proof scalars", at))?;
        r.finish()?;
        Ok(Self { elements, proof })
    }
}
