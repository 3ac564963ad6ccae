//! Payload decoders of the release from the encrypted store and of the threshold-HE set-up:
//! release offer (with the researcher's signed request), answer, co-sign start, co-signed result,
//! the signed request and its inner request, the release document, the set-up start, and the
//! envelope bundle. Never panic; anything that decodes re-encodes to a payload that decodes to the
//! same value. The first byte selects the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::wire::PartyId;
use seh_protocol::he_cosign::{SignedStoreResult, StoreReleaseDocument, StoreReleaseSignStart};
use seh_protocol::he_release::{HeReleaseAnswer, HeReleaseOffer};
use seh_protocol::he_request::SignedStoreRelease;
use seh_protocol::he_wire::{Bundle, HeSetupStart};
use seh_protocol::messages::{from_payload, to_payload};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(what: &'static str, payload: &[u8]) -> Option<T> {
    let msg = from_payload::<T>(what, payload).ok()?;
    let bytes = to_payload(&msg);
    let again: T = from_payload(what, &bytes).expect("a re-encoded payload decodes");
    assert_eq!(to_payload(&again), bytes);
    Some(again)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, payload)) = data.split_first() else { return };
    match which % 8 {
        0 => {
            if let Some(offer) = round_trip::<HeReleaseOffer>("release offer", payload) {
                let _ = (offer.study.unverified_spec(), offer.request.unverified(), offer.request.digest());
            }
        }
        1 => drop(round_trip::<HeReleaseAnswer>("release answer", payload)),
        2 => {
            if let Some(start) = round_trip::<StoreReleaseSignStart>("release sign start", payload) {
                if let Ok(doc) = StoreReleaseDocument::from_json(&start.document) {
                    let text = doc.to_json().expect("a document encodes");
                    let again = StoreReleaseDocument::from_json(&text).expect("re-encoded decodes");
                    assert_eq!(again.to_json().expect("encodes"), text);
                }
            }
        }
        3 => drop(round_trip::<SignedStoreResult>("co-signed release", payload)),
        4 => {
            if let Some(signed) = round_trip::<SignedStoreRelease>("signed release request", payload) {
                if let Ok(req) = signed.unverified() {
                    let _ = req.target();
                }
            }
        }
        5 => {
            if let Some(start) = round_trip::<HeSetupStart>("he setup start", payload) {
                let _ = start.study.unverified_spec();
            }
        }
        6 => {
            if let Ok(b) = Bundle::decode(payload, PartyId(1)) {
                assert_eq!(b.encode(), payload);
            }
        }
        _ => {
            if let Ok(doc) = StoreReleaseDocument::from_json(&String::from_utf8_lossy(payload)) {
                let text = doc.to_json().expect("a document encodes");
                assert_eq!(StoreReleaseDocument::from_json(&text).expect("decodes").to_json().expect("encodes"), text);
            }
        }
    }
});
