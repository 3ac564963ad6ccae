//! Pedersen/Feldman DKG and threshold ElGamal decryption: every t-subset of
//! 5, t−1 failure, culprit naming, complaints and justifications, wire format.

use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::dkg::{
    self, check_dealing, check_justification, Complaint, DkgBroadcast, DkgConfig, DkgError, DkgShare, Justification,
    ThresholdPublicKey,
};
use seh_crypto::elgamal::bsgs::BsgsTable;
use seh_crypto::elgamal::{
    decrypt, decryption_share, encrypt, sum, Ciphertext, DecryptionShare, DecryptionShareBatch, ElGamalError,
};
use seh_crypto::shamir::SecretShare;
use seh_crypto::wire::PartyId;
use std::collections::{BTreeMap, BTreeSet};

const CTX: &[u8] = b"study-7/elgamal-epoch-1";

fn parties(n: u32) -> Vec<PartyId> {
    (1..=n).map(PartyId).collect()
}

fn subsets(ids: &[PartyId], k: usize) -> Vec<Vec<PartyId>> {
    let n = ids.len();
    (0u32..(1 << n))
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).map(|i| ids[i]).collect())
        .collect()
}

#[test]
fn dkg_then_threshold_decrypt_with_every_t_subset() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let table = BsgsTable::new(10_000).unwrap();
    for t in 2..=5 {
        let config = DkgConfig::new(&parties(5), t, CTX).unwrap();
        let (keys, pk) = dkg::run_locally(&config, &mut rng).unwrap();
        let counts = [17u64, 0, 230, 4, 1];
        let cts: Vec<Ciphertext> = counts.iter().map(|&c| encrypt(&pk, c, &mut rng)).collect();
        let total = sum(&cts);
        for signers in subsets(&parties(5), t) {
            let ds: Vec<(PartyId, DecryptionShare)> =
                signers.iter().map(|p| (*p, decryption_share(&keys[p], &total, CTX, &mut rng))).collect();
            let out = decrypt(&pk, &total, &ds, CTX, &table).unwrap();
            assert_eq!(out.value, 252);
            assert!(out.culprits.is_empty());
            assert_eq!(out.used, signers);
        }
        // t−1 shares never suffice.
        for fewer in subsets(&parties(5), t - 1) {
            let ds: Vec<(PartyId, DecryptionShare)> =
                fewer.iter().map(|p| (*p, decryption_share(&keys[p], &total, CTX, &mut rng))).collect();
            assert_eq!(
                decrypt(&pk, &total, &ds, CTX, &table),
                Err(ElGamalError::NotEnoughValidShares { valid: t - 1, threshold: t, culprits: vec![] })
            );
        }
    }
}

#[test]
fn corrupted_decryption_share_names_its_sender() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let table = BsgsTable::new(1000).unwrap();
    let config = DkgConfig::new(&parties(5), 3, CTX).unwrap();
    let (keys, pk) = dkg::run_locally(&config, &mut rng).unwrap();
    let ct = encrypt(&pk, 42, &mut rng);
    let mut ds: Vec<(PartyId, DecryptionShare)> =
        parties(5).iter().map(|p| (*p, decryption_share(&keys[p], &ct, CTX, &mut rng))).collect();
    // Party 2 shifts its share; party 4 replays party 5's share; the
    // honest remaining three still decrypt, and both culprits are named.
    ds[1].1.d += curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    ds[3].1 = ds[4].1;
    let out = decrypt(&pk, &ct, &ds, CTX, &table).unwrap();
    assert_eq!(out.value, 42);
    assert_eq!(out.culprits, vec![PartyId(2), PartyId(4)]);
    assert_eq!(out.used, vec![PartyId(1), PartyId(3), PartyId(5)]);
    // With only two honest shares left, decryption fails naming them.
    let err = decrypt(&pk, &ct, &ds[..4], CTX, &table).unwrap_err();
    assert_eq!(err.culprits(), vec![PartyId(2), PartyId(4)]);
    // A share made for another session does not verify in this one.
    let other = decryption_share(&keys[&PartyId(1)], &ct, b"other session", &mut rng);
    let ds2 = vec![(PartyId(1), other), ds[2], ds[4]];
    assert!(matches!(decrypt(&pk, &ct, &ds2, CTX, &table), Err(ElGamalError::NotEnoughValidShares { .. })));
    // A share for another ciphertext does not verify either.
    let ct2 = encrypt(&pk, 42, &mut rng);
    let wrong = vec![(PartyId(1), decryption_share(&keys[&PartyId(1)], &ct2, CTX, &mut rng)), ds[2], ds[4]];
    assert_eq!(decrypt(&pk, &ct, &wrong, CTX, &table).unwrap_err().culprits(), vec![PartyId(1)]);
    // Duplicates and strangers are rejected.
    let dup = vec![ds[0], ds[0], ds[2]];
    assert!(matches!(decrypt(&pk, &ct, &dup, CTX, &table), Err(ElGamalError::UnexpectedParty { .. })));
    let stranger = vec![(PartyId(9), ds[0].1), ds[2], ds[4]];
    assert!(matches!(decrypt(&pk, &ct, &stranger, CTX, &table), Err(ElGamalError::UnexpectedParty { .. })));
}

