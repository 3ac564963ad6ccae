//! From a (summed) counts table to Kaplan–Meier curves, as R `survfit` (survival
//! 3.5-3, `survfitkm.c` type 1: KM survival, Nelson–Aalen hazard, no robust variance).

use serde::Serialize;

use super::counts::{KmCounts, StratumCounts};
use super::input::SurvInputError;
use super::quantile::find_quantile;
use crate::special::normal_quantile;

/// Confidence-interval transformation (`survfit`'s `conf.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfType {
    /// `exp(log S ± z·se)`, upper truncated at 1 (R's default).
    #[default]
    Log,
    /// `exp(−exp(log(−log S) ± z·se/log S))`.
    LogLog,
    /// `S ± z·se·S`, truncated to `[0, 1]`.
    Plain,
    /// No interval (lower/upper are NaN, median CI is `None`).
    None,
}

impl ConfType {
    /// Parse R's spelling: `"log"`, `"log-log"`, `"plain"`, `"none"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "log" => Some(ConfType::Log),
            "log-log" => Some(ConfType::LogLog),
            "plain" => Some(ConfType::Plain),
            "none" => Some(ConfType::None),
            _ => None,
        }
    }
}

/// Options of the curve step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KmOptions {
    /// Interval transformation.
    pub conf_type: ConfType,
    /// Confidence level in `(0, 1)`, default 0.95.
    pub conf_int: f64,
}

impl Default for KmOptions {
    fn default() -> Self {
        KmOptions { conf_type: ConfType::Log, conf_int: 0.95 }
    }
}

/// One Kaplan–Meier curve (one stratum), with the field names of the reference JSON.
///
/// Vectors have one entry per distinct time at which an event or censoring
/// occurs in the stratum. Non-finite values (R's `NA`/`Inf`) serialise as `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmCurve {
    /// Stratum label (e.g. `sex=1`).
    pub stratum: String,
    /// Number of rows in the stratum.
    pub n: u64,
    /// Total (weighted) events.
    pub events: f64,
    /// Median survival time (R's `quantile.survfit` rule); `None` if not reached.
    pub median: Option<f64>,
    /// Lower confidence limit of the median (at `conf_int`, named for the usual 95 %).
    pub median_lower95: Option<f64>,
    /// Upper confidence limit of the median.
    pub median_upper95: Option<f64>,
    /// Times.
    pub time: Vec<f64>,
    /// Number at risk.
    pub n_risk: Vec<f64>,
    /// Number of events.
    pub n_event: Vec<f64>,
    /// Number censored.
    pub n_censor: Vec<f64>,
    /// Kaplan–Meier survival.
    pub surv: Vec<f64>,
    /// Greenwood standard error of `−log S` (survfit's `std.err`).
    pub std_err: Vec<f64>,
    /// Standard error of `S`: `surv · std_err`.
    pub se_surv: Vec<f64>,
    /// Lower confidence limit of `S`.
    pub lower: Vec<f64>,
    /// Upper confidence limit of `S`.
    pub upper: Vec<f64>,
    /// Nelson–Aalen cumulative hazard.
    pub cumhaz: Vec<f64>,
    /// Standard error of the cumulative hazard.
    pub std_chaz: Vec<f64>,
}

/// Kaplan–Meier curves of all strata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmFit {
    /// Interval transformation used.
    pub conf_type: ConfType,
    /// Confidence level used.
    pub conf_int: f64,
    /// One curve per stratum, ascending by stratum code.
    pub strata: Vec<KmCurve>,
}

