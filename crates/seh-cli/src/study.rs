//! `seh study run|status|result|release|he-keygen`: the researcher's client (see
//! `examples/researcher.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use rand::RngCore;
use seh_net::{ClientTls, Frame, GrpcResearcherClient, NodeId, ResearcherClient, StudyStatus};
use seh_protocol::describe::DescribeResult;
use seh_protocol::federation::Federation;
use seh_protocol::hex;
use seh_protocol::release::{ReleaseDocument, SignedRelease};
use seh_protocol::spec::{Analysis, DescribeSpec, HistogramSpec, SignedStudy, StudySpec};
use serde::Deserialize;

use crate::coordinator_cmd::{read_ready, read_toml, resolve, runtime};
use crate::keys::{load_federation, load_identity, Identity};

/// Options of a descriptive analysis (shared by `seh study run describe` and `seh federate describe`).
#[derive(Debug, Args, Clone)]
pub struct DescribeOpts {
    /// Numeric columns, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub columns: Vec<String>,
    /// Histogram on a public grid, `column:lo:hi:bins` (repeatable).
    #[arg(long = "histogram")]
    pub histograms: Vec<String>,
    /// Secure-aggregation threshold t (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<u32>,
}

impl DescribeOpts {
    /// The validated analysis.
    pub fn spec(&self) -> Result<DescribeSpec> {
        let mut histograms = Vec::new();
        for h in &self.histograms {
            let parts: Vec<&str> = h.split(':').collect();
            let [column, lo, hi, bins] = parts.as_slice() else {
                bail!("--histogram `{h}`: expected column:lo:hi:bins");
            };
            histograms.push(HistogramSpec {
                column: (*column).to_owned(),
                lo: lo.parse().with_context(|| format!("--histogram `{h}`: lo"))?,
                hi: hi.parse().with_context(|| format!("--histogram `{h}`: hi"))?,
                bins: bins.parse().with_context(|| format!("--histogram `{h}`: bins"))?,
            });
        }
        Ok(DescribeSpec { columns: self.columns.clone(), histograms })
    }
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table.
    Text,
    /// JSON.
    Json,
}

/// The researcher's TOML configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResearcherToml {
    /// `federation.json`.
    pub federation: PathBuf,
    /// CA certificate (`seh keys init`); leave it out for a federation whose parties made
    /// their own keys (`seh keys gen`): the roster's coordinator key is then the anchor.
    pub ca: Option<PathBuf>,
    /// Researcher identity directory.
    pub identity: PathBuf,
    /// Coordinator researcher-API address, or …
    pub coordinator: Option<SocketAddr>,
    /// … the coordinator's ready file.
    pub coordinator_ready_file: Option<PathBuf>,
}

/// `seh study …`.
#[derive(Debug, Subcommand)]
pub enum StudyCommand {
    /// Submit a study and (unless --no-wait) print its verified result.
    ///
    /// Every analysis of `seh federate`, with the same flags and output
    /// [possible values: describe, cox, km, glm].
    Run(crate::study_run::RunArgs),
    /// Print a study's status.
    Status(IdArgs),
    /// Fetch a study's release, verify its threshold signature and print it.
    Result(IdArgs),
    /// Release a stored encrypted round of an `--aggregation he` study again, later: the
    /// coordinator re-adds the stored ciphertexts and any t key-holding sites that are online
    /// decrypt it (each site's policy decides and charges its decryption budget). With `--to-key` the
    /// sites key-switch the result to the researcher's own key instead, and it is decrypted here.
    Release(ReleaseArgs),
    /// Make the researcher's own BFV key pair for key-switched releases (`researcher-he.pub`,
    /// `researcher-he.key` with mode 0600).
    HeKeygen(crate::he_key_cmd::HeKeygenArgs),
}

