//! A site's policy (one TOML file per node; every key is documented in
//! `examples/policy/site-policy.toml`), its strict parser and validator, and [`decide`].
//!
//! Floors: DataSHIELD's default disclosure settings (`nfilter.tab = 3`, `nfilter.subset = 3`,
//! `nfilter.glm = 0.33`) are floors a site may only tighten; a looser value is an error naming
//! the key and line.

mod decide;
mod file;

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use decide::{check_histogram, check_rows, decide, DpRequest, StudyRequest, TimeGridRequest};

use crate::consent::{ConsentRegime, Purpose};
use crate::error::PolicyError;

/// DataSHIELD `nfilter.tab`: the smallest minimum cell count a site may configure.
pub const FLOOR_MIN_CELL_COUNT: u64 = 3;
/// The smallest minimum risk-set size a site may configure (DataSHIELD's `nfilter.tab`).
pub const FLOOR_MIN_RISK_SET: u64 = 3;
/// DataSHIELD `nfilter.subset`: the smallest minimum subset size a site may configure.
pub const FLOOR_MIN_SUBSET_SIZE: u64 = 3;
/// DataSHIELD `nfilter.glm`: the largest parameters-per-row ratio a site may configure.
pub const CEILING_PARAMETERS_PER_ROW: f64 = 0.33;

/// An analysis kind a study can request.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Counts, sums, histograms, contingency tables (`descriptive`).
    Descriptive,
    /// Kaplan–Meier (`km`).
    Km,
    /// Log-rank test (`logrank`).
    Logrank,
    /// Cox proportional hazards (`cox`).
    Cox,
    /// Generalized linear model (`glm`).
    Glm,
    /// Federated learning (`fl`).
    Fl,
    /// Vertical partitioning: PSI and cross-site products (`vertical`).
    Vertical,
}

impl AnalysisKind {
    /// All kinds, for documentation and error messages.
    pub const ALL: [AnalysisKind; 7] = [
        AnalysisKind::Descriptive,
        AnalysisKind::Km,
        AnalysisKind::Logrank,
        AnalysisKind::Cox,
        AnalysisKind::Glm,
        AnalysisKind::Fl,
        AnalysisKind::Vertical,
    ];

    /// The policy-file name (`descriptive`, `km`, …).
    pub fn name(self) -> &'static str {
        match self {
            AnalysisKind::Descriptive => "descriptive",
            AnalysisKind::Km => "km",
            AnalysisKind::Logrank => "logrank",
            AnalysisKind::Cox => "cox",
            AnalysisKind::Glm => "glm",
            AnalysisKind::Fl => "fl",
            AnalysisKind::Vertical => "vertical",
        }
    }

    /// Parses a policy-file name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A secure-aggregation back-end: named in site policies and, as the study's `aggregation`
/// field, in every study spec (chosen by the researcher, signed with the spec, checked by each
/// site's policy; nothing falls back from one to the other).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Pairwise masking (SecAgg+), `secagg` (the default).
    #[default]
    Secagg,
    /// Threshold homomorphic encryption, `he`.
    He,
}

impl Aggregation {
    /// The policy-file name.
    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Secagg => "secagg",
            Aggregation::He => "he",
        }
    }

    /// Parses a policy-file name.
    pub fn from_name(s: &str) -> Option<Self> {
        [Aggregation::Secagg, Aggregation::He].into_iter().find(|k| k.name() == s)
    }
}

/// A researcher the site serves.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Researcher {
    /// A label for logs.
    pub name: String,
    /// The Ed25519 public key (a valid curve point).
    pub key: [u8; 32],
}

/// Disclosure-control thresholds (each at least as strict as its DataSHIELD floor).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Disclosure {
    /// Released counts in 1..min_cell_count are suppressed (≥ [`FLOOR_MIN_CELL_COUNT`]).
    pub min_cell_count: u64,
    /// Every released risk set has at least this many at risk (≥ [`FLOOR_MIN_RISK_SET`]).
    pub min_risk_set: u64,
    /// A site with fewer usable rows refuses (≥ [`FLOOR_MIN_SUBSET_SIZE`]).
    pub min_subset_size: u64,
    /// Model parameters ≤ this × n (in (0, [`CEILING_PARAMETERS_PER_ROW`]]).
    pub max_parameters_per_row: f64,
    /// Histogram bounds must be multiples of this width and every bin a whole number of such
    /// steps (`disclosure.min_bin_width`, optional; 0 = no lattice). Moving a bound then never
    /// separates two values closer than one step, so the bound-moving search localises a value
    /// no better than this.
    pub min_bin_width: f64,
    /// `local_verification = true`: the floors above are lowered to 1 (and the parameter
    /// ceiling to 1.0) so that a researcher who holds every site's rows on one machine
    /// (`seh federate`) can check a federated result against R exactly. A node started with such
    /// a policy says so loudly; a real site must never set it.
    pub local_verification: bool,
}

