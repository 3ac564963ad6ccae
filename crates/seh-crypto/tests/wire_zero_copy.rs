//! The copy-free paths for large payloads: `PayloadBuf::seal` must produce
//! exactly the bytes of `sign` + `encode`, `SignedEnvelope::open_ref` must
//! accept and reject exactly what `open` does, and a SecAgg+ round driven
//! through `SecAggSite::receive_sealed` and `receive_batch_refs` must give the
//! exact sum.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::error::WireError;
use seh_crypto::fixed::FixedParams;
use seh_crypto::secagg::{Graph, MaskedInput, SecAgg, SecAggParams};
use seh_crypto::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use seh_crypto::wire::{
    Envelope, Header, PartyId, PayloadBuf, ProtocolId, SessionGuard, SessionId, SignedEnvelope, StudyId, VerifyingKey,
};
use std::collections::BTreeMap;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn header(sender: u32) -> Header {
    Header {
        protocol: ProtocolId::SecAgg,
        step: 4,
        sender: PartyId(sender),
        recipient: PartyId::COORDINATOR,
        session: SessionId { study: StudyId(*b"heart-study-0001"), round: 3 },
        nonce: 0x0102_0304_0506_0708,
    }
}

fn buf_of(payload: &[u8]) -> PayloadBuf {
    let mut buf = PayloadBuf::zeroed(payload.len());
    buf.as_mut_slice().copy_from_slice(payload);
    buf
}

fn roster() -> BTreeMap<PartyId, VerifyingKey> {
    [(PartyId(7), key(7).verifying_key()), (PartyId(8), key(8).verifying_key())].into_iter().collect()
}

#[test]
fn sealed_buffer_is_the_signed_encoding() {
    let buf = buf_of(b"abc");
    assert_eq!((buf.len(), buf.as_slice()), (3, &b"abc"[..]));
    let sealed = buf.seal(&header(7), &key(7)).unwrap();
    let reference = Envelope::from_parts(header(7), b"abc".to_vec()).sign(&key(7)).unwrap().encode().unwrap();
    assert_eq!(sealed, reference);
    // Empty payload too.
    let empty = PayloadBuf::zeroed(0);
    assert!(empty.is_empty());
    let sealed = empty.seal(&header(7), &key(7)).unwrap();
    assert_eq!(sealed, Envelope::from_parts(header(7), Vec::new()).sign(&key(7)).unwrap().encode().unwrap());
}

#[test]
fn open_ref_borrows_the_payload_and_rejects_what_open_rejects() {
    let roster = roster();
    let bytes = buf_of(b"masked words").seal(&header(7), &key(7)).unwrap();
    let r = SignedEnvelope::open_ref(&bytes, &roster).unwrap();
    assert_eq!(r.header, header(7));
    assert_eq!(r.payload, b"masked words");
    assert_eq!(r.to_envelope(), SignedEnvelope::open(&bytes, &roster).unwrap());
    // The payload is a slice of the received bytes, not a copy.
    assert!(std::ptr::eq(r.payload.as_ptr(), bytes[48..].as_ptr()));

    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(SignedEnvelope::open_ref(&b, &roster).is_err(), "bit flip at {i} accepted");
    }
    // Signed by 8 while claiming 7.
    let forged = buf_of(b"x").seal(&header(7), &key(8)).unwrap();
    assert_eq!(SignedEnvelope::open_ref(&forged, &roster), Err(WireError::BadSignature { sender: PartyId(7) }));
    // Sender not in the roster.
    let stranger = buf_of(b"x").seal(&header(99), &key(7)).unwrap();
    assert_eq!(SignedEnvelope::open_ref(&stranger, &roster), Err(WireError::UnknownSender { sender: PartyId(99) }));
    // Trailing and missing bytes.
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(SignedEnvelope::open_ref(&long, &roster), Err(WireError::TrailingBytes { .. })));
    assert!(matches!(
        SignedEnvelope::open_ref(&bytes[..bytes.len() - 1], &roster),
        Err(WireError::Truncated { field: "signature", .. })
    ));
}

