//! FHIR R4 bulk-export (NDJSON) import into the store.
//!
//! * Files: every `*.ndjson` in the directory whose name contains a supported
//!   resource type (`Patient.ndjson`, `Condition_2.ndjson`, `1.Observation.ndjson`);
//!   other types (`Practitioner.ndjson`) are skipped and listed in the summary.
//!   Each line must hold a resource of the file's type.
//! * Idempotence: a resource is keyed by type and (pseudonymised) id. Its
//!   *version key* is `(numeric meta.versionId, meta.lastUpdated, SHA-256 of
//!   the line)`; the highest key wins, so importing the same files twice, or
//!   in another order, gives the same store.
//! * Atomicity: the whole directory is imported in one transaction.
//! * Pseudonyms: patients are keyed by `HMAC(site secret, Patient.id)`,
//!   resources by `HMAC(site secret, "Type/id")`; business identifiers are
//!   kept only as HMACs of `system|value`. No raw id is written.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Transaction};
use seh_fhir::{parse_resource, Code, Deceased, Resource, ResourceType};
use sha2::{Digest, Sha256};

use super::{purpose, Store};
use crate::error::DataError;

/// What happened to the resources of one type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    /// New resources.
    pub inserted: u64,
    /// Resources replaced by a newer version.
    pub replaced: u64,
    /// Resources already present with identical content.
    pub unchanged: u64,
    /// Older versions of resources already present (ignored).
    pub stale: u64,
}

/// Result of [`Store::import_fhir_dir`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Files skipped because their resource type is not imported.
    pub skipped_files: Vec<PathBuf>,
    /// Lines holding a resource.
    pub resources: u64,
    /// Counts per type.
    pub by_type: BTreeMap<ResourceType, ImportCounts>,
}

enum Outcome {
    Inserted,
    Replaced,
    Unchanged,
    Stale,
}

/// The resource type a bulk-export file name announces, if any.
pub(crate) fn type_of_file(path: &Path) -> Option<ResourceType> {
    let name = path.file_name()?.to_str()?.strip_suffix(".ndjson")?;
    let mut found = name.split(['.', '_', '-']).filter_map(ResourceType::from_name);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |e| DataError::Io { path: path.to_path_buf(), message: e.to_string() }
}

fn version_key(r: &Resource, hash: &[u8; 32]) -> String {
    let v = r.version();
    let num = v.version_id.as_deref().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("{num:020}|{}|{hex}", v.last_updated.as_deref().unwrap_or(""))
}

fn codes_json(codes: &[Code]) -> String {
    serde_json::to_string(codes).unwrap_or_else(|_| "[]".to_string())
}

