//! Decryption-share batch decoder: anything that decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::elgamal::DecryptionShareBatch;
use seh_crypto::wire::PartyId;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = DecryptionShareBatch::decode(data, PartyId(1)) {
        assert_eq!(m.encode(), data);
    }
});