/// `seh study release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Researcher configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Study id (a descriptive study run with `--aggregation he`).
    #[arg(long)]
    pub study: String,
    /// The stored encrypted round (default: the last one stored).
    #[arg(long)]
    pub round: Option<u32>,
    /// Key-switch the result to this researcher public key (`researcher-he.pub` from `seh study
    /// he-keygen`): the coordinator only ever holds ciphertext; it is decrypted here with `--key`.
    #[arg(long, requires = "key")]
    pub to_key: Option<PathBuf>,
    /// The researcher secret key (`researcher-he.key`) that decrypts a `--to-key` release.
    #[arg(long, requires = "to_key")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for the release.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// `seh study status|result`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// Researcher configuration (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Study id.
    #[arg(long)]
    pub id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A researcher session: identity, federation, and how to reach the coordinator.
#[derive(Debug)]
pub struct Researcher {
    /// The federation.
    pub fed: Federation,
    /// Identity.
    pub id: Identity,
    /// The purpose of use of the studies it submits (v3-ActReason code; `None`: HRESCH).
    pub purpose: Option<String>,
    tls: ClientTls,
    addr: Option<SocketAddr>,
    ready_file: Option<PathBuf>,
}

impl Researcher {
    /// From explicit paths.
    pub fn new(
        fed: &Path,
        trust: &crate::trust::TrustSource,
        identity: &Path,
        addr: Option<SocketAddr>,
        ready: Option<PathBuf>,
    ) -> Result<Self> {
        let fed = load_federation(fed)?;
        let id = load_identity(identity)?;
        let coordinator = NodeId::parse(&fed.coordinator_name)?;
        let tls = trust.client(&id.tls, &coordinator, fed.coordinator_key)?;
        Ok(Researcher { fed, id, purpose: None, tls, addr, ready_file: ready })
    }

    /// From a researcher TOML file.
    pub fn from_config(path: &Path) -> Result<Self> {
        let c: ResearcherToml = read_toml(path)?;
        let at = |p: &Path| resolve(path, p);
        Researcher::new(
            &at(&c.federation),
            &crate::trust::TrustSource::load(path, c.ca.as_ref())?,
            &at(&c.identity),
            c.coordinator,
            c.coordinator_ready_file.map(|p| at(&p)),
        )
    }

    /// Connects to the coordinator's researcher API.
    pub async fn connect(&self) -> Result<GrpcResearcherClient> {
        let addr = match (&self.addr, &self.ready_file) {
            (Some(a), _) => *a,
            (None, Some(p)) => read_ready(p)?.1,
            (None, None) => bail!("no coordinator address configured"),
        };
        Ok(GrpcResearcherClient::connect(addr, &self.tls).await?)
    }

    /// [`Researcher::connect`], retried for up to `limit` while the coordinator is not reachable
    /// yet (just started, or restarting); then the last error, naming the address.
    pub async fn connect_retrying(&self, limit: Duration) -> Result<GrpcResearcherClient> {
        let start = Instant::now();
        let mut said = false;
        loop {
            match self.connect().await {
                Ok(c) => return Ok(c),
                Err(e) if start.elapsed() < limit => {
                    if !said {
                        eprintln!("seh study: the coordinator is not reachable yet ({e:#}); retrying");
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e.context(format!("the coordinator did not answer within {limit:?}"))),
            }
        }
    }

    /// Signs and submits a study; returns its id.
    pub async fn submit(&self, analysis: Analysis, sites: Vec<String>, threshold: Option<u32>) -> Result<String> {
        self.submit_with(analysis, sites, threshold, Default::default()).await
    }

    /// [`Researcher::submit`] with the secure-sum back-end (`secagg` or `he`).
    pub async fn submit_with(
        &self,
        analysis: Analysis,
        sites: Vec<String>,
        threshold: Option<u32>,
        aggregation: seh_protocol::spec::Aggregation,
    ) -> Result<String> {
        self.submit_full(analysis, sites, threshold, aggregation, None).await
    }

    /// [`Researcher::submit_with`] plus differential privacy: every site adds its share of noise
    /// and charges `dp_epsilon` to this researcher's budget (describe studies only).
    pub async fn submit_full(
        &self,
        analysis: Analysis,
        sites: Vec<String>,
        threshold: Option<u32>,
        aggregation: seh_protocol::spec::Aggregation,
        dp_epsilon: Option<f64>,
    ) -> Result<String> {
        let sites = if sites.is_empty() { self.fed.sites().map(|s| s.name.clone()).collect() } else { sites };
        let mut raw = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let spec = StudySpec {
            study_id: hex::encode(&raw),
            researcher: self.id.name.clone(),
            analysis,
            threshold: threshold.unwrap_or_else(|| StudySpec::default_threshold(sites.len())),
            aggregation,
            sites,
            purpose: self.purpose.clone().unwrap_or_else(|| seh_protocol::spec::DEFAULT_PURPOSE.into()),
            dp_epsilon,
            dp_delta: None,
        };
        let signed = SignedStudy::sign(&spec, &self.id.key)?;
        let frame = Frame::new(&spec.study_id, 0, "study/submit", serde_json::to_vec(&signed)?)?;
        Ok(self.connect_retrying(Duration::from_secs(15)).await?.submit(frame).await?)
    }

    /// Status (reconnecting each time, so a restarted coordinator is found again).
    pub async fn status(&self, id: &str) -> Result<StudyStatus> {
        Ok(self.connect().await?.status(id).await?)
    }

    /// Polls until the study ends or `timeout` passes; transient errors are retried.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<StudyStatus> {
        self.wait_with(id, timeout, |_, _| {}).await
    }

