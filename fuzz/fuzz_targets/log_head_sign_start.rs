//! The log-head co-sign request (`HeadSignStart` payload, its `HeadDocument`, and the site's whole
//! check `HeadSignStart::check` with and without a last co-signed head): never panics; a request
//! and a document that decode re-encode to ones that decode to the same values. The first byte
//! selects the site's last co-signed head (none, or a seq taken from it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::wire::SigningKey;
use seh_protocol::log_head::{HeadDocument, HeadRef, HeadSignStart};
use seh_protocol::messages::{from_payload, to_payload};

fuzz_target!(|data: &[u8]| {
    let Some((&last, payload)) = data.split_first() else { return };
    let Ok(start) = from_payload::<HeadSignStart>("head sign start", payload) else { return };
    let again: HeadSignStart = from_payload("head sign start", &to_payload(&start)).expect("re-encoded decodes");
    assert_eq!(again, start);
    if let Ok(doc) = HeadDocument::from_json(&start.document) {
        let text = doc.to_json().expect("a document encodes");
        assert_eq!(HeadDocument::from_json(&text).expect("re-encoded decodes"), doc);
        let _ = (doc.start(), doc.hash_at(u64::from(last)), doc.head());
    }
    let coordinator = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let last = (last & 1 == 1).then(|| HeadRef { seq: u64::from(last >> 1), hash: "00".repeat(32) });
    if let Ok(doc) = start.check("fuzz", &coordinator, last.as_ref()) {
        let _ = doc.positions();
    }
});
