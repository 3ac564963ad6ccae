//! The compact wire forms (packed histogram counts, one-word reals with the wide fallback) and
//! the sites' checks of the coordinator's queries.

use seh_stats::cox::Ties;
use seh_stats::DataFrame;

use super::check::{check_query, Agreed};
use super::planner::{merge_info, plan, Step, WordSum};
use super::site::{answer_cached, model_info, SiteCache};
use super::tests::{compare_cox, cox, local_fit, reference, run_info, run_with, split, synthetic};
use super::*;
use crate::spec::Analysis;

const LUNG: &str = "Surv(time, status) ~ age + sex + ph.ecog";

#[test]
fn both_word_forms_reproduce_r_and_report_their_layout() {
    let sites = split("lung", "site5");
    for (sum, words, pack) in [(WordSum::Modular64, 1, 3), (WordSum::Limbs, 4, 1)] {
        for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
            let (v, _) = run_with(&cox(LUNG, ties, CoxMode::Pooled, 1), &sites, sum);
            compare_cox(&v["fit"], &reference(&format!("lung_{tname}")), &format!("{sum:?} {tname}"));
            assert_eq!(v["federation"]["words_per_real"], words, "{sum:?}");
            assert_eq!(v["federation"]["histogram_counts_per_word"], pack, "{sum:?}");
            assert_eq!(v["federation"]["wide_retries"], 0, "{sum:?}");
        }
    }
}

#[test]
fn a_value_outside_the_one_word_bound_is_asked_again_in_the_wide_form() {
    // Two tied event times with ~hundreds of deaths each: the deaths' weight per time exceeds the
    // one-word bound of 2^23 / 65536 = 128, so the first round overflows (at every site that holds
    // more than 128 deaths at a time) and is repeated in the wide form.
    let (all, frames) = synthetic(20, false, 5);
    let fold = |d: &DataFrame| {
        let cols: Vec<(String, Vec<f64>)> = d
            .names()
            .iter()
            .map(|c| {
                let v = d.column(c).unwrap().to_vec();
                let v = if c == "stop" { v.iter().map(|t| t % 2.0 + 1.0).collect() } else { v };
                let v = if c == "event" { vec![1.0; v.len()] } else { v };
                (c.clone(), v)
            })
            .collect();
        DataFrame::from_columns(cols).unwrap()
    };
    let (all, frames): (DataFrame, Vec<DataFrame>) = (fold(&all), frames.iter().map(fold).collect());
    let one: Vec<DataFrame> = vec![all.clone()];
    for ties in [Ties::Efron, Ties::Breslow] {
        let a = cox("Surv(stop, event) ~ x1 + x2 + x3", ties, CoxMode::Pooled, 1);
        // One site holding every row: its per-time death weights exceed the bound.
        let infos = vec![model_info(&a, &all).unwrap()];
        let mut info = merge_info(&infos, WordSum::Modular64).unwrap();
        info.word_sites = Some(65_536);
        let (v, rounds) = run_info(&a, &one, &info);
        let want = local_fit(&a, &all, ties);
        compare_cox(&v["fit"], &want, "after the wide retry");
        assert_eq!(v["federation"]["wide_retries"], 1);
        assert_eq!(v["federation"]["words_per_real"], 4);
        // The split sites fit the bound of 20 summands: no retry, same answer.
        let (v2, rounds2) = run_with(&a, &frames, WordSum::Modular64);
        compare_cox(&v2["fit"], &want, "one-word form");
        assert_eq!(v2["federation"]["wide_retries"], 0);
        assert_eq!(rounds, rounds2 + 1, "exactly one extra round");
    }
}

#[test]
fn packed_counts_round_trip_and_refuse_what_does_not_fit() {
    let counts: Vec<u64> = (0..1000).map(|i| (i * 7919) % 600_000).collect();
    for pack in 1..=MAX_PACK {
        let words = pack_counts(&counts, pack).unwrap();
        assert_eq!(words.len(), counts.len().div_ceil(pack as usize));
        // Summing three copies word-wise sums every field (each sum stays below the 21-bit field).
        let sum = wrapping_sum(&[words.clone(), words.clone(), words]);
        let back = unpack_counts(&sum, pack, counts.len()).unwrap();
        assert!(back.iter().zip(&counts).all(|(b, c)| *b == 3 * c), "pack {pack}");
    }
    assert!(pack_counts(&[1 << 21], 3).is_err());
    assert!(pack_counts(&[(1 << 21) - 1], 3).is_ok());
    assert!(pack_counts(&[1], 4).is_err());
    assert!(unpack_counts(&[0, 0], 3, 7).is_err());
}

