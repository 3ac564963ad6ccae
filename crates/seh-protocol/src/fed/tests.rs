//! In-memory federations (site answers summed mod 2⁶⁴ exactly as SecAgg+ does) against the
//! R `survival` / `glm` references and against local pooled fits.

use seh_stats::cox::Ties;
use seh_stats::DataFrame;
use serde_json::Value;

use super::planner::{merge_info, plan, Step, WordSum};
use super::site::{answer, model_info};
use super::*;
use crate::spec::Analysis;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref");

fn csv(path: &str) -> DataFrame {
    let bytes = std::fs::read(format!("{REF}/{path}")).unwrap();
    DataFrame::from_csv_bytes(&bytes, path).unwrap()
}

/// Site frames of `dataset` under split `col` (`site3` / `site5`).
pub(crate) fn split(dataset: &str, col: &str) -> Vec<DataFrame> {
    let data = csv(&format!("data/{dataset}.csv"));
    let sites = csv(&format!("sites/{dataset}.csv"));
    let key = sites.column(col).unwrap();
    let site_of: Vec<f64> = if dataset == "heart" {
        let ids = sites.column("id").unwrap();
        data.column("id").unwrap().iter().map(|id| key[ids.iter().position(|x| x == id).unwrap()]).collect()
    } else {
        let rows = sites.column("row").unwrap();
        (0..data.nrows()).map(|i| key[rows.iter().position(|r| *r as usize == i + 1).unwrap()]).collect()
    };
    let mut levels: Vec<f64> = site_of.clone();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    levels
        .iter()
        .map(|l| data.take_rows(&(0..data.nrows()).filter(|&i| site_of[i] == *l).collect::<Vec<_>>()))
        .collect()
}

/// Runs the analysis over in-memory sites; returns the result and the number of rounds.
pub(crate) fn run(analysis: &Analysis, sites: &[DataFrame]) -> (Value, usize) {
    run_with(analysis, sites, WordSum::Modular64)
}

/// [`run`] with the given word-sum guarantee.
pub(crate) fn run_with(analysis: &Analysis, sites: &[DataFrame], sum: WordSum) -> (Value, usize) {
    let infos: Vec<_> = sites.iter().map(|d| model_info(analysis, d).unwrap()).collect();
    run_info(analysis, sites, &merge_info(&infos, sum).unwrap())
}

/// [`run`] with a given merged model description.
pub(crate) fn run_info(analysis: &Analysis, sites: &[DataFrame], info: &super::site::ModelInfo) -> (Value, usize) {
    let mut sums: Vec<Vec<u64>> = Vec::new();
    let mut caches: Vec<super::site::SiteCache> = sites.iter().map(|_| Default::default()).collect();
    loop {
        match plan(analysis, info, &sums).unwrap() {
            Step::Done(v) => return (v, sums.len()),
            Step::Query(q) => {
                let answers: Vec<Vec<u64>> = sites
                    .iter()
                    .zip(caches.iter_mut())
                    .map(|(d, c)| {
                        let cached = super::site::answer_cached(analysis, &q, d, c).unwrap();
                        assert_eq!(cached, answer(analysis, &q, d).unwrap(), "cache changes nothing");
                        cached
                    })
                    .collect();
                for a in &answers {
                    assert_eq!(a.len(), vector_len_for(analysis, info, &q), "layout of {}", q.label());
                }
                sums.push(wrapping_sum(&answers));
                assert!(sums.len() < 200, "too many rounds");
            }
        }
    }
}

pub(crate) fn cox(formula: &str, ties: Ties, mode: CoxMode, k: u64) -> Analysis {
    Analysis::Cox(CoxSpec { formula: formula.into(), ties, mode, min_risk_set: k, time_resolution: None, tt: None })
}

fn close(got: f64, want: f64, what: &str) {
    let err = (got - want).abs();
    assert!(err <= 1e-6 * want.abs() || err <= 1e-9, "{what}: got {got}, R {want} (rel {})", err / want.abs());
}

