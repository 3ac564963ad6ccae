//! Governance on the site's path, end to end in memory (real signed envelopes, SecAgg+, FROST):
//! the consent filter (a study run with and without deny-consents equals the pooled fit on
//! exactly the permitted rows — Cox and describe), refusals by each policy rule reaching the
//! researcher with the rule's key, and distributed DP with a budget ledger that survives a
//! restart of the site.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::wire::{PartyId, SigningKey};
use seh_policy::consent::{ConsentRecord, ConsentRegistry, ConsentStatus, Period, Provision, ProvisionType, Purpose};
use seh_policy::dp::BudgetLedger;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_policy::Date;
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::describe::{self, DescribeResult};
use seh_protocol::fed::CoxSpec;
use seh_protocol::federation::Federation;
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::{AuditEvent, AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::cox::{CoxOptions, Ties};
use seh_stats::formula::Formula;
use seh_stats::model::{ModelFrame, ModelKind};
use seh_stats::DataFrame;
use serde_json::Value;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref");
const ROSSI: &str = "Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio";
const SITES: [&str; 3] = ["site-0", "site-1", "site-2"];

fn csv(path: &str) -> DataFrame {
    let bytes = std::fs::read(format!("{REF}/{path}")).unwrap();
    DataFrame::from_csv_bytes(&bytes, path).unwrap()
}

/// Rossi's rows with a patient `id` (1..=432) split by `site3`.
fn rossi_sites() -> Vec<DataFrame> {
    let data = csv("data/rossi.csv");
    let mut cols: Vec<(String, Vec<f64>)> =
        data.names().iter().map(|n| (n.clone(), data.column(n).unwrap().to_vec())).collect();
    cols.push(("id".into(), (1..=data.nrows()).map(|i| i as f64).collect()));
    let data = DataFrame::from_columns(cols).unwrap();
    let sites = csv("sites/rossi.csv");
    let (rows, key) = (sites.column("row").unwrap(), sites.column("site3").unwrap());
    let site_of: Vec<f64> =
        (0..data.nrows()).map(|i| key[rows.iter().position(|r| *r as usize == i + 1).unwrap()]).collect();
    [1.0, 2.0, 3.0]
        .iter()
        .map(|l| data.take_rows(&(0..data.nrows()).filter(|&i| site_of[i] == *l).collect::<Vec<_>>()))
        .collect()
}

fn concat(frames: &[DataFrame]) -> DataFrame {
    let names = frames[0].names().to_vec();
    let cols = names
        .iter()
        .map(|n| (n.clone(), frames.iter().flat_map(|f| f.column(n).unwrap().to_vec()).collect::<Vec<f64>>()))
        .collect();
    DataFrame::from_columns(cols).unwrap()
}

/// Deny-consents: patients with id ≡ 0 (mod 5) are on the opt-out list; patients with id ≡ 0
/// (mod 7) have a research deny in force since 2020; patients with id ≡ 0 (mod 3) denied only
/// treatment use (`TREAT`), which does not touch a research study.
fn denied(id: u64) -> bool {
    id.is_multiple_of(5) || id.is_multiple_of(7)
}

fn registry(deny: bool) -> ConsentRegistry {
    let mut r = ConsentRegistry::new(seh_policy::consent::ConsentRegime::OptOut);
    if !deny {
        return r;
    }
    for id in 1..=432u64 {
        let key = id.to_string();
        if id % 5 == 0 {
            r.opt_out(&key);
        }
        let provision = |purpose: &str, start: Option<Date>| Provision {
            kind: ProvisionType::Deny,
            period: Some(Period { start, end: None }),
            purposes: vec![Purpose::act_reason(purpose)],
            has_unmodelled_conditions: false,
            provisions: Vec::new(),
        };
        let record = |n: &str, p| ConsentRecord {
            id: format!("c{id}{n}"),
            patient: key.clone(),
            status: ConsentStatus::Active,
            research_scope: true,
            provision: p,
        };
        if id % 7 == 0 {
            r.add_record(record("r", provision("HRESCH", Date::new(2020, 1, 1).ok()))).unwrap();
        }
        if id % 3 == 0 {
            r.add_record(record("t", provision("TREAT", None))).unwrap();
        }
    }
    r
}

fn permitted(frames: &[DataFrame]) -> DataFrame {
    let all = concat(frames);
    let keep: Vec<usize> =
        all.column("id").unwrap().iter().enumerate().filter(|(_, id)| !denied(**id as u64)).map(|(i, _)| i).collect();
    all.take_rows(&keep)
}

struct Fed {
    fed: Arc<Federation>,
    coordinator: SigningKey,
    alice: SigningKey,
    sites: Vec<(SigningKey, seh_crypto::frost::KeyShare)>,
}

fn federation() -> Fed {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let names: Vec<String> = SITES.iter().map(|s| s.to_string()).collect();
    let (file, secrets) = setup::generate("gov", "coordinator", &names, &["alice".into()], 2, &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let sites = names.iter().map(|n| secrets.sites[n].clone()).collect();
    Fed { fed, coordinator: secrets.coordinator, alice: secrets.researchers["alice"].clone(), sites }
}

fn alice_hex(f: &Fed) -> String {
    hex::encode(f.alice.verifying_key().as_bytes())
}

/// The permissive policy at the floors (min counts 3) for alice, edited by `edit`.
fn policy(f: &Fed, edit: impl Fn(String) -> String) -> SitePolicy {
    let kinds = [AnalysisKind::Descriptive, AnalysisKind::Cox, AnalysisKind::Km, AnalysisKind::Glm];
    let text = edit(open_policy_toml(&[("alice".into(), alice_hex(f))], &kinds, 3));
    SitePolicy::from_toml_str(&text, "test policy").unwrap()
}

fn today() -> Date {
    Date::new(2025, 6, 1).unwrap()
}

fn machines(f: &Fed, data: &[DataFrame], govs: Vec<SiteGovernance>) -> BTreeMap<PartyId, SiteMachine> {
    let mut out = BTreeMap::new();
    for ((i, gov), d) in govs.into_iter().enumerate().zip(data) {
        let (key, share) = f.sites[i].clone();
        let m = SiteMachine::new(f.fed.clone(), SITES[i], key, share, gov, d.clone(), BTreeMap::new()).unwrap();
        out.insert(m.party(), m);
    }
    out
}

fn governance(
    policy: SitePolicy,
    consent: ConsentRegistry,
    data: &DataFrame,
    ledger: Option<BudgetLedger>,
) -> SiteGovernance {
    let ids = data.column("id").unwrap().iter().map(|v| format!("{v}")).collect();
    SiteGovernance::new(policy, consent, Some(ids), ledger, Box::new(today))
}

fn spec(analysis: Analysis, id: &str) -> StudySpec {
    StudySpec {
        study_id: id.into(),
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

/// Runs `spec` to the end; returns the last checkpoint and every site's audit events.
fn run(
    f: &Fed,
    sites: &mut BTreeMap<PartyId, SiteMachine>,
    spec: &StudySpec,
) -> (Checkpoint, Vec<(PartyId, AuditEvent)>) {
    let signed = SignedStudy::sign(spec, &f.alice).unwrap();
    let (mut study, first) =
        CoordinatorStudy::resume(f.fed.clone(), f.coordinator.clone(), signed, Checkpoint::default()).unwrap();
    let mut queue: VecDeque<Action> = first.into();
    let (mut last, mut audits) = (Checkpoint::default(), Vec::new());
    for _ in 0..1_000_000 {
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Checkpoint(cp) => last = *cp,
                Action::Finished => return (last, audits),
                Action::Log(_) => {}
                Action::Send(o) => {
                    let Some(site) = sites.get_mut(&o.to) else { continue };
                    for so in site.handle(&o.bytes) {
                        match so {
                            SiteOutput::Send { bytes, .. } => queue.extend(study.receive(o.to, &bytes)),
                            SiteOutput::Audit(e) => audits.push((o.to, e)),
                            _ => {}
                        }
                    }
                }
            }
        }
        if study.is_finished() {
            return (last, audits);
        }
        queue.extend(study.timeout());
    }
    panic!("the study did not finish");
}

fn released(f: &Fed, cp: &Checkpoint) -> ReleaseDocument {
    let r = cp.release.as_ref().unwrap_or_else(|| panic!("no release: {:?}", cp.failure));
    r.verify(&f.fed.group_key()).unwrap()
}

fn cox_spec(min_risk_set: u64) -> Analysis {
    // From JSON, so that fields added later with defaults need no change here.
    let spec = serde_json::json!({ "formula": ROSSI, "ties": "efron", "mode": "pooled", "min_risk_set": min_risk_set });
    Analysis::Cox(serde_json::from_value::<CoxSpec>(spec).unwrap())
}

fn local_cox(data: &DataFrame) -> Value {
    let frame = ModelFrame::build(data, &Formula::parse(ROSSI).unwrap(), ModelKind::Cox).unwrap();
    let fit = seh_stats::cox::fit(
        &frame.cox_data().unwrap(),
        &CoxOptions { ties: Ties::Efron, concordance: false, ..Default::default() },
    )
    .unwrap();
    serde_json::to_value(fit).unwrap()
}

/// Largest relative difference of coefficients, SEs and log-likelihoods.
fn cox_diff(fed: &Value, local: &Value) -> f64 {
    let mut worst: f64 = 0.0;
    let mut d = |x: &Value, y: &Value, what: &str| {
        let (x, y) = (x.as_f64().unwrap_or_else(|| panic!("{what}: {x}")), y.as_f64().unwrap());
        worst = worst.max((x - y).abs() / y.abs().max(1e-12));
    };
    for t in ["fin", "age", "race", "wexp", "mar", "paro", "prio"] {
        d(&fed["coef"][t], &local["coef"][t], t);
        d(&fed["se"][t], &local["se"][t], t);
    }
    d(&fed["loglik"], &local["loglik"], "loglik");
    assert_eq!(fed["n"], local["n"]);
    assert_eq!(fed["nevent"], local["nevent"]);
    worst
}

fn describe_spec() -> DescribeSpec {
    DescribeSpec {
        columns: vec!["age".into(), "prio".into()],
        histograms: vec![HistogramSpec { column: "age".into(), lo: 15.0, hi: 45.0, bins: 6 }],
    }
}

fn consent_removed(audits: &[(PartyId, AuditEvent)]) -> u64 {
    audits
        .iter()
        .filter(|(_, e)| e.kind == AuditKind::PolicyDecision)
        .filter_map(|(_, e)| e.details.get("consent_removed").and_then(Value::as_u64))
        .sum()
}

#[test]
fn consent_filter_gives_the_pooled_fit_on_exactly_the_permitted_rows() {
    let f = federation();
    let data = rossi_sites();
    let pol = policy(&f, |t| t);
    let all = concat(&data);
    let kept = permitted(&data);
    let removed = (all.nrows() - kept.nrows()) as u64;
    assert!(removed > 100 && kept.nrows() > 250, "the deny-consents remove a real share ({removed})");
    for deny in [false, true] {
        let govs = data.iter().map(|d| governance(pol.clone(), registry(deny), d, None)).collect();
        let mut sites = machines(&f, &data, govs);
        let want_rows = if deny { &kept } else { &all };

        // Cox, pooled-exact (risk sets down to the policy floor of 3: nothing is merged here).
        let (cp, audits) = run(&f, &mut sites, &spec(cox_spec(3), "0123456789abcdef0123456789abcdef"));
        let doc = released(&f, &cp);
        let model = doc.model.as_ref().expect("model result");
        assert_eq!(model["federation"]["grid"]["merged"], false);
        let worst = cox_diff(&model["fit"], &local_cox(want_rows));
        eprintln!("cox, deny={deny}: n = {}, max rel diff to the pooled fit {worst:.2e}", model["fit"]["n"]);
        assert!(worst < 1e-6, "federated vs pooled on the permitted rows: {worst}");
        assert_eq!(consent_removed(&audits), if deny { removed } else { 0 }, "audited once, at the offer");
        // The count removed stays in the site's audit log: not in the release.
        assert!(!doc.to_json().unwrap().contains("consent"));
        if deny {
            assert_eq!(model["fit"]["n"].as_u64(), Some(kept.nrows() as u64));
        }

        // Describe.
        let (cp, _) =
            run(&f, &mut sites, &spec(Analysis::Describe(describe_spec()), "1123456789abcdef0123456789abcdef"));
        let doc = released(&f, &cp);
        let want: DescribeResult = describe::pooled(&describe_spec(), want_rows, 3).unwrap();
        assert_eq!(doc.result.histograms, want.histograms);
        for (g, w) in doc.result.columns.iter().zip(&want.columns) {
            assert_eq!(g.n, w.n);
            let (gm, wm) = (g.mean.unwrap(), w.mean.unwrap());
            assert!((gm - wm).abs() <= 1e-12 * wm.abs(), "{gm} vs {wm}");
            let (gv, wv) = (g.variance.unwrap(), w.variance.unwrap());
            assert!((gv - wv).abs() <= 1e-10 * wv.abs(), "{gv} vs {wv}");
        }
        assert_eq!(doc.result.columns[0].n, Some(want_rows.nrows() as u64));
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seh-gov-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn dp_describe_charges_a_ledger_that_survives_a_restart() {
    let f = federation();
    let data = rossi_sites();
    // ε 1.5 in total, 1 per query: one DP study fits, the second does not.
    let pol = policy(&f, |t| t.replace("epsilon_total = 10.0", "epsilon_total = 1.5"));
    let dir = temp("ledger");
    let ledger_path = |i: usize| dir.join(format!("site-{i}.budget.json"));
    let govs = |_: ()| -> Vec<SiteGovernance> {
        data.iter()
            .enumerate()
            .map(|(i, d)| {
                governance(pol.clone(), registry(true), d, Some(BudgetLedger::open(&ledger_path(i)).unwrap()))
            })
            .collect()
    };
    let mut sites = machines(&f, &data, govs(()));
    let mut s = spec(Analysis::Describe(describe_spec()), "2123456789abcdef0123456789abcdef");
    s.dp_epsilon = Some(1.0);
    let (cp, _) = run(&f, &mut sites, &s);
    let doc = released(&f, &cp);
    let truth = describe::pooled(&describe_spec(), &permitted(&data), 3).unwrap();
    // σ of the summed noise for ε = 1, δ = 1e-6, L2 sensitivity √3.
    let sigma = seh_policy::dp::gaussian_sigma(3f64.sqrt(), 1.0, 1e-6).unwrap();
    let (noisy, exact) = (doc.result.columns[0].n.unwrap() as f64, truth.columns[0].n.unwrap() as f64);
    eprintln!("dp describe: n noisy {noisy}, exact {exact}, sigma {sigma:.2}");
    assert!((noisy - exact).abs() < 6.0 * sigma, "noise far beyond its scale");
    assert!(doc.result.columns.iter().all(|c| c.mean.is_none() && c.sd.is_none()), "no moments under DP");
    drop(sites);

    // Restart: the ledgers are re-read from disk.
    for i in 0..3 {
        let spent = BudgetLedger::open(&ledger_path(i)).unwrap().spent(f.alice.verifying_key().as_bytes());
        assert_eq!((spent.epsilon(), spent.queries), (1.0, 1), "site {i}");
    }
    let mut sites = machines(&f, &data, govs(()));
    s.study_id = "3123456789abcdef0123456789abcdef".into();
    let (cp, _) = run(&f, &mut sites, &s);
    assert!(cp.release.is_none());
    let failure = cp.failure.unwrap();
    assert!(failure.contains("`dp.epsilon_total`"), "{failure}");
    // Nothing was charged by the refused study.
    let spent = BudgetLedger::open(&ledger_path(0)).unwrap().spent(f.alice.verifying_key().as_bytes());
    assert_eq!(spent.queries, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_rule_refuses_with_its_key_reaching_the_researcher() {
    let f = federation();
    let data = rossi_sites();
    let other = SigningKey::from_bytes(&[9u8; 32]);
    let other_hex = hex::encode(other.verifying_key().as_bytes());
    let ah = alice_hex(&f);
    let describe = || spec(Analysis::Describe(describe_spec()), "4123456789abcdef0123456789abcdef");
    let cox = |k| spec(cox_spec(k), "5123456789abcdef0123456789abcdef");
    type Edit = Box<dyn Fn(String) -> String>;
    let same: fn(String) -> String = |t| t;
    let cases: Vec<(&str, Edit, StudySpec)> = vec![
        ("researchers", Box::new(move |t: String| t.replace(&ah, &other_hex)), describe()),
        ("analyses.allowed", Box::new(|t: String| t.replace("\"descriptive\", \"cox\"", "\"descriptive\"")), cox(3)),
        ("aggregation.allowed", Box::new(|t: String| t.replace("[\"secagg\", \"he\"]", "[\"he\"]")), describe()),
        ("consent.purposes", Box::new(same), StudySpec { purpose: "TREAT".into(), ..describe() }),
        (
            "disclosure.min_subset_size",
            Box::new(|t: String| t.replace("min_subset_size = 3", "min_subset_size = 1000")),
            describe(),
        ),
        (
            "disclosure.max_parameters_per_row",
            Box::new(|t: String| t.replace("max_parameters_per_row = 0.33", "max_parameters_per_row = 0.01")),
            cox(3),
        ),
        ("disclosure.min_risk_set", Box::new(same), cox(2)),
        ("time_grid", Box::new(|t: String| t.replace("allow_event_times = true", "allow_event_times = false")), cox(3)),
        // `dp.required` no longer refuses a describe study: the node noises it with the policy's
        // ε per query (tests/attacker.rs). A histogram off the site's lattice is refused instead.
        (
            "disclosure.min_bin_width",
            Box::new(|t: String| t.replace("min_bin_width = 0.0", "min_bin_width = 7.0")),
            describe(),
        ),
        ("dp.epsilon_per_query", Box::new(same), StudySpec { dp_epsilon: Some(5.0), ..describe() }),
        ("dp.delta_per_query", Box::new(same), StudySpec { dp_epsilon: Some(0.5), dp_delta: Some(1e-3), ..describe() }),
    ];
    let dir = temp("rules");
    for (rule, edit, s) in cases {
        let pol = policy(&f, edit);
        let govs = data
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let ledger = BudgetLedger::open(&dir.join(format!("{rule}-{i}.json"))).unwrap();
                governance(pol.clone(), registry(false), d, Some(ledger))
            })
            .collect();
        let mut sites = machines(&f, &data, govs);
        let (cp, audits) = run(&f, &mut sites, &s);
        assert!(cp.release.is_none(), "{rule}: released");
        let failure = cp.failure.unwrap_or_default();
        assert!(failure.contains(&format!("refused by `{rule}`")), "{rule}: {failure}");
        // The site's own audit log records the decision with its rule.
        assert!(audits.iter().any(|(_, e)| e.kind == AuditKind::PolicyDecision && e.details["rule"] == rule));
        eprintln!("{rule}: {failure}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn model_analyses_refuse_dp_clearly() {
    let f = federation();
    let s = StudySpec { dp_epsilon: Some(0.5), ..spec(cox_spec(3), "6123456789abcdef0123456789abcdef") };
    let err = SignedStudy::sign(&s, &f.alice).unwrap_err().to_string();
    assert!(err.contains("not available for cox"), "{err}");
}
