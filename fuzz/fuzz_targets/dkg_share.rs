//! DKG share and justification decoders: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::dkg::{DkgShare, Justification};
use seh_crypto::wire::PartyId;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = DkgShare::decode(data, PartyId(1)) {
        assert_eq!(&m.encode()[..], data);
    }
    if let Ok(m) = Justification::decode(data, PartyId(1)) {
        assert_eq!(m.encode(), data);
    }
});
