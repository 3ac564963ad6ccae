//! Per-patient research consent (the facts of FHIR R4 `Consent` that matter for secondary use),
//! an opt-out list, evaluation for a study purpose at a date, and the row filter that runs before
//! any computation.
//!
//! # Semantics
//!
//! * Only records with `status = active` and research scope count; others are ignored (a draft,
//!   rejected, inactive or entered-in-error record grants nothing and denies nothing).
//! * A provision *applies* when the study date lies in its period (inclusive at both ends) and its
//!   purposes match the study purpose (an empty purpose list matches every purpose). A `permit`
//!   matches only when one of its purposes equals or subsumes the study purpose; a `deny` matches
//!   when a purpose equals, subsumes or is subsumed by the study purpose (deny is read broadly,
//!   permit narrowly). Subsumption follows the purpose-of-use hierarchy of v3-ActReason
//!   ([`HRESCH`] covers `BIORCH`, `CLINTRCH`, `DSRCH`, `POARCH`, `TRANSRCH`, …; `TREAT` covers
//!   `ETREAT`, …). Codes are case-sensitive and must be purpose-of-use codes of v3-ActReason
//!   ([`check_purpose_code`]); [`ConsentRegistry::add_record`] and
//!   [`ConsentRegistry::add_opt_out`] refuse anything else, so a misspelt objection can never be
//!   stored and then match nothing.
//! * Nested provisions are exceptions to their parent and are looked at only when the parent
//!   applies. If any applicable child denies, the result is deny; otherwise if any applicable
//!   child permits, permit; otherwise the parent's type.
//! * A provision restricted by conditions this evaluator does not model (actor, action, data
//!   class, code, security label, data period) has `has_unmodelled_conditions = true`: such a
//!   `permit` never applies, such a `deny` always applies (both fail safe).
//! * Across a patient's records: the opt-out list denies first (an entry applies from its date
//!   on, inclusive, and for its purpose read broadly like a deny, or for every purpose); then any
//!   deny wins; then any permit; otherwise the [`ConsentRegime`] decides (opt-in: denied;
//!   opt-out: permitted). An opt-out dated after the study date does not apply yet; a row kept
//!   although its patient has such a pending opt-out is counted in the filter's audit.

use std::collections::HashMap;

use crate::date::Date;
use crate::error::ConsentError;
use crate::site_only::SiteOnly;

mod codes;

pub use codes::{check_purpose_code, purpose_code, PurposeCodeError};

/// The HL7 v3-ActReason code system URI.
pub const ACT_REASON_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// v3-ActReason "healthcare research".
pub const HRESCH: &str = "HRESCH";

/// FHIR `Consent.status`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConsentStatus {
    /// `draft`
    Draft,
    /// `proposed`
    Proposed,
    /// `active`: the only status that has any effect.
    Active,
    /// `rejected`
    Rejected,
    /// `inactive`
    Inactive,
    /// `entered-in-error`
    EnteredInError,
}

impl ConsentStatus {
    /// Parses the FHIR code (`active`, `inactive`, …); `None` for anything else.
    pub fn from_fhir(code: &str) -> Option<Self> {
        Some(match code {
            "draft" => Self::Draft,
            "proposed" => Self::Proposed,
            "active" => Self::Active,
            "rejected" => Self::Rejected,
            "inactive" => Self::Inactive,
            "entered-in-error" => Self::EnteredInError,
            _ => return None,
        })
    }
}

/// FHIR `Consent.provision.type`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProvisionType {
    /// `permit`
    Permit,
    /// `deny`
    Deny,
}

/// A closed date interval; a missing end is open.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Period {
    /// First day covered, if bounded.
    pub start: Option<Date>,
    /// Last day covered, if bounded.
    pub end: Option<Date>,
}

impl Period {
    /// True when `date` lies in the period.
    pub fn contains(&self, date: Date) -> bool {
        self.start.is_none_or(|s| s <= date) && self.end.is_none_or(|e| date <= e)
    }
}

/// A purpose-of-use code (`Coding`: system and code).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Purpose {
    /// Code system URI, normally [`ACT_REASON_SYSTEM`].
    pub system: String,
    /// The code, e.g. `HRESCH`.
    pub code: String,
}

impl Purpose {
    /// A v3-ActReason purpose.
    pub fn act_reason(code: &str) -> Self {
        Self { system: ACT_REASON_SYSTEM.to_owned(), code: code.to_owned() }
    }

    /// A v3-ActReason purpose, checked: `code` must be a purpose-of-use code exactly as HL7
    /// spells it ([`check_purpose_code`]).
    pub fn parse_act_reason(code: &str) -> Result<Self, PurposeCodeError> {
        check_purpose_code(code).map(Self::act_reason)
    }

