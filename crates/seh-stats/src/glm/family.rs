//! GLM families with their canonical links, with the numerical details of R's
//! `binomial()`, `gaussian()` and `poisson()` (stats 4.2: `logit_linkinv`
//! clamping, `pmax(exp(eta), .Machine$double.eps)` for the log link, ...).

use serde::Serialize;

use crate::special::ln_gamma;

const DBL_EPSILON: f64 = f64::EPSILON;
/// R's `30` threshold in `logit_linkinv` / `logit_mu_eta`.
const THRESH: f64 = 30.0;

/// A GLM family with its canonical link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// `binomial(link = "logit")`: response in `[0, 1]` (proportion of
    /// `weights` trials, or 0/1).
    Binomial,
    /// `gaussian(link = "identity")`: dispersion estimated.
    Gaussian,
    /// `poisson(link = "log")`: non-negative integer counts.
    Poisson,
}

impl Family {
    /// Parse `"binomial"`, `"gaussian"` or `"poisson"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "binomial" => Some(Family::Binomial),
            "gaussian" => Some(Family::Gaussian),
            "poisson" => Some(Family::Poisson),
            _ => None,
        }
    }

    /// The link name (`logit`, `identity`, `log`).
    pub fn link(self) -> &'static str {
        match self {
            Family::Binomial => "logit",
            Family::Gaussian => "identity",
            Family::Poisson => "log",
        }
    }

    /// Whether the dispersion is estimated (gaussian) rather than fixed at 1.
    pub fn estimates_dispersion(self) -> bool {
        self == Family::Gaussian
    }

    pub(crate) fn linkfun(self, mu: f64) -> f64 {
        match self {
            Family::Binomial => (mu / (1.0 - mu)).ln(),
            Family::Gaussian => mu,
            Family::Poisson => mu.ln(),
        }
    }

    pub(crate) fn linkinv(self, eta: f64) -> f64 {
        match self {
            Family::Binomial => {
                if eta < -THRESH {
                    DBL_EPSILON
                } else if eta > THRESH {
                    1.0 - DBL_EPSILON
                } else {
                    let e = eta.exp();
                    e / (1.0 + e)
                }
            }
            Family::Gaussian => eta,
            Family::Poisson => eta.exp().max(DBL_EPSILON),
        }
    }

    pub(crate) fn mu_eta(self, eta: f64) -> f64 {
        match self {
            Family::Binomial => {
                if !(-THRESH..=THRESH).contains(&eta) {
                    DBL_EPSILON
                } else {
                    let e = eta.exp();
                    let op = 1.0 + e;
                    e / (op * op)
                }
            }
            Family::Gaussian => 1.0,
            Family::Poisson => eta.exp().max(DBL_EPSILON),
        }
    }

    pub(crate) fn variance(self, mu: f64) -> f64 {
        match self {
            Family::Binomial => mu * (1.0 - mu),
            Family::Gaussian => 1.0,
            Family::Poisson => mu,
        }
    }

    /// R's `validmu`.
    pub(crate) fn valid_mu(self, mu: f64) -> bool {
        match self {
            Family::Binomial => mu.is_finite() && mu > 0.0 && mu < 1.0,
            Family::Gaussian => true,
            Family::Poisson => mu.is_finite() && mu > 0.0,
        }
    }

    /// R's `mustart` from `initialize`.
    pub(crate) fn mustart(self, y: f64, w: f64) -> f64 {
        match self {
            Family::Binomial => (w * y + 0.5) / (w + 1.0),
            Family::Gaussian => y,
            Family::Poisson => y + 0.1,
        }
    }

    /// Deviance residual `dev.resids(y, mu, w)` of one row.
    pub(crate) fn dev_resid(self, y: f64, mu: f64, w: f64) -> f64 {
        match self {
            Family::Binomial => {
                let ylogy = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
                2.0 * w * (ylogy(y, mu) + ylogy(1.0 - y, 1.0 - mu))
            }
            Family::Gaussian => w * (y - mu) * (y - mu),
            Family::Poisson => {
                let r = if y > 0.0 { y * (y / mu).ln() - (y - mu) } else { mu };
                2.0 * w * r
            }
        }
    }

    /// The row's contribution to the family's `aic()` sum, without the parts
    /// that need totals (gaussian: `log(w)` only; the rest is added by the driver).
    pub(crate) fn aic_term(self, y: f64, mu: f64, w: f64) -> f64 {
        match self {
            Family::Binomial => {
                // -2 * (wt/m) * dbinom(round(m*y), round(m), mu, log = TRUE) with m = wt.
                let m = w.round();
                let k = (w * y).round();
                if m <= 0.0 {
                    return 0.0;
                }
                let lchoose = ln_gamma(m + 1.0) - ln_gamma(k + 1.0) - ln_gamma(m - k + 1.0);
                let mut ll = lchoose;
                if k > 0.0 {
                    ll += k * mu.ln();
                }
                if m - k > 0.0 {
                    ll += (m - k) * (-mu).ln_1p();
                }
                -2.0 * ll
            }
            Family::Gaussian => w.ln(),
            Family::Poisson => {
                let ll = if y > 0.0 { y * mu.ln() - mu - ln_gamma(y + 1.0) } else { -mu };
                -2.0 * ll * w
            }
        }
    }
}
