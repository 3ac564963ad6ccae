//! `seh-node`: the site daemon.
//!
//! Loads the site's data, dials out to the coordinator over mTLS (no inbound port), and feeds
//! every frame to [`seh_protocol::site::SiteMachine`], which applies the site's governance (the
//! `seh-policy` decision, the consent filter, disclosure floors and DP — see [`governance`]) before
//! any computation. Writes the site's audit log (requests, decisions, contribution metadata, releases;
//! never values) and persists its reveal records before sending unmasking shares. Reconnects with
//! back-off when the coordinator goes away.

#![forbid(unsafe_code)]

pub mod governance;
pub mod he_keys;
pub mod roster;
pub mod store_site;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use seh_audit::{Actor, AuditLog, EntryKind, Timestamp};
use seh_net::{Frame, SiteConnector};
use seh_protocol::federation::Federation;
use seh_protocol::policy::SiteGovernance;
use seh_protocol::site::replay::{FinishedStudies, FinishedStudy};
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_stats::DataFrame;
use serde_json::{json, Map, Value};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The site configuration does not match the federation.
    #[error("{0}")]
    Protocol(#[from] seh_protocol::ProtocolError),
    /// The audit log failed.
    #[error("audit log: {0}")]
    Audit(#[from] seh_audit::LogError),
    /// The reveal-record state file failed.
    #[error("state file {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Everything a site node needs.
pub struct NodeConfig<C> {
    /// The federation.
    pub federation: Arc<Federation>,
    /// This site's node id.
    pub name: String,
    /// Identity key.
    pub key: SigningKey,
    /// FROST key share.
    pub frost_share: seh_crypto::frost::KeyShare,
    /// Governance: the site policy, consent sources and DP budget ledger
    /// ([`governance::build`]). Every study passes through it.
    pub governance: SiteGovernance,
    /// The site's analysis table.
    pub data: DataFrame,
    /// How to reach the coordinator.
    pub connector: C,
    /// Audit log file.
    pub audit_path: PathBuf,
    /// Reveal-record state file (JSON).
    pub state_path: PathBuf,
    /// Fault injection for tests: return (ending the node) after sending this many messages.
    pub exit_after_messages: Option<u64>,
}

impl<C> std::fmt::Debug for NodeConfig<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig").field("name", &self.name).field("key", &"<redacted>").finish_non_exhaustive()
    }
}

fn now() -> Option<Timestamp> {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::parse(&seh_protocol::clock::rfc3339(d.as_secs(), d.subsec_millis())).ok()
}

struct Audit {
    log: AuditLog,
    actor: Actor,
}

