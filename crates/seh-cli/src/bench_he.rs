//! `seh bench he`: threshold BFV end to end — every party encrypts a vector of
//! f64 at the source, the coordinator deserialises and adds the ciphertexts,
//! `T` parties produce flooded decryption shares that the coordinator
//! combines, and (unless `--no-key-switch`) `T` parties switch the sum to a
//! researcher key that the researcher decrypts. Key generation is not timed.
//!
//! Everything runs on one thread, so wall time ≈ CPU time; `cpu_seconds` is
//! read from the thread's scheduler statistics (Linux) and is the total CPU
//! time of all simulated parties, the coordinator and the researcher.

use std::time::Instant;

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::fixed::FixedParams;
use seh_crypto::he::{
    check_product_fixed, decode_product, simulate_setup, CollectiveRelinKey, HeContext, HeParams, HeVector,
    LocalFederation, RelinRound1Aggregate, RelinRound1Share, RelinRound2Share, RelinSession, ResearcherKey, BFV_16384,
    BFV_8192,
};
use seh_crypto::wire::{PartyId, SessionId, StudyId};
use serde_json::json;

/// Flags of `seh bench he`.
#[derive(Debug, clap::Args)]
pub struct HeBenchArgs {
    /// Number of parties (key holders, each encrypting one vector).
    #[arg(long, default_value_t = 3)]
    pub parties: usize,
    /// Decryption threshold t (shares come from the first t parties).
    #[arg(long, default_value_t = 2)]
    pub threshold: usize,
    /// Vector length (f64 values per party).
    #[arg(long, default_value_t = 100_000)]
    pub length: usize,
    /// Parameter set.
    #[arg(long, default_value = "bfv-8192", value_parser = ["bfv-8192", "bfv-16384"])]
    pub set: String,
    /// Skip the key switch to the researcher.
    #[arg(long)]
    pub no_key_switch: bool,
    /// Also measure the collective relinearisation key (two rounds among the
    /// first t parties, messages serialised) and one slot-wise product of the
    /// aggregate with itself, threshold-decrypted (needs `--set bfv-16384`;
    /// reported separately, not included in `seconds`).
    #[arg(long)]
    pub product: bool,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Seed of the inputs and of the protocol randomness (benchmark only).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// CPU time of this thread in seconds (Linux `schedstat`), if available.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

#[derive(Default, Clone, Copy)]
struct Phase {
    encrypt: f64,
    aggregate: f64,
    decrypt: f64,
    key_switch: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run `seh bench he`.
pub fn run(args: HeBenchArgs) -> anyhow::Result<()> {
    let n = args.parties;
    if n < 2 || args.threshold < 1 || args.threshold > n {
        bail!("need --parties ≥ 2 and 1 ≤ --threshold ≤ --parties");
    }
    if args.reps == 0 || args.length == 0 {
        bail!("--reps and --length must be at least 1");
    }
    let set = if args.set == "bfv-16384" { BFV_16384 } else { BFV_8192 };
    if args.product && args.set != "bfv-16384" {
        bail!("--product needs --set bfv-16384 (bfv-8192's flooding leaves no room for a product)");
    }
    let ctx = HeContext::new(HeParams::new(set)?)?;
    let mut rng = ChaCha20Rng::seed_from_u64(args.seed);
    let session = SessionId { study: StudyId(*b"seh-bench-he-bfv"), round: 0 };
    let holders: Vec<PartyId> = (1..=n as u32).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session, &holders, args.threshold, &mut rng)?;
    let researcher = ResearcherKey::generate(&ctx, &mut rng)?;
    let frac_bits = FixedParams::max_frac_bits(1.0, n).context("no fixed-point scale fits")?.min(40);
    let fixed = FixedParams::new(frac_bits, 1.0, n)?;
    seh_crypto::he::check_fixed(&ctx, &fixed)?;
    let inputs: Vec<Vec<f64>> = (0..n).map(|_| (0..args.length).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect();
    let exact: Vec<f64> = (0..args.length).map(|j| inputs.iter().map(|x| x[j]).sum()).collect();
    let decryptors: Vec<PartyId> = holders[..args.threshold].to_vec();

    let (mut walls, mut cpus, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes_per_party = 0usize;
    let mut share_bytes = 0usize;
    let mut max_err = 0f64;
    for _ in 0..args.reps {
        let cpu0 = thread_cpu_seconds();
        let t0 = Instant::now();
        let mut ph = Phase::default();
        // Sites: encode, encrypt, serialise.
        let wire: Vec<Vec<u8>> = inputs
            .iter()
            .map(|x| fed.public_key.encrypt_f64(&fixed, x, &mut rng)?.to_bytes(&ctx))
            .collect::<Result<_, _>>()?;
        ph.encrypt = t0.elapsed().as_secs_f64();
        bytes_per_party = wire[0].len();
        // Coordinator: decode and add.
        let t1 = Instant::now();
        let mut agg: Option<HeVector> = None;
        for (i, b) in wire.iter().enumerate() {
            let ct = HeVector::from_bytes(&ctx, b, Some(holders[i]))?;
            match &mut agg {
                None => agg = Some(ct),
                Some(a) => a.add_assign(&ct, Some(holders[i]))?,
            }
        }
        let agg = agg.context("no input")?;
        ph.aggregate = t1.elapsed().as_secs_f64();
        // Threshold decryption by the first t parties (shares serialised as on the wire).
        let t2 = Instant::now();
        let req = agg.decrypt_request(&decryptors);
        let mut shares = Vec::with_capacity(decryptors.len());
        for key in fed.shares.iter_mut().take(args.threshold) {
            let bytes = key.share(&req, &mut rng)?.to_bytes(&ctx);
            share_bytes = bytes.len();
            shares.push(seh_crypto::he::DecryptionShare::from_bytes(&ctx, &bytes, key.party())?);
        }
        let values = agg.threshold_decrypt(&ctx, &decryptors, &shares)?;
        let words: Vec<u64> = values.iter().map(|&v| v as u64).collect();
        let sum = fixed.decode_sum(&words)?;
        ph.decrypt = t2.elapsed().as_secs_f64();
        // Key switch to the researcher.
        if !args.no_key_switch {
            let t3 = Instant::now();
            let req = agg.key_switch_request(&decryptors, researcher.public_key());
            let ks: Vec<_> = fed
                .shares
                .iter_mut()
                .take(args.threshold)
                .map(|k| k.share(&req, &mut rng))
                .collect::<Result<_, _>>()?;
            let switched = agg.key_switch(&ctx, &decryptors, &ks)?;
            let mine = researcher.decrypt(&switched)?;
            if mine != values {
                bail!("key-switched result differs from the threshold decryption");
            }
            ph.key_switch = t3.elapsed().as_secs_f64();
        }
        walls.push(t0.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, thread_cpu_seconds()) {
            cpus.push(b - a);
        }
        phases.push(ph);
        max_err = sum.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(max_err, f64::max);
    }
    let tolerance = n as f64 * fixed.resolution();
    if max_err > tolerance {
        bail!("decrypted sum differs from the plain sum by {max_err:e} (tolerance {tolerance:e})");
    }
    let seconds = median(&mut walls);
    let cpu_seconds = if cpus.is_empty() { None } else { Some(median(&mut cpus)) };
    let pick = |f: fn(&Phase) -> f64| median(&mut phases.iter().map(f).collect::<Vec<_>>());
    let budget = ctx.params().budget();
    let product = if args.product { Some(product_bench(&args, &ctx, &mut fed, &inputs, &mut rng)?) } else { None };
    let report = json!({
        "bench": "he",
        "set": set.name,
        "parties": n,
        "threshold": args.threshold,
        "length": args.length,
        "key_switch": !args.no_key_switch,
        "flooding_bits": set.flood_bits,
        "reps": args.reps,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "encrypt_seconds": pick(|p| p.encrypt),
        "aggregate_seconds": pick(|p| p.aggregate),
        "decrypt_seconds": pick(|p| p.decrypt),
        "key_switch_seconds": pick(|p| p.key_switch),
        "ciphertext_bytes_per_party": bytes_per_party,
        "ciphertext_bytes_per_value": bytes_per_party as f64 / args.length as f64,
        "decryption_share_bytes": share_bytes,
        "log2_q": budget.log2_q,
        "frac_bits": frac_bits,
        "max_abs_error": max_err,
        "product": product,
    });
    if args.format == "json" {
        println!("{report}");
    } else {
        println!(
            "he {} n={n} t={} m={}: {seconds:.4} s wall, {} s CPU (encrypt {:.4}, aggregate {:.4}, decrypt {:.4}, key switch {:.4}); {:.1} ciphertext bytes per value; flooding 2^{}",
            set.name,
            args.threshold,
            args.length,
            cpu_seconds.map_or("n/a".to_string(), |c| format!("{c:.4}")),
            pick(|p| p.encrypt),
            pick(|p| p.aggregate),
            pick(|p| p.decrypt),
            pick(|p| p.key_switch),
            bytes_per_party as f64 / args.length as f64,
            set.flood_bits,
        );
        if let Some(p) = &product {
            println!("product: {p}");
        }
    }
    Ok(())
}

/// `--product`: time the relinearisation-key protocol among the first `t`
/// parties and one product (aggregate × aggregate) with its threshold
/// decryption; check the decoded products against the plain ones.
fn product_bench(
    args: &HeBenchArgs,
    ctx: &HeContext,
    fed: &mut LocalFederation,
    inputs: &[Vec<f64>],
    rng: &mut ChaCha20Rng,
) -> anyhow::Result<serde_json::Value> {
    let n = args.parties;
    let holders = fed.public_key.holders().to_vec();
    let parts: Vec<PartyId> = holders[..args.threshold].to_vec();
    // Largest scale whose squared sums fit t: (n·2^f)² < 2^60.
    let frac_bits = ((59.0 - 2.0 * (n as f64).log2()) / 2.0).floor().clamp(1.0, 40.0) as u32 - 1;
    let fixed = FixedParams::new(frac_bits, 1.0, n)?;
    check_product_fixed(ctx, &fixed, &fixed)?;
    let t0 = Instant::now();
    let cpu0 = thread_cpu_seconds();
    let ses = RelinSession::new(&fed.public_key, &parts, &[0x5e; 32])?;
    let mut gens = parts
        .iter()
        .map(|p| {
            let i = holders.iter().position(|h| h == p).context("participant")?;
            Ok(ses.generator(&fed.shares[i], rng)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut r1 = Vec::with_capacity(gens.len());
    let mut r1_bytes = 0;
    for g in gens.iter_mut() {
        let b = g.round_1(rng)?.to_bytes(&ses);
        r1_bytes = b.len();
        r1.push(RelinRound1Share::from_bytes(&ses, &b, g.party())?);
    }
    let agg = ses.aggregate_round1(&r1)?;
    let agg = RelinRound1Aggregate::from_bytes(&ses, &agg.to_bytes(&ses), None)?;
    let mut r2 = Vec::with_capacity(gens.len());
    let mut r2_bytes = 0;
    for g in gens {
        let p = g.party();
        let b = g.round_2(&agg, rng)?.to_bytes(&ses);
        r2_bytes = b.len();
        r2.push(RelinRound2Share::from_bytes(&ses, &b, p)?);
    }
    let key_bytes = ses.aggregate_round2(&agg, &r2)?.to_bytes();
    let rlk = CollectiveRelinKey::from_bytes(ctx, &key_bytes, None)?;
    let rkg_seconds = t0.elapsed().as_secs_f64();
    let rkg_cpu = cpu0.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
    // Encrypt (not timed), then one product and its threshold decryption.
    let mut agg_ct: Option<HeVector> = None;
    for (i, x) in inputs.iter().enumerate() {
        let ct = fed.public_key.encrypt_f64(&fixed, x, rng)?;
        match &mut agg_ct {
            None => agg_ct = Some(ct),
            Some(a) => a.add_assign(&ct, Some(holders[i]))?,
        }
    }
    let agg_ct = agg_ct.context("no input")?;
    let t1 = Instant::now();
    let z = agg_ct.mul(&agg_ct, &rlk, None)?;
    let product_seconds = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let req = z.decrypt_request(&parts);
    let mut shares = Vec::with_capacity(parts.len());
    for key in fed.shares.iter_mut().filter(|k| parts.contains(&k.party())) {
        shares.push(key.share(&req, rng)?);
    }
    let values = z.threshold_decrypt(ctx, &parts, &shares)?;
    let decrypt_seconds = t2.elapsed().as_secs_f64();
    let got = decode_product(&fixed, &fixed, &values);
    let word = |x: f64| fixed.encode(&[x]).map(|w| w[0] as i64);
    let mut max_err = 0f64;
    for (j, g) in got.iter().enumerate() {
        let s: i64 = inputs.iter().map(|x| word(x[j])).sum::<Result<i64, _>>()?;
        let exact = (s as f64) * (s as f64) * 2f64.powi(-2 * frac_bits as i32);
        max_err = max_err.max((g - exact).abs());
    }
    if max_err > 1e-9 * (n * n) as f64 {
        bail!("decrypted products differ from the plain products by {max_err:e}");
    }
    Ok(json!({
        "participants": parts.len(),
        "rkg_seconds": rkg_seconds,
        "rkg_cpu_seconds": rkg_cpu,
        "rkg_round1_share_bytes": r1_bytes,
        "rkg_round2_share_bytes": r2_bytes,
        "relin_key_bytes": key_bytes.len(),
        "product_seconds": product_seconds,
        "product_decrypt_seconds": decrypt_seconds,
        "product_noise_log2": z.noise_log2(),
        "hidden_noise_log2": ctx.params().hidden_noise_log2(),
        "product_frac_bits": 2 * frac_bits,
        "max_abs_error": max_err,
    }))
}
