//! `seh-data`: a site's data layer.
//!
//! * [`Store`]: the embedded SQLite store (one file per site): FHIR R4 NDJSON
//!   import ([`Store::import_fhir_dir`]), numeric CSV tables
//!   ([`Store::import_csv`], [`Store::read_table`]), consent records and the
//!   opt-out list ([`consent`]). Identifiers are stored only as keyed
//!   pseudonyms (HMAC-SHA256 under the site secret).
//! * [`source::ClinicalSource`]: the connector seam the cohort builder reads
//!   through; implemented by [`Store`] and by [`pg::OmopSource`] (PostgreSQL, OMOP CDM).
//! * [`cohort`]: TOML cohort definitions → counting-process analysis tables
//!   (`seh_stats::DataFrame`), split the way R's `survival::tmerge` does.
//! * [`synth`]: deterministic synthetic FHIR exports for demos and tests.

#![forbid(unsafe_code)]

pub mod cohort;
pub mod consent;
pub mod csv;
pub mod error;
pub mod pg;
pub mod secret;
pub mod source;
pub mod store;
pub mod synth;

pub use error::DataError;
pub use store::Store;
