//! File-level tests: round trip, reopen, truncation and every kind of tampering.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rand::SeedableRng;
use seh_audit::{
    decode_line, encode_line, verify, verify_with_head, Actor, AuditLog, EntryKind, IntegrityError, LogError,
    SigningKey, Timestamp, VerifyError,
};
use serde_json::{json, Map, Value};

fn key(seed: u64) -> SigningKey {
    SigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn details(i: usize) -> Map<String, Value> {
    match json!({"study": "s-1", "round": i, "reason": "min cell count 5 met", "ratio": 0.25 + i as f64}) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn ts(i: usize) -> Timestamp {
    Timestamp::parse(&format!("2025-06-01T12:00:{:02}.5+02:00", i % 60)).unwrap()
}

/// Writes a log with `n` entries and returns its path (inside `dir`).
fn write_log(dir: &Path, name: &str, seed: u64, n: usize) -> PathBuf {
    let path = dir.join(name);
    let mut log = AuditLog::create(&path, key(seed)).unwrap();
    let kinds = EntryKind::ALL;
    for i in 0..n {
        log.append(&ts(i), &Actor::parse("site-a").unwrap(), kinds[i % kinds.len()], details(i)).unwrap();
    }
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn round_trip_verifies_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 1, 9);
    let report = verify(&path, &key(1).verifying_key()).unwrap();
    assert_eq!(report.entries, 9);
    let all = lines(&path);
    let last = decode_line(all[8].as_bytes()).unwrap();
    assert_eq!(report.head.unwrap().seq, 8);
    assert_eq!(report.head.unwrap().hash, last.hash());
    for (i, line) in all.iter().enumerate() {
        let e = decode_line(line.as_bytes()).unwrap();
        assert_eq!(e.seq(), i as u64);
        assert_eq!(e.details(), &details(i));
        assert_eq!(e.timestamp(), &ts(i));
        assert_eq!(e.kind(), EntryKind::ALL[i % EntryKind::ALL.len()]);
        assert_eq!(encode_line(&e), line.as_bytes());
    }
    // An empty log is valid.
    let empty = dir.path().join("empty.log");
    AuditLog::create(&empty, key(1)).unwrap();
    assert_eq!(verify(&empty, &key(1).verifying_key()).unwrap().entries, 0);
    // Creating over an existing log is refused.
    assert!(matches!(AuditLog::create(&path, key(1)), Err(LogError::Io { op: "create", .. })));
}

#[test]
fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 2, 3);
    let mut log = AuditLog::open(&path, key(2)).unwrap();
    assert_eq!(log.len(), 3);
    let head = log.append(&ts(3), &Actor::parse("coordinator").unwrap(), EntryKind::Release, details(3)).unwrap();
    assert_eq!(head.seq, 3);
    drop(log);
    let report = verify(&path, &key(2).verifying_key()).unwrap();
    assert_eq!((report.entries, report.head), (4, Some(head)));
    // Empty log reopens too.
    let empty = dir.path().join("e.log");
    drop(AuditLog::create(&empty, key(2)).unwrap());
    let mut log = AuditLog::open(&empty, key(2)).unwrap();
    assert_eq!(log.head(), None);
    log.append(&ts(0), &Actor::parse("x").unwrap(), EntryKind::System, Map::new()).unwrap();
    assert_eq!(verify(&empty, &key(2).verifying_key()).unwrap().entries, 1);
}

#[test]
fn reopen_with_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 3, 2);
    let err = AuditLog::open(&path, key(4)).unwrap_err();
    assert!(
        matches!(err, LogError::TailIntegrity { line: 2, seq: 1, source: IntegrityError::BadSignature, .. }),
        "{err}"
    );
}

#[test]
fn truncated_tail_is_reported_not_continued() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 5, 3);
    let bytes = std::fs::read(&path).unwrap();
    for cut in [1, 10, 100] {
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let err = AuditLog::open(&path, key(5)).unwrap_err();
        assert!(matches!(err, LogError::TruncatedTail { line: 3, .. }), "{err}");
        let err = verify(&path, &key(5).verifying_key()).unwrap_err();
        assert!(matches!(err, VerifyError::TruncatedTail { line: 3, .. }), "{err}");
    }
    // Cut exactly after a newline: whole entries gone, only a known head reveals it.
    let keep = bytes.iter().rposition(|&b| b == b'\n').and_then(|end| bytes[..end].iter().rposition(|&b| b == b'\n'));
    std::fs::write(&path, &bytes[..=keep.unwrap()]).unwrap();
    assert_eq!(verify(&path, &key(5).verifying_key()).unwrap().entries, 2);
}

#[test]
fn modified_entry_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 6, 4);
    let mut all = lines(&path);
    all[1] = all[1].replacen("min cell count 5", "min cell count 3", 1);
    write_lines(&path, &all);
    let err = verify(&path, &key(6).verifying_key()).unwrap_err();
    assert!(matches!(err, VerifyError::Modified { line: 2, seq: 1, source: IntegrityError::HashMismatch }), "{err}");
    assert!(err.to_string().contains("line 2 (seq 1)"));
}

#[test]
fn forged_entry_with_consistent_hash_fails_signature() {
    // Same content written under another key: hash is consistent, signature is not ours.
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 7, 4);
    let forged = write_log(dir.path(), "b.log", 8, 4);
    let mut all = lines(&path);
    all[2] = lines(&forged)[2].clone();
    write_lines(&path, &all);
    let err = verify(&path, &key(7).verifying_key()).unwrap_err();
    assert!(matches!(err, VerifyError::Modified { line: 3, seq: 2, source: IntegrityError::BadSignature }), "{err}");
}

