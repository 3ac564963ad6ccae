//! DKG broadcast decoder (threshold from the first byte): anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::dkg::DkgBroadcast;
use seh_crypto::wire::PartyId;

fuzz_target!(|data: &[u8]| {
    if let Some((&t, rest)) = data.split_first() {
        if let Ok(m) = DkgBroadcast::decode(rest, PartyId(1), usize::from(t)) {
            assert_eq!(m.encode(), rest);
        }
    }
});
