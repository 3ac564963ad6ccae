//! `seh fit cox|km|glm`: fit a model on a local CSV file (or a site-store table) and print it like R.
//!
//! Raw flags ([`FitArgs`]) become a validated [`FitConfig`] in one named step
//! ([`FitConfig::from_args`]): the formula and `--tt` expression are parsed and
//! the flags checked against the model before any data is read.

pub(crate) mod cox;
mod glm;
mod km;

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use seh_stats::formula::{Formula, Terms, VarKind};
use seh_stats::model::{ModelError, ModelFrame, ModelKind};
use seh_stats::ttexpr::TtExpr;
use seh_stats::DataFrame;

/// `seh fit <model>`.
#[derive(Debug, Args)]
pub struct FitArgs {
    #[command(subcommand)]
    model: FitModel,
}

#[derive(Debug, Subcommand)]
enum FitModel {
    /// Cox proportional hazards (R `coxph` + `summary`).
    Cox(CoxArgs),
    /// Kaplan-Meier curves and the log-rank test (R `survfit` + `survdiff`).
    Km(KmArgs),
    /// Generalised linear model (R `glm` + `summary`).
    Glm(GlmArgs),
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// CSV file: header row, numeric columns, empty field = missing.
    #[arg(long, value_name = "FILE.csv", required_unless_present = "store")]
    data: Option<PathBuf>,
    /// Or a site store (`seh data import`) whose --table to fit (e.g. a `seh data cohort` table).
    #[arg(long, value_name = "STORE.sqlite", conflicts_with = "data", requires = "table")]
    store: Option<PathBuf>,
    /// The store table (with --store).
    #[arg(long, requires = "store")]
    table: Option<String>,
    /// The store's site secret file (with --store; default: STORE.secret).
    #[arg(long, requires = "store")]
    secret: Option<PathBuf>,
    /// With --store: keep only the rows whose patients' consent permits this purpose of use
    /// (v3-ActReason code, e.g. HRESCH), as a `seh federate` site does.
    #[arg(long, requires = "store")]
    purpose: Option<String>,
    /// R-style model formula, e.g. "Surv(time, status) ~ age + sex".
    #[arg(long)]
    formula: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Args)]
struct CoxArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// How tied event times are handled.
    #[arg(long, value_enum, default_value_t = TiesArg::Efron)]
    ties: TiesArg,
    /// Time transform for tt() terms, in x (the covariate) and t (time), e.g. "x*log(t)".
    #[arg(long, value_name = "EXPR")]
    tt: Option<String>,
}

#[derive(Debug, Args)]
struct KmArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Confidence interval transformation.
    #[arg(long, value_enum, default_value_t = ConfTypeArg::Log)]
    conf_type: ConfTypeArg,
}

