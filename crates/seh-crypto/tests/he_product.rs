//! Collective relinearisation key and ciphertext products: the two-round
//! protocol over the wire among every t-subset of 5 holders, slot-wise
//! products that threshold-decrypt to the exact product, strict decoding
//! naming the party at fault, the noise gate, and a property test.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::fixed::FixedParams;
use seh_crypto::he::decrypt::share_difference_log2;
use seh_crypto::he::{
    check_product_fixed, decode_product, simulate_setup, CollectiveRelinKey, HeContext, HeError, HeParams, HeVector,
    LocalFederation, RelinRound1Aggregate, RelinRound1Share, RelinRound2Share, RelinSession, ResearcherKey, BFV_16384,
    BFV_8192,
};
use seh_crypto::wire::{PartyId, SessionId, StudyId};
use std::sync::{Mutex, OnceLock};

fn ctx16() -> HeContext {
    static CTX: OnceLock<HeContext> = OnceLock::new();
    CTX.get_or_init(|| HeContext::new(HeParams::new(BFV_16384).unwrap()).unwrap()).clone()
}

fn session(tag: u8) -> SessionId {
    SessionId { study: StudyId([tag; 16]), round: 0 }
}

fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
        .collect()
}

fn ids(fed: &LocalFederation, idx: &[usize]) -> Vec<PartyId> {
    idx.iter().map(|&i| fed.public_key.holders()[i]).collect()
}

/// The full protocol among `idx`, every message through its byte encoding.
fn run_rkg(fed: &LocalFederation, idx: &[usize], seed: [u8; 32], rng: &mut ChaCha20Rng) -> CollectiveRelinKey {
    let ses = RelinSession::new(&fed.public_key, &ids(fed, idx), &seed).unwrap();
    let mut gens: Vec<_> = idx.iter().map(|&i| ses.generator(&fed.shares[i], rng).unwrap()).collect();
    let r1: Vec<RelinRound1Share> = gens
        .iter_mut()
        .map(|g| {
            let bytes = g.round_1(rng).unwrap().to_bytes(&ses);
            RelinRound1Share::from_bytes(&ses, &bytes, g.party()).unwrap()
        })
        .collect();
    // Each participant aggregates round 1 itself; all get the same bytes.
    let agg = ses.aggregate_round1(&r1).unwrap();
    let agg = RelinRound1Aggregate::from_bytes(&ses, &agg.to_bytes(&ses), None).unwrap();
    let r2: Vec<RelinRound2Share> = gens
        .into_iter()
        .map(|g| {
            let p = g.party();
            let bytes = g.round_2(&agg, rng).unwrap().to_bytes(&ses);
            RelinRound2Share::from_bytes(&ses, &bytes, p).unwrap()
        })
        .collect();
    let rlk = ses.aggregate_round2(&agg, &r2).unwrap();
    CollectiveRelinKey::from_bytes(ses.context(), &rlk.to_bytes(), None).unwrap()
}

fn encrypt_sum(fed: &LocalFederation, inputs: &[Vec<i64>], rng: &mut ChaCha20Rng) -> HeVector {
    let mut acc: Option<HeVector> = None;
    for (i, x) in inputs.iter().enumerate() {
        let ct = fed.public_key.encrypt_i64(x, rng).unwrap();
        match &mut acc {
            None => acc = Some(ct),
            Some(a) => a.add_assign(&ct, Some(PartyId(i as u32 + 1))).unwrap(),
        }
    }
    acc.unwrap()
}

fn decrypt(fed: &mut LocalFederation, ct: &HeVector, idx: &[usize], rng: &mut ChaCha20Rng) -> Vec<i64> {
    let dec = ids(fed, idx);
    let req = ct.decrypt_request(&dec);
    let shares: Vec<_> = idx.iter().map(|&i| fed.shares[i].share(&req, rng).unwrap()).collect();
    ct.threshold_decrypt(fed.public_key.context(), &dec, &shares).unwrap()
}

