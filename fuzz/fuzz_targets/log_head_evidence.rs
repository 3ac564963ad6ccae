//! A site's check of the coordinator log lines sent as co-sign evidence (`check_evidence`) on
//! arbitrary lines: never panics. The input is a 9-byte header (flag, previous head seq u64 BE)
//! and newline-separated lines; the document states, for each line that decodes, the entry's own
//! hash (zeros otherwise), so the check reaches the signature and link checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_audit::decode_line;
use seh_crypto::wire::SigningKey;
use seh_protocol::log_head::{check_evidence, HeadDocument, HeadRef};

fuzz_target!(|data: &[u8]| {
    let [flag, s0, s1, s2, s3, s4, s5, s6, s7, body @ ..] = data else { return };
    let lines: Vec<String> = body.split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let hashes: Vec<String> = lines
        .iter()
        .map(|l| decode_line(l.as_bytes()).map_or_else(|_| "00".repeat(32), |e| e.hash().to_hex()))
        .collect();
    let Some((hash, between)) = hashes.split_last() else { return };
    let from = u64::from_be_bytes([*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7]);
    let prev = (flag & 1 == 1).then(|| HeadRef { seq: from, hash: "ab".repeat(32) });
    let first = if prev.is_some() { from.checked_add(1) } else { Some(0) };
    let Some(seq) = first.and_then(|f| f.checked_add(between.len() as u64)) else { return };
    let doc = HeadDocument { federation: "fuzz".into(), seq, hash: hash.clone(), prev, between: between.to_vec() };
    if doc.check_extends("fuzz", None).is_err() {
        return;
    }
    let coordinator = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = check_evidence(&doc, &lines, &coordinator);
    let short = if flag & 2 == 2 { &lines[..lines.len() - 1] } else { &lines[1..] };
    let _ = check_evidence(&doc, short, &coordinator);
});
