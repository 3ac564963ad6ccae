//! `seh-stats`: the statistics engine of Secur-e-Health.
//!
//! Pure numerics, no network, no cryptography. The federated analyses call the
//! same "evaluate at β" kernels at each site and the same drivers at the
//! coordinator, so pooled and federated fits share one implementation.

#![forbid(unsafe_code)]

pub mod concordance;
pub mod cox;
pub mod formula;
pub mod frame;
pub mod glm;
pub mod km;
pub mod linalg;
pub mod logrank;
pub mod model;
pub mod special;
pub mod ttexpr;

pub use frame::{DataFrame, FrameError, SourceLines};
