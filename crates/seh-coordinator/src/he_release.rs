//! Release from the encrypted store, later (`seh study release`): a researcher asks for a stored
//! encrypted round of one of their `he` studies; the coordinator re-adds the stored ciphertexts
//! and runs [`seh_protocol::he_release::Release`] with the study's key holders that are online —
//! any `t` suffice, each decides by its policy and charges its decryption budget — then finishes
//! the sum as the live release does (disclosure control with the sites' minimum cell count).
//!
//! A release is queued in the store (`he_releases`) under the id `release-<seq>` and run by the
//! coordinator's main loop between studies (it uses the same site links), so a restarted
//! coordinator resumes queued releases. The researcher polls `status` and fetches `result` with
//! that id through the ordinary researcher API; the submission is an ordinary `submit` call whose
//! frame kind is [`SUBMIT_KIND`].
//!
//! **Key switch to the researcher** (`ReleaseRequest::to_key`): the holders send flooded
//! key-switching shares instead of decryption shares and the coordinator combines them into a
//! ciphertext under the researcher's BFV public key; that ciphertext (never a plaintext) is what
//! it stores and returns ([`SwitchedFromStore`], frame kind [`SWITCHED_KIND`]). The researcher's
//! client decrypts it and applies the minimum cell count the coordinator reports.
//!
//! Either result carries the holders' FROST co-signature on a release document
//! ([`seh_protocol::he_cosign`]); the researcher's client verifies it before printing.

use std::sync::{Arc, Mutex};

use seh_audit::EntryKind;
use seh_crypto::he::ResearcherPublicKey;
use seh_crypto::wire::{PartyId, SessionId};
use seh_net::{Frame, NetError, NodeId, PeerInfo, RefusalReason, StudyStatus};
use seh_protocol::coordinator::{Action, Outbound};
use seh_protocol::he_cosign::SignedStoreResult;
use seh_protocol::he_release::{Release, ReleaseInputs, ReleaseStep};
use seh_protocol::he_request::SignedStoreRelease;
use seh_protocol::hex;
use seh_protocol::spec::{Aggregation, Analysis, SignedStudy};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::researcher::Handler;
use crate::store::{Store, StoredRelease};
use crate::{apply, lock, Audit, CoordinatorConfig, CoordinatorError, Sinks, Traffic};

/// Frame kind of a release submission (`submit` RPC).
pub const SUBMIT_KIND: &str = "he/release";
/// Frame kind of a plain release's result ([`ReleasedFromStore`]).
pub const RELEASED_KIND: &str = "he/released";
/// Frame kind of a key-switched release's result ([`SwitchedFromStore`]).
pub const SWITCHED_KIND: &str = "he/switched";
const PREFIX: &str = "release-";

/// What a researcher submits: which study, and which stored round (default: the last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The study (hex id).
    pub study_id: String,
    /// The stored encrypted round (`None`: the last one stored).
    #[serde(default)]
    pub round: Option<u32>,
    /// Switch the result to this researcher BFV public key (hex of
    /// `ResearcherPublicKey::to_bytes`) instead of decrypting it at the coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_key: Option<String>,
    /// The same request signed by the researcher (study, round, key digest or `plain`, nonce);
    /// the coordinator checks it matches and forwards it to the sites, which check it again.
    pub signed: SignedStoreRelease,
}

/// The result a done key-switched release returns (`result` RPC, frame kind [`SWITCHED_KIND`]):
/// the released sum as a ciphertext only the researcher's secret key decrypts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchedFromStore {
    /// The study.
    pub study_id: String,
    /// The stored round released.
    pub round: u32,
    /// The signed study (the researcher checks its own signature and finishes the result with it).
    pub study: SignedStudy,
    /// Digest (hex, `ResearcherPublicKey::digest`) of the key the sum was switched to.
    pub researcher_key: String,
    /// `HeVector::to_bytes` (hex) of the sum under the researcher's key.
    pub ciphertext: String,
    /// The sites whose ciphertexts were summed.
    pub contributors: Vec<String>,
    /// The key holders whose key-switching shares made it.
    pub decryptors: Vec<String>,
    /// Holders that refused, with their reasons.
    pub refusals: Vec<(String, String)>,
    /// The sites' minimum cell count: the researcher's client applies it after decrypting.
    pub min_cell_count: u64,
    /// The holders' FROST co-signature on the release document (which names the digest of
    /// `ciphertext`, never a plaintext); the researcher verifies it with the group key.
    pub signed: SignedStoreResult,
}

enum Outcome {
    Plain(ReleasedFromStore),
    Switched(SwitchedFromStore),
}