    /// True when `self` equals `other` or is an ancestor of it in v3-ActReason.
    pub fn subsumes(&self, other: &Purpose) -> bool {
        if self.system != other.system {
            return false;
        }
        if self.code == other.code {
            return true;
        }
        if self.system != ACT_REASON_SYSTEM {
            return false;
        }
        let mut cur = other.code.as_str();
        // The table is acyclic; bound the walk by its length anyway.
        for _ in 0..codes::COUNT {
            match codes::parent(cur) {
                Some(parent) if parent == self.code => return true,
                Some(parent) => cur = parent,
                None => return false,
            }
        }
        false
    }
}

/// One `Consent.provision` (possibly nested).
#[derive(Clone, PartialEq, Debug)]
pub struct Provision {
    /// permit or deny.
    pub kind: ProvisionType,
    /// When it is in force; `None`: always.
    pub period: Option<Period>,
    /// Purposes of use it is restricted to; empty: all purposes.
    pub purposes: Vec<Purpose>,
    /// It has conditions this evaluator does not model (see the module docs: fail safe).
    pub has_unmodelled_conditions: bool,
    /// Exceptions to this provision.
    pub provisions: Vec<Provision>,
}

impl Provision {
    /// A provision of type `kind` with no conditions and no exceptions.
    pub fn new(kind: ProvisionType) -> Self {
        Self { kind, period: None, purposes: Vec::new(), has_unmodelled_conditions: false, provisions: Vec::new() }
    }
}

/// The facts of one FHIR `Consent` resource.
#[derive(Clone, PartialEq, Debug)]
pub struct ConsentRecord {
    /// The resource id (site-local; used in decisions for the site's audit).
    pub id: String,
    /// The patient's site-local identifier (`Consent.patient` reference, e.g. `Patient/123`).
    pub patient: String,
    /// `Consent.status`.
    pub status: ConsentStatus,
    /// `Consent.scope` is `research`.
    pub research_scope: bool,
    /// The root provision.
    pub provision: Provision,
}

/// What happens to a patient without any applicable research consent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ConsentRegime {
    /// Explicit consent is required (default).
    #[default]
    OptIn,
    /// Secondary use is allowed unless the patient objected.
    OptOut,
}

/// The rule that decided a patient's consent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ConsentRule {
    /// The patient is on the site's opt-out list.
    OptOutList,
    /// A deny provision applied (`record` id, `path` such as `provision.provision[1]`).
    DenyProvision {
        /// The record id.
        record: String,
        /// The provision path.
        path: String,
    },
    /// A permit provision applied.
    PermitProvision {
        /// The record id.
        record: String,
        /// The provision path.
        path: String,
    },
    /// No active research record applied, and the regime decided; `why` names the last reason a
    /// record did not apply (`no record`, `record x: inactive`, `record x: outside period`, …).
    Regime {
        /// The regime.
        regime: ConsentRegime,
        /// Why no record applied.
        why: String,
    },
}

/// Consent for one patient, purpose and date.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ConsentDecision {
    /// The row may be used.
    Permitted(ConsentRule),
    /// The row must be removed.
    Denied(ConsentRule),
}

impl ConsentDecision {
    /// True for [`ConsentDecision::Permitted`].
    pub fn is_permitted(&self) -> bool {
        matches!(self, Self::Permitted(_))
    }
}

enum Outcome {
    Permit(ConsentRule),
    Deny(ConsentRule),
    NotApplicable(String),
}

fn eval_provision(rec: &str, p: &Provision, path: &str, purpose: &Purpose, date: Date) -> Outcome {
    if !p.period.is_none_or(|per| per.contains(date)) {
        return Outcome::NotApplicable(format!("record {rec}: {path} outside period"));
    }
    let purpose_ok = p.purposes.is_empty()
        || p.purposes.iter().any(|c| match p.kind {
            ProvisionType::Permit => c.subsumes(purpose),
            ProvisionType::Deny => c.subsumes(purpose) || purpose.subsumes(c),
        });
    if !purpose_ok {
        return Outcome::NotApplicable(format!("record {rec}: {path} purpose not covered"));
    }
    if p.has_unmodelled_conditions && p.kind == ProvisionType::Permit {
        return Outcome::NotApplicable(format!("record {rec}: {path} has unmodelled conditions"));
    }
    let (mut any_permit, mut first_deny) = (None, None);
    for (i, child) in p.provisions.iter().enumerate() {
        match eval_provision(rec, child, &format!("{path}.provision[{i}]"), purpose, date) {
            Outcome::Deny(r) => {
                first_deny.get_or_insert(r);
            }
            Outcome::Permit(r) => {
                any_permit.get_or_insert(r);
            }
            Outcome::NotApplicable(_) => {}
        }
    }
    if let Some(r) = first_deny {
        return Outcome::Deny(r);
    }
    if let Some(r) = any_permit {
        return Outcome::Permit(r);
    }
    let rule = |record: &str| (record.to_owned(), path.to_owned());
    let (record, path) = rule(rec);
    match p.kind {
        ProvisionType::Permit => Outcome::Permit(ConsentRule::PermitProvision { record, path }),
        ProvisionType::Deny => Outcome::Deny(ConsentRule::DenyProvision { record, path }),
    }
}