/// The first pooled query of a lung study at β = 0 (after moments and histogram).
fn pooled_query(a: &Analysis, sites: &[DataFrame]) -> (Query, Query) {
    let infos: Vec<_> = sites.iter().map(|d| model_info(a, d).unwrap()).collect();
    let info = merge_info(&infos, WordSum::Modular64).unwrap();
    let mut sums = Vec::new();
    let mut hist = None;
    loop {
        let Step::Query(q) = plan(a, &info, &sums).unwrap() else { panic!("no pooled round") };
        if let Query::CoxPooled { .. } = q {
            return (hist.unwrap(), q);
        }
        if let Query::Histogram { .. } = q {
            hist = Some(q.clone());
        }
        let answers: Vec<Vec<u64>> = sites.iter().map(|d| super::site::answer(a, &q, d).unwrap()).collect();
        sums.push(wrapping_sum(&answers));
    }
}

#[test]
fn sites_refuse_malformed_or_changed_queries() {
    let sites = split("lung", "site3");
    let a = cox(LUNG, Ties::Efron, CoxMode::Pooled, 1);
    let (hist, good) = pooled_query(&a, &sites);
    let site = &sites[0];
    let refuse = |q: &Query, field: &str| {
        let mut cache = SiteCache::default();
        answer_cached(&a, &hist, site, &mut cache).unwrap();
        let e = answer_cached(&a, q, site, &mut cache).unwrap_err().to_string();
        assert!(e.contains(field), "{field}: {e}");
    };
    let with = |f: &dyn Fn(&mut Query)| {
        let mut q = good.clone();
        f(&mut q);
        q
    };
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { beta, .. } = q {
                beta[0] = f64::NAN
            }
        }),
        "beta",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { beta, .. } = q {
                beta[1] = f64::INFINITY
            }
        }),
        "beta",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { beta, .. } = q {
                beta.push(0.0)
            }
        }),
        "beta",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { centring, .. } = q {
                centring.scale[0] = 0.0
            }
        }),
        "centring",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { centring, .. } = q {
                centring.centre.pop();
            }
        }),
        "centring",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { edges, .. } = q {
                edges[0].reverse()
            }
        }),
        "edges",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { edges, .. } = q {
                edges[0].push(u64::MAX)
            }
        }),
        "edges",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { edges, .. } = q {
                edges.push(vec![1])
            }
        }),
        "edges",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { shifts, .. } = q {
                shifts[3] = f64::NAN
            }
        }),
        "shifts",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { shifts, .. } = q {
                shifts.pop();
            }
        }),
        "shifts",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { narrow, .. } = q {
                *narrow = Some(0)
            }
        }),
        "narrow",
    );
    refuse(
        &with(&|q| {
            if let Query::CoxPooled { resolution, .. } = q {
                *resolution *= 2.0
            }
        }),
        "edges",
    );
    // A grid other than the one this site answered the histogram for, or one changed mid-study.
    let Query::Histogram { bins, .. } = hist else { unreachable!() };
    let beyond = with(&|q| {
        if let Query::CoxPooled { edges, shifts, .. } = q {
            edges[0].push(bins + 1);
            shifts.insert(0, 0.0);
        }
    });
    refuse(&beyond, "edges");
    let mut cache = SiteCache::default();
    answer_cached(&a, &hist, site, &mut cache).unwrap();
    answer_cached(&a, &good, site, &mut cache).unwrap();
    let dropped = with(&|q| {
        if let Query::CoxPooled { edges, shifts, .. } = q {
            edges[0].remove(0);
            shifts.pop();
        }
    });
    let e = answer_cached(&a, &dropped, site, &mut cache).unwrap_err().to_string();
    assert!(e.contains("changed between rounds"), "{e}");
    // Absurd histogram sizes are refused before anything is allocated.
    let huge = Query::Histogram { resolution: 1.0, bins: MAX_QUERY_BINS, levels: vec!["x".into(); 2], pack: 1 };
    assert!(check_query(&huge, 3, true).unwrap_err().to_string().contains("levels"));
    let many: Vec<String> = (0..100).map(|i| format!("g={i}")).collect();
    let huge = Query::Histogram { resolution: 1.0, bins: MAX_QUERY_BINS, levels: many, pack: 1 };
    assert!(check_query(&huge, 3, true).unwrap_err().to_string().contains("too large"));
    let bad_res = Query::Histogram { resolution: f64::NAN, bins: 10, levels: Vec::new(), pack: 1 };
    assert!(check_query(&bad_res, 3, true).is_err());
    let bad_glm = Query::Glm { point: seh_stats::glm::IrlsPoint::Beta(vec![f64::NAN]), cols: vec![0] };
    assert!(check_query(&bad_glm, 3, false).is_err());
    let bad_cols = Query::Glm { point: seh_stats::glm::IrlsPoint::Start, cols: vec![0, 0] };
    assert!(check_query(&bad_cols, 3, false).is_err());
    let strat = Query::CoxStratified {
        centring: Centring { centre: vec![0.0; 3], scale: vec![1.0; 3] },
        beta: vec![0.0, 2e6, 0.0],
    };
    assert!(check_query(&strat, 3, true).unwrap_err().to_string().contains("beta"));
    let mut agreed = Agreed::default();
    let Query::CoxStratified { centring, .. } = &strat else { unreachable!() };
    let mut c2 = centring.clone();
    agreed.admit(&strat).unwrap();
    c2.centre[0] = 1.0;
    assert!(agreed.admit(&Query::CoxStratified { centring: c2, beta: vec![0.0; 3] }).is_err());
}

