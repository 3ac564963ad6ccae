//! The persistent per-researcher privacy-budget ledger of a site.
//!
//! **Composition.** Spending is accounted by basic sequential composition: a researcher who has
//! run queries with (ε₁, δ₁), …, (ε_k, δ_k) at this site has spent (Σεᵢ, Σδᵢ), and a query is
//! refused with [`Rule::DpBudgetExhausted`] if it would take the sum above the policy's
//! `dp.epsilon_total` / `dp.delta_total`. Amounts are stored as integers (ε in units of 1e-9,
//! rounded up when charged; δ in units of 1e-18, rounded up), so repeated charges never drift
//! below the true sum.
//!
//! **Durability.** The ledger is charged *before* noise is drawn (a crash after charging loses
//! budget, never under-counts it). Each charge rewrites the file atomically: write a temporary
//! file in the same directory, fsync it, rename it over the ledger, fsync the directory. A ledger
//! file that exists but cannot be parsed is an error, never silently reset. One node process
//! owns a ledger file (no cross-process locking).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decision::{Refusal, Rule};
use crate::error::{DpError, LedgerError};
use crate::policy::SitePolicy;

const EPS_UNIT: f64 = 1e9;
const DELTA_UNIT: f64 = 1e18;

/// What one researcher has spent at this site.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spent {
    /// ε spent, in units of 1e-9.
    pub epsilon_nano: u64,
    /// δ spent, in units of 1e-18.
    pub delta_atto: u64,
    /// Number of charged queries.
    pub queries: u64,
}

impl Spent {
    /// ε spent.
    pub fn epsilon(&self) -> f64 {
        self.epsilon_nano as f64 / EPS_UNIT
    }
    /// δ spent.
    pub fn delta(&self) -> f64 {
        self.delta_atto as f64 / DELTA_UNIT
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    version: u32,
    /// Researcher public key (hex) → spending.
    researchers: BTreeMap<String, Spent>,
}

/// A successful charge: the ε and δ a mechanism may now use, once. Not `Clone`; the release
/// functions in [`crate::dp`] take it by value.
#[derive(Debug, PartialEq)]
pub struct BudgetCharge {
    pub(crate) epsilon: f64,
    pub(crate) delta: f64,
}

impl BudgetCharge {
    /// The ε charged.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }
    /// The δ charged.
    pub fn delta(&self) -> f64 {
        self.delta
    }
}

/// Why a charge did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// The policy refuses (per-query limit or exhausted budget).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The ledger could not be persisted; nothing was charged and no noise may be drawn.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The site's budget ledger, backed by a JSON file.
#[derive(Debug)]
pub struct BudgetLedger {
    path: PathBuf,
    state: BTreeMap<String, Spent>,
}

impl std::fmt::Debug for LedgerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerFile").field("researchers", &self.researchers.len()).finish()
    }
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn units(x: f64, unit: f64, name: &'static str) -> Result<u64, DpError> {
    if !(x.is_finite() && x >= 0.0) {
        return Err(DpError::InvalidParameter { name, reason: "must be finite and non-negative" });
    }
    let u = (x * unit).ceil();
    if u >= u64::MAX as f64 {
        return Err(DpError::InvalidParameter { name, reason: "too large" });
    }
    Ok(u as u64)
}

