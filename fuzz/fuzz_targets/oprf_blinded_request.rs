//! OPRF BlindedRequest decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::oprf::BlindedRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = BlindedRequest::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
