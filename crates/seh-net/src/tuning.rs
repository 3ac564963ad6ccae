//! HTTP/2 settings shared by both ends of a connection.
//!
//! A contribution frame can be [`MAX_PAYLOAD_BYTES`] (8 MiB). With the HTTP/2 default windows
//! (64 KiB, or hyper's 1 MiB on the server) the sender stalls every window until the receiver's
//! task runs and returns a WINDOW_UPDATE, which on a busy coordinator costs more than the bytes
//! themselves. The windows below let one whole frame per stream be in flight, and the larger
//! DATA frame size cuts the per-frame work (TLS records stay 16 KiB either way).

use crate::frame::MAX_PAYLOAD_BYTES;

/// Per-stream receive window: one largest frame plus its protobuf and gRPC headers.
pub(crate) const STREAM_WINDOW: u32 = (MAX_PAYLOAD_BYTES + (1 << 20)) as u32;
/// Per-connection receive window (one stream per connection in practice; two frames' worth).
pub(crate) const CONNECTION_WINDOW: u32 = 2 * STREAM_WINDOW;
/// Largest HTTP/2 DATA frame we accept.
pub(crate) const MAX_FRAME_SIZE: u32 = 256 << 10;

// One frame fits a stream window; RFC 9113 limits: windows below 2^31, frame size in
// [2^14, 2^24 - 1]. Checked at compile time.
const _: () = {
    assert!(STREAM_WINDOW as usize > MAX_PAYLOAD_BYTES + 4096);
    assert!(CONNECTION_WINDOW < (1u32 << 31));
    assert!(MAX_FRAME_SIZE >= 1 << 14 && MAX_FRAME_SIZE < 1 << 24);
};
