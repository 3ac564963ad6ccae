//! Federated statistics as *local sufficient statistics → secure sum → central step*.
//!
//! * Cox PH, site-stratified ([`CoxMode::Stratified`]): each site returns log-likelihood, score
//!   and information at β from the `seh-stats` kernel; their sum drives the `seh-stats` Newton
//!   driver. Equals R `coxph(... + strata(site))`.
//! * Cox PH, pooled-exact ([`CoxMode::Pooled`]): each site returns, per time of a common
//!   event-time grid, the kernel's risk-set sums (`S0`, `S1`, `S2`, the deaths' sums Efron needs)
//!   brought to a public per-time shift; the sums are folded by the same `fold_time` a local fit
//!   uses. The grid comes from a secure event histogram on a public fine grid; grid times whose
//!   pooled risk set is below `k` are merged.
//! * Kaplan–Meier and log-rank from the secure event / censoring / entry histogram.
//! * GLM by IRLS on secure sums of `XᵀWX`, `XᵀWz` (`seh-stats` `GlmData::pieces`).
//!
//! Each analysis is a sequence of rounds. The coordinator's [`planner::Planner`] says what to
//! compute next (a [`Query`]); every site answers with [`site::answer`] (a vector of `u64` words
//! that SecAgg+ sums), and the planner reads the sum. Real values are encoded with
//! [`crate::wide`] (exact fixed point, resolution 2⁻⁴⁰), counts as single words.

pub mod cox;
pub mod planner;
pub mod site;

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::wide;

/// Site-stratified or pooled-exact Cox.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoxMode {
    /// One log-likelihood over the pooled rows (R's `coxph` on pooled data).
    Pooled,
    /// A separate baseline hazard per site (R's `coxph(... + strata(site))`).
    Stratified,
}

/// A federated Cox model.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoxSpec {
    /// R formula, `Surv(...) ~ terms [+ strata(...)]`.
    pub formula: String,
    /// `efron` or `breslow`.
    pub ties: seh_stats::cox::Ties,
    /// Pooled or site-stratified.
    pub mode: CoxMode,
    /// Smallest released risk set (pooled mode): grid times with fewer rows at risk are merged.
    pub min_risk_set: u64,
    /// Public time resolution of the event histogram; `None`: a power of ten chosen from the
    /// securely found time range (at most [`MAX_FINE_BINS`] bins).
    #[serde(default)]
    pub time_resolution: Option<f64>,
}

/// Federated Kaplan–Meier curves (and the log-rank test when there are groups).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmSpec {
    /// `Surv(time, status) ~ group` or `~ 1`.
    pub formula: String,
    /// `log`, `log-log`, `plain` or `none`.
    pub conf_type: String,
    /// Public time resolution (see [`CoxSpec::time_resolution`]).
    #[serde(default)]
    pub time_resolution: Option<f64>,
}

/// A federated GLM.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlmSpec {
    /// `y ~ terms`.
    pub formula: String,
    /// `binomial`, `gaussian` or `poisson`.
    pub family: String,
}

/// Most fine-grid bins of an automatically chosen time resolution.
pub const MAX_FINE_BINS: u64 = 20_000;
/// Most fine-grid bins of any histogram query.
pub const MAX_QUERY_BINS: u64 = 2_000_000;
/// Number of power-of-two buckets of the time-range histogram (2⁻⁶⁴ … 2⁶³).
pub const RANGE_BUCKETS: usize = 128;

/// Common centring of the covariates (securely summed means and spreads).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Centring {
    /// Per column centre.
    pub centre: Vec<f64>,
    /// Per column multiplier (> 0).
    pub scale: Vec<f64>,
}

/// What the coordinator asks every site to compute in one round.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(tag = "query", rename_all = "snake_case", deny_unknown_fields)]
pub enum Query {
    /// Rows, events, per design column the count of values outside {−1, 0, 1}, Σx and Σx², and
    /// a power-of-two histogram of the times (for the public grid's range).
    Moments,
    /// Per group level and fine bin `b` (time `b · resolution`): events, censorings, entries.
    Histogram {
        /// Bin width.
        resolution: f64,
        /// Bins `0..=bins`.
        bins: u64,
        /// Global group labels (Cox strata or KM groups), in report order.
        levels: Vec<String>,
    },
    /// Site-stratified Cox: log-likelihood, score and packed information at `beta` (internal scale).
    CoxStratified {
        /// Common centring.
        centring: Centring,
        /// Coefficients on the internal scale.
        beta: Vec<f64>,
    },
    /// Pooled-exact Cox: per-time risk-set sums at `beta`.
    CoxPooled {
        /// Common centring.
        centring: Centring,
        /// Coefficients on the internal scale.
        beta: Vec<f64>,
        /// Fine time resolution.
        resolution: f64,
        /// Per level, the released grid (ascending bin indices; merged groups' upper edges).
        edges: Vec<Vec<u64>>,
        /// Global strata labels.
        levels: Vec<String>,
        /// Per record (levels in order, times descending), the public shift `c` the exponential
        /// sums are scaled by (`e^(η − c)`).
        shifts: Vec<f64>,
    },
    /// GLM IRLS pieces at a point.
    Glm {
        /// Where to evaluate.
        point: seh_stats::glm::IrlsPoint,
        /// Design columns.
        cols: Vec<usize>,
    },
}

