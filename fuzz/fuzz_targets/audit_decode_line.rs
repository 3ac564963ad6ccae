//! Audit-log line decoder: anything that decodes re-encodes to exactly the same bytes and decodes
//! again to the same entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_audit::{decode_line, encode_line};

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = decode_line(data) {
        let again = encode_line(&entry);
        assert_eq!(again, data);
        assert_eq!(decode_line(&again).expect("a canonical line decodes"), entry);
    }
});
