//! The strict binary envelope every Secur-e-Health protocol message travels in.
//!
//! # Layout (version 1, all integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4  | magic `b"SEHW"` |
//! | 4  | 1  | version (= [`WIRE_VERSION`]) |
//! | 5  | 1  | protocol id ([`ProtocolId`]) |
//! | 6  | 1  | step: the message kind within the protocol (e.g. SecAgg round 0..=3) |
//! | 7  | 1  | reserved, must be 0 |
//! | 8  | 4  | sender [`PartyId`] |
//! | 12 | 4  | recipient [`PartyId`] ([`PartyId::COORDINATOR`] or [`PartyId::BROADCAST`] allowed) |
//! | 16 | 16 | study id ([`StudyId`]) |
//! | 32 | 4  | round number within the study |
//! | 36 | 8  | nonce / sequence number chosen by the sender, unique per session |
//! | 44 | 4  | payload length `L` (≤ [`MAX_PAYLOAD_LEN`]) |
//! | 48 | L  | payload |
//!
//! A [`SignedEnvelope`] is the envelope bytes followed by a 64-byte Ed25519
//! signature by the sender over `SIGNING_CONTEXT || header (48 bytes) ||
//! BLAKE3-256(payload)`. Pre-hashing the payload with BLAKE3 keeps signing and
//! verifying a 10^6-entry masked vector at ~2 ms instead of ~50 ms for Ed25519's
//! two SHA-512 passes; the header (with the payload length) is signed verbatim.
//!
//! Decoding is strict: exact lengths, no trailing bytes, known version and
//! protocol, reserved bytes zero, bounded payload. Errors name the field and
//! the *claimed* sender (read from its fixed offset when at least 12 bytes are
//! present). Accept a message only after [`SignedEnvelope::verify`] and a
//! [`SessionGuard`] check.
//!
//! Large payloads need not be copied: a sender writes the payload into a
//! [`PayloadBuf`] (header room in front) and [`PayloadBuf::seal`]s it in place;
//! a receiver checks it with [`SignedEnvelope::open_ref`], which borrows the
//! payload from the received bytes. Both produce and accept the same bytes as
//! [`SignedEnvelope::encode`] / [`SignedEnvelope::open`].
//!
//! [`Reader`] and [`Writer`] are the strict primitives payload codecs use.

use crate::error::WireError;
use ed25519_dalek::{Signature, Signer};
/// Ed25519 identity keys (re-exported from `ed25519-dalek` 2).
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Envelope magic bytes.
pub const MAGIC: [u8; 4] = *b"SEHW";
/// The only envelope version this build reads and writes.
pub const WIRE_VERSION: u8 = 1;
/// Size of the fixed envelope header in bytes.
pub const HEADER_LEN: usize = 48;
/// Maximum payload length accepted (128 MiB: a 10^7-entry `u64` vector fits).
pub const MAX_PAYLOAD_LEN: usize = 128 << 20;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Domain-separation prefix of the bytes an envelope signature covers.
pub const SIGNING_CONTEXT: &[u8] = b"secur-e-health wire v1 envelope\0";

/// A participant's id within a federation. `0` is the coordinator, `u32::MAX`
/// means "every participant"; sites use `1..u32::MAX`. Shamir share indices are
/// site ids (never 0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct PartyId(pub u32);

impl PartyId {
    /// The coordinator (server); holds no share.
    pub const COORDINATOR: PartyId = PartyId(0);
    /// Broadcast recipient.
    pub const BROADCAST: PartyId = PartyId(u32::MAX);

    /// True for ids a site may hold (`1..u32::MAX`).
    pub fn is_site(self) -> bool {
        self.0 != 0 && self.0 != u32::MAX
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PartyId::COORDINATOR => write!(f, "coordinator"),
            PartyId::BROADCAST => write!(f, "broadcast"),
            PartyId(id) => write!(f, "party {id}"),
        }
    }
}

/// A study's 128-bit identifier (random, chosen when the study is created).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct StudyId(pub [u8; 16]);

