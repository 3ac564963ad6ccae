//! [`Admission`]: the token that a study passed every rule of this site's policy on the site's
//! own consented rows, and the only way to turn a secure-sum contribution into a
//! [`Releasable`].
//!
//! A contribution to a secure sum is not itself released (only the sum over all sites is), but it
//! leaves the site, so it must come from a study the policy accepted: [`admit`] runs
//! [`crate::policy::decide`] (researcher, analysis kind, back-end, purpose, time grid, DP
//! parameters), the requested disclosure floors (risk-set size, cell count) against this site's
//! minimums, and [`crate::policy::check_rows`] (subset size and the model-size rule) on the
//! number of usable rows left after the consent filter. [`Admission::contribution`] is then the
//! one door from a computed vector to a value the node may hand to the aggregation layer.

use crate::decision::{Decision, Refusal, Rule};
use crate::policy::{check_rows, decide, SitePolicy, StudyRequest};
use crate::release::Releasable;

/// What a study asks of this site's disclosure control, beyond [`StudyRequest`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DisclosureRequest {
    /// The smallest risk set the study would release (pooled survival analyses), if any.
    pub min_risk_set: Option<u64>,
}

/// Proof that this site's policy admitted a study. No public constructor, not `Clone`: made only
/// by [`admit`].
#[derive(Debug, PartialEq)]
pub struct Admission {
    researcher: [u8; 32],
    usable_rows: u64,
}

impl Admission {
    /// The researcher the study was admitted for.
    pub fn researcher(&self) -> &[u8; 32] {
        &self.researcher
    }

    /// Rows the study may use at this site (after consent filtering). A site-only number: the
    /// caller must not send it out.
    pub fn usable_rows(&self) -> u64 {
        self.usable_rows
    }

    /// Marks `value`, this site's contribution to a secure sum of the admitted study, as allowed
    /// to leave the site (to the aggregation layer, which only ever reveals the sum).
    pub fn contribution<T>(&self, value: T) -> Releasable<T> {
        Releasable::new(value)
    }
}

/// Applies every rule of `policy` to `req` (see the module docs): the request-level rules of
/// [`decide`], then the requested disclosure floors against this site's `disclosure` settings
/// (a study releasing risk sets smaller than `disclosure.min_risk_set` is refused with
/// [`Rule::MinRiskSet`]), then [`check_rows`] on `usable_rows` (rows left after consent
/// filtering). Returns the [`Admission`] or the first refusal with its rule.
pub fn admit(
    policy: &SitePolicy,
    req: &StudyRequest,
    disclosure: &DisclosureRequest,
    usable_rows: u64,
) -> Result<Admission, Refusal> {
    if let Decision::Refuse { rule, reason } = decide(policy, req) {
        return Err(Refusal { rule, reason });
    }
    let floor = policy.disclosure().min_risk_set;
    if disclosure.min_risk_set.is_some_and(|k| k < floor) {
        return Err(Refusal::new(
            Rule::MinRiskSet,
            format!("the study releases risk sets smaller than this site's minimum of {floor}"),
        ));
    }
    if let Decision::Refuse { rule, reason } = check_rows(policy, req, usable_rows) {
        return Err(Refusal { rule, reason });
    }
    Ok(Admission { researcher: req.researcher_key, usable_rows })
}
