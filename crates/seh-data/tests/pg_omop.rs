//! The PostgreSQL OMOP connector against a real server.
//!
//! Needs `SEH_TEST_PG_URL` (start a throwaway server with
//! `export SEH_TEST_PG_URL=$(scripts/pg-test-server.sh)`). The synthetic
//! records (the generator's flat export) are loaded into OMOP tables in a
//! fresh schema, and the cohort built through the connector must equal R's
//! `tmerge` reference, exactly like the cohort built from the FHIR store.

mod common;

use std::collections::HashMap;

use postgres::{Client, NoTls};
use seh_crypto::pseudonym::SiteSecret;
use seh_data::cohort::{self, CohortDef, CohortError};
use seh_data::pg::OmopSource;
use seh_data::source::ClinicalSource;

fn url() -> String {
    std::env::var("SEH_TEST_PG_URL").unwrap_or_else(|_| {
        panic!(
            "SEH_TEST_PG_URL is not set: start a test server with \
             `export SEH_TEST_PG_URL=$(scripts/pg-test-server.sh)` and rerun"
        )
    })
}

fn read_flat(kind: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for site in ["site1", "site2"] {
        let text = std::fs::read_to_string(common::testdata(&format!("cohort/{site}_flat_{kind}.csv"))).unwrap();
        out.extend(text.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>()));
    }
    out
}

const DDL: &str = "
CREATE TABLE concept (concept_id integer PRIMARY KEY, concept_code varchar(50) NOT NULL, vocabulary_id varchar(20) NOT NULL);
CREATE TABLE person (person_id bigint PRIMARY KEY, gender_concept_id integer NOT NULL, year_of_birth integer NOT NULL,
    month_of_birth integer, day_of_birth integer);
CREATE TABLE observation_period (observation_period_id bigint PRIMARY KEY, person_id bigint NOT NULL,
    observation_period_start_date date NOT NULL, observation_period_end_date date NOT NULL);
CREATE TABLE death (person_id bigint NOT NULL, death_date date NOT NULL);
CREATE TABLE condition_occurrence (condition_occurrence_id bigint PRIMARY KEY, person_id bigint NOT NULL,
    condition_concept_id integer NOT NULL, condition_start_date date NOT NULL);
CREATE TABLE measurement (measurement_id bigint PRIMARY KEY, person_id bigint NOT NULL, measurement_concept_id integer NOT NULL,
    measurement_date date NOT NULL, value_as_number numeric, unit_concept_id integer, unit_source_value varchar(50));
INSERT INTO concept VALUES (1, '44054006', 'SNOMED'), (2, '38341003', 'SNOMED'), (3, '84114007', 'SNOMED'),
    (4, '2160-0', 'LOINC'), (5, '98979-8', 'LOINC'), (6, 'mg/dL', 'UCUM'), (7, 'mL/min/{1.73_m2}', 'UCUM');
";