/// One entry of a site's opt-out list: the patient objects to `purpose` (every purpose when
/// `None`) from `since` on (always when `None`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct OptOutEntry {
    /// The purpose objected to (read broadly, like a deny); `None`: every purpose.
    pub purpose: Option<Purpose>,
    /// First day the objection is in force; `None`: always.
    pub since: Option<Date>,
}

impl OptOutEntry {
    fn covers(&self, purpose: &Purpose) -> bool {
        self.purpose.as_ref().is_none_or(|c| c.subsumes(purpose) || purpose.subsumes(c))
    }
}

/// All consent knowledge of a site: records by patient, the opt-out list and the regime.
#[derive(Clone, Debug, Default)]
pub struct ConsentRegistry {
    regime: ConsentRegime,
    records: HashMap<String, Vec<ConsentRecord>>,
    opt_out: HashMap<String, Vec<OptOutEntry>>,
}

/// Checks that `p` is a v3-ActReason purpose-of-use code (system and code).
fn check_purpose(p: &Purpose) -> Result<(), String> {
    if p.system != ACT_REASON_SYSTEM {
        return Err(format!("only v3-ActReason purposes ({ACT_REASON_SYSTEM}) are understood"));
    }
    check_purpose_code(&p.code).map(|_| ()).map_err(|e| e.to_string())
}

impl ConsentRegistry {
    /// An empty registry under `regime`.
    pub fn new(regime: ConsentRegime) -> Self {
        Self { regime, ..Self::default() }
    }

