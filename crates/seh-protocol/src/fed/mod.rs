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
//!   `tt()` terms: rows split at the released grid times with `f(x, t)` (pooled) or R's expansion
//!   at the site's own event times (stratified). `cluster()`: a last round ([`Query::CoxCluster`])
//!   sums each site's `Σ_c U_c U_cᵀ` of score residuals; clusters must not span sites.
//! * Kaplan–Meier and log-rank from the secure event / censoring / entry histogram.
//! * GLM by IRLS on secure sums of `XᵀWX`, `XᵀWz` (`seh-stats` `GlmData::pieces`).
//!
//! Each analysis is a sequence of rounds. The coordinator's [`planner::Planner`] says what to
//! compute next (a [`Query`]); every site answers with [`site::answer`] (a vector of `u64` words
//! that SecAgg+ sums), and the planner reads the sum. Real values are encoded with
//! [`crate::wide`] (exact fixed point, resolution 2⁻⁴⁰), counts as single words; when the sum is
//! exact modulo 2⁶⁴ ([`planner::WordSum::Modular64`]) histogram counts are packed and the pooled
//! Cox rounds send one word per real with an exact per-site bound (wide retry on overflow).
//! Every site checks every query first ([`check`]).

pub mod check;
pub mod cox;
pub mod cox_terms;
pub mod planner;
pub mod site;
pub mod strata;

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
    /// The transform `f(x, t)` of `tt()` terms (`seh_stats::ttexpr` syntax, as `seh fit --tt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tt: Option<String>,
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

/// Where the sites evaluate their cluster score residuals.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterPoint {
    /// Coefficients on the internal scale.
    pub beta: Vec<f64>,
    /// Pooled mode: the pooled per-time sums at `beta` in grid order (each at its `shift`;
    /// second-order sums omitted). Empty in stratified mode.
    pub records: Vec<seh_stats::cox::kernel::TimeRecord>,
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
        /// Counts per word (1, 2 or 3; see [`pack_counts`]): the planner packs only when the pooled
        /// row count fits a field and the secure sum is exact modulo 2⁶⁴.
        #[serde(default = "one")]
        pack: u32,
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
        /// `Some(parties)`: every real in the one-word form of [`wide::encode_narrow`] for a sum
        /// over at most `parties` sites, after a leading word counting the sites that had a value
        /// outside the one-word bound (the planner then asks again in the wide form).
        /// `None`: the four-word form.
        #[serde(default)]
        narrow: Option<u32>,
    },
    /// Robust variance of `cluster(id)` (after the fit): per point, this site's `Σ_c U_c` and
    /// packed `Σ_c U_c U_cᵀ` over its clusters (clusters must not span sites).
    CoxCluster {
        /// Common centring.
        centring: Centring,
        /// Pooled mode: the released grid `(resolution, edges, levels)` of the Newton rounds (so a
        /// site that restarted can prepare its rows again). `None` in stratified mode.
        grid: Option<(f64, Vec<Vec<u64>>, Vec<String>)>,
        /// The estimate and the initial coefficients, with the pooled per-time sums at each
        /// (pooled mode; empty in stratified mode, where each site's strata are its own).
        points: Vec<ClusterPoint>,
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
            Query::CoxCluster { .. } => "cox-cluster",
            Query::Glm { .. } => "glm",
        }
    }
}

fn one() -> u32 {
    1
}

/// Largest number of counts packed into one word.
pub const MAX_PACK: u32 = 3;

/// Bits of one packed count field when `pack` counts share a word (64, 32, 21).
pub fn pack_bits(pack: u32) -> u32 {
    64 / pack.clamp(1, MAX_PACK)
}

/// Packs `counts` `pack` to a word, the `j`-th in bits `j·bits ..`; errors when a count does not
/// fit its field (the sum of the fields over the sites must fit too; the planner chooses `pack`
/// from the pooled row count, which bounds every summed count).
pub fn pack_counts(counts: &[u64], pack: u32) -> Result<Vec<u64>, ProtocolError> {
    if !(1..=MAX_PACK).contains(&pack) {
        return Err(ProtocolError::invalid("query", "pack", "must be 1, 2 or 3"));
    }
    if pack == 1 {
        return Ok(counts.to_vec());
    }
    let bits = pack_bits(pack);
    let limit = 1u64 << bits;
    counts
        .chunks(pack as usize)
        .map(|c| {
            c.iter().enumerate().try_fold(0u64, |w, (j, &v)| {
                if v >= limit {
                    return Err(ProtocolError::invalid("query", "pack", "a count does not fit the packed field"));
                }
                Ok(w | v << (j as u32 * bits))
            })
        })
        .collect()
}

/// Unpacks `len` counts from words packed by [`pack_counts`] (and summed).
pub fn unpack_counts(words: &[u64], pack: u32, len: usize) -> Result<Vec<u64>, ProtocolError> {
    let pack = pack.clamp(1, MAX_PACK);
    if words.len() != len.div_ceil(pack as usize) {
        return Err(ProtocolError::invalid("aggregate", "sum", "histogram length differs from the layout"));
    }
    if pack == 1 {
        return Ok(words.to_vec());
    }
    let bits = pack_bits(pack);
    let mask = (1u64 << bits) - 1;
    Ok((0..len).map(|i| (words[i / pack as usize] >> ((i % pack as usize) as u32 * bits)) & mask).collect())
}

