//! The coordinator's runtime of the key ceremony (`seh coordinator ceremony`): waits for every
//! site node (in enrolment mode) to connect, relays the sites' distributed key generation and the
//! FROST signature over the roster through [`seh_protocol::ceremony::coord::CeremonyCoordinator`],
//! and returns the signed federation file. The coordinator never holds a key share; every step
//! is in its audit log (metadata only: ceremony id, steps, sites, group key, digests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seh_audit::EntryKind;
use seh_net::{serve_site_link, NodeId, RosterHandle};
use seh_protocol::ceremony::coord::{CeremonyAction, CeremonyCoordinator, CeremonyError, SignedRoster};
use seh_protocol::federation::Membership;
use seh_protocol::hex;
use serde_json::json;
use tokio::sync::mpsc;

use crate::{accept_sessions, audit_refusals, lock, Audit, CoordinatorError, Sinks};

/// What the ceremony needs.
#[derive(Debug)]
pub struct CeremonyConfig {
    /// The members (the federation file before signing).
    pub members: Arc<Membership>,
    /// The coordinator's identity key (signs envelopes and the audit log).
    pub key: SigningKey,
    /// mTLS server configuration.
    pub tls: Arc<rustls::ServerConfig>,
    /// The roster the TLS layer admits.
    pub roster: RosterHandle,
    /// Site-facing listen address.
    pub site_addr: SocketAddr,
    /// Audit log file (the coordinator's).
    pub audit_path: std::path::PathBuf,
    /// How long one step waits for the sites.
    pub step_timeout: Duration,
    /// How long to wait for every site to connect.
    pub connect_timeout: Duration,
}

/// A finished ceremony.
#[derive(Debug)]
pub struct CeremonyOutcome {
    /// The signed roster (write [`SignedRoster::text`] as the federation file).
    pub roster: SignedRoster,
    /// Milliseconds from the start message to the last confirmation (all sites connected).
    pub ceremony_ms: f64,
    /// Milliseconds spent waiting for the sites to connect.
    pub connect_ms: f64,
}

/// Why the ceremony did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyRunError {
    /// Listener, audit log or roster set-up failed.
    #[error("{0}")]
    Setup(#[from] CoordinatorError),
    /// Sites did not connect in time.
    #[error("sites not connected after {seconds} s: {}", sites.join(", "))]
    NotConnected {
        /// Seconds waited.
        seconds: u64,
        /// The sites missing.
        sites: Vec<String>,
    },
    /// The ceremony failed (names the site at fault).
    #[error("key ceremony failed: {0}")]
    Failed(#[from] CeremonyError),
}

fn ceremony_id() -> [u8; 16] {
    let (a, b) = (seh_protocol::messages::nonce(), seh_protocol::messages::nonce());
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes());
    id
}