/// Allowed time-grid coarseness.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct TimeGridPolicy {
    /// Whether the exact union of event times may be used as a grid.
    pub allow_event_times: bool,
    /// Minimum spacing between consecutive grid points (analysis time unit), ≥ 0.
    pub min_step: f64,
}

/// Differential-privacy settings; budgets are per researcher at this site.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct DpPolicy {
    /// Every release for a study must be noised.
    pub required: bool,
    /// Total ε a researcher may spend at this site (sequential composition), > 0.
    pub epsilon_total: f64,
    /// Largest ε of a single query, in (0, epsilon_total].
    pub epsilon_per_query: f64,
    /// Total δ a researcher may spend, in [0, 1).
    pub delta_total: f64,
    /// Largest δ of a single query, in [0, delta_total].
    pub delta_per_query: f64,
}

/// Consent settings.
#[derive(Clone, PartialEq, Debug)]
pub struct ConsentPolicy {
    /// Opt-in or opt-out regime for patients without an applicable record.
    pub regime: ConsentRegime,
    /// Purposes of use (v3-ActReason) the site serves; a study purpose must be one of them or a
    /// specialisation of one.
    pub purposes: Vec<Purpose>,
}

/// A validated site policy. Only [`SitePolicy::from_toml_str`] and [`SitePolicy::load`] make one.
#[derive(Clone, PartialEq, Debug)]
pub struct SitePolicy {
    researchers: Vec<Researcher>,
    analyses: Vec<AnalysisKind>,
    aggregation: Vec<Aggregation>,
    disclosure: Disclosure,
    time_grid: TimeGridPolicy,
    dp: DpPolicy,
    consent: ConsentPolicy,
}

/// Decodes an Ed25519 public key written as 64 hex digits or 44 characters of padded base64 and
/// checks it is a valid curve point.
pub fn parse_public_key(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    let bytes: Vec<u8> = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32).map(|i| s.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect::<Option<_>>()?
    } else {
        base64::engine::general_purpose::STANDARD.decode(s).ok()?
    };
    let key: [u8; 32] = bytes.try_into().ok()?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).ok()?;
    Some(key)
}

/// The text of a permissive policy file at the DataSHIELD floors, as a converted legacy
/// `[policy]` table and the in-memory test harnesses use: the given researchers (`(name, key)`,
/// key as 64 hex digits) and analysis kinds, every count floor (`min_cell_count`,
/// `min_risk_set`, `min_subset_size`) set to `min_count`, `max_parameters_per_row = 0.33`, both
/// aggregation back-ends, exact event-time grids allowed, no histogram lattice, DP optional with
/// ε 10 in total (1 per query) and δ 1e-5 (1e-6 per query), and an opt-out consent regime serving
/// `HRESCH`.
///
/// A `min_count` below the floors writes `local_verification = true` (see
/// [`Disclosure::local_verification`]). `seh federate` writes [`open_policy_toml_for`] instead.
pub fn open_policy_toml(researchers: &[(String, String)], analyses: &[AnalysisKind], min_count: u64) -> String {
    let floor = FLOOR_MIN_CELL_COUNT.max(FLOOR_MIN_RISK_SET).max(FLOOR_MIN_SUBSET_SIZE);
    let local = min_count < floor;
    let v = PolicyValues {
        min_cell_count: min_count,
        min_risk_set: min_count,
        min_subset_size: min_count,
        ratio: if local { "1.0" } else { "0.33" },
        local,
        allow_event_times: true,
        min_step: "0.0",
        min_bin_width: "0.0",
        dp_required: false,
    };
    policy_text(researchers, analyses, &v, &[crate::consent::HRESCH])
}

/// The values of `examples/policy/site-policy.toml` that [`open_policy_toml_for`] copies.
pub mod example {
    /// `disclosure.min_subset_size`.
    pub const MIN_SUBSET_SIZE: u64 = 10;
    /// `disclosure.max_parameters_per_row`.
    pub const MAX_PARAMETERS_PER_ROW: &str = "0.2";
    /// `disclosure.min_bin_width`.
    pub const MIN_BIN_WIDTH: &str = "5.0";
    /// `time_grid.min_step`.
    pub const MIN_STEP: &str = "30.0";
}

