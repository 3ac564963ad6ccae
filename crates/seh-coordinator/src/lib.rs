//! `seh-coordinator`: the coordinator daemon.
//!
//! Accepts site sessions (sites dial out over mTLS), serves researchers, and drives one study at a
//! time through [`seh_protocol::coordinator::CoordinatorStudy`], persisting every checkpoint in
//! SQLite **before** sending the messages that follow it, so a killed and restarted coordinator
//! resumes unfinished studies in a fresh round and reaches the same result. A round that is not
//! complete within the configured timeout is closed with the sites that answered (SecAgg+ dropout
//! recovery while at least `t` remain), so a vanished site never hangs a study.
//!
//! This crate does not link `seh-data` and never holds a key share (DESIGN §7).

#![forbid(unsafe_code)]

pub mod ceremony;
mod error;
pub mod he_release;
mod researcher;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use seh_audit::{Actor, AuditLog, EntryKind, Timestamp};
use seh_net::{serve_researcher_api, serve_site_link, FrameSink, NodeId, RosterHandle, SessionAcceptor};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::federation::Federation;
use seh_protocol::spec::SignedStudy;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

pub use error::CoordinatorError;
pub use store::Store;

/// Everything the coordinator needs.
#[derive(Debug)]
pub struct CoordinatorConfig {
    /// The federation.
    pub federation: Arc<Federation>,
    /// The coordinator's identity key (signs envelopes and the audit log).
    pub key: SigningKey,
    /// mTLS server configuration (from `seh_net::server_config`).
    pub tls: Arc<rustls_config::ServerConfig>,
    /// The roster the TLS layer admits.
    pub roster: RosterHandle,
    /// Site-facing listen address (port 0: OS-assigned).
    pub site_addr: SocketAddr,
    /// Researcher-facing listen address.
    pub researcher_addr: SocketAddr,
    /// SQLite state file.
    pub db_path: PathBuf,
    /// Audit log file.
    pub audit_path: PathBuf,
    /// How long one protocol step may wait for sites.
    pub round_timeout: Duration,
    /// How long a new study waits for its sites to connect before starting anyway.
    pub connect_grace: Duration,
    /// Fault injection for tests: end the process right after persisting this many checkpoints.
    pub exit_after_checkpoints: Option<u64>,
}

/// Re-export of the rustls server configuration type used by [`CoordinatorConfig::tls`].
pub mod rustls_config {
    pub use rustls::ServerConfig;
}

/// The current time in RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    seh_protocol::clock::rfc3339(d.as_secs(), d.subsec_millis())
}

/// Shared audit writer.
#[derive(Clone, Debug)]
pub(crate) struct Audit {
    log: Arc<Mutex<AuditLog>>,
    actor: Actor,
}

impl Audit {
    fn open(path: &std::path::Path, key: SigningKey, actor: &str) -> Result<Self, CoordinatorError> {
        let log = if path.exists() { AuditLog::open(path, key)? } else { AuditLog::create(path, key)? };
        let actor = Actor::parse(actor).map_err(|e| CoordinatorError::Store(format!("audit actor: {e}")))?;
        Ok(Audit { log: Arc::new(Mutex::new(log)), actor })
    }

    /// Every entry of the log, verified (for the log-head document the sites co-sign).
    fn entries(&self) -> Result<Vec<seh_audit::Entry>, seh_audit::VerifyError> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        seh_audit::read_verified(log.path(), &log.verifying_key())
    }

    pub(crate) fn record(&self, kind: EntryKind, details: Value) {
        let map = match details {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("detail".into(), other);
                m
            }
        };
        let Ok(ts) = Timestamp::parse(&now_rfc3339()) else { return };
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.append(&ts, &self.actor, kind, map) {
            eprintln!("seh coordinator: audit log append failed: {e}");
        }
    }
}

type Sinks = Arc<Mutex<HashMap<NodeId, (u64, FrameSink)>>>;