#[test]
fn guard_checks_borrowed_headers() {
    let roster = roster();
    let bytes = buf_of(b"x").seal(&header(7), &key(7)).unwrap();
    let r = SignedEnvelope::open_ref(&bytes, &roster).unwrap();
    let mut guard = SessionGuard::new(header(7).session, 4);
    guard.check_header(&r.header).unwrap();
    assert_eq!(guard.check_header(&r.header), Err(WireError::Replay { sender: PartyId(7), nonce: header(7).nonce }));
    let mut other = SessionGuard::new(SessionId { round: 4, ..header(7).session }, 4);
    assert!(matches!(other.check_header(&r.header), Err(WireError::WrongRound { sender: PartyId(7), .. })));
}

proptest! {
    #[test]
    fn seal_and_open_ref_agree_with_sign_encode_open(
        step: u8, sender in 7u32..9, nonce: u64, round: u32,
        payload in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let h = Header { step, nonce, session: SessionId { round, ..header(sender).session }, ..header(sender) };
        let k = key(sender as u8);
        let sealed = buf_of(&payload).seal(&h, &k).unwrap();
        let env = Envelope::from_parts(h, payload.clone());
        prop_assert_eq!(&sealed, &env.clone().sign(&k).unwrap().encode().unwrap());
        prop_assert_eq!(&sealed, &env.clone().sign(&k).unwrap().into_bytes().unwrap());
        let r = SignedEnvelope::open_ref(&sealed, &roster()).unwrap();
        prop_assert_eq!(r.to_envelope(), env);
    }
}

/// One SecAgg+ aggregation of 5 parties (length 1500, spanning several PRG
/// chunks) with party `drop` silent from the masked-input round on, through
/// the sealed/borrowed paths. Returns the decoded sum and the contributors.
fn run_zero_copy(dropped: Option<PartyId>) -> (Vec<f64>, Vec<PartyId>, Vec<Vec<f64>>) {
    let session = SessionId { study: StudyId([5; 16]), round: 2 };
    let ids: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let keys: BTreeMap<PartyId, SigningKey> = ids.iter().map(|&p| (p, key(p.0 as u8 + 60))).collect();
    let coord_key = key(1);
    let mut roster: BTreeMap<_, _> = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let m = 1500;
    let params = SecAggParams::new(session, &ids, 3, m, Graph::Complete).unwrap();
    let agg = SecAgg::new(params, FixedParams::new(20, 10.0, 5).unwrap(), roster.clone()).unwrap();
    roster.insert(PartyId::COORDINATOR, coord_key.verifying_key());
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let inputs: Vec<Vec<f64>> =
        ids.iter().map(|p| (0..m).map(|i| ((i as f64) * 0.37 + p.0 as f64).sin() * 9.0).collect()).collect();
    let mut sites = BTreeMap::new();
    let mut wire: Vec<Vec<u8>> = Vec::new();
    for (&p, x) in ids.iter().zip(&inputs) {
        let mut site = agg.contribute(p, &keys[&p], agg.encode(x).unwrap()).unwrap();
        for env in site.start(&mut rng).unwrap() {
            wire.push(env.sign(&keys[&p]).unwrap().encode().unwrap());
        }
        sites.insert(p, site);
    }
    let mut coord = agg.combine();
    let mut guard = SessionGuard::new(session, 8);
    for round in 0.. {
        let envs: Vec<_> = wire.iter().map(|b| SignedEnvelope::open_ref(b, &roster).unwrap()).collect();
        for e in &envs {
            guard.check_header(&e.header).unwrap();
        }
        let rejected = coord.receive_batch_refs(&envs, |sum, bodies| {
            let (a, b) = sum.split_at_mut(700);
            MaskedInput::add_bodies(a, 0, bodies);
            MaskedInput::add_bodies(b, 700, bodies);
        });
        assert!(rejected.is_empty(), "{rejected:?}");
        drop(envs);
        wire.clear();
        match coord.close_round().unwrap() {
            RoundOutcome::Done { sum, contributors } => return (agg.decode(&sum).unwrap(), contributors, inputs),
            RoundOutcome::Send(out) => {
                for env in out {
                    let bytes = env.sign(&coord_key).unwrap().encode().unwrap();
                    let opened = SignedEnvelope::open(&bytes, &roster).unwrap();
                    for (&p, site) in sites.iter_mut() {
                        let to_me = opened.recipient == p || opened.recipient == PartyId::BROADCAST;
                        if !to_me || site.is_done() || (round >= 1 && dropped == Some(p)) {
                            continue;
                        }
                        wire.extend(site.receive_sealed(&opened, &mut rng).unwrap());
                    }
                }
            }
        }
    }
    unreachable!()
}