/// Largest relative error over coefficients, SEs, variance, log-likelihoods and tests.
pub(crate) fn compare_cox(fit: &Value, want: &Value, tag: &str) -> f64 {
    let mut worst: f64 = 0.0;
    let mut cmp = |g: f64, w: f64, what: String| {
        close(g, w, &format!("{tag} {what}"));
        if w.abs() > 1e-9 {
            worst = worst.max((g - w).abs() / w.abs());
        }
    };
    let terms: Vec<String> = want["terms"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
    for (i, t) in terms.iter().enumerate() {
        for field in ["coef", "se", "z", "p"] {
            cmp(fit[field][t].as_f64().unwrap(), want[field][t].as_f64().unwrap(), format!("{field}[{t}]"));
        }
        for (j, _) in terms.iter().enumerate() {
            cmp(fit["var"][i][j].as_f64().unwrap(), want["var"][i][j].as_f64().unwrap(), format!("var[{i}][{j}]"));
        }
    }
    for field in ["loglik", "loglik_null"] {
        let w = want[field].as_f64().unwrap_or_else(|| want[field][1].as_f64().unwrap());
        cmp(fit[field].as_f64().unwrap(), w, field.into());
    }
    for test in ["lrt", "score_test", "wald_test"] {
        cmp(fit[test]["statistic"].as_f64().unwrap(), want[test]["statistic"].as_f64().unwrap(), test.into());
    }
    assert_eq!(fit["n"], want["n"], "{tag} n");
    assert_eq!(fit["nevent"], want["nevent"], "{tag} nevent");
    worst
}

pub(crate) fn reference(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(format!("{REF}/expected/{name}.json")).unwrap()).unwrap()
}

const MODELS: [(&str, &str); 3] = [
    ("heart", "Surv(start, stop, event) ~ age + year + surgery + transplant"),
    ("lung", "Surv(time, status) ~ age + sex + ph.ecog"),
    ("rossi", "Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio"),
];

#[test]
fn stratified_cox_reproduces_r_site_strata() {
    for (data, formula) in MODELS {
        for (split_col, suffix) in [("site3", "site_strata"), ("site5", "site5_strata")] {
            for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
                let sites = split(data, split_col);
                let (v, rounds) = run(&cox(formula, ties, CoxMode::Stratified, 1), &sites);
                let name = format!("{data}_{tname}_{suffix}");
                let worst = compare_cox(&v["fit"], &reference(&name), &name);
                eprintln!("{name}: {} sites, {rounds} rounds, max rel err {worst:.2e}", sites.len());
            }
        }
    }
}

#[test]
fn pooled_cox_reproduces_r_pooled_fits() {
    for (data, formula) in MODELS {
        for split_col in ["site3", "site5"] {
            for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
                let sites = split(data, split_col);
                let (v, rounds) = run(&cox(formula, ties, CoxMode::Pooled, 1), &sites);
                let name = format!("{data}_{tname}");
                let want = reference(&name);
                let worst = compare_cox(&v["fit"], &want, &format!("{name} {split_col}"));
                assert_eq!(v["federation"]["grid"]["merged"], false);
                // Baseline hazard at the (exact) released times.
                let bh = &v["fit"]["baseline_cumhaz"];
                let wb = &want["baseline_cumhaz"];
                let (gt, wt) = (bh["time"].as_array().unwrap(), wb["time"].as_array().unwrap());
                assert_eq!(gt.len(), wt.len(), "{name}: baseline times");
                for k in 0..gt.len() {
                    close(gt[k].as_f64().unwrap(), wt[k].as_f64().unwrap(), "baseline time");
                    let (g, w) = (bh["cumhaz"][k].as_f64().unwrap(), wb["cumhaz"][k].as_f64().unwrap());
                    close(g, w, &format!("{name} cumhaz[{k}]"));
                }
                eprintln!("{name} {split_col}: {} sites, {rounds} rounds, max rel err {worst:.2e}", sites.len());
            }
        }
    }
}

