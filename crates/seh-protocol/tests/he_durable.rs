//! Threshold-HE key durability and release from the encrypted store, in memory:
//! * a site restarted between the key set-up and decryption (its machine rebuilt from the key
//!   records it asked to persist, round-tripped through bytes) still decrypts exactly;
//! * the decryption-budget counter survives a restart, and an exhausted budget refuses;
//! * an altered key record is refused;
//! * a stored encrypted round is released later by any t = 3 of n = 5 holders with two offline,
//!   each holder deciding by its policy, charging and persisting its budget; a release over
//!   another set of sites, and one without enough budget, is refused with a named reason;
//! * the same round key-switched to the researcher's key (t = 3 of 5, two offline) decrypts with
//!   that key to the numbers of the plain release, not with another key; the coordinator only
//!   ever holds ciphertext; holders refuse a switch to a key other than the one offered;
//! * every offer carries the researcher's signed request: a coordinator that swaps the target key,
//!   turns a decryption into a switch, changes the round, or offers a release the study's
//!   researcher did not sign is refused by every holder, with nothing charged to the budget.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::he::{HeVector, ResearcherKey, ResearcherPublicKey};
use seh_crypto::wire::{PartyId, SessionId, SigningKey};
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy, Outbound};
use seh_protocol::federation::Federation;
use seh_protocol::he_keyrec::HeKeyRecord;
use seh_protocol::he_release::{decrypt_switched, describe_result, Release, ReleaseInputs, ReleaseStep};
use seh_protocol::he_request::{SignedStoreRelease, StoreReleaseRequest};
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::release::ReleaseDocument;
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Aggregation, Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::DataFrame;

const STUDY: &str = "00112233445566778899aabbccddeeff";

type Factory = Box<dyn Fn() -> SiteMachine>;

struct World {
    fed: Arc<Federation>,
    coordinator_key: SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    make: BTreeMap<PartyId, Factory>,
    /// The last key record each site asked to persist (as bytes, as a node would keep them).
    records: BTreeMap<PartyId, Vec<u8>>,
    /// A site restarted with this decryption-budget counter (instead of its own).
    exhaust: Option<(PartyId, u64)>,
    /// Reasons of the messages sites rejected.
    rejected: Vec<(PartyId, String)>,
    study: SignedStudy,
    /// The study's researcher's identity key (signs the study and its release requests).
    alice: SigningKey,
    /// Another researcher of the federation.
    bob: SigningKey,
    /// Sites' identity keys (to re-sign a tampered message as the site would send it).
    keys: BTreeMap<PartyId, SigningKey>,
    /// This site's FROST signature shares are replaced by an invalid one (a corrupted key share).
    bad_signer: Option<PartyId>,
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

fn world(n: usize, t: u32, aggregation: Aggregation) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let names: Vec<String> = (0..n).map(|i| format!("site-{i}")).collect();
    let (file, secrets) =
        setup::generate("test", "coordinator", &names, &["alice".into(), "bob".into()], t as u16, &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let alice = &secrets.researchers["alice"];
    let researchers = [("alice".to_owned(), hex::encode(alice.verifying_key().as_bytes()))];
    let text = open_policy_toml(&researchers, &[AnalysisKind::Descriptive, AnalysisKind::Cox], 3);
    let policy = SitePolicy::from_toml_str(&text, "test policy").unwrap();
    let (mut sites, mut make, mut keys) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (i, name) in names.iter().enumerate() {
        let (key, share) = secrets.sites[name].clone();
        keys.insert(fed.site_by_name(name).unwrap().party, key.clone());
        let (fed2, policy, name2) = (fed.clone(), policy.clone(), name.clone());
        let factory: Factory = Box::new(move || {
            let gov = SiteGovernance::new(
                policy.clone(),
                ConsentRegistry::new(policy.consent().regime),
                None,
                None,
                Box::new(|| seh_policy::Date::new(2025, 1, 1).unwrap()),
            );
            SiteMachine::new(fed2.clone(), &name2, key.clone(), share.clone(), gov, small_data(i), BTreeMap::new())
                .unwrap()
        });
        let m = factory();
        make.insert(m.party(), factory);
        sites.insert(m.party(), m);
    }
    let spec = StudySpec {
        study_id: STUDY.into(),
        researcher: "alice".into(),
        analysis: describe(),
        sites: names,
        threshold: t,
        aggregation,
        purpose: "HRESCH".into(),
        dp_epsilon: None,
        dp_delta: None,
    };
    let study = SignedStudy::sign(&spec, alice).unwrap();
    World {
        fed,
        coordinator_key: secrets.coordinator,
        sites,
        make,
        records: BTreeMap::new(),
        exhaust: None,
        rejected: Vec::new(),
        study,
        alice: alice.clone(),
        bob: secrets.researchers["bob"].clone(),
        keys,
        bad_signer: None,
    }
}

impl World {
    /// Delivers `bytes` to site `to`; keeps its key records; returns what it sends and its audit.
    fn deliver(&mut self, to: PartyId, bytes: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<SiteOutput>) {
        let Some(site) = self.sites.get_mut(&to) else { return (Vec::new(), Vec::new()) };
        let out = site.handle(bytes);
        let mut sent = Vec::new();
        for o in &out {
            match o {
                SiteOutput::Send { kind, bytes, .. } => {
                    let share = seh_protocol::messages::kind_label(
                        seh_crypto::wire::ProtocolId::Frost,
                        seh_protocol::messages::frost_step::SHARE,
                    );
                    let bytes = if self.bad_signer == Some(to) && *kind == share {
                        let mut env = seh_protocol::messages::open(bytes, self.fed.roster()).unwrap();
                        env.payload = [5u8; 1].iter().copied().chain([0u8; 31]).collect();
                        seh_protocol::messages::seal_envelope(&self.keys[&to], env).unwrap()
                    } else {
                        bytes.clone()
                    };
                    sent.push((kind.clone(), bytes))
                }
                SiteOutput::RecordHeKey(rec) => {
                    // Persisted before any message that follows it in the output list.
                    assert!(sent.is_empty(), "a key record must be persisted before the message it guards");
                    self.records.insert(to, rec.to_bytes().to_vec());
                }
                SiteOutput::Audit(a) if a.kind == AuditKind::Rejected => {
                    self.rejected.push((to, a.details["reason"].as_str().unwrap_or_default().to_owned()));
                }
                _ => {}
            }
        }
        (sent, out)
    }

