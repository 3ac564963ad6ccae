//! Serde shapes of the R4 data types and resources, as they appear in JSON.
//!
//! Data types (`Coding`, `Quantity`, ...) have a fixed element set in R4, so
//! they use `deny_unknown_fields` (with `id`, `extension` and the `_x`
//! primitive-extension keys listed explicitly). Resources do not: see
//! [`crate::elements`] for how their keys are checked instead. Only the
//! elements this project reads have fields here; these types are private and
//! converted into the validated types of [`crate::model`].

use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Coding {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    pub system: Option<String>,
    #[serde(rename = "_system")]
    _system_ext: Option<IgnoredAny>,
    #[serde(rename = "version")]
    _version: Option<IgnoredAny>,
    #[serde(rename = "_version")]
    _version_ext: Option<IgnoredAny>,
    pub code: Option<String>,
    #[serde(rename = "_code")]
    _code_ext: Option<IgnoredAny>,
    #[serde(rename = "display")]
    _display: Option<IgnoredAny>,
    #[serde(rename = "_display")]
    _display_ext: Option<IgnoredAny>,
    #[serde(rename = "userSelected")]
    _user_selected: Option<IgnoredAny>,
    #[serde(rename = "_userSelected")]
    _user_selected_ext: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CodeableConcept {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    #[serde(default)]
    pub coding: Vec<Coding>,
    #[serde(rename = "text")]
    _text: Option<IgnoredAny>,
    #[serde(rename = "_text")]
    _text_ext: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Quantity {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    pub value: Option<f64>,
    #[serde(rename = "_value")]
    _value_ext: Option<IgnoredAny>,
    pub comparator: Option<String>,
    #[serde(rename = "_comparator")]
    _comparator_ext: Option<IgnoredAny>,
    pub unit: Option<String>,
    #[serde(rename = "_unit")]
    _unit_ext: Option<IgnoredAny>,
    #[serde(rename = "system")]
    _system: Option<IgnoredAny>,
    #[serde(rename = "_system")]
    _system_ext: Option<IgnoredAny>,
    pub code: Option<String>,
    #[serde(rename = "_code")]
    _code_ext: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Period {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    pub start: Option<String>,
    #[serde(rename = "_start")]
    _start_ext: Option<IgnoredAny>,
    pub end: Option<String>,
    #[serde(rename = "_end")]
    _end_ext: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Reference {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    pub reference: Option<String>,
    #[serde(rename = "_reference")]
    _reference_ext: Option<IgnoredAny>,
    #[serde(rename = "type")]
    _type: Option<IgnoredAny>,
    #[serde(rename = "_type")]
    _type_ext: Option<IgnoredAny>,
    #[serde(rename = "identifier")]
    _identifier: Option<IgnoredAny>,
    #[serde(rename = "display")]
    _display: Option<IgnoredAny>,
    #[serde(rename = "_display")]
    _display_ext: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Identifier {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    #[serde(rename = "use")]
    _use: Option<IgnoredAny>,
    #[serde(rename = "_use")]
    _use_ext: Option<IgnoredAny>,
    #[serde(rename = "type")]
    _type: Option<IgnoredAny>,
    pub system: Option<String>,
    #[serde(rename = "_system")]
    _system_ext: Option<IgnoredAny>,
    pub value: Option<String>,
    #[serde(rename = "_value")]
    _value_ext: Option<IgnoredAny>,
    #[serde(rename = "period")]
    _period: Option<IgnoredAny>,
    #[serde(rename = "assigner")]
    _assigner: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Meta {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    pub version_id: Option<String>,
    #[serde(rename = "_versionId")]
    _version_id_ext: Option<IgnoredAny>,
    pub last_updated: Option<String>,
    #[serde(rename = "_lastUpdated")]
    _last_updated_ext: Option<IgnoredAny>,
    #[serde(rename = "source")]
    _source: Option<IgnoredAny>,
    #[serde(rename = "_source")]
    _source_ext: Option<IgnoredAny>,
    #[serde(rename = "profile")]
    _profile: Option<IgnoredAny>,
    #[serde(rename = "_profile")]
    _profile_ext: Option<IgnoredAny>,
    #[serde(rename = "security")]
    _security: Option<IgnoredAny>,
    #[serde(rename = "tag")]
    _tag: Option<IgnoredAny>,
}

/// The keys every resource shares; the rest of the object is read by the
/// per-type structs below (serde ignores keys a struct does not name; the
/// key check in `elements` has already run).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Patient {
    pub meta: Option<Meta>,
    #[serde(default)]
    pub identifier: Vec<Identifier>,
    pub gender: Option<String>,
    pub birth_date: Option<String>,
    pub deceased_boolean: Option<bool>,
    pub deceased_date_time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Condition {
    pub meta: Option<Meta>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub onset_date_time: Option<String>,
    pub onset_period: Option<Period>,
    pub abatement_date_time: Option<String>,
    pub abatement_period: Option<Period>,
    pub recorded_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Observation {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
    pub effective_instant: Option<String>,
    pub value_quantity: Option<Quantity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Encounter {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub class: Option<Coding>,
    pub subject: Option<Reference>,
    pub period: Option<Period>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Procedure {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub code: Option<CodeableConcept>,
    pub subject: Option<Reference>,
    pub performed_date_time: Option<String>,
    pub performed_period: Option<Period>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MedicationStatement {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub medication_codeable_concept: Option<CodeableConcept>,
    pub medication_reference: Option<Reference>,
    pub subject: Option<Reference>,
    pub effective_date_time: Option<String>,
    pub effective_period: Option<Period>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Consent {
    pub meta: Option<Meta>,
    pub status: Option<String>,
    pub scope: Option<CodeableConcept>,
    #[serde(default)]
    pub category: Vec<CodeableConcept>,
    pub patient: Option<Reference>,
    pub date_time: Option<String>,
    pub policy_rule: Option<CodeableConcept>,
    pub provision: Option<Provision>,
}

/// `Consent.provision` (recursive). R4 fixes its element set, so unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Provision {
    #[serde(rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(rename = "extension")]
    _extension: Option<IgnoredAny>,
    #[serde(rename = "modifierExtension")]
    _modifier_extension: Option<IgnoredAny>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(rename = "_type")]
    _type_ext: Option<IgnoredAny>,
    pub period: Option<Period>,
    #[serde(rename = "actor")]
    _actor: Option<IgnoredAny>,
    #[serde(default)]
    pub action: Vec<CodeableConcept>,
    #[serde(rename = "securityLabel")]
    _security_label: Option<IgnoredAny>,
    #[serde(default)]
    pub purpose: Vec<Coding>,
    #[serde(rename = "class")]
    _class: Option<IgnoredAny>,
    #[serde(rename = "code")]
    _code: Option<IgnoredAny>,
    #[serde(rename = "dataPeriod")]
    _data_period: Option<IgnoredAny>,
    #[serde(rename = "data")]
    _data: Option<IgnoredAny>,
    #[serde(default)]
    pub provision: Vec<Provision>,
}
