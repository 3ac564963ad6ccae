//! Local Cox fit and its result, with the field names of the reference JSON
//! (`testdata/ref/expected/*.json`).

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::basehaz::{baseline_cumhaz, BaselineCumhaz};
use super::data::CoxData;
use super::driver::{Convergence, CoxControl, DriverOutcome, DriverRequest, Flavour, NewtonDriver};
use super::kernel::{evaluate_local, Evaluation, FoldSink, Workspace};
use super::prepared::{PrepareOptions, PreparedCox};
use super::{robust, CoxError, Ties};
use crate::concordance::Concordance;
use crate::linalg::{cholesky2, chsolve2};
use crate::special::{chisq_upper, normal_two_sided_p};

/// `qnorm(0.975)`.
const Z975: f64 = 1.959_963_984_540_054;

/// Options of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct CoxOptions {
    /// Ties method (default Efron).
    pub ties: Ties,
    /// Iteration controls.
    pub control: CoxControl,
    /// Initial coefficients (original scale); `None` = zeros.
    pub init: Option<Vec<f64>>,
    /// Apply R's `timefix` (default true).
    pub timefix: bool,
    /// Compute the concordance (default true).
    pub concordance: bool,
    /// Compute the baseline cumulative hazard (default true).
    pub baseline: bool,
}

impl Default for CoxOptions {
    fn default() -> Self {
        CoxOptions {
            ties: Ties::Efron,
            control: CoxControl::default(),
            init: None,
            timefix: true,
            concordance: true,
            baseline: true,
        }
    }
}

/// Per-term values serialised as a JSON object in term order (`null` for an
/// aliased coefficient, as R's `NA`).
#[derive(Debug, Clone, PartialEq)]
pub struct TermMap(pub Vec<(String, Option<f64>)>);

impl TermMap {
    /// Value of `term`, if present and not aliased.
    pub fn get(&self, term: &str) -> Option<f64> {
        self.0.iter().find(|(t, _)| t == term).and_then(|(_, v)| *v)
    }

    /// The values in term order.
    pub fn values(&self) -> Vec<Option<f64>> {
        self.0.iter().map(|(_, v)| *v).collect()
    }
}

impl Serialize for TermMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A chi-square test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChisqTest {
    /// Test statistic.
    pub statistic: f64,
    /// Degrees of freedom.
    pub df: usize,
    /// Upper-tail p-value.
    pub p: f64,
}

impl ChisqTest {
    fn new(statistic: f64, df: usize) -> Self {
        ChisqTest { statistic, df, p: if df == 0 { f64::NAN } else { chisq_upper(statistic, df as f64) } }
    }
}

/// A fitted Cox model (R's `coxph` + `summary.coxph`).
///
/// With clusters, `z`, `p`, the confidence limits and the Wald test use the
/// robust variance (as R's summary does); `se` and `var` stay model-based and
/// `robust_se` / `robust_var` hold the sandwich.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoxFit {
    /// Ties method.
    pub ties: Ties,
    /// Coefficient names.
    pub terms: Vec<String>,
    /// Coefficients (`null` when aliased).
    pub coef: TermMap,
    /// Model-based standard errors.
    pub se: TermMap,
    /// Wald z.
    pub z: TermMap,
    /// Two-sided p-values.
    pub p: TermMap,
    /// `exp(coef)`.
    pub hazard_ratio: TermMap,
    /// Lower 95 % limit of the hazard ratio.
    pub hr_lower95: TermMap,
    /// Upper 95 % limit of the hazard ratio.
    pub hr_upper95: TermMap,
    /// Model-based variance (inverse information), rows in term order; aliased rows/columns are 0.
    pub var: Vec<Vec<f64>>,
    /// Log partial likelihood at the initial coefficients (zero by default).
    pub loglik_null: f64,
    /// Log partial likelihood at the estimate.
    pub loglik: f64,
    /// Likelihood-ratio test.
    pub lrt: ChisqTest,
    /// Score (log-rank) test at the initial coefficients.
    pub score_test: ChisqTest,
    /// Wald test.
    pub wald_test: ChisqTest,
    /// Rows used.
    pub n: usize,
    /// Number of events.
    pub nevent: usize,
    /// Newton iterations.
    pub iterations: u32,
    /// How the iteration ended.
    pub convergence: Convergence,
    /// Column means (R's `fit$means`; 0 for columns with values in {-1, 0, 1}).
    pub means: TermMap,
    /// Breslow cumulative baseline hazard at covariates 0.
    pub baseline_cumhaz: Option<BaselineCumhaz>,
    /// Warnings (non-convergence, infinite coefficients, aliased terms).
    pub warnings: Vec<String>,
    /// Robust standard errors (with clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_se: Option<TermMap>,
    /// Robust (sandwich) variance (with clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_var: Option<Vec<Vec<f64>>>,
    /// Robust score test (with clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust_score_test: Option<ChisqTest>,
    /// Concordance as coxph reports it.
    pub concordance: Option<Concordance>,
}

