//! Append-only, hash-chained, Ed25519-signed audit log for Secur-e-Health sites and coordinator.
//!
//! Every request, policy decision, contribution and release is appended as one JSON line
//! ([`AuditLog::append`]). Each entry carries its sequence number, the caller's RFC 3339 timestamp,
//! the actor, the [`EntryKind`], a details object, the previous entry's hash, its own hash and an
//! Ed25519 signature over that hash. Each append is fsynced before it returns.
//!
//! **The details object must never hold row values (patient data) or secrets**: only ids, counts
//! that passed disclosure control, digests, sizes and reasons. Auditors read this file.
//!
//! - [`verify`] checks a whole file and names the first tampered line and sequence number.
//! - [`decode_line`] is the strict, total line decoder (canonical form only; a fuzz target).
//! - [`LogHead`] / [`CoSignedHead`] let other parties co-sign the log's head so that cutting
//!   entries off the end becomes detectable ([`verify_with_head`]).
//! - The writer also keeps its own signed head beside the log (`<log>.head`, [`own_head_path`]):
//!   [`verify_file`] fails an emptied or cut-back log against it, and the writer refuses to
//!   reopen or recreate such a log.
//!
//! The core never reads a clock: timestamps come from the caller.

mod canonical;
mod entry;
mod head;
mod log;
mod own_head;
mod verify;

pub use canonical::{decode_line, encode_line, DecodeError, MAX_LINE_BYTES};
pub use entry::{Actor, Entry, EntryKind, FieldError, Hash32, IntegrityError, Timestamp, MAX_ACTOR_BYTES};
pub use head::{CoSignError, CoSignature, CoSignedHead, LogHead};
pub use log::{AuditLog, LogError};
pub use own_head::{own_head_path, read_own_head};
pub use verify::{read_verified, verify, verify_bytes, verify_file, verify_with_head, VerifyError, VerifyReport};

pub use ed25519_dalek::{SigningKey, VerifyingKey};
