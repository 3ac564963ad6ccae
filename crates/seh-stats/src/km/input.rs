//! Validation of survival input columns shared by Kaplan–Meier, log-rank and
//! concordance: `(start, stop]` or right-censored times, 0/1 status, integer
//! group/strata codes and positive case weights.

use thiserror::Error;

/// Errors for survival input data. Row numbers are 1-based positions in the
/// slices passed in; no message contains a data value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SurvInputError {
    /// No rows at all.
    #[error("no observations (the data has zero rows)")]
    Empty,
    /// Two input columns have different lengths.
    #[error("column `{column}` has {found} rows but `time` has {expected}")]
    Length {
        /// The offending column.
        column: &'static str,
        /// Length of the time column.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// A value is missing (NaN) or infinite.
    #[error("row {row}: `{column}` is missing or not finite")]
    NotFinite {
        /// 1-based row.
        row: usize,
        /// The column.
        column: &'static str,
    },
    /// A stop time is negative (survfit starts curves at 0).
    #[error("row {row}: `{column}` is negative; survival times must be >= 0")]
    NegativeTime {
        /// 1-based row.
        row: usize,
        /// The column.
        column: &'static str,
    },
    /// The status is neither 0 nor 1.
    #[error("row {row}: status must be 0 (censored) or 1 (event)")]
    BadStatus {
        /// 1-based row.
        row: usize,
    },
    /// A `(start, stop]` interval with `start >= stop`.
    #[error("row {row}: start time must be strictly less than stop time")]
    BadInterval {
        /// 1-based row.
        row: usize,
    },
    /// A case weight that is not strictly positive.
    #[error("row {row}: case weights must be finite and > 0")]
    BadWeight {
        /// 1-based row.
        row: usize,
    },
    /// No events at all (nothing to estimate or test).
    #[error("the data has no events (status = 1); nothing to estimate")]
    NoEvents,
    /// A test needs at least two groups.
    #[error("only one group is present; a comparison needs at least two")]
    SingleGroup,
    /// A shared time grid does not contain one of the observed times, or is not strictly increasing.
    #[error("the time grid {problem}")]
    Grid {
        /// What is wrong with the grid.
        problem: &'static str,
    },
    /// Counts tables that are summed or compared are not on the same grid.
    #[error("counts tables for stratum {stratum} are on different time grids; compute them on one shared grid")]
    GridMismatch {
        /// Stratum code whose grids differ.
        stratum: u32,
    },
    /// A counts table is inconsistent (negative or non-finite counts, mismatched lengths).
    #[error("counts table for stratum {stratum} is invalid: {problem}")]
    BadCounts {
        /// Stratum code.
        stratum: u32,
        /// What is wrong.
        problem: &'static str,
    },
    /// The variance matrix of a test statistic is singular (R's `solve` would fail).
    #[error("the variance matrix of the test is singular")]
    Singular,
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(&'static str),
}

/// Checked view of survival columns. All slices have length `n >= 1`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SurvCols<'a> {
    pub stop: &'a [f64],
    pub start: Option<&'a [f64]>,
    pub status: &'a [f64],
    pub weights: Option<&'a [f64]>,
}

impl<'a> SurvCols<'a> {
    /// Validate lengths and values. `allow_no_events` relaxes the "at least one event" rule.
    pub fn new(
        stop: &'a [f64],
        start: Option<&'a [f64]>,
        status: &'a [f64],
        weights: Option<&'a [f64]>,
        allow_no_events: bool,
    ) -> Result<Self, SurvInputError> {
        Self::with_sign_rule(stop, start, status, weights, allow_no_events, false)
    }

    /// As [`SurvCols::new`]; `allow_negative` accepts negative stop times
    /// (Cox models and concordance are invariant to a shift of the time axis).
    pub fn with_sign_rule(
        stop: &'a [f64],
        start: Option<&'a [f64]>,
        status: &'a [f64],
        weights: Option<&'a [f64]>,
        allow_no_events: bool,
        allow_negative: bool,
    ) -> Result<Self, SurvInputError> {
        let n = stop.len();
        if n == 0 {
            return Err(SurvInputError::Empty);
        }
        check_len("status", n, status.len())?;
        if let Some(s) = start {
            check_len("start", n, s.len())?;
        }
        if let Some(w) = weights {
            check_len("weights", n, w.len())?;
        }
        let mut events = 0usize;
        for i in 0..n {
            let row = i + 1;
            let t = stop[i];
            if !t.is_finite() {
                return Err(SurvInputError::NotFinite { row, column: "time" });
            }
            if t < 0.0 && !allow_negative {
                return Err(SurvInputError::NegativeTime { row, column: "time" });
            }
            let s = status[i];
            if s == 1.0 {
                events += 1;
            } else if s != 0.0 {
                if s.is_nan() {
                    return Err(SurvInputError::NotFinite { row, column: "status" });
                }
                return Err(SurvInputError::BadStatus { row });
            }
            if let Some(st) = start {
                if !st[i].is_finite() {
                    return Err(SurvInputError::NotFinite { row, column: "start" });
                }
                if st[i] >= t {
                    return Err(SurvInputError::BadInterval { row });
                }
            }
            if let Some(w) = weights {
                if !(w[i].is_finite() && w[i] > 0.0) {
                    return Err(SurvInputError::BadWeight { row });
                }
            }
        }
        if events == 0 && !allow_no_events {
            return Err(SurvInputError::NoEvents);
        }
        Ok(SurvCols { stop, start, status, weights })
    }

    pub fn len(&self) -> usize {
        self.stop.len()
    }

    pub fn weight(&self, i: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[i])
    }
}

pub(crate) fn check_len(column: &'static str, expected: usize, found: usize) -> Result<(), SurvInputError> {
    if expected == found {
        Ok(())
    } else {
        Err(SurvInputError::Length { column, expected, found })
    }
}

/// Validate optional integer codes (strata / groups) against the row count.
pub(crate) fn check_codes(column: &'static str, n: usize, codes: Option<&[u32]>) -> Result<(), SurvInputError> {
    match codes {
        Some(c) => check_len(column, n, c.len()),
        None => Ok(()),
    }
}
