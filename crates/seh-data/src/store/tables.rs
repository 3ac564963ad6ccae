//! Numeric analysis tables in the store: CSV imports and materialised cohorts.
//!
//! A table `NAME` lives in the SQL table `tab_KEY` with one `REAL` column per
//! data-frame column (NULL = missing) and a hidden row number that keeps the
//! row order. `analysis_table` lists the tables with their column order, and
//! `table_row_patient` holds the patient pseudonym of each row of a cohort.
//!
//! # Table names: one rule
//!
//! A name is `[A-Za-z_][A-Za-z0-9_]{0,62}`, and its *key* ([`table_key`]) is
//! the name in ASCII lower case. Two names with the same key are the same
//! table: SQLite compares identifiers without case, so `tab_Rossi` and
//! `tab_rossi` are one SQL table, and the store keys everything else (the SQL
//! table, the row→patient map) on the key too. The catalogue keeps the
//! spelling the table was first written with, and a name that differs from
//! it only by letter case is refused, for writes and reads alike, with an
//! error naming both ([`DataError::TableNameCase`]): replacing `rossi` needs
//! `--table rossi`, never `Rossi`. (Lower-casing silently would let a typo
//! replace a table; refusing names both spellings to the administrator.)
//! Writing a table replaces its rows, its catalogue entry and its patient map
//! in one transaction, so no map outlives the rows it describes.

use std::path::Path;

use rusqlite::{params, OptionalExtension};
use seh_crypto::pseudonym::SitePseudonym;
use seh_stats::DataFrame;

use super::Store;
use crate::cohort::Cohort;
use crate::error::DataError;

/// A table's catalogue entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Column names in order.
    pub columns: Vec<String>,
    /// Row count.
    pub nrows: u64,
    /// Where it came from (`csv:FILE`, `cohort:DEF`).
    pub source: String,
}

/// Whether `name` is a valid table name: `[A-Za-z_][A-Za-z0-9_]{0,62}`.
pub fn is_valid_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The key of table name `name` (see the module docs): the name in ASCII lower case, after
/// checking it ([`DataError::BadTableName`]). Every SQL statement about a table goes through
/// this key.
pub fn table_key(name: &str) -> Result<String, DataError> {
    if !is_valid_table_name(name) {
        return Err(DataError::BadTableName { name: name.to_string() });
    }
    Ok(name.to_ascii_lowercase())
}

