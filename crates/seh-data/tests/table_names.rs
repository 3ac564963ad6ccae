//! Table names: one rule (the key is the name in ASCII lower case, as SQLite compares
//! identifiers), a name differing only by letter case from a stored table is refused naming
//! both, and the row→patient map never outlives the rows it describes.

mod common;

use seh_data::cohort::{self, Cohort, CohortDef};
use seh_data::source::ClinicalSource;
use seh_data::{DataError, Store};
use seh_stats::DataFrame;

fn frame(values: &[f64]) -> DataFrame {
    let mut f = DataFrame::with_rows(values.len());
    f.push_column("x".to_string(), values.to_vec()).unwrap();
    f
}

fn cohort(store: &mut Store) -> Cohort {
    let text = std::fs::read_to_string(common::testdata("cohort/ckd_death.toml")).unwrap();
    let def = CohortDef::from_toml(&text, "ckd_death.toml").unwrap();
    cohort::build(&def, store as &mut dyn ClinicalSource).unwrap()
}

fn is_case_clash(e: &DataError, name: &str, existing: &str) -> bool {
    matches!(e, DataError::TableNameCase { name: n, existing: x } if n == name && x == existing)
}

#[test]
fn a_name_differing_only_by_case_is_refused_naming_both_and_the_table_kept() {
    let mut s = Store::open_in_memory(common::secret()).unwrap();
    s.write_table("rossi", &frame(&[1.0, 2.0]), "csv:a").unwrap();
    let err = s.write_table("Rossi", &frame(&[9.0, 9.0]), "csv:b").unwrap_err();
    assert!(is_case_clash(&err, "Rossi", "rossi"), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("`Rossi`") && msg.contains("`rossi`"), "{msg}");
    assert_eq!(s.read_table("rossi").unwrap().column("x").unwrap(), [1.0, 2.0]);
    assert_eq!(s.tables().unwrap().len(), 1);
    // Reads are held to the same rule.
    let err = s.read_table("ROSSI").unwrap_err();
    assert!(is_case_clash(&err, "ROSSI", "rossi"), "{err:?}");
    // The exact spelling replaces; a mixed-case table is read and replaced by its spelling.
    s.write_table("rossi", &frame(&[3.0]), "csv:c").unwrap();
    assert_eq!(s.read_table("rossi").unwrap().column("x").unwrap(), [3.0]);
    s.write_table("Bianchi", &frame(&[5.0]), "csv:d").unwrap();
    assert!(is_case_clash(&s.write_table("bianchi", &frame(&[6.0]), "csv:e").unwrap_err(), "bianchi", "Bianchi"));
    assert_eq!(s.read_table("Bianchi").unwrap().column("x").unwrap(), [5.0]);
    assert!(matches!(s.write_table("9x", &frame(&[1.0]), "csv:f"), Err(DataError::BadTableName { .. })));
    assert_eq!(seh_data::store::table_key("Ckd_Death").unwrap(), "ckd_death");
}

#[test]
fn a_cohort_table_is_never_left_with_another_tables_patient_map() {
    let mut s = common::synth_store();
    let built = cohort(&mut s);
    s.write_cohort("rossi", &built, "cohort:test").unwrap();
    // Today's main replaced the rows of `rossi` here and kept its patient map.
    let other = frame(&vec![0.0; built.frame.nrows()]);
    let err = s.write_table("Rossi", &other, "csv:other").unwrap_err();
    assert!(is_case_clash(&err, "Rossi", "rossi"), "{err:?}");
    assert!(is_case_clash(&s.write_cohort("ROSSI", &built, "cohort:x").unwrap_err(), "ROSSI", "rossi"));
    let (rows, keys) = s.read_keyed_table("rossi").unwrap();
    assert_eq!(rows.column("id").unwrap(), built.frame.column("id").unwrap());
    for (id, key) in rows.column("id").unwrap().iter().zip(&keys) {
        assert_eq!(*key, built.pseudonyms[*id as usize - 1]);
    }
    // A mixed-case cohort name: its map is found, and replacing the table drops it.
    s.write_cohort("Cohort_A", &built, "cohort:test").unwrap();
    assert_eq!(s.read_keyed_table("Cohort_A").unwrap().1.len(), built.frame.nrows());
    s.write_table("Cohort_A", &other, "csv:other").unwrap();
    assert!(matches!(s.read_keyed_table("Cohort_A"), Err(DataError::NoPatientKeys { .. })));
}

/// A store written by an older build that let `Rossi` replace `rossi`'s rows: both catalogue
/// entries name one SQL table and `rossi` kept its stale map. Reads of either name are refused
/// naming the other; writing one of them under its spelling replaces both, maps included.
#[test]
fn a_store_with_a_case_collision_from_an_older_build_is_refused_until_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let n = {
        let mut s = Store::open(&path, common::secret()).unwrap();
        s.import_fhir_files(&common::synth_files()).unwrap();
        let built = cohort(&mut s);
        s.write_cohort("rossi", &built, "cohort:test").unwrap();
        s.write_cohort("Cohort_B", &built, "cohort:test").unwrap();
        built.frame.nrows()
    };
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "INSERT INTO analysis_table(name, columns, nrows, source) SELECT 'Rossi', columns, nrows, 'csv:old' \
             FROM analysis_table WHERE name = 'rossi';
             UPDATE table_row_patient SET name = 'Cohort_B' WHERE name = 'cohort_b';",
        )
        .unwrap();
    }
    let mut s = Store::open(&path, common::secret()).unwrap();
    let err = s.read_keyed_table("rossi").unwrap_err();
    assert!(is_case_clash(&err, "rossi", "Rossi"), "{err:?}");
    assert!(is_case_clash(&s.read_table("Rossi").unwrap_err(), "Rossi", "rossi"));
    // A map an older build keyed on the spelling is still found.
    assert_eq!(s.read_keyed_table("Cohort_B").unwrap().1.len(), n);
    s.write_table("rossi", &frame(&[1.0]), "csv:new").unwrap();
    let names: Vec<String> = s.tables().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["Cohort_B", "rossi"]);
    assert!(matches!(s.read_keyed_table("rossi"), Err(DataError::NoPatientKeys { .. })));
    s.write_table("Cohort_B", &frame(&[1.0]), "csv:new").unwrap();
    assert!(matches!(s.read_keyed_table("Cohort_B"), Err(DataError::NoPatientKeys { .. })));
    drop(s);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let left: i64 = conn.query_row("SELECT count(*) FROM table_row_patient", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0, "no stale map rows");
}
