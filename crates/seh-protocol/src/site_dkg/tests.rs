//! The ceremony among five sites relayed by a test "coordinator" that only moves bytes.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::frost::{self, sign::SigningRequest};

use super::*;

const CEREMONY: [u8; 16] = *b"dkg-test-ceremon";

fn federation(n: u32, rng: &mut ChaCha20Rng) -> (BTreeMap<PartyId, VerifyingKey>, BTreeMap<PartyId, SigningKey>) {
    let keys: BTreeMap<PartyId, SigningKey> = (1..=n).map(|i| (PartyId(i), SigningKey::generate(rng))).collect();
    (keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect(), keys)
}

/// Round 1 for every site: the states and the broadcasts.
fn round1(n: u32, t: u16, rng: &mut ChaCha20Rng) -> (Vec<DkgSite>, Vec<Vec<u8>>) {
    let (sites, keys) = federation(n, rng);
    let mut states = Vec::new();
    let mut msgs = Vec::new();
    for (p, k) in keys {
        let (s, m) = DkgSite::start(p, sites.clone(), t, CEREMONY, k, rng).unwrap();
        states.push(s);
        msgs.push(m);
    }
    (states, msgs)
}

#[test]
fn five_sites_reach_one_group_key_that_signs() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let (mut states, r1) = round1(5, 3, &mut rng);
    let r2: Vec<Vec<u8>> = states.iter_mut().map(|s| s.round2(&r1).unwrap()).collect();
    let results: Vec<(KeyShare, GroupPublicKey)> = states.into_iter().map(|s| s.finish(&r2).unwrap()).collect();
    let group = results[0].1.clone();
    for (share, g) in &results {
        assert_eq!(g.verifying_key().to_bytes(), group.verifying_key().to_bytes());
        assert_eq!(share.group_key().to_bytes(), group.verifying_key().to_bytes());
    }
    // Any three of the five shares sign under the group key.
    let message = frost::document_message("roster", b"federation file bytes");
    let signers = [1usize, 3, 4];
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for &i in &signers {
        let (n, c) = frost::commit(&results[i].0, &mut rng);
        nonces.insert(PartyId(i as u32 + 1), n);
        commitments.insert(PartyId(i as u32 + 1), c);
    }
    let request = SigningRequest::new(&commitments, &message).unwrap();
    let mut shares = BTreeMap::new();
    for &i in &signers {
        let n = nonces.remove(&PartyId(i as u32 + 1)).unwrap();
        shares.insert(PartyId(i as u32 + 1), frost::sign_share(&request, n, &results[i].0).unwrap());
    }
    let sig = frost::aggregate(&request, &shares, &group).unwrap();
    frost::verify(&group.verifying_key(), &message, &sig).unwrap();
}

#[test]
fn an_altered_bundle_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let (mut states, r1) = round1(3, 2, &mut rng);
    let mut r2: Vec<Vec<u8>> = states.iter_mut().map(|s| s.round2(&r1).unwrap()).collect();
    // The relay flips a byte of site 2's bundle: the envelope signature catches it.
    let last = r2[1].len() - 1;
    r2[1][last] ^= 1;
    let err = states.remove(0).finish(&r2).unwrap_err();
    assert!(matches!(err, ProtocolError::Wire(_)), "{err}");
}

#[test]
fn a_substituted_encryption_key_or_missing_site_is_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let (sites, keys) = federation(3, &mut rng);
    let mut states = Vec::new();
    let mut r1 = Vec::new();
    for (p, k) in keys {
        let (s, m) = DkgSite::start(p, sites.clone(), 2, CEREMONY, k, &mut rng).unwrap();
        states.push(s);
        r1.push(m);
    }
    // The relay replaces site 3's round-1 message (its X25519 key) with one it signed itself.
    let rogue = SigningKey::generate(&mut rng);
    let mut rogue_view = sites.clone();
    rogue_view.insert(PartyId(3), rogue.verifying_key());
    let (_, forged) = DkgSite::start(PartyId(3), rogue_view, 2, CEREMONY, rogue, &mut rng).unwrap();
    let mut tampered = r1.clone();
    tampered[2] = forged;
    let err = states[0].round2(&tampered).unwrap_err();
    assert!(matches!(err, ProtocolError::Wire(_)), "{err}");
    // Dropping site 3's round-1 message names it.
    r1.truncate(2);
    let err = states[1].round2(&r1).unwrap_err();
    assert!(matches!(err, ProtocolError::Unexpected { party: PartyId(3), .. }), "{err}");
}

#[test]
fn messages_of_another_ceremony_are_refused() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let (sites, keys) = federation(2, &mut rng);
    let (mut a, _) =
        DkgSite::start(PartyId(1), sites.clone(), 2, CEREMONY, keys[&PartyId(1)].clone(), &mut rng).unwrap();
    let (_, other) =
        DkgSite::start(PartyId(2), sites, 2, *b"another-ceremony", keys[&PartyId(2)].clone(), &mut rng).unwrap();
    let err = a.round2(&[other]).unwrap_err();
    assert!(err.to_string().contains("another ceremony"), "{err}");
}

#[test]
fn bundle_parsing_rejects_truncation_and_duplicates() {
    assert!(find_part(&[0, 0, 0, 1, 0, 0, 0, 5, 1], PartyId(1)).is_err());
    let one = [0, 0, 0, 1, 0, 0, 0, 1, 9];
    assert_eq!(find_part(&one, PartyId(1)).unwrap(), &[9]);
    assert!(find_part(&[one, one].concat(), PartyId(1)).is_err());
    assert!(find_part(&one, PartyId(2)).is_err());
}
