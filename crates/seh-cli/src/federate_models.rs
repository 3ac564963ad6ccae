//! `seh federate cox|km|glm`: the flags of `seh fit cox|km|glm` plus the federation's
//! (`--mode`, `--min-risk-set`, `--aggregation`), run over a local federation of processes.
//! Output: the `seh fit` JSON of the model plus a `federation` object (mode, released grid,
//! rounds, traffic per site, seconds, signers).

use anyhow::{bail, Result};
use clap::Args;
use seh_protocol::release::{ReleaseDocument, SignedRelease};
use serde_json::Value;

pub use crate::analysis_opts::AggregationArg;
use crate::analysis_opts::{CoxOpts, GlmOpts, KmOpts};
use crate::federate::{run_study_with, FedCommon, RunOutcome};
use crate::study::Format;

/// Flags shared by the model analyses.
#[derive(Debug, Args)]
pub struct ModelCommon {
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
    /// The model's options.
    #[command(flatten)]
    pub cox: CoxOpts,
    /// Federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
}

/// `seh federate km`.
#[derive(Debug, Args)]
pub struct FedKmArgs {
    /// The analysis options.
    #[command(flatten)]
    pub km: KmOpts,
    /// Federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
}

/// `seh federate glm`.
#[derive(Debug, Args)]
pub struct FedGlmArgs {
    /// The model's options.
    #[command(flatten)]
    pub glm: GlmOpts,
    /// Federation flags.
    #[command(flatten)]
    pub model: ModelCommon,
}

fn check_common(m: &ModelCommon) -> Result<()> {
    // `--dp-epsilon` is a FedCommon flag (describe); model fits refuse it.
    if m.fed.dp_epsilon.is_some() {
        bail!("--dp-epsilon: differential privacy is not available yet for federated model fits");
    }
    Ok(())
}

/// Runs `seh federate cox`.
pub fn run_cox(a: FedCoxArgs) -> Result<()> {
    check_common(&a.model)?;
    let analysis = a.cox.analysis()?;
    // Every site's policy allows risk sets down to --min-risk-set (the default policy: 5).
    let o = run_study_with(&a.model.fed, analysis, a.model.threshold, a.cox.min_risk_set, a.model.aggregation.spec())?;
    print_outcome(&o, a.model.fed.format, &a.cox.formula)
}

/// Runs `seh federate km`.
pub fn run_km(a: FedKmArgs) -> Result<()> {
    check_common(&a.model)?;
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let o = run_study_with(fed, a.km.analysis(), a.model.threshold, fed.min_cell_count, agg)?;
    print_outcome(&o, a.model.fed.format, &a.km.formula)
}

/// Runs `seh federate glm`.
pub fn run_glm(a: FedGlmArgs) -> Result<()> {
    check_common(&a.model)?;
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let o = run_study_with(fed, a.glm.analysis(), a.model.threshold, fed.min_cell_count, agg)?;
    print_outcome(&o, a.model.fed.format, &a.glm.formula)
}

fn print_outcome(o: &RunOutcome, format: Format, formula: &str) -> Result<()> {
    print_model(&o.release, &o.doc, &o.meta, format, formula)
}

/// The model result of a run with the federation metadata merged into `federation`.
pub fn model_json(o: &RunOutcome, formula: &str) -> Result<Value> {
    release_model_json(&o.release, &o.doc, &o.meta, formula)
}

/// The model result of a verified release with the federation metadata `meta` merged into
/// `federation` (what `seh federate` and `seh study run` print).
pub fn release_model_json(
    release: &SignedRelease,
    doc: &ReleaseDocument,
    meta: &Value,
    formula: &str,
) -> Result<Value> {
    let Some(model) = &doc.model else { bail!("the release carries no model result") };
    let mut fit = model.get("fit").cloned().unwrap_or(Value::Null);
    let mut fed = model.get("federation").cloned().unwrap_or_else(|| serde_json::json!({}));
    if let (Some(f), Some(m)) = (fed.as_object_mut(), meta.as_object()) {
        for (k, v) in m {
            f.insert(k.clone(), v.clone());
        }
        f.insert("analysis".into(), doc.analysis.clone().into());
        f.insert("contributors".into(), doc.contributors.clone().into());
        f.insert("signers".into(), release.signers.clone().into());
        f.insert("signature".into(), release.signature.clone().into());
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

/// Prints a verified model release: the `seh fit` JSON plus `federation`, or R-like text.
pub fn print_model(
    release: &SignedRelease,
    doc: &ReleaseDocument,
    meta: &Value,
    format: Format,
    formula: &str,
) -> Result<()> {
    let v = release_model_json(release, doc, meta, formula)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => print!("{}", model_text(&v, &doc.analysis)),
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
