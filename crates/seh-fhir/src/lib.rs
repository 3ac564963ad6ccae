//! `seh-fhir`: a strict model of the FHIR R4 resources Secur-e-Health imports
//! (Patient, Condition, Observation, Encounter, Procedure, MedicationStatement,
//! Consent), parsed one NDJSON line at a time.
//!
//! # Why not a generated FHIR crate
//! `fhir-model` 0.13 (the model behind `fhir-sdk`) was evaluated: it offers
//! STU3, R4B and R5 but not R4, needs Rust 1.95 / edition 2024 (the workspace
//! supports 1.85), and its R4B module alone is ~225,000 lines of generated
//! serde code. A debug build of it with only `r4b` and no builders took 121 s
//! of CPU (4 min 12 s wall on one contended core) and 3.3 GB of memory, before
//! the optimised dependency profile this workspace uses. That is over the
//! build budget for seven resources, so this crate models exactly the R4
//! subset needed (~1,000 lines).
//!
//! # Strictness
//! * Every top-level key must be an R4 element of the resource ([`elements`]);
//!   unknown elements are errors, legitimate elements we do not use are kept
//!   out of the model. Data types with a fixed element set (`Coding`,
//!   `Quantity`, `Period`, `Reference`, `Identifier`, `Meta`,
//!   `Consent.provision`) reject unknown keys outright.
//! * Required elements, value sets, dates, `[x]` choice exclusivity, patient
//!   references and LOINC codes (format and check digit) are checked.
//! * Errors ([`ParseError`]) give the resource type, id and FHIR path of the
//!   element at fault and never repeat a value from the resource.

#![forbid(unsafe_code)]

mod convert;
pub mod date;
pub mod elements;
pub mod model;
mod raw;

use std::fmt;

pub use date::FhirDate;
pub use model::*;

/// The code system URI of LOINC.
pub const LOINC_SYSTEM: &str = "http://loinc.org";

/// The resource types this crate parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `Patient`
    Patient,
    /// `Condition`
    Condition,
    /// `Observation`
    Observation,
    /// `Encounter`
    Encounter,
    /// `Procedure`
    Procedure,
    /// `MedicationStatement`
    MedicationStatement,
    /// `Consent`
    Consent,
}

impl ResourceType {
    /// All supported types, in import order (patients first).
    pub const ALL: [ResourceType; 7] = [
        ResourceType::Patient,
        ResourceType::Condition,
        ResourceType::Observation,
        ResourceType::Encounter,
        ResourceType::Procedure,
        ResourceType::MedicationStatement,
        ResourceType::Consent,
    ];

