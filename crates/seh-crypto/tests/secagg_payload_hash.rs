//! `PayloadBuf` hashes a payload while it is appended (the masked input is
//! hashed for its signature in the masking pass). Whatever the pieces and
//! whatever is overwritten afterwards, `seal` must sign exactly the final
//! payload: its bytes equal `Envelope::sign` + `encode` of that payload.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use seh_crypto::wire::{Envelope, Header, PartyId, PayloadBuf, ProtocolId, SessionId, SignedEnvelope, StudyId};
use std::collections::BTreeMap;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn header() -> Header {
    Header {
        protocol: ProtocolId::SecAgg,
        step: 4,
        sender: PartyId(5),
        recipient: PartyId::COORDINATOR,
        session: SessionId { study: StudyId(*b"payload-hash-001"), round: 2 },
        nonce: 9,
    }
}

fn reference(payload: &[u8]) -> Vec<u8> {
    Envelope::from_parts(header(), payload.to_vec()).sign(&key()).unwrap().encode().unwrap()
}

/// `payload` appended in pieces cut at `cuts` (positions, any order).
fn appended(payload: &[u8], cuts: &[usize]) -> PayloadBuf {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
    cuts.push(payload.len());
    cuts.sort_unstable();
    let mut buf = PayloadBuf::with_capacity(payload.len());
    let mut at = 0;
    for c in cuts {
        buf.extend_from_slice(&payload[at..c]);
        at = c;
    }
    buf
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect()
}

#[test]
fn hashing_while_appending_signs_the_same_bytes() {
    let s = PayloadBuf::HASH_STRIDE;
    for len in [0, 1, 4, s - 1, s, s + 1, 2 * s, 3 * s + 4, 100_003] {
        let payload = pattern(len);
        for cuts in [vec![], vec![4], vec![4, s, s + 8192], vec![1, 2, 3, s - 3, 2 * s + 1]] {
            let buf = appended(&payload, &cuts);
            assert_eq!(buf.as_slice(), &payload[..]);
            assert_eq!(buf.seal(&header(), &key()).unwrap(), reference(&payload), "len {len} cuts {cuts:?}");
        }
    }
}

#[test]
fn overwriting_after_hashing_is_signed_as_overwritten() {
    let s = PayloadBuf::HASH_STRIDE;
    let mut payload = pattern(3 * s + 17);
    let mut buf = appended(&payload, &[5, s + 1, 2 * s + 2]);
    // Bytes already hashed change: the running hash must not be used.
    buf.as_mut_slice()[10] ^= 1;
    payload[10] ^= 1;
    assert_eq!(buf.clone().seal(&header(), &key()).unwrap(), reference(&payload));
    // Appending after an overwrite still signs the whole, current payload.
    buf.extend_from_slice(&pattern(s + 3));
    payload.extend_from_slice(&pattern(s + 3));
    buf.as_mut_slice()[3 * s] ^= 0x80;
    payload[3 * s] ^= 0x80;
    buf.extend_from_slice(b"tail");
    payload.extend_from_slice(b"tail");
    let sealed = buf.seal(&header(), &key()).unwrap();
    assert_eq!(sealed, reference(&payload));
    let roster: BTreeMap<PartyId, _> = [(PartyId(5), key().verifying_key())].into_iter().collect();
    assert_eq!(SignedEnvelope::open_ref(&sealed, &roster).unwrap().payload, &payload[..]);
}

#[test]
fn appended_and_zeroed_buffers_compare_by_payload() {
    let payload = pattern(40_000);
    let mut zeroed = PayloadBuf::zeroed(payload.len());
    zeroed.as_mut_slice().copy_from_slice(&payload);
    assert_eq!(appended(&payload, &[17, 20_000]), zeroed);
    assert_eq!(zeroed.seal(&header(), &key()).unwrap(), reference(&payload));
}

proptest! {
    #[test]
    fn any_pieces_sign_like_the_whole(
        payload in proptest::collection::vec(any::<u8>(), 0..70_000),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        prop_assert_eq!(appended(&payload, &cuts).seal(&header(), &key()).unwrap(), reference(&payload));
    }
}
