//! The IRLS driver (the coordinator side) and the R summary.

use super::family::Family;
use super::pieces::{GlmData, GlmPieces, IrlsPoint};
use super::{GlmError, GlmFit, Named, TestStat};
use crate::linalg::SymFactor;
use crate::special::{chisq_upper, normal_two_sided_p, t_two_sided_p};

/// Iteration control (R's `glm.control`, plus the aliasing tolerance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlmControl {
    /// Convergence tolerance on the relative deviance change (R default 1e-8).
    pub epsilon: f64,
    /// Maximum IRLS iterations (R default 25).
    pub maxit: usize,
    /// Relative pivot tolerance for declaring a column aliased (on `XᵀWX` scaled to unit diagonal).
    pub toler_chol: f64,
}

impl Default for GlmControl {
    fn default() -> Self {
        GlmControl { epsilon: 1e-8, maxit: 25, toler_chol: 1e-11 }
    }
}

/// Anything that can evaluate (summed) IRLS pieces: a local [`GlmData`], or a
/// federation that asks every site for [`GlmData::pieces`] and securely sums them.
pub trait GlmSource {
    /// Pieces at `at` using design columns `cols` (summed over all data).
    fn pieces(&mut self, at: &IrlsPoint, cols: &[usize]) -> Result<GlmPieces, GlmError>;
}

impl GlmSource for GlmData<'_> {
    fn pieces(&mut self, at: &IrlsPoint, cols: &[usize]) -> Result<GlmPieces, GlmError> {
        GlmData::pieces(self, at, cols)
    }
}

/// What the driver needs to know about the model (not the data).
#[derive(Debug, Clone, Copy)]
pub struct GlmSpec<'a> {
    /// Family.
    pub family: Family,
    /// Design column names (length `p`).
    pub names: &'a [String],
    /// Whether column 0 is the intercept.
    pub intercept: bool,
    /// Whether the model has an offset (changes how the null deviance is found).
    pub has_offset: bool,
}

/// Pooled fit of one local data set: [`glm_fit_with`] on `data`.
///
/// `names`: one per design column; `intercept`: column 0 is `(Intercept)`.
pub fn glm_fit(
    data: &GlmData<'_>,
    names: &[String],
    intercept: bool,
    control: &GlmControl,
) -> Result<GlmFit, GlmError> {
    if names.len() != data.ncols() {
        return Err(GlmError::Spec("one name per design column is required"));
    }
    let spec = GlmSpec { family: data.family(), names, intercept, has_offset: data.has_offset() };
    let mut src = *data;
    glm_fit_with(&mut src, &spec, control)
}

/// Result of one IRLS run.
struct Irls {
    beta: Vec<f64>,
    aliased: Vec<bool>,
    /// `(XᵀWX)⁻¹` of the last weighted least-squares step (zero rows for aliased).
    cov: Vec<f64>,
    last: GlmPieces,
    iterations: usize,
    converged: bool,
    boundary: bool,
}

/// One weighted least-squares solution: coefficients (0 where aliased), the
/// aliased flags, and the `k × k` generalised inverse of `XᵀWX`.
struct WlsStep {
    beta: Vec<f64>,
    aliased: Vec<bool>,
    inv: Vec<f64>,
}

/// Solve the weighted least-squares step from summed pieces.
fn wls(p: &GlmPieces, toler: f64) -> Result<WlsStep, GlmError> {
    let k = p.k;
    let scale: Vec<f64> =
        (0..k).map(|j| if p.xtwx[j * k + j] > 0.0 { 1.0 / p.xtwx[j * k + j].sqrt() } else { 1.0 }).collect();
    let mut a = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = p.xtwx[i * k + j] * scale[i] * scale[j];
        }
    }
    let rhs: Vec<f64> = (0..k).map(|j| p.xtwz[j] * scale[j]).collect();
    let f = SymFactor::new(&a, k, toler).map_err(|_| GlmError::PiecesShape)?;
    let y = f.solve(&rhs).map_err(|_| GlmError::PiecesShape)?;
    let beta: Vec<f64> = y.iter().zip(&scale).map(|(y, s)| y * s).collect();
    let aliased: Vec<bool> = (0..k).map(|j| f.is_aliased(j)).collect();
    let mut inv = f.inverse();
    for i in 0..k {
        for j in 0..k {
            inv[i * k + j] *= scale[i] * scale[j];
        }
    }
    Ok(WlsStep { beta, aliased, inv })
}