fn extra(name: &str) -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref-extra/");
    serde_json::from_slice(&std::fs::read(format!("{path}{name}.json")).unwrap()).unwrap()
}

/// The robust parts of a cluster() fit against a reference (R or a local fit), to 1e-6.
fn compare_robust(fit: &serde_json::Value, want: &serde_json::Value, tag: &str) {
    compare_cox(fit, want, tag);
    let close = |g: f64, w: f64, what: String| {
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1e-9), "{tag} {what}: got {g}, want {w}");
    };
    let terms: Vec<&str> = want["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for (i, t) in terms.iter().enumerate() {
        close(fit["robust_se"][t].as_f64().unwrap(), want["robust_se"][t].as_f64().unwrap(), format!("robust_se[{t}]"));
        for j in 0..terms.len() {
            let (g, w) = (fit["robust_var"][i][j].as_f64().unwrap(), want["robust_var"][i][j].as_f64().unwrap());
            close(g, w, format!("robust_var[{i}][{j}]"));
        }
    }
    close(
        fit["robust_score_test"]["statistic"].as_f64().unwrap(),
        want["robust_score_test"]["statistic"].as_f64().unwrap(),
        "robust score test".into(),
    );
}

#[test]
fn pooled_cluster_robust_variance_reproduces_r() {
    let heart = "Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id)";
    for split_col in ["site3", "site5"] {
        // The reference site splits of heart keep every patient at one site.
        let sites = split("heart", split_col);
        for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
            let (v, rounds) = run_with(&cox(heart, ties, CoxMode::Pooled, 1), &sites, WordSum::Modular64);
            compare_robust(&v["fit"], &extra(&format!("heart_{tname}_cluster")), &format!("heart {tname} {split_col}"));
            eprintln!("heart {tname} cluster {split_col}: {rounds} rounds");
        }
    }
    // lung with cluster(inst): sites hold whole institutions (inst mod 3).
    let lung = split("lung", "site3");
    let all = lung.iter().skip(1).fold(lung[0].clone(), |acc, d| {
        let cols = acc.names().iter().map(|c| {
            let mut v = acc.column(c).unwrap().to_vec();
            v.extend_from_slice(d.column(c).unwrap());
            (c.clone(), v)
        });
        DataFrame::from_columns(cols.collect()).unwrap()
    });
    let inst = all.column("inst").unwrap().to_vec();
    let by_inst: Vec<DataFrame> = (0..3)
        .map(|k| {
            all.take_rows(
                &(0..all.nrows()).filter(|&i| !inst[i].is_nan() && inst[i] as i64 % 3 == k).collect::<Vec<_>>(),
            )
        })
        .collect();
    let a = cox("Surv(time, status) ~ age + sex + ph.ecog + cluster(inst)", Ties::Efron, CoxMode::Pooled, 1);
    let (v, _) = run_with(&a, &by_inst, WordSum::Modular64);
    compare_robust(&v["fit"], &extra("lung_efron_cluster_inst"), "lung cluster(inst)");
}

