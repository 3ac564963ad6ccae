//! Threshold ElGamal public key decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::dkg::ThresholdPublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ThresholdPublicKey::decode(data, None) {
        assert_eq!(m.encode(), data);
    }
});
