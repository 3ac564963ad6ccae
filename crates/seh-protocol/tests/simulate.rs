//! The whole study protocol in memory: coordinator and sites exchange real signed envelopes
//! through a queue (no sockets), including dropouts, a coordinator restart and replays.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::wire::PartyId;
use seh_crypto::wire::ProtocolId;
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::describe::{self, DescribeResult};
use seh_protocol::federation::Federation;
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::replay::FinishedStudies;
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, messages, setup};
use seh_stats::DataFrame;

struct World {
    fed: Arc<Federation>,
    coordinator_key: seh_crypto::wire::SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    study: SignedStudy,
    spec: DescribeSpec,
    pooled: DataFrame,
    frames: Vec<Vec<DataFrame>>,
    /// Sites' identity keys (to re-sign a tampered message as the site would send it).
    site_keys: BTreeMap<PartyId, seh_crypto::wire::SigningKey>,
    /// This site's FROST signature shares are replaced by an invalid one (a corrupted key share).
    bad_signer: Option<PartyId>,
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
    let mut site_keys = BTreeMap::new();
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
        let m = SiteMachine::new(fed.clone(), name, key.clone(), share, gov, data, BTreeMap::new()).unwrap();
        site_keys.insert(m.party(), key);
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
    World {
        fed,
        coordinator_key: secrets.coordinator,
        sites,
        study,
        spec,
        pooled,
        frames: vec![all],
        site_keys,
        bad_signer: None,
    }
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
                        if let SiteOutput::Send { bytes, kind, .. } = so {
                            let bytes = if w.bad_signer == Some(o.to) && kind == share_kind() {
                                corrupt_share(&w.fed, &w.site_keys[&o.to], &bytes)
                            } else {
                                bytes
                            };
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

fn share_kind() -> String {
    messages::kind_label(ProtocolId::Frost, messages::frost_step::SHARE)
}

/// The FROST signature share in `bytes` replaced by another (well-formed but invalid) scalar, and
/// the envelope re-signed with the site's identity key: what a site with a corrupted key share
/// sends.
fn corrupt_share(fed: &Federation, key: &seh_crypto::wire::SigningKey, bytes: &[u8]) -> Vec<u8> {
    let mut env = messages::open(bytes, fed.roster()).unwrap();
    let mut scalar = [0u8; 32];
    scalar[0] = 7;
    env.payload = scalar.to_vec();
    messages::seal_envelope(key, env).unwrap()
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

fn start(w: &World, cp: Checkpoint) -> (CoordinatorStudy, Vec<Action>) {
    CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), cp).unwrap()
}

#[test]
fn a_finished_study_replayed_with_a_reset_checkpoint_is_refused_by_every_site_even_after_a_restart() {
    let mut w = world(5, 3, 3);
    let (mut study, first) = start(&w, Checkpoint::default());
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, None));
    released(cps.last().unwrap(), &w.fed);
    // The coordinator resets the finished study's checkpoint (keeping its rounds moving on, so
    // no message is of a stale round) and runs it again.
    let reset = Checkpoint { round: cps.last().unwrap().round + 10, ..Checkpoint::default() };
    let (mut again, first) = start(&w, reset.clone());
    let mut cps2 = Vec::new();
    assert!(run(&mut w, &mut again, first, &BTreeMap::new(), &mut cps2, None));
    let cp = cps2.last().unwrap();
    assert!(cp.release.is_none() && cp.aggregated.is_none(), "the replay was computed again");
    let failure = cp.failure.as_deref().unwrap();
    for i in 0..5 {
        assert!(failure.contains(&format!("site-{i}: rule `replay`")), "{failure}");
    }
    // Nodes restart: a fresh machine per site, given back what each asked to persist (through
    // its JSON form, as the node stores it), refuses too.
    let finished: BTreeMap<PartyId, String> = w
        .sites
        .iter()
        .map(|(p, m)| (*p, serde_json::to_string(&m.finished().entries().collect::<Vec<_>>()).unwrap()))
        .collect();
    let mut w2 = world(5, 3, 3);
    let sites = std::mem::take(&mut w2.sites);
    for (p, m) in sites {
        let entries = serde_json::from_str(&finished[&p]).unwrap();
        w2.sites.insert(p, m.with_finished(FinishedStudies::from_entries(entries).unwrap()));
    }
    // Even a coordinator that skips the offer and starts the signing directly is refused.
    let (mut third, first) = start(&w2, cps.last().unwrap().clone());
    assert!(third.is_finished(), "a released checkpoint resumes as done");
    let mut forged = cps.last().unwrap().clone();
    forged.release = None;
    forged.document = None;
    let (mut fourth, first4) = start(&w2, forged);
    let mut cps3 = Vec::new();
    assert!(run(&mut w2, &mut third, first, &BTreeMap::new(), &mut cps3, None));
    assert!(run(&mut w2, &mut fourth, first4, &BTreeMap::new(), &mut cps3, None));
    let cp = cps3.last().unwrap();
    assert!(cp.release.is_none() && cp.failure.is_some(), "{cp:?}");
    let (mut fifth, first) = start(&w2, Checkpoint { round: reset.round + 100, ..reset });
    assert!(run(&mut w2, &mut fifth, first, &BTreeMap::new(), &mut cps3, None));
    let failure = cps3.last().unwrap().failure.clone().unwrap();
    assert_eq!(failure.matches("rule `replay`").count(), 5, "{failure}");
}

#[test]
fn a_bad_signer_is_named_and_left_out_and_t_others_release() {
    let mut w = world(5, 3, 3);
    w.bad_signer = Some(PartyId(2));
    let (mut study, first) = start(&w, Checkpoint::default());
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, None));
    let cp = cps.last().unwrap();
    let doc = released(cp, &w.fed);
    let release = cp.release.as_ref().unwrap();
    assert!(!release.signers.contains(&"site-1".to_owned()), "{:?}", release.signers);
    assert_eq!(release.signers.len(), 4);
    assert_eq!(cp.excluded_signers, vec![2]);
    // Every site contributed; only the signing left the bad signer out.
    assert_eq!(doc.contributors.len(), 5);
    assert_same(&doc.result, &describe::pooled(&w.spec, &w.pooled, 3).unwrap());
}

#[test]
fn bad_signers_beyond_n_minus_t_fail_the_study_naming_them() {
    let mut w = world(3, 2, 3);
    // t = 3 of 3: one bad signer leaves too few.
    w.bad_signer = Some(PartyId(3));
    let (mut study, first) = start(&w, Checkpoint::default());
    let mut cps = Vec::new();
    assert!(run(&mut w, &mut study, first, &BTreeMap::new(), &mut cps, None));
    let cp = cps.last().unwrap();
    assert!(cp.release.is_none());
    let failure = cp.failure.as_deref().unwrap();
    assert!(failure.contains("excluding site-2") && failure.contains("t = 3"), "{failure}");
}
