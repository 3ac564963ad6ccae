//! Key-ceremony payload decoders (relay bundle of round-1 / round-2 messages, start, key report,
//! failure report, roster sign start, roster signed, enrolled): never panic; anything that decodes
//! re-encodes to a payload that decodes to the same message. The first byte selects the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::wire::PartyId;
use seh_protocol::ceremony::{
    decode_bundle, encode_bundle, CeremonyStart, Enrolled, FailureReport, KeyReport, RosterSignStart, RosterSigned,
};
use seh_protocol::messages::{from_payload, to_payload};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(what: &'static str, payload: &[u8]) {
    if let Ok(msg) = from_payload::<T>(what, payload) {
        let again: T = from_payload(what, &to_payload(&msg)).expect("a re-encoded payload decodes");
        assert_eq!(again, msg);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else { return };
    match which % 7 {
        0 => {
            if let Ok(items) = decode_bundle(payload, PartyId(1)) {
                assert_eq!(encode_bundle(&items), payload);
            }
        }
        1 => round_trip::<CeremonyStart>("ceremony start", payload),
        2 => round_trip::<KeyReport>("key report", payload),
        3 => round_trip::<FailureReport>("failure report", payload),
        4 => round_trip::<RosterSignStart>("roster sign start", payload),
        5 => round_trip::<RosterSigned>("roster signed", payload),
        _ => round_trip::<Enrolled>("enrolled", payload),
    }
});