/// Addresses the coordinator listens on.
#[derive(Clone, Copy, Debug)]
pub struct BoundAddrs {
    /// Site-facing `SiteLink`.
    pub site: SocketAddr,
    /// Researcher-facing API.
    pub researcher: SocketAddr,
}

/// Runs the coordinator until the process ends. `ready` is called once both listeners are bound.
///
/// Errors: store, audit log or listener set-up failures.
pub async fn run(config: CoordinatorConfig, ready: impl FnOnce(BoundAddrs)) -> Result<(), CoordinatorError> {
    let store = Arc::new(Mutex::new(Store::open(&config.db_path)?));
    let audit = Audit::open(&config.audit_path, config.key.clone(), &config.federation.coordinator_name)?;
    audit.record(EntryKind::System, json!({ "event": "start" }));
    // A stored study whose row no longer decodes is set aside with the reason; the rest run.
    for q in lock(&store).quarantine_corrupt()? {
        eprintln!("seh coordinator: study {} quarantined: {}", q.study_id, q.reason);
        audit.record(
            EntryKind::System,
            json!({ "study": q.study_id, "event": "study quarantined", "reason": q.reason }),
        );
    }
    let (study_tx, mut study_rx) = mpsc::unbounded_channel::<String>();
    let handler = Arc::new(researcher::Handler {
        store: store.clone(),
        audit: audit.clone(),
        fed: config.federation.clone(),
        queue: study_tx,
    });
    let (site_listener, acceptor) =
        serve_site_link(config.site_addr, config.tls.clone(), config.roster.clone()).await?;
    let researcher_listener =
        serve_researcher_api(config.researcher_addr, config.tls.clone(), config.roster.clone(), handler).await?;
    ready(BoundAddrs { site: site_listener.local_addr(), researcher: researcher_listener.local_addr() });
    tokio::spawn(audit_refusals(site_listener.refusal_log().clone(), "site", audit.clone()));
    tokio::spawn(audit_refusals(researcher_listener.refusal_log().clone(), "researcher", audit.clone()));

    let sinks: Sinks = Arc::default();
    let (in_tx, mut in_rx) = mpsc::channel::<(NodeId, seh_net::Frame)>(1024);
    tokio::spawn(accept_sessions(acceptor, sinks.clone(), in_tx, audit.clone()));

    let resumed: Vec<String> = lock(&store).unfinished()?.into_iter().map(|s| s.study_id).collect();
    let mut pending: std::collections::VecDeque<String> = resumed.into();
    pending.extend(he_release::pending(&store)?);
    loop {
        let study_id = match pending.pop_front() {
            Some(id) => id,
            None => match study_rx.recv().await {
                Some(id) => id,
                None => return Ok(()),
            },
        };
        let done = match he_release::parse_id(&study_id) {
            Some(seq) => he_release::drive(&config, &store, &audit, &sinks, &mut in_rx, seq).await,
            None => drive(&config, &store, &audit, &sinks, &mut in_rx, &study_id).await,
        };
        if let Err(e) = done {
            audit.record(EntryKind::System, json!({ "study": study_id, "event": "error", "reason": e.to_string() }));
        }
        while let Ok(id) = study_rx.try_recv() {
            pending.push_back(id);
        }
    }
}

