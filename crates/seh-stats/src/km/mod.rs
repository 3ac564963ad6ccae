//! Kaplan–Meier survival curves, as R `survfit(Surv(time, status) ~ group)`
//! (survival 3.5-3), designed for federation in two steps:
//!
//! 1. [`km_counts`] — per stratum and per time, the (weighted) numbers at risk,
//!    of events and of censorings. This is what a site computes; on a shared
//!    grid ([`time_grid`]) the tables of all sites add up ([`KmCounts::add`]) to
//!    the pooled table.
//! 2. [`km_curves`] — from a (summed) table to the survival curve, Greenwood
//!    standard errors, confidence limits (`log`, `log-log`, `plain`), the
//!    Nelson–Aalen cumulative hazard and the median with its confidence limits.
//!
//! [`km_fit`] does both on pooled rows. The same tables feed the log-rank test
//! ([`crate::logrank`]).

mod counts;
mod curve;
mod input;
mod quantile;

pub use counts::{km_counts, time_grid, KmCounts, StratumCounts};
pub use curve::{km_curves, ConfType, KmCurve, KmFit, KmOptions};
pub use input::SurvInputError;

pub use quantile::find_quantile;

pub(crate) use input::{check_codes, check_len, SurvCols};

/// Kaplan–Meier curves of pooled rows: R's `timefix` (see [`apply_timefix`]),
/// [`km_counts`] (no grid), then [`km_curves`].
///
/// Inputs as for [`km_counts`]; `labels` as for [`km_curves`]. Errors as for
/// both, including no events at all.
pub fn km_fit(
    stop: &[f64],
    start: Option<&[f64]>,
    status: &[f64],
    strata: Option<&[u32]>,
    weights: Option<&[f64]>,
    labels: Option<&[String]>,
    options: &KmOptions,
) -> Result<KmFit, SurvInputError> {
    let (stop, start) = apply_timefix(stop, start)?;
    let counts = km_counts(&stop, start.as_deref(), status, strata, weights, None)?;
    km_curves(&counts, labels, options)
}

/// R's `timefix = TRUE` (`aeqSurv`), which `survfit`, `survdiff` and `coxph`
/// apply by default: distinct times closer than `sqrt(eps)` (absolutely, or
/// relative to the mean distinct time) become the smallest time of their run.
/// Returns corrected copies. In a federation, apply it to the shared grid and
/// let each site replace a time by the largest grid time `<=` it.
///
/// Errors: non-finite times ([`SurvInputError::NotFinite`]), or an interval
/// that becomes empty ([`SurvInputError::BadInterval`]).
pub fn apply_timefix(stop: &[f64], start: Option<&[f64]>) -> Result<(Vec<f64>, Option<Vec<f64>>), SurvInputError> {
    if let Some(i) = stop.iter().position(|t| !t.is_finite()) {
        return Err(SurvInputError::NotFinite { row: i + 1, column: "time" });
    }
    if let Some(s) = start {
        check_len("start", stop.len(), s.len())?;
        if let Some(i) = s.iter().position(|t| !t.is_finite()) {
            return Err(SurvInputError::NotFinite { row: i + 1, column: "start" });
        }
        if let Some(i) = (0..s.len()).find(|&i| s[i] >= stop[i]) {
            return Err(SurvInputError::BadInterval { row: i + 1 });
        }
    }
    let mut stop = stop.to_vec();
    let mut start = start.map(<[f64]>::to_vec);
    crate::cox::data::timefix(&mut stop, start.as_deref_mut()).map_err(|e| match e {
        crate::cox::CoxError::ZeroLengthAfterTimefix { row } => SurvInputError::BadInterval { row },
        _ => SurvInputError::Option("timefix failed"),
    })?;
    Ok((stop, start))
}
