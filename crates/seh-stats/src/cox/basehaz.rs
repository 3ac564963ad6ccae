//! Breslow cumulative baseline hazard (R: `basehaz(fit, centered = FALSE)`,
//! i.e. `survfit(fit, ctype = 1)` rescaled to covariates = 0).

use serde::Serialize;

use super::kernel::{evaluate, StoredSums, Workspace};
use super::prepared::PreparedCox;
use super::{CoxError, Ties};

/// Cumulative hazard at the distinct event times, stratum after stratum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineCumhaz {
    /// Event times (ascending within each stratum).
    pub time: Vec<f64>,
    /// Rows at risk.
    pub n_risk: Vec<u64>,
    /// Weighted number of events.
    pub n_event: Vec<f64>,
    /// Cumulative hazard at covariates 0 (and offset 0).
    pub cumhaz: Vec<f64>,
    /// Stratum label per entry (stratified fits only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strata: Option<Vec<String>>,
}

/// Compute the Breslow baseline cumulative hazard at the fitted coefficients.
///
/// `beta_int` is the estimate on the kernel's scale, `beta` the same on the
/// original scale (aliased coefficients 0). Increment at time t of a stratum:
/// `Σ_deaths w / Σ_risk w exp(xβ + offset)`.
pub fn baseline_cumhaz(
    prep: &PreparedCox,
    beta_int: &[f64],
    beta: &[f64],
    _ties: Ties,
) -> Result<BaselineCumhaz, CoxError> {
    let mut ws = Workspace::new(prep);
    let mut store = StoredSums::new(prep.p(), false);
    evaluate(prep, beta_int, Ties::Breslow, &mut ws, &mut store)?;
    let bc: f64 = beta.iter().zip(prep.centre()).map(|(b, c)| b * c).sum();
    let labels = prep.strata_labels();
    let stratified = labels.len() > 1 || !labels[0].is_empty();
    Ok(baseline_from_sums(&store, bc, stratified.then_some(labels)))
}

/// The Breslow cumulative hazard from per-time sums evaluated at the fitted β
/// (one site's, or the secure sum over sites — the federation calls this too).
///
/// `bc` is `Σ β·centre` on the original scale (it moves the hazard from the
/// centred covariates to covariates = 0); `labels`, for stratified fits, names
/// each stratum index of the records.
pub fn baseline_from_sums(store: &StoredSums, bc: f64, labels: Option<&[String]>) -> BaselineCumhaz {
    let mut out = BaselineCumhaz {
        time: Vec::new(),
        n_risk: Vec::new(),
        n_event: Vec::new(),
        cumhaz: Vec::new(),
        strata: labels.map(|_| Vec::new()),
    };
    let recs = &store.records;
    let mut i = 0;
    while i < recs.len() {
        let s = recs[i].stratum;
        let mut j = i;
        while j < recs.len() && recs[j].stratum == s {
            j += 1;
        }
        let mut cum = 0.0;
        for r in recs[i..j].iter().rev() {
            if r.n_deaths == 0 {
                continue;
            }
            cum += r.death_weight * (-r.shift - bc).exp() / r.s0;
            out.time.push(r.time);
            out.n_risk.push(r.n_risk);
            out.n_event.push(r.death_weight);
            out.cumhaz.push(cum);
            if let (Some(st), Some(l)) = (out.strata.as_mut(), labels) {
                st.push(l.get(s).cloned().unwrap_or_default());
            }
        }
        i = j;
    }
    out
}