#[test]
fn out_of_range_sum_is_an_error() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let config = DkgConfig::new(&parties(3), 2, CTX).unwrap();
    let (keys, pk) = dkg::run_locally(&config, &mut rng).unwrap();
    let ct = encrypt(&pk, 101, &mut rng);
    let ds: Vec<_> = parties(2).iter().map(|p| (*p, decryption_share(&keys[p], &ct, CTX, &mut rng))).collect();
    assert_eq!(
        decrypt(&pk, &ct, &ds, CTX, &BsgsTable::new(100).unwrap()),
        Err(ElGamalError::OutOfRange { bound: 100 })
    );
    assert_eq!(decrypt(&pk, &ct, &ds, CTX, &BsgsTable::new(101).unwrap()).unwrap().value, 101);
}

/// Hand-run DKG with a cheating dealer: complaint, justification, disqualification.
#[test]
fn dkg_complaints_name_bad_dealers() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let ids = parties(4);
    let config = DkgConfig::new(&ids, 3, CTX).unwrap();
    let mut secrets = BTreeMap::new();
    let mut broadcasts = BTreeMap::new();
    let mut inbox: BTreeMap<PartyId, BTreeMap<PartyId, DkgShare>> = BTreeMap::new();
    for &p in &ids {
        let (s, b, out) = dkg::deal(&config, p, &mut rng).unwrap();
        // Broadcast and shares survive the wire.
        let b = DkgBroadcast::decode(&b.encode(), p, 3).unwrap();
        secrets.insert(p, s);
        broadcasts.insert(p, b);
        for (to, share) in out {
            let share = DkgShare::decode(&share.encode(), p).unwrap();
            inbox.entry(to).or_default().insert(p, share);
        }
    }
    // Dealer 2 sends party 1 a wrong share; dealer 3 sends party 4 garbage.
    let bad = SecretShare::new(PartyId(1), Scalar::from(5u8)).unwrap();
    inbox.get_mut(&PartyId(1)).unwrap().insert(PartyId(2), DkgShare(bad));
    let junk = SecretShare::new(PartyId(4), Scalar::from(6u8)).unwrap();
    inbox.get_mut(&PartyId(4)).unwrap().insert(PartyId(3), DkgShare(junk));

    let mut complaints = Vec::new();
    for &me in &ids {
        for &dealer in ids.iter().filter(|d| **d != me) {
            if let Err(e) = check_dealing(&config, me, dealer, &broadcasts[&dealer], inbox[&me].get(&dealer)) {
                assert_eq!(e.culprit(), Some(dealer));
                complaints.push((me, Complaint::decode(&Complaint { dealer }.encode(), me).unwrap()));
            }
        }
    }
    assert_eq!(complaints.len(), 2);
    assert_eq!(complaints[0], (PartyId(1), Complaint { dealer: PartyId(2) }));
    assert_eq!(complaints[1], (PartyId(4), Complaint { dealer: PartyId(3) }));

    // Dealer 2's share was corrupted in transit: it justifies with the true
    // share, which checks out, and party 1 adopts it. Dealer 3 "justifies"
    // with a wrong share and is disqualified.
    let mut qualified: BTreeSet<PartyId> = ids.iter().copied().collect();
    let j2 = secrets[&PartyId(2)].justify(PartyId(1)).unwrap();
    let j2 = Justification::decode(&j2.encode(), PartyId(2)).unwrap();
    check_justification(&config, PartyId(2), PartyId(1), &broadcasts[&PartyId(2)], &j2).unwrap();
    inbox.get_mut(&PartyId(1)).unwrap().insert(PartyId(2), DkgShare(j2.share.clone()));
    let j3 = Justification { share: SecretShare::new(PartyId(4), Scalar::from(7u8)).unwrap() };
    let err = check_justification(&config, PartyId(3), PartyId(4), &broadcasts[&PartyId(3)], &j3).unwrap_err();
    assert_eq!(err, DkgError::InvalidShare { dealer: PartyId(3), recipient: PartyId(4) });
    qualified.remove(&PartyId(3));

    let mut keys = BTreeMap::new();
    let mut pks: Vec<ThresholdPublicKey> = Vec::new();
    for &me in &ids {
        let (k, pk) = dkg::finish(&config, me, &secrets[&me], &qualified, &broadcasts, &inbox[&me]).unwrap();
        keys.insert(me, k);
        pks.push(ThresholdPublicKey::decode(&pk.encode(), None).unwrap());
    }
    assert!(pks.windows(2).all(|w| w[0] == w[1]), "all parties derive the same public key");
    let pk = &pks[0];
    let ct = encrypt(pk, 9, &mut rng);
    let ds: Vec<_> =
        [1, 2, 4].iter().map(|&p| (PartyId(p), decryption_share(&keys[&PartyId(p)], &ct, CTX, &mut rng))).collect();
    assert_eq!(decrypt(pk, &ct, &ds, CTX, &BsgsTable::new(100).unwrap()).unwrap().value, 9);

    // finish re-verifies: keeping dealer 3 qualified makes party 4 fail, naming 3.
    let all: BTreeSet<PartyId> = ids.iter().copied().collect();
    let err =
        dkg::finish(&config, PartyId(4), &secrets[&PartyId(4)], &all, &broadcasts, &inbox[&PartyId(4)]).unwrap_err();
    assert_eq!(err.culprit(), Some(PartyId(3)));
    // Too few qualified dealers aborts.
    let two: BTreeSet<PartyId> = [PartyId(1), PartyId(2)].into();
    assert!(matches!(
        dkg::finish(&config, PartyId(1), &secrets[&PartyId(1)], &two, &broadcasts, &inbox[&PartyId(1)]),
        Err(DkgError::TooFewQualified { qualified: 2, threshold: 3 })
    ));
}

