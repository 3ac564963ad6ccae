//! Checks a deserialized resource and turns it into its [`crate::model`] type.
//!
//! Each check fails with the FHIR path of the element at fault and a problem
//! statement that never repeats the element's value.

use crate::date::FhirDate;
use crate::model::*;
use crate::raw;
use crate::{is_fhir_id, loinc_is_valid, LOINC_SYSTEM};

/// A failed check: the element path and what is wrong with it.
pub(crate) type Check<T> = Result<T, (String, String)>;

fn fail<T>(field: &str, problem: impl Into<String>) -> Check<T> {
    Err((field.to_string(), problem.into()))
}

fn date(field: &str, s: &Option<String>) -> Check<Option<FhirDate>> {
    match s {
        None => Ok(None),
        Some(s) => FhirDate::parse(s).map(Some).map_err(|e| (field.to_string(), e.to_string())),
    }
}

fn day(field: &str, s: &Option<String>) -> Check<Option<i64>> {
    Ok(date(field, s)?.map(|d| d.day_number()))
}

/// Exactly one of a choice element's forms, or none.
fn choice<T>(field: &str, forms: [Option<T>; 2]) -> Check<Option<T>> {
    match forms {
        [Some(_), Some(_)] => fail(field, "more than one form of a choice element `[x]` is present"),
        [Some(a), None] | [None, Some(a)] => Ok(Some(a)),
        [None, None] => Ok(None),
    }
}

fn version(meta: &Option<raw::Meta>) -> Check<VersionInfo> {
    let Some(m) = meta else { return Ok(VersionInfo::default()) };
    if let Some(v) = &m.version_id {
        if !is_fhir_id(v) {
            return fail("meta.versionId", "not a FHIR id ([A-Za-z0-9-.]{1,64})");
        }
    }
    if let Some(t) = &m.last_updated {
        FhirDate::parse(t).map_err(|e| ("meta.lastUpdated".to_string(), e.to_string()))?;
    }
    Ok(VersionInfo { version_id: m.version_id.clone(), last_updated: m.last_updated.clone() })
}

fn codings(field: &str, cc: &raw::CodeableConcept) -> Check<Vec<Code>> {
    let mut out = Vec::with_capacity(cc.coding.len());
    for (i, c) in cc.coding.iter().enumerate() {
        match (&c.system, &c.code) {
            (Some(system), Some(code)) => {
                if !system.contains(':') {
                    return fail(&format!("{field}.coding[{i}].system"), "not an absolute URI");
                }
                if code.is_empty() || code.trim() != code {
                    return fail(&format!("{field}.coding[{i}].code"), "empty or has surrounding white space");
                }
                out.push(Code::new(system.clone(), code.clone()));
            }
            (None, _) => {
                return fail(
                    &format!("{field}.coding[{i}].system"),
                    "required (a code without its system is ambiguous)",
                )
            }
            (_, None) => return fail(&format!("{field}.coding[{i}].code"), "required"),
        }
    }
    Ok(out)
}

fn first_code(field: &str, cc: &Option<raw::CodeableConcept>) -> Check<Option<String>> {
    match cc {
        None => Ok(None),
        Some(cc) => Ok(codings(field, cc)?.into_iter().next().map(|c| c.code)),
    }
}

/// `subject` / `patient` must be a relative reference `Patient/<id>`.
fn patient_ref(field: &str, r: &Option<raw::Reference>) -> Check<String> {
    let Some(r) = r else {
        return fail(field, "required (the record must name its patient)");
    };
    let Some(s) = &r.reference else {
        return fail(&format!("{field}.reference"), "required (a `Patient/<id>` reference)");
    };
    match s.strip_prefix("Patient/") {
        Some(id) if is_fhir_id(id) => Ok(id.to_string()),
        _ => fail(&format!("{field}.reference"), "not a `Patient/<id>` reference"),
    }
}

fn status(field: &str, s: &Option<String>, allowed: &[&str]) -> Check<String> {
    match s {
        None => fail(field, "required"),
        Some(s) if allowed.contains(&s.as_str()) => Ok(s.clone()),
        Some(_) => fail(field, format!("not in the R4 value set ({})", allowed.join("|"))),
    }
}

fn period(field: &str, p: &Option<raw::Period>) -> Check<(Option<FhirDate>, Option<FhirDate>)> {
    match p {
        None => Ok((None, None)),
        Some(p) => {
            let s = date(&format!("{field}.start"), &p.start)?;
            let e = date(&format!("{field}.end"), &p.end)?;
            if let (Some(s), Some(e)) = (s, e) {
                if e.day_number() < s.day_number() {
                    return fail(&format!("{field}.end"), "before the period's start");
                }
            }
            Ok((s, e))
        }
    }
}