/// Run the Newton driver locally on prepared data with the Breslow/Efron kernel.
pub fn run_driver(
    prep: &PreparedCox,
    ties: Ties,
    control: CoxControl,
    init_internal: &[f64],
) -> Result<DriverOutcome, CoxError> {
    let flavour = if prep.is_counting_process() { Flavour::CountingProcess } else { Flavour::RightCensored };
    let mut ws = Workspace::new(prep);
    let mut sink = FoldSink::new(prep.p(), ties);
    drive(prep.p(), init_internal, control, flavour, |beta| evaluate_local(prep, beta, ties, &mut ws, &mut sink))
}

/// Run the Newton driver with any evaluation function.
pub(crate) fn drive<F>(
    p: usize,
    init_internal: &[f64],
    control: CoxControl,
    flavour: Flavour,
    mut eval: F,
) -> Result<DriverOutcome, CoxError>
where
    F: FnMut(&[f64]) -> Result<Evaluation, CoxError>,
{
    let mut driver = NewtonDriver::new(p, init_internal, control, flavour)?;
    loop {
        match driver.next() {
            DriverRequest::Evaluate(beta) => driver.feed(eval(&beta)?)?,
            DriverRequest::Done(out) => return Ok(out),
        }
    }
}

/// Fit a Cox model to `data` (R: `coxph(Surv(...) ~ ..., ties = , control = )`).
///
/// Validates the data (see [`CoxData::validate`]), applies `timefix`, runs
/// Newton–Raphson and assembles estimates, tests, baseline hazard, robust
/// variance (when `data.cluster` is set) and concordance.
pub fn fit(data: &CoxData, opts: &CoxOptions) -> Result<CoxFit, CoxError> {
    let prep = PreparedCox::new(data, &PrepareOptions { timefix: opts.timefix, ..PrepareOptions::default() })?;
    let init = match &opts.init {
        Some(b) if b.len() != data.p => return Err(CoxError::CoefLength { expected: data.p, got: b.len() }),
        Some(b) => prep.to_internal(b),
        None => vec![0.0; data.p],
    };
    let out = if opts.ties == Ties::Exact {
        super::exact::run_exact(&prep, data, opts.control, &init)?
    } else {
        run_driver(&prep, opts.ties, opts.control, &init)?
    };
    finish_fit(data, &prep, opts, out)
}

