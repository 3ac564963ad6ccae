//! `seh federate <analysis> …`: a whole federation on this machine — a coordinator and one node
//! per site as separate OS processes on 127.0.0.1 (OS-assigned ports), real mTLS and SecAgg+ —
//! runs one study and prints the verified result with federation metadata. All keys, configs,
//! state, logs and audit files stay in `--workdir` (a fresh temporary directory otherwise).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use seh_policy::policy::{trial_policy_toml, AnalysisKind};
use seh_protocol::hex;
use seh_protocol::spec::Analysis;
use seh_stats::DataFrame;

use crate::coordinator_cmd::runtime;
use crate::keys::{init, KeysInitArgs};
pub use crate::lifecycle::ChildGuard;
use crate::study::{print_release, DescribeOpts, Format, Researcher};

/// `seh federate …`.
#[derive(Debug, Subcommand)]
pub enum FederateCommand {
    /// Secure descriptive statistics.
    Describe(FederateArgs),
    /// Cox proportional hazards, pooled-exact or site-stratified (R `coxph`).
    Cox(crate::federate_models::FedCoxArgs),
    /// Kaplan-Meier curves and the log-rank test (R `survfit` + `survdiff`).
    Km(crate::federate_models::FedKmArgs),
    /// Generalised linear model by IRLS (R `glm`).
    Glm(crate::federate_models::FedGlmArgs),
}

/// `seh federate describe` flags.
#[derive(Debug, Args)]
pub struct FederateArgs {
    /// Data and federation flags.
    #[command(flatten)]
    pub common: FedCommon,
    /// Analysis options.
    #[command(flatten)]
    pub describe: DescribeOpts,
    /// Secure-sum back-end.
    #[arg(long, value_enum, default_value_t = crate::federate_models::AggregationArg::Secagg)]
    pub aggregation: crate::federate_models::AggregationArg,
}

/// Data and federation flags shared by every `seh federate` analysis.
#[derive(Debug, Args)]
pub struct FedCommon {
    /// A site and its CSV file, `NAME=FILE.csv` (repeatable) …
    #[arg(long = "site")]
    pub sites: Vec<String>,
    /// … or one CSV file …
    #[arg(long, conflicts_with = "sites")]
    pub data: Option<PathBuf>,
    /// … split into sites by the values of this (numeric) column.
    #[arg(long, requires = "data")]
    pub split_by: Option<String>,
    /// A site served from its SQLite site store, `NAME=STORE.sqlite` (repeatable; with
    /// `--table`; the secret is `STORE.sqlite.secret`). Consent comes from the store's FHIR
    /// `Consent` records and opt-out list.
    #[arg(long = "site-store", conflicts_with = "data", requires = "table")]
    pub site_stores: Vec<String>,
    /// The store table every `--site-store` site serves (a cohort from `seh data cohort`).
    #[arg(long)]
    pub table: Option<String>,
    /// The study's purpose of use (v3-ActReason code; default HRESCH). Every site's policy
    /// serves it, and each site's consent filter keeps the rows permitted for it.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Directory for keys, configs, state, logs and audit files (default: a new temp dir).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Minimum cell count of every site's policy. Below 3 (the DataSHIELD floor) the generated
    /// policies are marked `local_verification`: for checking against R on rows you hold.
    #[arg(long, default_value_t = 5)]
    pub min_cell_count: u64,
    /// Let every site's policy allow exact event-time grids (pooled Cox and Kaplan–Meier then equal
    /// the pooled fit; the union of event times is revealed to the study's parties). The generated
    /// policies are otherwise the example policy's (which refuses exact grids).
    #[arg(long)]
    pub allow_event_times: bool,
    /// Differential privacy (describe): each site adds its share of discrete Gaussian noise
    /// calibrated to this ε (δ = 1e-6) and charges it to the researcher's budget.
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
    /// Seconds one protocol step waits for sites.
    #[arg(long, default_value_t = 10.0)]
    pub round_timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fault injection (tests): `SITE:N` makes that site's node exit after sending N messages.
    #[arg(long, hide = true)]
    pub debug_exit_site: Option<String>,
    /// Fault injection (tests): the coordinator exits after persisting N checkpoints (once);
    /// `seh federate` restarts it, and it resumes the study from SQLite.
    #[arg(long, hide = true)]
    pub debug_coordinator_exit_after: Option<u64>,
}

