//! Cox proportional-hazards regression, exact against R `survival` 3.5-3
//! (`coxph` with `ties = "efron"`, `"breslow"` or `"exact"`).
//!
//! The engine is split the way a federation needs it:
//!
//! * [`data`]: the input ([`CoxData`]), validated and time-fixed like R's
//!   `Surv` + `aeqSurv`.
//! * [`prepared`]: the sorted, centred and scaled copy the kernel walks
//!   ([`PreparedCox`]); sorting happens once per fit.
//! * [`kernel`]: "evaluate at β". It walks the event times of each stratum and
//!   emits the *additive* risk-set sums of every event time into a
//!   [`kernel::CoxSink`]. [`kernel::fold_time`] turns the sums of one time into
//!   log-likelihood, score and information contributions; the local sink
//!   ([`kernel::FoldSink`]) applies it at once (O(p²) memory), the storing sink
//!   ([`kernel::StoredSums`]) keeps the sums per (stratum, time) so that sites
//!   can add theirs before folding (pooled-exact federation).
//! * [`driver`]: Newton–Raphson with step halving exactly as `coxph`, as a
//!   sans-IO state machine ([`driver::NewtonDriver`]).
//! * [`fit`]: the local convenience fit ([`fit::fit`]) and the result
//!   ([`fit::CoxFit`], serialisable with the field names of the reference JSON).
//! * [`robust`]: score residuals and the `cluster()` sandwich variance.
//! * [`tt`]: time-varying coefficients `tt(x)` by expansion at event times.
//! * [`exact`]: the exact partial likelihood (`ties = "exact"`).
//! * [`synth`]: a deterministic synthetic data generator for benchmarks.

pub mod assemble;
pub mod basehaz;
pub mod data;
pub mod driver;
pub mod exact;
pub mod fit;
pub mod kernel;
pub mod prepared;
pub mod robust;
pub(crate) mod sort;
pub mod synth;
pub mod tt;

#[cfg(test)]
mod tests;

pub use data::{CoxData, Strata};
pub use driver::{Convergence, CoxControl, DriverRequest, NewtonDriver};
pub use fit::{fit, CoxFit, CoxOptions};
pub use kernel::{evaluate, CoxSink, Evaluation, FoldSink, StoredSums, TimeSums, Workspace};
pub use prepared::PreparedCox;

use crate::linalg::LinalgError;

/// How tied event times are handled (R's `ties =` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ties {
    /// Efron's approximation (R's default).
    Efron,
    /// Breslow's approximation.
    Breslow,
    /// The exact partial likelihood (discrete-time conditional logistic).
    Exact,
}

impl Ties {
    /// The lowercase name R uses (`"efron"`, `"breslow"`, `"exact"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Ties::Efron => "efron",
            Ties::Breslow => "breslow",
            Ties::Exact => "exact",
        }
    }
}

/// Errors of the Cox engine. Rows are 1-based data rows; messages never
/// contain a data value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoxError {
    /// The data set has no rows.
    #[error("the data have no rows")]
    Empty,
    /// A column has the wrong length.
    #[error("`{field}` has {got} values but {expected} were expected")]
    Length {
        /// Which input.
        field: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("`{field}` is missing or not finite at row {row}")]
    NotFinite {
        /// Which input.
        field: &'static str,
        /// 1-based row.
        row: usize,
    },
    /// A time is negative.
    #[error("`{field}` is negative at row {row}; survival times must be >= 0")]
    NegativeTime {
        /// `"start"` or `"stop"`.
        field: &'static str,
        /// 1-based row.
        row: usize,
    },
    /// A counting-process interval is empty or reversed.
    #[error("start time is not before stop time at row {row}; intervals (start, stop] need start < stop")]
    StartNotBeforeStop {
        /// 1-based row.
        row: usize,
    },
    /// After merging times equal up to rounding (`timefix`), an interval became empty.
    #[error("after merging times that differ only by rounding (timefix), the interval at row {row} has length 0")]
    ZeroLengthAfterTimefix {
        /// 1-based row.
        row: usize,
    },
    /// The event indicator is not 0 or 1.
    #[error("the event indicator must be 0 or 1 at row {row}")]
    EventNotBinary {
        /// 1-based row.
        row: usize,
    },
    /// A case weight is not strictly positive.
    #[error("case weights must be > 0 (row {row})")]
    NonPositiveWeight {
        /// 1-based row.
        row: usize,
    },
    /// A stratum code does not index the stratum labels.
    #[error("stratum code at row {row} has no label")]
    BadStratum {
        /// 1-based row.
        row: usize,
    },
    /// No event in the data: a Cox model cannot be fitted.
    #[error("the data have no events; a Cox model needs at least one")]
    NoEvents,
    /// The number of term names differs from the number of covariate columns.
    #[error("{names} term names for {columns} covariate columns")]
    TermNames {
        /// Names given.
        names: usize,
        /// Columns of the covariate matrix.
        columns: usize,
    },
    /// β (or another per-coefficient vector) has the wrong length.
    #[error("coefficient vector has length {got}, the model has {expected} coefficients")]
    CoefLength {
        /// Model size.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// An event time of the data is not on the event-time grid the kernel was prepared with.
    #[error("the event at row {row} is not on the prepared event-time grid")]
    EventNotOnGrid {
        /// 1-based row.
        row: usize,
    },
    /// The event-time grid is malformed (wrong number of strata, unsorted or non-finite times).
    #[error("invalid event-time grid: {0}")]
    BadGrid(&'static str),
    /// A given centre or scale is not finite, or a scale is not > 0.
    #[error("centre must be finite and scale finite and > 0")]
    BadCentring,
    /// Stored per-time sums from different preparations cannot be combined.
    #[error("per-time sums do not line up: {0}")]
    SumsMismatch(&'static str),
    /// The combination of options is not implemented.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The driver was fed when it did not ask for an evaluation, or fed the wrong size.
    #[error("Newton driver misuse: {0}")]
    DriverMisuse(&'static str),
    /// The exponent of the linear predictor overflowed.
    #[error("the linear predictor overflows exp(); the coefficients or covariates are too large")]
    Overflow,
    /// A linear-algebra dimension error (a bug if it ever surfaces).
    #[error(transparent)]
    Linalg(#[from] LinalgError),
}
