//! The transport's message unit and its conversion to and from the wire `Envelope`.
//!
//! The payload is a reference-counted [`Bytes`]: decoding takes it straight out of the gRPC
//! receive buffer and cloning a frame (a broadcast) shares it, so an 8 MB contribution is not
//! copied again between the socket and the protocol code.

use bytes::Bytes;

use crate::error::NetError;
use crate::identity::NodeId;
use crate::proto::Envelope;

/// Largest payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 8 << 20;
/// Longest study id, in bytes.
pub const MAX_STUDY_ID_BYTES: usize = 128;
/// Longest kind label, in bytes.
pub const MAX_KIND_BYTES: usize = 64;

/// One routed message: routing metadata plus an opaque signed payload.
///
/// Fields are validated on construction and on decoding, so a `Frame` in hand is well-formed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    study_id: String,
    round: u64,
    kind: String,
    sender: Option<NodeId>,
    recipient: Option<NodeId>,
    payload: Bytes,
}

fn label(text: &str, max: usize, field: &'static str) -> Result<(), NetError> {
    if text.is_empty() || text.len() > max {
        return Err(NetError::InvalidFrame { field, problem: "is empty or too long" });
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NetError::InvalidFrame { field, problem: "must be printable ASCII without spaces" });
    }
    Ok(())
}

impl Frame {
    /// A frame for the coordinator (no recipient) with no explicit sender.
    ///
    /// `study_id`: 1..=128 printable ASCII bytes; `kind`: 1..=64; `payload` at most
    /// [`MAX_PAYLOAD_BYTES`] (a `Vec<u8>` or a [`Bytes`]; neither is copied).
    /// Errors: [`NetError::InvalidFrame`].
    pub fn new(study_id: &str, round: u64, kind: &str, payload: impl Into<Bytes>) -> Result<Self, NetError> {
        let payload = payload.into();
        label(study_id, MAX_STUDY_ID_BYTES, "study_id")?;
        label(kind, MAX_KIND_BYTES, "kind")?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(NetError::InvalidFrame { field: "payload", problem: "is too large" });
        }
        Ok(Frame {
            study_id: study_id.to_owned(),
            round,
            kind: kind.to_owned(),
            sender: None,
            recipient: None,
            payload,
        })
    }

    /// The same frame addressed to `recipient` (relayed by the coordinator).
    pub fn to(mut self, recipient: NodeId) -> Self {
        self.recipient = Some(recipient);
        self
    }

    /// The same frame naming `sender` as the party that signed the payload (set by the
    /// coordinator when relaying, and by the transport for what a site sends).
    pub fn from_sender(mut self, sender: NodeId) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Study id.
    pub fn study_id(&self) -> &str {
        &self.study_id
    }
    /// Round number.
    pub fn round(&self) -> u64 {
        self.round
    }
    /// Routing label.
    pub fn kind(&self) -> &str {
        &self.kind
    }
    /// Party that signed the payload, if named.
    pub fn sender(&self) -> Option<&NodeId> {
        self.sender.as_ref()
    }
    /// Addressee, or `None` for the coordinator.
    pub fn recipient(&self) -> Option<&NodeId> {
        self.recipient.as_ref()
    }
    /// The opaque payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    /// The payload as a shared buffer (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.payload.clone()
    }
}

fn optional_id(text: &str, field: &'static str) -> Result<Option<NodeId>, NetError> {
    if text.is_empty() {
        return Ok(None);
    }
    NodeId::parse(text).map(Some).map_err(|_| NetError::InvalidFrame { field, problem: "is not a node id" })
}

impl TryFrom<Envelope> for Frame {
    type Error = NetError;

    fn try_from(e: Envelope) -> Result<Self, NetError> {
        let mut f = Frame::new(&e.study_id, e.round, &e.kind, e.payload)?;
        f.sender = optional_id(&e.sender, "sender")?;
        f.recipient = optional_id(&e.recipient, "recipient")?;
        Ok(f)
    }
}

impl From<Frame> for Envelope {
    fn from(f: Frame) -> Self {
        Envelope {
            study_id: f.study_id,
            round: f.round,
            kind: f.kind,
            sender: f.sender.map(|s| s.to_string()).unwrap_or_default(),
            recipient: f.recipient.map(|s| s.to_string()).unwrap_or_default(),
            payload: f.payload,
        }
    }
}

/// What the coordinator does with a frame arriving from site `peer`: a site may only speak for
/// itself, so a named sender must be `peer`; the sender is then set to `peer`.
pub(crate) fn stamp_inbound(frame: Frame, peer: &NodeId) -> Result<Frame, NetError> {
    match &frame.sender {
        Some(s) if s != peer => Err(NetError::InvalidFrame { field: "sender", problem: "is not the connected peer" }),
        _ => Ok(frame.from_sender(peer.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_validation() {
        let f = Frame::new("study-1", 3, "secagg/masked", vec![1, 2, 3]).unwrap().to(NodeId::parse("site-b").unwrap());
        let back = Frame::try_from(Envelope::from(f.clone())).unwrap();
        assert_eq!(back, f);
        assert!(Frame::new("", 0, "k", vec![]).is_err());
        assert!(Frame::new("a b", 0, "k", vec![]).is_err());
        assert!(Frame::new("s", 0, &"k".repeat(65), vec![]).is_err());
        assert!(Frame::new("s", 0, "k", vec![0; MAX_PAYLOAD_BYTES + 1]).is_err());
        let bad = Envelope { study_id: "s".into(), kind: "k".into(), recipient: "Bad".into(), ..Default::default() };
        assert!(matches!(Frame::try_from(bad), Err(NetError::InvalidFrame { field: "recipient", .. })));
    }

    #[test]
    fn inbound_sender_must_be_the_peer() {
        let a = NodeId::parse("site-a").unwrap();
        let b = NodeId::parse("site-b").unwrap();
        let f = Frame::new("s", 0, "k", vec![]).unwrap();
        assert_eq!(stamp_inbound(f.clone(), &a).unwrap().sender(), Some(&a));
        assert!(stamp_inbound(f.from_sender(b), &a).is_err());
    }
}