    /// [`Researcher::wait`], calling `progress(status, seconds)` each time the study's state or
    /// round changes (what `seh study run` prints per round).
    pub async fn wait_with(
        &self,
        id: &str,
        timeout: Duration,
        mut progress: impl FnMut(&StudyStatus, f64),
    ) -> Result<StudyStatus> {
        let start = Instant::now();
        let mut shown: Option<(String, u64)> = None;
        loop {
            match self.status(id).await {
                Ok(s) => {
                    if shown.as_ref().is_none_or(|(state, round)| *state != s.state || *round != s.round) {
                        progress(&s, start.elapsed().as_secs_f64());
                        shown = Some((s.state.clone(), s.round));
                    }
                    if matches!(s.state.as_str(), "done" | "failed" | "refused") {
                        return Ok(s);
                    }
                    if start.elapsed() >= timeout {
                        bail!("study {id} still {} after {:.0} s", s.state, timeout.as_secs_f64());
                    }
                }
                Err(e) if start.elapsed() >= timeout => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asks the coordinator to release stored encrypted round `round` (default: the last) of
    /// study `id` again; returns the release id (`release-<n>`) to wait for.
    /// `to_key`: the researcher BFV public key bytes to key-switch the result to, with its digest
    /// (hex). The request is signed with this researcher's identity key (the key that signs its
    /// studies): the sites refuse a release, or a target key, the researcher did not sign.
    /// Returns the release id and the SHA-256 of the signed request (the sites' co-signed
    /// document must name it).
    pub async fn release_stored(
        &self,
        id: &str,
        round: Option<u32>,
        to_key: Option<(&[u8], &str)>,
    ) -> Result<(String, String)> {
        let unsigned = seh_protocol::he_request::StoreReleaseRequest::new(
            id,
            &self.id.name,
            round,
            to_key.map(|(_, digest)| digest),
        );
        let signed = seh_protocol::he_request::SignedStoreRelease::sign(&unsigned, &self.id.key)
            .context("signing the release request")?;
        let req = seh_coordinator::he_release::ReleaseRequest {
            study_id: id.to_owned(),
            round,
            to_key: to_key.map(|(bytes, _)| hex::encode(bytes)),
            signed,
        };
        let digest = req.signed.digest();
        let frame = Frame::new(id, 0, seh_coordinator::he_release::SUBMIT_KIND, serde_json::to_vec(&req)?)?;
        Ok((self.connect().await?.submit(frame).await?, digest))
    }

    /// Verifies the sites' co-signature on a release from the store under the federation's group
    /// key and checks that the document names this release: the study, the stored round, the
    /// signed request `request_sha256`, the contributors, decryptors and minimum cell count.
    fn verify_store_release(
        &self,
        signed: &seh_protocol::he_cosign::SignedStoreResult,
        study_id: &str,
        round: u32,
        request_sha256: &str,
        parties: (&[String], &[String], u64),
    ) -> Result<seh_protocol::he_cosign::StoreReleaseDocument> {
        let doc = signed
            .verify(&self.fed.group_key())
            .context("the sites' signature on the release from the store does not verify")?;
        let (contributors, decryptors, min_cell_count) = parties;
        anyhow::ensure!(
            doc.study_id == study_id && doc.stored_round == round,
            "the signed release names another study or round"
        );
        anyhow::ensure!(doc.request_sha256 == request_sha256, "the signed release answers another request");
        anyhow::ensure!(
            doc.contributors == contributors && doc.decryptors == decryptors && doc.min_cell_count == min_cell_count,
            "the signed release names other sites or another minimum cell count than the result"
        );
        Ok(doc)
    }

    /// The result of a finished release from the encrypted store (`request_sha256`: the digest
    /// [`Self::release_stored`] returned), after verifying the sites' co-signature on it and that
    /// the signed document carries exactly this result.
    pub async fn released_from_store(
        &self,
        release_id: &str,
        study_id: &str,
        request_sha256: &str,
    ) -> Result<seh_coordinator::he_release::ReleasedFromStore> {
        let frame = self.connect().await?.result(release_id).await?;
        anyhow::ensure!(
            frame.kind() == seh_coordinator::he_release::RELEASED_KIND,
            "release {release_id} is not a decryption"
        );
        let done: seh_coordinator::he_release::ReleasedFromStore =
            serde_json::from_slice(frame.payload()).context("released result does not parse")?;
        anyhow::ensure!(done.study_id == study_id, "the release names another study");
        let doc = self.verify_store_release(
            &done.signed,
            study_id,
            done.round,
            request_sha256,
            (&done.contributors, &done.decryptors, done.min_cell_count),
        )?;
        anyhow::ensure!(doc.result.as_ref() == Some(&done.result), "the signed release carries another result");
        Ok(done)
    }

    /// The result of a finished key-switched release: decrypts it with `key` after checking that
    /// it was switched to `key`'s public key and that the study is this researcher's own (its
    /// signature verifies under this identity); applies the reported minimum cell count exactly
    /// as the plain release does.
    pub async fn switched_from_store(
        &self,
        release_id: &str,
        study_id: &str,
        request_sha256: &str,
        key: &seh_crypto::he::ResearcherKey,
    ) -> Result<(seh_coordinator::he_release::SwitchedFromStore, DescribeResult)> {
        let frame = self.connect().await?.result(release_id).await?;
        anyhow::ensure!(
            frame.kind() == seh_coordinator::he_release::SWITCHED_KIND,
            "release {release_id} is not a key switch"
        );
        let done: seh_coordinator::he_release::SwitchedFromStore =
            serde_json::from_slice(frame.payload()).context("key-switched result does not parse")?;
        anyhow::ensure!(done.study_id == study_id, "the release names another study");
        let ctx = crate::he_key_cmd::context()?;
        let mine = crate::he_key_cmd::digest_hex(&ctx, key.public_key());
        anyhow::ensure!(
            done.researcher_key == mine,
            "the result was switched to researcher key {} (not this key, {mine})",
            done.researcher_key
        );
        let spec =
            done.study.verify(&self.id.key.verifying_key()).context("the returned study is not signed by you")?;
        anyhow::ensure!(spec.study_id == study_id, "the returned study is another study");
        let ct = hex::decode(&done.ciphertext).context("the key-switched ciphertext is not hex")?;
        // The sites co-signed this ciphertext (by digest) switched to this key.
        let doc = self.verify_store_release(
            &done.signed,
            study_id,
            done.round,
            request_sha256,
            (&done.contributors, &done.decryptors, done.min_cell_count),
        )?;
        anyhow::ensure!(
            doc.result.is_none()
                && doc.researcher_key.as_deref() == Some(mine.as_str())
                && doc.ciphertext_sha256 == Some(seh_protocol::he_cosign::sha256_hex(&ct)),
            "the signed release names another ciphertext or researcher key"
        );
        let result = seh_protocol::he_release::decrypt_switched(&done.study, &ct, key, done.min_cell_count)?;
        Ok((done, result))
    }

    /// Fetches the release and verifies its FROST signature under the federation's group key.
    pub async fn result(&self, id: &str) -> Result<(SignedRelease, ReleaseDocument)> {
        let frame = self.connect().await?.result(id).await?;
        let release: SignedRelease = serde_json::from_slice(frame.payload()).context("release does not parse")?;
        let doc = release.verify(&self.fed.group_key()).context("release signature does not verify")?;
        anyhow::ensure!(doc.study_id == id, "release names another study");
        Ok((release, doc))
    }
}

/// Prints a verified release (and optional federation metadata).
pub fn print_release(release: &SignedRelease, doc: &ReleaseDocument, meta: Option<serde_json::Value>, format: Format) {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "study_id": doc.study_id,
                "result": doc.result,
                "accepted": doc.accepted,
                "contributors": doc.contributors,
                "min_cell_count": doc.min_cell_count,
                "signers": release.signers,
                "signature": release.signature,
                "signature_verified": true,
                "federation": meta,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            println!("Secure descriptive statistics — study {}", doc.study_id);
            print_describe(&doc.result);
            println!();
            println!("contributing sites: {}", doc.contributors.join(", "));
            println!("minimum cell count: {} ({} cells suppressed)", doc.min_cell_count, doc.result.suppressed);
            println!("release signed by {} (FROST threshold signature verified)", release.signers.join(", "));
            if let Some(m) = meta {
                println!("federation: {m}");
            }
        }
    }
}

/// Prints a key-switched result decrypted here.
fn print_switched(r: &seh_coordinator::he_release::SwitchedFromStore, result: &DescribeResult, format: Format) {
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "study_id": r.study_id,
                "round": r.round,
                "result": result,
                "contributors": r.contributors,
                "decryptors": r.decryptors,
                "refusals": r.refusals,
                "min_cell_count": r.min_cell_count,
                "researcher_key": r.researcher_key,
                "decrypted_locally": true,
                "signed_by_the_sites": r.signed.signers,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            println!(
                "Secure descriptive statistics — study {}, encrypted round {} released from the store",
                r.study_id, r.round
            );
            print_describe(result);
            println!();
            println!("summed sites: {}", r.contributors.join(", "));
            println!("key-switched by: {} (to researcher key {})", r.decryptors.join(", "), r.researcher_key);
            for (site, reason) in &r.refusals {
                println!("refused by {site}: {reason}");
            }
            println!("minimum cell count: {} ({} cells suppressed)", r.min_cell_count, result.suppressed);
            println!("decrypted locally with your researcher key (the coordinator held only ciphertext)");
            println!(
                "signed by the sites: {} (FROST threshold signature on the ciphertext's digest verified)",
                r.signed.signers.join(", ")
            );
        }
    }
}

