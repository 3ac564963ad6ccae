//! seh-net frame decoding (protobuf `Envelope` → validated `Frame`): never panics; a frame that
//! decodes re-encodes to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use seh_net::proto::Envelope;
use seh_net::Frame;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::decode(data) else { return };
    let Ok(frame) = Frame::try_from(env) else { return };
    let bytes = Envelope::from(frame.clone()).encode_to_vec();
    let again = Frame::try_from(Envelope::decode(bytes.as_slice()).expect("re-encoded envelope decodes"))
        .expect("re-encoded frame validates");
    assert_eq!(again, frame);
});
