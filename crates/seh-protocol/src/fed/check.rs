//! A site's checks of the coordinator's queries, before any computation.
//!
//! The coordinator is not trusted to be well-formed: a query with a non-finite or wrongly sized
//! β or centring, an unordered or oversized grid, a grid or centring that changes between the
//! rounds of one study, or a layout so large that the answer would exhaust memory is refused with
//! a [`ProtocolError::Invalid`] naming the field, so a malicious coordinator can neither crash a
//! site nor make it compute something other than the agreed analysis.

use seh_stats::glm::IrlsPoint;

use super::{pooled_words_per_record, Centring, Query, MAX_PACK, MAX_QUERY_BINS};
use crate::error::ProtocolError;

/// Most group levels (strata, KM groups) a query may name.
pub const MAX_LEVELS: usize = 10_000;
/// Most words of one answer (128 MiB): larger layouts are refused before anything is allocated.
pub const MAX_ANSWER_WORDS: usize = 1 << 24;
/// Most summing sites the one-word form may be asked for.
pub const MAX_NARROW_PARTIES: u32 = 1 << 16;
/// Largest magnitude of a coefficient on the internal (standardised) scale: beyond it every
/// `e^η` over- or underflows, so such a β is not a Newton iterate.
pub const MAX_ABS_BETA: f64 = 1e6;

fn bad(field: &'static str, reason: &'static str) -> ProtocolError {
    ProtocolError::invalid("query", field, reason)
}

fn check_beta(beta: &[f64], p: usize) -> Result<(), ProtocolError> {
    if beta.len() != p {
        return Err(bad("beta", "length differs from the model's columns"));
    }
    if !beta.iter().all(|b| b.is_finite() && b.abs() <= MAX_ABS_BETA) {
        return Err(bad("beta", "a coefficient is not finite or absurdly large"));
    }
    Ok(())
}

fn check_centring(c: &Centring, p: usize) -> Result<(), ProtocolError> {
    if c.centre.len() != p || c.scale.len() != p {
        return Err(bad("centring", "length differs from the model's columns"));
    }
    if !c.centre.iter().all(|v| v.is_finite()) || !c.scale.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(bad("centring", "a centre is not finite or a scale is not finite and positive"));
    }
    Ok(())
}

fn check_levels(levels: &[String]) -> Result<(), ProtocolError> {
    if levels.len() > MAX_LEVELS {
        return Err(bad("levels", "too many group levels"));
    }
    let mut sorted: Vec<&String> = levels.iter().collect();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad("levels", "a group level is listed twice"));
    }
    Ok(())
}

fn check_resolution(resolution: f64) -> Result<(), ProtocolError> {
    if !(resolution.is_finite() && resolution > 0.0) {
        return Err(bad("resolution", "must be finite and > 0"));
    }
    Ok(())
}

