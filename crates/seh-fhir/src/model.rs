//! Validated resources: what an import keeps of each FHIR resource.
//!
//! Every value here has passed the checks in [`crate::convert`]: ids are FHIR
//! ids, dates are real calendar dates, codes carry a system, patient
//! references point at a `Patient`. Field values may be patient data, so the
//! `Debug` forms of the resources show only ids and shapes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::date::FhirDate;

/// A code from a code system (`system` is an absolute URI such as `http://loinc.org`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Code {
    /// Code system URI.
    pub system: String,
    /// Code within the system.
    pub code: String,
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.code)
    }
}

impl Code {
    /// A code from `system` and `code`.
    pub fn new(system: impl Into<String>, code: impl Into<String>) -> Self {
        Code { system: system.into(), code: code.into() }
    }
}

/// `Resource.meta`: what identifies one version of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionInfo {
    /// `meta.versionId`, when given.
    pub version_id: Option<String>,
    /// `meta.lastUpdated` exactly as written (an `instant`), when given.
    pub last_updated: Option<String>,
}

/// `Patient.gender` (R4 value set `administrative-gender`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    /// `male`
    Male,
    /// `female`
    Female,
    /// `other`
    Other,
    /// `unknown`
    Unknown,
}

impl Gender {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        }
    }

    /// Parses a FHIR code; `None` if not in the value set.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "male" => Some(Gender::Male),
            "female" => Some(Gender::Female),
            "other" => Some(Gender::Other),
            "unknown" => Some(Gender::Unknown),
            _ => None,
        }
    }
}

/// `Patient.deceased[x]`. `Debug` hides the date.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Deceased {
    /// Neither `deceasedBoolean` nor `deceasedDateTime` is present.
    NotRecorded,
    /// `deceasedBoolean: false`.
    No,
    /// `deceasedBoolean: true` (date `None`) or `deceasedDateTime` (date given).
    Yes(Option<FhirDate>),
}

/// An imported `Patient`.
#[derive(Clone)]
pub struct Patient {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Administrative gender.
    pub gender: Option<Gender>,
    /// Birth date (any precision).
    pub birth_date: Option<FhirDate>,
    /// Death.
    pub deceased: Deceased,
    /// Business identifiers `(system, value)` (e.g. a medical record number).
    pub identifiers: Vec<(Option<String>, String)>,
}

/// An imported `Condition`.
#[derive(Clone)]
pub struct Condition {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient (`subject` = `Patient/<id>`).
    pub patient: String,
    /// `code.coding` (at least one).
    pub codes: Vec<Code>,
    /// `onsetDateTime` or `onsetPeriod.start`.
    pub onset: Option<FhirDate>,
    /// `abatementDateTime` or `abatementPeriod.start`.
    pub abatement: Option<FhirDate>,
    /// `recordedDate`.
    pub recorded: Option<FhirDate>,
    /// First code of `clinicalStatus` (`active`, `resolved`, ...).
    pub clinical_status: Option<String>,
    /// First code of `verificationStatus` (`confirmed`, `refuted`, `entered-in-error`, ...).
    pub verification_status: Option<String>,
}

/// A numeric result (`Observation.valueQuantity`). `Debug` hides the value.
#[derive(Clone, PartialEq)]
pub struct QuantityValue {
    /// The number (finite).
    pub value: f64,
    /// `comparator` (`<`, `<=`, `>=`, `>`), when the value is a bound.
    pub comparator: Option<String>,
    /// UCUM code (`code`) if given, else the human unit (`unit`).
    pub unit: Option<String>,
}

/// An imported `Observation`.
#[derive(Clone)]
pub struct Observation {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient.
    pub patient: String,
    /// `status` (R4 value set `observation-status`).
    pub status: String,
    /// `code.coding`; contains at least one valid LOINC code.
    pub codes: Vec<Code>,
    /// `effectiveDateTime`, `effectiveInstant` or `effectivePeriod.start`.
    pub effective: Option<FhirDate>,
    /// `valueQuantity`, when it has a value.
    pub value: Option<QuantityValue>,
}

/// An imported `Encounter`.
#[derive(Clone)]
pub struct Encounter {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient.
    pub patient: String,
    /// `status`.
    pub status: String,
    /// `class`.
    pub class: Option<Code>,
    /// `period.start`.
    pub start: Option<FhirDate>,
    /// `period.end`.
    pub end: Option<FhirDate>,
}

