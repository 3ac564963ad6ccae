//! Signed-envelope decoder: anything that decodes re-encodes to the same bytes,
//! and signature verification never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::wire::SignedEnvelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = SignedEnvelope::decode(data) {
        let again = signed.encode().expect("a decoded envelope re-encodes");
        assert_eq!(again, data);
        let key = ed25519_key();
        let _ = signed.verify_with(&key);
    }
});

fn ed25519_key() -> seh_crypto::wire::VerifyingKey {
    seh_crypto::wire::SigningKey::from_bytes(&[1u8; 32]).verifying_key()
}
