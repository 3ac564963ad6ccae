//! The model frame: a [`Formula`] evaluated on a [`DataFrame`], validated, as
//! R's `model.frame` + `model.matrix` (+ `Surv`, `strata`, `cluster`, `offset`).
//!
//! [`ModelFrame::build`] resolves every column the formula uses, removes rows
//! with a missing value in any of them (R's `na.omit`, counted in
//! [`ModelFrame::n_dropped_missing`]), checks the response, and builds:
//!
//! * the response — survival `(start, stop, event)` or a numeric `y`;
//! * the design matrix with R's column names and order ([`Design`]): treatment
//!   coding of `factor()` with the lowest level as reference, interactions with
//!   the first variable varying fastest, full dummy coding where R's marginality
//!   rule asks for it (e.g. a factor with no intercept);
//! * strata codes and R-style labels (`inst=3`, `a=1, b=2`), cluster ids, the
//!   `tt()` columns and the offset.
//!
//! Differences from R, deliberate: factor and stratum levels are taken from the
//! rows kept after `na.omit` (R's `drop.unused.levels = TRUE`), so an unused
//! level never yields an all-zero column; values R would silently turn into `NA`
//! (a status other than 0/1, `log` of a non-positive value) are errors naming
//! the column and data line instead.

mod build;
mod design;

use crate::formula::{FormulaError, Span};

pub use design::{Design, DesignTerm};

/// Which model the frame is for; it decides what the formula may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// `coxph`: `Surv(...)` response; no intercept column (factors coded as if
    /// there were one, like R); `strata()`, `cluster()`, `offset()`, `tt()` allowed.
    Cox,
    /// `survfit`: `Surv(...)` response; the right-hand side variables (and
    /// `strata()`) define the curves; no design matrix.
    KaplanMeier,
    /// `glm`: numeric response; `(Intercept)` unless removed; `offset()` allowed.
    Glm,
}

/// A survival response, validated: every time finite, `start < stop`, events 0/1.
#[derive(Clone, PartialEq)]
pub struct SurvResponse {
    /// Entry times (`Surv(start, stop, event)`), or `None` for right-censored data.
    pub start: Option<Vec<f64>>,
    /// Exit (event or censoring) times.
    pub stop: Vec<f64>,
    /// 1 = event, 0 = censored (status coded 1/2 is recoded as R's `Surv` does).
    pub event: Vec<f64>,
    /// The column names used, for messages: `[start,] stop[, event]`.
    pub columns: Vec<String>,
}

impl std::fmt::Debug for SurvResponse {
    /// Shape only: values may be patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurvResponse")
            .field("n", &self.stop.len())
            .field("counting_process", &self.start.is_some())
            .field("columns", &self.columns)
            .finish()
    }
}

/// The response of a model.
#[derive(Clone, PartialEq)]
pub enum Response {
    /// `Surv(time, event)` or `Surv(start, stop, event)`.
    Surv(SurvResponse),
    /// A numeric column (GLM).
    Numeric {
        /// The column name.
        name: String,
        /// Its values on the kept rows.
        y: Vec<f64>,
    },
}

impl std::fmt::Debug for Response {
    /// Shape only: values may be patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Surv(s) => s.fmt(f),
            Response::Numeric { name, y } => {
                f.debug_struct("Numeric").field("name", name).field("n", &y.len()).finish()
            }
        }
    }
}

/// Group membership (strata of a Cox model, curves of a Kaplan–Meier fit).
#[derive(Clone, PartialEq, Eq)]
pub struct Groups {
    /// Per kept row, the index into `labels`.
    pub codes: Vec<u32>,
    /// Labels in R's level order, e.g. `inst=1`, or `a=1, b=2` for two variables.
    pub labels: Vec<String>,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").field("n", &self.codes.len()).field("labels", &self.labels).finish()
    }
}

/// A validated model frame; all vectors have one entry per kept row.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFrame {
    /// Which model it was built for.
    pub kind: ModelKind,
    /// The response.
    pub response: Response,
    /// The design matrix (no columns for Kaplan–Meier).
    pub design: Design,
    /// Cox strata or Kaplan–Meier groups; `None` when there are none.
    pub strata: Option<Groups>,
    /// `cluster()` ids as codes `0..n_clusters` (ordered by value).
    pub cluster: Option<Vec<u64>>,
    /// Design columns that are `tt()` terms.
    pub tt_columns: Vec<usize>,
    /// Sum of the `offset()` terms.
    pub offset: Option<Vec<f64>>,
    /// Rows removed because a used column was missing (R's `na.omit`).
    pub n_dropped_missing: usize,
    /// 0-based indices (into the data frame) of the kept rows, ascending.
    pub rows: Vec<usize>,
    /// Source lines of the data frame's rows (for error messages, see [`ModelFrame::line_of`]).
    pub source_lines: crate::SourceLines,
}