fn column_sums(inputs: &[Vec<i64>]) -> Vec<i64> {
    (0..inputs[0].len()).map(|j| inputs.iter().map(|x| x[j]).sum()).collect()
}

#[test]
fn every_t_subset_makes_a_relin_key_and_products_decrypt_exactly() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let holders: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let t = 3;
    let mut fed = simulate_setup(&ctx, &session(1), &holders, t, &mut rng).unwrap();
    // Two ciphertexts per vector; sums of 5 inputs of |v| ≤ 2^20, products < 2^45.
    let len = ctx.params().slots() + 37;
    let xs: Vec<Vec<i64>> = (0..5).map(|_| (0..len).map(|_| rng.gen_range(-(1 << 20)..=1 << 20)).collect()).collect();
    let ys: Vec<Vec<i64>> = (0..5).map(|_| (0..len).map(|_| rng.gen_range(-(1 << 20)..=1 << 20)).collect()).collect();
    let (sx, sy) = (column_sums(&xs), column_sums(&ys));
    let expected: Vec<i64> = sx.iter().zip(&sy).map(|(a, b)| a * b).collect();
    let x = encrypt_sum(&fed, &xs, &mut rng);
    let y = encrypt_sum(&fed, &ys, &mut rng);
    let sets = subsets(5, t);
    for (k, set) in sets.iter().enumerate() {
        let rlk = run_rkg(&fed, set, [k as u8; 32], &mut rng);
        assert_eq!(rlk.participants(), t);
        let z = x.mul(&y, &rlk, None).unwrap();
        assert!(z.noise_log2() < ctx.params().hidden_noise_log2());
        // Decrypted by another t-subset than the one that made the key.
        let dec = &sets[(k + 3) % sets.len()];
        assert_eq!(decrypt(&mut fed, &z, dec, &mut rng), expected, "key by {set:?}, decrypted by {dec:?}");
    }
    // All five make a key; the product of sums plus a sum of products.
    let rlk = run_rkg(&fed, &[0, 1, 2, 3, 4], [99; 32], &mut rng);
    let mut z = x.mul(&y, &rlk, Some(holders[1])).unwrap();
    z.add_assign(&x.mul(&x, &rlk, None).unwrap(), None).unwrap();
    let want: Vec<i64> = expected.iter().zip(&sx).map(|(e, a)| e + a * a).collect();
    assert_eq!(decrypt(&mut fed, &z, &[0, 2, 4], &mut rng), want);
    // Key switch of a product to the researcher.
    let researcher = ResearcherKey::generate(&ctx, &mut rng).unwrap();
    let z = x.mul(&y, &rlk, None).unwrap();
    let dec = ids(&fed, &[1, 3, 4]);
    let req = z.key_switch_request(&dec, researcher.public_key());
    let shares: Vec<_> = [1, 3, 4].iter().map(|&i| fed.shares[i].share(&req, &mut rng).unwrap()).collect();
    assert_eq!(researcher.decrypt(&z.key_switch(&ctx, &dec, &shares).unwrap()).unwrap(), expected);
    // t−1 participants cannot run the protocol.
    for set in subsets(5, t - 1) {
        assert!(matches!(
            RelinSession::new(&fed.public_key, &ids(&fed, &set), &[0; 32]),
            Err(HeError::NotEnoughParties { .. })
        ));
    }
}

