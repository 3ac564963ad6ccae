//! Co-signing the coordinator's audit-log head, in memory: a study runs to its release, then the
//! sites co-sign the coordinator's real `seh-audit` log head with FROST through the same
//! commit/share flow; a rewrite before a co-signed head is caught even after re-hashing, a site
//! refuses a head that does not extend the one it co-signed last, recomputes every covered
//! entry from its log line (refusing a spliced or tampered chain, naming the first bad seq), and
//! a long log is co-signed in bounded segments.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_audit::{Actor, AuditLog, EntryKind, Timestamp};
use seh_crypto::wire::ProtocolId;
use seh_crypto::wire::{PartyId, SigningKey};
use seh_policy::consent::ConsentRegistry;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_protocol::coordinator::{Action, Checkpoint, CoordinatorStudy};
use seh_protocol::federation::Federation;
use seh_protocol::log_head::{
    check_evidence, check_log, check_site_head, next_document, next_segment_within, HeadDocument, HeadRef, HeadRefusal,
    HeadSignStart, LogHeadError, SegmentLimits, SignedHead, SiteHeadError, MAX_SEGMENT_ENTRIES,
};
use seh_protocol::policy::{SiteGovernance, SitePolicy};
use seh_protocol::site::{AuditKind, SiteMachine, SiteOutput};
use seh_protocol::spec::{Analysis, DescribeSpec, SignedStudy, StudySpec};
use seh_protocol::{hex, messages, setup};
use seh_stats::DataFrame;
use serde_json::{json, Map, Value};

struct World {
    fed: Arc<Federation>,
    coordinator_key: SigningKey,
    sites: BTreeMap<PartyId, SiteMachine>,
    study: SignedStudy,
    names: Vec<String>,
    /// Sites' identity keys (to re-sign a tampered message as the site would send it).
    keys: BTreeMap<PartyId, SigningKey>,
    /// This site's FROST signature shares are replaced by an invalid one (a corrupted key share).
    bad_signer: Option<PartyId>,
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
    let mut keys = BTreeMap::new();
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
        let m = SiteMachine::new(fed.clone(), name, key.clone(), share, gov, data, BTreeMap::new()).unwrap();
        keys.insert(m.party(), key);
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
    World { fed, coordinator_key: secrets.coordinator, sites, study, names, keys, bad_signer: None }
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
                            SiteOutput::Send { bytes, kind, .. } => {
                                let share = messages::kind_label(ProtocolId::Frost, messages::frost_step::SHARE);
                                let bytes = if w.bad_signer == Some(o.to) && kind == share {
                                    let mut env = messages::open(&bytes, w.fed.roster()).unwrap();
                                    env.payload = [9u8; 1].iter().copied().chain([0u8; 31]).collect();
                                    messages::seal_envelope(&w.keys[&o.to], env).unwrap()
                                } else {
                                    bytes
                                };
                                queue.extend(study.receive(o.to, &bytes))
                            }
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

/// The request for `doc` with the log lines of the entries it covers, taken from `entries`.
fn request(doc: &HeadDocument, entries: &[seh_audit::Entry]) -> HeadSignStart {
    let first = doc.prev.as_ref().map_or(0, |p| p.seq + 1);
    let lines = entries
        .iter()
        .filter(|e| e.seq() >= first && e.seq() <= doc.seq)
        .map(|e| String::from_utf8(seh_audit::encode_line(e)).unwrap())
        .collect();
    HeadSignStart { document: doc.to_json().unwrap(), entries: lines }
}

/// Asks the sites to co-sign `doc` (with the lines from `entries`); returns the co-signature (if
/// any) and the site outputs.
fn cosign(
    w: &mut World,
    study: &mut CoordinatorStudy,
    doc: &HeadDocument,
    entries: &[seh_audit::Entry],
) -> (Option<SignedHead>, Vec<(PartyId, SiteOutput)>) {
    cosign_request(w, study, request(doc, entries))
}

fn cosign_request(
    w: &mut World,
    study: &mut CoordinatorStudy,
    req: HeadSignStart,
) -> (Option<SignedHead>, Vec<(PartyId, SiteOutput)>) {
    let first = study.cosign_log_head(req);
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
    let (signed, outputs) = cosign(&mut w, &mut study, &doc1, &entries);
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
    let (signed2, _) = cosign(&mut w, &mut study, &doc2, &entries);
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
    let (none, outputs) = cosign(&mut w, &mut study, &rewritten, &forged_entries);
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
    assert!(cosign(&mut w, &mut study, &doc, &entries).0.is_some());

    // A head cut back to seq 3 (entries removed from the end) is refused by every site.
    let cut = HeadDocument {
        federation: w.fed.name.clone(),
        seq: 3,
        hash: entries[3].hash().to_hex(),
        prev: None,
        between: entries[..3].iter().map(|e| e.hash().to_hex()).collect(),
    };
    let (none, outputs) = cosign(&mut w, &mut study, &cut, &entries);
    assert!(none.is_none());
    let rolled_back = outputs.iter().filter(|(_, o)| match o {
        SiteOutput::Audit(e) => e.details.get("reason").is_some_and(|r| r.to_string().contains("rolled back")),
        _ => false,
    });
    assert_eq!(rolled_back.count(), 3);
}

fn refusals(outputs: &[(PartyId, SiteOutput)]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|(_, o)| match o {
            SiteOutput::Audit(e) if e.kind == AuditKind::Rejected => e.details.get("reason").map(|r| r.to_string()),
            _ => None,
        })
        .collect()
}