/// Prints a result released from the encrypted store.
fn print_released(r: &seh_coordinator::he_release::ReleasedFromStore, format: Format) {
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("signed_by_the_sites".into(), serde_json::json!(r.signed.signers));
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Text => {
            println!(
                "Secure descriptive statistics — study {}, encrypted round {} released from the store",
                r.study_id, r.round
            );
            print_describe(&r.result);
            println!();
            println!("summed sites: {}", r.contributors.join(", "));
            println!("decrypted by: {} (threshold decryption)", r.decryptors.join(", "));
            for (site, reason) in &r.refusals {
                println!("refused by {site}: {reason}");
            }
            println!("minimum cell count: {} ({} cells suppressed)", r.min_cell_count, r.result.suppressed);
            println!("signed by the sites: {} (FROST threshold signature verified)", r.signed.signers.join(", "));
        }
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.6}"))
}

fn print_describe(r: &DescribeResult) {
    println!("{:<20} {:>8} {:>14} {:>14} {:>14}", "column", "n", "mean", "variance", "sd");
    for c in &r.columns {
        let n = c.n.map_or_else(|| "<min".to_owned(), |n| n.to_string());
        println!("{:<20} {:>8} {:>14} {:>14} {:>14}", c.column, n, opt(c.mean), opt(c.variance), opt(c.sd));
    }
    for h in &r.histograms {
        let cell = |c: &Option<u64>| c.map_or_else(|| "<min".to_owned(), |c| c.to_string());
        let bins = h.counts.len().max(1) as f64;
        println!("\nhistogram of {} on [{}, {}]:", h.column, h.lo, h.hi);
        println!("  below {:>10}: {}", h.lo, cell(&h.below));
        for (k, c) in h.counts.iter().enumerate() {
            let a = h.lo + (h.hi - h.lo) * k as f64 / bins;
            let b = h.lo + (h.hi - h.lo) * (k + 1) as f64 / bins;
            println!("  [{a:>9.4}, {b:>9.4}{}: {}", if k + 1 == h.counts.len() { "]" } else { ")" }, cell(c));
        }
        println!("  above {:>10}: {}", h.hi, cell(&h.above));
    }
}

