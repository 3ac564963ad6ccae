//! The cohort definition file (TOML) and its validation.
//!
//! ```toml
//! name = "ckd-mortality"
//! time_unit = "days"                 # or "years" (days / 365.25)
//!
//! [index]                            # time origin
//! kind = "date"                      # a calendar date for everyone ...
//! date = "2015-01-01"
//! # kind = "condition"               # ... or each patient's first onset of a code
//! # system = "http://snomed.info/sct"
//! # code = "709044004"
//!
//! [follow_up]
//! end_date = "2020-12-31"            # administrative end of follow-up
//! max_days = 3650                    # optional cap after the index date
//!
//! [outcome]
//! kind = "death"                     # Patient.deceased[x] ...
//! name = "death"
//! # kind = "condition" (+ system, code): first onset after the index date
//!
//! [[baseline]]                       # kinds: age (years at index), sex, condition
//! kind = "age"
//! name = "age"
//!
//! [[time_dependent]]                 # kinds: observation (LOCF), condition (0 -> 1)
//! kind = "observation"
//! name = "creat"
//! system = "http://loinc.org"
//! code = "2160-0"
//! unit = "mg/dL"                     # optional: required unit
//! ```

use std::collections::HashSet;

use seh_fhir::{Code, FhirDate, Gender, LOINC_SYSTEM};
use serde::Deserialize;

use super::CohortError;

/// The largest definition file accepted, in bytes (a real one is a few kilobytes). Checked
/// before the TOML is parsed; nesting is bounded by the toml crate's own recursion limit
/// (80 levels of arrays, inline tables and dotted keys — its `unbounded` feature stays off).
pub const MAX_COHORT_DEF_LEN: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    name: Option<String>,
    time_unit: Option<String>,
    index: RawIndex,
    follow_up: RawFollowUp,
    outcome: RawOutcome,
    #[serde(default)]
    baseline: Vec<RawCovariate>,
    #[serde(default)]
    time_dependent: Vec<RawCovariate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    kind: String,
    date: Option<String>,
    system: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollowUp {
    end_date: String,
    max_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    kind: String,
    name: Option<String>,
    system: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCovariate {
    kind: String,
    name: String,
    system: Option<String>,
    code: Option<String>,
    unit: Option<String>,
    value: Option<String>,
}

/// Time scale of the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// Days since the index date.
    Days,
    /// Years (days / 365.25) since the index date.
    Years,
}

/// The time origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Index {
    /// The same calendar day (days since 1970-01-01) for everyone.
    Date(i64),
    /// Each patient's first onset of the condition; patients without one are left out.
    FirstCondition(Code),
}

/// The outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Death (`Patient.deceased[x]`, OMOP `death`).
    Death,
    /// First onset of a condition after the index date.
    Condition(Code),
}

/// A baseline covariate (one value per patient, at the index date).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// Age in years at the index date: `(index - birth) / 365.25`.
    Age,
    /// 1 if the patient's sex is `value`, 0 if it is the other of male/female, missing otherwise.
    Sex(Gender),
    /// 1 if the condition's first onset is on or before the index date, else 0.
    Condition(Code),
}

/// A time-dependent covariate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeDependent {
    /// A measurement carried forward (LOCF); `unit` if the definition requires one.
    Observation {
        /// The code (LOINC for FHIR sources).
        code: Code,
        /// Required unit.
        unit: Option<String>,
    },
    /// 0 before the condition's first onset, 1 from it on.
    Condition(Code),
}

/// A validated cohort definition.
#[derive(Clone, Debug, PartialEq)]
pub struct CohortDef {
    /// Where the definition was read from (for error messages).
    pub source: String,
    /// Name (for the table catalogue).
    pub name: String,
    /// Output time scale.
    pub time_unit: TimeUnit,
    /// Time origin.
    pub index: Index,
    /// Administrative end of follow-up (days since 1970-01-01).
    pub end_day: i64,
    /// Optional cap on follow-up length in days.
    pub max_days: Option<i64>,
    /// Outcome and its column name.
    pub outcome: (String, Outcome),
    /// Baseline covariates and their column names.
    pub baseline: Vec<(String, Baseline)>,
    /// Time-dependent covariates and their column names.
    pub time_dependent: Vec<(String, TimeDependent)>,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> CohortError {
    CohortError::Invalid { file: String::new(), field: field.into(), problem: problem.into() }
}

fn day(field: &str, s: &str) -> Result<i64, CohortError> {
    match FhirDate::parse(s) {
        Ok(d) if d.precision() == seh_fhir::date::Precision::Day => Ok(d.day_number()),
        _ => Err(invalid(field, "not a YYYY-MM-DD date")),
    }
}

fn code(field: &str, system: Option<String>, code: Option<String>) -> Result<Code, CohortError> {
    let system = system.ok_or_else(|| invalid(format!("{field}.system"), "required"))?;
    let code = code.ok_or_else(|| invalid(format!("{field}.code"), "required"))?;
    if !system.contains(':') {
        return Err(invalid(format!("{field}.system"), "not an absolute URI"));
    }
    if system == LOINC_SYSTEM && !seh_fhir::loinc_is_valid(&code) {
        return Err(invalid(format!("{field}.code"), "not a valid LOINC code (digits, `-`, check digit)"));
    }
    if code.is_empty() {
        return Err(invalid(format!("{field}.code"), "empty"));
    }
    Ok(Code::new(system, code))
}

fn no_extra(field: &str, what: &[(&str, bool)]) -> Result<(), CohortError> {
    match what.iter().find(|(_, present)| *present) {
        Some((name, _)) => Err(invalid(format!("{field}.{name}"), "not used by this kind")),
        None => Ok(()),
    }
}

/// A column name usable in a formula: `[A-Za-z.][A-Za-z0-9._]*`, at most 64 bytes.
fn check_name(field: &str, name: &str, seen: &mut HashSet<String>) -> Result<(), CohortError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    if !ok {
        return Err(invalid(format!("{field}.name"), "must be a formula name ([A-Za-z.][A-Za-z0-9._]*, at most 64)"));
    }
    if !seen.insert(name.to_string()) {
        return Err(invalid(format!("{field}.name"), format!("column `{name}` is defined twice")));
    }
    Ok(())
}

