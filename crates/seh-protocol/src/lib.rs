//! `seh-protocol`: the Secur-e-Health study protocol as sans-IO state machines.
//!
//! A researcher signs a [`spec::StudySpec`]; the coordinator relays it to the sites
//! ([`coordinator::CoordinatorStudy`]); each site applies its [`policy::SitePolicy`] and answers
//! ([`site::SiteMachine`]); the accepting sites' contribution vectors ([`describe`]) are summed
//! with SecAgg+ so the coordinator sees only the sum; the release ([`release`]) is computed with
//! small-cell suppression and co-signed by a threshold of the sites with FROST.
//!
//! Every message is a signed `seh_crypto::wire` envelope naming study and round; replays and
//! out-of-round messages are rejected by `SessionGuard` on both sides and reported (audit events
//! at the site, log actions at the coordinator). No sockets, clocks or threads here.

#![forbid(unsafe_code)]

pub mod ceremony;
pub mod clock;
pub mod coordinator;
pub mod describe;
pub mod error;
pub mod fed;
pub mod federation;
pub mod he_coord;
pub mod he_cosign;
pub mod he_keyrec;
pub mod he_release;
pub mod he_request;
pub mod he_site;
pub mod he_wire;
pub mod hex;
pub mod log_head;
pub mod messages;
pub mod policy;
pub mod release;
pub mod setup;
pub mod site;
pub mod site_dkg;
pub mod spec;
pub mod wide;

pub use error::ProtocolError;
