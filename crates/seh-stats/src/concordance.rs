//! Harrell's concordance as `coxph` reports it (survival 3.5-3
//! `concordancefit(..., reverse = TRUE, timewt = "n")`), with the
//! infinitesimal-jackknife standard error.
//!
//! A pair is comparable when one subject has an event at time `t` while the
//! other is still at risk at `t` (event or censoring later, or censored at
//! `t`; for `(start, stop]` data also `start < t`), within the same stratum.
//! In the Cox orientation it is *concordant* when the subject with the event
//! has the higher risk score. Events tied in time form `tied.y` pairs (not
//! comparable), and `tied.xy` when the scores are also equal; `tied.x` are
//! comparable pairs with equal scores, which count one half.
//!
//! Algorithm: per stratum, rows are swept in decreasing time while two
//! Fenwick trees indexed by score rank hold the weights of the rows at risk
//! and of the events seen so far. Each event queries the at-risk tree (its
//! comparable partners); each row's influence (its own concordant,
//! discordant and tied counts) is the change of the event tree between its
//! entry into and exit from the risk set. Cost `O(n log n)`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::km::{check_codes, SurvCols, SurvInputError};

/// Concordance counts and value with the field names of the reference JSON
/// (`coxph`'s `concordance` component). Counts are weighted when case weights are given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concordance {
    /// Comparable pairs where the event has the higher risk score.
    pub concordant: f64,
    /// Comparable pairs where the event has the lower risk score.
    pub discordant: f64,
    /// Comparable pairs with equal risk scores.
    #[serde(rename = "tied.x")]
    pub tied_x: f64,
    /// Pairs of events at the same time with different scores.
    #[serde(rename = "tied.y")]
    pub tied_y: f64,
    /// Pairs of events at the same time with equal scores.
    #[serde(rename = "tied.xy")]
    pub tied_xy: f64,
    /// `(concordant + tied.x / 2) / (concordant + discordant + tied.x)`.
    pub concordance: f64,
    /// Infinitesimal-jackknife standard error of `concordance` (R's `sqrt(var)`).
    pub std: f64,
}

/// Concordance of a risk score with survival, as `coxph` computes it.
///
/// Inputs (all of length `n >= 1`): `stop` times, optional `start` times
/// (`start < stop`, counting-process data), `event` (0/1), optional `strata`
/// codes (pairs are only formed within a stratum), optional case `weights`
/// (`> 0`), and `risk` (the linear predictor: higher = shorter survival).
/// Stop times may be negative. Errors: empty input, length mismatch,
/// non-finite values, status not 0/1, `start >= stop`, bad weights, no events.
pub fn concordance(
    stop: &[f64],
    start: Option<&[f64]>,
    event: &[f64],
    strata: Option<&[u32]>,
    weights: Option<&[f64]>,
    risk: &[f64],
) -> Result<Concordance, SurvInputError> {
    concordance_clustered(stop, start, event, strata, weights, risk, None)
}

/// [`concordance`] with an optional `cluster` id per row: the variance then
/// sums the influence within each cluster first (R's `cluster(id)` in `coxph`).
pub fn concordance_clustered(
    stop: &[f64],
    start: Option<&[f64]>,
    event: &[f64],
    strata: Option<&[u32]>,
    weights: Option<&[f64]>,
    risk: &[f64],
    cluster: Option<&[u64]>,
) -> Result<Concordance, SurvInputError> {
    let cols = SurvCols::with_sign_rule(stop, start, event, weights, false, true)?;
    let n = cols.len();
    check_codes("strata", n, strata)?;
    crate::km::check_len("risk", n, risk.len())?;
    if let Some(c) = cluster {
        crate::km::check_len("cluster", n, c.len())?;
    }
    if let Some(i) = risk.iter().position(|r| !r.is_finite()) {
        return Err(SurvInputError::NotFinite { row: i + 1, column: "risk" });
    }
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        groups.entry(strata.map_or(0, |s| s[i])).or_default().push(i);
    }
    let mut acc = Sweep::new(n);
    for rows in groups.values() {
        acc.stratum(&cols, risk, rows);
    }
    // R's counts are in the "larger score, longer survival" orientation; coxph reverses them.
    let c = &acc.count;
    let npair = c.concordant + c.discordant + c.tied_x;
    let somer = (c.concordant - c.discordant) / npair;
    let mut dfbeta: Vec<f64> = (0..n)
        .map(|i| {
            let (ic, id, it) = (acc.inf[3 * i], acc.inf[3 * i + 1], acc.inf[3 * i + 2]);
            ((ic - id) - (ic + id + it) * somer) * cols.weight(i) / (2.0 * npair)
        })
        .collect();
    if let Some(cl) = cluster {
        let mut sums: BTreeMap<u64, f64> = BTreeMap::new();
        for (i, d) in dfbeta.iter().enumerate() {
            *sums.entry(cl[i]).or_default() += d;
        }
        dfbeta = sums.into_values().collect();
    }
    let var: f64 = dfbeta.iter().map(|d| d * d).sum();
    Ok(Concordance {
        concordant: c.discordant,
        discordant: c.concordant,
        tied_x: c.tied_x,
        tied_y: c.tied_y - c.tied_xy,
        tied_xy: c.tied_xy,
        concordance: 1.0 - (somer + 1.0) / 2.0,
        std: var.sqrt(),
    })
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    concordant: f64,
    discordant: f64,
    tied_x: f64,
    tied_y: f64,
    tied_xy: f64,
}