/// Runs one ceremony; `ready` is called with the site address once listening.
///
/// Errors: [`CeremonyRunError`] naming the sites that did not connect or the site at fault.
pub async fn run_ceremony(
    config: CeremonyConfig,
    ready: impl FnOnce(SocketAddr),
) -> Result<CeremonyOutcome, CeremonyRunError> {
    let members = config.members.clone();
    let audit = Audit::open(&config.audit_path, config.key.clone(), &members.coordinator_name)?;
    let (listener, acceptor) = serve_site_link(config.site_addr, config.tls.clone(), config.roster.clone())
        .await
        .map_err(CoordinatorError::from)?;
    ready(listener.local_addr());
    tokio::spawn(audit_refusals(listener.refusal_log().clone(), "site", audit.clone()));
    let sinks: Sinks = Arc::default();
    let (in_tx, mut inbound) = mpsc::channel::<(NodeId, seh_net::Frame)>(1024);
    tokio::spawn(accept_sessions(acceptor, sinks.clone(), in_tx, audit.clone()));

    let wanted: Vec<(String, Option<NodeId>)> =
        members.sites().map(|s| (s.name.clone(), NodeId::parse(&s.name).ok())).collect();
    let waited = Instant::now();
    loop {
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(_, id)| id.as_ref().is_none_or(|id| !lock(&sinks).contains_key(id)))
            .map(|(n, _)| n.clone())
            .collect();
        if missing.is_empty() {
            break;
        }
        if waited.elapsed() > config.connect_timeout {
            audit.record(EntryKind::System, json!({ "event": "key ceremony not started", "not_connected": missing }));
            return Err(CeremonyRunError::NotConnected { seconds: config.connect_timeout.as_secs(), sites: missing });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_ms = waited.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let (mut driver, actions) = CeremonyCoordinator::start(members.clone(), config.key.clone(), ceremony_id())
        .map_err(CoordinatorError::from)?;
    let id = driver.id();
    audit.record(
        EntryKind::System,
        json!({ "event": "key ceremony started", "ceremony": id, "sites": members.sites().count(),
                "threshold": members.frost_threshold, "members_sha256": members.members_digest().ok().map(|d| hex::encode(&d)) }),
    );
    let mut deadline = tokio::time::Instant::now() + config.step_timeout;
    let mut pending = actions;
    loop {
        for action in std::mem::take(&mut pending) {
            match action {
                CeremonyAction::Send(o) => {
                    deadline = tokio::time::Instant::now() + config.step_timeout;
                    let Some(site) = members.site(o.to) else { continue };
                    let Ok(node) = NodeId::parse(&site.name) else { continue };
                    let sink = lock(&sinks).get(&node).map(|(_, s)| s.clone());
                    let frame = match seh_net::Frame::new(&id, u64::from(o.round), &o.kind, o.bytes) {
                        Ok(f) => f,
                        Err(e) => {
                            audit.record(
                                EntryKind::System,
                                json!({ "ceremony": id, "event": format!("cannot send {}: {e}", o.kind) }),
                            );
                            continue;
                        }
                    };
                    let sent = match sink {
                        Some(s) => s.send(frame.to(node)).await.is_ok(),
                        None => false,
                    };
                    if !sent {
                        audit.record(
                            EntryKind::System,
                            json!({ "ceremony": id, "event": "site not connected", "site": site.name }),
                        );
                    }
                }
                CeremonyAction::Log(line) => audit.record(EntryKind::System, json!({ "ceremony": id, "event": line })),
                CeremonyAction::Done(roster) => {
                    let ceremony_ms = started.elapsed().as_secs_f64() * 1e3;
                    audit.record(
                        EntryKind::Release,
                        json!({ "ceremony": id, "what": "roster signed", "group_key": roster.group_key,
                                "signers": roster.signers, "confirmed": roster.confirmed,
                                "file_sha256": seh_protocol::ceremony::sha256_hex(roster.text.as_bytes()), "ms": ceremony_ms }),
                    );
                    return Ok(CeremonyOutcome { roster: *roster, ceremony_ms, connect_ms });
                }
                CeremonyAction::Failed(e) => {
                    audit.record(
                        EntryKind::System,
                        json!({ "ceremony": id, "event": "key ceremony failed", "reason": e.to_string() }),
                    );
                    return Err(e.into());
                }
            }
        }
        pending = tokio::select! {
            got = inbound.recv() => match got {
                Some((node, frame)) => {
                    let Some(site) = members.site_by_name(node.as_str()) else { continue };
                    if frame.study_id() != id {
                        audit.record(EntryKind::System, json!({ "ceremony": id, "event": "rejected", "site": site.name, "reason": "message for another ceremony or a study" }));
                        continue;
                    }
                    driver.receive(site.party, frame.payload())
                }
                None => return Err(CeremonyError::Signing("the site listener stopped".into()).into()),
            },
            () = tokio::time::sleep_until(deadline) => {
                deadline = tokio::time::Instant::now() + config.step_timeout;
                driver.timeout()
            }
        };
    }
}