fn cosign_entry(log: &mut AuditLog, signed: &SignedHead) {
    log.append(
        &Timestamp::parse("2025-06-01T12:05:00Z").unwrap(),
        &Actor::parse("coordinator").unwrap(),
        EntryKind::HeadCosign,
        signed.to_details(),
    )
    .unwrap();
}

#[test]
fn every_site_recomputes_the_chain_and_refuses_a_spliced_or_tampered_one() {
    let mut w = world(3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    run(&mut w, &mut study, first);
    let d = dir("evidence");
    let vk = w.coordinator_key.verifying_key();
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    append(&mut log, 5, "study one");
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let doc1 = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    let signed = cosign(&mut w, &mut study, &doc1, &entries).0.expect("co-signed");
    cosign_entry(&mut log, &signed);
    append(&mut log, 3, "study two");
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let doc2 = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    assert_eq!((doc2.prev.as_ref().map(|p| p.seq), doc2.seq), (Some(4), 8));

    // Checked directly: the honest request passes; each tampering is refused at its first bad seq.
    let (fed, key, last) = (&w.fed.name, &w.fed.coordinator_key, Some(&doc1.head()));
    let honest = request(&doc2, &entries);
    assert_eq!(honest.entries.len(), 4);
    assert_eq!(honest.check(fed, key, last).unwrap(), doc2);
    let refused = |req: &HeadSignStart| req.check(fed, key, last).unwrap_err().to_string();

    let mut lie = doc2.clone();
    lie.between[1] = entries[2].hash().to_hex();
    let mut req = honest.clone();
    req.document = lie.to_json().unwrap();
    assert!(refused(&req).contains("entry seq 6: the entry's hash differs from the document"), "{}", refused(&req));

    let mut req = honest.clone();
    req.entries[2] = req.entries[2].replace("study two 1", "study twoX1");
    assert!(refused(&req).contains("entry seq 7: the entry's hash does not match its content"), "{}", refused(&req));

    let other = SigningKey::from_bytes(&[9; 32]);
    let resigned = d.join("resigned.audit.jsonl");
    rewrite(&entries, &other, &resigned, u64::MAX);
    let resigned = seh_audit::read_verified(&resigned, &other.verifying_key()).unwrap();
    assert_eq!(resigned[5].hash(), entries[5].hash(), "same content, same hash, another signer");
    let req = request(&doc2, &resigned);
    assert!(refused(&req).contains("entry seq 5: the entry is not signed by the coordinator"), "{}", refused(&req));

    let mut req = honest.clone();
    req.entries.pop();
    assert!(refused(&req).contains("entry seq 8: the line for this entry is missing"), "{}", refused(&req));
    let mut req = honest.clone();
    req.entries.swap(1, 2);
    assert!(refused(&req).contains("entry seq 6: the line carries another sequence number"), "{}", refused(&req));
    let mut req = honest.clone();
    req.entries.push(req.entries[0].clone());
    assert!(refused(&req).contains("entry seq 9: a line beyond the head"), "{}", refused(&req));
    let mut req = honest.clone();
    req.entries[1] = "{\"seq\":6}".into();
    assert!(refused(&req).contains("entry seq 6: the line is not a canonical log entry"), "{}", refused(&req));

    // Through the protocol: the coordinator splices another history (validly hashed and signed by
    // its own key) after the head the sites co-signed. The document itself passes through that
    // head, so checking only the site's own head would accept it; recomputing the links does not.
    let other_path = d.join("other.audit.jsonl");
    let mut other_log = AuditLog::create(&other_path, w.coordinator_key.clone()).unwrap();
    append(&mut other_log, 9, "another history");
    let other = seh_audit::read_verified(&other_path, &vk).unwrap();
    let spliced = HeadDocument {
        federation: w.fed.name.clone(),
        seq: 8,
        hash: other[8].hash().to_hex(),
        prev: Some(doc1.head()),
        between: other[5..8].iter().map(|e| e.hash().to_hex()).collect(),
    };
    assert_eq!(spliced.check_extends(&w.fed.name, Some(&doc1.head())), Ok(()));
    let (none, outputs) = cosign(&mut w, &mut study, &spliced, &other);
    assert!(none.is_none());
    let reasons = refusals(&outputs);
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("entry seq 5: the entry does not link to the previous co-signed head")),
        "{reasons:?}"
    );
    assert!(outputs.iter().all(|(_, o)| !matches!(o, SiteOutput::RecordLogHead(_))));
    // The honest request is still co-signed afterwards.
    assert!(cosign(&mut w, &mut study, &doc2, &entries).0.is_some());
}

