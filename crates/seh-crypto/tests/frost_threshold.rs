//! FROST DKG → sign → verify with every t-subset of 5, cheater detection,
//! t−1 failure, wire round trips.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::frost::dkg::{self, Round1Package, Round2Package};
use seh_crypto::frost::sign::{
    aggregate, commit, sign_locally, sign_share, SignatureShare, SigningCommitment, SigningRequest,
};
use seh_crypto::frost::{
    document_message, verify, verify_document, CanonicalDocument, FrostError, GroupPublicKey, KeyShare,
};
use seh_crypto::wire::PartyId;
use std::collections::BTreeMap;

fn subsets(n: u32, k: usize) -> Vec<Vec<PartyId>> {
    let mut out = vec![];
    for mask in 0u32..(1 << n) {
        if mask.count_ones() as usize == k {
            out.push((0..n).filter(|i| mask & (1 << i) != 0).map(|i| PartyId(i + 1)).collect());
        }
    }
    out
}

#[test]
fn dkg_then_every_threshold_subset_signs() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for t in 2..=5u16 {
        let (keys, group) = dkg::run_locally(5, t, &mut rng).unwrap();
        assert_eq!(group.parties().len(), 5);
        let vk = group.verifying_key();
        for k in keys.values() {
            assert_eq!(k.group_key(), vk);
            assert_eq!(k.threshold(), t);
        }
        let subs = subsets(5, t as usize);
        for signers in &subs {
            let msg = format!("release t={t} {signers:?}");
            let ks: Vec<&KeyShare> = signers.iter().map(|p| &keys[p]).collect();
            let sig = sign_locally(&ks, &group, msg.as_bytes(), &mut rng).unwrap();
            verify(&vk, msg.as_bytes(), &sig).unwrap();
            assert_eq!(verify(&vk, b"tampered", &sig), Err(FrostError::InvalidSignature));
        }
        // Supersets of the threshold work too.
        let all: Vec<&KeyShare> = keys.values().collect();
        verify(&vk, b"all", &sign_locally(&all, &group, b"all", &mut rng).unwrap()).unwrap();
    }
}

#[test]
fn fewer_than_threshold_signers_fail() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let (keys, group) = dkg::run_locally(5, 3, &mut rng).unwrap();
    for signers in subsets(5, 2) {
        let ks: Vec<&KeyShare> = signers.iter().map(|p| &keys[p]).collect();
        let err = sign_locally(&ks, &group, b"m", &mut rng).unwrap_err();
        assert_eq!(err, FrostError::NotEnoughSigners { got: 2, threshold: 3 });
    }
    // The coordinator also refuses to aggregate t−1 shares of a t-request.
    let signers = [PartyId(1), PartyId(2), PartyId(3)];
    let (request, mut shares) = signed_round(&keys, &signers, b"m", &mut rng);
    shares.remove(&PartyId(3));
    assert_eq!(aggregate(&request, &shares, &group), Err(FrostError::NotEnoughSigners { got: 2, threshold: 3 }));
}

fn signed_round(
    keys: &BTreeMap<PartyId, KeyShare>,
    signers: &[PartyId],
    msg: &[u8],
    rng: &mut ChaCha20Rng,
) -> (SigningRequest, BTreeMap<PartyId, SignatureShare>) {
    let mut nonces = BTreeMap::new();
    let mut comms = BTreeMap::new();
    for p in signers {
        let (n, c) = commit(&keys[p], rng);
        nonces.insert(*p, n);
        comms.insert(*p, c);
    }
    let request = SigningRequest::new(&comms, msg).unwrap();
    let shares = nonces.into_iter().map(|(p, n)| (p, sign_share(&request, n, &keys[&p]).unwrap())).collect();
    (request, shares)
}

