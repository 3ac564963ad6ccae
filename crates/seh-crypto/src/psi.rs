//! Diffie–Hellman private set intersection on ristretto255.
//!
//! Two parties hold sets of identifiers (normally keyed pseudonyms, see
//! [`crate::pseudonym`]). The **receiver** learns which of *its own* positions
//! are in the intersection; the **sender** learns only the size of the
//! receiver's set. Each side has an ephemeral secret exponent.
//!
//! ```text
//! receiver (key a, set X)                     sender (key b, set Y)
//!  A_i = H(x_i)^a, shuffled      ── PsiRequest ─▶
//!                                             AB_i = A_i^b   (request order kept)
//!                                             B_j  = H(y_j)^b, shuffled
//!                                ◀─ PsiResponse ─
//!  BA_j = B_j^a; i ∈ X∩Y  ⇔  AB_{π(i)} ∈ {BA_j}
//! ```
//!
//! `H` hashes an identifier to the group with SHA-512 and the ristretto255
//! Elligator map, under the domain tag [`HASH_TO_GROUP_DST`] and a
//! caller-chosen *context* (the study / session id) so that blinded values
//! from one run cannot be matched against another run's.
//!
//! Security (semi-honest, random oracle, DDH): the sender sees a shuffled list
//! of pseudorandom group elements; the receiver sees the sender's elements
//! shuffled, so positions leak nothing about input order. A malicious sender
//! can make the receiver compute a wrong intersection (no proof of correct
//! exponentiation), which is the usual DH-PSI limitation and is recorded in
//! `docs/CRYPTO.md`.
//!
//! Sans-IO and single-threaded. The expensive pure steps
//! ([`PsiSecret::blind_ids`], [`PsiSecret::reblind`]) take `&self` on a slice so a
//! driver may run them on chunks in parallel and concatenate the results in
//! order; the `*_precomputed` entry points then accept those results.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand::seq::SliceRandom;
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use std::collections::HashSet;
use std::fmt;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain-separation tag for hashing identifiers to the group.
pub const HASH_TO_GROUP_DST: &[u8] = b"SEH-PSI-v1/ristretto255-SHA512/hash-to-group";

/// Upper bound on the number of elements in one PSI message (2^24 ≈ 16.7 M).
pub const MAX_SET_SIZE: usize = 1 << 24;

/// Errors from the PSI protocol. Peer-caused errors say which message and
/// position was bad; none contains an identifier or a key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PsiError {
    /// An element received from the peer is not a canonical ristretto255
    /// encoding or is the identity.
    #[error("{message}: element {index} is not a valid non-identity ristretto255 point")]
    InvalidElement {
        /// Which message / list held it.
        message: &'static str,
        /// Position in that list.
        index: usize,
    },
    /// The sender's reply does not have one double-blinded element per request element.
    #[error("response has {got} double-blinded elements, the request had {expected}")]
    LengthMismatch {
        /// Elements sent in the request.
        expected: usize,
        /// Elements returned.
        got: usize,
    },
    /// A set or message is larger than [`MAX_SET_SIZE`].
    #[error("{what} has {len} elements, more than the limit {max}")]
    TooLarge {
        /// Which set or message.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A secret key was zero or not a canonical scalar.
    #[error("invalid PSI secret key encoding")]
    InvalidKey,
    /// Wire decoding failed.
    #[error("malformed {message}: {reason} at byte {offset}")]
    Malformed {
        /// Which message.
        message: &'static str,
        /// What is wrong.
        reason: &'static str,
        /// Byte offset in the payload.
        offset: usize,
    },
}

/// A blinded (or double-blinded) element as it travels on the wire: the
/// 32-byte encoding of a ristretto255 point.
///
/// Decoding a message only checks the framing; the point itself is checked
/// when it is exponentiated ([`PsiSecret::reblind`]). Double-blinded values are
/// only compared byte-wise with canonical encodings the receiver produced
/// itself, so an invalid encoding there can never match.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlindedElement(pub [u8; 32]);

impl fmt::Debug for BlindedElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlindedElement(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// One party's ephemeral PSI exponent, bound to a session context.
///
/// Zeroized on drop; `Debug` prints `<redacted>`. Use a fresh key per run: the
/// same key in two runs lets the peer link the runs' sets.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PsiSecret {
    key: Scalar,
    /// `key / 2`, used with batch doubling-compression.
    half_key: Scalar,
    #[zeroize(skip)]
    context: Vec<u8>,
}

