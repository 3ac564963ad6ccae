//! The mask PRG: AES-128 in counter mode (128-bit big-endian counter from 0),
//! keystream read as little-endian `u64` words and added to (or subtracted
//! from) a vector mod 2^64. Keys are single-use (derived per session and
//! party pair), so a zero IV is safe.
//!
//! # Implementation and measurements
//!
//! The keystream is produced by the `aes` crate (0.9, run-time detection of
//! AES-NI, VAES-256 and VAES-512). Counter mode is done here rather than with
//! the `ctr` crate because every stream of one pass sits at the same position,
//! so one buffer of counter blocks per chunk serves all of them (no
//! per-stream counter arithmetic, no XOR into a zeroed buffer). The stream is
//! run as a closure inside the cipher's backend (`encrypt_with_backend`): each
//! parallel batch of counters (64 blocks = 1 KiB under VAES-512) is encrypted
//! into a stack buffer and added to the vector at once, and because the
//! closure is compiled inside the backend's `#[target_feature]` function the
//! addition uses that backend's vector width (512-bit adds under VAES-512;
//! the rest of the crate is built for baseline x86-64, i.e. SSE2).
//! Measured on the reference 2-core Xeon (AES-NI, VAES, AVX-512), one thread,
//! ten streams over a 10^6-word vector (80 MB of keystream, added mod 2^64),
//! best of 7 on a quiet machine for the first six rows; the last three are
//! best of 25, run back to back while other builds used the machine, so
//! compare them with each other only:
//!
//! | variant | ms | GB/s |
//! |---|---|---|
//! | `aes` 0.8 + `ctr` 0.9 `apply_keystream` | 14.7 | 5.4 |
//! | `aes` 0.9.4 + `ctr` 0.10 `apply_keystream` | 19.1 | 4.2 |
//! | `aes` 0.9.4 + `ctr` 0.10 `write_keystream` | 15.3 | 5.2 |
//! | `aes` 0.9.4 `encrypt_blocks`, counters rebuilt per stream | 15.4 | 5.2 |
//! | `aes` 0.9.4 `encrypt_blocks_b2b` into an 8 KiB buffer, counters shared (v1) | 12.0 | 6.7 |
//! | (bound: `encrypt_blocks` alone, no counters, no addition) | — | 9.2–9.4 |
//! | v1, under load | 11.8–12.1 | 6.6–6.8 |
//! | **batch closure in the backend, counters shared (this code), under load** | 10.7–11.4 | 7.0–7.5 |
//! | (bound, under load: `encrypt_blocks` alone) | 10.5–10.9 | 7.3–7.6 |
//!
//! So the mask loop now runs at the speed of bare AES in the same conditions;
//! what remains is the cipher itself. The VAES-512 backend of `aes` 0.9 is no
//! faster than its AES-NI path on this CPU (both ≈ 9.3 GB/s raw).
//! ChaCha8 (`rand_chacha`, `chacha20` without the opt-in AVX-512 cfg) ran at
//! 2.0–2.3 GB/s. Chunks of 1024 words keep the vector chunk and the counter
//! buffer (8 KiB each) in L1.
//!
//! [`apply_masks`] walks the vector once and applies all streams to each
//! chunk, so a party with `k` neighbours reads and writes its vector once
//! rather than `k + 1` times; [`mask_to_le_bytes`] and [`mask_into_payload`]
//! also append the masked words as the wire encoding in the same pass (the
//! latter into a [`PayloadBuf`], which hashes them for the envelope
//! signature while they are in cache).

use crate::wire::PayloadBuf;
use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::inout::{InOut, InOutBuf};
use aes::cipher::typenum::Unsigned;
use aes::cipher::{
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, KeyInit, ParBlocks,
    ParBlocksSizeUser,
};
use aes::{Aes128, Block};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Words processed per chunk.
const CHUNK: usize = 1024;
/// Counter blocks per chunk (one more for a chunk starting mid-block).
const BLOCKS: usize = CHUNK / 2 + 1;

/// One keyed mask stream with a sign and a position (in words).
pub struct MaskStream {
    cipher: Aes128,
    word: u64,
    negate: bool,
}

impl fmt::Debug for MaskStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskStream")
            .field("key", &"<redacted>")
            .field("word", &self.word)
            .field("negate", &self.negate)
            .finish()
    }
}