impl Outcome {
    fn decryptors(&self) -> &[String] {
        match self {
            Outcome::Plain(r) => &r.decryptors,
            Outcome::Switched(r) => &r.decryptors,
        }
    }
    fn signers(&self) -> &[String] {
        match self {
            Outcome::Plain(r) => &r.signed.signers,
            Outcome::Switched(r) => &r.signed.signers,
        }
    }
    fn to_json(&self) -> String {
        match self {
            Outcome::Plain(r) => serde_json::to_string(r),
            Outcome::Switched(r) => serde_json::to_string(r),
        }
        .unwrap_or_default()
    }
}

/// The result a done release returns (`result` RPC, frame kind `he/released`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleasedFromStore {
    /// The study.
    pub study_id: String,
    /// The stored round released.
    pub round: u32,
    /// The finished descriptive result (minimum cell count applied).
    pub result: seh_protocol::describe::DescribeResult,
    /// The sites whose ciphertexts were summed.
    pub contributors: Vec<String>,
    /// The key holders whose decryption shares released it.
    pub decryptors: Vec<String>,
    /// Holders that refused, with their reasons.
    pub refusals: Vec<(String, String)>,
    /// Minimum cell count applied.
    pub min_cell_count: u64,
    /// The holders' FROST co-signature on the release document (which carries `result`); the
    /// researcher verifies it with the group key.
    pub signed: SignedStoreResult,
}

/// The sequence number of a release id (`release-<seq>`), or `None` for a study id.
pub fn parse_id(id: &str) -> Option<i64> {
    id.strip_prefix(PREFIX)?.parse().ok()
}

fn refused(reason: String) -> NetError {
    NetError::Refused(RefusalReason::Handshake(reason))
}

fn not_found(id: &str) -> NetError {
    NetError::Rpc { code: "NotFound".into(), message: format!("no release {id} for this researcher") }
}

fn internal(e: CoordinatorError) -> NetError {
    NetError::Rpc { code: "Internal".into(), message: e.to_string() }
}

/// Handles a release submission: checks that the researcher owns the study, that it is a
/// descriptive `he` study with a stored encrypted round under a recorded key, queues the release
/// and returns its id.
pub(crate) fn submit(h: &Handler, researcher: &PeerInfo, request: &Frame) -> Result<String, NetError> {
    let req: ReleaseRequest =
        serde_json::from_slice(request.payload()).map_err(|e| refused(format!("release request: {e}")))?;
    let stored = h.owned(researcher, &req.study_id)?;
    let spec = stored.study.unverified_spec().map_err(|e| internal(e.into()))?;
    if spec.aggregation != Aggregation::He || !matches!(spec.analysis, Analysis::Describe(_)) {
        return Err(refused("only descriptive studies run with `--aggregation he` are released from the store".into()));
    }
    let store = lock(&h.store);
    let rounds = store.ciphertext_rounds(&req.study_id).map_err(internal)?;
    let round = match req.round {
        Some(r) if rounds.contains(&r) => r,
        Some(r) => return Err(refused(format!("study {} has no stored encrypted round {r}", req.study_id))),
        None => {
            *rounds.last().ok_or_else(|| refused(format!("study {} has no stored encrypted round", req.study_id)))?
        }
    };
    if store.round_key(&req.study_id, round).map_err(internal)?.is_none() {
        return Err(refused(format!("round {round} was stored without its key digest")));
    }
    drop(store);
    let target = match &req.to_key {
        None => None,
        Some(text) => {
            let bytes = hex::decode(text).ok_or_else(|| refused("release request: `to_key` is not hex".into()))?;
            let ctx = seh_protocol::he_site::context().map_err(|e| internal(e.into()))?;
            let key = ResearcherPublicKey::from_bytes(&ctx, &bytes)
                .map_err(|e| refused(format!("release request: researcher public key: {e}")))?;
            Some((bytes, hex::encode(&key.digest(&ctx))))
        }
    };
    // The researcher's signature over exactly this request (the sites check it again).
    let signed = req.signed.verify_in(&h.fed).map_err(|e| refused(format!("release request: {e}")))?;
    if signed.researcher != researcher.id.as_str() || signed.researcher != spec.researcher {
        return Err(refused("release request: signed by another researcher".into()));
    }
    if signed.study_id != req.study_id || signed.round != req.round {
        return Err(refused("release request: the signed study or round differs from the request".into()));
    }
    if signed.target() != target.as_ref().map(|(_, d)| d.as_str()) {
        return Err(refused("release request: the signed key digest differs from `to_key`".into()));
    }
    let request = serde_json::to_string(&req.signed).map_err(|e| refused(format!("release request: {e}")))?;
    let seq = lock(&h.store)
        .queue_release(&req.study_id, round, target.as_ref().map(|(b, _)| b.as_slice()), &request)
        .map_err(internal)?;
    let id = format!("{PREFIX}{seq}");
    h.audit.record(
        EntryKind::Request,
        json!({ "study": req.study_id, "researcher": spec.researcher, "what": "release from the encrypted store", "release": id, "stored_round": round, "to_researcher_key": target.map(|(_, d)| d) }),
    );
    let _ = h.queue.send(id.clone());
    Ok(id)
}

