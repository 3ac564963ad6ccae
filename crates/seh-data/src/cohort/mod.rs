//! The cohort builder: a [`CohortDef`] plus a [`ClinicalSource`] gives an
//! analysis table of counting-process rows
//! `id, tstart, tstop, <outcome>, <baseline…>, <time-dependent…>`.
//!
//! Who is in (in this order; each exclusion is counted in [`CohortReport`]):
//! 1. patients with an index date (the fixed date, or a first onset of the index condition);
//! 2. born on or before the index date (unknown birth date: kept, age missing);
//! 3. not dead on or before the index date, and with a known death date if dead;
//! 4. for a condition outcome, no onset of it on or before the index date;
//! 5. follow-up `(index, exit]` of at least one day, where exit is the
//!    earliest of the outcome, death, the end date, `index + max_days` and the
//!    end of the source's observation period.
//!
//! `id` numbers patients 1..n in the order of their site pseudonyms
//! ([`Cohort::pseudonyms`]), so no raw identifier reaches the table and the
//! numbering does not depend on import order.

mod def;
pub mod split;

use std::collections::{BTreeMap, HashMap};

use seh_crypto::pseudonym::SitePseudonym;
use seh_fhir::{Code, Gender};
use seh_stats::DataFrame;

pub use def::{Baseline, CohortDef, Index, Outcome, TimeDependent, TimeUnit, MAX_COHORT_DEF_LEN};
use split::{split, Series};

use crate::error::DataError;
use crate::source::{ClinicalSource, CodeKind, Death};

/// Errors of cohort definition and building. None contains a patient value.
#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    /// The TOML does not parse or has an unknown key (the message gives line and column).
    #[error("{file}: {message}")]
    Toml {
        /// Definition file.
        file: String,
        /// Parser message.
        message: String,
    },
    /// A field has an invalid value.
    #[error("{file}: `{field}`: {problem}")]
    Invalid {
        /// Definition file.
        file: String,
        /// Field path (`time_dependent[1].code`).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The definition names a code no record at this site carries.
    #[error("{file}: `{field}`: no {kind} in the data has code {system}|{code}")]
    MissingCode {
        /// Definition file.
        file: String,
        /// Field path.
        field: String,
        /// `Condition` or `Observation`.
        kind: &'static str,
        /// Code system.
        system: String,
        /// Code.
        code: String,
    },
    /// Measurements in another unit than the definition requires, or in several units.
    #[error("{file}: `{field}`: {problem}")]
    Units {
        /// Definition file.
        file: String,
        /// Field path.
        field: String,
        /// Which units were found (unit codes, not values).
        problem: String,
    },
    /// No patient qualifies.
    #[error("{file}: no patient qualifies for the cohort ({report})")]
    Empty {
        /// Definition file.
        file: String,
        /// Exclusion counts.
        report: String,
    },
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl CohortError {
    pub(crate) fn in_file(self, source: &str) -> Self {
        let f = source.to_string();
        match self {
            CohortError::Toml { message, .. } => CohortError::Toml { file: f, message },
            CohortError::Invalid { field, problem, .. } => CohortError::Invalid { file: f, field, problem },
            other => other,
        }
    }
}

/// How many patients were seen, kept and left out (and why).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CohortReport {
    /// Patients in the source.
    pub patients: usize,
    /// Patients in the cohort.
    pub included: usize,
    /// Rows produced.
    pub rows: usize,
    /// Events.
    pub events: usize,
    /// Exclusion reason → count.
    pub excluded: BTreeMap<&'static str, usize>,
}

impl std::fmt::Display for CohortReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} patients, {} included, {} rows, {} events",
            self.patients, self.included, self.rows, self.events
        )?;
        for (k, v) in &self.excluded {
            write!(f, "; {v} {k}")?;
        }
        Ok(())
    }
}

/// A built cohort.
#[derive(Clone, Debug)]
pub struct Cohort {
    /// The analysis table (`id, tstart, tstop, outcome, covariates`).
    pub frame: DataFrame,
    /// `pseudonyms[k]` is the patient with `id == k + 1`.
    pub pseudonyms: Vec<SitePseudonym>,
    /// Counts.
    pub report: CohortReport,
}

/// First onset per patient (the earliest day; ties are irrelevant).
fn first_onsets(src: &mut dyn ClinicalSource, code: &Code) -> Result<HashMap<SitePseudonym, i64>, DataError> {
    let mut out: HashMap<SitePseudonym, i64> = HashMap::new();
    for e in src.condition_onsets(code)? {
        out.entry(e.pid).and_modify(|d| *d = (*d).min(e.day)).or_insert(e.day);
    }
    Ok(out)
}