    /// Rebuilds site `p` from its factory and the key record it persisted (a node restart).
    fn restart(&mut self, p: PartyId) {
        if let Some((q, used)) = self.exhaust {
            if q == p {
                let patched = set_used(&self.records[&p], used);
                self.records.insert(p, patched);
            }
        }
        let recs: Vec<HeKeyRecord> =
            self.records.get(&p).map(|b| HeKeyRecord::from_bytes(b).unwrap()).into_iter().collect();
        let m = (self.make[&p])().with_he_keys(recs).unwrap();
        self.sites.insert(p, m);
    }
}

struct Finished {
    doc: ReleaseDocument,
    study: CoordinatorStudy,
    cp: Checkpoint,
}

/// Runs the study; after site `restart.0` sends a message of kind `restart.1` it is restarted.
fn run(w: &mut World, restart: Option<(PartyId, &str)>) -> Finished {
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    let mut queue: VecDeque<Action> = first.into();
    let (mut last, mut restarted, mut logs) = (None, false, Vec::new());
    for _ in 0..1000 {
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Checkpoint(cp) => last = Some(*cp),
                Action::Finished => {
                    let cp = last.clone().unwrap();
                    let release = cp.release.clone().unwrap_or_else(|| panic!("{:?} {logs:#?}", cp.failure));
                    let doc = release.verify(&w.fed.group_key()).unwrap();
                    return Finished { doc, study, cp };
                }
                Action::Log(l) => logs.push(l),
                Action::Send(o) => {
                    let (sent, _) = w.deliver(o.to, &o.bytes);
                    for (kind, bytes) in sent {
                        queue.extend(study.receive(o.to, &bytes));
                        if !restarted && restart.is_some_and(|(p, k)| p == o.to && k == kind) {
                            w.restart(o.to);
                            restarted = true;
                        }
                    }
                }
            }
        }
        queue.extend(study.timeout());
    }
    panic!("the study did not finish: {logs:#?}");
}

/// Sets the decryption-budget counter inside a key record (the key share's `used` field).
fn set_used(record: &[u8], used: u64) -> Vec<u8> {
    let mut rec = HeKeyRecord::from_bytes(record).unwrap();
    let ks = rec.key_share.to_vec();
    // `ThresholdKeyShare::to_bytes`: magic 8, fingerprint 32, me 4, threshold 4, n 4, holders 4n, used 8.
    let n = u32::from_be_bytes(ks[48..52].try_into().unwrap()) as usize;
    let at = 52 + 4 * n;
    let mut ks = ks;
    ks[at..at + 8].copy_from_slice(&used.to_be_bytes());
    rec.key_share = ks.into();
    rec.to_bytes().to_vec()
}

fn budget(w: &World, p: PartyId) -> u64 {
    w.sites[&p].he_budget_used(STUDY).unwrap()
}

#[test]
fn sites_restarted_after_key_set_up_or_after_contributing_still_decrypt_exactly() {
    let want = run(&mut world(3, 2, Aggregation::Secagg), None).doc.result;
    // Site 1 restarts right after confirming the key (before any round) …
    let mut w = world(3, 2, Aggregation::He);
    let got = run(&mut w, Some((PartyId(1), "he/16")));
    assert_eq!(got.doc.result, want);
    // … or right after sending its encrypted contribution, before the share request (it is the
    // first decryptor, so its share — from the restored key share — is in the result).
    let mut w = world(3, 2, Aggregation::He);
    let got = run(&mut w, Some((PartyId(1), "he/0")));
    assert_eq!(got.doc.result, want);
    assert!(budget(&w, PartyId(1)) >= 1, "the restored share produced the decryption share");
}