impl fmt::Display for StudyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Which protocol a message belongs to. Decoding rejects unknown ids.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(u8)]
pub enum ProtocolId {
    /// Study control messages (configure a round, results).
    Control = 1,
    /// SecAgg+ secure aggregation ([`crate::secagg`]).
    SecAgg = 2,
    /// Feldman verifiable secret sharing / distributed key generation.
    Dkg = 3,
    /// Threshold ElGamal decryption.
    ThresholdElGamal = 4,
    /// FROST threshold signatures (RFC 9591).
    Frost = 5,
    /// Private set intersection.
    Psi = 6,
    /// Oblivious PRF (keyed pseudonyms).
    Oprf = 7,
    /// Threshold BFV homomorphic encryption.
    ThresholdBfv = 8,
}

impl ProtocolId {
    /// All protocol ids, in wire order.
    pub const ALL: [ProtocolId; 8] = [
        ProtocolId::Control,
        ProtocolId::SecAgg,
        ProtocolId::Dkg,
        ProtocolId::ThresholdElGamal,
        ProtocolId::Frost,
        ProtocolId::Psi,
        ProtocolId::Oprf,
        ProtocolId::ThresholdBfv,
    ];

    /// Parse a protocol byte; `None` if unknown.
    pub fn from_u8(b: u8) -> Option<ProtocolId> {
        ProtocolId::ALL.into_iter().find(|p| *p as u8 == b)
    }
}

/// The session a message belongs to: a study and a round within it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId {
    /// Study id.
    pub study: StudyId,
    /// Round number within the study (e.g. a Newton iteration).
    pub round: u32,
}

impl SessionId {
    /// The 20 bytes `study || round` (big-endian), used as associated data and
    /// key-derivation context by the protocols.
    pub fn to_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[..16].copy_from_slice(&self.study.0);
        out[16..].copy_from_slice(&self.round.to_be_bytes());
        out
    }
}

/// A decoded (not yet authenticated) protocol message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    /// Protocol.
    pub protocol: ProtocolId,
    /// Message kind within the protocol.
    pub step: u8,
    /// Sender.
    pub sender: PartyId,
    /// Recipient ([`PartyId::COORDINATOR`], [`PartyId::BROADCAST`] or a site).
    pub recipient: PartyId,
    /// Study and round.
    pub session: SessionId,
    /// Sender-chosen nonce, unique per (sender, session).
    pub nonce: u64,
    /// Protocol payload (≤ [`MAX_PAYLOAD_LEN`] bytes).
    pub payload: Vec<u8>,
}

/// The fixed fields of an envelope: everything but the payload.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// Protocol.
    pub protocol: ProtocolId,
    /// Message kind within the protocol.
    pub step: u8,
    /// Sender.
    pub sender: PartyId,
    /// Recipient ([`PartyId::COORDINATOR`], [`PartyId::BROADCAST`] or a site).
    pub recipient: PartyId,
    /// Study and round.
    pub session: SessionId,
    /// Sender-chosen nonce, unique per (sender, session).
    pub nonce: u64,
}

impl Header {
    /// The 48-byte encoded header for a payload of `payload_len` bytes
    /// (truncated to 32 bits; callers check the bound first).
    fn bytes(&self, payload_len: usize) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = WIRE_VERSION;
        h[5] = self.protocol as u8;
        h[6] = self.step;
        h[7] = 0;
        h[8..12].copy_from_slice(&self.sender.0.to_be_bytes());
        h[12..16].copy_from_slice(&self.recipient.0.to_be_bytes());
        h[16..32].copy_from_slice(&self.session.study.0);
        h[32..36].copy_from_slice(&self.session.round.to_be_bytes());
        h[36..44].copy_from_slice(&self.nonce.to_be_bytes());
        h[44..48].copy_from_slice(&(payload_len as u32).to_be_bytes());
        h
    }

    /// The bytes an Ed25519 signature covers: context, header, BLAKE3(payload).
    fn signing_input(&self, payload: &[u8]) -> Result<Vec<u8>, WireError> {
        self.signing_input_hashed(payload.len(), &blake3::hash(payload))
    }

    /// [`Header::signing_input`] for a payload of `payload_len` bytes whose
    /// BLAKE3 hash is `hash` (the caller guarantees it is the payload's).
    fn signing_input_hashed(&self, payload_len: usize, hash: &blake3::Hash) -> Result<Vec<u8>, WireError> {
        check_payload_len(self.sender, payload_len)?;
        let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + HEADER_LEN + 32);
        msg.extend_from_slice(SIGNING_CONTEXT);
        msg.extend_from_slice(&self.bytes(payload_len));
        msg.extend_from_slice(hash.as_bytes());
        Ok(msg)
    }
}