pub(crate) fn patient(id: String, r: raw::Patient) -> Check<Patient> {
    let gender = match &r.gender {
        None => None,
        Some(g) => Some(
            Gender::parse(g)
                .ok_or(("gender".to_string(), "not in the R4 value set (male|female|other|unknown)".to_string()))?,
        ),
    };
    let birth_date = date("birthDate", &r.birth_date)?;
    let deceased = match (r.deceased_boolean, &r.deceased_date_time) {
        (Some(_), Some(_)) => return fail("deceased[x]", "more than one form of a choice element `[x]` is present"),
        (Some(true), None) => Deceased::Yes(None),
        (Some(false), None) => Deceased::No,
        (None, Some(_)) => Deceased::Yes(date("deceasedDateTime", &r.deceased_date_time)?),
        (None, None) => Deceased::NotRecorded,
    };
    if let (Some(b), Deceased::Yes(Some(d))) = (birth_date, deceased) {
        if d.day_number() < b.day_number() {
            return fail("deceasedDateTime", "before birthDate");
        }
    }
    let mut identifiers = Vec::new();
    for (i, ident) in r.identifier.iter().enumerate() {
        match &ident.value {
            Some(v) if !v.is_empty() => identifiers.push((ident.system.clone(), v.clone())),
            _ => return fail(&format!("identifier[{i}].value"), "required and non-empty"),
        }
    }
    Ok(Patient { id, version: version(&r.meta)?, gender, birth_date, deceased, identifiers })
}

pub(crate) fn condition(id: String, r: raw::Condition) -> Check<Condition> {
    let Some(code) = &r.code else { return fail("code", "required (a condition without a code cannot be analysed)") };
    let codes = codings("code", code)?;
    if codes.is_empty() {
        return fail("code.coding", "at least one coding is required");
    }
    let onset_period = period("onsetPeriod", &r.onset_period)?.0;
    let onset_dt = date("onsetDateTime", &r.onset_date_time)?;
    let onset = choice("onset[x]", [onset_dt, onset_period])?;
    let ab_period = period("abatementPeriod", &r.abatement_period)?.0;
    let ab_dt = date("abatementDateTime", &r.abatement_date_time)?;
    let abatement = choice("abatement[x]", [ab_dt, ab_period])?;
    Ok(Condition {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("subject", &r.subject)?,
        codes,
        onset,
        abatement,
        recorded: date("recordedDate", &r.recorded_date)?,
        clinical_status: first_code("clinicalStatus", &r.clinical_status)?,
        verification_status: first_code("verificationStatus", &r.verification_status)?,
    })
}

const OBS_STATUS: &[&str] =
    &["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"];

pub(crate) fn observation(id: String, r: raw::Observation) -> Check<Observation> {
    let status = status("status", &r.status, OBS_STATUS)?;
    let Some(code) = &r.code else { return fail("code", "required") };
    let codes = codings("code", code)?;
    let loinc: Vec<&Code> = codes.iter().filter(|c| c.system == LOINC_SYSTEM).collect();
    if loinc.is_empty() {
        let found: Vec<&str> = codes.iter().map(|c| c.system.as_str()).collect();
        let found = if found.is_empty() { "none".to_string() } else { found.join(", ") };
        return fail(
            "code.coding",
            format!("a LOINC coding (system {LOINC_SYSTEM}) is required; code systems found: {found}"),
        );
    }
    if let Some(i) = codes.iter().position(|c| c.system == LOINC_SYSTEM && !loinc_is_valid(&c.code)) {
        return fail(&format!("code.coding[{i}].code"), "not a valid LOINC code (digits, `-`, check digit)");
    }
    let eff_period = period("effectivePeriod", &r.effective_period)?.0;
    let eff_dt = date("effectiveDateTime", &r.effective_date_time)?;
    let eff_inst = date("effectiveInstant", &r.effective_instant)?;
    let effective = match (eff_dt, eff_period, eff_inst) {
        (a, b, None) => choice("effective[x]", [a, b])?,
        (None, None, Some(c)) => Some(c),
        _ => return fail("effective[x]", "more than one form of a choice element `[x]` is present"),
    };
    let value = match &r.value_quantity {
        None => None,
        Some(q) => match q.value {
            None => None,
            Some(v) if !v.is_finite() => return fail("valueQuantity.value", "not a finite number"),
            Some(v) => {
                if let Some(c) = &q.comparator {
                    if !["<", "<=", ">=", ">"].contains(&c.as_str()) {
                        return fail("valueQuantity.comparator", "not in the R4 value set (<|<=|>=|>)");
                    }
                }
                Some(QuantityValue {
                    value: v,
                    comparator: q.comparator.clone(),
                    unit: q.code.clone().or(q.unit.clone()),
                })
            }
        },
    };
    Ok(Observation {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("subject", &r.subject)?,
        status,
        codes,
        effective,
        value,
    })
}

const ENC_STATUS: &[&str] = &[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];

