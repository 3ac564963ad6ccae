//! Co-signing the coordinator's audit-log head, in memory: a study runs to its release, then the
//! sites co-sign the coordinator's real `seh-audit` log head with FROST through the same
//! commit/share flow; a rewrite before a co-signed head is caught even after re-hashing, and a
//! site refuses a head that does not extend the one it co-signed last.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_audit::{Actor, AuditLog, EntryKind, Timestamp};
use seh_crypto::wire::{PartyId, SigningKey};
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::federation::Federation;
use seh_protocol::log_head::{check_log, next_document, HeadDocument, LogHeadError, SignedHead};
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, setup};
use seh_stats::DataFrame;
use serde_json::{json, Map, Value};

struct World {
    fed: Arc<Federation>,
    coordinator_key: SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    study: SignedStudy,
    names: Vec<String>,
}

fn world(n: usize) -> World {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let names: Vec<String> = (0..n).map(|i| format!("site-{i}")).collect();
    let (file, secrets) = setup::generate("fed-test", "coordinator", &names, &["alice".into()], 2, &mut rng).unwrap();
    let fed = Arc::new(Federation::from_file(file).unwrap());
    let alice = &secrets.researchers["alice"];
    let researchers = [("alice".to_owned(), hex::encode(alice.verifying_key().as_bytes()))];
    let policy =
        SitePolicy::from_toml_str(&open_policy_toml(&researchers, &[AnalysisKind::Descriptive], 3), "policy").unwrap();
    let mut sites = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let (key, share) = secrets.sites[name].clone();
        let x: Vec<f64> = (0..20 + i).map(|k| (k % 9) as f64).collect();
        let data = DataFrame::from_columns(vec![("x", x)]).unwrap();
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
    let spec = StudySpec {
        study_id: "0123456789abcdef0123456789abcdef".into(),
        researcher: "alice".into(),
        analysis: Analysis::Describe(DescribeSpec { columns: vec!["x".into()], histograms: vec![] }),
        sites: names.clone(),
        threshold: 2,
        aggregation: Default::default(),
        purpose: "HRESCH".into(),
        dp_epsilon: None,
        dp_delta: None,
    };
    let study = SignedStudy::sign(&spec, alice).unwrap();
    World { fed, coordinator_key: secrets.coordinator, sites, study, names }
}

/// Runs until the coordinator finishes; returns every non-send site output with its site.
fn run(w: &mut World, study: &mut CoordinatorStudy, first: Vec<Action>) -> Vec<(PartyId, SiteOutput)> {
    let mut queue: VecDeque<Action> = first.into();
    let mut outputs = Vec::new();
    loop {
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Finished => return outputs,
                Action::Checkpoint(_) | Action::Log(_) => {}
                Action::Send(o) => {
                    let Some(site) = w.sites.get_mut(&o.to) else { continue };
                    for so in site.handle(&o.bytes) {
                        match so {
                            SiteOutput::Send { bytes, .. } => queue.extend(study.receive(o.to, &bytes)),
                            other => outputs.push((o.to, other)),
                        }
                    }
                }
            }
        }
        assert!(!study.is_finished(), "finished without Action::Finished");
        queue.extend(study.timeout());
    }
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("log_head-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn append(log: &mut AuditLog, n: usize, tag: &str) {
    let ts = Timestamp::parse("2025-06-01T12:00:00Z").unwrap();
    let actor = Actor::parse("coordinator").unwrap();
    for i in 0..n {
        let mut d = Map::new();
        d.insert("event".into(), json!(format!("{tag} {i}")));
        log.append(&ts, &actor, EntryKind::System, d).unwrap();
    }
}

/// Asks the sites to co-sign `doc`; returns the co-signature (if any) and the site outputs.
fn cosign(
    w: &mut World,
    study: &mut CoordinatorStudy,
    doc: &HeadDocument,
) -> (Option<SignedHead>, Vec<(PartyId, SiteOutput)>) {
    let first = study.cosign_log_head(doc.to_json().unwrap());
    let outputs = run(w, study, first);
    (study.checkpoint().log_head.clone(), outputs)
}

/// Writes `entries` again as a fresh log signed by `key`, with the entry at `edit` changed:
/// what a coordinator rewriting its history would do (all hashes and signatures recomputed).
fn rewrite(entries: &[seh_audit::Entry], key: &SigningKey, path: &Path, edit: u64) {
    let mut log = AuditLog::create(path, key.clone()).unwrap();
    for e in entries {
        let mut details = e.details().clone();
        if e.seq() == edit {
            details.insert("event".into(), Value::String("history rewritten".into()));
        }
        log.append(e.timestamp(), e.actor(), e.kind(), details).unwrap();
    }
}