/// The site policy `seh federate` writes for every site of a local trial: exactly the values of
/// `examples/policy/site-policy.toml` (minimum cell count and risk set 5, subset size 10, 0.2
/// parameters per row, histogram lattice 5.0, no exact event-time grids, grid step ≥ 30, DP
/// required for descriptive releases with ε 10 in total and 1 per query, δ 1e-5 / 1e-6) except
/// where a flag says otherwise:
/// * `min_count` (`--min-cell-count` / `--min-risk-set`) sets `min_cell_count` and
///   `min_risk_set` (and raises `min_subset_size` if larger);
/// * a `min_count` below the floors (e.g. `--min-risk-set 1`) makes a *local verification* run
///   (the researcher holds every site's rows and checks the federated result against R): every
///   count floor is `min_count`, the parameter ratio 1.0, exact event-time grids allowed, no
///   lattice and no mandatory DP, and `local_verification = true` (see
///   [`Disclosure::local_verification`]);
/// * the consent regime is opt-out (a local trial has no consent records) serving `purposes`
///   (v3-ActReason codes such as `HRESCH`; checked when the text is parsed).
pub fn open_policy_toml_for(
    researchers: &[(String, String)],
    analyses: &[AnalysisKind],
    min_count: u64,
    purposes: &[&str],
) -> String {
    trial_policy_toml(researchers, analyses, min_count, purposes, false)
}

/// [`open_policy_toml_for`] with one more flag: `allow_event_times` (`seh federate
/// --allow-event-times`, and `seh demo`) permits exact event-time grids, so a pooled Cox or
/// Kaplan–Meier fit equals the pooled one (the union of event times is then revealed to the
/// study's parties); every other value stays the example's.
pub fn trial_policy_toml(
    researchers: &[(String, String)],
    analyses: &[AnalysisKind],
    min_count: u64,
    purposes: &[&str],
    allow_event_times: bool,
) -> String {
    let floor = FLOOR_MIN_CELL_COUNT.max(FLOOR_MIN_RISK_SET).max(FLOOR_MIN_SUBSET_SIZE);
    let v = if min_count < floor {
        PolicyValues {
            min_cell_count: min_count,
            min_risk_set: min_count,
            min_subset_size: min_count,
            ratio: "1.0",
            local: true,
            allow_event_times: true,
            min_step: "0.0",
            min_bin_width: "0.0",
            dp_required: false,
        }
    } else {
        PolicyValues {
            min_cell_count: min_count,
            min_risk_set: min_count,
            min_subset_size: example::MIN_SUBSET_SIZE.max(min_count),
            ratio: example::MAX_PARAMETERS_PER_ROW,
            local: false,
            allow_event_times,
            min_step: example::MIN_STEP,
            min_bin_width: example::MIN_BIN_WIDTH,
            dp_required: true,
        }
    };
    policy_text(researchers, analyses, &v, purposes)
}

struct PolicyValues {
    min_cell_count: u64,
    min_risk_set: u64,
    min_subset_size: u64,
    ratio: &'static str,
    local: bool,
    allow_event_times: bool,
    min_step: &'static str,
    min_bin_width: &'static str,
    dp_required: bool,
}

fn policy_text(
    researchers: &[(String, String)],
    analyses: &[AnalysisKind],
    v: &PolicyValues,
    purposes: &[&str],
) -> String {
    let purposes: Vec<String> = purposes.iter().map(|p| format!("{p:?}")).collect();
    let local = if v.local { "local_verification = true\n" } else { "" };
    let mut t = String::from("version = 1\n");
    for (name, key) in researchers {
        t.push_str(&format!("\n[[researchers]]\nname = {name:?}\nkey = {key:?}\n"));
    }
    let kinds: Vec<String> = analyses.iter().map(|a| format!("{:?}", a.name())).collect();
    t.push_str(&format!(
        "\n[analyses]\nallowed = [{}]\n\n[aggregation]\nallowed = [\"secagg\", \"he\"]\n\n\
         [disclosure]\nmin_cell_count = {}\nmin_risk_set = {}\nmin_subset_size = {}\n\
         max_parameters_per_row = {}\nmin_bin_width = {}\n{local}\n[time_grid]\nallow_event_times = {}\nmin_step = {}\n\n\
         [dp]\nrequired = {}\nepsilon_total = 10.0\nepsilon_per_query = 1.0\ndelta_total = 1e-5\ndelta_per_query = 1e-6\n\n\
         [consent]\nregime = \"opt-out\"\npurposes = [{}]\n",
        kinds.join(", "),
        v.min_cell_count,
        v.min_risk_set,
        v.min_subset_size,
        v.ratio,
        v.min_bin_width,
        v.allow_event_times,
        v.min_step,
        v.dp_required,
        purposes.join(", ")
    ));
    t
}

