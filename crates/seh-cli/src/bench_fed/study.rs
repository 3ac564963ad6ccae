//! `seh bench federation --mode study`: whole describe studies through the real runtime — a
//! `seh coordinator` and one `seh node` per site, spawned and configured by the same functions as
//! `seh federate` — so every round is offer → policy decision → SecAgg+ → FROST-signed release.
//!
//! The contribution vector is one column (9 words) plus histograms of column `x`; a study spec
//! allows at most [`MAX_COLUMNS`] histograms of [`MAX_BINS`] bins, so the vector length is
//! clamped to `9 + 64 · 10 002 = 640 137` words.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seh_protocol::describe::vector_len;
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, MAX_BINS, MAX_COLUMNS};
use serde_json::json;

use super::{fresh_workdir, median, site_names, FederationBenchArgs};
use crate::coordinator_cmd::runtime;
use crate::federate::{start_coordinator, write_federation, FedCommon};
use crate::study::Researcher;

/// Parses `seh federate` flags, so every field not given keeps its documented default.
#[derive(Debug, Parser)]
struct Flags {
    #[command(flatten)]
    args: FedCommon,
}

/// The describe spec whose vector is as close to `length` words as the spec limits allow.
fn spec_for(length: usize) -> DescribeSpec {
    let mut spec = DescribeSpec { columns: vec!["x".into()], histograms: Vec::new() };
    let hist = |bins: u32| HistogramSpec { column: "x".into(), lo: 0.0, hi: 100.0, bins };
    while spec.histograms.len() < MAX_COLUMNS {
        let rest = length.saturating_sub(vector_len(&spec));
        if rest < 3 {
            break;
        }
        spec.histograms.push(hist((rest - 2).min(MAX_BINS as usize) as u32));
    }
    spec
}

/// Runs the `study` mode.
pub(super) fn run(a: &FederationBenchArgs, threshold: usize) -> Result<()> {
    let spec = spec_for(a.length);
    let length = vector_len(&spec);
    let wd = fresh_workdir(a)?;
    let work = wd.path().to_path_buf();
    let names = site_names(a.sites);
    std::fs::create_dir_all(work.join("data"))?;
    let mut sites = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(a.seed ^ ((i as u64 + 1) << 40));
        let rows: Vec<String> = (0..200).map(|_| format!("{:.3}", rng.gen_range(0.0..100.0))).collect();
        let path: PathBuf = work.join(format!("data/{name}.csv"));
        std::fs::write(&path, format!("x\n{}\n", rows.join("\n")))?;
        sites.push((name.clone(), path));
    }
    let flags = Flags::try_parse_from(["bench", "--round-timeout", "120"])?;
    let t = u32::try_from(threshold)?;
    write_federation(&work, &sites, Some(t), &flags.args, flags.args.min_cell_count)?;
    let (_nodes, _) = crate::ceremony_cmd::federate_ceremony(&work, &names)?;
    let _coordinator = start_coordinator(&work, "coordinator.log", "coordinator.toml")?;
    let researcher = Researcher::from_config(&work.join("config/researcher.toml"))?;
    let mut seconds = Vec::new();
    let mut traffic = serde_json::Value::Null;
    runtime()?.block_on(async {
        for r in 0..=a.rounds {
            let started = Instant::now();
            let id = researcher.submit(Analysis::Describe(spec.clone()), names.clone(), Some(t)).await?;
            let status = loop {
                match researcher.status(&id).await {
                    Ok(s) if matches!(s.state.as_str(), "done" | "failed" | "refused") => break s,
                    _ if started.elapsed() > Duration::from_secs(600) => bail!("study {id} did not finish"),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            ensure!(status.state == "done", "study {id} {}: {}", status.state, status.detail);
            let elapsed = started.elapsed().as_secs_f64();
            researcher.result(&id).await.context("release")?;
            if a.format != "json" {
                eprintln!("study {r}: {elapsed:.3} s");
            }
            seconds.push(elapsed);
            let detail: serde_json::Value = serde_json::from_str(&status.detail).unwrap_or_default();
            traffic = detail.get("traffic").cloned().unwrap_or_default();
        }
        Ok(())
    })?;
    let warm = &seconds[1..];
    let per_site = |field: &str| {
        let total: u64 = traffic.as_object().map_or(0, |m| m.values().filter_map(|v| v[field].as_u64()).sum());
        total as f64 / a.sites as f64
    };
    let report = json!({
        "bench": "federation",
        "mode": "study",
        "transport": "seh coordinator + seh node processes, gRPC over mTLS (TLS 1.3), loopback",
        "sites": a.sites,
        "requested_length": a.length,
        "length": length,
        "threshold": threshold,
        "cold_study_seconds": seconds[0],
        "warm_studies": warm.len(),
        "median_study_seconds": median(warm),
        "min_study_seconds": warm.iter().copied().fold(f64::INFINITY, f64::min),
        "max_study_seconds": warm.iter().copied().fold(0.0, f64::max),
        "payload_bytes_sent_per_site": per_site("bytes_from_site"),
        "payload_bytes_received_per_site": per_site("bytes_to_site"),
        "workdir": wd.report(),
    });
    if a.format == "json" {
        println!("{report}");
    } else {
        println!(
            "federation study (describe, real runtime): n={} m={length} (requested {}) t={threshold}: median warm study {:.3} s (cold {:.3} s; {} warm); {:.0} payload bytes sent and {:.0} received per site per study",
            a.sites,
            a.length,
            median(warm),
            seconds[0],
            warm.len(),
            per_site("bytes_from_site"),
            per_site("bytes_to_site"),
        );
    }
    Ok(())
}
