//! The writer's own signed head beside the log (`<log>.head`): an emptied or cut-back log fails
//! verification and is neither reopened nor recreated (issue 18: "an emptied audit log verifies
//! as OK").

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use seh_audit::{
    own_head_path, verify, verify_file, Actor, AuditLog, EntryKind, LogError, SigningKey, Timestamp, VerifyError,
};
use serde_json::Map;

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn write_log(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("site.audit.jsonl");
    let mut log = AuditLog::create(&path, key(1)).unwrap();
    for i in 0..n {
        let ts = Timestamp::parse(&format!("2025-06-01T12:00:{:02}Z", i % 60)).unwrap();
        log.append(&ts, &Actor::parse("site-a").unwrap(), EntryKind::System, Map::new()).unwrap();
    }
    path
}

fn cut_to(path: &Path, keep: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let kept: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
    std::fs::write(path, kept).unwrap();
}

#[test]
fn an_intact_log_verifies_against_its_head_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 4);
    let (report, checked) = verify_file(&path, &key(1).verifying_key()).unwrap();
    assert_eq!((report.entries, checked), (4, true));
    // Reopened and continued: the head file follows.
    let mut log = AuditLog::open(&path, key(1)).unwrap();
    let ts = Timestamp::parse("2025-06-01T13:00:00Z").unwrap();
    log.append(&ts, &Actor::parse("site-a").unwrap(), EntryKind::System, Map::new()).unwrap();
    assert_eq!(verify_file(&path, &key(1).verifying_key()).unwrap().0.entries, 5);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&own_head_path(&path)), 0o600);
    }
}

#[test]
fn an_emptied_or_cut_back_log_fails_and_is_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 4);
    let vk = key(1).verifying_key();
    for keep in [3, 0] {
        cut_to(&path, keep);
        // The chain alone cannot tell (what `seh audit verify` used to report as OK) …
        assert_eq!(verify(&path, &vk).unwrap().entries, keep as u64);
        // … the head file can.
        match verify_file(&path, &vk) {
            Err(VerifyError::HeadMissing { entries, head_seq: 3 }) => assert_eq!(entries, keep as u64),
            other => panic!("a log cut to {keep} entries: {other:?}"),
        }
        match AuditLog::open(&path, key(1)) {
            Err(e @ LogError::BehindOwnHead { .. }) => assert!(e.to_string().contains("entries were removed"), "{e}"),
            other => panic!("reopening a log cut to {keep} entries: {other:?}"),
        }
    }
    // A deleted log is not started afresh either.
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(AuditLog::create(&path, key(1)), Err(LogError::BehindOwnHead { .. })));
}

#[test]
fn a_rewritten_log_or_a_forged_head_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 3);
    // The same number of entries, written again by the same key: another chain.
    let head = std::fs::read(own_head_path(&path)).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(own_head_path(&path)).unwrap();
    let mut log = AuditLog::create(&path, key(1)).unwrap();
    for i in 0..3 {
        let ts = Timestamp::parse(&format!("2025-07-01T12:00:0{i}Z")).unwrap();
        log.append(&ts, &Actor::parse("site-a").unwrap(), EntryKind::System, Map::new()).unwrap();
    }
    drop(log);
    std::fs::write(own_head_path(&path), &head).unwrap();
    assert!(matches!(verify_file(&path, &key(1).verifying_key()), Err(VerifyError::HeadMismatch { seq: 2, .. })));
    assert!(matches!(AuditLog::open(&path, key(1)), Err(LogError::BehindOwnHead { .. })));
    // A head file signed by another key is refused, naming it.
    let other = tempfile::tempdir().unwrap();
    let foreign = {
        let p = other.path().join("x.jsonl");
        let mut log = AuditLog::create(&p, key(2)).unwrap();
        let ts = Timestamp::parse("2025-07-01T12:00:00Z").unwrap();
        log.append(&ts, &Actor::parse("site-b").unwrap(), EntryKind::System, Map::new()).unwrap();
        std::fs::read(own_head_path(&p)).unwrap()
    };
    std::fs::write(own_head_path(&path), foreign).unwrap();
    match verify_file(&path, &key(1).verifying_key()) {
        Err(e @ VerifyError::OwnHead { .. }) => assert!(e.to_string().contains("signature does not verify"), "{e}"),
        other => panic!("{other:?}"),
    }
}