#[test]
fn a_log_longer_than_one_segment_is_cosigned_in_bounded_segments() {
    let mut w = world(3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    run(&mut w, &mut study, first);
    let d = dir("segments");
    let vk = w.coordinator_key.verifying_key();
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    append(&mut log, 12, "backlog");
    let limits = SegmentLimits { entries: 5, line_bytes: 1 << 20 };
    let mut heads = Vec::new();
    for _ in 0..10 {
        let entries = seh_audit::read_verified(&path, &vk).unwrap();
        let Some(next) = next_segment_within(&entries, &w.fed, &w.names, limits).unwrap() else { break };
        assert!(next.document.between.len() < limits.entries, "{:?}", next.document.seq);
        assert_eq!(next.document.prev, heads.last().cloned());
        let signed = cosign_request(&mut w, &mut study, next.request).0.expect("segment co-signed");
        cosign_entry(&mut log, &signed);
        heads.push(next.document.head());
        if next.reaches_end {
            break;
        }
    }
    // 0..=4, then 5..=9 (log now 0..=13 with two records), then 10..=13, which reaches the end.
    assert_eq!(heads.iter().map(|h| h.seq).collect::<Vec<_>>(), [4, 9, 13]);
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let report = check_log(&entries, &w.fed.name, &w.fed.group_key()).unwrap();
    assert_eq!((report.cosigned, report.last.map(|(h, _)| h.seq)), (3, Some(13)));
    for s in w.sites.values() {
        let head = s.cosigned_head().unwrap();
        assert_eq!(head.seq, 13);
        assert_eq!(check_site_head(&entries, "site-0", head), Ok(()));
        // The log cut back before that head: found from the site's record alone.
        assert_eq!(
            check_site_head(&entries[..13], "site-0", head),
            Err(SiteHeadError::Missing { site: "site-0".into(), seq: 13, entries: 13 })
        );
    }
    // Nothing new since the last co-signed head but its own record: one more one-entry segment.
    let next = next_segment_within(&entries, &w.fed, &w.names, limits).unwrap().unwrap();
    assert_eq!((next.document.prev.map(|p| p.seq), next.document.seq, next.reaches_end), (Some(13), 14, true));
    // A byte budget smaller than one line still sends that one line.
    let tiny = SegmentLimits { entries: 5, line_bytes: 1 };
    let one = next_segment_within(&entries[..3], &w.fed, &w.names, tiny).unwrap().unwrap();
    assert_eq!((one.document.seq, one.request.entries.len(), one.reaches_end), (0, 1, false));
}

#[test]
fn the_segment_start_lets_lagging_sites_catch_up_while_a_quorum_can_sign() {
    let w = world(3);
    let d = dir("laggard");
    let vk = w.coordinator_key.verifying_key();
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    append(&mut log, 30, "events");
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    // Records (signatures are not checked when choosing): site-2 co-signed head 2, then
    // site-0 and site-1 co-signed head 20 without it.
    let doc_at = |seq: u64| HeadDocument {
        federation: w.fed.name.clone(),
        seq,
        hash: entries[seq as usize].hash().to_hex(),
        prev: None,
        between: entries[..seq as usize].iter().map(|e| e.hash().to_hex()).collect(),
    };
    for (seq, signers) in [(2, vec!["site-2"]), (20, vec!["site-0", "site-1"])] {
        let signed = SignedHead {
            document: doc_at(seq).to_json().unwrap(),
            signature: "00".repeat(64),
            signers: signers.into_iter().map(String::from).collect(),
        };
        cosign_entry(&mut log, &signed);
    }
    let entries = seh_audit::read_verified(&path, &vk).unwrap();
    let at = |limits: SegmentLimits, signers: &[String]| {
        let n = next_segment_within(&entries, &w.fed, signers, limits).unwrap().unwrap();
        (n.document.prev.map(|p| p.seq), n.document.seq, n.reaches_end)
    };
    // A segment from site-2's head (3..=7) would hold only one signer's head, fewer than the
    // threshold 2: start at the quorum's head 20.
    assert_eq!(at(SegmentLimits { entries: 5, line_bytes: 1 << 20 }, &w.names), (Some(20), 25, false));
    // A segment long enough to reach from site-2's head past the others' takes site-2 along.
    assert_eq!(at(SegmentLimits { entries: 40, line_bytes: 1 << 20 }, &w.names), (Some(2), 31, true));
    // Only site-2 asked: its own head is the start.
    assert_eq!(at(SegmentLimits { entries: 5, line_bytes: 1 << 20 }, &w.names[2..]), (Some(2), 7, false));
    // A site with nothing co-signed yet needs the start of the log.
    let fresh = [w.names[0].clone(), "site-new".to_owned()];
    assert_eq!(at(SegmentLimits { entries: 40, line_bytes: 1 << 20 }, &fresh), (None, 31, true));
}

#[test]
fn a_full_segment_fits_one_audit_line_and_a_longer_one_is_refused() {
    let d = dir("size");
    let key = SigningKey::from_bytes(&[3; 32]);
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, key).unwrap();
    let hash = |i: usize| format!("{:064x}", i + 1);
    let doc = |n: usize| HeadDocument {
        federation: "fed-test".into(),
        seq: n as u64 + 101,
        hash: hash(n),
        prev: Some(HeadRef { seq: 100, hash: hash(0) }),
        between: (0..n).map(hash).collect(),
    };
    let full = doc(MAX_SEGMENT_ENTRIES - 1);
    assert_eq!(full.check_extends("fed-test", None), Ok(()));
    let signed = SignedHead {
        document: full.to_json().unwrap(),
        signature: "ab".repeat(64),
        signers: (0..64).map(|i| format!("site-with-a-long-name-{i}")).collect(),
    };
    cosign_entry(&mut log, &signed);
    let line = std::fs::metadata(&path).unwrap().len() as usize;
    assert!(line > 64 * MAX_SEGMENT_ENTRIES && line < seh_audit::MAX_LINE_BYTES / 4, "{line} bytes");
    let over = doc(MAX_SEGMENT_ENTRIES);
    let err = over.check_extends("fed-test", None).unwrap_err();
    assert!(err.to_string().contains(&format!("more than the {MAX_SEGMENT_ENTRIES}")), "{err}");
}