fn site_name(v: f64) -> String {
    let t = format!("{v}").replace(['.', '-'], "x");
    format!("site-{}", t.to_ascii_lowercase())
}

/// The CSV file of every site, (name, path): a `--site NAME=FILE` as given (read in place by its
/// node, so its errors name the researcher's file), a `--split-by` part written (0600) under `dir`.
pub fn prepare_sites(a: &FedCommon, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    crate::workdir::create_dir_private(dir)?;
    if let (Some(data), Some(col)) = (&a.data, &a.split_by) {
        let text = std::fs::read_to_string(data).with_context(|| format!("cannot read {}", data.display()))?;
        let frame = DataFrame::from_csv_bytes(text.as_bytes(), &data.display().to_string())?;
        let key = frame.column(col).with_context(|| format!("--split-by `{col}`"))?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().context("empty CSV")?;
        let rows: Vec<&str> = lines.collect();
        if rows.len() != frame.nrows() {
            bail!("{}: cannot split a CSV whose records span lines", data.display());
        }
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (row, v) in rows.iter().zip(key) {
            if v.is_nan() {
                bail!("--split-by `{col}` has missing values");
            }
            groups.entry(site_name(*v)).or_default().push(row);
        }
        let mut out = Vec::new();
        for (name, rows) in groups {
            let path = dir.join(format!("{name}.csv"));
            crate::workdir::write_private(&path, format!("{header}\n{}\n", rows.join("\n")))?;
            out.push((name, path));
        }
        return Ok(out);
    }
    if a.sites.is_empty() && a.site_stores.is_empty() {
        bail!(
            "give --site NAME=FILE.csv or --site-store NAME=STORE.sqlite (repeatable), \
             or --data FILE.csv --split-by COLUMN"
        );
    }
    let mut out: Vec<(String, PathBuf)> = store_sites(a)?.into_iter().collect();
    for s in &a.sites {
        let (name, file) = s.split_once('=').with_context(|| format!("--site `{s}`: expected NAME=FILE.csv"))?;
        if out.iter().any(|(n, _)| n == name) {
            bail!("--site `{s}`: site `{name}` is named twice");
        }
        let path = std::fs::canonicalize(file).with_context(|| format!("--site `{s}`: cannot read {file}"))?;
        out.push((name.to_owned(), path));
    }
    Ok(out)
}

/// The `--site-store NAME=STORE` sites, by name, with absolute store paths (the nodes read the
/// stores in place; they are not copied).
pub fn store_sites(a: &FedCommon) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for s in &a.site_stores {
        let (name, file) =
            s.split_once('=').with_context(|| format!("--site-store `{s}`: expected NAME=STORE.sqlite"))?;
        let path = std::fs::canonicalize(file).with_context(|| format!("--site-store `{s}`: no store {file}"))?;
        if out.insert(name.to_owned(), path).is_some() {
            bail!("--site-store `{s}`: site `{name}` is named twice");
        }
    }
    Ok(out)
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

