//! `seh demo`: the flagship study end to end. A coordinator and three hospital sites (separate OS
//! processes on loopback, mutual TLS, SecAgg+ for every Newton round, FROST-signed release) fit
//! the time-dependent Cox model of the Stanford heart transplant study
//! (`Surv(start, stop, event) ~ age + year + surgery + transplant`, Efron ties) on the `site3`
//! split of testdata/ref/sites/heart.csv (all rows of a patient at one site). The federated
//! result is printed next to the local fit of the pooled rows, with the largest difference.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use seh_protocol::fed::{CoxMode, CoxSpec};
use seh_protocol::spec::Analysis;
use seh_stats::cox::{CoxOptions, Ties};
use seh_stats::formula::Formula;
use seh_stats::model::{ModelFrame, ModelKind};
use seh_stats::DataFrame;
use serde_json::Value;

use crate::federate::{run_study, FedCommon};
use crate::federate_models::model_json;
use crate::study::Format;

/// The Stanford heart transplant data (testdata/ref/data/heart.csv), built into the binary.
const HEART: &[u8] = include_bytes!("../../../testdata/ref/data/heart.csv");
/// Its multi-site split (`id,site3,site5`).
const HEART_SITES: &[u8] = include_bytes!("../../../testdata/ref/sites/heart.csv");

/// The demonstration model: time-dependent transplant status, Efron ties.
pub const DEMO_FORMULA: &str = "Surv(start, stop, event) ~ age + year + surgery + transplant";

/// `seh demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for keys, configs, state, logs and audit files (default: a new temp dir).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// `pooled` (one partial likelihood, equals R on the pooled rows) or `stratified`.
    #[arg(long, value_enum, default_value_t = crate::analysis_opts::ModeArg::Pooled)]
    pub mode: crate::analysis_opts::ModeArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// The heart rows with their `site3` column appended (joined by patient id).
fn heart_with_sites() -> anyhow::Result<String> {
    let text = std::str::from_utf8(HEART)?;
    let data = DataFrame::from_csv_bytes(HEART, "heart.csv").map_err(|e| anyhow!("{e}"))?;
    let sites = DataFrame::from_csv_bytes(HEART_SITES, "sites/heart.csv").map_err(|e| anyhow!("{e}"))?;
    let (ids, site3) = (sites.column("id")?, sites.column("site3")?);
    let row_ids = data.column("id")?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut out = format!("{},site3\n", lines.next().context("empty heart.csv")?);
    for (line, id) in lines.zip(row_ids) {
        let k = ids.iter().position(|x| x == id).context("a heart patient has no site")?;
        out.push_str(&format!("{line},{}\n", site3[k]));
    }
    Ok(out)
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let wd = crate::workdir::Workdir::new(args.workdir.as_deref(), "seh-demo")?;
    let work = wd.path().to_path_buf();
    let input = work.join("heart_site3.csv");
    std::fs::write(&input, heart_with_sites()?)?;
    let common = FedCommon {
        sites: Vec::new(),
        data: Some(input),
        split_by: Some("site3".into()),
        site_stores: Vec::new(),
        table: None,
        purpose: None,
        workdir: Some(work.join("federation")),
        min_cell_count: 5,
        allow_event_times: true,
        dp_epsilon: None,
        round_timeout: 10.0,
        format: args.format,
        debug_exit_site: None,
        debug_coordinator_exit_after: None,
    };
    let mode = match args.mode {
        crate::analysis_opts::ModeArg::Pooled => CoxMode::Pooled,
        crate::analysis_opts::ModeArg::Stratified => CoxMode::Stratified,
    };
    // Risk sets are released down to the policy floor of 3 rows; none is that small in this
    // data, so nothing is merged and the pooled fit is exact.
    let analysis = Analysis::Cox(CoxSpec {
        formula: DEMO_FORMULA.into(),
        ties: Ties::Efron,
        mode,
        min_risk_set: 3,
        time_resolution: None,
        tt: None,
    });
    // Local verification policies (count floor 2, below the DataSHIELD floor of 3): the demo holds
    // every site's rows and compares with the pooled fit; the smallest heart site has fewer than
    // the example policy's 5 rows per parameter. The nodes warn about it at start; the output says so.
    let outcome = run_study(&common, analysis, None, 2)?;
    let mut fed = model_json(&outcome, DEMO_FORMULA)?;
    // The federation ran inside the demo's own directory: report that one.
    if let Some(m) = fed.get_mut("federation").and_then(|f| f.as_object_mut()) {
        m.insert("workdir".into(), wd.report().into());
    }
    let local = local_fit(mode)?;
    match args.format {
        Format::Json => {
            let v =
                serde_json::json!({ "federated": fed, "local_pooled": local, "max_rel_diff": max_diff(&fed, &local) });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => crate::output::emit(&text(&fed, &local, mode))?,
    }
    Ok(())
}

/// The local fit of the pooled rows (plus `strata(site3)` in stratified mode).
fn local_fit(mode: CoxMode) -> anyhow::Result<Value> {
    let data = DataFrame::from_csv_bytes(heart_with_sites()?.as_bytes(), "heart.csv").map_err(|e| anyhow!("{e}"))?;
    let f = match mode {
        CoxMode::Pooled => DEMO_FORMULA.to_owned(),
        CoxMode::Stratified => format!("{DEMO_FORMULA} + strata(site3)"),
    };
    let formula = Formula::parse(&f).map_err(|e| anyhow!("{e}"))?;
    let frame = ModelFrame::build(&data, &formula, ModelKind::Cox).map_err(|e| anyhow!("heart.csv: {e}"))?;
    let cox = frame.cox_data().context("internal: no Surv() response")?;
    let fit = seh_stats::cox::fit(&cox, &CoxOptions { ties: Ties::Efron, concordance: false, ..Default::default() })?;
    Ok(serde_json::to_value(fit)?)
}

/// Largest relative difference over coefficients, standard errors and log-likelihoods.
fn max_diff(a: &Value, b: &Value) -> f64 {
    let mut worst: f64 = 0.0;
    let mut d = |x: &Value, y: &Value| {
        if let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) {
            worst = worst.max((x - y).abs() / y.abs().max(1e-300));
        }
    };
    if let Some(terms) = b["terms"].as_array() {
        for t in terms.iter().filter_map(Value::as_str) {
            d(&a["coef"][t], &b["coef"][t]);
            d(&a["se"][t], &b["se"][t]);
        }
    }
    d(&a["loglik"], &b["loglik"]);
    d(&a["loglik_null"], &b["loglik_null"]);
    worst
}

