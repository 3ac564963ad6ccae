//! SQLite persistence of studies: the researcher-signed spec, the protocol checkpoint (phase,
//! round, decisions, the secure *sum*, the release) and traffic counters. Never a site's
//! contribution in clear (the coordinator never holds one unmasked) and never a key share.
//!
//! Threshold-HE studies also keep their **encrypted store** here (`he_ciphertexts`): each
//! contributor's ciphertext of each encrypted round, as `seh_crypto::he::HeVector` bytes
//! (from `CoordinatorStudy::he_store_encoded`). They can be re-added later over any subset of
//! sites without the sites online (`seh_protocol::he_coord::reaggregate`); releasing such a
//! sum needs `t` of the study's key holders. `he_round_keys` records the digest of the key each
//! round was encrypted under; `he_releases` queues and records later releases
//! ([`crate::he_release`]): state, session round, and the released result or failure reason.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use seh_protocol::coordinator::Checkpoint;
use seh_protocol::spec::SignedStudy;

use crate::error::CoordinatorError;

/// The study store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

/// One release from the encrypted store (`seh study release`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRelease {
    /// Sequence number (the release id is `release-<seq>`).
    pub seq: i64,
    /// The study.
    pub study_id: String,
    /// The stored encrypted round released.
    pub round: u32,
    /// The session round the release ran in (once started).
    pub session_round: Option<u32>,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    /// The result JSON (done) or the reason (failed).
    pub detail: String,
    /// For a key switch: the researcher's BFV public key (`ResearcherPublicKey::to_bytes`);
    /// `None` for a decryption to the coordinator.
    pub target: Option<Vec<u8>>,
    /// The researcher's signed request (`SignedStoreRelease` JSON), forwarded to the sites.
    pub request: Option<String>,
}

/// One stored study.
#[derive(Clone, Debug)]
pub struct StoredStudy {
    /// Study id.
    pub study_id: String,
    /// The signed spec.
    pub study: SignedStudy,
    /// Last checkpoint (`None` until the study started).
    pub checkpoint: Option<Checkpoint>,
    /// Traffic counters, JSON object by site.
    pub traffic: serde_json::Value,
}

fn db(e: rusqlite::Error) -> CoordinatorError {
    CoordinatorError::Store(e.to_string())
}

fn json_err(e: serde_json::Error) -> CoordinatorError {
    CoordinatorError::Store(format!("stored JSON does not parse: line {} column {}", e.line(), e.column()))
}

/// The schema marker row (`meta`): what the file is, and its schema version.
const SCHEMA_NAME: &str = "seh-coordinator";
const SCHEMA_VERSION: &str = "1";

/// A study set aside because its stored row no longer decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The study.
    pub study_id: String,
    /// Why (which column, where it stopped parsing).
    pub reason: String,
}