#[test]
fn sites_cosign_the_log_head_and_a_rewrite_is_caught() {
    let mut w = world(3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    run(&mut w, &mut study, first);
    assert!(study.checkpoint().release.is_some(), "the study is released first");

    let d = dir("cosign");
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    let vk = w.coordinator_key.verifying_key();
    append(&mut log, 5, "study one");

    // First co-signature: from the start of the log (no site co-signed anything yet).
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let doc1 = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    assert_eq!((doc1.seq, doc1.prev.clone(), doc1.between.len()), (4, None, 4));
    let (signed, outputs) = cosign(&mut w, &mut study, &doc1);
    let signed = signed.expect("co-signed");
    assert_eq!(signed.verify(&w.fed.group_key()).unwrap(), doc1);
    assert!(signed.signers.len() >= 2);
    // Every site persisted the new head before answering.
    let recorded: Vec<_> = outputs.iter().filter(|(_, o)| matches!(o, SiteOutput::RecordLogHead(_))).collect();
    assert_eq!(recorded.len(), 3);
    for s in w.sites.values() {
        assert_eq!(s.cosigned_head(), Some(&doc1.head()));
    }
    log.append(
        &Timestamp::parse("2025-06-01T12:01:00Z").unwrap(),
        &Actor::parse("coordinator").unwrap(),
        EntryKind::HeadCosign,
        signed.to_details(),
    )
    .unwrap();

    // Second co-signature extends the first.
    append(&mut log, 3, "study two");
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let doc2 = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    assert_eq!(doc2.prev, Some(doc1.head()));
    assert_eq!((doc2.seq, doc2.between.len()), (8, 3));
    let (signed2, _) = cosign(&mut w, &mut study, &doc2);
    let signed2 = signed2.expect("co-signed again");
    log.append(
        &Timestamp::parse("2025-06-01T12:02:00Z").unwrap(),
        &Actor::parse("coordinator").unwrap(),
        EntryKind::HeadCosign,
        signed2.to_details(),
    )
    .unwrap();
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let report = check_log(&entries, &w.fed.name, &w.fed.group_key()).unwrap();
    assert_eq!(report.cosigned, 2);
    assert_eq!(report.last.as_ref().map(|(h, _)| h.seq), Some(8));
    // Under another group key (or federation name) the co-signatures do not verify.
    assert!(matches!(check_log(&entries, "other", &w.fed.group_key()), Err(LogHeadError::WrongFederation { .. })));

    // The coordinator rewrites entry 2 and recomputes every hash and signature with its key:
    // the chain verifies, the co-signed heads do not.
    let forged = d.join("forged.audit.jsonl");
    rewrite(&entries, &w.coordinator_key, &forged, 2);
    let forged_entries = seh_audit::read_verified(&forged, &vk).expect("the re-signed chain itself verifies");
    let err = check_log(&forged_entries, &w.fed.name, &w.fed.group_key()).unwrap_err();
    assert!(matches!(err, LogHeadError::HeadMismatch { head_seq: 4, entry_seq: 2, what: "differs" }), "{err}");
    assert!(err.to_string().contains("co-signed head seq 4"), "{err}");
    // An edit after the last co-signed head is not covered by any co-signature (yet).
    let later = d.join("later.audit.jsonl");
    rewrite(&entries, &w.coordinator_key, &later, 9);
    assert!(check_log(&seh_audit::read_verified(&later, &vk).unwrap(), &w.fed.name, &w.fed.group_key()).is_ok());

    // Asked to co-sign the rewritten history (honest hashes from the start), every site refuses,
    // audits why, and no co-signature comes out.
    let rewritten = HeadDocument {
        federation: w.fed.name.clone(),
        seq: forged_entries.last().unwrap().seq(),
        hash: forged_entries.last().unwrap().hash().to_hex(),
        prev: None,
        between: forged_entries[..forged_entries.len() - 1].iter().map(|e| e.hash().to_hex()).collect(),
    };
    let (none, outputs) = cosign(&mut w, &mut study, &rewritten);
    assert!(none.is_none());
    let refusals: Vec<String> = outputs
        .iter()
        .filter_map(|(_, o)| match o {
            SiteOutput::Audit(e) if e.kind == AuditKind::Rejected => e.details.get("reason").map(|r| r.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert!(refusals.iter().all(|r| r.contains("entry seq 8 differs") && r.contains("rewritten")), "{refusals:?}");
    // Nothing was recorded: the sites keep the honest head.
    assert!(outputs.iter().all(|(_, o)| !matches!(o, SiteOutput::RecordLogHead(_))));
    for s in w.sites.values() {
        assert_eq!(s.cosigned_head(), Some(&doc2.head()));
    }
}

#[test]
fn a_rolled_back_head_is_refused_by_every_site() {
    let mut w = world(3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    run(&mut w, &mut study, first);
    let d = dir("rollback");
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    append(&mut log, 6, "events");
    let entries = seh_audit::read_verified(&path, &w.coordinator_key.verifying_key()).unwrap();
    let doc = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    assert!(cosign(&mut w, &mut study, &doc).0.is_some());

    // A head cut back to seq 3 (entries removed from the end) is refused by every site.
    let cut = HeadDocument {
        federation: w.fed.name.clone(),
        seq: 3,
        hash: entries[3].hash().to_hex(),
        prev: None,
        between: entries[..3].iter().map(|e| e.hash().to_hex()).collect(),
    };
    let (none, outputs) = cosign(&mut w, &mut study, &cut);
    assert!(none.is_none());
    let rolled_back = outputs.iter().filter(|(_, o)| match o {
        SiteOutput::Audit(e) => e.details.get("reason").is_some_and(|r| r.to_string().contains("rolled back")),
        _ => false,
    });
    assert_eq!(rolled_back.count(), 3);
}
