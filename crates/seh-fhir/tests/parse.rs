//! Parsing and validation of single NDJSON lines.

use seh_fhir::{parse_resource, Deceased, Gender, Problem, Resource, ResourceType};

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"2020-01-01T00:00:00Z"},"identifier":[{"system":"urn:mrn","value":"M123"}],"name":[{"family":"Doe"}],"gender":"female","birthDate":"1950-02-03","deceasedDateTime":"2019-05-06T10:00:00+01:00"}"#;

fn field_err(line: &str, expected: Option<ResourceType>) -> (String, String) {
    let e = parse_resource(line, expected).unwrap_err();
    match &e.problem {
        Problem::Field { field, problem } => (field.clone(), problem.clone()),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn patient_round_trip() {
    let Resource::Patient(p) = parse_resource(PATIENT, Some(ResourceType::Patient)).unwrap() else { panic!() };
    assert_eq!(p.id, "p1");
    assert_eq!(p.version.version_id.as_deref(), Some("2"));
    assert_eq!(p.gender, Some(Gender::Female));
    assert_eq!(p.birth_date.unwrap().to_string(), "1950-02-03");
    let Deceased::Yes(Some(d)) = p.deceased else { panic!() };
    assert_eq!(d.to_string(), "2019-05-06");
    assert_eq!(p.identifiers, vec![(Some("urn:mrn".to_string()), "M123".to_string())]);
    // Debug output must not leak values.
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("1950") && !dbg.contains("M123"), "{dbg}");
}

#[test]
fn observation_with_loinc_and_quantity() {
    let line = r#"{"resourceType":"Observation","id":"o1","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"2160-0","display":"Creatinine"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2016-01-02","valueQuantity":{"value":1.25,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}}"#;
    let Resource::Observation(o) = parse_resource(line, None).unwrap() else { panic!() };
    assert_eq!(o.patient, "p1");
    assert_eq!(o.value.as_ref().unwrap().value, 1.25);
    assert_eq!(o.value.unwrap().unit.as_deref(), Some("mg/dL"));
}

#[test]
fn truncated_line_is_reported_as_truncated() {
    let cut = &PATIENT[..PATIENT.len() - 20];
    let e = parse_resource(cut, Some(ResourceType::Patient)).unwrap_err();
    assert!(matches!(e.problem, Problem::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"));
}

#[test]
fn wrong_type_in_file() {
    let e = parse_resource(PATIENT, Some(ResourceType::Condition)).unwrap_err();
    assert_eq!(e.problem, Problem::WrongType { expected: ResourceType::Condition, found: ResourceType::Patient });
    assert_eq!(e.to_string(), "Patient/p1: a Patient resource in a file of Condition resources");
}

#[test]
fn unknown_element_named() {
    let line = PATIENT.replace("birthDate", "birthdate");
    let e = parse_resource(&line, None).unwrap_err();
    assert_eq!(e.field(), Some("birthdate"));
    assert!(e.to_string().starts_with("Patient/p1: `birthdate` is not an element"), "{e}");
}

#[test]
fn primitive_extension_keys_are_allowed() {
    let line = PATIENT.replace(r#""gender":"female""#, r#""gender":"female","_gender":{"extension":[]}"#);
    parse_resource(&line, None).unwrap();
}

#[test]
fn observation_without_loinc_names_systems() {
    let line = r#"{"resourceType":"Observation","id":"o2","status":"final","code":{"coding":[{"system":"http://acme.example/labs","code":"CREA"}]},"subject":{"reference":"Patient/p1"}}"#;
    let (field, problem) = field_err(line, None);
    assert_eq!(field, "code.coding");
    assert!(problem.contains("LOINC") && problem.contains("http://acme.example/labs"), "{problem}");
}

#[test]
fn loinc_check_digit_enforced() {
    for (code, ok) in
        [("2160-0", true), ("33914-3", true), ("4548-4", true), ("2160-1", false), ("2160", false), ("x-0", false)]
    {
        assert_eq!(seh_fhir::loinc_is_valid(code), ok, "{code}");
    }
    let line = r#"{"resourceType":"Observation","id":"o3","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2160-7"}]},"subject":{"reference":"Patient/p1"}}"#;
    assert_eq!(field_err(line, None).0, "code.coding[0].code");
}

#[test]
fn errors_do_not_repeat_values() {
    let line = PATIENT.replace("1950-02-03", "1950-02-30");
    let e = parse_resource(&line, None).unwrap_err();
    assert_eq!(e.field(), Some("birthDate"));
    assert!(!e.to_string().contains("1950"), "{e}");
    // A string where a number is required: serde would quote it; we must not.
    let line = r#"{"resourceType":"Observation","id":"o4","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2160-0"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":"SECRET-9"}}"#;
    let e = parse_resource(line, None).unwrap_err();
    assert_eq!(e.field(), Some("valueQuantity.value"));
    assert!(!e.to_string().contains("SECRET"), "{e}");
    let line = PATIENT.replace(r#""gender":"female""#, r#""gender":"SECRET""#);
    let e = parse_resource(&line, None).unwrap_err();
    assert_eq!(e.field(), Some("gender"));
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

#[test]
fn data_type_unknown_key_rejected_with_path() {
    let line = r#"{"resourceType":"Condition","id":"c1","code":{"coding":[{"system":"http://snomed.info/sct","cod":"44054006"}]},"subject":{"reference":"Patient/p1"}}"#;
    let (field, problem) = field_err(line, None);
    assert_eq!(field, "code.coding[0].cod");
    assert!(problem.contains("cod"), "{problem}");
}

#[test]
fn choice_exclusive_and_references_checked() {
    let line = r#"{"resourceType":"Condition","id":"c1","code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Patient/p1"},"onsetDateTime":"2015-01-01","onsetPeriod":{"start":"2015-01-01"}}"#;
    assert_eq!(field_err(line, None).0, "onset[x]");
    let line = r#"{"resourceType":"Condition","id":"c1","code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"subject":{"reference":"Group/g1"}}"#;
    assert_eq!(field_err(line, None).0, "subject.reference");
}

#[test]
fn consent_with_nested_provisions() {
    let line = r#"{"resourceType":"Consent","id":"k1","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"57016-8"}]}],"patient":{"reference":"Patient/p1"},"dateTime":"2014-06-01","policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},"provision":{"type":"permit","period":{"start":"2014-06-01"},"purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HRESCH"}],"provision":[{"type":"deny","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HMARKT"}]}]}}"#;
    let Resource::Consent(c) = parse_resource(line, Some(ResourceType::Consent)).unwrap() else { panic!() };
    let p = c.provision.unwrap();
    assert_eq!(p.kind, Some(seh_fhir::ProvisionKind::Permit));
    assert_eq!(p.nested.len(), 1);
    assert_eq!(p.nested[0].kind, Some(seh_fhir::ProvisionKind::Deny));
    assert_eq!(c.date_day, Some(seh_fhir::date::days_from_civil(2014, 6, 1)));
}

#[test]
fn other_resources_parse() {
    let enc = r#"{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/p1"},"period":{"start":"2016-01-01T08:00:00Z","end":"2016-01-01T09:00:00Z"}}"#;
    assert!(matches!(parse_resource(enc, None).unwrap(), Resource::Encounter(_)));
    let pr = r#"{"resourceType":"Procedure","id":"x1","status":"completed","code":{"coding":[{"system":"http://snomed.info/sct","code":"80146002"}]},"subject":{"reference":"Patient/p1"},"performedDateTime":"2016-01-01"}"#;
    assert!(matches!(parse_resource(pr, None).unwrap(), Resource::Procedure(_)));
    let ms = r#"{"resourceType":"MedicationStatement","id":"m1","status":"active","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"860975"}]},"subject":{"reference":"Patient/p1"},"effectivePeriod":{"start":"2016-01-01"}}"#;
    assert!(matches!(parse_resource(ms, None).unwrap(), Resource::MedicationStatement(_)));
    let bad = ms.replace("\"active\"", "\"taking\"");
    let e = parse_resource(&bad, None).unwrap_err();
    assert_eq!(e.field(), Some("status"));
}

#[test]
fn unsupported_and_non_object() {
    let e = parse_resource(r#"{"resourceType":"Practitioner","id":"d1"}"#, None).unwrap_err();
    assert!(matches!(e.problem, Problem::UnsupportedType { .. }));
    let e = parse_resource("[1,2]", None).unwrap_err();
    assert_eq!(e.problem, Problem::NotObject);
    let e = parse_resource(r#"{"resourceType":"Patient","id":"bad id"}"#, None).unwrap_err();
    assert_eq!(e.problem, Problem::BadId);
}
