//! SecAgg+ end to end, with every message going through a signed wire
//! envelope and a `SessionGuard`: exact sums under dropouts at each round,
//! clean aborts below the threshold, masked vectors that look uniform,
//! culprits named for tampering, replays and out-of-round messages.

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use seh_crypto::error::{SecAggError, WireError};
use seh_crypto::secagg::server::{AggregateOutput, ServerRound0};
use seh_crypto::secagg::{
    round0, round1, round2, round3, ConsistencyRequest, Graph, KeyList, SecAggMessage, SecAggParams, Step,
    UnmaskRequest,
};
use seh_crypto::wire::{
    Envelope, PartyId, ProtocolId, SessionGuard, SessionId, SignedEnvelope, SigningKey, StudyId, VerifyingKey,
};
use std::collections::{BTreeMap, BTreeSet};

const SESSION: SessionId = SessionId { study: StudyId(*b"secagg-test-0001"), round: 7 };

/// Which round a party stops in (0 adverts, 1 shares, 2 masked input,
/// 3 consistency signature, 4 unmask shares).
type Drops = BTreeMap<PartyId, u8>;

/// Tampering hooks for negative tests.
#[derive(Default)]
struct Faults {
    /// Flip a byte of the first ciphertext this dealer sends.
    corrupt_ciphertext_from: Option<PartyId>,
    /// This responder reveals a wrong b share.
    corrupt_reveal_from: Option<PartyId>,
    /// The server also lists the first survivor as dropped.
    unsafe_request: bool,
}

struct Fed {
    params: SecAggParams,
    keys: BTreeMap<PartyId, SigningKey>,
    coordinator: SigningKey,
    roster: BTreeMap<PartyId, VerifyingKey>,
    nonce: u64,
}

impl Fed {
    fn new(n: u32, t: usize, length: usize, graph: Graph) -> Fed {
        let ids: Vec<PartyId> = (1..=n).map(PartyId).collect();
        let params = SecAggParams::new(SESSION, &ids, t, length, graph).unwrap();
        let keys: BTreeMap<PartyId, SigningKey> =
            ids.iter().map(|&p| (p, SigningKey::from_bytes(&[p.0 as u8; 32]))).collect();
        let coordinator = SigningKey::from_bytes(&[0xc0; 32]);
        let mut roster: BTreeMap<PartyId, VerifyingKey> = keys.iter().map(|(p, k)| (*p, k.verifying_key())).collect();
        roster.insert(PartyId::COORDINATOR, coordinator.verifying_key());
        Fed { params, keys, coordinator, roster, nonce: 0 }
    }

    /// Sign and encode `msg` from `from` to `to`: the bytes on the wire.
    fn send<M: SecAggMessage>(&mut self, msg: &M, from: PartyId, to: PartyId) -> Vec<u8> {
        self.nonce += 1;
        let key = if from == PartyId::COORDINATOR { &self.coordinator } else { &self.keys[&from] };
        msg.to_envelope(SESSION, from, to, self.nonce).sign(key).unwrap().encode().unwrap()
    }

    /// Receive wire bytes: verify, guard, check step, decode.
    fn recv<M: SecAggMessage>(&self, guard: &mut SessionGuard, bytes: &[u8]) -> Result<(PartyId, M), SecAggError> {
        let env = SignedEnvelope::open(bytes, &self.roster)?;
        guard.check_step(&env, ProtocolId::SecAgg, M::STEP as u8)?;
        Ok((env.sender, M::from_envelope(&env)?))
    }
}

struct Transcript {
    masked: BTreeMap<PartyId, Vec<u64>>,
    bytes_sent: BTreeMap<PartyId, usize>,
}

fn alive(drops: &Drops, p: PartyId, round: u8) -> bool {
    drops.get(&p).is_none_or(|&r| r > round)
}

/// Run one aggregation. `order` shuffles the order in which the server
/// receives each round's messages.
fn run(
    fed: &mut Fed,
    inputs: &BTreeMap<PartyId, Vec<u64>>,
    drops: &Drops,
    faults: &Faults,
    order: &mut ChaCha20Rng,
) -> (Result<AggregateOutput, SecAggError>, Transcript) {
    let mut tr = Transcript { masked: BTreeMap::new(), bytes_sent: BTreeMap::new() };
    let res = run_inner(fed, inputs, drops, faults, order, &mut tr);
    (res, tr)
}

