//! Kaplan–Meier and log-rank against R survival 3.5-3 references
//! (`testdata/ref/expected/km_*.json`, `testdata/ref-extra/km_*.json`).

use seh_stats::km::{km_counts, km_curves, km_fit, time_grid, ConfType, KmCounts, KmFit, KmOptions};
use seh_stats::logrank::{logrank, logrank_from_counts};
use seh_stats::DataFrame;
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata");

fn load_json(rel: &str) -> Value {
    let path = format!("{ROOT}/{rel}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn load_csv(rel: &str) -> DataFrame {
    let path = format!("{ROOT}/{rel}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    DataFrame::from_csv_bytes(&bytes, rel).unwrap()
}

/// Relative error with an absolute floor of 1e-9 near zero; `null` in R means NA/Inf.
fn err(got: f64, want: &Value) -> f64 {
    match want.as_f64() {
        None => {
            if got.is_finite() {
                f64::INFINITY
            } else {
                0.0
            }
        }
        Some(w) => {
            let d = (got - w).abs();
            if d <= 1e-9 {
                0.0
            } else {
                d / w.abs()
            }
        }
    }
}

struct Check {
    max: f64,
    fields: usize,
}

impl Check {
    fn new() -> Self {
        Check { max: 0.0, fields: 0 }
    }
    fn one(&mut self, what: &str, got: f64, want: &Value) {
        let e = err(got, want);
        assert!(e <= 1e-6, "{what}: got {got}, want {want} (rel err {e})");
        // Report the raw relative error (no absolute floor) where R has a non-zero value.
        let raw = want.as_f64().filter(|w| *w != 0.0).map_or(e, |w| ((got - w) / w).abs());
        self.max = self.max.max(raw);
        self.fields += 1;
    }
    fn vec(&mut self, what: &str, got: &[f64], want: &Value) {
        let w = want.as_array().unwrap_or_else(|| panic!("{what}: not an array"));
        assert_eq!(got.len(), w.len(), "{what}: length");
        for (i, (g, v)) in got.iter().zip(w).enumerate() {
            self.one(&format!("{what}[{i}]"), *g, v);
        }
    }
    fn opt(&mut self, what: &str, got: Option<f64>, want: &Value) {
        self.one(what, got.unwrap_or(f64::NAN), want);
    }
}

fn labels(prefix: &str, max: usize) -> Vec<String> {
    (0..=max).map(|k| format!("{prefix}={k}")).collect()
}

fn check_fit(fit: &KmFit, expected: &Value, check: &mut Check) {
    let strata = expected["strata"].as_array().unwrap();
    assert_eq!(fit.strata.len(), strata.len());
    for (c, e) in fit.strata.iter().zip(strata) {
        let s = e["stratum"].as_str().unwrap();
        assert_eq!(c.stratum, s);
        check.one(&format!("{s} n"), c.n as f64, &e["n"]);
        check.one(&format!("{s} events"), c.events, &e["events"]);
        check.opt(&format!("{s} median"), c.median, &e["median"]);
        check.opt(&format!("{s} median_lower95"), c.median_lower95, &e["median_lower95"]);
        check.opt(&format!("{s} median_upper95"), c.median_upper95, &e["median_upper95"]);
        check.vec(&format!("{s} time"), &c.time, &e["time"]);
        check.vec(&format!("{s} n_risk"), &c.n_risk, &e["n_risk"]);
        check.vec(&format!("{s} n_event"), &c.n_event, &e["n_event"]);
        check.vec(&format!("{s} n_censor"), &c.n_censor, &e["n_censor"]);
        check.vec(&format!("{s} surv"), &c.surv, &e["surv"]);
        check.vec(&format!("{s} std_err"), &c.std_err, &e["std_err"]);
        check.vec(&format!("{s} se_surv"), &c.se_surv, &e["se_surv"]);
        check.vec(&format!("{s} lower"), &c.lower, &e["lower"]);
        check.vec(&format!("{s} upper"), &c.upper, &e["upper"]);
        check.vec(&format!("{s} cumhaz"), &c.cumhaz, &e["cumhaz"]);
        check.vec(&format!("{s} std_chaz"), &c.std_chaz, &e["std_chaz"]);
    }
}

fn check_logrank(lr: &seh_stats::logrank::Logrank, e: &Value, check: &mut Check) {
    check.one("chisq", lr.chisq, &e["chisq"]);
    check.one("df", lr.df as f64, &e["df"]);
    check.one("p", lr.p, &e["p"]);
    check.vec("n", &lr.n.iter().map(|&v| v as f64).collect::<Vec<_>>(), &e["n"]);
    check.vec("observed", &lr.observed, &e["observed"]);
    check.vec("expected", &lr.expected, &e["expected"]);
    let var = e["var"].as_array().unwrap();
    assert_eq!(var.len(), lr.observed.len());
    for (i, row) in var.iter().enumerate() {
        check.vec(&format!("var[{i}]"), &lr.var[i], row);
    }
}

struct Case<'a> {
    json: &'a str,
    csv: &'a str,
    start: Option<&'a str>,
    stop: &'a str,
    status: &'a str,
    group: &'a str,
    conf: ConfType,
}

fn col(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().to_vec()
}

/// Site (site3) of every data row: heart joins by `id`, the others by 1-based `row`.
fn site_of(df: &DataFrame, csv: &str) -> Vec<f64> {
    let sites = load_csv(&csv.replace("data/", "sites/"));
    let s3 = sites.column("site3").unwrap();
    if sites.has_column("id") {
        let ids = sites.column("id").unwrap();
        df.column("id").unwrap().iter().map(|id| s3[ids.iter().position(|x| x == id).unwrap()]).collect()
    } else {
        let mut site = vec![0.0; df.nrows()];
        for (r, s) in sites.column("row").unwrap().iter().zip(s3) {
            site[*r as usize - 1] = *s;
        }
        site
    }
}

fn km_case(c: &Case<'_>) {
    let expected = load_json(c.json);
    let df = load_csv(c.csv);
    let start = c.start.map(|s| col(&df, s));
    let time = col(&df, c.stop);
    let status = col(&df, c.status);
    let group: Vec<u32> = col(&df, c.group).iter().map(|&v| v as u32).collect();
    let lab = labels(c.group, 3);
    let opts = KmOptions { conf_type: c.conf, conf_int: 0.95 };
    let weights: Option<Vec<f64>> = expected.get("weights").map(|w| {
        assert_eq!(w.as_str(), Some("1 + (row % 3)"));
        (1..=time.len()).map(|r| 1.0 + (r % 3) as f64).collect()
    });
    let fit = km_fit(&time, start.as_deref(), &status, Some(&group), weights.as_deref(), Some(&lab), &opts).unwrap();
    let mut check = Check::new();
    check_fit(&fit, &expected, &mut check);
    println!("{}: {} fields, max rel err {:.3e}", c.json, check.fields, check.max);

    // The same curve from per-site tables on a shared grid, summed.
    let site = site_of(&df, c.csv);
    let grid = time_grid(&time);
    let mut total: Option<KmCounts> = None;
    for s in 1..=3 {
        let rows: Vec<usize> = (0..time.len()).filter(|&i| site[i] == s as f64).collect();
        let pick = |v: &[f64]| rows.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        let g: Vec<u32> = rows.iter().map(|&i| group[i]).collect();
        let st = start.as_ref().map(|v| pick(v));
        let w = weights.as_ref().map(|v| pick(v));
        let t = km_counts(&pick(&time), st.as_deref(), &pick(&status), Some(&g), w.as_deref(), Some(&grid)).unwrap();
        match total.as_mut() {
            None => total = Some(t),
            Some(acc) => acc.add(&t).unwrap(),
        }
    }
    let total = total.unwrap();
    let fed = km_curves(&total, Some(&lab), &opts).unwrap();
    let mut check = Check::new();
    check_fit(&fed, &expected, &mut check);

    if let Some(e) = expected.get("logrank") {
        let lr = logrank(&time, &status, &group, None, 0.0).unwrap();
        let mut check = Check::new();
        check_logrank(&lr, e, &mut check);
        println!("{} logrank: {} fields, max rel err {:.3e}", c.json, check.fields, check.max);
        let fed = logrank_from_counts(std::slice::from_ref(&total), 0.0).unwrap();
        check_logrank(&fed, e, &mut check);
    }
}

#[test]
fn km_lung_sex_log() {
    km_case(&Case {
        json: "ref/expected/km_lung_sex.json",
        csv: "ref/data/lung_full.csv",
        start: None,
        stop: "time",
        status: "status",
        group: "sex",
        conf: ConfType::Log,
    });
}

#[test]
fn km_lung_cc_sex_log() {
    km_case(&Case {
        json: "ref/expected/km_lung_cc_sex.json",
        csv: "ref/data/lung.csv",
        start: None,
        stop: "time",
        status: "status",
        group: "sex",
        conf: ConfType::Log,
    });
}

#[test]
fn km_lung_sex_loglog_and_plain() {
    for (json, conf) in
        [("ref-extra/km_lung_sex_loglog.json", ConfType::LogLog), ("ref-extra/km_lung_sex_plain.json", ConfType::Plain)]
    {
        km_case(&Case {
            json,
            csv: "ref/data/lung_full.csv",
            start: None,
            stop: "time",
            status: "status",
            group: "sex",
            conf,
        });
    }
}

#[test]
fn km_lung_sex_with_case_weights() {
    km_case(&Case {
        json: "ref-extra/km_lung_sex_weighted.json",
        csv: "ref/data/lung_full.csv",
        start: None,
        stop: "time",
        status: "status",
        group: "sex",
        conf: ConfType::Log,
    });
}

#[test]
fn km_heart_counting_process() {
    km_case(&Case {
        json: "ref-extra/km_heart_counting_surgery.json",
        csv: "ref/data/heart.csv",
        start: Some("start"),
        stop: "stop",
        status: "event",
        group: "surgery",
        conf: ConfType::Log,
    });
}

#[test]
fn km_and_survdiff_rossi_fin() {
    km_case(&Case {
        json: "ref-extra/km_rossi_fin.json",
        csv: "ref/data/rossi.csv",
        start: None,
        stop: "week",
        status: "arrest",
        group: "fin",
        conf: ConfType::Log,
    });
    let e = load_json("ref-extra/km_rossi_fin.json");
    let df = load_csv("ref/data/rossi.csv");
    let (time, status) = (col(&df, "week"), col(&df, "arrest"));
    let codes = |name: &str| col(&df, name).iter().map(|&v| v as u32).collect::<Vec<u32>>();
    let mut check = Check::new();
    let pp = logrank(&time, &status, &codes("fin"), None, 1.0).unwrap();
    check_logrank(&pp, &e["peto_peto"], &mut check);
    let prio4: Vec<u32> = codes("prio").iter().map(|&p| p.min(3)).collect();
    let lr4 = logrank(&time, &status, &prio4, None, 0.0).unwrap();
    check_logrank(&lr4, &e["logrank_prio4"], &mut check);
    let strat = logrank(&time, &status, &codes("fin"), Some(&codes("race")), 0.0).unwrap();
    check_logrank(&strat, &e["logrank_strata_race"], &mut check);
    println!("rossi survdiff variants: {} fields, max rel err {:.3e}", check.fields, check.max);
}

mod properties {
    use proptest::prelude::*;
    use seh_stats::km::{km_counts, km_curves, km_fit, time_grid, KmCounts, KmOptions, SurvInputError};
    use seh_stats::logrank::{logrank, logrank_from_counts};

    /// Rows: (time, status, group, site).
    fn rows() -> impl Strategy<Value = Vec<(f64, f64, u32, usize)>> {
        prop::collection::vec((0u32..15, 0u32..2, 0u32..3, 0usize..4), 2..80)
            .prop_map(|v| v.into_iter().map(|(t, s, g, site)| (t as f64 + 0.5, s as f64, g, site)).collect())
    }

    fn columns(r: &[(f64, f64, u32, usize)]) -> (Vec<f64>, Vec<f64>, Vec<u32>) {
        (r.iter().map(|x| x.0).collect(), r.iter().map(|x| x.1).collect(), r.iter().map(|x| x.2).collect())
    }

    /// NaN-aware equality through the JSON form (NaN and Inf become null, as R's NA).
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
    }

    proptest! {
        #[test]
        fn site_tables_sum_to_pooled_table(r in rows()) {
            let (t, s, g) = columns(&r);
            let grid = time_grid(&t);
            let pooled = km_counts(&t, None, &s, Some(&g), None, Some(&grid)).unwrap();
            let mut total: Option<KmCounts> = None;
            for site in 0..4 {
                let sub: Vec<_> = r.iter().copied().filter(|x| x.3 == site).collect();
                if sub.is_empty() { continue; }
                let (st, ss, sg) = columns(&sub);
                let c = km_counts(&st, None, &ss, Some(&sg), None, Some(&grid)).unwrap();
                match total.as_mut() { None => total = Some(c), Some(acc) => acc.add(&c).unwrap() }
            }
            let total = total.unwrap();
            prop_assert_eq!(&total, &pooled);
            if pooled.total_events() > 0.0 {
                let a = km_curves(&total, None, &KmOptions::default()).unwrap();
                let b = km_fit(&t, None, &s, Some(&g), None, None, &KmOptions::default()).unwrap();
                prop_assert_eq!(json(&a), json(&b));
                let groups = g.iter().collect::<std::collections::BTreeSet<_>>().len();
                if groups >= 2 {
                    // Group tables on their own (different) grids give the same test.
                    let own = km_counts(&t, None, &s, Some(&g), None, None).unwrap();
                    let lr_own = logrank_from_counts(std::slice::from_ref(&own), 0.0);
                    let lr_grid = logrank_from_counts(std::slice::from_ref(&total), 0.0);
                    match (&lr_own, &lr_grid) {
                        (Ok(x), Ok(y)) => prop_assert!(close(&x.var.concat(), &y.var.concat())),
                        (x, y) => prop_assert_eq!(x.clone().err(), y.clone().err()),
                    }
                    let lr_sites = lr_grid;
                    let lr_pooled = logrank(&t, &s, &g, None, 0.0);
                    match (lr_sites, lr_pooled) {
                        (Ok(x), Ok(y)) => {
                            prop_assert!(close(&x.expected, &y.expected));
                            prop_assert!(close(&[x.chisq], &[y.chisq]));
                        }
                        (Err(x), Err(y)) => prop_assert_eq!(x, y),
                        (x, y) => prop_assert!(false, "{:?} vs {:?}", x, y),
                    }
                }
            }
        }

        #[test]
        fn row_order_does_not_matter(r in rows(), seed in any::<u64>()) {
            let (t, s, g) = columns(&r);
            let mut idx: Vec<usize> = (0..r.len()).collect();
            // Deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..idx.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                idx.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let pt: Vec<f64> = idx.iter().map(|&i| t[i]).collect();
            let ps: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
            let pg: Vec<u32> = idx.iter().map(|&i| g[i]).collect();
            let a = km_fit(&t, None, &s, Some(&g), None, None, &KmOptions::default());
            let b = km_fit(&pt, None, &ps, Some(&pg), None, None, &KmOptions::default());
            match (a, b) {
                (Ok(x), Ok(y)) => prop_assert_eq!(json(&x), json(&y)),
                (x, y) => prop_assert_eq!(x.err(), y.err()),
            }
            let a = logrank(&t, &s, &g, None, 1.0);
            let b = logrank(&pt, &ps, &pg, None, 1.0);
            match (a, b) {
                (Ok(x), Ok(y)) => { prop_assert!(close(&x.observed, &y.observed)); prop_assert!(close(&[x.chisq], &[y.chisq])); }
                (x, y) => prop_assert_eq!(x.err(), y.err()),
            }
        }
    }

    #[test]
    fn timefix_merges_nearly_equal_times_like_r() {
        // R: survfit(Surv(c(1, 1 + 1e-10, 2), c(1, 1, 0)) ~ 1) has one event time, 1, with 2 events.
        let fit =
            km_fit(&[1.0, 1.0 + 1e-10, 2.0], None, &[1.0, 1.0, 0.0], None, None, None, &KmOptions::default()).unwrap();
        assert_eq!(fit.strata[0].time, vec![1.0, 2.0]);
        assert_eq!(fit.strata[0].n_event, vec![2.0, 0.0]);
        let lr = logrank(&[1.0, 1.0 + 1e-10, 2.0, 3.0], &[1.0, 1.0, 0.0, 1.0], &[0, 1, 0, 1], None, 0.0).unwrap();
        assert_eq!(lr.expected.iter().sum::<f64>(), 3.0);
    }

    #[test]
    fn clear_errors() {
        let o = KmOptions::default();
        assert_eq!(km_fit(&[], None, &[], None, None, None, &o), Err(SurvInputError::Empty));
        assert_eq!(km_fit(&[1.0, 2.0], None, &[0.0, 0.0], None, None, None, &o), Err(SurvInputError::NoEvents));
        assert_eq!(
            km_fit(&[1.0, -2.0], None, &[1.0, 0.0], None, None, None, &o),
            Err(SurvInputError::NegativeTime { row: 2, column: "time" })
        );
        assert_eq!(
            km_fit(&[1.0, 2.0], None, &[1.0, 2.0], None, None, None, &o),
            Err(SurvInputError::BadStatus { row: 2 })
        );
        assert_eq!(
            km_fit(&[1.0, 2.0], Some(&[0.0, 2.0]), &[1.0, 0.0], None, None, None, &o),
            Err(SurvInputError::BadInterval { row: 2 })
        );
        assert_eq!(
            km_counts(&[1.0, 2.0], None, &[1.0, 0.0], None, None, Some(&[1.0, 3.0])),
            Err(SurvInputError::Grid { problem: "does not contain every observed stop time" })
        );
        assert_eq!(logrank(&[1.0, 2.0], &[1.0, 1.0], &[1, 1], None, 0.0), Err(SurvInputError::SingleGroup));
        assert_eq!(logrank(&[1.0, 2.0], &[0.0, 0.0], &[1, 2], None, 0.0), Err(SurvInputError::NoEvents));
        let bad_opts = KmOptions { conf_int: 1.5, ..KmOptions::default() };
        assert!(matches!(km_fit(&[1.0], None, &[1.0], None, None, None, &bad_opts), Err(SurvInputError::Option(_))));
        // Tables on different grids cannot be summed.
        let mut a = km_counts(&[1.0], None, &[1.0], None, None, None).unwrap();
        let b = km_counts(&[2.0], None, &[1.0], None, None, None).unwrap();
        assert_eq!(a.add(&b), Err(SurvInputError::GridMismatch { stratum: 0 }));
    }
}
