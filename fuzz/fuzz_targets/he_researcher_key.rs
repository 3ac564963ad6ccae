//! Researcher HE key-file decoder (`ResearcherKey::from_bytes`): never panics; anything that
//! decodes re-encodes to the same bytes. Also runs the researcher public-key decoder on the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use seh_crypto::he::{HeContext, HeParams, ResearcherKey, ResearcherPublicKey, BFV_8192};

fn ctx() -> &'static HeContext {
    static CTX: OnceLock<HeContext> = OnceLock::new();
    CTX.get_or_init(|| HeContext::new(HeParams::new(BFV_8192).expect("parameters")).expect("context"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = ResearcherKey::from_bytes(ctx(), data) {
        assert_eq!(k.to_bytes().as_slice(), data);
    }
    if let Ok(p) = ResearcherPublicKey::from_bytes(ctx(), data) {
        assert_eq!(p.to_bytes(ctx()), data);
    }
});
