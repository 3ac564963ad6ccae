//! Building a site's governance stage from its configuration: the `seh-policy` policy file (or a
//! legacy `[policy]` table, converted), the consent sources, the DP budget ledger and the clock.
//!
//! Consent sources for a CSV site: a file of patient decisions named in the node configuration,
//! matched to the data rows through a patient-id column. Its header is either
//! `patient,purpose,date` (every line an objection, the opt-out list format of `seh data opt-out`)
//! or `patient,purpose,date,decision` with `decision` = `permit` or `deny`. `purpose` empty or `*`
//! means every purpose, otherwise a v3-ActReason purpose-of-use code exactly as HL7 spells it
//! (case-sensitive; anything else is refused naming the file, line and field) — a deny or an
//! objection also covers the code's specialisations, a permit exactly the code and its
//! specialisations; `date` empty or `YYYY-MM-DD` is the day the decision takes effect (a date
//! after today is warned about at node start). Lines of the first format are opt-out entries
//! and are counted as opt-outs by the consent filter; `deny` lines count as denies. A patient's id is matched as written against
//! the id column's value printed without a trailing `.0` (so `17` matches 17.0).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use seh_policy::consent::{
    ConsentRecord, ConsentRegistry, ConsentStatus, OptOutEntry, Period, Provision, ProvisionType, Purpose,
};
use seh_policy::dp::BudgetLedger;
use seh_policy::policy::{open_policy_toml, AnalysisKind};
use seh_policy::{Date, SitePolicy};
use seh_protocol::policy::SiteGovernance;
use seh_stats::DataFrame;

