//! The fuzz targets' property, run on stable under proptest: for every
//! decoder of the PSI, OPRF, FROST, DKG and ElGamal messages, arbitrary bytes
//! and single-byte mutations of valid encodings either fail to decode or
//! re-encode to exactly the input. Never a panic.

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::dkg::{self, Complaint, DkgBroadcast, DkgConfig, DkgShare, Justification, ThresholdPublicKey};
use seh_crypto::elgamal::{decode_ciphertexts, encode_ciphertexts, encrypt, DecryptionShareBatch};
use seh_crypto::frost::sign::{commit, SignatureShare, SigningCommitment, SigningRequest};
use seh_crypto::frost::GroupPublicKey;
use seh_crypto::oprf::{blind, BlindedRequest, EvaluatedResponse, OprfKeyHolder, PendingPseudonyms};
use seh_crypto::psi::{PsiRequest, PsiResponse};
use seh_crypto::wire::PartyId;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Check every decoder on `data`.
fn all_decoders(data: &[u8]) {
    let p = PartyId(1);
    if let Ok(m) = PsiRequest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = PsiResponse::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = BlindedRequest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = EvaluatedResponse::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = PendingPseudonyms::from_secret_bytes(data) {
        assert_eq!(&m.to_secret_bytes()[..], data);
    }
    if let Ok(m) = SigningCommitment::decode(data) {
        assert_eq!(m.encode().unwrap(), data);
    }
    if let Ok(m) = SigningRequest::decode(data) {
        assert_eq!(m.encode().unwrap(), data);
    }
    if let Ok(m) = SignatureShare::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = GroupPublicKey::decode(data) {
        assert_eq!(m.encode().unwrap(), data);
    }
    if let Ok(m) = seh_crypto::frost::dkg::Round1Package::decode(data) {
        assert_eq!(m.encode().unwrap(), data);
    }
    for t in [2usize, 3] {
        if let Ok(m) = DkgBroadcast::decode(data, p, t) {
            assert_eq!(m.encode(), data);
        }
    }
    if let Ok(m) = DkgShare::decode(data, p) {
        assert_eq!(&m.encode()[..], data);
    }
    if let Ok(m) = Justification::decode(data, p) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = Complaint::decode(data, p) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = ThresholdPublicKey::decode(data, None) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = decode_ciphertexts(data, None) {
        assert_eq!(encode_ciphertexts(&m), data);
    }
    if let Ok(m) = DecryptionShareBatch::decode(data, p) {
        assert_eq!(m.encode(), data);
    }
}

/// Valid encodings of every message type, to mutate.
fn corpus() -> &'static Vec<Vec<u8>> {
    static C: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    C.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let mut out = Vec::new();
        let a = seh_crypto::psi::PsiSecret::random(&mut rng, b"c");
        let (_, req) = seh_crypto::psi::receiver_start(a.clone(), &[b"x", b"y"], &mut rng).unwrap();
        out.push(req.encode());
        out.push(seh_crypto::psi::sender_respond(&a, &[b"z"], &req, &mut rng).unwrap().encode());
        let holder = OprfKeyHolder::random(&mut rng).unwrap();
        let (pending, oreq) = blind(&[b"id"], &mut rng).unwrap();
        out.push(oreq.encode());
        out.push(holder.evaluate(&oreq, &mut rng).unwrap().encode());
        out.push(pending.to_secret_bytes().to_vec());
        let (keys, group) = seh_crypto::frost::dkg::run_locally(3, 2, &mut rng).unwrap();
        out.push(group.encode().unwrap());
        let (_, c) = commit(&keys[&PartyId(1)], &mut rng);
        out.push(c.encode().unwrap());
        let (_, c2) = commit(&keys[&PartyId(2)], &mut rng);
        let comms = BTreeMap::from([(PartyId(1), c), (PartyId(2), c2)]);
        out.push(SigningRequest::new(&comms, b"msg").unwrap().encode().unwrap());
        let (_, r1) = seh_crypto::frost::dkg::part1(PartyId(1), 3, 2, &mut rng).unwrap();
        out.push(r1.encode().unwrap());
        let config = DkgConfig::new(&[PartyId(1), PartyId(2), PartyId(3)], 2, b"c").unwrap();
        let (_, b, shares) = dkg::deal(&config, PartyId(1), &mut rng).unwrap();
        out.push(b.encode());
        out.push(shares[&PartyId(2)].encode().to_vec());
        out.push(Complaint { dealer: PartyId(2) }.encode());
        let (ks, pk) = dkg::run_locally(&config, &mut rng).unwrap();
        out.push(pk.encode());
        let cts = vec![encrypt(&pk, 3, &mut rng)];
        out.push(encode_ciphertexts(&cts));
        out.push(DecryptionShareBatch::create(&ks[&PartyId(1)], &cts, b"c", &mut rng).encode());
        out
    })
}

#[test]
fn valid_encodings_round_trip() {
    for c in corpus() {
        all_decoders(c);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        all_decoders(&data);
    }

    #[test]
    fn mutated_encodings_never_panic(which in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(),
                                     byte in any::<u8>(), cut in any::<bool>()) {
        let mut m = corpus()[which.index(corpus().len())].clone();
        let i = pos.index(m.len());
        if cut { m.truncate(i); } else { m[i] = byte; }
        all_decoders(&m);
    }
}
