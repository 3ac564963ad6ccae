//! `seh-stats`: the statistics engine of Secur-e-Health.
//!
//! Pure numerics, no network, no cryptography. The federated analyses call the
//! same "evaluate at β" kernels at each site and the same drivers at the
//! coordinator, so pooled and federated fits share one implementation.

#![forbid(unsafe_code)]

pub mod frame;

pub use frame::{DataFrame, FrameError};
