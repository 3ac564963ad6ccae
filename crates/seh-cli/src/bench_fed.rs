//! `seh bench federation`: secure sums over site **processes** on loopback over mutual TLS.
//!
//! Two modes:
//!
//! - `secagg` (default): the federation material comes from `seh keys init`; this process is the
//!   coordinator (seh-net `SiteLink` listener with the federation's mTLS server config and roster)
//!   and spawns one `seh bench federation-site` process per site, which dials out with its own
//!   certificate. Every round is a fresh SecAgg+ aggregation (session = round) of one f64 vector
//!   of `--length` per site, with signed envelopes and replay guards on both sides, exactly the
//!   messages the study runtime exchanges. Measures time per round (coordinator sends "start" →
//!   coordinator holds the unmasked sum) and payload bytes per site, and checks the sum against
//!   the plain sum.
//! - `study`: the real runtime — `seh coordinator` and one `seh node` per site, spawned with the
//!   same functions as `seh federate` — runs one describe study per round (offer, policy
//!   decision, SecAgg+, FROST-signed release). A describe study's vector is capped by the study
//!   spec (64 histograms of 10 000 bins), so `--length` is clamped to that cap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rand::rngs::OsRng;
use rand::{Rng, SeedableRng};
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use seh_crypto::fixed::FixedParams;
use seh_crypto::secagg::{Graph, SecAgg, SecAggParams};
use seh_crypto::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use seh_crypto::wire::{Envelope, PartyId, SessionGuard, SessionId, SignedEnvelope, StudyId, VerifyingKey};
use seh_net::{ClientTls, Frame, GrpcSiteConnector, NodeId, SiteConnector};
use seh_protocol::federation::Membership;
use seh_protocol::messages::kind_label;
use serde_json::json;
use tokio::sync::mpsc;

use crate::coordinator_cmd::{net_roster, runtime, server_runtime};
use crate::keys::{init, load_identity, load_membership, KeysInitArgs};
use crate::lifecycle::ChildGuard;

mod study;

/// Frame study id of the benchmark's aggregations.
const BENCH_STUDY: &str = "bench-federation";
/// Study id inside the SecAgg+ sessions.
const BENCH_STUDY_ID: StudyId = StudyId(*b"seh-bench-fed-01");
/// Names of the SecAgg+ steps, in order.
const STEP_NAMES: [&str; 5] = ["0_advertise_keys", "1_share_keys", "2_masked_input", "3_consistency", "4_unmask"];
/// Most seconds one protocol step may wait for the sites.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// What `seh bench federation` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FedBenchMode {
    /// SecAgg+ rounds between this process (coordinator) and site processes over mTLS.
    Secagg,
    /// Whole describe studies through `seh coordinator` and `seh node` processes.
    Study,
}

/// Flags of `seh bench federation`.
#[derive(Debug, clap::Args)]
pub struct FederationBenchArgs {
    /// Number of sites (one OS process each).
    #[arg(long, default_value_t = 10)]
    pub sites: usize,
    /// Vector length per site.
    #[arg(long, default_value_t = 1_000_000)]
    pub length: usize,
    /// Secure-aggregation threshold t (default: a strict majority of the sites).
    #[arg(long)]
    pub threshold: Option<usize>,
    /// Warm rounds measured (the median is reported); one cold round runs first.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// What to drive.
    #[arg(long, value_enum, default_value_t = FedBenchMode::Secagg)]
    pub mode: FedBenchMode,
    /// Directory for keys and logs (default: a new temporary directory).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Seed of the sites' input vectors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Flags of the hidden `seh bench federation-site` (one site process of `seh bench federation`).
#[derive(Debug, clap::Args)]
pub struct FederationSiteArgs {
    /// The `seh keys init` directory.
    #[arg(long)]
    pub keys: PathBuf,
    /// This site's node id.
    #[arg(long)]
    pub site: String,
    /// The coordinator's `SiteLink` address.
    #[arg(long)]
    pub addr: SocketAddr,
    /// Vector length.
    #[arg(long)]
    pub length: usize,
    /// Threshold t.
    #[arg(long)]
    pub threshold: usize,
    /// Seed of the input vector.
    #[arg(long)]
    pub seed: u64,
}

/// Public parameters every party derives the same way.
struct Setup {
    fed: Membership,
    /// Sites' identity keys by party id.
    sites: BTreeMap<PartyId, VerifyingKey>,
    /// Sites' and the coordinator's identity keys (envelope signatures).
    roster: BTreeMap<PartyId, VerifyingKey>,
    threshold: usize,
    length: usize,
}

impl Setup {
    fn load(keys: &Path, threshold: usize, length: usize) -> Result<Setup> {
        let fed = load_membership(&keys.join("federation.json"))?;
        let sites: BTreeMap<PartyId, VerifyingKey> = fed.sites().map(|s| (s.party, s.key)).collect();
        let mut roster = sites.clone();
        roster.insert(PartyId::COORDINATOR, fed.coordinator_key);
        Ok(Setup { fed, sites, roster, threshold, length })
    }

