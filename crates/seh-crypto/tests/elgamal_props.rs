//! Property tests of exponential ElGamal: homomorphic sums, order
//! independence, re-randomization, and baby-step giant-step at the bounds.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::scalar::Scalar;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use seh_crypto::dkg::{self, DecryptionKeyShare, DkgConfig, ThresholdPublicKey};
use seh_crypto::elgamal::bsgs::{BsgsTable, MAX_BOUND};
use seh_crypto::elgamal::{decrypt, decryption_share, encrypt, sum, Ciphertext, ElGamalError};
use seh_crypto::wire::PartyId;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const CTX: &[u8] = b"props";

fn setup() -> &'static (BTreeMap<PartyId, DecryptionKeyShare>, ThresholdPublicKey, BsgsTable) {
    static S: OnceLock<(BTreeMap<PartyId, DecryptionKeyShare>, ThresholdPublicKey, BsgsTable)> = OnceLock::new();
    S.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let ids: Vec<PartyId> = (1..=3).map(PartyId).collect();
        let (keys, pk) = dkg::run_locally(&DkgConfig::new(&ids, 2, CTX).unwrap(), &mut rng).unwrap();
        (keys, pk, BsgsTable::new(1 << 20).unwrap())
    })
}

fn open(ct: &Ciphertext, rng: &mut ChaCha20Rng) -> u64 {
    let (keys, pk, table) = setup();
    let ds: Vec<_> = [PartyId(3), PartyId(1)].iter().map(|p| (*p, decryption_share(&keys[p], ct, CTX, rng))).collect();
    decrypt(pk, ct, &ds, CTX, table).unwrap().value
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sum_of_encryptions_decrypts_to_sum(counts in proptest::collection::vec(0u64..5000, 0..12), seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (_, pk, _) = setup();
        let cts: Vec<Ciphertext> = counts.iter().map(|&c| encrypt(pk, c, &mut rng)).collect();
        prop_assert_eq!(open(&sum(&cts), &mut rng), counts.iter().sum::<u64>());
    }

    #[test]
    fn aggregation_order_does_not_matter(counts in proptest::collection::vec(0u64..1000, 1..10), seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (_, pk, _) = setup();
        let cts: Vec<Ciphertext> = counts.iter().map(|&c| encrypt(pk, c, &mut rng)).collect();
        let forward = sum(&cts);
        let backward = sum(cts.iter().rev());
        let pairwise = cts.iter().fold(Ciphertext::zero(), |a, c| *c + a);
        // Group addition is commutative: the ciphertexts themselves are equal.
        prop_assert_eq!(forward, backward);
        prop_assert_eq!(forward, pairwise);
    }

    #[test]
    fn rerandomization_keeps_plaintext(m in 0u64..100_000, seed in any::<u64>()) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (_, pk, _) = setup();
        let ct = encrypt(pk, m, &mut rng);
        let ct2 = ct.rerandomize(pk, &mut rng);
        prop_assert_ne!(ct, ct2);
        prop_assert_eq!(open(&ct2, &mut rng), m);
    }

    #[test]
    fn bsgs_decodes_every_value_in_range(bound in 0u64..5000, pick in any::<u64>()) {
        let table = BsgsTable::new(bound).unwrap();
        let m = pick % (bound + 1);
        prop_assert_eq!(table.decode(&(RISTRETTO_BASEPOINT_POINT * Scalar::from(m))), Ok(m));
        let over = RISTRETTO_BASEPOINT_POINT * Scalar::from(bound + 1);
        prop_assert_eq!(table.decode(&over), Err(ElGamalError::OutOfRange { bound }));
    }
}

#[test]
fn bsgs_at_the_bounds() {
    let g = RISTRETTO_BASEPOINT_POINT;
    for bound in [0u64, 1, 2, 3, 15, 16, 17, 99, 100, 101, 1 << 20] {
        let table = BsgsTable::new(bound).unwrap();
        assert_eq!(table.decode(&(g * Scalar::ZERO)), Ok(0), "bound {bound}");
        assert_eq!(table.decode(&(g * Scalar::from(bound))), Ok(bound), "bound {bound}");
        assert_eq!(table.decode(&(g * Scalar::from(bound + 1))), Err(ElGamalError::OutOfRange { bound }));
        // A "negative" value (wrapped mod the group order) is out of range too.
        assert_eq!(table.decode(&(-g)), Err(ElGamalError::OutOfRange { bound }));
    }
    // A large bound decodes values near the top quickly.
    let big = BsgsTable::new(1 << 32).unwrap();
    assert_eq!(big.decode(&(g * Scalar::from(1u64 << 32))), Ok(1 << 32));
    assert_eq!(big.decode(&(g * Scalar::from(123_456_789u64))), Ok(123_456_789));
    assert!(matches!(BsgsTable::new(MAX_BOUND + 1), Err(ElGamalError::InvalidParameters { .. })));
}
