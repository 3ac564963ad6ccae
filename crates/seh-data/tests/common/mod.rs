//! Shared test helpers (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use seh_crypto::pseudonym::SiteSecret;
use seh_data::Store;

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(rel)
}

pub fn secret() -> SiteSecret {
    SiteSecret::from_bytes(&[7u8; 32]).unwrap()
}

/// The NDJSON files of the committed synthetic export (both sites), sorted.
pub fn synth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for site in ["site1", "site2"] {
        let dir = testdata(&format!("fhir/synth/{site}"));
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "ndjson") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

pub fn synth_store() -> Store {
    let mut s = Store::open_in_memory(secret()).unwrap();
    s.import_fhir_files(&synth_files()).unwrap();
    s
}