impl CohortDef {
    /// Parses and validates a definition. `source` names the file in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, CohortError> {
        Self::parse(text, source).map_err(|e| e.in_file(source))
    }

    fn parse(text: &str, source: &str) -> Result<Self, CohortError> {
        if text.len() > MAX_COHORT_DEF_LEN {
            let message = format!("definition longer than {MAX_COHORT_DEF_LEN} bytes ({} bytes)", text.len());
            return Err(CohortError::Toml { file: String::new(), message });
        }
        let raw: RawDef =
            toml::from_str(text).map_err(|e| CohortError::Toml { file: String::new(), message: e.to_string() })?;
        let time_unit = match raw.time_unit.as_deref() {
            None | Some("days") => TimeUnit::Days,
            Some("years") => TimeUnit::Years,
            Some(_) => return Err(invalid("time_unit", "must be `days` or `years`")),
        };
        let index = match raw.index.kind.as_str() {
            "date" => {
                no_extra("index", &[("system", raw.index.system.is_some()), ("code", raw.index.code.is_some())])?;
                let d = raw.index.date.ok_or_else(|| invalid("index.date", "required for kind = \"date\""))?;
                Index::Date(day("index.date", &d)?)
            }
            "condition" => {
                no_extra("index", &[("date", raw.index.date.is_some())])?;
                Index::FirstCondition(code("index", raw.index.system, raw.index.code)?)
            }
            _ => return Err(invalid("index.kind", "must be `date` or `condition`")),
        };
        let end_day = day("follow_up.end_date", &raw.follow_up.end_date)?;
        if let Index::Date(i) = index {
            if end_day <= i {
                return Err(invalid("follow_up.end_date", "not after the index date"));
            }
        }
        let mut seen: HashSet<String> = ["id", "tstart", "tstop"].iter().map(|s| s.to_string()).collect();
        let o = raw.outcome;
        let outcome = match o.kind.as_str() {
            "death" => {
                no_extra("outcome", &[("system", o.system.is_some()), ("code", o.code.is_some())])?;
                Outcome::Death
            }
            "condition" => Outcome::Condition(code("outcome", o.system, o.code)?),
            _ => return Err(invalid("outcome.kind", "must be `death` or `condition`")),
        };
        let oname = o.name.unwrap_or_else(|| "event".to_string());
        check_name("outcome", &oname, &mut seen)?;
        let mut baseline = Vec::new();
        for (i, c) in raw.baseline.into_iter().enumerate() {
            let f = format!("baseline[{i}]");
            check_name(&f, &c.name, &mut seen)?;
            no_extra(&f, &[("unit", c.unit.is_some())])?;
            let b = match c.kind.as_str() {
                "age" => {
                    no_extra(
                        &f,
                        &[("system", c.system.is_some()), ("code", c.code.is_some()), ("value", c.value.is_some())],
                    )?;
                    Baseline::Age
                }
                "sex" => {
                    no_extra(&f, &[("system", c.system.is_some()), ("code", c.code.is_some())])?;
                    match c.value.as_deref() {
                        Some("male") => Baseline::Sex(Gender::Male),
                        Some("female") => Baseline::Sex(Gender::Female),
                        _ => return Err(invalid(format!("{f}.value"), "must be `male` or `female`")),
                    }
                }
                "condition" => {
                    no_extra(&f, &[("value", c.value.is_some())])?;
                    Baseline::Condition(code(&f, c.system, c.code)?)
                }
                _ => return Err(invalid(format!("{f}.kind"), "must be `age`, `sex` or `condition`")),
            };
            baseline.push((c.name, b));
        }
        let mut time_dependent = Vec::new();
        for (i, c) in raw.time_dependent.into_iter().enumerate() {
            let f = format!("time_dependent[{i}]");
            check_name(&f, &c.name, &mut seen)?;
            no_extra(&f, &[("value", c.value.is_some())])?;
            let t = match c.kind.as_str() {
                "observation" => TimeDependent::Observation { code: code(&f, c.system, c.code)?, unit: c.unit },
                "condition" => {
                    no_extra(&f, &[("unit", c.unit.is_some())])?;
                    TimeDependent::Condition(code(&f, c.system, c.code)?)
                }
                _ => return Err(invalid(format!("{f}.kind"), "must be `observation` or `condition`")),
            };
            time_dependent.push((c.name, t));
        }
        Ok(CohortDef {
            source: source.to_string(),
            name: raw.name.unwrap_or_else(|| "cohort".to_string()),
            time_unit,
            index,
            end_day,
            max_days: raw.follow_up.max_days.map(i64::from),
            outcome: (oname, outcome),
            baseline,
            time_dependent,
        })
    }
}