impl Audit {
    fn record(&mut self, kind: EntryKind, details: Map<String, Value>) {
        let Some(ts) = now() else { return };
        if let Err(e) = self.log.append(&ts, &self.actor, kind, details) {
            eprintln!("seh node: audit log append failed: {e}");
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Reads reveal records written by an earlier run (empty if the file does not exist).
pub fn load_reveals(path: &Path) -> Result<BTreeMap<String, Vec<u32>>, NodeError> {
    let err = |reason: String| NodeError::State { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| err(format!("line {} column {}", e.line(), e.column())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(err(e.to_string())),
    }
}

fn save_reveals(path: &Path, reveals: &BTreeMap<String, Vec<u32>>) -> Result<(), NodeError> {
    write_state(path, serde_json::to_vec(reveals).unwrap_or_default())
}

/// The file beside the reveal-record state file that holds the coordinator audit-log head this
/// site co-signed last (`state.json` → `state.cosigned-head.json`).
pub fn cosigned_head_path(state_path: &Path) -> PathBuf {
    state_path.with_extension("cosigned-head.json")
}

/// Reads the coordinator log head this site co-signed last (`None` if the file does not exist).
pub fn load_cosigned_head(path: &Path) -> Result<Option<seh_protocol::log_head::HeadRef>, NodeError> {
    let err = |reason: String| NodeError::State { path: path.to_owned(), reason };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| err(format!("line {} column {}", e.line(), e.column()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The file beside the reveal-record state file that holds the studies this site finished
/// (`state.json` → `state.finished.json`): a replayed study is refused after a restart too.
pub fn finished_path(state_path: &Path) -> PathBuf {
    state_path.with_extension("finished.json")
}

/// Reads the studies this site finished (empty if the file does not exist).
///
/// Errors: [`NodeError::State`] naming the file: unreadable, not JSON (line and column), or an
/// entry that is not a study id (its index).
pub fn load_finished(path: &Path) -> Result<FinishedStudies, NodeError> {
    let err = |reason: String| NodeError::State { path: path.to_owned(), reason };
    let entries: Vec<FinishedStudy> = match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| err(format!("{e} (line {} column {})", e.line(), e.column())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(e.to_string())),
    };
    FinishedStudies::from_entries(entries).map_err(|e| err(e.to_string()))
}

/// Writes the studies this site finished to `path`: atomically, owner-only (0600).
pub fn save_finished(path: &Path, writer: &str, finished: &FinishedStudies) -> Result<(), NodeError> {
    let entries: Vec<&FinishedStudy> = finished.entries().collect();
    let text = serde_json::to_vec(&entries).unwrap_or_default();
    roster::write_atomic(path, writer, &text, true)
        .map_err(|e| NodeError::State { path: path.to_owned(), reason: e.to_string() })
}

/// Writes `text` to `path` atomically (temporary file, fsync, rename), owner-only (0600).
fn write_state(path: &Path, text: Vec<u8>) -> Result<(), NodeError> {
    let err = |e: std::io::Error| NodeError::State { path: path.to_owned(), reason: e.to_string() };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&tmp).map_err(err)?;
        f.write_all(&text).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Runs the node until the process ends: connect, serve studies, reconnect on loss.
///
/// Errors: a configuration that does not match the federation, or an audit log that cannot be
/// opened; transport failures are retried, not returned.
pub async fn run<C: SiteConnector>(config: NodeConfig<C>) -> Result<(), NodeError> {
    let reveals = load_reveals(&config.state_path)?;
    let head_path = cosigned_head_path(&config.state_path);
    let cosigned_head = load_cosigned_head(&head_path)?;
    let finished_file = finished_path(&config.state_path);
    let mut finished = load_finished(&finished_file)?;
    let mut persisted = reveals.clone();
    let columns = config.data.ncols();
    let machine = SiteMachine::new(
        config.federation.clone(),
        &config.name,
        config.key.clone(),
        config.frost_share,
        config.governance,
        config.data,
        reveals,
    )?
    .with_cosigned_head(cosigned_head)
    .with_finished(finished.clone());
    let he_dir = he_keys::dir_beside(&config.state_path);
    let he_keys = he_keys::HeKeyStore::new(he_dir.clone(), &config.name, &config.key);
    // Key records are read on demand, study by study (no cap on how many stay releasable).
    let mut machine = machine.with_he_key_source(Box::new(he_keys::HeKeyStore::new(he_dir, &config.name, &config.key)));
    let log = if config.audit_path.exists() {
        AuditLog::open(&config.audit_path, config.key.clone())?
    } else {
        AuditLog::create(&config.audit_path, config.key.clone())?
    };
    let actor = Actor::parse(&config.name)
        .map_err(|e| NodeError::State { path: config.audit_path.clone(), reason: format!("actor name: {e}") })?;
    let mut audit = Audit { log, actor };
    audit.record(EntryKind::System, obj(json!({ "event": "start", "columns": columns })));
    let mut backoff = Duration::from_millis(100);
    let mut sent = 0u64;
    loop {
        let mut session = match config.connector.open().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("seh node {}: cannot reach the coordinator ({e}); retrying", config.name);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        audit.record(EntryKind::System, obj(json!({ "event": "connected", "coordinator": session.peer.id.as_str() })));
        while let Some(item) = session.stream.recv().await {
            let Ok(frame) = item else { break };
            for output in machine.handle(frame.payload()) {
                match output {
                    SiteOutput::Send { study_id, round, kind, bytes } => {
                        let f = match Frame::new(&study_id, u64::from(round), &kind, bytes) {
                            Ok(f) => f,
                            Err(e) => {
                                // The study cannot progress without this message: say so
                                // instead of letting the coordinator wait for a timeout.
                                let event = format!("cannot send {kind} for round {round}: {e}");
                                eprintln!("seh node {}: study {study_id}: {event}", config.name);
                                audit.record(EntryKind::System, obj(json!({ "study": study_id, "event": event })));
                                continue;
                            }
                        };
                        if session.sink.send(f).await.is_err() {
                            break;
                        }
                        sent += 1;
                        if config.exit_after_messages.is_some_and(|n| sent >= n) {
                            audit.record(EntryKind::System, obj(json!({ "event": "fault injection: exiting" })));
                            // Give the transport a moment to flush the last frame.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return Ok(());
                        }
                    }
                    SiteOutput::Audit(e) => {
                        let kind = match e.kind {
                            AuditKind::Request => EntryKind::Request,
                            AuditKind::PolicyDecision => EntryKind::PolicyDecision,
                            AuditKind::Contribution => EntryKind::Contribution,
                            AuditKind::Release => EntryKind::Release,
                            AuditKind::Rejected => EntryKind::System,
                        };
                        let mut d = e.details;
                        if e.kind == AuditKind::Rejected {
                            d.insert("event".into(), Value::String("rejected message".into()));
                        }
                        audit.record(kind, d);
                    }
                    SiteOutput::RecordReveal { study_id, survivors } => {
                        persisted.insert(study_id, survivors);
                        save_reveals(&config.state_path, &persisted)?;
                    }
                    SiteOutput::RecordLogHead(head) => {
                        write_state(&head_path, serde_json::to_vec(&head).unwrap_or_default())?;
                    }
                    SiteOutput::RecordHeKey(record) => he_keys.save(&record)?,
                    SiteOutput::RecordFinished { study_id, outcome } => {
                        finished.record(&study_id, outcome);
                        save_finished(&finished_file, &config.name, &finished)?;
                    }
                }
            }
        }
        audit.record(EntryKind::System, obj(json!({ "event": "disconnected" })));
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seh_protocol::site::replay::Finish;

    #[test]
    fn finished_studies_survive_a_restart_in_a_private_file_and_a_bad_file_is_named() {
        let dir = std::env::temp_dir().join(format!("seh-node-finished-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = finished_path(&dir.join("state.json"));
        assert!(load_finished(&path).unwrap().is_empty());
        let mut f = FinishedStudies::default();
        f.record(&"ab".repeat(16), Finish::Released);
        f.record(&"01".repeat(16), Finish::Refused);
        save_finished(&path, "site-a", &f).unwrap();
        assert_eq!(load_finished(&path).unwrap(), f);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"[{\"study_id\": \"nothex\", \"outcome\": \"released\"}]").unwrap();
        let e = load_finished(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("[0].study_id"), "{e}");
        std::fs::write(&path, b"[{").unwrap();
        let e = load_finished(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()) && e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