fn check_payload_len(sender: PartyId, len: usize) -> Result<(), WireError> {
    if len > MAX_PAYLOAD_LEN {
        return Err(WireError::TooLarge {
            sender: Some(sender),
            field: "payload",
            len: len as u64,
            max: MAX_PAYLOAD_LEN as u64,
        });
    }
    Ok(())
}

/// An authenticated envelope whose payload borrows the received bytes
/// (from [`SignedEnvelope::open_ref`]): no copy of a large payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EnvelopeRef<'a> {
    /// The fixed fields.
    pub header: Header,
    /// The payload, a slice of the received bytes.
    pub payload: &'a [u8],
}

impl EnvelopeRef<'_> {
    /// An owned copy.
    pub fn to_envelope(&self) -> Envelope {
        Envelope::from_parts(self.header, self.payload.to_vec())
    }
}

/// A payload written directly into its final wire buffer: room for the
/// header is kept in front and for the signature behind, so
/// [`PayloadBuf::seal`] frames and signs it without moving the payload
/// (unlike [`SignedEnvelope::into_bytes`], which shifts it by 48 bytes).
///
/// A payload built front to back with [`PayloadBuf::extend_from_slice`] is
/// also hashed as it grows (BLAKE3, every whole [`PayloadBuf::HASH_STRIDE`]
/// bytes, while they are still in cache), so `seal` only hashes the tail.
/// The running hash covers exactly the bytes appended so far: any mutable
/// access ([`PayloadBuf::as_mut_slice`]) discards it, and `seal` then hashes
/// the whole payload.
#[derive(Clone)]
pub struct PayloadBuf {
    /// `HEADER_LEN` reserved bytes, then the payload.
    buf: Vec<u8>,
    /// BLAKE3 state over `payload[..hashed]`.
    hasher: blake3::Hasher,
    hashed: usize,
}

impl PartialEq for PayloadBuf {
    /// Equal payloads (the hashing progress is not compared).
    fn eq(&self, other: &PayloadBuf) -> bool {
        self.buf == other.buf
    }
}

impl Eq for PayloadBuf {}

impl fmt::Debug for PayloadBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadBuf").field("len", &self.len()).finish_non_exhaustive()
    }
}

impl PayloadBuf {
    /// Bytes hashed at a time while a payload is appended: 16 BLAKE3 chunks,
    /// one full batch of the widest (AVX-512) hashing code path.
    pub const HASH_STRIDE: usize = 16 * 1024;

    fn from_vec(buf: Vec<u8>) -> PayloadBuf {
        PayloadBuf { buf, hasher: blake3::Hasher::new(), hashed: 0 }
    }

    /// A zeroed payload of `len` bytes. The allocation (header + payload +
    /// signature) is zero-initialised, so its pages are first touched when
    /// the payload is written.
    pub fn zeroed(len: usize) -> PayloadBuf {
        let mut buf = vec![0u8; HEADER_LEN + len + SIGNATURE_LEN];
        buf.truncate(HEADER_LEN + len);
        PayloadBuf::from_vec(buf)
    }

    /// An empty payload with room for `capacity` bytes (plus header and
    /// signature), to be filled with [`PayloadBuf::extend_from_slice`]; no
    /// byte of the payload is written twice.
    pub fn with_capacity(capacity: usize) -> PayloadBuf {
        let mut buf = Vec::with_capacity(HEADER_LEN + capacity + SIGNATURE_LEN);
        buf.resize(HEADER_LEN, 0);
        PayloadBuf::from_vec(buf)
    }

    /// Append `bytes` to the payload, hashing every whole
    /// [`PayloadBuf::HASH_STRIDE`] bytes of it now complete.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let payload = self.buf.get(HEADER_LEN..).unwrap_or_default();
        let ready = (payload.len() - self.hashed) / Self::HASH_STRIDE * Self::HASH_STRIDE;
        if ready > 0 {
            self.hasher.update(payload.get(self.hashed..self.hashed + ready).unwrap_or_default());
            self.hashed += ready;
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(HEADER_LEN)
    }