impl BudgetLedger {
    /// Opens the ledger at `path`, creating an empty one (written atomically) if the file does
    /// not exist. Errors when the file cannot be read or written, or is not a valid ledger.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        match fs::read(path) {
            Ok(bytes) => {
                let file: LedgerFile = serde_json::from_slice(&bytes)
                    .map_err(|e| LedgerError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
                if file.version != 1 {
                    return Err(LedgerError::Corrupt { path: path.to_owned(), reason: "unsupported version".into() });
                }
                if let Some(k) = file.researchers.keys().find(|k| k.len() != 64) {
                    let reason = format!("researcher key of length {} (expected 64 hex digits)", k.len());
                    return Err(LedgerError::Corrupt { path: path.to_owned(), reason });
                }
                Ok(Self { path: path.to_owned(), state: file.researchers })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ledger = Self { path: path.to_owned(), state: BTreeMap::new() };
                ledger.persist(&ledger.state)?;
                Ok(ledger)
            }
            Err(source) => Err(LedgerError::Io { path: path.to_owned(), op: "read", source }),
        }
    }

    /// What `researcher` has spent so far.
    pub fn spent(&self, researcher: &[u8; 32]) -> Spent {
        self.state.get(&hex(researcher)).copied().unwrap_or_default()
    }

    fn next(&self, policy: &SitePolicy, researcher: &[u8; 32], epsilon: f64, delta: f64) -> Result<Spent, ChargeError> {
        let dp = policy.dp();
        if !(epsilon.is_finite() && epsilon > 0.0) || epsilon > dp.epsilon_per_query {
            let reason = format!("per-query epsilon must be in (0, {}]", dp.epsilon_per_query);
            return Err(Refusal::new(Rule::DpEpsilonPerQuery, reason).into());
        }
        if !(delta.is_finite() && delta >= 0.0) || delta > dp.delta_per_query {
            let reason = format!("per-query delta must be in [0, {}]", dp.delta_per_query);
            return Err(Refusal::new(Rule::DpDeltaPerQuery, reason).into());
        }
        let e = units(epsilon, EPS_UNIT, "epsilon").map_err(LedgerError::from)?;
        let d = units(delta, DELTA_UNIT, "delta").map_err(LedgerError::from)?;
        let e_cap = (dp.epsilon_total * EPS_UNIT).floor() as u64;
        let d_cap = (dp.delta_total * DELTA_UNIT).floor() as u64;
        let cur = self.spent(researcher);
        let ne = cur.epsilon_nano.saturating_add(e);
        let nd = cur.delta_atto.saturating_add(d);
        if ne > e_cap || nd > d_cap {
            let reason = format!(
                "the researcher's privacy budget at this site is exhausted (epsilon {:.6} of {} spent, delta {:e} of {:e})",
                cur.epsilon(),
                dp.epsilon_total,
                cur.delta(),
                dp.delta_total
            );
            return Err(Refusal::new(Rule::DpBudgetExhausted, reason).into());
        }
        Ok(Spent { epsilon_nano: ne, delta_atto: nd, queries: cur.queries.saturating_add(1) })
    }

    /// Checks, without charging, that `researcher` may run a query with (`epsilon`, `delta`).
    pub fn check(&self, policy: &SitePolicy, researcher: &[u8; 32], epsilon: f64, delta: f64) -> Result<(), Refusal> {
        match self.next(policy, researcher, epsilon, delta) {
            Ok(_) => Ok(()),
            Err(ChargeError::Refused(r)) => Err(r),
            Err(ChargeError::Ledger(e)) => Err(Refusal::new(Rule::DpEpsilonPerQuery, e.to_string())),
        }
    }

    /// Charges (`epsilon`, `delta`) to `researcher` and persists the ledger before returning the
    /// [`BudgetCharge`] that a DP release needs. Refuses per-query limits and exhausted budgets;
    /// on any error nothing is charged.
    pub fn charge(
        &mut self,
        policy: &SitePolicy,
        researcher: &[u8; 32],
        epsilon: f64,
        delta: f64,
    ) -> Result<BudgetCharge, ChargeError> {
        let spent = self.next(policy, researcher, epsilon, delta)?;
        let mut state = self.state.clone();
        state.insert(hex(researcher), spent);
        self.persist(&state)?;
        self.state = state;
        Ok(BudgetCharge { epsilon, delta })
    }

    fn persist(&self, state: &BTreeMap<String, Spent>) -> Result<(), LedgerError> {
        let io = |op: &'static str| {
            let path = self.path.clone();
            move |source| LedgerError::Io { path, op, source }
        };
        let file = LedgerFile { version: 1, researchers: state.clone() };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| LedgerError::Corrupt { path: self.path.clone(), reason: e.to_string() })?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            // Owner-only: the ledger names researchers and what they spent.
            let mut o = fs::OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            let mut f = o.open(&tmp).map_err(io("create temp file"))?;
            f.write_all(&bytes).map_err(io("write temp file"))?;
            f.sync_all().map_err(io("fsync temp file"))?;
        }
        fs::rename(&tmp, &self.path).map_err(io("rename"))?;
        // Make the rename durable. Opening a directory for fsync works on Unix.
        #[cfg(unix)]
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io("fsync directory"))?;
        Ok(())
    }
}