impl Store {
    /// Imports every supported `*.ndjson` file of `dir` in one transaction.
    ///
    /// # Errors
    /// The first malformed resource ([`DataError::Resource`]: file, line, type,
    /// id, field), an I/O error, or [`DataError::NothingToImport`]. On error
    /// nothing is written.
    pub fn import_fhir_dir(&mut self, dir: &Path) -> Result<ImportSummary, DataError> {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "ndjson"))
            .collect();
        paths.sort();
        self.import_fhir_files(&paths).and_then(|s| {
            if s.files.is_empty() {
                Err(DataError::NothingToImport { dir: dir.to_path_buf() })
            } else {
                Ok(s)
            }
        })
    }

    /// Imports the given NDJSON files (in this order) in one transaction; see
    /// [`Store::import_fhir_dir`].
    pub fn import_fhir_files(&mut self, paths: &[PathBuf]) -> Result<ImportSummary, DataError> {
        let secret = self.secret.clone();
        let tx = self.conn.transaction()?;
        let mut summary = ImportSummary::default();
        for path in paths {
            let Some(ty) = type_of_file(path) else {
                summary.skipped_files.push(path.clone());
                continue;
            };
            summary.files.push(path.clone());
            let file = fs::File::open(path).map_err(io_err(path))?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut buf = Vec::new();
            let mut line_no = 0usize;
            loop {
                buf.clear();
                let n = reader.read_until(b'\n', &mut buf).map_err(io_err(path))?;
                if n == 0 {
                    break;
                }
                line_no += 1;
                let Ok(text) = std::str::from_utf8(&buf) else {
                    return Err(DataError::Encoding { file: path.clone(), line: line_no });
                };
                let text = text.trim_end_matches(['\n', '\r']);
                if text.trim().is_empty() {
                    continue;
                }
                let res = parse_resource(text, Some(ty)).map_err(|error| DataError::Resource {
                    file: path.clone(),
                    line: line_no,
                    error,
                })?;
                if let Resource::Consent(k) = &res {
                    check_consent_purposes(k).map_err(|error| DataError::Resource {
                        file: path.clone(),
                        line: line_no,
                        error,
                    })?;
                }
                let hash: [u8; 32] = Sha256::digest(text.as_bytes()).into();
                let outcome = store_resource(&tx, &secret, &res, &hash)?;
                summary.resources += 1;
                let c = summary.by_type.entry(ty).or_default();
                match outcome {
                    Outcome::Inserted => c.inserted += 1,
                    Outcome::Replaced => c.replaced += 1,
                    Outcome::Unchanged => c.unchanged += 1,
                    Outcome::Stale => c.stale += 1,
                }
            }
        }
        tx.commit()?;
        Ok(summary)
    }
}

/// Every `Consent.provision.purpose` must be a v3-ActReason purpose-of-use code, exactly as HL7
/// spells it: a misspelt objection would otherwise be stored and match no study.
fn check_consent_purposes(k: &seh_fhir::Consent) -> Result<(), seh_fhir::ParseError> {
    let Some(p) = &k.provision else { return Ok(()) };
    crate::consent::check_provision_purposes(p, "provision").map_err(|(field, problem)| seh_fhir::ParseError {
        resource_type: Some(ResourceType::Consent),
        id: Some(k.id.clone()),
        problem: seh_fhir::Problem::Field { field, problem },
    })
}