/// Creates `path` empty with mode 0600 (before SQLite writes to it) unless it exists; returns
/// whether it was created.
fn create_private(path: &Path) -> std::io::Result<bool> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens the database at `path`, creating it (mode 0600) if it does not exist.
    ///
    /// Refuses, naming the file: a zero-length file (an emptied database must not silently
    /// become a fresh federation), a file that is not SQLite or fails SQLite's integrity check,
    /// and a database that is not a coordinator's (no schema marker and no `studies` table) or
    /// has an unknown schema version. An existing file is narrowed to 0600: it holds the studies'
    /// checkpoints (secure sums before disclosure control) and releases.
    pub fn open(path: &Path) -> Result<Self, CoordinatorError> {
        let bad = |reason: String| CoordinatorError::Database { path: path.to_owned(), reason };
        let io = |e: std::io::Error| bad(e.to_string());
        let created = create_private(path).map_err(io)?;
        if !created {
            let meta = std::fs::metadata(path).map_err(io)?;
            if meta.len() == 0 {
                return Err(bad("the file is empty (0 bytes); it is not a coordinator database. Restore it from \
                     a backup, or remove it to start a new, empty study store"
                    .into()));
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
                }
            }
        }
        let conn = Connection::open(path).map_err(|e| bad(e.to_string()))?;
        if !created {
            Self::check_existing(&conn).map_err(bad)?;
        }
        Self::init_schema(conn).map_err(|e| match e {
            CoordinatorError::Store(m) => bad(m),
            other => other,
        })
    }

    /// An existing file: SQLite, intact, and a coordinator database of a known schema version.
    fn check_existing(conn: &Connection) -> Result<(), String> {
        let check: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| format!("not a readable SQLite database: {e}"))?;
        if check.first().map(String::as_str) != Some("ok") {
            return Err(format!("failed SQLite's integrity check: {}", check.join("; ")));
        }
        let table = |name: &str| -> Result<bool, String> {
            conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n > 0)
            .map_err(|e| e.to_string())
        };
        if table("meta")? {
            let get = |key: &str| -> Result<Option<String>, String> {
                conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                    .optional()
                    .map_err(|e| e.to_string())
            };
            match (get("schema")?.as_deref(), get("version")?.as_deref()) {
                (Some(SCHEMA_NAME), Some(SCHEMA_VERSION)) => Ok(()),
                (Some(SCHEMA_NAME), v) => Err(format!(
                    "coordinator database schema version {} (this coordinator reads version {SCHEMA_VERSION})",
                    v.unwrap_or("(none)")
                )),
                (other, _) => Err(format!("not a coordinator database (schema marker {other:?})")),
            }
        } else if table("studies")? {
            // A store made before the schema marker: it gains the marker below.
            Ok(())
        } else {
            Err("not a coordinator database (no schema marker and no `studies` table)".into())
        }
    }

    fn init_schema(conn: Connection) -> Result<Self, CoordinatorError> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS studies (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 study_id TEXT NOT NULL UNIQUE,
                 signed_study TEXT NOT NULL,
                 checkpoint TEXT,
                 traffic TEXT NOT NULL DEFAULT '{}'
             );
             CREATE TABLE IF NOT EXISTS he_ciphertexts (
                 study_id TEXT NOT NULL,
                 round INTEGER NOT NULL,
                 site INTEGER NOT NULL,
                 ciphertext BLOB NOT NULL,
                 PRIMARY KEY (study_id, round, site)
             );
             CREATE TABLE IF NOT EXISTS he_round_keys (
                 study_id TEXT NOT NULL,
                 round INTEGER NOT NULL,
                 key_digest BLOB NOT NULL,
                 PRIMARY KEY (study_id, round)
             );
             CREATE TABLE IF NOT EXISTS he_releases (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 study_id TEXT NOT NULL,
                 round INTEGER NOT NULL,
                 session_round INTEGER,
                 state TEXT NOT NULL,
                 detail TEXT NOT NULL DEFAULT '',
                 target BLOB
             );",
        )
        .map_err(db)?;
        // The researcher's signed request (added later: a store made before it gains the column;
        // its queued releases then fail, unsigned).
        let has_request: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_table_info('he_releases') WHERE name = 'request'", [], |r| r.get(0))
            .map_err(db)?;
        if has_request == 0 {
            conn.execute_batch("ALTER TABLE he_releases ADD COLUMN request TEXT").map_err(db)?;
        }
        // Why a study was set aside (added later, like `request`).
        let has_quarantine: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_table_info('studies') WHERE name = 'quarantine'", [], |r| r.get(0))
            .map_err(db)?;
        if has_quarantine == 0 {
            conn.execute_batch("ALTER TABLE studies ADD COLUMN quarantine TEXT").map_err(db)?;
        }
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?1), ('version', ?2)",
            params![SCHEMA_NAME, SCHEMA_VERSION],
        )
        .map_err(db)?;
        Ok(Store { conn })
    }

    /// Sets aside every study whose stored row no longer decodes (spec, checkpoint or traffic):
    /// it is marked quarantined with the reason and never resumed, so one bad row cannot stop the
    /// coordinator; its status reads `failed` with the reason. Returns the studies newly set
    /// aside (the caller logs and audits them).
    pub fn quarantine_corrupt(&self) -> Result<Vec<Quarantined>, CoordinatorError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT study_id, signed_study, checkpoint, traffic FROM studies WHERE quarantine IS NULL ORDER BY seq",
            )
            .map_err(db)?;
        let rows: Vec<_> = stmt.query_map([], Self::row).map_err(db)?.collect::<Result<_, _>>().map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let study_id = row.0.clone();
            if let Err(e) = Self::decode(row) {
                let reason = e.to_string();
                self.conn
                    .execute("UPDATE studies SET quarantine = ?2 WHERE study_id = ?1", params![study_id, reason])
                    .map_err(db)?;
                out.push(Quarantined { study_id, reason });
            }
        }
        Ok(out)
    }

    /// Records a new study. Errors: [`CoordinatorError::Duplicate`] if the id exists.
    pub fn insert(&self, study_id: &str, study: &SignedStudy) -> Result<(), CoordinatorError> {
        let text = serde_json::to_string(study).map_err(json_err)?;
        let n = self
            .conn
            .execute("INSERT OR IGNORE INTO studies (study_id, signed_study) VALUES (?1, ?2)", params![study_id, text])
            .map_err(db)?;
        if n == 0 {
            return Err(CoordinatorError::Duplicate(study_id.to_owned()));
        }
        Ok(())
    }

    /// Saves a checkpoint and the traffic counters.
    pub fn save(&self, study_id: &str, cp: &Checkpoint, traffic: &serde_json::Value) -> Result<(), CoordinatorError> {
        let cp = serde_json::to_string(cp).map_err(json_err)?;
        self.conn
            .execute(
                "UPDATE studies SET checkpoint = ?2, traffic = ?3 WHERE study_id = ?1",
                params![study_id, cp, traffic.to_string()],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Keeps the encrypted round `round` of `study_id`: one ciphertext per contributing site
    /// (party id, `HeVector` bytes), replacing an earlier copy of the same round. One transaction.
    pub fn put_ciphertexts(
        &mut self,
        study_id: &str,
        round: u32,
        items: &[(u32, Vec<u8>)],
    ) -> Result<(), CoordinatorError> {
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute("DELETE FROM he_ciphertexts WHERE study_id = ?1 AND round = ?2", params![study_id, round])
            .map_err(db)?;
        for (site, bytes) in items {
            tx.execute(
                "INSERT INTO he_ciphertexts (study_id, round, site, ciphertext) VALUES (?1, ?2, ?3, ?4)",
                params![study_id, round, site, bytes],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// The stored ciphertexts of `study_id`'s encrypted round `round`, by ascending site.
    pub fn ciphertexts(&self, study_id: &str, round: u32) -> Result<Vec<(u32, Vec<u8>)>, CoordinatorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT site, ciphertext FROM he_ciphertexts WHERE study_id = ?1 AND round = ?2 ORDER BY site")
            .map_err(db)?;
        let rows = stmt.query_map(params![study_id, round], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// The encrypted rounds stored for `study_id`, ascending.
    pub fn ciphertext_rounds(&self, study_id: &str) -> Result<Vec<u32>, CoordinatorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT round FROM he_ciphertexts WHERE study_id = ?1 ORDER BY round")
            .map_err(db)?;
        let rows = stmt.query_map(params![study_id], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Records the digest of the collective key `study_id`'s encrypted round `round` was
    /// encrypted under (a later release is offered for that key only).
    pub fn put_round_key(&self, study_id: &str, round: u32, digest: &[u8; 32]) -> Result<(), CoordinatorError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO he_round_keys (study_id, round, key_digest) VALUES (?1, ?2, ?3)",
                params![study_id, round, digest.as_slice()],
            )
            .map_err(db)?;
        Ok(())
    }

    /// The key digest recorded for an encrypted round (`None` if none was recorded).
    pub fn round_key(&self, study_id: &str, round: u32) -> Result<Option<[u8; 32]>, CoordinatorError> {
        let v: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT key_digest FROM he_round_keys WHERE study_id = ?1 AND round = ?2",
                params![study_id, round],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        v.map(|b| b.try_into().map_err(|_| CoordinatorError::Store("stored key digest is not 32 bytes".into())))
            .transpose()
    }

    /// Queues a release of `study_id`'s stored round `round` (`target`: the researcher public key
    /// of a key switch, else a decryption; `request`: the researcher's signed request, JSON);
    /// returns its sequence number.
    pub fn queue_release(
        &self,
        study_id: &str,
        round: u32,
        target: Option<&[u8]>,
        request: &str,
    ) -> Result<i64, CoordinatorError> {
        self.conn
            .execute(
                "INSERT INTO he_releases (study_id, round, state, target, request) VALUES (?1, ?2, 'queued', ?3, ?4)",
                params![study_id, round, target, request],
            )
            .map_err(db)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// One release: `(study_id, round, session_round, state, detail)`.
    pub fn release(&self, seq: i64) -> Result<Option<StoredRelease>, CoordinatorError> {
        self.conn
            .query_row(
                "SELECT study_id, round, session_round, state, detail, target, request FROM he_releases WHERE seq = ?1",
                params![seq],
                |r| {
                    Ok(StoredRelease {
                        seq,
                        study_id: r.get(0)?,
                        round: r.get(1)?,
                        session_round: r.get(2)?,
                        state: r.get(3)?,
                        detail: r.get(4)?,
                        target: r.get(5)?,
                        request: r.get(6)?,
                    })
                },
            )
            .optional()
            .map_err(db)
    }

    /// Sets a release's state (`queued`, `running`, `done`, `failed`), its session round and
    /// detail (the result JSON when done, the reason when failed).
    pub fn set_release(
        &self,
        seq: i64,
        state: &str,
        session_round: Option<u32>,
        detail: &str,
    ) -> Result<(), CoordinatorError> {
        self.conn
            .execute(
                "UPDATE he_releases SET state = ?2, session_round = COALESCE(?3, session_round), detail = ?4 \
                 WHERE seq = ?1",
                params![seq, state, session_round, detail],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Releases not yet done or failed, oldest first.
    pub fn pending_releases(&self) -> Result<Vec<i64>, CoordinatorError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq FROM he_releases WHERE state IN ('queued', 'running') ORDER BY seq")
            .map_err(db)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// The largest session round any release of `study_id` used (`None` before the first).
    pub fn last_release_round(&self, study_id: &str) -> Result<Option<u32>, CoordinatorError> {
        self.conn
            .query_row("SELECT MAX(session_round) FROM he_releases WHERE study_id = ?1", params![study_id], |r| {
                r.get(0)
            })
            .map_err(db)
    }

    fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, Option<String>, String)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    }

    fn decode(row: (String, String, Option<String>, String)) -> Result<StoredStudy, CoordinatorError> {
        let (study_id, s, cp, traffic) = row;
        let col = |what: &str, e: serde_json::Error| {
            CoordinatorError::Store(format!(
                "study {study_id}: stored {what} does not parse (line {} column {})",
                e.line(),
                e.column()
            ))
        };
        let study = serde_json::from_str(&s).map_err(|e| col("spec", e))?;
        let checkpoint = cp.map(|c| serde_json::from_str(&c)).transpose().map_err(|e| col("checkpoint", e))?;
        let traffic = serde_json::from_str(&traffic).map_err(|e| col("traffic counters", e))?;
        Ok(StoredStudy { study_id, study, checkpoint, traffic })
    }

    /// One study. A quarantined study whose spec still decodes reads as failed, with the
    /// quarantine reason; one whose spec does not is an error naming the study.
    pub fn get(&self, study_id: &str) -> Result<Option<StoredStudy>, CoordinatorError> {
        let row = self
            .conn
            .query_row(
                "SELECT study_id, signed_study, checkpoint, traffic, quarantine FROM studies WHERE study_id = ?1",
                params![study_id],
                |r| Ok((Self::row(r)?, r.get::<_, Option<String>>(4)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((row, quarantine)) = row else { return Ok(None) };
        let Some(reason) = quarantine else { return Self::decode(row).map(Some) };
        let study = serde_json::from_str(&row.1)
            .map_err(|_| CoordinatorError::Store(format!("study {study_id} is quarantined: {reason}")))?;
        let checkpoint = Checkpoint {
            phase: "failed".into(),
            failure: Some(format!("quarantined by the coordinator: {reason}")),
            ..Default::default()
        };
        Ok(Some(StoredStudy { study_id: row.0, study, checkpoint: Some(checkpoint), traffic: serde_json::json!({}) }))
    }

    /// Studies not yet finished and not quarantined, oldest first (call
    /// [`Store::quarantine_corrupt`] first: a row that does not decode is an error here).
    pub fn unfinished(&self) -> Result<Vec<StoredStudy>, CoordinatorError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT study_id, signed_study, checkpoint, traffic FROM studies WHERE quarantine IS NULL ORDER BY seq",
            )
            .map_err(db)?;
        let rows = stmt.query_map([], Self::row).map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            let s = Self::decode(r.map_err(db)?)?;
            let finished = s.checkpoint.as_ref().is_some_and(|c| c.phase == "done" || c.phase == "failed");
            if !finished {
                out.push(s);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_rounds_are_kept_per_study_round_and_site() {
        let dir = std::env::temp_dir().join(format!("seh-store-he-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.sqlite");
        let mut s = Store::open(&path).unwrap();
        s.put_ciphertexts("a", 3, &[(2, vec![2; 5]), (1, vec![1; 4])]).unwrap();
        s.put_ciphertexts("a", 5, &[(1, vec![9])]).unwrap();
        s.put_ciphertexts("b", 3, &[(1, vec![7])]).unwrap();
        // Replacing a round drops its old entries.
        s.put_ciphertexts("a", 5, &[(3, vec![8])]).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.ciphertexts("a", 3).unwrap(), vec![(1, vec![1; 4]), (2, vec![2; 5])]);
        assert_eq!(s.ciphertexts("a", 5).unwrap(), vec![(3, vec![8])]);
        assert_eq!(s.ciphertext_rounds("a").unwrap(), vec![3, 5]);
        assert!(s.ciphertexts("c", 3).unwrap().is_empty());
        s.put_round_key("a", 3, &[7; 32]).unwrap();
        assert_eq!(s.round_key("a", 3).unwrap(), Some([7; 32]));
        assert_eq!(s.round_key("a", 5).unwrap(), None);
        // Releases: queued, started in a session round, finished; pending ones listed.
        let r1 = s.queue_release("a", 3, None, "{}").unwrap();
        let r2 = s.queue_release("a", 3, Some(&[1, 2, 3]), "{\"x\":1}").unwrap();
        assert_eq!(s.release(r2).unwrap().unwrap().target, Some(vec![1, 2, 3]));
        assert_eq!(s.release(r2).unwrap().unwrap().request.as_deref(), Some("{\"x\":1}"));
        assert_eq!(s.pending_releases().unwrap(), vec![r1, r2]);
        assert_eq!(s.last_release_round("a").unwrap(), None);
        s.set_release(r1, "running", Some(12), "").unwrap();
        s.set_release(r1, "done", None, "{}").unwrap();
        let got = s.release(r1).unwrap().unwrap();
        assert_eq!((got.state.as_str(), got.session_round, got.detail.as_str()), ("done", Some(12), "{}"));
        assert_eq!(s.pending_releases().unwrap(), vec![r2]);
        assert_eq!(s.last_release_round("a").unwrap(), Some(12));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn fresh_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("seh-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn refusal(path: &Path) -> String {
        match Store::open(path) {
            Err(e @ CoordinatorError::Database { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&path.display().to_string()), "{text}");
                text
            }
            other => panic!("{} was not refused: {other:?}", path.display()),
        }
    }

    fn study(id: &str) -> SignedStudy {
        use seh_protocol::spec::{Analysis, DescribeSpec, StudySpec};
        let spec = StudySpec {
            study_id: id.into(),
            researcher: "alice".into(),
            analysis: Analysis::Describe(DescribeSpec { columns: vec!["x".into()], histograms: vec![] }),
            sites: vec!["a".into(), "b".into()],
            threshold: 2,
            aggregation: Default::default(),
            purpose: "HRESCH".into(),
            dp_epsilon: None,
            dp_delta: None,
        };
        SignedStudy::sign(&spec, &ed25519_dalek::SigningKey::from_bytes(&[7; 32])).unwrap()
    }

    #[test]
    fn an_empty_file_is_refused_not_started_afresh() {
        let dir = fresh_dir("empty");
        let path = dir.join("c.sqlite");
        std::fs::write(&path, b"").unwrap();
        let e = refusal(&path);
        assert!(e.contains("empty (0 bytes)"), "{e}");
        // Still empty: nothing was created over it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_that_is_not_an_intact_coordinator_database_is_refused() {
        let dir = fresh_dir("corrupt");
        // Not SQLite at all.
        let junk = dir.join("junk.sqlite");
        std::fs::write(&junk, "this is not a database\n".repeat(200)).unwrap();
        assert!(refusal(&junk).contains("not a readable SQLite database"));
        // SQLite, but another program's.
        let other = dir.join("other.sqlite");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE patients (id INTEGER);").unwrap();
        assert!(refusal(&other).contains("not a coordinator database"));
        // A coordinator database of an unknown schema version.
        let future = dir.join("future.sqlite");
        drop(Store::open(&future).unwrap());
        Connection::open(&future)
            .unwrap()
            .execute_batch("UPDATE meta SET value = '99' WHERE key = 'version';")
            .unwrap();
        assert!(refusal(&future).contains("schema version 99"));
        // A damaged page: SQLite's integrity check (or its first read) fails.
        let damaged = dir.join("damaged.sqlite");
        let s = Store::open(&damaged).unwrap();
        for i in 0..200 {
            s.conn
                .execute(
                    "INSERT INTO studies (study_id, signed_study) VALUES (?1, ?2)",
                    params![format!("s{i}"), "x".repeat(300)],
                )
                .unwrap();
        }
        s.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        drop(s);
        let mut bytes = std::fs::read(&damaged).unwrap();
        assert!(bytes.len() > 3 * 4096);
        for b in &mut bytes[4096 + 8..3 * 4096] {
            *b = 0x5a;
        }
        std::fs::write(&damaged, &bytes).unwrap();
        let _ = refusal(&damaged);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_new_store_is_owner_only_and_marked_and_an_old_one_is_narrowed() {
        let dir = fresh_dir("mode");
        let path = dir.join("c.sqlite");
        let s = Store::open(&path).unwrap();
        let schema: String = s.conn.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0)).unwrap();
        assert_eq!(schema, SCHEMA_NAME);
        drop(s);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            drop(Store::open(&path).unwrap());
            assert_eq!(mode(&path), 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_checkpoint_row_quarantines_its_study_only() {
        let dir = fresh_dir("quarantine");
        let path = dir.join("c.sqlite");
        let s = Store::open(&path).unwrap();
        let (good, bad) = ("00000000000000000000000000000001", "00000000000000000000000000000002");
        s.insert(good, &study(good)).unwrap();
        s.insert(bad, &study(bad)).unwrap();
        s.conn.execute("UPDATE studies SET checkpoint = '{\"round\": 3, \"pha' WHERE study_id = ?1", [bad]).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        let q = s.quarantine_corrupt().unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].study_id, bad);
        assert!(q[0].reason.contains(&format!("study {bad}: stored checkpoint does not parse")), "{:?}", q[0]);
        // The other study still runs; the bad one reads as failed, with the reason.
        let ids: Vec<String> = s.unfinished().unwrap().into_iter().map(|s| s.study_id).collect();
        assert_eq!(ids, vec![good.to_owned()]);
        let cp = s.get(bad).unwrap().unwrap().checkpoint.unwrap();
        assert_eq!(cp.phase, "failed");
        assert!(cp.failure.unwrap().contains("quarantined"));
        // Set aside once: not reported again.
        assert!(s.quarantine_corrupt().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