pub(crate) fn encounter(id: String, r: raw::Encounter) -> Check<Encounter> {
    let status = status("status", &r.status, ENC_STATUS)?;
    let class = match &r.class {
        None => return fail("class", "required in R4"),
        Some(c) => match (&c.system, &c.code) {
            (Some(s), Some(k)) => Some(Code::new(s.clone(), k.clone())),
            (None, _) => return fail("class.system", "required"),
            (_, None) => return fail("class.code", "required"),
        },
    };
    let (start, end) = period("period", &r.period)?;
    Ok(Encounter {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("subject", &r.subject)?,
        status,
        class,
        start,
        end,
    })
}

const PROC_STATUS: &[&str] =
    &["preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"];

pub(crate) fn procedure(id: String, r: raw::Procedure) -> Check<Procedure> {
    let status = status("status", &r.status, PROC_STATUS)?;
    let codes = match &r.code {
        None => Vec::new(),
        Some(c) => codings("code", c)?,
    };
    let p_period = period("performedPeriod", &r.performed_period)?.0;
    let p_dt = date("performedDateTime", &r.performed_date_time)?;
    Ok(Procedure {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("subject", &r.subject)?,
        status,
        codes,
        performed: choice("performed[x]", [p_dt, p_period])?,
    })
}

const MED_STATUS: &[&str] =
    &["active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown", "not-taken"];

pub(crate) fn medication_statement(id: String, r: raw::MedicationStatement) -> Check<MedicationStatement> {
    let status = status("status", &r.status, MED_STATUS)?;
    let codes = match (&r.medication_codeable_concept, &r.medication_reference) {
        (Some(_), Some(_)) => return fail("medication[x]", "more than one form of a choice element `[x]` is present"),
        (Some(c), None) => codings("medicationCodeableConcept", c)?,
        (None, Some(_)) => Vec::new(),
        (None, None) => return fail("medication[x]", "required in R4"),
    };
    let (ps, pe) = period("effectivePeriod", &r.effective_period)?;
    let dt = date("effectiveDateTime", &r.effective_date_time)?;
    let start = choice("effective[x]", [dt, ps])?;
    Ok(MedicationStatement {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("subject", &r.subject)?,
        status,
        codes,
        start,
        end: pe,
    })
}

fn provision(field: &str, p: &raw::Provision) -> Check<Provision> {
    let kind = match p.kind.as_deref() {
        None => None,
        Some("permit") => Some(ProvisionKind::Permit),
        Some("deny") => Some(ProvisionKind::Deny),
        Some(_) => return fail(&format!("{field}.type"), "not in the R4 value set (deny|permit)"),
    };
    let (s, e) = period(&format!("{field}.period"), &p.period)?;
    let mut purposes = Vec::new();
    for (i, c) in p.purpose.iter().enumerate() {
        match (&c.system, &c.code) {
            (Some(sys), Some(code)) => purposes.push(Code::new(sys.clone(), code.clone())),
            _ => return fail(&format!("{field}.purpose[{i}]"), "system and code are required"),
        }
    }
    let mut actions = Vec::new();
    for (i, a) in p.action.iter().enumerate() {
        actions.extend(codings(&format!("{field}.action[{i}]"), a)?);
    }
    let mut nested = Vec::new();
    for (i, n) in p.provision.iter().enumerate() {
        nested.push(provision(&format!("{field}.provision[{i}]"), n)?);
    }
    Ok(Provision {
        kind,
        start_day: s.map(|d| d.day_number()),
        end_day: e.map(|d| d.day_number()),
        purposes,
        actions,
        nested,
    })
}

pub(crate) fn consent(id: String, r: raw::Consent) -> Check<Consent> {
    let st = match &r.status {
        None => return fail("status", "required"),
        Some(s) => ConsentStatus::parse(s).ok_or((
            "status".to_string(),
            "not in the R4 value set (draft|proposed|active|rejected|inactive|entered-in-error)".to_string(),
        ))?,
    };
    let Some(scope) = &r.scope else { return fail("scope", "required in R4") };
    let scope = codings("scope", scope)?;
    if r.category.is_empty() {
        return fail("category", "at least one category is required in R4");
    }
    let mut category = Vec::new();
    for (i, c) in r.category.iter().enumerate() {
        category.extend(codings(&format!("category[{i}]"), c)?);
    }
    let policy_rule = match &r.policy_rule {
        None => Vec::new(),
        Some(p) => codings("policyRule", p)?,
    };
    Ok(Consent {
        id,
        version: version(&r.meta)?,
        patient: patient_ref("patient", &r.patient)?,
        status: st,
        scope,
        category,
        date_day: day("dateTime", &r.date_time)?,
        policy_rule,
        provision: r.provision.as_ref().map(|p| provision("provision", p)).transpose()?,
    })
}
