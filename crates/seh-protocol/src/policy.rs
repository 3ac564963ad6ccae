//! The site's governance stage, on `seh-policy`: the policy decision, the consent filter, the
//! disclosure floors and differential privacy, in the order the site must apply them. The
//! [`crate::site::SiteMachine`] owns one [`SiteGovernance`] and cannot compute without it:
//! every computation runs on [`Admitted::data`] (the consented rows) and every contribution
//! leaves through [`SiteGovernance::contribution`], which needs the [`Admission`] that only
//! `seh_policy::admit` makes.
//!
//! Per study and in order:
//! 1. `seh_policy::policy::decide` on the request (researcher key, analysis kind, back-end,
//!    purpose, time grid, DP parameters) — before any data is touched;
//! 2. the consent filter for the study's purpose at today's date; the number of rows removed is
//!    a [`SiteOnly`] fact for the site's audit log and never leaves the site;
//! 3. the disclosure floors on the site's own consented rows (subset size, model size against
//!    `disclosure.max_parameters_per_row` (≤ 0.33), risk-set floor of pooled survival studies),
//!    and the remaining DP budget;
//! 4. the contribution: with DP (describe only), noise is drawn after charging the ledger.
//!
//! **DP for describe** (`dp_epsilon`, or by default: a policy with `dp.required` noises every
//! describe study, with its `dp.epsilon_per_query` when the study names none; see
//! [`SiteGovernance::dp_request`]): the released counts — per column the number of
//! non-missing values, and every histogram bin — get *distributed* discrete Gaussian noise: each
//! site adds its own share with variance σ²/t (t = the study's threshold, the fewest sites a
//! result can have), so the securely summed noise has variance at least σ², with σ calibrated
//! to (ε, δ) for the L2 sensitivity √(columns + histograms) of one row added or removed (each
//! column count moves by at most 1 and each histogram by one bin). Sums and sums of squares are
//! unbounded, so under DP they are not contributed and means and variances are not released.
//! A site charges (ε, δ) to the researcher in its persistent ledger once per study, before it
//! draws noise, and reuses the same noisy vector if the study asks again (fresh noise on a retry
//! would spend the budget twice). Model analyses refuse DP at spec validation.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::OsRng;
use seh_crypto::wire::VerifyingKey;
use seh_policy::consent::{ConsentFilterAudit, ConsentRegistry, Purpose};
use seh_policy::dp::{release_gaussian_count_share, BudgetLedger, ChargeError};
use seh_policy::policy::{AnalysisKind, DpRequest, StudyRequest, TimeGridRequest};
use seh_policy::{Admission, Date, DisclosureRequest, Refusal, Releasable, SiteOnly};
use seh_stats::DataFrame;
use zeroize::Zeroizing;

pub use seh_policy::SitePolicy;

use crate::describe::{self, DescribeResult};
use crate::error::ProtocolError;
use crate::fed::site::ModelInfo;
use crate::spec::{Analysis, DescribeSpec, StudySpec};

/// δ of the DP noise when a study gives `dp_epsilon` but no `dp_delta`.
pub const DEFAULT_DP_DELTA: f64 = 1e-6;
/// Words per describe column in the contribution vector (count, wide sum, wide sum of squares).
const COLUMN_WORDS: usize = 1 + 2 * crate::wide::WORDS;
/// Studies whose consented rows are kept in memory at once.
const MAX_CACHED_STUDIES: usize = 4;

