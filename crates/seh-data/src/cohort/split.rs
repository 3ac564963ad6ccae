//! Counting-process rows for one patient, the way R's `survival::tmerge` makes them.
//!
//! Follow-up runs over `(0, exit]` (days since the index date). Every time a
//! time-dependent covariate can change strictly inside that interval is a
//! cut; the rows are the pieces between consecutive cuts. Rules (checked
//! against `tmerge` in `testdata/cohort/make_tmerge_ref.R`):
//!
//! * a value measured at time `t` applies to pieces starting at or after `t`
//!   (`tdc(t, value)`); values at `t <= 0` set the value at entry (the latest
//!   one wins); before any value the covariate is missing (NaN);
//! * values at `t >= exit` are ignored and make no cut;
//! * several values at the same time: the last in the series order wins (the
//!   caller sorts by time, then by a stable record key);
//! * a switch at time `t` (`tdc(t)`) is 0 before and 1 from `t` on; `t <= 0`
//!   means 1 from entry;
//! * the event, if any, belongs to the last piece.

/// A time-dependent covariate of one patient.
#[derive(Clone, PartialEq)]
pub enum Series {
    /// Values `(time, value)` sorted by time (ties: the last wins).
    Values(Vec<(i64, f64)>),
    /// A 0 → 1 switch at the given time, or never.
    Switch(Option<i64>),
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Series(<redacted>)")
    }
}

/// One counting-process row: `(tstart, tstop]`, the event flag and the covariate values.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// Start (exclusive), days since index.
    pub tstart: i64,
    /// Stop (inclusive), days since index.
    pub tstop: i64,
    /// Whether the outcome happens at `tstop`.
    pub event: bool,
    /// One value per series, in order.
    pub values: Vec<f64>,
}

/// Splits follow-up `(0, exit]` of one patient. Precondition: `exit > 0`;
/// each `Values` series sorted by time.
pub fn split(exit: i64, event: bool, series: &[Series]) -> Vec<Piece> {
    let mut cuts: Vec<i64> = Vec::new();
    for s in series {
        match s {
            Series::Values(v) => cuts.extend(v.iter().map(|&(t, _)| t).filter(|&t| t > 0 && t < exit)),
            Series::Switch(Some(t)) if *t > 0 && *t < exit => cuts.push(*t),
            Series::Switch(_) => {}
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut bounds = Vec::with_capacity(cuts.len() + 2);
    bounds.push(0);
    bounds.extend(cuts);
    bounds.push(exit);
    let n = bounds.len() - 1;
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (a, b) = (w[0], w[1]);
            let values = series
                .iter()
                .map(|s| match s {
                    Series::Values(v) => {
                        // Last value with time <= a (ties: last in order).
                        let k = v.partition_point(|&(t, _)| t <= a);
                        if k == 0 {
                            f64::NAN
                        } else {
                            v[k - 1].1
                        }
                    }
                    Series::Switch(Some(t)) if *t <= a => 1.0,
                    Series::Switch(_) => 0.0,
                })
                .collect();
            Piece { tstart: a, tstop: b, event: event && i + 1 == n, values }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example also run through R `tmerge` (see the module docs).
    #[test]
    fn matches_tmerge_example() {
        let labs = Series::Values(vec![(-10, 1.0), (0, 2.0), (30, 3.0), (30, 4.0), (100, 5.0)]);
        let hf = Series::Switch(Some(40));
        let rows = split(100, true, &[labs, hf]);
        let got: Vec<(i64, i64, bool, f64, f64)> =
            rows.iter().map(|p| (p.tstart, p.tstop, p.event, p.values[0], p.values[1])).collect();
        assert_eq!(got, vec![(0, 30, false, 2.0, 0.0), (30, 40, false, 4.0, 0.0), (40, 100, true, 4.0, 1.0)]);
    }

    #[test]
    fn missing_before_first_value_and_early_switch() {
        let rows = split(50, false, &[Series::Values(vec![(60, 7.0)]), Series::Switch(Some(-3))]);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].values[0].is_nan());
        assert_eq!(rows[0].values[1], 1.0);
        assert!(!rows[0].event);
        let rows = split(50, true, &[Series::Values(vec![(20, 1.0)])]);
        assert!(rows[0].values[0].is_nan() && rows[1].values[0] == 1.0 && rows[1].event && !rows[0].event);
    }
}
