//! Serialisation of every threshold-BFV object: round trips, strict
//! rejection of malformed bytes, and parameter-set mismatches.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::he::{
    simulate_setup, DecryptionShare, HeContext, HeError, HeParams, HeVector, LocalFederation, ResearcherKey,
    ResearcherPublicKey, ShareRequest, ThresholdKeyShare, BFV_16384, BFV_8192,
};
use seh_crypto::wire::{PartyId, SessionId, StudyId};
use std::sync::OnceLock;

struct Fixture {
    ctx: HeContext,
    fed: std::sync::Mutex<LocalFederation>,
    ct: HeVector,
    holders: Vec<PartyId>,
    values: Vec<i64>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ctx = HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
        let session = SessionId { study: StudyId([1; 16]), round: 0 };
        let fed = simulate_setup(&ctx, &session, &holders, 2, &mut rng).unwrap();
        let values: Vec<i64> = (0..8200).map(|_| rng.gen_range(-1_000_000..1_000_000)).collect();
        let ct = fed.public_key.encrypt_i64(&values, &mut rng).unwrap();
        Fixture { ctx, fed: std::sync::Mutex::new(fed), ct, holders, values }
    })
}

#[test]
fn ciphertext_round_trip_and_size() {
    let f = fixture();
    let bytes = f.ct.to_bytes(&f.ctx).unwrap();
    assert_eq!(bytes.len(), f.ct.encoded_len(&f.ctx));
    // Two ciphertexts × two polynomials × 3 limbs × 8192 × 62 bits.
    assert_eq!(bytes.len(), 8 + 32 + 4 + 4 + 8 + 2 * 2 * 3 * 8192 * 62 / 8);
    let back = HeVector::from_bytes(&f.ctx, &bytes, Some(PartyId(1))).unwrap();
    assert_eq!(back, f.ct);
    assert_eq!(back.to_bytes(&f.ctx).unwrap(), bytes);
}

#[test]
fn shares_requests_keys_round_trip() {
    let f = fixture();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let mut fed = f.fed.lock().unwrap();
    let dec = vec![f.holders[0], f.holders[1]];
    let researcher = ResearcherKey::generate(&f.ctx, &mut rng).unwrap();
    let rpk = researcher.public_key();
    let rpk_bytes = rpk.to_bytes(&f.ctx);
    assert_eq!(&ResearcherPublicKey::from_bytes(&f.ctx, &rpk_bytes).unwrap(), rpk);
    for req in [f.ct.decrypt_request(&dec), f.ct.key_switch_request(&dec, rpk)] {
        let b = req.to_bytes(&f.ctx);
        let back = ShareRequest::from_bytes(&f.ctx, &b, Some(PartyId::COORDINATOR)).unwrap();
        assert_eq!(back, req);
        let mut shares = Vec::new();
        for i in 0..2 {
            let s = fed.shares[i].share(&back, &mut rng).unwrap();
            let sb = s.to_bytes(&f.ctx);
            let s2 = DecryptionShare::from_bytes(&f.ctx, &sb, f.holders[i]).unwrap();
            assert_eq!(s2, s);
            // The share must come from the party it names.
            assert!(matches!(
                DecryptionShare::from_bytes(&f.ctx, &sb, f.holders[2]),
                Err(HeError::Malformed { party: Some(p), .. }) if p == f.holders[2]
            ));
            shares.push(s2);
        }
        if req.is_key_switch() {
            let sw = f.ct.key_switch(&f.ctx, &dec, &shares).unwrap();
            assert_eq!(researcher.decrypt(&sw).unwrap(), f.values);
        } else {
            assert_eq!(f.ct.threshold_decrypt(&f.ctx, &dec, &shares).unwrap(), f.values);
        }
    }
    let kb = fed.shares[0].to_bytes();
    let k = ThresholdKeyShare::from_bytes(&f.ctx, &kb).unwrap();
    assert_eq!(k.party(), f.holders[0]);
    assert_eq!(k.used(), fed.shares[0].used());
    assert_eq!(*k.to_bytes(), *kb);
    assert!(!format!("{k:?}").contains("share: P"), "Debug must redact");
}