#[test]
fn stratified_cluster_robust_variance_equals_the_local_fit_with_site_strata() {
    let sites = split("heart", "site3");
    let mut cols: Vec<(String, Vec<f64>)> = sites[0].names().iter().map(|c| (c.clone(), Vec::new())).collect();
    cols.push(("site".into(), Vec::new()));
    for (k, d) in sites.iter().enumerate() {
        for (c, v) in cols.iter_mut() {
            match d.column(c) {
                Ok(x) => v.extend_from_slice(x),
                Err(_) => v.extend(std::iter::repeat_n(k as f64, d.nrows())),
            }
        }
    }
    let pooled = DataFrame::from_columns(cols).unwrap();
    let f = "Surv(start, stop, event) ~ age + year + surgery + transplant + cluster(id)";
    for ties in [Ties::Efron, Ties::Breslow] {
        let (v, _) = run_with(&cox(f, ties, CoxMode::Stratified, 1), &sites, WordSum::Modular64);
        let local = cox(&format!("{f} + strata(site)"), ties, CoxMode::Stratified, 1);
        let frame = super::site::frame(&local, &pooled).unwrap();
        let data = frame.cox_data().unwrap();
        let opts = seh_stats::cox::CoxOptions { ties, concordance: false, ..Default::default() };
        let want = serde_json::to_value(seh_stats::cox::fit(&data, &opts).unwrap()).unwrap();
        compare_robust(&v["fit"], &want, "stratified cluster");
    }
}

fn cox_tt(formula: &str, ties: Ties, mode: CoxMode, tt: &str) -> Analysis {
    let Analysis::Cox(mut spec) = cox(formula, ties, mode, 1) else { unreachable!() };
    spec.tt = Some(tt.into());
    Analysis::Cox(spec)
}

#[test]
fn pooled_tt_reproduces_r() {
    let cases = [
        ("lung", "Surv(time, status) ~ age + tt(ph.karno)", "x * log(t + 20)", Ties::Efron, "lung_efron_tt"),
        ("rossi", "Surv(week, arrest) ~ fin + age + prio + tt(age)", "x * log(t)", Ties::Efron, "rossi_efron_tt"),
        ("rossi", "Surv(week, arrest) ~ fin + age + prio + tt(age)", "x * log(t)", Ties::Breslow, "rossi_breslow_tt"),
    ];
    for (data, formula, tt, ties, name) in cases {
        for split_col in ["site3", "site5"] {
            let sites = split(data, split_col);
            let (v, rounds) = run_with(&cox_tt(formula, ties, CoxMode::Pooled, tt), &sites, WordSum::Modular64);
            compare_cox(&v["fit"], &extra(name), &format!("{name} {split_col}"));
            assert!(v["fit"]["baseline_cumhaz"].is_null(), "no baseline hazard for tt() models");
            eprintln!("{name} {split_col}: {rounds} rounds");
        }
    }
}

#[test]
fn stratified_tt_equals_the_local_fit_with_site_strata() {
    let sites = split("rossi", "site3");
    let f = "Surv(week, arrest) ~ fin + age + prio + tt(age)";
    let mut cols: Vec<(String, Vec<f64>)> = sites[0].names().iter().map(|c| (c.clone(), Vec::new())).collect();
    cols.push(("site".into(), Vec::new()));
    for (k, d) in sites.iter().enumerate() {
        for (c, v) in cols.iter_mut() {
            match d.column(c) {
                Ok(x) => v.extend_from_slice(x),
                Err(_) => v.extend(std::iter::repeat_n(k as f64, d.nrows())),
            }
        }
    }
    let pooled = DataFrame::from_columns(cols).unwrap();
    for ties in [Ties::Efron, Ties::Breslow] {
        let (v, _) = run_with(&cox_tt(f, ties, CoxMode::Stratified, "x * log(t)"), &sites, WordSum::Modular64);
        let local = cox(&format!("{f} + strata(site)"), ties, CoxMode::Stratified, 1);
        let frame = super::site::frame(&local, &pooled).unwrap();
        let data = frame.cox_data().unwrap();
        let g = |x: f64, t: f64| x * t.ln();
        let terms: Vec<_> =
            frame.tt_columns.iter().map(|&column| seh_stats::cox::tt::TtTerm { column, f: &g }).collect();
        let opts = seh_stats::cox::CoxOptions { ties, concordance: false, ..Default::default() };
        let want = serde_json::to_value(seh_stats::cox::tt::fit_tt(&data, &terms, &opts).unwrap()).unwrap();
        compare_cox(&v["fit"], &want, "stratified tt");
    }
}
