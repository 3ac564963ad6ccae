//! Secure descriptive statistics: each site's contribution vector, and the release computed from
//! the secure sum of those vectors.
//!
//! Vector layout (all words summed modulo `2^64` by SecAgg+): for each column in order, one word
//! with the count of non-missing values, then [`wide::WORDS`] words for the sum and as many for
//! the sum of squares ([`crate::wide`]); then, for each histogram, `bins` counts over `[lo, hi]`
//! followed by the count below `lo` and the count above `hi`; last, one word counting the sites
//! that added differential-privacy noise ([`DP_FLAG`]: 1 from a site that noised its counts, 0
//! otherwise), so the release knows the counts are noisy without trusting the spec alone.
//!
//! **Disclosure control of a release** ([`release`]): primary suppression hides every count in
//! `1..min_cell_count` (zeros are released). Secondary suppression then treats each histogram's
//! cells (bins, below, above) as a one-way table whose total is known — the column's released
//! `n` when the column is listed, otherwise the histogram's own total, which any other release of
//! the column reveals. A release is acceptable when no cell is hidden, or every cell is hidden, or
//! at least two are hidden *and* their derivable total (`n` minus the visible cells) is not in
//! `1..min_cell_count`; until then the smallest visible non-zero cell (else a visible zero) is
//! hidden too. So no hidden cell equals `n` minus the others, and a group of hidden cells never
//! isolates fewer than `min_cell_count` patients. [`respects_min_count`] checks the same rule on
//! the released numbers alone (what a site checks before co-signing).

use seh_stats::DataFrame;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::spec::{DescribeSpec, HistogramSpec};
use crate::wide;

const COLUMN_WORDS: usize = 1 + 2 * wide::WORDS;

/// Words of the trailing DP flag (see the module docs).
pub const DP_FLAG: usize = 1;

/// Length of the contribution vector for `spec`.
pub fn vector_len(spec: &DescribeSpec) -> usize {
    spec.columns.len() * COLUMN_WORDS + spec.histograms.iter().map(|h| h.bins as usize + 2).sum::<usize>() + DP_FLAG
}

/// The number of sites that noised their counts, from a summed vector (0 if too short).
pub fn dp_sites(sum: &[u64]) -> u64 {
    sum.last().copied().unwrap_or(0)
}

/// The bin of `x` (not NaN): `0..bins` inside `[lo, hi]`, `bins` below `lo`, `bins + 1` above `hi`.
fn bin_of(h: &HistogramSpec, x: f64) -> usize {
    let bins = h.bins as usize;
    if x < h.lo {
        return bins;
    }
    if x > h.hi {
        return bins + 1;
    }
    let k = ((x - h.lo) / (h.hi - h.lo) * bins as f64).floor();
    (k.max(0.0) as usize).min(bins - 1)
}

/// This site's contribution vector over `data`.
///
/// Errors: [`ProtocolError::Encoding`] naming the column when it is missing from `data`, or a sum
/// or sum of squares is outside the encodable range (|value| ≥ 2^86, or infinite).
pub fn local_vector(spec: &DescribeSpec, data: &DataFrame) -> Result<Vec<u64>, ProtocolError> {
    let mut out = Vec::with_capacity(vector_len(spec));
    let column = |name: &str| {
        data.column(name).map_err(|_| ProtocolError::Encoding { column: name.to_owned(), reason: "not in the data" })
    };
    for name in &spec.columns {
        let values = column(name)?;
        let (mut n, mut sum, mut sumsq) = (0u64, 0.0f64, 0.0f64);
        for &x in values.iter().filter(|x| !x.is_nan()) {
            n += 1;
            sum += x;
            sumsq += x * x;
        }
        let enc = |v: f64| {
            wide::encode(v).ok_or(ProtocolError::Encoding {
                column: name.clone(),
                reason: "sum or sum of squares is outside the encodable range",
            })
        };
        out.push(n);
        out.extend_from_slice(&enc(sum)?);
        out.extend_from_slice(&enc(sumsq)?);
    }
    for h in &spec.histograms {
        let values = column(&h.column)?;
        let mut counts = vec![0u64; h.bins as usize + 2];
        for &x in values.iter().filter(|x| !x.is_nan()) {
            if let Some(c) = counts.get_mut(bin_of(h, x)) {
                *c += 1;
            }
        }
        out.extend_from_slice(&counts);
    }
    out.push(0);
    Ok(out)
}

