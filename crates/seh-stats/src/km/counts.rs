//! The additive "counts table" step of Kaplan–Meier and the log-rank test.
//!
//! Per stratum and per time on a grid: the (weighted) number at risk, number of
//! events and number censored. When every site computes its table on the same
//! shared grid, the element-wise sum of the site tables equals the table of the
//! pooled rows, so the curve and the test computed from the sum are exactly the
//! pooled ones. Without a grid, a table uses the stratum's own distinct times
//! (what R's `survfit` reports).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::input::{check_codes, SurvCols, SurvInputError};

/// Counts of one stratum (group) at each time of its grid.
///
/// Invariant (checked by [`KmCounts::validate`]): all vectors have the length of
/// `time`, `time` is strictly increasing and finite, counts are finite and `>= 0`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StratumCounts {
    /// The stratum / group code (e.g. the value of `sex`).
    pub stratum: u32,
    /// Number of rows (unweighted) in the stratum (`survfit`'s `n`).
    pub n: u64,
    /// Grid times, strictly increasing.
    pub time: Vec<f64>,
    /// (Weighted) number at risk at each time: rows with `start < t <= stop`.
    pub n_risk: Vec<f64>,
    /// (Weighted) number of events at each time.
    pub n_event: Vec<f64>,
    /// (Weighted) number censored at each time.
    pub n_censor: Vec<f64>,
}

/// A counts table: one [`StratumCounts`] per stratum, ordered by stratum code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KmCounts {
    /// `true` when the rows were `(start, stop]` (counting-process) data.
    pub counting: bool,
    /// `true` when case weights other than 1 were used.
    pub weighted: bool,
    /// Per-stratum tables, ascending by `stratum`.
    pub strata: Vec<StratumCounts>,
}

/// Compute the counts table of one data set (a site, or the pooled rows).
///
/// Inputs: `stop` (event/censoring time, `>= 0`), optional `start` (entry time,
/// `start < stop`, for counting-process data), `status` (0/1), optional
/// `strata` codes (one curve per code; `None` = a single stratum with code 0),
/// optional case `weights` (`> 0`), optional shared `grid` (strictly increasing;
/// must contain every `stop` value). With a grid every stratum's table has one
/// entry per grid time, so tables from different sites can be summed with
/// [`KmCounts::add`]. Without one, each stratum uses its own distinct stop times.
///
/// Errors: empty input, length mismatch, non-finite / negative time, status not
/// 0/1, `start >= stop`, non-positive weight, or a grid that misses a time.
/// A table without events is allowed here (a site may have none); the curve
/// step rejects a pooled table without events.
pub fn km_counts(
    stop: &[f64],
    start: Option<&[f64]>,
    status: &[f64],
    strata: Option<&[u32]>,
    weights: Option<&[f64]>,
    grid: Option<&[f64]>,
) -> Result<KmCounts, SurvInputError> {
    let cols = SurvCols::new(stop, start, status, weights, true)?;
    check_codes("strata", cols.len(), strata)?;
    if let Some(g) = grid {
        check_grid(g)?;
    }
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..cols.len() {
        let code = strata.map_or(0, |s| s[i]);
        groups.entry(code).or_default().push(i);
    }
    let mut out = Vec::with_capacity(groups.len());
    for (code, rows) in groups {
        out.push(stratum_counts(&cols, code, &rows, grid)?);
    }
    let weighted = weights.is_some_and(|w| w.iter().any(|&x| x != 1.0));
    Ok(KmCounts { counting: start.is_some(), weighted, strata: out })
}

/// Build a shared grid: the sorted distinct values of `times` (e.g. the union
/// of all sites' stop times, or a coarser public grid chosen by policy).
/// Non-finite values are ignored.
pub fn time_grid(times: &[f64]) -> Vec<f64> {
    let mut g: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
    g.sort_by(f64::total_cmp);
    g.dedup();
    g
}

fn check_grid(grid: &[f64]) -> Result<(), SurvInputError> {
    if grid.iter().any(|t| !t.is_finite()) {
        return Err(SurvInputError::Grid { problem: "contains a non-finite value" });
    }
    if grid.windows(2).any(|w| w[0] >= w[1]) {
        return Err(SurvInputError::Grid { problem: "is not strictly increasing" });
    }
    Ok(())
}