fn run_inner(
    fed: &mut Fed,
    inputs: &BTreeMap<PartyId, Vec<u64>>,
    drops: &Drops,
    faults: &Faults,
    order: &mut ChaCha20Rng,
    tr: &mut Transcript,
) -> Result<AggregateOutput, SecAggError> {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let parties: Vec<PartyId> = fed.params.parties().to_vec();
    let mut server_guard = SessionGuard::new(SESSION, 16);
    let mut client_guards: BTreeMap<PartyId, SessionGuard> =
        parties.iter().map(|&p| (p, SessionGuard::new(SESSION, 16))).collect();
    let coord = PartyId::COORDINATOR;
    let count = |tr: &mut Transcript, p: PartyId, b: &[u8]| *tr.bytes_sent.entry(p).or_default() += b.len();

    // Round 0
    let mut server = ServerRound0::new(fed.params.clone());
    let mut s0 = BTreeMap::new();
    let mut wire = Vec::new();
    for &p in &parties {
        if alive(drops, p, 0) {
            let (st, msg) = round0::advertise(&fed.params, p, &fed.keys[&p], &mut rng)?;
            s0.insert(p, st);
            let b = fed.send(&msg, p, coord);
            count(tr, p, &b);
            wire.push(b);
        }
    }
    wire.shuffle(order);
    for b in &wire {
        let (from, m) = fed.recv(&mut server_guard, b)?;
        server.receive(from, m, &fed.roster)?;
    }
    let (server, key_list) = server.finish()?;
    let kl_bytes = fed.send(&key_list, coord, PartyId::BROADCAST);

    // Round 1
    let mut server = server;
    let mut s1 = BTreeMap::new();
    let mut wire = Vec::new();
    for (p, st) in s0 {
        let (_, kl): (_, KeyList) = fed.recv(client_guards.get_mut(&p).unwrap(), &kl_bytes)?;
        let (st, mut msg) = round1::share_keys(st, &kl, &fed.roster, &mut rng)?;
        if faults.corrupt_ciphertext_from == Some(p) {
            msg.shares[0].ciphertext[5] ^= 1;
        }
        s1.insert(p, st);
        if alive(drops, p, 1) {
            let b = fed.send(&msg, p, coord);
            count(tr, p, &b);
            wire.push(b);
        }
    }
    wire.shuffle(order);
    for b in &wire {
        let (from, m) = fed.recv(&mut server_guard, b)?;
        server.receive(from, m)?;
    }
    let (mut server, forwarded) = server.finish()?;

    // Round 2
    let mut s2 = BTreeMap::new();
    let mut wire = Vec::new();
    for (p, fwd) in forwarded {
        let Some(st) = s1.remove(&p) else { continue };
        let b = fed.send(&fwd, coord, p);
        let (_, fwd) = fed.recv(client_guards.get_mut(&p).unwrap(), &b)?;
        let (st, msg) = round2::masked_input(st, &fwd, inputs[&p].clone(), &mut rng)?;
        s2.insert(p, st);
        if alive(drops, p, 2) {
            tr.masked.insert(p, msg.y.clone());
            let b = fed.send(&msg, p, coord);
            count(tr, p, &b);
            wire.push(b);
        }
    }
    wire.shuffle(order);
    for b in &wire {
        let (from, m) = fed.recv(&mut server_guard, b)?;
        server.receive(from, m)?;
    }
    let (mut server, req) = server.finish()?;

    // Round 3a
    let req_bytes = fed.send(&req, coord, PartyId::BROADCAST);
    let mut s3 = BTreeMap::new();
    let mut wire = Vec::new();
    for &p in &req.survivors {
        let Some(st) = s2.remove(&p) else { continue };
        let (_, r): (_, ConsistencyRequest) = fed.recv(client_guards.get_mut(&p).unwrap(), &req_bytes)?;
        let (st, msg) = round3::sign_survivors(st, &r, &fed.keys[&p])?;
        s3.insert(p, st);
        if alive(drops, p, 3) {
            let b = fed.send(&msg, p, coord);
            count(tr, p, &b);
            wire.push(b);
        }
    }
    wire.shuffle(order);
    for b in &wire {
        let (from, m) = fed.recv(&mut server_guard, b)?;
        server.receive(from, m, &fed.roster)?;
    }
    let (mut server, mut unmask_req) = server.finish()?;
    if faults.unsafe_request {
        let first = unmask_req.survivors[0];
        unmask_req.dropped.push(first);
        unmask_req.dropped.sort();
    }

    // Round 3b
    let ureq_bytes = fed.send(&unmask_req, coord, PartyId::BROADCAST);
    let mut wire = Vec::new();
    for (p, _) in &unmask_req.signatures {
        let Some(st) = s3.remove(p) else { continue };
        let (_, r): (_, UnmaskRequest) = fed.recv(client_guards.get_mut(p).unwrap(), &ureq_bytes)?;
        let mut msg = round3::unmask(st, &r, &fed.roster)?;
        if faults.corrupt_reveal_from == Some(*p) {
            msg.b_shares[0].1 += curve25519_dalek::scalar::Scalar::ONE;
        }
        if alive(drops, *p, 4) {
            let b = fed.send(&msg, *p, coord);
            count(tr, *p, &b);
            wire.push(b);
        }
    }
    wire.shuffle(order);
    for b in &wire {
        let (from, m) = fed.recv(&mut server_guard, b)?;
        server.receive(from, m)?;
    }
    server.finish()
}