    /// The FHIR name (`"Patient"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Patient => "Patient",
            ResourceType::Condition => "Condition",
            ResourceType::Observation => "Observation",
            ResourceType::Encounter => "Encounter",
            ResourceType::Procedure => "Procedure",
            ResourceType::MedicationStatement => "MedicationStatement",
            ResourceType::Consent => "Consent",
        }
    }

    /// The type called `name`, if supported.
    pub fn from_name(name: &str) -> Option<Self> {
        ResourceType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One parsed, validated resource.
#[derive(Clone, Debug)]
pub enum Resource {
    /// A `Patient`.
    Patient(Patient),
    /// A `Condition`.
    Condition(Condition),
    /// An `Observation`.
    Observation(Observation),
    /// An `Encounter`.
    Encounter(Encounter),
    /// A `Procedure`.
    Procedure(Procedure),
    /// A `MedicationStatement`.
    MedicationStatement(MedicationStatement),
    /// A `Consent`.
    Consent(Consent),
}

impl Resource {
    /// The resource's type.
    pub fn resource_type(&self) -> ResourceType {
        match self {
            Resource::Patient(_) => ResourceType::Patient,
            Resource::Condition(_) => ResourceType::Condition,
            Resource::Observation(_) => ResourceType::Observation,
            Resource::Encounter(_) => ResourceType::Encounter,
            Resource::Procedure(_) => ResourceType::Procedure,
            Resource::MedicationStatement(_) => ResourceType::MedicationStatement,
            Resource::Consent(_) => ResourceType::Consent,
        }
    }

    /// The logical id.
    pub fn id(&self) -> &str {
        match self {
            Resource::Patient(r) => &r.id,
            Resource::Condition(r) => &r.id,
            Resource::Observation(r) => &r.id,
            Resource::Encounter(r) => &r.id,
            Resource::Procedure(r) => &r.id,
            Resource::MedicationStatement(r) => &r.id,
            Resource::Consent(r) => &r.id,
        }
    }

    /// Version information (`meta`).
    pub fn version(&self) -> &VersionInfo {
        match self {
            Resource::Patient(r) => &r.version,
            Resource::Condition(r) => &r.version,
            Resource::Observation(r) => &r.version,
            Resource::Encounter(r) => &r.version,
            Resource::Procedure(r) => &r.version,
            Resource::MedicationStatement(r) => &r.version,
            Resource::Consent(r) => &r.version,
        }
    }
}

/// What is wrong with a resource (see [`ParseError`] for where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The line ends inside a JSON value (a truncated export).
    #[error("truncated JSON: the line ends inside a value (column {column})")]
    Truncated {
        /// 1-based column where input ran out.
        column: usize,
    },
    /// Malformed JSON.
    #[error("invalid JSON at column {column}")]
    Json {
        /// 1-based column of the syntax error.
        column: usize,
    },
    /// The line is JSON but not an object.
    #[error("not a JSON object (each NDJSON line must hold one resource)")]
    NotObject,
    /// No `resourceType` string.
    #[error("`resourceType` is missing or not a string")]
    NoResourceType,
    /// A `resourceType` this project does not import.
    #[error("resourceType `{found}` is not supported (supported: Patient, Condition, Observation, Encounter, Procedure, MedicationStatement, Consent)")]
    UnsupportedType {
        /// The type named in the resource.
        found: String,
    },
    /// The resource is of another type than the file holds.
    #[error("a {found} resource in a file of {expected} resources")]
    WrongType {
        /// Type the file holds (from its name).
        expected: ResourceType,
        /// Type of the resource.
        found: ResourceType,
    },
    /// `id` missing or not a FHIR id.
    #[error("`id` is missing or not a FHIR id ([A-Za-z0-9-.]{{1,64}})")]
    BadId,
    /// A key that is not an R4 element of the resource.
    #[error("`{key}` is not an element of an R4 {resource_type}")]
    UnknownElement {
        /// Resource type.
        resource_type: ResourceType,
        /// The offending key.
        key: String,
    },
    /// An element failed a check; `problem` states why without its value.
    #[error("field `{field}`: {problem}")]
    Field {
        /// FHIR path of the element (`code.coding[0].system`).
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// A resource that could not be parsed: its type and id when known, and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", location(*.resource_type, .id.as_deref()))]
pub struct ParseError {
    /// Resource type, when it was read.
    pub resource_type: Option<ResourceType>,
    /// Resource id, when it was read.
    pub id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

fn location(ty: Option<ResourceType>, id: Option<&str>) -> String {
    match (ty, id) {
        (Some(t), Some(i)) => format!("{t}/{i}: "),
        (Some(t), None) => format!("{t}: "),
        _ => String::new(),
    }
}

impl ParseError {
    /// The FHIR path of the field at fault, when the problem is a field's.
    pub fn field(&self) -> Option<&str> {
        match &self.problem {
            Problem::Field { field, .. } => Some(field),
            Problem::UnknownElement { key, .. } => Some(key),
            Problem::BadId => Some("id"),
            Problem::NoResourceType | Problem::UnsupportedType { .. } | Problem::WrongType { .. } => {
                Some("resourceType")
            }
            _ => None,
        }
    }
}

/// Whether `s` is a FHIR `id`: 1–64 of `[A-Za-z0-9-.]`.
pub fn is_fhir_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `code` is a well-formed LOINC code: 1–7 digits, `-`, and the
/// mod-10 check digit LOINC defines (odd positions from the right doubled,
/// all digits summed, complement to the next multiple of ten).
pub fn loinc_is_valid(code: &str) -> bool {
    let Some((num, check)) = code.split_once('-') else { return false };
    if num.is_empty()
        || num.len() > 7
        || check.len() != 1
        || !num.bytes().chain(check.bytes()).all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let mut sum = 0u32;
    for (pos, b) in num.bytes().rev().enumerate() {
        let d = u32::from(b - b'0');
        sum += if pos % 2 == 0 {
            let dd = 2 * d;
            dd / 10 + dd % 10
        } else {
            d
        };
    }
    let expected = (10 - sum % 10) % 10;
    u32::from(check.as_bytes()[0] - b'0') == expected
}

/// Turns a serde error into a problem statement without the offending value:
/// serde's messages quote values (`invalid type: string "…"`), so only the
/// "expected …" part, missing and unknown field names are kept.
fn sanitize(msg: &str) -> String {
    if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        return msg.split(" at line").next().unwrap_or(msg).to_string();
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let name = rest.split(',').next().unwrap_or("");
        return format!("unknown element {name} (not part of this R4 data type)");
    }
    let expected = msg.rfind(", expected ").map(|i| &msg[i + 2..]).map(|s| s.split(" at line").next().unwrap_or(s));
    let what = if msg.starts_with("invalid type") { "wrong JSON type" } else { "invalid value" };
    match expected {
        Some(e) => format!("{what}; {e}"),
        None => what.to_string(),
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let problem = sanitize(&e.inner().to_string());
        Problem::Field { field: if path == "." { "(resource)".to_string() } else { path }, problem }
    })
}

/// Parses one NDJSON line into a validated resource.
///
/// `expected`: the type the file holds (from its name), if known; a resource
/// of another type is then an error. Errors name the resource type, id and
/// field (see [`ParseError`]).
pub fn parse_resource(line: &str, expected: Option<ResourceType>) -> Result<Resource, ParseError> {
    let err = |ty, id: Option<&str>, problem| ParseError { resource_type: ty, id: id.map(str::to_string), problem };
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        let column = e.column();
        let p = if e.is_eof() { Problem::Truncated { column } } else { Problem::Json { column } };
        err(None, None, p)
    })?;
    let serde_json::Value::Object(map) = value else { return Err(err(None, None, Problem::NotObject)) };
    let Some(name) = map.get("resourceType").and_then(|v| v.as_str()) else {
        return Err(err(None, None, Problem::NoResourceType));
    };
    let id = map.get("id").and_then(|v| v.as_str()).filter(|s| is_fhir_id(s)).map(str::to_string);
    let Some(ty) = ResourceType::from_name(name) else {
        return Err(err(None, id.as_deref(), Problem::UnsupportedType { found: name.to_string() }));
    };
    if let Some(exp) = expected {
        if exp != ty {
            return Err(err(Some(ty), id.as_deref(), Problem::WrongType { expected: exp, found: ty }));
        }
    }
    let Some(id) = id else { return Err(err(Some(ty), None, Problem::BadId)) };
    if let Some(key) = map.keys().find(|k| !elements::is_element(ty, k)) {
        let p = Problem::UnknownElement { resource_type: ty, key: key.clone() };
        return Err(err(Some(ty), Some(&id), p));
    }
    let value = serde_json::Value::Object(map);
    let fail = |p: Problem| err(Some(ty), Some(&id), p);
    let field = |(field, problem): (String, String)| Problem::Field { field, problem };
    let out = match ty {
        ResourceType::Patient => {
            Resource::Patient(convert::patient(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?)
        }
        ResourceType::Condition => Resource::Condition(
            convert::condition(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?,
        ),
        ResourceType::Observation => Resource::Observation(
            convert::observation(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?,
        ),
        ResourceType::Encounter => Resource::Encounter(
            convert::encounter(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?,
        ),
        ResourceType::Procedure => Resource::Procedure(
            convert::procedure(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?,
        ),
        ResourceType::MedicationStatement => Resource::MedicationStatement(
            convert::medication_statement(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?,
        ),
        ResourceType::Consent => {
            Resource::Consent(convert::consent(id.clone(), typed(value).map_err(fail)?).map_err(|e| fail(field(e)))?)
        }
    };
    Ok(out)
}