fn stratum_counts(
    cols: &SurvCols<'_>,
    code: u32,
    rows: &[usize],
    grid: Option<&[f64]>,
) -> Result<StratumCounts, SurvInputError> {
    let time: Vec<f64> = match grid {
        Some(g) => g.to_vec(),
        None => time_grid(&rows.iter().map(|&i| cols.stop[i]).collect::<Vec<_>>()),
    };
    let m = time.len();
    let mut n_event = vec![0.0; m];
    let mut n_censor = vec![0.0; m];
    // Weight of rows whose start is at or after time[k], bucketed by the last such k.
    let mut leave = vec![0.0; m];
    for &i in rows {
        let idx = time
            .binary_search_by(|t| t.total_cmp(&cols.stop[i]))
            .map_err(|_| SurvInputError::Grid { problem: "does not contain every observed stop time" })?;
        let w = cols.weight(i);
        if cols.status[i] == 1.0 {
            n_event[idx] += w;
        } else {
            n_censor[idx] += w;
        }
        if let Some(st) = cols.start {
            // Rows with start >= time[k] are not at risk at time[k]: k < e.
            let e = time.partition_point(|&t| t <= st[i]);
            if e > 0 {
                leave[e - 1] += w;
            }
        }
    }
    let mut n_risk = vec![0.0; m];
    let mut ending = 0.0; // rows with stop >= time[k]
    let mut left = 0.0; // rows with start >= time[k]
    for k in (0..m).rev() {
        ending += n_event[k] + n_censor[k];
        left += leave[k];
        n_risk[k] = ending - left;
    }
    Ok(StratumCounts { stratum: code, n: rows.len() as u64, time, n_risk, n_event, n_censor })
}

impl StratumCounts {
    fn validate(&self) -> Result<(), SurvInputError> {
        let bad = |problem| SurvInputError::BadCounts { stratum: self.stratum, problem };
        let m = self.time.len();
        if self.n_risk.len() != m || self.n_event.len() != m || self.n_censor.len() != m {
            return Err(bad("vectors have different lengths"));
        }
        if self.time.iter().any(|t| !t.is_finite()) || self.time.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("times are not finite and strictly increasing"));
        }
        let ok = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0);
        if !ok(&self.n_risk) || !ok(&self.n_event) || !ok(&self.n_censor) {
            return Err(bad("a count is negative or not finite"));
        }
        Ok(())
    }

    /// Number at risk at an arbitrary time `t` for right-censored counts: the
    /// risk set only changes at this stratum's own times, so it equals the
    /// number at risk at the first own time `>= t` (0 past the last time).
    pub(crate) fn n_risk_at(&self, t: f64) -> f64 {
        let k = self.time.partition_point(|&x| x < t);
        self.n_risk.get(k).copied().unwrap_or(0.0)
    }
}

impl KmCounts {
    /// Check the invariants of every stratum table (use on tables received from a peer).
    pub fn validate(&self) -> Result<(), SurvInputError> {
        if self.strata.windows(2).any(|w| w[0].stratum >= w[1].stratum) {
            return Err(SurvInputError::BadCounts {
                stratum: self.strata.first().map_or(0, |s| s.stratum),
                problem: "strata are not in strictly increasing code order",
            });
        }
        self.strata.iter().try_for_each(StratumCounts::validate)
    }

    /// Add another table into this one (the federated secure-sum step, in the clear).
    ///
    /// Strata are matched by code; a stratum present in only one table is
    /// copied. Matching strata must be on identical time grids (compute site
    /// tables with the same `grid` argument), otherwise
    /// [`SurvInputError::GridMismatch`]. Both tables must be of the same kind
    /// (right-censored or counting-process).
    pub fn add(&mut self, other: &KmCounts) -> Result<(), SurvInputError> {
        other.validate()?;
        if self.counting != other.counting {
            return Err(SurvInputError::Option("cannot add a counting-process table to a right-censored one"));
        }
        self.weighted |= other.weighted;
        for o in &other.strata {
            match self.strata.binary_search_by_key(&o.stratum, |s| s.stratum) {
                Ok(k) => {
                    let s = &mut self.strata[k];
                    if s.time != o.time {
                        return Err(SurvInputError::GridMismatch { stratum: o.stratum });
                    }
                    s.n += o.n;
                    for (a, b) in s.n_risk.iter_mut().zip(&o.n_risk) {
                        *a += b;
                    }
                    for (a, b) in s.n_event.iter_mut().zip(&o.n_event) {
                        *a += b;
                    }
                    for (a, b) in s.n_censor.iter_mut().zip(&o.n_censor) {
                        *a += b;
                    }
                }
                Err(k) => self.strata.insert(k, o.clone()),
            }
        }
        Ok(())
    }

    /// Total (weighted) number of events over all strata.
    pub fn total_events(&self) -> f64 {
        self.strata.iter().map(|s| s.n_event.iter().sum::<f64>()).sum()
    }
}
