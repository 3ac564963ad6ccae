//! `seh study run|status|result`: the researcher's client (see `examples/researcher.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::RngCore;
use seh_net::{ClientTls, Frame, GrpcResearcherClient, NodeId, ResearcherClient, StudyStatus};
use seh_protocol::describe::DescribeResult;
use seh_protocol::federation::Federation;
use seh_protocol::hex;
use seh_protocol::release::{ReleaseDocument, SignedRelease};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use serde::Deserialize;

use crate::coordinator_cmd::{read_ready, read_toml, resolve, runtime};
use crate::keys::{load_federation, load_identity, Identity};

/// Options of a descriptive analysis (shared by `seh study run describe` and `seh federate describe`).
#[derive(Debug, Args, Clone)]
pub struct DescribeOpts {
    /// Numeric columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub columns: Vec<String>,
    /// Histogram on a public grid, `column:lo:hi:bins` (repeatable).
    #[arg(long = "histogram")]
    pub histograms: Vec<String>,
    /// Secure-aggregation threshold t (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<u32>,
}

impl DescribeOpts {
    /// The validated analysis.
    pub fn spec(&self) -> Result<DescribeSpec> {
        let mut histograms = Vec::new();
        for h in &self.histograms {
            let parts: Vec<&str> = h.split(':').collect();
            let [column, lo, hi, bins] = parts.as_slice() else {
                bail!("--histogram `{h}`: expected column:lo:hi:bins");
            };
            histograms.push(HistogramSpec {
                column: (*column).to_owned(),
                lo: lo.parse().with_context(|| format!("--histogram `{h}`: lo"))?,
                hi: hi.parse().with_context(|| format!("--histogram `{h}`: hi"))?,
                bins: bins.parse().with_context(|| format!("--histogram `{h}`: bins"))?,
            });
        }
        Ok(DescribeSpec { columns: self.columns.clone(), histograms })
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table.
    Text,
    /// JSON.
    Json,
}

/// The researcher's TOML configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearcherToml {
    /// `federation.json`.
    pub federation: PathBuf,
    /// CA certificate.
    pub ca: PathBuf,
    /// Researcher identity directory.
    pub identity: PathBuf,
    /// Coordinator researcher-API address, or …
    pub coordinator: Option<SocketAddr>,
    /// … the coordinator's ready file.
    pub coordinator_ready_file: Option<PathBuf>,
}

/// `seh study …`.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Submit a study and (unless --no-wait) print its verified result.
    Run(RunArgs),
    /// Print a study's status.
    Status(IdArgs),
    /// Fetch a study's release, verify its threshold signature and print it.
    Result(IdArgs),
}

/// `seh study run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Researcher configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Analysis (only `describe` so far).
    #[arg(value_parser = ["describe"])]
    pub analysis: String,
    /// Analysis options.
    #[command(flatten)]
    pub describe: DescribeOpts,
    /// Sites (default: every site of the federation).
    #[arg(long, value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Purpose of use (v3-ActReason code, default HRESCH): each site keeps only the rows whose
    /// patients' consent permits it, and refuses a purpose its policy does not serve.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Secure-sum back-end (`secagg` or `he`; each site's policy must allow it).
    #[arg(long, value_enum, default_value_t = crate::federate_models::AggregationArg::Secagg)]
    pub aggregation: crate::federate_models::AggregationArg,
    /// Return after submitting.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `seh study status|result`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Researcher configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Study id.
    #[arg(long)]
    pub id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A researcher session: identity, federation, and how to reach the coordinator.
#[derive(Debug)]
pub struct Researcher {
    /// The federation.
    pub fed: Federation,
    /// Identity.
    pub id: Identity,
    /// The purpose of use of the studies it submits (v3-ActReason code; `None`: HRESCH).
    pub purpose: Option<String>,
    tls: ClientTls,
    addr: Option<SocketAddr>,
    ready_file: Option<PathBuf>,
}

