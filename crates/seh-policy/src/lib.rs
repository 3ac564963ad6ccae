//! Secur-e-Health site governance: consent, site policy, disclosure control, differential
//! privacy and the per-researcher budget ledger.
//!
//! The pipeline at a site, in order:
//!
//! 1. [`policy::decide`] the study request against the site's [`SitePolicy`] (researcher,
//!    analysis kind, aggregation back-end, purpose, time grid, DP parameters), and check the
//!    remaining budget with [`dp::BudgetLedger::check`];
//! 2. remove rows without consent with [`consent::ConsentRegistry::filter_rows`] — before any
//!    computation; the removed count is a [`SiteOnly`] audit fact;
//! 3. [`policy::check_rows`] on the remaining rows (subset size, model size);
//! 4. compute, then release every outgoing number through this crate: [`release`] (suppression,
//!    risk-set merging, model-size rule) or [`dp`] (noise, after charging the ledger). Only these
//!    functions make a [`Releasable<T>`]; the node must send nothing else.

pub mod admission;
pub mod consent;
pub mod date;
pub mod decision;
pub mod dp;
pub mod error;
pub mod policy;
pub mod release;
mod site_only;

pub use admission::{admit, Admission, DisclosureRequest};
pub use date::Date;
pub use decision::{Decision, Refusal, Rule};
pub use policy::SitePolicy;
pub use release::Releasable;
pub use site_only::SiteOnly;