impl Query {
    /// A short name for logs and audit records.
    pub fn label(&self) -> &'static str {
        match self {
            Query::Moments => "moments",
            Query::Histogram { .. } => "histogram",
            Query::CoxStratified { .. } => "cox-stratified",
            Query::CoxPooled { .. } => "cox-pooled",
            Query::Glm { .. } => "glm",
        }
    }
}

/// Number of words of every site's answer to `query` (the secure sum's vector length).
pub fn vector_len(model: &site::ModelInfo, query: &Query) -> usize {
    let p = model.terms.len();
    let pp = p * (p + 1) / 2;
    let r = wide::WORDS;
    match query {
        Query::Moments => 2 + p * (1 + 2 * r) + RANGE_BUCKETS,
        Query::Histogram { bins, levels, .. } => levels.len().max(1) * 3 * (*bins as usize + 1),
        Query::CoxStratified { .. } => 2 + r * (1 + p + pp),
        Query::CoxPooled { edges, .. } => {
            // Efron needs D2; the planner asks with the study's ties, so both layouts are possible:
            // the length is fixed by the number of records and the ties method of the study.
            let records: usize = edges.iter().map(Vec::len).sum();
            records * (2 + r * (4 + 3 * p + pp))
        }
        Query::Glm { cols, .. } => r * (cols.len() * cols.len() + cols.len() + 7),
    }
}

/// [`vector_len`] with the ties method of a pooled Cox study (Efron adds `D2` per record).
pub fn vector_len_for(analysis: &crate::spec::Analysis, model: &site::ModelInfo, query: &Query) -> usize {
    let base = vector_len(model, query);
    match (analysis, query) {
        (crate::spec::Analysis::Cox(c), Query::CoxPooled { edges, .. }) if c.ties == seh_stats::cox::Ties::Efron => {
            let p = model.terms.len();
            let records: usize = edges.iter().map(Vec::len).sum();
            base + records * wide::WORDS * (p * (p + 1) / 2)
        }
        _ => base,
    }
}

/// Builds a contribution vector.
#[derive(Debug, Default)]
pub struct Enc {
    /// Words so far.
    pub words: Vec<u64>,
}

impl Enc {
    /// A count.
    pub fn count(&mut self, c: u64) {
        self.words.push(c);
    }

    /// A real value; `what` names it in the error.
    pub fn real(&mut self, v: f64, what: &'static str) -> Result<(), ProtocolError> {
        let w = wide::encode(v).ok_or_else(|| ProtocolError::Encoding {
            column: what.to_owned(),
            reason: "value is not finite or outside the encodable range (|v| < 2^86)",
        })?;
        self.words.extend_from_slice(&w);
        Ok(())
    }

    /// Several real values.
    pub fn reals(&mut self, vs: &[f64], what: &'static str) -> Result<(), ProtocolError> {
        vs.iter().try_for_each(|&v| self.real(v, what))
    }
}

/// Reads a summed contribution vector.
#[derive(Debug)]
pub struct Dec<'a> {
    words: &'a [u64],
}

fn short() -> ProtocolError {
    ProtocolError::invalid("aggregate", "sum", "shorter than the analysis layout")
}

impl<'a> Dec<'a> {
    /// Reader over `words`.
    pub fn new(words: &'a [u64]) -> Self {
        Dec { words }
    }

    /// Next count.
    pub fn count(&mut self) -> Result<u64, ProtocolError> {
        let (&c, rest) = self.words.split_first().ok_or_else(short)?;
        self.words = rest;
        Ok(c)
    }

    /// Next real.
    pub fn real(&mut self) -> Result<f64, ProtocolError> {
        if self.words.len() < wide::WORDS {
            return Err(short());
        }
        let (w, rest) = self.words.split_at(wide::WORDS);
        self.words = rest;
        wide::decode(w).ok_or_else(short)
    }

    /// Next `n` reals.
    pub fn reals(&mut self, n: usize) -> Result<Vec<f64>, ProtocolError> {
        (0..n).map(|_| self.real()).collect()
    }

    /// Errors unless every word was read.
    pub fn finish(self) -> Result<(), ProtocolError> {
        if self.words.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::invalid("aggregate", "sum", "longer than the analysis layout"))
        }
    }
}

/// Word-wise sum mod 2⁶⁴ (what SecAgg+ computes), for in-memory simulations and tests.
pub fn wrapping_sum(vectors: &[Vec<u64>]) -> Vec<u64> {
    let len = vectors.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![0u64; len];
    for v in vectors {
        for (a, b) in out.iter_mut().zip(v) {
            *a = a.wrapping_add(*b);
        }
    }
    out
}

/// Union of the sites' group labels in R's level order: labels `name=value` with numeric values
/// sort numerically, others as text.
pub fn merge_levels(per_site: &[Vec<String>]) -> Vec<String> {
    let mut all: Vec<String> = per_site.iter().flatten().cloned().collect();
    all.sort_by(|a, b| level_key(a).partial_cmp(&level_key(b)).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(b)));
    all.dedup();
    all
}

fn level_key(label: &str) -> Vec<(f64, String)> {
    label
        .split(", ")
        .map(|part| {
            let v = part.rsplit_once('=').map_or(part, |(_, v)| v);
            match v.trim().parse::<f64>() {
                Ok(x) => (x, String::new()),
                Err(_) => (f64::INFINITY, part.to_owned()),
            }
        })
        .collect()
}

pub(crate) fn stat_err(step: &'static str, e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Analysis { step, reason: e.to_string() }
}

#[cfg(test)]
mod tests;
