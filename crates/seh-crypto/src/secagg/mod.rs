//! SecAgg+: secure aggregation of `u64` vectors (mod 2^64) that survives dropouts.
//!
//! After Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving
//! Machine Learning" (CCS 2017), with the sparse neighbour graphs of Bell et al.,
//! "Secure Single-Server Aggregation with (Poly)Logarithmic Overhead" (CCS 2020).
//! The coordinator ("server") learns the sum of the survivors' inputs and
//! nothing else, as long as fewer than `t` parties of any holder set collude
//! with it; the sum survives parties dropping out at any round while at least
//! `t` remain.
//!
//! # Rounds (client side: `round0` … `round3`; server side: [`server`])
//!
//! | round | client sends | server answers |
//! |---|---|---|
//! | 0 advertise keys | two X25519 public keys (share encryption, mask agreement), signed with the client's Ed25519 identity ([`AdvertiseKeys`]) | the list of adverts ([`KeyList`]) |
//! | 1 share keys | Feldman-verifiable Shamir shares of the self-mask seed `b_u` and of the masking key `s_u` for every neighbour, each encrypted with ChaCha20-Poly1305 under an HKDF-SHA256 key from the X25519 agreement ([`ShareKeys`]) | each recipient's shares ([`ForwardedShares`]) |
//! | 2 masked input | `y_u = x_u + PRG(b_u) + Σ_v ±PRG(s_uv)` ([`MaskedInput`]) | the survivor set ([`ConsistencyRequest`]) |
//! | 3 consistency + unmask | a signature over the survivor set ([`ConsistencySignature`]), then, given ≥ t such signatures ([`UnmaskRequest`]), `b` shares of survivors and `s` shares of dropped parties — never both for one party ([`UnmaskShares`]) | the sum |
//!
//! Each round's secret state is its own type and the next round consumes it by
//! value. Nothing here does I/O or spawns threads. Messages encode to payloads
//! for [`crate::wire::Envelope`] with [`ProtocolId::SecAgg`](crate::wire::ProtocolId)
//! and the step numbers of [`Step`]; the caller signs envelopes and runs a
//! [`crate::wire::SessionGuard`].
//!
//! # Key and mask derivation
//!
//! `s_u` is a random ristretto255 scalar (so it can be Shamir-shared) whose
//! 32-byte encoding is used as the X25519 secret. Pair masks use
//! `AES-128-CTR(HKDF(X25519(s_u, S_v), salt = session, info = pair ids))`, the
//! self-mask `AES-128-CTR(HKDF(b_u, salt = session, info = u))`. Keys are fresh
//! per session (study, round), so masks are never reused.
//!
//! PRG choice: AES-128-CTR (the `aes` crate detects AES-NI/VAES at run time;
//! counter mode done in [`prg`] with one counter buffer shared by all streams,
//! the addition run inside the cipher backend) keeps up with bare AES
//! encryption of the counters, modular addition included (7.0–7.5 against
//! 7.3–7.6 GB/s back to back on a loaded machine; bare AES ran at 9.2–9.4
//! GB/s on a quiet one), against 2.0–2.3 GB/s for ChaCha8 (`rand_chacha`,
//! `chacha20`); see [`prg`] for the variants measured.
//!
//! # Threshold guidance
//!
//! Every party's secrets are shared among its *holder set*: its neighbours plus
//! itself (`k + 1` parties for a `k`-regular graph, `n` for the complete graph).
//! `t` must be a strict majority of the holder set (checked), so the server can
//! never obtain both `b_u` and `s_u` of an honest party from honest holders
//! that agree on the survivor set; [`SecAggParams::suggested`] picks
//! `t = ⌊(k+1)/2⌋ + 1` and, above 64 parties, a random `k`-regular graph with
//! `k ≈ 6·log2 n` (Bell et al. show `O(log n)` suffices for both privacy and
//! dropout tolerance with high probability).

mod driver;
mod graph;
mod keys;
mod messages;
pub mod prg;
pub mod round0;
pub mod round1;
pub mod round2;
pub mod round3;
pub mod server;

pub use driver::{SecAgg, SecAggCoordinator, SecAggSite};
pub use graph::Graph;
pub use messages::{
    AdvertiseKeys, ConsistencyRequest, ConsistencySignature, EncryptedShare, ForwardedShare, ForwardedShares, KeyList,
    MaskedInput, SecAggMessage, ShareKeys, UnmaskRequest, UnmaskShares,
};
pub use server::{AggregateOutput, UnmaskPlan};

use crate::error::SecAggError;
use crate::wire::{PartyId, SessionId};
use std::collections::BTreeSet;

