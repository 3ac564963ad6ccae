//! `seh bench cox`: our Cox fit against R `coxph` and lifelines on the same CSV, in one run.
//!
//! The data come from `seh_stats::cox::synth::generate` with a fixed seed and are written
//! to a CSV in a work directory. Every contender then runs as its own OS process on that
//! file and reports its own fit time, whole-command time (CSV parse included) and peak
//! resident memory (VmHWM), so the numbers are comparable:
//! - us: the hidden `seh bench cox-child` (the same steps as `seh fit cox`: read CSV,
//!   build the model frame from the formula, fit with concordance and baseline hazard);
//! - R: `benches/peers/coxph.R` (embedded), when `Rscript` is on the PATH;
//! - lifelines: `benches/peers/lifelines_cox.py` (embedded), when `python3 -c 'import lifelines'` works.
//!
//! Ratios are reported as peer time / our time (so 5.0 means we are 5× faster).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::{json, Value};

const R_SCRIPT: &str = include_str!("../../../benches/peers/coxph.R");
const LIFELINES_SCRIPT: &str = include_str!("../../../benches/peers/lifelines_cox.py");

/// Flags of `seh bench cox`.
#[derive(Debug, clap::Args)]
pub struct CoxBenchArgs {
    /// Number of rows (for counting-process data: number of (start, stop] rows).
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: usize,
    /// Number of covariates.
    #[arg(long, default_value_t = 10)]
    pub covariates: usize,
    /// Counting-process (start, stop] data instead of right-censored times.
    #[arg(long)]
    pub counting_process: bool,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 20261123)]
    pub seed: u64,
    /// Run R and lifelines when they are installed (`auto`), or only our fit (`none`).
    #[arg(long, default_value = "auto", value_parser = ["auto", "none"])]
    pub peers: String,
    /// Repetitions per contender; the median is reported.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Directory for the generated CSV (a temporary directory otherwise).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Flags of the hidden `seh bench cox-child`.
#[derive(Debug, clap::Args)]
pub struct CoxChildArgs {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub formula: String,
}

