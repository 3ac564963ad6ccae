//! A curious researcher against the federation, in memory (real signed envelopes, SecAgg+, FROST,
//! DP ledgers on disk), under the policy `seh federate` writes by default
//! (`open_policy_toml_for`, = examples/policy/site-policy.toml):
//!
//! * the complement attack: a suppressed cell recovered as the released `n` minus the other cells;
//! * the bound-moving search: 45 studies moving one histogram bound (and differencing across bin
//!   counts) to localise one planted patient's value;
//! * small strata: a KM group of one patient, a GLM factor level and a Cox stratum of two.
//!
//! Each attack is first shown to work against a policy with the protections switched off (so the
//! attack itself is real), then to fail under the default policy: the value is localised no
//! better than the lattice step (two values in one lattice cell give identical exact releases) and
//! the budget refuses further queries by rule `dp.epsilon_total`; no released number lets a
//! suppressed cell be derived; no stratum below the floor is released.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::wire::{PartyId, SigningKey};
use seh_policy::consent::{ConsentRegime, ConsentRegistry};
use seh_policy::dp::BudgetLedger;
use seh_policy::policy::{open_policy_toml_for, AnalysisKind};
use seh_policy::Date;
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::describe::{self, DescribeResult};
use seh_protocol::fed::planner::{merge_info, plan, Step, WordSum};
use seh_protocol::fed::site::{answer, model_info};
use seh_protocol::fed::wrapping_sum;
use seh_protocol::federation::Federation;
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::{SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::DataFrame;
use serde_json::Value;

const SITES: [&str; 3] = ["site-0", "site-1", "site-2"];
/// The planted patient's value (at site 0).
const PLANTED: f64 = 87.654_321;
/// The default policy's lattice step and minimum cell count.
const STEP: f64 = 5.0;
const K: u64 = 5;

struct Fed {
    fed: Arc<Federation>,
    coordinator: SigningKey,
    alice: SigningKey,
    sites: Vec<(SigningKey, seh_crypto::frost::KeyShare)>,
}

fn federation() -> Fed {
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let names: Vec<String> = SITES.iter().map(|s| s.to_string()).collect();
    let (file, secrets) = setup::generate("attack", "coordinator", &names, &["alice".into()], 2, &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let sites = names.iter().map(|n| secrets.sites[n].clone()).collect();
    Fed { fed, coordinator: secrets.coordinator, alice: secrets.researchers["alice"].clone(), sites }
}

/// The policy `seh federate` writes by default (minimum count 5), edited by `edit`.
fn policy(f: &Fed, edit: impl Fn(String) -> String) -> SitePolicy {
    let kinds = [AnalysisKind::Descriptive, AnalysisKind::Km, AnalysisKind::Cox, AnalysisKind::Glm];
    let key = hex::encode(f.alice.verifying_key().as_bytes());
    let text = edit(open_policy_toml_for(&[("alice".into(), key)], &kinds, K, &["HRESCH"]));
    SitePolicy::from_toml_str(&text, "attacker policy").unwrap()
}

/// The protections of issue 18 switched off: no lattice, no mandatory DP.
fn lax(t: String) -> String {
    t.replace("min_bin_width = 5.0", "min_bin_width = 0.0").replace("required = true", "required = false")
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seh-attacker-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn machines(
    f: &Fed,
    data: &[DataFrame],
    pol: &SitePolicy,
    ledgers: &std::path::Path,
) -> BTreeMap<PartyId, SiteMachine> {
    std::fs::create_dir_all(ledgers).unwrap();
    let mut out = BTreeMap::new();
    for (i, d) in data.iter().enumerate() {
        let (key, share) = f.sites[i].clone();
        let ledger = BudgetLedger::open(&ledgers.join(format!("site-{i}.budget.json"))).unwrap();
        let gov = SiteGovernance::new(
            pol.clone(),
            ConsentRegistry::new(ConsentRegime::OptOut),
            None,
            Some(ledger),
            Box::new(|| Date::new(2026, 1, 1).unwrap()),
        );
        let m = SiteMachine::new(f.fed.clone(), SITES[i], key, share, gov, d.clone(), BTreeMap::new()).unwrap();
        out.insert(m.party(), m);
    }
    out
}

fn study(analysis: Analysis, n: u32) -> StudySpec {
    StudySpec {
        study_id: format!("{n:032x}"),
        researcher: "alice".into(),
        analysis,
        sites: SITES.iter().map(|s| s.to_string()).collect(),
        threshold: 2,
        aggregation: Default::default(),
        purpose: "HRESCH".into(),
        dp_epsilon: None,
        dp_delta: None,
    }
}

/// Runs a study to the end: the verified release document, or the failure.
fn run(f: &Fed, sites: &mut BTreeMap<PartyId, SiteMachine>, spec: &StudySpec) -> Result<ReleaseDocument, String> {
    let signed = SignedStudy::sign(spec, &f.alice).map_err(|e| e.to_string())?;
    let (mut st, first) =
        CoordinatorStudy::resume(f.fed.clone(), f.coordinator.clone(), signed, Checkpoint::default()).unwrap();
    let mut queue: VecDeque<Action> = first.into();
    let mut last = Checkpoint::default();
    for _ in 0..100_000 {
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Checkpoint(cp) => last = *cp,
                Action::Finished => queue.clear(),
                Action::Log(_) => {}
                Action::Send(o) => {
                    let Some(site) = sites.get_mut(&o.to) else { continue };
                    for so in site.handle(&o.bytes) {
                        if let SiteOutput::Send { bytes, .. } = so {
                            queue.extend(st.receive(o.to, &bytes));
                        }
                    }
                }
            }
        }
        if st.is_finished() {
            return match (&last.release, &last.failure) {
                (Some(r), _) => Ok(r.verify(&f.fed.group_key()).unwrap()),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err("finished without a release".into()),
            };
        }
        queue.extend(st.timeout());
    }
    panic!("the study did not finish");
}

/// Three sites of 30 rows of `x`; site 0 holds the planted patient, five others sit just above
/// it (91..95), everyone else is below 50.
fn describe_data(planted: f64) -> Vec<DataFrame> {
    (0..3)
        .map(|s| {
            let mut x: Vec<f64> = (0..30).map(|i| ((i * 7 + s * 11) % 50) as f64 * 0.97).collect();
            if s == 0 {
                x[0] = planted;
            }
            if s == 1 {
                x[1..6].copy_from_slice(&[91.0, 92.0, 93.0, 94.0, 95.0]);
            }
            DataFrame::from_columns(vec![("x", x)]).unwrap()
        })
        .collect()
}

fn histogram(lo: f64, hi: f64, bins: u32) -> Analysis {
    Analysis::Describe(DescribeSpec {
        columns: vec!["x".into()],
        histograms: vec![HistogramSpec { column: "x".into(), lo, hi, bins }],
    })
}

/// The complement attack on one release: for every histogram with hidden cells, what the
/// researcher derives from the released `n` and visible cells. Returns an error naming a cell
/// that the released numbers determine (exactly one hidden cell, or hidden cells whose derived
/// total isolates fewer than `k` patients).
fn complement_attack(r: &DescribeResult, k: u64) -> Result<(), String> {
    for h in &r.histograms {
        let cells: Vec<Option<u64>> = h.counts.iter().copied().chain([h.below, h.above]).collect();
        let hidden = cells.iter().filter(|c| c.is_none()).count();
        if hidden == 0 {
            continue;
        }
        let Some(n) = r.columns.iter().find(|c| c.column == h.column).and_then(|c| c.n) else { continue };
        let visible: i128 = cells.iter().flatten().map(|&c| i128::from(c)).sum();
        let derived = i128::from(n) - visible;
        if hidden == 1 {
            return Err(format!("the only hidden cell of `{}` is n − others = {derived}", h.column));
        }
        if (1..i128::from(k)).contains(&derived) && hidden < cells.len() {
            return Err(format!("the hidden cells of `{}` hold {derived} < {k} patients", h.column));
        }
    }
    Ok(())
}

#[test]
fn the_complement_of_a_suppressed_cell_is_never_derivable() {
    let f = federation();
    let data = describe_data(PLANTED);
    let dir = temp("complement");
    // Each study has a cell holding only the planted patient: [60, 90], [85, 90) of 5-wide bins,
    // and [85, 90] — all on the default policy's lattice.
    let analyses = [histogram(0.0, 90.0, 3), histogram(50.0, 95.0, 9), histogram(80.0, 90.0, 2)];
    for (tag, edit) in [("lax", lax as fn(String) -> String), ("default", |t| t)] {
        let pol = policy(&f, edit);
        let mut sites = machines(&f, &data, &pol, &dir.join(tag));
        for (i, a) in analyses.iter().enumerate() {
            let doc = run(&f, &mut sites, &study(a.clone(), 100 + i as u32)).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let r = &doc.result;
            // With exact counts the planted patient's cell is suppressed (under DP it may not be).
            assert!(tag != "lax" || r.suppressed > 0, "{tag} study {i}: the attack needs a suppressed cell: {r:?}");
            complement_attack(r, K).unwrap_or_else(|e| panic!("{tag} study {i}: {e}: {r:?}"));
            assert!(describe::respects_min_count(r, K), "{tag} study {i}");
        }
    }
    // The same check on the exact pooled numbers of the reported case: "above" holds one
    // patient, every other cell is large.
    let pooled = concat(&data);
    let spec = DescribeSpec {
        columns: vec!["x".into()],
        histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 90.0, bins: 2 }],
    };
    let mut x = pooled.column("x").unwrap().to_vec();
    x.retain(|v| *v < 91.0 || *v == 95.0);
    let one_above = DataFrame::from_columns(vec![("x", x)]).unwrap();
    let r = describe::pooled(&spec, &one_above, K).unwrap();
    assert_eq!(r.histograms[0].above, None);
    complement_attack(&r, K).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn concat(frames: &[DataFrame]) -> DataFrame {
    let x: Vec<f64> = frames.iter().flat_map(|f| f.column("x").unwrap().to_vec()).collect();
    DataFrame::from_columns(vec![("x", x)]).unwrap()
}