/// Why the governance stage could not be built. Never contains a patient identifier.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The policy file (or legacy table) is invalid.
    #[error("policy: {0}")]
    Policy(#[from] seh_policy::error::PolicyError),
    /// The consent file is invalid.
    #[error("{file}:{line}: {reason}")]
    Consent {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The site store named by the `[store]` table cannot serve the site.
    #[error("node configuration `store.{key}` ({}): {source}", path.display())]
    Store {
        /// The `[store]` key at fault (`path`, `secret`, `table`).
        key: &'static str,
        /// The store or secret file.
        path: PathBuf,
        /// What went wrong.
        source: Box<seh_data::DataError>,
    },
    /// The budget ledger cannot be opened.
    #[error("budget ledger: {0}")]
    Ledger(#[from] seh_policy::error::LedgerError),
    /// A configuration key is missing or inconsistent.
    #[error("node configuration `{key}`: {reason}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The legacy `[policy]` table of a node configuration (before `seh-policy`): researchers' hex
/// keys, analysis kinds and one minimum count.
#[derive(Clone, PartialEq, Eq, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyPolicy {
    /// Researchers served, by Ed25519 public key (64 hex characters).
    pub allowed_researchers: Vec<String>,
    /// Analysis kinds served (`describe`, `cox`, `km`, `glm`).
    pub allowed_analyses: Vec<String>,
    /// Minimum cell count, also used as minimum risk set and subset size (at least 3).
    #[serde(default = "legacy_min")]
    pub min_cell_count: u64,
}

fn legacy_min() -> u64 {
    5
}

impl LegacyPolicy {
    /// The equivalent `seh-policy` file text ([`seh_policy::policy::open_policy_toml`]): the same
    /// researchers and analyses (`describe` is `descriptive`), every count floor set to
    /// `min_cell_count`, an opt-out consent regime. Errors name an unknown analysis kind.
    pub fn to_policy_toml(&self) -> Result<String, GovernanceError> {
        let researchers: Vec<(String, String)> =
            self.allowed_researchers.iter().enumerate().map(|(i, k)| (format!("researcher {i}"), k.clone())).collect();
        let mut kinds = Vec::new();
        for a in &self.allowed_analyses {
            let name = if a == "describe" { "descriptive" } else { a.as_str() };
            kinds.push(AnalysisKind::from_name(name).ok_or_else(|| GovernanceError::Config {
                key: "policy.allowed_analyses",
                reason: format!("unknown analysis kind `{a}`"),
            })?);
        }
        // The legacy table has no way to ask for a local-verification policy: keep the floor.
        let floor = seh_policy::policy::FLOOR_MIN_CELL_COUNT;
        if self.min_cell_count < floor {
            return Err(GovernanceError::Config {
                key: "policy.min_cell_count",
                reason: format!("must be at least {floor} (the DataSHIELD floor)"),
            });
        }
        Ok(open_policy_toml(&researchers, &kinds, self.min_cell_count))
    }

    /// Converts to a validated policy; `source` labels errors (e.g. the config path).
    pub fn to_policy(&self, source: &str) -> Result<SitePolicy, GovernanceError> {
        Ok(SitePolicy::from_toml_str(&self.to_policy_toml()?, &format!("{source} [policy] (converted)"))?)
    }
}

/// Where a site's governance comes from.
#[derive(Clone, Debug)]
pub struct GovernanceSettings {
    /// The validated policy.
    pub policy: SitePolicy,
    /// A consent decision file (see the module docs), if any.
    pub consent_file: Option<PathBuf>,
    /// The data column holding each row's patient id (needed with `consent_file`).
    pub id_column: Option<String>,
    /// Patient keys per data row from another source (a store cohort's pseudonyms); overrides
    /// `id_column`.
    pub patient_keys: Option<Vec<String>>,
    /// Extra consent records (e.g. imported FHIR `Consent` resources) keyed like the rows.
    pub records: Vec<ConsentRecord>,
    /// A registry to start from instead of an empty one (a store's consent knowledge,
    /// [`crate::store_site::load`]); it must have been built under the policy's consent regime.
    pub registry: Option<ConsentRegistry>,
    /// The persistent DP budget ledger file.
    pub ledger: PathBuf,
}

/// Today's date by the system clock (UTC).
pub fn today() -> Date {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    Date::from_unix_days(days as i64).unwrap_or_else(|_| Date::new(1970, 1, 1).expect("valid constant date"))
}

/// The printed form of a numeric patient id (`17` for 17.0).
pub fn id_key(v: f64) -> String {
    format!("{v}")
}

/// Builds the governance stage for `data`. Errors name the file and line or the key at fault.
pub fn build(settings: GovernanceSettings, data: &DataFrame) -> Result<SiteGovernance, GovernanceError> {
    let regime = settings.policy.consent().regime;
    let mut registry = settings.registry.unwrap_or_else(|| ConsentRegistry::new(regime));
    let patients = match (&settings.patient_keys, &settings.id_column) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(col)) => {
            let values = data.column(col).map_err(|_| GovernanceError::Config {
                key: "consent.id_column",
                reason: format!("column `{col}` is not in the data"),
            })?;
            Some(values.iter().map(|v| id_key(*v)).collect())
        }
        (None, None) if settings.consent_file.is_some() => {
            return Err(GovernanceError::Config {
                key: "consent.id_column",
                reason: "a consent file needs the data column with the patient ids".into(),
            })
        }
        (None, None) => None,
    };
    for r in settings.records {
        let id = r.id.clone();
        registry
            .add_record(r)
            .map_err(|e| GovernanceError::Config { key: "consent records", reason: format!("{id}: {e}") })?;
    }
    if let Some(file) = &settings.consent_file {
        let read = read_consent_file(file, &mut registry, today())?;
        for line in &read.future_dated {
            eprintln!(
                "seh node: WARNING: {}:{line}: field `date`: the decision takes effect after today; \
                 until then it does not apply",
                file.display()
            );
        }
    }
    let ledger = BudgetLedger::open(&settings.ledger)?;
    Ok(SiteGovernance::new(settings.policy, registry, patients, Some(ledger), Box::new(today)))
}

/// What [`read_consent_file`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentFileRead {
    /// Decision lines read.
    pub entries: usize,
    /// 1-based lines whose decision takes effect after `today` (worth a warning).
    pub future_dated: Vec<usize>,
}