#[test]
fn invalid_signature_shares_name_every_culprit() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let (keys, group) = dkg::run_locally(5, 3, &mut rng).unwrap();
    let signers = [PartyId(1), PartyId(2), PartyId(4), PartyId(5)];
    let (request, mut shares) = signed_round(&keys, &signers, b"roster v7", &mut rng);
    // Party 2 sends party 4's share; party 5 sends a share for another message.
    let (_, other) = signed_round(&keys, &signers, b"other", &mut rng);
    shares.insert(PartyId(2), shares[&PartyId(4)]);
    shares.insert(PartyId(5), other[&PartyId(5)]);
    let err = aggregate(&request, &shares, &group).unwrap_err();
    assert_eq!(err, FrostError::InvalidSignatureShares { culprits: vec![PartyId(2), PartyId(5)] });
    assert_eq!(err.culprits(), vec![PartyId(2), PartyId(5)]);
    // A share attributed to a party outside the request is refused.
    let (request, mut shares) = signed_round(&keys, &signers[..3], b"m", &mut rng);
    let extra = shares[&PartyId(1)];
    shares.insert(PartyId(3), extra);
    assert!(matches!(aggregate(&request, &shares, &group), Err(FrostError::WrongParticipants { .. })));
}

#[test]
fn signer_refuses_request_with_altered_commitment() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (keys, _) = dkg::run_locally(3, 2, &mut rng).unwrap();
    let (n1, _c1) = commit(&keys[&PartyId(1)], &mut rng);
    let (_, c1_other) = commit(&keys[&PartyId(1)], &mut rng);
    let (_, c2) = commit(&keys[&PartyId(2)], &mut rng);
    let comms = BTreeMap::from([(PartyId(1), c1_other), (PartyId(2), c2)]);
    let request = SigningRequest::new(&comms, b"m").unwrap();
    assert!(matches!(sign_share(&request, n1, &keys[&PartyId(1)]), Err(FrostError::WrongParticipants { .. })));
}

/// Run the DKG by hand so round messages can be tampered with.
#[test]
fn dkg_names_bad_dealers() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let ids: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut s1 = BTreeMap::new();
    let mut b1 = BTreeMap::new();
    for &p in &ids {
        let (s, pkg) = dkg::part1(p, 3, 2, &mut rng).unwrap();
        // Round-1 packages survive the wire.
        let pkg = Round1Package::decode(&pkg.encode().unwrap()).unwrap();
        s1.insert(p, s);
        b1.insert(p, pkg);
    }
    let others = |me: PartyId, b: &BTreeMap<PartyId, Round1Package>| -> BTreeMap<PartyId, Round1Package> {
        b.iter().filter(|(p, _)| **p != me).map(|(p, v)| (*p, v.clone())).collect()
    };
    // Party 3 replays party 2's round-1 package as its own: its proof of
    // knowledge is bound to identifier 2, so party 1 names 3.
    let mut forged = others(PartyId(1), &b1);
    forged.insert(PartyId(3), b1[&PartyId(2)].clone());
    let s = dkg::part1(PartyId(1), 3, 2, &mut rng).unwrap().0;
    assert_eq!(dkg::part2(s, &forged).unwrap_err(), FrostError::InvalidProofOfKnowledge { culprit: PartyId(3) });

    // Honest round 2, then party 2's share to party 1 is swapped for the one
    // it sent to party 3: party 1 names dealer 2.
    let mut s2 = BTreeMap::new();
    let mut inbox: BTreeMap<PartyId, BTreeMap<PartyId, Round2Package>> = BTreeMap::new();
    for (p, s) in s1 {
        let (sec, out) = dkg::part2(s, &others(p, &b1)).unwrap();
        s2.insert(p, sec);
        for (to, pkg) in out {
            let pkg = Round2Package::decode(&pkg.encode().unwrap()).unwrap();
            inbox.entry(to).or_default().insert(p, pkg);
        }
    }
    let mut to1 = inbox[&PartyId(1)].clone();
    to1.insert(PartyId(2), inbox[&PartyId(3)][&PartyId(2)].clone());
    let sec1 = s2.remove(&PartyId(1)).unwrap();
    let err = dkg::part3(sec1, &others(PartyId(1), &b1), &to1).unwrap_err();
    assert_eq!(err, FrostError::InvalidSecretShare { culprit: Some(PartyId(2)) });
    assert_eq!(err.culprits(), vec![PartyId(2)]);

    // Missing a peer's share is reported, not a panic.
    let sec2 = s2.remove(&PartyId(2)).unwrap();
    let mut to2 = inbox[&PartyId(2)].clone();
    to2.remove(&PartyId(3));
    assert!(dkg::part3(sec2, &others(PartyId(2), &b1), &to2).is_err());
}

