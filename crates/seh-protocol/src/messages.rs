//! Control messages of a study and the signed-envelope helpers every message goes through.
//!
//! Every message is a `seh_crypto::wire` envelope signed by its sender's identity key, carrying
//! the study id and round. Control payloads are JSON ([`ProtocolId::Control`]); SecAgg+ payloads
//! use seh-crypto's codecs ([`ProtocolId::SecAgg`]); FROST payloads its strict encodings
//! ([`ProtocolId::Frost`]).

use rand::RngCore;
use seh_crypto::wire::{Envelope, PartyId, ProtocolId, SessionId, SignedEnvelope, SigningKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::release::SignedRelease;
use crate::spec::SignedStudy;

/// Control steps.
pub mod control {
    /// Coordinator → site: [`super::Offer`].
    pub const OFFER: u8 = 1;
    /// Site → coordinator: [`super::DecisionMsg`].
    pub const DECISION: u8 = 2;
    /// Coordinator → site: [`super::AggregateStart`].
    pub const AGGREGATE_START: u8 = 3;
    /// Coordinator → site: [`super::SignStart`].
    pub const SIGN_START: u8 = 4;
    /// Coordinator → site: [`super::Released`].
    pub const RELEASED: u8 = 5;
    /// Coordinator → site: [`crate::he_wire::HeSetupStart`] (threshold-HE key set-up).
    pub const HE_SETUP_START: u8 = 6;
    /// Coordinator → site: [`crate::log_head::HeadSignStart`] (co-sign the coordinator's log head).
    pub const HEAD_SIGN_START: u8 = 7;
}

/// FROST steps.
pub mod frost_step {
    /// Site → coordinator: signing commitment.
    pub const COMMITMENT: u8 = 0;
    /// Coordinator → site: signing request.
    pub const REQUEST: u8 = 1;
    /// Site → coordinator: signature share.
    pub const SHARE: u8 = 2;
}

/// Asks a site whether it takes part.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The researcher-signed study.
    pub study: SignedStudy,
}

/// A site's answer to an [`Offer`].
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionMsg {
    /// True if the site takes part.
    pub accept: bool,
    /// Why it refuses (empty when accepting). Never a data value.
    pub reason: String,
    /// The site's minimum cell count (the release applies the largest).
    pub min_cell_count: u64,
    /// Model analyses: the site's model description (design columns, group labels; no values).
    #[serde(default)]
    pub model: Option<crate::fed::site::ModelInfo>,
}

/// Starts a secure aggregation; the site answers with its SecAgg+ key advert.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateStart {
    /// The study (the site re-applies its policy before contributing).
    pub study: SignedStudy,
    /// Party ids taking part in this aggregation.
    pub parties: Vec<u32>,
    /// Model analyses: what to compute in this round.
    #[serde(default)]
    pub query: Option<crate::fed::Query>,
}

/// Asks a site to co-sign a release document; the site answers with a FROST commitment.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignStart {
    /// The study.
    pub study: SignedStudy,
    /// The [`crate::release::ReleaseDocument`] JSON to sign.
    pub document: String,
}

/// Tells the sites the study was released (for their audit logs).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Released {
    /// The signed release; `document` is empty for a site that co-signed it (it holds the
    /// document from [`SignStart`]), so the document crosses the wire once per site.
    pub release: SignedRelease,
}

/// Serializes a control payload.
pub fn to_payload<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Parses a control payload strictly (unknown fields rejected).
pub fn from_payload<T: DeserializeOwned>(what: &'static str, payload: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(payload).map_err(|e| ProtocolError::parse(what, &e))
}

/// Builds and signs an envelope with a fresh random nonce; returns its bytes.
pub fn seal(
    key: &SigningKey,
    protocol: ProtocolId,
    step: u8,
    sender: PartyId,
    recipient: PartyId,
    session: SessionId,
    payload: Vec<u8>,
) -> Result<Vec<u8>, ProtocolError> {
    let nonce = rand::rngs::OsRng.next_u64();
    let env = Envelope { protocol, step, sender, recipient, session, nonce, payload };
    Ok(env.sign(key)?.encode()?)
}

/// Re-signs an already-built envelope (used to wrap SecAgg+ messages).
pub fn seal_envelope(key: &SigningKey, env: Envelope) -> Result<Vec<u8>, ProtocolError> {
    Ok(env.sign(key)?.encode()?)
}

/// A fresh random nonce.
pub fn nonce() -> u64 {
    rand::rngs::OsRng.next_u64()
}

/// Decodes and authenticates an envelope under `roster`.
pub fn open<R: seh_crypto::wire::Roster + ?Sized>(bytes: &[u8], roster: &R) -> Result<Envelope, ProtocolError> {
    Ok(SignedEnvelope::open(bytes, roster)?)
}

/// Routing label of an envelope for the transport frame (`control/1`, `secagg/4`, `frost/2`).
pub fn kind_label(protocol: ProtocolId, step: u8) -> String {
    let p = match protocol {
        ProtocolId::Control => "control",
        ProtocolId::SecAgg => "secagg",
        ProtocolId::Frost => "frost",
        ProtocolId::ThresholdBfv => "he",
        _ => "other",
    };
    format!("{p}/{step}")
}
