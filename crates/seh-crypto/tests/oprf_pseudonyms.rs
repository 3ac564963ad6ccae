//! OPRF linkage pseudonyms end to end, cheating key holder, wire strictness,
//! and HMAC site pseudonyms.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::oprf::{blind, BlindedRequest, EvaluatedResponse, OprfError, OprfKeyHolder, PendingPseudonyms};
use seh_crypto::pseudonym::{linkage_input, PseudonymError, SiteSecret};

fn inputs(ids: &[&str]) -> Vec<Vec<u8>> {
    ids.iter().map(|id| linkage_input(b"federation-eu-1", id.as_bytes()).unwrap()).collect()
}

#[test]
fn two_sites_get_equal_pseudonyms_for_shared_patients() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let holder = OprfKeyHolder::random(&mut rng).unwrap();
    let pk = holder.public_key();
    let site_a = inputs(&["NHS-111", "NHS-222", "NHS-333"]);
    let site_b = inputs(&["NHS-333", "NHS-444", "NHS-111"]);
    let run = |ids: &[Vec<u8>], rng: &mut ChaCha20Rng| {
        let (pending, req) = blind(ids, rng).unwrap();
        let req = BlindedRequest::decode(&req.encode()).unwrap();
        let resp = holder.evaluate(&req, rng).unwrap();
        let resp = EvaluatedResponse::decode(&resp.encode()).unwrap();
        pending.finalize(ids, &resp, &pk).unwrap()
    };
    let pa = run(&site_a, &mut rng);
    let pb = run(&site_b, &mut rng);
    assert_eq!(pa[0], pb[2]);
    assert_eq!(pa[2], pb[0]);
    assert_ne!(pa[1], pb[1]);
    assert_ne!(pa[0], pa[1]);
    // Blinding hides the input: two requests for the same id differ.
    let (_, r1) = blind(&site_a[..1], &mut rng).unwrap();
    let (_, r2) = blind(&site_a[..1], &mut rng).unwrap();
    assert_ne!(r1, r2);
    // Another federation namespace gives unrelated pseudonyms.
    let other = vec![linkage_input(b"federation-us-2", b"NHS-111").unwrap()];
    assert_ne!(run(&other, &mut rng)[0], pa[0]);
}

#[test]
fn a_key_holder_using_another_key_is_caught() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let honest = OprfKeyHolder::random(&mut rng).unwrap();
    let rogue = OprfKeyHolder::random(&mut rng).unwrap();
    let ids = inputs(&["a", "b"]);
    let (pending, req) = blind(&ids, &mut rng).unwrap();
    let resp = rogue.evaluate(&req, &mut rng).unwrap();
    assert_eq!(pending.finalize(&ids, &resp, &honest.public_key()), Err(OprfError::ProofInvalid));

    // A response for a different request (elements swapped) also fails.
    let (pending, req) = blind(&ids, &mut rng).unwrap();
    let resp = honest.evaluate(&req, &mut rng).unwrap();
    let mut enc = resp.encode();
    let (a, b) = enc[5..69].split_at_mut(32);
    a.swap_with_slice(b);
    let swapped = EvaluatedResponse::decode(&enc).unwrap();
    assert_eq!(pending.finalize(&ids, &swapped, &honest.public_key()), Err(OprfError::ProofInvalid));
}

#[test]
fn mismatched_counts_and_bad_inputs() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let holder = OprfKeyHolder::random(&mut rng).unwrap();
    let ids = inputs(&["a", "b"]);
    let (pending, req) = blind(&ids, &mut rng).unwrap();
    let resp = holder.evaluate(&req, &mut rng).unwrap();
    assert!(matches!(
        pending.finalize(&ids[..1], &resp, &holder.public_key()),
        Err(OprfError::LengthMismatch { expected: 2, got: 1, .. })
    ));
    let empty: Vec<Vec<u8>> = vec![];
    assert!(matches!(blind(&empty, &mut rng), Err(OprfError::BatchSize { len: 0, .. })));
    let with_long = vec![b"x".to_vec(), vec![0u8; 70_000]];
    assert!(matches!(blind(&with_long, &mut rng), Err(OprfError::InvalidInput { index: 1 })));
}