/// The count of values above `hi` as the researcher reads it from a release: the `above` cell,
/// or (if hidden) `n` minus the visible cells.
fn above(r: &DescribeResult) -> Option<f64> {
    let h = &r.histograms[0];
    if let Some(a) = h.above {
        return Some(a as f64);
    }
    let cells: Vec<Option<u64>> = h.counts.iter().copied().chain([h.below]).collect();
    if cells.iter().any(Option::is_none) {
        return None;
    }
    Some(r.columns[0].n? as f64 - cells.iter().flatten().sum::<u64>() as f64)
}

/// The bound-moving search: binary search of the planted value in [80, 90] by moving `hi`
/// (`[0, hi]`, `bins` bins): above(hi) = 6 while hi < PLANTED, 5 after. `snap`: the attacker's
/// rounding of each bound (to respect a lattice). Returns the final interval and every outcome.
fn search(
    f: &Fed,
    sites: &mut BTreeMap<PartyId, SiteMachine>,
    studies: u32,
    first_id: u32,
    snapped: bool,
) -> ((f64, f64), Vec<Result<ReleaseDocument, String>>) {
    let snap = |b: f64| if snapped { (b / STEP).round() * STEP } else { b };
    let (mut lo, mut hi) = (80.0f64, 90.0f64);
    let mut outcomes = Vec::new();
    for q in 0..studies {
        let mid = snap(0.5 * (lo + hi));
        // Differencing across widths too: the bin count changes with the study (on a lattice, the
        // largest count up to 1 + q % 4 that divides the number of lattice steps).
        let steps = (mid / STEP).round() as u32;
        let bins =
            if snapped { (1..=1 + q % 4).rev().find(|b| steps.is_multiple_of(*b)).unwrap_or(1) } else { 1 + q % 4 };
        let out = run(f, sites, &study(histogram(0.0, mid, bins), first_id + q));
        if let Ok(doc) = &out {
            match above(&doc.result) {
                Some(a) if a > 5.5 => lo = lo.max(mid),
                Some(_) => hi = hi.min(mid),
                None => {}
            }
        }
        outcomes.push(out);
    }
    ((lo, hi), outcomes)
}

