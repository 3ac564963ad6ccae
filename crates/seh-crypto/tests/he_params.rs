//! Parameter sets meet the HE Security Standard at 128 bits *with* flooding,
//! and their noise budget holds.

use seh_crypto::he::params::{hes_max_log_q, PARAMETER_SETS};
use seh_crypto::he::{HeParams, ParameterSet, BFV_8192};

#[test]
fn every_set_meets_hes_and_its_noise_budget() {
    for set in PARAMETER_SETS {
        let p = HeParams::new(set).unwrap();
        let b = p.budget();
        let hes = f64::from(hes_max_log_q(set.degree).unwrap());
        assert!(b.log2_q <= hes, "{}: log q {} > {}", set.name, b.log2_q, hes);
        assert_eq!(hes_max_log_q(4096), Some(109));
        assert_eq!(hes_max_log_q(8192), Some(218));
        assert_eq!(hes_max_log_q(16384), Some(438));
        // Flooding ≥ 2^λ_s × (noise it hides) × N × Q: statistical distance ≤ 2^-λ_s over all shares.
        let flood = f64::from(set.flood_bits) + 1.0;
        let n = (set.degree as f64).log2();
        assert!(flood - b.hidden_log2 >= f64::from(set.lambda_s) + n + f64::from(set.log2_max_decryptions) - 1e-9);
        assert!(flood - b.hidden_log2 >= f64::from(set.lambda_s));
        // A fresh ciphertext of max_parties is hidden, with room for sums and scalings.
        assert!(b.fresh_log2 + 16.0 <= b.hidden_log2, "{}: {b:?}", set.name);
        // Decryption and key switching stay correct at the hidden bound with max_parties decryptors.
        assert!(b.decrypt_log2 < b.correct_below_log2, "{}: {b:?}", set.name);
        assert!(b.key_switch_log2 < b.correct_below_log2, "{}: {b:?}", set.name);
        assert!(set.variance as f64 >= 3.19f64.powi(2), "σ below the HES 3.2");
        assert_eq!(p.max_decryptions(), 1 << set.log2_max_decryptions);
    }
}

#[test]
fn unsafe_or_broken_sets_are_refused() {
    let too_big_q = ParameterSet { degree: 4096, moduli_sizes: &[62, 62], ..BFV_8192 };
    assert!(HeParams::new(too_big_q).is_err());
    let over_hes = ParameterSet { moduli_sizes: &[62, 62, 62, 40], ..BFV_8192 };
    assert!(HeParams::new(over_hes).is_err());
    let thin_flood = ParameterSet { flood_bits: 70, ..BFV_8192 };
    assert!(HeParams::new(thin_flood).is_err());
    let fat_flood = ParameterSet { flood_bits: 124, ..BFV_8192 };
    assert!(HeParams::new(fat_flood).is_err());
    let bad_t = ParameterSet { plaintext: 65539, ..BFV_8192 };
    assert!(HeParams::new(bad_t).is_err());
    let composite_t = ParameterSet { plaintext: 2 * 16384 + 1, ..BFV_8192 }; // 32769 = 3 · 10923
    assert!(HeParams::new(composite_t).is_err());
    // A small prime t is a valid (if narrow) set.
    assert!(HeParams::new(ParameterSet { plaintext: 65537, ..BFV_8192 }).is_ok());
}
