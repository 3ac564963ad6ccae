//! `seh-crypto`: the multi-party computation and threshold cryptography core of
//! Secur-e-Health. Every protocol here is sans-IO: a state machine fed with
//! messages, emitting messages, with no sockets, clocks or async inside.
//!
//! Nothing in this crate has had an external security review; see
//! `docs/CRYPTO.md` for what is and is not claimed.

#![forbid(unsafe_code)]

pub mod dkg;
pub mod elgamal;
pub mod error;
pub mod fixed;
pub mod frost;
pub mod he;
pub mod oprf;
pub mod pseudonym;
pub mod psi;
pub mod secagg;
pub mod secure_sum;
pub mod shamir;
pub mod wire;