impl fmt::Debug for PsiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PsiSecret(<redacted>)")
    }
}

impl PsiSecret {
    /// A fresh random non-zero key for the session `context` (both parties
    /// must pass the same context, e.g. the study id and round).
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R, context: &[u8]) -> Self {
        loop {
            let key = Scalar::random(rng);
            if key != Scalar::ZERO {
                return Self::from_scalar(key, context);
            }
        }
    }

    /// A key from its canonical little-endian scalar encoding (known-answer
    /// tests, or a key held in a secret store). Rejects zero and
    /// non-canonical encodings.
    pub fn from_bytes(bytes: [u8; 32], context: &[u8]) -> Result<Self, PsiError> {
        let key: Option<Scalar> = Scalar::from_canonical_bytes(bytes).into();
        match key {
            Some(k) if k != Scalar::ZERO => Ok(Self::from_scalar(k, context)),
            _ => Err(PsiError::InvalidKey),
        }
    }

    fn from_scalar(key: Scalar, context: &[u8]) -> Self {
        let half_key = key * Scalar::from(2u8).invert();
        Self { key, half_key, context: context.to_vec() }
    }

    /// The session context this key is bound to.
    pub fn context(&self) -> &[u8] {
        &self.context
    }

    /// `H(id)^k` for each identifier, in input order (no shuffle; the
    /// protocol entry points shuffle). Pure: may run on chunks in parallel.
    pub fn blind_ids<I: AsRef<[u8]>>(&self, ids: &[I]) -> Vec<BlindedElement> {
        let prefix = hash_prefix(&self.context);
        let halves: Vec<RistrettoPoint> =
            ids.iter().map(|id| hash_with_prefix(&prefix, id.as_ref()) * self.half_key).collect();
        compress_doubled(&halves)
    }

    /// `E^k` for each received element, in input order. Pure: may run on
    /// chunks in parallel. `message` names the list in errors; `offset` is
    /// added to reported indices (the chunk's start).
    ///
    /// # Errors
    /// [`PsiError::InvalidElement`] for a non-canonical or identity element.
    pub fn reblind(
        &self,
        elements: &[BlindedElement],
        message: &'static str,
        offset: usize,
    ) -> Result<Vec<BlindedElement>, PsiError> {
        let mut halves = Vec::with_capacity(elements.len());
        for (i, e) in elements.iter().enumerate() {
            let p = CompressedRistretto(e.0)
                .decompress()
                .filter(|p| *p != RistrettoPoint::default())
                .ok_or(PsiError::InvalidElement { message, index: offset + i })?;
            halves.push(p * self.half_key);
        }
        Ok(compress_doubled(&halves))
    }
}

/// Hash one identifier to the group under `context` (exposed for tests and
/// for parties that want to precompute).
pub fn hash_to_group(context: &[u8], id: &[u8]) -> RistrettoPoint {
    hash_with_prefix(&hash_prefix(context), id)
}

fn hash_prefix(context: &[u8]) -> Sha512 {
    let mut h = Sha512::new();
    h.update((HASH_TO_GROUP_DST.len() as u64).to_be_bytes());
    h.update(HASH_TO_GROUP_DST);
    h.update((context.len() as u64).to_be_bytes());
    h.update(context);
    h
}

fn hash_with_prefix(prefix: &Sha512, id: &[u8]) -> RistrettoPoint {
    let mut h = prefix.clone();
    h.update((id.len() as u64).to_be_bytes());
    h.update(id);
    RistrettoPoint::from_hash(h)
}

/// Compress `2·P` for each `P` with one shared field inversion.
fn compress_doubled(halves: &[RistrettoPoint]) -> Vec<BlindedElement> {
    RistrettoPoint::double_and_compress_batch(halves).into_iter().map(|c| BlindedElement(c.to_bytes())).collect()
}

fn check_size(what: &'static str, len: usize) -> Result<(), PsiError> {
    if len > MAX_SET_SIZE {
        return Err(PsiError::TooLarge { what, len, max: MAX_SET_SIZE });
    }
    Ok(())
}

/// Receiver → sender: the receiver's blinded set, shuffled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsiRequest {
    /// `H(x)^a` for every receiver identifier, in a uniformly random order.
    pub elements: Vec<BlindedElement>,
}