/// Words per real of a pooled Cox answer.
fn pooled_real_words(narrow: Option<u32>) -> usize {
    if narrow.is_some() {
        1
    } else {
        wide::WORDS
    }
}

/// Words of one record of a pooled Cox answer: two counts and the reals of
/// [`cox::reals_per_record`], one or four words each.
pub fn pooled_words_per_record(p: usize, efron: bool, narrow: bool) -> usize {
    let ties = if efron { seh_stats::cox::Ties::Efron } else { seh_stats::cox::Ties::Breslow };
    2 + if narrow { 1 } else { wide::WORDS } * cox::reals_per_record(p, ties)
}

/// Number of words of every site's answer to `query` (the secure sum's vector length).
pub fn vector_len(model: &site::ModelInfo, query: &Query) -> usize {
    let p = model.terms.len();
    let pp = p * (p + 1) / 2;
    let r = wide::WORDS;
    match query {
        Query::Moments => 2 + p * (1 + 2 * r) + RANGE_BUCKETS,
        Query::Histogram { bins, levels, pack, .. } => {
            (levels.len().max(1) * 3 * (*bins as usize + 1)).div_ceil((*pack).clamp(1, MAX_PACK) as usize)
        }
        Query::CoxStratified { .. } => 2 + r * (1 + p + pp),
        Query::CoxPooled { edges, narrow, .. } => {
            // Efron needs D2; the planner asks with the study's ties, so both layouts are possible:
            // the length is fixed by the number of records and the ties method of the study.
            let records: usize = edges.iter().map(Vec::len).sum();
            usize::from(narrow.is_some()) + records * (2 + pooled_real_words(*narrow) * (4 + 3 * p + pp))
        }
        Query::CoxCluster { points, .. } => points.len() * r * (p + pp),
        Query::Glm { cols, .. } => r * (cols.len() * cols.len() + cols.len() + 7),
    }
}

/// [`vector_len`] with the ties method of a pooled Cox study (Efron adds `D2` per record).
pub fn vector_len_for(analysis: &crate::spec::Analysis, model: &site::ModelInfo, query: &Query) -> usize {
    let base = vector_len(model, query);
    match (analysis, query) {
        (crate::spec::Analysis::Cox(c), Query::CoxPooled { edges, narrow, .. })
            if c.ties == seh_stats::cox::Ties::Efron =>
        {
            let p = model.terms.len();
            let records: usize = edges.iter().map(Vec::len).sum();
            base + records * pooled_real_words(*narrow) * (p * (p + 1) / 2)
        }
        _ => base,
    }
}

/// Builds a contribution vector.
#[derive(Debug, Default)]
pub struct Enc {
    /// Words so far.
    pub words: Vec<u64>,
    /// `Some(parties)`: reals in the one-word form for at most `parties` summands.
    narrow: Option<u32>,
    /// A real was outside the one-word bound (and was sent as 0).
    overflow: bool,
}

impl Enc {
    /// An encoder of reals in the one-word form of [`wide::encode_narrow`] (`Some(parties)`) or the
    /// four-word form (`None`).
    pub fn with_form(narrow: Option<u32>) -> Self {
        Enc { words: Vec::new(), narrow, overflow: false }
    }

    /// Whether a real did not fit the one-word bound (the answer must then be discarded).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// A count.
    pub fn count(&mut self, c: u64) {
        self.words.push(c);
    }

    /// A real value; `what` names it in the error. In the one-word form a finite value outside
    /// the bound marks the encoder as overflowed and is sent as 0.
    pub fn real(&mut self, v: f64, what: &'static str) -> Result<(), ProtocolError> {
        let not_finite = || ProtocolError::Encoding {
            column: what.to_owned(),
            reason: "value is not finite or outside the encodable range (|v| < 2^86)",
        };
        if let Some(parties) = self.narrow {
            match wide::encode_narrow(v, parties) {
                Ok(w) => self.words.push(w),
                Err(wide::NarrowError::OutOfRange) => {
                    self.overflow = true;
                    self.words.push(0);
                }
                Err(wide::NarrowError::NotFinite) => return Err(not_finite()),
            }
            return Ok(());
        }
        let w = wide::encode(v).ok_or_else(not_finite)?;
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
    narrow: bool,
}

fn short() -> ProtocolError {
    ProtocolError::invalid("aggregate", "sum", "shorter than the analysis layout")
}

impl<'a> Dec<'a> {
    /// Reader over `words`.
    pub fn new(words: &'a [u64]) -> Self {
        Dec { words, narrow: false }
    }

    /// Reader over `words` whose reals are in the one-word form (`narrow`) or the wide form.
    pub fn with_form(words: &'a [u64], narrow: bool) -> Self {
        Dec { words, narrow }
    }

    /// Next count.
    pub fn count(&mut self) -> Result<u64, ProtocolError> {
        let (&c, rest) = self.words.split_first().ok_or_else(short)?;
        self.words = rest;
        Ok(c)
    }

    /// Next real.
    pub fn real(&mut self) -> Result<f64, ProtocolError> {
        if self.narrow {
            return self.count().map(wide::decode_narrow);
        }
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
#[cfg(test)]
mod tests_wire;