fn owned_release(h: &Handler, researcher: &PeerInfo, id: &str) -> Result<StoredRelease, NetError> {
    let seq = parse_id(id).ok_or_else(|| not_found(id))?;
    let r = lock(&h.store).release(seq).map_err(internal)?.ok_or_else(|| not_found(id))?;
    h.owned(researcher, &r.study_id).map_err(|_| not_found(id))?;
    Ok(r)
}

/// Status of a release (`queued`, `running`, `done`, `failed` with the reason).
pub(crate) fn status(h: &Handler, researcher: &PeerInfo, id: &str) -> Result<StudyStatus, NetError> {
    let r = owned_release(h, researcher, id)?;
    let detail = match r.state.as_str() {
        "failed" => json!({ "phase": "failed", "failure": r.detail, "study": r.study_id, "stored_round": r.round }),
        s => json!({ "phase": s, "study": r.study_id, "stored_round": r.round }),
    };
    Ok(StudyStatus {
        study_id: id.to_owned(),
        state: r.state.clone(),
        round: u64::from(r.session_round.unwrap_or(0)),
        detail: detail.to_string(),
    })
}

/// The result of a done release ([`ReleasedFromStore`] JSON).
pub(crate) fn result(h: &Handler, researcher: &PeerInfo, id: &str) -> Result<Frame, NetError> {
    let r = owned_release(h, researcher, id)?;
    if r.state != "done" {
        return Err(NetError::Rpc { code: "NotFound".into(), message: format!("release {id} is {}", r.state) });
    }
    let kind = if r.target.is_some() { SWITCHED_KIND } else { RELEASED_KIND };
    Frame::new(id, u64::from(r.round), kind, r.detail.into_bytes())
}

/// Release ids queued or running when the coordinator stopped (resumed at start-up).
pub(crate) fn pending(store: &Arc<Mutex<Store>>) -> Result<Vec<String>, CoordinatorError> {
    Ok(lock(store).pending_releases()?.into_iter().map(|s| format!("{PREFIX}{s}")).collect())
}

/// Runs release `seq` to its end over the site links; records the result or the failure.
pub(crate) async fn drive(
    config: &CoordinatorConfig,
    store: &Arc<Mutex<Store>>,
    audit: &Audit,
    sinks: &Sinks,
    inbound: &mut mpsc::Receiver<(NodeId, seh_net::Frame)>,
    seq: i64,
) -> Result<(), CoordinatorError> {
    let Some(rel) = lock(store).release(seq)? else { return Ok(()) };
    let id = format!("{PREFIX}{seq}");
    let outcome = run_release(config, store, audit, sinks, inbound, &rel).await;
    let (state, detail) = match &outcome {
        Ok(done) => ("done", done.to_json()),
        Err(e) => ("failed", e.to_string()),
    };
    lock(store).set_release(seq, state, None, &detail)?;
    match outcome {
        Ok(done) => {
            let what = match &done {
                Outcome::Plain(_) => "released from the encrypted store",
                Outcome::Switched(_) => "released from the encrypted store, key-switched to the researcher's key",
            };
            audit.record(
                EntryKind::Release,
                json!({ "study": rel.study_id, "what": what, "release": id, "stored_round": rel.round, "decryptors": done.decryptors(), "co_signed_by": done.signers() }),
            )
        }
        Err(e) => audit.record(
            EntryKind::System,
            json!({ "study": rel.study_id, "event": "release from the encrypted store failed", "release": id, "reason": e.to_string() }),
        ),
    }
    Ok(())
}

