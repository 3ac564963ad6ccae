//! The site side of IRLS: additive pieces `XᵀWX`, `XᵀWz`, deviance and
//! likelihood sums of one data set at one point. Summing the pieces of all
//! sites gives exactly the pieces of the pooled rows.

use serde::{Deserialize, Serialize};

use super::family::Family;
use super::GlmError;

/// Where to evaluate the pieces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IrlsPoint {
    /// R's starting point: `eta = linkfun(mustart)` from the family's `initialize`.
    Start,
    /// `eta = X[, cols] β + offset` for coefficients `β` on the selected columns.
    Beta(Vec<f64>),
}

/// Additive sufficient statistics of one IRLS round (sum them over sites with [`GlmPieces::add`]).
///
/// Invariant: `xtwx` is `k × k` row-major and `xtwz` has length `k`, where
/// `k` is the number of selected columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlmPieces {
    /// Number of selected columns `k`.
    pub k: usize,
    /// `Xᵀ W X` with working weights `W = w · mu_eta² / V(mu)` at the point.
    pub xtwx: Vec<f64>,
    /// `Xᵀ W z` with working response `z = eta − offset + (y − mu) / mu_eta`.
    pub xtwz: Vec<f64>,
    /// Deviance at the point (sum of `dev.resids`).
    pub deviance: f64,
    /// Sum of the family's per-row AIC terms at the point (see [`Family`]).
    pub aic_sum: f64,
    /// Rows with positive prior weight.
    pub n_obs: f64,
    /// Sum of prior weights.
    pub sum_w: f64,
    /// Sum of prior weight × response.
    pub sum_wy: f64,
    /// Rows whose fitted value is numerically 0 or 1 (binomial) or 0 (poisson).
    pub n_boundary: f64,
    /// Rows whose fitted mean is invalid for the family (R's `validmu` fails).
    pub n_invalid: f64,
}

impl GlmPieces {
    fn zero(k: usize) -> Self {
        GlmPieces {
            k,
            xtwx: vec![0.0; k * k],
            xtwz: vec![0.0; k],
            deviance: 0.0,
            aic_sum: 0.0,
            n_obs: 0.0,
            sum_w: 0.0,
            sum_wy: 0.0,
            n_boundary: 0.0,
            n_invalid: 0.0,
        }
    }

    /// Add another site's pieces (same point, same columns) into these.
    pub fn add(&mut self, other: &GlmPieces) -> Result<(), GlmError> {
        if other.k != self.k || other.xtwx.len() != self.k * self.k || other.xtwz.len() != self.k {
            return Err(GlmError::PiecesShape);
        }
        for (a, b) in self.xtwx.iter_mut().zip(&other.xtwx) {
            *a += b;
        }
        for (a, b) in self.xtwz.iter_mut().zip(&other.xtwz) {
            *a += b;
        }
        self.deviance += other.deviance;
        self.aic_sum += other.aic_sum;
        self.n_obs += other.n_obs;
        self.sum_w += other.sum_w;
        self.sum_wy += other.sum_wy;
        self.n_boundary += other.n_boundary;
        self.n_invalid += other.n_invalid;
        Ok(())
    }
}

/// One data set for a GLM: a row-major `n × p` design, response, optional prior
/// weights and offset, and the family. Construct with [`GlmData::new`], which
/// validates every value.
#[derive(Clone, Copy)]
pub struct GlmData<'a> {
    x: &'a [f64],
    p: usize,
    y: &'a [f64],
    weights: Option<&'a [f64]>,
    offset: Option<&'a [f64]>,
    family: Family,
}

impl std::fmt::Debug for GlmData<'_> {
    /// Shape only: the values may be patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlmData").field("n", &self.y.len()).field("p", &self.p).field("family", &self.family).finish()
    }
}

