//! What a site checks before it co-signs: the coordinator's log lines themselves, not only the
//! hashes the [`HeadDocument`] states.
//!
//! A co-sign request ([`HeadSignStart`]) carries the canonical log line of every entry the
//! document covers after its previous co-signed head (or from seq 0). The site decodes each line
//! strictly, recomputes the entry's hash from its content, checks the coordinator's Ed25519
//! signature on it, checks that its `prev` names the hash before it (the previous co-signed head
//! for the first line) and that the recomputed hash is the one the document states. It refuses,
//! naming the first bad seq, otherwise. So an in-between hash taken on the coordinator's word is
//! no longer possible: the chain from the previous co-signed head to the new head is recomputed
//! by every site that co-signs it.
//!
//! What the lines disclose to the sites: the coordinator's audit log holds metadata only — study
//! ids, researcher and site names, analysis kinds, SHA-256 digests of study specs and released
//! documents, round numbers, per-site traffic counts, refusal and error reasons, remote addresses
//! of refused connections and earlier co-signed heads. It never holds a patient row or a site's
//! contribution: those never reach the coordinator in the clear and it records no payloads (see
//! `seh-coordinator`'s `Audit::record` call sites). The sites are the members the coordinator
//! serves; this metadata is what their co-signature vouches for.
//!
//! The size of one request is bounded ([`MAX_SEGMENT_ENTRIES`], [`MAX_SEGMENT_LINE_BYTES`]); a
//! longer history is co-signed in segments (see [`super::next_segment`]).

use seh_audit::{decode_line, Hash32, IntegrityError};
use seh_crypto::wire::VerifyingKey;

use super::{HeadDocument, HeadRefusal};
use crate::hex;

/// Most log entries one co-signature covers: the in-between entries plus the new head.
///
/// Bounds the signed document (about 67 bytes per entry, so ≈ 134 KB here, far below the
/// 1 MiB audit-log line [`seh_audit::MAX_LINE_BYTES`] that records it) and the request.
pub const MAX_SEGMENT_ENTRIES: usize = 2000;

/// Most bytes of log lines one co-sign request carries (its JSON payload is at most about twice
/// this, below the transport's 8 MiB frame). Always at least one line of up to 1 MiB fits.
pub const MAX_SEGMENT_LINE_BYTES: usize = 2 << 20;

/// Checks `lines` (canonical coordinator log lines) as the evidence for `doc`: one line per entry
/// from the one after `doc.prev` (or seq 0) up to the head, each hashing to what `doc` states,
/// signed by `coordinator`, and linked to the one before.
///
/// Precondition: `doc` passed [`HeadDocument::check_extends`] (well-formed).
///
/// Errors: [`HeadRefusal::Evidence`] naming the first seq whose line is missing, malformed,
/// modified, unsigned, unlinked or different from the document; [`HeadRefusal::TooLong`] if the
/// lines exceed [`MAX_SEGMENT_LINE_BYTES`]. Never echoes line contents.
pub fn check_evidence(doc: &HeadDocument, lines: &[String], coordinator: &VerifyingKey) -> Result<(), HeadRefusal> {
    let bytes: usize = lines.iter().map(String::len).sum();
    if bytes > MAX_SEGMENT_LINE_BYTES {
        return Err(HeadRefusal::TooLong { what: "bytes of log lines", len: bytes, max: MAX_SEGMENT_LINE_BYTES });
    }
    let (first, mut prev) = match &doc.prev {
        Some(p) => {
            let hash = hex::decode_array::<32>(&p.hash).ok_or(HeadRefusal::Malformed("a hash is not 64 hex digits"))?;
            (p.seq.saturating_add(1), Hash32(hash))
        }
        None => (0, Hash32::GENESIS),
    };
    // The seq the next line must carry; `None` once the line at seq u64::MAX was checked (no
    // arithmetic here may overflow: the seqs come from the coordinator).
    let mut next = Some(first);
    for line in lines {
        let Some(seq) = next.filter(|s| *s <= doc.seq) else {
            return Err(HeadRefusal::Evidence {
                seq: doc.seq.saturating_add(1),
                what: "a line beyond the head was sent",
            });
        };
        let bad = |what: &'static str| HeadRefusal::Evidence { seq, what };
        let entry = decode_line(line.as_bytes()).map_err(|_| bad("the line is not a canonical log entry"))?;
        if entry.seq() != seq {
            return Err(bad("the line carries another sequence number"));
        }
        entry.check_integrity(coordinator).map_err(|e| match e {
            IntegrityError::HashMismatch => bad("the entry's hash does not match its content"),
            IntegrityError::BadSignature => bad("the entry is not signed by the coordinator"),
        })?;
        if entry.prev_hash() != prev {
            return Err(bad(if seq == first {
                "the entry does not link to the previous co-signed head"
            } else {
                "the entry does not link to the entry before it"
            }));
        }
        if doc.hash_at(seq) != Some(entry.hash().to_hex().as_str()) {
            return Err(bad("the entry's hash differs from the document"));
        }
        prev = entry.hash();
        next = seq.checked_add(1);
    }
    match next {
        Some(seq) if seq <= doc.seq => Err(HeadRefusal::Evidence { seq, what: "the line for this entry is missing" }),
        _ => Ok(()),
    }
}