/// R's `glm.fit` iteration on the columns `cols`.
fn irls<S: GlmSource>(src: &mut S, cols: &[usize], control: &GlmControl) -> Result<Irls, GlmError> {
    let mut current = src.pieces(&IrlsPoint::Start, cols)?;
    if !current.deviance.is_finite() || current.n_invalid > 0.0 {
        return Err(GlmError::NoValidStart);
    }
    let bad = |p: &GlmPieces| !p.deviance.is_finite() || p.n_invalid > 0.0;
    let mut devold = current.deviance;
    let mut coefold: Option<Vec<f64>> = None;
    let mut boundary = false;
    let maxit = control.maxit.max(1);
    let mut iter = 0;
    loop {
        iter += 1;
        let WlsStep { mut beta, aliased, inv: cov } = wls(&current, control.toler_chol)?;
        if beta.iter().any(|b| !b.is_finite()) {
            return Err(GlmError::NonFinite(iter));
        }
        let mut next = src.pieces(&IrlsPoint::Beta(beta.clone()), cols)?;
        if bad(&next) {
            let Some(old) = coefold.as_ref() else { return Err(GlmError::NoValidStart) };
            let mut tries = 1;
            while bad(&next) {
                if tries > maxit {
                    return Err(GlmError::StepHalving);
                }
                tries += 1;
                for (b, o) in beta.iter_mut().zip(old) {
                    *b = (*b + o) / 2.0;
                }
                next = src.pieces(&IrlsPoint::Beta(beta.clone()), cols)?;
            }
            boundary = true;
        }
        let dev = next.deviance;
        let converged = (dev - devold).abs() / (dev.abs() + 0.1) < control.epsilon;
        if converged || iter >= maxit {
            return Ok(Irls { beta, aliased, cov, last: next, iterations: iter, converged, boundary });
        }
        devold = dev;
        coefold = Some(beta);
        current = next;
    }
}

