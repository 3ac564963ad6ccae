//! End-to-end federated descriptive statistics over separate OS processes on loopback: a
//! coordinator and one node per site (`seh federate describe`), real mTLS and SecAgg+.

use std::path::{Path, PathBuf};
use std::process::Command;

use seh_protocol::describe::{pooled, DescribeResult};
use seh_protocol::spec::{DescribeSpec, HistogramSpec};
use seh_stats::DataFrame;

mod common;
use common::workdir;

/// Unique marker values planted in each site's rows (the leak canary).
fn marker(site: usize) -> f64 {
    918_273.645_123 + site as f64 * 11.125
}

/// 5 sites × 40 rows; column `x` holds one marker value per site.
fn write_data(dir: &Path) -> PathBuf {
    let mut text = String::from("site,x,y\n");
    for i in 0..200usize {
        let site = i % 5 + 1;
        let x = if i / 5 == 0 { marker(site) } else { (i * 37 % 101) as f64 / 3.0 };
        let y = if i % 13 == 0 { String::new() } else { format!("{}", (i as f64).sqrt()) };
        text.push_str(&format!("{site},{x},{y}\n"));
    }
    let p = dir.join("input.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn federate(work: &Path, input: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_seh"))
        .args(["federate", "describe", "--data"])
        .arg(input)
        .args(["--split-by", "site", "--columns", "x,y", "--histogram", "x:0:40:4", "--threshold", "3"])
        .args(["--min-cell-count", "2", "--format", "json", "--workdir"])
        .arg(work.join("fed"))
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "seh federate failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn spec() -> DescribeSpec {
    DescribeSpec {
        columns: vec!["x".into(), "y".into()],
        histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 40.0, bins: 4 }],
    }
}

fn expected(input: &Path, sites: &[f64]) -> DescribeResult {
    let all = DataFrame::from_csv_bytes(&std::fs::read(input).unwrap(), "input").unwrap();
    let rows: Vec<usize> = (0..all.nrows()).filter(|&r| sites.contains(&all.column("site").unwrap()[r])).collect();
    pooled(&spec(), &all.take_rows(&rows), 2).unwrap()
}

fn assert_matches(got: &serde_json::Value, want: &DescribeResult) {
    let got: DescribeResult = serde_json::from_value(got["result"].clone()).unwrap();
    assert_eq!(got.histograms, want.histograms);
    assert_eq!(got.suppressed, want.suppressed);
    for (g, w) in got.columns.iter().zip(&want.columns) {
        assert_eq!(g.n, w.n);
        for (a, b) in [(g.mean, w.mean), (g.variance, w.variance), (g.sd, w.sd)] {
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!((a - b).abs() <= 1e-9 * b.abs(), "{a} vs {b}");
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn five_sites_threshold_three_give_the_pooled_numbers_and_leak_nothing() {
    let work = workdir("pooled");
    let input = write_data(&work);
    let got = federate(&work, &input, &[]);
    assert_eq!(got["contributors"].as_array().unwrap().len(), 5);
    assert_eq!(got["signature_verified"], true);
    assert_matches(&got, &expected(&input, &[1.0, 2.0, 3.0, 4.0, 5.0]));

    // Leak canary: nothing the coordinator stored (SQLite), logged or audited holds a marker.
    let fed = work.join("fed");
    let mut files = Vec::new();
    files_under(&fed.join("state"), &mut files);
    files_under(&fed.join("logs"), &mut files);
    let coordinator_files: Vec<&PathBuf> =
        files.iter().filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("coordinator")).collect();
    assert!(coordinator_files.len() >= 3, "{coordinator_files:?}");
    for p in coordinator_files {
        let bytes = std::fs::read(p).unwrap();
        for site in 1..=5 {
            let m = marker(site);
            for needle in [format!("{m}").into_bytes(), m.to_le_bytes().to_vec(), m.to_be_bytes().to_vec()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "marker found in {}",
                    p.display()
                );
            }
        }
    }

    // Audit logs verify; an edited line is flagged.
    let seh = env!("CARGO_BIN_EXE_seh");
    let log = fed.join("state/site-1.audit.jsonl");
    let verify = |log: &Path| {
        Command::new(seh)
            .args(["audit", "verify", "--log"])
            .arg(log)
            .args(["--federation"])
            .arg(fed.join("keys/federation.json"))
            .args(["--member", "site-1"])
            .output()
            .unwrap()
    };
    assert!(verify(&log).status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("policy_decision") && text.contains("contribution") && text.contains("release"));
    let edited = text.replacen("\"accept\":true", "\"accept\":false", 1);
    assert_ne!(edited, text);
    let bad = work.join("edited.jsonl");
    std::fs::write(&bad, edited).unwrap();
    let out = verify(&bad);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line"), "{}", String::from_utf8_lossy(&out.stderr));

    // The sites co-signed the coordinator's log head after the release (FROST, DESIGN §4), and
    // `seh audit verify` checks that co-signature under the federation's group key.
    let coord = Command::new(seh)
        .args(["audit", "verify", "--log"])
        .arg(fed.join("state/coordinator.audit.jsonl"))
        .args(["--federation"])
        .arg(fed.join("keys/federation.json"))
        .args(["--member", "coordinator"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&coord.stdout);
    assert!(coord.status.success(), "{said} {}", String::from_utf8_lossy(&coord.stderr));
    assert!(said.contains("co-signed heads: 1 verified under the federation group key"), "{said}");
    let _ = std::fs::remove_dir_all(&work);
}

/// "Right" after a dropout means: the statistics of the rows of the sites that survived the
/// secure aggregation (the release names them as contributors).
#[test]
fn a_site_killed_mid_round_leaves_the_answer_over_the_survivors() {
    let work = workdir("dropout");
    let input = write_data(&work);
    // site-2 answers the offer, advertises and shares keys, then its process exits.
    let got = federate(&work, &input, &["--round-timeout", "1", "--debug-exit-site", "site-2:3"]);
    let contributors: Vec<&str> = got["contributors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(contributors, ["site-1", "site-3", "site-4", "site-5"]);
    assert_matches(&got, &expected(&input, &[1.0, 3.0, 4.0, 5.0]));
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_coordinator_killed_mid_study_resumes_to_the_same_answer() {
    let work = workdir("restart");
    let input = write_data(&work);
    // The coordinator process exits after its 4th checkpoint (mid-aggregation) and is restarted.
    let got = federate(&work, &input, &["--round-timeout", "2", "--debug-coordinator-exit-after", "4"]);
    assert_eq!(got["federation"]["coordinator_restarts"], 1);
    assert_eq!(got["contributors"].as_array().unwrap().len(), 5);
    assert_matches(&got, &expected(&input, &[1.0, 2.0, 3.0, 4.0, 5.0]));
    let _ = std::fs::remove_dir_all(&work);
}
