//! Feldman commitments and share decoders: decode → encode → equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_crypto::shamir::{Commitments, SecretShare, SHARE_LEN};
use seh_crypto::wire::{Reader, Writer};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data, None);
    if let Ok(c) = Commitments::decode(&mut r, None) {
        if r.finish("commitments").is_ok() {
            let mut w = Writer::default();
            c.encode(&mut w);
            assert_eq!(w.into_bytes(), data);
        }
    }
    if let Ok(bytes) = <[u8; SHARE_LEN]>::try_from(data) {
        if let Ok(s) = SecretShare::from_bytes(&bytes) {
            assert_eq!(*s.to_bytes(), bytes);
        }
    }
});
