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
//! Algorithm (per stratum, cost `O(n log n)`): the times are replaced by their
//! ranks among the distinct times, and the rows are swept in **decreasing risk
//! score**, a group of equal scores at a time, while three Fenwick trees
//! indexed by time rank hold the weights of the rows already swept (higher
//! scores): by stop time and status, by start time, and of the events by event
//! time. Each event then finds the weight of its at-risk partners with a higher
//! score in two prefix queries, and each row the weight of the events it is a
//! partner of (its influence) in two more; partners with a lower score are the
//! total, known from static prefix sums, minus those. The trees have as many
//! slots as there are distinct times, so with the usual heavily tied times
//! (days, weeks) they stay in the processor cache. Without case weights every
//! count is an integer-valued sum, so the counts and influences are exact.

use serde::Serialize;

use crate::cox::sort::{order_key, radix_sort};
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
    let mut acc = Sweep::new(n);
    match strata {
        None => acc.stratum(&cols, risk, &(0..n).collect::<Vec<usize>>()),
        Some(codes) => {
            // Rows grouped by stratum code (stable: ascending row within a stratum).
            let mut keyed: Vec<(u64, usize)> = codes.iter().enumerate().map(|(i, &c)| (u64::from(c), i)).collect();
            radix_sort(&mut keyed);
            let rows: Vec<usize> = keyed.iter().map(|e| e.1).collect();
            let mut lo = 0;
            while lo < n {
                let mut hi = lo + 1;
                while hi < n && keyed[hi].0 == keyed[lo].0 {
                    hi += 1;
                }
                acc.stratum(&cols, risk, &rows[lo..hi]);
                lo = hi;
            }
        }
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
        let mut sums: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
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
/// discordant, tied.x; interleaved, 3 per row, in the orientation of R's
/// internal counts: slot 0 holds the pairs whose event has the lower score).
struct Sweep {
    count: Counts,
    inf: Vec<f64>,
}

/// A Fenwick tree of weights over time ranks.
struct Fenwick {
    tree: Vec<f64>,
}

impl Fenwick {
    fn new(m: usize) -> Self {
        Fenwick { tree: vec![0.0; m + 1] }
    }

    fn add(&mut self, slot: usize, w: f64) {
        let mut i = slot + 1;
        while i < self.tree.len() {
            self.tree[i] += w;
            i += i & i.wrapping_neg();
        }
    }

    /// Sum of the weights in slots `< slot`.
    fn below(&self, slot: usize) -> f64 {
        let mut s = 0.0;
        let mut i = slot;
        while i > 0 {
            s += self.tree[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// One row of a stratum as the sweep needs it, with times as ranks among the
/// distinct times of the stratum.
#[derive(Debug, Clone, Copy)]
struct Row {
    /// `2 * rank(stop) + 1` for a censored row, `2 * rank(stop)` for an event:
    /// the rows at risk at an event time of rank `u` are those with key `> 2u`
    /// (minus, for counting-process data, those that start at or after it).
    stop_key: u32,
    /// Rank of the start time (counting process; 0 otherwise).
    start_rank: u32,
    weight: f64,
    /// Index of the row in the input.
    row: usize,
}

impl Row {
    fn is_event(&self) -> bool {
        self.stop_key.is_multiple_of(2)
    }

    fn time_rank(&self) -> usize {
        self.stop_key as usize / 2
    }

    /// Time-rank range `lo..hi` of the events this row is a partner of: after its
    /// start, before its stop, or at its stop when it is censored there.
    fn partner_range(&self, cp: bool) -> (usize, usize) {
        let lo = if cp { self.start_rank as usize + 1 } else { 0 };
        (lo, (self.stop_key as usize).div_ceil(2))
    }
}

/// Sort key of a value in which `-0.0` and `0.0` coincide (equal keys ⇔ equal values).
fn tie_key(x: f64) -> u64 {
    order_key(x + 0.0)
}

/// The rows of a stratum with their time ranks, in input order, and the number of distinct times.
fn rank_times(cols: &SurvCols<'_>, rows: &[usize]) -> (Vec<Row>, usize) {
    let ns = rows.len();
    let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(if cols.start.is_some() { 2 * ns } else { ns });
    keyed.extend(rows.iter().enumerate().map(|(k, &i)| (tie_key(cols.stop[i]), 2 * k)));
    if let Some(st) = cols.start {
        keyed.extend(rows.iter().enumerate().map(|(k, &i)| (tie_key(st[i]), 2 * k + 1)));
    }
    radix_sort(&mut keyed);
    let mut out: Vec<Row> = rows
        .iter()
        .map(|&i| Row { stop_key: u32::from(cols.status[i] != 1.0), start_rank: 0, weight: cols.weight(i), row: i })
        .collect();
    let mut rank = 0u32;
    for (j, &(key, slot)) in keyed.iter().enumerate() {
        if j > 0 && key != keyed[j - 1].0 {
            rank += 1;
        }
        let r = &mut out[slot / 2];
        if slot % 2 == 0 {
            r.stop_key += 2 * rank;
        } else {
            r.start_rank = rank;
        }
    }
    (out, rank as usize + 1)
}

/// The rows swept so far (higher scores), by stop key, start rank and (events) time rank.
struct Trees {
    key: Fenwick,
    key_total: f64,
    start: Fenwick,
    start_total: f64,
    event: Fenwick,
    cp: bool,
}

impl Trees {
    fn new(n_times: usize, cp: bool) -> Self {
        Trees {
            key: Fenwick::new(2 * n_times),
            key_total: 0.0,
            start: Fenwick::new(if cp { n_times } else { 0 }),
            start_total: 0.0,
            event: Fenwick::new(n_times),
            cp,
        }
    }

    fn insert(&mut self, r: &Row) {
        self.key.add(r.stop_key as usize, r.weight);
        self.key_total += r.weight;
        if self.cp {
            self.start.add(r.start_rank as usize, r.weight);
            self.start_total += r.weight;
        }
        if r.is_event() {
            self.event.add(r.time_rank(), r.weight);
        }
    }

    /// Weight of the swept rows at risk at the time of event `r`.
    fn risk_higher(&self, r: &Row) -> f64 {
        let u = r.time_rank();
        let later = self.key_total - self.key.below(2 * u + 1);
        if self.cp {
            later - (self.start_total - self.start.below(u))
        } else {
            later
        }
    }

    /// Weight of the swept events that row `r` is a partner of.
    fn partner_higher(&self, r: &Row) -> f64 {
        let (lo, hi) = r.partner_range(self.cp);
        self.event.below(hi) - self.event.below(lo)
    }
}

/// Static totals of a stratum: weight at risk at each event time rank and
/// weight of the events in each time-rank range, over all scores.
struct Totals {
    /// Suffix sums by stop key.
    at_key: Vec<f64>,
    /// Suffix sums by start rank (counting process).
    at_start: Vec<f64>,
    /// Prefix sums of event weight by time rank.
    events: Vec<f64>,
    cp: bool,
}

impl Totals {
    fn new(rows: &[Row], nt: usize, cp: bool) -> Self {
        let mut at_key = vec![0.0; 2 * nt + 1];
        let mut at_start = vec![0.0; if cp { nt + 1 } else { 0 }];
        let mut events = vec![0.0; nt + 1];
        for r in rows {
            at_key[r.stop_key as usize] += r.weight;
            if cp {
                at_start[r.start_rank as usize] += r.weight;
            }
            if r.is_event() {
                events[r.time_rank() + 1] += r.weight;
            }
        }
        for j in (0..2 * nt).rev() {
            at_key[j] += at_key[j + 1];
        }
        if cp {
            for j in (0..nt).rev() {
                at_start[j] += at_start[j + 1];
            }
        }
        for j in 1..=nt {
            events[j] += events[j - 1];
        }
        Totals { at_key, at_start, events, cp }
    }

    /// Weight at risk at the time of event `r`.
    fn at_risk(&self, r: &Row) -> f64 {
        let u = r.time_rank();
        self.at_key[2 * u + 1] - if self.cp { self.at_start[u] } else { 0.0 }
    }

    /// Weight of the events row `r` is a partner of.
    fn partner(&self, r: &Row) -> f64 {
        let (lo, hi) = r.partner_range(self.cp);
        self.events[hi] - self.events[lo]
    }
}

impl Sweep {
    fn new(n: usize) -> Self {
        Sweep { count: Counts::default(), inf: vec![0.0; 3 * n] }
    }

    /// One stratum; `rows` are its rows (input indices, ascending).
    fn stratum(&mut self, cols: &SurvCols<'_>, risk: &[f64], rows: &[usize]) {
        if !rows.iter().any(|&i| cols.status[i] == 1.0) {
            return; // no events: no pairs, zero influence
        }
        let cp = cols.start.is_some();
        let (local, nt) = rank_times(cols, rows);
        let totals = Totals::new(&local, nt, cp);

        // Rows by score, ascending (stable in the row index), laid out in that
        // order so that the sweep reads memory sequentially.
        let mut by_score: Vec<(u64, usize)> = rows.iter().enumerate().map(|(k, &i)| (tie_key(risk[i]), k)).collect();
        radix_sort(&mut by_score);
        let sorted: Vec<Row> = by_score.iter().map(|e| local[e.1]).collect();
        drop(local);
        let keys: Vec<u64> = by_score.into_iter().map(|e| e.0).collect();

        self.tied_events(&sorted, &keys, nt);

        // Sweep in decreasing score; the trees hold the rows with a higher score.
        // Influence per sorted position: (higher, lower, tied) partner weights.
        let mut inf = vec![[0.0; 3]; sorted.len()];
        let mut trees = Trees::new(nt, cp);
        let mut higher: Vec<(f64, f64)> = Vec::new();
        let mut end = sorted.len();
        while end > 0 {
            let mut start = end - 1;
            while start > 0 && keys[start - 1] == keys[end - 1] {
                start -= 1;
            }
            let group = start..end;
            end = start;
            if group.len() == 1 {
                // A score of its own (the common case): no tied pairs.
                let r = &sorted[start];
                let ev_hi = if r.is_event() { trees.risk_higher(r) } else { 0.0 };
                let pa_hi = trees.partner_higher(r);
                self.record(r, &mut inf[start], (ev_hi, 0.0, &totals), (pa_hi, 0.0));
                trees.insert(r);
                continue;
            }
            // (higher, tied) for the event side and the partner side of each member.
            higher.clear();
            higher.extend(sorted[group.clone()].iter().map(|r| {
                let ev = if r.is_event() { trees.risk_higher(r) } else { 0.0 };
                (ev, trees.partner_higher(r))
            }));
            for r in &sorted[group.clone()] {
                trees.insert(r);
            }
            for (j, &(ev_hi, pa_hi)) in group.zip(&higher) {
                let r = &sorted[j];
                let ev_tied = if r.is_event() { trees.risk_higher(r) - ev_hi } else { 0.0 };
                let pa_tied = trees.partner_higher(r) - pa_hi;
                self.record(r, &mut inf[j], (ev_hi, ev_tied, &totals), (pa_hi, pa_tied));
            }
        }
        for (r, v) in sorted.iter().zip(&inf) {
            let i = 3 * r.row;
            self.inf[i] += v[0];
            self.inf[i + 1] += v[1];
            self.inf[i + 2] += v[2];
        }
    }

    /// Adds the pairs of row `r`: as the event, the `(higher, tied)` weights of
    /// its at-risk partners; as a partner, the same of the events it pairs with.
    /// The lower-score weights are the totals minus those.
    fn record(&mut self, r: &Row, inf: &mut [f64; 3], ev: (f64, f64, &Totals), pa: (f64, f64)) {
        let (hi, tied, totals) = ev;
        if r.is_event() {
            let lower = totals.at_risk(r) - hi - tied;
            self.count.concordant += r.weight * hi;
            self.count.discordant += r.weight * lower;
            self.count.tied_x += r.weight * tied;
            inf[0] += hi;
            inf[1] += lower;
            inf[2] += tied;
        }
        // As a partner: events with a lower score pair with it concordantly.
        let (p_hi, p_tied) = pa;
        inf[0] += totals.partner(r) - p_hi - p_tied;
        inf[1] += p_hi;
        inf[2] += p_tied;
    }

    /// `tied.y` (all pairs of events at the same time) and `tied.xy` (those with
    /// equal scores too), accumulated in increasing score within each time.
    fn tied_events(&mut self, sorted: &[Row], keys: &[u64], nt: usize) {
        let mut dwt = vec![0.0; nt];
        let mut dwt_x = vec![0.0; nt];
        let mut stamp = vec![usize::MAX; nt];
        let mut group = 0usize;
        for (j, r) in sorted.iter().enumerate() {
            if j > 0 && keys[j] != keys[j - 1] {
                group += 1;
            }
            if !r.is_event() {
                continue;
            }
            let u = r.time_rank();
            self.count.tied_y += r.weight * dwt[u];
            dwt[u] += r.weight;
            if stamp[u] != group {
                stamp[u] = group;
                dwt_x[u] = 0.0;
            }
            self.count.tied_xy += r.weight * dwt_x[u];
            dwt_x[u] += r.weight;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

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

    /// Brute force over all pairs with the per-row influence, for any data:
    /// returns (R-internal counts [concordant, discordant, tied.x, tied.y incl. xy, tied.xy], std).
    #[allow(clippy::type_complexity)]
    fn brute_full(
        stop: &[f64],
        start: Option<&[f64]>,
        event: &[f64],
        strata: Option<&[u32]>,
        weights: Option<&[f64]>,
        risk: &[f64],
    ) -> ([f64; 5], f64) {
        let n = stop.len();
        let w = |i: usize| weights.map_or(1.0, |w| w[i]);
        let mut c = [0.0; 5];
        let mut inf = vec![[0.0; 3]; n];
        for e in 0..n {
            if event[e] != 1.0 {
                continue;
            }
            let t = stop[e];
            for r in 0..n {
                if r == e || strata.map_or(0, |s| s[r]) != strata.map_or(0, |s| s[e]) {
                    continue;
                }
                if stop[r] == t && event[r] == 1.0 {
                    if r < e {
                        c[3] += w(e) * w(r);
                        if risk[r] == risk[e] {
                            c[4] += w(e) * w(r);
                        }
                    }
                    continue;
                }
                let at_risk = start.is_none_or(|s| s[r] < t) && stop[r] >= t;
                if !at_risk {
                    continue;
                }
                let slot = match risk[r].partial_cmp(&risk[e]).unwrap() {
                    Ordering::Greater => 0,
                    Ordering::Less => 1,
                    Ordering::Equal => 2,
                };
                c[slot] += w(e) * w(r);
                inf[e][slot] += w(r);
                inf[r][slot] += w(e);
            }
        }
        let npair = c[0] + c[1] + c[2];
        let somer = (c[0] - c[1]) / npair;
        let var: f64 = (0..n)
            .map(|i| {
                let [ic, id, it] = inf[i];
                let d = ((ic - id) - (ic + id + it) * somer) * w(i) / (2.0 * npair);
                d * d
            })
            .sum();
        (c, var.sqrt())
    }

    #[test]
    fn randomised_data_match_brute_force_with_influence() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |m: u64| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for case in 0..200 {
            let n = 2 + next(60) as usize;
            let cp = case % 2 == 1;
            let n_times = 1 + next(12);
            let n_scores = 1 + next(if case % 3 == 0 { 4 } else { 40 });
            let mut stop = Vec::new();
            let mut start = Vec::new();
            for _ in 0..n {
                let t = 1.0 + next(n_times) as f64;
                let st = if cp { t - 1.0 - next(4) as f64 } else { 0.0 };
                stop.push(t);
                start.push(st);
            }
            let event: Vec<f64> = (0..n).map(|_| if next(3) == 0 { 0.0 } else { 1.0 }).collect();
            let risk: Vec<f64> = (0..n).map(|_| next(n_scores) as f64 * 0.25 - 1.0).collect();
            let strata: Vec<u32> = (0..n).map(|_| [7, 2, 9][next(3) as usize]).collect();
            let weights: Vec<f64> = (0..n).map(|_| [0.5, 1.0, 2.5, 1.25][next(4) as usize]).collect();
            let strata = (case % 4 >= 2).then_some(strata.as_slice());
            let weights = (case % 5 == 4).then_some(weights.as_slice());
            let start = cp.then_some(start.as_slice());
            let Ok(r) = concordance(&stop, start, &event, strata, weights, &risk) else {
                assert!(!event.contains(&1.0), "case {case}");
                continue;
            };
            let (c, std) = brute_full(&stop, start, &event, strata, weights, &risk);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0) || (a.is_nan() && b.is_nan());
            let got = [r.discordant, r.concordant, r.tied_x, r.tied_y + r.tied_xy, r.tied_xy];
            for k in 0..5 {
                if weights.is_none() {
                    assert_eq!(got[k], c[k], "case {case} count {k}");
                } else {
                    assert!(close(got[k], c[k]), "case {case} count {k}: {} vs {}", got[k], c[k]);
                }
            }
            assert!(close(r.std, std), "case {case}: std {} vs {std}", r.std);
        }
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
