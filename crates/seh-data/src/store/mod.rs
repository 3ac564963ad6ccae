//! The site store: one SQLite file per site.
//!
//! It holds the imported clinical records (pseudonymised: no raw patient or
//! resource id is stored, see [`purpose`]), consent records and opt-outs, and
//! the numeric analysis tables (`seh data import --csv`, cohorts). Every
//! import runs in one transaction, so a failed import leaves the file as it
//! was.

mod fhir;
mod schema;
mod tables;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use seh_crypto::pseudonym::{SitePseudonym, SiteSecret};

use crate::error::DataError;

pub use fhir::{ImportCounts, ImportSummary};
pub use tables::{is_valid_table_name, table_key, TableInfo};

/// Purposes (HMAC domain separation) of the pseudonyms the store keeps.
pub mod purpose {
    /// Patient logical ids (`Patient.id`, OMOP `person_id`).
    pub const PATIENT: &str = "seh-data/patient-v1";
    /// Resource logical ids (`Condition/abc`).
    pub const RESOURCE: &str = "seh-data/resource-v1";
    /// Business identifiers (`system|value`).
    pub const IDENTIFIER: &str = "seh-data/identifier-v1";
    /// The secret's fingerprint recorded in the store.
    pub const FINGERPRINT: &str = "seh-data/secret-fingerprint-v1";
}

/// An open site store.
pub struct Store {
    conn: Connection,
    secret: SiteSecret,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.conn.path()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path`, pseudonymising with `secret`.
    ///
    /// # Errors
    /// [`DataError::SecretMismatch`] if the store was created with another
    /// secret; [`DataError::SchemaVersion`] for a store of another version;
    /// [`DataError::Backend`] if the file cannot be opened as SQLite.
    pub fn open(path: &Path, secret: SiteSecret) -> Result<Self, DataError> {
        let conn = Connection::open(path).map_err(crate::error::backend("opening the store"))?;
        Self::init(conn, secret)
    }

    /// An in-memory store (tests, previews).
    pub fn open_in_memory(secret: SiteSecret) -> Result<Self, DataError> {
        Self::init(Connection::open_in_memory()?, secret)
    }

    fn init(conn: Connection, secret: SiteSecret) -> Result<Self, DataError> {
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // WAL lets a node read while an administrator imports.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Keys are random 32-byte pseudonyms, so inserts touch pages all over the
        // B-trees; a 128 MiB page cache (instead of 2 MiB) keeps them in memory.
        conn.pragma_update(None, "cache_size", -131_072)?;
        schema::create(&conn)?;
        let fp = secret.pseudonym(purpose::FINGERPRINT, b"").0.to_vec();
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM seh_meta WHERE key = 'secret_fingerprint'", [], |r| r.get(0))
            .optional()?;
        match stored {
            Some(s) if s != fp => return Err(DataError::SecretMismatch),
            Some(_) => {}
            None => {
                conn.execute("INSERT INTO seh_meta(key, value) VALUES ('secret_fingerprint', ?1)", [&fp])?;
            }
        }
        Ok(Store { conn, secret })
    }

    /// The pseudonym of patient logical id `id` (what the store keys patients by).
    pub fn patient_pseudonym(&self, id: &str) -> SitePseudonym {
        self.secret.pseudonym(purpose::PATIENT, id.as_bytes())
    }

    /// Number of stored rows per clinical table, for summaries (`patient`, `condition`, ...).
    pub fn counts(&self) -> Result<Vec<(&'static str, u64)>, DataError> {
        let mut out = Vec::new();
        for t in schema::CLINICAL_TABLES {
            let n: i64 = self.conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
            out.push((*t, n as u64));
        }
        Ok(out)
    }

    /// SHA-256 over the content of every table (rows sorted), to check that
    /// an operation left the store unchanged. Reads the whole store.
    pub fn digest(&self) -> Result<[u8; 32], DataError> {
        use sha2::{Digest, Sha256};
        let mut names: Vec<String> = {
            let mut st = self.conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        names.sort();
        let mut h = Sha256::new();
        for t in names {
            h.update(t.as_bytes());
            let mut st = self.conn.prepare(&format!("SELECT * FROM \"{}\"", t.replace('"', "\"\"")))?;
            let n = st.column_count();
            let mut rows: Vec<Vec<u8>> = Vec::new();
            let mut q = st.query([])?;
            while let Some(r) = q.next()? {
                let mut bytes = Vec::new();
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    bytes.extend_from_slice(format!("{v:?}").as_bytes());
                    bytes.push(0);
                }
                rows.push(bytes);
            }
            rows.sort();
            for r in rows {
                h.update(&r);
            }
        }
        Ok(h.finalize().into())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}