fn random_inputs(n: u32, length: usize, seed: u64) -> BTreeMap<PartyId, Vec<u64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (1..=n).map(|p| (PartyId(p), (0..length).map(|_| rng.next_u64()).collect())).collect()
}

fn plain_sum(inputs: &BTreeMap<PartyId, Vec<u64>>, who: &[PartyId]) -> Vec<u64> {
    let len = inputs.values().next().map_or(0, Vec::len);
    let mut acc = vec![0u64; len];
    for p in who {
        for (a, x) in acc.iter_mut().zip(&inputs[p]) {
            *a = a.wrapping_add(*x);
        }
    }
    acc
}

fn order_rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(1)
}

#[test]
fn exact_sum_without_dropouts() {
    let mut fed = Fed::new(10, 6, 100, Graph::Complete);
    let inputs = random_inputs(10, 100, 3);
    let (out, tr) = run(&mut fed, &inputs, &Drops::new(), &Faults::default(), &mut order_rng());
    let out = out.unwrap();
    assert_eq!(out.survivors.len(), 10);
    assert_eq!(out.sum, plain_sum(&inputs, &out.survivors));
    assert!(tr.bytes_sent.values().all(|&b| b > 800), "{:?}", tr.bytes_sent);
}

/// n = 10, t = 6: 1 and 4 parties dropping at each round still give the exact
/// sum of the survivors; 5 dropping aborts.
#[test]
fn dropouts_at_each_round() {
    let inputs = random_inputs(10, 64, 4);
    for round in 0..=4u8 {
        for k in [1usize, 4, 5] {
            let mut fed = Fed::new(10, 6, 64, Graph::Complete);
            let drops: Drops = (1..=k as u32).map(|p| (PartyId(p * 2 - (p % 2)), round)).collect();
            let (out, _) = run(&mut fed, &inputs, &drops, &Faults::default(), &mut order_rng());
            if k == 5 {
                let e = out.expect_err("5 dropouts must abort");
                assert!(matches!(e, SecAggError::TooFewSurvivors { alive: 5, threshold: 6, .. }), "round {round}: {e}");
                continue;
            }
            let out = out.unwrap_or_else(|e| panic!("round {round}, {k} dropouts: {e}"));
            // Parties dropping before their masked input is sent are excluded; later ones are included.
            let expected: Vec<PartyId> =
                fed.params.parties().iter().copied().filter(|p| round > 2 || !drops.contains_key(p)).collect();
            assert_eq!(out.survivors, expected, "round {round}, {k} dropouts");
            assert_eq!(out.sum, plain_sum(&inputs, &expected), "round {round}, {k} dropouts");
        }
    }
}

#[test]
fn sparse_random_graph_with_dropouts() {
    let n = 40;
    let graph = Graph::Random { degree: 10, seed: [5; 32] };
    let mut fed = Fed::new(n, 7, 32, graph);
    let inputs = random_inputs(n, 32, 5);
    let drops: Drops = [(PartyId(3), 1), (PartyId(17), 2), (PartyId(30), 3), (PartyId(31), 4)].into();
    let (out, _) = run(&mut fed, &inputs, &drops, &Faults::default(), &mut order_rng());
    let out = out.unwrap();
    assert_eq!(out.survivors.len(), 38);
    assert_eq!(out.sum, plain_sum(&inputs, &out.survivors));
}

/// Chi-square statistic of byte frequencies (255 degrees of freedom).
fn byte_chi_square(words: &[u64]) -> f64 {
    let mut counts = [0u64; 256];
    for w in words {
        for b in w.to_le_bytes() {
            counts[b as usize] += 1;
        }
    }
    let expected = (words.len() * 8) as f64 / 256.0;
    counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum()
}