struct Ctx<'a> {
    text: &'a str,
    source: &'a str,
}

impl Ctx<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        file::line_col(self.text, s.span().start).0
    }
    fn invalid<T>(&self, s: &Spanned<T>, key: &str, reason: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            source_name: self.source.to_owned(),
            line: self.line(s),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
    fn looser<T: ToString>(&self, s: &Spanned<T>, key: &str, floor: impl ToString) -> PolicyError {
        PolicyError::LooserThanFloor {
            source_name: self.source.to_owned(),
            line: self.line(s),
            key: key.to_owned(),
            value: s.get_ref().to_string(),
            floor: floor.to_string(),
        }
    }
    fn count(&self, s: &Spanned<i64>, key: &str, floor: u64) -> Result<u64, PolicyError> {
        let v = u64::try_from(*s.get_ref()).map_err(|_| self.invalid(s, key, "must be a non-negative integer"))?;
        if v < floor {
            return Err(self.looser(s, key, floor));
        }
        Ok(v)
    }
    fn real(&self, s: &Spanned<f64>, key: &str, lo: f64, hi: f64, what: &str) -> Result<f64, PolicyError> {
        let v = *s.get_ref();
        if !v.is_finite() || v < lo || v > hi {
            return Err(self.invalid(s, key, format!("must be {what}")));
        }
        Ok(v)
    }
}

