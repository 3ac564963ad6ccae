//! SecAgg+ through the `SecureSum` trait: f64 vectors in, their exact
//! fixed-point sum out, with the envelopes signed and checked on the way.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::error::SecAggError;
use seh_crypto::fixed::FixedParams;
use seh_crypto::secagg::{Graph, MaskedInput, SecAgg, SecAggParams};
use seh_crypto::secure_sum::{CoordinatorProtocol, RoundOutcome, SecureSum, SiteProtocol};
use seh_crypto::wire::{Envelope, PartyId, SessionGuard, SessionId, SignedEnvelope, SigningKey, StudyId};
use std::collections::BTreeMap;

fn relay(
    env: Envelope,
    key: &SigningKey,
    roster: &BTreeMap<PartyId, seh_crypto::wire::VerifyingKey>,
    guard: &mut SessionGuard,
) -> Envelope {
    let bytes = env.sign(key).unwrap().encode().unwrap();
    let env = SignedEnvelope::open(&bytes, roster).unwrap();
    guard.check(&env).unwrap();
    env
}

fn run(drop: Option<(PartyId, usize)>) -> Result<(Vec<f64>, Vec<PartyId>), SecAggError> {
    run_with(drop, false)
}

/// With `batched`, the coordinator takes each round's envelopes in one
/// `receive_batch_with` call, adding masked inputs in two ranges, and every
/// batch also carries a duplicate of its first envelope, which must be rejected.
fn run_with(drop: Option<(PartyId, usize)>, batched: bool) -> Result<(Vec<f64>, Vec<PartyId>), SecAggError> {
    let session = SessionId { study: StudyId([9; 16]), round: 1 };
    let ids: Vec<PartyId> = (1..=5).map(PartyId).collect();
    let keys: BTreeMap<PartyId, SigningKey> =
        ids.iter().map(|&p| (p, SigningKey::from_bytes(&[p.0 as u8 + 40; 32]))).collect();
    let coord_key = SigningKey::from_bytes(&[1; 32]);
    let mut roster: BTreeMap<_, _> = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
    roster.insert(PartyId::COORDINATOR, coord_key.verifying_key());
    let params = SecAggParams::new(session, &ids, 3, 3, Graph::Complete).unwrap();
    let fixed = FixedParams::new(20, 100.0, 5).unwrap();
    let agg = SecAgg::new(params, fixed, roster.clone()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut coord = agg.combine();
    let mut cguard = SessionGuard::new(session, 8);
    let mut sites = BTreeMap::new();
    let mut guards: BTreeMap<PartyId, SessionGuard> = ids.iter().map(|&p| (p, SessionGuard::new(session, 8))).collect();
    let mut outbox = Vec::new();
    for &p in &ids {
        let x = [p.0 as f64 * 1.5, -(p.0 as f64), 0.25];
        let mut site = agg.contribute(p, &keys[&p], agg.encode(&x).unwrap())?;
        outbox.extend(site.start(&mut rng)?);
        sites.insert(p, site);
    }
    for round in 0.. {
        let mut batch = Vec::new();
        for env in outbox.drain(..) {
            if drop.is_some_and(|(p, r)| env.sender == p && round >= r) {
                continue;
            }
            let key = &keys[&env.sender];
            let env = relay(env, key, &roster, &mut cguard);
            if batched {
                batch.push(env);
            } else {
                coord.receive(&env)?;
            }
        }
        if let Some(first) = batch.first().cloned() {
            batch.push(first.clone());
            let rejected = coord.receive_batch_with(&batch, |sum, bodies| {
                let (a, b) = sum.split_at_mut(1);
                MaskedInput::add_bodies(a, 0, bodies);
                MaskedInput::add_bodies(b, 1, bodies);
            });
            assert_eq!(rejected.len(), 1, "round {round}: {rejected:?}");
            assert_eq!(rejected[0].0, first.sender);
            assert!(matches!(rejected[0].1, SecAggError::Duplicate { .. }), "{:?}", rejected[0].1);
        }
        match coord.close_round()? {
            RoundOutcome::Done { sum, contributors } => return Ok((agg.decode(&sum).unwrap(), contributors)),
            RoundOutcome::Send(envs) => {
                for env in envs {
                    let to: Vec<PartyId> =
                        if env.recipient == PartyId::BROADCAST { ids.clone() } else { vec![env.recipient] };
                    for p in to {
                        let Some(site) = sites.get_mut(&p) else { continue };
                        let e = relay(env.clone(), &coord_key, &roster, guards.get_mut(&p).unwrap());
                        if drop.is_some_and(|(d, r)| d == p && round >= r) {
                            continue;
                        }
                        if let Ok(replies) = site.receive(&e, &mut rng) {
                            outbox.extend(replies);
                        }
                    }
                }
            }
        }
    }
    unreachable!()
}

#[test]
fn f64_sum_through_the_trait() {
    let (sum, who) = run(None).unwrap();
    assert_eq!(who.len(), 5);
    assert_eq!(sum, vec![22.5, -15.0, 1.25]);
}

#[test]
fn f64_sum_with_a_dropout_after_masking() {
    let (sum, who) = run(Some((PartyId(3), 3))).unwrap();
    assert_eq!(who.len(), 5);
    assert_eq!(sum, vec![22.5, -15.0, 1.25]);
    let (sum, who) = run(Some((PartyId(3), 2))).unwrap();
    assert_eq!(who, vec![PartyId(1), PartyId(2), PartyId(4), PartyId(5)]);
    assert_eq!(sum, vec![18.0, -12.0, 1.0]);
}

#[test]
fn batched_receive_adds_in_ranges_and_rejects_duplicates() {
    let (sum, who) = run_with(None, true).unwrap();
    assert_eq!(who.len(), 5);
    assert_eq!(sum, vec![22.5, -15.0, 1.25]);
    let (sum, who) = run_with(Some((PartyId(3), 2)), true).unwrap();
    assert_eq!(who, vec![PartyId(1), PartyId(2), PartyId(4), PartyId(5)]);
    assert_eq!(sum, vec![18.0, -12.0, 1.0]);
}