#[test]
fn the_budget_counter_survives_a_restart_and_an_exhausted_budget_refuses() {
    let mut w = world(3, 2, Aggregation::He);
    let want = run(&mut w, None).doc.result;
    let used = budget(&w, PartyId(1));
    assert!(used >= 1);
    w.restart(PartyId(1));
    assert_eq!(budget(&w, PartyId(1)), used, "the counter did not restart at zero");
    // Site 1 (the first decryptor) restarts after contributing with a counter at the parameter
    // set's maximum: it refuses the share request, naming the reason; the coordinator asks the
    // next contributor and the result is still exact.
    let allowed = seh_protocol::he_site::context().unwrap().params().max_decryptions();
    let mut w = world(3, 2, Aggregation::He);
    w.exhaust = Some((PartyId(1), allowed));
    let got = run(&mut w, Some((PartyId(1), "he/0")));
    assert_eq!(got.doc.result, want);
    assert_eq!(budget(&w, PartyId(1)), allowed, "no share was produced beyond the budget");
    let named = w.rejected.iter().any(|(p, r)| *p == PartyId(1) && r.contains("decryption budget exhausted"));
    assert!(named, "{:#?}", w.rejected);
}

#[test]
fn altered_or_foreign_key_records_are_refused() {
    let mut w = world(3, 2, Aggregation::He);
    run(&mut w, None);
    let good = HeKeyRecord::from_bytes(&w.records[&PartyId(1)]).unwrap();
    let site = |p: u32| (w.make[&PartyId(p)])();
    // Another site's record.
    let e = site(2).with_he_keys(vec![good.clone()]).unwrap_err().to_string();
    assert!(e.contains("belongs to party 1"), "{e}");
    // A public-key share altered: the collective key no longer matches the confirmed digest.
    let mut bad = good.clone();
    bad.pk_shares[1].1[100] ^= 1;
    let e = site(1).with_he_keys(vec![bad]).unwrap_err().to_string();
    assert!(e.contains("confirmed collective key") && e.contains(STUDY), "{e}");
    // A truncated key share.
    let mut bad = good.clone();
    let len = bad.key_share.len();
    bad.key_share.truncate(len - 3);
    assert!(site(1).with_he_keys(vec![bad]).is_err());
    // A record filed under another study.
    let mut bad = good;
    bad.study_id = "ffffffffffffffffffffffffffffffff".into();
    assert!(site(1).with_he_keys(vec![bad]).is_err());
}

/// Drives a release: delivers to every site not in `down`, closes each step (as a timeout would).
fn release(w: &mut World, r: Release, first: Vec<Outbound>, down: &[PartyId]) -> Result<Vec<u64>, String> {
    match release_any(w, r, first, down)? {
        Ok(sum) => Ok(sum),
        Err(_) => Err("a key-switched result where a decryption was asked".into()),
    }
}

/// [`release`] for either kind: `Ok(sum)` for a decryption, `Err(ciphertext)` for a key switch.
#[allow(clippy::type_complexity)]
fn release_any(
    w: &mut World,
    mut r: Release,
    first: Vec<Outbound>,
    down: &[PartyId],
) -> Result<Result<Vec<u64>, Vec<u8>>, String> {
    let mut out = first;
    for _ in 0..8 {
        for o in std::mem::take(&mut out) {
            if down.contains(&o.to) {
                continue;
            }
            let (sent, _) = w.deliver(o.to, &o.bytes);
            for (_, bytes) in sent {
                r.receive(o.to, &bytes).map_err(|e| e.to_string())?;
            }
        }
        match r.close().map_err(|e| e.to_string())? {
            ReleaseStep::Send(next) => out = next,
            ReleaseStep::Done { sum, result, decryptors, signed } => {
                assert!(decryptors.iter().all(|p| !down.contains(p)));
                // Co-signed by the online holders: the document carries the finished result.
                let doc = signed.verify(&w.fed.group_key()).unwrap();
                assert_eq!(doc.result.as_ref(), Some(&result));
                assert!(doc.ciphertext_sha256.is_none() && doc.researcher_key.is_none());
                assert_eq!(doc.decryptors.len(), decryptors.len());
                assert!(signed.signers.len() >= usize::from(w.fed.frost_threshold));
                return Ok(Ok(sum));
            }
            ReleaseStep::Switched { ciphertext, decryptors, signed } => {
                assert!(decryptors.iter().all(|p| !down.contains(p)));
                // Co-signed: the document names the ciphertext's digest, never a result.
                let doc = signed.verify(&w.fed.group_key()).unwrap();
                assert!(doc.result.is_none() && doc.researcher_key.is_some());
                assert_eq!(doc.ciphertext_sha256, Some(seh_protocol::he_cosign::sha256_hex(&ciphertext)));
                assert!(!signed.document.contains("\"mean\""));
                return Ok(Err(ciphertext));
            }
        }
    }
    Err("the release did not finish".into())
}

fn start(w: &World, f: &Finished, round: u32, items: &[(PartyId, Vec<u8>)]) -> (Release, Vec<Outbound>) {
    start_to(w, f, round, items, None)
}

