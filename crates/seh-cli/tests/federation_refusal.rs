//! Admission and replay refusals by a running `seh coordinator` process.
//!
//! Federation material comes from `seh keys init`; the test then re-issues every member's mTLS
//! certificate from a CA it holds (same identity keys), so it can also mint a certificate from
//! that CA for a key that is **not** on the roster. Clients dial with seh-net's own site
//! connector; one case runs a real `seh node` with a certificate from another CA and checks that
//! the node reports the refusal and keeps retrying, and that the coordinator never admitted it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use seh_crypto::wire::{PartyId, ProtocolId, SignedEnvelope};
use seh_net::{
    ClientTls, FederationCa, Frame, GrpcSiteConnector, NetError, NodeId, NodeIdentity, SiteConnector, TlsFailure,
};
use seh_protocol::federation::Federation;
use seh_protocol::messages::{control, kind_label, seal};
use seh_protocol::spec::{Analysis, DescribeSpec, SignedStudy, StudySpec};

mod common;
use common::{workdir, Guard, SEH};

fn keys_init(dir: &Path, sites: &str) {
    let out = Command::new(SEH).args(["keys", "init", "--dir"]).arg(dir).args(["--sites", sites]).output().unwrap();
    assert!(out.status.success(), "seh keys init: {}", String::from_utf8_lossy(&out.stderr));
    sign_with_test_dealer(dir);
}

