//! Secur-e-Health transport: wire messages, gRPC over mutual TLS, and an in-memory transport.
//!
//! - One service per trust boundary, each on its own listener: `SiteLink` (site ↔ coordinator;
//!   the site dials out and opens one bidirectional stream, so a hospital opens no inbound port)
//!   and `ResearcherApi` (submit a study, status, result). See `proto/seh_net.proto`.
//! - Identity: every node has an Ed25519 key ([`NodeIdentity`]); the federation CA
//!   ([`FederationCa`]) issues its mTLS certificate for that key, naming the node id.
//! - Admission: a connection without a client certificate, with one from another CA, for a key
//!   not on the [`Roster`] or for a revoked member fails **in the TLS handshake**; a per-call guard
//!   re-checks role and revocation before any handler runs. Refusals are recorded
//!   ([`Listener::refusals`]).
//! - Transport-agnostic runtime code uses [`Session`], [`SessionAcceptor`], [`SiteConnector`],
//!   [`ResearcherClient`] and [`ResearcherHandler`]; [`MemoryNetwork`] implements them with
//!   channels for tests, the `grpc_*` types over the network.
//! - TLS: rustls with the `ring` provider, TLS 1.3 only. Payloads are opaque signed envelopes.

mod error;
mod frame;
mod grpc_client;
mod grpc_server;
mod identity;
mod memory;
mod roster;
mod session;
mod tls;
mod tuning;

/// Generated protobuf messages and gRPC stubs (package `seh.net.v1`).
#[allow(missing_docs, missing_debug_implementations, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("seh.net.v1");
}

pub use error::{NetError, RefusalReason, TlsFailure};
pub use frame::{Frame, MAX_KIND_BYTES, MAX_PAYLOAD_BYTES, MAX_STUDY_ID_BYTES};
pub use grpc_client::{GrpcResearcherClient, GrpcSiteConnector};
pub use grpc_server::{serve_researcher_api, serve_site_link, Listener, Refusal, RefusalLog, REFUSAL_FEED_DEPTH};
pub use identity::{FederationCa, NodeId, NodeIdentity, Role, TlsCredentials, MAX_NODE_ID_BYTES};
pub use memory::{MemoryNetwork, MemoryResearcherClient, MemorySiteConnector};
pub use roster::{Member, PeerInfo, Roster, RosterHandle};
pub use session::{
    FrameSink, FrameStream, ResearcherClient, ResearcherHandler, Session, SessionAcceptor, SiteConnector, StudyStatus,
};
pub use tls::{server_config, server_config_with, ClientTls, Trust};

/// A coordinator's server TLS configuration (what [`server_config`] returns).
pub type ServerTls = std::sync::Arc<rustls::ServerConfig>;
