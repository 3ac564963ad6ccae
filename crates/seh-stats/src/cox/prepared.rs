//! The sorted, centred and scaled copy of the data that the kernel walks.
//!
//! Sorting happens once per fit: rows are ordered by (stratum, stop time
//! descending), and for counting-process data a second index orders them by
//! (stratum, start time descending) so that the kernel can add and remove rows
//! from the risk set with two pointers (as R's `agfit4`).

use super::data::CoxData;
use super::sort::{order_key, radix_sort};
use super::CoxError;

/// How covariates are centred and scaled before the kernel sees them.
///
/// Centring and scaling change only rounding, never the fit (the partial
/// likelihood is invariant to shifting a covariate, and Newton–Raphson to
/// rescaling it), but sites of a pooled-exact federation must all use the same
/// transformation so that their risk-set sums add up.
#[derive(Debug, Clone, PartialEq)]
pub enum Centring {
    /// R's rule (`nocenter = c(-1, 0, 1)`): a column whose values all lie in
    /// {-1, 0, 1} is left alone; any other column is centred by its weighted
    /// mean and scaled by `sum(w) / sum(w |x - mean|)`.
    R,
    /// Use the given centre and scale per column (`x' = (x - centre) * scale`).
    Given {
        /// Per-column centre.
        centre: Vec<f64>,
        /// Per-column multiplier (> 0).
        scale: Vec<f64>,
    },
}

/// Options for [`PreparedCox::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareOptions {
    /// Covariate transformation.
    pub centring: Centring,
    /// Apply R's `timefix` (default `true`).
    pub timefix: bool,
    /// Optional event-time grid, one ascending list per stratum (in label
    /// order). The kernel then reports risk-set sums at every grid time of a
    /// stratum even when this data set has no event there, which lets the sums
    /// of several sites line up. Every event of the data must be on the grid.
    /// `None`: the distinct event times of the data.
    pub grid: Option<Vec<Vec<f64>>>,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions { centring: Centring::R, timefix: true, grid: None }
    }
}

/// One stratum of the sorted data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StratumBlock {
    /// Rows `lo..hi` of the sorted arrays (and of `start_order`).
    pub lo: usize,
    pub hi: usize,
    /// Event-time grid of the stratum, descending.
    pub grid_desc: Vec<f64>,
}

/// Sorted, transformed data ready for [`super::kernel::evaluate`].
#[derive(Clone)]
pub struct PreparedCox {
    pub(crate) p: usize,
    pub(crate) counting: bool,
    pub(crate) stop: Vec<f64>,
    pub(crate) start: Vec<f64>,
    pub(crate) event: Vec<bool>,
    pub(crate) weight: Vec<f64>,
    pub(crate) offset: Vec<f64>,
    /// Transformed covariates, row-major, in sorted order.
    pub(crate) x: Vec<f64>,
    /// Original 0-based row of each sorted row.
    pub(crate) row: Vec<usize>,
    /// Counting process: sorted positions ordered by (stratum, start descending).
    pub(crate) start_order: Vec<u32>,
    /// Counting process: start times in `start_order` order.
    pub(crate) start_by_start: Vec<f64>,
    /// Counting process: transformed covariates in `start_order` order (a
    /// second copy, so that removing rows from the risk set reads memory sequentially).
    pub(crate) x_by_start: Vec<f64>,
    pub(crate) blocks: Vec<StratumBlock>,
    pub(crate) labels: Vec<String>,
    pub(crate) centre: Vec<f64>,
    pub(crate) scale: Vec<f64>,
    /// The column means R reports (`fit$means`).
    pub(crate) means: Vec<f64>,
    /// Rows of the input (including rows dropped because they span no event time).
    pub(crate) n_input: usize,
}

impl std::fmt::Debug for PreparedCox {
    /// Shape only: the values are patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedCox")
            .field("rows", &self.stop.len())
            .field("p", &self.p)
            .field("counting_process", &self.counting)
            .field("strata", &self.labels)
            .finish_non_exhaustive()
    }
}

