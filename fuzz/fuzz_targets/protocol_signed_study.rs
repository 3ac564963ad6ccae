//! A researcher's signed study as the coordinator receives it: decoding and validating the spec
//! never panics, and a spec that validates re-encodes to a spec that validates and is equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::spec::{SignedStudy, StudySpec};

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = serde_json::from_slice::<SignedStudy>(data) else { return };
    let _ = signed.digest();
    if let Ok(spec) = signed.unverified_spec() {
        spec.id().expect("a validated spec has a valid id");
        let text = serde_json::to_string(&spec).expect("a spec serializes");
        let again: StudySpec = serde_json::from_str(&text).expect("a serialized spec parses");
        again.validate().expect("a re-encoded valid spec validates");
        assert_eq!(serde_json::to_string(&again).expect("serializes"), text);
    }
});