impl MaskStream {
    /// A stream keyed by `key` that adds (`negate = false`) or subtracts its words.
    pub fn new(key: &Zeroizing<[u8; 16]>, negate: bool) -> MaskStream {
        MaskStream::new_at(key, negate, 0)
    }

    /// Like [`MaskStream::new`] but positioned at word `offset` of the stream,
    /// so disjoint ranges of a vector can be masked independently.
    pub fn new_at(key: &Zeroizing<[u8; 16]>, negate: bool, offset: usize) -> MaskStream {
        let k: &[u8; 16] = key;
        MaskStream { cipher: Aes128::new(k.into()), word: offset as u64, negate }
    }
}

/// The counter blocks of one chunk, shared by every stream at that position.
struct Scratch {
    counters: Vec<Block>,
    /// Block index of `counters[0]` and how many blocks from there are filled.
    first: u64,
    filled: usize,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch { counters: vec![Block::default(); BLOCKS], first: 0, filled: 0 }
    }

    /// Add (or subtract) the next `acc.len() ≤ CHUNK` words of `s` to `acc`.
    fn apply(&mut self, acc: &mut [u64], s: &mut MaskStream) {
        let skip = (s.word % 2) as usize;
        let first = s.word / 2;
        let nb = (skip + acc.len()).div_ceil(2).min(BLOCKS);
        if self.first != first || self.filled < nb {
            // Block b encrypts the 128-bit big-endian counter b (< 2^64: high half zero).
            for (j, c) in self.counters[..nb].iter_mut().enumerate() {
                c[..8].fill(0);
                c[8..].copy_from_slice(&first.wrapping_add(j as u64).to_be_bytes());
            }
            self.first = first;
            self.filled = nb;
        }
        let counters = self.counters.get(..nb).unwrap_or_default();
        s.cipher.encrypt_with_backend(AddKeystream { counters, acc: &mut *acc, skip, negate: s.negate });
        s.word = s.word.wrapping_add(acc.len() as u64);
    }
}

/// The body of counter mode, run by the `aes` crate with the backend it
/// detected (so the addition below is compiled inside that backend's
/// target-feature context, e.g. with 512-bit vectors under VAES-512):
/// encrypt the counters one parallel batch at a time into a keystream buffer
/// on the stack (1 KiB for VAES-512) and add it to `acc` while it is in L1.
struct AddKeystream<'a> {
    counters: &'a [Block],
    acc: &'a mut [u64],
    /// Keystream words to drop before the first word of `acc` (0 or 1).
    skip: usize,
    negate: bool,
}

impl BlockSizeUser for AddKeystream<'_> {
    type BlockSize = U16;
}

impl BlockCipherEncClosure for AddKeystream<'_> {
    #[inline(always)]
    fn call<B: BlockCipherEncBackend<BlockSize = U16>>(self, backend: &B) {
        let par = <B as ParBlocksSizeUser>::ParBlocksSize::USIZE;
        let mut ks: ParBlocks<B> = Default::default();
        let mut acc = self.acc;
        let mut skip = self.skip;
        let mut batches = self.counters.chunks_exact(par);
        for batch in batches.by_ref() {
            if let Ok(input) = <&ParBlocks<B>>::try_from(batch) {
                backend.encrypt_par_blocks(InOut::from((input, &mut ks)));
            }
            acc = add_keystream(acc, keystream_bytes(&ks, par, skip), self.negate);
            skip = 0;
        }
        let tail = batches.remainder();
        if let Some(out) = ks.get_mut(..tail.len()) {
            if let Ok(buf) = InOutBuf::new(tail, out) {
                backend.encrypt_tail_blocks(buf);
            }
            add_keystream(acc, keystream_bytes(&ks, tail.len(), skip), self.negate);
        }
        Array::cast_slice_to_core_mut(&mut ks).as_flattened_mut().zeroize();
    }
}

/// The first `blocks` keystream blocks of `ks` as bytes, less `skip` words.
#[inline(always)]
fn keystream_bytes(ks: &[Block], blocks: usize, skip: usize) -> &[u8] {
    let blocks = ks.get(..blocks).unwrap_or_default();
    Array::cast_slice_to_core(blocks).as_flattened().get(skip * 8..).unwrap_or_default()
}

