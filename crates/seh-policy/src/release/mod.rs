//! [`Releasable<T>`]: the only values a site may send out, and the disclosure-control functions
//! that make them.
//!
//! **The node must route every outgoing value through this module.** A `Releasable<T>` has a
//! private field and no public constructor, no `Deserialize` and no `Default`, so outside this
//! crate one can only be obtained from:
//!
//! * [`release_counts`] / [`release_table2`]: small-count suppression with secondary suppression;
//! * [`release_risk_table`]: risk sets below k merged on the time grid;
//! * [`release_model`]: the model-size rule;
//! * the DP releases in [`crate::dp`] (`release_laplace_*`, `release_gaussian_*`), which consume a
//!   [`crate::dp::BudgetCharge`] from the persistent ledger.
//!
//! The wire layer should accept only `Releasable<T>` in the message fields that carry results, so
//! that skipping the policy stage is a type error rather than a review finding.

mod riskset;
mod suppress;

use serde::Serialize;

pub use riskset::{release_risk_table, RiskRow, RiskTable, RiskTableError};
pub use suppress::{release_counts, release_table2, Cell, CountTable, Table2, TableError};

use crate::decision::{Refusal, Rule};
use crate::policy::SitePolicy;

/// A value that has passed this site's disclosure control and may leave the site.
///
/// Serializes transparently as the inner value.
#[derive(Clone, PartialEq, Debug, Serialize)]
#[serde(transparent)]
pub struct Releasable<T>(T);

impl<T> Releasable<T> {
    /// Crate-internal: only disclosure-control functions call this.
    pub(crate) fn new(value: T) -> Self {
        Self(value)
    }

    /// The released value.
    pub fn get(&self) -> &T {
        &self.0
    }

    /// The released value, for the wire encoder.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The model-size rule (DataSHIELD `nfilter.glm`): refuses when `n_parameters` exceeds
/// `max_parameters_per_row × n_rows`. The reason does not reveal `n_rows`.
pub fn check_model_size(policy: &SitePolicy, n_parameters: u64, n_rows: u64) -> Result<(), Refusal> {
    let ratio = policy.disclosure().max_parameters_per_row;
    // Compare exactly enough: both sides are far below 2^53 in any realistic setting; the
    // multiplication is done in f64 exactly as DataSHIELD does in R.
    if (n_parameters as f64) > ratio * (n_rows as f64) {
        return Err(Refusal::new(
            Rule::ModelSize,
            format!("the model has too many parameters for this site's rows (at most {ratio} per row)"),
        ));
    }
    Ok(())
}

/// Releases model estimates `estimates` fitted with `n_parameters` parameters on `n_rows` rows,
/// after the subset-size rule (`min_subset_size`) and the model-size rule.
pub fn release_model<T>(
    policy: &SitePolicy,
    estimates: T,
    n_parameters: u64,
    n_rows: u64,
) -> Result<Releasable<T>, Refusal> {
    let min = policy.disclosure().min_subset_size;
    if n_rows < min {
        return Err(Refusal::new(Rule::MinSubsetSize, format!("fewer than {min} usable rows at this site")));
    }
    check_model_size(policy, n_parameters, n_rows)?;
    Ok(Releasable::new(estimates))
}