    /// True if the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(HEADER_LEN..).unwrap_or_default()
    }

    /// The payload, writable. Discards the running hash (see the type's docs).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.hasher.reset();
        self.hashed = 0;
        self.buf.get_mut(HEADER_LEN..).unwrap_or_default()
    }

    /// BLAKE3 of the payload: the running hash finished with the bytes not
    /// yet hashed.
    fn payload_hash(&mut self) -> blake3::Hash {
        let payload = self.buf.get(HEADER_LEN..).unwrap_or_default();
        self.hasher.update(payload.get(self.hashed..).unwrap_or_default());
        self.hashed = payload.len();
        self.hasher.finalize()
    }

    /// Frame and sign in place: the result is byte for byte
    /// `Envelope::from_parts(*header, payload).sign(key)?.encode()?`.
    ///
    /// Precondition: `key` is the identity key of `header.sender`. Errors
    /// with [`WireError::TooLarge`] if the payload exceeds [`MAX_PAYLOAD_LEN`].
    pub fn seal(mut self, header: &Header, key: &SigningKey) -> Result<Vec<u8>, WireError> {
        let len = self.len();
        check_payload_len(header.sender, len)?;
        let hash = self.payload_hash();
        let signature = key.sign(&header.signing_input_hashed(len, &hash)?);
        let h = header.bytes(len);
        let mut buf = self.buf;
        if let Some(room) = buf.get_mut(..HEADER_LEN) {
            room.copy_from_slice(&h);
        }
        buf.extend_from_slice(&signature.to_bytes());
        Ok(buf)
    }
}

impl Envelope {
    /// Encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Encode to the version-1 layout.
    ///
    /// Precondition: `payload.len() <= MAX_PAYLOAD_LEN` (checked; a longer
    /// payload is an API misuse reported as [`WireError::TooLarge`]).
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.encoded_len() + SIGNATURE_LEN);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        check_payload_len(self.sender, self.payload.len())?;
        out.extend_from_slice(&self.header_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    /// The fixed fields (everything but the payload).
    pub fn header(&self) -> Header {
        Header {
            protocol: self.protocol,
            step: self.step,
            sender: self.sender,
            recipient: self.recipient,
            session: self.session,
            nonce: self.nonce,
        }
    }

    /// An envelope from its fixed fields and a payload.
    pub fn from_parts(header: Header, payload: Vec<u8>) -> Envelope {
        let Header { protocol, step, sender, recipient, session, nonce } = header;
        Envelope { protocol, step, sender, recipient, session, nonce, payload }
    }

    /// The 48-byte header (payload length truncated to 32 bits; callers check
    /// the bound first).
    fn header_bytes(&self) -> [u8; HEADER_LEN] {
        self.header().bytes(self.payload.len())
    }

    /// The bytes an Ed25519 signature covers: context, header, BLAKE3(payload).
    fn signing_input(&self) -> Result<Vec<u8>, WireError> {
        self.header().signing_input(&self.payload)
    }

    /// Strictly decode exactly one envelope occupying all of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, WireError> {
        let mut r = Reader::new(bytes, claimed_sender(bytes));
        let env = Self::decode_from(&mut r, true)?;
        r.finish("envelope")?;
        Ok(env)
    }

    /// Decode header and payload; with `copy_payload == false` the payload is
    /// checked for length but left empty (the caller moves it in).
    fn decode_from(r: &mut Reader<'_>, copy_payload: bool) -> Result<Envelope, WireError> {
        let sender = r.sender;
        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(WireError::BadMagic { found: magic });
        }
        let version = r.u8("version")?;
        if version != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion { sender, version });
        }
        let id = r.u8("protocol")?;
        let protocol = ProtocolId::from_u8(id).ok_or(WireError::UnknownProtocol { sender, id })?;
        let step = r.u8("step")?;
        let reserved = r.u8("reserved")?;
        if reserved != 0 {
            return Err(WireError::ReservedNonZero { sender, field: "reserved", value: reserved.into() });
        }
        let sender_id = PartyId(r.u32("sender")?);
        let recipient = PartyId(r.u32("recipient")?);
        let study = StudyId(r.array("study")?);
        let round = r.u32("round")?;
        let nonce = r.u64("nonce")?;
        let payload = r.bytes_u32("payload", MAX_PAYLOAD_LEN)?;
        let payload = if copy_payload { payload.to_vec() } else { Vec::new() };
        Ok(Envelope {
            protocol,
            step,
            sender: sender_id,
            recipient,
            session: SessionId { study, round },
            nonce,
            payload,
        })
    }

    /// Sign with the sender's Ed25519 key.
    ///
    /// Precondition: `key` is the identity key registered for `self.sender`
    /// (otherwise receivers reject the message with [`WireError::BadSignature`]).
    pub fn sign(self, key: &SigningKey) -> Result<SignedEnvelope, WireError> {
        let signature = key.sign(&self.signing_input()?);
        Ok(SignedEnvelope { envelope: self, signature: signature.to_bytes() })
    }
}