/// Sender → receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsiResponse {
    /// `(H(x)^a)^b` for each request element, **in request order**.
    pub double_blinded: Vec<BlindedElement>,
    /// `H(y)^b` for every sender identifier, in a uniformly random order.
    pub sender_elements: Vec<BlindedElement>,
}

/// The receiver's state after sending its request; consumed by
/// [`ReceiverAwaitingResponse::finish`]. Holds the key and the secret
/// shuffle; `Debug` is redacted.
pub struct ReceiverAwaitingResponse {
    secret: PsiSecret,
    /// `origin[pos]` = input index of the element sent at `pos`.
    origin: Vec<u32>,
}

impl fmt::Debug for ReceiverAwaitingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReceiverAwaitingResponse {{ set_size: {}, <redacted> }}", self.origin.len())
    }
}

/// What the receiver learns: the indices (into its own input list) of the
/// identifiers that the sender also holds, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intersection {
    /// Ascending input indices of the receiver's identifiers in the intersection.
    pub indices: Vec<usize>,
}

/// Receiver, step 1: blind and shuffle `ids`.
///
/// Returns the state to keep and the [`PsiRequest`] to send.
///
/// # Errors
/// [`PsiError::TooLarge`] if `ids` has more than [`MAX_SET_SIZE`] entries.
pub fn receiver_start<I: AsRef<[u8]>, R: RngCore + CryptoRng>(
    secret: PsiSecret,
    ids: &[I],
    rng: &mut R,
) -> Result<(ReceiverAwaitingResponse, PsiRequest), PsiError> {
    check_size("receiver set", ids.len())?;
    let blinded = secret.blind_ids(ids);
    receiver_start_precomputed(secret, blinded, rng)
}

/// Receiver, step 1, with `blinded = secret.blind_ids(ids)` computed by the
/// caller (e.g. in parallel chunks, concatenated in input order).
pub fn receiver_start_precomputed<R: RngCore + CryptoRng>(
    secret: PsiSecret,
    blinded: Vec<BlindedElement>,
    rng: &mut R,
) -> Result<(ReceiverAwaitingResponse, PsiRequest), PsiError> {
    check_size("receiver set", blinded.len())?;
    let mut order: Vec<u32> = (0..blinded.len() as u32).collect();
    order.shuffle(rng);
    let elements = order.iter().map(|&i| blinded[i as usize]).collect();
    Ok((ReceiverAwaitingResponse { secret, origin: order }, PsiRequest { elements }))
}

/// Sender: answer a request with the double-blinded request and the
/// sender's own shuffled blinded set. The sender learns nothing but
/// `request.elements.len()`.
///
/// # Errors
/// [`PsiError::InvalidElement`] if the request holds an invalid point;
/// [`PsiError::TooLarge`] for oversized sets.
pub fn sender_respond<I: AsRef<[u8]>, R: RngCore + CryptoRng>(
    secret: &PsiSecret,
    ids: &[I],
    request: &PsiRequest,
    rng: &mut R,
) -> Result<PsiResponse, PsiError> {
    check_size("sender set", ids.len())?;
    check_size("request", request.elements.len())?;
    let own = secret.blind_ids(ids);
    let double_blinded = secret.reblind(&request.elements, "request", 0)?;
    Ok(sender_respond_precomputed(own, double_blinded, rng))
}

/// Sender, with `own = secret.blind_ids(ids)` and
/// `double_blinded = secret.reblind(&request.elements, ..)` computed by the
/// caller. Shuffles `own`.
pub fn sender_respond_precomputed<R: RngCore + CryptoRng>(
    mut own: Vec<BlindedElement>,
    double_blinded: Vec<BlindedElement>,
    rng: &mut R,
) -> PsiResponse {
    own.shuffle(rng);
    PsiResponse { double_blinded, sender_elements: own }
}

impl ReceiverAwaitingResponse {
    /// Number of identifiers the receiver sent.
    pub fn set_size(&self) -> usize {
        self.origin.len()
    }

    /// The receiver's key, for computing [`PsiSecret::reblind`] of the
    /// sender's elements in parallel before [`Self::finish_precomputed`].
    pub fn secret(&self) -> &PsiSecret {
        &self.secret
    }

    /// Receiver, step 2: compute the intersection.
    ///
    /// # Errors
    /// [`PsiError::LengthMismatch`] if the response does not answer every
    /// request element; [`PsiError::InvalidElement`] for a bad sender element.
    pub fn finish(self, response: &PsiResponse) -> Result<Intersection, PsiError> {
        check_size("sender set", response.sender_elements.len())?;
        let sender_double = self.secret.reblind(&response.sender_elements, "response.sender_elements", 0)?;
        self.finish_precomputed(&response.double_blinded, &sender_double)
    }

