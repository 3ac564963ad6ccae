//! Threshold BFV behind the `SecureSum` trait (signed envelopes end to end),
//! the encrypted store, and the security gates (noise and decryption budgets).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::fixed::FixedParams;
use seh_crypto::he::{
    simulate_setup, EncryptedStore, HeContext, HeError, HeParams, HeSum, ThresholdKeyShare, BFV_8192,
};
use seh_crypto::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use seh_crypto::wire::{Envelope, PartyId, SessionGuard, SessionId, SignedEnvelope, SigningKey, StudyId, VerifyingKey};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

fn ctx() -> HeContext {
    HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap()
}

#[test]
fn he_secure_sum_matches_the_plain_sum() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let session = SessionId { study: StudyId([3; 16]), round: 4 };
    let holders: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let fed = simulate_setup(&ctx, &session, &holders, 3, &mut rng).unwrap();
    let pk = Arc::new(fed.public_key);
    let fixed = FixedParams::new(32, 1e4, 5).unwrap();
    let len = 10_000;
    let ids: BTreeMap<PartyId, SigningKey> = holders.iter().map(|&p| (p, SigningKey::from_bytes(&rng.gen()))).collect();
    let coord_key = SigningKey::from_bytes(&rng.gen());
    let mut roster: BTreeMap<PartyId, VerifyingKey> = ids.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    roster.insert(PartyId::COORDINATOR, coord_key.verifying_key());

    let coordinator = HeSum::coordinator(pk.clone(), fixed, session, len).unwrap();
    let inputs: Vec<Vec<f64>> = (0..5).map(|_| (0..len).map(|_| rng.gen_range(-1e4..1e4)).collect()).collect();
    // Party 2 stays offline: its input is not in the sum.
    let online = [0usize, 2, 3, 4];
    let mut sites = Vec::new();
    for (k, key) in fed.shares.into_iter().enumerate() {
        if !online.contains(&k) {
            continue;
        }
        let cfg = HeSum::site(pk.clone(), fixed, session, len, Arc::new(Mutex::new(key))).unwrap();
        let site = cfg.contribute(holders[k], &ids[&holders[k]], cfg.encode(&inputs[k]).unwrap()).unwrap();
        sites.push((holders[k], site));
    }
    let wire = |env: Envelope, key: &SigningKey| -> Envelope {
        SignedEnvelope::open_vec(env.sign(key).unwrap().into_bytes().unwrap(), &roster).unwrap()
    };
    let mut coord = coordinator.combine();
    let mut guard = SessionGuard::new(session, 4);
    for (p, s) in &mut sites {
        for env in s.start(&mut rng).unwrap() {
            let env = wire(env, &ids[p]);
            guard.check(&env).unwrap();
            coord.receive(&env).unwrap();
        }
    }
    let RoundOutcome::Send(req) = coord.close_round().unwrap() else { panic!("expected a request") };
    assert_eq!(req.len(), 1);
    let req = wire(req.into_iter().next().unwrap(), &coord_key);
    let mut replies = 0;
    for (p, s) in &mut sites {
        for env in s.receive(&req, &mut rng).unwrap() {
            replies += 1;
            coord.receive(&wire(env, &ids[p])).unwrap();
        }
        assert!(s.is_done());
    }
    assert_eq!(replies, 3, "exactly t decryptors answer");
    let RoundOutcome::Done { sum, contributors } = coord.close_round().unwrap() else { panic!("expected the sum") };
    assert_eq!(contributors, online.iter().map(|&k| holders[k]).collect::<Vec<_>>());
    let got = coordinator.decode(&sum).unwrap();
    for (j, g) in got.iter().enumerate() {
        let exact: f64 = online.iter().map(|&k| inputs[k][j]).sum();
        assert!((g - exact).abs() <= 4.0 * fixed.resolution(), "{j}: {g} vs {exact}");
    }
    // Done: nothing more is accepted.
    assert!(coord.close_round().is_err());
}