/// An imported `Procedure`.
#[derive(Clone)]
pub struct Procedure {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient.
    pub patient: String,
    /// `status`.
    pub status: String,
    /// `code.coding` (may be empty).
    pub codes: Vec<Code>,
    /// `performedDateTime` or `performedPeriod.start`.
    pub performed: Option<FhirDate>,
}

/// An imported `MedicationStatement`.
#[derive(Clone)]
pub struct MedicationStatement {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient.
    pub patient: String,
    /// `status`.
    pub status: String,
    /// `medicationCodeableConcept.coding` (empty for `medicationReference`).
    pub codes: Vec<Code>,
    /// `effectiveDateTime` or `effectivePeriod.start`.
    pub start: Option<FhirDate>,
    /// `effectivePeriod.end`.
    pub end: Option<FhirDate>,
}

/// `Consent.provision.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionKind {
    /// `permit`
    Permit,
    /// `deny`
    Deny,
}

/// `Consent.provision`: a rule, possibly with nested exceptions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provision {
    /// `type`; `None` when absent (R4: a nested rule then inherits nothing and is informative only).
    pub kind: Option<ProvisionKind>,
    /// `period.start` as days since 1970-01-01.
    pub start_day: Option<i64>,
    /// `period.end` as days since 1970-01-01.
    pub end_day: Option<i64>,
    /// `purpose` (purposes of use this rule applies to; empty = all).
    pub purposes: Vec<Code>,
    /// `action` codings (e.g. `access`, `use`, `disclose`).
    pub actions: Vec<Code>,
    /// Nested `provision` (exceptions to this rule).
    pub nested: Vec<Provision>,
}

/// `Consent.status` (R4 value set `consent-state-codes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentStatus {
    /// `draft`
    Draft,
    /// `proposed`
    Proposed,
    /// `active`
    Active,
    /// `rejected`
    Rejected,
    /// `inactive`
    Inactive,
    /// `entered-in-error`
    EnteredInError,
}

impl ConsentStatus {
    /// Parses a FHIR code; `None` if not in the value set.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => ConsentStatus::Draft,
            "proposed" => ConsentStatus::Proposed,
            "active" => ConsentStatus::Active,
            "rejected" => ConsentStatus::Rejected,
            "inactive" => ConsentStatus::Inactive,
            "entered-in-error" => ConsentStatus::EnteredInError,
            _ => return None,
        })
    }

    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Draft => "draft",
            ConsentStatus::Proposed => "proposed",
            ConsentStatus::Active => "active",
            ConsentStatus::Rejected => "rejected",
            ConsentStatus::Inactive => "inactive",
            ConsentStatus::EnteredInError => "entered-in-error",
        }
    }
}

/// An imported `Consent`.
#[derive(Clone)]
pub struct Consent {
    /// Logical id.
    pub id: String,
    /// Version information.
    pub version: VersionInfo,
    /// Logical id of the patient (`patient` = `Patient/<id>`).
    pub patient: String,
    /// `status`.
    pub status: ConsentStatus,
    /// `scope.coding` (e.g. `research`, `patient-privacy`).
    pub scope: Vec<Code>,
    /// `category[].coding`.
    pub category: Vec<Code>,
    /// `dateTime` (when the consent was given) as days since 1970-01-01.
    pub date_day: Option<i64>,
    /// `policyRule.coding` (e.g. `OPTIN`, `OPTOUT`).
    pub policy_rule: Vec<Code>,
    /// The root provision, when present.
    pub provision: Option<Provision>,
}

macro_rules! redacted_debug {
    ($($t:ident),*) => {$(
        impl fmt::Debug for $t {
            /// Shows the resource id only: the other fields may be patient data.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t)).field("id", &self.id).finish_non_exhaustive()
            }
        }
    )*};
}
redacted_debug!(Patient, Condition, Observation, Encounter, Procedure, MedicationStatement, Consent);

impl fmt::Debug for Deceased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deceased::NotRecorded => f.write_str("NotRecorded"),
            Deceased::No => f.write_str("No"),
            Deceased::Yes(d) => write!(f, "Yes(<{}>)", if d.is_some() { "date" } else { "no date" }),
        }
    }
}

impl fmt::Debug for QuantityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuantityValue(<redacted>)")
    }
}