impl<'a> GlmData<'a> {
    /// Validate and wrap the data.
    ///
    /// `x`: row-major design with `p >= 1` columns (`x.len() == n · p`); `y`:
    /// response (binomial: in `[0, 1]` with `weights · y` integral, i.e. 0/1 or
    /// a proportion of `weights` trials; poisson: non-negative integers);
    /// `weights`: prior weights, finite and `> 0`; `offset`: finite.
    /// Errors name the 1-based row and column, never a value.
    pub fn new(
        x: &'a [f64],
        p: usize,
        y: &'a [f64],
        weights: Option<&'a [f64]>,
        offset: Option<&'a [f64]>,
        family: Family,
    ) -> Result<Self, GlmError> {
        let n = y.len();
        if n == 0 {
            return Err(GlmError::Empty);
        }
        if p == 0 {
            return Err(GlmError::NoColumns);
        }
        if x.len() != n * p {
            return Err(GlmError::Length { column: "x", expected: n * p, found: x.len() });
        }
        if let Some(w) = weights {
            if w.len() != n {
                return Err(GlmError::Length { column: "weights", expected: n, found: w.len() });
            }
        }
        if let Some(o) = offset {
            if o.len() != n {
                return Err(GlmError::Length { column: "offset", expected: n, found: o.len() });
            }
        }
        for i in 0..n {
            let row = i + 1;
            if let Some(j) = x[i * p..(i + 1) * p].iter().position(|v| !v.is_finite()) {
                return Err(GlmError::NotFinite { row, column: format!("x[{}]", j + 1) });
            }
            let w = weights.map_or(1.0, |w| w[i]);
            if !(w.is_finite() && w > 0.0) {
                return Err(GlmError::BadWeight { row });
            }
            if offset.is_some_and(|o| !o[i].is_finite()) {
                return Err(GlmError::NotFinite { row, column: "offset".into() });
            }
            let yi = y[i];
            if !yi.is_finite() {
                return Err(GlmError::NotFinite { row, column: "response".into() });
            }
            match family {
                Family::Binomial => {
                    let k = w * yi;
                    if !(0.0..=1.0).contains(&yi) || (k - k.round()).abs() > 1e-8 * w.max(1.0) {
                        return Err(GlmError::BadResponse {
                            row,
                            family,
                            rule: "must be 0/1 (or a proportion of the weight in trials)",
                        });
                    }
                }
                Family::Poisson => {
                    if yi < 0.0 || yi.fract() != 0.0 {
                        return Err(GlmError::BadResponse {
                            row,
                            family,
                            rule: "must be a non-negative integer count",
                        });
                    }
                }
                Family::Gaussian => {}
            }
        }
        Ok(GlmData { x, p, y, weights, offset, family })
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.y.len()
    }

    /// Number of design columns.
    pub fn ncols(&self) -> usize {
        self.p
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether an offset was given.
    pub fn has_offset(&self) -> bool {
        self.offset.is_some()
    }

    /// Evaluate the additive pieces at `at`, using the design columns `cols`
    /// (indices `< p`, no repeats; `β` in `at` is in the order of `cols`).
    pub fn pieces(&self, at: &IrlsPoint, cols: &[usize]) -> Result<GlmPieces, GlmError> {
        let k = cols.len();
        if cols.iter().any(|&c| c >= self.p) {
            return Err(GlmError::PiecesShape);
        }
        if let IrlsPoint::Beta(b) = at {
            if b.len() != k {
                return Err(GlmError::PiecesShape);
            }
        }
        let fam = self.family;
        let mut out = GlmPieces::zero(k);
        let mut xs = vec![0.0; k];
        for i in 0..self.y.len() {
            let row = &self.x[i * self.p..(i + 1) * self.p];
            for (v, &c) in xs.iter_mut().zip(cols) {
                *v = row[c];
            }
            let (y, w) = (self.y[i], self.weights.map_or(1.0, |w| w[i]));
            let off = self.offset.map_or(0.0, |o| o[i]);
            let eta = match at {
                IrlsPoint::Start => fam.linkfun(fam.mustart(y, w)),
                IrlsPoint::Beta(b) => xs.iter().zip(b).map(|(x, b)| x * b).sum::<f64>() + off,
            };
            let mu = fam.linkinv(eta);
            out.deviance += fam.dev_resid(y, mu, w);
            out.aic_sum += fam.aic_term(y, mu, w);
            out.n_obs += 1.0;
            out.sum_w += w;
            out.sum_wy += w * y;
            if !fam.valid_mu(mu) {
                out.n_invalid += 1.0;
            }
            let eps = 10.0 * f64::EPSILON;
            let boundary = match fam {
                Family::Binomial => mu > 1.0 - eps || mu < eps,
                Family::Poisson => mu < eps,
                Family::Gaussian => false,
            };
            if boundary {
                out.n_boundary += 1.0;
            }
            let d = fam.mu_eta(eta);
            if d == 0.0 {
                continue; // R drops rows with mu.eta == 0 from the weighted least squares
            }
            let z = eta - off + (y - mu) / d;
            let ww = w * d * d / fam.variance(mu);
            for (a, &xa) in xs.iter().enumerate() {
                let wa = ww * xa;
                out.xtwz[a] += wa * z;
                for (cell, &xb) in out.xtwx[a * k + a..(a + 1) * k].iter_mut().zip(&xs[a..]) {
                    *cell += wa * xb;
                }
            }
        }
        for a in 0..k {
            for b in 0..a {
                out.xtwx[a * k + b] = out.xtwx[b * k + a];
            }
        }
        Ok(out)
    }
}
