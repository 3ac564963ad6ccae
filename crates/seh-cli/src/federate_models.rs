//! `seh federate cox|km|glm`: the flags of `seh fit cox|km|glm` plus the federation's
//! (`--mode`, `--min-risk-set`, `--aggregation`), run over a local federation of processes.
//! Output: the `seh fit` JSON of the model plus a `federation` object (mode, released grid,
//! rounds, traffic per site, seconds, signers).

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use seh_protocol::fed::{CoxMode, CoxSpec, GlmSpec, KmSpec};
use seh_protocol::spec::Analysis;
use serde_json::Value;

use crate::federate::{run_study_with, FedCommon, RunOutcome};
use crate::study::Format;

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

/// Flags shared by the model analyses.
#[derive(Debug, Args)]
pub struct ModelCommon {
    /// R-style model formula.
    #[arg(long)]
    pub formula: String,
    /// Secure-sum back-end.
    #[arg(long, value_enum, default_value_t = AggregationArg::Secagg)]
    pub aggregation: AggregationArg,
    /// Secure-aggregation threshold t (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<u32>,
    /// Data and federation flags.
    #[command(flatten)]
    pub fed: FedCommon,
}

/// `seh federate cox`.
#[derive(Debug, Args)]
pub struct FedCoxArgs {
    /// Model and federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
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

/// `seh federate km`.
#[derive(Debug, Args)]
pub struct FedKmArgs {
    /// Model and federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
    /// Confidence interval transformation (`log`, `log-log`, `plain`).
    #[arg(long, default_value = "log")]
    pub conf_type: String,
    /// Public time resolution (default: a power of ten from the range).
    #[arg(long)]
    pub time_resolution: Option<f64>,
}

/// `seh federate glm`.
#[derive(Debug, Args)]
pub struct FedGlmArgs {
    /// Model and federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
    /// `binomial`, `gaussian` or `poisson`.
    #[arg(long)]
    pub family: String,
}

fn check_common(m: &ModelCommon) -> Result<()> {
    // `--dp-epsilon` is a FedCommon flag (describe); model fits refuse it.
    if m.fed.dp_epsilon.is_some() {
        bail!("--dp-epsilon: differential privacy is not available yet for federated model fits");
    }
    Ok(())
}

/// The Cox analysis of the flags.
pub fn cox_analysis(a: &FedCoxArgs) -> Result<Analysis> {
    check_common(&a.model)?;
    if let Some(tt) = &a.tt {
        seh_stats::ttexpr::TtExpr::parse(tt).map_err(|e| anyhow::anyhow!("--tt: {e}"))?;
    }
    let ties = match a.ties {
        FedTies::Efron => seh_stats::cox::Ties::Efron,
        FedTies::Breslow => seh_stats::cox::Ties::Breslow,
        FedTies::Exact => bail!("--ties exact is not available in a federation; use efron or breslow"),
    };
    if a.min_risk_set == 0 {
        bail!("--min-risk-set must be at least 1");
    }
    let mode = match a.mode {
        ModeArg::Pooled => CoxMode::Pooled,
        ModeArg::Stratified => CoxMode::Stratified,
    };
    Ok(Analysis::Cox(CoxSpec {
        formula: a.model.formula.clone(),
        ties,
        mode,
        min_risk_set: a.min_risk_set,
        time_resolution: a.time_resolution,
        tt: a.tt.clone(),
    }))
}

/// Runs `seh federate cox`.
pub fn run_cox(a: FedCoxArgs) -> Result<()> {
    let analysis = cox_analysis(&a)?;
    // Every site's policy allows risk sets down to --min-risk-set (the default policy: 5).
    let o = run_study_with(&a.model.fed, analysis, a.model.threshold, a.min_risk_set, a.model.aggregation.spec())?;
    print_model(&o, a.model.fed.format, &a.model.formula)
}

/// Runs `seh federate km`.
pub fn run_km(a: FedKmArgs) -> Result<()> {
    check_common(&a.model)?;
    let analysis = Analysis::Km(KmSpec {
        formula: a.model.formula.clone(),
        conf_type: a.conf_type.clone(),
        time_resolution: a.time_resolution,
    });
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let o = run_study_with(fed, analysis, a.model.threshold, fed.min_cell_count, agg)?;
    print_model(&o, a.model.fed.format, &a.model.formula)
}

/// Runs `seh federate glm`.
pub fn run_glm(a: FedGlmArgs) -> Result<()> {
    check_common(&a.model)?;
    let analysis = Analysis::Glm(GlmSpec { formula: a.model.formula.clone(), family: a.family.clone() });
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let o = run_study_with(fed, analysis, a.model.threshold, fed.min_cell_count, agg)?;
    print_model(&o, a.model.fed.format, &a.model.formula)
}

/// The model result of a run with the federation metadata merged into `federation`.
pub fn model_json(o: &RunOutcome, formula: &str) -> Result<Value> {
    let Some(model) = &o.doc.model else { bail!("the release carries no model result") };
    let mut fit = model.get("fit").cloned().unwrap_or(Value::Null);
    let mut fed = model.get("federation").cloned().unwrap_or_else(|| serde_json::json!({}));
    if let (Some(f), Some(m)) = (fed.as_object_mut(), o.meta.as_object()) {
        for (k, v) in m {
            f.insert(k.clone(), v.clone());
        }
        f.insert("analysis".into(), o.doc.analysis.clone().into());
        f.insert("contributors".into(), o.doc.contributors.clone().into());
        f.insert("signers".into(), o.release.signers.clone().into());
        f.insert("signature".into(), o.release.signature.clone().into());
        f.insert("signature_verified".into(), true.into());
    }
    if let Some(obj) = fit.as_object_mut() {
        obj.insert("formula".into(), formula.into());
        if let Some(lr) = model.get("logrank") {
            obj.insert("logrank".into(), lr.clone());
        }
        obj.insert("federation".into(), fed);
    }
    Ok(fit)
}

fn print_model(o: &RunOutcome, format: Format, formula: &str) -> Result<()> {
    let v = model_json(o, formula)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => print!("{}", model_text(&v, &o.doc.analysis)),
    }
    Ok(())
}