impl PreparedCox {
    /// Validate, time-fix, sort and transform `data`.
    ///
    /// Counting-process rows whose interval contains no event time of their
    /// stratum are dropped (they are never in a risk set at an event time), as
    /// R's `agreg.fit` does.
    pub fn new(data: &CoxData, opts: &PrepareOptions) -> Result<Self, CoxError> {
        data.validate()?;
        let n = data.n();
        let p = data.p;
        let n_strata = data.n_strata();
        let labels = match &data.strata {
            Some(s) if !s.labels.is_empty() => s.labels.clone(),
            _ => vec![String::new()],
        };
        let mut stop = data.stop.clone();
        let mut start = data.start.clone();
        if opts.timefix {
            super::data::timefix(&mut stop, start.as_deref_mut())?;
        }
        let w = |i: usize| data.weights.as_ref().map_or(1.0, |w| w[i]);
        let counting = start.is_some();

        // Sort all rows by (stratum, stop descending, original row): stable radix
        // sorts by the minor key first, then by the stratum.
        let mut by_stop: Vec<(u64, usize)> = (0..n).map(|i| (!order_key(stop[i]), i)).collect();
        radix_sort(&mut by_stop);
        if data.strata.is_some() {
            for e in by_stop.iter_mut() {
                e.0 = data.stratum_of(e.1) as u64;
            }
            radix_sort(&mut by_stop);
        }
        let keyed: Vec<(u32, f64, usize)> =
            by_stop.into_iter().map(|(_, i)| (data.stratum_of(i) as u32, stop[i], i)).collect();

        // Event-time grid per stratum, ascending.
        let grid: Vec<Vec<f64>> = match &opts.grid {
            Some(g) => {
                if g.len() != n_strata {
                    return Err(CoxError::BadGrid("one time list per stratum is needed"));
                }
                for times in g {
                    if times.iter().any(|t| !t.is_finite()) {
                        return Err(CoxError::BadGrid("grid times must be finite"));
                    }
                    if times.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(CoxError::BadGrid("grid times must be strictly increasing"));
                    }
                }
                for i in 0..n {
                    let g = &g[data.stratum_of(i)];
                    if data.event[i] == 1.0 && g.binary_search_by(|t| t.total_cmp(&stop[i])).is_err() {
                        return Err(CoxError::EventNotOnGrid { row: i + 1 });
                    }
                }
                g.clone()
            }
            None => {
                // Distinct event times from the sorted rows (descending), then reversed.
                let mut g = vec![Vec::new(); n_strata];
                for &(s, t, i) in &keyed {
                    let times: &mut Vec<f64> = &mut g[s as usize];
                    if data.event[i] == 1.0 && times.last() != Some(&t) {
                        times.push(t);
                    }
                }
                g.iter_mut().for_each(|times| times.reverse());
                g
            }
        };

        // Which rows are used: counting-process rows must span a grid time.
        let order: Vec<usize> = match &start {
            Some(st) => keyed
                .iter()
                .map(|k| k.2)
                .filter(|&i| {
                    let g = &grid[data.stratum_of(i)];
                    // first grid time > start; it must be <= stop
                    let k = g.partition_point(|&t| t <= st[i]);
                    k < g.len() && g[k] <= stop[i]
                })
                .collect(),
            None => keyed.iter().map(|k| k.2).collect(),
        };
        drop(keyed);

        // Column transformation.
        let (centre, scale, means) = column_transform(data, &opts.centring, counting)?;

