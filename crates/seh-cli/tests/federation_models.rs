//! End-to-end federated models over separate OS processes on loopback (`seh federate cox|km|glm`):
//! a coordinator and one node per site, real mTLS, SecAgg+ per round, FROST-signed release;
//! results checked against the R references in testdata/ref/expected.

use std::path::{Path, PathBuf};
use std::process::Command;

use seh_stats::DataFrame;
use serde_json::Value;

mod common;
use common::workdir;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref");

/// `dataset` with its `site3` / `site5` columns appended (heart joined by id, others by row).
fn joined(dataset: &str, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{REF}/data/{dataset}.csv")).unwrap();
    let sites =
        DataFrame::from_csv_bytes(&std::fs::read(format!("{REF}/sites/{dataset}.csv")).unwrap(), "sites").unwrap();
    let data = DataFrame::from_csv_bytes(text.as_bytes(), "data").unwrap();
    let (s3, s5) = (sites.column("site3").unwrap(), sites.column("site5").unwrap());
    let mut lines = text.lines();
    let mut out = format!("{},site3,site5\n", lines.next().unwrap());
    for (i, line) in lines.filter(|l| !l.trim().is_empty()).enumerate() {
        let k = if dataset == "heart" {
            let id = data.column("id").unwrap()[i];
            sites.column("id").unwrap().iter().position(|x| *x == id).unwrap()
        } else {
            sites.column("row").unwrap().iter().position(|r| *r as usize == i + 1).unwrap()
        };
        out.push_str(&format!("{line},{},{}\n", s3[k], s5[k]));
    }
    let p = dir.join(format!("{dataset}_sites.csv"));
    std::fs::write(&p, out).unwrap();
    p
}

fn seh(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seh")).args(args).output().unwrap()
}

fn federate(name: &str, dataset: &str, split: &str, args: &[&str]) -> Value {
    let dir = workdir(&format!("fedmodel-{name}"));
    let data = joined(dataset, &dir);
    let work = dir.join("fed");
    let mut all: Vec<&str> = args.to_vec();
    let (d, w) = (data.display().to_string(), work.display().to_string());
    all.extend(["--data", &d, "--split-by", split, "--format", "json", "--workdir", &w]);
    let out = seh(&all);
    assert!(out.status.success(), "seh {all:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn reference(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(format!("{REF}/expected/{name}.json")).unwrap()).unwrap()
}

fn close(got: f64, want: f64, what: &str) -> f64 {
    let err = (got - want).abs();
    assert!(err <= 1e-6 * want.abs() || err <= 1e-9, "{what}: got {got}, want {want}");
    if want.abs() > 1e-9 {
        err / want.abs()
    } else {
        0.0
    }
}

fn compare_cox(fit: &Value, want: &Value, tag: &str) -> f64 {
    let mut worst: f64 = 0.0;
    for t in want["terms"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        for field in ["coef", "se", "z", "p"] {
            let e = close(fit[field][t].as_f64().unwrap(), want[field][t].as_f64().unwrap(), &format!("{tag} {field}"));
            worst = worst.max(e);
        }
    }
    for field in ["loglik", "loglik_null"] {
        worst = worst.max(close(fit[field].as_f64().unwrap(), want[field].as_f64().unwrap(), field));
    }
    for test in ["lrt", "score_test", "wald_test"] {
        let (g, w) = (fit[test]["statistic"].as_f64().unwrap(), want[test]["statistic"].as_f64().unwrap());
        worst = worst.max(close(g, w, test));
    }
    assert_eq!(fit["n"], want["n"]);
    assert_eq!(fit["nevent"], want["nevent"]);
    worst
}

const HEART: &str = "Surv(start, stop, event) ~ age + year + surgery + transplant";

#[test]
fn stratified_cox_over_processes_equals_r_strata_site() {
    let v = federate(
        "strat",
        "heart",
        "site3",
        &["federate", "cox", "--formula", HEART, "--mode", "stratified", "--min-risk-set", "1"],
    );
    let worst = compare_cox(&v, &reference("heart_efron_site_strata"), "heart stratified");
    assert_eq!(v["federation"]["mode"], "stratified");
    assert_eq!(v["federation"]["signature_verified"], true);
    assert!(v["concordance"].is_null());
    eprintln!("heart_efron_site_strata over processes: max rel err {worst:.2e}");
}

#[test]
fn pooled_cox_over_processes_equals_r_pooled_and_local_fit() {
    let formula = "Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio";
    let args = ["federate", "cox", "--formula", formula, "--ties", "breslow", "--min-risk-set", "1"];
    let v = federate("pooled", "rossi", "site5", &args);
    let worst = compare_cox(&v, &reference("rossi_breslow"), "rossi pooled");
    assert_eq!(v["federation"]["grid"]["exact"], true);
    assert_eq!(v["federation"]["sites"].as_array().unwrap().len(), 5);
    // The same numbers as the local pooled fit of `seh fit cox`.
    let local = seh(&[
        "fit",
        "cox",
        "--data",
        &format!("{REF}/data/rossi.csv"),
        "--formula",
        formula,
        "--ties",
        "breslow",
        "--format",
        "json",
    ]);
    assert!(local.status.success());
    let local: Value = serde_json::from_slice(&local.stdout).unwrap();
    compare_cox(&v, &local, "rossi federated vs local");
    eprintln!("rossi_breslow pooled over 5 processes: max rel err {worst:.2e}");
}

#[test]
fn pooled_cox_default_policy_merges_small_risk_sets_and_says_so() {
    // The default policy allows no exact event-time grid: a 30-day grid (its minimum step).
    let args = ["federate", "cox", "--formula", "Surv(time, status) ~ age + sex + ph.ecog", "--time-resolution", "30"];
    let v = federate("merge", "lung", "site3", &args);
    assert_eq!(v["federation"]["grid"]["min_risk_set"], 5);
    assert_eq!(v["federation"]["grid"]["merged"], true);
    assert_eq!(v["federation"]["grid"]["exact"], false);
    assert!(v["baseline_cumhaz"]["n_risk"].as_array().unwrap().iter().all(|r| r.as_u64().unwrap() >= 5));
}

#[test]
fn km_and_logrank_over_processes_equal_r() {
    // A local verification run (exact event times; the default policy refuses them by `time_grid`).
    let args = ["federate", "km", "--formula", "Surv(time, status) ~ sex", "--min-cell-count", "1"];
    let v = federate("km", "lung_full", "site3", &args);
    let want = reference("km_lung_sex");
    for (s, w) in v["strata"].as_array().unwrap().iter().zip(want["strata"].as_array().unwrap()) {
        for field in ["time", "n_risk", "n_event", "surv", "std_err", "lower", "upper"] {
            let (g, r) = (s[field].as_array().unwrap(), w[field].as_array().unwrap());
            assert_eq!(g.len(), r.len(), "{field}");
            for (x, y) in g.iter().zip(r) {
                if let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) {
                    close(x, y, field);
                }
            }
        }
    }
    close(v["logrank"]["chisq"].as_f64().unwrap(), want["logrank"]["chisq"].as_f64().unwrap(), "log-rank");
}

