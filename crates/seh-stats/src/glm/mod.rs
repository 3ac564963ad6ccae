//! Generalised linear models by iteratively reweighted least squares, as R's
//! `glm.fit` (binomial/logit, gaussian/identity, poisson/log; prior weights and
//! offset), split for federation:
//!
//! - the **site step** [`GlmData::pieces`] evaluates, at a point (R's start
//!   values or a coefficient vector), the additive pieces `XᵀWX`, `XᵀWz`,
//!   deviance and likelihood sums ([`GlmPieces`]);
//! - the **driver** [`glm_fit_with`] runs R's iteration (convergence rule
//!   `|dev − dev_old| / (|dev| + 0.1) < epsilon`, step halving) on any
//!   [`GlmSource`] of summed pieces, and assembles the R summary.
//!
//! [`glm_fit`] is the pooled fit: the driver on one local [`GlmData`].
//!
//! Differences from R, by design: the weighted least-squares step solves the
//! normal equations by a Cholesky factorisation (that is all a federation can
//! sum) instead of R's QR, after scaling `XᵀWX` to unit diagonal; a column is
//! aliased when its squared residual norm relative to its own norm is below
//! `toler_chol` (R's QR uses `min(1e-7, epsilon/1000)` on the unsquared norm).
//! Prior weights must be positive (R also allows zero weights).

mod family;
mod fit;
mod pieces;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use thiserror::Error;

pub use family::Family;
pub use fit::{glm_fit, glm_fit_with, GlmControl, GlmSource, GlmSpec};
pub use pieces::{GlmData, GlmPieces, IrlsPoint};

/// Errors of the GLM code. Rows are 1-based; no message contains a data value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum GlmError {
    /// No rows.
    #[error("no observations (the data has zero rows)")]
    Empty,
    /// No design columns.
    #[error("the model has no coefficients (the design has zero columns)")]
    NoColumns,
    /// Inconsistent lengths.
    #[error("`{column}` has {found} values, expected {expected}")]
    Length {
        /// The column.
        column: &'static str,
        /// Expected length.
        expected: usize,
        /// Found length.
        found: usize,
    },
    /// A value is missing or infinite.
    #[error("row {row}: `{column}` is missing or not finite")]
    NotFinite {
        /// 1-based row.
        row: usize,
        /// The column.
        column: String,
    },
    /// A prior weight is not strictly positive.
    #[error("row {row}: prior weights must be finite and > 0")]
    BadWeight {
        /// 1-based row.
        row: usize,
    },
    /// The response violates the family's rule.
    #[error("row {row}: the {family:?} response {rule}")]
    BadResponse {
        /// 1-based row.
        row: usize,
        /// The family.
        family: Family,
        /// The rule that was violated.
        rule: &'static str,
    },
    /// Pieces of different shape were combined, or a point/column list does not fit the data.
    #[error("IRLS pieces have inconsistent dimensions")]
    PiecesShape,
    /// The names / intercept specification does not match the data.
    #[error("model specification: {0}")]
    Spec(&'static str),
    /// R: "no valid set of coefficients has been found: please supply starting values".
    #[error("no valid set of coefficients has been found (the first step diverged)")]
    NoValidStart,
    /// R: "inner loop; cannot correct step size".
    #[error("IRLS step halving could not find a valid step")]
    StepHalving,
    /// Non-finite coefficients from the weighted least-squares step.
    #[error("non-finite coefficients at iteration {0}")]
    NonFinite(usize),
    /// An error reported by a remote source of pieces (federation), with the party at fault.
    #[error("site {party}: {message}")]
    Source {
        /// The site.
        party: String,
        /// What went wrong.
        message: String,
    },
}

/// A vector with a name per element; serialises as a JSON object in order
/// (`{"(Intercept)": 0.48, "age": -0.03}`), as the reference files do.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// Element names (the design column names).
    pub names: Vec<String>,
    /// Values (NaN for aliased coefficients; serialises as `null`).
    pub values: Vec<f64>,
}

impl Named {
    /// The value for `name`, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names.iter().position(|n| n == name).map(|i| self.values[i])
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.names.len()))?;
        for (k, v) in self.names.iter().zip(&self.values) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A test statistic with degrees of freedom and p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TestStat {
    /// The statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Upper-tail p-value.
    pub p: f64,
}

/// A fitted GLM with R's `summary.glm` quantities, field names as in the reference JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlmFit {
    /// Family.
    pub family: Family,
    /// Link name.
    pub link: &'static str,
    /// Number of observations.
    pub n: f64,
    /// Design column names, the order of every vector and matrix.
    pub terms: Vec<String>,
    /// Coefficients (NaN = aliased).
    pub coef: Named,
    /// Standard errors (scaled by the dispersion).
    pub se: Named,
    /// Wald z statistics (binomial, poisson).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z: Option<Named>,
    /// Wald t statistics (gaussian: dispersion estimated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t: Option<Named>,
    /// Two-sided p-values (normal for z, t with `df_residual` for t).
    pub p: Named,
    /// `exp(coef)` for the logit link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub odds_ratio: Option<Named>,
    /// `exp(coef)` for the log link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_ratio: Option<Named>,
    /// Variance matrix of the coefficients (`dispersion × (XᵀWX)⁻¹`; NaN rows/columns for aliased).
    pub var: Vec<Vec<f64>>,
    /// Dispersion (1 for binomial and poisson; `Σ w (y − mu)² / df_residual` for gaussian).
    pub dispersion: f64,
    /// Residual deviance.
    pub deviance: f64,
    /// Null deviance.
    pub null_deviance: f64,
    /// Residual degrees of freedom.
    pub df_residual: f64,
    /// Null degrees of freedom.
    pub df_null: f64,
    /// Log-likelihood (R's `logLik`).
    pub loglik: f64,
    /// AIC.
    pub aic: f64,
    /// Likelihood-ratio test against the null model: deviance difference
    /// divided by the dispersion (for gaussian: `anova(fit, test = "Chisq")`).
    pub lrt: TestStat,
    /// IRLS iterations (R's `iter`).
    pub iterations: usize,
    /// Whether the convergence criterion was met.
    pub converged: bool,
    /// Names of aliased (collinear) columns.
    pub aliased: Vec<String>,
    /// R's warnings, e.g. "fitted probabilities numerically 0 or 1 occurred".
    pub warnings: Vec<String>,
}
