//! `seh bench …`: performance measurements of the protocol core, one
//! subcommand per protocol. Timings are medians of whole runs in one process.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context};
use rand::rngs::OsRng;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::fixed::FixedParams;
use seh_crypto::secagg::{Graph, MaskedInput, SecAgg, SecAggMessage, SecAggParams, SecAggSite};
use seh_crypto::secure_sum::{RoundOutcome, SecureSum, SiteProtocol};
use seh_crypto::wire::{
    EnvelopeRef, PartyId, SessionGuard, SessionId, SignedEnvelope, SigningKey, StudyId, VerifyingKey,
};
use serde_json::json;

/// Flags of `seh bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The protocols `seh bench` can measure.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// SecAgg+ secure aggregation of N random f64 vectors of length M, against a
    /// like-for-like plain sum.
    ///
    /// `seconds`: median wall time of a whole SecAgg+ round (all parties and the
    /// server in this process, on `--threads` threads): fixed-point encode, four
    /// rounds of signed envelopes, unmask, decode to f64. `plain_seconds`: the
    /// same parties and server on the same threads sending their vectors without
    /// masking through the same message path (fixed-point encode, the same
    /// masked-input vector message in a wire envelope, server decodes and sums,
    /// decode to f64) — the secure round minus the cryptography (no masks, key
    /// agreement, secret sharing or signatures). `raw_sum_seconds`: summing the
    /// f64 vectors in memory, no encoding and no messages. `cpu_seconds` and
    /// `plain_cpu_seconds`: mean CPU time (user + system, all threads) of one
    /// secure / plain round, on Linux only (10 ms ticks); on a shared machine
    /// these move less than the wall times.
    Secagg(SecaggBenchArgs),
    /// Diffie–Hellman PSI of N × N identifiers (half overlapping).
    Psi(crate::bench_psi::PsiBenchArgs),
    /// Cox fit (Efron) on synthetic data against R coxph and lifelines, when installed.
    Cox(crate::bench_cox::CoxBenchArgs),
    /// Threshold BFV: P parties encrypt M values, aggregate, threshold-decrypt, key-switch.
    He(crate::bench_he::HeBenchArgs),
    /// One timed `seh fit cox` run for `seh bench cox` (internal).
    #[command(hide = true)]
    CoxChild(crate::bench_cox::CoxChildArgs),
    /// Secure federated Cox over site processes against lifelines' and R's pooled fits, one run.
    FedCox(crate::bench_fedcox::FedCoxBenchArgs),
    /// Secure sums over N site processes on loopback over mTLS (SecAgg+ rounds or whole studies).
    Federation(crate::bench_fed::FederationBenchArgs),
    /// One site process of `seh bench federation` (internal).
    #[command(hide = true)]
    FederationSite(crate::bench_fed::FederationSiteArgs),
}

/// Flags of `seh bench secagg`.
#[derive(Debug, clap::Args)]
pub struct SecaggBenchArgs {
    /// Number of parties (sites).
    #[arg(long, default_value_t = 10)]
    pub parties: usize,
    /// Vector length.
    #[arg(long, default_value_t = 1_000_000)]
    pub length: usize,
    /// Parties that drop out after sharing their keys (before sending their
    /// masked input), forcing the server to remove their pair masks.
    #[arg(long, default_value_t = 0)]
    pub dropouts: usize,
    /// Repetitions (the median wall time is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Worker threads simulating the parties (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed of the random input vectors.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Run `seh bench <protocol>`.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Secagg(a) => run_secagg(a),
        BenchCommand::Psi(a) => crate::bench_psi::run(a),
        BenchCommand::Cox(a) => crate::bench_cox::run(a),
        BenchCommand::He(a) => crate::bench_he::run(a),
        BenchCommand::CoxChild(a) => crate::bench_cox::run_child(a),
        BenchCommand::Federation(a) => crate::bench_fed::run(a),
        BenchCommand::FedCox(a) => crate::bench_fedcox::run(a),
        BenchCommand::FederationSite(a) => crate::bench_fed::run_site(a),
    }
}

/// Validated configuration of one SecAgg+ benchmark.
struct SecaggBench {
    agg: SecAgg,
    keys: BTreeMap<PartyId, SigningKey>,
    coordinator: SigningKey,
    roster: BTreeMap<PartyId, VerifyingKey>,
    dropped: Vec<PartyId>,
    threads: usize,
}

/// One party's simulation state.
struct Party {
    id: PartyId,
    site: Option<SecAggSite>,
    guard: SessionGuard,
    rng: ChaCha20Rng,
    inbox: Vec<Vec<u8>>,
    outbox: Vec<Vec<u8>>,
}

