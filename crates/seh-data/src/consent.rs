//! Consent records for the policy layer (`seh-policy` decides; this module
//! only reads what the store holds).
//!
//! Two sources: FHIR `Consent` resources (imported with the other resources)
//! and the site's opt-out list (`seh data opt-out`). Patients appear as site
//! pseudonyms, the same ones the cohort builder attaches to analysis rows
//! ([`crate::cohort::Cohort::pseudonyms`]), so the policy layer can drop the
//! rows of patients without consent before any computation.

use std::path::Path;

use rusqlite::params;
use seh_crypto::pseudonym::SitePseudonym;
use seh_fhir::{Code, ConsentStatus, FhirDate, Provision};

use crate::error::{BackendError, DataError};
use crate::store::Store;

/// One imported FHIR `Consent`, as stored.
#[derive(Clone, PartialEq)]
pub struct ConsentRecord {
    /// The patient.
    pub patient: SitePseudonym,
    /// `Consent.status`.
    pub status: ConsentStatus,
    /// `Consent.scope` codings (e.g. `research`).
    pub scope: Vec<Code>,
    /// `Consent.category` codings.
    pub category: Vec<Code>,
    /// `Consent.policyRule` codings (e.g. `OPTIN`, `OPTOUT`).
    pub policy_rule: Vec<Code>,
    /// `Consent.dateTime` (days since 1970-01-01).
    pub date_day: Option<i64>,
    /// The provision tree (rules and nested exceptions).
    pub provision: Option<Provision>,
}

impl std::fmt::Debug for ConsentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentRecord")
            .field("patient", &self.patient)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// An entry of the site's opt-out list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptOut {
    /// The patient.
    pub patient: SitePseudonym,
    /// Purpose of use opted out of (a code such as `HRESCH`), or `*` for all purposes.
    pub purpose: String,
    /// Effective from (days since 1970-01-01), if recorded.
    pub since_day: Option<i64>,
}

/// What [`Store::import_opt_outs`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OptOutImport {
    /// Entries imported.
    pub entries: usize,
    /// 1-based lines of entries dated after today: they are stored, but do not apply to a study
    /// before their date (the patient's rows are analysed until then). Worth a warning.
    pub future_dated: Vec<usize>,
}

/// Today (UTC, by the system clock) in days since 1970-01-01.
pub(crate) fn today_day() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs / 86_400) as i64
}

fn bad(context: &str, message: &str) -> DataError {
    DataError::Backend(BackendError { context: context.to_string(), message: message.to_string() })
}