impl ModelFrame {
    /// Number of kept rows.
    pub fn nrows(&self) -> usize {
        self.rows.len()
    }

    /// The 1-based source line of kept row `k` (0-based), if `k < nrows()`.
    /// Use it for errors about the `k`-th row a model was fitted on: it stays
    /// right when rows were dropped as missing or blank lines were skipped.
    pub fn line_of(&self, k: usize) -> Option<usize> {
        self.rows.get(k).map(|&r| self.source_lines.line(r))
    }

    /// The survival response, if the model has one.
    pub fn surv(&self) -> Option<&SurvResponse> {
        match &self.response {
            Response::Surv(s) => Some(s),
            Response::Numeric { .. } => None,
        }
    }
}

/// Why a model frame could not be built. Data errors name the column and the
/// 1-based line of the CSV file ([`crate::DataFrame::source_line`]), never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The formula is malformed, uses an unknown function or column, or something
    /// the model does not allow. Carries the span and a caret line.
    #[error(transparent)]
    Formula(#[from] FormulaError),
    /// Every row has a missing value in some used column.
    #[error("no complete rows: all {dropped} rows have a missing value in a column the formula uses")]
    NoCompleteRows {
        /// Rows dropped.
        dropped: usize,
    },
    /// `log(x)` of a value ≤ 0.
    #[error("line {line}, column `{column}`: log() needs positive values")]
    NonPositiveLog {
        /// The column.
        column: String,
        /// 1-based CSV line.
        line: usize,
    },
    /// An event indicator other than 0/1 (or 1/2).
    #[error("line {line}, column `{column}`: the event indicator must be 0/1 (or 1/2 as R's Surv accepts: 1 = censored, 2 = event)")]
    InvalidEvent {
        /// The column.
        column: String,
        /// 1-based CSV line.
        line: usize,
    },
    /// A negative survival time.
    #[error("line {line}, column `{column}`: survival times must be >= 0")]
    NegativeTime {
        /// The column.
        column: String,
        /// 1-based CSV line.
        line: usize,
    },
    /// `start >= stop` in `Surv(start, stop, event)`.
    #[error("line {line}, columns `{start}`/`{stop}`: the start time must be before the stop time")]
    StartNotBeforeStop {
        /// Start column.
        start: String,
        /// Stop column.
        stop: String,
        /// 1-based CSV line.
        line: usize,
    },
    /// A Cox model without a single event.
    #[error("column `{column}`: no events in the {n} complete rows; a Cox model needs at least one event")]
    NoEvents {
        /// The event column.
        column: String,
        /// Complete rows.
        n: usize,
    },
    /// `factor(x)` with a single level.
    #[error("column `{column}`: `factor({column})` has a single level in the complete rows; it needs at least two")]
    SingleLevelFactor {
        /// The column.
        column: String,
    },
    /// A design column with one value only: its coefficient cannot be estimated.
    #[error(
        "covariate `{term}` has the same value in all {n} complete rows; its effect cannot be estimated (remove it)"
    )]
    ConstantCovariate {
        /// The design column name.
        term: String,
        /// Complete rows.
        n: usize,
    },
}

impl ModelFrame {
    /// Builds the model frame of `formula` on `data` for a `kind` model.
    ///
    /// Error messages report the source line of the row at fault as `data`
    /// knows it ([`crate::DataFrame::source_line`]: blank lines skipped by the
    /// CSV reader are counted; frames built in memory use row + 2).
    pub fn build(
        data: &crate::DataFrame,
        formula: &crate::formula::Formula,
        kind: ModelKind,
    ) -> Result<Self, ModelError> {
        build::build(data, formula, kind)
    }
}

/// Span helper for errors about a whole formula side.
pub(crate) fn whole(formula: &crate::formula::Formula) -> Span {
    Span::new(0, formula.source.len())
}

impl ModelFrame {
    /// The Cox input of this frame (`None` without a `Surv()` response). Used by
    /// `seh fit cox`, the benchmark and the federation's site step alike.
    pub fn cox_data(&self) -> Option<crate::cox::CoxData> {
        self.clone().into_cox_data()
    }

    /// As [`ModelFrame::cox_data`], taking the frame's vectors instead of copying them.
    pub fn into_cox_data(self) -> Option<crate::cox::CoxData> {
        let ModelFrame { response, design, strata, cluster, offset, .. } = self;
        let Response::Surv(s) = response else { return None };
        Some(crate::cox::CoxData {
            p: design.ncols(),
            start: s.start,
            stop: s.stop,
            event: s.event,
            x: design.values,
            strata: strata.map(|g| crate::cox::Strata { codes: g.codes, labels: g.labels }),
            weights: None,
            offset,
            cluster,
            terms: design.names,
        })
    }
}
