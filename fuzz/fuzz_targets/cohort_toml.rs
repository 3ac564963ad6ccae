//! A cohort definition (TOML), written by a researcher and read by a site: parsing and
//! validating never panic or overflow the stack (the toml crate refuses nesting past its
//! recursion limit; the definition is refused past its size limit), and errors name the file.
//! Depth-heavy seeds are in `fuzz/seeds/cohort_toml/`; `DEEP:` inputs are amplified (see
//! `common/deep.rs`) and tried alone and as the value of a key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_data::cohort::CohortDef;

#[path = "common/deep.rs"]
mod deep;

fn check(text: &str) {
    match CohortDef::from_toml(text, "fuzz.toml") {
        Ok(def) => {
            let _ = format!("{def:?}");
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml"), "{e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    if let Some(deep) = deep::expand(text) {
        check(&deep);
        check(&format!("x = {deep}"));
    }
});