/// Add (or subtract) the little-endian words of `ks` to the front of `acc`;
/// returns the part of `acc` not reached.
#[inline(always)]
fn add_keystream<'a>(acc: &'a mut [u64], ks: &[u8], negate: bool) -> &'a mut [u64] {
    let n = (ks.len() / 8).min(acc.len());
    let (head, rest) = acc.split_at_mut(n);
    let words = ks.chunks_exact(8).map(|w| {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        u64::from_le_bytes(a)
    });
    if negate {
        for (a, w) in head.iter_mut().zip(words) {
            *a = a.wrapping_sub(w);
        }
    } else {
        for (a, w) in head.iter_mut().zip(words) {
            *a = a.wrapping_add(w);
        }
    }
    rest
}

/// Add every stream's next `acc.len()` words to `acc` (subtract for negated
/// streams), mod 2^64.
pub fn apply_masks(acc: &mut [u64], streams: &mut [MaskStream]) {
    let mut scratch = Scratch::new();
    for chunk in acc.chunks_mut(CHUNK) {
        for s in streams.iter_mut() {
            scratch.apply(chunk, s);
        }
    }
}

/// [`apply_masks`] on `acc`, appending each masked word little-endian to
/// `out` in the same pass (the wire encoding of the masked vector). Nothing
/// is written twice: `out` needs only capacity, not a zero-filled buffer.
pub fn mask_to_le_bytes(acc: &mut [u64], streams: &mut [MaskStream], out: &mut Vec<u8>) {
    mask_chunks(acc, streams, |bytes| out.extend_from_slice(bytes));
}

/// [`mask_to_le_bytes`] into a [`PayloadBuf`], whose
/// [`PayloadBuf::extend_from_slice`] also hashes the payload for signing while
/// the words are in cache.
pub fn mask_into_payload(acc: &mut [u64], streams: &mut [MaskStream], out: &mut PayloadBuf) {
    mask_chunks(acc, streams, |bytes| out.extend_from_slice(bytes));
}