#[test]
fn secagg_round_through_sealed_and_borrowed_paths_is_exact() {
    for drop in [None, Some(PartyId(2))] {
        let (sum, contributors, inputs) = run_zero_copy(drop);
        let expected_ids: Vec<PartyId> = (1..=5).map(PartyId).filter(|p| Some(*p) != drop).collect();
        assert_eq!(contributors, expected_ids);
        let fixed = FixedParams::new(20, 10.0, 5).unwrap();
        for (i, s) in sum.iter().enumerate() {
            let want: f64 = contributors.iter().map(|p| inputs[(p.0 - 1) as usize][i]).sum();
            assert!((s - want).abs() <= 5.0 * fixed.resolution(), "word {i}: {s} vs {want}");
        }
    }
}

#[test]
fn masked_input_from_the_sealed_path_is_not_the_plain_input() {
    // The coordinator sees masked words: a sealed masked input of party 1 must
    // differ from its plain encoding (masks were applied in the buffer).
    let session = SessionId { study: StudyId([6; 16]), round: 0 };
    let ids: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let keys: BTreeMap<PartyId, SigningKey> = ids.iter().map(|&p| (p, key(p.0 as u8 + 80))).collect();
    let mut roster: BTreeMap<_, _> = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    let params = SecAggParams::new(session, &ids, 2, 64, Graph::Complete).unwrap();
    let agg = SecAgg::new(params, FixedParams::new(20, 10.0, 3).unwrap(), roster.clone()).unwrap();
    let coord_key = key(2);
    roster.insert(PartyId::COORDINATOR, coord_key.verifying_key());
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let plain = vec![1.0; 64];
    let mut sites: BTreeMap<PartyId, _> =
        ids.iter().map(|&p| (p, agg.contribute(p, &keys[&p], agg.encode(&plain).unwrap()).unwrap())).collect();
    let mut coord = agg.combine();
    let mut inbox: Vec<Envelope> = Vec::new();
    let mut checked = 0;
    for (p, s) in sites.iter_mut() {
        for e in s.start(&mut rng).unwrap() {
            let b = e.sign(&keys[p]).unwrap().encode().unwrap();
            coord.receive(&SignedEnvelope::open(&b, &roster).unwrap()).unwrap();
        }
    }
    for _ in 0..2 {
        let RoundOutcome::Send(out) = coord.close_round().unwrap() else { panic!("finished early") };
        for env in out {
            let b = env.sign(&coord_key).unwrap().encode().unwrap();
            let env = SignedEnvelope::open(&b, &roster).unwrap();
            for (&p, s) in sites.iter_mut() {
                if env.recipient == p || env.recipient == PartyId::BROADCAST {
                    for sealed in s.receive_sealed(&env, &mut rng).unwrap() {
                        inbox.push(SignedEnvelope::open(&sealed, &roster).unwrap());
                    }
                }
            }
        }
        for e in inbox.drain(..) {
            if e.step == 4 {
                let encoded = agg.encode(&plain).unwrap();
                let words = MaskedInput::body(&e.payload, e.sender, 64).unwrap();
                let same = words.chunks_exact(8).zip(&encoded).filter(|(w, x)| w == &&x.to_le_bytes()[..]).count();
                assert!(same < 4, "{same} of 64 words left unmasked");
                checked += 1;
            }
            coord.receive(&e).unwrap();
        }
    }
    assert_eq!(checked, 3, "every party's masked input was inspected");
}
