//! Whole-log verification: every line decodes strictly, every hash and signature holds, sequence
//! numbers run 0, 1, 2, … and each entry names its predecessor's hash.
//!
//! What each kind of tampering produces:
//!
//! | tampering | error |
//! |---|---|
//! | an entry's content changed | [`VerifyError::Modified`] (hash mismatch) |
//! | content changed and hash recomputed | [`VerifyError::Modified`] (bad signature) |
//! | any byte changed so the line no longer decodes | [`VerifyError::Malformed`] |
//! | an entry deleted, inserted, duplicated or moved | [`VerifyError::Sequence`] |
//! | an entry replaced by one signed for another chain | [`VerifyError::ChainBroken`] |
//! | last line cut short (crash mid-write) | [`VerifyError::TruncatedTail`] |
//! | whole entries cut off the end | only against a known head: [`verify_with_head`], or the writer's head file: [`verify_file`] |

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::canonical::{decode_line, DecodeError};
use crate::entry::{Entry, Hash32, IntegrityError};
use crate::head::LogHead;

/// Result of a successful verification.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VerifyReport {
    /// Number of entries in the log.
    pub entries: u64,
    /// The newest entry, or `None` for an empty log.
    pub head: Option<LogHead>,
}

/// Why a log failed verification. Lines are 1-based; `seq` is the sequence number read from that
/// line when it could be decoded.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The last line has no newline: a write was interrupted (or the file was cut).
    #[error("line {line}: truncated last entry ({bytes} bytes without a newline); the log was cut mid-write")]
    TruncatedTail {
        /// The line number of the partial line.
        line: usize,
        /// Its length in bytes.
        bytes: usize,
    },
    /// A line is not a valid canonical entry.
    #[error("line {line}: malformed entry: {source}")]
    Malformed {
        /// The line number.
        line: usize,
        /// Why it did not decode.
        source: DecodeError,
    },
    /// A line decodes but its hash or signature does not hold: it was modified.
    #[error("line {line} (seq {seq}): entry modified: {source}")]
    Modified {
        /// The line number.
        line: usize,
        /// The sequence number on that line.
        seq: u64,
        /// Hash mismatch or bad signature.
        source: IntegrityError,
    },
    /// A valid entry is in the wrong place: an entry before it was deleted, or it was inserted,
    /// duplicated or moved.
    #[error("line {line} (seq {found}): expected seq {expected}; an entry was deleted, inserted or reordered")]
    Sequence {
        /// The line number.
        line: usize,
        /// The sequence number that should be on this line.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// A valid entry with the right seq does not name the previous entry's hash.
    #[error("line {line} (seq {seq}): previous-hash link broken; the entry belongs to another chain")]
    ChainBroken {
        /// The line number.
        line: usize,
        /// The sequence number on that line.
        seq: u64,
    },
    /// The log ends before the known head: entries were removed from the end.
    #[error("log has {entries} entries but the known head is seq {head_seq}; entries were removed from the end")]
    HeadMissing {
        /// Entries in the file.
        entries: u64,
        /// Sequence number of the known head.
        head_seq: u64,
    },
    /// The writer's head file beside the log (`<log>.head`) cannot be used.
    #[error("head file {path}: {reason}")]
    OwnHead {
        /// The head file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The entry at the known head's seq has a different hash: the log was rewritten.
    #[error("line {line} (seq {seq}): hash differs from the known head; the log was rewritten")]
    HeadMismatch {
        /// The line number.
        line: usize,
        /// The sequence number.
        seq: u64,
    },
}

/// Splits a log file into lines, refusing a partial last line.
pub(crate) fn split_lines(bytes: &[u8]) -> Result<Vec<&[u8]>, VerifyError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // `split` yields one piece after the final separator; it must be empty.
    match lines.pop() {
        Some([]) => Ok(lines),
        Some(partial) => Err(VerifyError::TruncatedTail { line: lines.len() + 1, bytes: partial.len() }),
        None => Ok(lines),
    }
}