/// Largest deviation of any of the 64 bit positions from half ones, in standard deviations.
fn max_bit_z(words: &[u64]) -> f64 {
    let m = words.len() as f64;
    (0..64)
        .map(|bit| {
            let ones = words.iter().filter(|w| (*w >> bit) & 1 == 1).count() as f64;
            (ones - m / 2.0).abs() / (m.sqrt() / 2.0)
        })
        .fold(0.0, f64::max)
}

/// The server's view of one client's masked vector of a constant input is
/// indistinguishable from uniform: chi-square on byte frequencies below 360
/// (p ≈ 1e-4 for 255 d.o.f.) and every bit position within 5 σ of one half.
/// Negative controls: the unmasked vector, and a vector whose masks leave the
/// top byte untouched, both fail the same test.
#[test]
fn masked_vector_looks_uniform() {
    let length = 1 << 15;
    let mut fed = Fed::new(10, 6, length, Graph::Complete);
    let constant: BTreeMap<PartyId, Vec<u64>> = (1..=10).map(|p| (PartyId(p), vec![5u64 << 24; length])).collect();
    let (out, tr) = run(&mut fed, &constant, &Drops::new(), &Faults::default(), &mut order_rng());
    assert_eq!(out.unwrap().sum, vec![50u64 << 24; length]);
    let y = &tr.masked[&PartyId(1)];
    let chi = byte_chi_square(y);
    assert!(chi < 360.0, "masked vector chi-square {chi}");
    assert!(max_bit_z(y) < 5.0, "bit bias {}", max_bit_z(y));

    let unmasked = &constant[&PartyId(1)];
    assert!(byte_chi_square(unmasked) > 360.0);
    let weak: Vec<u64> = y.iter().map(|w| w & 0x00ff_ffff_ffff_ffff).collect();
    assert!(byte_chi_square(&weak) > 360.0, "{}", byte_chi_square(&weak));
    assert!(max_bit_z(&weak) > 5.0);
}

#[test]
fn tampered_ciphertext_names_the_dealer() {
    let mut fed = Fed::new(10, 6, 8, Graph::Complete);
    let inputs = random_inputs(10, 8, 6);
    let faults = Faults { corrupt_ciphertext_from: Some(PartyId(4)), ..Faults::default() };
    let (out, _) = run(&mut fed, &inputs, &Drops::new(), &faults, &mut order_rng());
    let e = out.unwrap_err();
    assert!(matches!(e, SecAggError::DecryptionFailed { sender: PartyId(4), .. }), "{e}");
    assert_eq!(e.culprit(), Some(PartyId(4)));
}

#[test]
fn tampered_revealed_share_names_the_responder() {
    let mut fed = Fed::new(10, 6, 8, Graph::Complete);
    let inputs = random_inputs(10, 8, 7);
    // Party 1 is among the first t responders whose shares reconstruct each b_u.
    let faults = Faults { corrupt_reveal_from: Some(PartyId(1)), ..Faults::default() };
    let (out, _) = run(&mut fed, &inputs, &Drops::new(), &faults, &mut order_rng());
    let e = out.unwrap_err();
    assert!(matches!(e, SecAggError::BadRevealedShare { responder: PartyId(1), .. }), "{e}");
    assert_eq!(e.culprit(), Some(PartyId(1)));
}

#[test]
fn client_refuses_to_reveal_both_secrets_of_a_party() {
    let mut fed = Fed::new(10, 6, 8, Graph::Complete);
    let inputs = random_inputs(10, 8, 8);
    let faults = Faults { unsafe_request: true, ..Faults::default() };
    let (out, _) = run(&mut fed, &inputs, &Drops::new(), &faults, &mut order_rng());
    assert!(matches!(out, Err(SecAggError::UnsafeUnmaskRequest { party: PartyId(1) })), "{out:?}");
}