impl Researcher {
    /// From explicit paths.
    pub fn new(
        fed: &Path,
        ca: &Path,
        identity: &Path,
        addr: Option<SocketAddr>,
        ready: Option<PathBuf>,
    ) -> Result<Self> {
        let fed = load_federation(fed)?;
        let ca = std::fs::read(ca).with_context(|| format!("{}", ca.display()))?;
        let id = load_identity(identity)?;
        let coordinator = NodeId::parse(&fed.coordinator_name)?;
        let tls = ClientTls::new(&ca, Some(&id.tls), &coordinator, Some(fed.coordinator_key))?;
        Ok(Researcher { fed, id, purpose: None, tls, addr, ready_file: ready })
    }

    /// From a researcher TOML file.
    pub fn from_config(path: &Path) -> Result<Self> {
        let c: ResearcherToml = read_toml(path)?;
        let at = |p: &Path| resolve(path, p);
        Researcher::new(
            &at(&c.federation),
            &at(&c.ca),
            &at(&c.identity),
            c.coordinator,
            c.coordinator_ready_file.map(|p| at(&p)),
        )
    }

    /// Connects to the coordinator's researcher API.
    pub async fn connect(&self) -> Result<GrpcResearcherClient> {
        let addr = match (&self.addr, &self.ready_file) {
            (Some(a), _) => *a,
            (None, Some(p)) => read_ready(p)?.1,
            (None, None) => bail!("no coordinator address configured"),
        };
        Ok(GrpcResearcherClient::connect(addr, &self.tls).await?)
    }

    /// Signs and submits a study; returns its id.
    pub async fn submit(&self, analysis: Analysis, sites: Vec<String>, threshold: Option<u32>) -> Result<String> {
        self.submit_with(analysis, sites, threshold, Default::default()).await
    }

    /// [`Researcher::submit`] with the secure-sum back-end (`secagg` or `he`).
    pub async fn submit_with(
        &self,
        analysis: Analysis,
        sites: Vec<String>,
        threshold: Option<u32>,
        aggregation: seh_protocol::spec::Aggregation,
    ) -> Result<String> {
        self.submit_full(analysis, sites, threshold, aggregation, None).await
    }

    /// [`Researcher::submit_with`] plus differential privacy: every site adds its share of noise
    /// and charges `dp_epsilon` to this researcher's budget (describe studies only).
    pub async fn submit_full(
        &self,
        analysis: Analysis,
        sites: Vec<String>,
        threshold: Option<u32>,
        aggregation: seh_protocol::spec::Aggregation,
        dp_epsilon: Option<f64>,
    ) -> Result<String> {
        let sites = if sites.is_empty() { self.fed.sites().map(|s| s.name.clone()).collect() } else { sites };
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let spec = StudySpec {
            study_id: hex::encode(&raw),
            researcher: self.id.name.clone(),
            analysis,
            threshold: threshold.unwrap_or_else(|| StudySpec::default_threshold(sites.len())),
            aggregation,
            sites,
            purpose: self.purpose.clone().unwrap_or_else(|| seh_protocol::spec::DEFAULT_PURPOSE.into()),
            dp_epsilon,
            dp_delta: None,
        };
        let signed = SignedStudy::sign(&spec, &self.id.key)?;
        let frame = Frame::new(&spec.study_id, 0, "study/submit", serde_json::to_vec(&signed)?)?;
        Ok(self.connect().await?.submit(frame).await?)
    }

    /// Status (reconnecting each time, so a restarted coordinator is found again).
    pub async fn status(&self, id: &str) -> Result<StudyStatus> {
        Ok(self.connect().await?.status(id).await?)
    }