#[test]
fn fixed_point_products_decode_with_the_squared_scale() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session(2), &holders, 2, &mut rng).unwrap();
    let fixed = FixedParams::new(16, 100.0, 3).unwrap();
    check_product_fixed(&ctx, &fixed, &fixed).unwrap();
    let wide = FixedParams::new(24, 1000.0, 3).unwrap();
    assert!(check_product_fixed(&ctx, &wide, &wide).is_err());
    let len = 500;
    let a: Vec<Vec<f64>> = (0..3).map(|_| (0..len).map(|_| rng.gen_range(-100.0..100.0)).collect()).collect();
    let b: Vec<Vec<f64>> = (0..3).map(|_| (0..len).map(|_| rng.gen_range(-100.0..100.0)).collect()).collect();
    let enc = |v: &Vec<Vec<f64>>, rng: &mut ChaCha20Rng| {
        let mut acc: Option<HeVector> = None;
        for x in v {
            let ct = fed.public_key.encrypt_f64(&fixed, x, rng).unwrap();
            match &mut acc {
                None => acc = Some(ct),
                Some(s) => s.add_assign(&ct, None).unwrap(),
            }
        }
        acc.unwrap()
    };
    let (ea, eb) = (enc(&a, &mut rng), enc(&b, &mut rng));
    let rlk = run_rkg(&fed, &[0, 2], [5; 32], &mut rng);
    let got = decrypt(&mut fed, &ea.mul(&eb, &rlk, None).unwrap(), &[1, 2], &mut rng);
    // Exact: the product of the summed encodings.
    let word = |x: f64| fixed.encode(&[x]).unwrap()[0] as i64;
    for j in 0..len {
        let sa: i64 = a.iter().map(|v| word(v[j])).sum();
        let sb: i64 = b.iter().map(|v| word(v[j])).sum();
        assert_eq!(got[j], sa * sb, "slot {j}");
    }
    // Decoded with scale 2^-32 it approximates the real product.
    let dec = decode_product(&fixed, &fixed, &got);
    for j in 0..len {
        let want = a.iter().map(|v| v[j]).sum::<f64>() * b.iter().map(|v| v[j]).sum::<f64>();
        assert!((dec[j] - want).abs() < 600.0 * 3.0 * 2f64.powi(-16), "slot {j}: {} vs {want}", dec[j]);
    }
}