/// Writes every connection or call a listener refuses into the audit log: which listener, the
/// remote address, the node when the reason names it, and why (never certificate bytes or keys).
/// Refusals that overflowed the feed are counted in the next entry.
async fn audit_refusals(log: seh_net::RefusalLog, listener: &'static str, audit: Audit) {
    let mut feed = log.feed();
    let mut reported_dropped = 0;
    while let Some(r) = feed.recv().await {
        let mut details = json!({
            "event": "connection refused",
            "listener": listener,
            "remote": r.remote.map(|a| a.to_string()),
            "node": r.node(),
            "reason": r.reason.to_string(),
        });
        let dropped = log.dropped();
        if dropped > reported_dropped {
            details["unlogged_refusals_before_this"] = json!(dropped - reported_dropped);
            reported_dropped = dropped;
        }
        audit.record(EntryKind::System, details);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_sessions(
    mut acceptor: SessionAcceptor,
    sinks: Sinks,
    inbound: mpsc::Sender<(NodeId, seh_net::Frame)>,
    audit: Audit,
) {
    let mut generation = 0u64;
    while let Some(session) = acceptor.accept().await {
        generation += 1;
        let id = session.peer.id.clone();
        audit.record(EntryKind::System, json!({ "event": "site connected", "site": id.as_str() }));
        lock(&sinks).insert(id.clone(), (generation, session.sink));
        let (sinks, inbound, audit, mut stream, gen) =
            (sinks.clone(), inbound.clone(), audit.clone(), session.stream, generation);
        tokio::spawn(async move {
            while let Some(item) = stream.recv().await {
                match item {
                    Ok(frame) => {
                        if inbound.send((id.clone(), frame)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        audit.record(
                            EntryKind::System,
                            json!({ "event": "invalid frame", "site": id.as_str(), "reason": e.to_string() }),
                        );
                        break;
                    }
                }
            }
            let mut s = lock(&sinks);
            if s.get(&id).is_some_and(|(g, _)| *g == gen) {
                s.remove(&id);
            }
            drop(s);
            audit.record(EntryKind::System, json!({ "event": "site disconnected", "site": id.as_str() }));
        });
    }
}

#[derive(Default)]
struct Traffic(std::collections::BTreeMap<String, (u64, u64, u64)>);

impl Traffic {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (site, (sent, received, messages)) in &self.0 {
            m.insert(site.clone(), json!({ "bytes_to_site": sent, "bytes_from_site": received, "messages": messages }));
        }
        Value::Object(m)
    }
}

async fn drive(
    config: &CoordinatorConfig,
    store: &Arc<Mutex<Store>>,
    audit: &Audit,
    sinks: &Sinks,
    inbound: &mut mpsc::Receiver<(NodeId, seh_net::Frame)>,
    study_id: &str,
) -> Result<(), CoordinatorError> {
    let Some(stored) = lock(store).get(study_id)? else { return Ok(()) };
    let fed = config.federation.clone();
    let mut traffic = Traffic::default();
    if let Value::Object(m) = &stored.traffic {
        for (k, v) in m {
            let get = |f: &str| v.get(f).and_then(Value::as_u64).unwrap_or(0);
            traffic.0.insert(k.clone(), (get("bytes_to_site"), get("bytes_from_site"), get("messages")));
        }
    }
    let checkpoint = stored.checkpoint.clone().unwrap_or_default();
    let resumed = stored.checkpoint.is_some();
    // Wait for the study's sites to connect (bounded).
    let spec = stored.study.unverified_spec()?;
    let wanted: Vec<NodeId> = spec.sites.iter().filter_map(|s| NodeId::parse(s).ok()).collect();
    wait_for_sites(config, sinks, &wanted, None).await;
    audit.record(
        EntryKind::System,
        json!({ "study": study_id, "event": if resumed { "study resumed" } else { "study started" }, "round": checkpoint.round }),
    );
    let (mut study, actions) =
        CoordinatorStudy::resume(fed.clone(), config.key.clone(), stored.study.clone(), checkpoint)?;
    let mut deadline = tokio::time::Instant::now() + config.round_timeout;
    let mut finished = apply(&fed, store, audit, sinks, study_id, &mut traffic, actions, &mut deadline, config).await?;
    // Two passes: the study itself, then the sites co-signing the audit-log head (DESIGN §3).
    let mut cosigning = false;
    // Co-signing goes in bounded segments until the log's end (at most MAX_SEGMENTS_PER_RUN).
    let (mut segments, mut caught_up) = (0u32, false);
    let mut he_persisted = None;
    loop {
        while !finished {
            let actions = tokio::select! {
                got = inbound.recv() => match got {
                    Some((node, frame)) => {
                        if frame.study_id() != study_id {
                            audit.record(EntryKind::System, json!({ "event": "rejected", "site": node.as_str(), "reason": "message for a study that is not running" }));
                            continue;
                        }
                        let Some(site) = fed.site_by_name(node.as_str()) else { continue };
                        let e = traffic.0.entry(site.name.clone()).or_default();
                        e.1 += frame.payload().len() as u64;
                        e.2 += 1;
                        study.receive(site.party, frame.payload())
                    }
                    None => return Ok(()),
                },
                () = tokio::time::sleep_until(deadline) => {
                    let waiting: Vec<String> = study.waiting_for().iter().filter_map(|p| fed.site(*p).map(|s| s.name.clone())).collect();
                    audit.record(EntryKind::System, json!({ "study": study_id, "event": "round timeout", "round": study.checkpoint().round, "waiting_for": waiting }));
                    deadline = tokio::time::Instant::now() + config.round_timeout;
                    study.timeout()
                }
            };
            finished = apply(&fed, store, audit, sinks, study_id, &mut traffic, actions, &mut deadline, config).await?;
            persist_ciphertexts(store, &study, study_id, &mut he_persisted)?;
        }
        if cosigning {
            let Some(signed) = &study.checkpoint().log_head else { break };
            audit.record(EntryKind::HeadCosign, Value::Object(signed.to_details()));
            if caught_up {
                break;
            }
        } else {
            cosigning = true;
            record_outcome(store, audit, study_id)?;
        }
        let request = match audit.entries().map_err(|e| e.to_string()).and_then(|entries| {
            seh_protocol::log_head::next_segment(&entries, &fed, &spec.sites).map_err(|e| e.to_string())
        }) {
            Ok(Some(next)) => {
                segments += 1;
                caught_up = next.reaches_end || segments >= seh_protocol::log_head::MAX_SEGMENTS_PER_RUN;
                next.request
            }
            Ok(None) => break,
            Err(reason) => {
                audit.record(
                    EntryKind::System,
                    json!({ "study": study_id, "event": "audit-log head not co-signed", "reason": reason }),
                );
                break;
            }
        };
        deadline = tokio::time::Instant::now() + config.round_timeout;
        let actions = study.cosign_log_head(request);
        finished = apply(&fed, store, audit, sinks, study_id, &mut traffic, actions, &mut deadline, config).await?;
    }
    Ok(())
}

/// Keeps an encrypted (threshold-HE) round's per-site ciphertexts in the store once per round,
/// so the sum can be re-aggregated and released later by any t key holders without the other
/// sites (`seh_protocol::he_coord::reaggregate`). Nothing to do for SecAgg+ studies.
fn persist_ciphertexts(
    store: &Arc<Mutex<Store>>,
    study: &CoordinatorStudy,
    study_id: &str,
    done: &mut Option<u32>,
) -> Result<(), CoordinatorError> {
    if let Some((round, items)) = study.he_store_encoded() {
        if *done != Some(round) {
            let rows: Vec<(u32, Vec<u8>)> = items.into_iter().map(|(p, b)| (p.0, b)).collect();
            lock(store).put_ciphertexts(study_id, round, &rows)?;
            if let Some(digest) = study.he_key_digest() {
                lock(store).put_round_key(study_id, round, &digest)?;
            }
            *done = Some(round);
        }
    }
    Ok(())
}

/// Records how the study ended (release digest and signers, or the failure reason).
fn record_outcome(store: &Arc<Mutex<Store>>, audit: &Audit, study_id: &str) -> Result<(), CoordinatorError> {
    let stored = lock(store).get(study_id)?;
    let cp = stored.and_then(|s| s.checkpoint).unwrap_or_default();
    match (&cp.release, &cp.failure) {
        (Some(r), _) => audit.record(
            EntryKind::Release,
            json!({ "study": study_id, "document_sha256": seh_protocol::hex::encode(&sha256(r.document.as_bytes())), "signers": r.signers }),
        ),
        (None, failure) => audit.record(
            EntryKind::System,
            json!({ "study": study_id, "event": "study ended without release", "reason": failure }),
        ),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // One call site; the arguments are the driver's state.
async fn apply(
    fed: &Federation,
    store: &Arc<Mutex<Store>>,
    audit: &Audit,
    sinks: &Sinks,
    study_id: &str,
    traffic: &mut Traffic,
    actions: Vec<Action>,
    deadline: &mut tokio::time::Instant,
    config: &CoordinatorConfig,
) -> Result<bool, CoordinatorError> {
    let mut finished = false;
    let mut last: Option<Checkpoint> = None;
    for a in actions {
        match a {
            Action::Checkpoint(cp) => {
                lock(store).save(study_id, &cp, &traffic.to_json())?;
                last = Some(*cp);
                if let Some(n) = config.exit_after_checkpoints {
                    if CHECKPOINTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= n {
                        audit.record(EntryKind::System, json!({ "event": "fault injection: exiting" }));
                        std::process::exit(3);
                    }
                }
            }
            Action::Send(o) => {
                *deadline = tokio::time::Instant::now() + config.round_timeout;
                let Some(site) = fed.site(o.to) else { continue };
                let Ok(node) = NodeId::parse(&site.name) else { continue };
                let sink = lock(sinks).get(&node).map(|(_, s)| s.clone());
                let len = o.bytes.len() as u64;
                let frame = match seh_net::Frame::new(study_id, u64::from(o.round), &o.kind, o.bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        let event = format!("cannot send {} for round {} to {}: {e}", o.kind, o.round, site.name);
                        eprintln!("seh coordinator: study {study_id}: {event}");
                        audit.record(EntryKind::System, json!({ "study": study_id, "event": event }));
                        continue;
                    }
                };
                match sink {
                    Some(s) => {
                        if s.send(frame.to(node)).await.is_ok() {
                            let e = traffic.0.entry(site.name.clone()).or_default();
                            e.0 += len;
                        }
                    }
                    None => audit.record(
                        EntryKind::System,
                        json!({ "study": study_id, "event": "site not connected", "site": site.name }),
                    ),
                }
            }
            Action::Log(line) => audit.record(EntryKind::System, json!({ "study": study_id, "event": line })),
            Action::Finished => finished = true,
        }
    }
    if finished {
        if let Some(cp) = &last {
            lock(store).save(study_id, cp, &traffic.to_json())?;
        }
    }
    Ok(finished)
}

static CHECKPOINTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// Parses a signed study from a researcher's submission payload.
pub fn parse_submission(payload: &[u8]) -> Result<SignedStudy, CoordinatorError> {
    serde_json::from_slice(payload)
        .map_err(|e| CoordinatorError::Protocol(seh_protocol::ProtocolError::parse("study submission", &e)))
}

/// Waits (at most `connect_grace`) for the `wanted` sites to connect: until all are connected, or,
/// with `quorum = Some(q)`, until `q` are and [`QUORUM_SETTLE`] has passed since (sites that are
/// down then do not hold the work for the whole grace period). A message to a site that is not
/// connected yet would be lost, so studies and releases wait here before their first message.
pub(crate) async fn wait_for_sites(
    config: &CoordinatorConfig,
    sinks: &Sinks,
    wanted: &[NodeId],
    quorum: Option<usize>,
) {
    let grace = tokio::time::Instant::now() + config.connect_grace;
    let mut quorum_since: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        let connected = {
            let s = lock(sinks);
            wanted.iter().filter(|w| s.contains_key(*w)).count()
        };
        if connected == wanted.len() || now >= grace {
            return;
        }
        if quorum.is_some_and(|q| connected >= q) && now >= *quorum_since.get_or_insert(now) + QUORUM_SETTLE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long [`wait_for_sites`] waits for more sites once a quorum is connected.
const QUORUM_SETTLE: Duration = Duration::from_secs(2);
