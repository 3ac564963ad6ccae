//! The whole study protocol in memory: coordinator and sites exchange real signed envelopes
//! through a queue (no sockets), including dropouts, a coordinator restart and replays.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::wire::PartyId;
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::describe::{self, DescribeResult};
use seh_protocol::federation::Federation;
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::DataFrame;

struct World {
    fed: Arc<Federation>,
    coordinator_key: seh_crypto::wire::SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    study: SignedStudy,
    spec: DescribeSpec,
    pooled: DataFrame,
    frames: Vec<Vec<DataFrame>>,
}

fn site_data(i: usize) -> DataFrame {
    let n = 20 + 3 * i;
    let x: Vec<f64> = (0..n).map(|k| ((k * 7 + i * 13) % 50) as f64 * 1.5 + i as f64).collect();
    let y: Vec<f64> = (0..n).map(|k| if k % 5 == 0 { f64::NAN } else { (k as f64).sqrt() - i as f64 }).collect();
    DataFrame::from_columns(vec![("x", x), ("y", y)]).unwrap()
}

fn world(n: usize, t: u32, min_cell: u64) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let names: Vec<String> = (0..n).map(|i| format!("site-{i}")).collect();
    let (file, secrets) =
        setup::generate("test", "coordinator", &names, &["alice".into()], 3.min(n as u16), &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let alice = &secrets.researchers["alice"];
    let researchers = [("alice".to_owned(), hex::encode(alice.verifying_key().as_bytes()))];
    let text = open_policy_toml(&researchers, &[AnalysisKind::Descriptive], min_cell);
    let policy = SitePolicy::from_toml_str(&text, "test policy").unwrap();
    let mut sites = BTreeMap::new();
    let mut all = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (key, share) = secrets.sites[name].clone();
        let data = site_data(i);
        all.push(data.clone());
        let gov = SiteGovernance::new(
            policy.clone(),
            ConsentRegistry::new(policy.consent().regime),
            None,
            None,
            Box::new(|| seh_policy::Date::new(2025, 1, 1).unwrap()),
        );
        let m = SiteMachine::new(fed.clone(), name, key, share, gov, data, BTreeMap::new()).unwrap();
        sites.insert(m.party(), m);
    }
    let spec = DescribeSpec {
        columns: vec!["x".into(), "y".into()],
        histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 80.0, bins: 8 }],
    };
    let study_spec = StudySpec {
        study_id: "00112233445566778899aabbccddeeff".into(),
        researcher: "alice".into(),
        analysis: Analysis::Describe(spec.clone()),
        sites: names.clone(),
        threshold: t,
        aggregation: Default::default(),
        purpose: "HRESCH".into(),
        dp_epsilon: None,
        dp_delta: None,
    };
    let study = SignedStudy::sign(&study_spec, alice).unwrap();
    let pooled = concat(&all);
    World { fed, coordinator_key: secrets.coordinator, sites, study, spec, pooled, frames: vec![all] }
}

fn concat(frames: &[DataFrame]) -> DataFrame {
    let mut cols = Vec::new();
    for name in ["x", "y"] {
        cols.push((name, frames.iter().flat_map(|f| f.column(name).unwrap().to_vec()).collect::<Vec<f64>>()));
    }
    DataFrame::from_columns(cols).unwrap()
}

/// Runs until finished; sites in `dead_after` stop answering after sending that many messages.
fn run(
    w: &mut World,
    study: &mut CoordinatorStudy,
    first: Vec<Action>,
    dead_after: &BTreeMap<PartyId, usize>,
    checkpoints: &mut Vec<Checkpoint>,
    max_actions: Option<usize>,
) -> bool {
    let mut queue: VecDeque<Action> = first.into();
    let mut sent: BTreeMap<PartyId, usize> = BTreeMap::new();
    let mut handled = 0usize;
    loop {
        while let Some(a) = queue.pop_front() {
            handled += 1;
            if max_actions.is_some_and(|m| handled > m) {
                return false;
            }
            match a {
                Action::Checkpoint(cp) => checkpoints.push(*cp),
                Action::Finished => return true,
                Action::Log(_) => {}
                Action::Send(o) => {
                    let Some(site) = w.sites.get_mut(&o.to) else { continue };
                    if dead_after.get(&o.to).is_some_and(|d| sent.get(&o.to).copied().unwrap_or(0) >= *d) {
                        continue;
                    }
                    for so in site.handle(&o.bytes) {
                        if let SiteOutput::Send { bytes, .. } = so {
                            *sent.entry(o.to).or_default() += 1;
                            if dead_after.get(&o.to).is_some_and(|d| sent[&o.to] > *d) {
                                continue;
                            }
                            queue.extend(study.receive(o.to, &bytes));
                        }
                    }
                }
            }
        }
        if study.is_finished() {
            return true;
        }
        queue.extend(study.timeout());
    }
}