fn start_to(
    w: &World,
    f: &Finished,
    round: u32,
    items: &[(PartyId, Vec<u8>)],
    target: Option<&ResearcherPublicKey>,
) -> (Release, Vec<Outbound>) {
    // What `seh study release` signs: the stored round and the target key's digest.
    let stored_round = f.study.he_store_encoded().unwrap().0;
    let ctx = seh_protocol::he_site::context().unwrap();
    let digest = target.map(|k| hex::encode(&k.digest(&ctx)));
    let req = StoreReleaseRequest::new(STUDY, "alice", Some(stored_round), digest.as_deref());
    let signed = SignedStoreRelease::sign(&req, &w.alice).unwrap();
    start_signed(w, f, round, items, target, &signed)
}

fn start_signed(
    w: &World,
    f: &Finished,
    round: u32,
    items: &[(PartyId, Vec<u8>)],
    target: Option<&ResearcherPublicKey>,
    request: &SignedStoreRelease,
) -> (Release, Vec<Outbound>) {
    let candidates: Vec<PartyId> = f.cp.decided.as_ref().unwrap().accepted.iter().map(|p| PartyId(*p)).collect();
    let session = SessionId { study: w.study.unverified_spec().unwrap().id().unwrap(), round };
    let stored_round = f.study.he_store_encoded().unwrap().0;
    Release::start(
        w.fed.clone(),
        w.coordinator_key.clone(),
        ReleaseInputs {
            study: &w.study,
            session,
            round: stored_round,
            items,
            key_digest: f.study.he_key_digest().unwrap(),
            candidates: &candidates,
            target,
            request,
            min_cell_count: f.cp.decided.as_ref().unwrap().min_cell_count,
        },
    )
    .unwrap()
}

#[test]
fn a_stored_round_is_released_later_by_any_t_of_n_holders_with_two_offline() {
    let mut w = world(5, 3, Aggregation::He);
    let f = run(&mut w, None);
    let (_, items) = f.study.he_store_encoded().unwrap();
    assert_eq!(items.len(), 5);
    // Every node restarts (key shares from their records); sites 1 and 3 stay offline.
    for p in 1..=5 {
        w.restart(PartyId(p));
    }
    let down = [PartyId(1), PartyId(3)];
    let before: BTreeMap<u32, u64> = [2, 4, 5].iter().map(|p| (*p, budget(&w, PartyId(*p)))).collect();
    let (r, first) = start(&w, &f, f.cp.round + 1, &items);
    let sum = release(&mut w, r, first, &down).unwrap();
    let min_cell = f.cp.decided.as_ref().unwrap().min_cell_count;
    let got = describe_result(&w.study, &sum, min_cell).unwrap();
    assert_eq!(got, f.doc.result, "the later release equals the live one");
    // The three decryptors charged their budget, and persisted the charge.
    for (p, b) in &before {
        assert!(budget(&w, PartyId(*p)) > *b, "site {p} charged its budget");
        let rec = HeKeyRecord::from_bytes(&w.records[&PartyId(*p)]).unwrap();
        assert_eq!(rec.releases.len(), 1, "site {p} recorded the release");
    }
    // Releasing the same round again over another set of sites is refused by every holder that
    // released it (two sums over different sets would reveal their difference).
    let (r, first) = start(&w, &f, f.cp.round + 2, &items[..4]);
    let e = release(&mut w, r, first, &down).unwrap_err();
    assert!(e.contains("already released over another set of sites"), "{e}");
    // The same set again is allowed (and charged again).
    let b = budget(&w, PartyId(2));
    let (r, first) = start(&w, &f, f.cp.round + 3, &items);
    let again = release(&mut w, r, first, &down).unwrap();
    assert_eq!(describe_result(&w.study, &again, min_cell).unwrap(), got);
    assert!(budget(&w, PartyId(2)) > b);
    // A holder whose budget is exhausted refuses, naming the reason; with two offline, the
    // release then lacks t holders and fails, quoting it.
    let allowed = seh_protocol::he_site::context().unwrap().params().max_decryptions();
    let full = set_used(&w.records[&PartyId(4)], allowed);
    w.records.insert(PartyId(4), full);
    w.restart(PartyId(4));
    let (r, first) = start(&w, &f, f.cp.round + 4, &items);
    let e = release(&mut w, r, first, &down).unwrap_err();
    assert!(e.contains("2 of the t = 3") && e.contains("decryption budget exhausted"), "{e}");
    // The refusal is in site 4's audit as a policy decision.
    let (r, first) = start(&w, &f, f.cp.round + 5, &items);
    drop(r);
    let offer = first.iter().find(|o| o.to == PartyId(4)).unwrap();
    let (_, out) = w.deliver(PartyId(4), &offer.bytes);
    let refused = out.iter().any(|o| {
        matches!(o, SiteOutput::Audit(a) if a.kind == AuditKind::PolicyDecision
            && a.details["accept"] == false
            && a.details["reason"].as_str().is_some_and(|r| r.contains("budget")))
    });
    assert!(refused, "{out:#?}");
}