    /// Polls until the study ends or `timeout` passes; transient errors are retried.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<StudyStatus> {
        let start = Instant::now();
        loop {
            match self.status(id).await {
                Ok(s) if matches!(s.state.as_str(), "done" | "failed" | "refused") => return Ok(s),
                Ok(_) | Err(_) if start.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(200)).await,
                Ok(s) => bail!("study {id} still {} after {:.0} s", s.state, timeout.as_secs_f64()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Fetches the release and verifies its FROST signature under the federation's group key.
    pub async fn result(&self, id: &str) -> Result<(SignedRelease, ReleaseDocument)> {
        let frame = self.connect().await?.result(id).await?;
        let release: SignedRelease = serde_json::from_slice(frame.payload()).context("release does not parse")?;
        let doc = release.verify(&self.fed.group_key()).context("release signature does not verify")?;
        anyhow::ensure!(doc.study_id == id, "release names another study");
        Ok((release, doc))
    }
}

/// Prints a verified release (and optional federation metadata).
pub fn print_release(release: &SignedRelease, doc: &ReleaseDocument, meta: Option<serde_json::Value>, format: Format) {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "study_id": doc.study_id,
                "result": doc.result,
                "accepted": doc.accepted,
                "contributors": doc.contributors,
                "min_cell_count": doc.min_cell_count,
                "signers": release.signers,
                "signature": release.signature,
                "signature_verified": true,
                "federation": meta,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            println!("Secure descriptive statistics — study {}", doc.study_id);
            print_describe(&doc.result);
            println!();
            println!("contributing sites: {}", doc.contributors.join(", "));
            println!("minimum cell count: {} ({} cells suppressed)", doc.min_cell_count, doc.result.suppressed);
            println!("release signed by {} (FROST threshold signature verified)", release.signers.join(", "));
            if let Some(m) = meta {
                println!("federation: {m}");
            }
        }
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.6}"))
}

fn print_describe(r: &DescribeResult) {
    println!("{:<20} {:>8} {:>14} {:>14} {:>14}", "column", "n", "mean", "variance", "sd");
    for c in &r.columns {
        let n = c.n.map_or_else(|| "<min".to_owned(), |n| n.to_string());
        println!("{:<20} {:>8} {:>14} {:>14} {:>14}", c.column, n, opt(c.mean), opt(c.variance), opt(c.sd));
    }
    for h in &r.histograms {
        let cell = |c: &Option<u64>| c.map_or_else(|| "<min".to_owned(), |c| c.to_string());
        let bins = h.counts.len().max(1) as f64;
        println!("\nhistogram of {} on [{}, {}]:", h.column, h.lo, h.hi);
        println!("  below {:>10}: {}", h.lo, cell(&h.below));
        for (k, c) in h.counts.iter().enumerate() {
            let a = h.lo + (h.hi - h.lo) * k as f64 / bins;
            let b = h.lo + (h.hi - h.lo) * (k + 1) as f64 / bins;
            println!("  [{a:>9.4}, {b:>9.4}{}: {}", if k + 1 == h.counts.len() { "]" } else { ")" }, cell(c));
        }
        println!("  above {:>10}: {}", h.hi, cell(&h.above));
    }
}

/// Runs `seh study …`.
pub fn run(cmd: StudyCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        StudyCommand::Run(a) => {
            let mut r = Researcher::from_config(&a.config)?;
            r.purpose = a.purpose.clone();
            let analysis = Analysis::Describe(a.describe.spec()?);
            rt.block_on(async {
                let id = r.submit_with(analysis, a.sites.clone(), a.describe.threshold, a.aggregation.spec()).await?;
                eprintln!("study {id} submitted");
                if a.no_wait {
                    println!("{id}");
                    return Ok(());
                }
                let s = r.wait(&id, Duration::from_secs_f64(a.timeout)).await?;
                if s.state != "done" {
                    bail!("study {id} {}: {}", s.state, s.detail);
                }
                let (release, doc) = r.result(&id).await?;
                print_release(&release, &doc, serde_json::from_str(&s.detail).ok(), a.format);
                Ok(())
            })
        }
        StudyCommand::Status(a) => {
            let r = Researcher::from_config(&a.config)?;
            let s = rt.block_on(r.status(&a.id))?;
            match a.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "study_id": s.study_id, "state": s.state, "round": s.round, "detail": serde_json::from_str::<serde_json::Value>(&s.detail).unwrap_or_default() })
                ),
                Format::Text => println!("study {}: {} (round {}) {}", s.study_id, s.state, s.round, s.detail),
            }
            Ok(())
        }
        StudyCommand::Result(a) => {
            let r = Researcher::from_config(&a.config)?;
            let (release, doc) = rt.block_on(r.result(&a.id))?;
            print_release(&release, &doc, None, a.format);
            Ok(())
        }
    }
}