fn run_secagg(args: SecaggBenchArgs) -> anyhow::Result<()> {
    let n = args.parties;
    if n < 2 {
        bail!("--parties must be at least 2");
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    let session = SessionId { study: StudyId(*b"seh-bench-secagg"), round: 0 };
    let ids: Vec<PartyId> = (1..=n as u32).map(PartyId).collect();
    let mut seed_rng = ChaCha20Rng::seed_from_u64(args.seed);
    let params = SecAggParams::suggested(session, &ids, args.length, seed_rng.gen())?;
    if n - args.dropouts < params.threshold() {
        bail!("{} dropouts leave fewer than the threshold {} of {n} parties", args.dropouts, params.threshold());
    }
    let frac_bits = FixedParams::max_frac_bits(1.0, n).context("no fixed-point scale fits")?.min(40);
    let fixed = FixedParams::new(frac_bits, 1.0, n)?;
    let keys: BTreeMap<PartyId, SigningKey> = ids.iter().map(|&p| (p, SigningKey::generate(&mut OsRng))).collect();
    let coordinator = SigningKey::generate(&mut OsRng);
    let mut roster: BTreeMap<PartyId, VerifyingKey> = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let agg = SecAgg::new(params.clone(), fixed, roster.clone())?;
    roster.insert(PartyId::COORDINATOR, coordinator.verifying_key());
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |p| p.get())).max(1);
    // Drop every k-th party so dropouts spread over the neighbour graph.
    let dropped: Vec<PartyId> = (0..args.dropouts).map(|i| ids[i * n / args.dropouts.max(1)]).collect();
    let bench = SecaggBench { agg, keys, coordinator, roster, dropped, threads };

    let mut data_rng = ChaCha20Rng::seed_from_u64(args.seed ^ 0x5eed);
    let inputs: Vec<Vec<f64>> =
        (0..n).map(|_| (0..args.length).map(|_| data_rng.gen_range(-1.0..1.0)).collect()).collect();

    let mut secure_times = Vec::with_capacity(args.reps);
    let mut plain_times = Vec::with_capacity(args.reps);
    let mut raw_times = Vec::with_capacity(args.reps);
    let mut bytes_per_client = 0.0;
    let mut max_err = 0.0f64;
    let (mut secure_cpu, mut plain_cpu) = (Some(0.0), Some(0.0));
    for _ in 0..args.reps {
        let c0 = process_cpu_seconds();
        let t0 = Instant::now();
        let (sum, contributors, bytes) = bench.run_once(&inputs)?;
        secure_times.push(t0.elapsed().as_secs_f64());
        secure_cpu = add_cpu(secure_cpu, c0, process_cpu_seconds());
        bytes_per_client = bytes;

        let c0 = process_cpu_seconds();
        let t0 = Instant::now();
        let plain = bench.run_plain_once(&inputs, &contributors)?;
        plain_times.push(t0.elapsed().as_secs_f64());
        plain_cpu = add_cpu(plain_cpu, c0, process_cpu_seconds());

        let t0 = Instant::now();
        let raw = raw_sum(&inputs, &contributors);
        raw_times.push(t0.elapsed().as_secs_f64());
        max_err = sum.iter().zip(&raw).map(|(a, b)| (a - b).abs()).fold(max_err, f64::max);
        if sum != plain {
            bail!("secure and plain sums differ");
        }
    }
    let tolerance = n as f64 * bench.agg.fixed().resolution();
    if max_err > tolerance {
        bail!("secure sum differs from the plain sum by {max_err:e} (tolerance {tolerance:e})");
    }
    let seconds = median(&mut secure_times);
    let plain_seconds = median(&mut plain_times);
    let raw_sum_seconds = median(&mut raw_times);
    let cpu_seconds = secure_cpu.map(|c| c / args.reps as f64);
    let plain_cpu_seconds = plain_cpu.map(|c| c / args.reps as f64);
    let graph = match params.graph() {
        Graph::Complete => "complete".to_string(),
        Graph::Harary { degree } => format!("harary k={degree}"),
        Graph::Random { degree, .. } => format!("random k={degree}"),
    };
    let report = json!({
        "bench": "secagg",
        "parties": n,
        "length": args.length,
        "dropouts": args.dropouts,
        "threshold": params.threshold(),
        "graph": graph,
        "frac_bits": frac_bits,
        "reps": args.reps,
        "threads": threads,
        "seconds": seconds,
        "plain_seconds": plain_seconds,
        "ratio": seconds / plain_seconds.max(1e-12),
        "cpu_seconds": cpu_seconds,
        "plain_cpu_seconds": plain_cpu_seconds,
        "plain_definition": PLAIN_DEFINITION,
        "raw_sum_seconds": raw_sum_seconds,
        "ratio_to_raw_sum": seconds / raw_sum_seconds.max(1e-12),
        "bytes_sent_per_client": bytes_per_client,
        "max_abs_error": max_err,
    });
    if args.format == "json" {
        println!("{report}");
    } else {
        println!(
            "secagg n={n} m={} dropouts={} t={} graph={graph}: {seconds:.4} s (plain {plain_seconds:.4} s, ratio {:.2}; raw f64 sum {raw_sum_seconds:.4} s), {:.0} bytes sent per client",
            args.length,
            args.dropouts,
            params.threshold(),
            seconds / plain_seconds.max(1e-12),
            bytes_per_client
        );
        if let (Some(c), Some(p)) = (cpu_seconds, plain_cpu_seconds) {
            println!("CPU time per round (all threads, 10 ms ticks): {c:.4} s (plain {p:.4} s)");
        }
        println!("plain = {PLAIN_DEFINITION}");
    }
    Ok(())
}

