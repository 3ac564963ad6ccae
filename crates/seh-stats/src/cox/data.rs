//! The input of a Cox fit and its validation.

use super::CoxError;

/// Stratum membership: one code per row, indexing `labels`.
///
/// Strata are reported in label order (R orders strata by factor level), so
/// give labels in the order R would (e.g. `"inst=1", "inst=2", ...`).
#[derive(Clone, PartialEq, Eq)]
pub struct Strata {
    /// Per row, the index of its stratum in `labels`.
    pub codes: Vec<u32>,
    /// Stratum names, e.g. `"site3=1"`.
    pub labels: Vec<String>,
}

impl std::fmt::Debug for Strata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Strata").field("n", &self.codes.len()).field("labels", &self.labels).finish()
    }
}

/// Cox model input: survival outcome, covariates and optional design features.
///
/// Layout: `x` is the `n × p` covariate matrix in **row-major** order
/// (`x[i * p + j]` is covariate `j` of row `i`); the kernel reads a whole row
/// at a time, so row-major is the cache-friendly choice. Rows with missing
/// values must have been removed by the caller (R's `na.omit`).
///
/// Right-censored data: `start = None`, the risk set at time `t` is every row
/// with `stop >= t`. Counting process: `start = Some(..)`, a row is at risk at
/// `t` when `start < t <= stop`.
#[derive(Clone, PartialEq)]
pub struct CoxData {
    /// Number of covariate columns `p`.
    pub p: usize,
    /// Entry times of counting-process rows, or `None` for right-censored data.
    pub start: Option<Vec<f64>>,
    /// Event or censoring times.
    pub stop: Vec<f64>,
    /// Event indicator, 1 = event, 0 = censored.
    pub event: Vec<f64>,
    /// Row-major `n × p` covariates.
    pub x: Vec<f64>,
    /// Optional strata (separate baseline hazards).
    pub strata: Option<Strata>,
    /// Optional case weights (> 0).
    pub weights: Option<Vec<f64>>,
    /// Optional offset added to the linear predictor.
    pub offset: Option<Vec<f64>>,
    /// Optional cluster ids for the robust (sandwich) variance.
    pub cluster: Option<Vec<u64>>,
    /// Names of the `p` coefficients.
    pub terms: Vec<String>,
}

impl std::fmt::Debug for CoxData {
    /// Shape only: the values are patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoxData")
            .field("n", &self.stop.len())
            .field("p", &self.p)
            .field("counting_process", &self.start.is_some())
            .field("strata", &self.strata.as_ref().map(|s| s.labels.len()))
            .field("weights", &self.weights.is_some())
            .field("offset", &self.offset.is_some())
            .field("cluster", &self.cluster.is_some())
            .field("terms", &self.terms)
            .finish()
    }
}

impl CoxData {
    /// Right-censored data with covariates `x` (row-major `n × p`) and term names.
    /// Optional parts are set with the public fields or the `with_*` builders.
    pub fn new(stop: Vec<f64>, event: Vec<f64>, x: Vec<f64>, terms: Vec<String>) -> Self {
        CoxData {
            p: terms.len(),
            start: None,
            stop,
            event,
            x,
            strata: None,
            weights: None,
            offset: None,
            cluster: None,
            terms,
        }
    }

    /// Set counting-process start times.
    pub fn with_start(mut self, start: Vec<f64>) -> Self {
        self.start = Some(start);
        self
    }

    /// Set strata.
    pub fn with_strata(mut self, strata: Strata) -> Self {
        self.strata = Some(strata);
        self
    }

    /// Set case weights.
    pub fn with_weights(mut self, w: Vec<f64>) -> Self {
        self.weights = Some(w);
        self
    }

    /// Set an offset.
    pub fn with_offset(mut self, o: Vec<f64>) -> Self {
        self.offset = Some(o);
        self
    }

    /// Set cluster ids (robust variance).
    pub fn with_cluster(mut self, c: Vec<u64>) -> Self {
        self.cluster = Some(c);
        self
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.stop.len()
    }

    /// Number of strata (1 when unstratified).
    pub fn n_strata(&self) -> usize {
        self.strata.as_ref().map_or(1, |s| s.labels.len().max(1))
    }

    /// Stratum code of row `i` (0 when unstratified). Valid after [`CoxData::validate`].
    pub fn stratum_of(&self, i: usize) -> usize {
        self.strata.as_ref().map_or(0, |s| s.codes[i] as usize)
    }