/// Turn a driver outcome on prepared data into the reported fit.
pub(crate) fn finish_fit(
    data: &CoxData,
    prep: &PreparedCox,
    opts: &CoxOptions,
    out: DriverOutcome,
) -> Result<CoxFit, CoxError> {
    let beta = prep.to_original(&out.beta);
    let p = data.p;
    let mut variance = out.variance.clone();
    for i in 0..p {
        for j in 0..p {
            variance[i * p + j] *= prep.scale()[i] * prep.scale()[j];
        }
    }
    let score: Vec<f64> = out.score.iter().zip(prep.scale()).map(|(u, s)| u / s).collect();
    let init_orig = opts.init.clone().unwrap_or_else(|| vec![0.0; p]);

    let mut warnings = convergence_warnings(&out, &beta, &score, &variance, opts, prep.is_counting_process());

    let (robust_var, robust_score) = if data.cluster.is_some() {
        if opts.ties == Ties::Exact {
            return Err(CoxError::Unsupported("robust variance with ties = \"exact\""));
        }
        let r = robust::robust_variance(data, prep, opts.ties, &beta, &variance, &init_orig, opts.control.toler_chol)?;
        (Some(r.var), Some(r.score_test))
    } else {
        (None, None)
    };
    let baseline = if opts.baseline { Some(baseline_cumhaz(prep, &out.beta, &beta, opts.ties)?) } else { None };
    let concordance = if opts.concordance {
        match concordance_of(data, &beta, opts.timefix) {
            Ok(c) => Some(c),
            Err(e) => {
                warnings.push(format!("concordance not computed: {e}"));
                None
            }
        }
    } else {
        None
    };
    let nevent = data.event.iter().filter(|e| **e == 1.0).count();
    Ok(assemble(Assembly {
        ties: opts.ties,
        terms: &data.terms,
        beta: &beta,
        aliased: &out.aliased,
        variance: &variance,
        robust_var: robust_var.as_deref(),
        robust_score,
        init: &init_orig,
        control: opts.control,
        out: &out,
        n: data.n(),
        nevent,
        means: prep.means(),
        baseline,
        warnings,
        concordance,
    }))
}

fn concordance_of(data: &CoxData, beta: &[f64], timefix: bool) -> Result<Concordance, String> {
    let p = data.p;
    let lp: Vec<f64> = (0..data.n())
        .map(|i| {
            data.x[i * p..(i + 1) * p].iter().zip(beta).map(|(x, b)| x * b).sum::<f64>()
                + data.offset.as_ref().map_or(0.0, |o| o[i])
        })
        .collect();
    let mut fixed = CoxData::new(data.stop.clone(), data.event.clone(), Vec::new(), Vec::new());
    fixed.start = data.start.clone();
    if timefix {
        fixed.apply_timefix().map_err(|e| e.to_string())?;
    }
    let strata = data.strata.as_ref().map(|s| s.codes.as_slice());
    crate::concordance::concordance_clustered(
        &fixed.stop,
        fixed.start.as_deref(),
        &data.event,
        strata,
        data.weights.as_deref(),
        &lp,
        data.cluster.as_deref(),
    )
    .map_err(|e| e.to_string())
}

/// Warnings R's `coxph.fit` / `agreg.fit` would give.
fn convergence_warnings(
    out: &DriverOutcome,
    beta: &[f64],
    score: &[f64],
    variance: &[f64],
    opts: &CoxOptions,
    counting: bool,
) -> Vec<String> {
    let p = beta.len();
    let mut w = Vec::new();
    if out.convergence == Convergence::MaxIterations {
        w.push("Ran out of iterations and did not converge".to_string());
    }
    if opts.control.iter_max > 1 && out.convergence != Convergence::MaxIterations {
        let infs: Vec<usize> = (0..p)
            .filter(|&j| {
                let inf = (0..p).map(|i| score[i] * variance[i * p + j]).sum::<f64>().abs();
                let big = if counting {
                    inf > opts.control.toler_inf * (1.0 + beta[j].abs())
                } else {
                    inf > opts.control.eps && inf > opts.control.toler_inf * beta[j].abs()
                };
                !score[j].is_finite() || big
            })
            .map(|j| j + 1)
            .collect();
        if !infs.is_empty() {
            let list: Vec<String> = infs.iter().map(|j| j.to_string()).collect();
            w.push(format!("Loglik converged before variable {}; coefficient may be infinite.", list.join(",")));
        }
    }
    if out.aliased.iter().any(|a| *a) {
        w.push("X matrix deemed to be singular; coefficient set to NA".to_string());
    }
    w
}