/// Summary of one column in a release. Counts below the minimum cell count suppress the column.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSummary {
    /// Column name.
    pub column: String,
    /// Number of non-missing values (`None` if suppressed).
    pub n: Option<u64>,
    /// Mean (`None` if suppressed or `n = 0`).
    pub mean: Option<f64>,
    /// Sample variance, divisor `n − 1` (`None` if suppressed or `n < 2`).
    pub variance: Option<f64>,
    /// Sample standard deviation.
    pub sd: Option<f64>,
}

/// A released histogram; each count `c` with `0 < c < min_cell_count` is `None`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramResult {
    /// Column name.
    pub column: String,
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Counts of the bins over `[lo, hi]`.
    pub counts: Vec<Option<u64>>,
    /// Count below `lo`.
    pub below: Option<u64>,
    /// Count above `hi`.
    pub above: Option<u64>,
}

/// The released descriptive statistics.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeResult {
    /// Per column.
    pub columns: Vec<ColumnSummary>,
    /// Per histogram.
    pub histograms: Vec<HistogramResult>,
    /// Number of counts suppressed (cells below the minimum cell count, and suppressed columns).
    pub suppressed: u64,
}

/// Computes the release from the secure sum `sum` of all contributions with primary and
/// secondary suppression (module docs; a column whose count is suppressed releases nothing).
/// The counts are used as given: under DP the caller clamps the noisy counts first.
///
/// Errors: [`ProtocolError::Invalid`] if `sum` has the wrong length.
pub fn release(spec: &DescribeSpec, sum: &[u64], min_cell_count: u64) -> Result<DescribeResult, ProtocolError> {
    if sum.len() != vector_len(spec) {
        return Err(ProtocolError::invalid("aggregate", "sum", "length differs from the study layout"));
    }
    let small = |c: u64| c > 0 && c < min_cell_count;
    let mut suppressed = 0u64;
    let mut columns = Vec::with_capacity(spec.columns.len());
    let mut words = sum.chunks_exact(COLUMN_WORDS);
    for name in &spec.columns {
        let w = words.next().ok_or_else(|| ProtocolError::invalid("aggregate", "sum", "too short"))?;
        let n = w[0];
        let s = wide::decode(&w[1..1 + wide::WORDS]).unwrap_or(f64::NAN);
        let ss = wide::decode(&w[1 + wide::WORDS..]).unwrap_or(f64::NAN);
        let mut c = ColumnSummary { column: name.clone(), n: None, mean: None, variance: None, sd: None };
        if small(n) {
            suppressed += 1;
        } else {
            c.n = Some(n);
            let nf = n as f64;
            if n > 0 {
                c.mean = Some(s / nf);
            }
            if n > 1 {
                let var = ((ss - s * s / nf) / (nf - 1.0)).max(0.0);
                c.variance = Some(var);
                c.sd = Some(var.sqrt());
            }
        }
        columns.push(c);
    }
    let mut rest = &sum[spec.columns.len() * COLUMN_WORDS..];
    let mut histograms = Vec::with_capacity(spec.histograms.len());
    for h in &spec.histograms {
        let k = h.bins as usize + 2;
        if rest.len() < k {
            return Err(ProtocolError::invalid("aggregate", "sum", "too short"));
        }
        let (mine, tail) = rest.split_at(k);
        rest = tail;
        // The histogram's cells in release order: bins, below, above.
        let values: Vec<u64> = mine.to_vec();
        let mut hidden: Vec<bool> = values.iter().map(|&c| small(c)).collect();
        let released_n = columns.iter().find(|c| c.column == h.column).and_then(|c| c.n);
        let total = released_n.unwrap_or_else(|| values.iter().fold(0u64, |a, &c| a.saturating_add(c)));
        while !acceptable(&values, &hidden, Some(total), min_cell_count) {
            let pick = (0..k).filter(|&i| !hidden[i]).min_by_key(|&i| (values[i] == 0, values[i]));
            match pick {
                Some(i) => hidden[i] = true,
                None => break,
            }
        }
        suppressed += hidden.iter().filter(|&&x| x).count() as u64;
        let cell = |i: usize| if hidden[i] { None } else { Some(values[i]) };
        let counts: Vec<Option<u64>> = (0..h.bins as usize).map(cell).collect();
        let (below, above) = (cell(h.bins as usize), cell(h.bins as usize + 1));
        histograms.push(HistogramResult { column: h.column.clone(), lo: h.lo, hi: h.hi, counts, below, above });
    }
    Ok(DescribeResult { columns, histograms, suppressed })
}

