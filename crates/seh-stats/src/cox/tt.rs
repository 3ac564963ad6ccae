//! Time-varying coefficients `tt(x)` (R: `coxph(... + tt(x), tt = function(x, t, ...) ...)`).
//!
//! As R does, the data are expanded at every event time of each stratum: for
//! event time `t`, every row at risk at `t` (stop ≥ t, and start < t for
//! counting-process data) becomes one right-censored row with time `t`,
//! status 1 if it has its event at `t`, and each `tt` column replaced by
//! `f(x, t)`. Each event time becomes its own stratum. The expanded data have
//! `Σ_t |risk set(t)|` rows, which is O(n²) in the worst case, as in R.

use super::data::{CoxData, Strata};
use super::fit::{fit, CoxFit, CoxOptions};
use super::CoxError;

/// A time-transformed covariate: column `column` of the covariate matrix holds
/// the raw value `x`; the model uses `f(x, t)` at event time `t`.
#[derive(Clone, Copy)]
pub struct TtTerm<'a> {
    /// Column index in `CoxData::x` (0-based).
    pub column: usize,
    /// The transform `f(x, t)`.
    pub f: &'a dyn Fn(f64, f64) -> f64,
}

impl std::fmt::Debug for TtTerm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtTerm").field("column", &self.column).finish_non_exhaustive()
    }
}

/// Expand `data` at the event times for the `tt` terms (see the module docs).
///
/// `timefix` is applied first when asked (as `coxph` does before its `tt`
/// step). Errors: invalid data, a `tt` column out of range, or a transform
/// giving a non-finite value (the error names the 1-based input row).
pub fn expand(data: &CoxData, tt: &[TtTerm<'_>], timefix: bool) -> Result<CoxData, CoxError> {
    data.validate()?;
    let p = data.p;
    if let Some(t) = tt.iter().find(|t| t.column >= p) {
        return Err(CoxError::Length { field: "tt column", expected: p, got: t.column + 1 });
    }
    let mut d = data.clone();
    if timefix {
        d.apply_timefix()?;
    }
    let n = d.n();
    let n_strata = d.n_strata();
    let mut by_stratum: Vec<Vec<usize>> = vec![Vec::new(); n_strata];
    for i in 0..n {
        by_stratum[d.stratum_of(i)].push(i);
    }
    let (mut stop, mut event, mut x) = (Vec::new(), Vec::new(), Vec::new());
    let (mut codes, mut weights, mut offset, mut cluster) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut n_sets: u32 = 0;
    for rows in by_stratum.iter_mut() {
        rows.sort_by(|&a, &b| d.stop[b].total_cmp(&d.stop[a]).then(a.cmp(&b)));
        let mut times: Vec<f64> = rows.iter().filter(|&&i| d.event[i] == 1.0).map(|&i| d.stop[i]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        for &t in &times {
            let mut any = false;
            for &i in rows.iter() {
                if d.stop[i] < t {
                    break;
                }
                if d.start.as_ref().is_some_and(|s| s[i] >= t) {
                    continue;
                }
                any = true;
                stop.push(t);
                event.push(if d.stop[i] == t && d.event[i] == 1.0 { 1.0 } else { 0.0 });
                let base = x.len();
                x.extend_from_slice(&d.x[i * p..(i + 1) * p]);
                for term in tt {
                    let v = (term.f)(d.x[i * p + term.column], t);
                    if !v.is_finite() {
                        return Err(CoxError::NotFinite { field: "tt() transform", row: i + 1 });
                    }
                    x[base + term.column] = v;
                }
                codes.push(n_sets);
                if let Some(w) = &d.weights {
                    weights.push(w[i]);
                }
                if let Some(o) = &d.offset {
                    offset.push(o[i]);
                }
                if let Some(c) = &d.cluster {
                    cluster.push(c[i]);
                }
            }
            if any {
                n_sets += 1;
            }
        }
    }
    let mut out = CoxData::new(stop, event, x, d.terms.clone());
    out.strata = Some(Strata { codes, labels: (1..=n_sets).map(|k| format!("tt risk set {k}")).collect() });
    out.weights = d.weights.as_ref().map(|_| weights);
    out.offset = d.offset.as_ref().map(|_| offset);
    out.cluster = d.cluster.as_ref().map(|_| cluster);
    Ok(out)
}

/// Fit a Cox model with time-transformed covariates.
///
/// Reported `n` and `nevent` are those of the input data; `means` are those of
/// the expanded data (as R). The baseline hazard and the concordance are not
/// computed for `tt` models (R's `basehaz` refuses them as well).
pub fn fit_tt(data: &CoxData, tt: &[TtTerm<'_>], opts: &CoxOptions) -> Result<CoxFit, CoxError> {
    let expanded = expand(data, tt, opts.timefix)?;
    let opts2 = CoxOptions { concordance: false, baseline: false, ..opts.clone() };
    let mut f = fit(&expanded, &opts2)?;
    f.n = data.n();
    f.nevent = data.event.iter().filter(|e| **e == 1.0).count();
    Ok(f)
}