#[test]
fn replayed_and_out_of_round_messages_are_rejected_naming_the_sender() {
    let mut fed = Fed::new(4, 3, 8, Graph::Complete);
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let p = PartyId(2);
    let (_, advert) = round0::advertise(&fed.params, p, &fed.keys[&p], &mut rng).unwrap();
    let mut guard = SessionGuard::new(SESSION, 16);
    let bytes = fed.send(&advert, p, PartyId::COORDINATOR);
    let (from, _) = fed.recv::<seh_crypto::secagg::AdvertiseKeys>(&mut guard, &bytes).unwrap();
    assert_eq!(from, p);
    // replay
    let e = fed.recv::<seh_crypto::secagg::AdvertiseKeys>(&mut guard, &bytes).unwrap_err();
    assert_eq!(e, SecAggError::Wire(WireError::Replay { sender: p, nonce: fed.nonce }));
    assert_eq!(e.culprit(), Some(p));
    // a message of another study round, correctly signed
    let mut env: Envelope = advert.to_envelope(SESSION, p, PartyId::COORDINATOR, 999);
    env.session.round = SESSION.round + 1;
    let b = env.sign(&fed.keys[&p]).unwrap().encode().unwrap();
    let e = fed.recv::<seh_crypto::secagg::AdvertiseKeys>(&mut guard, &b).unwrap_err();
    assert_eq!(e, SecAggError::Wire(WireError::WrongRound { sender: p, expected: 7, got: 8 }));
    assert_eq!(e.culprit(), Some(p));
    // a message of another protocol step (round 2 payload where round 0 is expected)
    let mut env = advert.to_envelope(SESSION, p, PartyId::COORDINATOR, 1000);
    env.step = Step::MaskedInput as u8;
    let b = env.sign(&fed.keys[&p]).unwrap().encode().unwrap();
    let e = fed.recv::<seh_crypto::secagg::AdvertiseKeys>(&mut guard, &b).unwrap_err();
    assert!(matches!(e, SecAggError::Wire(WireError::WrongStep { sender, .. }) if sender == p), "{e}");
    // and the server state machine rejects a duplicate from the same party
    let mut server = ServerRound0::new(fed.params.clone());
    server.receive(p, advert.clone(), &fed.roster).unwrap();
    assert_eq!(server.receive(p, advert, &fed.roster), Err(SecAggError::Duplicate { party: p, round: 0 }));
}

#[test]
fn bad_advert_signature_names_the_party() {
    let fed = Fed::new(4, 3, 8, Graph::Complete);
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let (_, mut advert) = round0::advertise(&fed.params, PartyId(3), &fed.keys[&PartyId(3)], &mut rng).unwrap();
    advert.mask_pk[0] ^= 1;
    let mut server = ServerRound0::new(fed.params.clone());
    assert_eq!(
        server.receive(PartyId(3), advert, &fed.roster),
        Err(SecAggError::BadSignature { what: "advertise keys", sender: PartyId(3) })
    );
}

#[test]
fn parameter_validation() {
    let ids: Vec<PartyId> = (1..=10).map(PartyId).collect();
    // t must be a strict majority of the 10 holders and at most 10
    assert!(SecAggParams::new(SESSION, &ids, 5, 10, Graph::Complete).is_err());
    assert!(SecAggParams::new(SESSION, &ids, 11, 10, Graph::Complete).is_err());
    assert!(SecAggParams::new(SESSION, &ids, 6, 0, Graph::Complete).is_err());
    assert!(SecAggParams::new(SESSION, &[PartyId(1), PartyId(1)], 1, 1, Graph::Complete).is_err());
    assert!(SecAggParams::new(SESSION, &[PartyId(0), PartyId(1)], 2, 1, Graph::Complete).is_err());
    let many: Vec<PartyId> = (1..=500).map(PartyId).collect();
    let p = SecAggParams::suggested(SESSION, &many, 10, [0; 32]).unwrap();
    assert!(matches!(p.graph(), Graph::Random { degree: 54, .. }), "{:?}", p.graph());
    assert_eq!(p.threshold(), 28);
    let set: BTreeSet<PartyId> = p.neighbours(PartyId(1)).into_iter().collect();
    assert_eq!(set.len(), 54);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// The order in which the server receives messages does not change the sum.
    #[test]
    fn aggregation_order_does_not_matter(order_seed: u64, input_seed: u64, drop_round in 0u8..6) {
        let inputs = random_inputs(6, 16, input_seed);
        // Party 2 always drops after dealing (so pair masks must be removed); party 5 at a random round.
        let mut drops: Drops = [(PartyId(2), 2)].into();
        if drop_round < 5 {
            drops.insert(PartyId(5), drop_round);
        }
        let mut fed = Fed::new(6, 4, 16, Graph::Complete);
        let (a, _) = run(&mut fed, &inputs, &drops, &Faults::default(), &mut ChaCha20Rng::seed_from_u64(order_seed));
        let mut fed = Fed::new(6, 4, 16, Graph::Complete);
        let (b, _) = run(&mut fed, &inputs, &drops, &Faults::default(), &mut ChaCha20Rng::seed_from_u64(!order_seed));
        let (a, b) = (a.unwrap(), b.unwrap());
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.sum, plain_sum(&inputs, &a.survivors));
    }
}