/// The secondary-suppression rule of one histogram (module docs): `values` of its cells (hidden
/// ones may be anything), which are `hidden`, and the known `total` (`None`: not released here).
fn acceptable(values: &[u64], hidden: &[bool], total: Option<u64>, k: u64) -> bool {
    let nh = hidden.iter().filter(|&&x| x).count();
    if nh == 0 || nh == hidden.len() {
        return true;
    }
    if nh < 2 {
        return false;
    }
    let Some(total) = total else { return true };
    let visible: i128 = values.iter().zip(hidden).filter(|(_, &h)| !h).map(|(&v, _)| i128::from(v)).sum();
    let derived = i128::from(total) - visible;
    !(derived >= 1 && derived < i128::from(k))
}

/// True when every count in `result` respects `min_cell_count` and the secondary-suppression rule
/// (module docs), judged from the released numbers alone: what a site checks before co-signing.
pub fn respects_min_count(result: &DescribeResult, min_cell_count: u64) -> bool {
    let ok = |c: &Option<u64>| c.is_none_or(|c| c == 0 || c >= min_cell_count);
    let columns_ok = result.columns.iter().all(|c| ok(&c.n) && (c.n.is_some() || c.mean.is_none()));
    let mut seen: Vec<&str> = Vec::new();
    let histograms_ok = result.histograms.iter().all(|h| {
        let once = !seen.contains(&h.column.as_str());
        seen.push(&h.column);
        let cells: Vec<Option<u64>> = h.counts.iter().copied().chain([h.below, h.above]).collect();
        let values: Vec<u64> = cells.iter().map(|c| c.unwrap_or(0)).collect();
        let hidden: Vec<bool> = cells.iter().map(Option::is_none).collect();
        let total = result.columns.iter().find(|c| c.column == h.column).and_then(|c| c.n);
        once && cells.iter().all(ok) && acceptable(&values, &hidden, total, min_cell_count)
    });
    columns_ok && histograms_ok
}

