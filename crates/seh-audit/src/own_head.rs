//! The writer's own signed head, kept beside the log as `<log>.head` and replaced after every
//! append: `{"seq": N, "hash": "…", "signature": "…"}`, signed by the log's key over
//! `"seh-audit/v1/own-head\0" || LogHead::signing_bytes()`.
//!
//! It makes an emptied or cut-back log detectable without any other party: a log file with
//! fewer entries than its head file names fails [`crate::verify_file`] and is not reopened or
//! recreated by [`crate::AuditLog`]. It does not stop someone who also deletes or rewinds the
//! head file (that needs a head another party co-signed: `seh_protocol::log_head`), and the
//! head is written after the entry is synced, without a sync of its own, so after a crash it
//! may name an older entry — never a newer one.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::canonical::{hex_decode, hex_encode};
use crate::head::LogHead;

const DOMAIN: &[u8] = b"seh-audit/v1/own-head\0";

/// Largest head file read (it is about 250 bytes).
const MAX_BYTES: u64 = 4096;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadFile {
    seq: u64,
    hash: crate::entry::Hash32,
    signature: String,
}

fn message(head: &LogHead) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&head.signing_bytes());
    m
}

/// `<log>.head` beside the log at `log`.
pub fn own_head_path(log: &Path) -> PathBuf {
    let mut name = log.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".head");
    log.with_file_name(name)
}

/// Replaces the head file of `log` (temporary file, rename; owner-only).
pub(crate) fn write_own_head(log: &Path, key: &SigningKey, head: &LogHead) -> std::io::Result<()> {
    use std::io::Write;
    let sig = key.sign(&message(head)).to_bytes();
    let file = HeadFile { seq: head.seq, hash: head.hash, signature: hex_encode(&sig) };
    let text = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
    let path = own_head_path(log);
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(&tmp)?.write_all(&text)?;
    std::fs::rename(&tmp, &path)
}

/// The head recorded beside `log`, checked under `key`; `None` when there is no head file.
/// Errors (the reason, for the caller to name the file): unreadable, too large, malformed, or a
/// signature that does not verify under the log's key.
pub fn read_own_head(log: &Path, key: &VerifyingKey) -> Result<Option<LogHead>, String> {
    let path = own_head_path(log);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > MAX_BYTES {
        return Err(format!("{} bytes, not a head file", meta.len()));
    }
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let file: HeadFile = serde_json::from_slice(&bytes)
        .map_err(|e| format!("malformed head file (line {} column {})", e.line(), e.column()))?;
    let head = LogHead { seq: file.seq, hash: file.hash };
    let sig = hex_decode::<64>(&file.signature, "signature").map_err(|e| e.to_string())?;
    key.verify(&message(&head), &Signature::from_bytes(&sig))
        .map_err(|_| "the head file's signature does not verify under the log's key".to_owned())?;
    Ok(Some(head))
}