#[derive(Debug, Args)]
struct GlmArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Error distribution (with its canonical link).
    #[arg(long, value_enum)]
    family: FamilyArg,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// R-style printed summary.
    Text,
    /// The result as JSON (field names of the R reference files).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TiesArg {
    Efron,
    Breslow,
    Exact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ConfTypeArg {
    Log,
    #[value(name = "log-log")]
    LogLog,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FamilyArg {
    Binomial,
    Gaussian,
    Poisson,
}

/// What to fit, validated.
#[derive(Debug)]
pub enum ModelConfig {
    /// A Cox model.
    Cox {
        /// Ties method.
        ties: seh_stats::cox::Ties,
        /// The `tt()` transform, required exactly when the formula has `tt()` terms.
        tt: Option<TtExpr>,
    },
    /// Kaplan-Meier curves.
    Km {
        /// Interval transformation.
        conf_type: seh_stats::km::ConfType,
    },
    /// A GLM.
    Glm {
        /// The family.
        family: seh_stats::glm::Family,
    },
}

/// A validated `seh fit` invocation.
#[derive(Debug)]
pub struct FitConfig {
    /// The data file (empty with `store`).
    pub data: PathBuf,
    /// A site-store table instead of `data`.
    pub store: Option<crate::data_cmd::StoreTable>,
    /// The parsed formula.
    pub formula: Formula,
    /// Output format.
    pub format: Format,
    /// The model and its options.
    pub model: ModelConfig,
}

impl FitConfig {
    /// Validates raw flags: parses the formula and `--tt`, maps enum flags.
    pub fn from_args(args: FitArgs) -> anyhow::Result<FitConfig> {
        let (common, model) = match args.model {
            FitModel::Cox(a) => {
                let ties = match a.ties {
                    TiesArg::Efron => seh_stats::cox::Ties::Efron,
                    TiesArg::Breslow => seh_stats::cox::Ties::Breslow,
                    TiesArg::Exact => seh_stats::cox::Ties::Exact,
                };
                let tt = a.tt.as_deref().map(TtExpr::parse).transpose().map_err(|e| anyhow!("--tt: {e}"))?;
                (a.common, ModelConfig::Cox { ties, tt })
            }
            FitModel::Km(a) => {
                let conf_type = match a.conf_type {
                    ConfTypeArg::Log => seh_stats::km::ConfType::Log,
                    ConfTypeArg::LogLog => seh_stats::km::ConfType::LogLog,
                    ConfTypeArg::Plain => seh_stats::km::ConfType::Plain,
                };
                (a.common, ModelConfig::Km { conf_type })
            }
            FitModel::Glm(a) => {
                let family = match a.family {
                    FamilyArg::Binomial => seh_stats::glm::Family::Binomial,
                    FamilyArg::Gaussian => seh_stats::glm::Family::Gaussian,
                    FamilyArg::Poisson => seh_stats::glm::Family::Poisson,
                };
                (a.common, ModelConfig::Glm { family })
            }
        };
        let formula = Formula::parse(&common.formula).map_err(|e| anyhow!("{e}"))?;
        let terms = Terms::from_formula(&formula).map_err(|e| anyhow!("{e}"))?;
        let has_tt = terms.variables.iter().any(|v| matches!(v.kind, VarKind::Tt(_)));
        if let ModelConfig::Cox { tt, .. } = &model {
            if has_tt && tt.is_none() {
                bail!("the formula has tt() terms: give the transform with --tt, e.g. --tt \"x*log(t)\"");
            }
            if !has_tt && tt.is_some() {
                bail!("--tt was given but the formula has no tt() term (write e.g. `+ tt(age)`)");
            }
        }
        let store = common.store.map(|store| crate::data_cmd::StoreTable {
            store,
            table: common.table.unwrap_or_default(),
            secret: common.secret,
            purpose: common.purpose,
        });
        let data = common.data.unwrap_or_default();
        Ok(FitConfig { data, store, formula, format: common.format, model })
    }

    /// The data file name (or `STORE:TABLE`) as shown in messages and the `Call:` line.
    pub fn data_name(&self) -> String {
        self.store.as_ref().map_or_else(|| self.data.display().to_string(), |s| s.name())
    }
}

/// Entry point of `seh fit`.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let config = FitConfig::from_args(args)?;
    let name = config.data_name();
    let data = match &config.store {
        Some(store) => store.load()?,
        None => {
            let bytes = std::fs::read(&config.data).with_context(|| format!("{name}: cannot read the data file"))?;
            DataFrame::from_csv_bytes(&bytes, &name).map_err(|e| anyhow!("{e}"))?
        }
    };
    let text = fit_frame(&config, &data, &name)?;
    crate::output::emit(&text)?;
    Ok(())
}

/// Builds the model frame and fits; returns the text to print.
pub fn fit_frame(config: &FitConfig, data: &DataFrame, name: &str) -> anyhow::Result<String> {
    let kind = match config.model {
        ModelConfig::Cox { .. } => ModelKind::Cox,
        ModelConfig::Km { .. } => ModelKind::KaplanMeier,
        ModelConfig::Glm { .. } => ModelKind::Glm,
    };
    let frame = ModelFrame::build(data, &config.formula, kind).map_err(|e| model_error(e, name))?;
    let ctx = Ctx { name, formula: &config.formula, frame: &frame, format: config.format };
    match &config.model {
        ModelConfig::Cox { ties, tt } => cox::run(&ctx, *ties, tt.as_ref()),
        ModelConfig::Km { conf_type } => km::run(&ctx, *conf_type),
        ModelConfig::Glm { family } => glm::run(&ctx, *family),
    }
}

/// What every model runner needs.
struct Ctx<'a> {
    name: &'a str,
    formula: &'a Formula,
    frame: &'a ModelFrame,
    format: Format,
}

impl Ctx<'_> {
    /// Message for an error that refers to a 1-based row of the complete rows: adds the file and line.
    fn row_error(&self, row: Option<usize>, msg: impl std::fmt::Display) -> anyhow::Error {
        match row.and_then(|r| r.checked_sub(1)).and_then(|k| self.frame.line_of(k)) {
            Some(line) => anyhow!("{}: line {line}: {msg}", self.name),
            None => anyhow!("{}: {msg}", self.name),
        }
    }

    /// Adds `n_dropped_missing` and the formula to a serialised result.
    fn json(&self, value: impl serde::Serialize, extra: Vec<(&str, serde_json::Value)>) -> anyhow::Result<String> {
        let mut v = serde_json::to_value(value)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("formula".into(), serde_json::Value::String(self.formula.to_string()));
            obj.insert("n_dropped_missing".into(), self.frame.n_dropped_missing.into());
            for (k, x) in extra {
                obj.insert(k.into(), x);
            }
        }
        Ok(serde_json::to_string_pretty(&v)? + "\n")
    }
}

/// Model-frame errors: formula errors as they are (with the caret line), data errors prefixed by the file.
fn model_error(e: ModelError, name: &str) -> anyhow::Error {
    match e {
        ModelError::Formula(f) => anyhow!("{f}"),
        other => anyhow!("{name}: {other}"),
    }
}
