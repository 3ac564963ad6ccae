//! Store import: idempotence, atomicity, strict errors, CSV tables, consent records.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use seh_crypto::pseudonym::SiteSecret;
use seh_data::cohort::{self, CohortDef, CohortError};
use seh_data::source::ClinicalSource;
use seh_data::{DataError, Store};
use seh_fhir::ResourceType;

fn copy_synth(to: &Path) {
    for f in common::synth_files().iter().filter(|p| p.to_string_lossy().contains("site1")) {
        fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn reimport_is_idempotent() {
    let mut s = Store::open_in_memory(common::secret()).unwrap();
    let first = s.import_fhir_files(&common::synth_files()).unwrap();
    let d1 = s.digest().unwrap();
    let second = s.import_fhir_files(&common::synth_files()).unwrap();
    assert_eq!(s.digest().unwrap(), d1);
    assert_eq!(first.resources, second.resources);
    for (ty, c) in &second.by_type {
        assert_eq!((c.inserted, c.replaced, c.stale), (0, 0, 0), "{ty}");
        assert_eq!(c.unchanged, first.by_type[ty].inserted, "{ty}");
    }
    let counts: std::collections::HashMap<_, _> = s.counts().unwrap().into_iter().collect();
    assert_eq!(counts["patient"], 60);
}

#[test]
fn newer_version_replaces_older_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let v1 =
        r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"gender":"male","birthDate":"1950-01-01"}"#;
    let v2 =
        r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2"},"gender":"female","birthDate":"1950-01-01"}"#;
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("Patient.ndjson"), format!("{v1}\n")).unwrap();
    fs::write(b.join("Patient.ndjson"), format!("{v2}\n")).unwrap();
    let mut digests = Vec::new();
    for order in [[&a, &b], [&b, &a]] {
        let mut s = Store::open_in_memory(common::secret()).unwrap();
        for d in order {
            s.import_fhir_dir(d).unwrap();
        }
        let p = s.patients().unwrap();
        assert_eq!(p[0].sex, Some(seh_fhir::Gender::Female));
        digests.push(s.digest().unwrap());
    }
    assert_eq!(digests[0], digests[1]);
}

/// Imports `dir` into a store that already holds the synthetic site 1 and
/// checks the error and that the store is unchanged.
fn failing_import(dir: &Path) -> DataError {
    let mut s = Store::open_in_memory(common::secret()).unwrap();
    s.import_fhir_files(&common::synth_files()[..3]).unwrap();
    let before = s.digest().unwrap();
    let err = s.import_fhir_dir(dir).unwrap_err();
    assert_eq!(s.digest().unwrap(), before, "a failed import must leave the store as it was");
    err
}

fn bad_dir(file: &str, mutate: impl FnOnce(String) -> String) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_synth(dir.path());
    let path = dir.path().join(file);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, mutate(text)).unwrap();
    (dir, path)
}

#[test]
fn truncated_line_rolls_back_and_names_file_and_line() {
    let (dir, path) = bad_dir("Observation.ndjson", |t| {
        let cut = t.len() - 40;
        t[..cut].to_string()
    });
    let lines = fs::read_to_string(&path).unwrap().lines().count();
    let err = failing_import(dir.path());
    let msg = err.to_string();
    let DataError::Resource { file, line, error } = &err else { panic!("{msg}") };
    assert_eq!(file, &path);
    assert_eq!(*line, lines);
    assert!(matches!(error.problem, seh_fhir::Problem::Truncated { .. }), "{msg}");
    assert!(msg.contains("Observation.ndjson: line") && msg.contains("truncated"), "{msg}");
}

#[test]
fn wrong_resource_type_in_file() {
    let (dir, path) = bad_dir("Condition.ndjson", |t| {
        let p = r#"{"resourceType":"Patient","id":"intruder","gender":"male"}"#;
        format!("{t}{p}\n")
    });
    let err = failing_import(dir.path());
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}: line ", path.display())), "{msg}");
    assert!(msg.contains("Patient/intruder: a Patient resource in a file of Condition resources"), "{msg}");
    let DataError::Resource { error, .. } = err else { panic!() };
    assert_eq!(error.field(), Some("resourceType"));
}

#[test]
fn unknown_code_system_where_loinc_is_required() {
    let (dir, _) = bad_dir("Observation.ndjson", |t| {
        let mut lines: Vec<String> = t.lines().map(str::to_string).collect();
        lines[5] = lines[5].replacen("http://loinc.org", "http://acme.example/lab-codes", 1);
        lines.join("\n") + "\n"
    });
    let err = failing_import(dir.path());
    let msg = err.to_string();
    let DataError::Resource { line, error, .. } = &err else { panic!("{msg}") };
    assert_eq!(*line, 6);
    assert_eq!(error.resource_type, Some(ResourceType::Observation));
    assert!(error.id.is_some());
    assert_eq!(error.field(), Some("code.coding"));
    assert!(msg.contains("http://acme.example/lab-codes") && msg.contains("LOINC"), "{msg}");
    // The value of the observation must not appear.
    assert!(!msg.contains("valueQuantity"), "{msg}");
}

