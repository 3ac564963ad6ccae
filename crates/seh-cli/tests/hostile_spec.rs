//! A hostile study spec sent to a running `seh coordinator`: a 2.8 KB formula of 1,400 nested
//! parentheses (it crashed the coordinator with a stack overflow, nothing audited). Now the
//! submission is refused with the limit named, the refusal is in the audit log, and the
//! coordinator keeps serving.
//!
//! The spec is sent as raw signed-study JSON, as a hostile client would: the researcher's own
//! `SignedStudy::sign` validates first and would refuse it locally.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seh_net::{ClientTls, FederationCa, Frame, NodeId, NodeIdentity, ResearcherClient};
use seh_protocol::federation::Federation;
use seh_protocol::spec::SignedStudy;

mod common;
use common::{workdir, Guard, SEH};

fn identity_key(dir: &Path) -> SigningKey {
    let hex = std::fs::read_to_string(dir.join("identity.key")).unwrap();
    SigningKey::from_bytes(&seh_protocol::hex::decode_array::<32>(hex.trim()).unwrap())
}

/// `seh keys init`, then the roster signed by the test dealer (no site nodes run here) and every
/// certificate re-issued from a CA this test holds, so it can present the researcher's.
fn federation_material(keys: &Path, ca: &FederationCa) {
    let out = Command::new(SEH).args(["keys", "init", "--dir"]).arg(keys).args(["--sites", "site-a,site-b"]).output();
    let out = out.unwrap();
    assert!(out.status.success(), "seh keys init: {}", String::from_utf8_lossy(&out.stderr));
    let file = serde_json::from_slice(&std::fs::read(keys.join("federation.json")).unwrap()).unwrap();
    let (signed, shares) = seh_protocol::setup::sign_with_dealer(file, &mut rand::rngs::OsRng).unwrap();
    std::fs::write(keys.join("federation.json"), serde_json::to_string_pretty(&signed).unwrap()).unwrap();
    for (name, share) in shares {
        let hex = seh_protocol::hex::encode(&share.to_secret_bytes().unwrap());
        std::fs::write(keys.join(name).join("frost.share"), hex).unwrap();
    }
    std::fs::write(keys.join("ca.der"), ca.cert_der()).unwrap();
    for e in std::fs::read_dir(keys).unwrap() {
        let d = e.unwrap().path();
        if d.join("name").exists() {
            let name = std::fs::read_to_string(d.join("name")).unwrap();
            let id = NodeIdentity::new(NodeId::parse(name.trim()).unwrap(), identity_key(&d));
            std::fs::write(d.join("cert.der"), ca.issue(&id).unwrap().leaf_der().unwrap()).unwrap();
        }
    }
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A running coordinator; returns it and its researcher address.
fn start_coordinator(work: &Path) -> (Guard, std::net::SocketAddr) {
    let keys = work.join("keys");
    let ready = work.join("ready.json");
    let config = work.join("coordinator.toml");
    let text = format!(
        "federation = {}\nca = {}\nidentity = {}\nsite_listen = \"127.0.0.1:0\"\nresearcher_listen = \"127.0.0.1:0\"\n\
         state_db = {}\naudit_log = {}\nready_file = {}\nround_timeout_secs = 30\nconnect_grace_secs = 30\n",
        toml_path(&keys.join("federation.json")),
        toml_path(&keys.join("ca.der")),
        toml_path(&keys.join("coordinator")),
        toml_path(&work.join("coordinator.sqlite")),
        toml_path(&work.join("coordinator.audit.jsonl")),
        toml_path(&ready),
    );
    std::fs::write(&config, text).unwrap();
    let log = std::fs::File::create(work.join("coordinator.log")).unwrap();
    let child = Command::new(SEH)
        .args(["coordinator", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let start = Instant::now();
    while !ready.exists() {
        assert!(guard.0.try_wait().unwrap().is_none(), "coordinator exited; see {}", work.display());
        assert!(start.elapsed() < Duration::from_secs(30), "coordinator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    (guard, v["researcher"].as_str().unwrap().parse().unwrap())
}

fn audit(work: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(work.join("coordinator.audit.jsonl")).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn km_study(id: &str, formula: &str) -> serde_json::Value {
    serde_json::json!({
        "study_id": id,
        "researcher": "researcher",
        "analysis": { "kind": "km", "formula": formula, "conf_type": "log" },
        "sites": ["site-a", "site-b"],
        "threshold": 2,
        "purpose": "HRESCH",
    })
}

#[test]
fn coordinator_refuses_and_audits_a_deeply_nested_formula() {
    let work = workdir("hostile-spec");
    let keys = work.join("keys");
    let ca = FederationCa::generate("test federation CA").unwrap();
    federation_material(&keys, &ca);
    let (mut coordinator, addr) = start_coordinator(&work);
    let fed = Federation::from_json(&std::fs::read(keys.join("federation.json")).unwrap()).unwrap();
    let key_r = identity_key(&keys.join("researcher"));
    let creds = ca.issue(&NodeIdentity::new(NodeId::parse("researcher").unwrap(), key_r)).unwrap();
    let tls = ClientTls::new(
        ca.cert_der(),
        Some(&creds),
        &NodeId::parse(&fed.coordinator_name).unwrap(),
        Some(fed.coordinator_key),
    )
    .unwrap();

    let deep = format!("Surv(time, status) ~ {}x{}", "(".repeat(1400), ")".repeat(1400));
    assert!(deep.len() > 2800);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (first, second) = rt.block_on(async {
        let client = seh_net::GrpcResearcherClient::connect(addr, &tls).await.unwrap();
        let mut replies = Vec::new();
        // Twice: the coordinator must still be there for the second one.
        for id in ["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"] {
            let spec = km_study(id, &deep).to_string();
            let signed = SignedStudy { spec, signature: "00".repeat(64) };
            let frame = Frame::new(id, 0, "study/submit", serde_json::to_vec(&signed).unwrap()).unwrap();
            replies.push(client.submit(frame).await.map(|_| ()).unwrap_err().to_string());
        }
        (replies.remove(0), replies.remove(0))
    });
    assert!(first.contains("formula nests deeper than 64 levels"), "{first}");
    assert!(second.contains("formula nests deeper than 64 levels"), "{second}");
    assert!(coordinator.0.try_wait().unwrap().is_none(), "the coordinator died; see {}", work.display());

    // Both refusals are audited, naming the researcher, the study and the limit.
    let start = Instant::now();
    let refused = loop {
        let refused: Vec<serde_json::Value> =
            audit(&work).into_iter().filter(|e| e.to_string().contains("\"refused\"")).collect();
        if refused.len() >= 2 || start.elapsed() > Duration::from_secs(10) {
            break refused;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused.len(), 2, "{refused:#?}");
    for (e, id) in refused.iter().zip(["0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"]) {
        let text = e.to_string();
        assert!(text.contains(id) && text.contains("researcher"), "{text}");
        assert!(text.contains("formula nests deeper than 64 levels"), "{text}");
    }
}