/// Verifies the log file at `path` against the log's public key.
///
/// Reads the whole file. Returns the entry count and head, or the first fault with its line and
/// sequence number. An empty file is a valid empty log. Cannot detect whole entries removed from
/// the end; use [`verify_with_head`] with a co-signed head for that.
pub fn verify(path: &Path, key: &VerifyingKey) -> Result<VerifyReport, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Io { path: path.to_owned(), source })?;
    verify_bytes(&bytes, key)
}

/// [`verify`] on the file contents already in memory.
pub fn verify_bytes(bytes: &[u8], key: &VerifyingKey) -> Result<VerifyReport, VerifyError> {
    walk(bytes, key, |_, _, _| Ok(()))
}

/// [`verify`], and additionally checks that the log contains `head` (same seq, same hash).
///
/// Detects entries cut from the end after `head` was published or co-signed.
pub fn verify_with_head(path: &Path, key: &VerifyingKey, head: &LogHead) -> Result<VerifyReport, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Io { path: path.to_owned(), source })?;
    let mut seen = false;
    let report = walk(&bytes, key, |line, seq, hash| {
        if seq == head.seq {
            if hash != head.hash {
                return Err(VerifyError::HeadMismatch { line, seq });
            }
            seen = true;
        }
        Ok(())
    })?;
    if !seen {
        return Err(VerifyError::HeadMissing { entries: report.entries, head_seq: head.seq });
    }
    Ok(report)
}

/// [`verify`], and against the writer's own signed head beside the log (`<log>.head`, see
/// [`crate::own_head_path`]) when there is one: a log emptied or cut back after that head was
/// written fails with [`VerifyError::HeadMissing`]. Returns the report and whether a head file
/// was checked.
pub fn verify_file(path: &Path, key: &VerifyingKey) -> Result<(VerifyReport, bool), VerifyError> {
    let head = crate::own_head::read_own_head(path, key)
        .map_err(|reason| VerifyError::OwnHead { path: crate::own_head::own_head_path(path), reason })?;
    match head {
        Some(h) => verify_with_head(path, key, &h).map(|r| (r, true)),
        None => verify(path, key).map(|r| (r, false)),
    }
}

/// [`verify`], returning every entry in order (for readers that need the entries' hashes and
/// details, such as the co-signed head check in `seh_protocol::log_head`).
///
/// Errors: as [`verify`]; nothing is returned unless the whole log verifies.
pub fn read_verified(path: &Path, key: &VerifyingKey) -> Result<Vec<Entry>, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Io { path: path.to_owned(), source })?;
    let lines = split_lines(&bytes)?;
    let mut entries = Vec::with_capacity(lines.len());
    walk(&bytes, key, |_, _, _| Ok(()))?;
    for raw in lines {
        // Every line decoded during the walk above.
        entries.push(decode_line(raw).map_err(|source| VerifyError::Malformed { line: entries.len() + 1, source })?);
    }
    Ok(entries)
}

fn walk(
    bytes: &[u8],
    key: &VerifyingKey,
    mut on_entry: impl FnMut(usize, u64, Hash32) -> Result<(), VerifyError>,
) -> Result<VerifyReport, VerifyError> {
    let lines = split_lines(bytes)?;
    let mut prev = Hash32::GENESIS;
    let mut head = None;
    for (index, raw) in lines.iter().enumerate() {
        let line = index + 1;
        let expected = index as u64;
        let entry = decode_line(raw).map_err(|source| VerifyError::Malformed { line, source })?;
        let seq = entry.seq();
        entry.check_integrity(key).map_err(|source| VerifyError::Modified { line, seq, source })?;
        if seq != expected {
            return Err(VerifyError::Sequence { line, expected, found: seq });
        }
        if entry.prev_hash() != prev {
            return Err(VerifyError::ChainBroken { line, seq });
        }
        on_entry(line, seq, entry.hash())?;
        prev = entry.hash();
        head = Some(LogHead { seq, hash: prev });
    }
    Ok(VerifyReport { entries: lines.len() as u64, head })
}
