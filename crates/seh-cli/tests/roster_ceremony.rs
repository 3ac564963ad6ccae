//! The sites' key ceremony with separate processes: `seh federate` runs `seh coordinator
//! ceremony` and five `seh node` processes (no FROST share yet: enrolment mode), t = 3, then a
//! coordinator and a describe study whose release verifies under the signed roster. The same
//! federation is then restarted by hand (every node re-checks the roster signature on start) and
//! a study run with `seh study run`; finally a researcher is added to the federation file and a
//! node and the coordinator refuse to start, naming the file.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use seh_protocol::federation::{Federation, FederationFile, MemberEntry};

mod common;
use common::{workdir, Guard, SEH};

fn seh(args: &[&str]) -> Output {
    Command::new(SEH).args(args).output().unwrap()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn spawn(args: &[&str], log: &Path) -> Guard {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Guard(Command::new(SEH).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap())
}

fn audit_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn five_sites_sign_the_roster_and_an_edited_roster_stops_a_node() {
    let dir = workdir("roster");
    let data = dir.join("data.csv");
    let mut csv = String::from("site,x\n");
    for i in 0..100 {
        csv.push_str(&format!("{},{}\n", i % 5 + 1, (i * 7) % 40));
    }
    std::fs::write(&data, csv).unwrap();
    let work = dir.join("fed");
    let out = seh(&[
        "federate",
        "describe",
        "--data",
        &p(&data),
        "--split-by",
        "site",
        "--columns",
        "x",
        "--threshold",
        "3",
        // Local verification (below the floor of 3): no mandatory DP, so the counts are exact.
        "--min-cell-count",
        "2",
        "--format",
        "json",
        "--workdir",
        &p(&work),
    ]);
    assert!(out.status.success(), "seh federate: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signature_verified"], true);
    assert_eq!(v["result"]["columns"][0]["n"], 100);
    let ms = v["federation"]["ceremony_ms"].as_f64().expect("ceremony cost reported");
    eprintln!("key ceremony, 5 sites, t = 3: {ms:.1} ms");

    // The signed roster: t = 3 signers, a share per site (owner-only) under its group key.
    let fed_path = work.join("keys/federation.json");
    let fed = Federation::from_signed_json(&std::fs::read(&fed_path).unwrap()).unwrap();
    assert_eq!(fed.frost_threshold, 3);
    assert_eq!(fed.roster_signature().unwrap().signers.len(), 3);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("state/ceremony.json")).unwrap()).unwrap();
    assert_eq!(report["group_key"], seh_protocol::hex::encode(&fed.group_key().to_bytes()));
    assert_eq!(report["confirmed"].as_array().unwrap().len(), 5);
    // `seh keys show` verifies the file and prints the same group key for out-of-band comparison.
    let out = seh(&["keys", "show", "--federation", &p(&fed_path), "--format", "json"]);
    assert!(out.status.success(), "keys show: {}", String::from_utf8_lossy(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["group_key"], report["group_key"]);
    assert_eq!(shown["roster_signed_by"].as_array().unwrap().len(), 3);
    for s in fed.sites() {
        let share_path = work.join("keys").join(&s.name).join("frost.share");
        let text = std::fs::read_to_string(&share_path).unwrap();
        let share =
            seh_crypto::frost::KeyShare::from_secret_bytes(&seh_protocol::hex::decode(text.trim()).unwrap()).unwrap();
        assert_eq!(share.group_key(), fed.group_key(), "{}", s.name);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&share_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", share_path.display());
        }
        // The ceremony is in the site's audit log (metadata only) and the log verifies.
        let log = work.join(format!("state/{}.audit.jsonl", s.name));
        let text = audit_text(&log);
        assert!(text.contains("key share generated and stored") && text.contains("roster signed"), "{text}");
    }
    let coordinator_log = audit_text(&work.join("state/coordinator.audit.jsonl"));
    assert!(coordinator_log.contains("key ceremony started") && coordinator_log.contains("roster signed"));
    let out = seh(&[
        "audit",
        "verify",
        "--log",
        &p(&work.join("state/coordinator.audit.jsonl")),
        "--federation",
        &p(&fed_path),
        "--member",
        "coordinator",
    ]);
    assert!(out.status.success(), "audit verify: {}", String::from_utf8_lossy(&out.stderr));

    // Restarted by hand: every node checks the roster signature and its share, then serves.
    let names: Vec<String> = fed.sites().map(|s| s.name.clone()).collect();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let ready = work.join("state/coordinator.ready.json");
    let _ = std::fs::remove_file(&ready);
    let coordinator =
        spawn(&["coordinator", "--config", &p(&work.join("config/coordinator.toml"))], &logs.join("coordinator.log"));
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "coordinator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let nodes: Vec<Guard> = names
        .iter()
        .map(|n| {
            spawn(&["node", "--config", &p(&work.join(format!("config/{n}.toml")))], &logs.join(format!("{n}.log")))
        })
        .collect();
    let out = seh(&[
        "study",
        "run",
        "--config",
        &p(&work.join("config/researcher.toml")),
        "describe",
        "--columns",
        "x",
        "--threshold",
        "3",
        "--format",
        "json",
        "--timeout",
        "120",
    ]);
    assert!(out.status.success(), "seh study run: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signature_verified"], true);
    assert_eq!(v["result"]["columns"][0]["n"], 100);
    drop(nodes);
    drop(coordinator);

    // A researcher added after signing: the node and the coordinator refuse to start.
    let mut file: FederationFile = serde_json::from_slice(&std::fs::read(&fed_path).unwrap()).unwrap();
    file.researchers.push(MemberEntry { name: "mallory".into(), key: file.coordinator.key.clone() });
    std::fs::write(&fed_path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    for args in [
        vec!["node", "--config", &p(&work.join(format!("config/{}.toml", names[0])))],
        vec!["coordinator", "--config", &p(&work.join("config/coordinator.toml"))],
        vec!["keys", "show", "--federation", &p(&fed_path)],
    ] {
        let child = Command::new(SEH).args(&args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&child.stderr);
        assert!(!child.status.success(), "{args:?} started on an edited roster");
        assert!(err.contains(&p(&fed_path)), "{args:?} does not name the file: {err}");
        assert!(err.contains("changed after the sites signed it"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