/// Maximum number of parties in one aggregation (bounds decoding).
pub const MAX_PARTIES: usize = 1 << 16;
/// Maximum vector length (10^7 entries; 80 MB masked vector).
pub const MAX_LENGTH: usize = 10_000_000;

/// Envelope step numbers of the SecAgg+ messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// [`AdvertiseKeys`], client → server.
    AdvertiseKeys = 0,
    /// [`KeyList`], server → clients.
    KeyList = 1,
    /// [`ShareKeys`], client → server.
    ShareKeys = 2,
    /// [`ForwardedShares`], server → one client.
    ForwardedShares = 3,
    /// [`MaskedInput`], client → server.
    MaskedInput = 4,
    /// [`ConsistencyRequest`], server → clients.
    ConsistencyRequest = 5,
    /// [`ConsistencySignature`], client → server.
    ConsistencySignature = 6,
    /// [`UnmaskRequest`], server → clients.
    UnmaskRequest = 7,
    /// [`UnmaskShares`], client → server.
    UnmaskShares = 8,
}

/// Public parameters of one aggregation, known to every party and the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecAggParams {
    session: SessionId,
    parties: Vec<PartyId>,
    threshold: usize,
    length: usize,
    graph: Graph,
}

impl SecAggParams {
    /// Validate and build parameters.
    ///
    /// * `parties`: distinct site ids (not 0, not `u32::MAX`), at most [`MAX_PARTIES`];
    /// * `threshold`: a strict majority of every holder set and at most its size;
    /// * `length`: vector length, `1..=MAX_LENGTH`;
    /// * `graph`: neighbour graph (see [`Graph`]).
    pub fn new(
        session: SessionId,
        parties: &[PartyId],
        threshold: usize,
        length: usize,
        graph: Graph,
    ) -> Result<SecAggParams, SecAggError> {
        let bad = |field: &'static str, reason: String| Err(SecAggError::InvalidParameter { field, reason });
        let set: BTreeSet<PartyId> = parties.iter().copied().collect();
        if set.len() != parties.len() {
            return bad("parties", "duplicate party id".into());
        }
        if let Some(p) = parties.iter().find(|p| !p.is_site()) {
            return bad("parties", format!("{p} is not a site id"));
        }
        if parties.len() < 2 || parties.len() > MAX_PARTIES {
            return bad("parties", format!("need 2..={MAX_PARTIES} parties, got {}", parties.len()));
        }
        if length == 0 || length > MAX_LENGTH {
            return bad("length", format!("need 1..={MAX_LENGTH}, got {length}"));
        }
        let sorted: Vec<PartyId> = set.into_iter().collect();
        let holders = graph.validate(sorted.len())? + 1;
        if threshold > holders || 2 * threshold <= holders {
            return bad(
                "threshold",
                format!("{threshold} must be a strict majority of the {holders} holders of each secret"),
            );
        }
        Ok(SecAggParams { session, parties: sorted, threshold, length, graph })
    }

    /// Suggested graph and threshold for `n` parties: the complete graph up to
    /// 64 parties, else a random `k`-regular graph with `k` the even number
    /// nearest above `6·log2 n` (seeded by `graph_seed`, which all parties must
    /// share); `t = ⌊(k+1)/2⌋ + 1`.
    pub fn suggested(
        session: SessionId,
        parties: &[PartyId],
        length: usize,
        graph_seed: [u8; 32],
    ) -> Result<SecAggParams, SecAggError> {
        let n = parties.len();
        let graph = if n <= 64 {
            Graph::Complete
        } else {
            let k = ((6.0 * (n as f64).log2()).ceil() as usize).next_multiple_of(2).min(n - 1);
            Graph::Random { degree: k, seed: graph_seed }
        };
        let degree = graph.validate(n.max(2))?;
        let holders = degree + 1;
        SecAggParams::new(session, parties, holders / 2 + 1, length, graph)
    }

    /// Session (study, round).
    pub fn session(&self) -> SessionId {
        self.session
    }
    /// Parties, sorted ascending.
    pub fn parties(&self) -> &[PartyId] {
        &self.parties
    }
    /// Threshold `t`.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// Vector length.
    pub fn length(&self) -> usize {
        self.length
    }
    /// Neighbour graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// Neighbours of `party` (excluding itself), sorted; empty if unknown.
    pub fn neighbours(&self, party: PartyId) -> Vec<PartyId> {
        self.graph.neighbours(&self.parties, party)
    }
    /// True if `party` takes part.
    pub fn contains(&self, party: PartyId) -> bool {
        self.parties.binary_search(&party).is_ok()
    }
}
