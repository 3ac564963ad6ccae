//! Cohorts built from the committed synthetic FHIR export equal the ones R's
//! `survival::tmerge` computes from the generator's flat CSV export
//! (testdata/cohort/make_tmerge_ref.R → expected_*.csv).

mod common;

use std::collections::HashMap;

use seh_data::cohort::{self, CohortDef};
use seh_data::source::ClinicalSource;

fn check(def_file: &str, expected_file: &str) {
    let text = std::fs::read_to_string(common::testdata(&format!("cohort/{def_file}"))).unwrap();
    let def = CohortDef::from_toml(&text, def_file).unwrap();
    let mut store = common::synth_store();
    let built = cohort::build(&def, &mut store as &mut dyn ClinicalSource).unwrap();
    // Map raw patient ids (R output) to the builder's numbering via pseudonyms.
    let rank: HashMap<_, f64> = built.pseudonyms.iter().enumerate().map(|(i, p)| (*p, (i + 1) as f64)).collect();

    let csv = std::fs::read_to_string(common::testdata(&format!("cohort/{expected_file}"))).unwrap();
    let mut lines = csv.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(|h| h.trim_matches('"').to_string()).collect();
    assert_eq!(header, built.frame.names(), "column names and order");
    let mut expected: Vec<Vec<f64>> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let raw_id = f[0].trim_matches('"');
        let pid = store.patient_pseudonym(raw_id);
        let id = *rank.get(&pid).unwrap_or_else(|| panic!("patient {raw_id} is in R's cohort but not ours"));
        let mut row = vec![id];
        row.extend(f[1..].iter().map(|v| if *v == "NA" { f64::NAN } else { v.parse().unwrap() }));
        expected.push(row);
    }
    let cols: Vec<&[f64]> = built.frame.names().iter().map(|n| built.frame.column(n).unwrap()).collect();
    let mut got: Vec<Vec<f64>> = (0..built.frame.nrows()).map(|r| cols.iter().map(|c| c[r]).collect()).collect();
    let key = |r: &Vec<f64>| (r[0] as i64, r[1] as i64);
    expected.sort_by_key(key);
    got.sort_by_key(key);
    assert_eq!(got.len(), expected.len(), "row count ({})", built.report);
    for (g, e) in got.iter().zip(&expected) {
        for (j, (a, b)) in g.iter().zip(e).enumerate() {
            let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            assert!(same, "row {:?} column `{}`: ours {a}, R {b}", key(e), header[j]);
        }
    }
    let patients = expected.iter().map(|r| r[0] as i64).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(built.report.included, patients);
}

#[test]
fn ckd_death_matches_r_tmerge() {
    check("ckd_death.toml", "expected_ckd_death.csv");
}

#[test]
fn diabetes_hf_matches_r_tmerge() {
    check("diabetes_hf.toml", "expected_diabetes_hf.csv");
}