/// The claimed sender at its fixed offset, if the buffer is long enough.
fn claimed_sender(bytes: &[u8]) -> Option<PartyId> {
    let b: [u8; 4] = bytes.get(8..12)?.try_into().ok()?;
    Some(PartyId(u32::from_be_bytes(b)))
}

/// Where verifying keys of the federation's members are looked up.
pub trait Roster {
    /// The Ed25519 identity key of `party`, or `None` if it is not a member.
    fn verifying_key(&self, party: PartyId) -> Option<&VerifyingKey>;
}

impl Roster for BTreeMap<PartyId, VerifyingKey> {
    fn verifying_key(&self, party: PartyId) -> Option<&VerifyingKey> {
        self.get(&party)
    }
}

impl Roster for HashMap<PartyId, VerifyingKey> {
    fn verifying_key(&self, party: PartyId) -> Option<&VerifyingKey> {
        self.get(&party)
    }
}

/// An envelope plus its sender's Ed25519 signature. Obtained from
/// [`Envelope::sign`] or [`SignedEnvelope::decode`]; read its content only
/// through [`SignedEnvelope::verify`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedEnvelope {
    envelope: Envelope,
    signature: [u8; SIGNATURE_LEN],
}

impl SignedEnvelope {
    /// Encode as envelope bytes followed by the 64-byte signature.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::with_capacity(self.envelope.encoded_len() + SIGNATURE_LEN);
        self.envelope.encode_into(&mut out)?;
        out.extend_from_slice(&self.signature);
        Ok(out)
    }

    /// Strictly decode (without verifying the signature).
    pub fn decode(bytes: &[u8]) -> Result<SignedEnvelope, WireError> {
        let mut r = Reader::new(bytes, claimed_sender(bytes));
        let envelope = Envelope::decode_from(&mut r, true)?;
        let signature: [u8; SIGNATURE_LEN] = r.array("signature")?;
        r.finish("signed envelope")?;
        Ok(SignedEnvelope { envelope, signature })
    }

    /// [`SignedEnvelope::decode`] taking ownership of the buffer, whose
    /// allocation becomes the payload (no second allocation; the payload is
    /// shifted 48 bytes down in place). To read a large payload without moving
    /// it, use [`SignedEnvelope::open_ref`].
    pub fn decode_vec(mut bytes: Vec<u8>) -> Result<SignedEnvelope, WireError> {
        let (mut envelope, signature) = {
            let mut r = Reader::new(&bytes, claimed_sender(&bytes));
            let envelope = Envelope::decode_from(&mut r, false)?;
            let signature: [u8; SIGNATURE_LEN] = r.array("signature")?;
            r.finish("signed envelope")?;
            (envelope, signature)
        };
        // The checks above guarantee HEADER_LEN + payload + SIGNATURE_LEN bytes.
        bytes.truncate(bytes.len().saturating_sub(SIGNATURE_LEN));
        bytes.drain(..HEADER_LEN.min(bytes.len()));
        envelope.payload = bytes;
        Ok(SignedEnvelope { envelope, signature })
    }

    /// [`SignedEnvelope::encode`] reusing the payload's allocation (the payload
    /// is shifted 48 bytes up in place; [`PayloadBuf::seal`] avoids even that).
    pub fn into_bytes(self) -> Result<Vec<u8>, WireError> {
        check_payload_len(self.envelope.sender, self.envelope.payload.len())?;
        let header = self.envelope.header_bytes();
        let mut v = self.envelope.payload;
        v.reserve(HEADER_LEN + SIGNATURE_LEN);
        v.splice(0..0, header);
        v.extend_from_slice(&self.signature);
        Ok(v)
    }

    /// Decode (taking the buffer), verify and return the authenticated envelope.
    pub fn open_vec<R: Roster + ?Sized>(bytes: Vec<u8>, roster: &R) -> Result<Envelope, WireError> {
        let signed = SignedEnvelope::decode_vec(bytes)?;
        signed.verify(roster)?;
        Ok(signed.envelope)
    }

    /// Strictly decode `bytes` (as [`SignedEnvelope::decode`]), verify the
    /// signature under the roster key of the claimed sender, and return the
    /// authenticated envelope with its payload borrowed from `bytes`.
    pub fn open_ref<'a, R: Roster + ?Sized>(bytes: &'a [u8], roster: &R) -> Result<EnvelopeRef<'a>, WireError> {
        let mut r = Reader::new(bytes, claimed_sender(bytes));
        let envelope = Envelope::decode_from(&mut r, false)?;
        let signature: [u8; SIGNATURE_LEN] = r.array("signature")?;
        r.finish("signed envelope")?;
        // The checks above guarantee HEADER_LEN + payload + SIGNATURE_LEN bytes.
        let payload = bytes.get(HEADER_LEN..bytes.len().saturating_sub(SIGNATURE_LEN)).unwrap_or_default();
        let header = envelope.header();
        let sender = header.sender;
        let key = roster.verifying_key(sender).ok_or(WireError::UnknownSender { sender })?;
        let sig = Signature::from_bytes(&signature);
        key.verify_strict(&header.signing_input(payload)?, &sig).map_err(|_| WireError::BadSignature { sender })?;
        Ok(EnvelopeRef { header, payload })
    }

    /// The claimed sender (not yet authenticated).
    pub fn claimed_sender(&self) -> PartyId {
        self.envelope.sender
    }

    /// The envelope without checking its signature: for routing and logging
    /// only, never for acting on the payload.
    pub fn unverified(&self) -> &Envelope {
        &self.envelope
    }

    /// Check the signature under the roster key of the claimed sender and
    /// return the authenticated envelope. Uses strict Ed25519 verification
    /// (rejects small-order keys and non-canonical signatures).
    pub fn verify<R: Roster + ?Sized>(&self, roster: &R) -> Result<&Envelope, WireError> {
        let sender = self.envelope.sender;
        let key = roster.verifying_key(sender).ok_or(WireError::UnknownSender { sender })?;
        self.verify_with(key)
    }

    /// Check the signature under an explicit key.
    pub fn verify_with(&self, key: &VerifyingKey) -> Result<&Envelope, WireError> {
        let sender = self.envelope.sender;
        let msg = self.envelope.signing_input()?;
        let sig = Signature::from_bytes(&self.signature);
        key.verify_strict(&msg, &sig).map_err(|_| WireError::BadSignature { sender })?;
        Ok(&self.envelope)
    }

    /// Decode, verify and return the authenticated envelope in one step.
    pub fn open<R: Roster + ?Sized>(bytes: &[u8], roster: &R) -> Result<Envelope, WireError> {
        let signed = SignedEnvelope::decode(bytes)?;
        signed.verify(roster)?;
        Ok(signed.envelope)
    }
}