    /// Receiver, step 2, with `sender_double = secret().reblind(&response.sender_elements, ..)`
    /// computed by the caller.
    pub fn finish_precomputed(
        self,
        double_blinded: &[BlindedElement],
        sender_double: &[BlindedElement],
    ) -> Result<Intersection, PsiError> {
        if double_blinded.len() != self.origin.len() {
            return Err(PsiError::LengthMismatch { expected: self.origin.len(), got: double_blinded.len() });
        }
        let theirs: HashSet<&BlindedElement> = sender_double.iter().collect();
        let mut indices: Vec<usize> = double_blinded
            .iter()
            .zip(&self.origin)
            .filter(|(e, _)| theirs.contains(e))
            .map(|(_, &orig)| orig as usize)
            .collect();
        indices.sort_unstable();
        Ok(Intersection { indices })
    }
}

// ---------------------------------------------------------------- wire

/// Payload encoding: `u8 tag, u32 BE count, count × 32 bytes` per list.
const TAG_REQUEST: u8 = 0x01;
const TAG_RESPONSE: u8 = 0x02;

fn put_list(out: &mut Vec<u8>, list: &[BlindedElement]) {
    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
    for e in list {
        out.extend_from_slice(&e.0);
    }
}

fn get_list(bytes: &[u8], pos: &mut usize, message: &'static str) -> Result<Vec<BlindedElement>, PsiError> {
    let malformed = |reason, offset| PsiError::Malformed { message, reason, offset };
    let len_bytes = bytes.get(*pos..*pos + 4).ok_or(malformed("truncated count", *pos))?;
    let mut n = [0u8; 4];
    n.copy_from_slice(len_bytes);
    let count = u32::from_be_bytes(n) as usize;
    if count > MAX_SET_SIZE {
        return Err(malformed("count exceeds MAX_SET_SIZE", *pos));
    }
    *pos += 4;
    let need = count * 32;
    let body = bytes.get(*pos..*pos + need).ok_or(malformed("truncated element list", *pos))?;
    *pos += need;
    Ok(body
        .chunks_exact(32)
        .map(|c| {
            let mut e = [0u8; 32];
            e.copy_from_slice(c);
            BlindedElement(e)
        })
        .collect())
}

fn expect_tag(bytes: &[u8], tag: u8, message: &'static str) -> Result<(), PsiError> {
    match bytes.first() {
        Some(&t) if t == tag => Ok(()),
        Some(_) => Err(PsiError::Malformed { message, reason: "wrong message tag", offset: 0 }),
        None => Err(PsiError::Malformed { message, reason: "empty payload", offset: 0 }),
    }
}

fn expect_end(bytes: &[u8], pos: usize, message: &'static str) -> Result<(), PsiError> {
    if pos != bytes.len() {
        return Err(PsiError::Malformed { message, reason: "trailing bytes", offset: pos });
    }
    Ok(())
}

impl PsiRequest {
    /// Encode as an envelope payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + 32 * self.elements.len());
        out.push(TAG_REQUEST);
        put_list(&mut out, &self.elements);
        out
    }

    /// Strictly decode a payload produced by [`Self::encode`] (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, PsiError> {
        expect_tag(bytes, TAG_REQUEST, "PsiRequest")?;
        let mut pos = 1;
        let elements = get_list(bytes, &mut pos, "PsiRequest")?;
        expect_end(bytes, pos, "PsiRequest")?;
        Ok(Self { elements })
    }
}

impl PsiResponse {
    /// Encode as an envelope payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + 32 * (self.double_blinded.len() + self.sender_elements.len()));
        out.push(TAG_RESPONSE);
        put_list(&mut out, &self.double_blinded);
        put_list(&mut out, &self.sender_elements);
        out
    }

    /// Strictly decode a payload produced by [`Self::encode`] (no trailing bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, PsiError> {
        expect_tag(bytes, TAG_RESPONSE, "PsiResponse")?;
        let mut pos = 1;
        let double_blinded = get_list(bytes, &mut pos, "PsiResponse")?;
        let sender_elements = get_list(bytes, &mut pos, "PsiResponse")?;
        expect_end(bytes, pos, "PsiResponse")?;
        Ok(Self { double_blinded, sender_elements })
    }
}