    /// Adds a record. Errors (naming the record and field) when a period ends before it starts,
    /// a purpose is not a v3-ActReason purpose-of-use code (case-sensitive), the patient
    /// reference is empty, or provisions nest deeper than 16 levels.
    pub fn add_record(&mut self, record: ConsentRecord) -> Result<(), ConsentError> {
        fn check(rec: &str, p: &Provision, path: &str, depth: usize) -> Result<(), ConsentError> {
            let bad = |field: String, reason: &str| ConsentError::Invalid {
                record: rec.to_owned(),
                field,
                reason: reason.to_owned(),
            };
            if depth > 16 {
                return Err(bad(path.to_owned(), "provisions nest deeper than 16 levels"));
            }
            if let Some(Period { start: Some(s), end: Some(e) }) = p.period {
                if e < s {
                    return Err(bad(format!("{path}.period"), "end is before start"));
                }
            }
            for (i, c) in p.purposes.iter().enumerate() {
                check_purpose(c).map_err(|reason| bad(format!("{path}.purpose[{i}]"), &reason))?;
            }
            for (i, c) in p.provisions.iter().enumerate() {
                check(rec, c, &format!("{path}.provision[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        if record.patient.trim().is_empty() {
            return Err(ConsentError::Invalid {
                record: record.id.clone(),
                field: "patient".into(),
                reason: "empty patient reference".into(),
            });
        }
        check(&record.id, &record.provision, "provision", 0)?;
        self.records.entry(record.patient.clone()).or_default().push(record);
        Ok(())
    }

    /// Puts `patient` on the opt-out list (denied for every purpose, whatever the records say).
    pub fn opt_out(&mut self, patient: &str) {
        self.opt_out.entry(patient.to_owned()).or_default().push(OptOutEntry::default());
    }

    /// Adds an entry of the opt-out list for `patient`. `source` names the entry in errors (a
    /// file and line, never a patient id). Errors when the patient is empty or the purpose is
    /// not a v3-ActReason purpose-of-use code (case-sensitive).
    pub fn add_opt_out(&mut self, source: &str, patient: &str, entry: OptOutEntry) -> Result<(), ConsentError> {
        let bad = |field: &str, reason: String| ConsentError::Invalid {
            record: source.to_owned(),
            field: field.to_owned(),
            reason,
        };
        if patient.trim().is_empty() {
            return Err(bad("patient", "empty patient reference".into()));
        }
        if let Some(p) = &entry.purpose {
            check_purpose(p).map_err(|reason| bad("purpose", reason))?;
        }
        self.opt_out.entry(patient.to_owned()).or_default().push(entry);
        Ok(())
    }

    /// True when `patient` has an opt-out entry covering `purpose` that is dated after `date`
    /// (it does not apply yet).
    pub fn has_pending_opt_out(&self, patient: &str, purpose: &Purpose, date: Date) -> bool {
        let entries = self.opt_out.get(patient).map(Vec::as_slice).unwrap_or_default();
        entries.iter().any(|e| e.since.is_some_and(|s| s > date) && e.covers(purpose))
    }

    /// Decides consent of `patient` for `purpose` on `date` (see the module docs).
    pub fn evaluate(&self, patient: &str, purpose: &Purpose, date: Date) -> ConsentDecision {
        let entries = self.opt_out.get(patient).map(Vec::as_slice).unwrap_or_default();
        if entries.iter().any(|e| e.since.is_none_or(|s| s <= date) && e.covers(purpose)) {
            return ConsentDecision::Denied(ConsentRule::OptOutList);
        }
        let mut why = String::from("no record");
        let mut permit = None;
        for rec in self.records.get(patient).map(Vec::as_slice).unwrap_or_default() {
            if rec.status != ConsentStatus::Active {
                why = format!("record {}: status not active", rec.id);
                continue;
            }
            if !rec.research_scope {
                why = format!("record {}: scope is not research", rec.id);
                continue;
            }
            match eval_provision(&rec.id, &rec.provision, "provision", purpose, date) {
                Outcome::Deny(r) => return ConsentDecision::Denied(r),
                Outcome::Permit(r) => {
                    permit.get_or_insert(r);
                }
                Outcome::NotApplicable(w) => why = w,
            }
        }
        if let Some(r) = permit {
            return ConsentDecision::Permitted(r);
        }
        let rule = ConsentRule::Regime { regime: self.regime, why };
        match self.regime {
            ConsentRegime::OptIn => ConsentDecision::Denied(rule),
            ConsentRegime::OptOut => ConsentDecision::Permitted(rule),
        }
    }

    /// Removes every row whose patient lacks consent for `purpose` on `date`, before any
    /// computation. `patient_of` maps a row to its patient's site-local identifier.
    ///
    /// Returns the kept rows (order preserved) and a [`SiteOnly`] audit fact with the number of
    /// rows removed and the count per deciding rule; that fact cannot be serialized into
    /// researcher-facing output.
    pub fn filter_rows<T>(
        &self,
        rows: Vec<T>,
        patient_of: impl Fn(&T) -> &str,
        purpose: &Purpose,
        date: Date,
    ) -> (Vec<T>, SiteOnly<ConsentFilterAudit>) {
        let mut audit = ConsentFilterAudit::default();
        let kept = rows
            .into_iter()
            .filter(|row| match self.evaluate(patient_of(row), purpose, date) {
                ConsentDecision::Permitted(_) => {
                    audit.kept += 1;
                    if self.has_pending_opt_out(patient_of(row), purpose, date) {
                        audit.kept_with_pending_opt_out += 1;
                    }
                    true
                }
                ConsentDecision::Denied(rule) => {
                    audit.removed += 1;
                    let k = match rule {
                        ConsentRule::OptOutList => &mut audit.by_opt_out,
                        ConsentRule::DenyProvision { .. } => &mut audit.by_deny_provision,
                        ConsentRule::Regime { .. } | ConsentRule::PermitProvision { .. } => {
                            &mut audit.by_no_applicable_consent
                        }
                    };
                    *k += 1;
                    false
                }
            })
            .collect();
        (kept, SiteOnly::new(audit))
    }
}

/// What the consent filter removed (site-only; see [`SiteOnly`]). Every row counts once:
/// `kept + removed` is the number of rows, and `removed` is the sum of the three `by_` counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ConsentFilterAudit {
    /// Rows kept.
    pub kept: u64,
    /// Rows kept although the patient has an opt-out for the purpose dated after the study date
    /// (it is not in force yet; the site is warned at import).
    pub kept_with_pending_opt_out: u64,
    /// Rows removed in total.
    pub removed: u64,
    /// Removed because the patient is on the opt-out list (outright, or for this purpose from a
    /// date on or before the study date).
    pub by_opt_out: u64,
    /// Removed because a deny provision applied.
    pub by_deny_provision: u64,
    /// Removed because no active research permit applied (opt-in regime).
    pub by_no_applicable_consent: u64,
}