    /// The aggregation of round `round` (complete graph, fresh session per round).
    fn aggregation(&self, round: u32) -> Result<SecAgg> {
        let session = SessionId { study: BENCH_STUDY_ID, round };
        let parties: Vec<PartyId> = self.sites.keys().copied().collect();
        let params = SecAggParams::new(session, &parties, self.threshold, self.length, Graph::Complete)?;
        let n = parties.len();
        let bits = FixedParams::max_frac_bits(1.0, n).context("no fixed-point scale fits")?.min(40);
        Ok(SecAgg::new(params, FixedParams::new(bits, 1.0, n)?, self.sites.clone())?)
    }
}

/// The input vector of site `party`: uniform in [-1, 1), reproducible from `seed`.
fn site_input(seed: u64, party: PartyId, length: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(party.0) << 40));
    (0..length).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn frame_of(round: u32, env: Envelope, key: &ed25519_dalek::SigningKey) -> Result<Frame> {
    let kind = kind_label(env.protocol, env.step);
    Ok(Frame::new(BENCH_STUDY, u64::from(round), &kind, env.sign(key)?.into_bytes()?)?)
}

/// Runs one site process: dial out, then answer every round until told to stop.
pub fn run_site(a: FederationSiteArgs) -> Result<()> {
    let setup = Setup::load(&a.keys, a.threshold, a.length)?;
    let ca = std::fs::read(a.keys.join("ca.der")).context("ca.der")?;
    let id = load_identity(&a.keys.join(&a.site))?;
    let me = setup.fed.site_by_name(&id.name).context("site is not on the federation")?.party;
    let coordinator = NodeId::parse(&setup.fed.coordinator_name)?;
    let tls = ClientTls::new(&ca, Some(&id.tls), &coordinator, Some(setup.fed.coordinator_key))?;
    let input = site_input(a.seed, me, a.length);
    let mut rng = ChaCha20Rng::from_rng(OsRng)?;
    runtime()?.block_on(async {
        let connector = GrpcSiteConnector::new(a.addr, tls, coordinator, setup.fed.coordinator_key);
        let mut session = connector.open().await?;
        let mut current = None;
        while let Some(item) = session.stream.recv().await {
            let frame = item?;
            let round = u32::try_from(frame.round()).context("round out of range")?;
            let step = Instant::now();
            let out = match frame.kind() {
                "bench/stop" => return Ok(()),
                "bench/start" => {
                    let agg = setup.aggregation(round)?;
                    let mut site = agg.contribute(me, &id.key, agg.encode(&input)?)?;
                    let out = site.start(&mut rng)?;
                    current = Some((site, SessionGuard::new(agg.params().session(), 8)));
                    out
                }
                _ => {
                    let (site, guard) = current.as_mut().context("protocol message before bench/start")?;
                    let env = SignedEnvelope::open(frame.payload(), &setup.roster)?;
                    guard.check(&env)?;
                    site.receive(&env, &mut rng)?
                }
            };
            let computing = Instant::now();
            let frames = out.into_iter().map(|env| frame_of(round, env, &id.key)).collect::<Result<Vec<_>>>()?;
            let sign = computing.elapsed().as_secs_f64();
            for f in frames {
                session.sink.send(f).await?;
            }
            // Site-side cost of this step (in its log): protocol step, then signing and framing.
            eprintln!("round {round} {}: step {:.4} s, sign {sign:.4} s", frame.kind(), step.elapsed().as_secs_f64());
        }
        bail!("the coordinator closed the session")
    })
}

