//! Concordance against the `concordance` component of every R `coxph`
//! reference fit (`testdata/ref/expected/*.json`): the risk score is the linear
//! predictor `X · coef` from the reference coefficients.

use seh_stats::concordance::concordance;
use seh_stats::DataFrame;
use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref");

fn load_csv(rel: &str) -> DataFrame {
    let path = format!("{ROOT}/{rel}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    DataFrame::from_csv_bytes(&bytes, rel).unwrap()
}

/// The column `name` of the data set, joining site columns from `sites/<dataset>.csv`
/// (heart by `id`, the others by the 1-based `row`).
fn column(df: &DataFrame, dataset: &str, name: &str) -> Vec<f64> {
    if df.has_column(name) {
        return df.column(name).unwrap().to_vec();
    }
    let sites = load_csv(&format!("sites/{dataset}.csv"));
    let val = sites.column(name).unwrap();
    if dataset == "heart" {
        let ids = sites.column("id").unwrap();
        df.column("id")
            .unwrap()
            .iter()
            .map(|id| val[ids.iter().position(|x| x == id).expect("id in sites file")])
            .collect()
    } else {
        let mut out = vec![f64::NAN; df.nrows()];
        for (r, v) in sites.column("row").unwrap().iter().zip(val) {
            out[*r as usize - 1] = *v;
        }
        out
    }
}

fn strata_var(formula: &str) -> Option<String> {
    let at = formula.find("strata(")? + "strata(".len();
    let end = formula[at..].find(')')? + at;
    Some(formula[at..end].to_string())
}

#[test]
fn concordance_matches_every_cox_reference() {
    let mut files: Vec<_> = std::fs::read_dir(format!("{ROOT}/expected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut checked = 0;
    let mut max_rel: f64 = 0.0;
    for path in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(expected) = v.get("concordance") else { continue };
        let formula = v["formula"].as_str().unwrap();
        let dataset = v["dataset"].as_str().unwrap();
        let data_file = v["data_file"].as_str().unwrap().split(' ').next().unwrap().to_string();
        let df = load_csv(&data_file);
        let (start, stop, event) = match dataset {
            "heart" => {
                (Some(column(&df, dataset, "start")), column(&df, dataset, "stop"), column(&df, dataset, "event"))
            }
            "lung" => (None, column(&df, dataset, "time"), column(&df, dataset, "status")),
            "rossi" => (None, column(&df, dataset, "week"), column(&df, dataset, "arrest")),
            other => panic!("unknown dataset {other}"),
        };
        let n = stop.len();
        let mut lp = vec![0.0; n];
        for term in v["terms"].as_array().unwrap() {
            let t = term.as_str().unwrap();
            let b = v["coef"][t].as_f64().unwrap();
            for (l, x) in lp.iter_mut().zip(column(&df, dataset, t)) {
                *l += x * b;
            }
        }
        let strata: Option<Vec<u32>> =
            strata_var(formula).map(|s| column(&df, dataset, &s).iter().map(|&x| x as u32).collect());
        let got = concordance(&stop, start.as_deref(), &event, strata.as_deref(), None, &lp).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for (field, g) in [
            ("concordant", got.concordant),
            ("discordant", got.discordant),
            ("tied.x", got.tied_x),
            ("tied.y", got.tied_y),
            ("tied.xy", got.tied_xy),
        ] {
            assert_eq!(g, expected[field].as_f64().unwrap(), "{name}: {field}");
        }
        for field in ["concordance", "std"] {
            let g = if field == "std" { got.std } else { got.concordance };
            let w = expected[field].as_f64().unwrap();
            let rel = ((g - w) / w).abs();
            assert!(rel < 1e-6, "{name}: {field} got {g} want {w} rel {rel}");
            max_rel = max_rel.max(rel);
        }
        checked += 1;
    }
    println!("concordance: {checked} reference files, counts exact, max rel err {max_rel:.3e}");
    assert!(checked >= 20, "only {checked} Cox references found");
}

#[test]
fn concordance_with_cluster_matches_r() {
    use seh_stats::concordance::concordance_clustered;
    let path = format!("{ROOT}/../ref-extra/concordance_heart_cluster.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let df = load_csv("data/heart.csv");
    let mut lp = vec![0.0; df.nrows()];
    for term in v["terms"].as_array().unwrap() {
        let t = term.as_str().unwrap();
        let b = v["coef"][t].as_f64().unwrap();
        for (l, x) in lp.iter_mut().zip(df.column(t).unwrap()) {
            *l += x * b;
        }
    }
    let id: Vec<u64> = df.column("id").unwrap().iter().map(|&x| x as u64).collect();
    let (start, stop, event) = (df.column("start").unwrap(), df.column("stop").unwrap(), df.column("event").unwrap());
    let got = concordance_clustered(stop, Some(start), event, None, None, &lp, Some(&id)).unwrap();
    let e = &v["concordance"];
    assert_eq!(got.concordant, e["concordant"].as_f64().unwrap());
    assert_eq!(got.discordant, e["discordant"].as_f64().unwrap());
    assert_eq!(got.tied_y, e["tied.y"].as_f64().unwrap());
    for (g, key) in [(got.concordance, "concordance"), (got.std, "std")] {
        let w = e[key].as_f64().unwrap();
        assert!(((g - w) / w).abs() < 1e-6, "{key}: got {g} want {w}");
    }
    // Without the cluster the standard error is the (different) per-row one.
    let plain = concordance(stop, Some(start), event, None, None, &lp).unwrap();
    assert!((plain.std - got.std).abs() > 1e-6);
}

mod properties {
    use proptest::prelude::*;
    use seh_stats::concordance::concordance;

    /// Rows: (start, stop, event, stratum, weight, risk) with many ties.
    fn rows() -> impl Strategy<Value = Vec<(f64, f64, f64, u32, f64, f64)>> {
        prop::collection::vec((0u32..6, 1u32..6, 0u32..2, 0u32..2, 1u32..4, 0i32..5), 2..50).prop_map(|v| {
            v.into_iter()
                .map(|(s, len, e, st, w, r)| (s as f64, (s + len) as f64, e as f64, st, w as f64, r as f64 * 0.5))
                .collect()
        })
    }

    /// Weighted pair counts by definition (Cox orientation), O(n²).
    fn brute(r: &[(f64, f64, f64, u32, f64, f64)], counting: bool) -> [f64; 5] {
        let mut c = [0.0; 5];
        for (i, a) in r.iter().enumerate() {
            if a.2 != 1.0 {
                continue;
            }
            for (j, b) in r.iter().enumerate() {
                if i == j || a.3 != b.3 || (counting && b.0 >= a.1) {
                    continue;
                }
                let w = a.4 * b.4;
                if b.1 > a.1 || (b.1 == a.1 && b.2 == 0.0) {
                    if a.5 > b.5 {
                        c[0] += w;
                    } else if a.5 < b.5 {
                        c[1] += w;
                    } else {
                        c[2] += w;
                    }
                } else if b.1 == a.1 && b.2 == 1.0 && j < i {
                    if a.5 == b.5 {
                        c[4] += w;
                    } else {
                        c[3] += w;
                    }
                }
            }
        }
        c
    }

    proptest! {
        #[test]
        fn counts_equal_brute_force_and_ignore_row_order(r in rows(), counting in any::<bool>(), rot in 0usize..50) {
            prop_assume!(r.iter().any(|x| x.2 == 1.0));
            let col = |k: usize, rows: &[(f64, f64, f64, u32, f64, f64)]| -> Vec<f64> {
                rows.iter().map(|x| [x.0, x.1, x.2, x.3 as f64, x.4, x.5][k]).collect()
            };
            let run = |rows: &[(f64, f64, f64, u32, f64, f64)]| {
                let strata: Vec<u32> = rows.iter().map(|x| x.3).collect();
                let start = col(0, rows);
                concordance(&col(1, rows), counting.then_some(start.as_slice()), &col(2, rows), Some(&strata), Some(&col(4, rows)), &col(5, rows)).unwrap()
            };
            let got = run(&r);
            let want = brute(&r, counting);
            prop_assert_eq!([got.concordant, got.discordant, got.tied_x, got.tied_y, got.tied_xy], want);
            let mut rotated = r.clone();
            let k = rot % rotated.len();
            rotated.rotate_left(k);
            rotated.reverse();
            let again = run(&rotated);
            prop_assert_eq!([again.concordant, again.discordant, again.tied_x, again.tied_y, again.tied_xy], want);
            if got.std.is_finite() {
                prop_assert!((got.std - again.std).abs() <= 1e-12 * (1.0 + got.std));
            }
        }
    }
}

#[test]
fn concordance_with_weights_and_many_strata_matches_r() {
    let path = format!("{ROOT}/../ref-extra/concordance_lung_weighted_strata.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let df = load_csv("data/lung.csv");
    let n = df.nrows();
    let mut lp = vec![0.0; n];
    for term in v["terms"].as_array().unwrap() {
        let t = term.as_str().unwrap();
        let b = v["coef"][t].as_f64().unwrap();
        for (l, x) in lp.iter_mut().zip(df.column(t).unwrap()) {
            *l += x * b;
        }
    }
    let w: Vec<f64> = (1..=n).map(|r| 1.0 + (r % 3) as f64).collect();
    let inst: Vec<u32> = df.column("inst").unwrap().iter().map(|&x| x as u32).collect();
    let got = concordance(df.column("time").unwrap(), None, df.column("status").unwrap(), Some(&inst), Some(&w), &lp)
        .unwrap();
    let e = &v["concordance"];
    for (g, key) in [
        (got.concordant, "concordant"),
        (got.discordant, "discordant"),
        (got.tied_x, "tied.x"),
        (got.tied_y, "tied.y"),
        (got.tied_xy, "tied.xy"),
    ] {
        assert_eq!(g, e[key].as_f64().unwrap(), "{key}");
    }
    for (g, key) in [(got.concordance, "concordance"), (got.std, "std")] {
        let want = e[key].as_f64().unwrap();
        assert!(((g - want) / want).abs() < 1e-6, "{key}: got {g} want {want}");
    }
}
