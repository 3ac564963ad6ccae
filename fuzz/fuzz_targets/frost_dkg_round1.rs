//! FROST DKG round-1 package decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::frost::dkg::Round1Package;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Round1Package::decode(data) {
        assert_eq!(m.encode().expect("re-encodes"), data);
    }
});
