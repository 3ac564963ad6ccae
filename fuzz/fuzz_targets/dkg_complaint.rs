//! DKG complaint decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::dkg::Complaint;
use seh_crypto::wire::PartyId;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Complaint::decode(data, PartyId(1)) {
        assert_eq!(m.encode(), data);
    }
});