#[test]
fn pooled_cox_with_other_strata_reproduces_r() {
    for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
        let sites = split("lung", "site3");
        let a = cox("Surv(time, status) ~ age + sex + ph.ecog + strata(inst)", ties, CoxMode::Pooled, 1);
        let (v, _) = run(&a, &sites);
        compare_cox(&v["fit"], &reference(&format!("lung_strata_inst_{tname}")), tname);
    }
}

#[test]
fn merging_small_risk_sets_is_reported() {
    let sites = split("lung", "site3");
    let (v, _) = run(&cox(MODELS[1].1, Ties::Efron, CoxMode::Pooled, 5), &sites);
    assert_eq!(v["federation"]["grid"]["merged"], true);
    assert_eq!(v["federation"]["grid"]["exact"], false);
    let want = reference("lung_efron");
    // Merging only the last few times moves the estimates a little, not a lot.
    let (g, w) = (v["fit"]["coef"]["sex"].as_f64().unwrap(), want["coef"]["sex"].as_f64().unwrap());
    assert!((g - w).abs() < 0.05 * w.abs());
    let risk = v["fit"]["baseline_cumhaz"]["n_risk"].as_array().unwrap();
    assert!(risk.iter().all(|r| r.as_u64().unwrap() >= 5));
}

#[test]
fn km_and_logrank_reproduce_r() {
    let sites = split("lung", "site3");
    let a = Analysis::Km(KmSpec {
        formula: "Surv(time, status) ~ sex".into(),
        conf_type: "log".into(),
        time_resolution: None,
    });
    let (v, rounds) = run(&a, &sites);
    assert_eq!(rounds, 2);
    let want = reference("km_lung_cc_sex");
    for (s, ws) in v["fit"]["strata"].as_array().unwrap().iter().zip(want["strata"].as_array().unwrap()) {
        for field in ["time", "n_risk", "n_event", "n_censor", "surv", "std_err", "lower", "upper", "cumhaz"] {
            let (g, w) = (s[field].as_array().unwrap(), ws[field].as_array().unwrap());
            assert_eq!(g.len(), w.len(), "{field}");
            for (x, y) in g.iter().zip(w) {
                if let (Some(x), Some(y)) = (x.as_f64(), y.as_f64()) {
                    close(x, y, field);
                }
            }
        }
        for field in ["median", "median_lower95", "median_upper95"] {
            if let Some(w) = ws[field].as_f64() {
                close(s[field].as_f64().unwrap(), w, field);
            }
        }
    }
    close(v["logrank"]["chisq"].as_f64().unwrap(), want["logrank"]["chisq"].as_f64().unwrap(), "chisq");
}

#[test]
fn logistic_reproduces_r() {
    let sites = split("birthwt", "site3");
    let a = Analysis::Glm(GlmSpec {
        formula: "low ~ age + lwt + race_black + race_other + smoke + ptl + ht + ui + ftv".into(),
        family: "binomial".into(),
    });
    let (v, rounds) = run(&a, &sites);
    let want = reference("logistic_birthwt");
    let fit = &v["fit"];
    for t in want["terms"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        for field in ["coef", "se", "z", "p"] {
            close(fit[field][t].as_f64().unwrap(), want[field][t].as_f64().unwrap(), &format!("{field}[{t}]"));
        }
    }
    for field in ["deviance", "null_deviance", "aic"] {
        close(fit[field].as_f64().unwrap(), want[field].as_f64().unwrap(), field);
    }
    eprintln!("logistic birthwt: {rounds} rounds");
}