#[test]
fn cohort_definition_naming_a_missing_code() {
    let mut s = common::synth_store();
    let before = s.digest().unwrap();
    let text = fs::read_to_string(common::testdata("cohort/ckd_death.toml"))
        .unwrap()
        .replace("code = \"84114007\"", "code = \"22298006\"");
    let def = CohortDef::from_toml(&text, "ckd.toml").unwrap();
    let err = cohort::build(&def, &mut s as &mut dyn ClinicalSource).unwrap_err();
    assert!(matches!(err, CohortError::MissingCode { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "ckd.toml: `time_dependent[2]`: no Condition in the data has code http://snomed.info/sct|22298006"
    );
    assert_eq!(s.digest().unwrap(), before);
}

#[test]
fn cohort_definition_errors_name_the_field() {
    let base = fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let cases = [
        (base.replace("name = \"creat\"", "name = \"creat\"\ncolour = \"red\""), "colour"),
        (base.replace("2160-0", "2160-1"), "time_dependent[0].code"),
        (base.replace("date = \"2015-01-01\"", "date = \"2015-02-30\""), "index.date"),
        (base.replace("name = \"egfr\"", "name = \"creat\""), "time_dependent[1].name"),
        (base.replace("value = \"male\"", "value = \"m\""), "baseline[1].value"),
    ];
    for (text, field) in cases {
        let err = CohortDef::from_toml(&text, "def.toml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("def.toml: ") && msg.contains(field), "{field}: {msg}");
    }
}

#[test]
fn unit_mismatch_is_an_error() {
    let mut s = common::synth_store();
    let text =
        fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap().replace("\"mg/dL\"", "\"umol/L\"");
    let def = CohortDef::from_toml(&text, "d.toml").unwrap();
    let err = cohort::build(&def, &mut s as &mut dyn ClinicalSource).unwrap_err();
    assert!(err.to_string().contains("requires unit `umol/L` but measurements use mg/dL"), "{err}");
}

#[test]
fn secret_mismatch_refused_and_no_raw_ids_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.sqlite");
    {
        let mut s = Store::open(&path, common::secret()).unwrap();
        s.import_fhir_files(&common::synth_files()).unwrap();
    }
    let other = SiteSecret::from_bytes(&[9u8; 32]).unwrap();
    assert!(matches!(Store::open(&path, other), Err(DataError::SecretMismatch)));
    // Neither patient ids nor identifiers appear anywhere in the file.
    let bytes = fs::read(&path).unwrap();
    let wal = fs::read(dir.path().join("site.sqlite-wal")).unwrap_or_default();
    for needle in [&b"s1-p000001"[..], b"MRN1", b"s2-p0000"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "raw id in the store");
        assert!(!wal.windows(needle.len()).any(|w| w == needle), "raw id in the WAL");
    }
}

#[test]
fn csv_tables_round_trip_and_failed_csv_leaves_store() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("t.csv");
    fs::write(&good, "time,status,age\n5,1,60.5\n7,0,NA\n").unwrap();
    let mut s = Store::open_in_memory(common::secret()).unwrap();
    let info = s.import_csv(&good, "heart").unwrap();
    assert_eq!((info.nrows, info.columns.len()), (2, 3));
    let f = s.read_table("heart").unwrap();
    assert_eq!(f.column("age").unwrap()[0], 60.5);
    assert!(f.column("age").unwrap()[1].is_nan());
    let before = s.digest().unwrap();
    let bad = dir.path().join("bad.csv");
    fs::write(&bad, "time,status\n5,1\n7,x\n").unwrap();
    let err = s.import_csv(&bad, "heart").unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
    assert!(matches!(s.import_csv(&good, "bad name"), Err(DataError::BadTableName { .. })));
    assert_eq!(s.digest().unwrap(), before);
    assert!(matches!(s.read_table("nope"), Err(DataError::NoSuchTable { .. })));
}

#[test]
fn consent_records_and_opt_outs() {
    let mut s = common::synth_store();
    let recs = s.consent_records().unwrap();
    assert_eq!(recs.len(), 60);
    let deny = recs
        .iter()
        .filter(|r| r.provision.as_ref().is_some_and(|p| p.kind == Some(seh_fhir::ProvisionKind::Deny)))
        .count();
    assert!(deny > 0 && deny < 60);
    let n = s.import_opt_outs(&common::testdata("fhir/synth/site1/opt_out.csv")).unwrap();
    let again = s.import_opt_outs(&common::testdata("fhir/synth/site1/opt_out.csv")).unwrap();
    assert_eq!(n, again);
    let outs = s.opt_outs().unwrap();
    assert_eq!(outs.len(), n.entries);
    // Opt-outs key patients by the same pseudonyms as the cohort.
    let text = fs::read_to_string(common::testdata("fhir/synth/site1/opt_out.csv")).unwrap();
    if let Some(line) = text.lines().nth(1) {
        let id = line.split(',').next().unwrap();
        assert!(outs.iter().any(|o| o.patient == s.patient_pseudonym(id)));
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("o.csv");
    fs::write(&bad, "patient,purpose,date\np1,HRESCH,2020-13-01\n").unwrap();
    let err = s.import_opt_outs(&bad).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: line 2: field `date`: not a YYYY-MM-DD date", bad.display()));
}

#[test]
fn synth_is_deterministic_and_matches_committed_testdata() {
    let dir = tempfile::tempdir().unwrap();
    let params = seh_data::synth::SynthParams { patients: 60, sites: 2, seed: 7, flat: true };
    seh_data::synth::generate(&params, dir.path()).unwrap();
    for f in common::synth_files() {
        let site = f.parent().unwrap().file_name().unwrap();
        let fresh = fs::read(dir.path().join(site).join(f.file_name().unwrap())).unwrap();
        assert!(fresh == fs::read(&f).unwrap(), "{} differs from the generator's output", f.display());
    }
    for site in ["site1", "site2"] {
        for flat in ["patients", "conditions", "labs"] {
            let fresh = fs::read(dir.path().join(site).join(format!("flat_{flat}.csv"))).unwrap();
            let committed = fs::read(common::testdata(&format!("cohort/{site}_flat_{flat}.csv"))).unwrap();
            assert!(fresh == committed, "{site} flat_{flat}.csv differs");
        }
    }
}