/// Why a site does not take part.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
pub enum Refused {
    /// A rule of the site policy refused (the rule is named in the message).
    #[error(transparent)]
    Policy(#[from] Refusal),
    /// The study does not fit this site (not listed, a column or model term missing).
    #[error("{0}")]
    Study(String),
}

/// A study this site admitted: its consented rows and the admission token.
#[derive(Debug)]
pub struct Admitted {
    /// The rows the study may use (consent-filtered, in the site's row order).
    pub data: Arc<DataFrame>,
    /// What the consent filter removed: for the site's audit log only.
    pub consent: SiteOnly<ConsentFilterAudit>,
    /// Model analyses: the model description sent with the decision (no values).
    pub model: Option<ModelInfo>,
    /// The DP noise this site adds (describe only): the study's `dp_epsilon`, or the policy's
    /// `dp.epsilon_per_query` when the policy requires DP and the study names none.
    pub dp: Option<DpRequest>,
    admission: Admission,
}

/// A site's governance: its validated policy, consent knowledge, DP ledger and clock.
pub struct SiteGovernance {
    policy: SitePolicy,
    consent: ConsentRegistry,
    patients: Option<Vec<String>>,
    ledger: Option<BudgetLedger>,
    today: Box<dyn Fn() -> Date + Send + Sync>,
    frames: BTreeMap<String, (Arc<DataFrame>, SiteOnly<ConsentFilterAudit>)>,
    noisy: BTreeMap<String, Vec<u64>>,
}

impl std::fmt::Debug for SiteGovernance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteGovernance").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// The patient key of row `i` when the site names no patient column: the row number.
fn row_key(i: usize) -> String {
    format!("row:{i}")
}

impl SiteGovernance {
    /// A governance stage from a validated `policy` (`seh_policy::SitePolicy::load`), the site's
    /// `consent` registry, `patients` (the consent key of each data row, e.g. the patient id or
    /// store pseudonym; `None`: rows are keyed `row:<i>`, which only an opt-out regime without
    /// records makes useful), the DP budget `ledger` (`None`: DP studies are refused) and a
    /// clock giving today's date (consent periods are evaluated at it).
    pub fn new(
        policy: SitePolicy,
        consent: ConsentRegistry,
        patients: Option<Vec<String>>,
        ledger: Option<BudgetLedger>,
        today: Box<dyn Fn() -> Date + Send + Sync>,
    ) -> Self {
        Self { policy, consent, patients, ledger, today, frames: BTreeMap::new(), noisy: BTreeMap::new() }
    }

    /// The policy.
    pub fn policy(&self) -> &SitePolicy {
        &self.policy
    }

    /// The site's minimum cell count (sent with an acceptance; the release applies the largest).
    pub fn min_cell_count(&self) -> u64 {
        self.policy.disclosure().min_cell_count
    }

    /// What the ledger says `researcher` has spent here (`None` without a ledger).
    pub fn spent(&self, researcher: &[u8; 32]) -> Option<seh_policy::dp::Spent> {
        self.ledger.as_ref().map(|l| l.spent(researcher))
    }

    /// Checks that the patient keys match the data (one per row). Errors name the count only.
    pub fn check_rows(&self, nrows: usize) -> Result<(), ProtocolError> {
        match &self.patients {
            Some(p) if p.len() != nrows => Err(ProtocolError::invalid(
                "site governance",
                "patients",
                format!("{} patient keys for {nrows} data rows", p.len()),
            )),
            _ => Ok(()),
        }
    }

    fn request(&self, key: &VerifyingKey, spec: &StudySpec, n_parameters: Option<u64>) -> StudyRequest {
        let (analysis, time_grid) = match &spec.analysis {
            Analysis::Describe(_) => (AnalysisKind::Descriptive, None),
            Analysis::Cox(c) => {
                let grid = match (c.mode, c.time_resolution) {
                    (crate::fed::CoxMode::Stratified, _) => None,
                    (_, None) => Some(TimeGridRequest::EventTimes),
                    (_, Some(r)) => Some(TimeGridRequest::Step(r)),
                };
                (AnalysisKind::Cox, grid)
            }
            Analysis::Km(k) => {
                (AnalysisKind::Km, Some(k.time_resolution.map_or(TimeGridRequest::EventTimes, TimeGridRequest::Step)))
            }
            Analysis::Glm(_) => (AnalysisKind::Glm, None),
        };
        StudyRequest {
            researcher_key: *key.as_bytes(),
            analysis,
            aggregation: spec.aggregation,
            purpose: Purpose::act_reason(&spec.purpose),
            n_parameters,
            time_grid,
            dp: self.dp_request(spec),
        }
    }

    /// The DP noise of `spec` at this site: the study's `dp_epsilon` (δ: `dp_delta` or
    /// [`DEFAULT_DP_DELTA`]); for a describe study without one, the policy's per-query ε and
    /// δ = min([`DEFAULT_DP_DELTA`], `dp.delta_per_query`) when the policy requires DP (the
    /// example and generated policies do). `None`: no noise.
    pub fn dp_request(&self, spec: &StudySpec) -> Option<DpRequest> {
        let dp = self.policy.dp();
        match (spec.dp_epsilon, &spec.analysis) {
            (Some(epsilon), _) => Some(DpRequest { epsilon, delta: spec.dp_delta.unwrap_or(DEFAULT_DP_DELTA) }),
            (None, Analysis::Describe(_)) if dp.required => {
                Some(DpRequest { epsilon: dp.epsilon_per_query, delta: DEFAULT_DP_DELTA.min(dp.delta_per_query) })
            }
            _ => None,
        }
    }

