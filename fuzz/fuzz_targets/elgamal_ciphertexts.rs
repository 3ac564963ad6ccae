//! ElGamal ciphertext-list decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::elgamal::{decode_ciphertexts, encode_ciphertexts};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode_ciphertexts(data, None) {
        assert_eq!(encode_ciphertexts(&m), data);
    }
});
