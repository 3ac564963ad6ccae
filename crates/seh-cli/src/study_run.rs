//! `seh study run describe|cox|km|glm`: a researcher submits one signed study to a coordinator
//! that separately run site nodes serve, waits for it, verifies the sites' FROST signature on the
//! release and prints it — the same analyses, flags and output as `seh federate …`, which runs
//! the same client over a federation it starts on this machine.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use seh_protocol::spec::Analysis;

use crate::analysis_opts::{AggregationArg, CoxOpts, GlmOpts, KmOpts};
use crate::study::{print_release, DescribeOpts, Format, Researcher};

/// `seh study run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Flags every analysis takes (before or after the analysis name).
    #[command(flatten)]
    pub common: RunCommon,
    /// The analysis.
    #[command(subcommand)]
    pub analysis: RunAnalysis,
}

/// Flags of `seh study run` shared by every analysis.
#[derive(Debug, Args)]
pub struct RunCommon {
    /// Researcher configuration (TOML; see `examples/researcher.toml`). Required.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Sites (default: every site of the federation).
    #[arg(long, value_delimiter = ',', global = true)]
    pub sites: Vec<String>,
    /// Purpose of use (v3-ActReason code, default HRESCH): each site keeps only the rows whose
    /// patients' consent permits it, and refuses a purpose its policy does not serve.
    #[arg(long, global = true)]
    pub purpose: Option<String>,
    /// Secure-sum back-end (`secagg` or `he`; each site's policy must allow it).
    #[arg(long, value_enum, default_value_t = AggregationArg::Secagg, global = true)]
    pub aggregation: AggregationArg,
    /// Return after submitting (print the study id).
    #[arg(long, global = true)]
    pub no_wait: bool,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 300.0, global = true)]
    pub timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
}

/// The analysis of `seh study run`.
#[derive(Debug, Subcommand)]
pub enum RunAnalysis {
    /// Secure descriptive statistics (counts, means, variances, histograms).
    Describe(RunDescribe),
    /// Cox proportional hazards, pooled-exact or site-stratified (R `coxph`).
    Cox(RunModel<CoxOpts>),
    /// Kaplan-Meier curves and the log-rank test (R `survfit` + `survdiff`).
    Km(RunModel<KmOpts>),
    /// Generalised linear model by IRLS (R `glm`).
    Glm(RunModel<GlmOpts>),
}

/// `seh study run describe`.
#[derive(Debug, Args)]
pub struct RunDescribe {
    /// Analysis options.
    #[command(flatten)]
    pub describe: DescribeOpts,
    /// Differential privacy: each site adds its share of discrete Gaussian noise calibrated to
    /// this ε and charges it to your budget at that site.
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
}

/// `seh study run cox|km|glm`.
#[derive(Debug, Args)]
pub struct RunModel<T: Args> {
    /// The model's options (as `seh federate`).
    #[command(flatten)]
    pub opts: T,
    /// Secure-aggregation threshold t (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<u32>,
}

impl RunAnalysis {
    /// The public time resolution the researcher asked for, if any.
    fn time_resolution(&self) -> Option<f64> {
        match self {
            RunAnalysis::Cox(m) => m.opts.time_resolution,
            RunAnalysis::Km(m) => m.opts.time_resolution,
            _ => None,
        }
    }

    /// The study this analysis asks for.
    fn study(&self) -> Result<Planned> {
        let model = |analysis: Analysis, threshold, formula: &str| Planned {
            analysis,
            threshold,
            dp_epsilon: None,
            formula: Some(formula.to_owned()),
        };
        Ok(match self {
            RunAnalysis::Describe(d) => Planned {
                analysis: Analysis::Describe(d.describe.spec()?),
                threshold: d.describe.threshold,
                dp_epsilon: d.dp_epsilon,
                formula: None,
            },
            RunAnalysis::Cox(m) => model(m.opts.analysis()?, m.threshold, &m.opts.formula),
            RunAnalysis::Km(m) => model(m.opts.analysis(), m.threshold, &m.opts.formula),
            RunAnalysis::Glm(m) => model(m.opts.analysis(), m.threshold, &m.opts.formula),
        })
    }
}

/// What one `seh study run` submits.
struct Planned {
    analysis: Analysis,
    threshold: Option<u32>,
    dp_epsilon: Option<f64>,
    /// The model formula (models only), for the output.
    formula: Option<String>,
}

/// Runs `seh study run …`.
pub fn run(rt: &tokio::runtime::Runtime, a: RunArgs) -> Result<()> {
    let c = &a.common;
    let config = c.config.as_ref().context("seh study run needs --config RESEARCHER.toml")?;
    let mut r = Researcher::from_config(config)?;
    r.purpose = c.purpose.clone();
    let Planned { analysis, threshold, dp_epsilon, formula } = a.analysis.study()?;
    let aggregation = c.aggregation.spec();
    rt.block_on(async {
        let started = Instant::now();
        let id = r.submit_full(analysis, c.sites.clone(), threshold, aggregation, dp_epsilon).await?;
        eprintln!("study {id} submitted");
        if c.no_wait {
            println!("{id}");
            return Ok(());
        }
        let show = |s: &seh_net::StudyStatus, secs: f64| match c.format {
            Format::Json => eprintln!(
                "{}",
                serde_json::json!({ "study_id": s.study_id, "state": s.state, "round": s.round, "seconds": secs })
            ),
            Format::Text => eprintln!("study {}: {} (round {}) after {secs:.1} s", s.study_id, s.state, s.round),
        };
        let s = r.wait_with(&id, Duration::from_secs_f64(c.timeout), show).await?;
        if s.state != "done" {
            bail!("study {id} {}: {}", s.state, s.detail);
        }
        let (release, doc) = r.result(&id).await?;
        let detail: serde_json::Value = serde_json::from_str(&s.detail).unwrap_or_default();
        match formula {
            None => print_release(&release, &doc, Some(detail), c.format),
            Some(formula) => {
                let requested: Vec<String> =
                    if c.sites.is_empty() { r.fed.sites().map(|s| s.name.clone()).collect() } else { c.sites.clone() };
                let mut meta = serde_json::json!({
                    "sites": requested,
                    "aggregation": aggregation.name(),
                    "rounds": s.round,
                    "traffic": detail.get("traffic"),
                    "seconds": started.elapsed().as_secs_f64(),
                });
                crate::federate_models::note_requests(&mut meta, a.analysis.time_resolution());
                crate::federate_models::print_model(&release, &doc, &meta, c.format, &formula)?;
            }
        }
        Ok(())
    })
}