    /// Check every invariant the engine relies on. Errors name the 1-based row.
    ///
    /// Checks: consistent lengths; finite times, covariates, weights and offsets;
    /// times >= 0; start < stop; event in {0, 1}; weights > 0; stratum codes in
    /// range; at least one event.
    pub fn validate(&self) -> Result<(), CoxError> {
        let n = self.n();
        if n == 0 {
            return Err(CoxError::Empty);
        }
        if self.terms.len() != self.p {
            return Err(CoxError::TermNames { names: self.terms.len(), columns: self.p });
        }
        let len = |field, got: usize, expected: usize| {
            if got == expected {
                Ok(())
            } else {
                Err(CoxError::Length { field, expected, got })
            }
        };
        len("event", self.event.len(), n)?;
        len("x", self.x.len(), n * self.p)?;
        if let Some(s) = &self.start {
            len("start", s.len(), n)?;
        }
        if let Some(s) = &self.strata {
            len("strata", s.codes.len(), n)?;
        }
        if let Some(w) = &self.weights {
            len("weights", w.len(), n)?;
        }
        if let Some(o) = &self.offset {
            len("offset", o.len(), n)?;
        }
        if let Some(c) = &self.cluster {
            len("cluster", c.len(), n)?;
        }
        let mut any_event = false;
        for i in 0..n {
            let row = i + 1;
            let stop = self.stop[i];
            if !stop.is_finite() {
                return Err(CoxError::NotFinite { field: "stop", row });
            }
            if stop < 0.0 {
                return Err(CoxError::NegativeTime { field: "stop", row });
            }
            if let Some(s) = &self.start {
                let start = s[i];
                if !start.is_finite() {
                    return Err(CoxError::NotFinite { field: "start", row });
                }
                if start < 0.0 {
                    return Err(CoxError::NegativeTime { field: "start", row });
                }
                if start >= stop {
                    return Err(CoxError::StartNotBeforeStop { row });
                }
            }
            let e = self.event[i];
            if e == 1.0 {
                any_event = true;
            } else if e != 0.0 {
                return Err(CoxError::EventNotBinary { row });
            }
            if self.x[i * self.p..(i + 1) * self.p].iter().any(|v| !v.is_finite()) {
                return Err(CoxError::NotFinite { field: "covariates", row });
            }
            if let Some(w) = &self.weights {
                if !w[i].is_finite() {
                    return Err(CoxError::NotFinite { field: "weights", row });
                }
                if w[i] <= 0.0 {
                    return Err(CoxError::NonPositiveWeight { row });
                }
            }
            if let Some(o) = &self.offset {
                if !o[i].is_finite() {
                    return Err(CoxError::NotFinite { field: "offset", row });
                }
            }
            if let Some(s) = &self.strata {
                if s.codes[i] as usize >= s.labels.len() {
                    return Err(CoxError::BadStratum { row });
                }
            }
        }
        if !any_event {
            return Err(CoxError::NoEvents);
        }
        Ok(())
    }

    /// Apply R's `timefix` (`aeqSurv` with tolerance `sqrt(.Machine$double.eps)`)
    /// in place, see [`timefix`]. Precondition: [`CoxData::validate`] passed.
    pub fn apply_timefix(&mut self) -> Result<(), CoxError> {
        timefix(&mut self.stop, self.start.as_deref_mut())
    }
}

/// R's `aeqSurv`: times (start and stop together) whose successive distinct
/// values differ by at most `sqrt(f64::EPSILON)`, absolutely or relative to the
/// mean absolute distinct time, are replaced by the smallest time of their run.
///
/// Preconditions: finite times, `start < stop`, equal lengths. Errors with the
/// 1-based row if an interval becomes empty.
pub fn timefix(stop: &mut [f64], start: Option<&mut [f64]>) -> Result<(), CoxError> {
    let tol = f64::EPSILON.sqrt();
    // Fast path: integer times below 1e6 are at least 1 apart and the relative
    // gap 1 / mean exceeds the tolerance, so nothing can be merged.
    let small_int = |t: &f64| t.fract() == 0.0 && t.abs() < 1e6;
    if stop.iter().all(small_int) && start.as_deref().is_none_or(|s| s.iter().all(small_int)) {
        return Ok(());
    }
    let mut all: Vec<f64> = stop.to_vec();
    if let Some(s) = start.as_deref() {
        all.extend_from_slice(s);
    }
    all.sort_unstable_by(f64::total_cmp);
    all.dedup();
    if all.len() < 2 {
        return Ok(());
    }
    let mean_abs = all.iter().map(|v| v.abs()).sum::<f64>() / all.len() as f64;
    let mut cuts = Vec::with_capacity(all.len());
    cuts.push(all[0]);
    let mut any_tied = false;
    for w in all.windows(2) {
        let dy = w[1] - w[0];
        if dy <= tol || dy / mean_abs <= tol {
            any_tied = true;
        } else {
            cuts.push(w[1]);
        }
    }
    if !any_tied {
        return Ok(());
    }
    // Largest cut <= t (R's findInterval); every t is >= cuts[0].
    let snap = |t: f64| -> f64 {
        let k = cuts.partition_point(|&c| c <= t);
        cuts[k.saturating_sub(1)]
    };
    for t in stop.iter_mut() {
        *t = snap(*t);
    }
    if let Some(s) = start {
        for (i, t) in s.iter_mut().enumerate() {
            *t = snap(*t);
            if *t >= stop[i] {
                return Err(CoxError::ZeroLengthAfterTimefix { row: i + 1 });
            }
        }
    }
    Ok(())
}
