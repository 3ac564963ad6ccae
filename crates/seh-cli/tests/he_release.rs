//! Release from the coordinator's encrypted store, later, over separate OS processes: a
//! descriptive study runs with `--aggregation he` (`seh federate describe --workdir`, 5 sites,
//! t = 3); then the coordinator is started again on its SQLite store with only three of the five
//! nodes (two stay offline), and
//! * `seh study release` gives the live result, decrypted by three holders;
//! * `seh study he-keygen` + `seh study release --to-key … --key …` gives the same result, key-
//!   switched by three holders to the researcher's key and decrypted locally; the coordinator's
//!   store holds only the ciphertext for it; the sites audited the key's digest and the
//!   researcher's signed request; both results are co-signed by the three online holders and
//!   the client says so after verifying the signature;
//! * a secret key that is not the public key's, or that others may read, is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use seh_coordinator::he_release::SwitchedFromStore;
use seh_coordinator::store::Store;
use serde_json::Value;

mod common;
use common::{workdir, Guard, SEH};

/// 5 sites × 40 rows.
fn write_data(dir: &Path) -> PathBuf {
    let mut text = String::from("site,x,y\n");
    for i in 0..200usize {
        let x = (i * 37 % 101) as f64 / 3.0;
        let y = if i % 13 == 0 { String::new() } else { format!("{}", (i as f64).sqrt()) };
        text.push_str(&format!("{},{x},{y}\n", i % 5 + 1));
    }
    let p = dir.join("input.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn seh(args: &[&str]) -> Output {
    Command::new(SEH).args(args).output().unwrap()
}

fn ok_json(args: &[&str]) -> Value {
    let out = seh(args);
    assert!(out.status.success(), "seh {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = seh(args);
    assert!(!out.status.success(), "seh {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn spawn(args: &[&str], log: &Path) -> Guard {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Guard(Command::new(SEH).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_stored_round_is_released_later_plain_and_key_switched_with_two_of_five_nodes_offline() {
    let work = workdir("he-release");
    let input = write_data(&work);
    let fed = work.join("fed");
    let live = ok_json(&[
        "federate",
        "describe",
        "--data",
        &s(&input),
        "--split-by",
        "site",
        "--columns",
        "x,y",
        "--histogram",
        "x:0:40:4",
        "--threshold",
        "3",
        "--min-cell-count",
        "2",
        "--aggregation",
        "he",
        "--round-timeout",
        "2",
        "--format",
        "json",
        "--workdir",
        &s(&fed),
    ]);
    let study = live["study_id"].as_str().unwrap().to_owned();
    assert_eq!(live["contributors"].as_array().unwrap().len(), 5);

    // The coordinator again, on its store, and three of the five nodes (sites 1 and 3 offline).
    let ready = fed.join("state/coordinator.ready.json");
    let _ = std::fs::remove_file(&ready);
    let mut coordinator =
        spawn(&["coordinator", "--config", &s(&fed.join("config/coordinator.toml"))], &work.join("coordinator.log"));
    let start = Instant::now();
    while !ready.exists() {
        assert!(coordinator.0.try_wait().unwrap().is_none(), "the coordinator exited; see coordinator.log");
        assert!(start.elapsed() < Duration::from_secs(30), "the coordinator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _nodes: Vec<Guard> = ["site-2", "site-4", "site-5"]
        .iter()
        .map(|n| {
            let config = fed.join(format!("config/{n}.toml"));
            spawn(&["node", "--config", &s(&config)], &work.join(format!("{n}.log")))
        })
        .collect();
    let researcher = s(&fed.join("config/researcher.toml"));
    let release = |extra: &[&str]| {
        let mut args = vec!["study", "release", "--config", &researcher, "--study", &study, "--format", "json"];
        args.extend_from_slice(&["--timeout", "120"]);
        args.extend_from_slice(extra);
        ok_json(&args)
    };
    let online = ["site-2", "site-4", "site-5"];

    // Plain: decrypted by the three online holders, the live numbers.
    let plain = release(&[]);
    assert_eq!(plain["result"], live["result"], "{plain:#}");
    let decryptors: Vec<&str> = plain["decryptors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(decryptors, online);
    // Co-signed by the online holders (FROST, verified by the client under the group key).
    let signers = plain["signed_by_the_sites"].as_array().unwrap();
    assert_eq!(signers.len(), 3, "{plain:#}");
    let text = seh(&["study", "release", "--config", &researcher, "--study", &study, "--timeout", "120"]);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("signed by the sites: site-2, site-4, site-5"), "{text}");

    // The researcher's key pair: the secret file is 0600; files are never overwritten.
    let keys = work.join("rk");
    let out = seh(&["study", "he-keygen", "--out", &s(&keys)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let digest = said.trim().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(digest.len(), 64, "{said}");
    let (public, secret) = (keys.join("researcher-he.pub"), keys.join("researcher-he.key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(fails(&["study", "he-keygen", "--out", &s(&keys)]).contains("exists already"));

    // Key-switched: the same numbers, decrypted here; the coordinator kept only ciphertext.
    let switched = release(&["--to-key", &s(&public), "--key", &s(&secret)]);
    assert_eq!(switched["result"], live["result"], "{switched:#}");
    assert_eq!(switched["decrypted_locally"], true);
    assert_eq!(switched["researcher_key"], digest.as_str());
    assert_eq!(switched["signed_by_the_sites"].as_array().unwrap().len(), 3, "{switched:#}");
    let decryptors: Vec<&str> =
        switched["decryptors"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(decryptors, online);
    let store = Store::open(&fed.join("state/coordinator.sqlite")).unwrap();
    let row = store.release(3).unwrap().unwrap();
    assert_eq!(row.state, "done");
    assert!(row.target.is_some());
    // The researcher's signed request was kept with the release and names the key's digest.
    let request: seh_protocol::he_request::SignedStoreRelease =
        serde_json::from_str(row.request.as_deref().unwrap()).unwrap();
    assert_eq!(request.unverified().unwrap().to_key, digest);
    let kept: SwitchedFromStore = serde_json::from_str(&row.detail).unwrap();
    assert_eq!(kept.researcher_key, digest);
    assert!(!row.detail.contains("\"result\"") && !row.detail.contains("\"mean\""));
    // The co-signed document names the ciphertext's digest, not a plaintext.
    assert_eq!(kept.signed.signers.len(), 3);
    assert!(!kept.signed.document.contains("\"mean\""));
    let ctx = seh_protocol::he_site::context().unwrap();
    let ct = seh_protocol::hex::decode(&kept.ciphertext).unwrap();
    assert!(seh_crypto::he::HeVector::from_bytes(&ctx, &ct, None).is_ok());
    for column in live["result"]["columns"].as_array().unwrap() {
        let mean = column["mean"].as_f64().unwrap();
        assert!(!row.detail.contains(&format!("{mean}")), "a released mean in the coordinator's store");
    }
    // Each online site audited the decision with the key's digest, and its key-switching share.
    for n in online {
        let log = std::fs::read_to_string(fed.join(format!("state/{n}.audit.jsonl"))).unwrap();
        assert!(log.contains(&digest) && log.contains("key-switching share"), "{n}");
        assert!(log.contains(&request.digest()), "{n}: the signed request is audited");
    }

    // Refused locally, before anything is sent: a secret key of another pair, a readable key.
    let other = work.join("rk2");
    assert!(seh(&["study", "he-keygen", "--out", &s(&other)]).status.success());
    let wrong = other.join("researcher-he.key");
    let base = ["study", "release", "--config", &researcher, "--study", &study, "--to-key", &s(&public)];
    let e = fails(&[&base[..], &["--key", &s(&wrong)]].concat());
    assert!(e.contains("is not the secret key of"), "{e}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = fails(&[&base[..], &["--key", &s(&wrong)]].concat());
        assert!(e.contains("owner only"), "{e}");
    }
    let e = fails(&["study", "release", "--config", &researcher, "--study", &study, "--to-key", &s(&public)]);
    assert!(e.contains("--key"), "{e}");
    drop(coordinator);
    let _ = std::fs::remove_dir_all(&work);
}
