//! Durable state that must not be accepted quietly (issue 18, item 7): private key files that
//! their group or others may read, and an emptied audit log.

use std::path::Path;
use std::process::Command;

use seh_audit::{Actor, AuditLog, EntryKind, SigningKey, Timestamp};

mod common;
use common::{workdir, SEH};

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn an_identity_key_readable_by_others_is_refused_naming_file_mode_and_fix() {
    use std::os::unix::fs::PermissionsExt;
    let work = workdir("durability-keymode");
    let keys = work.join("keys");
    let out =
        Command::new(SEH).args(["keys", "init", "--sites", "site-a,site-b", "--dir"]).arg(&keys).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // `seh keys init` writes every secret owner-only, in owner-only directories.
    let key = keys.join("site-a/identity.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&keys.join("site-a")), 0o700);
    assert_eq!(mode(&keys), 0o700);
    let config = work.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "federation = {:?}\nca = {:?}\nidentity = {:?}\ncoordinator = \"127.0.0.1:9\"\ndata = {:?}\n\
             audit_log = {:?}\nstate_file = {:?}\n",
            keys.join("federation.json"),
            keys.join("ca.der"),
            keys.join("site-a"),
            work.join("a.csv"),
            work.join("a.audit.jsonl"),
            work.join("a.state.json"),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(SEH).args(["node", "--config"]).arg(&config).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}: mode 0644 gives group/other access", key.display())), "{stderr}");
    assert!(stderr.contains(&format!("chmod 600 {}", key.display())), "{stderr}");
    std::fs::remove_dir_all(&work).unwrap();
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn verify(log: &Path, extra: &[&str]) -> (bool, String, String) {
    let hex: String = key().verifying_key().as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let out =
        Command::new(SEH).args(["audit", "verify", "--key", &hex, "--log"]).arg(log).args(extra).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn an_emptied_audit_log_fails_verification() {
    let work = workdir("durability-audit");
    let log = work.join("site.audit.jsonl");
    let mut w = AuditLog::create(&log, key()).unwrap();
    for i in 0..3 {
        let ts = Timestamp::parse(&format!("2025-06-01T12:00:0{i}Z")).unwrap();
        w.append(&ts, &Actor::parse("site-a").unwrap(), EntryKind::System, Default::default()).unwrap();
    }
    drop(w);
    let (ok, stdout, stderr) = verify(&log, &[]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("OK, 3 entries"), "{stdout}");
    // Emptied: the head file beside it says seq 2 was written.
    std::fs::write(&log, b"").unwrap();
    let (ok, stdout, stderr) = verify(&log, &["--allow-empty"]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("log has 0 entries but the known head is seq 2"), "{stderr}");
    // An empty log with no other evidence: not a bare OK, and a failure unless allowed.
    let empty = work.join("empty.audit.jsonl");
    std::fs::write(&empty, b"").unwrap();
    let (ok, stdout, stderr) = verify(&empty, &[]);
    assert!(!ok);
    assert!(!stdout.contains("OK"), "{stdout}");
    assert!(stderr.contains("empty log: 0 entries"), "{stderr}");
    let (ok, stdout, _) = verify(&empty, &["--allow-empty"]);
    assert!(ok);
    assert!(stdout.contains("empty log: 0 entries; accepted (--allow-empty)"), "{stdout}");
    std::fs::remove_dir_all(&work).unwrap();
}
