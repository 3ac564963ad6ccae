//! A site served from its SQLite site store (`seh-data`) instead of a CSV file.
//!
//! The node configuration's `[store]` table names the store file, its site secret file and the
//! analysis table (a cohort materialised by `seh data cohort`). The node then reads:
//! * the table's rows, with the patient pseudonym of each row (stored beside the table by
//!   `seh data cohort`, [`seh_data::Store::read_keyed_table`]);
//! * the consent knowledge of the store — imported FHIR `Consent` resources and the opt-out
//!   list ([`seh_data::Store::policy_consent`]) — keyed by the same pseudonyms.
//!
//! The governance stage then drops the rows of patients without consent for a study's purpose
//! before any computation, exactly as for a CSV site with a consent file.

use std::path::{Path, PathBuf};

use seh_data::Store;
use seh_policy::consent::{ConsentRegime, ConsentRegistry};
use seh_stats::DataFrame;

use crate::governance::{GovernanceError, GovernanceSettings};

/// The `[store]` table of a node configuration.
#[derive(Clone, PartialEq, Eq, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreToml {
    /// The site's SQLite store (must exist).
    pub path: PathBuf,
    /// The analysis table to serve (a table stored by `seh data cohort`).
    pub table: String,
    /// The site secret file (default: the store path with `.secret` appended).
    pub secret: Option<PathBuf>,
}

impl StoreToml {
    /// The same table with its paths passed through `resolve` (e.g. relative to the config file).
    pub fn resolved(&self, resolve: impl Fn(&Path) -> PathBuf) -> Self {
        Self { path: resolve(&self.path), table: self.table.clone(), secret: self.secret.as_deref().map(resolve) }
    }
}

/// What a store-backed site serves.
pub struct StoreSite {
    /// The analysis table.
    pub data: DataFrame,
    /// Each row's patient key: its pseudonym in lower-case hex.
    pub patient_keys: Vec<String>,
    /// The store's consent knowledge, keyed like `patient_keys`.
    pub consent: ConsentRegistry,
}

impl std::fmt::Debug for StoreSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSite").field("rows", &self.data.nrows()).finish_non_exhaustive()
    }
}

/// Opens the store named by `cfg` (paths already resolved) and reads its table, row keys and
/// consent knowledge under `regime` (the site policy's consent regime).
///
/// Errors name the `[store]` key and file at fault: a missing store (`path`; a store is never
/// created here), an unreadable or wrong secret (`secret`), a missing table or one without
/// patient keys (`table`).
pub fn load(cfg: &StoreToml, regime: ConsentRegime) -> Result<StoreSite, GovernanceError> {
    let at = |key: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source: seh_data::DataError| GovernanceError::Store { key, path, source: Box::new(source) }
    };
    if !cfg.path.is_file() {
        return Err(GovernanceError::Config {
            key: "store.path",
            reason: format!("{}: no such store (run `seh data import` first)", cfg.path.display()),
        });
    }
    let secret_path = cfg.secret.clone().unwrap_or_else(|| seh_data::secret::default_path(&cfg.path));
    let secret = seh_data::secret::read(&secret_path).map_err(at("secret", &secret_path))?;
    let store = Store::open(&cfg.path, secret).map_err(at("secret", &cfg.path))?;
    let (data, keys) = store.read_keyed_table(&cfg.table).map_err(at("table", &cfg.path))?;
    let consent = store.policy_consent(regime).map_err(at("path", &cfg.path))?;
    Ok(StoreSite { data, patient_keys: keys.iter().map(ToString::to_string).collect(), consent })
}

/// Loads the store site for `settings` (its policy gives the consent regime) and makes its row
/// keys and consent registry the settings' consent sources. Returns the analysis table.
///
/// Errors: those of [`load`]; `consent.id_column` given as well (a store's rows are keyed by
/// pseudonym, not by a data column).
pub fn attach(cfg: &StoreToml, settings: &mut GovernanceSettings) -> Result<DataFrame, GovernanceError> {
    if settings.id_column.is_some() {
        return Err(GovernanceError::Config {
            key: "consent.id_column",
            reason: "a store site's rows are keyed by their patient pseudonyms; remove `id_column`".into(),
        });
    }
    let site = load(cfg, settings.policy.consent().regime)?;
    settings.patient_keys = Some(site.patient_keys);
    settings.registry = Some(site.consent);
    Ok(site.data)
}
