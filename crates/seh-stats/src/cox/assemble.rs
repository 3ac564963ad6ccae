//! Building a [`CoxFit`] from a Newton-driver outcome and summed pieces, without
//! the row-level data: what a federation's coordinator reports.
//!
//! The coordinator of a federated Cox fit holds only secure sums (the model's
//! column means, the number of rows and events, per-iteration log-likelihood,
//! score and information). [`federated_fit`] turns the driver outcome on the
//! kernel's internal scale into the same [`CoxFit`] a local `seh fit cox` reports:
//! coefficients, model-based variance, tests and confidence limits. Parts that
//! need every row (concordance, robust variance) are left out by the caller.

use super::basehaz::BaselineCumhaz;
use super::driver::{Convergence, CoxControl, DriverOutcome};
use super::fit::{assemble, Assembly, CoxFit};
use super::{CoxError, Ties};

/// Everything [`federated_fit`] needs.
#[derive(Debug, Clone)]
pub struct FederatedCox<'a> {
    /// Ties method of the kernel.
    pub ties: Ties,
    /// Coefficient names, length p.
    pub terms: &'a [String],
    /// Iteration controls the driver ran with.
    pub control: CoxControl,
    /// Initial coefficients on the original scale (length p).
    pub init: &'a [f64],
    /// The driver's outcome on the internal (scaled) covariate scale.
    pub outcome: &'a DriverOutcome,
    /// Per-column multipliers of the common centring (`x' = (x − centre) · scale`).
    pub scale: &'a [f64],
    /// Column means as R reports them (0 for columns with values in {−1, 0, 1}).
    pub means: &'a [f64],
    /// Number of rows.
    pub n: usize,
    /// Number of events.
    pub nevent: usize,
    /// Baseline cumulative hazard, if the caller could form it.
    pub baseline: Option<BaselineCumhaz>,
    /// Extra warnings to report.
    pub warnings: Vec<String>,
    /// Whether the data were counting-process rows (changes R's infinite-coefficient check).
    pub counting: bool,
    /// Robust (sandwich) variance and robust score test, if the caller formed them (original
    /// scale; e.g. [`super::robust::robust_from_sums`] of securely summed cluster sums).
    pub robust: Option<super::robust::RobustResult>,
}

/// Assemble the reported fit. Errors: inconsistent lengths.
pub fn federated_fit(a: FederatedCox<'_>) -> Result<CoxFit, CoxError> {
    let p = a.terms.len();
    let out = a.outcome;
    for (field, len) in [("scale", a.scale.len()), ("means", a.means.len()), ("init", a.init.len())] {
        if len != p {
            return Err(CoxError::Length { field, expected: p, got: len });
        }
    }
    if out.beta.len() != p || out.variance.len() != p * p || out.score.len() != p {
        return Err(CoxError::CoefLength { expected: p, got: out.beta.len() });
    }
    let beta: Vec<f64> = out.beta.iter().zip(a.scale).map(|(b, s)| b * s).collect();
    let mut variance = out.variance.clone();
    for i in 0..p {
        for j in 0..p {
            variance[i * p + j] *= a.scale[i] * a.scale[j];
        }
    }
    let score: Vec<f64> = out.score.iter().zip(a.scale).map(|(u, s)| u / s).collect();
    let mut warnings = warnings(out, &beta, &score, &variance, a.control, a.counting);
    warnings.extend(a.warnings);
    Ok(assemble(Assembly {
        ties: a.ties,
        terms: a.terms,
        beta: &beta,
        aliased: &out.aliased,
        variance: &variance,
        robust_var: a.robust.as_ref().map(|r| r.var.as_slice()),
        robust_score: a.robust.as_ref().map(|r| r.score_test),
        init: a.init,
        control: a.control,
        out,
        n: a.n,
        nevent: a.nevent,
        means: a.means,
        baseline: a.baseline,
        warnings,
        concordance: None,
    }))
}

/// The warnings R's `coxph.fit` / `agreg.fit` give (non-convergence, infinite
/// coefficients, aliasing), from original-scale estimates.
fn warnings(
    out: &DriverOutcome,
    beta: &[f64],
    score: &[f64],
    variance: &[f64],
    control: CoxControl,
    counting: bool,
) -> Vec<String> {
    let p = beta.len();
    let mut w = Vec::new();
    if out.convergence == Convergence::MaxIterations {
        w.push("Ran out of iterations and did not converge".to_string());
    }
    if control.iter_max > 1 && out.convergence != Convergence::MaxIterations {
        let infs: Vec<String> = (0..p)
            .filter(|&j| {
                let inf = (0..p).map(|i| score[i] * variance[i * p + j]).sum::<f64>().abs();
                let big = if counting {
                    inf > control.toler_inf * (1.0 + beta[j].abs())
                } else {
                    inf > control.eps && inf > control.toler_inf * beta[j].abs()
                };
                !score[j].is_finite() || big
            })
            .map(|j| (j + 1).to_string())
            .collect();
        if !infs.is_empty() {
            w.push(format!("Loglik converged before variable {}; coefficient may be infinite.", infs.join(",")));
        }
    }
    if out.aliased.iter().any(|a| *a) {
        w.push("X matrix deemed to be singular; coefficient set to NA".to_string());
    }
    w
}