#[test]
fn invalid_parameters() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    assert!(matches!(dkg::part1(PartyId(1), 5, 1, &mut rng), Err(FrostError::InvalidParameters { .. })));
    assert!(matches!(dkg::part1(PartyId(1), 3, 4, &mut rng), Err(FrostError::InvalidParameters { .. })));
    assert!(matches!(dkg::part1(PartyId(0), 3, 2, &mut rng), Err(FrostError::InvalidParameters { .. })));
    assert!(matches!(dkg::part1(PartyId::BROADCAST, 3, 2, &mut rng), Err(FrostError::InvalidParameters { .. })));
}

struct Roster(Vec<(u32, &'static str)>);

impl CanonicalDocument for Roster {
    const PURPOSE: &'static str = "roster";
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
        for (id, name) in &self.0 {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        out
    }
}

#[test]
fn documents_are_domain_separated() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (keys, group) = dkg::run_locally(3, 2, &mut rng).unwrap();
    let roster = Roster(vec![(1, "hospital-a"), (2, "registry-b")]);
    let ks: Vec<&KeyShare> = keys.values().take(2).collect();
    let sig = sign_locally(&ks, &group, &roster.signing_message(), &mut rng).unwrap();
    let vk = group.verifying_key();
    verify_document(&vk, &roster, &sig).unwrap();
    // The same body under another purpose does not verify.
    let as_result = document_message("result", &roster.canonical_bytes());
    assert_eq!(verify(&vk, &as_result, &sig), Err(FrostError::InvalidSignature));
    assert!(verify_document(&vk, &Roster(vec![(1, "hospital-a")]), &sig).is_err());
    // Snapshot of the framing.
    let m = document_message("roster", b"xy");
    assert_eq!(&m[..21], b"SEH-FROST-v1/document");
    assert_eq!(&m[21..], &[0, 0, 0, 6, b'r', b'o', b's', b't', b'e', b'r', 0, 0, 0, 0, 0, 0, 0, 2, b'x', b'y']);
}

#[test]
fn wire_round_trips_and_strictness() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (keys, group) = dkg::run_locally(3, 2, &mut rng).unwrap();
    let g2 = GroupPublicKey::decode(&group.encode().unwrap()).unwrap();
    assert_eq!(g2, group);
    let k1 = &keys[&PartyId(1)];
    let k1b = KeyShare::from_secret_bytes(&k1.to_secret_bytes().unwrap()).unwrap();
    assert_eq!(&k1b, k1);
    assert_eq!(format!("{k1:?}"), "KeyShare { party: Some(PartyId(1)), secret: <redacted> }");
    let (n, c) = commit(k1, &mut rng);
    assert_eq!(format!("{n:?}"), "SigningNonces(<redacted>)");
    let enc = c.encode().unwrap();
    let mut long = enc.clone();
    long.push(0);
    assert!(SigningCommitment::decode(&long).is_err());
    assert!(SigningCommitment::decode(&enc[..enc.len() - 1]).is_err());
    assert!(SignatureShare::decode(&[0xff; 32]).is_err());
    assert!(SignatureShare::decode(&[0; 33]).is_err());
    let mut genc = group.encode().unwrap();
    genc.push(1);
    assert!(GroupPublicKey::decode(&genc).is_err());
    assert!(seh_crypto::frost::Signature::from_bytes(&[0xff; 64]).is_err());
}