/// Regression (found while fuzzing `check_evidence`): a coordinator-signed line at seq u64::MAX,
/// after a previous head at u64::MAX − 1, overflowed the site's seq counter (a panic with overflow
/// checks on). The input is the fuzz target's layout: flag byte, previous head seq (u64 BE), then
/// newline-separated lines; signed with the fuzz target's fixed coordinator key `[7; 32]`.
#[test]
fn evidence_at_the_last_sequence_number_does_not_overflow() {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/evidence_seq_u64_max.bin")).unwrap();
    let (header, body) = data.split_at(9);
    let from = u64::from_be_bytes(header[1..9].try_into().unwrap());
    assert_eq!(header[0] & 1, 1, "the input has a previous head");
    assert_eq!(from, u64::MAX - 1);
    let lines: Vec<String> = body.split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    assert_eq!(lines.len(), 1);
    let entry = seh_audit::decode_line(lines[0].as_bytes()).unwrap();
    assert_eq!(entry.seq(), u64::MAX);
    let doc = HeadDocument {
        federation: "fuzz".into(),
        seq: u64::MAX,
        hash: entry.hash().to_hex(),
        prev: Some(HeadRef { seq: from, hash: "ab".repeat(32) }),
        between: Vec::new(),
    };
    doc.check_extends("fuzz", None).unwrap();
    let coordinator = SigningKey::from_bytes(&[7; 32]).verifying_key();
    // The line links to the stated previous head, hashes and verifies: accepted, no overflow.
    check_evidence(&doc, &lines, &coordinator).unwrap();
    // A second line after the head is refused, naming the seq after the head (saturated).
    let two = vec![lines[0].clone(), lines[0].clone()];
    assert!(matches!(
        check_evidence(&doc, &two, &coordinator),
        Err(HeadRefusal::Evidence { seq: u64::MAX, what: "a line beyond the head was sent" })
    ));
}

