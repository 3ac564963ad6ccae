//! `seh data`: synth → import (twice) → cohort → table, and a clear error for a bad export.

use assert_cmd::Command;
use predicates::str::contains;

fn seh() -> Command {
    Command::cargo_bin("seh").unwrap()
}

#[test]
fn synth_import_cohort_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    seh().args(["data", "synth", "--patients", "40", "--sites", "2", "--seed", "5", "--out"]).arg(d).assert().success();
    let store = d.join("site1.sqlite");
    let import = || seh().args(["data", "import", "--store"]).arg(&store).arg("--fhir").arg(d.join("site1")).assert();
    import().success().stdout(contains("Patient")).stdout(contains("inserted"));
    import().success().stdout(contains("inserted         0"));
    let def = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/cohort/ckd_death.toml");
    let out = d.join("ckd.csv");
    seh()
        .args(["data", "cohort", "--store"])
        .arg(&store)
        .args(["--def", def, "--out"])
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("stored table `ckd_death`"));
    let csv = std::fs::read_to_string(&out).unwrap();
    assert!(csv.starts_with("id,tstart,tstop,death,age,male,diabetes,hypertension,creat,egfr,hf\n"));
    seh().args(["data", "tables", "--store"]).arg(&store).assert().success().stdout(contains("table ckd_death"));
}

#[test]
fn bad_export_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let fhir = dir.path().join("fhir");
    std::fs::create_dir_all(&fhir).unwrap();
    std::fs::write(fhir.join("Patient.ndjson"), "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"x\"}\n")
        .unwrap();
    seh()
        .args(["data", "import", "--store"])
        .arg(dir.path().join("s.sqlite"))
        .arg("--fhir")
        .arg(&fhir)
        .assert()
        .failure()
        .stderr(contains("Patient.ndjson: line 1: Patient/p1: field `gender`: not in the R4 value set"));
}
