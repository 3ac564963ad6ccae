//! A signed `federation.json` (`Federation::from_signed_json`: members, group key, and the sites'
//! roster signature): never panics; a file that loads re-encodes (as every party writes it) to a
//! file that loads to the same members, group key and roster signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_protocol::ceremony::file_text;
use seh_protocol::federation::Federation;

fuzz_target!(|data: &[u8]| {
    let Ok(fed) = Federation::from_signed_json(data) else { return };
    let text = file_text(fed.membership().file()).expect("a loaded file re-encodes");
    let again = Federation::from_signed_json(text.as_bytes()).expect("a re-encoded signed file loads");
    assert_eq!(again.membership().file(), fed.membership().file());
    assert_eq!(again.group_key(), fed.group_key());
    assert_eq!(again.roster_signature(), fed.roster_signature());
    assert_eq!(file_text(again.membership().file()).expect("re-encodes"), text);
});
