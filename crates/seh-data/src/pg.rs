//! PostgreSQL connector for an OMOP CDM (v5.3/5.4) subset: `person`,
//! `observation_period`, `condition_occurrence`, `measurement`, `death`, and
//! `concept` to translate concept ids into code systems, so that one cohort
//! definition (written with FHIR code-system URIs) works on FHIR and OMOP sites.
//!
//! Read-only: the connector only runs `SELECT`s. Patients are pseudonymised
//! with the site secret exactly like FHIR patients (`person_id` as the id).
//! Dates are turned into day numbers in SQL (`date - DATE '1970-01-01'`), so no
//! date library is needed. Connections use no TLS: run the connector on the
//! database host or through a local socket / tunnel (see the report's gaps).

use postgres::{Client, NoTls};
use seh_crypto::pseudonym::{SitePseudonym, SiteSecret};
use seh_fhir::{Code, Gender};

use crate::error::{BackendError, DataError};
use crate::source::{ClinicalSource, CodeKind, DatedEvent, Death, Measurement, PatientRecord};
use crate::store::purpose;

/// FHIR code-system URI ↔ OMOP `vocabulary_id`.
pub const VOCABULARIES: &[(&str, &str)] = &[
    ("http://snomed.info/sct", "SNOMED"),
    ("http://loinc.org", "LOINC"),
    ("http://hl7.org/fhir/sid/icd-10-cm", "ICD10CM"),
    ("http://hl7.org/fhir/sid/icd-10", "ICD10"),
    ("http://hl7.org/fhir/sid/icd-9-cm", "ICD9CM"),
    ("http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm"),
];

/// The OMOP vocabulary of a FHIR code system, if mapped.
pub fn vocabulary_of(system: &str) -> Option<&'static str> {
    VOCABULARIES.iter().find(|(s, _)| *s == system).map(|(_, v)| *v)
}

/// OMOP gender concepts.
const MALE: i64 = 8507;
const FEMALE: i64 = 8532;

/// A read-only OMOP CDM source on PostgreSQL.
pub struct OmopSource {
    client: Client,
    secret: SiteSecret,
}

impl std::fmt::Debug for OmopSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OmopSource").finish_non_exhaustive()
    }
}

fn pg_err(context: &str) -> impl FnOnce(postgres::Error) -> DataError + '_ {
    move |e| {
        // Use the server's message (names relations/columns), not the Debug form.
        let message = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
        DataError::Backend(BackendError { context: context.to_string(), message })
    }
}

impl OmopSource {
    /// Connects to `url` (`postgresql://user@host:port/db`) and uses tables in `schema`.
    ///
    /// # Errors
    /// A schema name that is not `[A-Za-z_][A-Za-z0-9_]*`, or a connection failure.
    pub fn connect(url: &str, schema: &str, secret: SiteSecret) -> Result<Self, DataError> {
        if !crate::store::is_valid_table_name(schema) {
            return Err(DataError::BadTableName { name: schema.to_string() });
        }
        let mut client = Client::connect(url, NoTls).map_err(pg_err("connecting to PostgreSQL"))?;
        client
            .batch_execute(&format!("SET search_path TO {schema}; SET default_transaction_read_only = on"))
            .map_err(pg_err("setting the schema"))?;
        Ok(OmopSource { client, secret })
    }

    fn pid(&self, person_id: i64) -> SitePseudonym {
        self.secret.pseudonym(purpose::PATIENT, person_id.to_string().as_bytes())
    }

    fn key(&self, table: &str, id: i64) -> [u8; 32] {
        self.secret.pseudonym(purpose::RESOURCE, format!("{table}/{id}").as_bytes()).0
    }
}

