//! Typed errors for the wire envelope, fixed-point encoding, verifiable secret
//! sharing and secure aggregation.
//!
//! Errors are split by fault, as in rustls: a peer sent something malformed
//! ([`WireError`] decoding variants), a peer misbehaved (a share that fails its
//! dealer's commitments, a bad signature, a replay), or the caller misused the
//! API (bad parameters). Every error caused by a peer names the peer
//! ([`PartyId`]) so the coordinator can exclude it. No error carries a secret
//! or an input value.

use crate::wire::{PartyId, ProtocolId, StudyId};
use thiserror::Error;

/// Errors from decoding, verifying or sequencing a wire [`Envelope`](crate::wire::Envelope).
///
/// `sender` fields hold the sender id *claimed* by the message header when it
/// could be read (before the signature was checked it is only a claim).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before `field` could be read.
    #[error(
        "truncated message (claimed sender {sender:?}): field `{field}` needs {needed} more bytes, {available} left"
    )]
    Truncated {
        /// Claimed sender, if the header got that far.
        sender: Option<PartyId>,
        /// Name of the field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The first four bytes are not the envelope magic `SEHW`.
    #[error("not a Secur-e-Health wire message (bad magic {found:02x?})")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// The envelope version is not one this build understands.
    #[error("unsupported wire version {version} from claimed sender {sender:?}")]
    UnsupportedVersion {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// Version byte found.
        version: u8,
    },
    /// The protocol id byte names no known protocol.
    #[error("unknown protocol id {id} from claimed sender {sender:?}")]
    UnknownProtocol {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// Protocol byte found.
        id: u8,
    },
    /// A reserved field held a non-zero value.
    #[error("reserved field `{field}` is {value} (must be 0) from claimed sender {sender:?}")]
    ReservedNonZero {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// Field name.
        field: &'static str,
        /// Value found.
        value: u64,
    },
    /// A length field exceeds its bound.
    #[error("field `{field}` of {len} exceeds the limit {max} (claimed sender {sender:?})")]
    TooLarge {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// Field name.
        field: &'static str,
        /// Claimed length.
        len: u64,
        /// Maximum allowed.
        max: u64,
    },
    /// Bytes were left over after a complete message.
    #[error("{extra} trailing bytes after `{after}` from claimed sender {sender:?}")]
    TrailingBytes {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// What had just been decoded.
        after: &'static str,
        /// Number of extra bytes.
        extra: usize,
    },
    /// A field holds a value outside its domain (e.g. a non-canonical encoding).
    #[error("invalid field `{field}` from claimed sender {sender:?}: {reason}")]
    InvalidField {
        /// Claimed sender.
        sender: Option<PartyId>,
        /// Field name.
        field: &'static str,
        /// What is wrong (never contains secret data).
        reason: &'static str,
    },
    /// The Ed25519 signature does not verify under the claimed sender's key.
    #[error("bad signature on message from {sender}")]
    BadSignature {
        /// Claimed sender.
        sender: PartyId,
    },
    /// The claimed sender is not in the roster.
    #[error("message from unknown sender {sender}")]
    UnknownSender {
        /// Claimed sender.
        sender: PartyId,
    },
    /// The message belongs to another study.
    #[error("message from {sender} belongs to study {got}, expected {expected}")]
    WrongStudy {
        /// Sender.
        sender: PartyId,
        /// Expected study.
        expected: StudyId,
        /// Study in the message.
        got: StudyId,
    },
    /// The message belongs to another round of this study.
    #[error("message from {sender} belongs to round {got}, expected round {expected}")]
    WrongRound {
        /// Sender.
        sender: PartyId,
        /// Expected round.
        expected: u32,
        /// Round in the message.
        got: u32,
    },
    /// The message belongs to another protocol or protocol step.
    #[error("message from {sender} is {got:?} step {got_step}, expected {expected:?} step {expected_step}")]
    WrongStep {
        /// Sender.
        sender: PartyId,
        /// Expected protocol.
        expected: ProtocolId,
        /// Expected step.
        expected_step: u8,
        /// Protocol in the message.
        got: ProtocolId,
        /// Step in the message.
        got_step: u8,
    },
    /// The (sender, nonce) pair was already seen in this session.
    #[error("replayed message from {sender} (nonce {nonce})")]
    Replay {
        /// Sender.
        sender: PartyId,
        /// Repeated nonce.
        nonce: u64,
    },
    /// A sender sent more messages in this session than the guard allows.
    #[error("{sender} exceeded {max} messages in this session")]
    TooManyMessages {
        /// Sender.
        sender: PartyId,
        /// Limit.
        max: usize,
    },
}

