//! Applying a site policy to a study request.

use super::{Aggregation, AnalysisKind, SitePolicy};
use crate::consent::Purpose;
use crate::decision::{Decision, Refusal, Rule};

/// The time grid a study asks for.
#[derive(Clone, PartialEq, Debug)]
pub enum TimeGridRequest {
    /// The exact union of event times.
    EventTimes,
    /// Explicit grid points (analysis time unit), strictly increasing and finite.
    Points(Vec<f64>),
    /// A regular grid with this spacing (analysis time unit), finite and positive.
    Step(f64),
}

/// Differential privacy asked for by a study, per query.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct DpRequest {
    /// ε of each query, > 0.
    pub epsilon: f64,
    /// δ of each query (0 for pure ε-DP, e.g. Laplace).
    pub delta: f64,
}

/// What the policy needs to know about a study, independent of the wire format (the node
/// adapts its own study specification into this).
#[derive(Clone, PartialEq, Debug)]
pub struct StudyRequest {
    /// The researcher's Ed25519 public key (the node has already verified the study signature).
    pub researcher_key: [u8; 32],
    /// The analysis kind.
    pub analysis: AnalysisKind,
    /// The aggregation back-end.
    pub aggregation: Aggregation,
    /// The purpose of use the researcher declares.
    pub purpose: Purpose,
    /// Number of model parameters (GLM / Cox coefficients), for the model-size rule.
    pub n_parameters: Option<u64>,
    /// The time grid, for grid-based survival analyses.
    pub time_grid: Option<TimeGridRequest>,
    /// DP noise requested, if any.
    pub dp: Option<DpRequest>,
}

fn refuse(rule: Rule, reason: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal::new(rule, reason))
}

fn check(policy: &SitePolicy, req: &StudyRequest) -> Result<(), Refusal> {
    if !policy.researchers.iter().any(|r| r.key == req.researcher_key) {
        return refuse(Rule::ResearcherNotAllowed, "the researcher's key is not allowed by this site's policy");
    }
    if !policy.analyses.contains(&req.analysis) {
        return refuse(Rule::AnalysisNotAllowed, format!("analysis kind `{}` is not allowed", req.analysis.name()));
    }
    if !policy.aggregation.contains(&req.aggregation) {
        return refuse(
            Rule::AggregationNotAllowed,
            format!("aggregation back-end `{}` is not allowed", req.aggregation.name()),
        );
    }
    if !policy.consent.purposes.iter().any(|p| p.subsumes(&req.purpose)) {
        return refuse(Rule::PurposeNotAllowed, format!("purpose `{}` is not served by this site", req.purpose.code));
    }
    match &req.time_grid {
        None => {}
        Some(TimeGridRequest::EventTimes) if !policy.time_grid.allow_event_times => {
            return refuse(Rule::TimeGridTooFine, "an exact event-time grid is not allowed; use a coarser grid");
        }
        Some(TimeGridRequest::EventTimes) => {}
        Some(TimeGridRequest::Step(s)) => {
            let min = policy.time_grid.min_step;
            if !(s.is_finite() && *s > 0.0) || *s < min {
                return refuse(Rule::TimeGridTooFine, format!("the grid step must be finite and at least {min}"));
            }
        }
        Some(TimeGridRequest::Points(points)) => {
            if points.iter().any(|t| !t.is_finite()) || points.windows(2).any(|w| w[1] <= w[0]) {
                return refuse(Rule::TimeGridTooFine, "grid points must be finite and strictly increasing");
            }
            let step = policy.time_grid.min_step;
            if points.windows(2).any(|w| w[1] - w[0] < step) {
                return refuse(Rule::TimeGridTooFine, format!("grid points closer than the minimum step {step}"));
            }
        }
    }
    let dp = &policy.dp;
    match req.dp {
        // `dp.required` governs descriptive releases (the only DP mechanism); a node fills in the
        // policy's per-query ε for a describe study that names none. Models have no DP mechanism
        // and are governed by the disclosure floors.
        None if dp.required && req.analysis == AnalysisKind::Descriptive => {
            return refuse(Rule::DpRequired, "this site requires differential-privacy noise")
        }
        None => {}
        Some(q) => {
            if !(q.epsilon.is_finite() && q.epsilon > 0.0) || q.epsilon > dp.epsilon_per_query {
                return refuse(
                    Rule::DpEpsilonPerQuery,
                    format!("per-query epsilon must be in (0, {}]", dp.epsilon_per_query),
                );
            }
            if !(q.delta.is_finite() && q.delta >= 0.0) || q.delta > dp.delta_per_query {
                return refuse(
                    Rule::DpDeltaPerQuery,
                    format!("per-query delta must be in [0, {}]", dp.delta_per_query),
                );
            }
        }
    }
    Ok(())
}

/// Decides whether this site takes part in `req`, before touching any data: researcher,
/// analysis kind, aggregation back-end, purpose, time-grid coarseness and per-query DP
/// parameters. A refusal names the [`Rule`] that refused. The remaining DP budget is checked by
/// [`crate::dp::BudgetLedger::check`] and the data-dependent rules by [`check_rows`].
pub fn decide(policy: &SitePolicy, req: &StudyRequest) -> Decision {
    check(policy, req).into()
}

/// The data-dependent rules, applied after the consent filter: `usable_rows` (rows left after
/// consent filtering and the cohort definition) must reach `min_subset_size`, and the model's
/// parameter count must not exceed `max_parameters_per_row × usable_rows` (DataSHIELD's
/// `nfilter.glm` rule). The refusal reason does not reveal `usable_rows`.
pub fn check_rows(policy: &SitePolicy, req: &StudyRequest, usable_rows: u64) -> Decision {
    let d = &policy.disclosure;
    if usable_rows < d.min_subset_size {
        return Refusal::new(Rule::MinSubsetSize, format!("fewer than {} usable rows at this site", d.min_subset_size))
            .into();
    }
    if let Some(p) = req.n_parameters {
        if let Err(r) = crate::release::check_model_size(policy, p, usable_rows) {
            return r.into();
        }
    }
    Decision::Accept
}

/// The histogram-lattice rule (`disclosure.min_bin_width` = w > 0): `lo` and `hi` are multiples
/// of w and each of the `bins` bins spans a whole number (≥ 1) of w-steps, so every released bin
/// edge is on the public lattice w·ℤ and no sequence of bounds can separate two values in the
/// same lattice cell. w = 0: no lattice. Relative tolerance 1e-9 for decimal widths.
pub fn check_histogram(policy: &SitePolicy, lo: f64, hi: f64, bins: u32) -> Result<(), Refusal> {
    let w = policy.disclosure.min_bin_width;
    if w <= 0.0 {
        return Ok(());
    }
    let on = |x: f64| {
        let a = x / w;
        a.is_finite() && (a - a.round()).abs() <= 1e-9 * a.abs().max(1.0)
    };
    let steps = ((hi - lo) / w).round();
    let whole = bins > 0 && steps >= f64::from(bins) && (steps % f64::from(bins)) == 0.0;
    if !(on(lo) && on(hi) && lo < hi && whole) {
        return refuse(
            Rule::HistogramLattice,
            format!("histogram bounds must be multiples of {w} and every bin a whole number of {w}-wide steps"),
        );
    }
    Ok(())
}