/// Accumulated counts over strata and per-row influence (concordant,
/// discordant, tied.x; interleaved, 3 per row).
struct Sweep {
    count: Counts,
    inf: Vec<f64>,
}

/// A Fenwick tree of weights over score ranks, with the per-rank weights kept
/// separately for the "tied" query.
struct Fenwick {
    tree: Vec<f64>,
    node: Vec<f64>,
    total: f64,
}

impl Fenwick {
    fn new(m: usize) -> Self {
        Fenwick { tree: vec![0.0; m + 1], node: vec![0.0; m], total: 0.0 }
    }

    fn add(&mut self, rank: usize, w: f64) {
        self.node[rank] += w;
        self.total += w;
        let mut i = rank + 1;
        while i < self.tree.len() {
            self.tree[i] += w;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of weights at ranks `< rank`.
    fn below(&self, rank: usize) -> f64 {
        let mut s = 0.0;
        let mut i = rank;
        while i > 0 {
            s += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    }

    /// (weight with a larger score, weight with a smaller score, weight with an equal score).
    fn query(&self, rank: usize) -> (f64, f64, f64) {
        let less = self.below(rank);
        let tied = self.node[rank];
        (self.total - less - tied, less, tied)
    }
}

impl Sweep {
    fn new(n: usize) -> Self {
        Sweep { count: Counts::default(), inf: vec![0.0; 3 * n] }
    }

    /// Row `i` leaves (sign +1) or enters (sign −1) the risk set: its influence
    /// gains the events, seen so far, that it is paired with (orientation flips
    /// because the row is the longer-lived member of those pairs).
    fn settle(&mut self, events: &Fenwick, rank: usize, i: usize, sign: f64) {
        let (greater, less, tied) = events.query(rank);
        self.inf[3 * i] += sign * less;
        self.inf[3 * i + 1] += sign * greater;
        self.inf[3 * i + 2] += sign * tied;
    }

    fn stratum(&mut self, cols: &SurvCols<'_>, risk: &[f64], rows: &[usize]) {
        if !rows.iter().any(|&i| cols.status[i] == 1.0) {
            return; // no events: no pairs, zero influence
        }
        // Score ranks within the stratum (ties share a rank).
        let mut uniq: Vec<f64> = rows.iter().map(|&i| risk[i]).collect();
        uniq.sort_by(f64::total_cmp);
        uniq.dedup();
        let rank = |i: usize| uniq.partition_point(|&u| u < risk[i]);
        let m = uniq.len();
        // Decreasing stop time; censored before events at a tie; then increasing score.
        let mut by_stop = rows.to_vec();
        by_stop.sort_by(|&a, &b| {
            cols.stop[b]
                .total_cmp(&cols.stop[a])
                .then(cols.status[a].total_cmp(&cols.status[b]))
                .then(risk[a].total_cmp(&risk[b]))
        });
        let by_start: Vec<usize> = match cols.start {
            Some(st) => {
                let mut v = rows.to_vec();
                v.sort_by(|&a, &b| st[b].total_cmp(&st[a]));
                v
            }
            None => Vec::new(),
        };
        let mut at_risk = Fenwick::new(m);
        let mut events = Fenwick::new(m);
        let mut next_exit = 0usize;
        let mut i = 0usize;
        while i < by_stop.len() {
            let ii = by_stop[i];
            let t = cols.stop[ii];
            if cols.status[ii] == 0.0 {
                self.settle(&events, rank(ii), ii, -1.0);
                at_risk.add(rank(ii), cols.weight(ii));
                i += 1;
                continue;
            }
            if let Some(st) = cols.start {
                while next_exit < by_start.len() && st[by_start[next_exit]] >= t {
                    let jj = by_start[next_exit];
                    self.settle(&events, rank(jj), jj, 1.0);
                    at_risk.add(rank(jj), -cols.weight(jj));
                    next_exit += 1;
                }
            }
            // Pass 1: the events tied at t against the rows at risk after t.
            let mut end = i;
            let (mut dwt, mut dwt_x) = (0.0, 0.0);
            let mut xsave = risk[ii];
            while end < by_stop.len() && cols.stop[by_stop[end]].total_cmp(&t) == Ordering::Equal {
                let jj = by_stop[end];
                let w = cols.weight(jj);
                self.count.tied_y += w * dwt;
                dwt += w;
                if risk[jj] != xsave {
                    dwt_x = 0.0;
                    xsave = risk[jj];
                }
                self.count.tied_xy += w * dwt_x;
                dwt_x += w;
                let r = rank(jj);
                let (greater, less, tied) = at_risk.query(r);
                self.count.concordant += w * greater;
                self.count.discordant += w * less;
                self.count.tied_x += w * tied;
                self.inf[3 * jj] += greater;
                self.inf[3 * jj + 1] += less;
                self.inf[3 * jj + 2] += tied;
                events.add(r, w);
                end += 1;
            }
            // Pass 2: the events enter the risk set of earlier events.
            for &jj in &by_stop[i..end] {
                self.settle(&events, rank(jj), jj, -1.0);
                at_risk.add(rank(jj), cols.weight(jj));
            }
            i = end;
        }
        // Rows still in the risk set at the start of follow-up leave it now.
        let remaining: &[usize] = if cols.start.is_some() { &by_start[next_exit..] } else { &by_stop };
        for &ii in remaining {
            self.settle(&events, rank(ii), ii, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force pair counts in the Cox orientation.
    fn brute(stop: &[f64], event: &[f64], risk: &[f64]) -> (f64, f64, f64, f64, f64) {
        let (mut c, mut d, mut tx, mut ty, mut txy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let n = stop.len();
        for i in 0..n {
            if event[i] != 1.0 {
                continue;
            }
            for j in 0..n {
                if j == i {
                    continue;
                }
                if stop[j] > stop[i] || (stop[j] == stop[i] && event[j] == 0.0) {
                    match risk[i].partial_cmp(&risk[j]).unwrap() {
                        Ordering::Greater => c += 1.0,
                        Ordering::Less => d += 1.0,
                        Ordering::Equal => tx += 1.0,
                    }
                } else if stop[j] == stop[i] && event[j] == 1.0 && j < i {
                    if risk[i] == risk[j] {
                        txy += 1.0;
                    } else {
                        ty += 1.0;
                    }
                }
            }
        }
        (c, d, tx, ty, txy)
    }

    #[test]
    fn counts_match_brute_force() {
        let stop = [5.0, 3.0, 3.0, 8.0, 1.0, 3.0, 9.0, 5.0, 2.0, 7.0];
        let event = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let risk = [0.5, 1.0, 1.0, -0.2, 2.0, 0.3, 0.5, 0.1, 0.5, 0.0];
        let r = concordance(&stop, None, &event, None, None, &risk).unwrap();
        let (c, d, tx, ty, txy) = brute(&stop, &event, &risk);
        assert_eq!((r.concordant, r.discordant, r.tied_x, r.tied_y, r.tied_xy), (c, d, tx, ty, txy));
        assert!(((r.concordance - (c + tx / 2.0) / (c + d + tx)).abs()) < 1e-15);
        assert!(r.std > 0.0 && r.std.is_finite());
    }

    #[test]
    fn counting_process_with_one_interval_per_subject_equals_right_censored() {
        let stop = [5.0, 3.0, 3.0, 8.0, 1.0, 3.0, 9.0, 5.0, 2.0, 7.0];
        let event = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let risk = [0.5, 1.0, 1.0, -0.2, 2.0, 0.3, 0.5, 0.1, 0.5, 0.0];
        let start = [-1.0; 10];
        let a = concordance(&stop, None, &event, None, None, &risk).unwrap();
        let b = concordance(&stop, Some(&start), &event, None, None, &risk).unwrap();
        assert_eq!(a.concordant, b.concordant);
        assert_eq!(a.tied_y, b.tied_y);
        assert!((a.std - b.std).abs() < 1e-15);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(concordance(&[], None, &[], None, None, &[]), Err(SurvInputError::Empty));
        assert_eq!(concordance(&[1.0], None, &[0.0], None, None, &[0.0]), Err(SurvInputError::NoEvents));
        assert!(matches!(
            concordance(&[1.0], None, &[1.0], None, None, &[f64::NAN]),
            Err(SurvInputError::NotFinite { row: 1, column: "risk" })
        ));
    }
}
