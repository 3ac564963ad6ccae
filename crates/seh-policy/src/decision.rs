//! Decisions and the rules that make them.

use serde::Serialize;
use std::fmt;

/// A rule of the site policy (or of disclosure control) that can refuse a study or a release.
///
/// [`Rule::key`] is the policy-file key that configures it, so an operator can find the setting
/// that refused a study.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The researcher's key is not in `researchers`.
    ResearcherNotAllowed,
    /// The analysis kind is not in `analyses.allowed`.
    AnalysisNotAllowed,
    /// The aggregation back-end is not in `aggregation.allowed`.
    AggregationNotAllowed,
    /// The study's purpose of use is not in `consent.purposes`.
    PurposeNotAllowed,
    /// A released count would be below `disclosure.min_cell_count`.
    MinCellCount,
    /// A released risk set would be below `disclosure.min_risk_set`.
    MinRiskSet,
    /// The site's usable rows are below `disclosure.min_subset_size`.
    MinSubsetSize,
    /// A histogram's bounds or bin width are not on the public lattice of
    /// `disclosure.min_bin_width` (or a column has more than one histogram in a study).
    HistogramLattice,
    /// The model has more parameters than `disclosure.max_parameters_per_row` × n.
    ModelSize,
    /// The study's time grid is finer than `time_grid.min_step` allows.
    TimeGridTooFine,
    /// The site requires DP noise (`dp.required`) and the study asks for none.
    DpRequired,
    /// The study's per-query ε exceeds `dp.epsilon_per_query`.
    DpEpsilonPerQuery,
    /// The study's per-query δ exceeds `dp.delta_per_query`.
    DpDeltaPerQuery,
    /// The researcher's remaining budget (`dp.epsilon_total`, `dp.delta_total`) is too small.
    DpBudgetExhausted,
}

impl Rule {
    /// The dotted policy key that configures this rule.
    pub fn key(self) -> &'static str {
        match self {
            Rule::ResearcherNotAllowed => "researchers",
            Rule::AnalysisNotAllowed => "analyses.allowed",
            Rule::AggregationNotAllowed => "aggregation.allowed",
            Rule::PurposeNotAllowed => "consent.purposes",
            Rule::MinCellCount => "disclosure.min_cell_count",
            Rule::MinRiskSet => "disclosure.min_risk_set",
            Rule::MinSubsetSize => "disclosure.min_subset_size",
            Rule::HistogramLattice => "disclosure.min_bin_width",
            Rule::ModelSize => "disclosure.max_parameters_per_row",
            Rule::TimeGridTooFine => "time_grid",
            Rule::DpRequired => "dp.required",
            Rule::DpEpsilonPerQuery => "dp.epsilon_per_query",
            Rule::DpDeltaPerQuery => "dp.delta_per_query",
            Rule::DpBudgetExhausted => "dp.epsilon_total",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A refusal: the rule that refused and a human-readable reason. The reason never contains a
/// patient value; it may be shown to the researcher.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, thiserror::Error)]
#[error("refused by `{rule}`: {reason}")]
pub struct Refusal {
    /// The rule that refused.
    pub rule: Rule,
    /// Why, in words.
    pub reason: String,
}

impl Refusal {
    pub(crate) fn new(rule: Rule, reason: impl Into<String>) -> Self {
        Self { rule, reason: reason.into() }
    }
}

/// The outcome of applying a site policy to a study request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The site takes part.
    Accept,
    /// The site refuses.
    Refuse {
        /// The rule that refused.
        rule: Rule,
        /// Why (no patient values).
        reason: String,
    },
}

impl Decision {
    /// True for [`Decision::Accept`].
    pub fn is_accept(&self) -> bool {
        matches!(self, Decision::Accept)
    }

    /// The refusing rule, if refused.
    pub fn rule(&self) -> Option<Rule> {
        match self {
            Decision::Accept => None,
            Decision::Refuse { rule, .. } => Some(*rule),
        }
    }
}

impl From<Refusal> for Decision {
    fn from(r: Refusal) -> Self {
        Decision::Refuse { rule: r.rule, reason: r.reason }
    }
}

impl From<Result<(), Refusal>> for Decision {
    fn from(r: Result<(), Refusal>) -> Self {
        match r {
            Ok(()) => Decision::Accept,
            Err(e) => e.into(),
        }
    }
}