impl SecaggBench {
    /// One whole aggregation: encode, four rounds of signed envelopes, decode.
    /// Returns the decoded sum, the contributors and the mean bytes sent per client.
    fn run_once(&self, inputs: &[Vec<f64>]) -> anyhow::Result<(Vec<f64>, Vec<PartyId>, f64)> {
        let session = self.agg.params().session();
        let mut parties: Vec<Party> = self
            .agg
            .params()
            .parties()
            .iter()
            .map(|&id| Party {
                id,
                site: None,
                guard: SessionGuard::new(session, 8),
                rng: ChaCha20Rng::from_rng(OsRng).unwrap_or_else(|_| ChaCha20Rng::from_entropy()),
                inbox: Vec::new(),
                outbox: Vec::new(),
            })
            .collect();

        // Encode and start every site in parallel.
        self.par_sites(&mut parties, |p| {
            let idx = (p.id.0 - 1) as usize;
            let x = inputs.get(idx).context("missing input")?;
            let key = &self.keys[&p.id];
            let mut site = self.agg.contribute(p.id, key, self.agg.encode(x)?)?;
            let out = site.start(&mut p.rng)?;
            p.site = Some(site);
            for env in out {
                p.outbox.push(env.sign(key)?.into_bytes()?);
            }
            Ok(())
        })?;

        let mut coord = self.agg.combine();
        let mut guard = SessionGuard::new(session, 8);
        let mut bytes_sent = 0usize;
        for round in 0.. {
            // Parties that drop after round 1 send nothing more.
            let wire: Vec<Vec<u8>> = parties
                .iter_mut()
                .flat_map(|p| {
                    let out = std::mem::take(&mut p.outbox);
                    if round >= 2 && self.dropped.contains(&p.id) {
                        Vec::new()
                    } else {
                        out
                    }
                })
                .collect();
            bytes_sent += wire.iter().map(Vec::len).sum::<usize>();
            // Signature checks in parallel (payloads stay in the received
            // buffers), state updates in order.
            let envs = self.par_open(&wire)?;
            for env in &envs {
                guard.check_header(&env.header)?;
            }
            let threads = self.threads;
            // Masked inputs are added on all threads, each on a range of the sum.
            let rejected = coord.receive_batch_refs(&envs, |sum, bodies| par_add(threads, sum, bodies));
            if let Some((party, e)) = rejected.into_iter().next() {
                bail!("message from {party} rejected: {e}");
            }
            drop(envs);
            drop(wire);
            let outcome = coord.close_round_with(|plan, sum| {
                let per = sum.len().div_ceil(threads).max(1);
                std::thread::scope(|s| {
                    for (i, chunk) in sum.chunks_mut(per).enumerate() {
                        s.spawn(move || plan.unmask_range(i * per, chunk));
                    }
                });
            })?;
            match outcome {
                RoundOutcome::Done { sum, contributors } => {
                    let decoded = self.agg.decode(&sum)?;
                    return Ok((decoded, contributors, bytes_sent as f64 / parties.len() as f64));
                }
                RoundOutcome::Send(envs) => {
                    for env in envs {
                        let to = env.recipient;
                        let bytes = env.sign(&self.coordinator)?.encode()?;
                        if to == PartyId::BROADCAST {
                            for p in parties.iter_mut() {
                                p.inbox.push(bytes.clone());
                            }
                        } else if let Some(p) = parties.iter_mut().find(|p| p.id == to) {
                            p.inbox.push(bytes);
                        }
                    }
                }
            }
            self.par_sites(&mut parties, |p| {
                let inbox = std::mem::take(&mut p.inbox);
                if round >= 2 && self.dropped.contains(&p.id) {
                    return Ok(()); // gone: hears nothing more
                }
                for bytes in inbox {
                    let env = SignedEnvelope::open_vec(bytes, &self.roster)?;
                    p.guard.check(&env)?;
                    let Some(site) = p.site.as_mut() else { continue };
                    if site.is_done() {
                        continue;
                    }
                    // Replies signed by the site; the masked input is framed in place.
                    p.outbox.extend(site.receive_sealed(&env, &mut p.rng)?);
                }
                Ok(())
            })?;
        }
        bail!("protocol did not finish")
    }