/// Measurements of one round.
struct RoundStats {
    seconds: f64,
    /// Payload bytes each site sent (by site name).
    sent: BTreeMap<String, u64>,
    /// Payload bytes each site received.
    received: BTreeMap<String, u64>,
    /// Seconds the coordinator spent opening envelopes and absorbing them, per step.
    busy: Vec<f64>,
    /// Seconds of each SecAgg+ step (adverts, key shares, masked inputs, consistency, unmasking),
    /// from the coordinator's previous send to its closing of the step.
    steps: Vec<f64>,
    sum: Vec<f64>,
}

/// The coordinator side of the `secagg` mode.
struct Harness {
    setup: Setup,
    key: ed25519_dalek::SigningKey,
    sinks: BTreeMap<String, seh_net::FrameSink>,
    inbound: mpsc::Receiver<(String, Frame)>,
    threads: usize,
}

impl Harness {
    async fn recv(&mut self) -> Result<(String, Frame)> {
        match tokio::time::timeout(STEP_TIMEOUT, self.inbound.recv()).await {
            Ok(Some(x)) => Ok(x),
            Ok(None) => bail!("every site disconnected"),
            Err(_) => bail!("a protocol step took longer than {} s", STEP_TIMEOUT.as_secs()),
        }
    }

    async fn send(&self, site: &str, frame: Frame, stats: &mut RoundStats) -> Result<()> {
        let sink = self.sinks.get(site).with_context(|| format!("site {site} is not connected"))?;
        *stats.received.entry(site.to_owned()).or_default() += frame.payload().len() as u64;
        sink.send(frame).await.with_context(|| format!("sending to {site}"))?;
        Ok(())
    }

    async fn round(&mut self, round: u32) -> Result<RoundStats> {
        let agg = self.setup.aggregation(round)?;
        let mut stats = RoundStats {
            seconds: 0.0,
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
            busy: Vec::new(),
            steps: Vec::new(),
            sum: Vec::new(),
        };
        let started = Instant::now();
        let names: Vec<String> = self.sinks.keys().cloned().collect();
        for name in &names {
            self.send(name, Frame::new(BENCH_STUDY, u64::from(round), "bench/start", Vec::new())?, &mut stats).await?;
        }
        let mut coord = agg.combine();
        let mut guard = SessionGuard::new(agg.params().session(), 8);
        let mut step_start = Instant::now();
        loop {
            // Every site answers every step exactly once (no dropouts in this benchmark).
            let mut busy = 0.0;
            for _ in 0..names.len() {
                let (site, frame) = self.recv().await?;
                let t0 = Instant::now();
                ensure!(frame.round() == u64::from(round), "site {site} answered for round {}", frame.round());
                *stats.sent.entry(site.clone()).or_default() += frame.payload().len() as u64;
                let env = SignedEnvelope::open(frame.payload(), &self.setup.roster)
                    .with_context(|| format!("envelope from {site}"))?;
                ensure!(
                    self.setup.fed.site_by_name(&site).map(|s| s.party) == Some(env.sender),
                    "site {site} signed as another party"
                );
                guard.check(&env)?;
                coord.receive(&env).with_context(|| format!("message from {site}"))?;
                busy += t0.elapsed().as_secs_f64();
            }
            stats.busy.push(busy);
            let threads = self.threads;
            let outcome = coord.close_round_with(|plan, sum| {
                let per = sum.len().div_ceil(threads).max(1);
                std::thread::scope(|s| {
                    for (i, chunk) in sum.chunks_mut(per).enumerate() {
                        s.spawn(move || plan.unmask_range(i * per, chunk));
                    }
                });
            })?;
            stats.steps.push(step_start.elapsed().as_secs_f64());
            step_start = Instant::now();
            match outcome {
                RoundOutcome::Done { sum, contributors } => {
                    ensure!(contributors.len() == names.len(), "only {} sites contributed", contributors.len());
                    stats.sum = agg.decode(&sum)?;
                    stats.seconds = started.elapsed().as_secs_f64();
                    return Ok(stats);
                }
                RoundOutcome::Send(envs) => {
                    for env in envs {
                        let to = env.recipient;
                        let frame = frame_of(round, env, &self.key)?;
                        if to == PartyId::BROADCAST {
                            for name in &names {
                                self.send(name, frame.clone(), &mut stats).await?;
                            }
                        } else {
                            let site = self.setup.fed.site(to).context("message to an unknown party")?;
                            self.send(&site.name.clone(), frame, &mut stats).await?;
                        }
                    }
                }
            }
        }
    }
}

