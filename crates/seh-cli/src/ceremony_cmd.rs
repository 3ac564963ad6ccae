//! `seh coordinator ceremony --config FILE.toml`: the coordinator side of the sites' key
//! ceremony. Every site node must be running (a node without a FROST key share starts in
//! enrolment mode and dials out as usual). The sites generate the federation's FROST key by
//! distributed key generation, relayed by this process, and FROST-sign the roster; the signed
//! federation file replaces the unsigned one at the config's `federation` path, and every node
//! writes its own share and the same signed file. Then start `seh coordinator --config …`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use seh_coordinator::ceremony::{run_ceremony, CeremonyConfig};
use serde_json::{json, Value};

use crate::coordinator_cmd::{net_roster, read_toml, resolve, runtime, CoordinatorToml};
use crate::federate::{start_node, ChildGuard};
use crate::keys::{load_identity, load_membership};
use crate::study::Format;

/// Flags of `seh coordinator ceremony`.
#[derive(Debug, Args)]
pub struct CeremonyArgs {
    /// The coordinator's configuration file (TOML), as for `seh coordinator`.
    #[arg(long)]
    pub config: PathBuf,
    /// Seconds one ceremony step waits for the sites.
    #[arg(long, default_value_t = 30.0)]
    pub step_timeout: f64,
    /// Seconds to wait for every site node to connect.
    #[arg(long, default_value_t = 120.0)]
    pub connect_timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn write_ready(path: &Path, site: std::net::SocketAddr) {
    // Nodes read only the site address; researchers have nothing to do here yet.
    let text = json!({ "site": site.to_string(), "researcher": "0.0.0.0:0", "ceremony": true });
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text.to_string()).and_then(|()| std::fs::rename(&tmp, path)).is_err() {
        eprintln!("seh coordinator: cannot write ready file {}", path.display());
    }
}

/// Runs `seh coordinator ceremony`.
pub fn run(a: CeremonyArgs) -> Result<()> {
    let c: CoordinatorToml = read_toml(&a.config)?;
    let at = |p: &Path| resolve(&a.config, p);
    let fed_path = at(&c.federation);
    let members = Arc::new(load_membership(&fed_path)?);
    let trust = crate::trust::TrustSource::load(&a.config, c.ca.as_ref())?;
    let id = load_identity(&at(&c.identity))?;
    anyhow::ensure!(id.name == members.coordinator_name, "identity `{}` is not the federation's coordinator", id.name);
    anyhow::ensure!(
        id.key.verifying_key() == members.coordinator_key,
        "identity key differs from {}",
        fed_path.display()
    );
    let roster = net_roster(&*members)?;
    let tls = trust.server(&id.tls, roster.clone())?;
    let ready_file = c.ready_file.as_ref().map(|p| at(p));
    let config = CeremonyConfig {
        members: members.clone(),
        key: id.key,
        tls,
        roster,
        site_addr: c.site_listen,
        audit_path: at(&c.audit_log),
        step_timeout: Duration::from_secs_f64(a.step_timeout.max(0.05)),
        connect_timeout: Duration::from_secs_f64(a.connect_timeout.max(0.0)),
    };
    let outcome = runtime()?.block_on(run_ceremony(config, |addr| {
        eprintln!("seh coordinator: key ceremony; sites on {addr}");
        if let Some(p) = &ready_file {
            write_ready(p, addr);
        }
    }))?;
    let r = &outcome.roster;
    seh_node::roster::write_atomic(&fed_path, "coordinator", r.text.as_bytes(), false)
        .with_context(|| format!("cannot write {}", fed_path.display()))?;
    let report = json!({
        "ceremony": r.ceremony,
        "federation": fed_path.display().to_string(),
        "group_key": r.group_key,
        "threshold": members.frost_threshold,
        "sites": members.sites().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "signers": r.signers,
        "confirmed": r.confirmed,
        "ceremony_ms": outcome.ceremony_ms,
        "connect_ms": outcome.connect_ms,
    });
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => println!(
            "key ceremony {} done in {:.0} ms: group key {}\nroster signed by {} (t = {}); confirmed by {}\nsigned federation file: {}",
            r.ceremony,
            outcome.ceremony_ms,
            r.group_key,
            r.signers.join(", "),
            members.frost_threshold,
            r.confirmed.join(", "),
            fed_path.display()
        ),
    }
    Ok(())
}

/// Runs the key ceremony of a `seh federate` working directory (configs from
/// `federate::write_federation`): starts `seh coordinator ceremony` and one node per site (they
/// start in enrolment mode), waits for the signed federation file, and returns the running nodes
/// (which go on to serve studies once a coordinator is up) and the ceremony report.
pub fn federate_ceremony(work: &Path, names: &[String]) -> Result<(Vec<ChildGuard>, Value)> {
    let config = work.join("config/coordinator.toml");
    let report_path = work.join("state/ceremony.json");
    let log_path = work.join("logs/ceremony.log");
    let _ = std::fs::remove_file(work.join("state/coordinator.ready.json"));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["coordinator", "ceremony", "--config"])
        .arg(&config)
        .args(["--format", "json"])
        .stdout(crate::workdir::create_private(&report_path)?)
        .stderr(crate::workdir::create_private(&log_path)?);
    let child = ChildGuard::spawn(cmd)?;
    let nodes: Vec<ChildGuard> = names.iter().map(|n| start_node(work, n)).collect::<Result<_>>()?;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        // A node that cannot load its data or policy exits at once: say why, now.
        crate::federate::check_nodes(work, names, &nodes, true)?;
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the key ceremony did not finish within 300 s; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!("the key ceremony failed ({status}): {}", log.trim());
    }
    let text = std::fs::read_to_string(&report_path)?;
    let report: Value =
        serde_json::from_str(&text).with_context(|| format!("ceremony report {}", report_path.display()))?;
    Ok((nodes, report))
}
