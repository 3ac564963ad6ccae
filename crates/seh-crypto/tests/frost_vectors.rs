//! RFC 9591 test vectors for FROST(ristretto255, SHA-512), run through the
//! `seh_crypto::frost` wrappers (the JSON files are the vectors shipped with
//! the `frost-ristretto255` crate, copied as data).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use frost_ristretto255 as frost;
use seh_crypto::frost::sign::{
    aggregate, sign_share, SignatureShare, SigningCommitment, SigningNonces, SigningRequest,
};
use seh_crypto::frost::{identifier, verify, GroupPublicKey, GroupVerifyingKey, KeyShare, Signature};
use seh_crypto::wire::PartyId;
use serde_json::Value;
use std::collections::BTreeMap;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn arr32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

fn scalar(s: &str) -> Scalar {
    Scalar::from_canonical_bytes(arr32(s)).unwrap()
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn run_vector(v: &Value) {
    let inputs = &v["inputs"];
    let secret = scalar(inputs["group_secret_key"].as_str().unwrap());
    let vk_bytes = arr32(inputs["verifying_key_key"].as_str().unwrap());
    let message = unhex(inputs["message"].as_str().unwrap());
    let coeffs: Vec<Scalar> = inputs["share_polynomial_coefficients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| scalar(c.as_str().unwrap()))
        .collect();
    let threshold = coeffs.len() + 1;

    // The group key is s·G and decodes through our type.
    assert_eq!(RistrettoPoint::mul_base(&secret).compress().to_bytes(), vk_bytes);
    let group_vk = GroupVerifyingKey::from_bytes(&vk_bytes).unwrap();
    assert_eq!(group_vk.to_bytes(), vk_bytes);

    // Each participant share is f(i) for f(x) = s + a_1 x + …; build key shares.
    let mut keys: BTreeMap<PartyId, KeyShare> = BTreeMap::new();
    let mut verifying_shares = BTreeMap::new();
    for p in inputs["participant_shares"].as_array().unwrap() {
        let party = PartyId(p["identifier"].as_u64().unwrap() as u32);
        let share_hex = p["participant_share"].as_str().unwrap();
        let x = Scalar::from(u64::from(party.0));
        let mut fx = secret;
        let mut xp = Scalar::ONE;
        for c in &coeffs {
            xp *= x;
            fx += c * xp;
        }
        assert_eq!(fx, scalar(share_hex), "share of {party} is not f({party})");
        let signing_share = frost::keys::SigningShare::deserialize(&unhex(share_hex)).unwrap();
        let verifying_share = frost::keys::VerifyingShare::from(signing_share);
        let vk = frost::VerifyingKey::deserialize(&vk_bytes).unwrap();
        let id = identifier(party).unwrap();
        verifying_shares.insert(id, verifying_share);
        let pkg = frost::keys::KeyPackage::new(id, signing_share, verifying_share, vk, threshold as u16);
        keys.insert(party, KeyShare::from_frost(pkg));
    }
    let vk = frost::VerifyingKey::deserialize(&vk_bytes).unwrap();
    let group =
        GroupPublicKey::from_frost(frost::keys::PublicKeyPackage::new(verifying_shares, vk, Some(threshold as u16)));

    // Round 1 with the vector's nonces: commitments must match.
    let mut nonces = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for o in v["round_one_outputs"]["outputs"].as_array().unwrap() {
        let party = PartyId(o["identifier"].as_u64().unwrap() as u32);
        let hiding = frost_core::round1::Nonce::deserialize(&unhex(o["hiding_nonce"].as_str().unwrap())).unwrap();
        let binding = frost_core::round1::Nonce::deserialize(&unhex(o["binding_nonce"].as_str().unwrap())).unwrap();
        let hc = frost::round1::NonceCommitment::deserialize(&unhex(o["hiding_nonce_commitment"].as_str().unwrap()))
            .unwrap();
        let bc = frost::round1::NonceCommitment::deserialize(&unhex(o["binding_nonce_commitment"].as_str().unwrap()))
            .unwrap();
        assert_eq!(frost::round1::NonceCommitment::from(&hiding), hc);
        assert_eq!(frost::round1::NonceCommitment::from(&binding), bc);
        nonces.insert(party, SigningNonces::from_frost(frost::round1::SigningNonces::from_nonces(hiding, binding)));
        let c = SigningCommitment::from_frost(frost::round1::SigningCommitments::new(hc, bc));
        // Commitments survive our wire encoding.
        assert_eq!(SigningCommitment::decode(&c.encode().unwrap()).unwrap(), c);
        commitments.insert(party, c);
    }
    let request = SigningRequest::new(&commitments, &message).unwrap();
    let request = SigningRequest::decode(&request.encode().unwrap()).unwrap();
    assert_eq!(request.signers(), commitments.keys().copied().collect::<Vec<_>>());

    // Round 2: our signature shares equal the vector's.
    let expected_shares: BTreeMap<PartyId, Vec<u8>> = v["round_two_outputs"]["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (PartyId(o["identifier"].as_u64().unwrap() as u32), unhex(o["sig_share"].as_str().unwrap())))
        .collect();
    let mut shares = BTreeMap::new();
    for (party, n) in nonces {
        let share = sign_share(&request, n, &keys[&party]).unwrap();
        assert_eq!(share.encode(), expected_shares[&party], "signature share of {party}");
        assert_eq!(SignatureShare::decode(&share.encode()).unwrap(), share);
        shares.insert(party, share);
    }

    // Aggregate: the vector's signature, verified by the standalone verifier.
    let sig = aggregate(&request, &shares, &group).unwrap();
    let expected_sig = unhex(v["final_output"]["sig"].as_str().unwrap());
    assert_eq!(sig.to_bytes().to_vec(), expected_sig);
    let decoded = Signature::from_bytes(&expected_sig.clone().try_into().unwrap()).unwrap();
    verify(&group_vk, &message, &decoded).unwrap();
    assert!(verify(&group_vk, b"another message", &decoded).is_err());
}

#[test]
fn rfc9591_ristretto255_vector() {
    run_vector(&load("frost_ristretto255_rfc9591.json"));
}

#[test]
fn big_identifier_vector() {
    run_vector(&load("frost_ristretto255_big_identifier.json"));
}