/// The sites' key ceremony needs running site nodes; this test plays the sites itself, so it signs
/// the roster with seh-protocol's test-harness dealer instead (every share made in this process).
fn sign_with_test_dealer(dir: &Path) {
    let file = serde_json::from_slice(&std::fs::read(dir.join("federation.json")).unwrap()).unwrap();
    let (signed, shares) = seh_protocol::setup::sign_with_dealer(file, &mut rand::rngs::OsRng).unwrap();
    std::fs::write(dir.join("federation.json"), serde_json::to_string_pretty(&signed).unwrap()).unwrap();
    for (name, share) in shares {
        let hex = seh_protocol::hex::encode(&share.to_secret_bytes().unwrap());
        std::fs::write(dir.join(&name).join("frost.share"), hex).unwrap();
        // Key files must be owner-only (`seh` refuses others).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let share = dir.join(&name).join("frost.share");
            std::fs::set_permissions(share, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

fn identity_key(dir: &Path) -> SigningKey {
    let hex = std::fs::read_to_string(dir.join("identity.key")).unwrap();
    SigningKey::from_bytes(&seh_protocol::hex::decode_array::<32>(hex.trim()).unwrap())
}

/// A certificate from `ca` for `name` with `key`, as (chain, PKCS#8) credentials.
fn issue(ca: &FederationCa, name: &str, key: &SigningKey) -> seh_net::TlsCredentials {
    ca.issue(&NodeIdentity::new(NodeId::parse(name).unwrap(), key.clone())).unwrap()
}

/// Replaces the CA of the federation in `keys` by `ca` and re-issues every member's certificate.
fn reissue_all(keys: &Path, ca: &FederationCa) {
    std::fs::write(keys.join("ca.der"), ca.cert_der()).unwrap();
    for e in std::fs::read_dir(keys).unwrap() {
        let d = e.unwrap().path();
        if d.join("name").exists() {
            let name = std::fs::read_to_string(d.join("name")).unwrap();
            let creds = issue(ca, name.trim(), &identity_key(&d));
            std::fs::write(d.join("cert.der"), creds.leaf_der().unwrap()).unwrap();
        }
    }
}

fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// A running coordinator of the federation in `work/keys`; returns it and its site address.
fn start_coordinator(work: &Path) -> (Guard, std::net::SocketAddr) {
    let keys = work.join("keys");
    let ready = work.join("ready.json");
    let config = work.join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "federation = {}\nca = {}\nidentity = {}\nsite_listen = \"127.0.0.1:0\"\nresearcher_listen = \"127.0.0.1:0\"\n\
             state_db = {}\naudit_log = {}\nready_file = {}\nround_timeout_secs = 30\nconnect_grace_secs = 30\n",
            toml_path(&keys.join("federation.json")),
            toml_path(&keys.join("ca.der")),
            toml_path(&keys.join("coordinator")),
            toml_path(&work.join("coordinator.sqlite")),
            toml_path(&work.join("coordinator.audit.jsonl")),
            toml_path(&ready),
        ),
    )
    .unwrap();
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
    (guard, v["site"].as_str().unwrap().parse().unwrap())
}

fn federation(keys: &Path) -> Federation {
    Federation::from_json(&std::fs::read(keys.join("federation.json")).unwrap()).unwrap()
}

/// Client TLS that trusts the federation's CA and pins its coordinator, presenting `creds`.
fn client_tls(keys: &Path, creds: Option<&seh_net::TlsCredentials>) -> ClientTls {
    let fed = federation(keys);
    let ca = std::fs::read(keys.join("ca.der")).unwrap();
    ClientTls::new(&ca, creds, &NodeId::parse(&fed.coordinator_name).unwrap(), Some(fed.coordinator_key)).unwrap()
}

fn connector(keys: &Path, addr: std::net::SocketAddr, tls: ClientTls) -> GrpcSiteConnector {
    let fed = federation(keys);
    GrpcSiteConnector::new(addr, tls, NodeId::parse(&fed.coordinator_name).unwrap(), fed.coordinator_key)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The coordinator's audit log entries (JSON lines).
fn audit(work: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(work.join("coordinator.audit.jsonl")).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn connected_sites(work: &Path) -> Vec<String> {
    audit(work).iter().filter(|e| e.to_string().contains("site connected")).map(|e| e.to_string()).collect()
}

/// Opens a session and proves it is live: an admitted site's stream stays open (the coordinator
/// never sends unprompted), a refused one ends with an error.
async fn try_open(c: &GrpcSiteConnector) -> Result<seh_net::Session, NetError> {
    let mut s = c.open().await?;
    match tokio::time::timeout(Duration::from_millis(500), s.stream.recv()).await {
        Err(_) => Ok(s),
        Ok(Some(Err(e))) => Err(e),
        Ok(_) => Err(NetError::Rpc { code: "closed".into(), message: "stream ended".into() }),
    }
}

#[test]
fn coordinator_refuses_peers_without_valid_admission() {
    let work = workdir("refusal-admission");
    let keys = work.join("keys");
    keys_init(&keys, "site-a,site-b,site-c");
    let ca = FederationCa::generate("test federation CA").unwrap();
    reissue_all(&keys, &ca);
    // A second federation: its own CA, its own keys, the same names.
    let other = work.join("other");
    keys_init(&other, "site-a,site-b,site-c");
    let (_coordinator, addr) = start_coordinator(&work);
    let rt = rt();

    // 1. No client certificate. TLS 1.3 reports the rejected client certificate as an alert
    // after the client's side of the handshake; the client names it.
    let err = rt.block_on(try_open(&connector(&keys, addr, client_tls(&keys, None)))).unwrap_err();
    assert!(matches!(err, NetError::Tls(TlsFailure::NoClientCertificate)), "no certificate: {err}");

    // 2. A certificate from the other federation's CA (for its own site-a key).
    let other_a = seh_net::TlsCredentials::from_der(
        vec![std::fs::read(other.join("site-a/cert.der")).unwrap()],
        pkcs8(&identity_key(&other.join("site-a"))),
    );
    let err = rt.block_on(try_open(&connector(&keys, addr, client_tls(&keys, Some(&other_a))))).unwrap_err();
    assert!(matches!(err, NetError::Tls(TlsFailure::UnknownIssuer)), "other CA: {err}");

    // 3. A certificate from the federation's own CA, for a key that is not on the roster, under
    //    a roster name and under a new name.
    for name in ["site-a", "site-z"] {
        let rogue = issue(&ca, name, &SigningKey::from_bytes(&[7u8; 32]));
        let err = rt.block_on(try_open(&connector(&keys, addr, client_tls(&keys, Some(&rogue))))).unwrap_err();
        assert!(matches!(err, NetError::Tls(TlsFailure::NotAdmitted { .. })), "off roster ({name}): {err}");
    }

    // 4. On the roster, but a researcher may not use the site link.
    let researcher = issue(&ca, "researcher", &identity_key(&keys.join("researcher")));
    let err = rt.block_on(try_open(&connector(&keys, addr, client_tls(&keys, Some(&researcher))))).unwrap_err();
    assert!(err.to_string().contains("PermissionDenied") || err.to_string().contains("role"), "researcher: {err}");

    // 5. A real `seh node` holding site-a's key but a certificate from another CA: it reports
    //    that it cannot reach the coordinator and keeps retrying.
    let node_dir = work.join("node-a");
    std::fs::create_dir_all(&node_dir).unwrap();
    for f in ["name", "identity.key", "frost.share"] {
        std::fs::copy(keys.join("site-a").join(f), node_dir.join(f)).unwrap();
    }
    let foreign = FederationCa::generate("foreign CA").unwrap();
    let creds = issue(&foreign, "site-a", &identity_key(&keys.join("site-a")));
    std::fs::write(node_dir.join("cert.der"), creds.leaf_der().unwrap()).unwrap();
    let data = work.join("site-a.csv");
    std::fs::write(&data, "x\n1\n2\n3\n").unwrap();
    let researcher_hex = seh_protocol::hex::encode(identity_key(&keys.join("researcher")).verifying_key().as_bytes());
    let node_toml = work.join("node-a.toml");
    std::fs::write(
        &node_toml,
        format!(
            "federation = {}\nca = {}\nidentity = {}\ncoordinator_ready_file = {}\ndata = {}\naudit_log = {}\n\
             state_file = {}\n\n[policy]\nallowed_researchers = [\"{researcher_hex}\"]\nallowed_analyses = [\"describe\"]\nmin_cell_count = 3\n",
            toml_path(&keys.join("federation.json")),
            toml_path(&keys.join("ca.der")),
            toml_path(&node_dir),
            toml_path(&work.join("ready.json")),
            toml_path(&data),
            toml_path(&work.join("node-a.audit.jsonl")),
            toml_path(&work.join("node-a.reveals.json")),
        ),
    )
    .unwrap();
    let node_log = work.join("node-a.log");
    let log = std::fs::File::create(&node_log).unwrap();
    let mut node = Guard(
        Command::new(SEH)
            .args(["node", "--config"])
            .arg(&node_toml)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let reported = loop {
        let text = std::fs::read_to_string(&node_log).unwrap_or_default();
        if text.matches("cannot reach the coordinator").count() >= 2 {
            break text;
        }
        assert!(node.0.try_wait().unwrap().is_none(), "node exited: {text}");
        assert!(start.elapsed() < Duration::from_secs(30), "node did not report the refusal: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The node says why: the coordinator does not trust its certificate's issuer.
    assert!(reported.contains("not issued by the federation CA"), "{reported}");
    drop(node);

    // Every refusal is in the coordinator's audit log, with the listener and reason.
    let refusals: Vec<String> =
        audit(&work).iter().filter(|e| e.to_string().contains("connection refused")).map(|e| e.to_string()).collect();
    for reason in ["no client certificate", "not issued by the federation CA", "not on the federation roster", "role"] {
        assert!(refusals.iter().any(|r| r.contains(reason)), "no audited refusal with `{reason}`: {refusals:#?}");
    }

    // The coordinator admitted none of them.
    assert!(connected_sites(&work).is_empty(), "{:?}", connected_sites(&work));

    // Control: the genuine site-a is admitted with the same code path.
    let genuine = issue(&ca, "site-a", &identity_key(&keys.join("site-a")));
    let session = rt.block_on(try_open(&connector(&keys, addr, client_tls(&keys, Some(&genuine)))));
    assert!(session.is_ok(), "genuine site refused: {:?}", session.err());
    let start = Instant::now();
    while connected_sites(&work).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "genuine site not recorded as connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(connected_sites(&work).len(), 1);
    assert!(connected_sites(&work)[0].contains("site-a"));
}

/// PKCS#8 v1 DER of an Ed25519 key (RFC 8410).
fn pkcs8(key: &SigningKey) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(key.as_bytes());
    der
}

#[test]
fn coordinator_refuses_a_replayed_decision() {
    let work = workdir("refusal-replay");
    let keys = work.join("keys");
    keys_init(&keys, "site-a,site-b,site-c");
    let ca = FederationCa::generate("test federation CA").unwrap();
    reissue_all(&keys, &ca);
    let (_coordinator, addr) = start_coordinator(&work);
    let fed = federation(&keys);
    let ready: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("ready.json")).unwrap()).unwrap();
    let researcher_addr: std::net::SocketAddr = ready["researcher"].as_str().unwrap().parse().unwrap();
    let rt = rt();
    let text = rt.block_on(async {
        // This test plays sites a and b; b stays silent so the offer step stays open.
        let key_a = identity_key(&keys.join("site-a"));
        let tls_a = client_tls(&keys, Some(&issue(&ca, "site-a", &key_a)));
        let mut a = try_open(&connector(&keys, addr, tls_a)).await.unwrap();
        let key_b = identity_key(&keys.join("site-b"));
        let _b =
            try_open(&connector(&keys, addr, client_tls(&keys, Some(&issue(&ca, "site-b", &key_b))))).await.unwrap();

        // The researcher submits a study over the researcher API.
        let key_r = identity_key(&keys.join("researcher"));
        let spec = StudySpec {
            study_id: "0123456789abcdef0123456789abcdef".into(),
            researcher: "researcher".into(),
            analysis: Analysis::Describe(DescribeSpec { columns: vec!["x".into()], histograms: vec![] }),
            sites: vec!["site-a".into(), "site-b".into()],
            threshold: 2,
            aggregation: Default::default(),
            purpose: "HRESCH".into(),
            dp_epsilon: None,
            dp_delta: None,
        };
        let signed = SignedStudy::sign(&spec, &key_r).unwrap();
        let tls_r = client_tls(&keys, Some(&issue(&ca, "researcher", &key_r)));
        let client = seh_net::GrpcResearcherClient::connect(researcher_addr, &tls_r).await.unwrap();
        let submit = Frame::new(&spec.study_id, 0, "study/submit", serde_json::to_vec(&signed).unwrap()).unwrap();
        seh_net::ResearcherClient::submit(&client, submit).await.unwrap();

        // site-a receives the offer and accepts, then the same signed bytes arrive again.
        let offer = tokio::time::timeout(Duration::from_secs(30), a.stream.recv()).await.unwrap().unwrap().unwrap();
        let env = SignedEnvelope::decode(offer.payload()).unwrap();
        let session = env.unverified().session;
        let party_a = fed.site_by_name("site-a").unwrap().party;
        // The decision as JSON (fields added later take their defaults).
        let decision = serde_json::json!({ "accept": true, "reason": "", "min_cell_count": 3 });
        let bytes = seal(
            &key_a,
            ProtocolId::Control,
            control::DECISION,
            party_a,
            PartyId::COORDINATOR,
            session,
            serde_json::to_vec(&decision).unwrap(),
        )
        .unwrap();
        let kind = kind_label(ProtocolId::Control, control::DECISION);
        for _ in 0..2 {
            let f = Frame::new(offer.study_id(), offer.round(), &kind, bytes.clone()).unwrap();
            a.sink.send(f).await.unwrap();
        }
        // Keep the sessions open (this runtime drives them) until the coordinator has logged.
        let start = Instant::now();
        loop {
            let text: Vec<String> = audit(&work).iter().map(|e| e.to_string()).collect();
            if text.iter().any(|l| l.contains("rejected message from site-a")) {
                break text;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "no rejection recorded: {text:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let rejected: Vec<&String> = text.iter().filter(|l| l.contains("rejected message from site-a")).collect();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].contains("replay"), "{}", rejected[0]);
    assert_eq!(text.iter().filter(|l| l.contains("site-a accepted")).count(), 1, "{text:#?}");
}