fn store_resource(
    tx: &Transaction<'_>,
    secret: &seh_crypto::pseudonym::SiteSecret,
    res: &Resource,
    hash: &[u8; 32],
) -> Result<Outcome, DataError> {
    let ty = res.resource_type();
    let rid = secret.pseudonym(purpose::RESOURCE, format!("{}/{}", ty, res.id()).as_bytes()).0;
    let vkey = version_key(res, hash);
    let existing: Option<(String, Vec<u8>)> = tx
        .prepare_cached("SELECT version_key, hash FROM fhir_resource WHERE rtype = ?1 AND rid = ?2")?
        .query_row(params![ty.as_str(), &rid[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let outcome = match existing {
        None => Outcome::Inserted,
        Some((_, h)) if h == hash[..] => return Ok(Outcome::Unchanged),
        Some((k, _)) if k > vkey => return Ok(Outcome::Stale),
        Some(_) => Outcome::Replaced,
    };
    tx.prepare_cached("INSERT OR REPLACE INTO fhir_resource(rtype, rid, version_key, hash) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ty.as_str(), &rid[..], vkey, &hash[..]])?;
    let pid = |id: &str| secret.pseudonym(purpose::PATIENT, id.as_bytes()).0;
    if matches!(outcome, Outcome::Replaced) {
        tx.prepare_cached("DELETE FROM coding WHERE rid = ?1")?.execute([&rid[..]])?;
    }
    let codings = |codes: &[Code]| -> Result<(), DataError> {
        let mut st = tx.prepare_cached("INSERT INTO coding(rtype, rid, system, code) VALUES (?1, ?2, ?3, ?4)")?;
        for c in codes {
            st.execute(params![ty.as_str(), &rid[..], c.system, c.code])?;
        }
        Ok(())
    };
    match res {
        Resource::Patient(p) => {
            let key = pid(&p.id);
            tx.prepare_cached("DELETE FROM patient_identifier WHERE pid = ?1")?.execute([&key[..]])?;
            let (deceased, death_day) = match p.deceased {
                Deceased::NotRecorded => (None, None),
                Deceased::No => (Some(0), None),
                Deceased::Yes(d) => (Some(1), d.map(|d| d.day_number())),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO patient(pid, gender, birth_day, birth_precision, deceased, death_day)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                &key[..],
                p.gender.map(|g| g.as_str()),
                p.birth_date.map(|d| d.day_number()),
                p.birth_date.map(|d| format!("{:?}", d.precision()).to_lowercase()),
                deceased,
                death_day
            ])?;
            let mut st = tx.prepare_cached("INSERT OR IGNORE INTO patient_identifier(pid, ident) VALUES (?1, ?2)")?;
            for (system, value) in &p.identifiers {
                let joined = format!("{}|{}", system.as_deref().unwrap_or(""), value);
                let ident = secret.pseudonym(purpose::IDENTIFIER, joined.as_bytes()).0;
                st.execute(params![&key[..], &ident[..]])?;
            }
        }
        Resource::Condition(c) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO condition(rid, pid, onset_day, abatement_day, recorded_day, clinical_status,
                 verification_status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &rid[..],
                &pid(&c.patient)[..],
                c.onset.map(|d| d.day_number()),
                c.abatement.map(|d| d.day_number()),
                c.recorded.map(|d| d.day_number()),
                c.clinical_status,
                c.verification_status
            ])?;
            codings(&c.codes)?;
        }
        Resource::Observation(o) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO observation(rid, pid, status, effective_day, value, comparator, unit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &rid[..],
                &pid(&o.patient)[..],
                o.status,
                o.effective.map(|d| d.day_number()),
                o.value.as_ref().map(|v| v.value),
                o.value.as_ref().and_then(|v| v.comparator.clone()),
                o.value.as_ref().and_then(|v| v.unit.clone())
            ])?;
            codings(&o.codes)?;
        }
        Resource::Encounter(e) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO encounter(rid, pid, status, class_system, class_code, start_day, end_day)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &rid[..],
                &pid(&e.patient)[..],
                e.status,
                e.class.as_ref().map(|c| c.system.clone()),
                e.class.as_ref().map(|c| c.code.clone()),
                e.start.map(|d| d.day_number()),
                e.end.map(|d| d.day_number())
            ])?;
        }
        Resource::Procedure(p) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO procedure(rid, pid, status, performed_day) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                &rid[..],
                &pid(&p.patient)[..],
                p.status,
                p.performed.map(|d| d.day_number())
            ])?;
            codings(&p.codes)?;
        }
        Resource::MedicationStatement(m) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO medication_statement(rid, pid, status, start_day, end_day)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &rid[..],
                &pid(&m.patient)[..],
                m.status,
                m.start.map(|d| d.day_number()),
                m.end.map(|d| d.day_number())
            ])?;
            codings(&m.codes)?;
        }
        Resource::Consent(k) => {
            let provision = k.provision.as_ref().map(|p| serde_json::to_string(p).unwrap_or_default());
            tx.prepare_cached(
                "INSERT OR REPLACE INTO consent(rid, pid, status, scope, category, policy_rule, date_day, provision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                &rid[..],
                &pid(&k.patient)[..],
                k.status.as_str(),
                codes_json(&k.scope),
                codes_json(&k.category),
                codes_json(&k.policy_rule),
                k.date_day,
                provision
            ])?;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_map_to_types() {
        assert_eq!(type_of_file(Path::new("a/Patient.ndjson")), Some(ResourceType::Patient));
        assert_eq!(type_of_file(Path::new("Condition_2.ndjson")), Some(ResourceType::Condition));
        assert_eq!(type_of_file(Path::new("1.Observation.ndjson")), Some(ResourceType::Observation));
        assert_eq!(type_of_file(Path::new("Practitioner.ndjson")), None);
        assert_eq!(type_of_file(Path::new("Patient.json")), None);
    }
}
