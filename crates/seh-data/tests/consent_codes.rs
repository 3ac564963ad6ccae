//! Consent purposes are v3-ActReason purpose-of-use codes, checked case-sensitively wherever they
//! enter the store (the opt-out list, FHIR `Consent` resources); future-dated opt-outs are
//! reported; and the consent filter's breakdown counts each reason as it is (hand-counted).

mod common;

use std::fs;
use std::path::Path;

use seh_data::{DataError, Store};
use seh_policy::consent::{ConsentRegime, Purpose};

const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

fn store() -> Store {
    Store::open_in_memory(common::secret()).unwrap()
}

/// A FHIR R4 `Consent` line for `patient` with root provision `kind` for `purpose` (and an
/// optional nested provision `nested` = (kind, purpose)).
fn consent_line(id: &str, patient: &str, kind: &str, purpose: &str, nested: Option<(&str, &str)>) -> String {
    let mut provision = serde_json::json!({
        "type": kind,
        "purpose": [{"system": ACT_REASON, "code": purpose}],
    });
    if let Some((k, p)) = nested {
        provision["provision"] = serde_json::json!([{"type": k, "purpose": [{"system": ACT_REASON, "code": p}]}]);
    }
    serde_json::json!({
        "resourceType": "Consent",
        "id": id,
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "provision": provision,
    })
    .to_string()
}

fn write_consents(dir: &Path, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join("Consent.ndjson");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_wrongly_cased_or_unknown_opt_out_purpose_is_refused_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opt_out.csv");
    for (purpose, hint) in
        [("hresch", "write `HRESCH`"), ("Hresch", "write `HRESCH`"), ("RESEARCH", "not a v3-ActReason")]
    {
        let mut s = store();
        fs::write(&file, format!("patient,purpose,date\np1,HRESCH,2020-01-01\np2,{purpose},2020-01-01\n")).unwrap();
        let err = s.import_opt_outs(&file).unwrap_err();
        assert!(matches!(err, DataError::CsvFormat { line: 3, .. }), "{purpose}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}: line 3: field `purpose`: ", file.display())), "{msg}");
        assert!(msg.contains(hint), "{msg}");
        assert!(!msg.contains("p2"), "no patient id in the message: {msg}");
        assert!(s.opt_outs().unwrap().is_empty(), "nothing is stored from a bad file");
    }
    // The right spelling, `*` and an empty purpose are accepted.
    let mut s = store();
    fs::write(&file, "patient,purpose,date\np1,HRESCH,2020-01-01\np2,*,\np3,,\np4,CLINTRCH,\n").unwrap();
    assert_eq!(s.import_opt_outs(&file).unwrap().entries, 4);
}

