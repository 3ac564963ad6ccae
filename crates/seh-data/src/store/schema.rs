//! The store's SQL schema (version 1). Dates are days since 1970-01-01;
//! patient and resource keys are 32-byte site pseudonyms.

use rusqlite::{Connection, OptionalExtension};

use crate::error::DataError;

/// Schema version this build reads and writes.
pub const VERSION: u32 = 1;

/// Clinical tables, for counts.
pub const CLINICAL_TABLES: &[&str] =
    &["patient", "condition", "observation", "encounter", "procedure", "medication_statement", "consent", "opt_out"];

const DDL: &str = "
CREATE TABLE IF NOT EXISTS seh_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
-- One row per imported resource: which version is current.
CREATE TABLE IF NOT EXISTS fhir_resource (
    rtype TEXT NOT NULL, rid BLOB NOT NULL, version_key TEXT NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (rtype, rid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS patient (
    pid BLOB PRIMARY KEY, gender TEXT, birth_day INTEGER, birth_precision TEXT,
    deceased INTEGER, death_day INTEGER);
CREATE TABLE IF NOT EXISTS patient_identifier (
    pid BLOB NOT NULL, ident BLOB NOT NULL, PRIMARY KEY (pid, ident)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coding (
    rtype TEXT NOT NULL, rid BLOB NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS coding_by_rid ON coding (rid);
CREATE INDEX IF NOT EXISTS coding_by_code ON coding (rtype, system, code);
CREATE TABLE IF NOT EXISTS condition (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, onset_day INTEGER, abatement_day INTEGER,
    recorded_day INTEGER, clinical_status TEXT, verification_status TEXT);
CREATE TABLE IF NOT EXISTS observation (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, status TEXT NOT NULL, effective_day INTEGER,
    value REAL, comparator TEXT, unit TEXT);
CREATE TABLE IF NOT EXISTS encounter (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, status TEXT NOT NULL, class_system TEXT,
    class_code TEXT, start_day INTEGER, end_day INTEGER);
CREATE TABLE IF NOT EXISTS procedure (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, status TEXT NOT NULL, performed_day INTEGER);
CREATE TABLE IF NOT EXISTS medication_statement (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, status TEXT NOT NULL, start_day INTEGER, end_day INTEGER);
CREATE TABLE IF NOT EXISTS consent (
    rid BLOB PRIMARY KEY, pid BLOB NOT NULL, status TEXT NOT NULL, scope TEXT NOT NULL,
    category TEXT NOT NULL, policy_rule TEXT NOT NULL, date_day INTEGER, provision TEXT);
CREATE TABLE IF NOT EXISTS opt_out (
    pid BLOB NOT NULL, purpose TEXT NOT NULL, since_day INTEGER, PRIMARY KEY (pid, purpose)) WITHOUT ROWID;
-- The patient (pseudonym) of each row of a cohort table, for the consent filter.
CREATE TABLE IF NOT EXISTS table_row_patient (
    name TEXT NOT NULL, row INTEGER NOT NULL, pid BLOB NOT NULL, PRIMARY KEY (name, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS analysis_table (
    name TEXT PRIMARY KEY, columns TEXT NOT NULL, nrows INTEGER NOT NULL, source TEXT NOT NULL);
";

/// Creates the schema if absent and checks the version of an existing one.
pub fn create(conn: &Connection) -> Result<(), DataError> {
    conn.execute_batch(DDL)?;
    let v: Option<String> = conn
        .query_row("SELECT CAST(value AS TEXT) FROM seh_meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .optional()?;
    match v {
        None => {
            conn.execute("INSERT INTO seh_meta(key, value) VALUES ('schema_version', ?1)", [VERSION.to_string()])?;
        }
        Some(v) if v == VERSION.to_string() => {}
        Some(v) => return Err(DataError::SchemaVersion { found: v, supported: VERSION }),
    }
    Ok(())
}
