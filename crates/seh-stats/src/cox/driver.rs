//! Newton–Raphson with step halving, exactly as R's `coxph` (`coxfit6` for
//! right-censored data, `agfit4` for counting-process data), as a sans-IO
//! state machine.
//!
//! ```text
//! let mut d = NewtonDriver::new(p, &init, control, flavour)?;
//! loop {
//!     match d.next() {
//!         DriverRequest::Evaluate(beta) => d.feed(evaluate_at(&beta))?,
//!         DriverRequest::Done(outcome) => break outcome,
//!     }
//! }
//! ```
//!
//! The coordinator of a federation runs this same machine and obtains each
//! evaluation as a secure sum over the sites. All vectors are on the kernel's
//! internal (scaled) covariate scale.

use super::kernel::Evaluation;
use super::CoxError;
use crate::linalg::{chinv2, cholesky2, chsolve2};

/// Iteration controls (R's `coxph.control`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoxControl {
    /// Convergence: stop when `|1 - loglik_old / loglik_new| <= eps` (default 1e-9).
    pub eps: f64,
    /// Relative pivot tolerance of the Cholesky decomposition; a smaller pivot
    /// marks a coefficient as aliased (default `f64::EPSILON^0.75` ≈ 1.8e-12, as R).
    pub toler_chol: f64,
    /// Maximum number of Newton iterations (default 20).
    pub iter_max: u32,
    /// Threshold of the "coefficient may be infinite" check (default `sqrt(eps)`).
    pub toler_inf: f64,
}

impl Default for CoxControl {
    fn default() -> Self {
        CoxControl { eps: 1e-9, toler_chol: f64::EPSILON.powf(0.75), iter_max: 20, toler_inf: 1e-9f64.sqrt() }
    }
}

/// Which of R's two Newton loops to reproduce; they differ only in corner
/// cases (convergence while halving, behaviour when iterations run out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Flavour {
    /// `coxfit6` (right-censored data).
    RightCensored,
    /// `agfit4` (counting-process data).
    CountingProcess,
}

/// How the iteration ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convergence {
    /// The relative change of the log-likelihood fell below `eps`.
    Converged,
    /// Converged, but in the middle of step halving (R's flag −2).
    ConvergedWhileHalving,
    /// `iter_max` reached without convergence.
    MaxIterations,
    /// `iter_max = 0`: only the initial value was evaluated.
    NoIterations,
    /// The log-likelihood at the initial value was not finite.
    InitialNotFinite,
}

/// What the driver needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum DriverRequest {
    /// Evaluate log-likelihood, score and information at this β (internal scale).
    Evaluate(Vec<f64>),
    /// Finished.
    Done(DriverOutcome),
}

/// Final state of the Newton iteration (internal scale).
#[derive(Debug, Clone, PartialEq)]
pub struct DriverOutcome {
    /// Coefficients (aliased ones are 0 here; reported as `None` by the fit).
    pub beta: Vec<f64>,
    /// Log-likelihood at the initial β.
    pub loglik_init: f64,
    /// Log-likelihood at the final β.
    pub loglik: f64,
    /// Score test at the initial β: `U₀ᵀ I₀⁻¹ U₀`.
    pub score_test: f64,
    /// Score at the final β.
    pub score: Vec<f64>,
    /// Inverse information at the final β (row-major; aliased rows/columns 0).
    pub variance: Vec<f64>,
    /// Number of Newton iterations (R's `iter`).
    pub iterations: u32,
    /// How it ended.
    pub convergence: Convergence,
    /// Rank of the information matrix (R's `flag`).
    pub rank: usize,
    /// Per coefficient: `true` when aliased (collinear).
    pub aliased: Vec<bool>,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Waiting for the evaluation at the initial β.
    Initial,
    /// Waiting for the evaluation at `newbeta` (iteration `iter`).
    Iterating,
    /// Out of iterations; waiting for the re-evaluation at the last good β.
    Final,
    Done(Box<DriverOutcome>),
}

/// The Newton–Raphson state machine.
#[derive(Debug, Clone)]
pub struct NewtonDriver {
    p: usize,
    control: CoxControl,
    flavour: Flavour,
    state: State,
    /// Last accepted β (`beta` in coxfit6, `oldbeta` in agfit4).
    beta: Vec<f64>,
    /// β to evaluate next.
    newbeta: Vec<f64>,
    loglik_init: f64,
    best: f64,
    score_test: f64,
    halving: u32,
    iter: u32,
    rank0: usize,
    factor: Vec<f64>,
    tmp: Vec<f64>,
}

impl NewtonDriver {
    /// Start at `init` (length p; zeros for R's default).
    pub fn new(p: usize, init: &[f64], control: CoxControl, flavour: Flavour) -> Result<Self, CoxError> {
        if init.len() != p {
            return Err(CoxError::CoefLength { expected: p, got: init.len() });
        }
        if init.iter().any(|b| !b.is_finite()) {
            return Err(CoxError::NotFinite { field: "initial coefficients", row: 0 });
        }
        Ok(NewtonDriver {
            p,
            control,
            flavour,
            state: State::Initial,
            beta: init.to_vec(),
            newbeta: init.to_vec(),
            loglik_init: f64::NAN,
            best: f64::NAN,
            score_test: f64::NAN,
            halving: 0,
            iter: 0,
            rank0: 0,
            factor: vec![0.0; p * p],
            tmp: vec![0.0; p],
        })
    }

