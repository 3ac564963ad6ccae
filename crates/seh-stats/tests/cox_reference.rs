//! Cox fits against R `survival` 3.5-3 reference output
//! (`testdata/ref/expected/*.json`, `testdata/ref-extra/*.json`).

use seh_stats::cox::driver::CoxControl;
use seh_stats::cox::fit::CoxFit;
use seh_stats::cox::kernel::{evaluate, StoredSums, Workspace};
use seh_stats::cox::prepared::{PrepareOptions, PreparedCox};
use seh_stats::cox::{fit, CoxData, CoxOptions, Strata, Ties};
use seh_stats::DataFrame;
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/");

fn read_frame(rel: &str) -> DataFrame {
    let bytes = std::fs::read(format!("{ROOT}{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"));
    DataFrame::from_csv_bytes(&bytes, rel).unwrap()
}

fn read_json(rel: &str) -> Value {
    let text = std::fs::read_to_string(format!("{ROOT}{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Codes and labels `name=value` in increasing numeric order (R's factor levels).
fn strata_from(values: &[f64], name: &str) -> Strata {
    let mut levels: Vec<f64> = values.to_vec();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let codes = values.iter().map(|v| levels.iter().position(|l| l == v).unwrap() as u32).collect();
    let labels = levels.iter().map(|l| format!("{name}={l}")).collect();
    Strata { codes, labels }
}

/// Build the data of a reference case from its name.
pub fn case_data(case: &str) -> CoxData {
    let dataset = case.split('_').next().unwrap();
    let df = read_frame(&format!("ref/data/{dataset}.csv"));
    let (time, status, terms): (&str, &str, Vec<&str>) = match dataset {
        "heart" => ("stop", "event", vec!["age", "year", "surgery", "transplant"]),
        "lung" => ("time", "status", vec!["age", "sex", "ph.ecog"]),
        "rossi" => ("week", "arrest", vec!["fin", "age", "race", "wexp", "mar", "paro", "prio"]),
        _ => panic!("unknown data set {dataset}"),
    };
    let n = df.nrows();
    let p = terms.len();
    let cols: Vec<&[f64]> = terms.iter().map(|t| df.column(t).unwrap()).collect();
    let mut x = Vec::with_capacity(n * p);
    for i in 0..n {
        for c in &cols {
            x.push(c[i]);
        }
    }
    let mut d = CoxData::new(
        df.column(time).unwrap().to_vec(),
        df.column(status).unwrap().to_vec(),
        x,
        terms.iter().map(|s| s.to_string()).collect(),
    );
    if dataset == "heart" {
        d.start = Some(df.column("start").unwrap().to_vec());
    }
    let site = if case.contains("site5") {
        Some("site5")
    } else if case.contains("site_strata") {
        Some("site3")
    } else {
        None
    };
    if let Some(col) = site {
        let sites = read_frame(&format!("ref/sites/{dataset}.csv"));
        let s = sites.column(col).unwrap();
        let values: Vec<f64> = if dataset == "heart" {
            let ids = sites.column("id").unwrap();
            df.column("id")
                .unwrap()
                .iter()
                .map(|id| s[ids.iter().position(|v| v == id).expect("id in site file")])
                .collect()
        } else {
            let rows = sites.column("row").unwrap();
            (0..n).map(|i| s[rows.iter().position(|r| *r == (i + 1) as f64).expect("row in site file")]).collect()
        };
        d.strata = Some(strata_from(&values, col));
    }
    if case.contains("strata_inst") {
        d.strata = Some(strata_from(df.column("inst").unwrap(), "inst"));
    }
    d
}

fn tight() -> CoxControl {
    CoxControl { eps: 1e-12, toler_chol: 1e-13, iter_max: 100, ..CoxControl::default() }
}

fn ties_of(v: &Value) -> Ties {
    match v["ties"].as_str().unwrap() {
        "efron" => Ties::Efron,
        "breslow" => Ties::Breslow,
        "exact" => Ties::Exact,
        t => panic!("ties {t}"),
    }
}

/// Tracks the worst relative error seen.
#[derive(Default)]
struct Checker {
    worst: f64,
    failures: Vec<String>,
}

impl Checker {
    fn num(&mut self, what: &str, got: f64, want: f64) {
        let diff = (got - want).abs();
        let rel = if want.abs() > 1e-3 { diff / want.abs() } else { diff };
        let ok = diff <= 1e-9 || diff <= 1e-6 * want.abs();
        if want.abs() > 1e-3 {
            self.worst = self.worst.max(rel);
        }
        if !ok || got.is_nan() {
            self.failures.push(format!("{what}: got {got:e}, want {want:e}"));
        }
    }

    fn terms(&mut self, what: &str, got: &seh_stats::cox::fit::TermMap, want: &Value, terms: &[String]) {
        for t in terms {
            let w = want[t.as_str()].as_f64().unwrap_or_else(|| panic!("{what}[{t}] missing"));
            let g = got.get(t).unwrap_or(f64::NAN);
            self.num(&format!("{what}[{t}]"), g, w);
        }
    }

    fn test(&mut self, what: &str, got: &seh_stats::cox::fit::ChisqTest, want: &Value) {
        self.num(&format!("{what}.statistic"), got.statistic, want["statistic"].as_f64().unwrap());
        self.num(&format!("{what}.df"), got.df as f64, want["df"].as_f64().unwrap());
        self.num(&format!("{what}.p"), got.p, want["p"].as_f64().unwrap());
    }

    fn vec(&mut self, what: &str, got: &[f64], want: &Value) {
        let w = want.as_array().unwrap_or_else(|| panic!("{what} not an array"));
        assert_eq!(got.len(), w.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(w).enumerate() {
            self.num(&format!("{what}[{i}]"), *g, w.as_f64().unwrap());
        }
    }
}

fn compare(fit: &CoxFit, want: &Value, ck: &mut Checker, with_iterations: bool) {
    let terms: Vec<String> = want["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
    assert_eq!(fit.terms, terms);
    ck.terms("coef", &fit.coef, &want["coef"], &terms);
    ck.terms("se", &fit.se, &want["se"], &terms);
    ck.terms("z", &fit.z, &want["z"], &terms);
    ck.terms("p", &fit.p, &want["p"], &terms);
    ck.terms("hazard_ratio", &fit.hazard_ratio, &want["hazard_ratio"], &terms);
    ck.terms("hr_lower95", &fit.hr_lower95, &want["hr_lower95"], &terms);
    ck.terms("hr_upper95", &fit.hr_upper95, &want["hr_upper95"], &terms);
    ck.terms("means", &fit.means, &want["means"], &terms);
    for (i, row) in want["var"].as_array().unwrap().iter().enumerate() {
        ck.vec(&format!("var[{i}]"), &fit.var[i], row);
    }
    ck.num("loglik", fit.loglik, want["loglik"].as_f64().unwrap());
    ck.num("loglik_null", fit.loglik_null, want["loglik_null"].as_f64().unwrap());
    ck.test("lrt", &fit.lrt, &want["lrt"]);
    ck.test("score_test", &fit.score_test, &want["score_test"]);
    ck.test("wald_test", &fit.wald_test, &want["wald_test"]);
    assert_eq!(fit.n as u64, want["n"].as_u64().unwrap(), "n");
    assert_eq!(fit.nevent as u64, want["nevent"].as_u64().unwrap(), "nevent");
    if with_iterations {
        ck.num("iterations", fit.iterations as f64, want["iterations"].as_f64().unwrap());
    }
    if let Some(bh) = want.get("baseline_cumhaz") {
        let got = fit.baseline_cumhaz.as_ref().expect("baseline computed");
        ck.vec("baseline.time", &got.time, &bh["time"]);
        let nr: Vec<f64> = got.n_risk.iter().map(|v| *v as f64).collect();
        ck.vec("baseline.n_risk", &nr, &bh["n_risk"]);
        ck.vec("baseline.n_event", &got.n_event, &bh["n_event"]);
        ck.vec("baseline.cumhaz", &got.cumhaz, &bh["cumhaz"]);
        if let Some(st) = bh.get("strata") {
            let want_st: Vec<String> = st.as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
            assert_eq!(got.strata.as_ref().expect("strata labels"), &want_st);
        }
    }
    if let (Some(c), Some(w)) = (&fit.concordance, want.get("concordance")) {
        ck.num("concordance", c.concordance, w["concordance"].as_f64().unwrap());
    }
}

fn run_case(case: &str) -> f64 {
    let want = read_json(&format!("ref/expected/{case}.json"));
    let data = case_data(case);
    let opts = CoxOptions { ties: ties_of(&want), control: tight(), ..CoxOptions::default() };
    let fit = fit(&data, &opts).unwrap_or_else(|e| panic!("{case}: {e}"));
    let mut ck = Checker::default();
    compare(&fit, &want, &mut ck, true);
    assert!(ck.failures.is_empty(), "{case}: {} mismatches:\n{}", ck.failures.len(), ck.failures.join("\n"));
    eprintln!("{case}: max relative error {:.2e}", ck.worst);
    ck.worst
}

macro_rules! ref_cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            run_case(stringify!($name));
        }
    )*};
}

ref_cases!(
    heart_efron,
    heart_breslow,
    heart_efron_site_strata,
    heart_breslow_site_strata,
    heart_efron_site5_strata,
    heart_breslow_site5_strata,
    lung_efron,
    lung_breslow,
    lung_exact,
    lung_strata_inst_efron,
    lung_strata_inst_breslow,
    lung_strata_inst_exact,
    lung_efron_site_strata,
    lung_breslow_site_strata,
    lung_efron_site5_strata,
    lung_breslow_site5_strata,
    rossi_efron,
    rossi_breslow,
    rossi_efron_site_strata,
    rossi_breslow_site_strata,
    rossi_efron_site5_strata,
    rossi_breslow_site5_strata,
);

/// Federation invariant: per-time sums of three "sites" (a split of the rows),
/// added and folded, equal the direct evaluation of the pooled rows.
#[test]
fn stored_sums_of_three_sites_equal_pooled_evaluation() {
    for case in ["heart_efron", "lung_efron", "rossi_breslow", "lung_strata_inst_efron"] {
        let want = read_json(&format!("ref/expected/{case}.json"));
        let ties = ties_of(&want);
        let pooled = case_data(case);
        let prep = PreparedCox::new(&pooled, &PrepareOptions::default()).unwrap();
        let beta: Vec<f64> =
            (0..pooled.p).map(|j| 0.05 * (j as f64 + 1.0) * if j % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let beta_int = prep.to_internal(&beta);
        let mut ws = Workspace::new(&prep);
        let mut direct = seh_stats::cox::FoldSink::new(pooled.p, ties);
        evaluate(&prep, &beta_int, ties, &mut ws, &mut direct).unwrap();
        let direct = direct.to_evaluation();

        let common = PrepareOptions {
            centring: seh_stats::cox::prepared::Centring::Given {
                centre: prep.centre().to_vec(),
                scale: prep.scale().to_vec(),
            },
            timefix: true,
            grid: Some(prep.grid()),
        };
        let mut total: Option<StoredSums> = None;
        for site in 0..3 {
            let rows: Vec<usize> = (0..pooled.n()).filter(|i| (i * 7 + 3) % 3 == site).collect();
            let part = subset(&pooled, &rows);
            let sp = PreparedCox::new(&part, &common).unwrap();
            let mut sws = Workspace::new(&sp);
            let mut store = StoredSums::new(pooled.p, true);
            evaluate(&sp, &beta_int, ties, &mut sws, &mut store).unwrap();
            match total.as_mut() {
                None => total = Some(store),
                Some(t) => t.add(&store).unwrap(),
            }
        }
        let fed = total.unwrap().fold(ties).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-10 * (1.0 + b.abs());
        assert!(close(fed.loglik, direct.loglik), "{case}: loglik {} vs {}", fed.loglik, direct.loglik);
        for (a, b) in fed.score.iter().zip(&direct.score) {
            assert!(close(*a, *b), "{case}: score {a} vs {b}");
        }
        for (a, b) in fed.info.iter().zip(&direct.info) {
            assert!(close(*a, *b), "{case}: info {a} vs {b}");
        }
    }
}

/// Rows `rows` of `d` (every site needs at least one event for validation, so
/// sites here are made of whole data subsets that contain events).
fn subset(d: &CoxData, rows: &[usize]) -> CoxData {
    let p = d.p;
    let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    let mut x = Vec::with_capacity(rows.len() * p);
    for &i in rows {
        x.extend_from_slice(&d.x[i * p..(i + 1) * p]);
    }
    let mut s = CoxData::new(pick(&d.stop), pick(&d.event), x, d.terms.clone());
    s.start = d.start.as_deref().map(pick);
    s.strata = d
        .strata
        .as_ref()
        .map(|st| Strata { codes: rows.iter().map(|&i| st.codes[i]).collect(), labels: st.labels.clone() });
    s.weights = d.weights.as_deref().map(pick);
    s.offset = d.offset.as_deref().map(pick);
    s
}

/// Data of an extra case: `(data frame columns as covariates)` plus options.
fn frame_data(dataset: &str, time: &str, status: &str, cols: &[&str], terms: &[&str]) -> CoxData {
    let df = read_frame(&format!("ref/data/{dataset}.csv"));
    let n = df.nrows();
    let c: Vec<&[f64]> = cols.iter().map(|t| df.column(t).unwrap()).collect();
    let mut x = Vec::with_capacity(n * cols.len());
    for i in 0..n {
        for col in &c {
            x.push(col[i]);
        }
    }
    let mut d = CoxData::new(
        df.column(time).unwrap().to_vec(),
        df.column(status).unwrap().to_vec(),
        x,
        terms.iter().map(|s| s.to_string()).collect(),
    );
    if dataset == "heart" {
        d.start = Some(df.column("start").unwrap().to_vec());
    }
    d
}

fn compare_extra(case: &str, fit: &CoxFit) {
    let want = read_json(&format!("ref-extra/{case}.json"));
    let mut ck = Checker::default();
    compare(fit, &want, &mut ck, true);
    let terms: Vec<String> = fit.terms.clone();
    if want.get("robust_se").is_some() {
        let rse = fit.robust_se.as_ref().expect("robust se");
        ck.terms("robust_se", rse, &want["robust_se"], &terms);
        let rv = fit.robust_var.as_ref().expect("robust var");
        for (i, row) in want["robust_var"].as_array().unwrap().iter().enumerate() {
            ck.vec(&format!("robust_var[{i}]"), &rv[i], row);
        }
        ck.test("robust_score_test", fit.robust_score_test.as_ref().unwrap(), &want["robust_score_test"]);
    }
    assert!(ck.failures.is_empty(), "{case}: {} mismatches:\n{}", ck.failures.len(), ck.failures.join("\n"));
    eprintln!("{case}: max relative error {:.2e}", ck.worst);
}

#[test]
fn heart_cluster_id_robust_variance() {
    for (case, ties) in [("heart_efron_cluster", Ties::Efron), ("heart_breslow_cluster", Ties::Breslow)] {
        let terms = ["age", "year", "surgery", "transplant"];
        let mut d = frame_data("heart", "stop", "event", &terms, &terms);
        let df = read_frame("ref/data/heart.csv");
        d.cluster = Some(df.column("id").unwrap().iter().map(|v| *v as u64).collect());
        let f = fit(&d, &CoxOptions { ties, control: tight(), ..CoxOptions::default() }).unwrap();
        compare_extra(case, &f);
    }
}

#[test]
fn lung_cluster_inst_robust_variance() {
    let terms = ["age", "sex", "ph.ecog"];
    let mut d = frame_data("lung", "time", "status", &terms, &terms);
    let df = read_frame("ref/data/lung.csv");
    d.cluster = Some(df.column("inst").unwrap().iter().map(|v| *v as u64).collect());
    let f = fit(&d, &CoxOptions { ties: Ties::Efron, control: tight(), ..CoxOptions::default() }).unwrap();
    compare_extra("lung_efron_cluster_inst", &f);
}

#[test]
fn lung_tt_karno_log_t_plus_20() {
    use seh_stats::cox::tt::{fit_tt, TtTerm};
    let d = frame_data("lung", "time", "status", &["age", "ph.karno"], &["age", "tt(ph.karno)"]);
    let f = |x: f64, t: f64| x * (t + 20.0).ln();
    let tt = [TtTerm { column: 1, f: &f }];
    let fitted = fit_tt(&d, &tt, &CoxOptions { ties: Ties::Efron, control: tight(), ..CoxOptions::default() }).unwrap();
    compare_extra("lung_efron_tt", &fitted);
}

#[test]
fn rossi_tt_age_log_t() {
    use seh_stats::cox::tt::{fit_tt, TtTerm};
    let d = frame_data("rossi", "week", "arrest", &["fin", "age", "prio", "age"], &["fin", "age", "prio", "tt(age)"]);
    let f = |x: f64, t: f64| x * t.ln();
    let tt = [TtTerm { column: 3, f: &f }];
    for (case, ties) in [("rossi_efron_tt", Ties::Efron), ("rossi_breslow_tt", Ties::Breslow)] {
        let fitted = fit_tt(&d, &tt, &CoxOptions { ties, control: tight(), ..CoxOptions::default() }).unwrap();
        compare_extra(case, &fitted);
    }
}