/// Deterministic synthetic rows with tied integer times, three strata, optional counting-process
/// rows; `sites` unequal sites, the last one holding exactly one event.
pub(crate) fn synthetic(sites: usize, counting: bool, seed: u64) -> (DataFrame, Vec<DataFrame>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 7];
    let mut site_of = Vec::new();
    for s in 0..sites {
        let rows = if s + 1 == sites { 6 } else { 12 + 9 * (s % 4) };
        let mut events_left = if s + 1 == sites { 1 } else { usize::MAX };
        for _ in 0..rows {
            let x1: f64 = rng.gen_range(-2.0..2.0);
            let x2 = f64::from(rng.gen_range(0u8..2));
            let x3 = f64::from(rng.gen_range(0u8..4));
            let stop = f64::from(rng.gen_range(1u32..40));
            let start =
                if counting && rng.gen_bool(0.4) { (stop - f64::from(rng.gen_range(1u32..8))).max(0.0) } else { 0.0 };
            let mut event = f64::from(u8::from(rng.gen_bool(0.6)));
            if event == 1.0 {
                if events_left == 0 {
                    event = 0.0;
                } else {
                    events_left = events_left.saturating_sub(1);
                }
            }
            let g = f64::from(rng.gen_range(1u8..4));
            for (c, v) in cols.iter_mut().zip([start, stop, event, x1, x2, x3, g]) {
                c.push(v);
            }
            site_of.push(s);
        }
    }
    let names = ["start", "stop", "event", "x1", "x2", "x3", "g"];
    let all = DataFrame::from_columns(names.iter().copied().zip(cols).collect()).unwrap();
    let frames =
        (0..sites).map(|s| all.take_rows(&(0..all.nrows()).filter(|&i| site_of[i] == s).collect::<Vec<_>>())).collect();
    (all, frames)
}

pub(crate) fn local_fit(analysis: &Analysis, pooled: &DataFrame, ties: Ties) -> Value {
    let frame = super::site::frame(analysis, pooled).unwrap();
    let data = super::cox::cox_data(&frame).unwrap();
    let opts = seh_stats::cox::CoxOptions { ties, concordance: false, ..Default::default() };
    serde_json::to_value(seh_stats::cox::fit(&data, &opts).unwrap()).unwrap()
}

#[test]
fn federated_equals_local_pooled_on_synthetic_data_with_ties_strata_and_intervals() {
    for sites in [2usize, 5, 20] {
        for counting in [false, true] {
            let (all, frames) = synthetic(sites, counting, 7 + sites as u64);
            let surv = if counting { "Surv(start, stop, event)" } else { "Surv(stop, event)" };
            for (ties, tname) in [(Ties::Efron, "efron"), (Ties::Breslow, "breslow")] {
                for with_strata in [false, true] {
                    let formula = format!("{surv} ~ x1 + x2 + x3{}", if with_strata { " + strata(g)" } else { "" });
                    let a = cox(&formula, ties, CoxMode::Pooled, 1);
                    let (v, rounds) = run(&a, &frames);
                    let want = local_fit(&a, &all, ties);
                    let tag = format!("{sites} sites, counting {counting}, {tname}, strata {with_strata}");
                    let worst = compare_cox(&v["fit"], &want, &tag);
                    assert_eq!(v["federation"]["grid"]["exact"], true, "{tag}");
                    eprintln!("{tag}: {rounds} rounds, max rel err vs local {worst:.2e}");
                }
            }
        }
    }
}

#[test]
fn a_site_without_events_still_contributes_its_risk_sets() {
    let (all, mut frames) = synthetic(3, false, 99);
    // Make the last site event-free: its rows are censored but still at risk.
    let last = frames.pop().unwrap();
    let n = last.nrows();
    let mut cols: Vec<(String, Vec<f64>)> =
        last.names().iter().map(|c| (c.clone(), last.column(c).unwrap().to_vec())).collect();
    cols.iter_mut().find(|(c, _)| c == "event").unwrap().1 = vec![0.0; n];
    frames.push(DataFrame::from_columns(cols).unwrap());
    let mut pooled_cols: Vec<(String, Vec<f64>)> = all.names().iter().map(|c| (c.clone(), Vec::new())).collect();
    for f in &frames {
        for (c, v) in pooled_cols.iter_mut() {
            v.extend_from_slice(f.column(c).unwrap());
        }
    }
    let pooled = DataFrame::from_columns(pooled_cols).unwrap();
    for ties in [Ties::Efron, Ties::Breslow] {
        let a = cox("Surv(stop, event) ~ x1 + x2 + x3", ties, CoxMode::Pooled, 1);
        let (v, _) = run(&a, &frames);
        compare_cox(&v["fit"], &local_fit(&a, &pooled, ties), "site without events");
    }
}
