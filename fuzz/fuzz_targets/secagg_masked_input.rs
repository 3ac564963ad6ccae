//! SecAgg+ `MaskedInput` payload decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::secagg::{MaskedInput, SecAggMessage};
use seh_crypto::wire::PartyId;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = MaskedInput::decode(data, PartyId(1)) {
        assert_eq!(msg.encode(), data);
    }
});
