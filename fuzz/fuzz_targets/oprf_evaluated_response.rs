//! OPRF EvaluatedResponse decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::oprf::EvaluatedResponse;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = EvaluatedResponse::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