#[test]
fn malformed_ciphertexts_are_errors() {
    let f = fixture();
    let good = f.ct.to_bytes(&f.ctx).unwrap();
    let dec = |b: &[u8]| HeVector::from_bytes(&f.ctx, b, Some(PartyId(2)));
    // Truncated, trailing byte, bad magic.
    assert!(matches!(dec(&good[..good.len() - 1]), Err(HeError::Malformed { party: Some(PartyId(2)), .. })));
    let mut long = good.clone();
    long.push(0);
    assert!(dec(&long).is_err());
    let mut b = good.clone();
    b[0] ^= 1;
    assert!(matches!(dec(&b), Err(HeError::Malformed { reason: "bad magic", .. })));
    // Length not matching the ciphertext count.
    let mut b = good.clone();
    b[40..44].copy_from_slice(&100u32.to_be_bytes());
    assert!(matches!(dec(&b), Err(HeError::Malformed { .. })));
    // A residue ≥ its prime (all-ones 62-bit word).
    let mut b = good.clone();
    let off = 8 + 32 + 4 + 4 + 8;
    for x in &mut b[off..off + 8] {
        *x = 0xff;
    }
    assert!(matches!(dec(&b), Err(HeError::Malformed { reason: "residue not reduced modulo its prime", .. })));
    // Non-finite noise bound.
    let mut b = good.clone();
    b[48..56].copy_from_slice(&f64::NAN.to_bits().to_be_bytes());
    assert!(dec(&b).is_err());
    // Empty and absurd inputs.
    assert!(dec(&[]).is_err());
    assert!(dec(&good[..60]).is_err());
}

#[test]
fn mismatched_parameters_are_errors() {
    let f = fixture();
    let big = HeContext::new(HeParams::new(BFV_16384).unwrap()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let session = SessionId { study: StudyId([2; 16]), round: 0 };
    let fed16 = simulate_setup(&big, &session, &f.holders, 2, &mut rng).unwrap();
    let ct16 = fed16.public_key.encrypt_i64(&[1, 2, 3], &mut rng).unwrap();
    let b16 = ct16.to_bytes(&big).unwrap();
    assert!(matches!(
        HeVector::from_bytes(&f.ctx, &b16, Some(PartyId(3))),
        Err(HeError::ParameterMismatch { party: Some(PartyId(3)), .. })
    ));
    assert!(matches!(ct16.to_bytes(&f.ctx), Err(HeError::ParameterMismatch { .. })));
    let mut mine = f.ct.clone();
    assert!(matches!(mine.add_assign(&ct16, Some(PartyId(3))), Err(HeError::ParameterMismatch { .. })));
    let short = {
        let fed = f.fed.lock().unwrap();
        fed.public_key.encrypt_i64(&[1, 2, 3], &mut rng).unwrap()
    };
    assert!(matches!(mine.add_assign(&short, Some(PartyId(1))), Err(HeError::LengthMismatch { .. })));
    // A share request of the other set is refused by a holder.
    let req16 = ct16.decrypt_request(&f.holders[..2]);
    let mut fed = f.fed.lock().unwrap();
    assert!(matches!(fed.shares[0].share(&req16, &mut rng), Err(HeError::ParameterMismatch { .. })));
    assert!(ThresholdKeyShare::from_bytes(&big, &fed.shares[0].to_bytes()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn decoders_never_panic(cut in 0usize..400_000, flip in 0usize..400_000, bit in 0u8..8) {
        let f = fixture();
        let good = f.ct.to_bytes(&f.ctx).unwrap();
        let mut b = good.clone();
        let i = flip % b.len();
        b[i] ^= 1 << bit;
        b.truncate(cut.max(1).min(b.len()));
        let _ = HeVector::from_bytes(&f.ctx, &b, None);
        let _ = ShareRequest::from_bytes(&f.ctx, &b, None);
        let _ = DecryptionShare::from_bytes(&f.ctx, &b, PartyId(1));
        let _ = ThresholdKeyShare::from_bytes(&f.ctx, &b);
        let _ = ResearcherPublicKey::from_bytes(&f.ctx, &b);
    }
}
