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
    let mut o =
        run_study_with(&a.model.fed, analysis, a.model.threshold, a.cox.min_risk_set, a.model.aggregation.spec())?;
    note_requests(&mut o.meta, a.cox.time_resolution);
    print_outcome(&o, a.model.fed.format, &a.cox.formula)
}

/// Runs `seh federate km`.
pub fn run_km(a: FedKmArgs) -> Result<()> {
    check_common(&a.model)?;
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let mut o = run_study_with(fed, a.km.analysis(), a.model.threshold, fed.min_cell_count, agg)?;
    note_requests(&mut o.meta, a.km.time_resolution);
    print_outcome(&o, a.model.fed.format, &a.km.formula)
}

/// Runs `seh federate glm`.
pub fn run_glm(a: FedGlmArgs) -> Result<()> {
    check_common(&a.model)?;
    let (fed, agg) = (&a.model.fed, a.model.aggregation.spec());
    let o = run_study_with(fed, a.glm.analysis(), a.model.threshold, fed.min_cell_count, agg)?;
    print_outcome(&o, a.model.fed.format, &a.glm.formula)
}

/// Adds what the researcher asked for to the metadata: the sites (the run's `sites`) as
/// `requested_sites`, and a requested time resolution.
pub fn note_requests(meta: &mut Value, time_resolution: Option<f64>) {
    if let Some(m) = meta.as_object_mut() {
        if let Some(s) = m.get("sites").cloned() {
            m.insert("requested_sites".into(), s);
        }
        if let Some(r) = time_resolution {
            m.insert("requested_time_resolution".into(), r.into());
        }
    }
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
    let deviations = deviations(&fed, doc);
    if let Some(obj) = fit.as_object_mut() {
        obj.insert("formula".into(), formula.into());
        if let Some(lr) = model.get("logrank") {
            obj.insert("logrank".into(), lr.clone());
        }
        obj.insert("federation".into(), fed);
        let mut warnings = match obj.remove("warnings") {
            Some(Value::Array(w)) => w,
            _ => Vec::new(),
        };
        warnings.extend(deviations.into_iter().map(Value::from));
        obj.insert("warnings".into(), Value::Array(warnings));
    }
    Ok(fit)
}

/// Every way in which a federated result can differ from the pooled fit on all the requested
/// sites' rows, as warning texts: a merged (or coarsened) time grid, a site that accepted but
/// whose contribution is not in the sum, a requested site that did not take part, clusters that
/// might span sites.
pub fn deviations(fed: &Value, doc: &ReleaseDocument) -> Vec<String> {
    let mut out = Vec::new();
    let grid = &fed["grid"];
    if grid["merged"] == true {
        out.push(format!(
            "event times whose pooled risk set is below {} were merged: the fit differs from the pooled fit",
            grid["min_risk_set"]
        ));
    }
    if let Some(r) = fed["requested_time_resolution"].as_f64() {
        out.push(format!(
            "times were binned at the requested resolution {r}: the fit equals the pooled fit only if every \
             time is a multiple of {r}"
        ));
    }
    let dropped: Vec<&String> = doc.accepted.iter().filter(|s| !doc.contributors.contains(s)).collect();
    if !dropped.is_empty() {
        let names: Vec<&str> = dropped.iter().map(|s| s.as_str()).collect();
        out.push(format!("site(s) {} accepted but dropped out: their rows are not in the result", names.join(", ")));
    }
    if let Some(sites) = fed["requested_sites"].as_array() {
        let missing: Vec<&str> =
            sites.iter().filter_map(Value::as_str).filter(|s| !doc.accepted.iter().any(|a| a == s)).collect();
        if !missing.is_empty() {
            out.push(format!("site(s) {} did not take part: their rows are not in the result", missing.join(", ")));
        }
    }
    if fed.get("robust").is_some_and(|r| !r.is_null()) {
        out.push("cluster(): the robust variance assumes no cluster spans two sites (not checked)".into());
    }
    out
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
    for w in v["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("WARNING: {}\n", w.as_str().unwrap_or_default()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use seh_protocol::describe::DescribeResult;

    fn doc(accepted: &[&str], contributors: &[&str]) -> ReleaseDocument {
        ReleaseDocument {
            study_id: "s".into(),
            spec_sha256: String::new(),
            analysis: "cox".into(),
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            contributors: contributors.iter().map(|s| s.to_string()).collect(),
            min_cell_count: 5,
            result: DescribeResult { columns: vec![], histograms: vec![], suppressed: 0 },
            model: None,
        }
    }

    #[test]
    fn every_deviation_from_the_pooled_fit_is_named() {
        let exact =
            serde_json::json!({ "grid": { "merged": false, "min_risk_set": 5 }, "requested_sites": ["a", "b", "c"] });
        assert!(deviations(&exact, &doc(&["a", "b", "c"], &["a", "b", "c"])).is_empty());
        let merged = serde_json::json!({ "grid": { "merged": true, "min_risk_set": 5 } });
        let w = deviations(&merged, &doc(&["a", "b"], &["a", "b"]));
        assert!(w.len() == 1 && w[0].contains("merged"), "{w:?}");
        let coarse = serde_json::json!({ "requested_time_resolution": 10.0 });
        assert!(deviations(&coarse, &doc(&["a"], &["a"]))[0].contains("resolution 10"));
        let w = deviations(&exact, &doc(&["a", "b"], &["a"]));
        assert!(w.iter().any(|x| x.contains("b accepted but dropped out")), "{w:?}");
        assert!(w.iter().any(|x| x.contains("c did not take part")), "{w:?}");
        let robust = serde_json::json!({ "robust": "cluster()" });
        assert!(deviations(&robust, &doc(&["a"], &["a"]))[0].contains("cluster"));
    }
}
