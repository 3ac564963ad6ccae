//! `aggregation = "he"` end to end in memory: the per-study threshold-BFV key set-up relayed by
//! the coordinator, encrypted rounds, `t`-of-`n` decryption — for describe and federated Cox
//! (pooled and stratified, heart `site3` split), compared with SecAgg+ on the same sites, plus
//! a decryptor dropping before decryption and a malformed decryption share.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::wire::{PartyId, ProtocolId, SignedEnvelope, SigningKey};
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::fed::{CoxMode, CoxSpec, GlmSpec, KmSpec};
use seh_protocol::federation::Federation;
use seh_protocol::he_wire::step;
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::{SiteMachine, SiteOutput};
use seh_protocol::spec::{Aggregation, Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::DataFrame;
use serde_json::Value;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref");

struct World {
    fed: Arc<Federation>,
    coordinator_key: SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    keys: BTreeMap<PartyId, SigningKey>,
    study: SignedStudy,
}

/// Rewrites a site's outgoing message (re-signed by the site, so only the payload is wrong).
type Tamper = dyn Fn(PartyId, &seh_crypto::wire::Envelope) -> Option<Vec<u8>>;

fn csv(path: &str) -> DataFrame {
    let bytes = std::fs::read(format!("{REF}/{path}")).unwrap();
    DataFrame::from_csv_bytes(&bytes, path).unwrap()
}

/// The heart data split by `site3` (three sites).
fn heart_site3() -> Vec<DataFrame> {
    let data = csv("data/heart.csv");
    let sites = csv("sites/heart.csv");
    let (ids, key) = (sites.column("id").unwrap(), sites.column("site3").unwrap());
    let site_of: Vec<f64> =
        data.column("id").unwrap().iter().map(|id| key[ids.iter().position(|x| x == id).unwrap()]).collect();
    let mut levels = site_of.clone();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    levels
        .iter()
        .map(|l| data.take_rows(&(0..data.nrows()).filter(|&i| site_of[i] == *l).collect::<Vec<_>>()))
        .collect()
}

fn small_data(i: usize) -> DataFrame {
    let n = 20 + 3 * i;
    let x: Vec<f64> = (0..n).map(|k| ((k * 7 + i * 13) % 50) as f64 * 1.5 + i as f64).collect();
    let y: Vec<f64> = (0..n).map(|k| if k % 5 == 0 { f64::NAN } else { (k as f64).sqrt() - i as f64 }).collect();
    DataFrame::from_columns(vec![("x", x), ("y", y)]).unwrap()
}

fn describe() -> Analysis {
    Analysis::Describe(DescribeSpec {
        columns: vec!["x".into(), "y".into()],
        histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 80.0, bins: 8 }],
    })
}

fn cox(mode: CoxMode) -> Analysis {
    Analysis::Cox(CoxSpec {
        formula: "Surv(start, stop, event) ~ age + year + surgery + transplant".into(),
        ties: seh_stats::cox::Ties::Efron,
        mode,
        // The policy floor (3); stratified fits release no risk set and reproduce R exactly.
        min_risk_set: 3,
        time_resolution: None,
        tt: None,
    })
}