impl SitePolicy {
    /// Parses and validates a policy file's text. `source_name` labels errors (a path).
    ///
    /// Errors: TOML syntax or type errors, unknown keys and missing keys, invalid values, and
    /// values looser than the DataSHIELD floors — each naming the key and (where it exists) line.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let raw = file::parse(text, source_name)?;
        let cx = Ctx { text, source: source_name };
        if *raw.version.get_ref() != 1 {
            return Err(cx.invalid(&raw.version, "version", "only version 1 is supported"));
        }
        let mut researchers: Vec<Researcher> = Vec::new();
        for (i, r) in raw.researchers.iter().enumerate() {
            let key_name = format!("researchers[{i}].key");
            let key = parse_public_key(r.key.get_ref())
                .ok_or_else(|| cx.invalid(&r.key, &key_name, "not an Ed25519 public key (64 hex digits or base64)"))?;
            if researchers.iter().any(|x| x.key == key) {
                return Err(cx.invalid(&r.key, &key_name, "duplicate researcher key"));
            }
            if r.name.get_ref().trim().is_empty() {
                return Err(cx.invalid(&r.name, &format!("researchers[{i}].name"), "must not be empty"));
            }
            researchers.push(Researcher { name: r.name.get_ref().clone(), key });
        }
        let mut analyses = Vec::new();
        for a in raw.analyses.allowed.get_ref() {
            let k = AnalysisKind::from_name(a.get_ref()).ok_or_else(|| {
                let known: Vec<_> = AnalysisKind::ALL.iter().map(|k| k.name()).collect();
                cx.invalid(a, "analyses.allowed", format!("unknown analysis kind (known: {})", known.join(", ")))
            })?;
            if !analyses.contains(&k) {
                analyses.push(k);
            }
        }
        let mut aggregation = Vec::new();
        for a in raw.aggregation.allowed.get_ref() {
            let k = Aggregation::from_name(a.get_ref())
                .ok_or_else(|| cx.invalid(a, "aggregation.allowed", "unknown back-end (known: secagg, he)"))?;
            if !aggregation.contains(&k) {
                aggregation.push(k);
            }
        }
        let d = &raw.disclosure;
        let local = d.local_verification.as_ref().is_some_and(|v| *v.get_ref());
        // A local verification run (every site's rows on the researcher's own machine) may go
        // below the floors; see `Disclosure::local_verification`.
        let floor = |f: u64| if local { 1 } else { f };
        let ceiling = if local { 1.0 } else { CEILING_PARAMETERS_PER_ROW };
        let ratio_key = "disclosure.max_parameters_per_row";
        let ratio = cx.real(&d.max_parameters_per_row, ratio_key, 0.0, f64::INFINITY, "a positive number")?;
        if ratio <= 0.0 {
            return Err(cx.invalid(&d.max_parameters_per_row, ratio_key, "must be positive"));
        }
        if ratio > ceiling {
            return Err(cx.looser(&d.max_parameters_per_row, ratio_key, ceiling));
        }
        let disclosure = Disclosure {
            min_cell_count: cx.count(&d.min_cell_count, "disclosure.min_cell_count", floor(FLOOR_MIN_CELL_COUNT))?,
            min_risk_set: cx.count(&d.min_risk_set, "disclosure.min_risk_set", floor(FLOOR_MIN_RISK_SET))?,
            min_subset_size: cx.count(
                &d.min_subset_size,
                "disclosure.min_subset_size",
                floor(FLOOR_MIN_SUBSET_SIZE),
            )?,
            max_parameters_per_row: ratio,
            min_bin_width: match &d.min_bin_width {
                Some(w) => cx.real(w, "disclosure.min_bin_width", 0.0, 1e15, "finite and ≥ 0")?,
                None => 0.0,
            },
            local_verification: local,
        };
        let time_grid = TimeGridPolicy {
            allow_event_times: *raw.time_grid.allow_event_times.get_ref(),
            min_step: cx.real(&raw.time_grid.min_step, "time_grid.min_step", 0.0, f64::MAX, "finite and ≥ 0")?,
        };
        let p = &raw.dp;
        let epsilon_total = cx.real(&p.epsilon_total, "dp.epsilon_total", f64::MIN_POSITIVE, 1e6, "in (0, 1e6]")?;
        let epsilon_per_query = cx.real(
            &p.epsilon_per_query,
            "dp.epsilon_per_query",
            f64::MIN_POSITIVE,
            epsilon_total,
            "in (0, epsilon_total]",
        )?;
        let delta_total = cx.real(&p.delta_total, "dp.delta_total", 0.0, 0.5, "in [0, 0.5]")?;
        let delta_per_query =
            cx.real(&p.delta_per_query, "dp.delta_per_query", 0.0, delta_total, "in [0, delta_total]")?;
        let dp = DpPolicy {
            required: *p.required.get_ref(),
            epsilon_total,
            epsilon_per_query,
            delta_total,
            delta_per_query,
        };
        let regime = match raw.consent.regime.get_ref().as_str() {
            "opt-in" => ConsentRegime::OptIn,
            "opt-out" => ConsentRegime::OptOut,
            _ => return Err(cx.invalid(&raw.consent.regime, "consent.regime", "must be \"opt-in\" or \"opt-out\"")),
        };
        let mut purposes = Vec::new();
        for c in raw.consent.purposes.get_ref() {
            let code = c.get_ref().trim();
            if let Err(e) = crate::consent::check_purpose_code(code) {
                return Err(cx.invalid(c, "consent.purposes", e.to_string()));
            }
            purposes.push(Purpose::act_reason(code));
        }
        if purposes.is_empty() {
            return Err(cx.invalid(&raw.consent.purposes, "consent.purposes", "must list at least one purpose"));
        }
        Ok(Self {
            researchers,
            analyses,
            aggregation,
            disclosure,
            time_grid,
            dp,
            consent: ConsentPolicy { regime, purposes },
        })
    }

    /// Reads and validates the policy file at `path` (errors are labelled with the path). I/O
    /// failures are reported as [`PolicyError::Syntax`] at line 1 with the I/O message.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Syntax {
            source_name: name.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read: {e}"),
        })?;
        Self::from_toml_str(&text, &name)
    }

    /// Researchers served.
    pub fn researchers(&self) -> &[Researcher] {
        &self.researchers
    }
    /// Analysis kinds served.
    pub fn analyses(&self) -> &[AnalysisKind] {
        &self.analyses
    }
    /// Aggregation back-ends allowed.
    pub fn aggregation(&self) -> &[Aggregation] {
        &self.aggregation
    }
    /// Disclosure thresholds.
    pub fn disclosure(&self) -> &Disclosure {
        &self.disclosure
    }
    /// Time-grid coarseness.
    pub fn time_grid(&self) -> &TimeGridPolicy {
        &self.time_grid
    }
    /// DP settings.
    pub fn dp(&self) -> &DpPolicy {
        &self.dp
    }
    /// Consent settings.
    pub fn consent(&self) -> &ConsentPolicy {
        &self.consent
    }
}
