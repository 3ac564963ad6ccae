//! The store's FHIR `Consent` records, converted for `seh-policy`, decide the cohort rows the
//! way the raw records say: patients whose consent denies research lose all their rows, the
//! rest keep them (opt-in regime: a patient without a permit is removed too).

mod common;

use std::collections::HashSet;

use seh_data::cohort::{self, CohortDef};
use seh_data::source::ClinicalSource;
use seh_policy::consent::{ConsentRegime, Purpose};

#[test]
fn fhir_consent_filters_cohort_rows_by_patient() {
    let text = std::fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let def = CohortDef::from_toml(&text, "ckd_death.toml").unwrap();
    let mut store = common::synth_store();
    let built = cohort::build(&def, &mut store as &mut dyn ClinicalSource).unwrap();
    let registry = store.policy_consent(ConsentRegime::OptIn).unwrap();

    // Patients whose (only) consent record has a root deny for research, from the raw NDJSON.
    let mut deny = HashSet::new();
    for site in ["site1", "site2"] {
        let ndjson = std::fs::read_to_string(common::testdata(&format!("fhir/synth/{site}/Consent.ndjson"))).unwrap();
        for line in ndjson.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["provision"]["type"] == "deny" {
                let id = v["patient"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_owned();
                deny.insert(store.patient_pseudonym(&id));
            }
        }
    }
    assert!(!deny.is_empty());

    let ids = built.frame.column("id").unwrap().to_vec();
    let rows: Vec<(usize, String)> =
        (0..ids.len()).map(|r| (r, built.pseudonyms[ids[r] as usize - 1].to_string())).collect();
    let date = seh_policy::Date::new(2030, 1, 1).unwrap();
    let purpose = Purpose::act_reason(seh_policy::consent::HRESCH);
    let (kept, audit) = registry.filter_rows(rows.clone(), |r| r.1.as_str(), &purpose, date);
    let kept: Vec<usize> = kept.into_iter().map(|r| r.0).collect();
    let rows: Vec<usize> = rows.into_iter().map(|r| r.0).collect();
    let a = audit.audit_value();
    assert_eq!(a.removed as usize + kept.len(), rows.len());
    assert!(a.by_deny_provision > 0, "{a:?}");
    // Every row of a denying patient is removed; rows are removed per patient, never split.
    for r in &rows {
        let p = built.pseudonyms[ids[*r] as usize - 1];
        if deny.contains(&p) {
            assert!(!kept.contains(r), "a denying patient's row was kept");
        }
    }
    let kept_patients: HashSet<_> = kept.iter().map(|r| ids[*r] as u64).collect();
    let removed_patients: HashSet<_> = rows.iter().filter(|r| !kept.contains(r)).map(|r| ids[*r] as u64).collect();
    assert!(kept_patients.is_disjoint(&removed_patients));
    let share = kept_patients.len() as f64 / (kept_patients.len() + removed_patients.len()) as f64;
    eprintln!(
        "consent: {} of {} rows kept ({} patients kept, {} removed: {a:?})",
        kept.len(),
        rows.len(),
        kept_patients.len(),
        removed_patients.len()
    );
    assert!(share > 0.8 && share < 1.0, "{share}");
}

#[test]
fn a_stored_cohort_keeps_each_rows_patient_and_a_csv_table_has_none() {
    let text = std::fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let def = CohortDef::from_toml(&text, "ckd_death.toml").unwrap();
    let mut store = common::synth_store();
    let built = cohort::build(&def, &mut store as &mut dyn ClinicalSource).unwrap();
    store.write_cohort("ckd", &built, "cohort:test").unwrap();
    let (frame, keys) = store.read_keyed_table("ckd").unwrap();
    assert_eq!(frame.nrows(), built.frame.nrows());
    let ids = frame.column("id").unwrap();
    for (id, key) in ids.iter().zip(&keys) {
        assert_eq!(*key, built.pseudonyms[*id as usize - 1]);
    }
    // The same rows written as a plain table lose their keys: consent cannot be applied.
    store.write_table("ckd", &built.frame, "csv:test").unwrap();
    let err = store.read_keyed_table("ckd").unwrap_err();
    assert!(matches!(err, seh_data::DataError::NoPatientKeys { ref name } if name == "ckd"), "{err}");
    assert!(matches!(store.read_keyed_table("other"), Err(seh_data::DataError::NoSuchTable { .. })));
    // A cohort whose ids do not index its pseudonyms is refused, and nothing is written.
    let mut broken = built.clone();
    broken.pseudonyms.truncate(1);
    let err = store.write_cohort("broken", &broken, "cohort:test").unwrap_err();
    assert!(matches!(err, seh_data::DataError::BadPatientKeys { .. }), "{err}");
    assert!(store.tables().unwrap().iter().all(|t| t.name != "broken"));
}