/// Rejects replays and messages from another study or round.
///
/// Tracks the `(sender, nonce)` pairs seen in the current session. A message is
/// accepted at most once; one from another study or round is rejected naming
/// its sender. Memory is bounded by `max_per_sender` messages per sender.
/// Call [`SessionGuard::check`] only on authenticated envelopes (after
/// [`SignedEnvelope::verify`]), otherwise an attacker could burn a victim's nonces.
#[derive(Debug, Clone)]
pub struct SessionGuard {
    session: SessionId,
    max_per_sender: usize,
    seen: HashMap<PartyId, HashSet<u64>>,
}

impl SessionGuard {
    /// A guard for `session`, allowing each sender up to `max_per_sender` messages.
    pub fn new(session: SessionId, max_per_sender: usize) -> SessionGuard {
        SessionGuard { session, max_per_sender, seen: HashMap::new() }
    }

    /// The session currently accepted.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// Move to another round of the same study; messages of any other round
    /// (including the previous one) are rejected from now on.
    pub fn advance_round(&mut self, round: u32) {
        self.session.round = round;
        self.seen.clear();
    }

    /// Accept `env` once: checks study, round and that `(sender, nonce)` is new.
    pub fn check(&mut self, env: &Envelope) -> Result<(), WireError> {
        self.check_header(&env.header())
    }

