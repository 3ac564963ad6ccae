//! `seh fit ... --format json` against the R reference fits (1e-6 relative).

use assert_cmd::Command;
use serde_json::Value;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref/");

fn seh_json(args: &[&str]) -> Value {
    let out = Command::cargo_bin("seh").unwrap().args(args).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "seh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{REF}expected/{name}.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn data(name: &str) -> String {
    format!("{REF}data/{name}")
}

/// Compares every number under `expected` (objects: the expected keys only) to `actual`:
/// 1e-6 relative or 1e-9 absolute. Returns the number of values compared.
fn close(path: &str, expected: &Value, actual: &Value) -> usize {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            let ok = (e - a).abs() <= 1e-9 || (e - a).abs() <= 1e-6 * e.abs();
            assert!(ok, "{path}: expected {e}, got {a}");
            1
        }
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .map(|(k, v)| {
                let got = a.get(k).unwrap_or_else(|| panic!("{path}.{k}: missing in the output"));
                close(&format!("{path}.{k}"), v, got)
            })
            .sum(),
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: lengths differ");
            e.iter().zip(a).enumerate().map(|(i, (x, y))| close(&format!("{path}[{i}]"), x, y)).sum()
        }
        (Value::String(e), Value::String(a)) => {
            assert_eq!(e, a, "{path}");
            0
        }
        (Value::Bool(e), Value::Bool(a)) => {
            assert_eq!(e, a, "{path}");
            0
        }
        (e, a) => panic!("{path}: expected {e}, got {a}"),
    }
}

/// Picks `keys` of `v` into a new object.
fn pick(v: &Value, keys: &[&str]) -> Value {
    Value::Object(keys.iter().map(|k| (k.to_string(), v[*k].clone())).collect())
}

const COX_KEYS: &[&str] = &[
    "n",
    "nevent",
    "terms",
    "coef",
    "se",
    "z",
    "p",
    "hazard_ratio",
    "hr_lower95",
    "hr_upper95",
    "var",
    "loglik_null",
    "loglik",
    "lrt",
    "score_test",
    "wald_test",
    "means",
];

fn check_cox(case: &str, file: &str, ties: &str) {
    let exp = expected(case);
    let formula = exp["formula"].as_str().unwrap();
    let got = seh_json(&["fit", "cox", "--data", &data(file), "--formula", formula, "--ties", ties]);
    let mut e = pick(&exp, COX_KEYS);
    // Concordance: R's value, standard error and pair counts.
    e["concordance"] = pick(&exp["concordance"], &["concordance", "std", "concordant", "discordant"]);
    let bh = &exp["baseline_cumhaz"];
    let bh_keys: Vec<&str> =
        ["time", "n_risk", "n_event", "cumhaz", "strata"].into_iter().filter(|k| bh.get(*k).is_some()).collect();
    e["baseline_cumhaz"] = pick(bh, &bh_keys);
    let n = close(case, &e, &got);
    assert!(n > 30, "{case}: only {n} values compared");
    assert_eq!(got["n_dropped_missing"], 0);
}

#[test]
fn cox_heart_efron() {
    check_cox("heart_efron", "heart.csv", "efron");
}

#[test]
fn cox_lung_breslow() {
    check_cox("lung_breslow", "lung.csv", "breslow");
}

#[test]
fn cox_lung_strata_inst_efron() {
    check_cox("lung_strata_inst_efron", "lung.csv", "efron");
}

#[test]
fn km_lung_sex() {
    let exp = expected("km_lung_sex");
    let got = seh_json(&["fit", "km", "--data", &data("lung_full.csv"), "--formula", "Surv(time, status) ~ sex"]);
    let n = close("km_lung_sex.strata", &exp["strata"], &got["strata"]);
    assert!(n > 1000, "only {n} values compared");
    let lr = pick(&exp["logrank"], &["chisq", "df", "p", "n", "observed", "expected", "var"]);
    close("km_lung_sex.logrank", &lr, &got["logrank"]);
    assert_eq!(got["n_dropped_missing"], 0);
}

#[test]
fn logistic_birthwt() {
    let exp = expected("logistic_birthwt");
    let formula = exp["formula"].as_str().unwrap();
    let got = seh_json(&["fit", "glm", "--data", &data("birthwt.csv"), "--formula", formula, "--family", "binomial"]);
    let keys = [
        "n",
        "terms",
        "coef",
        "se",
        "z",
        "p",
        "odds_ratio",
        "var",
        "deviance",
        "null_deviance",
        "df_residual",
        "df_null",
        "loglik",
        "aic",
        "lrt",
    ];
    let n = close("logistic_birthwt", &pick(&exp, &keys), &got);
    assert!(n > 100, "only {n} values compared");
}

#[test]
fn missing_rows_are_counted_in_json() {
    // lung_full has one missing ph.ecog: R reports "(1 observation deleted due to missingness)".
    let got = seh_json(&[
        "fit",
        "cox",
        "--data",
        &data("lung_full.csv"),
        "--formula",
        "Surv(time, status) ~ age + sex + ph.ecog",
    ]);
    assert_eq!(got["n_dropped_missing"], 1);
    assert_eq!(got["n"], 227);
}

#[test]
fn tt_and_factor_fits_run() {
    let got = seh_json(&[
        "fit",
        "cox",
        "--data",
        &data("lung.csv"),
        "--formula",
        "Surv(time, status) ~ age + factor(ph.ecog) + tt(sex)",
        "--tt",
        "x*log(t)",
    ]);
    let terms: Vec<&str> = got["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(terms, ["age", "factor(ph.ecog)1", "factor(ph.ecog)2", "factor(ph.ecog)3", "tt(sex)"]);
    assert_eq!(got["tt"], "x*log(t)");
    assert_eq!(got["n"], 212);
}

#[test]
fn text_output_reads_like_r() {
    let out = Command::cargo_bin("seh")
        .unwrap()
        .args(["fit", "cox", "--data", &data("lung_full.csv"), "--formula", "Surv(time, status) ~ age + sex + ph.ecog"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("  n= 227, number of events= 164 \n   (1 observation deleted due to missingness)\n"),
        "{text}"
    );
    assert!(text.contains("exp(coef) exp(-coef) lower .95 upper .95"), "{text}");
    assert!(text.contains("Likelihood ratio test="), "{text}");
    assert!(text.contains("Concordance= "), "{text}");
}

#[test]
fn demo_runs_without_arguments() {
    let out = Command::cargo_bin("seh").unwrap().arg("demo").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("n= 172, number of events= 75"), "{text}");
    assert!(text.contains("-0.0102508     -0.0102508"), "{text}");
    assert!(text.contains("largest relative difference federated vs pooled"), "{text}");
}