    /// The consented rows of `data` for `spec`'s purpose today (cached per study).
    fn consented(
        &mut self,
        study_id: &str,
        spec: &StudySpec,
        data: &DataFrame,
    ) -> Result<(Arc<DataFrame>, SiteOnly<ConsentFilterAudit>), ProtocolError> {
        if let Some((f, a)) = self.frames.get(study_id) {
            return Ok((f.clone(), a.clone()));
        }
        self.check_rows(data.nrows())?;
        let keys: Vec<String> = match &self.patients {
            Some(p) => p.clone(),
            None => (0..data.nrows()).map(row_key).collect(),
        };
        let rows: Vec<(usize, String)> = keys.into_iter().enumerate().collect();
        let purpose = Purpose::act_reason(&spec.purpose);
        let (kept, audit) = self.consent.filter_rows(rows, |r| r.1.as_str(), &purpose, (self.today)());
        let idx: Vec<usize> = kept.into_iter().map(|r| r.0).collect();
        let frame = Arc::new(if idx.len() == data.nrows() { data.clone() } else { data.take_rows(&idx) });
        if self.frames.len() >= MAX_CACHED_STUDIES {
            self.frames.pop_first();
        }
        self.frames.insert(study_id.to_owned(), (frame.clone(), audit.clone()));
        Ok((frame, audit))
    }

    /// Applies the whole policy to study `spec` (signature already verified under
    /// `researcher_key`) at site `site` over its `data`; see the module docs for the order.
    ///
    /// Errors: [`ProtocolError`] only for a malformed configuration (patient keys not matching
    /// the rows); refusals are the inner `Err`, naming the rule.
    pub fn admit(
        &mut self,
        study_id: &str,
        site: &str,
        researcher_key: &VerifyingKey,
        spec: &StudySpec,
        data: &DataFrame,
    ) -> Result<Result<Admitted, Refused>, ProtocolError> {
        if !spec.sites.iter().any(|s| s == site) {
            return Ok(Err(Refused::Study("this site is not listed in the study".into())));
        }
        let req = self.request(researcher_key, spec, None);
        if let seh_policy::Decision::Refuse { rule, reason } = seh_policy::policy::decide(&self.policy, &req) {
            return Ok(Err(Refusal { rule, reason }.into()));
        }
        if let Analysis::Describe(d) = &spec.analysis {
            for h in &d.histograms {
                if let Err(r) = seh_policy::policy::check_histogram(&self.policy, h.lo, h.hi, h.bins) {
                    return Ok(Err(r.into()));
                }
            }
        }
        if let Some(dp) = req.dp {
            match &self.ledger {
                None => return Ok(Err(Refused::Study("this site keeps no privacy-budget ledger".into()))),
                Some(l) if !self.noisy.contains_key(study_id) => {
                    if let Err(r) = l.check(&self.policy, &req.researcher_key, dp.epsilon, dp.delta) {
                        return Ok(Err(r.into()));
                    }
                }
                Some(_) => {}
            }
        }
        let (frame, consent) = self.consented(study_id, spec, data)?;
        let mut small = None;
        let (usable, model, min_risk_set) = match &spec.analysis {
            Analysis::Describe(d) => match describe_rows(d, &frame) {
                Ok(n) => (n, None, None),
                Err(e) => return Ok(Err(e)),
            },
            a => {
                let fr = match crate::fed::site::frame(a, &frame) {
                    Ok(f) => f,
                    Err(e) => return Ok(Err(Refused::Study(format!("the model does not fit this site's data: {e}")))),
                };
                let mut info = match crate::fed::site::model_info(a, &frame) {
                    Ok(i) => i,
                    Err(e) => return Ok(Err(Refused::Study(format!("the model does not fit this site's data: {e}")))),
                };
                // The floor the pooled release must respect (small strata: fed::strata).
                let floors = self.policy.disclosure();
                info.min_count = floors.min_cell_count.max(floors.min_risk_set);
                small = crate::fed::strata::site_check(&fr, matches!(a, Analysis::Glm(_)), floors.min_cell_count).err();
                let risk = match a {
                    Analysis::Cox(c) if c.mode == crate::fed::CoxMode::Pooled => Some(c.min_risk_set),
                    _ => None,
                };
                (fr.nrows() as u64, Some(info), risk)
            }
        };
        let n_parameters = match (&spec.analysis, &model) {
            (Analysis::Cox(_) | Analysis::Glm(_), Some(m)) => Some(m.terms.len() as u64),
            _ => None,
        };
        let req = StudyRequest { n_parameters, ..req };
        let disclosure = DisclosureRequest { min_risk_set };
        // Small strata (KM and log-rank groups, Cox strata, GLM 0/1 columns) at this site are
        // refused after the subset and model-size rules.
        Ok(match (seh_policy::admit(&self.policy, &req, &disclosure, usable), small) {
            (Ok(_), Some(reason)) => Err(Refusal { rule: seh_policy::Rule::MinCellCount, reason }.into()),
            (Ok(admission), None) => Ok(Admitted { data: frame, consent, model, dp: req.dp, admission }),
            (Err(r), _) => Err(r.into()),
        })
    }

