//! The node's threshold-HE key record (`HeKeyRecord::from_bytes`, the plaintext inside the
//! encrypted key file): never panics; anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::he_keyrec::HeKeyRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = HeKeyRecord::from_bytes(data) {
        assert_eq!(rec.to_bytes().as_slice(), data);
        let _ = format!("{rec:?}");
    }
});