#[test]
fn model_studies_are_not_released_from_the_store() {
    let w = world(3, 2, Aggregation::He);
    let mut spec = w.study.unverified_spec().unwrap();
    spec.analysis = Analysis::Cox(seh_protocol::fed::CoxSpec {
        formula: "Surv(t, e) ~ x".into(),
        ties: seh_stats::cox::Ties::Efron,
        mode: seh_protocol::fed::CoxMode::Stratified,
        min_risk_set: 3,
        time_resolution: None,
        tt: None,
    });
    // Any signer: `Release::start` reads the spec without verifying it (the sites verify).
    let cox = SignedStudy::sign(&spec, &SigningKey::from_bytes(&[9; 32])).unwrap();
    let inputs = ReleaseInputs {
        study: &cox,
        session: SessionId { study: seh_crypto::wire::StudyId([0; 16]), round: 9 },
        round: 3,
        items: &[],
        key_digest: [0; 32],
        candidates: &[PartyId(1), PartyId(2)],
        target: None,
        request: &SignedStoreRelease::sign(&StoreReleaseRequest::new(STUDY, "alice", Some(3), None), &w.alice).unwrap(),
        min_cell_count: 3,
    };
    let e = Release::start(w.fed.clone(), w.coordinator_key.clone(), inputs).unwrap_err().to_string();
    assert!(e.contains("only descriptive studies"), "{e}");
}

/// True if `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_stored_round_switched_to_the_researchers_key_decrypts_only_with_that_key() {
    let mut w = world(5, 3, Aggregation::He);
    let f = run(&mut w, None);
    let (_, items) = f.study.he_store_encoded().unwrap();
    for p in 1..=5 {
        w.restart(PartyId(p));
    }
    let down = [PartyId(1), PartyId(3)];
    let min_cell = f.cp.decided.as_ref().unwrap().min_cell_count;
    let ctx = seh_protocol::he_site::context().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    // The researcher's key pair, through its key-file bytes as `seh study he-keygen` writes it.
    let researcher = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let researcher = ResearcherKey::from_bytes(&ctx, &researcher.to_bytes()).unwrap();
    let public = ResearcherPublicKey::from_bytes(&ctx, &researcher.public_key().to_bytes(&ctx)).unwrap();
    let digest = hex::encode(&public.digest(&ctx));

    // The plain release of the same round (to the coordinator), for comparison.
    let (r, first) = start(&w, &f, f.cp.round + 1, &items);
    let sum = release(&mut w, r, first, &down).unwrap();
    let plain = describe_result(&w.study, &sum, min_cell).unwrap();
    assert_eq!(plain, f.doc.result);

    // Key-switched: any t = 3 of the 5 holders (two offline) switch it to the researcher's key.
    let before: BTreeMap<u32, u64> = [2, 4, 5].iter().map(|p| (*p, budget(&w, PartyId(*p)))).collect();
    let (mut r, first) = start_to(&w, &f, f.cp.round + 2, &items, Some(&public));
    let offer = first.iter().find(|o| o.to == PartyId(2)).unwrap();
    let (sent, out) = w.deliver(PartyId(2), &offer.bytes);
    for (_, bytes) in sent {
        r.receive(PartyId(2), &bytes).unwrap();
    }
    // Every accepting holder's policy decision is audited with the key's digest (metadata only).
    let audited = out.iter().any(|o| {
        matches!(o, SiteOutput::Audit(a) if a.kind == AuditKind::PolicyDecision
            && a.details["accept"] == true && a.details["to_researcher_key"] == digest.as_str())
    });
    assert!(audited, "{out:#?}");
    let rest: Vec<Outbound> = first.into_iter().filter(|o| o.to != PartyId(2)).collect();
    let ct = release_any(&mut w, r, rest, &down).unwrap().expect_err("a key-switched result");

    // The coordinator holds a ciphertext, not the numbers: it parses as an encrypted vector and
    // contains none of the sum's words nor the released statistics.
    let parsed = HeVector::from_bytes(&ctx, &ct, None).unwrap();
    assert_eq!(parsed.len(), sum.len());
    for word in sum.iter().filter(|w| **w != 0) {
        assert!(!contains(&ct, &word.to_le_bytes()) && !contains(&ct, &word.to_be_bytes()), "sum word in ciphertext");
    }
    for c in &plain.columns {
        for v in [c.mean, c.variance, c.sd].into_iter().flatten() {
            assert!(!contains(&ct, &v.to_le_bytes()) && !contains(&ct, &v.to_be_bytes()));
        }
    }

    // The researcher decrypts locally, with the minimum cell count applied: the same numbers.
    let got = decrypt_switched(&w.study, &ct, &researcher, min_cell).unwrap();
    assert_eq!(got, plain, "the switched release equals the plain one");
    // Another researcher key gives garbage (or an error), never the result.
    let other = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    if let Ok(wrong) = decrypt_switched(&w.study, &ct, &other, min_cell) {
        assert_ne!(wrong, plain);
    }

    // The three holders charged the same per-share budget as a decryption, and persisted it
    // (with the release recorded) before the share left.
    for (p, b) in &before {
        let now = budget(&w, PartyId(*p));
        assert_eq!(now, b + parsed.ciphertexts() as u64, "site {p}");
        let rec = HeKeyRecord::from_bytes(&w.records[&PartyId(*p)]).unwrap();
        let restored = (w.make[&PartyId(*p)])().with_he_keys(vec![rec]).unwrap();
        assert_eq!(restored.he_budget_used(STUDY), Some(now), "site {p} persisted the charge");
    }

    // A coordinator that offers a switch to one key and then asks for a switch to another (same
    // session) is refused by every holder, naming the reason.
    let session_round = f.cp.round + 3;
    let (mut r1, first) = start_to(&w, &f, session_round, &items, Some(&public));
    let (mut r2, _) = start_to(&w, &f, session_round, &items, Some(other.public_key()));
    for o in first {
        if down.contains(&o.to) {
            continue;
        }
        let (sent, _) = w.deliver(o.to, &o.bytes);
        for (_, bytes) in sent {
            r1.receive(o.to, &bytes).unwrap();
            r2.receive(o.to, &bytes).unwrap();
        }
    }
    let ReleaseStep::Send(requests) = r2.close().unwrap() else { panic!("expected share requests") };
    w.rejected.clear();
    let before = budget(&w, PartyId(2));
    for o in requests {
        let (sent, _) = w.deliver(o.to, &o.bytes);
        assert!(sent.is_empty(), "a share for another key left site {}", o.to);
    }
    assert_eq!(budget(&w, PartyId(2)), before, "nothing charged");
    assert_eq!(w.rejected.len(), 3, "{:#?}", w.rejected);
    assert!(w.rejected.iter().all(|(_, r)| r.contains("another researcher key")), "{:#?}", w.rejected);
    drop(r1);
}