fn require_code(
    src: &mut dyn ClinicalSource,
    def: &CohortDef,
    field: &str,
    kind: CodeKind,
    code: &Code,
) -> Result<(), CohortError> {
    if src.code_count(kind, code)? == 0 {
        return Err(CohortError::MissingCode {
            file: def.source.clone(),
            field: field.to_string(),
            kind: match kind {
                CodeKind::Condition => "Condition",
                CodeKind::Observation => "Observation",
            },
            system: code.system.clone(),
            code: code.code.clone(),
        });
    }
    Ok(())
}

enum TdData {
    Values(HashMap<SitePseudonym, Vec<(i64, f64)>>),
    Onsets(HashMap<SitePseudonym, i64>),
}

/// Builds the cohort. Reads only; the caller stores the table if wanted.
///
/// # Errors
/// A code the definition names that no record carries ([`CohortError::MissingCode`]),
/// unit mismatches, an empty cohort, or a source failure.
pub fn build(def: &CohortDef, src: &mut dyn ClinicalSource) -> Result<Cohort, CohortError> {
    // Check every code first, so a bad definition fails before any work.
    if let Index::FirstCondition(c) = &def.index {
        require_code(src, def, "index", CodeKind::Condition, c)?;
    }
    if let Outcome::Condition(c) = &def.outcome.1 {
        require_code(src, def, "outcome", CodeKind::Condition, c)?;
    }
    for (i, (_, b)) in def.baseline.iter().enumerate() {
        if let Baseline::Condition(c) = b {
            require_code(src, def, &format!("baseline[{i}]"), CodeKind::Condition, c)?;
        }
    }
    for (i, (_, t)) in def.time_dependent.iter().enumerate() {
        let f = format!("time_dependent[{i}]");
        match t {
            TimeDependent::Observation { code, .. } => require_code(src, def, &f, CodeKind::Observation, code)?,
            TimeDependent::Condition(c) => require_code(src, def, &f, CodeKind::Condition, c)?,
        }
    }

    let index_onsets = match &def.index {
        Index::FirstCondition(c) => Some(first_onsets(src, c)?),
        Index::Date(_) => None,
    };
    let outcome_onsets = match &def.outcome.1 {
        Outcome::Condition(c) => Some(first_onsets(src, c)?),
        Outcome::Death => None,
    };
    let mut baseline_onsets = Vec::new();
    for (_, b) in &def.baseline {
        baseline_onsets.push(match b {
            Baseline::Condition(c) => Some(first_onsets(src, c)?),
            _ => None,
        });
    }
    let mut td = Vec::new();
    for (i, (_, t)) in def.time_dependent.iter().enumerate() {
        td.push(match t {
            TimeDependent::Condition(c) => TdData::Onsets(first_onsets(src, c)?),
            TimeDependent::Observation { code, unit } => {
                let mut ms = src.measurements(code)?;
                let field = format!("time_dependent[{i}]");
                check_units(def, &field, unit.as_deref(), &ms)?;
                // Order by (patient, day, record key): ties on a day resolve the same way whatever the import order.
                ms.sort_by_key(|m| (m.pid, m.day, m.key));
                let mut by: HashMap<SitePseudonym, Vec<(i64, f64)>> = HashMap::new();
                for m in ms {
                    by.entry(m.pid).or_default().push((m.day, m.value));
                }
                TdData::Values(by)
            }
        });
    }

    let mut patients = src.patients()?;
    patients.sort_by_key(|p| p.pid);
    let mut report = CohortReport { patients: patients.len(), ..CohortReport::default() };
    let mut cols: Vec<Vec<f64>> = vec![Vec::new(); 4 + def.baseline.len() + def.time_dependent.len()];
    let mut pseudonyms = Vec::new();
    for p in &patients {
        let mut exclude = |why: &'static str| *report.excluded.entry(why).or_insert(0) += 1;
        let index = match (&def.index, &index_onsets) {
            (Index::Date(d), _) => *d,
            (Index::FirstCondition(_), Some(on)) => match on.get(&p.pid) {
                Some(d) => *d,
                None => {
                    exclude("without the index condition");
                    continue;
                }
            },
            (Index::FirstCondition(_), None) => continue,
        };
        if p.birth_day.is_some_and(|b| b > index) {
            exclude("born after the index date");
            continue;
        }
        let death = match p.death {
            Death::NotRecorded => None,
            Death::Dead(None) => {
                exclude("dead with an unknown death date");
                continue;
            }
            Death::Dead(Some(d)) if d <= index => {
                exclude("dead on or before the index date");
                continue;
            }
            Death::Dead(Some(d)) => Some(d),
        };
        let mut admin_end = def.end_day;
        if let Some(m) = def.max_days {
            admin_end = admin_end.min(index + m);
        }
        if let Some(o) = p.observed_until {
            admin_end = admin_end.min(o);
        }
        let (exit, event) = match (&def.outcome.1, &outcome_onsets) {
            (Outcome::Death, _) => match death {
                Some(d) if d <= admin_end => (d, true),
                _ => (admin_end, false),
            },
            (Outcome::Condition(_), Some(on)) => {
                let onset = on.get(&p.pid).copied();
                if onset.is_some_and(|o| o <= index) {
                    exclude("with the outcome on or before the index date");
                    continue;
                }
                let censor = death.map_or(admin_end, |d| d.min(admin_end));
                match onset {
                    Some(o) if o <= censor => (o, true),
                    _ => (censor, false),
                }
            }
            (Outcome::Condition(_), None) => continue,
        };
        if exit <= index {
            exclude("without follow-up after the index date");
            continue;
        }
        let id = (pseudonyms.len() + 1) as f64;
        pseudonyms.push(p.pid);
        let baseline: Vec<f64> = def
            .baseline
            .iter()
            .zip(&baseline_onsets)
            .map(|((_, b), on)| match b {
                Baseline::Age => p.birth_day.map_or(f64::NAN, |bd| (index - bd) as f64 / 365.25),
                Baseline::Sex(want) => match p.sex {
                    Some(g @ (Gender::Male | Gender::Female)) => f64::from(u8::from(g == *want)),
                    _ => f64::NAN,
                },
                Baseline::Condition(_) => {
                    let first = on.as_ref().and_then(|m| m.get(&p.pid));
                    f64::from(u8::from(first.is_some_and(|d| *d <= index)))
                }
            })
            .collect();
        let series: Vec<Series> = td
            .iter()
            .map(|d| match d {
                TdData::Values(by) => Series::Values(
                    by.get(&p.pid).map(|v| v.iter().map(|&(day, x)| (day - index, x)).collect()).unwrap_or_default(),
                ),
                TdData::Onsets(on) => Series::Switch(on.get(&p.pid).map(|d| d - index)),
            })
            .collect();
        let scale = match def.time_unit {
            TimeUnit::Days => 1.0,
            TimeUnit::Years => 1.0 / 365.25,
        };
        for piece in split(exit - index, event, &series) {
            cols[0].push(id);
            cols[1].push(piece.tstart as f64 * scale);
            cols[2].push(piece.tstop as f64 * scale);
            cols[3].push(f64::from(u8::from(piece.event)));
            for (k, b) in baseline.iter().enumerate() {
                cols[4 + k].push(*b);
            }
            for (k, v) in piece.values.iter().enumerate() {
                cols[4 + baseline.len() + k].push(*v);
            }
            report.rows += 1;
            report.events += usize::from(piece.event);
        }
    }
    report.included = pseudonyms.len();
    if pseudonyms.is_empty() {
        return Err(CohortError::Empty { file: def.source.clone(), report: report.to_string() });
    }
    let mut names: Vec<String> = vec!["id".into(), "tstart".into(), "tstop".into(), def.outcome.0.clone()];
    names.extend(def.baseline.iter().map(|(n, _)| n.clone()));
    names.extend(def.time_dependent.iter().map(|(n, _)| n.clone()));
    let frame = DataFrame::from_columns(names.into_iter().zip(cols).collect()).map_err(DataError::Csv)?;
    Ok(Cohort { frame, pseudonyms, report })
}

fn check_units(
    def: &CohortDef,
    field: &str,
    want: Option<&str>,
    ms: &[crate::source::Measurement],
) -> Result<(), CohortError> {
    let mut units: Vec<&str> = ms.iter().map(|m| m.unit.as_deref().unwrap_or("(none)")).collect();
    units.sort_unstable();
    units.dedup();
    let err = |problem: String| CohortError::Units { file: def.source.clone(), field: field.to_string(), problem };
    match want {
        Some(w) => {
            let other: Vec<&str> = units.iter().copied().filter(|u| *u != w).collect();
            if !other.is_empty() {
                return Err(err(format!(
                    "the definition requires unit `{w}` but measurements use {}",
                    other.join(", ")
                )));
            }
        }
        None if units.len() > 1 => {
            return Err(err(format!("measurements use several units ({}); name one with `unit`", units.join(", "))));
        }
        None => {}
    }
    Ok(())
}