/// Runs `seh study …`.
pub fn run(cmd: StudyCommand) -> Result<()> {
    let rt = runtime()?;
    match cmd {
        StudyCommand::Run(a) => crate::study_run::run(&rt, a),
        StudyCommand::Status(a) => {
            let r = Researcher::from_config(&a.config)?;
            let s = rt.block_on(r.status(&a.id))?;
            match a.format {
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "study_id": s.study_id, "state": s.state, "round": s.round, "detail": serde_json::from_str::<serde_json::Value>(&s.detail).unwrap_or_default() })
                ),
                Format::Text => println!("study {}: {} (round {}) {}", s.study_id, s.state, s.round, s.detail),
            }
            Ok(())
        }
        StudyCommand::Release(a) => {
            let r = Researcher::from_config(&a.config)?;
            let switch = match (&a.to_key, &a.key) {
                (Some(p), Some(k)) => {
                    let ctx = crate::he_key_cmd::context()?;
                    let public = crate::he_key_cmd::load_public(&ctx, p)?;
                    let key = crate::he_key_cmd::load_secret(&ctx, k)?;
                    anyhow::ensure!(
                        key.public_key() == &public,
                        "{} is not the secret key of {}",
                        k.display(),
                        p.display()
                    );
                    let digest = crate::he_key_cmd::digest_hex(&ctx, &public);
                    Some((public.to_bytes(&ctx), digest, key))
                }
                _ => None,
            };
            rt.block_on(async {
                let target = switch.as_ref().map(|(b, d, _)| (b.as_slice(), d.as_str()));
                let (id, request) = r.release_stored(&a.study, a.round, target).await?;
                eprintln!("{id} queued");
                let s = r.wait(&id, Duration::from_secs_f64(a.timeout)).await?;
                if s.state != "done" {
                    bail!("{id} {}: {}", s.state, s.detail);
                }
                if let Some((_, _, key)) = &switch {
                    let (done, result) = r.switched_from_store(&id, &a.study, &request, key).await?;
                    print_switched(&done, &result, a.format);
                    return Ok(());
                }
                let done = r.released_from_store(&id, &a.study, &request).await?;
                print_released(&done, a.format);
                Ok(())
            })
        }
        StudyCommand::HeKeygen(a) => crate::he_key_cmd::run(&a),
        StudyCommand::Result(a) => {
            let r = Researcher::from_config(&a.config)?;
            let (release, doc) = rt.block_on(r.result(&a.id))?;
            print_release(&release, &doc, None, a.format);
            Ok(())
        }
    }
}
