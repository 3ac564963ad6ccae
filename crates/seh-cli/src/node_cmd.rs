//! `seh node --config FILE.toml`: runs a site node (see `examples/node.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use seh_net::{ClientTls, GrpcSiteConnector, NetError, NodeId, Session, SiteConnector};
use seh_node::governance::{ConsentToml, LegacyPolicy};
use seh_node::NodeConfig;
use seh_stats::DataFrame;
use serde::Deserialize;

use crate::coordinator_cmd::{read_ready, read_toml, resolve, runtime};
use crate::keys::{load_frost_share, load_identity, load_membership};

/// Flags of `seh node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: PathBuf,
}

/// A site node's TOML configuration. Relative paths are relative to the file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeToml {
    /// `federation.json`.
    pub federation: PathBuf,
    /// The federation CA certificate (`seh keys init`); leave it out for a federation whose
    /// parties made their own keys (`seh keys gen`): the roster's keys are then the trust anchor.
    pub ca: Option<PathBuf>,
    /// This site's identity directory (name, identity.key, cert.der, frost.share).
    pub identity: PathBuf,
    /// Coordinator site-link address, or …
    pub coordinator: Option<SocketAddr>,
    /// … the coordinator's ready file, re-read on every (re)connect.
    pub coordinator_ready_file: Option<PathBuf>,
    /// The site's analysis table (CSV, numeric columns), or …
    pub data: Option<PathBuf>,
    /// … a table of the site's SQLite store (`path`, `table`, `secret`; consent from the store).
    pub store: Option<seh_node::store_site::StoreToml>,
    /// Audit log.
    pub audit_log: PathBuf,
    /// Reveal-record state file.
    pub state_file: PathBuf,
    /// The site policy file (`seh-policy` TOML, see `examples/policy/site-policy.toml`) …
    pub policy_file: Option<PathBuf>,
    /// … or a legacy `[policy]` table (converted; see `seh_node::governance::LegacyPolicy`).
    pub policy: Option<LegacyPolicy>,
    /// Consent sources of a CSV site (`file`, `id_column`).
    pub consent: Option<ConsentToml>,
    /// DP budget ledger (default: the state file with extension `budget.json`).
    pub budget_ledger: Option<PathBuf>,
    /// Fault injection for tests: exit after sending this many protocol messages.
    pub debug_exit_after_messages: Option<u64>,
}

/// Dials the address currently in the coordinator's ready file.
#[derive(Debug)]
struct ReadyFileConnector {
    path: PathBuf,
    tls: ClientTls,
    id: NodeId,
    key: ed25519_dalek::VerifyingKey,
}

/// A fixed address or the ready file.
#[derive(Debug)]
enum Dial {
    Fixed(GrpcSiteConnector),
    ReadyFile(ReadyFileConnector),
}

impl SiteConnector for Dial {
    async fn open(&self) -> Result<Session, NetError> {
        match self {
            Dial::Fixed(c) => c.open().await,
            Dial::ReadyFile(r) => {
                let (addr, _) = read_ready(&r.path).map_err(|e| NetError::Io {
                    op: "read coordinator ready file",
                    source: std::io::Error::other(e.to_string()),
                })?;
                GrpcSiteConnector::new(addr, r.tls.clone(), r.id.clone(), r.key).open().await
            }
        }
    }
}

fn load_data(path: &Path) -> Result<DataFrame> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(DataFrame::from_csv_bytes(&bytes, &path.display().to_string())?)
}

/// Runs `seh node`.
pub fn run(args: NodeArgs) -> Result<()> {
    let c: NodeToml = read_toml(&args.config)?;
    let at = |p: &Path| resolve(&args.config, p);
    let fed_path = at(&c.federation);
    let fed = Arc::new(load_membership(&fed_path)?);
    let trust = crate::trust::TrustSource::load(&args.config, c.ca.as_ref())?;
    let id = load_identity(&at(&c.identity))?;
    let share = load_frost_share(&at(&c.identity))?;
    // A node holding a key share serves only a roster the sites signed under that share's key.
    let share_path = at(&c.identity).join("frost.share");
    let signed =
        share.as_ref().map(|s| seh_node::roster::load_signed(&fed_path, &id.name, s, &share_path)).transpose()?;
    let coordinator = NodeId::parse(&fed.coordinator_name)?;
    let tls = trust.client(&id.tls, &coordinator, fed.coordinator_key)?;
    let ledger = c.budget_ledger.as_ref().map_or_else(|| at(&c.state_file).with_extension("budget.json"), |p| at(p));
    let consent = c.consent.clone().map(|t| ConsentToml { file: t.file.map(|f| at(&f)), ..t });
    let mut settings = seh_node::governance::settings(
        &args.config,
        c.policy.as_ref(),
        c.policy_file.as_ref().map(|p| at(p)).as_deref(),
        consent.as_ref(),
        ledger,
    )?;
    let data = match (&c.data, &c.store) {
        (Some(d), None) => load_data(&at(d))?,
        (None, Some(store)) => seh_node::store_site::attach(&store.resolved(at), &mut settings)?,
        _ => anyhow::bail!("{}: give exactly one of `data` and a `[store]` table", args.config.display()),
    };
    let governance = seh_node::governance::build(settings, &data)?;
    let connector = match (&c.coordinator, &c.coordinator_ready_file) {
        (Some(addr), None) => Dial::Fixed(GrpcSiteConnector::new(*addr, tls, coordinator, fed.coordinator_key)),
        (None, Some(p)) => {
            Dial::ReadyFile(ReadyFileConnector { path: at(p), tls, id: coordinator, key: fed.coordinator_key })
        }
        _ => anyhow::bail!("give exactly one of `coordinator` and `coordinator_ready_file`"),
    };
    let rt = runtime()?;
    let (fed, share) = match (signed, share) {
        (Some(signed), Some(share)) => (Arc::new(signed), share),
        // No key share: enrolment mode until the key ceremony gave this site its share.
        _ => {
            let (share, signed) = rt.block_on(seh_node::roster::enrol(seh_node::roster::Enrolment {
                members: fed.clone(),
                federation_path: fed_path.clone(),
                share_path: at(&c.identity).join("frost.share"),
                name: id.name.clone(),
                key: id.key.clone(),
                connector: &connector,
                audit_path: at(&c.audit_log),
            }))?;
            (Arc::new(signed), share)
        }
    };
    let config = NodeConfig {
        federation: fed.clone(),
        name: id.name.clone(),
        key: id.key.clone(),
        frost_share: share.clone(),
        governance,
        data: data.clone(),
        connector,
        audit_path: at(&c.audit_log),
        state_path: at(&c.state_file),
        exit_after_messages: c.debug_exit_after_messages,
    };
    rt.block_on(seh_node::run(config))?;
    Ok(())
}