/// Turn a counts table (one site's, or the sum over sites) into curves.
///
/// `labels`: optional stratum labels indexed by stratum code (a missing entry
/// falls back to the code as text). Grid times at which a stratum has neither
/// events nor censorings are dropped, so a table on a shared grid gives exactly
/// R's `survfit` rows.
///
/// Errors: an invalid table, `conf_int` outside `(0, 1)`, or no events at all.
pub fn km_curves(counts: &KmCounts, labels: Option<&[String]>, options: &KmOptions) -> Result<KmFit, SurvInputError> {
    counts.validate()?;
    if !(options.conf_int > 0.0 && options.conf_int < 1.0) {
        return Err(SurvInputError::Option("conf_int must be strictly between 0 and 1"));
    }
    if counts.strata.is_empty() {
        return Err(SurvInputError::Empty);
    }
    if counts.total_events() <= 0.0 {
        return Err(SurvInputError::NoEvents);
    }
    let z = normal_quantile(1.0 - (1.0 - options.conf_int) / 2.0);
    let strata = counts
        .strata
        .iter()
        .map(|s| {
            let label =
                labels.and_then(|l| l.get(s.stratum as usize)).cloned().unwrap_or_else(|| s.stratum.to_string());
            one_curve(s, label, options.conf_type, z)
        })
        .collect();
    Ok(KmFit { conf_type: options.conf_type, conf_int: options.conf_int, strata })
}

fn one_curve(s: &StratumCounts, stratum: String, conf_type: ConfType, z: f64) -> KmCurve {
    let keep: Vec<usize> = (0..s.time.len()).filter(|&k| s.n_event[k] > 0.0 || s.n_censor[k] > 0.0).collect();
    let pick = |v: &[f64]| keep.iter().map(|&k| v[k]).collect::<Vec<f64>>();
    let time = pick(&s.time);
    let n_risk = pick(&s.n_risk);
    let n_event = pick(&s.n_event);
    let n_censor = pick(&s.n_censor);
    let m = time.len();
    let (mut surv, mut std_err, mut cumhaz, mut std_chaz) =
        (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
    let (mut km, mut nelson, mut v1, mut v2) = (1.0f64, 0.0f64, 0.0f64, 0.0f64);
    for k in 0..m {
        let (d, r) = (n_event[k], n_risk[k]);
        if d > 0.0 {
            nelson += d / r;
            v2 += d / (r * r);
            km *= (r - d) / r;
            v1 += d / (r * (r - d));
        }
        surv.push(km);
        std_err.push(v1.sqrt());
        cumhaz.push(nelson);
        std_chaz.push(v2.sqrt());
    }
    let se_surv: Vec<f64> = surv.iter().zip(&std_err).map(|(p, se)| p * se).collect();
    let (lower, upper): (Vec<f64>, Vec<f64>) =
        surv.iter().zip(&std_err).map(|(&p, &se)| conf_limits(p, se, conf_type, z)).unzip();
    let events = n_event.iter().sum();
    let median = find_quantile(&time, &surv, 0.5);
    let (median_lower95, median_upper95) = if conf_type == ConfType::None {
        (None, None)
    } else {
        (find_quantile(&time, &lower, 0.5), find_quantile(&time, &upper, 0.5))
    };
    KmCurve {
        stratum,
        n: s.n,
        events,
        median,
        median_lower95,
        median_upper95,
        time,
        n_risk,
        n_event,
        n_censor,
        surv,
        std_err,
        se_surv,
        lower,
        upper,
        cumhaz,
        std_chaz,
    }
}

/// R's `survfit_confint` for `logse = TRUE` (se is the SE of `−log S`).
/// NaN plays the role of R's `NA` and propagates through `pmin`/`pmax`.
fn conf_limits(p: f64, se: f64, conf_type: ConfType, z: f64) -> (f64, f64) {
    let nan_min = |a: f64, b: f64| if a.is_nan() { a } else { a.min(b) };
    let nan_max = |a: f64, b: f64| if a.is_nan() { a } else { a.max(b) };
    match conf_type {
        ConfType::None => (f64::NAN, f64::NAN),
        ConfType::Plain => {
            let se2 = se * p * z;
            (nan_max(p - se2, 0.0), nan_min(p + se2, 1.0))
        }
        ConfType::Log => {
            if se == 0.0 {
                return (p, p);
            }
            let xx = if p == 0.0 { f64::NAN } else { p };
            let se2 = z * se;
            ((xx.ln() - se2).exp(), nan_min((xx.ln() + se2).exp(), 1.0))
        }
        ConfType::LogLog => {
            if se == 0.0 {
                return (p, p);
            }
            let xx = if p == 0.0 || p == 1.0 { f64::NAN } else { p };
            let se2 = z * se / xx.ln();
            let ll = (-xx.ln()).ln();
            ((-(ll - se2).exp()).exp(), (-(ll + se2).exp()).exp())
        }
    }
}
