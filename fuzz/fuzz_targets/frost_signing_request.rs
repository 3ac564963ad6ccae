//! FROST signing-request decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::frost::sign::SigningRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SigningRequest::decode(data) {
        assert_eq!(m.encode().expect("re-encodes"), data);
    }
});