fn f(v: &Value) -> String {
    v.as_f64().map_or_else(|| "NA".to_owned(), |x| format!("{x:.6}"))
}

/// A compact R-like summary of a federated model result.
pub fn model_text(v: &Value, analysis: &str) -> String {
    let mut out = format!("Federated {analysis}: {}\n\n", v["formula"].as_str().unwrap_or(""));
    let terms: Vec<String> = match v.get("terms").and_then(Value::as_array) {
        Some(t) => t.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
        None => Vec::new(),
    };
    if !terms.is_empty() {
        out.push_str(&format!("{:<14} {:>12} {:>12} {:>12} {:>10}\n", "", "coef", "se(coef)", "z", "Pr(>|z|)"));
        for t in &terms {
            out.push_str(&format!(
                "{:<14} {:>12} {:>12} {:>12} {:>10}\n",
                t,
                f(&v["coef"][t]),
                f(&v["se"][t]),
                f(&v["z"][t]),
                v["p"][t].as_f64().map_or("NA".into(), |p| format!("{p:.3e}"))
            ));
        }
    }
    for (label, key) in
        [("Likelihood ratio test", "lrt"), ("Wald test", "wald_test"), ("Score (logrank) test", "score_test")]
    {
        if let Some(t) = v.get(key).filter(|t| t.is_object()) {
            out.push_str(&format!("{label}: {} on {} df\n", f(&t["statistic"]), t["df"]));
        }
    }
    if let Some(l) = v.get("loglik").filter(|l| l.is_number()) {
        out.push_str(&format!("Log partial likelihood: null {}, model {}\n", f(&v["loglik_null"]), f(l)));
    }
    if let Some(d) = v.get("deviance").filter(|d| d.is_number()) {
        out.push_str(&format!("Deviance: null {}, residual {}; AIC {}\n", f(&v["null_deviance"]), f(d), f(&v["aic"])));
    }
    if let Some(strata) = v.get("strata").and_then(Value::as_array) {
        for s in strata {
            out.push_str(&format!(
                "{}: n = {}, events = {}, median = {}\n",
                s["stratum"].as_str().unwrap_or(""),
                s["n"],
                s["events"],
                f(&s["median"])
            ));
        }
    }
    if let Some(lr) = v.get("logrank").filter(|l| l.is_object()) {
        out.push_str(&format!("Log-rank: chisq = {} on {} df, p = {}\n", f(&lr["chisq"]), lr["df"], f(&lr["p"])));
    }
    out.push_str(&format!("\nfederation: {}\n", v["federation"]));
    out
}
