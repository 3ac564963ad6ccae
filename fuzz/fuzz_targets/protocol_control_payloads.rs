//! seh-protocol control payload decoders (offer, decision, aggregate start, sign start,
//! released): anything that decodes re-encodes to a payload that decodes to the same message.
//! The first byte selects the message type; the rest is the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::messages::{from_payload, to_payload, AggregateStart, DecisionMsg, Offer, Released, SignStart};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(what: &'static str, payload: &[u8]) {
    if let Ok(msg) = from_payload::<T>(what, payload) {
        let bytes = to_payload(&msg);
        let again: T = from_payload(what, &bytes).expect("a re-encoded payload decodes");
        assert_eq!(to_payload(&again), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else { return };
    match which % 5 {
        0 => round_trip::<Offer>("offer", payload),
        1 => round_trip::<DecisionMsg>("decision", payload),
        2 => round_trip::<AggregateStart>("aggregate start", payload),
        3 => round_trip::<SignStart>("sign start", payload),
        _ => round_trip::<Released>("released", payload),
    }
});
