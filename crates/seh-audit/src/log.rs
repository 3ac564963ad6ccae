//! The writer: create or reopen a log file and append signed entries, one fsync per entry.
//!
//! One process writes a log at a time (the caller guarantees it; the node owns its log file).
//! A failed write leaves the file in an unknown state, so the writer then refuses further appends
//! ([`LogError::Poisoned`]); reopening reports a partial last line as [`LogError::TruncatedTail`]
//! instead of continuing after it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};

use crate::canonical::{decode_line, encode_line, DecodeError, MAX_LINE_BYTES};
use crate::entry::{body_hash, signing_message, Actor, Entry, EntryKind, Hash32, IntegrityError, Timestamp};
use crate::head::LogHead;
use crate::verify::{split_lines, VerifyError};

/// Errors from opening or appending to a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("audit log {path}: {op} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The last line of the existing log has no newline: a previous write was interrupted.
    /// The log is not continued; an operator must inspect it.
    #[error("audit log {path}, line {line}: truncated last entry ({bytes} bytes); refusing to continue the chain")]
    TruncatedTail {
        /// The file.
        path: PathBuf,
        /// Line number of the partial line.
        line: usize,
        /// Its length in bytes.
        bytes: usize,
    },
    /// The last entry of the existing log does not decode.
    #[error("audit log {path}, line {line}: last entry malformed: {source}")]
    TailMalformed {
        /// The file.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// Why.
        source: DecodeError,
    },
    /// The last entry's hash or signature (under this writer's key) does not hold.
    #[error("audit log {path}, line {line} (seq {seq}): last entry fails its check: {source}")]
    TailIntegrity {
        /// The file.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// Sequence number on that line.
        seq: u64,
        /// Hash mismatch or signature under another key.
        source: IntegrityError,
    },
    /// The last entry's seq does not equal the number of lines before it.
    #[error("audit log {path}, line {line}: last entry has seq {seq}, expected {expected}")]
    TailSequence {
        /// The file.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// Sequence number found.
        seq: u64,
        /// Sequence number expected from the line count.
        expected: u64,
    },
    /// The encoded entry would exceed [`MAX_LINE_BYTES`].
    #[error("entry would be {len} bytes, over the {MAX_LINE_BYTES}-byte line limit")]
    EntryTooLarge {
        /// Encoded length.
        len: usize,
    },
    /// The log is shorter than (or differs from) the head the writer recorded beside it
    /// (`<log>.head`): entries were removed, the log emptied or replaced. Not continued.
    #[error("audit log {path}: {reason}; refusing to continue it (restore the log, or move both files aside)")]
    BehindOwnHead {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// An earlier append failed part-way; the writer refuses to continue.
    #[error("audit log {path}: an earlier append failed; reopen the log to check its tail")]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

/// An open audit log, ready to append.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    key: SigningKey,
    next_seq: u64,
    last_hash: Hash32,
    poisoned: bool,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("next_seq", &self.next_seq)
            .field("last_hash", &self.last_hash)
            .field("key", &"<redacted>")
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl AuditLog {
    /// Creates a new, empty log at `path` (which must not exist) signed with `key`, owner-only
    /// (0600). Syncs the file and, on Unix, its directory, so the new file survives a crash.
    ///
    /// Refused when a head file beside it (`<log>.head`) says the log had entries: a deleted log
    /// is not silently started again.
    pub fn create(path: &Path, key: SigningKey) -> Result<Self, LogError> {
        let io = |op| move |source| LogError::Io { path: path.to_owned(), op, source };
        if !path.exists() {
            check_own_head(path, &key.verifying_key(), &[])?;
        }
        let mut opts = OpenOptions::new();
        opts.append(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let file = opts.open(path).map_err(io("create"))?;
        file.sync_all().map_err(io("fsync"))?;
        sync_parent_dir(path).map_err(io("fsync directory"))?;
        Ok(AuditLog { path: path.to_owned(), file, key, next_seq: 0, last_hash: Hash32::GENESIS, poisoned: false })
    }

    /// Opens an existing log and continues its chain.
    ///
    /// Checks the tail: the file ends with a newline, the last line decodes strictly, its hash and
    /// signature hold under `key`'s public key, and its seq equals the number of lines before it.
    /// It does not re-verify every entry (that is [`crate::verify`]). Refused, too, when the log
    /// is shorter than the head file beside it says, or holds another entry at that seq.
    pub fn open(path: &Path, key: SigningKey) -> Result<Self, LogError> {
        let io = |op| move |source| LogError::Io { path: path.to_owned(), op, source };
        let bytes = std::fs::read(path).map_err(io("read"))?;
        let lines = split_lines(&bytes).map_err(|e| match e {
            VerifyError::TruncatedTail { line, bytes } => {
                LogError::TruncatedTail { path: path.to_owned(), line, bytes }
            }
            // split_lines reports nothing else; keep a sensible mapping all the same.
            _ => LogError::TruncatedTail { path: path.to_owned(), line: 0, bytes: 0 },
        })?;
        let (next_seq, last_hash) = match lines.last() {
            None => (0, Hash32::GENESIS),
            Some(last) => {
                let line = lines.len();
                let expected = (line - 1) as u64;
                let entry = decode_line(last).map_err(|source| LogError::TailMalformed {
                    path: path.to_owned(),
                    line,
                    source,
                })?;
                let seq = entry.seq();
                entry.check_integrity(&key.verifying_key()).map_err(|source| LogError::TailIntegrity {
                    path: path.to_owned(),
                    line,
                    seq,
                    source,
                })?;
                if seq != expected {
                    return Err(LogError::TailSequence { path: path.to_owned(), line, seq, expected });
                }
                (seq + 1, entry.hash())
            }
        };
        check_own_head(path, &key.verifying_key(), &lines)?;
        let file = OpenOptions::new().append(true).open(path).map_err(io("open for append"))?;
        Ok(AuditLog { path: path.to_owned(), file, key, next_seq, last_hash, poisoned: false })
    }

    /// Appends one signed entry and syncs it to disk before returning.
    ///
    /// `ts` is the caller's clock reading; `details` must hold no row values and no secrets (see
    /// [`Entry`]). Returns the new head. On an I/O error the writer is poisoned.
    pub fn append(
        &mut self,
        ts: &Timestamp,
        actor: &Actor,
        kind: EntryKind,
        details: Map<String, Value>,
    ) -> Result<LogHead, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned { path: self.path.clone() });
        }
        let seq = self.next_seq;
        let hash = body_hash(seq, ts, actor, kind, &details, &self.last_hash);
        let sig = self.key.sign(&signing_message(&hash)).to_bytes();
        let entry = Entry { seq, ts: ts.clone(), actor: actor.clone(), kind, details, prev: self.last_hash, hash, sig };
        let mut line = encode_line(&entry);
        if line.len() > MAX_LINE_BYTES {
            return Err(LogError::EntryTooLarge { len: line.len() });
        }
        line.push(b'\n');
        let written = self.file.write_all(&line).and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.poisoned = true;
            return Err(LogError::Io { path: self.path.clone(), op: "append", source });
        }
        self.next_seq = seq + 1;
        self.last_hash = hash;
        let head = LogHead { seq, hash };
        // The entry is durable; a head file that could not be replaced names an older entry,
        // which only weakens the truncation check, so it does not fail the append.
        let _ = crate::own_head::write_own_head(&self.path, &self.key, &head);
        Ok(head)
    }

    /// The newest entry, or `None` if the log is empty.
    pub fn head(&self) -> Option<LogHead> {
        self.next_seq.checked_sub(1).map(|seq| LogHead { seq, hash: self.last_hash })
    }

    /// Number of entries in the log.
    pub fn len(&self) -> u64 {
        self.next_seq
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    /// The public key that verifies this log.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Checks the log's `lines` against the head file beside it (if any).
fn check_own_head(path: &Path, key: &VerifyingKey, lines: &[&[u8]]) -> Result<(), LogError> {
    let fail = |reason: String| LogError::BehindOwnHead { path: path.to_owned(), reason };
    let head_file = crate::own_head::own_head_path(path);
    let Some(head) =
        crate::own_head::read_own_head(path, key).map_err(|r| fail(format!("{}: {r}", head_file.display())))?
    else {
        return Ok(());
    };
    let Some(raw) = usize::try_from(head.seq).ok().and_then(|i| lines.get(i)) else {
        return Err(fail(format!(
            "the log has {} entries but {} records seq {} as written; entries were removed",
            lines.len(),
            head_file.display(),
            head.seq
        )));
    };
    match decode_line(raw) {
        Ok(e) if e.hash() == head.hash => Ok(()),
        _ => Err(fail(format!(
            "the entry at seq {} differs from {}; the log was rewritten",
            head.seq,
            head_file.display()
        ))),
    }
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> std::io::Result<()> {
    Ok(())
}
