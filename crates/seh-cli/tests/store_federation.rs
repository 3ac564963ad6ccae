//! Sites served from their SQLite site stores, end to end with the `seh` binary:
//! `seh data synth` (3 sites) → `seh data import --fhir` + `--opt-out` per site → `seh data cohort`
//! (the committed `testdata/cohort/ckd_death.toml`) → `seh federate cox --site-store …`, whose
//! nodes take consent from each store's FHIR `Consent` records and opt-out list.
//!
//! The pooled reference is computed without the consent code under test: the raw NDJSON is
//! filtered to the patients whose consent permits research (`provision.type = permit`) and who
//! are not on the opt-out list, imported into fresh stores, built into the same cohort and fitted
//! with `seh fit cox` on the union. The federated fit must equal it to 1e-6; with a purpose no
//! record restricts (everyone permitted), the federated fit equals the fit on all rows instead.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const COHORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/cohort/ckd_death.toml");
const FORMULA: &str = "Surv(tstart, tstop, death) ~ age + male + diabetes + hypertension + egfr";
const SITES: [&str; 3] = ["site1", "site2", "site3"];

fn seh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_seh")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> Output {
    let out = seh(args);
    assert!(out.status.success(), "seh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// The patient a resource line belongs to (`Patient.id`, else `subject` / `patient` reference).
fn patient_of(v: &Value) -> String {
    if v["resourceType"] == "Patient" {
        return v["id"].as_str().unwrap().to_owned();
    }
    let r = v.get("subject").or_else(|| v.get("patient")).and_then(|s| s["reference"].as_str());
    r.unwrap_or_else(|| panic!("no patient reference in a {}", v["resourceType"]))
        .strip_prefix("Patient/")
        .unwrap()
        .to_owned()
}

/// Patients permitted for research by the raw records: a root `permit` consent, not opted out.
fn permitted(site_dir: &Path) -> (HashSet<String>, usize) {
    let mut permit = HashSet::new();
    let mut all = 0;
    for line in std::fs::read_to_string(site_dir.join("Consent.ndjson")).unwrap().lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        all += 1;
        if v["provision"]["type"] == "permit" {
            permit.insert(patient_of(&v));
        }
    }
    let opt_out = std::fs::read_to_string(site_dir.join("opt_out.csv")).unwrap();
    for line in opt_out.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        permit.remove(line.split(',').next().unwrap());
    }
    (permit, all)
}

/// Copies the NDJSON files of `from` keeping only the resources of `keep`.
fn filter_export(from: &Path, to: &Path, keep: &HashSet<String>) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ndjson") {
            continue;
        }
        let mut out = String::new();
        for line in std::fs::read_to_string(&path).unwrap().lines().filter(|l| !l.is_empty()) {
            if keep.contains(&patient_of(&serde_json::from_str(line).unwrap())) {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(to.join(path.file_name().unwrap()), out).unwrap();
    }
}

/// Builds the cohort from `store` (storing it as table `ckd_death` unless `store_table` is false)
/// and writes it as CSV to `csv`.
fn cohort(store: &Path, csv: &Path, store_table: bool) {
    let (s, c) = (p(store), p(csv));
    let mut args = vec!["data", "cohort", "--store", &s, "--def", COHORT, "--out", &c];
    if !store_table {
        args.extend(["--table", "-"]);
    }
    ok(&args);
}

/// Concatenates CSV files with the same header.
fn concat(files: &[PathBuf], out: &Path) -> usize {
    let mut text = String::new();
    let mut rows = 0;
    for (i, f) in files.iter().enumerate() {
        let t = std::fs::read_to_string(f).unwrap();
        let mut lines = t.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().unwrap();
        if i == 0 {
            text.push_str(header);
            text.push('\n');
        }
        for l in lines {
            text.push_str(l);
            text.push('\n');
            rows += 1;
        }
    }
    std::fs::write(out, text).unwrap();
    rows
}

fn fit(csv: &Path) -> Value {
    let c = p(csv);
    serde_json::from_slice(&ok(&["fit", "cox", "--data", &c, "--formula", FORMULA, "--format", "json"]).stdout).unwrap()
}

fn federate(stores: &[PathBuf], purpose: &str, work: &Path) -> Value {
    let site_args: Vec<String> = SITES.iter().zip(stores).map(|(n, s)| format!("{n}={}", p(s))).collect();
    let w = p(work);
    let mut args = vec!["federate", "cox", "--formula", FORMULA, "--table", "ckd_death", "--purpose", purpose];
    for s in &site_args {
        args.extend(["--site-store", s]);
    }
    // The example policy refuses exact event-time grids; this test checks the exact pooled fit.
    args.extend(["--allow-event-times", "--format", "json", "--workdir", &w]);
    serde_json::from_slice(&ok(&args).stdout).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// Worst relative difference over coefficients, SEs and the log partial likelihood.
fn worst(fed: &Value, pooled: &Value) -> f64 {
    let mut w = rel(fed["loglik"].as_f64().unwrap(), pooled["loglik"].as_f64().unwrap());
    for key in ["coef", "se"] {
        let (f, r) = (fed[key].as_object().unwrap(), pooled[key].as_object().unwrap());
        assert_eq!(f.len(), r.len());
        for (name, v) in r {
            w = w.max(rel(f[name].as_f64().unwrap(), v.as_f64().unwrap()));
        }
    }
    w
}

/// Sum of `consent_removed` over the policy decisions in a site's audit log.
fn removed_in_audit(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "policy_decision")
        .filter_map(|e| e["details"]["consent_removed"].as_u64())
        .sum()
}

