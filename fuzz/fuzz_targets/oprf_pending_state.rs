//! OPRF site-state decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::oprf::PendingPseudonyms;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = PendingPseudonyms::from_secret_bytes(data) {
        assert_eq!(&m.to_secret_bytes()[..], data);
    }
});