    /// The like-for-like plain round ([`PLAIN_DEFINITION`]): each contributor
    /// encodes its vector and wire-encodes it as a masked-input payload
    /// (unmasked); the server strictly decodes every payload, adds them into
    /// the ring sum (on all threads, as the secure round does) and decodes it.
    /// Same threads as [`SecaggBench::run_once`]. The 48-byte envelope framing
    /// is left out: it only moves the payload, so plain is, if anything, cheaper.
    fn run_plain_once(&self, inputs: &[Vec<f64>], contributors: &[PartyId]) -> anyhow::Result<Vec<f64>> {
        let mut parties: Vec<(PartyId, Vec<u8>)> = contributors.iter().map(|&p| (p, Vec::new())).collect();
        let per = parties.len().div_ceil(self.threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = parties
                .chunks_mut(per)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk.iter_mut().try_for_each(|(id, wire)| {
                            let x = inputs.get((id.0 - 1) as usize).context("missing input")?;
                            *wire = MaskedInput { y: self.agg.encode(x)? }.encode();
                            anyhow::Ok(())
                        })
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
        })?;
        let m = self.agg.params().length();
        let bodies: Vec<&[u8]> =
            parties.iter().map(|(id, w)| MaskedInput::body(w, *id, m)).collect::<Result<_, _>>()?;
        let mut sum = vec![0u64; m];
        par_add(self.threads, &mut sum, &bodies);
        Ok(self.agg.decode(&sum)?)
    }

    /// Run `f` on every party, spread over the worker threads.
    fn par_sites(
        &self,
        parties: &mut [Party],
        f: impl Fn(&mut Party) -> anyhow::Result<()> + Sync,
    ) -> anyhow::Result<()> {
        let per = parties.len().div_ceil(self.threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> =
                parties.chunks_mut(per).map(|chunk| s.spawn(|| chunk.iter_mut().try_for_each(&f))).collect();
            handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("worker panicked"))?)
        })
    }

    /// Decode and verify every message on the worker threads, keeping order;
    /// the payloads borrow `wire`.
    fn par_open<'a>(&self, wire: &'a [Vec<u8>]) -> anyhow::Result<Vec<EnvelopeRef<'a>>> {
        let per = wire.len().div_ceil(self.threads).max(1);
        let roster = &self.roster;
        std::thread::scope(|s| {
            let handles: Vec<_> = wire
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk.iter().map(|b| SignedEnvelope::open_ref(b, roster)).collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(wire.len());
            for h in handles {
                out.extend(h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
            }
            Ok(out)
        })
    }
}

/// The `add` of `SecAggCoordinator::receive_batch_refs`: every body added to
/// disjoint ranges of `sum` on `threads` threads.
fn par_add(threads: usize, sum: &mut [u64], bodies: &[&[u8]]) {
    let per = sum.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for (i, chunk) in sum.chunks_mut(per).enumerate() {
            s.spawn(move || MaskedInput::add_bodies(chunk, i * per, bodies));
        }
    });
}

/// What `plain_seconds` measures (also printed in the JSON report).
const PLAIN_DEFINITION: &str = "same parties, server and threads as the secure round, vectors sent without masking \
     through the same message path: fixed-point encode, wire-encode the masked-input vector message, server strictly \
     decodes it and adds it into the ring sum, decode to f64; no masks, key agreement, secret sharing, signatures or \
     envelope framing";

/// The raw baseline: an in-memory sum of the contributors' f64 vectors.
fn raw_sum(inputs: &[Vec<f64>], contributors: &[PartyId]) -> Vec<f64> {
    let len = inputs.first().map_or(0, Vec::len);
    let mut acc = vec![0.0; len];
    for p in contributors {
        if let Some(x) = inputs.get((p.0 - 1) as usize) {
            for (a, v) in acc.iter_mut().zip(x) {
                *a += v;
            }
        }
    }
    acc
}

/// CPU time (user + system) of this process so far, all threads including
/// finished ones, from Linux `/proc/self/stat` (in `USER_HZ` = 100 ticks per
/// second, so 10 ms resolution); `None` elsewhere. Less disturbed than wall
/// time by other processes on a shared machine.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// `total + (after − before)` when all three are known.
fn add_cpu(total: Option<f64>, before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(total? + (after? - before?))
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}