impl WireError {
    /// The (claimed) party at fault, when known.
    pub fn culprit(&self) -> Option<PartyId> {
        match self {
            WireError::Truncated { sender, .. }
            | WireError::UnsupportedVersion { sender, .. }
            | WireError::UnknownProtocol { sender, .. }
            | WireError::ReservedNonZero { sender, .. }
            | WireError::TooLarge { sender, .. }
            | WireError::TrailingBytes { sender, .. }
            | WireError::InvalidField { sender, .. } => *sender,
            WireError::BadMagic { .. } => None,
            WireError::BadSignature { sender }
            | WireError::UnknownSender { sender }
            | WireError::WrongStudy { sender, .. }
            | WireError::WrongRound { sender, .. }
            | WireError::WrongStep { sender, .. }
            | WireError::Replay { sender, .. }
            | WireError::TooManyMessages { sender, .. } => Some(*sender),
        }
    }
}

/// Errors from verifiable secret sharing ([`crate::shamir`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ShamirError {
    /// Threshold and party count are inconsistent (`1 <= t <= n` is required).
    #[error("invalid threshold {threshold} for {parties} parties (need 1 <= t <= n)")]
    InvalidThreshold {
        /// Requested threshold.
        threshold: usize,
        /// Number of parties.
        parties: usize,
    },
    /// Party id 0 cannot hold a share (it is the secret's evaluation point).
    #[error("party id 0 cannot hold a share")]
    ZeroIndex,
    /// The same party id appears twice.
    #[error("duplicate share index {index}")]
    DuplicateIndex {
        /// Repeated id.
        index: PartyId,
    },
    /// Fewer shares than the threshold were supplied.
    #[error("need {threshold} shares, got {got}")]
    NotEnoughShares {
        /// Threshold.
        threshold: usize,
        /// Shares supplied.
        got: usize,
    },
    /// A share does not match the dealer's Feldman commitments.
    #[error("share from dealer {dealer} to {recipient} does not match the dealer's commitments")]
    InvalidShare {
        /// The dealer (culprit, unless the recipient lies about what it got).
        dealer: PartyId,
        /// The share's recipient.
        recipient: PartyId,
    },
    /// A commitment vector has the wrong length or a point failed to decode.
    #[error("malformed commitments from dealer {dealer}: {reason}")]
    MalformedCommitments {
        /// The dealer.
        dealer: PartyId,
        /// What is wrong.
        reason: &'static str,
    },
    /// A scalar encoding was not canonical.
    #[error("non-canonical scalar in share for {recipient}")]
    NonCanonicalScalar {
        /// The share's index.
        recipient: PartyId,
    },
}

/// Errors from fixed-point encoding ([`crate::fixed`]).
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum FixedError {
    /// The parameters cannot hold `parties × bound × 2^frac_bits` in the ring.
    #[error(
        "ring overflow: {parties} parties × bound {bound} × 2^{frac_bits} needs {needed_bits:.1} bits, the ring has 63 (signed)"
    )]
    RingOverflow {
        /// Parties summed.
        parties: usize,
        /// Per-entry absolute bound.
        bound: f64,
        /// Fraction bits.
        frac_bits: u32,
        /// Bits needed (log2).
        needed_bits: f64,
    },
    /// A parameter is out of range (non-finite or non-positive bound, too many fraction bits, zero parties).
    #[error("invalid fixed-point parameter `{field}`: {reason}")]
    InvalidParameter {
        /// Parameter name.
        field: &'static str,
        /// Reason.
        reason: &'static str,
    },
    /// An entry is NaN or infinite. The value is not reported.
    #[error("entry {index} is not finite")]
    NotFinite {
        /// Position in the vector.
        index: usize,
    },
    /// An entry's magnitude exceeds the declared bound. The value is not reported.
    #[error("entry {index} exceeds the declared bound {bound}")]
    OutOfBound {
        /// Position in the vector.
        index: usize,
        /// Declared bound.
        bound: f64,
    },
    /// A sum decodes outside the range `parties × bound` (corrupted or mis-parameterised sum).
    #[error("sum entry {index} decodes outside ±parties×bound (corrupted aggregate)")]
    SumOutOfRange {
        /// Position in the vector.
        index: usize,
    },
    /// Vector length differs from the expected length.
    #[error("vector length {got}, expected {expected}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
}