#[test]
fn store_reaggregates_offline_and_gates_hold() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let session = SessionId { study: StudyId([4; 16]), round: 0 };
    let holders: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session, &holders, 3, &mut rng).unwrap();
    let dir = std::env::temp_dir().join(format!("seh-he-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = EncryptedStore::open(&ctx, &dir).unwrap();
    let values: Vec<Vec<i64>> = (0..5).map(|_| (0..300).map(|_| rng.gen_range(-1000..1000)).collect()).collect();
    for (k, v) in values.iter().enumerate() {
        store.put("counts.v1", holders[k], &fed.public_key.encrypt_i64(v, &mut rng).unwrap()).unwrap();
    }
    assert!(store.put("../escape", holders[0], &fed.public_key.encrypt_i64(&[1], &mut rng).unwrap()).is_err());
    assert_eq!(store.sites("counts.v1").unwrap(), holders);
    // Later, sites offline: re-aggregate a subset and scale by 3.
    let mut agg = store.aggregate("counts.v1", Some(&holders[1..4])).unwrap();
    agg.scale(&ctx, 3).unwrap();
    let expected: Vec<i64> = (0..300).map(|j| 3 * (1..4).map(|k| values[k][j]).sum::<i64>()).collect();
    let dec = vec![holders[0], holders[2], holders[4]];
    let req = agg.decrypt_request(&dec);
    let shares: Vec<_> = [0, 2, 4].iter().map(|&i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
    assert_eq!(agg.threshold_decrypt(&ctx, &dec, &shares).unwrap(), expected);
    // The full aggregate.
    let all = store.aggregate("counts.v1", None).unwrap();
    let req = all.decrypt_request(&dec);
    let shares: Vec<_> = [0, 2, 4].iter().map(|&i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
    let sum: Vec<i64> = (0..300).map(|j| values.iter().map(|v| v[j]).sum()).collect();
    assert_eq!(all.threshold_decrypt(&ctx, &dec, &shares).unwrap(), sum);
    // A corrupted file is an error naming its site.
    let path = dir.join("counts.v1").join("4.hev");
    let mut b = std::fs::read(&path).unwrap();
    b.truncate(b.len() - 3);
    std::fs::write(&path, b).unwrap();
    assert!(matches!(store.aggregate("counts.v1", None), Err(HeError::Malformed { party: Some(PartyId(4)), .. })));
    std::fs::remove_dir_all(&dir).unwrap();

    // Noise gate: scaling by 2^40 pushes the noise past what the flooding hides.
    let mut loud = fed.public_key.encrypt_i64(&[1, 2, 3], &mut rng).unwrap();
    loud.scale(&ctx, 1 << 40).unwrap();
    let req = loud.decrypt_request(&dec);
    assert!(matches!(fed.shares[0].share(&req, &mut rng), Err(HeError::NoiseBudgetExceeded { .. })));
    // Decryption budget: a key share at its limit refuses.
    let mut kb = fed.shares[0].to_bytes().to_vec();
    let off = 8 + 32 + 4 + 4 + 4 + 4 * holders.len();
    kb[off..off + 8].copy_from_slice(&((1u64 << 16) - 1).to_be_bytes());
    let mut worn = ThresholdKeyShare::from_bytes(&ctx, &kb).unwrap();
    let two = fed.public_key.encrypt_i64(&vec![1; 9000], &mut rng).unwrap();
    let req = two.decrypt_request(&dec);
    assert!(matches!(worn.share(&req, &mut rng), Err(HeError::DecryptionBudgetExhausted { .. })));
    // A holder outside the request, and a non-holder, are refused.
    let req = two.decrypt_request(&dec);
    assert!(fed.shares[1].share(&req, &mut rng).is_err());
    let req = two.decrypt_request(&[holders[0], holders[1], PartyId(99)]);
    assert!(matches!(fed.shares[0].share(&req, &mut rng), Err(HeError::UnexpectedParty { .. })));
}

#[test]
fn he_sum_rejects_inputs_outside_the_fixed_range() {
    let ctx = ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let session = SessionId { study: StudyId([5; 16]), round: 0 };
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session, &holders, 2, &mut rng).unwrap();
    let pk = Arc::new(fed.public_key);
    // A fixed-point range wider than t: refused up front.
    let wide = FixedParams::new(50, 1e3, 3).unwrap();
    assert!(HeSum::coordinator(pk.clone(), wide, session, 4).is_err());
    let fixed = FixedParams::new(20, 1.0, 3).unwrap();
    let key = Arc::new(Mutex::new(fed.shares.remove(0)));
    let cfg = HeSum::site(pk, fixed, session, 2, key).unwrap();
    let id = SigningKey::from_bytes(&[9; 32]);
    // A raw word beyond bound·2^f (here u64::MAX/2) is refused, never wrapped mod t.
    assert!(matches!(
        cfg.contribute(holders[0], &id, vec![0, u64::MAX / 2]),
        Err(HeError::PlaintextRange { index: 1 })
    ));
    assert!(cfg.contribute(holders[1], &id, vec![0, 0]).is_err(), "key share of another party");
    assert!(cfg.contribute(holders[0], &id, vec![0]).is_err(), "wrong length");
}
