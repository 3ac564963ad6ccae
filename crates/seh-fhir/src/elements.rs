//! The element names FHIR R4 defines for each imported resource type.
//!
//! Resources are not deserialized with `deny_unknown_fields`: an R4 resource
//! legitimately carries many elements this project does not use (names,
//! addresses, narrative, ...). Instead every top-level key is checked against
//! the R4 element list below, so a misspelt element (`birthdate`) or a
//! resource from another FHIR version is an error naming the key, while
//! legitimate elements we ignore pass. `_x` keys (primitive extensions of
//! element `x`) are allowed where `x` is.

use crate::ResourceType;

/// Elements every R4 DomainResource has.
const DOMAIN_RESOURCE: &[&str] =
    &["resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension", "modifierExtension"];

const PATIENT: &[&str] = &[
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "photo",
    "contact",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "link",
];

const CONDITION: &[&str] = &[
    "identifier",
    "clinicalStatus",
    "verificationStatus",
    "category",
    "severity",
    "code",
    "bodySite",
    "subject",
    "encounter",
    "onsetDateTime",
    "onsetAge",
    "onsetPeriod",
    "onsetRange",
    "onsetString",
    "abatementDateTime",
    "abatementAge",
    "abatementPeriod",
    "abatementRange",
    "abatementString",
    "recordedDate",
    "recorder",
    "asserter",
    "stage",
    "evidence",
    "note",
];

const OBSERVATION: &[&str] = &[
    "identifier",
    "basedOn",
    "partOf",
    "status",
    "category",
    "code",
    "subject",
    "focus",
    "encounter",
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveTiming",
    "effectiveInstant",
    "issued",
    "performer",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "interpretation",
    "note",
    "bodySite",
    "method",
    "specimen",
    "device",
    "referenceRange",
    "hasMember",
    "derivedFrom",
    "component",
];

const ENCOUNTER: &[&str] = &[
    "identifier",
    "status",
    "statusHistory",
    "class",
    "classHistory",
    "type",
    "serviceType",
    "priority",
    "subject",
    "episodeOfCare",
    "basedOn",
    "participant",
    "appointment",
    "period",
    "length",
    "reasonCode",
    "reasonReference",
    "diagnosis",
    "account",
    "hospitalization",
    "location",
    "serviceProvider",
    "partOf",
];

const PROCEDURE: &[&str] = &[
    "identifier",
    "instantiatesCanonical",
    "instantiatesUri",
    "basedOn",
    "partOf",
    "status",
    "statusReason",
    "category",
    "code",
    "subject",
    "encounter",
    "performedDateTime",
    "performedPeriod",
    "performedString",
    "performedAge",
    "performedRange",
    "recorder",
    "asserter",
    "performer",
    "location",
    "reasonCode",
    "reasonReference",
    "bodySite",
    "outcome",
    "report",
    "complication",
    "complicationDetail",
    "followUp",
    "note",
    "focalDevice",
    "usedReference",
    "usedCode",
];

const MEDICATION_STATEMENT: &[&str] = &[
    "identifier",
    "basedOn",
    "partOf",
    "status",
    "statusReason",
    "category",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "context",
    "effectiveDateTime",
    "effectivePeriod",
    "dateAsserted",
    "informationSource",
    "derivedFrom",
    "reasonCode",
    "reasonReference",
    "note",
    "dosage",
];

const CONSENT: &[&str] = &[
    "identifier",
    "status",
    "scope",
    "category",
    "patient",
    "dateTime",
    "performer",
    "organization",
    "sourceAttachment",
    "sourceReference",
    "policy",
    "policyRule",
    "verification",
    "provision",
];

/// Whether `key` is an R4 element (or primitive extension `_element`) of `ty`.
pub fn is_element(ty: ResourceType, key: &str) -> bool {
    let name = key.strip_prefix('_').unwrap_or(key);
    let specific = match ty {
        ResourceType::Patient => PATIENT,
        ResourceType::Condition => CONDITION,
        ResourceType::Observation => OBSERVATION,
        ResourceType::Encounter => ENCOUNTER,
        ResourceType::Procedure => PROCEDURE,
        ResourceType::MedicationStatement => MEDICATION_STATEMENT,
        ResourceType::Consent => CONSENT,
    };
    DOMAIN_RESOURCE.contains(&name) || specific.contains(&name)
}