/// The same statistics computed on one (pooled) data frame, through the same code path: what a
/// federated result must equal.
pub fn pooled(spec: &DescribeSpec, data: &DataFrame, min_cell_count: u64) -> Result<DescribeResult, ProtocolError> {
    release(spec, &local_vector(spec, data)?, min_cell_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DescribeSpec {
        DescribeSpec {
            columns: vec!["x".into()],
            histograms: vec![HistogramSpec { column: "x".into(), lo: 0.0, hi: 10.0, bins: 2 }],
        }
    }

    #[test]
    fn sums_of_site_vectors_give_pooled_statistics() {
        let a = DataFrame::from_columns(vec![("x", vec![1.0, 2.0, f64::NAN, 12.0])]).unwrap();
        let b = DataFrame::from_columns(vec![("x", vec![-1.0, 5.0, 10.0])]).unwrap();
        let all = DataFrame::from_columns(vec![("x", vec![1.0, 2.0, f64::NAN, 12.0, -1.0, 5.0, 10.0])]).unwrap();
        let (va, vb) = (local_vector(&spec(), &a).unwrap(), local_vector(&spec(), &b).unwrap());
        let sum: Vec<u64> = va.iter().zip(&vb).map(|(x, y)| x.wrapping_add(*y)).collect();
        let r = release(&spec(), &sum, 1).unwrap();
        assert_eq!(r, pooled(&spec(), &all, 1).unwrap());
        let c = &r.columns[0];
        assert_eq!(c.n, Some(6));
        assert!((c.mean.unwrap() - 29.0 / 6.0).abs() < 1e-12);
        let mean = 29.0 / 6.0;
        let var = [1.0, 2.0, 12.0, -1.0, 5.0, 10.0].iter().map(|x: &f64| (x - mean).powi(2)).sum::<f64>() / 5.0;
        assert!((c.variance.unwrap() - var).abs() < 1e-9 * var);
        let h = &r.histograms[0];
        // bins [0,5), [5,10]; 1, 2 | 5, 10 | below: -1 | above: 12
        assert_eq!((h.counts.clone(), h.below, h.above), (vec![Some(2), Some(2)], Some(1), Some(1)));
    }

    #[test]
    fn small_cells_are_suppressed() {
        let a = DataFrame::from_columns(vec![("x", vec![1.0, 2.0, 3.0, 7.0, 12.0])]).unwrap();
        let r = pooled(&spec(), &a, 3).unwrap();
        assert_eq!(r.columns[0].n, Some(5));
        // Primary: [5, 10] (1) and above (1). Their total, n − 3 − 0 = 2, would isolate two
        // patients, so the smallest visible non-zero cell is hidden too.
        assert_eq!(r.histograms[0].counts, vec![None, None]);
        assert_eq!((r.histograms[0].below, r.histograms[0].above), (Some(0), None));
        assert_eq!(r.suppressed, 3);
        assert!(respects_min_count(&r, 3));
        // The old release (only the primary cells hidden) is refused by a co-signing site.
        let mut old = r.clone();
        old.histograms[0].counts[0] = Some(3);
        assert!(!respects_min_count(&old, 3));
        let r6 = pooled(&spec(), &a, 6).unwrap();
        assert_eq!(r6.columns[0], ColumnSummary { column: "x".into(), n: None, mean: None, variance: None, sd: None });
        assert!(!respects_min_count(&pooled(&spec(), &a, 1).unwrap(), 3));
    }

    #[test]
    fn a_single_suppressed_cell_is_not_n_minus_the_others() {
        // The reported case: "above" holds one patient; every other cell is released.
        let x = vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 6.0, 6.0, 6.0, 12.0];
        let a = DataFrame::from_columns(vec![("x", x)]).unwrap();
        let r = pooled(&spec(), &a, 3).unwrap();
        let h = &r.histograms[0];
        assert_eq!(r.columns[0].n, Some(10));
        assert_eq!((h.counts.clone(), h.below, h.above), (vec![Some(6), None], Some(0), None));
        // What the researcher derives: the two hidden cells hold 4 patients together, no more.
        let visible: u64 = h.counts.iter().flatten().sum::<u64>() + h.below.unwrap_or(0);
        assert_eq!(r.columns[0].n.unwrap() - visible, 4);
        assert!(respects_min_count(&r, 3));
        // The old release (above alone hidden: 10 − 6 − 3 − 0 = 1) fails the co-sign check.
        let mut old = r.clone();
        old.histograms[0].counts[1] = Some(3);
        assert!(!respects_min_count(&old, 3));
        // A histogram whose column is not listed uses its own total the same way.
        let s2 = DescribeSpec { columns: vec![], histograms: spec().histograms };
        let r2 = pooled(&s2, &a, 3).unwrap();
        assert_eq!(r2.histograms[0].counts, vec![Some(6), None]);
        assert_eq!(r2.histograms[0].above, None);
    }
}