/// Checks `query` against a model of `p` design columns (and `efron` ties for the pooled layout).
/// Errors name the offending field; nothing is computed or allocated by the caller before this.
pub fn check_query(query: &Query, p: usize, efron: bool) -> Result<(), ProtocolError> {
    match query {
        Query::Moments => Ok(()),
        Query::Histogram { resolution, bins, levels, pack } => {
            check_resolution(*resolution)?;
            check_levels(levels)?;
            if *bins > MAX_QUERY_BINS {
                return Err(bad("bins", "too many fine bins"));
            }
            if !(1..=MAX_PACK).contains(pack) {
                return Err(bad("pack", "must be 1, 2 or 3"));
            }
            let words = (levels.len().max(1) as u64).saturating_mul(3 * (bins + 1)) / u64::from(*pack);
            if words > MAX_ANSWER_WORDS as u64 {
                return Err(bad("bins", "the histogram layout is too large"));
            }
            Ok(())
        }
        Query::CoxStratified { centring, beta } => {
            check_centring(centring, p)?;
            check_beta(beta, p)
        }
        Query::CoxPooled { centring, beta, resolution, edges, levels, shifts, narrow } => {
            check_centring(centring, p)?;
            check_beta(beta, p)?;
            check_resolution(*resolution)?;
            check_levels(levels)?;
            if edges.len() != levels.len().max(1) {
                return Err(bad("edges", "one grid per group level expected"));
            }
            let mut records = 0usize;
            for e in edges {
                if e.windows(2).any(|w| w[0] >= w[1]) || e.last().is_some_and(|&b| b > MAX_QUERY_BINS) {
                    return Err(bad("edges", "a grid is not strictly ascending within the fine bins"));
                }
                records = records.saturating_add(e.len());
            }
            if records == 0 {
                return Err(bad("edges", "the grid has no time"));
            }
            if shifts.len() != records || !shifts.iter().all(|c| c.is_finite()) {
                return Err(bad("shifts", "one finite shift per grid time expected"));
            }
            if let Some(parties) = narrow {
                if *parties == 0 || *parties > MAX_NARROW_PARTIES {
                    return Err(bad("narrow", "the number of summing sites is out of range"));
                }
            }
            let per_record = pooled_words_per_record(p, efron, narrow.is_some());
            if records.saturating_mul(per_record) > MAX_ANSWER_WORDS {
                return Err(bad("edges", "the pooled layout is too large"));
            }
            Ok(())
        }
        Query::CoxCluster { centring, grid, points } => {
            check_centring(centring, p)?;
            if let Some((resolution, edges, levels)) = grid {
                check_resolution(*resolution)?;
                check_levels(levels)?;
                let records: usize = edges.iter().map(Vec::len).sum();
                if edges.len() != levels.len().max(1) || records > MAX_QUERY_BINS as usize {
                    return Err(bad("grid", "one grid per group level expected"));
                }
                if points.iter().any(|pt| pt.records.len() != records) {
                    return Err(bad("records", "one pooled record per grid time expected"));
                }
            }
            if points.is_empty() || points.len() > 2 {
                return Err(bad("points", "one or two evaluation points expected"));
            }
            for pt in points {
                check_beta(&pt.beta, p)?;
                if pt.records.len() > MAX_QUERY_BINS as usize {
                    return Err(bad("records", "too many per-time records"));
                }
                let finite = |r: &seh_stats::cox::kernel::TimeRecord| {
                    r.s1.len() == p
                        && r.d1.len() == p
                        && [r.time, r.shift, r.s0, r.d0, r.death_weight]
                            .iter()
                            .chain(&r.s1)
                            .chain(&r.d1)
                            .all(|v| v.is_finite())
                };
                if !pt.records.iter().all(finite) {
                    return Err(bad("records", "a per-time record is not finite or has the wrong length"));
                }
            }
            Ok(())
        }
        Query::Glm { point, cols } => {
            if cols.is_empty() || cols.iter().any(|&c| c >= p) {
                return Err(bad("cols", "a column index is out of range"));
            }
            let mut sorted = cols.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(bad("cols", "a column is listed twice"));
            }
            if let IrlsPoint::Beta(b) = point {
                if b.len() != cols.len() || !b.iter().all(|v| v.is_finite()) {
                    return Err(bad("point", "coefficients are not finite or do not match the columns"));
                }
            }
            Ok(())
        }
    }
}

/// What a site agreed to in the earlier rounds of one study: the fine grid of the histogram it
/// answered and the centring and released grid of its first Cox round. Later rounds must match.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Agreed {
    /// `(resolution, bins, levels)` of the histogram this site answered.
    pub histogram: Option<(f64, u64, Vec<String>)>,
    /// The centring of the first Cox round.
    pub centring: Option<Centring>,
    /// `(resolution, edges, levels)` of the first pooled round.
    pub grid: Option<(f64, Vec<Vec<u64>>, Vec<String>)>,
}

impl Agreed {
    /// Checks `query` against what earlier rounds fixed and records what it fixes. A site that
    /// restarted (and so remembers nothing) accepts the first query it sees.
    pub fn admit(&mut self, query: &Query) -> Result<(), ProtocolError> {
        match query {
            Query::Histogram { resolution, bins, levels, .. } => {
                let h = (*resolution, *bins, levels.clone());
                if self.histogram.as_ref().is_some_and(|old| *old != h) {
                    return Err(bad("histogram", "the fine grid differs from the one this site already answered"));
                }
                self.histogram = Some(h);
            }
            Query::CoxStratified { centring, .. } => self.centring_is(centring)?,
            Query::CoxCluster { centring, grid, .. } => {
                self.centring_is(centring)?;
                if let (Some(old), Some((r, e, l))) = (&self.grid, grid) {
                    if old.0 != *r || old.1 != *e || old.2 != *l {
                        return Err(bad("grid", "the cluster step's grid differs from the Newton rounds'"));
                    }
                }
            }
            Query::CoxPooled { centring, resolution, edges, levels, .. } => {
                self.centring_is(centring)?;
                if let Some((res, bins, lv)) = &self.histogram {
                    if res != resolution || lv != levels || edges.iter().flatten().any(|b| b > bins) {
                        return Err(bad("edges", "the grid is not on the fine grid of the event histogram"));
                    }
                }
                let g = (*resolution, edges.clone(), levels.clone());
                if self.grid.as_ref().is_some_and(|old| *old != g) {
                    return Err(bad("edges", "the released grid changed between rounds"));
                }
                self.grid = Some(g);
            }
            Query::Moments | Query::Glm { .. } => {}
        }
        Ok(())
    }

    fn centring_is(&mut self, c: &Centring) -> Result<(), ProtocolError> {
        if self.centring.as_ref().is_some_and(|old| old != c) {
            return Err(bad("centring", "the centring changed between rounds"));
        }
        self.centring = Some(c.clone());
        Ok(())
    }
}