    /// This site's contribution `words` to the secure sum of admitted study `spec`, as a value
    /// that may leave the site. With DP ([`Admitted::dp`], describe only) the ledger is charged first
    /// (once per study) and the count words get this site's share of the noise; the same noisy
    /// vector is returned if the study asks again.
    ///
    /// Errors: an exhausted budget (naming the rule), a ledger that cannot be written (nothing
    /// is charged then), or a vector that does not fit the describe layout.
    pub fn contribution(
        &mut self,
        study_id: &str,
        spec: &StudySpec,
        admitted: &Admitted,
        words: Vec<u64>,
    ) -> Result<Releasable<Zeroizing<Vec<u64>>>, ProtocolError> {
        let (Some(DpRequest { epsilon, delta }), Analysis::Describe(d)) = (admitted.dp, &spec.analysis) else {
            return Ok(admitted.admission.contribution(Zeroizing::new(words)));
        };
        if let Some(v) = self.noisy.get(study_id) {
            return Ok(admitted.admission.contribution(Zeroizing::new(v.clone())));
        }
        let positions = count_positions(d);
        if words.len() != describe::vector_len(d) {
            return Err(ProtocolError::invalid("contribution", "words", "length differs from the study layout"));
        }
        let ledger =
            self.ledger.as_mut().ok_or_else(|| dp_err("this site keeps no privacy-budget ledger".to_owned()))?;
        let charge =
            ledger.charge(&self.policy, admitted.admission.researcher(), epsilon, delta).map_err(|e| match e {
                ChargeError::Refused(r) => dp_err(r.to_string()),
                ChargeError::Ledger(l) => dp_err(format!("budget ledger: {l}")),
            })?;
        let counts: Vec<i64> = positions.iter().map(|&p| words[p] as i64).collect();
        let l2 = ((d.columns.len() + d.histograms.len()) as f64).sqrt();
        let noisy = release_gaussian_count_share(charge, &counts, l2, spec.threshold, &mut OsRng)
            .map_err(|e| dp_err(format!("noise: {e}")))?;
        let mut out = vec![0u64; words.len()];
        for (&p, &c) in positions.iter().zip(noisy.get()) {
            out[p] = c as u64;
        }
        // The DP flag: this site noised its counts.
        if let Some(flag) = out.last_mut() {
            *flag = 1;
        }
        if self.noisy.len() >= 16 {
            self.noisy.pop_first();
        }
        self.noisy.insert(study_id.to_owned(), out.clone());
        Ok(admitted.admission.contribution(Zeroizing::new(out)))
    }
}

impl SiteGovernance {
    /// Checks a model release before this site co-signs it: a KM release's strata and risk
    /// sets against this site's floors ([`crate::fed::strata::check_release`]). Errors name the
    /// rule.
    pub fn check_model_release(&self, kind: &str, model: Option<&serde_json::Value>) -> Result<(), String> {
        let d = self.policy.disclosure();
        crate::fed::strata::check_release(kind, model, d.min_cell_count.max(d.min_risk_set))
            .map_err(|e| format!("refused by `{}`: {e}", crate::fed::strata::RULE))
    }
}

fn dp_err(reason: String) -> ProtocolError {
    ProtocolError::invalid("differential privacy", "dp_epsilon", reason)
}

/// Usable rows of a describe study: the fewest non-missing values over its columns.
fn describe_rows(d: &DescribeSpec, data: &DataFrame) -> Result<u64, Refused> {
    let hist = d.histograms.iter().map(|h| &h.column);
    let mut n = u64::MAX;
    for c in d.columns.iter().chain(hist) {
        let Ok(values) = data.column(c) else {
            return Err(Refused::Study(format!("column `{c}` is not in this site's data")));
        };
        n = n.min(values.iter().filter(|v| !v.is_nan()).count() as u64);
    }
    Ok(if n == u64::MAX { 0 } else { n })
}

/// Indices of the count words of a describe vector: each column's count, then every bin.
fn count_positions(d: &DescribeSpec) -> Vec<usize> {
    let mut out: Vec<usize> = (0..d.columns.len()).map(|i| i * COLUMN_WORDS).collect();
    let mut at = d.columns.len() * COLUMN_WORDS;
    for h in &d.histograms {
        let k = h.bins as usize + 2;
        out.extend(at..at + k);
        at += k;
    }
    out
}

/// The coordinator's release of a describe study from the secure `sum`: as
/// [`describe::release`]; when any site noised its counts (the summed DP flag, see
/// [`describe`]) or the study asks for DP, first clamps the noisy counts at zero
/// (post-processing) and releases no means or variances (their sums were not contributed).
///
/// Errors: the wrong length, or DP noise from fewer than the study's threshold `t` of sites
/// (each site adds σ²/t, so fewer than `t` noisy shares would not reach the calibrated σ²; this
/// happens when only some sites' policies require DP: give `dp_epsilon` so every site noises).
pub fn release_describe(
    spec: &StudySpec,
    d: &DescribeSpec,
    sum: &[u64],
    min_cell_count: u64,
) -> Result<DescribeResult, ProtocolError> {
    if sum.len() != describe::vector_len(d) {
        return Err(ProtocolError::invalid("aggregate", "sum", "length differs from the study layout"));
    }
    let noised = describe::dp_sites(sum);
    if spec.dp_epsilon.is_none() && noised == 0 {
        return describe::release(d, sum, min_cell_count);
    }
    if noised < u64::from(spec.threshold) {
        return Err(ProtocolError::invalid(
            "differential privacy",
            "dp_epsilon",
            format!(
                "only {noised} of the contributing sites added DP noise and the noise needs at least the threshold {}; \
                 give dp_epsilon so that every site adds its share",
                spec.threshold
            ),
        ));
    }
    let mut clamped = sum.to_vec();
    for p in count_positions(d) {
        if let Some(w) = clamped.get_mut(p) {
            *w = (*w as i64).max(0) as u64;
        }
    }
    let mut r = describe::release(d, &clamped, min_cell_count)?;
    for c in &mut r.columns {
        (c.mean, c.variance, c.sd) = (None, None, None);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HistogramSpec;

    #[test]
    fn count_positions_match_the_describe_layout() {
        let one = DescribeSpec { columns: vec!["x".into()], histograms: vec![] };
        assert_eq!(describe::vector_len(&one), COLUMN_WORDS + describe::DP_FLAG);
        let d = DescribeSpec {
            columns: vec!["x".into(), "y".into()],
            histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 1.0, bins: 2 }],
        };
        let p = count_positions(&d);
        assert_eq!(
            p,
            vec![0, COLUMN_WORDS, 2 * COLUMN_WORDS, 2 * COLUMN_WORDS + 1, 2 * COLUMN_WORDS + 2, 2 * COLUMN_WORDS + 3]
        );
        assert_eq!(*p.last().unwrap() + 1 + describe::DP_FLAG, describe::vector_len(&d));
        // Layout check against real data: the count words hold the counts.
        let data = DataFrame::from_columns(vec![("x", vec![0.1, 0.9, f64::NAN]), ("y", vec![1.0, 2.0, 3.0])]).unwrap();
        let v = describe::local_vector(&d, &data).unwrap();
        let counts: Vec<u64> = p.iter().map(|&i| v[i]).collect();
        assert_eq!(counts, vec![2, 3, 1, 1, 0, 0]);
    }
}