/// Runs the benchmark and prints the report.
pub fn run(args: CoxBenchArgs) -> anyhow::Result<()> {
    if args.rows < 10 || args.covariates == 0 || args.repeat == 0 {
        bail!("--rows must be at least 10, --covariates and --repeat at least 1");
    }
    let wd = crate::workdir::Workdir::new(args.workdir.as_deref(), "seh-bench-cox")?;
    let dir = wd.path().to_path_buf();
    let p = args.covariates;
    let cp = args.counting_process;
    let csv = dir.join(format!("cox_{}_{}{}.csv", args.rows, p, if cp { "_cp" } else { "" }));
    let t = Instant::now();
    let data = seh_stats::cox::synth::generate(args.rows, p, args.seed, cp);
    write_csv(&csv, &data)?;
    let gen_seconds = t.elapsed().as_secs_f64();
    let nevent = data.event.iter().filter(|&&e| e == 1.0).count();
    drop(data);

    let lhs = if cp { "Surv(start, stop, event)" } else { "Surv(time, event)" };
    let rhs = (1..=p).map(|j| format!("x{j}")).collect::<Vec<_>>().join(" + ");
    let formula = format!("{lhs} ~ {rhs}");

    let exe = std::env::current_exe().context("locating the seh executable")?;
    let mut contenders = Vec::new();
    let ours = median_run(args.repeat, || {
        let mut c = Command::new(&exe);
        c.args(["bench", "cox-child", "--data"]).arg(&csv).args(["--formula", &formula]);
        run_json(c, "seh")
    })?;
    contenders.push(ours.clone());
    let mut skipped = Vec::new();
    if args.peers == "auto" {
        if which("Rscript") {
            let script = dir.join("coxph.R");
            std::fs::write(&script, R_SCRIPT)?;
            let r = median_run(args.repeat, || {
                let mut c = Command::new("Rscript");
                c.arg(&script).arg(&csv).arg("efron").arg(if cp { "1" } else { "0" }).arg(p.to_string());
                run_json(c, "Rscript")
            })?;
            contenders.push(r);
        } else {
            skipped.push("R (Rscript not found)");
        }
        let has_lifelines = Command::new("python3")
            .args(["-c", "import lifelines"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if has_lifelines {
            let script = dir.join("lifelines_cox.py");
            std::fs::write(&script, LIFELINES_SCRIPT)?;
            let l = median_run(args.repeat, || {
                let mut c = Command::new("python3");
                c.arg(&script).arg(&csv).arg(if cp { "1" } else { "0" }).arg(p.to_string());
                run_json(c, "python3")
            })?;
            contenders.push(l);
        } else {
            skipped.push("lifelines (python3 -c 'import lifelines' failed)");
        }
    }

    let our_fit = ours["fit_seconds"].as_f64().unwrap_or(f64::NAN);
    let our_total = ours["total_seconds"].as_f64().unwrap_or(f64::NAN);
    let our_coef = coef_vec(&ours);
    let rows: Vec<Value> = contenders
        .iter()
        .map(|c| {
            let fit = c["fit_seconds"].as_f64().unwrap_or(f64::NAN);
            let total = c["total_seconds"].as_f64().unwrap_or(f64::NAN);
            let coef = coef_vec(c);
            let max_rel =
                our_coef.iter().zip(&coef).map(|(a, b)| (a - b).abs() / b.abs().max(1e-12)).fold(0.0_f64, f64::max);
            let mut row = c.clone();
            row["fit_ratio"] = json!(fit / our_fit);
            row["total_ratio"] = json!(total / our_total);
            row["max_rel_coef_diff_vs_seh"] = json!(max_rel);
            row
        })
        .collect();
    let report = json!({
        "benchmark": "cox",
        "rows": args.rows,
        "covariates": p,
        "events": nevent,
        "counting_process": cp,
        "ties": "efron",
        "seed": args.seed,
        "repeat": args.repeat,
        "generate_seconds": gen_seconds,
        "csv": csv.display().to_string(),
        "contenders": rows,
        "skipped": skipped,
        "ratios_note": "fit_ratio and total_ratio are peer seconds / seh seconds (higher = seh faster)",
    });
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(())
}

/// The hidden child: exactly the steps of `seh fit cox`, timed, with peak memory.
pub fn run_child(args: CoxChildArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let bytes = std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let name = args.data.display().to_string();
    let df = seh_stats::DataFrame::from_csv_bytes(&bytes, &name)?;
    drop(bytes);
    let parse_seconds = t0.elapsed().as_secs_f64();
    let formula = seh_stats::formula::Formula::parse(&args.formula)?;
    let t1 = Instant::now();
    let frame = seh_stats::model::ModelFrame::build(&df, &formula, seh_stats::model::ModelKind::Cox)?;
    drop(df);
    let data = frame.into_cox_data().context("the benchmark formula has no Surv() response")?;
    let frame_seconds = t1.elapsed().as_secs_f64();
    let opts = seh_stats::cox::CoxOptions { ties: seh_stats::cox::Ties::Efron, ..Default::default() };
    let fit = seh_stats::cox::fit(&data, &opts)?;
    let fit_seconds = t1.elapsed().as_secs_f64();
    let total_seconds = t0.elapsed().as_secs_f64();
    let coef: Vec<f64> = fit.coef.values().into_iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let out = json!({
        "peer": concat!("seh ", env!("CARGO_PKG_VERSION")),
        "parse_seconds": parse_seconds,
        "frame_seconds": frame_seconds,
        "fit_seconds": fit_seconds,
        "total_seconds": total_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "iterations": fit.iterations,
        "loglik": fit.loglik,
        "coef": coef,
    });
    println!("{out}");
    Ok(())
}

fn coef_vec(v: &Value) -> Vec<f64> {
    v["coef"].as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()).unwrap_or_default()
}

/// Runs `f` `n` times and keeps the run with the median whole-command time.
fn median_run(n: usize, mut f: impl FnMut() -> anyhow::Result<Value>) -> anyhow::Result<Value> {
    let mut runs = (0..n).map(|_| f()).collect::<anyhow::Result<Vec<Value>>>()?;
    runs.sort_by(|a, b| {
        let ta = a["total_seconds"].as_f64().unwrap_or(f64::INFINITY);
        let tb = b["total_seconds"].as_f64().unwrap_or(f64::INFINITY);
        ta.total_cmp(&tb)
    });
    Ok(runs.swap_remove(n / 2))
}

/// Runs a contender and parses the last JSON line it printed; the wall time as seen from here
/// (process start-up included) is added as `wall_seconds`.
fn run_json(mut cmd: Command, what: &str) -> anyhow::Result<Value> {
    let t = Instant::now();
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let wall = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).context("no JSON line in output")?;
    let mut v: Value = serde_json::from_str(line).with_context(|| format!("parsing the report of {what}"))?;
    v["wall_seconds"] = json!(wall);
    Ok(v)
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), NaN elsewhere.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn write_csv(path: &Path, d: &seh_stats::cox::CoxData) -> anyhow::Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let p = d.p;
    if d.start.is_some() {
        write!(w, "start,stop,event")?;
    } else {
        write!(w, "time,event")?;
    }
    for j in 1..=p {
        write!(w, ",x{j}")?;
    }
    writeln!(w)?;
    for i in 0..d.stop.len() {
        if let Some(s) = &d.start {
            write!(w, "{},", s[i])?;
        }
        write!(w, "{},{}", d.stop[i], d.event[i])?;
        for v in &d.x[i * p..(i + 1) * p] {
            // 6 decimals is ample for a benchmark and keeps the file size realistic.
            if v.fract() == 0.0 {
                write!(w, ",{v}")?;
            } else {
                write!(w, ",{v:.6}")?;
            }
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

fn print_text(r: &Value) {
    println!(
        "Cox benchmark: {} rows{}, p = {}, {} events, Efron ties (seed {})",
        r["rows"],
        if r["counting_process"].as_bool() == Some(true) { " (start, stop]" } else { "" },
        r["covariates"],
        r["events"],
        r["seed"]
    );
    println!(
        "{:<28} {:>9} {:>10} {:>9} {:>11} {:>12} {:>14}",
        "contender", "fit s", "command s", "peak MiB", "fit ratio", "cmd ratio", "max coef diff"
    );
    if let Some(rows) = r["contenders"].as_array() {
        for c in rows {
            println!(
                "{:<28} {:>9.3} {:>10.3} {:>9.0} {:>10.2}x {:>11.2}x {:>14.1e}",
                c["peer"].as_str().unwrap_or("?"),
                c["fit_seconds"].as_f64().unwrap_or(f64::NAN),
                c["total_seconds"].as_f64().unwrap_or(f64::NAN),
                c["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
                c["fit_ratio"].as_f64().unwrap_or(f64::NAN),
                c["total_ratio"].as_f64().unwrap_or(f64::NAN),
                c["max_rel_coef_diff_vs_seh"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    if let Some(s) = r["skipped"].as_array() {
        for x in s {
            println!("skipped: {}", x.as_str().unwrap_or("?"));
        }
    }
    println!("ratios: peer seconds / seh seconds (higher = seh faster)");
}