#[test]
fn dkg_rejects_copied_and_malformed_broadcasts() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let config = DkgConfig::new(&parties(3), 2, CTX).unwrap();
    let (_, b1, out1) = dkg::deal(&config, PartyId(1), &mut rng).unwrap();
    // Party 3 copies party 1's broadcast: the proof is bound to dealer 1.
    let err = check_dealing(&config, PartyId(2), PartyId(3), &b1, out1.get(&PartyId(2))).unwrap_err();
    assert_eq!(err, DkgError::InvalidProof { dealer: PartyId(3) });
    // A proof from another session fails too.
    let other = DkgConfig::new(&parties(3), 2, b"other").unwrap();
    assert_eq!(
        check_dealing(&other, PartyId(2), PartyId(1), &b1, out1.get(&PartyId(2))).unwrap_err(),
        DkgError::InvalidProof { dealer: PartyId(1) }
    );
    // Missing share, share addressed to someone else.
    assert!(matches!(check_dealing(&config, PartyId(2), PartyId(1), &b1, None), Err(DkgError::Missing { .. })));
    assert!(matches!(
        check_dealing(&config, PartyId(3), PartyId(1), &b1, out1.get(&PartyId(2))),
        Err(DkgError::InvalidShare { .. })
    ));
    // Wire strictness.
    let enc = b1.encode();
    assert!(DkgBroadcast::decode(&enc, PartyId(1), 3).is_err());
    let mut long = enc.clone();
    long.push(0);
    assert_eq!(DkgBroadcast::decode(&long, PartyId(1), 2).unwrap_err().culprit(), Some(PartyId(1)));
    assert!(DkgBroadcast::decode(&enc[..enc.len() - 1], PartyId(1), 2).is_err());
    assert!(DkgShare::decode(&[0u8; 36], PartyId(1)).is_err());
    assert!(Complaint::decode(&[0, 0, 0, 0], PartyId(1)).is_err());
    // Configuration errors.
    assert!(DkgConfig::new(&parties(3), 1, CTX).is_err());
    assert!(DkgConfig::new(&parties(3), 4, CTX).is_err());
    assert!(DkgConfig::new(&[PartyId(1), PartyId(1)], 2, CTX).is_err());
    assert!(DkgConfig::new(&[PartyId(0), PartyId(1)], 2, CTX).is_err());
}

#[test]
fn wire_snapshots_and_redaction() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let config = DkgConfig::new(&parties(3), 2, CTX).unwrap();
    let (keys, pk) = dkg::run_locally(&config, &mut rng).unwrap();
    let pk_enc = pk.encode();
    assert_eq!(pk_enc.len(), 4 + 32 + 4 + 3 * 36);
    assert_eq!(&pk_enc[..4], &[0, 0, 0, 2]);
    let mut bad = pk_enc.clone();
    bad[3] = 4; // threshold above n
    assert!(ThresholdPublicKey::decode(&bad, None).is_err());
    let ct = encrypt(&pk, 5, &mut rng);
    assert_eq!(Ciphertext::from_bytes(&ct.to_bytes(), None).unwrap(), ct);
    assert!(Ciphertext::from_bytes(&[0xff; 64], None).is_err());
    let cts = vec![ct, encrypt(&pk, 6, &mut rng)];
    let enc = seh_crypto::elgamal::encode_ciphertexts(&cts);
    assert_eq!(&enc[..4], &[0, 0, 0, 2]);
    assert_eq!(seh_crypto::elgamal::decode_ciphertexts(&enc, None).unwrap(), cts);
    let batch = DecryptionShareBatch::create(&keys[&PartyId(1)], &cts, CTX, &mut rng);
    let benc = batch.encode();
    assert_eq!(benc.len(), 4 + 2 * 96);
    assert_eq!(DecryptionShareBatch::decode(&benc, PartyId(1)).unwrap(), batch);
    let mut trailing = benc.clone();
    trailing.push(0);
    assert!(DecryptionShareBatch::decode(&trailing, PartyId(1)).is_err());
    assert_eq!(format!("{:?}", keys[&PartyId(1)]), "DecryptionKeyShare { party: PartyId(1), secret: <redacted> }");
}