#[test]
fn logistic_over_processes_equals_r() {
    let formula = "low ~ age + lwt + race_black + race_other + smoke + ptl + ht + ui + ftv";
    let args = ["federate", "glm", "--formula", formula, "--family", "binomial"];
    // At the default policy the smallest birthwt site has fewer than 1/0.33 rows per parameter:
    // it refuses, naming the DataSHIELD rule, as a real site would.
    let dir = workdir("fedmodel-glm-refused");
    let (d, w) = (joined("birthwt", &dir).display().to_string(), dir.join("fed").display().to_string());
    let out = seh(&[&args[..], &["--data", &d, "--split-by", "site3", "--workdir", &w]].concat());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disclosure.max_parameters_per_row"), "{err}");
    // A local verification run (counts below the floors) lifts the rule and matches R.
    let v = federate("glm", "birthwt", "site3", &[&args[..], &["--min-cell-count", "1"]].concat());
    let want = reference("logistic_birthwt");
    for t in want["terms"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        for field in ["coef", "se"] {
            close(v[field][t].as_f64().unwrap(), want[field][t].as_f64().unwrap(), field);
        }
    }
    close(v["deviance"].as_f64().unwrap(), want["deviance"].as_f64().unwrap(), "deviance");
}

#[test]
fn he_aggregation_gives_the_secagg_fit_and_r() {
    // Threshold HE end to end: per-study collective key among the three node processes, encrypted
    // rounds, t-of-n decryption. The sums equal SecAgg+'s word for word, so the fits are identical.
    let args = ["federate", "cox", "--formula", HEART, "--mode", "pooled", "--min-risk-set", "1"];
    let he = federate("he", "heart", "site3", &[&args[..], &["--aggregation", "he"]].concat());
    let sa = federate("he-secagg", "heart", "site3", &args);
    assert_eq!(he["federation"]["aggregation"], "he");
    for field in ["coef", "se", "z", "loglik", "loglik_null"] {
        assert_eq!(he[field], sa[field], "{field}");
    }
    compare_cox(&he, &reference("heart_efron"), "heart pooled he");
}

#[test]
fn a_coordinator_killed_between_newton_rounds_resumes_to_the_same_fit() {
    // Local verification (`--min-risk-set 1`): heart's smallest site5 site is below the example
    // policy's 0.2 parameters per row.
    let args = [
        "federate",
        "cox",
        "--formula",
        HEART,
        "--mode",
        "stratified",
        "--min-risk-set",
        "1",
        "--debug-coordinator-exit-after",
        "7",
    ];
    let v = federate("restart", "heart", "site5", &args);
    assert_eq!(v["federation"]["coordinator_restarts"], 1);
    compare_cox(&v, &reference("heart_efron_site5_strata"), "heart stratified after a restart");
}

fn extra(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(format!("{REF}-extra/{name}.json")).unwrap()).unwrap()
}

#[test]
fn pooled_cluster_and_tt_over_processes_reproduce_r() {
    let heart = "Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id)";
    // A local verification run: exact event-time grids (the default policy refuses them).
    let v = federate("cluster", "heart", "site3", &["federate", "cox", "--formula", heart, "--min-risk-set", "1"]);
    assert_eq!(v["federation"]["grid"]["exact"], true);
    let want = extra("heart_efron_cluster");
    compare_cox(&v, &want, "heart cluster(id)");
    for t in want["terms"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        close(v["robust_se"][t].as_f64().unwrap(), want["robust_se"][t].as_f64().unwrap(), "robust se");
    }
    assert!(v["federation"]["robust"].as_str().unwrap().contains("must not span sites"));
    let rossi = "Surv(week, arrest) ~ fin + age + prio + tt(age)";
    let args = ["federate", "cox", "--formula", rossi, "--tt", "x * log(t)", "--min-risk-set", "1"];
    let v = federate("tt", "rossi", "site5", &args);
    assert_eq!(v["federation"]["grid"]["exact"], true);
    compare_cox(&v, &extra("rossi_efron_tt"), "rossi tt(age)");
}