#[test]
fn wire_strictness_and_state_round_trip() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let holder = OprfKeyHolder::random(&mut rng).unwrap();
    let ids = inputs(&["a"]);
    let (pending, req) = blind(&ids, &mut rng).unwrap();
    let enc = req.encode();
    assert_eq!(&enc[..5], &[1, 0, 0, 0, 1]);
    assert_eq!(enc.len(), 37);
    let mut long = enc.clone();
    long.push(0);
    assert!(matches!(BlindedRequest::decode(&long), Err(OprfError::Malformed { reason: "trailing bytes", .. })));
    assert!(BlindedRequest::decode(&enc[..36]).is_err());
    let mut bad_point = enc.clone();
    bad_point[5..].fill(0xff);
    assert!(matches!(BlindedRequest::decode(&bad_point), Err(OprfError::Malformed { offset: 5, .. })));
    let mut identity = enc.clone();
    identity[5..].fill(0);
    assert!(BlindedRequest::decode(&identity).is_err());
    assert!(BlindedRequest::decode(&[1, 0, 0, 0, 0]).is_err());
    let resp = holder.evaluate(&req, &mut rng).unwrap();
    let renc = resp.encode();
    assert_eq!(renc.len(), 5 + 32 + 64);
    let mut bad_proof = renc.clone();
    bad_proof[37..].fill(0xff);
    assert!(EvaluatedResponse::decode(&bad_proof).is_err());
    assert!(EvaluatedResponse::decode(&enc).is_err());

    // The site state survives a restart.
    let saved = pending.to_secret_bytes();
    let restored = PendingPseudonyms::from_secret_bytes(&saved).unwrap();
    let p1 = restored.finalize(&ids, &resp, &holder.public_key()).unwrap();
    let p2 = pending.finalize(&ids, &resp, &holder.public_key()).unwrap();
    assert_eq!(p1, p2);
    // Key holder persistence.
    let again = OprfKeyHolder::from_secret_bytes(&holder.to_secret_bytes()).unwrap();
    assert_eq!(again.public_key(), holder.public_key());
    assert_eq!(format!("{holder:?}"), "OprfKeyHolder(<redacted>)");
    assert!(format!("{restored:?}", restored = PendingPseudonyms::from_secret_bytes(&saved).unwrap())
        .contains("<redacted>"));
}

#[test]
fn site_pseudonyms_known_answer_and_separation() {
    let secret = SiteSecret::from_bytes(&[7u8; 32]).unwrap();
    let p = secret.pseudonym("study-42", b"patient-0001");
    // Independent check: HMAC-SHA256 over the documented framing.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
    mac.update(seh_crypto::pseudonym::SITE_PSEUDONYM_DST);
    mac.update(&8u32.to_be_bytes());
    mac.update(b"study-42");
    mac.update(&12u64.to_be_bytes());
    mac.update(b"patient-0001");
    assert_eq!(p.0.to_vec(), mac.finalize().into_bytes().to_vec());
    assert_eq!(p.to_string(), "fd6f4f9dd9aae1615465b7ea42be010fe66b7f9af09d94539fe032fd9c4bd6d4");
    assert_eq!(p, secret.pseudonym("study-42", b"patient-0001"));
    assert_ne!(p, secret.pseudonym("study-43", b"patient-0001"));
    assert_ne!(p, SiteSecret::from_bytes(&[8u8; 32]).unwrap().pseudonym("study-42", b"patient-0001"));
    // Framing is injective: moving bytes between purpose and id changes the value.
    assert_ne!(secret.pseudonym("ab", b"c"), secret.pseudonym("a", b"bc"));
    assert_eq!(format!("{secret:?}"), "SiteSecret(<redacted>)");
    assert_eq!(SiteSecret::from_bytes(&[1; 31]).unwrap_err(), PseudonymError::SecretLength { got: 31 });
    assert!(linkage_input(b"ns", &vec![0u8; 70_000]).is_err());
}