#[test]
fn foreign_and_malformed_shares_are_refused_naming_the_party() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let holders: Vec<PartyId> = (1..=4).map(PartyId).collect();
    let fed = simulate_setup(&ctx, &session(3), &holders, 2, &mut rng).unwrap();
    let other = simulate_setup(&ctx, &session(4), &holders, 2, &mut rng).unwrap();
    let parts = vec![holders[0], holders[2]];
    let seed = [7; 32];
    let ses = RelinSession::new(&fed.public_key, &parts, &seed).unwrap();
    let mut g0 = ses.generator(&fed.shares[0], &mut rng).unwrap();
    let mut g2 = ses.generator(&fed.shares[2], &mut rng).unwrap();
    let s0 = g0.round_1(&mut rng).unwrap();
    let s2 = g2.round_1(&mut rng).unwrap();
    assert!(g0.round_1(&mut rng).is_err(), "a second round-1 share");
    // Not a participant.
    assert!(ses.generator(&fed.shares[1], &mut rng).is_err());
    // A share of the same participants and seed under another federation's key.
    let foreign_ses = RelinSession::new(&other.public_key, &parts, &seed).unwrap();
    let foreign = foreign_ses.generator(&other.shares[2], &mut rng).unwrap().round_1(&mut rng).unwrap();
    let err = ses.aggregate_round1(&[s0.clone(), foreign.clone()]).unwrap_err();
    assert!(matches!(err, HeError::ParameterMismatch { party: Some(p), .. } if p == holders[2]), "{err:?}");
    let err = RelinRound1Share::from_bytes(&ses, &foreign.to_bytes(&foreign_ses), holders[2]).unwrap_err();
    assert!(matches!(err, HeError::ParameterMismatch { party: Some(p), .. } if p == holders[2]), "{err:?}");
    // Another seed (another run): refused too.
    let ses_b = RelinSession::new(&fed.public_key, &parts, &[8; 32]).unwrap();
    let run_b = ses_b.generator(&fed.shares[0], &mut rng).unwrap().round_1(&mut rng).unwrap();
    let err = ses.aggregate_round1(&[run_b, s2.clone()]).unwrap_err();
    assert!(matches!(err, HeError::ParameterMismatch { party: Some(p), .. } if p == holders[0]), "{err:?}");
    // Another parameter set.
    let small = HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap();
    let fed8 = simulate_setup(&small, &session(5), &holders, 2, &mut rng).unwrap();
    let ses8 = RelinSession::new(&fed8.public_key, &parts, &seed).unwrap();
    let s8 = ses8.generator(&fed8.shares[2], &mut rng).unwrap().round_1(&mut rng).unwrap();
    let err = RelinRound1Share::from_bytes(&ses, &s8.to_bytes(&ses8), holders[2]).unwrap_err();
    assert!(matches!(err, HeError::ParameterMismatch { party: Some(p), .. } if p == holders[2]), "{err:?}");
    // Sender differs from the party inside.
    let err = RelinRound1Share::from_bytes(&ses, &s2.to_bytes(&ses), holders[0]).unwrap_err();
    assert!(matches!(err, HeError::Malformed { party: Some(p), .. } if p == holders[0]), "{err:?}");
    // Repeated and missing shares.
    let err = ses.aggregate_round1(&[s0.clone(), s0.clone(), s2.clone()]).unwrap_err();
    assert_eq!(err, HeError::UnexpectedParty { party: holders[0], reason: "sent two shares for one round" });
    assert_eq!(
        ses.aggregate_round1(std::slice::from_ref(&s2)).unwrap_err(),
        HeError::MissingShares { missing: vec![holders[0]] }
    );
    // Round 2 made on a different aggregate than the one combined.
    let agg = ses.aggregate_round1(&[s0.clone(), s2.clone()]).unwrap();
    let mut g0b = ses.generator(&fed.shares[0], &mut rng).unwrap();
    let alt = ses.aggregate_round1(&[g0b.round_1(&mut rng).unwrap(), s2]).unwrap();
    let r2_0 = g0.round_2(&agg, &mut rng).unwrap();
    let r2_2 = g2.round_2(&alt, &mut rng).unwrap();
    let err = ses.aggregate_round2(&agg, &[r2_0.clone(), r2_2]).unwrap_err();
    assert!(matches!(err, HeError::ParameterMismatch { party: Some(p), .. } if p == holders[2]), "{err:?}");
    // A round-2 share from a generator of another run is refused by round 2 itself.
    let g_b = ses_b.generator(&fed.shares[2], &mut rng).unwrap();
    assert!(g_b.round_2(&agg, &mut rng).is_err(), "round 2 before round 1");
    let _ = r2_0;
}

#[test]
fn a_wrong_secret_gives_a_key_that_does_not_relinearise() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session(6), &holders, 2, &mut rng).unwrap();
    let other = simulate_setup(&ctx, &session(7), &holders, 2, &mut rng).unwrap();
    // Same holders and threshold: the session cannot tell the key shares apart
    // (no proofs), but the resulting key is useless, not silently weaker.
    let ses = RelinSession::new(&fed.public_key, &holders[..2], &[3; 32]).unwrap();
    let mut ga = ses.generator(&fed.shares[0], &mut rng).unwrap();
    let mut gb = ses.generator(&other.shares[1], &mut rng).unwrap();
    let agg = ses.aggregate_round1(&[ga.round_1(&mut rng).unwrap(), gb.round_1(&mut rng).unwrap()]).unwrap();
    let r2 = [ga.round_2(&agg, &mut rng).unwrap(), gb.round_2(&agg, &mut rng).unwrap()];
    let rlk = ses.aggregate_round2(&agg, &r2).unwrap();
    let v: Vec<i64> = (0..200).map(|_| rng.gen_range(-1000..1000)).collect();
    let x = fed.public_key.encrypt_i64(&v, &mut rng).unwrap();
    let got = decrypt(&mut fed, &x.mul(&x, &rlk, None).unwrap(), &[0, 1], &mut rng);
    let right = got.iter().zip(&v).filter(|(g, a)| **g == *a * *a).count();
    assert!(right < 3, "{right} of 200 products survived a wrong key share");
}

