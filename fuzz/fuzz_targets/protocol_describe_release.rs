//! The describe release computed from a secure sum the coordinator controls: arbitrary sums never
//! panic, and every release respects the minimum cell count it was computed with.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::describe::{release, respects_min_count, vector_len};
use seh_protocol::spec::{DescribeSpec, HistogramSpec};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<4>() else { return };
    let columns = usize::from(head[0] % 3) + 1;
    let histograms = usize::from(head[1] % 3);
    let bins = u32::from(head[2] % 16) + 1;
    let min = u64::from(head[3] % 8);
    let spec = DescribeSpec {
        columns: (0..columns).map(|i| format!("c{i}")).collect(),
        histograms: (0..histograms)
            .map(|i| HistogramSpec { column: format!("c{i}"), lo: -1.0, hi: 1.0, bins })
            .collect(),
    };
    let mut sum: Vec<u64> = rest
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect();
    // Mostly the right length, sometimes not (a wrong length must be an error, not a panic).
    if head[0] & 0x80 == 0 {
        sum.resize(vector_len(&spec), 0);
    }
    match release(&spec, &sum, min) {
        Ok(r) => {
            assert_eq!(sum.len(), vector_len(&spec));
            assert!(respects_min_count(&r, min));
            assert_eq!(r.columns.len(), columns);
            assert!(r.histograms.iter().all(|h| h.counts.len() == bins as usize));
        }
        Err(_) => assert_ne!(sum.len(), vector_len(&spec)),
    }
});