/// Fit a GLM from any source of pieces (pooled data or a federation) and
/// assemble R's summary: coefficients, standard errors, Wald tests, variance,
/// deviances, degrees of freedom, log-likelihood, AIC, likelihood-ratio test.
///
/// Rounds of `src.pieces` calls: the start point, one per iteration (plus
/// step halvings), and one or a few for the null deviance.
pub fn glm_fit_with<S: GlmSource>(src: &mut S, spec: &GlmSpec<'_>, control: &GlmControl) -> Result<GlmFit, GlmError> {
    let p = spec.names.len();
    if p == 0 {
        return Err(GlmError::NoColumns);
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(control.epsilon) || !positive(control.toler_chol) {
        return Err(GlmError::Spec("epsilon and toler_chol must be > 0"));
    }
    let fam = spec.family;
    let cols: Vec<usize> = (0..p).collect();
    let fit = irls(src, &cols, control)?;
    let last = &fit.last;
    let rank = fit.aliased.iter().filter(|a| !**a).count();
    let n_obs = last.n_obs;
    let df_residual = n_obs - rank as f64;
    let df_null = n_obs - if spec.intercept { 1.0 } else { 0.0 };
    let null_deviance = null_deviance(src, spec, control, last)?;
    let deviance = last.deviance;
    let dispersion = if fam.estimates_dispersion() {
        if df_residual > 0.0 {
            deviance / df_residual
        } else {
            f64::NAN
        }
    } else {
        1.0
    };
    let aic = match fam {
        Family::Gaussian => {
            n_obs * ((2.0 * std::f64::consts::PI * deviance / n_obs).ln() + 1.0) + 2.0 - last.aic_sum
                + 2.0 * rank as f64
        }
        _ => last.aic_sum + 2.0 * rank as f64,
    };
    let npar = rank as f64 + if fam.estimates_dispersion() { 1.0 } else { 0.0 };
    let loglik = npar - aic / 2.0;

    let nan_if = |alias: bool, v: f64| if alias { f64::NAN } else { v };
    let coef: Vec<f64> = fit.beta.iter().zip(&fit.aliased).map(|(b, a)| nan_if(*a, *b)).collect();
    let se: Vec<f64> = (0..p).map(|j| nan_if(fit.aliased[j], (fit.cov[j * p + j] * dispersion).sqrt())).collect();
    let stat: Vec<f64> = coef.iter().zip(&se).map(|(b, s)| b / s).collect();
    let pval: Vec<f64> = stat
        .iter()
        .map(|s| if fam.estimates_dispersion() { t_two_sided_p(*s, df_residual) } else { normal_two_sided_p(*s) })
        .collect();
    let var: Vec<Vec<f64>> = (0..p)
        .map(|i| (0..p).map(|j| nan_if(fit.aliased[i] || fit.aliased[j], fit.cov[i * p + j] * dispersion)).collect())
        .collect();
    let named = |values: Vec<f64>| Named { names: spec.names.to_vec(), values };
    let expcoef = || named(coef.iter().map(|b| b.exp()).collect());
    let lrt_df = df_null - df_residual;
    let lrt_stat = (null_deviance - deviance) / dispersion;
    let lrt = TestStat { statistic: lrt_stat, df: lrt_df, p: chisq_upper(lrt_stat, lrt_df) };

    let mut warnings = Vec::new();
    if !fit.converged {
        warnings.push("glm.fit: algorithm did not converge".to_string());
    }
    if fit.boundary {
        warnings.push("glm.fit: algorithm stopped at boundary value".to_string());
    }
    if last.n_boundary > 0.0 {
        warnings.push(match fam {
            Family::Binomial => "glm.fit: fitted probabilities numerically 0 or 1 occurred".to_string(),
            _ => "glm.fit: fitted rates numerically 0 occurred".to_string(),
        });
    }
    let aliased = (0..p).filter(|&j| fit.aliased[j]).map(|j| spec.names[j].clone()).collect();
    Ok(GlmFit {
        family: fam,
        link: fam.link(),
        n: n_obs,
        terms: spec.names.to_vec(),
        odds_ratio: (fam == Family::Binomial).then(expcoef),
        rate_ratio: (fam == Family::Poisson).then(expcoef),
        z: (!fam.estimates_dispersion()).then(|| named(stat.clone())),
        t: fam.estimates_dispersion().then(|| named(stat.clone())),
        coef: named(coef.clone()),
        se: named(se),
        p: named(pval),
        var,
        dispersion,
        deviance,
        null_deviance,
        df_residual,
        df_null,
        loglik,
        aic,
        lrt,
        iterations: fit.iterations,
        converged: fit.converged,
        aliased,
        warnings,
    })
}

/// R's null deviance: with an intercept and no offset, the deviance at the
/// weighted mean response; without an intercept, at `eta = offset`; with both
/// an intercept and an offset, an intercept-only IRLS fit (as `glm` does).
fn null_deviance<S: GlmSource>(
    src: &mut S,
    spec: &GlmSpec<'_>,
    control: &GlmControl,
    last: &GlmPieces,
) -> Result<f64, GlmError> {
    let fam = spec.family;
    if !spec.intercept {
        let zero = vec![0.0; spec.names.len()];
        let cols: Vec<usize> = (0..spec.names.len()).collect();
        return Ok(src.pieces(&IrlsPoint::Beta(zero), &cols)?.deviance);
    }
    if !spec.has_offset {
        let wtdmu = last.sum_wy / last.sum_w;
        let b0 = fam.linkfun(wtdmu);
        return Ok(src.pieces(&IrlsPoint::Beta(vec![b0]), &[0])?.deviance);
    }
    Ok(irls(src, &[0], control)?.last.deviance)
}
