//! The log-rank test and the Fleming–Harrington G^ρ family, as R `survdiff`
//! (survival 3.5-3, `survdiff2.c`), computed from additive counts tables.
//!
//! Every site computes [`crate::km::km_counts`] with the *test groups* as
//! strata, on a shared time grid; the summed tables give exactly the pooled
//! test through [`logrank_from_counts`]. With additional stratification
//! (`survdiff(Surv(t, s) ~ group + strata(x))`) there is one table per level
//! of `x`. [`logrank`] does the same on pooled rows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::km::{apply_timefix, check_codes, km_counts, time_grid, KmCounts, SurvCols, SurvInputError};
use crate::special::{chisq_upper, solve_dense};

/// Result of the k-sample test, with the field names of the reference JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Logrank {
    /// ρ of the G^ρ weight `S(t−)^ρ` (0 = log-rank, 1 = Peto–Peto).
    pub rho: f64,
    /// Group codes, ascending; the order of every vector below.
    pub groups: Vec<u32>,
    /// Rows per group.
    pub n: Vec<u64>,
    /// (Weighted) observed events per group, summed over strata.
    pub observed: Vec<f64>,
    /// Expected events per group, summed over strata.
    pub expected: Vec<f64>,
    /// Variance matrix of `observed − expected` (groups × groups).
    pub var: Vec<Vec<f64>>,
    /// Chi-square statistic.
    pub chisq: f64,
    /// Degrees of freedom: groups with expected > 0, minus 1.
    pub df: usize,
    /// Upper-tail chi-square p-value.
    pub p: f64,
}

/// The test on pooled right-censored rows (after R's `timefix`, see
/// [`crate::km::apply_timefix`]).
///
/// Inputs: `time` (`>= 0`), `status` (0/1), `group` codes (at least two
/// distinct), optional `strata` codes (the test is stratified on them), `rho`
/// (finite; 0 for the log-rank test). Errors: empty input, bad values, no
/// events, a single group, or a singular variance matrix.
pub fn logrank(
    time: &[f64],
    status: &[f64],
    group: &[u32],
    strata: Option<&[u32]>,
    rho: f64,
) -> Result<Logrank, SurvInputError> {
    let cols = SurvCols::new(time, None, status, None, false)?;
    let (time, _) = apply_timefix(time, None)?;
    let time = time.as_slice();
    check_codes("group", cols.len(), Some(group))?;
    check_codes("strata", cols.len(), strata)?;
    let mut by_stratum: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for i in 0..cols.len() {
        by_stratum.entry(strata.map_or(0, |s| s[i])).or_default().push(i);
    }
    let mut tables = Vec::with_capacity(by_stratum.len());
    for rows in by_stratum.values() {
        let t: Vec<f64> = rows.iter().map(|&i| time[i]).collect();
        let s: Vec<f64> = rows.iter().map(|&i| status[i]).collect();
        let g: Vec<u32> = rows.iter().map(|&i| group[i]).collect();
        let grid = time_grid(&t);
        tables.push(km_counts(&t, None, &s, Some(&g), None, Some(&grid))?);
    }
    logrank_from_counts(&tables, rho)
}

/// The test from counts tables: one table per stratum of the test, whose
/// strata are the groups being compared (right-censored, unweighted — R's
/// `survdiff` has no case weights). Group tables within one stratum may be on
/// different grids (the number at risk is carried between a group's own times).
///
/// Errors: invalid tables, counting-process or weighted tables, fewer than two
/// groups, no events, non-finite `rho`, or a singular variance matrix.
pub fn logrank_from_counts(tables: &[KmCounts], rho: f64) -> Result<Logrank, SurvInputError> {
    if !rho.is_finite() {
        return Err(SurvInputError::Option("rho must be finite"));
    }
    if tables.is_empty() {
        return Err(SurvInputError::Empty);
    }
    let mut groups: Vec<u32> = Vec::new();
    for t in tables {
        t.validate()?;
        if t.counting {
            return Err(SurvInputError::Option("the log-rank test is defined for right-censored data only"));
        }
        if t.weighted {
            return Err(SurvInputError::Option("the log-rank test does not take case weights"));
        }
        groups.extend(t.strata.iter().map(|s| s.stratum));
    }
    groups.sort_unstable();
    groups.dedup();
    let g = groups.len();
    if g < 2 {
        return Err(SurvInputError::SingleGroup);
    }
    if tables.iter().map(KmCounts::total_events).sum::<f64>() <= 0.0 {
        return Err(SurvInputError::NoEvents);
    }
    let mut n = vec![0u64; g];
    let mut observed = vec![0.0; g];
    let mut expected = vec![0.0; g];
    let mut var = vec![0.0; g * g];
    for table in tables {
        let idx: Vec<usize> =
            table.strata.iter().map(|s| groups.binary_search(&s.stratum).unwrap_or_default()).collect();
        for (s, &k) in table.strata.iter().zip(&idx) {
            n[k] += s.n;
        }
        let all_times: Vec<f64> = table.strata.iter().flat_map(|s| s.time.iter().copied()).collect();
        let mut risk = vec![0.0; g];
        let mut deaths = vec![0.0; g];
        let mut km = 1.0f64;
        for t in time_grid(&all_times) {
            risk.iter_mut().for_each(|r| *r = 0.0);
            deaths.iter_mut().for_each(|d| *d = 0.0);
            for (s, &k) in table.strata.iter().zip(&idx) {
                risk[k] += s.n_risk_at(t);
                if let Ok(j) = s.time.binary_search_by(|x| x.total_cmp(&t)) {
                    deaths[k] += s.n_event[j];
                }
            }
            let nrisk: f64 = risk.iter().sum();
            let dead: f64 = deaths.iter().sum();
            let wt = if rho == 0.0 { 1.0 } else { km.powf(rho) };
            if nrisk > 0.0 {
                km *= (nrisk - dead) / nrisk;
            }
            for k in 0..g {
                observed[k] += deaths[k] * wt;
            }
            if dead > 0.0 {
                for k in 0..g {
                    expected[k] += wt * dead * risk[k] / nrisk;
                }
                if nrisk > 1.0 {
                    let w2 = wt * wt;
                    for j in 0..g {
                        let tmp = w2 * dead * risk[j] * (nrisk - dead) / (nrisk * (nrisk - 1.0));
                        var[j * g + j] += tmp;
                        for k in 0..g {
                            var[j * g + k] -= tmp * risk[k] / nrisk;
                        }
                    }
                }
            }
        }
    }
    let used: Vec<usize> = (0..g).filter(|&k| expected[k] > 0.0).collect();
    let df = used.len().saturating_sub(1);
    let chisq = if used.len() < 2 {
        0.0
    } else {
        let keep = &used[1..];
        let m = keep.len();
        let diff: Vec<f64> = keep.iter().map(|&k| observed[k] - expected[k]).collect();
        let mut vv = vec![0.0; m * m];
        for (a, &i) in keep.iter().enumerate() {
            for (b, &j) in keep.iter().enumerate() {
                vv[a * m + b] = var[i * g + j];
            }
        }
        let sol = solve_dense(&vv, m, &diff).ok_or(SurvInputError::Singular)?;
        sol.iter().zip(&diff).map(|(a, b)| a * b).sum()
    };
    let p = if df == 0 { f64::NAN } else { chisq_upper(chisq, df as f64) };
    let var = (0..g).map(|i| var[i * g..(i + 1) * g].to_vec()).collect();
    Ok(Logrank { rho, groups, n, observed, expected, var, chisq, df, p })
}