fn world(frames: Vec<DataFrame>, t: u32, analysis: Analysis, aggregation: Aggregation) -> World {
    let n = frames.len();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let names: Vec<String> = (0..n).map(|i| format!("site-{i}")).collect();
    let (file, secrets) =
        setup::generate("test", "coordinator", &names, &["alice".into()], t.min(n as u32) as u16, &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let alice = &secrets.researchers["alice"];
    let researchers = [("alice".to_owned(), hex::encode(alice.verifying_key().as_bytes()))];
    // Risk sets of 1 must be releasable to reproduce R exactly (`min_risk_set = 1`).
    let text = open_policy_toml(
        &researchers,
        &[AnalysisKind::Descriptive, AnalysisKind::Cox, AnalysisKind::Km, AnalysisKind::Glm],
        3,
    );
    let policy = SitePolicy::from_toml_str(&text, "test policy").unwrap();
    let (mut sites, mut keys) = (BTreeMap::new(), BTreeMap::new());
    for (name, data) in names.iter().zip(frames) {
        let (key, share) = secrets.sites[name].clone();
        let gov = SiteGovernance::new(
            policy.clone(),
            ConsentRegistry::new(policy.consent().regime),
            None,
            None,
            Box::new(|| seh_policy::Date::new(2025, 1, 1).unwrap()),
        );
        let m = SiteMachine::new(fed.clone(), name, key.clone(), share, gov, data, BTreeMap::new()).unwrap();
        keys.insert(m.party(), key);
        sites.insert(m.party(), m);
    }
    let spec = StudySpec {
        study_id: "00112233445566778899aabbccddeeff".into(),
        researcher: "alice".into(),
        analysis,
        sites: names,
        threshold: t,
        aggregation,
        purpose: "HRESCH".into(),
        dp_epsilon: None,
        dp_delta: None,
    };
    let study = SignedStudy::sign(&spec, alice).unwrap();
    World { fed, coordinator_key: secrets.coordinator, sites, keys, study }
}

struct Outcome {
    doc: ReleaseDocument,
    logs: Vec<String>,
}

/// Runs the study to its end. Sites in `dead_after` stop after sending that many messages;
/// `tamper` may rewrite a site's outgoing message. `Err`: the study's failure and the logs.
fn try_run(w: &mut World, dead_after: &BTreeMap<PartyId, usize>, tamper: Option<&Tamper>) -> Result<Outcome, String> {
    drive(w, Checkpoint::default(), dead_after, tamper, None).map_err(|(e, _)| e)
}

/// Starts or resumes the coordinator from `cp` and runs; stops after `max_actions` actions (the
/// error then carries the last checkpoint, as a coordinator that stopped there would have it).
fn drive(
    w: &mut World,
    cp: Checkpoint,
    dead_after: &BTreeMap<PartyId, usize>,
    tamper: Option<&Tamper>,
    max_actions: Option<usize>,
) -> Result<Outcome, (String, Option<Box<Checkpoint>>)> {
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), cp).unwrap();
    let mut queue: VecDeque<Action> = first.into();
    let mut handled = 0usize;
    let mut sent: BTreeMap<PartyId, usize> = BTreeMap::new();
    let (mut logs, mut last) = (Vec::new(), None);
    for _ in 0..10_000 {
        while let Some(a) = queue.pop_front() {
            handled += 1;
            if max_actions.is_some_and(|m| handled > m) {
                return Err(("stopped".into(), last));
            }
            match a {
                Action::Checkpoint(cp) => last = Some(cp),
                Action::Finished => {
                    let cp = last.expect("a checkpoint");
                    let Some(release) = cp.release.clone() else {
                        return Err((format!("{:?}\n{logs:#?}", cp.failure), Some(cp)));
                    };
                    return Ok(Outcome { doc: release.verify(&w.fed.group_key()).unwrap(), logs });
                }
                Action::Log(l) => logs.push(l),
                Action::Send(o) => {
                    let Some(site) = w.sites.get_mut(&o.to) else { continue };
                    if dead_after.get(&o.to).is_some_and(|d| sent.get(&o.to).copied().unwrap_or(0) >= *d) {
                        continue;
                    }
                    for so in site.handle(&o.bytes) {
                        let SiteOutput::Send { mut bytes, .. } = so else { continue };
                        *sent.entry(o.to).or_default() += 1;
                        if dead_after.get(&o.to).is_some_and(|d| sent[&o.to] > *d) {
                            continue;
                        }
                        if let Some(f) = tamper {
                            let env = SignedEnvelope::decode(&bytes).unwrap().unverified().clone();
                            if let Some(payload) = f(o.to, &env) {
                                let env = seh_crypto::wire::Envelope { payload, ..env };
                                bytes = env.sign(&w.keys[&o.to]).unwrap().encode().unwrap();
                            }
                        }
                        queue.extend(study.receive(o.to, &bytes));
                    }
                }
            }
        }
        queue.extend(study.timeout());
    }
    Err((format!("the study did not finish:\n{logs:#?}"), last))
}

fn run(w: &mut World, dead_after: &BTreeMap<PartyId, usize>, tamper: Option<&Tamper>) -> Outcome {
    try_run(w, dead_after, tamper).unwrap_or_else(|e| panic!("no release: {e}"))
}

