//! The options of each model analysis, shared by `seh federate <analysis>` (a local federation)
//! and `seh study run <analysis>` (separately run parties): the same flags build the same
//! [`Analysis`], so both paths submit the same study.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use seh_protocol::fed::{CoxMode, CoxSpec, GlmSpec, KmSpec};
use seh_protocol::spec::Analysis;

/// Secure-sum back-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AggregationArg {
    /// SecAgg+ pairwise masking with Shamir-shared seeds (default).
    Secagg,
    /// Threshold homomorphic encryption (BFV).
    He,
}

impl AggregationArg {
    /// The study spec's back-end.
    pub fn spec(self) -> seh_protocol::spec::Aggregation {
        match self {
            AggregationArg::Secagg => seh_protocol::spec::Aggregation::Secagg,
            AggregationArg::He => seh_protocol::spec::Aggregation::He,
        }
    }
}

/// Cox ties method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FedTies {
    /// Efron's approximation.
    Efron,
    /// Breslow's approximation.
    Breslow,
    /// The exact partial likelihood (not available in a federation).
    Exact,
}

/// Pooled-exact or site-stratified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One partial likelihood over the pooled rows (R `coxph` on pooled data).
    Pooled,
    /// A baseline hazard per site (R `coxph(... + strata(site))`).
    Stratified,
}

/// The options of a federated Cox model.
#[derive(Debug, Args, Clone)]
pub struct CoxOpts {
    /// R-style model formula.
    #[arg(long)]
    pub formula: String,
    /// How tied event times are handled.
    #[arg(long, value_enum, default_value_t = FedTies::Efron)]
    pub ties: FedTies,
    /// Pooled-exact or site-stratified.
    #[arg(long, value_enum, default_value_t = ModeArg::Pooled)]
    pub mode: ModeArg,
    /// Smallest released risk set; event times with fewer rows at risk are merged (1: never merge, exact).
    #[arg(long, default_value_t = 5)]
    pub min_risk_set: u64,
    /// Public time resolution of the event-time histogram (default: a power of ten from the range).
    #[arg(long)]
    pub time_resolution: Option<f64>,
    /// Time transform `f(x, t)` of tt() terms (as `seh fit cox --tt`); pooled mode evaluates it
    /// at the securely released event times, stratified mode at each site's own event times.
    #[arg(long, value_name = "EXPR")]
    pub tt: Option<String>,
}

impl CoxOpts {
    /// The validated analysis.
    pub fn analysis(&self) -> Result<Analysis> {
        if let Some(tt) = &self.tt {
            seh_stats::ttexpr::TtExpr::parse(tt).map_err(|e| anyhow::anyhow!("--tt: {e}"))?;
        }
        let ties = match self.ties {
            FedTies::Efron => seh_stats::cox::Ties::Efron,
            FedTies::Breslow => seh_stats::cox::Ties::Breslow,
            FedTies::Exact => bail!("--ties exact is not available in a federation; use efron or breslow"),
        };
        if self.min_risk_set == 0 {
            bail!("--min-risk-set must be at least 1");
        }
        let mode = match self.mode {
            ModeArg::Pooled => CoxMode::Pooled,
            ModeArg::Stratified => CoxMode::Stratified,
        };
        Ok(Analysis::Cox(CoxSpec {
            formula: self.formula.clone(),
            ties,
            mode,
            min_risk_set: self.min_risk_set,
            time_resolution: self.time_resolution,
            tt: self.tt.clone(),
        }))
    }
}

/// The options of a federated Kaplan–Meier analysis.
#[derive(Debug, Args, Clone)]
pub struct KmOpts {
    /// R-style formula, `Surv(time, status) ~ 1` or `~ group`.
    #[arg(long)]
    pub formula: String,
    /// Confidence interval transformation (`log`, `log-log`, `plain`).
    #[arg(long, default_value = "log")]
    pub conf_type: String,
    /// Public time resolution (default: a power of ten from the range).
    #[arg(long)]
    pub time_resolution: Option<f64>,
}

impl KmOpts {
    /// The analysis.
    pub fn analysis(&self) -> Analysis {
        Analysis::Km(KmSpec {
            formula: self.formula.clone(),
            conf_type: self.conf_type.clone(),
            time_resolution: self.time_resolution,
        })
    }
}

/// The options of a federated generalised linear model.
#[derive(Debug, Args, Clone)]
pub struct GlmOpts {
    /// R-style model formula.
    #[arg(long)]
    pub formula: String,
    /// `binomial`, `gaussian` or `poisson`.
    #[arg(long)]
    pub family: String,
}

impl GlmOpts {
    /// The analysis.
    pub fn analysis(&self) -> Analysis {
        Analysis::Glm(GlmSpec { formula: self.formula.clone(), family: self.family.clone() })
    }
}