/// Everything needed to build a [`CoxFit`] (shared with the exact and tt fits).
pub(crate) struct Assembly<'a> {
    pub ties: Ties,
    pub terms: &'a [String],
    /// Original-scale coefficients.
    pub beta: &'a [f64],
    pub aliased: &'a [bool],
    /// Original-scale model variance, row-major.
    pub variance: &'a [f64],
    pub robust_var: Option<&'a [f64]>,
    pub robust_score: Option<f64>,
    pub init: &'a [f64],
    pub control: CoxControl,
    pub out: &'a DriverOutcome,
    pub n: usize,
    pub nevent: usize,
    pub means: &'a [f64],
    pub baseline: Option<BaselineCumhaz>,
    pub warnings: Vec<String>,
    pub concordance: Option<Concordance>,
}

/// `bᵀ V⁻¹ b` over the non-aliased coefficients with R's `coxph.wtest`; returns (statistic, df).
pub(crate) fn wald(var: &[f64], b: &[f64], keep: &[usize], toler: f64) -> Result<(f64, usize), CoxError> {
    let k = keep.len();
    let p = b.len();
    let mut sub = vec![0.0; k * k];
    for (a, &i) in keep.iter().enumerate() {
        for (c, &j) in keep.iter().enumerate() {
            sub[a * k + c] = var[i * p + j];
        }
    }
    let bb: Vec<f64> = keep.iter().map(|&i| b[i]).collect();
    let mut sol = bb.clone();
    let rank = cholesky2(&mut sub, k, toler)?;
    chsolve2(&sub, k, &mut sol)?;
    Ok((bb.iter().zip(&sol).map(|(x, y)| x * y).sum(), rank.rank))
}

pub(crate) fn assemble(a: Assembly<'_>) -> CoxFit {
    let p = a.beta.len();
    let keep: Vec<usize> = (0..p).filter(|&i| !a.aliased[i]).collect();
    let df = keep.len();
    let per_term = |f: &dyn Fn(usize) -> f64| -> TermMap {
        TermMap(a.terms.iter().enumerate().map(|(i, t)| (t.clone(), (!a.aliased[i]).then(|| f(i)))).collect())
    };
    let test_var = a.robust_var.unwrap_or(a.variance);
    let se_model = |i: usize| a.variance[i * p + i].sqrt();
    let se_test = |i: usize| test_var[i * p + i].sqrt();
    let rows = |v: &[f64]| -> Vec<Vec<f64>> { (0..p).map(|i| v[i * p..(i + 1) * p].to_vec()).collect() };
    let diff: Vec<f64> = a.beta.iter().zip(a.init).map(|(b, i)| b - i).collect();
    let wald_test = match wald(test_var, &diff, &keep, a.control.toler_chol) {
        Ok((s, d)) => ChisqTest::new(s, d),
        Err(_) => ChisqTest { statistic: f64::NAN, df, p: f64::NAN },
    };
    CoxFit {
        ties: a.ties,
        terms: a.terms.to_vec(),
        coef: per_term(&|i| a.beta[i]),
        se: per_term(&se_model),
        z: per_term(&|i| a.beta[i] / se_test(i)),
        p: per_term(&|i| normal_two_sided_p(a.beta[i] / se_test(i))),
        hazard_ratio: per_term(&|i| a.beta[i].exp()),
        hr_lower95: per_term(&|i| (a.beta[i] - Z975 * se_test(i)).exp()),
        hr_upper95: per_term(&|i| (a.beta[i] + Z975 * se_test(i)).exp()),
        var: rows(a.variance),
        loglik_null: a.out.loglik_init,
        loglik: a.out.loglik,
        lrt: ChisqTest::new(2.0 * (a.out.loglik - a.out.loglik_init), df),
        score_test: ChisqTest::new(a.out.score_test, df),
        wald_test,
        n: a.n,
        nevent: a.nevent,
        iterations: a.out.iterations,
        convergence: a.out.convergence,
        means: TermMap(a.terms.iter().cloned().zip(a.means.iter().map(|m| Some(*m))).collect()),
        baseline_cumhaz: a.baseline,
        warnings: a.warnings,
        robust_se: a.robust_var.map(|_| per_term(&se_test)),
        robust_var: a.robust_var.map(rows),
        robust_score_test: a.robust_score.map(|s| ChisqTest::new(s, df)),
        concordance: a.concordance,
    }
}
