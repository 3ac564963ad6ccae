//! The raw TOML shape of a site policy file and its strict parse (unknown keys are errors).

use serde::Deserialize;
use toml::Spanned;

use crate::error::PolicyError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    pub version: Spanned<i64>,
    #[serde(default)]
    pub researchers: Vec<RawResearcher>,
    pub analyses: RawAllowed,
    pub aggregation: RawAllowed,
    pub disclosure: RawDisclosure,
    pub time_grid: RawTimeGrid,
    pub dp: RawDp,
    pub consent: RawConsent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResearcher {
    pub name: Spanned<String>,
    pub key: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAllowed {
    pub allowed: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisclosure {
    pub min_cell_count: Spanned<i64>,
    pub min_risk_set: Spanned<i64>,
    pub min_subset_size: Spanned<i64>,
    pub max_parameters_per_row: Spanned<f64>,
    #[serde(default)]
    pub local_verification: Option<Spanned<bool>>,
    #[serde(default)]
    pub min_bin_width: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeGrid {
    pub allow_event_times: Spanned<bool>,
    pub min_step: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDp {
    pub required: Spanned<bool>,
    pub epsilon_total: Spanned<f64>,
    pub epsilon_per_query: Spanned<f64>,
    pub delta_total: Spanned<f64>,
    pub delta_per_query: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsent {
    pub regime: Spanned<String>,
    pub purposes: Spanned<Vec<Spanned<String>>>,
}

/// 1-based line and column of byte offset `pos` in `text`.
pub(super) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = text.get(..pos.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses `text` strictly; unknown keys become [`PolicyError::UnknownKey`], missing ones
/// [`PolicyError::MissingKey`], everything else [`PolicyError::Syntax`] with line and column.
pub(super) fn parse(text: &str, source_name: &str) -> Result<RawPolicy, PolicyError> {
    toml::from_str::<RawPolicy>(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        let message = e.message().trim().to_owned();
        let quoted =
            |prefix: &str| message.strip_prefix(prefix).and_then(|rest| rest.split('`').next()).map(str::to_owned);
        if let Some(key) = quoted("unknown field `") {
            // toml points at the key itself; find the line of its first occurrence at or after
            // the reported span if the span is missing.
            return PolicyError::UnknownKey { source_name: source_name.to_owned(), line, key };
        }
        if let Some(key) = quoted("missing field `") {
            return PolicyError::MissingKey { source_name: source_name.to_owned(), key };
        }
        PolicyError::Syntax { source_name: source_name.to_owned(), line, column, message }
    })
}