fn released(cp: &Checkpoint, fed: &Federation) -> ReleaseDocument {
    cp.release.as_ref().expect("released").verify(&fed.group_key()).unwrap()
}

fn assert_same(a: &DescribeResult, b: &DescribeResult) {
    assert_eq!(a.histograms, b.histograms);
    for (x, y) in a.columns.iter().zip(&b.columns) {
        assert_eq!(x.n, y.n);
        for (u, v) in [(x.mean, y.mean), (x.variance, y.variance), (x.sd, y.sd)] {
            let (u, v) = (u.unwrap(), v.unwrap());
            assert!((u - v).abs() <= 1e-10 * v.abs().max(1.0), "{u} vs {v}");
        }
    }
}

#[test]
fn five_sites_give_the_pooled_statistics() {
    let mut w = world(5, 3, 3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, None));
    let doc = released(cps.last().unwrap(), &w.fed);
    assert_eq!(doc.contributors.len(), 5);
    assert_same(&doc.result, &describe::pooled(&w.spec, &w.pooled, 3).unwrap());
    assert_eq!(doc.result.columns[0].n, Some(w.pooled.nrows() as u64));
}

#[test]
fn a_site_dropping_mid_aggregation_leaves_the_sum_over_survivors() {
    let mut w = world(5, 3, 3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    // Site 2 answers the offer, advertises and shares keys, then dies before sending its masked input.
    let dead: BTreeMap<PartyId, usize> = [(PartyId(2), 3)].into();
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &dead, &mut cps, None));
    let doc = released(cps.last().unwrap(), &w.fed);
    assert_eq!(doc.contributors, vec!["site-0", "site-2", "site-3", "site-4"]);
    let survivors: Vec<DataFrame> =
        w.frames[0].iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, f)| f.clone()).collect();
    assert_same(&doc.result, &describe::pooled(&w.spec, &concat(&survivors), 3).unwrap());
}

#[test]
fn a_restarted_coordinator_resumes_to_the_same_result() {
    let mut w = world(3, 2, 3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    let mut cps = Vec::new();
    // Stop mid-aggregation (after a few dozen actions), then resume from the last checkpoint.
    assert!(!run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, Some(12)));
    let last = cps.last().unwrap().clone();
    assert!(last.decided.is_some() && last.release.is_none());
    let (mut again, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), last.clone()).unwrap();
    let mut cps2 = Vec::new();
    assert!(run(&mut w, &mut again, first, &BTreeMap::new(), &mut cps2, None));
    assert!(cps2.last().unwrap().round > last.round);
    let doc = released(cps2.last().unwrap(), &w.fed);
    assert_same(&doc.result, &describe::pooled(&w.spec, &w.pooled, 3).unwrap());
}

#[test]
fn replayed_and_out_of_round_messages_are_rejected() {
    let mut w = world(3, 2, 3);
    let (_study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    let offer = first.iter().find_map(|a| match a {
        Action::Send(o) if o.to == PartyId(1) => Some(o.bytes.clone()),
        _ => None,
    });
    let offer = offer.unwrap();
    let site = w.sites.get_mut(&PartyId(1)).unwrap();
    let once = site.handle(&offer);
    assert!(once.iter().any(|o| matches!(o, SiteOutput::Send { .. })));
    let twice = site.handle(&offer);
    assert!(!twice.iter().any(|o| matches!(o, SiteOutput::Send { .. })));
    assert!(twice.iter().any(|o| matches!(o, SiteOutput::Audit(e) if e.kind == AuditKind::Rejected
        && e.details["reason"].as_str().unwrap().contains("replay"))));
    // A tampered byte breaks the signature.
    let mut bad = offer.clone();
    let last = bad.len() - 70;
    bad[last] ^= 1;
    let out = site.handle(&bad);
    assert!(out.iter().all(|o| matches!(o, SiteOutput::Audit(e) if e.kind == AuditKind::Rejected)));
}

#[test]
fn a_refusing_site_stops_the_study_with_its_reason() {
    let mut w = world(3, 2, 1_000);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, None));
    let cp = cps.last().unwrap();
    assert!(cp.release.is_none());
    // Fewer usable rows than the sites' minimum subset size: refused with that rule.
    assert!(cp.failure.as_ref().unwrap().contains("disclosure.min_subset_size"), "{:?}", cp.failure);
}