/// Errors from the SecAgg+ protocol ([`crate::secagg`]).
///
/// Variants caused by a peer name it; [`SecAggError::culprit`] extracts it.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SecAggError {
    /// Protocol parameters are invalid (threshold, graph degree, length …).
    #[error("invalid SecAgg parameter `{field}`: {reason}")]
    InvalidParameter {
        /// Parameter name.
        field: &'static str,
        /// Reason.
        reason: String,
    },
    /// Fewer than `threshold` parties remain; the round aborts and nothing is revealed.
    #[error("round {round}: only {alive} parties remain, threshold is {threshold}; aborting")]
    TooFewSurvivors {
        /// SecAgg round (0..=3) where it happened.
        round: u8,
        /// Parties still alive.
        alive: usize,
        /// Threshold.
        threshold: usize,
    },
    /// A wire-level problem (decoding, signature, replay, wrong round).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A verifiable-secret-sharing problem (a tampered share names its dealer).
    #[error(transparent)]
    Shamir(#[from] ShamirError),
    /// Fixed-point encoding problem.
    #[error(transparent)]
    Fixed(#[from] FixedError),
    /// A signature inside a payload (key advertisement, consistency check) failed.
    #[error("bad {what} signature from {sender}")]
    BadSignature {
        /// Which signature.
        what: &'static str,
        /// Signer.
        sender: PartyId,
    },
    /// An encrypted share failed to decrypt (tampered or misrouted ciphertext).
    #[error("encrypted share from {sender} to {recipient} failed authentication")]
    DecryptionFailed {
        /// Dealer of the share.
        sender: PartyId,
        /// Recipient.
        recipient: PartyId,
    },
    /// A party is not known / not a neighbour / not expected at this point.
    #[error("unexpected {party}: {reason}")]
    UnexpectedParty {
        /// The party.
        party: PartyId,
        /// Reason.
        reason: &'static str,
    },
    /// The same party sent twice in one round.
    #[error("duplicate message from {party} in round {round}")]
    Duplicate {
        /// The party.
        party: PartyId,
        /// SecAgg round.
        round: u8,
    },
    /// A party sent a malformed payload.
    #[error("malformed {what} from {sender}: {reason}")]
    Malformed {
        /// Message kind.
        what: &'static str,
        /// Sender.
        sender: PartyId,
        /// Reason.
        reason: &'static str,
    },
    /// The server asked a client to reveal both the self-mask share and the
    /// masking-key share of the same party (which would unmask that party's input).
    #[error("server asked to reveal both secrets of {party}; refusing")]
    UnsafeUnmaskRequest {
        /// The party whose two secrets were requested.
        party: PartyId,
    },
    /// The survivor set the server announced is inconsistent (a party missing
    /// from an earlier round, or signed sets disagree).
    #[error("inconsistent survivor set: {reason} ({party})")]
    InconsistentSurvivors {
        /// Offending party.
        party: PartyId,
        /// Reason.
        reason: &'static str,
    },
    /// A share revealed in the unmasking round does not match its dealer's
    /// commitments: the responder lied (or corrupted it).
    #[error("{responder} revealed a share of {owner}'s secret that fails the commitments")]
    BadRevealedShare {
        /// The party that sent the bad share (culprit).
        responder: PartyId,
        /// Whose secret the share belongs to.
        owner: PartyId,
    },
    /// Two parties' Diffie–Hellman public keys coincide (copy attack).
    #[error("{party} advertised a key identical to another party's")]
    DuplicateKey {
        /// The party.
        party: PartyId,
    },
}

impl SecAggError {
    /// The party at fault, when the error was caused by a peer.
    pub fn culprit(&self) -> Option<PartyId> {
        match self {
            SecAggError::Wire(e) => e.culprit(),
            SecAggError::Shamir(ShamirError::InvalidShare { dealer, .. })
            | SecAggError::Shamir(ShamirError::MalformedCommitments { dealer, .. }) => Some(*dealer),
            SecAggError::BadSignature { sender, .. }
            | SecAggError::DecryptionFailed { sender, .. }
            | SecAggError::Malformed { sender, .. } => Some(*sender),
            SecAggError::UnexpectedParty { party, .. }
            | SecAggError::Duplicate { party, .. }
            | SecAggError::InconsistentSurvivors { party, .. }
            | SecAggError::DuplicateKey { party } => Some(*party),
            SecAggError::BadRevealedShare { responder, .. } => Some(*responder),
            _ => None,
        }
    }
}
