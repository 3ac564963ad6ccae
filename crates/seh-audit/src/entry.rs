//! The audit entry and its validated field types.
//!
//! Every field type here is parsed, not merely checked: a [`Timestamp`] can only hold an RFC 3339
//! date-time, an [`Actor`] only a short printable name, an [`EntryKind`] only one of the known kinds.
//! An [`Entry`] can only be made by [`crate::AuditLog::append`] (which signs it) or by the strict
//! decoder [`crate::decode_line`], so its hash and signature fields always have the right shape;
//! whether they are *correct* is what [`Entry::check_integrity`] and [`crate::verify`] decide.

use std::fmt;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical;

/// Domain separator hashed in front of an entry body.
pub(crate) const ENTRY_HASH_DOMAIN: &[u8] = b"seh-audit/v1/entry\0";
/// Domain separator signed in front of an entry hash.
pub(crate) const ENTRY_SIG_DOMAIN: &[u8] = b"seh-audit/v1/entry-sig\0";

/// Longest accepted actor name in bytes.
pub const MAX_ACTOR_BYTES: usize = 128;

/// A SHA-256 digest; shown and stored as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The `prev` value of the first entry of every log: 32 zero bytes.
    pub const GENESIS: Hash32 = Hash32([0u8; 32]);

    /// Lowercase hex form (64 characters).
    pub fn to_hex(&self) -> String {
        canonical::hex_encode(&self.0)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a field value was refused. Never carries the refused value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The timestamp is not an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
    #[error("timestamp is not an RFC 3339 date-time ({reason})")]
    Timestamp {
        /// Which part was wrong.
        reason: &'static str,
    },
    /// The actor name is empty, longer than [`MAX_ACTOR_BYTES`] or contains a control character.
    #[error("actor name must be 1..={MAX_ACTOR_BYTES} bytes without control characters")]
    Actor,
    /// The kind is not one of the known [`EntryKind`] names.
    #[error("unknown entry kind")]
    Kind,
}

/// An RFC 3339 date-time supplied by the caller (the log never reads a clock).
///
/// Accepted form: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` with upper-case `T` and `Z`,
/// 1 to 9 fraction digits, calendar-valid day of month and seconds up to 60 (leap second).
/// Ordering between entries is not checked: clocks at a site may step backwards.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Timestamp(String);

impl Timestamp {
    /// Parses `text`. Errors: [`FieldError::Timestamp`] naming the faulty part.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        validate_rfc3339(text.as_bytes()).map_err(|reason| FieldError::Timestamp { reason })?;
        Ok(Timestamp(text.to_owned()))
    }

    /// The timestamp text exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn digits(bytes: &[u8], at: usize, n: usize, what: &'static str) -> Result<u32, &'static str> {
    let part = bytes.get(at..at + n).ok_or(what)?;
    let mut value = 0u32;
    for &b in part {
        if !b.is_ascii_digit() {
            return Err(what);
        }
        value = value * 10 + u32::from(b - b'0');
    }
    Ok(value)
}

fn expect(bytes: &[u8], at: usize, want: u8, what: &'static str) -> Result<(), &'static str> {
    if bytes.get(at) == Some(&want) {
        Ok(())
    } else {
        Err(what)
    }
}

fn validate_rfc3339(b: &[u8]) -> Result<(), &'static str> {
    let year = digits(b, 0, 4, "year")?;
    expect(b, 4, b'-', "date separator")?;
    let month = digits(b, 5, 2, "month")?;
    expect(b, 7, b'-', "date separator")?;
    let day = digits(b, 8, 2, "day")?;
    expect(b, 10, b'T', "date-time separator 'T'")?;
    let hour = digits(b, 11, 2, "hour")?;
    expect(b, 13, b':', "time separator")?;
    let minute = digits(b, 14, 2, "minute")?;
    expect(b, 16, b':', "time separator")?;
    let second = digits(b, 17, 2, "second")?;
    if !(1..=12).contains(&month) {
        return Err("month");
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let max_day = month_days.get(month as usize - 1).copied().unwrap_or(0);
    if day == 0 || day > max_day {
        return Err("day");
    }
    if hour > 23 {
        return Err("hour");
    }
    if minute > 59 {
        return Err("minute");
    }
    if second > 60 {
        return Err("second");
    }
    let mut at = 19;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start || at - start > 9 {
            return Err("fraction");
        }
    }
    match b.get(at) {
        Some(b'Z') => at += 1,
        Some(b'+') | Some(b'-') => {
            let oh = digits(b, at + 1, 2, "offset hour")?;
            expect(b, at + 3, b':', "offset separator")?;
            let om = digits(b, at + 4, 2, "offset minute")?;
            if oh > 23 {
                return Err("offset hour");
            }
            if om > 59 {
                return Err("offset minute");
            }
            at += 6;
        }
        _ => return Err("offset"),
    }
    if at != b.len() {
        return Err("trailing characters");
    }
    Ok(())
}

/// Who caused the entry: a node id, researcher id or operator name.
///
/// 1 to [`MAX_ACTOR_BYTES`] bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Actor(String);

impl Actor {
    /// Parses `name`. Errors: [`FieldError::Actor`].
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        if name.is_empty() || name.len() > MAX_ACTOR_BYTES || name.chars().any(char::is_control) {
            return Err(FieldError::Actor);
        }
        Ok(Actor(name.to_owned()))
    }

    /// The actor name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What happened. The wire name (in the log file) is given for each variant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EntryKind {
    /// `request`: a study or analysis request arrived.
    Request,
    /// `policy_decision`: the site's policy allowed or refused a request (details say why).
    PolicyDecision,
    /// `contribution`: metadata of a protected contribution sent (sizes, round, digest; never values).
    Contribution,
    /// `release`: a result was released (details hold its digest and recipients).
    Release,
    /// `roster_change`: the federation roster changed (member added, revoked, re-keyed).
    RosterChange,
    /// `key_event`: a key was generated, rotated or a share used (never the key material).
    KeyEvent,
    /// `system`: node start, stop, configuration change.
    System,
    /// `head_cosign`: a threshold of the sites co-signed this log's head (details hold the signed
    /// head document and the FROST signature; see `seh_protocol::log_head`).
    HeadCosign,
}