fn spawn(args: &[&str], log: &Path) -> Result<ChildGuard> {
    let exe = std::env::current_exe()?;
    let out = crate::workdir::create_private(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(exe);
    cmd.args(args).stdout(out).stderr(err);
    ChildGuard::spawn(cmd)
}

/// Writes keys and configs for `sites` into `work`; returns the coordinator config path.
pub fn write_federation(
    work: &Path,
    sites: &[(String, PathBuf)],
    threshold: Option<u32>,
    a: &FedCommon,
    policy_min: u64,
) -> Result<PathBuf> {
    let keys = work.join("keys");
    let names: Vec<String> = sites.iter().map(|(n, _)| n.clone()).collect();
    init(&KeysInitArgs {
        dir: keys.clone(),
        sites: names,
        researchers: vec!["researcher".into()],
        coordinator: "coordinator".into(),
        threshold: threshold.map(|t| t as u16),
        name: "seh federate".into(),
    })?;
    for d in ["state", "logs", "config"] {
        crate::workdir::create_dir_private(&work.join(d))?;
    }
    let fed = keys.join("federation.json");
    let ca = keys.join("ca.der");
    let ready = work.join("state/coordinator.ready.json");
    let coordinator = work.join("config/coordinator.toml");
    std::fs::write(
        &coordinator,
        format!(
            "federation = {}\nca = {}\nidentity = {}\nsite_listen = \"127.0.0.1:0\"\nresearcher_listen = \"127.0.0.1:0\"\n\
             state_db = {}\naudit_log = {}\nready_file = {}\nround_timeout_secs = {}\nconnect_grace_secs = 30\n",
            toml_path(&fed),
            toml_path(&ca),
            toml_path(&keys.join("coordinator")),
            toml_path(&work.join("state/coordinator.sqlite")),
            toml_path(&work.join("state/coordinator.audit.jsonl")),
            toml_path(&ready),
            a.round_timeout,
        ),
    )?;
    if let Some(n) = a.debug_coordinator_exit_after {
        // A separate config with the fault injected: the first coordinator process uses it,
        // the restarted one the clean config.
        let text = std::fs::read_to_string(&coordinator)?;
        std::fs::write(
            work.join("config/coordinator-faulty.toml"),
            format!("{text}debug_exit_after_checkpoints = {n}\n"),
        )?;
    }
    let exit_site = a.debug_exit_site.as_ref().and_then(|s| s.split_once(':'));
    let researcher_key = crate::keys::load_identity(&keys.join("researcher"))?.key.verifying_key();
    // Every site gets the same permissive policy file at the DataSHIELD floors (seh-policy).
    let kinds = [AnalysisKind::Descriptive, AnalysisKind::Cox, AnalysisKind::Km, AnalysisKind::Glm];
    let researchers = [("researcher".to_owned(), hex::encode(researcher_key.as_bytes()))];
    let mut purposes = vec![seh_policy::consent::HRESCH];
    purposes.extend(a.purpose.as_deref().filter(|p| *p != seh_policy::consent::HRESCH));
    let policy_text = trial_policy_toml(&researchers, &kinds, policy_min, &purposes, a.allow_event_times);
    let stores = store_sites(a)?;
    seh_policy::SitePolicy::from_toml_str(&policy_text, "site policy")
        .map_err(|e| anyhow::anyhow!("the minimum count {policy_min} is not a valid site policy: {e}"))?;
    for (name, data) in sites {
        let policy = work.join(format!("config/{name}.policy.toml"));
        std::fs::write(&policy, &policy_text)?;
        let debug = match exit_site.filter(|(s, _)| s == name) {
            Some((_, n)) => format!("debug_exit_after_messages = {n}\n"),
            None => String::new(),
        };
        // A store site serves `--table` of its store (a `[store]` table, last in the file).
        let (data_line, store_table) = match (stores.get(name), &a.table) {
            (Some(store), Some(table)) => {
                (String::new(), format!("\n[store]\npath = {}\ntable = {table:?}\n", toml_path(store)))
            }
            (Some(_), None) => bail!("--site-store needs --table"),
            (None, _) => (format!("data = {}\n", toml_path(data)), String::new()),
        };
        std::fs::write(
            work.join(format!("config/{name}.toml")),
            format!(
                "federation = {}\nca = {}\nidentity = {}\ncoordinator_ready_file = {}\n{data_line}audit_log = {}\n\
                 state_file = {}\npolicy_file = {}\nbudget_ledger = {}\n{debug}{store_table}",
                toml_path(&fed),
                toml_path(&ca),
                toml_path(&keys.join(name)),
                toml_path(&ready),
                toml_path(&work.join(format!("state/{name}.audit.jsonl"))),
                toml_path(&work.join(format!("state/{name}.reveals.json"))),
                toml_path(&policy),
                toml_path(&work.join(format!("state/{name}.budget.json"))),
            ),
        )?;
    }
    std::fs::write(
        work.join("config/researcher.toml"),
        format!(
            "federation = {}\nca = {}\nidentity = {}\ncoordinator_ready_file = {}\n",
            toml_path(&fed),
            toml_path(&ca),
            toml_path(&keys.join("researcher")),
            toml_path(&ready)
        ),
    )?;
    Ok(coordinator)
}

/// Starts the coordinator and waits (bounded) for its ready file.
pub fn start_coordinator(work: &Path, log_name: &str, config_name: &str) -> Result<ChildGuard> {
    let config = work.join("config").join(config_name);
    let ready = work.join("state/coordinator.ready.json");
    let _ = std::fs::remove_file(&ready);
    let child = spawn(&["coordinator", "--config", &config.display().to_string()], &work.join("logs").join(log_name))?;
    let start = Instant::now();
    while !ready.exists() {
        if let Some(status) = child.try_wait()? {
            bail!("the coordinator stopped ({status}): {}", last_error(&work.join("logs").join(log_name)));
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("coordinator did not start within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Stops the run with the site's own error when a node has exited: with a failure status (a site
/// that cannot load its data, policy or store exits at once, naming the file and line), or at all
/// when `any_exit` (during the key ceremony no node has a reason to end). A node that ends
/// cleanly in a study (fault injection) is left to the protocol's dropout handling.
pub fn check_nodes(work: &Path, names: &[String], nodes: &[ChildGuard], any_exit: bool) -> Result<()> {
    for (name, node) in names.iter().zip(nodes) {
        if let Some(status) = node.try_wait()? {
            if any_exit || !status.success() {
                bail!("site `{name}` stopped ({status}): {}", last_error(&work.join(format!("logs/{name}.log"))));
            }
        }
    }
    Ok(())
}

/// What a stopped process said last: its `seh: error:` line, else the end of its log (read
/// before a temporary workdir is removed with the log).
pub fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.iter().rev().find_map(|l| l.strip_prefix("seh: error:")) {
        Some(e) => e.trim().to_owned(),
        None if lines.is_empty() => format!("nothing in its log {}", log.display()),
        None => lines[lines.len().saturating_sub(5)..].join("\n"),
    }
}

/// Starts the node of site `name`.
pub fn start_node(work: &Path, name: &str) -> Result<ChildGuard> {
    let config = work.join(format!("config/{name}.toml"));
    spawn(&["node", "--config", &config.display().to_string()], &work.join(format!("logs/{name}.log")))
}

/// What one federated run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The verified signed release.
    pub release: seh_protocol::release::SignedRelease,
    /// Its document.
    pub doc: seh_protocol::release::ReleaseDocument,
    /// Federation metadata (sites, rounds, traffic, seconds, workdir).
    pub meta: serde_json::Value,
}

/// Runs `seh federate …`.
pub fn run(cmd: FederateCommand) -> Result<()> {
    let a = match cmd {
        FederateCommand::Describe(a) => a,
        FederateCommand::Cox(c) => return crate::federate_models::run_cox(c),
        FederateCommand::Km(k) => return crate::federate_models::run_km(k),
        FederateCommand::Glm(g) => return crate::federate_models::run_glm(g),
    };
    let analysis = Analysis::Describe(a.describe.spec()?);
    let agg = a.aggregation.spec();
    let o = run_study_with(&a.common, analysis, a.describe.threshold, a.common.min_cell_count, agg)?;
    print_release(&o.release, &o.doc, Some(o.meta), a.common.format);
    Ok(())
}

/// Sets up keys, configs, the coordinator and one node per site, runs one study and returns the
/// verified release. `policy_min` is every site's minimum cell count / risk-set size.
pub fn run_study(a: &FedCommon, analysis: Analysis, threshold: Option<u32>, policy_min: u64) -> Result<RunOutcome> {
    run_study_with(a, analysis, threshold, policy_min, Default::default())
}

/// [`run_study`] with the secure-sum back-end (`secagg` or `he`).
pub fn run_study_with(
    a: &FedCommon,
    analysis: Analysis,
    threshold: Option<u32>,
    policy_min: u64,
    aggregation: seh_protocol::spec::Aggregation,
) -> Result<RunOutcome> {
    // Declared first so it is removed (when temporary) after the processes below are stopped.
    let wd = crate::workdir::Workdir::for_federation(a.workdir.as_deref(), "seh-federate")?;
    let work = wd.path().to_path_buf();
    let sites = prepare_sites(a, &work.join("data"))?;
    write_federation(&work, &sites, threshold, a, policy_min)?;
    let names: Vec<String> = sites.iter().map(|(n, _)| n.clone()).collect();
    // The sites' key ceremony: the nodes start in enrolment mode, generate the FROST key and sign
    // the roster, then serve the study once the coordinator below is up.
    let (nodes, ceremony) = crate::ceremony_cmd::federate_ceremony(&work, &names)?;
    let faulty = a.debug_coordinator_exit_after.is_some();
    let mut coordinator = start_coordinator(
        &work,
        "coordinator.log",
        if faulty { "coordinator-faulty.toml" } else { "coordinator.toml" },
    )?;
    let mut researcher = Researcher::from_config(&work.join("config/researcher.toml"))?;
    researcher.purpose = a.purpose.clone();
    let started = Instant::now();
    let mut restarts = 0u32;
    let (release, doc, status) = runtime()?.block_on(async {
        let id = researcher.submit_full(analysis, names.clone(), threshold, aggregation, a.dp_epsilon).await?;
        let s = loop {
            // A site that stopped with an error ends the run at once, with its message.
            check_nodes(&work, &names, &nodes, false)?;
            // Supervise the coordinator: a coordinator that died is restarted and resumes from SQLite.
            if coordinator.try_wait()?.is_some() {
                restarts += 1;
                if restarts > 3 {
                    bail!("the coordinator keeps exiting; see {}", work.join("logs").display());
                }
                eprintln!("seh federate: coordinator exited; restarting it (it resumes the study)");
                coordinator = start_coordinator(&work, &format!("coordinator-{restarts}.log"), "coordinator.toml")?;
            }
            match researcher.status(&id).await {
                Ok(s) if matches!(s.state.as_str(), "done" | "failed" | "refused") => break s,
                _ if started.elapsed() > Duration::from_secs(3600) => bail!("study {id} did not finish within 3600 s"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        if s.state != "done" {
            bail!("study {id} {}: {}", s.state, s.detail);
        }
        let (release, doc) = researcher.result(&id).await?;
        Ok((release, doc, s))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if a.workdir.is_some() {
        // The kept workdir is for inspection: let the sites co-sign the coordinator's audit-log
        // head (it happens after the release) before the processes are stopped.
        wait_for_head_cosign(&work.join("state/coordinator.audit.jsonl"), Duration::from_secs(15));
    }
    let detail: serde_json::Value = serde_json::from_str(&status.detail).unwrap_or_default();
    let meta = serde_json::json!({
        "sites": names,
        "aggregation": aggregation.name(),
        "rounds": status.round,
        "coordinator_restarts": restarts,
        "ceremony_ms": ceremony.get("ceremony_ms"),
        "traffic": detail.get("traffic"),
        "seconds": seconds,
        "workdir": wd.report(),
    });
    Ok(RunOutcome { release, doc, meta })
}

/// Waits (at most `limit`) until the coordinator's audit log at `log` has a `head_cosign` entry
/// or an entry saying the head was not co-signed. Gives up silently: the release stands either way.
fn wait_for_head_cosign(log: &std::path::Path, limit: Duration) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("\"kind\":\"head_cosign\"") || text.contains("audit-log head not co-signed") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("seh federate: the sites had not co-signed the coordinator's log head after {limit:?}");
}
