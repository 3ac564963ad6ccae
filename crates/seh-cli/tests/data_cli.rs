//! `seh data`: synth → import (twice) → cohort → table, and a clear error for a bad export.

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
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

#[test]
fn a_table_name_differing_only_by_case_is_refused_and_the_first_table_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = d.join("s.sqlite");
    std::fs::write(d.join("a.csv"), "x,y\n1,2\n3,4\n").unwrap();
    std::fs::write(d.join("b.csv"), "x,y\n9,9\n8,8\n").unwrap();
    let import = |csv: &str, table: &str| {
        seh()
            .args(["data", "import", "--store"])
            .arg(&store)
            .arg("--csv")
            .arg(d.join(csv))
            .args(["--table", table])
            .assert()
    };
    import("a.csv", "rossi").success();
    import("b.csv", "Rossi")
        .failure()
        .stderr(contains("table `Rossi` differs only by letter case from the table `rossi`"));
    // The same spelling replaces the table.
    import("b.csv", "rossi").success();
    seh()
        .args(["data", "tables", "--store"])
        .arg(&store)
        .assert()
        .success()
        .stdout(contains("table rossi"))
        .stdout(predicates::str::contains("table Rossi").not());
}

#[test]
fn an_opt_out_with_a_wrongly_cased_purpose_fails_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("opt_out.csv");
    std::fs::write(&list, "patient,purpose,date\np1,hresch,2020-01-01\n").unwrap();
    seh()
        .args(["data", "import", "--store"])
        .arg(dir.path().join("s.sqlite"))
        .arg("--opt-out")
        .arg(&list)
        .assert()
        .failure()
        .stderr(contains(
            "opt_out.csv: line 2: field `purpose`: v3-ActReason codes are case-sensitive: write `HRESCH`",
        ));
    std::fs::write(&list, "patient,purpose,date\np1,HRESCH,2999-01-01\n").unwrap();
    seh()
        .args(["data", "import", "--store"])
        .arg(dir.path().join("s.sqlite"))
        .arg("--opt-out")
        .arg(&list)
        .assert()
        .success()
        .stderr(contains("line 2: field `date`: the opt-out takes effect after today"));
}