/// Mask `acc` chunk by chunk and hand each masked chunk, little-endian, to `emit`.
fn mask_chunks(acc: &mut [u64], streams: &mut [MaskStream], mut emit: impl FnMut(&[u8])) {
    let mut scratch = Scratch::new();
    let mut bytes = [0u8; CHUNK * 8];
    for chunk in acc.chunks_mut(CHUNK) {
        for s in streams.iter_mut() {
            scratch.apply(chunk, s);
        }
        for (b, w) in bytes.chunks_exact_mut(8).zip(chunk.iter()) {
            b.copy_from_slice(&w.to_le_bytes());
        }
        emit(bytes.get(..8 * chunk.len()).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr_reference(key: &[u8; 16], words: usize) -> Vec<u64> {
        // Independent CTR: encrypt counter blocks one at a time.
        let c = Aes128::new(key.into());
        (0..words.div_ceil(2) as u128)
            .flat_map(|b| {
                let mut block = Array::from(b.to_be_bytes());
                c.encrypt_block(&mut block);
                let bytes: [u8; 16] = block.into();
                let lo = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                let hi = u64::from_le_bytes(bytes[8..].try_into().unwrap());
                [lo, hi]
            })
            .take(words)
            .collect()
    }

    #[test]
    fn fips197_aes128_known_answer() {
        // FIPS-197 appendix C.1: the AES backend in use computes AES-128.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut block = Array::from(core::array::from_fn::<u8, 16, _>(|i| (i as u8) * 0x11));
        Aes128::new(&key.into()).encrypt_block(&mut block);
        let expected = [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a];
        assert_eq!(<[u8; 16]>::from(block), expected);
    }

    #[test]
    fn first_word_is_aes_of_zero_block() {
        // CTR with counter 0: keystream block 0 = AES_k(0^128).
        let key = Zeroizing::new([7u8; 16]);
        let mut block = Array::from([0u8; 16]);
        Aes128::new(&(*key).into()).encrypt_block(&mut block);
        let mut acc = vec![0u64; 3];
        apply_masks(&mut acc, &mut [MaskStream::new(&key, false)]);
        assert_eq!(acc[0], u64::from_le_bytes(block[..8].try_into().unwrap()));
        assert_eq!(acc[1], u64::from_le_bytes(block[8..].try_into().unwrap()));
    }

    #[test]
    fn matches_block_by_block_ctr_across_chunks() {
        let key = Zeroizing::new([5u8; 16]);
        let n = CHUNK * 3 + 7;
        let mut acc = vec![0u64; n];
        apply_masks(&mut acc, &mut [MaskStream::new(&key, false)]);
        assert_eq!(acc, ctr_reference(&key, n));
    }

    #[test]
    fn seeking_matches_a_whole_pass_at_odd_offsets() {
        let key = Zeroizing::new([3u8; 16]);
        let other = Zeroizing::new([4u8; 16]);
        let n = 5000;
        let mut whole = vec![0u64; n];
        apply_masks(&mut whole, &mut [MaskStream::new(&key, false), MaskStream::new(&other, true)]);
        for cut in [1, 1023, 1024, 1025, 1234, 2049, 4999] {
            let mut parts = vec![0u64; n];
            let (a, b) = parts.split_at_mut(cut);
            apply_masks(a, &mut [MaskStream::new_at(&key, false, 0), MaskStream::new_at(&other, true, 0)]);
            apply_masks(b, &mut [MaskStream::new_at(&key, false, cut), MaskStream::new_at(&other, true, cut)]);
            assert_eq!(whole, parts, "cut {cut}");
        }
        // Streams at different positions in one call.
        let mut mixed = vec![0u64; 100];
        apply_masks(&mut mixed, &mut [MaskStream::new_at(&key, false, 7), MaskStream::new_at(&other, true, 8)]);
        let k = ctr_reference(&key, 107);
        let o = ctr_reference(&other, 108);
        for (i, m) in mixed.iter().enumerate() {
            assert_eq!(*m, k[i + 7].wrapping_sub(o[i + 8]), "{i}");
        }
    }

    #[test]
    fn matches_reference_at_every_batch_edge() {
        // Lengths and offsets around the parallel batch sizes of the AES
        // backends (8, 30 and 64 blocks) and the chunk size.
        let key = Zeroizing::new([11u8; 16]);
        let reference = ctr_reference(&key, 2 * CHUNK + 300);
        for len in (1..=260).chain([CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 1]) {
            for offset in [0usize, 1, 2, 3, 59, 60, 61, 127, 128, 129] {
                let mut acc: Vec<u64> = (0..len as u64).collect();
                apply_masks(&mut acc, &mut [MaskStream::new_at(&key, false, offset)]);
                for (i, a) in acc.iter().enumerate() {
                    assert_eq!(*a, (i as u64).wrapping_add(reference[offset + i]), "len {len} offset {offset} i {i}");
                }
            }
        }
    }

    #[test]
    fn plus_and_minus_cancel_across_chunk_boundaries() {
        let key = Zeroizing::new([9u8; 16]);
        let orig: Vec<u64> = (0..(CHUNK as u64 * 2 + 5)).collect();
        let mut acc = orig.clone();
        apply_masks(&mut acc, &mut [MaskStream::new(&key, false)]);
        assert_ne!(acc, orig);
        apply_masks(&mut acc, &mut [MaskStream::new(&key, true)]);
        assert_eq!(acc, orig);
    }

    #[test]
    fn encoding_pass_equals_mask_then_encode() {
        let key = Zeroizing::new([1u8; 16]);
        let orig: Vec<u64> = (0..(CHUNK as u64 + 3)).map(|i| i * 0x9e37_79b9).collect();
        let mut masked = orig.clone();
        apply_masks(&mut masked, &mut [MaskStream::new(&key, false)]);
        let mut acc = orig.clone();
        let mut out = b"pre".to_vec();
        mask_to_le_bytes(&mut acc, &mut [MaskStream::new(&key, false)], &mut out);
        assert_eq!(acc, masked);
        assert_eq!(&out[..3], b"pre");
        let words: Vec<u64> = out[3..].chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, masked);
        // Into a payload buffer, hashed on the way: same bytes, same hash.
        let mut acc = orig.clone();
        let mut buf = PayloadBuf::with_capacity(8 * acc.len());
        mask_into_payload(&mut acc, &mut [MaskStream::new(&key, false)], &mut buf);
        assert_eq!(acc, masked);
        assert_eq!(buf.as_slice(), &out[3..]);
    }
}
