//! Threshold BFV end to end: encrypt at 5 sites → aggregate → threshold
//! decrypt with every t-subset; t−1 shares do not decrypt; key switching;
//! flooding is present.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::fixed::FixedParams;
use seh_crypto::he::{simulate_setup, HeContext, HeError, HeParams, HeVector, ResearcherKey, BFV_8192};
use seh_crypto::wire::{PartyId, SessionId, StudyId};

fn ctx() -> HeContext {
    HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap()
}

fn session() -> SessionId {
    SessionId { study: StudyId([7; 16]), round: 0 }
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

#[test]
fn every_t_subset_decrypts_and_t_minus_one_does_not() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let holders: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let t = 3;
    let mut fed = simulate_setup(&ctx, &session(), &holders, t, &mut rng).unwrap();
    let pk = &fed.public_key;
    // Length 9000 spans two ciphertexts.
    let len = 9000;
    let fixed = FixedParams::new(30, 1000.0, 5).unwrap();
    let inputs: Vec<Vec<f64>> = (0..5).map(|_| (0..len).map(|_| rng.gen_range(-1000.0..1000.0)).collect()).collect();
    let mut agg: Option<HeVector> = None;
    for (i, x) in inputs.iter().enumerate() {
        let ct = pk.encrypt_f64(&fixed, x, &mut rng).unwrap();
        assert_eq!(ct.ciphertexts(), 2);
        match &mut agg {
            None => agg = Some(ct),
            Some(a) => a.add_assign(&ct, Some(holders[i])).unwrap(),
        }
    }
    let agg = agg.unwrap();
    let expected: Vec<i64> =
        (0..len).map(|j| inputs.iter().map(|x| fixed.encode(&x[j..=j]).unwrap()[0] as i64).sum::<i64>()).collect();
    for set in subsets(5, t) {
        let dec: Vec<PartyId> = set.iter().map(|&i| holders[i]).collect();
        let req = agg.decrypt_request(&dec);
        let shares: Vec<_> = set.iter().map(|&i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
        let got = agg.threshold_decrypt(&ctx, &dec, &shares).unwrap();
        assert_eq!(got, expected, "subset {dec:?}");
    }
    // Four decryptors work too.
    let dec: Vec<PartyId> = holders[..4].to_vec();
    let req = agg.decrypt_request(&dec);
    let shares: Vec<_> = (0..4).map(|i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
    assert_eq!(agg.threshold_decrypt(&ctx, &dec, &shares).unwrap(), expected);

    // t−1 decryptors: every holder refuses the request.
    for set in subsets(5, t - 1) {
        let dec: Vec<PartyId> = set.iter().map(|&i| holders[i]).collect();
        let req = agg.decrypt_request(&dec);
        for &i in &set {
            assert!(matches!(fed.shares[i].share(&req, &mut rng), Err(HeError::NotEnoughParties { .. })));
        }
    }
    // t−1 genuine shares of a t-set, the third replaced by zeros: garbage.
    let dec: Vec<PartyId> = holders[..3].to_vec();
    let req = agg.decrypt_request(&dec);
    let mut shares: Vec<_> = (0..3).map(|i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
    let mut bytes = shares[2].to_bytes(&ctx);
    let head = 8 + 32 + 4 + 4 + 1;
    bytes[head..].iter_mut().for_each(|b| *b = 0);
    shares[2] = seh_crypto::he::DecryptionShare::from_bytes(&ctx, &bytes, holders[2]).unwrap();
    let got = agg.threshold_decrypt(&ctx, &dec, &shares).unwrap();
    let agree = got.iter().zip(&expected).filter(|(a, b)| a == b).count();
    assert!(agree < 5, "{agree} of {len} values survived without the third share");
    // Missing share: an error naming the party.
    assert_eq!(
        agg.threshold_decrypt(&ctx, &dec, &shares[..2]).unwrap_err(),
        HeError::MissingShares { missing: vec![holders[2]] }
    );
}

#[test]
fn key_switch_reaches_only_the_researcher() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session(), &holders, 2, &mut rng).unwrap();
    let values: Vec<i64> = (0..100).map(|_| rng.gen_range(-(1i64 << 59)..(1i64 << 59))).collect();
    let ct = fed.public_key.encrypt_i64(&values, &mut rng).unwrap();
    let researcher = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let other = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let dec = vec![holders[0], holders[2]];
    let req = ct.key_switch_request(&dec, researcher.public_key());
    let shares = vec![fed.shares[0].share(&req, &mut rng).unwrap(), fed.shares[2].share(&req, &mut rng).unwrap()];
    let switched = ct.key_switch(&ctx, &dec, &shares).unwrap();
    assert_eq!(researcher.decrypt(&switched).unwrap(), values);
    let wrong = other.decrypt(&switched).unwrap();
    assert!(wrong.iter().zip(&values).filter(|(a, b)| a == b).count() < 3);
    // Decrypting the switched ciphertext with the federation's shares fails too.
    let req2 = switched.decrypt_request(&dec);
    match fed.shares[0].share(&req2, &mut rng) {
        Err(HeError::NoiseBudgetExceeded { .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn decryption_shares_are_flooded() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session(), &holders, 2, &mut rng).unwrap();
    let ct = fed.public_key.encrypt_i64(&[42; 10], &mut rng).unwrap();
    let dec = vec![holders[0], holders[1]];
    let req = ct.decrypt_request(&dec);
    let a = fed.shares[0].share(&req, &mut rng).unwrap();
    let b = fed.shares[0].share(&req, &mut rng).unwrap();
    // h_a − h_b = e_a − e_b: uniform noise of width 2^(b+1) = 2^117 per coefficient.
    let diff = seh_crypto::he::decrypt::share_difference_log2(&ctx, &a, &b).unwrap();
    let b_bits = f64::from(ctx.params().set().flood_bits);
    assert!(diff.max <= b_bits + 1.0 + 1e-9, "max |e_a - e_b| = 2^{}", diff.max);
    assert!(diff.max > b_bits + 0.5, "flooding missing: max 2^{}", diff.max);
    assert!((diff.mean - b_bits).abs() < 1.5, "mean log2 |diff| = {}", diff.mean);
    assert_eq!(fed.shares[0].used(), 2);
}