fn model(doc: &ReleaseDocument) -> &Value {
    doc.model.as_ref().expect("a model result")
}

/// Largest relative difference between the numbers of two JSON documents (same shape).
fn max_rel_diff(a: &Value, b: &Value) -> f64 {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() / y.abs().max(1e-300).max(if x == y { 1.0 } else { 0.0 })
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(u, v)| max_rel_diff(u, v)).fold(0.0, f64::max)
        }
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter(|(k, _)| !["seconds", "traffic"].contains(&k.as_str()))
            .map(|(k, u)| max_rel_diff(u, &y[k]))
            .fold(0.0, f64::max),
        (x, y) => {
            assert_eq!(x, y);
            0.0
        }
    }
}

#[test]
fn describe_under_he_equals_secagg() {
    let frames: Vec<DataFrame> = (0..3).map(small_data).collect();
    let he = run(&mut world(frames.clone(), 2, describe(), Aggregation::He), &BTreeMap::new(), None);
    let sa = run(&mut world(frames, 2, describe(), Aggregation::Secagg), &BTreeMap::new(), None);
    assert_eq!(he.doc.result, sa.doc.result, "the decrypted sums are the same integers");
    assert_eq!(he.doc.contributors, sa.doc.contributors);
    assert!(he.logs.iter().any(|l| l.contains("threshold-HE collective key ready")), "{:#?}", he.logs);
}

#[test]
fn cox_pooled_and_stratified_under_he_equal_secagg() {
    for mode in [CoxMode::Pooled, CoxMode::Stratified] {
        let he = run(&mut world(heart_site3(), 2, cox(mode), Aggregation::He), &BTreeMap::new(), None);
        let sa = run(&mut world(heart_site3(), 2, cox(mode), Aggregation::Secagg), &BTreeMap::new(), None);
        let d = max_rel_diff(&model(&he.doc)["fit"], &model(&sa.doc)["fit"]);
        eprintln!("{mode:?}: he vs secagg max relative difference {d:.2e}");
        assert!(d <= 1e-12, "{mode:?}: he and secagg differ by {d}");
        if mode == CoxMode::Stratified {
            let coef = &model(&he.doc)["fit"]["coef"];
            let want: Value =
                serde_json::from_slice(&std::fs::read(format!("{REF}/expected/heart_efron_site_strata.json")).unwrap())
                    .unwrap();
            for term in ["age", "year", "surgery", "transplant"] {
                let (g, r) = (coef[term].as_f64().unwrap(), want["coef"][term].as_f64().unwrap());
                assert!((g - r).abs() <= 1e-6 * r.abs(), "stratified {term}: {g} vs R {r}");
            }
        }
    }
}

#[test]
fn km_and_glm_under_he_equal_secagg() {
    let km = Analysis::Km(KmSpec {
        formula: "Surv(stop, event) ~ surgery".into(),
        conf_type: "log".into(),
        time_resolution: None,
    });
    let glm = Analysis::Glm(GlmSpec { formula: "event ~ age + year + surgery".into(), family: "binomial".into() });
    for analysis in [km, glm] {
        let he = run(&mut world(heart_site3(), 2, analysis.clone(), Aggregation::He), &BTreeMap::new(), None);
        let sa = run(&mut world(heart_site3(), 2, analysis.clone(), Aggregation::Secagg), &BTreeMap::new(), None);
        let d = max_rel_diff(model(&he.doc), model(&sa.doc));
        eprintln!("{}: he vs secagg max relative difference {d:.2e}", analysis.kind());
        assert!(d <= 1e-12, "{}: he and secagg differ by {d}", analysis.kind());
    }
}

#[test]
fn a_decryptor_dropping_before_decryption_is_replaced() {
    // Site 1 (the first decryptor) answers the offer and the key set-up (5 messages) and sends its
    // encrypted contribution, then never answers the share request: the coordinator asks another
    // contributor; any t = 3 of the 5 decrypt, and the sum still includes site 1.
    let frames: Vec<DataFrame> = (0..5).map(small_data).collect();
    let mut w = world(frames.clone(), 3, describe(), Aggregation::He);
    let dead: BTreeMap<PartyId, usize> = [(PartyId(1), 6)].into();
    let he = run(&mut w, &dead, None);
    assert_eq!(he.doc.contributors.len(), 5);
    assert!(he.logs.iter().any(|l| l.contains("no answer from site-0")), "{:#?}", he.logs);
    let sa = run(&mut world(frames, 3, describe(), Aggregation::Secagg), &BTreeMap::new(), None);
    assert_eq!(he.doc.result, sa.doc.result);
}