#[test]
fn store_sites_apply_consent_and_equal_the_pooled_fit_on_permitted_rows() {
    let dir = std::env::temp_dir().join(format!("seh-test-storefed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fhir = dir.join("fhir");
    ok(&["data", "synth", "--patients", "450", "--sites", "3", "--seed", "7", "--out", &p(&fhir)]);

    let (mut stores, mut all_csv, mut perm_csv) = (Vec::new(), Vec::new(), Vec::new());
    let mut removed_rows = BTreeMap::new();
    for site in SITES {
        let export = fhir.join(site);
        let store = dir.join(format!("{site}.sqlite"));
        ok(&["data", "import", "--store", &p(&store), "--fhir", &p(&export)]);
        ok(&["data", "import", "--store", &p(&store), "--opt-out", &p(&export.join("opt_out.csv"))]);
        let all = dir.join(format!("{site}_all.csv"));
        cohort(&store, &all, true);

        // The independent reference: only the permitted patients' records, a fresh store.
        let (keep, consents) = permitted(&export);
        assert!(!keep.is_empty() && keep.len() < consents, "{site}: {} of {consents} permitted", keep.len());
        let filtered = dir.join(format!("{site}_permitted"));
        filter_export(&export, &filtered, &keep);
        let pstore = dir.join(format!("{site}_permitted.sqlite"));
        ok(&["data", "import", "--store", &p(&pstore), "--fhir", &p(&filtered)]);
        let perm = dir.join(format!("{site}_permitted.csv"));
        cohort(&pstore, &perm, false);
        let rows = |f: &Path| std::fs::read_to_string(f).unwrap().lines().filter(|l| !l.trim().is_empty()).count();
        removed_rows.insert(site, (rows(&all) - rows(&perm)) as u64);
        stores.push(store);
        all_csv.push(all);
        perm_csv.push(perm);
    }
    let n_all = concat(&all_csv, &dir.join("pooled_all.csv"));
    let n_perm = concat(&perm_csv, &dir.join("pooled_permitted.csv"));
    assert!(n_perm < n_all);
    let pooled_perm = fit(&dir.join("pooled_permitted.csv"));
    let pooled_all = fit(&dir.join("pooled_all.csv"));

    // `seh fit` on one store's table with the same consent filter (the node's loader).
    let (s1, f) = (p(&stores[0]), FORMULA);
    let args = ["fit", "cox", "--store", &s1, "--table", "ckd_death", "--purpose", "HRESCH", "--formula", f];
    let local: Value = serde_json::from_slice(&ok(&[&args[..], &["--format", "json"]].concat()).stdout).unwrap();
    let site1 = fit(&perm_csv[0]);
    assert_eq!(local["n"], site1["n"]);
    assert!(worst(&local, &site1) < 1e-6);

    // Research purpose: each node drops the rows of patients without consent.
    let fed = federate(&stores, "HRESCH", &dir.join("fed_hresch"));
    let w = worst(&fed, &pooled_perm);
    eprintln!(
        "HRESCH: federated n {} events {} vs pooled permitted n {} events {}; worst rel. diff {w:.2e}; \
         all rows n {} events {}",
        fed["n"], fed["nevent"], pooled_perm["n"], pooled_perm["nevent"], pooled_all["n"], pooled_all["nevent"]
    );
    assert_eq!(fed["n"], pooled_perm["n"]);
    assert_eq!(fed["nevent"], pooled_perm["nevent"]);
    assert!(w < 1e-6, "federated vs pooled on permitted rows: {w:e}");
    assert_ne!(fed["n"], pooled_all["n"], "consent removed nothing");
    // Each site's audit log records exactly the rows consent removed there.
    for site in SITES {
        let log = dir.join(format!("fed_hresch/state/{site}.audit.jsonl"));
        assert_eq!(removed_in_audit(&log), removed_rows[site], "{site}");
    }

    // A purpose no consent record restricts (healthcare operations): every row is used.
    let fed_all = federate(&stores, "HOPERAT", &dir.join("fed_hoperat"));
    let w_all = worst(&fed_all, &pooled_all);
    eprintln!("HOPERAT: federated n {} vs pooled all n {}; worst rel. diff {w_all:.2e}", fed_all["n"], pooled_all["n"]);
    assert_eq!(fed_all["n"], pooled_all["n"]);
    assert!(w_all < 1e-6, "federated vs pooled on all rows: {w_all:e}");
    assert!(worst(&fed_all, &pooled_perm) > 1e-3, "the two row sets should give different fits");

    node_config_errors(&dir, &stores[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `seh node` refuses a `[store]` it cannot serve and names the key and file or table at fault.
fn node_config_errors(dir: &Path, store: &Path) {
    let config = std::fs::read_to_string(dir.join("fed_hresch/config/site1.toml")).unwrap();
    assert!(config.contains("[store]"));
    let csv_table = dir.join("plain.csv");
    std::fs::write(&csv_table, "x\n1\n2\n").unwrap();
    ok(&["data", "import", "--store", &p(store), "--csv", &p(&csv_table), "--table", "plain"]);
    let cases: [(&str, &str, &[&str]); 4] = [
        ("table = \"ckd_death\"", "table = \"nope\"", &["store.table", "nope"]),
        ("table = \"ckd_death\"", "table = \"plain\"", &["store.table", "plain", "no patient keys"]),
        (".sqlite\"", ".missing.sqlite\"", &["store.path", "no such store"]),
        (
            "table = \"ckd_death\"",
            "table = \"ckd_death\"\nsecret = \"/nonexistent/secret\"",
            &["store.secret", "/nonexistent/secret"],
        ),
    ];
    for (i, (from, to, expect)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, config.replacen(from, to, 1)).unwrap();
        let out = seh(&["node", "--config", &p(&path)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} started a node");
        for e in expect {
            assert!(err.contains(e), "case {i}: `{e}` not in: {err}");
        }
    }
}
