//! `seh bench fed-cox`: the secure federated Cox fit against the pooled, unprotected fits of
//! lifelines and R, in one run on one data set.
//!
//! 1. `seh bench cox` (a child process) generates the synthetic CSV with the given seed and times
//!    `seh fit cox`, R `coxph` and lifelines on the pooled file (each its own process).
//! 2. The CSV is cut into `--sites` unequal site files (35/25/20/12/8 % for five sites, otherwise
//!    shares proportional to `sites, sites − 1, …, 1`).
//! 3. `seh federate cox --mode M --min-risk-set K` (a child process: a coordinator and one node per
//!    site as separate processes over loopback mTLS, SecAgg+) runs once per mode.
//!
//! Reported per mode: seconds (study submitted → verified result), protocol rounds, bytes per
//! site, the time of every phase (from the coordinator's audit log: site acceptance, moments,
//! histogram, each Newton round, the release), the largest coefficient difference against the
//! local fit, and the ratio against lifelines' pooled fit time (< 1: the federation is faster).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// Flags of `seh bench fed-cox`.
#[derive(Debug, clap::Args)]
pub struct FedCoxBenchArgs {
    /// Rows over all sites.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Number of covariates.
    #[arg(long, default_value_t = 10)]
    pub covariates: usize,
    /// Number of sites (one process each).
    #[arg(long, default_value_t = 5)]
    pub sites: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 20261123)]
    pub seed: u64,
    /// Run R and lifelines when installed (`auto`) or only the federation (`none`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "none"])]
    pub peers: String,
    /// Smallest released risk set (the site policies' floor is 3; tail event times with fewer
    /// rows at risk are merged, which `grid.exact` reports).
    #[arg(long, default_value_t = 3)]
    pub min_risk_set: u64,
    /// Modes to run.
    #[arg(long, value_delimiter = ',', default_value = "pooled,stratified", value_parser = ["pooled", "stratified"])]
    pub modes: Vec<String>,
    /// Directory for the data, keys and logs (a temporary directory otherwise).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

fn shares(sites: usize) -> Vec<f64> {
    if sites == 5 {
        return vec![0.35, 0.25, 0.20, 0.12, 0.08];
    }
    let total = (sites * (sites + 1) / 2) as f64;
    (0..sites).map(|i| (sites - i) as f64 / total).collect()
}

/// Writes the site files (contiguous blocks of rows; the generator's rows are exchangeable).
fn split_csv(csv: &Path, dir: &Path, sites: usize) -> Result<Vec<(String, PathBuf)>> {
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {}", csv.display()))?;
    let mut lines = text.lines();
    let header = lines.next().context("empty CSV")?;
    let rows: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let mut out = Vec::new();
    let mut start = 0;
    for (k, share) in shares(sites).iter().enumerate() {
        let n = if k + 1 == sites { rows.len() - start } else { (share * rows.len() as f64).round() as usize };
        let name = format!("s{}", k + 1);
        let path = dir.join(format!("{name}.csv"));
        let body = rows[start..start + n].join("\n");
        std::fs::write(&path, format!("{header}\n{body}\n"))?;
        out.push((name, path));
        start += n;
    }
    Ok(out)
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let parse = |s: &str| -> Option<f64> {
        // `YYYY-MM-DDTHH:MM:SS.sssZ` → seconds of the day (runs do not cross midnight in practice).
        let t = s.split('T').nth(1)?.trim_end_matches('Z');
        let mut it = t.split(':');
        let (h, m, s) =
            (it.next()?.parse::<f64>().ok()?, it.next()?.parse::<f64>().ok()?, it.next()?.parse::<f64>().ok()?);
        Some(h * 3600.0 + m * 60.0 + s)
    };
    Some(parse(b)? - parse(a)?)
}

/// Phases from the coordinator's audit log: `(label, seconds)` from each mark to the next.
fn phases(audit: &Path) -> Result<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(audit).with_context(|| format!("reading {}", audit.display()))?;
    let mut marks: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line)?;
        let event = v["details"]["event"].as_str().unwrap_or("");
        let kind = v["kind"].as_str().unwrap_or("");
        let ts = v["ts"].as_str().unwrap_or("").to_owned();
        if event == "study started" {
            marks.push(("offer and policy decisions".into(), ts));
        } else if let Some(rest) = event.split_once(": aggregation ").map(|(_, r)| r) {
            let label = rest.split_once(' ').map_or(rest, |(_, l)| l).trim_matches(|c| c == '(' || c == ')');
            marks.push((label.to_owned(), ts));
        } else if kind == "release" {
            marks.push(("release".into(), ts));
        }
    }
    Ok(marks.windows(2).filter_map(|w| Some((w[0].0.clone(), seconds_between(&w[0].1, &w[1].1)?))).collect())
}

fn coef(v: &Value) -> Vec<f64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()).unwrap_or_default()
}