impl Store {
    /// All stored FHIR consent records, ordered by patient pseudonym.
    pub fn consent_records(&self) -> Result<Vec<ConsentRecord>, DataError> {
        let mut st = self.conn().prepare(
            "SELECT pid, status, scope, category, policy_rule, date_day, provision FROM consent ORDER BY pid, rid",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        let ctx = "reading consent records";
        let mut out = Vec::new();
        for row in rows {
            let (pid, status, scope, category, rule, date_day, provision) = row?;
            let codes = |s: &str| serde_json::from_str::<Vec<Code>>(s).map_err(|_| bad(ctx, "corrupt code list"));
            out.push(ConsentRecord {
                patient: SitePseudonym(pid.try_into().map_err(|_| bad(ctx, "a key is not 32 bytes"))?),
                status: ConsentStatus::parse(&status).ok_or_else(|| bad(ctx, "unknown status"))?,
                scope: codes(&scope)?,
                category: codes(&category)?,
                policy_rule: codes(&rule)?,
                date_day,
                provision: provision
                    .map(|p| serde_json::from_str(&p).map_err(|_| bad(ctx, "corrupt provision")))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// The opt-out list, ordered by patient pseudonym and purpose.
    pub fn opt_outs(&self) -> Result<Vec<OptOut>, DataError> {
        let mut st = self.conn().prepare("SELECT pid, purpose, since_day FROM opt_out ORDER BY pid, purpose")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get(2)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (pid, purpose, since_day) = row?;
            let pid = pid.try_into().map_err(|_| bad("reading opt-outs", "a key is not 32 bytes"))?;
            out.push(OptOut { patient: SitePseudonym(pid), purpose, since_day });
        }
        Ok(out)
    }

    /// Imports an opt-out list: a CSV file with header `patient,purpose,date`
    /// (`purpose` empty or `*` = all purposes, otherwise a v3-ActReason purpose-of-use code
    /// exactly as HL7 spells it, e.g. `HRESCH`; `date` empty or `YYYY-MM-DD`, the day the
    /// objection takes effect), patient = FHIR `Patient.id` (pseudonymised on import). One
    /// transaction; re-importing is idempotent. Nothing is stored if any line is bad: an unknown
    /// or wrongly-cased purpose is an error naming the file, line and field (it would otherwise
    /// match no study and the objection would be ignored). Entries dated after today are
    /// stored and reported in [`OptOutImport::future_dated`].
    pub fn import_opt_outs(&mut self, path: &Path) -> Result<OptOutImport, DataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DataError::Io { path: path.to_path_buf(), message: e.to_string() })?;
        let err = |line: usize, problem: &str| DataError::CsvFormat {
            file: path.to_path_buf(),
            line,
            problem: problem.to_string(),
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim().trim_start_matches('\u{feff}') == "patient,purpose,date" => {}
            _ => return Err(err(1, "the header must be `patient,purpose,date`")),
        }
        let (today, mut future_dated) = (today_day(), Vec::new());
        let mut entries = Vec::new();
        for (i, line) in lines {
            let ln = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let [patient, purpose, date] = f.as_slice() else {
                return Err(err(ln, "expected 3 fields (patient,purpose,date)"));
            };
            if !seh_fhir::is_fhir_id(patient) {
                return Err(err(ln, "field `patient`: not a FHIR id"));
            }
            if !purpose.is_empty() && *purpose != "*" {
                seh_policy::consent::check_purpose_code(purpose)
                    .map_err(|e| err(ln, &format!("field `purpose`: {e}")))?;
            }
            let since = if date.is_empty() {
                None
            } else {
                match FhirDate::parse(date) {
                    Ok(d) if d.precision() == seh_fhir::date::Precision::Day => Some(d.day_number()),
                    _ => return Err(err(ln, "field `date`: not a YYYY-MM-DD date")),
                }
            };
            if since.is_some_and(|d| d > today) {
                future_dated.push(ln);
            }
            let purpose = if purpose.is_empty() { "*" } else { purpose };
            entries.push((self.patient_pseudonym(patient), purpose.to_string(), since));
        }
        let n = entries.len();
        let tx = self.conn_mut().transaction()?;
        {
            let mut st = tx.prepare("INSERT OR REPLACE INTO opt_out(pid, purpose, since_day) VALUES (?1, ?2, ?3)")?;
            for (pid, purpose, since) in entries {
                st.execute(params![&pid.0[..], purpose, since])?;
            }
        }
        tx.commit()?;
        Ok(OptOutImport { entries: n, future_dated })
    }
}

fn policy_date(day: Option<i64>, ctx: &str) -> Result<Option<seh_policy::Date>, DataError> {
    day.map(|d| seh_policy::Date::from_unix_days(d).map_err(|_| bad(ctx, "a date is out of range"))).transpose()
}

/// A stored purpose code as `seh-policy` reads it. Imports check codes
/// ([`check_provision_purposes`], [`Store::import_opt_outs`]), but a store written by an older
/// build may hold unchecked ones: a code in the wrong letter case is read as the code it
/// spells (the reading that honours the patient's decision), anything else is `None`.
fn stored_purpose_code(code: &str) -> Option<&'static str> {
    use seh_policy::consent::{check_purpose_code, PurposeCodeError};
    match check_purpose_code(code) {
        Ok(c) | Err(PurposeCodeError::WrongCase { expected: c }) => Some(c),
        Err(_) => None,
    }
}

/// Checks every `purpose` of a FHIR `Consent`'s provisions (recursively): each must be a
/// v3-ActReason purpose-of-use code, case-sensitive. Returns the FHIR path of the first bad one
/// and why.
pub(crate) fn check_provision_purposes(p: &Provision, path: &str) -> Result<(), (String, String)> {
    use seh_policy::consent::{check_purpose_code, ACT_REASON_SYSTEM};
    for (i, c) in p.purposes.iter().enumerate() {
        if c.system != ACT_REASON_SYSTEM {
            let why = format!("only v3-ActReason purposes ({ACT_REASON_SYSTEM}) are understood");
            return Err((format!("{path}.purpose[{i}].system"), why));
        }
        check_purpose_code(&c.code).map_err(|e| (format!("{path}.purpose[{i}].code"), e.to_string()))?;
    }
    for (i, n) in p.nested.iter().enumerate() {
        check_provision_purposes(n, &format!("{path}.provision[{i}]"))?;
    }
    Ok(())
}

/// One FHIR provision as `seh-policy` evaluates it. A provision without `type` is informative
/// only and never applies; `action` restrictions are conditions the evaluator does not model
/// (a permit with them never applies, a deny always does: fail safe). A stored purpose that is
/// no v3-ActReason purpose-of-use code (an older build did not check) fails safe the same way:
/// such a permit never applies, such a deny covers every purpose.
fn policy_provision(p: &Provision, ctx: &str) -> Result<seh_policy::consent::Provision, DataError> {
    use seh_policy::consent::{Period, Provision as P, ProvisionType, Purpose, ACT_REASON_SYSTEM};
    let (kind, mut unmodelled) = match p.kind {
        Some(seh_fhir::ProvisionKind::Permit) => (ProvisionType::Permit, !p.actions.is_empty()),
        Some(seh_fhir::ProvisionKind::Deny) => (ProvisionType::Deny, !p.actions.is_empty()),
        None => (ProvisionType::Permit, true),
    };
    let (start, end) = (policy_date(p.start_day, ctx)?, policy_date(p.end_day, ctx)?);
    let mut purposes = Vec::new();
    let mut unreadable = false;
    for c in &p.purposes {
        match stored_purpose_code(&c.code).filter(|_| c.system == ACT_REASON_SYSTEM) {
            Some(code) => purposes.push(Purpose::act_reason(code)),
            None => unreadable = true,
        }
    }
    if unreadable {
        match kind {
            ProvisionType::Permit => unmodelled = true,
            ProvisionType::Deny => purposes.clear(),
        }
    }
    Ok(P {
        kind,
        period: (start.is_some() || end.is_some()).then_some(Period { start, end }),
        purposes,
        has_unmodelled_conditions: unmodelled,
        provisions: p.nested.iter().map(|n| policy_provision(n, ctx)).collect::<Result<_, _>>()?,
    })
}

impl Store {
    /// The store's consent knowledge as a `seh-policy` registry under `regime`: every imported
    /// FHIR `Consent` (a record without a provision takes its type from `policyRule`: `OPTIN`
    /// permits, anything else denies) and the opt-out list (opt-out entries of the registry, so
    /// the filter counts them as opt-outs: for their purpose or every purpose, from their date
    /// or always). A stored opt-out purpose in the wrong letter case (an older build stored it
    /// unchecked) is read as the code it spells, any other unreadable one as every purpose.
    /// Patients are keyed by their pseudonym in lower-case hex, as
    /// [`crate::cohort::Cohort::pseudonyms`] print.
    pub fn policy_consent(
        &self,
        regime: seh_policy::consent::ConsentRegime,
    ) -> Result<seh_policy::consent::ConsentRegistry, DataError> {
        use seh_policy::consent::{
            ConsentRecord as R, ConsentStatus as S, OptOutEntry, Provision as P, ProvisionType, Purpose,
        };
        let ctx = "converting consent records";
        let mut reg = seh_policy::consent::ConsentRegistry::new(regime);
        for (k, r) in self.consent_records()?.into_iter().enumerate() {
            let status = match r.status {
                ConsentStatus::Draft => S::Draft,
                ConsentStatus::Proposed => S::Proposed,
                ConsentStatus::Active => S::Active,
                ConsentStatus::Rejected => S::Rejected,
                ConsentStatus::Inactive => S::Inactive,
                ConsentStatus::EnteredInError => S::EnteredInError,
            };
            let provision = match &r.provision {
                Some(p) => policy_provision(p, ctx)?,
                None => {
                    let optin = r.policy_rule.iter().any(|c| c.code == "OPTIN");
                    P::new(if optin { ProvisionType::Permit } else { ProvisionType::Deny })
                }
            };
            let record = R {
                id: format!("consent #{k}"),
                patient: r.patient.to_string(),
                status,
                research_scope: r.scope.iter().any(|c| c.code == "research"),
                provision,
            };
            reg.add_record(record).map_err(|e| bad(ctx, &e.to_string()))?;
        }
        for (k, o) in self.opt_outs()?.into_iter().enumerate() {
            let purpose =
                if o.purpose == "*" { None } else { stored_purpose_code(&o.purpose).map(Purpose::act_reason) };
            let entry = OptOutEntry { purpose, since: policy_date(o.since_day, ctx)? };
            reg.add_opt_out(&format!("opt-out #{k}"), &o.patient.to_string(), entry)
                .map_err(|e| bad(ctx, &e.to_string()))?;
        }
        Ok(reg)
    }
}