fn text(fed: &Value, local: &Value, mode: CoxMode) -> String {
    let fm = &fed["federation"];
    let mut out = String::from(
        "Secur-e-Health demo: Stanford heart transplant study (103 patients, 172 counting-process rows)\n\
         held by three hospitals (60 / 30 / 10 % of the patients). A coordinator and three site nodes ran\n\
         as separate processes on loopback with mutual TLS. The sites first generated their FROST group\n\
         key among themselves (no party ever held it) and signed the federation roster with it; every\n\
         Newton round was a SecAgg+ secure sum, and the result was co-signed by the sites.\n\n",
    );
    let how = match mode {
        CoxMode::Pooled => "pooled-exact",
        CoxMode::Stratified => "site-stratified (strata(site))",
    };
    out.push_str(&format!("coxph({DEMO_FORMULA}, ties = \"efron\"), {how}\n"));
    out.push_str(&format!("  n= {}, number of events= {} \n\n", fed["n"], fed["nevent"]));
    out.push_str(&format!(
        "{:<12} {:>14} {:>14} {:>12} {:>12} {:>10}\n",
        "", "coef (fed)", "coef (pooled)", "se (fed)", "se (pooled)", "p (fed)"
    ));
    let num = |v: &Value| v.as_f64().map_or("NA".to_owned(), |x| format!("{x:.7}"));
    if let Some(terms) = local["terms"].as_array() {
        for t in terms.iter().filter_map(Value::as_str) {
            out.push_str(&format!(
                "{:<12} {:>14} {:>14} {:>12} {:>12} {:>10}\n",
                t,
                num(&fed["coef"][t]),
                num(&local["coef"][t]),
                num(&fed["se"][t]),
                num(&local["se"][t]),
                fed["p"][t].as_f64().map_or("NA".into(), |p| format!("{p:.4}"))
            ));
        }
    }
    out.push_str(&format!(
        "\nlog partial likelihood   federated {}   pooled {}\n",
        num(&fed["loglik"]),
        num(&local["loglik"])
    ));
    out.push_str(&format!(
        "likelihood ratio test    {} on {} df (p = {})\n",
        num(&fed["lrt"]["statistic"]),
        fed["lrt"]["df"],
        fed["lrt"]["p"].as_f64().map_or("NA".into(), |p| format!("{p:.4}"))
    ));
    out.push_str(&format!("\nlargest relative difference federated vs pooled: {:.2e}\n", max_diff(fed, local)));
    out.push_str(&format!(
        "\nsites {}; key ceremony + roster signature {:.0} ms; rounds {}; {:.2} s; signed by {}\n",
        fm["sites"],
        fm["ceremony_ms"].as_f64().unwrap_or(f64::NAN),
        fm["rounds"],
        fm["seconds"].as_f64().unwrap_or(f64::NAN),
        fm["signers"]
    ));
    if let Some(g) = fm.get("grid") {
        out.push_str(&format!("released event-time grid: {g}\n"));
    }
    out.push_str(&format!("traffic per site: {}\n", fm["traffic"]));
    out.push_str("concordance: omitted (it needs every pair of rows across sites)\n");
    out.push_str(
        "site policies: local verification (floors lowered, exact event-time grids allowed): this \
         demo holds every site's rows and checks the federated fit against the pooled one; a real \
         site starts from examples/policy/site-policy.toml (docs/DEPLOY.md)\n",
    );
    for w in fed["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("WARNING: {}\n", w.as_str().unwrap_or_default()));
    }
    out.push_str(&format!("workdir (keys, configs, audit logs): {}\n", fm["workdir"].as_str().unwrap_or("")));
    out
}