/// Runs the benchmark and prints the report.
pub fn run(a: FedCoxBenchArgs) -> Result<()> {
    if a.sites < 3 || a.rows < 100 * a.sites || a.covariates == 0 {
        bail!("--sites must be at least 3, --rows at least 100 per site, --covariates at least 1");
    }
    let wd = crate::workdir::Workdir::new(a.workdir.as_deref(), "seh-bench-fedcox")?;
    let dir = wd.path().to_path_buf();
    let exe = std::env::current_exe().context("locating the seh executable")?;
    let out = Command::new(&exe)
        .args(["bench", "cox", "--format", "json", "--peers", &a.peers])
        .args(["--rows", &a.rows.to_string(), "--covariates", &a.covariates.to_string()])
        .args(["--seed", &a.seed.to_string(), "--workdir"])
        .arg(&dir)
        .output()
        .context("running seh bench cox")?;
    if !out.status.success() {
        bail!("seh bench cox failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let pooled: Value = serde_json::from_slice(&out.stdout).context("parsing the seh bench cox report")?;
    let csv = PathBuf::from(pooled["csv"].as_str().context("no csv in the seh bench cox report")?);
    let contenders = pooled["contenders"].as_array().cloned().unwrap_or_default();
    let peer = |name: &str| contenders.iter().find(|c| c["peer"].as_str().is_some_and(|p| p.starts_with(name)));
    let local_coef = peer("seh").map(|c| coef(&c["coef"])).unwrap_or_default();
    let lifelines_fit = peer("lifelines").and_then(|c| c["fit_seconds"].as_f64());
    let sites = split_csv(&csv, &dir, a.sites)?;
    let rhs = (1..=a.covariates).map(|j| format!("x{j}")).collect::<Vec<_>>().join(" + ");
    let formula = format!("Surv(time, event) ~ {rhs}");
    let mut modes = Vec::new();
    for mode in &a.modes {
        let work = dir.join(format!("fed_{mode}"));
        let _ = std::fs::remove_dir_all(&work);
        let mut cmd = Command::new(&exe);
        let k = a.min_risk_set.to_string();
        cmd.args(["federate", "cox", "--formula", &formula, "--mode", mode, "--min-risk-set", &k]);
        cmd.args(["--format", "json", "--round-timeout", "120", "--workdir"]).arg(&work);
        for (name, path) in &sites {
            cmd.arg("--site").arg(format!("{name}={}", path.display()));
        }
        let out = cmd.output().context("running seh federate cox")?;
        if !out.status.success() {
            bail!("seh federate cox --mode {mode} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let fit: Value = serde_json::from_slice(&out.stdout).context("parsing the federated result")?;
        let fed = &fit["federation"];
        let seconds = fed["seconds"].as_f64().unwrap_or(f64::NAN);
        let terms: Vec<&str> = fit["terms"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let got: Vec<f64> = terms.iter().map(|t| fit["coef"][*t].as_f64().unwrap_or(f64::NAN)).collect();
        let max_diff = got.iter().zip(&local_coef).map(|(g, w)| (g - w).abs() / w.abs().max(1e-12)).fold(0.0, f64::max);
        let traffic: Vec<Value> = fed["traffic"]
            .as_object()
            .map(|t| t.iter().map(|(s, v)| json!({ "site": s, "bytes_from_site": v["bytes_from_site"], "bytes_to_site": v["bytes_to_site"] })).collect())
            .unwrap_or_default();
        let ph = phases(&work.join("state/coordinator.audit.jsonl"))?;
        modes.push(json!({
            "mode": mode,
            "seconds": seconds,
            "ratio_vs_lifelines_fit": lifelines_fit.map(|l| seconds / l),
            "rounds": fed["rounds"],
            "grid": fed["grid"],
            "words_per_real": fed["words_per_real"],
            "histogram_counts_per_word": fed["histogram_counts_per_word"],
            "traffic": traffic,
            "phases": ph.iter().map(|(l, s)| json!({ "phase": l, "seconds": s })).collect::<Vec<_>>(),
            "max_rel_coef_diff_vs_local": max_diff,
        }));
    }
    let report = json!({
        "benchmark": "fed-cox",
        "rows": a.rows,
        "covariates": a.covariates,
        "sites": a.sites,
        "shares": shares(a.sites),
        "seed": a.seed,
        "pooled_fits": contenders,
        "federated": modes,
        "note": "ratio_vs_lifelines_fit = federated seconds / lifelines pooled fit seconds (< 1: federation faster)",
    });
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

fn print_text(r: &Value) {
    let shares: Vec<String> = r["shares"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| format!("{:.0}%", x.as_f64().unwrap_or(0.0) * 100.0))
        .collect();
    println!(
        "Federated Cox benchmark: {} rows, p = {}, {} sites ({}), Efron (seed {})",
        r["rows"],
        r["covariates"],
        r["sites"],
        shares.join("/"),
        r["seed"]
    );
    for c in r["pooled_fits"].as_array().into_iter().flatten() {
        println!(
            "  pooled, unprotected  {:<28} fit {:>7.3} s  command {:>7.3} s",
            c["peer"].as_str().unwrap_or(""),
            c["fit_seconds"].as_f64().unwrap_or(f64::NAN),
            c["total_seconds"].as_f64().unwrap_or(f64::NAN)
        );
    }
    for m in r["federated"].as_array().into_iter().flatten() {
        let bytes: Vec<String> = m["traffic"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                format!(
                    "{} {:.2}/{:.2} MB",
                    t["site"].as_str().unwrap_or(""),
                    mb(&t["bytes_from_site"]),
                    mb(&t["bytes_to_site"])
                )
            })
            .collect();
        println!(
            "  federated {:<10} {:>7.3} s  ratio vs lifelines fit {}  rounds {}  words/real {}  max rel coef diff {:.1e}",
            m["mode"].as_str().unwrap_or(""),
            m["seconds"].as_f64().unwrap_or(f64::NAN),
            m["ratio_vs_lifelines_fit"].as_f64().map_or("n/a".into(), |x| format!("{x:.2}")),
            m["rounds"],
            m["words_per_real"],
            m["max_rel_coef_diff_vs_local"].as_f64().unwrap_or(f64::NAN)
        );
        println!("    bytes per site (from/to): {}", bytes.join(", "));
        for p in m["phases"].as_array().into_iter().flatten() {
            println!("    {:>7.3} s  {}", p["seconds"].as_f64().unwrap_or(f64::NAN), p["phase"].as_str().unwrap_or(""));
        }
    }
    println!("{}", r["note"].as_str().unwrap_or(""));
}

fn mb(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN) / 1e6
}
