//! `seh audit verify --site-head`: the coordinator's log checked against the heads the sites
//! persisted when they co-signed it. A federation runs one study over separate OS processes
//! (`seh federate describe --workdir`), the sites co-sign the coordinator's log head; the untouched
//! log passes with every site's head, a log cut back before the co-signed head (which the chain
//! and co-signature checks alone accept) fails naming the site and the seq.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::workdir;

/// 3 sites × 20 rows of one column.
fn write_data(dir: &Path) -> PathBuf {
    let mut text = String::from("site,x\n");
    for i in 0..60usize {
        text.push_str(&format!("{},{}\n", i % 3 + 1, (i * 37 % 101) as f64 / 3.0));
    }
    let p = dir.join("input.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn verify(fed: &Path, log: &Path, extra: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seh"))
        .args(["audit", "verify", "--log"])
        .arg(log)
        .arg("--federation")
        .arg(fed.join("keys/federation.json"))
        .args(["--member", "coordinator"])
        .args(extra)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_coordinator_log_is_checked_against_the_sites_cosigned_heads() {
    let work = workdir("audit-site-heads");
    let input = write_data(&work);
    let fed = work.join("fed");
    let out = Command::new(env!("CARGO_BIN_EXE_seh"))
        .args(["federate", "describe", "--data"])
        .arg(&input)
        .args(["--split-by", "site", "--columns", "x", "--threshold", "2", "--min-cell-count", "3"])
        .args(["--format", "json", "--workdir"])
        .arg(&fed)
        .output()
        .unwrap();
    assert!(out.status.success(), "seh federate failed: {}", text(&out.stderr));

    let log = fed.join("state/coordinator.audit.jsonl");
    let head_file = |site: &str| fed.join(format!("state/{site}.reveals.cosigned-head.json"));
    let head: serde_json::Value = serde_json::from_slice(&std::fs::read(head_file("site-1")).unwrap()).unwrap();
    let seq = head["seq"].as_u64().unwrap();
    // Every site persisted the same head.
    for site in ["site-2", "site-3"] {
        assert_eq!(std::fs::read(head_file(site)).unwrap(), std::fs::read(head_file("site-1")).unwrap());
    }
    let flags = |sites: &[&str]| -> Vec<String> {
        let mut v = Vec::new();
        for (i, s) in sites.iter().enumerate() {
            v.push("--site-head".into());
            // Both spellings: `SITE=FILE`, and `FILE` named after the site.
            let f = head_file(s).display().to_string();
            v.push(if i == 0 { format!("{s}={f}") } else { f });
        }
        v
    };

    // The untouched log holds every site's head.
    let mut args = flags(&["site-1", "site-2", "site-3"]);
    let ok = verify(&fed, &log, &args);
    assert!(ok.status.success(), "{} {}", text(&ok.stdout), text(&ok.stderr));
    assert!(text(&ok.stdout).contains(&format!("site site-3: its co-signed head seq {seq} is in the log")));
    args.extend(["--format".into(), "json".into()]);
    let json: serde_json::Value = serde_json::from_slice(&verify(&fed, &log, &args).stdout).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["cosigned_heads"], 1, "{json}");
    let statuses: Vec<(&str, &str)> = json["site_heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["site"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("site-1", "ok"), ("site-2", "ok"), ("site-3", "ok")]);

    // The coordinator cuts its log back before the co-signed head (dropping the head and the
    // `head_cosign` record after it): the chain still verifies and no co-signature is left to
    // contradict it, but the sites' records do.
    let all = std::fs::read_to_string(&log).unwrap();
    let cut: String = all.lines().take(seq as usize).map(|l| format!("{l}\n")).collect();
    let truncated = work.join("truncated.jsonl");
    std::fs::write(&truncated, cut).unwrap();
    let alone = verify(&fed, &truncated, &[]);
    assert!(alone.status.success(), "{}", text(&alone.stderr));
    let bad = verify(&fed, &truncated, &flags(&["site-1", "site-2"]));
    assert!(!bad.status.success());
    let said = text(&bad.stderr);
    assert!(
        said.contains(&format!("site site-1 co-signed head seq {seq}, but the log has only {seq} entries")),
        "{said}"
    );
    let mut args = flags(&["site-2"]);
    args.extend(["--format".into(), "json".into()]);
    let bad = verify(&fed, &truncated, &args);
    assert!(!bad.status.success());
    let json: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["site_heads"][0]["status"], "missing", "{json}");
    assert!(json["error"].as_str().unwrap().contains("site site-2 co-signed head seq"), "{json}");

    // A head whose hash the log does not hold at that seq: the log was rewritten.
    let other = work.join("site-3.other-head.json");
    std::fs::write(&other, format!("{{\"seq\":{seq},\"hash\":\"{}\"}}", "ab".repeat(32))).unwrap();
    let bad = verify(&fed, &log, &["--site-head".into(), format!("site-3={}", other.display())]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains(&format!("site site-3 co-signed head seq {seq}, but entry seq {seq}")));
    let _ = std::fs::remove_dir_all(&work);
}
