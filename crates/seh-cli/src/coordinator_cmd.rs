//! `seh coordinator --config FILE.toml`: runs the coordinator daemon (see
//! `examples/coordinator.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use seh_coordinator::{BoundAddrs, CoordinatorConfig};
use seh_net::{NodeId, Role, Roster, RosterHandle};
use seh_protocol::federation::Membership;
use serde::Deserialize;

use crate::keys::{load_federation, load_identity};

/// Flags of `seh coordinator`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CoordinatorArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `ceremony`: run the sites' key ceremony instead of serving studies.
    #[command(subcommand)]
    pub action: Option<CoordinatorAction>,
}

/// `seh coordinator …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CoordinatorAction {
    /// Run the key ceremony: the site nodes (in enrolment mode) generate the federation's FROST
    /// key among themselves and sign the roster; writes the signed federation file and exits.
    Ceremony(crate::ceremony_cmd::CeremonyArgs),
}

/// The coordinator's TOML configuration. Relative paths are relative to the file's directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorToml {
    /// `federation.json`.
    pub federation: PathBuf,
    /// The federation CA certificate (`ca.der`, from `seh keys init`); leave it out for a
    /// federation whose parties made their own keys (`seh keys gen`): roster keys are then the anchor.
    pub ca: Option<PathBuf>,
    /// The coordinator's identity directory.
    pub identity: PathBuf,
    /// Site-facing listen address.
    pub site_listen: SocketAddr,
    /// Researcher-facing listen address.
    pub researcher_listen: SocketAddr,
    /// SQLite state file.
    pub state_db: PathBuf,
    /// Audit log.
    pub audit_log: PathBuf,
    /// Written (JSON `{"site": addr, "researcher": addr}`) once listening.
    pub ready_file: Option<PathBuf>,
    /// Seconds one protocol step waits for sites.
    #[serde(default = "default_round_timeout")]
    pub round_timeout_secs: f64,
    /// Seconds a study waits for its sites to connect.
    #[serde(default = "default_grace")]
    pub connect_grace_secs: f64,
    /// Fault injection for tests: exit the process right after persisting this many checkpoints.
    pub debug_exit_after_checkpoints: Option<u64>,
}

fn default_round_timeout() -> f64 {
    10.0
}
fn default_grace() -> f64 {
    20.0
}

/// Resolves `p` against the directory of the config file.
pub fn resolve(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// Reads and parses a TOML file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// The transport roster of a federation (signed or only its members).
pub fn net_roster(fed: &impl AsRef<Membership>) -> Result<RosterHandle> {
    let fed = fed.as_ref();
    let mut r = Roster::new();
    r.add(NodeId::parse(&fed.coordinator_name)?, Role::Coordinator, fed.coordinator_key)?;
    for s in fed.sites() {
        r.add(NodeId::parse(&s.name)?, Role::Site, s.key)?;
    }
    for (name, key) in fed.researchers() {
        r.add(NodeId::parse(name)?, Role::Researcher, *key)?;
    }
    Ok(RosterHandle::new(r))
}

/// A current-thread tokio runtime.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// The coordinator's runtime: one worker per core, so the TLS decryption and decoding of the
/// sites' streams run in parallel with the aggregation instead of queueing behind it.
pub fn server_runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get()).max(2);
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?)
}

/// Runs `seh coordinator`.
pub fn run(args: CoordinatorArgs) -> Result<()> {
    let config = match (args.action, args.config) {
        (Some(CoordinatorAction::Ceremony(c)), _) => return crate::ceremony_cmd::run(c),
        (None, Some(config)) => config,
        (None, None) => anyhow::bail!("give --config FILE.toml (or `seh coordinator ceremony --config FILE.toml`)"),
    };
    let c: CoordinatorToml = read_toml(&config)?;
    let at = |p: &Path| resolve(&config, p);
    let fed = Arc::new(load_federation(&at(&c.federation))?);
    let trust = crate::trust::TrustSource::load(&config, c.ca.as_ref())?;
    let id = load_identity(&at(&c.identity))?;
    anyhow::ensure!(id.name == fed.coordinator_name, "identity `{}` is not the federation's coordinator", id.name);
    anyhow::ensure!(id.key.verifying_key() == fed.coordinator_key, "identity key differs from federation.json");
    let roster = net_roster(&*fed)?;
    let tls = trust.server(&id.tls, roster.clone())?;
    let ready_file = c.ready_file.as_ref().map(|p| at(p));
    let config = CoordinatorConfig {
        federation: fed,
        key: id.key,
        tls,
        roster,
        site_addr: c.site_listen,
        researcher_addr: c.researcher_listen,
        db_path: at(&c.state_db),
        audit_path: at(&c.audit_log),
        round_timeout: Duration::from_secs_f64(c.round_timeout_secs.max(0.05)),
        connect_grace: Duration::from_secs_f64(c.connect_grace_secs.max(0.0)),
        exit_after_checkpoints: c.debug_exit_after_checkpoints,
    };
    server_runtime()?.block_on(async move {
        let ready = move |a: BoundAddrs| {
            eprintln!("seh coordinator: sites on {}, researchers on {}", a.site, a.researcher);
            if let Some(p) = ready_file {
                let text = serde_json::json!({ "site": a.site.to_string(), "researcher": a.researcher.to_string() });
                let tmp = p.with_extension("tmp");
                if std::fs::write(&tmp, text.to_string()).and_then(|()| std::fs::rename(&tmp, &p)).is_err() {
                    eprintln!("seh coordinator: cannot write ready file {}", p.display());
                }
            }
        };
        seh_coordinator::run(config, ready).await
    })?;
    Ok(())
}

/// Reads a ready file written by the coordinator.
pub fn read_ready(path: &Path) -> Result<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let get = |k: &str| -> Result<SocketAddr> {
        v.get(k).and_then(|x| x.as_str()).context("ready file lacks an address")?.parse().context("bad address")
    };
    Ok((get("site")?, get("researcher")?))
}