/// The catalogue spellings of the tables with key `key` (more than one only in a store written
/// by an older build, before names were compared without case).
fn spellings(conn: &rusqlite::Connection, key: &str) -> Result<Vec<String>, DataError> {
    let mut st = conn.prepare("SELECT name FROM analysis_table WHERE lower(name) = ?1 ORDER BY name")?;
    let rows = st.query_map(params![key], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Refuses `name` when a table of another spelling has its key.
fn check_spelling(name: &str, spellings: &[String]) -> Result<(), DataError> {
    match spellings.iter().find(|s| s.as_str() != name) {
        Some(other) => Err(DataError::TableNameCase { name: name.to_string(), existing: other.clone() }),
        None => Ok(()),
    }
}

fn quote(col: &str) -> String {
    format!("\"{}\"", col.replace('"', "\"\""))
}

impl Store {
    /// Imports a numeric CSV file (strict reader of `seh-stats`) as table
    /// `name`, replacing any table of that name, in one transaction.
    pub fn import_csv(&mut self, path: &Path, name: &str) -> Result<TableInfo, DataError> {
        let bytes =
            std::fs::read(path).map_err(|e| DataError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        let frame = DataFrame::from_csv_bytes(&bytes, &path.display().to_string())?;
        self.write_table(name, &frame, &format!("csv:{}", path.display()))
    }

    /// Writes `frame` as table `name` (replacing it, and dropping any patient keys it had) in
    /// one transaction. `source` is recorded in the catalogue.
    pub fn write_table(&mut self, name: &str, frame: &DataFrame, source: &str) -> Result<TableInfo, DataError> {
        self.write_table_keyed(name, frame, source, None)
    }

    /// Writes a built cohort as table `name` (replacing it) together with the patient
    /// pseudonym of every row (from its `id` column and [`Cohort::pseudonyms`]), in one
    /// transaction, so a node can apply consent to the rows ([`Store::read_keyed_table`]).
    ///
    /// # Errors
    /// [`DataError::BadPatientKeys`] if an `id` is not a 1-based index into the pseudonyms;
    /// the errors of [`Store::write_table`].
    pub fn write_cohort(&mut self, name: &str, cohort: &Cohort, source: &str) -> Result<TableInfo, DataError> {
        let bad = |problem: &str| DataError::BadPatientKeys { name: name.to_string(), problem: problem.to_string() };
        let ids = cohort.frame.column("id").map_err(|_| bad("the cohort has no `id` column"))?;
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            let k = (id.is_finite() && *id >= 1.0 && id.fract() == 0.0)
                .then(|| cohort.pseudonyms.get(*id as usize - 1))
                .flatten()
                .ok_or_else(|| bad("an `id` is not a patient number of the cohort"))?;
            keys.push(*k);
        }
        self.write_table_keyed(name, &cohort.frame, source, Some(&keys))
    }

    fn write_table_keyed(
        &mut self,
        name: &str,
        frame: &DataFrame,
        source: &str,
        keys: Option<&[SitePseudonym]>,
    ) -> Result<TableInfo, DataError> {
        let key = table_key(name)?;
        for (i, c) in frame.names().iter().enumerate() {
            if c.len() > 128 || c.chars().any(char::is_control) {
                return Err(DataError::BadColumnName { position: i + 1 });
            }
        }
        let tx = self.conn.transaction()?;
        // Replacing a table needs its exact spelling. A store written by an older build may list
        // two spellings of one key (sharing one SQL table); writing one of them replaces both.
        let existing = spellings(&tx, &key)?;
        if !existing.iter().any(|s| s == name) {
            check_spelling(name, &existing)?;
        }
        let sql_name = format!("tab_{key}");
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {sql_name}"))?;
        let cols: Vec<String> = frame.names().iter().map(|c| format!("{} REAL", quote(c))).collect();
        let mut ddl = format!("CREATE TABLE {sql_name} (_row INTEGER PRIMARY KEY");
        for c in &cols {
            ddl.push_str(", ");
            ddl.push_str(c);
        }
        ddl.push(')');
        tx.execute_batch(&ddl)?;
        let names: Vec<String> = frame.names().iter().map(|c| quote(c)).collect();
        let placeholders: Vec<String> = (1..=names.len() + 1).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {sql_name} (_row{}{}) VALUES ({})",
            if names.is_empty() { "" } else { ", " },
            names.join(", "),
            placeholders.join(", ")
        );
        {
            let columns: Vec<&[f64]> =
                frame.names().iter().map(|n| frame.column(n)).collect::<Result<_, _>>().map_err(DataError::Csv)?;
            let mut st = tx.prepare(&insert)?;
            let mut values: Vec<Option<f64>> = vec![None; columns.len()];
            for row in 0..frame.nrows() {
                for (v, col) in values.iter_mut().zip(&columns) {
                    let x = col.get(row).copied().unwrap_or(f64::NAN);
                    *v = if x.is_nan() { None } else { Some(x) };
                }
                let mut p: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(values.len() + 1);
                let row_id = row as i64;
                p.push(&row_id);
                for v in &values {
                    p.push(v);
                }
                st.execute(p.as_slice())?;
            }
        }
        // The patient map is keyed on the table key (an older build keyed it on the spelling):
        // drop every map of this table before writing the new one.
        for old in existing.iter().chain([&key]) {
            tx.execute("DELETE FROM table_row_patient WHERE name = ?1", params![old])?;
            tx.execute("DELETE FROM analysis_table WHERE name = ?1", params![old])?;
        }
        if let Some(keys) = keys {
            let mut st = tx.prepare("INSERT INTO table_row_patient(name, row, pid) VALUES (?1, ?2, ?3)")?;
            for (row, k) in keys.iter().enumerate() {
                st.execute(params![key, row as i64, &k.0[..]])?;
            }
        }
        let columns_json = serde_json::to_string(frame.names()).unwrap_or_else(|_| "[]".to_string());
        tx.execute(
            "INSERT OR REPLACE INTO analysis_table(name, columns, nrows, source) VALUES (?1, ?2, ?3, ?4)",
            params![name, columns_json, frame.nrows() as i64, source],
        )?;
        tx.commit()?;
        Ok(TableInfo {
            name: name.to_string(),
            columns: frame.names().to_vec(),
            nrows: frame.nrows() as u64,
            source: source.to_string(),
        })
    }

    /// The catalogue of analysis tables, by name.
    pub fn tables(&self) -> Result<Vec<TableInfo>, DataError> {
        let mut st = self.conn.prepare("SELECT name, columns, nrows, source FROM analysis_table ORDER BY name")?;
        let rows = st.query_map([], |r| {
            let cols: String = r.get(1)?;
            Ok(TableInfo {
                name: r.get(0)?,
                columns: serde_json::from_str(&cols).unwrap_or_default(),
                nrows: r.get::<_, i64>(2)? as u64,
                source: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The catalogue entry of table `name` and its key. Errors: [`DataError::BadTableName`],
    /// [`DataError::TableNameCase`] when the store holds the table under another spelling (or,
    /// written by an older build, under two), [`DataError::NoSuchTable`].
    fn lookup(&self, name: &str) -> Result<(TableInfo, String), DataError> {
        let key = table_key(name)?;
        let tables = self.tables()?;
        let same_key: Vec<String> =
            tables.iter().filter(|t| t.name.eq_ignore_ascii_case(&key)).map(|t| t.name.clone()).collect();
        check_spelling(name, &same_key)?;
        let Some(info) = tables.iter().find(|t| t.name == name) else {
            let available = tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(DataError::NoSuchTable { name: name.to_string(), available });
        };
        Ok((info.clone(), key))
    }

    /// Reads table `name` as a data frame (NULL → NaN), rows in stored order.
    pub fn read_table(&self, name: &str) -> Result<DataFrame, DataError> {
        let (info, key) = self.lookup(name)?;
        let info = &info;
        let cols: Vec<String> = info.columns.iter().map(|c| quote(c)).collect();
        let sql = if cols.is_empty() {
            format!("SELECT _row FROM tab_{key} ORDER BY _row")
        } else {
            format!("SELECT {} FROM tab_{key} ORDER BY _row", cols.join(", "))
        };
        let mut data: Vec<Vec<f64>> = vec![Vec::with_capacity(info.nrows as usize); info.columns.len()];
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            for (i, col) in data.iter_mut().enumerate() {
                let v: Option<f64> = r.get(i)?;
                col.push(v.unwrap_or(f64::NAN));
            }
            n += 1;
        }
        let mut frame = DataFrame::with_rows(n);
        for (name, col) in info.columns.iter().zip(data) {
            frame.push_column(name.clone(), col)?;
        }
        Ok(frame)
    }

    /// Reads table `name` with the patient pseudonym of each row (in row order), for tables
    /// stored by [`Store::write_cohort`].
    ///
    /// # Errors
    /// [`DataError::NoSuchTable`]; [`DataError::NoPatientKeys`] for a table without keys (a CSV
    /// import); [`DataError::BadPatientKeys`] if the keys do not cover the rows exactly.
    pub fn read_keyed_table(&self, name: &str) -> Result<(DataFrame, Vec<SitePseudonym>), DataError> {
        let frame = self.read_table(name)?;
        let key = table_key(name)?;
        // Keyed on the table key; a map an older build wrote under a mixed-case spelling is
        // still found under that spelling (the spelling is the catalogue's, checked above).
        let map_name: String = self
            .conn
            .query_row(
                "SELECT name FROM table_row_patient WHERE name = ?1 OR name = ?2 LIMIT 1",
                params![key, name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(key);
        let mut st = self.conn.prepare("SELECT row, pid FROM table_row_patient WHERE name = ?1 ORDER BY row")?;
        let rows = st.query_map(params![map_name], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let bad = |problem: String| DataError::BadPatientKeys { name: name.to_string(), problem };
        let mut keys = Vec::with_capacity(frame.nrows());
        for (expected, row) in rows.enumerate() {
            let (row, pid) = row?;
            if row != expected as i64 {
                return Err(bad(format!("patient key rows are not 0..n (row {row} at position {expected})")));
            }
            let pid: [u8; 32] = pid.try_into().map_err(|_| bad(format!("the key of row {row} is not 32 bytes")))?;
            keys.push(SitePseudonym(pid));
        }
        if keys.is_empty() && frame.nrows() > 0 {
            return Err(DataError::NoPatientKeys { name: name.to_string() });
        }
        if keys.len() != frame.nrows() {
            return Err(bad(format!("{} patient keys for {} rows", keys.len(), frame.nrows())));
        }
        Ok((frame, keys))
    }
}