#[test]
fn a_release_the_researcher_did_not_sign_as_offered_is_refused_by_every_holder() {
    let mut w = world(5, 3, Aggregation::He);
    let f = run(&mut w, None);
    let (stored_round, items) = f.study.he_store_encoded().unwrap();
    for p in 1..=5 {
        w.restart(PartyId(p));
    }
    let down = [PartyId(1), PartyId(3)];
    let up = [PartyId(2), PartyId(4), PartyId(5)];
    let ctx = seh_protocol::he_site::context().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(78);
    let mine = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let theirs = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let mine_digest = hex::encode(&mine.public_key().digest(&ctx));
    let budgets = |w: &World| up.iter().map(|p| budget(w, *p)).collect::<Vec<_>>();
    let before = budgets(&w);
    let records_before: Vec<Vec<u8>> = up.iter().map(|p| w.records[p].clone()).collect();
    let sign = |k: &SigningKey, who: &str, round: u32, to: Option<&str>| {
        SignedStoreRelease::sign(&StoreReleaseRequest::new(STUDY, who, Some(round), to), k).unwrap()
    };
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    // The coordinator signs in the researcher's name with its own identity key.
    let coordinator = w.coordinator_key.clone();
    let cases: Vec<(SignedStoreRelease, Option<&ResearcherPublicKey>, &str)> = vec![
        // Signed for my key, offered as a switch to the coordinator's key.
        (sign(&alice, "alice", stored_round, Some(&mine_digest)), Some(theirs.public_key()), "another key than"),
        // Signed as a decryption, offered as a switch.
        (sign(&alice, "alice", stored_round, None), Some(theirs.public_key()), "asked for a decryption"),
        // Signed as a switch, offered as a decryption to the coordinator.
        (sign(&alice, "alice", stored_round, Some(&mine_digest)), None, "asked for a key switch"),
        // Another stored round than the researcher asked for.
        (sign(&alice, "alice", stored_round + 7, None), None, "asked for stored round"),
        // No researcher signed it: the coordinator's key, in alice's name.
        (sign(&coordinator, "alice", stored_round, None), None, "not signed by a researcher"),
        // A name that is not a researcher of the federation.
        (sign(&coordinator, "mallory", stored_round, None), None, "not a researcher of this federation"),
        // Another researcher of the federation, not the one who signed the study.
        (sign(&bob, "bob", stored_round, None), None, "not by the study's researcher alice"),
    ];
    for (i, (request, target, why)) in cases.into_iter().enumerate() {
        let (mut r, first) = start_signed(&w, &f, f.cp.round + 1 + i as u32, &items, target, &request);
        let mut reasons = Vec::new();
        for o in first.iter().filter(|o| !down.contains(&o.to)) {
            let (sent, out) = w.deliver(o.to, &o.bytes);
            for (_, bytes) in sent {
                r.receive(o.to, &bytes).unwrap();
            }
            // Each holder audits its refusal as a policy decision, naming the reason.
            let audited = out.iter().find_map(|o| match o {
                SiteOutput::Audit(a) if a.kind == AuditKind::PolicyDecision && a.details["accept"] == false => {
                    a.details["reason"].as_str().map(str::to_owned)
                }
                _ => None,
            });
            reasons.push(audited.unwrap_or_else(|| panic!("case {i}: site {} did not refuse: {out:#?}", o.to)));
        }
        assert_eq!(reasons.len(), 3);
        assert!(reasons.iter().all(|r| r.contains(why)), "case {i}: {reasons:#?}");
        assert_eq!(r.refusals().len(), 3, "case {i}");
        let e = r.close().unwrap_err().to_string();
        assert!(e.contains("0 of the t = 3") && e.contains(why), "case {i}: {e}");
        assert_eq!(budgets(&w), before, "case {i}: nothing charged");
        let records: Vec<Vec<u8>> = up.iter().map(|p| w.records[p].clone()).collect();
        assert_eq!(records, records_before, "case {i}: no release recorded");
    }
    // The same offers, signed as offered by the study's researcher, are released.
    let (r, first) = start_to(&w, &f, f.cp.round + 20, &items, Some(mine.public_key()));
    let ct = release_any(&mut w, r, first, &down).unwrap().expect_err("a key-switched result");
    let min_cell = f.cp.decided.as_ref().unwrap().min_cell_count;
    assert_eq!(decrypt_switched(&w.study, &ct, &mine, min_cell).unwrap(), f.doc.result);
}

