//! The connector seam: what the cohort builder reads from a site's data,
//! implemented by the SQLite [`Store`] and the PostgreSQL OMOP connector.
//!
//! Patients are identified by their site pseudonym; dates are days since
//! 1970-01-01. Implementations return only records usable for analysis
//! (see each method).

use seh_crypto::pseudonym::SitePseudonym;
use seh_fhir::{Code, Gender};

use crate::error::{BackendError, DataError};
use crate::store::Store;

/// A patient as the cohort builder sees it.
#[derive(Clone, PartialEq)]
pub struct PatientRecord {
    /// Site pseudonym of the patient id.
    pub pid: SitePseudonym,
    /// Administrative sex.
    pub sex: Option<Gender>,
    /// Birth day (first day of a partial date).
    pub birth_day: Option<i64>,
    /// Death.
    pub death: Death,
    /// Last day the source observed the patient (OMOP `observation_period`), if it records one.
    pub observed_until: Option<i64>,
}

impl std::fmt::Debug for PatientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientRecord").field("pid", &self.pid).finish_non_exhaustive()
    }
}

/// What is known of a patient's death.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Death {
    /// No death recorded.
    NotRecorded,
    /// Dead; day known or not.
    Dead(Option<i64>),
}

/// A dated occurrence of a coded event (condition onset) for a patient.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DatedEvent {
    /// Patient.
    pub pid: SitePseudonym,
    /// Day of the event.
    pub day: i64,
    /// A stable key of the source record (for deterministic tie-breaking).
    pub key: [u8; 32],
}

impl std::fmt::Debug for DatedEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatedEvent(<redacted>)")
    }
}

/// A dated numeric measurement for a patient.
#[derive(Clone, PartialEq)]
pub struct Measurement {
    /// Patient.
    pub pid: SitePseudonym,
    /// Day of the measurement.
    pub day: i64,
    /// The value.
    pub value: f64,
    /// Unit (UCUM code preferred), if recorded.
    pub unit: Option<String>,
    /// A stable key of the source record (for deterministic tie-breaking).
    pub key: [u8; 32],
}

impl std::fmt::Debug for Measurement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Measurement(<redacted>)")
    }
}

/// Which kind of record a code is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// Conditions (diagnoses).
    Condition,
    /// Observations / measurements.
    Observation,
}

/// A site's clinical data source.
pub trait ClinicalSource {
    /// All patients.
    fn patients(&mut self) -> Result<Vec<PatientRecord>, DataError>;
    /// Onsets of conditions coded `code`: one per usable record (not refuted
    /// or entered in error), dated by onset, else by recorded date; records
    /// with neither are left out.
    fn condition_onsets(&mut self, code: &Code) -> Result<Vec<DatedEvent>, DataError>;
    /// Numeric results coded `code` (final, amended or corrected; dated; with a value).
    fn measurements(&mut self, code: &Code) -> Result<Vec<Measurement>, DataError>;
    /// How many records of `kind` carry `code` (any status), to reject
    /// definitions naming codes the site does not have.
    fn code_count(&mut self, kind: CodeKind, code: &Code) -> Result<u64, DataError>;
}

fn key32(v: Vec<u8>, what: &str) -> Result<[u8; 32], DataError> {
    v.try_into().map_err(|_| {
        DataError::Backend(BackendError { context: what.to_string(), message: "a key is not 32 bytes".to_string() })
    })
}

impl ClinicalSource for Store {
    fn patients(&mut self) -> Result<Vec<PatientRecord>, DataError> {
        let mut st =
            self.conn().prepare("SELECT pid, gender, birth_day, deceased, death_day FROM patient ORDER BY pid")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (pid, gender, birth_day, deceased, death_day) = row?;
            out.push(PatientRecord {
                pid: SitePseudonym(key32(pid, "reading patients")?),
                sex: gender.as_deref().and_then(Gender::parse),
                birth_day,
                death: if deceased == Some(1) { Death::Dead(death_day) } else { Death::NotRecorded },
                observed_until: None,
            });
        }
        Ok(out)
    }

    fn condition_onsets(&mut self, code: &Code) -> Result<Vec<DatedEvent>, DataError> {
        let mut st = self.conn().prepare(
            "SELECT DISTINCT c.rid, c.pid, COALESCE(c.onset_day, c.recorded_day)
             FROM coding k JOIN condition c ON c.rid = k.rid
             WHERE k.rtype = 'Condition' AND k.system = ?1 AND k.code = ?2
               AND COALESCE(c.verification_status, '') NOT IN ('refuted', 'entered-in-error')
               AND COALESCE(c.onset_day, c.recorded_day) IS NOT NULL",
        )?;
        let rows = st.query_map([&code.system, &code.code], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (rid, pid, day) = row?;
            out.push(DatedEvent {
                pid: SitePseudonym(key32(pid, "reading conditions")?),
                day,
                key: key32(rid, "reading conditions")?,
            });
        }
        Ok(out)
    }

    fn measurements(&mut self, code: &Code) -> Result<Vec<Measurement>, DataError> {
        let mut st = self.conn().prepare(
            "SELECT DISTINCT o.rid, o.pid, o.effective_day, o.value, o.unit
             FROM coding k JOIN observation o ON o.rid = k.rid
             WHERE k.rtype = 'Observation' AND k.system = ?1 AND k.code = ?2
               AND o.status IN ('final', 'amended', 'corrected')
               AND o.effective_day IS NOT NULL AND o.value IS NOT NULL",
        )?;
        let rows = st.query_map([&code.system, &code.code], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, f64>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (rid, pid, day, value, unit) = row?;
            out.push(Measurement {
                pid: SitePseudonym(key32(pid, "reading observations")?),
                day,
                value,
                unit,
                key: key32(rid, "reading observations")?,
            });
        }
        Ok(out)
    }

    fn code_count(&mut self, kind: CodeKind, code: &Code) -> Result<u64, DataError> {
        let rtype = match kind {
            CodeKind::Condition => "Condition",
            CodeKind::Observation => "Observation",
        };
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM coding WHERE rtype = ?1 AND system = ?2 AND code = ?3",
            [rtype, &code.system, &code.code],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }
}