impl ClinicalSource for OmopSource {
    fn patients(&mut self) -> Result<Vec<PatientRecord>, DataError> {
        let rows = self
            .client
            .query(
                "SELECT p.person_id::bigint, p.gender_concept_id::bigint,
                        (make_date(p.year_of_birth, COALESCE(p.month_of_birth, 1), COALESCE(p.day_of_birth, 1))
                           - DATE '1970-01-01')::bigint,
                        d.death_day, op.obs_end
                 FROM person p
                 LEFT JOIN (SELECT person_id, min(death_date - DATE '1970-01-01')::bigint AS death_day
                            FROM death GROUP BY person_id) d ON d.person_id = p.person_id
                 LEFT JOIN (SELECT person_id, max(observation_period_end_date - DATE '1970-01-01')::bigint AS obs_end
                            FROM observation_period GROUP BY person_id) op ON op.person_id = p.person_id",
                &[],
            )
            .map_err(pg_err("reading person"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let person: i64 = r.try_get(0).map_err(pg_err("reading person"))?;
            let gender: Option<i64> = r.try_get(1).map_err(pg_err("reading person"))?;
            let birth: Option<i64> = r.try_get(2).map_err(pg_err("reading person"))?;
            let death: Option<i64> = r.try_get(3).map_err(pg_err("reading death"))?;
            let obs_end: Option<i64> = r.try_get(4).map_err(pg_err("reading observation_period"))?;
            out.push(PatientRecord {
                pid: self.pid(person),
                sex: match gender {
                    Some(MALE) => Some(Gender::Male),
                    Some(FEMALE) => Some(Gender::Female),
                    _ => None,
                },
                birth_day: birth,
                death: death.map_or(Death::NotRecorded, |d| Death::Dead(Some(d))),
                observed_until: obs_end,
            });
        }
        Ok(out)
    }

    fn condition_onsets(&mut self, code: &Code) -> Result<Vec<DatedEvent>, DataError> {
        let Some(vocab) = vocabulary_of(&code.system) else { return Ok(Vec::new()) };
        let rows = self
            .client
            .query(
                "SELECT co.condition_occurrence_id::bigint, co.person_id::bigint,
                        (co.condition_start_date - DATE '1970-01-01')::bigint
                 FROM condition_occurrence co JOIN concept c ON c.concept_id = co.condition_concept_id
                 WHERE c.vocabulary_id = $1 AND c.concept_code = $2",
                &[&vocab, &code.code],
            )
            .map_err(pg_err("reading condition_occurrence"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get(0).map_err(pg_err("reading condition_occurrence"))?;
            let person: i64 = r.try_get(1).map_err(pg_err("reading condition_occurrence"))?;
            let day: i64 = r.try_get(2).map_err(pg_err("reading condition_occurrence"))?;
            out.push(DatedEvent { pid: self.pid(person), day, key: self.key("condition_occurrence", id) });
        }
        Ok(out)
    }

    fn measurements(&mut self, code: &Code) -> Result<Vec<Measurement>, DataError> {
        let Some(vocab) = vocabulary_of(&code.system) else { return Ok(Vec::new()) };
        let rows = self
            .client
            .query(
                "SELECT m.measurement_id::bigint, m.person_id::bigint,
                        (m.measurement_date - DATE '1970-01-01')::bigint, m.value_as_number::float8,
                        COALESCE(u.concept_code, m.unit_source_value)
                 FROM measurement m JOIN concept c ON c.concept_id = m.measurement_concept_id
                 LEFT JOIN concept u ON u.concept_id = m.unit_concept_id
                 WHERE c.vocabulary_id = $1 AND c.concept_code = $2 AND m.value_as_number IS NOT NULL",
                &[&vocab, &code.code],
            )
            .map_err(pg_err("reading measurement"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get(0).map_err(pg_err("reading measurement"))?;
            let person: i64 = r.try_get(1).map_err(pg_err("reading measurement"))?;
            out.push(Measurement {
                pid: self.pid(person),
                day: r.try_get(2).map_err(pg_err("reading measurement"))?,
                value: r.try_get(3).map_err(pg_err("reading measurement"))?,
                unit: r.try_get(4).map_err(pg_err("reading measurement"))?,
                key: self.key("measurement", id),
            });
        }
        Ok(out)
    }

    fn code_count(&mut self, kind: CodeKind, code: &Code) -> Result<u64, DataError> {
        let Some(vocab) = vocabulary_of(&code.system) else { return Ok(0) };
        let sql = match kind {
            CodeKind::Condition => {
                "SELECT count(*) FROM condition_occurrence co JOIN concept c ON c.concept_id = co.condition_concept_id
                 WHERE c.vocabulary_id = $1 AND c.concept_code = $2"
            }
            CodeKind::Observation => {
                "SELECT count(*) FROM measurement m JOIN concept c ON c.concept_id = m.measurement_concept_id
                 WHERE c.vocabulary_id = $1 AND c.concept_code = $2"
            }
        };
        let row = self.client.query_one(sql, &[&vocab, &code.code]).map_err(pg_err("counting codes"))?;
        let n: i64 = row.try_get(0).map_err(pg_err("counting codes"))?;
        Ok(n.max(0) as u64)
    }
}