#[test]
fn holders_co_sign_only_the_release_they_took_part_in() {
    use seh_protocol::he_cosign::{StoreReleaseDocument, StoreReleaseSignStart};
    use seh_protocol::he_wire::step;
    let mut w = world(5, 3, Aggregation::He);
    let f = run(&mut w, None);
    let (_, items) = f.study.he_store_encoded().unwrap();
    let down = [PartyId(1), PartyId(3)];
    let (mut r, first) = start(&w, &f, f.cp.round + 1, &items);
    // Offer, then shares: the release then asks for co-signatures.
    let mut out = first;
    let mut sign_starts = Vec::new();
    for _ in 0..2 {
        for o in std::mem::take(&mut out) {
            if down.contains(&o.to) {
                continue;
            }
            let (sent, _) = w.deliver(o.to, &o.bytes);
            for (_, bytes) in sent {
                r.receive(o.to, &bytes).unwrap();
            }
        }
        let ReleaseStep::Send(next) = r.close().unwrap() else { panic!("expected a next step") };
        out = next;
    }
    sign_starts.extend(out);
    assert_eq!(sign_starts.len(), 3, "every online holder that accepted is asked to co-sign");
    let genuine = sign_starts.iter().find(|o| o.to == PartyId(2)).unwrap();
    let env = seh_protocol::messages::open(&genuine.bytes, w.fed.roster()).unwrap();
    let start: StoreReleaseSignStart = serde_json::from_slice(&env.payload).unwrap();
    let doc = StoreReleaseDocument::from_json(&start.document).unwrap();
    assert!(doc.result.is_some() && doc.ciphertext_sha256.is_none());
    // Forged documents, sealed by the coordinator in the same session: each is refused, naming
    // the mismatch, and no commitment leaves.
    let mut fewer = doc.clone();
    fewer.contributors.pop();
    let mut round = doc.clone();
    round.stored_round += 1;
    let mut request = doc.clone();
    request.request_sha256 = "00".repeat(32);
    let mut switched = doc.clone();
    (switched.result, switched.researcher_key, switched.ciphertext_sha256) =
        (None, Some("11".repeat(32)), Some("22".repeat(32)));
    let mut small = doc.clone();
    small.min_cell_count = 1;
    let forged = [
        (fewer, "other contributors"),
        (round, "another round"),
        (request, "another signed release request"),
        (switched, "not the decryption that was offered"),
        (small, "minimum cell count"),
    ];
    for (bad, why) in forged {
        let payload = serde_json::to_vec(&StoreReleaseSignStart { document: bad.to_json().unwrap() }).unwrap();
        let bytes = seh_protocol::messages::seal(
            &w.coordinator_key,
            seh_crypto::wire::ProtocolId::ThresholdBfv,
            step::RELEASE_SIGN_START,
            PartyId::COORDINATOR,
            PartyId(2),
            env.session,
            payload,
        )
        .unwrap();
        w.rejected.clear();
        let (sent, _) = w.deliver(PartyId(2), &bytes);
        assert!(sent.is_empty(), "{why}: a commitment left");
        assert!(w.rejected.iter().any(|(_, r)| r.contains(why)), "{why}: {:#?}", w.rejected);
    }
    // The genuine document is co-signed and the release completes with the group's signature.
    for o in sign_starts {
        let (sent, _) = w.deliver(o.to, &o.bytes);
        assert_eq!(sent.len(), 1);
        for (_, bytes) in sent {
            r.receive(o.to, &bytes).unwrap();
        }
    }
    let ReleaseStep::Send(requests) = r.close().unwrap() else { panic!("expected signing requests") };
    for o in requests {
        let (sent, out) = w.deliver(o.to, &o.bytes);
        assert!(out.iter().any(|x| matches!(x, SiteOutput::Audit(a) if a.kind == AuditKind::Release
            && a.details["what"] == "co-signed release from the encrypted store")));
        for (_, bytes) in sent {
            r.receive(o.to, &bytes).unwrap();
        }
    }
    let ReleaseStep::Done { result, signed, .. } = r.close().unwrap() else { panic!("expected the result") };
    let got = signed.verify(&w.fed.group_key()).unwrap();
    assert_eq!(got, doc);
    assert_eq!(got.result, Some(result));
    // A live release's signature is not a store release's (distinct FROST purposes).
    let relabelled = seh_protocol::release::SignedRelease {
        document: signed.document.clone(),
        signature: signed.signature.clone(),
        signers: signed.signers.clone(),
    };
    assert!(relabelled.verify(&w.fed.group_key()).is_err());
}