        let m = order.len();
        let mut s_stop = Vec::with_capacity(m);
        let mut s_start = Vec::with_capacity(if counting { m } else { 0 });
        let mut s_event = Vec::with_capacity(m);
        let mut s_weight = Vec::with_capacity(m);
        let mut s_offset = Vec::with_capacity(m);
        let mut s_x = Vec::with_capacity(m * p);
        for &i in &order {
            s_stop.push(stop[i]);
            if let Some(st) = &start {
                s_start.push(st[i]);
            }
            s_event.push(data.event[i] == 1.0);
            s_weight.push(w(i));
            s_offset.push(data.offset.as_ref().map_or(0.0, |o| o[i]));
            let row = &data.x[i * p..(i + 1) * p];
            s_x.extend(row.iter().zip(centre.iter().zip(&scale)).map(|(v, (c, s))| (v - c) * s));
        }
        let mut blocks = Vec::with_capacity(n_strata);
        let mut pos = 0usize;
        for (s, g) in grid.into_iter().enumerate() {
            let lo = pos;
            while pos < m && data.stratum_of(order[pos]) == s {
                pos += 1;
            }
            let mut grid_desc = g;
            grid_desc.reverse();
            blocks.push(StratumBlock { lo, hi: pos, grid_desc });
        }
        let start_order = if counting {
            // Within each stratum block: start descending, then sorted position.
            let mut so: Vec<u32> = Vec::with_capacity(m);
            for b in &blocks {
                let mut block: Vec<(u64, usize)> = (b.lo..b.hi).map(|k| (!order_key(s_start[k]), k)).collect();
                radix_sort(&mut block);
                so.extend(block.into_iter().map(|(_, k)| k as u32));
            }
            so
        } else {
            Vec::new()
        };
        let start_by_start: Vec<f64> = start_order.iter().map(|&k| s_start[k as usize]).collect();
        let mut x_by_start = Vec::with_capacity(start_order.len() * p);
        for &k in &start_order {
            let k = k as usize;
            x_by_start.extend_from_slice(&s_x[k * p..(k + 1) * p]);
        }
        Ok(PreparedCox {
            p,
            counting,
            stop: s_stop,
            start: s_start,
            event: s_event,
            weight: s_weight,
            offset: s_offset,
            x: s_x,
            row: order,
            start_order,
            start_by_start,
            x_by_start,
            blocks,
            labels,
            centre,
            scale,
            means,
            n_input: n,
        })
    }

    /// Number of coefficients.
    pub fn p(&self) -> usize {
        self.p
    }

    /// Number of rows the kernel walks.
    pub fn rows(&self) -> usize {
        self.stop.len()
    }

    /// `true` for counting-process `(start, stop]` data.
    pub fn is_counting_process(&self) -> bool {
        self.counting
    }

    /// Stratum labels, in the order strata are reported.
    pub fn strata_labels(&self) -> &[String] {
        &self.labels
    }

    /// The centre subtracted from each column.
    pub fn centre(&self) -> &[f64] {
        &self.centre
    }

    /// The multiplier applied to each centred column. Internal coefficients are
    /// `beta / scale` (see [`PreparedCox::to_internal`]).
    pub fn scale(&self) -> &[f64] {
        &self.scale
    }

    /// The column means R reports as `fit$means`.
    pub fn means(&self) -> &[f64] {
        &self.means
    }

    /// The event-time grid of each stratum, ascending.
    pub fn grid(&self) -> Vec<Vec<f64>> {
        self.blocks.iter().map(|b| b.grid_desc.iter().rev().copied().collect()).collect()
    }

    /// Convert coefficients on the original covariate scale to the kernel's scale.
    pub fn to_internal(&self, beta: &[f64]) -> Vec<f64> {
        beta.iter().zip(&self.scale).map(|(b, s)| b / s).collect()
    }

    /// Convert kernel-scale coefficients back to the original covariate scale.
    pub fn to_original(&self, beta_int: &[f64]) -> Vec<f64> {
        beta_int.iter().zip(&self.scale).map(|(b, s)| b * s).collect()
    }
}

/// Centre, scale and reported means per column.
type Transform = (Vec<f64>, Vec<f64>, Vec<f64>);

fn column_transform(data: &CoxData, centring: &Centring, counting: bool) -> Result<Transform, CoxError> {
    let n = data.n();
    let p = data.p;
    let w = |i: usize| data.weights.as_ref().map_or(1.0, |w| w[i]);
    // One row-major pass for the {-1, 0, 1} check and the (weighted) sums.
    let mut zero_one = vec![true; p];
    let mut wsum_x = vec![0.0; p];
    let mut sum_x = vec![0.0; p];
    let mut wsum = 0.0;
    for i in 0..n {
        let wi = w(i);
        wsum += wi;
        let row = &data.x[i * p..(i + 1) * p];
        for j in 0..p {
            let v = row[j];
            zero_one[j] &= v == 0.0 || v == 1.0 || v == -1.0;
            wsum_x[j] += wi * v;
            sum_x[j] += v;
        }
    }
    let wmean: Vec<f64> = wsum_x.iter().map(|s| s / wsum).collect();
    let mut abs_dev = vec![0.0; p];
    if matches!(centring, Centring::R) && zero_one.iter().any(|z| !z) {
        for i in 0..n {
            let wi = w(i);
            let row = &data.x[i * p..(i + 1) * p];
            for j in 0..p {
                abs_dev[j] += wi * (row[j] - wmean[j]).abs();
            }
        }
    }
    let mut means = vec![0.0; p];
    let mut centre = vec![0.0; p];
    let mut scale = vec![1.0; p];
    for j in 0..p {
        if zero_one[j] {
            continue;
        }
        // R reports the weighted mean for right-censored fits (coxfit6) and the
        // plain column mean for counting-process fits (agreg.fit).
        means[j] = if counting { sum_x[j] / n as f64 } else { wmean[j] };
        if let Centring::R = centring {
            centre[j] = wmean[j];
            scale[j] = if abs_dev[j] > 0.0 { wsum / abs_dev[j] } else { 1.0 };
        }
    }
    if let Centring::Given { centre: c, scale: s } = centring {
        if c.len() != p {
            return Err(CoxError::Length { field: "centre", expected: p, got: c.len() });
        }
        if s.len() != p {
            return Err(CoxError::Length { field: "scale", expected: p, got: s.len() });
        }
        if c.iter().any(|v| !v.is_finite()) || s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(CoxError::BadCentring);
        }
        centre = c.clone();
        scale = s.clone();
    }
    Ok((centre, scale, means))
}