/// Loads the flat synthetic records into a fresh schema; returns raw id → person_id.
fn load(client: &mut Client, schema: &str) -> HashMap<String, i64> {
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema};"
        ))
        .unwrap();
    client.batch_execute(DDL).unwrap();
    let mut tx = client.transaction().unwrap();
    let mut ids = HashMap::new();
    for (i, p) in read_flat("patients").iter().enumerate() {
        // id,gender,birth_date,deceased,death_date; a death without date cannot be expressed in OMOP: leave the person out.
        if p[3] == "1" && p[4].is_empty() {
            continue;
        }
        let person = 1000 + i as i64;
        ids.insert(p[0].clone(), person);
        let gender = match p[1].as_str() {
            "male" => 8507,
            "female" => 8532,
            _ => 0,
        };
        let b: Vec<i32> = p[2].split('-').map(|x| x.parse().unwrap()).collect();
        tx.execute("INSERT INTO person VALUES ($1, $2, $3, $4, $5)", &[&person, &gender, &b[0], &b[1], &b[2]]).unwrap();
        tx.execute("INSERT INTO observation_period VALUES ($1, $1, DATE '2000-01-01', DATE '2021-12-31')", &[&person])
            .unwrap();
        if !p[4].is_empty() {
            tx.execute("INSERT INTO death VALUES ($1, $2::text::date)", &[&person, &p[4]]).unwrap();
        }
    }
    for (i, c) in read_flat("conditions").iter().enumerate() {
        // id,code,onset_date,verification
        let Some(person) = ids.get(&c[0]) else { continue };
        if c[3] == "entered-in-error" {
            continue;
        }
        let concept = match c[1].as_str() {
            "44054006" => 1,
            "38341003" => 2,
            _ => 3,
        };
        tx.execute(
            "INSERT INTO condition_occurrence VALUES ($1, $2, $3, $4::text::date)",
            &[&(i as i64), person, &concept, &c[2]],
        )
        .unwrap();
    }
    for (i, l) in read_flat("labs").iter().enumerate() {
        // id,code,date,value,status
        let Some(person) = ids.get(&l[0]) else { continue };
        if l[4] != "final" {
            continue;
        }
        let (concept, unit) = if l[1] == "2160-0" { (4, 6) } else { (5, 7) };
        tx.execute(
            "INSERT INTO measurement VALUES ($1, $2, $3, $4::text::date, $5::text::numeric, $6, NULL)",
            &[&(i as i64), person, &concept, &l[2], &l[3], &unit],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    ids
}

#[test]
#[ignore = "needs a PostgreSQL server: .ci/run starts one (scripts/pg-test-server.sh) and runs this with --include-ignored"]
fn omop_cohort_matches_r_tmerge() {
    let url = url();
    let mut client = Client::connect(&url, NoTls).unwrap();
    let schema = format!("seh_test_{}", std::process::id());
    let ids = load(&mut client, &schema);
    let secret = SiteSecret::from_bytes(&[3u8; 32]).unwrap();
    let mut src = OmopSource::connect(&url, &schema, secret.clone()).unwrap();

    let text = std::fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let def = CohortDef::from_toml(&text, "ckd_death.toml").unwrap();
    let built = cohort::build(&def, &mut src as &mut dyn ClinicalSource).unwrap();
    let rank: HashMap<_, f64> = built.pseudonyms.iter().enumerate().map(|(i, p)| (*p, (i + 1) as f64)).collect();

    let csv = std::fs::read_to_string(common::testdata("cohort/expected_ckd_death.csv")).unwrap();
    let mut expected: Vec<Vec<f64>> = Vec::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let person = ids[f[0].trim_matches('"')];
        let pid = secret.pseudonym(seh_data::store::purpose::PATIENT, person.to_string().as_bytes());
        let mut row = vec![rank[&pid]];
        row.extend(f[1..].iter().map(|v| if *v == "NA" { f64::NAN } else { v.parse::<f64>().unwrap() }));
        expected.push(row);
    }
    let cols: Vec<&[f64]> = built.frame.names().iter().map(|n| built.frame.column(n).unwrap()).collect();
    let mut got: Vec<Vec<f64>> = (0..built.frame.nrows()).map(|r| cols.iter().map(|c| c[r]).collect()).collect();
    let key = |r: &Vec<f64>| (r[0] as i64, r[1] as i64);
    expected.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got.len(), expected.len(), "{}", built.report);
    for (g, e) in got.iter().zip(&expected) {
        for (a, b) in g.iter().zip(e) {
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                "{:?}: {a} vs {b}",
                key(e)
            );
        }
    }

    // A code the database does not have is a clear error.
    let bad = CohortDef::from_toml(&text.replace("84114007", "22298006"), "ckd.toml").unwrap();
    let err = cohort::build(&bad, &mut src as &mut dyn ClinicalSource).unwrap_err();
    assert!(matches!(err, CohortError::MissingCode { .. }), "{err}");

    // The connector is read-only.
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
}

#[test]
#[ignore = "needs a PostgreSQL server: .ci/run starts one (scripts/pg-test-server.sh) and runs this with --include-ignored"]
fn bad_schema_name_and_unreachable_server_are_errors() {
    let secret = SiteSecret::from_bytes(&[3u8; 32]).unwrap();
    let e = OmopSource::connect(&url(), "x; DROP TABLE person", secret.clone()).unwrap_err();
    assert!(e.to_string().contains("not valid"), "{e}");
    let e = OmopSource::connect("postgresql://seh@127.0.0.1:1/postgres", "public", secret).unwrap_err();
    assert!(e.to_string().starts_with("connecting to PostgreSQL"), "{e}");
}