#[test]
fn a_site_silent_in_the_key_set_up_is_left_out_of_the_next_attempt() {
    // Site 3 answers the offer and commits to its seed, then stops: the set-up is retried among
    // the four that answered, and the study runs on their data.
    let frames: Vec<DataFrame> = (0..5).map(small_data).collect();
    let mut w = world(frames.clone(), 3, describe(), Aggregation::He);
    let dead: BTreeMap<PartyId, usize> = [(PartyId(3), 2)].into();
    let he = run(&mut w, &dead, None);
    assert_eq!(he.doc.contributors, vec!["site-0", "site-1", "site-3", "site-4"]);
    assert!(he.logs.iter().any(|l| l.contains("key set-up among 4 sites")), "{:#?}", he.logs);
    let rows: usize = frames.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, f)| f.nrows()).sum();
    assert_eq!(he.doc.result.columns[0].n, Some(rows as u64));
}

#[test]
fn a_malformed_decryption_share_names_the_site_and_is_replaced() {
    let frames: Vec<DataFrame> = (0..5).map(small_data).collect();
    let mut w = world(frames.clone(), 3, describe(), Aggregation::He);
    let truncate = |from: PartyId, env: &seh_crypto::wire::Envelope| {
        (from == PartyId(2) && env.protocol == ProtocolId::ThresholdBfv && env.step == step::DECRYPTION_SHARE)
            .then(|| env.payload[..env.payload.len() - 5].to_vec())
    };
    let he = run(&mut w, &BTreeMap::new(), Some(&truncate));
    let named = he.logs.iter().find(|l| l.contains("rejected message from site-1") && l.contains("decryption share"));
    assert!(named.is_some(), "{:#?}", he.logs);
    let sa = run(&mut world(frames, 3, describe(), Aggregation::Secagg), &BTreeMap::new(), None);
    assert_eq!(he.doc.result, sa.doc.result);
}

#[test]
fn too_few_decryptors_fail_the_round_instead_of_guessing() {
    // Three of five stop after their contribution: only two can decrypt, t = 3.
    let frames: Vec<DataFrame> = (0..5).map(small_data).collect();
    let mut w = world(frames, 3, describe(), Aggregation::He);
    let dead: BTreeMap<PartyId, usize> = [(PartyId(1), 6), (PartyId(2), 6), (PartyId(3), 6)].into();
    let err = try_run(&mut w, &dead, None).err().expect("no release without t decryptors");
    assert!(err.contains("encrypted aggregation"), "{err}");
}

#[test]
fn a_restarted_coordinator_sets_up_a_new_key_and_gives_the_same_cox_fit() {
    let analysis = cox(CoxMode::Stratified);
    let mut w = world(heart_site3(), 2, analysis.clone(), Aggregation::He);
    // Stop in the middle of the encrypted rounds, then resume from the last checkpoint.
    let (_, cp) = drive(&mut w, Checkpoint::default(), &BTreeMap::new(), None, Some(60)).err().expect("stopped early");
    // As the runtime persists it (the in-memory transcript is not kept).
    let cp: Checkpoint = serde_json::from_str(&serde_json::to_string(&cp.unwrap()).unwrap()).unwrap();
    assert!(cp.decided.is_some() && cp.release.is_none(), "stopped mid-study (phase {})", cp.phase);
    assert!(cp.model_rounds >= 1, "stopped after {} encrypted rounds", cp.model_rounds);
    let he = drive(&mut w, cp, &BTreeMap::new(), None, None).unwrap_or_else(|(e, _)| panic!("{e}"));
    assert!(he.logs.iter().any(|l| l.contains("collective key ready")), "the resumed study made a new key");
    let sa = run(&mut world(heart_site3(), 2, analysis, Aggregation::Secagg), &BTreeMap::new(), None);
    assert_eq!(max_rel_diff(&model(&he.doc)["fit"], &model(&sa.doc)["fit"]), 0.0);
}