#[test]
fn deleted_inserted_reordered_entries_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 9, 5);
    let vk = key(9).verifying_key();
    let original = lines(&path);

    let mut deleted = original.clone();
    deleted.remove(2);
    write_lines(&path, &deleted);
    let err = verify(&path, &vk).unwrap_err();
    assert!(matches!(err, VerifyError::Sequence { line: 3, expected: 2, found: 3 }), "{err}");

    let mut inserted = original.clone();
    inserted.insert(3, original[1].clone());
    write_lines(&path, &inserted);
    let err = verify(&path, &vk).unwrap_err();
    assert!(matches!(err, VerifyError::Sequence { line: 4, expected: 3, found: 1 }), "{err}");

    let mut reordered = original.clone();
    reordered.swap(1, 3);
    write_lines(&path, &reordered);
    let err = verify(&path, &vk).unwrap_err();
    assert!(matches!(err, VerifyError::Sequence { line: 2, expected: 1, found: 3 }), "{err}");
}

#[test]
fn entry_from_another_chain_breaks_the_link() {
    // Same key, same seq, different history: signature fine, prev hash wrong.
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 10, 3);
    let other = dir.path().join("b.log");
    let mut log = AuditLog::create(&other, key(10)).unwrap();
    log.append(&ts(0), &Actor::parse("site-z").unwrap(), EntryKind::System, Map::new()).unwrap();
    log.append(&ts(1), &Actor::parse("site-a").unwrap(), EntryKind::PolicyDecision, details(1)).unwrap();
    let mut all = lines(&path);
    all[1] = lines(&other)[1].clone();
    write_lines(&path, &all);
    let err = verify(&path, &key(10).verifying_key()).unwrap_err();
    assert!(matches!(err, VerifyError::ChainBroken { line: 2, seq: 1 }), "{err}");
}

#[test]
fn known_head_detects_tail_deletion_and_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "a.log", 11, 4);
    let vk = key(11).verifying_key();
    let head = verify(&path, &vk).unwrap().head.unwrap();
    assert_eq!(verify_with_head(&path, &vk, &head).unwrap().entries, 4);

    let mut all = lines(&path);
    all.pop();
    write_lines(&path, &all);
    assert_eq!(verify(&path, &vk).unwrap().entries, 3);
    let err = verify_with_head(&path, &vk, &head).unwrap_err();
    assert!(matches!(err, VerifyError::HeadMissing { entries: 3, head_seq: 3 }), "{err}");

    // Rewritten history, same key, longer than the head.
    let other = dir.path().join("c.log");
    let mut log = AuditLog::create(&other, key(11)).unwrap();
    for i in 0..5 {
        log.append(&ts(i + 1), &Actor::parse("site-a").unwrap(), EntryKind::Request, details(i)).unwrap();
    }
    std::fs::write(&path, std::fs::read(&other).unwrap()).unwrap();
    let err = verify_with_head(&path, &vk, &head).unwrap_err();
    assert!(matches!(err, VerifyError::HeadMismatch { line: 4, seq: 3 }), "{err}");
}

#[test]
fn errors_do_not_echo_details() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let mut log = AuditLog::create(&path, key(12)).unwrap();
    let mut d = Map::new();
    d.insert("note".into(), Value::from("SENTINEL-TEXT"));
    log.append(&ts(0), &Actor::parse("site-a").unwrap(), EntryKind::Request, d).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for bad in [text.replace("SENTINEL-TEXT", "SENTINEL-TEXX"), text.replace("\"note\"", "\"note\" ")] {
        std::fs::write(&path, bad).unwrap();
        let err = verify(&path, &key(12).verifying_key()).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("SENTINEL"), "{err:?}");
    }
}

/// The line (1-based) that byte `pos` belongs to; a newline belongs to the line it ends.
fn line_of(bytes: &[u8], pos: usize) -> usize {
    bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1
}

fn error_line(err: &VerifyError) -> Option<usize> {
    match err {
        VerifyError::TruncatedTail { line, .. }
        | VerifyError::Malformed { line, .. }
        | VerifyError::Modified { line, .. }
        | VerifyError::Sequence { line, .. }
        | VerifyError::ChainBroken { line, .. }
        | VerifyError::HeadMismatch { line, .. } => Some(*line),
        VerifyError::Io { .. } | VerifyError::HeadMissing { .. } | VerifyError::OwnHead { .. } => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any single-byte change anywhere in the file is detected, at the line holding that byte.
    #[test]
    fn any_single_byte_change_is_detected(pos_frac in 0.0f64..1.0, new_byte in any::<u8>()) {
        use std::sync::OnceLock;
        static LOG: OnceLock<Vec<u8>> = OnceLock::new();
        let original = LOG.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::read(write_log(dir.path(), "p.log", 13, 4)).unwrap()
        });
        let pos = ((original.len() as f64 * pos_frac) as usize).min(original.len() - 1);
        prop_assume!(original[pos] != new_byte);
        let mut bytes = original.clone();
        bytes[pos] = new_byte;
        let err = seh_audit::verify_bytes(&bytes, &key(13).verifying_key());
        prop_assert!(err.is_err(), "byte {} changed undetected", pos);
        prop_assert_eq!(error_line(&err.unwrap_err()), Some(line_of(original, pos)));
    }

    /// The strict decoder is total, and whatever it accepts re-encodes to the same bytes.
    #[test]
    fn decoder_is_total_and_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(entry) = decode_line(&bytes) {
            prop_assert_eq!(encode_line(&entry), bytes);
        }
    }
}