    /// The next request: a β to evaluate, or the outcome.
    pub fn next(&self) -> DriverRequest {
        match &self.state {
            State::Initial => DriverRequest::Evaluate(self.beta.clone()),
            State::Iterating => DriverRequest::Evaluate(self.newbeta.clone()),
            State::Final => DriverRequest::Evaluate(self.beta.clone()),
            State::Done(o) => DriverRequest::Done((**o).clone()),
        }
    }

    /// `true` once finished.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// Feed the evaluation at the β of the last [`NewtonDriver::next`].
    pub fn feed(&mut self, ev: Evaluation) -> Result<(), CoxError> {
        let p = self.p;
        if ev.score.len() != p || ev.info.len() != p * p {
            return Err(CoxError::DriverMisuse("evaluation has the wrong number of coefficients"));
        }
        match self.state {
            State::Initial => self.feed_initial(ev),
            State::Iterating => self.feed_iteration(ev),
            State::Final => {
                self.factorise(&ev)?;
                let beta = self.beta.clone();
                self.finish(beta, ev, Convergence::MaxIterations)
            }
            State::Done(_) => Err(CoxError::DriverMisuse("the driver has finished")),
        }
    }

    fn factorise(&mut self, ev: &Evaluation) -> Result<usize, CoxError> {
        self.factor.copy_from_slice(&ev.info);
        Ok(cholesky2(&mut self.factor, self.p, self.control.toler_chol)?.rank)
    }

    fn feed_initial(&mut self, ev: Evaluation) -> Result<(), CoxError> {
        self.loglik_init = ev.loglik;
        self.best = ev.loglik;
        self.rank0 = self.factorise(&ev)?;
        self.tmp.copy_from_slice(&ev.score);
        chsolve2(&self.factor, self.p, &mut self.tmp)?;
        self.score_test = ev.score.iter().zip(&self.tmp).map(|(u, a)| u * a).sum();
        if self.control.iter_max == 0 || !ev.loglik.is_finite() {
            let conv = if ev.loglik.is_finite() { Convergence::NoIterations } else { Convergence::InitialNotFinite };
            let beta = self.beta.clone();
            return self.finish(beta, ev, conv);
        }
        for i in 0..self.p {
            self.newbeta[i] = self.beta[i] + self.tmp[i];
        }
        self.halving = 0;
        self.iter = 1;
        self.state = State::Iterating;
        Ok(())
    }

    fn feed_iteration(&mut self, ev: Evaluation) -> Result<(), CoxError> {
        let p = self.p;
        let rank = self.factorise(&ev)?;
        let notfinite = !ev.loglik.is_finite()
            || ev.score.iter().any(|v| !v.is_finite())
            || ev.info.iter().any(|v| !v.is_finite())
            || (self.flavour == Flavour::CountingProcess && rank != self.rank0);
        let converged = !notfinite && (1.0 - self.best / ev.loglik).abs() <= self.control.eps;
        let may_stop = match self.flavour {
            Flavour::RightCensored => true,
            Flavour::CountingProcess => self.halving == 0,
        };
        if converged && may_stop {
            let conv = if self.halving > 0 { Convergence::ConvergedWhileHalving } else { Convergence::Converged };
            let beta = self.newbeta.clone();
            return self.finish(beta, ev, conv);
        }
        if self.iter >= self.control.iter_max {
            // Out of iterations.
            let worse = notfinite || ev.loglik < self.best;
            let go_back = match self.flavour {
                Flavour::RightCensored => self.control.iter_max > 1,
                Flavour::CountingProcess => {
                    self.control.iter_max > 1
                        && (notfinite || (ev.loglik - self.best) / self.best.abs() < -self.control.eps)
                }
            };
            if go_back && (worse || self.flavour == Flavour::RightCensored) {
                if self.flavour == Flavour::RightCensored && !worse {
                    // coxfit6 returns the last accepted β; accept this one first.
                    self.beta.copy_from_slice(&self.newbeta);
                    let beta = self.beta.clone();
                    return self.finish(beta, ev, Convergence::MaxIterations);
                }
                self.state = State::Final;
                return Ok(());
            }
            let beta = self.newbeta.clone();
            return self.finish(beta, ev, Convergence::MaxIterations);
        }
        if notfinite || ev.loglik < self.best {
            self.halving += 1;
            let h = self.halving as f64;
            for i in 0..p {
                self.newbeta[i] = (self.newbeta[i] + h * self.beta[i]) / (h + 1.0);
            }
        } else {
            self.halving = 0;
            self.best = ev.loglik;
            self.tmp.copy_from_slice(&ev.score);
            chsolve2(&self.factor, p, &mut self.tmp)?;
            for i in 0..p {
                self.beta[i] = self.newbeta[i];
                self.newbeta[i] += self.tmp[i];
            }
        }
        self.iter += 1;
        Ok(())
    }

    /// Conclude with `beta`, whose evaluation `ev` has been factorised into `self.factor`.
    fn finish(&mut self, beta: Vec<f64>, ev: Evaluation, convergence: Convergence) -> Result<(), CoxError> {
        let p = self.p;
        let aliased: Vec<bool> = (0..p).map(|i| self.factor[i * p + i] == 0.0).collect();
        let rank = aliased.iter().filter(|a| !**a).count();
        let mut variance = self.factor.clone();
        chinv2(&mut variance, p)?;
        let iterations = match convergence {
            Convergence::NoIterations | Convergence::InitialNotFinite => 0,
            Convergence::MaxIterations => self.control.iter_max,
            _ => self.iter,
        };
        self.state = State::Done(Box::new(DriverOutcome {
            beta,
            loglik_init: self.loglik_init,
            loglik: ev.loglik,
            score_test: self.score_test,
            score: ev.score,
            variance,
            iterations,
            convergence,
            rank,
            aliased,
        }));
        Ok(())
    }
}