impl EntryKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EntryKind; 8] = [
        EntryKind::Request,
        EntryKind::PolicyDecision,
        EntryKind::Contribution,
        EntryKind::Release,
        EntryKind::RosterChange,
        EntryKind::KeyEvent,
        EntryKind::System,
        EntryKind::HeadCosign,
    ];

    /// The name stored in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Request => "request",
            EntryKind::PolicyDecision => "policy_decision",
            EntryKind::Contribution => "contribution",
            EntryKind::Release => "release",
            EntryKind::RosterChange => "roster_change",
            EntryKind::KeyEvent => "key_event",
            EntryKind::System => "system",
            EntryKind::HeadCosign => "head_cosign",
        }
    }

    /// Parses a stored name. Errors: [`FieldError::Kind`].
    pub fn parse(name: &str) -> Result<Self, FieldError> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == name).ok_or(FieldError::Kind)
    }
}

/// One audit log entry (one line of the file).
///
/// `details` is a JSON object describing the event. **It must never hold row values** (patient
/// data, covariate values, per-patient times) **nor secrets** (keys, shares, masks): only ids,
/// counts that passed disclosure control, digests, sizes, policy rule names and reasons. The log is
/// kept for years and shown to auditors; treat everything in it as readable by them.
#[derive(Clone, PartialEq, Debug)]
pub struct Entry {
    pub(crate) seq: u64,
    pub(crate) ts: Timestamp,
    pub(crate) actor: Actor,
    pub(crate) kind: EntryKind,
    pub(crate) details: Map<String, Value>,
    pub(crate) prev: Hash32,
    pub(crate) hash: Hash32,
    pub(crate) sig: [u8; 64],
}

/// Why an entry failed its own integrity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The stored hash is not the hash of the entry's content: the content was modified.
    #[error("stored hash does not match the entry content")]
    HashMismatch,
    /// The hash is consistent but the signature does not verify under the log's key.
    #[error("signature does not verify under the log's public key")]
    BadSignature,
}

impl Entry {
    /// Sequence number: 0 for the first entry, then consecutive.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Caller-supplied time of the event.
    pub fn timestamp(&self) -> &Timestamp {
        &self.ts
    }
    /// Who caused the event.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    /// What kind of event.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }
    /// Event details (ids, counts, digests; never row values).
    pub fn details(&self) -> &Map<String, Value> {
        &self.details
    }
    /// Hash of the previous entry ([`Hash32::GENESIS`] for seq 0).
    pub fn prev_hash(&self) -> Hash32 {
        self.prev
    }
    /// Stored hash of this entry.
    pub fn hash(&self) -> Hash32 {
        self.hash
    }
    /// Stored Ed25519 signature over the hash.
    pub fn signature(&self) -> [u8; 64] {
        self.sig
    }

    /// Recomputes the hash from the content and checks the signature under `key`.
    ///
    /// Does not check the entry's place in a chain (seq, prev); [`crate::verify`] does.
    pub fn check_integrity(&self, key: &VerifyingKey) -> Result<(), IntegrityError> {
        let computed = body_hash(self.seq, &self.ts, &self.actor, self.kind, &self.details, &self.prev);
        if computed != self.hash {
            return Err(IntegrityError::HashMismatch);
        }
        let sig = Signature::from_bytes(&self.sig);
        key.verify(&signing_message(&self.hash), &sig).map_err(|_| IntegrityError::BadSignature)
    }
}

/// SHA-256 over the domain separator and the canonical body encoding.
pub(crate) fn body_hash(
    seq: u64,
    ts: &Timestamp,
    actor: &Actor,
    kind: EntryKind,
    details: &Map<String, Value>,
    prev: &Hash32,
) -> Hash32 {
    let mut body = Vec::with_capacity(256);
    canonical::encode_body(&mut body, seq, ts, actor, kind, details, prev);
    let mut h = Sha256::new();
    h.update(ENTRY_HASH_DOMAIN);
    h.update(&body);
    Hash32(h.finalize().into())
}

/// The bytes the log key signs for an entry.
pub(crate) fn signing_message(hash: &Hash32) -> Vec<u8> {
    let mut m = Vec::with_capacity(ENTRY_SIG_DOMAIN.len() + 32);
    m.extend_from_slice(ENTRY_SIG_DOMAIN);
    m.extend_from_slice(&hash.0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accepted_and_refused() {
        for ok in ["2024-02-29T23:59:60Z", "2025-01-01T00:00:00.123456789+01:00", "1999-12-31T12:00:00-05:30"] {
            assert!(Timestamp::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-01-01 00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00.1234567890Z",
            "2025-01-01T00:00:00+0100",
            "2025-01-01T00:00:00z",
            "2025-01-01T00:00:00ZZ",
            "2025-01-01T00:00:00+24:00",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actor_and_kind_rules() {
        assert!(Actor::parse("site-a").is_ok());
        assert!(Actor::parse("").is_err());
        assert!(Actor::parse("a\nb").is_err());
        assert!(Actor::parse(&"x".repeat(MAX_ACTOR_BYTES + 1)).is_err());
        for k in EntryKind::ALL {
            assert_eq!(EntryKind::parse(k.as_str()), Ok(k));
        }
        assert_eq!(EntryKind::parse("Request"), Err(FieldError::Kind));
    }
}