#[test]
fn a_bad_signer_is_left_out_of_the_log_head_and_t_others_co_sign() {
    let mut w = world(3);
    let (mut study, first) =
        CoordinatorStudy::resume(w.fed.clone(), w.coordinator_key.clone(), w.study.clone(), Checkpoint::default())
            .unwrap();
    run(&mut w, &mut study, first);
    assert!(study.checkpoint().release.is_some());
    let d = dir("bad-signer");
    let path = d.join("coordinator.audit.jsonl");
    let mut log = AuditLog::create(&path, w.coordinator_key.clone()).unwrap();
    append(&mut log, 3, "study one");
    let entries = seh_audit::read_verified(&path, &w.coordinator_key.verifying_key()).unwrap();
    let doc = next_document(&entries, &w.fed, &w.names).unwrap().unwrap();
    // Site-0's key share is corrupted: its signature shares do not verify.
    w.bad_signer = Some(PartyId(1));
    let (signed, _) = cosign(&mut w, &mut study, &doc, &entries);
    let signed = signed.expect("co-signed by the two good sites");
    assert_eq!(signed.verify(&w.fed.group_key()).unwrap(), doc);
    assert_eq!(signed.signers, vec!["site-1".to_owned(), "site-2".to_owned()]);
    assert_eq!(study.checkpoint().excluded_signers, vec![1]);
}