async fn run_release(
    config: &CoordinatorConfig,
    store: &Arc<Mutex<Store>>,
    audit: &Audit,
    sinks: &Sinks,
    inbound: &mut mpsc::Receiver<(NodeId, seh_net::Frame)>,
    rel: &StoredRelease,
) -> Result<Outcome, CoordinatorError> {
    let fed = config.federation.clone();
    let missing = |what: &str| CoordinatorError::Store(format!("release of study {}: {what}", rel.study_id));
    let target = match &rel.target {
        None => None,
        Some(bytes) => {
            let ctx = seh_protocol::he_site::context()?;
            let key = ResearcherPublicKey::from_bytes(&ctx, bytes)
                .map_err(|e| missing(&format!("stored researcher public key: {e}")))?;
            Some(key)
        }
    };
    let request: SignedStoreRelease = rel
        .request
        .as_deref()
        .ok_or_else(|| missing("queued without the researcher's signed request"))
        .and_then(|t| serde_json::from_str(t).map_err(|e| missing(&format!("stored signed request: {e}"))))?;
    let (stored, items, digest, last) = {
        let s = lock(store);
        let stored = s.get(&rel.study_id)?.ok_or_else(|| missing("no such study"))?;
        let items = s.ciphertexts(&rel.study_id, rel.round)?;
        let digest = s.round_key(&rel.study_id, rel.round)?.ok_or_else(|| missing("no key digest"))?;
        (stored, items, digest, s.last_release_round(&rel.study_id)?)
    };
    let cp = stored.checkpoint.clone().unwrap_or_default();
    let decided = cp.decided.as_ref().ok_or_else(|| missing("no accepting sites recorded"))?;
    let candidates: Vec<PartyId> = decided.accepted.iter().map(|p| PartyId(*p)).collect();
    let items: Vec<(PartyId, Vec<u8>)> = items.into_iter().map(|(p, b)| (PartyId(p), b)).collect();
    // A fresh session round: after every round the study and its earlier releases used.
    let round = cp.round.max(last.unwrap_or(0)).max(rel.session_round.unwrap_or(0)).saturating_add(1);
    lock(store).set_release(rel.seq, "running", Some(round), "")?;
    let spec = stored.study.unverified_spec()?;
    let session = SessionId { study: spec.id()?, round };
    let inputs = ReleaseInputs {
        study: &stored.study,
        session,
        round: rel.round,
        items: &items,
        key_digest: digest,
        candidates: &candidates,
        target: target.as_ref(),
        request: &request,
        min_cell_count: decided.min_cell_count,
    };
    let holders: Vec<NodeId> =
        candidates.iter().filter_map(|p| fed.site(*p)).filter_map(|s| NodeId::parse(&s.name).ok()).collect();
    crate::wait_for_sites(config, sinks, &holders, Some(spec.threshold as usize)).await;
    let (mut release, first) = Release::start(fed.clone(), config.key.clone(), inputs)?;
    let mut traffic = Traffic::default();
    let mut deadline = tokio::time::Instant::now() + config.round_timeout;
    let send = |out: Vec<Outbound>| out.into_iter().map(Action::Send).collect::<Vec<_>>();
    let study_id = rel.study_id.as_str();
    apply(&fed, store, audit, sinks, study_id, &mut traffic, send(first), &mut deadline, config).await?;
    loop {
        // Wait for every awaited holder, or the timeout (holders offline are not waited for long).
        while !release.waiting_for().is_empty() {
            tokio::select! {
                got = inbound.recv() => match got {
                    Some((node, frame)) => {
                        if frame.study_id() != study_id {
                            continue;
                        }
                        let Some(site) = fed.site_by_name(node.as_str()) else { continue };
                        if let Err(e) = release.receive(site.party, frame.payload()) {
                            audit.record(EntryKind::System, json!({ "study": study_id, "event": "rejected", "site": site.name, "reason": e.to_string() }));
                        }
                    }
                    None => return Err(missing("the coordinator is stopping")),
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        match release.close()? {
            ReleaseStep::Send(out) => {
                deadline = tokio::time::Instant::now() + config.round_timeout;
                apply(&fed, store, audit, sinks, study_id, &mut traffic, send(out), &mut deadline, config).await?;
            }
            ReleaseStep::Switched { ciphertext, decryptors, signed } => {
                let ctx = seh_protocol::he_site::context()?;
                let name = |p: &PartyId| fed.site(*p).map_or_else(|| p.to_string(), |s| s.name.clone());
                return Ok(Outcome::Switched(SwitchedFromStore {
                    study_id: rel.study_id.clone(),
                    round: rel.round,
                    study: stored.study.clone(),
                    researcher_key: target.as_ref().map(|k| hex::encode(&k.digest(&ctx))).unwrap_or_default(),
                    ciphertext: hex::encode(&ciphertext),
                    contributors: items.iter().map(|(p, _)| name(p)).collect(),
                    decryptors: decryptors.iter().map(name).collect(),
                    refusals: release.refusals().iter().map(|(p, r)| (name(p), r.clone())).collect(),
                    min_cell_count: decided.min_cell_count,
                    signed,
                }));
            }
            ReleaseStep::Done { result, decryptors, signed, .. } => {
                let name = |p: &PartyId| fed.site(*p).map_or_else(|| p.to_string(), |s| s.name.clone());
                return Ok(Outcome::Plain(ReleasedFromStore {
                    study_id: rel.study_id.clone(),
                    round: rel.round,
                    result,
                    contributors: items.iter().map(|(p, _)| name(p)).collect(),
                    decryptors: decryptors.iter().map(name).collect(),
                    refusals: release.refusals().iter().map(|(p, r)| (name(p), r.clone())).collect(),
                    min_cell_count: decided.min_cell_count,
                    signed,
                }));
            }
        }
    }
}
