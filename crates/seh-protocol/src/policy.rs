//! A site's policy: which researchers and analysis kinds it serves and its minimum cell count.
//! (The full governance model — consent, DP budgets, grid coarseness — comes later.)

use seh_crypto::wire::VerifyingKey;
use seh_stats::DataFrame;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::hex;
use crate::spec::{Analysis, StudySpec};

/// Default minimum cell count (the DataSHIELD default floor).
pub const DEFAULT_MIN_CELL_COUNT: u64 = 5;

fn default_min() -> u64 {
    DEFAULT_MIN_CELL_COUNT
}

/// A site's policy, as written in the `[policy]` table of its node config.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePolicy {
    /// Researchers served, by Ed25519 public key (64 hex characters). Empty: nobody.
    pub allowed_researchers: Vec<String>,
    /// Analysis kinds served (`describe`). Empty: none.
    pub allowed_analyses: Vec<String>,
    /// Released counts below this (and above zero) are suppressed; a site with fewer usable rows
    /// refuses. At least 1.
    #[serde(default = "default_min")]
    pub min_cell_count: u64,
}

/// The outcome of applying a policy to a study.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Decision {
    /// The site takes part.
    Accept,
    /// The site refuses, saying why (never a data value).
    Refuse(String),
}

impl SitePolicy {
    /// Checks the policy itself. Errors name the field.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        for (i, k) in self.allowed_researchers.iter().enumerate() {
            let ok = hex::decode_array::<32>(k).is_some_and(|b| VerifyingKey::from_bytes(&b).is_ok());
            if !ok {
                return Err(ProtocolError::invalid(
                    "policy",
                    format!("allowed_researchers[{i}]"),
                    "not an Ed25519 key",
                ));
            }
        }
        if self.min_cell_count == 0 {
            return Err(ProtocolError::invalid("policy", "min_cell_count", "must be at least 1"));
        }
        Ok(())
    }

    /// Decides whether site `site` takes part in `spec` (already signature-checked under
    /// `researcher_key`) over its `data`.
    ///
    /// Refuses when: the researcher's key is not allowed; the analysis kind is not allowed; the
    /// site is not listed; a requested column is missing; or a column has fewer than
    /// `min_cell_count` non-missing values at this site.
    pub fn decide(&self, site: &str, researcher_key: &VerifyingKey, spec: &StudySpec, data: &DataFrame) -> Decision {
        let key = hex::encode(researcher_key.as_bytes());
        if !self.allowed_researchers.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
            return Decision::Refuse(format!("researcher `{}` is not allowed by this site's policy", spec.researcher));
        }
        let kind = spec.analysis.kind();
        if !self.allowed_analyses.iter().any(|a| a == kind) {
            return Decision::Refuse(format!("analysis kind `{kind}` is not allowed by this site's policy"));
        }
        if !spec.sites.iter().any(|s| s == site) {
            return Decision::Refuse("this site is not listed in the study".into());
        }
        let d = match &spec.analysis {
            Analysis::Describe(d) => d,
            other => return self.decide_model(other, data),
        };
        let hist_cols = d.histograms.iter().map(|h| &h.column);
        for c in d.columns.iter().chain(hist_cols) {
            let Ok(values) = data.column(c) else {
                return Decision::Refuse(format!("column `{c}` is not in this site's data"));
            };
            let n = values.iter().filter(|v| !v.is_nan()).count() as u64;
            if n < self.min_cell_count {
                return Decision::Refuse(format!(
                    "column `{c}` has fewer non-missing values than this site's minimum cell count ({})",
                    self.min_cell_count
                ));
            }
        }
        Decision::Accept
    }

    /// Model analyses: the formula must build on this site's rows, the site must have at least
    /// `min_cell_count` usable rows, and a pooled Cox study must not release risk sets smaller
    /// than this site's minimum.
    fn decide_model(&self, analysis: &Analysis, data: &DataFrame) -> Decision {
        if let Analysis::Cox(c) = analysis {
            if c.mode == crate::fed::CoxMode::Pooled && c.min_risk_set < self.min_cell_count {
                return Decision::Refuse(format!(
                    "the study releases risk sets down to {}, below this site's minimum of {}",
                    c.min_risk_set, self.min_cell_count
                ));
            }
        }
        match crate::fed::site::frame(analysis, data) {
            Err(e) => Decision::Refuse(format!("the model does not fit this site's data: {e}")),
            Ok(f) if (f.nrows() as u64) < self.min_cell_count => Decision::Refuse(format!(
                "fewer usable rows than this site's minimum cell count ({})",
                self.min_cell_count
            )),
            Ok(_) => Decision::Accept,
        }
    }
}