fn spawn_logged(args: &[String], log: &Path) -> Result<ChildGuard> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(args).stdout(out).stderr(err);
    ChildGuard::spawn(cmd)
}

fn fresh_workdir(a: &FederationBenchArgs) -> Result<crate::workdir::Workdir> {
    crate::workdir::Workdir::for_federation(a.workdir.as_deref(), "seh-bench-fed")
}

/// Site names `site-01`, `site-02`, ….
fn site_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("site-{i:02}")).collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `seh bench federation`.
pub fn run(a: FederationBenchArgs) -> Result<()> {
    ensure!(a.sites >= 2, "--sites must be at least 2");
    ensure!(a.rounds >= 1, "--rounds must be at least 1");
    let threshold = a.threshold.unwrap_or(a.sites / 2 + 1).max(2);
    match a.mode {
        FedBenchMode::Secagg => run_secagg(&a, threshold),
        FedBenchMode::Study => study::run(&a, threshold),
    }
}

fn run_secagg(a: &FederationBenchArgs, threshold: usize) -> Result<()> {
    let wd = fresh_workdir(a)?;
    let work = wd.path().to_path_buf();
    let keys = work.join("keys");
    let names = site_names(a.sites);
    init(&KeysInitArgs {
        dir: keys.clone(),
        sites: names.clone(),
        researchers: vec!["researcher".into()],
        coordinator: "coordinator".into(),
        threshold: None,
        name: "seh bench federation".into(),
    })?;
    std::fs::create_dir_all(work.join("logs"))?;
    let setup = Setup::load(&keys, threshold, a.length)?;
    setup.aggregation(0)?; // validate parameters before spawning anything
    let ca = std::fs::read(keys.join("ca.der"))?;
    let id = load_identity(&keys.join(&setup.fed.coordinator_name))?;
    let roster = net_roster(&setup.fed)?;
    let tls = seh_net::server_config(&ca, &id.tls, roster.clone())?;
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let total = a.rounds + 1;
    let stats = server_runtime()?.block_on(async {
        let (listener, mut acceptor) = seh_net::serve_site_link("127.0.0.1:0".parse()?, tls, roster).await?;
        let addr = listener.local_addr();
        let mut children = Vec::new();
        for name in &names {
            let args: Vec<String> = [
                "bench",
                "federation-site",
                "--keys",
                &keys.display().to_string(),
                "--site",
                name,
                "--addr",
                &addr.to_string(),
                "--length",
                &a.length.to_string(),
                "--threshold",
                &threshold.to_string(),
                "--seed",
                &a.seed.to_string(),
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            children.push(spawn_logged(&args, &work.join(format!("logs/{name}.log")))?);
        }
        let (tx, inbound) = mpsc::channel(1024);
        let mut sinks = BTreeMap::new();
        while sinks.len() < names.len() {
            let session = match tokio::time::timeout(Duration::from_secs(60), acceptor.accept()).await {
                Ok(Some(s)) => s,
                _ => bail!("only {} of {} sites connected; see {}", sinks.len(), names.len(), work.display()),
            };
            let name = session.peer.id.as_str().to_owned();
            sinks.insert(name.clone(), session.sink);
            let (tx, mut stream) = (tx.clone(), session.stream);
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.recv().await {
                    if tx.send((name.clone(), frame)).await.is_err() {
                        break;
                    }
                }
            });
        }
        let mut h = Harness { setup, key: id.key.clone(), sinks, inbound, threads };
        let mut stats = Vec::new();
        for r in 0..total {
            let s = h.round(r as u32).await.with_context(|| format!("round {r}; site logs in {}", work.display()))?;
            if a.format != "json" {
                eprintln!("round {r}: {:.3} s", s.seconds);
            }
            stats.push(s);
        }
        for name in &names {
            let stop = Frame::new(BENCH_STUDY, 0, "bench/stop", Vec::new())?;
            let _ = h.sinks[name].send(stop).await;
        }
        for c in children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait()?.is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        listener.shutdown().await;
        Ok::<_, anyhow::Error>(stats)
    })?;
    // Check the last sum against the plain sum of the sites' inputs.
    let last = stats.last().context("no rounds ran")?;
    let mut plain = vec![0.0f64; a.length];
    for p in setup_parties(&keys)? {
        for (acc, x) in plain.iter_mut().zip(site_input(a.seed, p, a.length)) {
            *acc += x;
        }
    }
    let max_err = last.sum.iter().zip(&plain).map(|(s, p)| (s - p).abs()).fold(0.0f64, f64::max);
    let tolerance = a.sites as f64 * 2f64.powi(-30);
    ensure!(max_err <= tolerance, "secure sum differs from the plain sum by {max_err:e}");
    let warm: Vec<f64> = stats[1..].iter().map(|s| s.seconds).collect();
    let step_medians: BTreeMap<&str, f64> = STEP_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (*name, median(&stats[1..].iter().filter_map(|s| s.steps.get(i).copied()).collect::<Vec<_>>()))
        })
        .collect();
    let busy_medians: BTreeMap<&str, f64> = STEP_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| (*name, median(&stats[1..].iter().filter_map(|s| s.busy.get(i).copied()).collect::<Vec<_>>())))
        .collect();
    let per_site = |m: &BTreeMap<String, u64>| m.values().sum::<u64>() as f64 / a.sites as f64;
    let report = json!({
        "bench": "federation",
        "mode": "secagg",
        "transport": "gRPC over mTLS (TLS 1.3), loopback, one OS process per site",
        "sites": a.sites,
        "length": a.length,
        "threshold": threshold,
        "graph": "complete",
        "cold_round_seconds": stats[0].seconds,
        "warm_rounds": warm.len(),
        "median_round_seconds": median(&warm),
        "min_round_seconds": warm.iter().copied().fold(f64::INFINITY, f64::min),
        "max_round_seconds": warm.iter().copied().fold(0.0, f64::max),
        "payload_bytes_sent_per_site": per_site(&last.sent),
        "payload_bytes_received_per_site": per_site(&last.received),
        "median_step_seconds": step_medians,
        "median_coordinator_absorb_seconds": busy_medians,
        "max_abs_error": max_err,
        "workdir": wd.report(),
    });
    if a.format == "json" {
        println!("{report}");
    } else {
        println!(
            "federation secagg over mTLS: n={} m={} t={threshold}: median warm round {:.3} s (cold {:.3} s, min {:.3}, max {:.3}; {} warm rounds); {:.0} payload bytes sent and {:.0} received per site per round; max |error| {max_err:.1e}",
            a.sites,
            a.length,
            median(&warm),
            stats[0].seconds,
            report["min_round_seconds"].as_f64().unwrap_or(f64::NAN),
            report["max_round_seconds"].as_f64().unwrap_or(f64::NAN),
            warm.len(),
            per_site(&last.sent),
            per_site(&last.received),
        );
        let steps: Vec<String> = step_medians.iter().map(|(k, v)| format!("{k} {v:.3} s")).collect();
        println!("  median per step: {}", steps.join(", "));
    }
    Ok(())
}

fn setup_parties(keys: &Path) -> Result<Vec<PartyId>> {
    Ok(load_membership(&keys.join("federation.json"))?.sites().map(|s| s.party).collect())
}