#[test]
fn serialisation_round_trips_and_strict_rejection() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let fed = simulate_setup(&ctx, &session(8), &holders, 2, &mut rng).unwrap();
    let ses = RelinSession::new(&fed.public_key, &holders[1..], &[1; 32]).unwrap();
    let mut g1 = ses.generator(&fed.shares[1], &mut rng).unwrap();
    let mut g2 = ses.generator(&fed.shares[2], &mut rng).unwrap();
    let s1 = g1.round_1(&mut rng).unwrap();
    let s2 = g2.round_1(&mut rng).unwrap();
    let b1 = s1.to_bytes(&ses);
    assert_eq!(RelinRound1Share::from_bytes(&ses, &b1, holders[1]).unwrap(), s1);
    let agg = ses.aggregate_round1(&[s2, s1]).unwrap();
    let ba = agg.to_bytes(&ses);
    let agg2 = RelinRound1Aggregate::from_bytes(&ses, &ba, None).unwrap();
    assert_eq!(agg2, agg);
    assert_eq!(agg2.digest(), agg.digest());
    let r1 = g1.round_2(&agg, &mut rng).unwrap();
    let r2 = g2.round_2(&agg, &mut rng).unwrap();
    let br = r1.to_bytes(&ses);
    assert_eq!(RelinRound2Share::from_bytes(&ses, &br, holders[1]).unwrap(), r1);
    let rlk = ses.aggregate_round2(&agg, &[r1, r2]).unwrap();
    let bk = rlk.to_bytes();
    let rlk2 = CollectiveRelinKey::from_bytes(&ctx, &bk, Some(holders[0])).unwrap();
    assert_eq!(rlk2, rlk);
    assert_eq!(rlk2.fhe_key(), rlk.fhe_key());
    assert_eq!(rlk2.to_bytes(), bk);
    // Strict: truncation, a trailing byte, bad magic, an unreduced residue.
    // (bytes, header length before the first polynomial)
    let heads = [
        (b1.clone(), 8 + 64 + 4 + 4),
        (ba.clone(), 8 + 64 + 4),
        (br.clone(), 8 + 64 + 4 + 32 + 4),
        (bk.clone(), 8 + 64 + 12),
    ];
    for (i, (bytes, head)) in heads.iter().enumerate() {
        let mut bad: Vec<Vec<u8>> = vec![bytes[..bytes.len() - 1].to_vec(), [bytes.as_slice(), &[0]].concat()];
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        bad.push(magic);
        let mut unreduced = bytes.clone();
        unreduced[*head..*head + 8].iter_mut().for_each(|b| *b = 0xff);
        bad.push(unreduced);
        for (k, b) in bad.iter().enumerate() {
            let err = match i {
                0 => RelinRound1Share::from_bytes(&ses, b, holders[1]).map(|_| ()),
                1 => RelinRound1Aggregate::from_bytes(&ses, b, Some(holders[0])).map(|_| ()),
                2 => RelinRound2Share::from_bytes(&ses, b, holders[1]).map(|_| ()),
                _ => CollectiveRelinKey::from_bytes(&ctx, b, Some(holders[0])).map(|_| ()),
            };
            match err {
                Err(HeError::Malformed { party, .. }) => assert!(party.is_some(), "message {i} case {k}"),
                Err(HeError::Wire(_)) => {}
                other => panic!("message {i} case {k}: {other:?}"),
            }
        }
    }
}

