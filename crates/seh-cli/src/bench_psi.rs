//! `seh bench psi`: Diffie–Hellman PSI of N × N identifiers (half of them
//! shared), both parties' work in one process, with the expensive pure steps
//! spread over threads (the library itself is single-threaded and sans-IO).
//!
//! Reported `seconds` is the wall time of the whole protocol: receiver
//! blinding and shuffle, request encode/decode, sender re-blinding and own
//! blinding, response encode/decode, receiver re-blinding and matching.

use std::time::Instant;

use anyhow::{bail, Context};
use rand::rngs::OsRng;
use seh_crypto::psi::{
    receiver_start_precomputed, sender_respond_precomputed, BlindedElement, PsiError, PsiRequest, PsiResponse,
    PsiSecret,
};
use serde_json::json;

/// Flags of `seh bench psi`.
#[derive(Debug, clap::Args)]
pub struct PsiBenchArgs {
    /// Identifiers per party; the sets overlap in `size / 2` identifiers.
    #[arg(long, default_value_t = 100_000)]
    pub size: usize,
    /// Worker threads for the pure blinding steps (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// Run `f` on `threads` contiguous chunks of `items` and concatenate the results in order.
fn par_chunks<T: Sync, U: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T], usize) -> Result<Vec<U>, PsiError> + Sync,
) -> anyhow::Result<Vec<U>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let chunk = items.len().div_ceil(threads.max(1));
    let parts: Vec<anyhow::Result<Vec<U>>> = std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(k, c)| {
                let f = &f;
                s.spawn(move || f(c, k * chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("a PSI worker thread panicked")),
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Run the benchmark and print the result.
pub fn run(args: PsiBenchArgs) -> anyhow::Result<()> {
    if args.size == 0 || args.size > seh_crypto::psi::MAX_SET_SIZE {
        bail!("--size must be in 1..={}", seh_crypto::psi::MAX_SET_SIZE);
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let n = args.size;
    let receiver_ids: Vec<Vec<u8>> = (0..n).map(|i| format!("patient-{i:09}").into_bytes()).collect();
    let sender_ids: Vec<Vec<u8>> = (n / 2..n / 2 + n).map(|i| format!("patient-{i:09}").into_bytes()).collect();
    let expected = n - n / 2;
    let context = b"seh bench psi";
    let mut rng = OsRng;

    let start = Instant::now();
    // Receiver, step 1.
    let a = PsiSecret::random(&mut rng, context);
    let blinded = par_chunks(&receiver_ids, threads, |c, _| Ok(a.blind_ids(c)))?;
    let (state, request) = receiver_start_precomputed(a, blinded, &mut rng)?;
    let request = PsiRequest::decode(&request.encode())?;
    let t_receiver1 = start.elapsed();

    // Sender.
    let b = PsiSecret::random(&mut rng, context);
    let double = par_chunks(&request.elements, threads, |c, off| b.reblind(c, "request", off))?;
    let own = par_chunks(&sender_ids, threads, |c, _| Ok(b.blind_ids(c)))?;
    let response = sender_respond_precomputed(own, double, &mut rng);
    let response = PsiResponse::decode(&response.encode())?;
    let t_sender = start.elapsed() - t_receiver1;

    // Receiver, step 2.
    let secret = state.secret().clone();
    let sender_double: Vec<BlindedElement> =
        par_chunks(&response.sender_elements, threads, |c, off| secret.reblind(c, "response.sender_elements", off))?;
    let intersection = state.finish_precomputed(&response.double_blinded, &sender_double)?;
    let seconds = start.elapsed().as_secs_f64();
    let t_receiver2 = seconds - t_receiver1.as_secs_f64() - t_sender.as_secs_f64();

    let found = intersection.indices.len();
    if found != expected || intersection.indices.first().copied() != Some(n / 2) {
        bail!("PSI returned {found} common identifiers, expected {expected}");
    }
    let result = json!({
        "bench": "psi",
        "size": n,
        "intersection": found,
        "seconds": seconds,
        "threads": threads,
        "receiver_blind_seconds": t_receiver1.as_secs_f64(),
        "sender_seconds": t_sender.as_secs_f64(),
        "receiver_finish_seconds": t_receiver2,
        "group_operations": 4 * n,
    });
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&result).context("serialize result")?);
    } else {
        println!(
            "DH-PSI ristretto255, {n} x {n} ids, {found} in common: {seconds:.3} s on {threads} thread(s) \
             (receiver blind {:.3} s, sender {:.3} s, receiver finish {:.3} s)",
            t_receiver1.as_secs_f64(),
            t_sender.as_secs_f64(),
            t_receiver2
        );
    }
    Ok(())
}
