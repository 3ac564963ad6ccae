//! Owned-buffer signed-envelope decoder agrees with the slice decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::wire::SignedEnvelope;

fuzz_target!(|data: &[u8]| {
    let a = SignedEnvelope::decode(data);
    let b = SignedEnvelope::decode_vec(data.to_vec());
    assert_eq!(a, b);
    if let Ok(s) = b {
        assert_eq!(s.into_bytes().expect("re-encodes"), data);
    }
});
