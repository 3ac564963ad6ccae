//! `federation.json` decoder: never panics; a file that validates re-encodes to a file that
//! validates to the same sites, coordinator and researchers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::federation::{Federation, FederationFile};

fuzz_target!(|data: &[u8]| {
    let Ok(fed) = Federation::from_json(data) else { return };
    let file: FederationFile = serde_json::from_slice(data).expect("a valid federation parses as a file");
    let text = serde_json::to_vec(&file).expect("a federation file serializes");
    let again = Federation::from_json(&text).expect("a re-encoded federation validates");
    assert_eq!(again.coordinator_name, fed.coordinator_name);
    assert_eq!(again.coordinator_key, fed.coordinator_key);
    let names = |f: &Federation| f.sites().map(|s| (s.name.clone(), s.party, s.key)).collect::<Vec<_>>();
    assert_eq!(names(&again), names(&fed));
});
