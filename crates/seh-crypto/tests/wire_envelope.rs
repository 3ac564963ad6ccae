//! Wire envelope: snapshot of the encoding, strict decoding, signatures and
//! replay / out-of-round rejection.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use seh_crypto::error::WireError;
use seh_crypto::wire::{
    Envelope, PartyId, ProtocolId, Reader, SessionGuard, SessionId, SignedEnvelope, StudyId, Writer, HEADER_LEN,
    MAX_PAYLOAD_LEN,
};
use std::collections::BTreeMap;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn study() -> StudyId {
    StudyId(*b"heart-study-0001")
}

fn fixed() -> Envelope {
    Envelope {
        protocol: ProtocolId::SecAgg,
        step: 2,
        sender: PartyId(7),
        recipient: PartyId::COORDINATOR,
        session: SessionId { study: study(), round: 3 },
        nonce: 0x0102_0304_0506_0708,
        payload: b"abc".to_vec(),
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

const FIXED_HEX: &str = concat!(
    "53454857",                         // magic SEHW
    "01",                               // version
    "02",                               // protocol SecAgg
    "02",                               // step
    "00",                               // reserved
    "00000007",                         // sender
    "00000000",                         // recipient (coordinator)
    "68656172742d73747564792d30303031", // study id
    "00000003",                         // round
    "0102030405060708",                 // nonce
    "00000003",                         // payload length
    "616263",                           // payload
);

#[test]
fn snapshot_of_fixed_envelope() {
    let bytes = fixed().encode().unwrap();
    assert_eq!(hex(&bytes), FIXED_HEX);
    assert_eq!(bytes.len(), HEADER_LEN + 3);
    assert_eq!(Envelope::decode(&bytes).unwrap(), fixed());
}

#[test]
fn snapshot_of_signed_envelope() {
    // Ed25519 is deterministic, so the signature over the fixed envelope is fixed too.
    let signed = fixed().sign(&key(9)).unwrap();
    let bytes = signed.encode().unwrap();
    // The documented signing input, rebuilt by hand: context || header || BLAKE3(payload).
    use ed25519_dalek::Signer;
    let mut msg = seh_crypto::wire::SIGNING_CONTEXT.to_vec();
    msg.extend_from_slice(&bytes[..HEADER_LEN]);
    msg.extend_from_slice(blake3::hash(b"abc").as_bytes());
    assert_eq!(&bytes[HEADER_LEN + 3..], &key(9).sign(&msg).to_bytes()[..]);
    assert_eq!(&hex(&bytes)[..FIXED_HEX.len()], FIXED_HEX);
    assert_eq!(
        &hex(&bytes)[FIXED_HEX.len()..],
        "a38d56f136c53fc9a79f1e15b622c41cd8128a1f5ba1c4957d5503ddd69ba72525e9a132f0a948c3b580c594ed897778eeca4a5a9ebe93b4d31592ef66b2b706"
    );
}

#[test]
fn strict_decoding_names_field_and_sender() {
    let good = fixed().encode().unwrap();
    // trailing byte
    let mut b = good.clone();
    b.push(0);
    assert_eq!(
        Envelope::decode(&b),
        Err(WireError::TrailingBytes { sender: Some(PartyId(7)), after: "envelope", extra: 1 })
    );
    // truncated payload
    let b = &good[..good.len() - 1];
    assert_eq!(
        Envelope::decode(b),
        Err(WireError::Truncated { sender: Some(PartyId(7)), field: "payload", needed: 3, available: 2 })
    );
    // truncated header before the sender field
    assert!(matches!(Envelope::decode(&good[..6]), Err(WireError::Truncated { sender: None, field: "step", .. })));
    // bad magic
    let mut b = good.clone();
    b[0] = b'X';
    assert!(matches!(Envelope::decode(&b), Err(WireError::BadMagic { .. })));
    // unknown version
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(Envelope::decode(&b), Err(WireError::UnsupportedVersion { sender: Some(PartyId(7)), version: 2 }));
    // unknown protocol
    let mut b = good.clone();
    b[5] = 0xee;
    assert_eq!(Envelope::decode(&b), Err(WireError::UnknownProtocol { sender: Some(PartyId(7)), id: 0xee }));
    // reserved byte
    let mut b = good.clone();
    b[7] = 1;
    assert!(matches!(Envelope::decode(&b), Err(WireError::ReservedNonZero { .. })));
    // payload length above the bound
    let mut b = good.clone();
    b[44..48].copy_from_slice(&((MAX_PAYLOAD_LEN as u32) + 1).to_be_bytes());
    assert!(matches!(Envelope::decode(&b), Err(WireError::TooLarge { field: "payload", .. })));
    // every strict prefix fails
    for n in 0..good.len() {
        assert!(Envelope::decode(&good[..n]).is_err(), "prefix {n} accepted");
    }
}

#[test]
fn every_protocol_id_round_trips_and_others_are_rejected() {
    for b in 0..=255u8 {
        match ProtocolId::from_u8(b) {
            Some(p) => assert_eq!(p as u8, b),
            None => assert!(!ProtocolId::ALL.iter().any(|p| *p as u8 == b)),
        }
    }
    assert_eq!(ProtocolId::ALL.len(), 8);
}

#[test]
fn signatures_bind_sender_and_content() {
    let mut roster = BTreeMap::new();
    roster.insert(PartyId(7), key(7).verifying_key());
    roster.insert(PartyId(8), key(8).verifying_key());
    let signed = fixed().sign(&key(7)).unwrap();
    let bytes = signed.encode().unwrap();
    assert_eq!(SignedEnvelope::open(&bytes, &roster).unwrap(), fixed());

    // signed by someone else while claiming to be 7
    let forged = fixed().sign(&key(8)).unwrap().encode().unwrap();
    assert_eq!(SignedEnvelope::open(&forged, &roster), Err(WireError::BadSignature { sender: PartyId(7) }));

    // any flipped bit in the signed bytes is caught
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x10;
        assert!(SignedEnvelope::open(&b, &roster).is_err(), "bit flip at {i} accepted");
    }

    // sender not in the roster
    let mut env = fixed();
    env.sender = PartyId(99);
    let b = env.sign(&key(7)).unwrap().encode().unwrap();
    assert_eq!(SignedEnvelope::open(&b, &roster), Err(WireError::UnknownSender { sender: PartyId(99) }));
}

#[test]
fn guard_rejects_replay_and_other_rounds_naming_the_culprit() {
    let mut guard = SessionGuard::new(SessionId { study: study(), round: 3 }, 4);
    let env = fixed();
    guard.check(&env).unwrap();
    assert_eq!(guard.check(&env), Err(WireError::Replay { sender: PartyId(7), nonce: env.nonce }));

    let mut other_round = fixed();
    other_round.nonce += 1;
    other_round.session.round = 2;
    let e = guard.check(&other_round).unwrap_err();
    assert_eq!(e, WireError::WrongRound { sender: PartyId(7), expected: 3, got: 2 });
    assert_eq!(e.culprit(), Some(PartyId(7)));

    let mut other_study = fixed();
    other_study.nonce += 2;
    other_study.session.study = StudyId([0; 16]);
    assert!(matches!(guard.check(&other_study), Err(WireError::WrongStudy { sender: PartyId(7), .. })));

    let mut wrong_step = fixed();
    wrong_step.nonce += 3;
    assert!(matches!(
        guard.check_step(&wrong_step, ProtocolId::SecAgg, 1),
        Err(WireError::WrongStep { sender: PartyId(7), expected_step: 1, got_step: 2, .. })
    ));
    guard.check_step(&wrong_step, ProtocolId::SecAgg, 2).unwrap();

    // bounded memory per sender
    for k in 10..12 {
        let mut e = fixed();
        e.nonce = k;
        guard.check(&e).unwrap();
    }
    let mut e = fixed();
    e.nonce = 12;
    assert_eq!(guard.check(&e), Err(WireError::TooManyMessages { sender: PartyId(7), max: 4 }));

    // after advancing, the old round is rejected and the new one accepted afresh
    guard.advance_round(4);
    assert!(matches!(guard.check(&fixed()), Err(WireError::WrongRound { got: 3, expected: 4, .. })));
    let mut next = fixed();
    next.session.round = 4;
    guard.check(&next).unwrap();
}

#[test]
fn reader_writer_are_strict() {
    let mut w = Writer::default();
    w.u8(1).u16(2).u32(3).u64(4).bytes_u32(b"xy");
    let bytes = w.into_bytes();
    let mut r = Reader::new(&bytes, Some(PartyId(5)));
    assert_eq!(r.u8("a").unwrap(), 1);
    assert_eq!(r.u16("b").unwrap(), 2);
    assert_eq!(r.u32("c").unwrap(), 3);
    assert_eq!(r.u64("d").unwrap(), 4);
    assert_eq!(r.bytes_u32("e", 2).unwrap(), b"xy");
    r.finish("test").unwrap();
    let mut r = Reader::new(&bytes[15..], Some(PartyId(5)));
    assert!(matches!(r.bytes_u32("e", 1), Err(WireError::TooLarge { sender: Some(PartyId(5)), field: "e", .. })));
}

proptest! {
    #[test]
    fn envelope_round_trips(
        proto in 0usize..8, step: u8, sender: u32, recipient: u32, study: [u8; 16], round: u32, nonce: u64,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let env = Envelope {
            protocol: ProtocolId::ALL[proto], step, sender: PartyId(sender), recipient: PartyId(recipient),
            session: SessionId { study: StudyId(study), round }, nonce, payload,
        };
        let bytes = env.encode().unwrap();
        prop_assert_eq!(Envelope::decode(&bytes).unwrap(), env.clone());
        let signed = env.sign(&key(1)).unwrap();
        let sb = signed.encode().unwrap();
        let back = SignedEnvelope::decode(&sb).unwrap();
        prop_assert_eq!(back.encode().unwrap(), sb);
        prop_assert!(back.verify_with(&key(1).verifying_key()).is_ok());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_reencodes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(env) = Envelope::decode(&bytes) {
            prop_assert_eq!(env.encode().unwrap(), bytes);
        }
    }
}