/// Reads a consent decision file (see the module docs) into `registry`; `today` decides which
/// lines are future-dated.
pub fn read_consent_file(
    path: &Path,
    registry: &mut ConsentRegistry,
    today: Date,
) -> Result<ConsentFileRead, GovernanceError> {
    let err =
        |line: usize, reason: &str| GovernanceError::Consent { file: path.to_owned(), line, reason: reason.to_owned() };
    let text = std::fs::read_to_string(path).map_err(|e| err(0, &format!("cannot read: {e}")))?;
    let mut lines = text.lines().enumerate();
    let with_decision = match lines.next().map(|(_, h)| h.trim().trim_start_matches('\u{feff}')) {
        Some("patient,purpose,date") => false,
        Some("patient,purpose,date,decision") => true,
        _ => return Err(err(1, "the header must be `patient,purpose,date` or `patient,purpose,date,decision`")),
    };
    let mut read = ConsentFileRead::default();
    for (i, line) in lines {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let (patient, purpose, date, kind) = match (f.as_slice(), with_decision) {
            ([p, u, d], false) => (*p, *u, *d, ProvisionType::Deny),
            ([p, u, d, k], true) => {
                let kind = match *k {
                    "permit" => ProvisionType::Permit,
                    "deny" => ProvisionType::Deny,
                    _ => return Err(err(ln, "field `decision`: must be `permit` or `deny`")),
                };
                (*p, *u, *d, kind)
            }
            _ => return Err(err(ln, "wrong number of fields")),
        };
        if patient.is_empty() || patient.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(err(ln, "field `patient`: empty or contains white space"));
        }
        let purpose = match purpose {
            "" | "*" => None,
            p => Some(Purpose::parse_act_reason(p).map_err(|e| err(ln, &format!("field `purpose`: {e}")))?),
        };
        let start = if date.is_empty() {
            None
        } else {
            Some(date.parse::<Date>().map_err(|_| err(ln, "field `date`: not a YYYY-MM-DD date"))?)
        };
        if start.is_some_and(|s| s > today) {
            read.future_dated.push(ln);
        }
        let source = format!("{}:{ln}", path.display());
        if !with_decision {
            let entry = OptOutEntry { purpose, since: start };
            registry.add_opt_out(&source, patient, entry).map_err(|e| err(ln, &e.to_string()))?;
        } else {
            let provision = Provision {
                kind,
                period: start.map(|s| Period { start: Some(s), end: None }),
                purposes: purpose.into_iter().collect(),
                has_unmodelled_conditions: false,
                provisions: Vec::new(),
            };
            let record = ConsentRecord {
                id: source,
                patient: patient.to_owned(),
                status: ConsentStatus::Active,
                research_scope: true,
                provision,
            };
            registry.add_record(record).map_err(|e| err(ln, &e.to_string()))?;
        }
        read.entries += 1;
    }
    Ok(read)
}

/// The `[consent]` table of a node configuration.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentToml {
    /// A consent decision file (see the module docs).
    pub file: Option<PathBuf>,
    /// The data column with each row's patient id.
    pub id_column: Option<String>,
}

/// Governance settings from the node configuration keys: exactly one of `policy_file` (a
/// `seh-policy` file) and `legacy` (the old `[policy]` table, converted with
/// [`LegacyPolicy::to_policy`]); an optional `[consent]` table; the `ledger` file. Paths must
/// already be resolved; `config` labels errors.
pub fn settings(
    config: &Path,
    legacy: Option<&LegacyPolicy>,
    policy_file: Option<&Path>,
    consent: Option<&ConsentToml>,
    ledger: PathBuf,
) -> Result<GovernanceSettings, GovernanceError> {
    let policy = match (legacy, policy_file) {
        (Some(l), None) => l.to_policy(&config.display().to_string())?,
        (None, Some(p)) => SitePolicy::load(p)?,
        _ => {
            return Err(GovernanceError::Config {
                key: "policy_file",
                reason: "give exactly one of `policy_file` and a `[policy]` table".into(),
            })
        }
    };
    if policy.disclosure().local_verification {
        // Not an error: `seh federate` writes such policies for a researcher who holds every
        // site's rows. A real site must never run with it, so it is said on every start.
        eprintln!(
            "seh node: WARNING: {} sets `disclosure.local_verification`: the DataSHIELD floors are off; \
             use this only for a local verification run, never at a real site",
            config.display()
        );
    }
    let consent = consent.cloned().unwrap_or_default();
    Ok(GovernanceSettings {
        policy,
        consent_file: consent.file,
        id_column: consent.id_column,
        patient_keys: None,
        records: Vec::new(),
        registry: None,
        ledger,
    })
}
