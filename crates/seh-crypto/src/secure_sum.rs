//! `SecureSum`: the one seam between analyses and the way their sums are protected.
//!
//! Every federated analysis is *local statistics → secure sum → central step*.
//! A back-end (SecAgg+ masking today, threshold homomorphic encryption later)
//! provides three things:
//!
//! 1. **encode**: real vectors → ring elements ([`SecureSum::encode`], by
//!    default the fixed-point encoding of [`crate::fixed`], which refuses
//!    values that could overflow the sum);
//! 2. **contribute**: a site-side sans-IO state machine ([`SiteProtocol`]) that
//!    turns one encoded vector into the messages the back-end needs (one round
//!    for "encrypt once", four for SecAgg+);
//! 3. **combine**: a coordinator-side state machine ([`CoordinatorProtocol`])
//!    that absorbs those messages and, round by round, ends with the sum of the
//!    surviving sites' inputs ([`SecureSum::decode`] turns it back to `f64`).
//!
//! Messages are [`Envelope`]s (unsigned: the runtime signs what it sends with
//! the site's identity key and hands over only envelopes whose signature it
//! checked and that passed its [`crate::wire::SessionGuard`]). Nothing here
//! reads clocks: the runtime decides when a round is over (everyone answered
//! or its deadline passed) and calls [`CoordinatorProtocol::close_round`].

use crate::error::FixedError;
use crate::fixed::FixedParams;
use crate::wire::{Envelope, PartyId, SigningKey};
use rand::{CryptoRng, RngCore};

/// What closing a coordinator round produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundOutcome {
    /// Messages to deliver (recipient in each envelope); another round follows.
    Send(Vec<Envelope>),
    /// The protocol finished: the ring sum of the inputs of `contributors`.
    Done {
        /// Sum mod 2^64 of the encoded inputs.
        sum: Vec<u64>,
        /// Sites whose inputs are in the sum.
        contributors: Vec<PartyId>,
    },
}

/// Site side of a secure-sum back-end.
pub trait SiteProtocol {
    /// The back-end's error type (names the culprit where a peer is at fault).
    type Error: std::error::Error;
    /// Messages to send to open the protocol. Call once.
    fn start<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> Result<Vec<Envelope>, Self::Error>;
    /// Feed an authenticated coordinator message; returns the replies to send.
    fn receive<R: RngCore + CryptoRng>(&mut self, env: &Envelope, rng: &mut R) -> Result<Vec<Envelope>, Self::Error>;
    /// True once the site has sent everything it will send.
    fn is_done(&self) -> bool;
}

/// Coordinator side of a secure-sum back-end.
pub trait CoordinatorProtocol {
    /// The back-end's error type.
    type Error: std::error::Error;
    /// Absorb an authenticated site message of the current round.
    fn receive(&mut self, env: &Envelope) -> Result<(), Self::Error>;
    /// End the current round with what has arrived.
    fn close_round(&mut self) -> Result<RoundOutcome, Self::Error>;
}

/// A secure-sum back-end (encode → contribute → combine).
pub trait SecureSum {
    /// Site state machine.
    type Site: SiteProtocol;
    /// Coordinator state machine.
    type Coordinator: CoordinatorProtocol;

    /// The fixed-point parameters all sites use.
    fn fixed(&self) -> &FixedParams;

    /// Encode a real vector (errors on a non-finite or out-of-bound entry).
    fn encode(&self, x: &[f64]) -> Result<Vec<u64>, FixedError> {
        self.fixed().encode(x)
    }

    /// Decode the combined sum.
    fn decode(&self, sum: &[u64]) -> Result<Vec<f64>, FixedError> {
        self.fixed().decode_sum(sum)
    }

    /// Site `me` (signing protocol statements with `identity`, its roster key)
    /// contributing `input` (already encoded).
    fn contribute(
        &self,
        me: PartyId,
        identity: &SigningKey,
        input: Vec<u64>,
    ) -> Result<Self::Site, <Self::Site as SiteProtocol>::Error>;

    /// The coordinator's state machine.
    fn combine(&self) -> Self::Coordinator;
}