    /// [`SessionGuard::check`] on the fixed fields of an authenticated
    /// envelope (e.g. [`EnvelopeRef::header`]).
    pub fn check_header(&mut self, env: &Header) -> Result<(), WireError> {
        let sender = env.sender;
        if env.session.study != self.session.study {
            return Err(WireError::WrongStudy { sender, expected: self.session.study, got: env.session.study });
        }
        if env.session.round != self.session.round {
            return Err(WireError::WrongRound { sender, expected: self.session.round, got: env.session.round });
        }
        let seen = self.seen.entry(sender).or_default();
        if seen.contains(&env.nonce) {
            return Err(WireError::Replay { sender, nonce: env.nonce });
        }
        if seen.len() >= self.max_per_sender {
            return Err(WireError::TooManyMessages { sender, max: self.max_per_sender });
        }
        seen.insert(env.nonce);
        Ok(())
    }

    /// [`SessionGuard::check`] plus: the message must be `protocol` step `step`.
    pub fn check_step(&mut self, env: &Envelope, protocol: ProtocolId, step: u8) -> Result<(), WireError> {
        if env.protocol != protocol || env.step != step {
            return Err(WireError::WrongStep {
                sender: env.sender,
                expected: protocol,
                expected_step: step,
                got: env.protocol,
                got_step: env.step,
            });
        }
        self.check(env)
    }
}

/// Strict reader over a byte slice: every read names its field, lengths are
/// bounded, and [`Reader::finish`] rejects trailing bytes.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    sender: Option<PartyId>,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`; `sender` (the claimed author) is reported in errors.
    pub fn new(buf: &'a [u8], sender: Option<PartyId>) -> Reader<'a> {
        Reader { buf, sender }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Take exactly `n` bytes.
    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated { sender: self.sender, field, needed: n, available: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Read a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    /// Read one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Read a big-endian `u16`.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Read a big-endian `u32`.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Read a big-endian `u64`.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Read a `u32` count and check it is at most `max`.
    pub fn count_u32(&mut self, field: &'static str, max: usize) -> Result<usize, WireError> {
        let n = self.u32(field)?;
        if n as u64 > max as u64 {
            return Err(WireError::TooLarge { sender: self.sender, field, len: n.into(), max: max as u64 });
        }
        Ok(n as usize)
    }

    /// Read a `u32` length prefix (at most `max`) and that many bytes.
    pub fn bytes_u32(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], WireError> {
        let n = self.count_u32(field, max)?;
        self.take(field, n)
    }

    /// Error unless every byte was consumed; `after` names what was decoded.
    pub fn finish(self, after: &'static str) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingBytes { sender: self.sender, after, extra: self.buf.len() })
        }
    }

    /// An [`WireError::InvalidField`] naming this reader's claimed sender.
    pub fn invalid(&self, field: &'static str, reason: &'static str) -> WireError {
        WireError::InvalidField { sender: self.sender, field, reason }
    }
}

/// Big-endian writer matching [`Reader`].
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer with `capacity` bytes reserved.
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer { buf: Vec::with_capacity(capacity) }
    }
    /// Append raw bytes (fixed-size field).
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
    /// Append one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Append a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Append a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Append a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }
    /// Append a `u32` length prefix and the bytes.
    ///
    /// Precondition: `b.len() <= u32::MAX` (callers bound their fields far below).
    pub fn bytes_u32(&mut self, b: &[u8]) -> &mut Self {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.raw(b)
    }
    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}
