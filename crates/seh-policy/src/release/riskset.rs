//! Merging small risk sets on a time grid.

use serde::Serialize;

use super::Releasable;
use crate::decision::{Refusal, Rule};
use crate::policy::SitePolicy;

/// Counts at one grid time (or, after merging, over one grid interval ending at `time`).
#[derive(Clone, Copy, PartialEq, Debug, Serialize)]
pub struct RiskRow {
    /// The grid time (after merging: the interval's last original grid time).
    pub time: f64,
    /// Number at risk (after merging: the largest at-risk count of the merged points, which for
    /// right-censored data is the count at the interval's start).
    pub at_risk: u64,
    /// Events (summed when merged).
    pub events: u64,
    /// Censored (summed when merged).
    pub censored: u64,
}

/// A released risk table.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct RiskTable {
    /// The merged rows, in time order; each has `at_risk ≥ min_risk_set`.
    pub rows: Vec<RiskRow>,
    /// For each released row, the index of the last input row it covers; lets the coordinator
    /// intersect the grids chosen by several sites (an intersection keeps every site's rule).
    pub group_ends: Vec<usize>,
    /// Whether any grid points were merged.
    pub merged: bool,
}

/// Why a risk table could not be released.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RiskTableError {
    /// The input is malformed (API misuse): times not finite and strictly increasing, or a sum
    /// overflows.
    #[error("risk table row {row}: {reason}")]
    Invalid {
        /// The offending input row.
        row: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Even merging everything leaves fewer than `min_risk_set` at risk.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Merges adjacent grid points of `rows` (sorted by time) until every released point has at least
/// `min_risk_set` at risk, greedily from the earliest time: a group closes as soon as its largest
/// at-risk count reaches k; a trailing group that never does is merged into the previous group.
///
/// Guarantees: no released `at_risk` below k; event and censoring totals are preserved; the
/// number of grid points never increases; released times are a subset of the input times.
/// Refuses with [`Rule::MinRiskSet`] when no grouping reaches k (including an empty input).
pub fn release_risk_table(policy: &SitePolicy, rows: &[RiskRow]) -> Result<Releasable<RiskTable>, RiskTableError> {
    let k = policy.disclosure().min_risk_set;
    for (i, r) in rows.iter().enumerate() {
        if !r.time.is_finite() {
            return Err(RiskTableError::Invalid { row: i, reason: "time is not finite" });
        }
        if i > 0 && rows[i - 1].time >= r.time {
            return Err(RiskTableError::Invalid { row: i, reason: "times are not strictly increasing" });
        }
    }
    let mut out: Vec<RiskRow> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut cur: Option<RiskRow> = None;
    let add = |acc: &mut RiskRow, r: &RiskRow, row: usize| -> Result<(), RiskTableError> {
        acc.time = r.time;
        acc.at_risk = acc.at_risk.max(r.at_risk);
        acc.events = acc.events.checked_add(r.events).ok_or(RiskTableError::Invalid { row, reason: "overflow" })?;
        acc.censored =
            acc.censored.checked_add(r.censored).ok_or(RiskTableError::Invalid { row, reason: "overflow" })?;
        Ok(())
    };
    for (i, r) in rows.iter().enumerate() {
        let acc = cur.get_or_insert(RiskRow { time: r.time, at_risk: 0, events: 0, censored: 0 });
        add(acc, r, i)?;
        if acc.at_risk >= k {
            out.push(*acc);
            ends.push(i);
            cur = None;
        }
    }
    if let Some(tail) = cur {
        match (out.last_mut(), ends.last_mut()) {
            (Some(last), Some(end)) => {
                add(last, &tail, rows.len() - 1)?;
                *end = rows.len() - 1;
            }
            _ => {
                return Err(Refusal::new(Rule::MinRiskSet, format!("fewer than {k} at risk at every grid time")).into())
            }
        }
    }
    if out.is_empty() {
        return Err(Refusal::new(Rule::MinRiskSet, "no grid times").into());
    }
    let merged = out.len() < rows.len();
    Ok(Releasable::new(RiskTable { rows: out, group_ends: ends, merged }))
}