/// A node's key files as the site machine reads them on demand: records by study id, and the
/// studies whose file does not open (named as the node names it).
struct FileSource {
    records: BTreeMap<String, Vec<u8>>,
    broken: Vec<String>,
}

impl seh_protocol::he_site::HeKeySource for FileSource {
    fn load(&self, study_id: &str) -> Result<Option<HeKeyRecord>, String> {
        if self.broken.iter().any(|b| b == study_id) {
            return Err(format!(
                "state file {}: does not open under this node's identity key",
                self.location(study_id)
            ));
        }
        Ok(self.records.get(study_id).map(|b| HeKeyRecord::from_bytes(b).unwrap()))
    }

    fn location(&self, study_id: &str) -> String {
        format!("/var/seh/state.he-keys/{study_id}.hekey")
    }
}

/// The signed request and coordinator release of `f`'s stored round (study `w.study`).
fn start_study(w: &World, f: &Finished) -> (Release, Vec<Outbound>) {
    let spec = w.study.unverified_spec().unwrap();
    let (stored_round, items) = f.study.he_store_encoded().unwrap();
    let req = StoreReleaseRequest::new(&spec.study_id, "alice", Some(stored_round), None);
    let signed = SignedStoreRelease::sign(&req, &w.alice).unwrap();
    start_signed(w, f, f.cp.round + 1, &items, None, &signed)
}

#[test]
fn every_stored_study_stays_releasable_after_a_restart_and_a_bad_key_file_is_named() {
    // More studies than the in-memory cache holds (8): each with its own key set-up.
    const STUDIES: usize = 10;
    let mut w = world(3, 2, Aggregation::He);
    let mut runs = Vec::new();
    for k in 0..STUDIES {
        let spec = StudySpec { study_id: format!("{:032x}", k + 1), ..w.study.unverified_spec().unwrap() };
        w.study = SignedStudy::sign(&spec, &w.alice).unwrap();
        let f = run(&mut w, None);
        runs.push((w.study.clone(), f, w.records.clone()));
    }
    let ids: Vec<String> = runs.iter().map(|r| r.0.unverified_spec().unwrap().study_id).collect();
    // Restored from every record at once: no key state is dropped.
    let p = PartyId(1);
    let recs: Vec<HeKeyRecord> = runs.iter().map(|r| HeKeyRecord::from_bytes(&r.2[&p]).unwrap()).collect();
    let m = (w.make[&p])().with_he_keys(recs).unwrap();
    for id in &ids {
        assert!(m.he_budget_used(id).is_some(), "study {id} lost its key share after the restart");
    }
    // Every node restarts reading its key files on demand; the oldest and the newest stored round
    // are both released.
    let source = |p: PartyId, broken: Vec<String>| FileSource {
        records: runs.iter().zip(&ids).map(|(r, id)| (id.clone(), r.2[&p].clone())).collect(),
        broken,
    };
    for q in 1..=3 {
        let m = (w.make[&PartyId(q)])().with_he_key_source(Box::new(source(PartyId(q), Vec::new())));
        w.sites.insert(PartyId(q), m);
    }
    for k in [0, STUDIES - 1, 1] {
        w.study = runs[k].0.clone();
        let (r, first) = start_study(&w, &runs[k].1);
        release(&mut w, r, first, &[]).unwrap_or_else(|e| panic!("study {}: {e}", ids[k]));
    }
    // Two holders whose file of study 3 does not open refuse, naming the file (not "no key share").
    for q in [1, 2] {
        let m = (w.make[&PartyId(q)])().with_he_key_source(Box::new(source(PartyId(q), vec![ids[3].clone()])));
        w.sites.insert(PartyId(q), m);
    }
    w.study = runs[3].0.clone();
    let (r, first) = start_study(&w, &runs[3].1);
    let e = release(&mut w, r, first, &[]).unwrap_err();
    assert!(e.contains(&format!("/var/seh/state.he-keys/{}.hekey", ids[3])) && !e.contains("holds no"), "{e}");
}

#[test]
fn a_bad_co_signer_of_a_store_release_is_left_out_and_t_others_co_sign() {
    let mut w = world(5, 3, Aggregation::He);
    let f = run(&mut w, None);
    // Site-1 (party 2) now signs with a corrupted key share.
    w.bad_signer = Some(PartyId(2));
    let (r, first) = start_study(&w, &f);
    let mut r = r;
    let mut out = first;
    for _ in 0..12 {
        for o in std::mem::take(&mut out) {
            let (sent, _) = w.deliver(o.to, &o.bytes);
            for (_, bytes) in sent {
                r.receive(o.to, &bytes).unwrap();
            }
        }
        match r.close().unwrap_or_else(|e| panic!("{e}")) {
            ReleaseStep::Send(next) => out = next,
            ReleaseStep::Done { signed, .. } => {
                signed.verify(&w.fed.group_key()).unwrap();
                assert!(!signed.signers.contains(&"site-1".to_owned()), "{:?}", signed.signers);
                assert!(r.excluded_signers().contains(&PartyId(2)));
                return;
            }
            ReleaseStep::Switched { .. } => panic!("a switch where a decryption was asked"),
        }
    }
    panic!("the release did not finish");
}