#[test]
fn products_beyond_depth_one_or_in_bfv_8192_are_refused() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let fed = simulate_setup(&ctx, &session(9), &holders, 2, &mut rng).unwrap();
    let rlk = run_rkg(&fed, &[0, 1], [2; 32], &mut rng);
    let x = fed.public_key.encrypt_i64(&[3, 4, 5], &mut rng).unwrap();
    let z = x.mul(&x, &rlk, None).unwrap();
    assert!(matches!(z.mul(&x, &rlk, None), Err(HeError::NoiseBudgetExceeded { .. })));
    assert!(matches!(z.mul(&z, &rlk, None), Err(HeError::NoiseBudgetExceeded { .. })));
    // Length mismatch names the party.
    let w = fed.public_key.encrypt_i64(&[1, 2], &mut rng).unwrap();
    assert!(
        matches!(x.mul(&w, &rlk, Some(holders[2])), Err(HeError::LengthMismatch { party: Some(p), .. }) if p == holders[2])
    );
    // bfv-8192: the key can be made, but no product fits its flooding.
    let small = HeContext::new(HeParams::new(BFV_8192).unwrap()).unwrap();
    let fed8 = simulate_setup(&small, &session(10), &holders, 2, &mut rng).unwrap();
    let rlk8 = run_rkg(&fed8, &[0, 2], [2; 32], &mut rng);
    let x8 = fed8.public_key.encrypt_i64(&[3, 4, 5], &mut rng).unwrap();
    assert!(matches!(x8.mul(&x8, &rlk8, None), Err(HeError::NoiseBudgetExceeded { .. })));
    // A key of other parameters.
    assert!(matches!(x.mul(&x, &rlk8, None), Err(HeError::ParameterMismatch { .. })));
}

#[test]
fn bfv_16384_decryption_shares_carry_2_pow_240_flooding() {
    let ctx = ctx16();
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let holders: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let mut fed = simulate_setup(&ctx, &session(11), &holders, 2, &mut rng).unwrap();
    let ct = fed.public_key.encrypt_i64(&[42; 10], &mut rng).unwrap();
    let req = ct.decrypt_request(&holders[..2]);
    let a = fed.shares[0].share(&req, &mut rng).unwrap();
    let b = fed.shares[0].share(&req, &mut rng).unwrap();
    let diff = share_difference_log2(&ctx, &a, &b).unwrap();
    let bits = f64::from(ctx.params().set().flood_bits);
    assert_eq!(bits, 240.0);
    assert!(diff.max <= bits + 1.0 + 1e-9 && diff.max > bits + 0.5, "max 2^{}", diff.max);
    assert!((diff.mean - bits).abs() < 1.5, "mean log2 {}", diff.mean);
}

struct Fixture {
    fed: Mutex<LocalFederation>,
    rlk: CollectiveRelinKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ctx = ctx16();
        let mut rng = ChaCha20Rng::seed_from_u64(18);
        let holders: Vec<PartyId> = (1..=4).map(PartyId).collect();
        let fed = simulate_setup(&ctx, &session(12), &holders, 2, &mut rng).unwrap();
        let rlk = run_rkg(&fed, &[1, 3], [4; 32], &mut rng);
        Fixture { fed: Mutex::new(fed), rlk }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn product_decrypts_to_the_slotwise_product_mod_t(
        pairs in prop::collection::vec((-(1i64 << 29)..=(1 << 29), -(1i64 << 29)..=(1 << 29)), 1..60),
        dec in prop::sample::subsequence(vec![0usize, 1, 2, 3], 2..=4),
        seed in any::<u64>(),
    ) {
        let f = fixture();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut fed = f.fed.lock().unwrap();
        let (a, b): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
        let x = fed.public_key.encrypt_i64(&a, &mut rng).unwrap();
        let y = fed.public_key.encrypt_i64(&b, &mut rng).unwrap();
        let z = x.mul(&y, &f.rlk, None).unwrap();
        let got = decrypt(&mut fed, &z, &dec, &mut rng);
        let want: Vec<i64> = pairs.iter().map(|(p, q)| p * q).collect();
        prop_assert_eq!(got, want);
    }
}
