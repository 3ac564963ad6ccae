//! The node's roster checks and enrolment mode.
//!
//! - A node **with** a FROST key share loads its federation file only if the sites' roster
//!   signature verifies under the file's group key *and* that group key is the one of its own
//!   share ([`load_signed`]); otherwise it refuses to start, naming the file and the reason.
//! - A node **without** a share runs in enrolment mode ([`enrol`]): it dials out, takes part in the
//!   key ceremony only (every study is refused with a named reason), writes its share
//!   (owner-only, atomically) before it reports its group key, writes the signed federation file
//!   before it confirms it, and returns the share and the verified federation so the node goes on
//!   to serve studies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use seh_audit::{Actor, AuditLog, EntryKind};
use seh_crypto::frost::KeyShare;
use seh_net::{Frame, SiteConnector};
use seh_protocol::ceremony::site::{CeremonyOutput, CeremonySite};
use seh_protocol::federation::{Federation, Membership};
use seh_protocol::site::AuditKind;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::{obj, Audit};

/// Why a node's roster or key share is not usable.
#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    /// The federation file is missing, malformed, unsigned, edited after signing, or signed under
    /// another group key than this site's share.
    #[error("federation file {path}: {reason}")]
    Federation {
        /// The file.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// The key share file could not be read or written.
    #[error("key share {path}: {reason}")]
    Share {
        /// The file.
        path: PathBuf,
        /// Why (never the share).
        reason: String,
    },
    /// The ceremony machine could not be set up.
    #[error("{0}")]
    Protocol(#[from] seh_protocol::ProtocolError),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] seh_audit::LogError),
}

/// Loads the signed federation file at `path` for site `name` holding `share` (read from
/// `share_path`): the roster signature must verify under the file's group key, that key must be
/// the share's, and the share must match the verifying share the group lists for this site
/// ([`check_share`]).
///
/// Errors: [`RosterError::Federation`] naming the file and why it is refused;
/// [`RosterError::Share`] naming `share_path` when the share is not this site's share of the group.
pub fn load_signed(path: &Path, name: &str, share: &KeyShare, share_path: &Path) -> Result<Federation, RosterError> {
    let err = |reason: String| RosterError::Federation { path: path.to_owned(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let fed = Federation::from_signed_json(&bytes).map_err(|e| err(e.to_string()))?;
    if fed.group_key() != share.group_key() {
        return Err(err(
            "its group key is not the one of this site's key share (signed by another key ceremony)".into()
        ));
    }
    match fed.site_by_name(name) {
        Some(site) if share.party() == Some(site.party) => {}
        Some(_) => return Err(err(format!("site `{name}` has another party id than its key share"))),
        None => return Err(err(format!("site `{name}` is not on the roster"))),
    }
    check_share(&fed, share, share_path)?;
    Ok(fed)
}

/// Checks the FROST key share read from `share_path` against the group's verifying shares in the
/// federation file: its secret must give its verifying share, and that must be the one the group
/// lists for its party. A node with a corrupted share refuses to start rather than spoil every
/// release it is asked to co-sign.
///
/// Errors: [`RosterError::Share`] naming `share_path` and the check that failed (never the secret).
pub fn check_share(fed: &Federation, share: &KeyShare, share_path: &Path) -> Result<(), RosterError> {
    fed.frost_group.check_share(share).map_err(|e| RosterError::Share {
        path: share_path.to_owned(),
        reason: format!("does not match this site's verifying share in the federation's group key: {e}"),
    })
}

/// Writes `text` to `path` atomically (a temporary file unique to `writer` in the same
/// directory, fsync, rename); owner-only (0600) when `secret`.
pub fn write_atomic(path: &Path, writer: &str, text: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{writer}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    {
        let mut f = opts.open(&tmp)?;
        f.write_all(text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Writes this site's key share (hex of its secret encoding) owner-only and atomically.
pub fn write_share(path: &Path, name: &str, share: &KeyShare) -> Result<(), RosterError> {
    let err = |reason: String| RosterError::Share { path: path.to_owned(), reason };
    let bytes = share.to_secret_bytes().map_err(|e| err(e.to_string()))?;
    let text = Zeroizing::new(seh_protocol::hex::encode(&bytes));
    write_atomic(path, name, text.as_bytes(), true).map_err(|e| err(e.to_string()))
}

/// Where an enrolling node keeps what the ceremony gives it.
#[derive(Debug)]
pub struct Enrolment<'a, C> {
    /// The members (federation file, signed or not).
    pub members: Arc<Membership>,
    /// The federation file to replace with the signed one.
    pub federation_path: PathBuf,
    /// The key share file to create (`<identity>/frost.share`).
    pub share_path: PathBuf,
    /// This site's node id.
    pub name: String,
    /// Identity key.
    pub key: SigningKey,
    /// How to reach the coordinator.
    pub connector: &'a C,
    /// The site's audit log.
    pub audit_path: PathBuf,
}

fn audit_kind(kind: AuditKind) -> EntryKind {
    match kind {
        AuditKind::Request => EntryKind::Request,
        AuditKind::PolicyDecision => EntryKind::PolicyDecision,
        AuditKind::Contribution => EntryKind::Contribution,
        AuditKind::Release => EntryKind::Release,
        AuditKind::Rejected => EntryKind::System,
    }
}

/// Runs enrolment mode until this site holds a key share and the signed federation file (see the
/// module documentation). Transport failures are retried; a failed ceremony leaves the node
/// waiting for the next one.
///
/// Errors: an identity that is not on the roster, an audit log or a file that cannot be written.
pub async fn enrol<C: SiteConnector>(e: Enrolment<'_, C>) -> Result<(KeyShare, Federation), RosterError> {
    let mut machine = CeremonySite::new(e.members.clone(), &e.name, e.key.clone())?;
    let log = if e.audit_path.exists() {
        AuditLog::open(&e.audit_path, e.key.clone())?
    } else {
        AuditLog::create(&e.audit_path, e.key.clone())?
    };
    let actor = Actor::parse(&e.name).map_err(|err| RosterError::Federation {
        path: e.federation_path.clone(),
        reason: format!("node id: {err}"),
    })?;
    let mut audit = Audit { log, actor };
    audit.record(
        EntryKind::System,
        obj(json!({ "event": "enrolment mode: no FROST key share; waiting for the key ceremony" })),
    );
    eprintln!(
        "seh node {}: no FROST key share at {}; enrolment mode: waiting for the key ceremony",
        e.name,
        e.share_path.display()
    );
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut session = match e.connector.open().await {
            Ok(s) => s,
            Err(err) => {
                eprintln!("seh node {}: cannot reach the coordinator ({err}); retrying", e.name);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        while let Some(item) = session.stream.recv().await {
            let Ok(frame) = item else { break };
            let mut done = None;
            for output in machine.handle(frame.payload()) {
                match output {
                    CeremonyOutput::Send { session: id, round, kind, bytes } => {
                        let Ok(f) = Frame::new(&id, u64::from(round), &kind, bytes) else { continue };
                        if session.sink.send(f).await.is_err() {
                            break;
                        }
                    }
                    CeremonyOutput::Audit(ev) => {
                        let mut d = ev.details;
                        if ev.kind == AuditKind::Rejected && !d.contains_key("event") {
                            d.insert("event".into(), Value::String("rejected message".into()));
                        }
                        audit.record(audit_kind(ev.kind), d);
                    }
                    CeremonyOutput::PersistShare(share) => write_share(&e.share_path, &e.name, &share)?,
                    CeremonyOutput::PersistFederation { text } => {
                        write_atomic(&e.federation_path, &e.name, text.as_bytes(), false).map_err(|err| {
                            RosterError::Federation { path: e.federation_path.clone(), reason: err.to_string() }
                        })?;
                    }
                    CeremonyOutput::Enrolled => done = machine.take_enrolled(),
                }
            }
            if let Some((share, fed)) = done {
                audit.record(
                    EntryKind::System,
                    obj(json!({ "event": "enrolled: key share and signed roster stored",
                                "group_key": seh_protocol::hex::encode(&fed.group_key().to_bytes()) })),
                );
                eprintln!("seh node {}: enrolled; the roster is signed by the sites", e.name);
                // Let the confirmation reach the coordinator: wait (bounded) for it to close.
                let _ = tokio::time::timeout(Duration::from_secs(5), async {
                    while session.stream.recv().await.is_some() {}
                })
                .await;
                return Ok((share, fed));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed federation file on disk and site-0's share.
    fn setup(tag: &str) -> (PathBuf, PathBuf, KeyShare) {
        let names: Vec<String> = (0..3).map(|i| format!("site-{i}")).collect();
        let (file, secrets) =
            seh_protocol::setup::generate("t", "coordinator", &names, &["alice".into()], 2, &mut rand::rngs::OsRng)
                .unwrap();
        let dir = std::env::temp_dir().join(format!("seh-roster-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fed_path = dir.join("federation.json");
        std::fs::write(&fed_path, serde_json::to_vec(&file).unwrap()).unwrap();
        (fed_path, dir.join("frost.share"), secrets.sites["site-0"].1.clone())
    }

    /// `share` with one bit of its secret signing share flipped (still a canonical scalar, so it
    /// parses): the signing share is the 32 bytes 64 before the group key in the encoding.
    fn corrupted(share: &KeyShare) -> KeyShare {
        let mut bytes = share.to_secret_bytes().unwrap();
        let vk = share.group_key().to_bytes();
        let at = bytes.windows(32).position(|w| w == vk).unwrap();
        bytes[at - 64] ^= 1;
        KeyShare::from_secret_bytes(&bytes).unwrap()
    }

    #[test]
    fn a_corrupted_share_is_refused_at_start_naming_the_share_file() {
        let (fed_path, share_path, share) = setup("corrupt");
        load_signed(&fed_path, "site-0", &share, &share_path).unwrap();
        let bad = corrupted(&share);
        // Same party and group key: only the verifying-share check sees the corruption.
        assert_eq!((bad.party(), bad.group_key()), (share.party(), share.group_key()));
        let e = load_signed(&fed_path, "site-0", &bad, &share_path).unwrap_err();
        assert!(matches!(e, RosterError::Share { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains(&share_path.display().to_string()) && text.contains("corrupted"), "{text}");
        let _ = std::fs::remove_dir_all(fed_path.parent().unwrap());
    }
}