#[test]
fn a_fhir_consent_with_a_bad_purpose_is_refused_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = consent_line("k1", "p1", "permit", "HRESCH", None);
    let cases = [
        (consent_line("k2", "p2", "deny", "hresch", None), "provision.purpose[0].code", Some("HRESCH")),
        (
            consent_line("k2", "p2", "permit", "HRESCH", Some(("deny", "Clintrch"))),
            "provision.provision[0].purpose[0].code",
            Some("CLINTRCH"),
        ),
        (consent_line("k2", "p2", "deny", "NOPE", None), "provision.purpose[0].code", None),
        (
            consent_line("k2", "p2", "deny", "HRESCH", None).replace(ACT_REASON, "http://example.org/local"),
            "provision.purpose[0].system",
            None,
        ),
    ];
    for (bad, field, spelling) in cases {
        let path = write_consents(dir.path(), &[good.clone(), bad]);
        let mut s = store();
        let err = s.import_fhir_files(std::slice::from_ref(&path)).unwrap_err();
        assert!(matches!(err, DataError::Resource { line: 2, .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{}: line 2: Consent/k2: field `{field}`", path.display())), "{msg}");
        if let Some(c) = spelling {
            assert!(msg.contains(&format!("write `{c}`")), "{msg}");
        }
        assert!(s.consent_records().unwrap().is_empty(), "the import is one transaction");
    }
}

#[test]
fn a_future_dated_opt_out_is_reported_and_does_not_apply_before_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("opt_out.csv");
    fs::write(&file, "patient,purpose,date\np1,HRESCH,2020-01-01\np2,HRESCH,2999-01-01\np3,*,2998-05-01\n").unwrap();
    let mut s = store();
    let r = s.import_opt_outs(&file).unwrap();
    assert_eq!(r.entries, 3);
    assert_eq!(r.future_dated, [3, 4]);
    let reg = s.policy_consent(ConsentRegime::OptOut).unwrap();
    let key = |p: &str| s.patient_pseudonym(p).to_string();
    let research = Purpose::act_reason("HRESCH");
    let d = |t: &str| t.parse::<seh_policy::Date>().unwrap();
    assert!(!reg.evaluate(&key("p1"), &research, d("2030-01-01")).is_permitted());
    assert!(reg.evaluate(&key("p2"), &research, d("2030-01-01")).is_permitted(), "not in force yet");
    assert!(!reg.evaluate(&key("p2"), &research, d("2999-01-01")).is_permitted(), "in force from its date");
    assert!(reg.has_pending_opt_out(&key("p3"), &research, d("2030-01-01")));
}

/// Hand-counted fixture: 9 patients, 19 rows, every removal reason.
///
/// | patient | consent                                   | rows | opt-in   | opt-out  |
/// |---------|-------------------------------------------|------|----------|----------|
/// | p1      | opt-out HRESCH from 2020                  | 2    | opt-out  | opt-out  |
/// | p2      | opt-out of everything (`*`, no date)      | 2    | opt-out  | opt-out  |
/// | p3      | opt-out CLINTRCH from 2020 (deny: broad)  | 2    | opt-out  | opt-out  |
/// | p4      | permit HRESCH; opt-out TREAT              | 2    | kept     | kept     |
/// | p5      | permit HRESCH; opt-out HRESCH from 2999   | 2    | kept (pending) | kept (pending) |
/// | p6      | opt-out BIORCH (a child of HRESCH)        | 2    | opt-out  | opt-out  |
/// | p7      | FHIR deny HRESCH                          | 2    | deny     | deny     |
/// | p8      | FHIR permit HRESCH                        | 3    | kept     | kept     |
/// | p9      | nothing                                   | 2    | no consent | kept   |
#[test]
fn the_breakdown_counts_each_reason_against_hand_counted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let opt_out = dir.path().join("opt_out.csv");
    fs::write(
        &opt_out,
        "patient,purpose,date\np1,HRESCH,2020-01-01\np2,*,\np3,CLINTRCH,2020-01-01\np4,TREAT,2020-01-01\n\
         p5,HRESCH,2999-01-01\np6,BIORCH,\n",
    )
    .unwrap();
    let consents = write_consents(
        dir.path(),
        &[
            consent_line("k4", "p4", "permit", "HRESCH", None),
            consent_line("k5", "p5", "permit", "HRESCH", None),
            consent_line("k7", "p7", "deny", "HRESCH", None),
            consent_line("k8", "p8", "permit", "HRESCH", None),
        ],
    );
    let mut s = store();
    s.import_fhir_files(&[consents]).unwrap();
    assert_eq!(s.import_opt_outs(&opt_out).unwrap().future_dated, [6]);

    let patients = ["p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4", "p5", "p5", "p6", "p6", "p7", "p7"];
    let mut rows: Vec<String> = patients.iter().chain(&["p8", "p8", "p8", "p9", "p9"]).map(|p| p.to_string()).collect();
    rows.reverse(); // order must not matter
    assert_eq!(rows.len(), 19);
    let keyed: Vec<(String, String)> = rows.iter().map(|p| (p.clone(), s.patient_pseudonym(p).to_string())).collect();
    let date = seh_policy::Date::new(2030, 1, 1).unwrap();
    let research = Purpose::act_reason("HRESCH");

    let reg = s.policy_consent(ConsentRegime::OptIn).unwrap();
    let (kept, audit) = reg.filter_rows(keyed.clone(), |r| r.1.as_str(), &research, date);
    let a = audit.audit_value();
    let mut kept_patients: Vec<&str> = kept.iter().map(|r| r.0.as_str()).collect();
    kept_patients.sort();
    assert_eq!(kept_patients, ["p4", "p4", "p5", "p5", "p8", "p8", "p8"]);
    assert_eq!((a.kept, a.removed), (7, 12), "{a:?}");
    assert_eq!((a.by_opt_out, a.by_deny_provision, a.by_no_applicable_consent), (8, 2, 2), "{a:?}");
    assert_eq!(a.kept_with_pending_opt_out, 2, "{a:?}");

    let reg = s.policy_consent(ConsentRegime::OptOut).unwrap();
    let (kept, audit) = reg.filter_rows(keyed, |r| r.1.as_str(), &research, date);
    let a = audit.audit_value();
    assert_eq!(kept.len(), 9);
    assert_eq!((a.kept, a.removed), (9, 10), "{a:?}");
    assert_eq!((a.by_opt_out, a.by_deny_provision, a.by_no_applicable_consent), (8, 2, 0), "{a:?}");
    assert_eq!(a.kept_with_pending_opt_out, 2, "{a:?}");
}