#[test]
fn the_bound_moving_search_localises_no_better_than_the_lattice_and_the_budget_stops_it() {
    let f = federation();
    let data = describe_data(PLANTED);
    let dir = temp("search");

    // Protections off: 45 studies pin the planted value down to far below a lattice step.
    let pol = policy(&f, lax);
    let mut sites = machines(&f, &data, &pol, &dir.join("lax"));
    let ((lo, hi), outcomes) = search(&f, &mut sites, 45, 1_000, false);
    assert!(outcomes.iter().all(Result::is_ok), "the lax policy releases every study");
    assert!(lo <= PLANTED && PLANTED <= hi && hi - lo < 1e-6, "the attack is real: [{lo}, {hi}]");
    eprintln!("lax policy: planted value localised to [{lo}, {hi}] (width {:.1e})", hi - lo);

    // The default policy: off-lattice bounds are refused by the named rule...
    let pol = policy(&f, |t| t);
    let mut sites = machines(&f, &data, &pol, &dir.join("default"));
    let (_, outcomes) = search(&f, &mut sites, 45, 2_000, false);
    let refused_lattice = outcomes.iter().filter(|o| matches!(o, Err(e) if e.contains("`disclosure.min_bin_width`")));
    assert!(refused_lattice.count() >= 40, "{outcomes:?}");
    for doc in outcomes.iter().flatten() {
        let h = &doc.result.histograms[0];
        for edge in [h.lo, h.hi] {
            assert_eq!(edge.rem_euclid(STEP), 0.0, "a released edge off the lattice: {edge}");
        }
    }
    // ...and a researcher who snaps every bound to the lattice gets at most ε_total / ε_query = 10
    // noisy releases (including the ones above), then `dp.epsilon_total`.
    let ((lo, hi), outcomes) = search(&f, &mut sites, 45, 3_000, true);
    let released = outcomes.iter().filter(|o| o.is_ok()).count();
    let budget = outcomes.iter().filter(|o| matches!(o, Err(e) if e.contains("`dp.epsilon_total`"))).count();
    assert!(released <= 10, "{released} releases under a budget of 10 queries");
    assert!(budget >= 35, "{budget} refusals by dp.epsilon_total: {outcomes:?}");
    eprintln!("default policy: {released} noisy releases, {budget} refused by dp.epsilon_total, interval [{lo}, {hi}]");
    assert!(hi - lo >= STEP || !(lo <= PLANTED && PLANTED <= hi), "localised below the lattice step: [{lo}, {hi}]");

    // What the policy allows, exactly: every study the sites accept gives the same exact counts
    // for any value in the planted value's lattice cell [85, 90), so no sequence of studies (with
    // or without noise) can tell 85.0001 from 89.9999.
    let (a, b) = (concat(&describe_data(85.0001)), concat(&describe_data(89.9999)));
    let probe = policy(&f, |t| t);
    for q in 0..45u32 {
        let hi = 5.0 * (1 + q % 20) as f64;
        for bins in 1..=4u32 {
            if seh_policy::policy::check_histogram(&probe, 0.0, hi, bins).is_err() {
                continue;
            }
            let spec = DescribeSpec {
                columns: vec![],
                histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi, bins }],
            };
            let (ra, rb) = (describe::pooled(&spec, &a, 1).unwrap(), describe::pooled(&spec, &b, 1).unwrap());
            assert_eq!(ra.histograms, rb.histograms, "[0, {hi}] in {bins} bins separates one lattice cell");
        }
    }
    // And a bound inside the cell is refused by each site.
    assert!(seh_policy::policy::check_histogram(&probe, 0.0, PLANTED, 1).is_err());
    assert!(seh_policy::policy::check_histogram(&probe, 0.0, 87.5, 1).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_default_policy_describe_study_is_noised_without_asking() {
    let f = federation();
    let data = describe_data(PLANTED);
    let dir = temp("dp-default");
    let pol = policy(&f, |t| t);
    let mut sites = machines(&f, &data, &pol, &dir);
    let doc = run(&f, &mut sites, &study(histogram(0.0, 50.0, 5), 9)).unwrap();
    // No means under DP, and each site charged its ledger ε_per_query = 1 without dp_epsilon.
    assert!(doc.result.columns[0].mean.is_none());
    drop(sites);
    for i in 0..3 {
        let ledger = BudgetLedger::open(&dir.join(format!("site-{i}.budget.json"))).unwrap();
        let spent = ledger.spent(f.alice.verifying_key().as_bytes());
        assert_eq!((spent.epsilon(), spent.queries), (1.0, 1), "site {i}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// KM data: three sites of 30 patients in group 1; site 0 also holds one patient of group 2
/// (death day 123).
fn km_data(lonely_at: &[usize]) -> Vec<DataFrame> {
    (0..3)
        .map(|s| {
            let n = 30;
            let time: Vec<f64> = (0..n).map(|i| 40.0 + ((i * 37 + s * 17) % 300) as f64).collect();
            let status: Vec<f64> = (0..n).map(|i| ((i + s) % 3 != 0) as u8 as f64).collect();
            let mut g = vec![1.0; n];
            let mut time = time;
            let mut status = status;
            if lonely_at.contains(&s) {
                g[0] = 2.0;
                time[0] = 123.0;
                status[0] = 1.0;
            }
            let sex: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
            let rare: Vec<f64> = (0..n).map(|i| (i == 1) as u8 as f64).collect();
            DataFrame::from_columns(vec![("time", time), ("status", status), ("g", g), ("sex", sex), ("rare", rare)])
                .unwrap()
        })
        .collect()
}

fn km(resolution: Option<f64>) -> Analysis {
    let mut v = serde_json::json!({ "formula": "Surv(time, status) ~ g", "conf_type": "log" });
    if let Some(r) = resolution {
        v["time_resolution"] = r.into();
    }
    Analysis::Km(serde_json::from_value(v).unwrap())
}

/// The planner and the sites' answers without the site governance: what the coordinator's
/// pooled check alone does with a floor `min_count`.
fn pooled_run(a: &Analysis, data: &[DataFrame], min_count: u64) -> Result<Value, String> {
    let infos: Vec<_> = data
        .iter()
        .map(|d| {
            let mut i = model_info(a, d).unwrap();
            i.min_count = min_count;
            i
        })
        .collect();
    let info = merge_info(&infos, WordSum::Modular64).unwrap();
    let mut sums = Vec::new();
    loop {
        match plan(a, &info, &sums).map_err(|e| e.to_string())? {
            Step::Query(q) => {
                sums.push(wrapping_sum(&data.iter().map(|d| answer(a, &q, d).unwrap()).collect::<Vec<_>>()))
            }
            Step::Done(v) => return Ok(v),
        }
    }
}

fn released_times(v: &Value, label: &str) -> Option<Vec<f64>> {
    let s = v["fit"]["strata"].as_array()?.iter().find(|s| s["stratum"].as_str().is_some_and(|l| l.contains(label)))?;
    Some(s["time"].as_array()?.iter().filter_map(Value::as_f64).collect())
}

#[test]
fn no_km_stratum_or_risk_set_under_the_floor_is_released() {
    let f = federation();
    let dir = temp("km");
    // Per site: the site holding the lonely patient refuses by the named rule.
    let data = km_data(&[0]);
    let pol = policy(&f, |t| t);
    let mut sites = machines(&f, &data, &pol, &dir);
    let err = run(&f, &mut sites, &study(km(Some(30.0)), 50)).unwrap_err();
    assert!(err.contains("`disclosure.min_cell_count`"), "{err}");
    // Exact event times are not allowed by the default policy either.
    let err = run(&f, &mut sites, &study(km(None), 51)).unwrap_err();
    assert!(err.contains("`time_grid`"), "{err}");

    // Pooled: the attack works without a floor (the death day 123 of the lonely patient is
    // released)...
    let open = pooled_run(&km(Some(1.0)), &data, 1).unwrap();
    assert_eq!(released_times(&open, "2"), Some(vec![123.0]), "{open}");
    // ...and not with the floor: the stratum is suppressed and every curve stops before its risk
    // set falls below the floor.
    let v = pooled_run(&km(Some(1.0)), &data, K).unwrap();
    assert_eq!(released_times(&v, "2"), None, "{v}");
    assert_eq!(v["federation"]["suppressed_strata"], 1);
    assert_eq!(v["federation"]["truncated"], true);
    for s in v["fit"]["strata"].as_array().unwrap() {
        assert!(s["n"].as_u64().unwrap() >= K);
        assert!(s["n_risk"].as_array().unwrap().iter().all(|r| r.as_f64().unwrap() >= K as f64), "{s}");
    }
    // A site checks the release before co-signing.
    assert!(seh_protocol::fed::strata::check_release("km", Some(&open), K).is_err());
    assert!(seh_protocol::fed::strata::check_release("km", Some(&v), K).is_ok());
    // A lonely patient at each of three sites (pooled 3 < 5) is refused by every site, and the
    // pooled check alone suppresses it too.
    let spread = km_data(&[0, 1, 2]);
    let v = pooled_run(&km(Some(1.0)), &spread, K).unwrap();
    assert_eq!(released_times(&v, "2"), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn small_glm_factor_levels_and_cox_strata_are_refused() {
    let f = federation();
    let dir = temp("models");
    let data = km_data(&[0]);
    let pol = policy(&f, |t| t);
    let mut sites = machines(&f, &data, &pol, &dir);
    // A 0/1 column with one 1 at each site (three pooled).
    let glm = serde_json::json!({ "formula": "status ~ sex + rare", "family": "binomial" });
    let err = run(&f, &mut sites, &study(Analysis::Glm(serde_json::from_value(glm).unwrap()), 60)).unwrap_err();
    assert!(err.contains("`disclosure.min_cell_count`"), "{err}");
    let glm = serde_json::json!({ "formula": "status ~ sex + rare", "family": "binomial" });
    let glm = Analysis::Glm(serde_json::from_value(glm).unwrap());
    let e = pooled_run(&glm, &data, K).unwrap_err();
    assert!(e.contains("disclosure.min_cell_count"), "{e}");
    if let Err(e) = pooled_run(&glm, &data, 1) {
        assert!(!e.contains("min_cell_count"), "{e}");
    }
    // A Cox stratum of one patient.
    let cox = serde_json::json!({
        "formula": "Surv(time, status) ~ sex + strata(g)", "ties": "efron", "mode": "pooled",
        "min_risk_set": 5, "time_resolution": 30.0
    });
    let cox = Analysis::Cox(serde_json::from_value(cox).unwrap());
    let err = run(&f, &mut sites, &study(cox.clone(), 61)).unwrap_err();
    assert!(err.contains("`disclosure.min_cell_count`"), "{err}");
    let e = pooled_run(&cox, &data, K).unwrap_err();
    assert!(e.contains("disclosure.min_cell_count"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
