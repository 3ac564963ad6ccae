//! Score residuals and the robust (sandwich) variance of `cluster(id)`
//! (R: `residuals(fit, type = "dfbeta", collapse = cluster, weighted = TRUE)`,
//! `fit$var <- t(D) %*% D`, and the robust score test `fit$rscore`).
//!
//! Score residuals follow R's `coxscore2` / `agscore2` (Breslow and Efron),
//! computed in O(n p) from per-time quantities: for every event time the
//! hazard-weighted means are formed once, accumulated over time, and each row
//! takes the difference of the accumulations over its at-risk interval.

use std::collections::HashMap;

use super::data::CoxData;
use super::fit::wald;
use super::kernel::{evaluate, StoredSums, TimeRecord, Workspace};
use super::prepared::PreparedCox;
use super::{CoxError, Ties};

/// Robust variance and robust score test.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustResult {
    /// `DᵀD`, row-major `p × p`, original scale.
    pub var: Vec<f64>,
    /// Robust score test statistic at the initial coefficients.
    pub score_test: f64,
    /// Its degrees of freedom (rank of `T₀ᵀT₀`).
    pub df: usize,
}

/// Per-time quantities of one stratum, ascending in time.
struct StratumTimes {
    times: Vec<f64>,
    /// Cumulative Σ hazard (temp1) up to and including each time.
    c1: Vec<f64>,
    /// Cumulative Σ mean·hazard (mh1), p per time.
    m1: Vec<f64>,
    temp1: Vec<f64>,
    temp2: Vec<f64>,
    mh1: Vec<f64>,
    mh2: Vec<f64>,
    mh3: Vec<f64>,
}

/// Unweighted score residuals at `beta_int` (kernel scale), one row of p per
/// *input* row (rows the kernel dropped get zeros), on the original covariate scale.
pub fn score_residuals(prep: &PreparedCox, beta_int: &[f64], ties: Ties) -> Result<Vec<f64>, CoxError> {
    score_residuals_against(prep, beta_int, ties, None)
}

/// [`score_residuals`] of this data's rows against *given* per-time sums, e.g. the pooled sums
/// of a federation on a grid this `prep` was built with. `records` must list the same (stratum,
/// time) pairs, in the same order, as this data's own evaluation; each record's exponential sums
/// are taken at its own `shift` and brought to this data's shifts. Errors: the records do not
/// match the grid, or a rescaled sum is not finite.
pub fn score_residuals_with(
    prep: &PreparedCox,
    beta_int: &[f64],
    ties: Ties,
    records: &[TimeRecord],
) -> Result<Vec<f64>, CoxError> {
    score_residuals_against(prep, beta_int, ties, Some(records))
}

fn score_residuals_against(
    prep: &PreparedCox,
    beta_int: &[f64],
    ties: Ties,
    given: Option<&[TimeRecord]>,
) -> Result<Vec<f64>, CoxError> {
    let p = prep.p();
    let mut ws = Workspace::new(prep);
    let mut store = StoredSums::new(p, false);
    // First-order sums (D1 is kept for either ties method).
    evaluate(prep, beta_int, if ties == Ties::Efron { Ties::Efron } else { Ties::Breslow }, &mut ws, &mut store)?;
    if let Some(given) = given {
        if given.len() != store.records.len() {
            return Err(CoxError::BadGrid("the given per-time sums do not match this data's grid"));
        }
        for (own, g) in store.records.iter_mut().zip(given) {
            if own.stratum != g.stratum || own.time != g.time || g.s1.len() != p || g.d1.len() != p {
                return Err(CoxError::BadGrid("the given per-time sums do not match this data's grid"));
            }
            // This data's shift where it has rows at risk; the given one otherwise (unused).
            let shift = if own.n_risk == 0 { g.shift } else { own.shift };
            let f = (g.shift - shift).exp();
            own.n_deaths = g.n_deaths;
            own.death_weight = g.death_weight;
            own.s0 = g.s0 * f;
            own.d0 = g.d0 * f;
            own.s1 = g.s1.iter().map(|v| v * f).collect();
            own.d1 = g.d1.iter().map(|v| v * f).collect();
            if !(own.s0.is_finite() && own.d0.is_finite() && own.s1.iter().chain(&own.d1).all(|v| v.is_finite())) {
                return Err(CoxError::BadGrid("a given per-time sum is not finite at this data's shift"));
            }
        }
    }
    let efron = ties == Ties::Efron;

    // Per-stratum per-time quantities.
    let mut strata: Vec<StratumTimes> = Vec::with_capacity(prep.blocks.len());
    let recs = &store.records;
    let mut i = 0;
    for (sidx, _) in prep.blocks.iter().enumerate() {
        let mut j = i;
        while j < recs.len() && recs[j].stratum == sidx {
            j += 1;
        }
        let nt = j - i;
        let mut st = StratumTimes {
            times: Vec::with_capacity(nt),
            c1: Vec::with_capacity(nt),
            m1: Vec::with_capacity(nt * p),
            temp1: Vec::with_capacity(nt),
            temp2: Vec::with_capacity(nt),
            mh1: Vec::with_capacity(nt * p),
            mh2: Vec::with_capacity(nt * p),
            mh3: Vec::with_capacity(nt * p),
        };
        let mut c1 = 0.0;
        let mut m1 = vec![0.0; p];
        let mut mean = vec![0.0; p];
        for r in recs[i..j].iter().rev() {
            let (mut t1, mut t2) = (0.0, 0.0);
            let mut a1 = vec![0.0; p];
            let mut a2 = vec![0.0; p];
            let mut a3 = vec![0.0; p];
            if r.n_deaths > 0 {
                let m = if efron { r.n_deaths } else { 1 };
                let mf = m as f64;
                let meanwt = r.death_weight / mf;
                for dd in 0..m {
                    let down = dd as f64 / mf;
                    let d2 = r.s0 - down * r.d0;
                    let hazard = meanwt / d2;
                    t1 += hazard;
                    t2 += (1.0 - down) * hazard;
                    for k in 0..p {
                        mean[k] = (r.s1[k] - down * r.d1[k]) / d2;
                        a1[k] += mean[k] * hazard;
                        a2[k] += mean[k] * (1.0 - down) * hazard;
                        a3[k] += mean[k] / mf;
                    }
                }
            }
            c1 += t1;
            for k in 0..p {
                m1[k] += a1[k];
            }
            st.times.push(r.time);
            st.c1.push(c1);
            st.m1.extend_from_slice(&m1);
            st.temp1.push(t1);
            st.temp2.push(t2);
            st.mh1.extend_from_slice(&a1);
            st.mh2.extend_from_slice(&a2);
            st.mh3.extend_from_slice(&a3);
        }
        strata.push(st);
        i = j;
    }

    let mut resid = vec![0.0; prep.n_input * p];
    let mut res = vec![0.0; p];
    for (sidx, b) in prep.blocks.iter().enumerate() {
        let st = &strata[sidx];
        // index of the last time <= t, as count of times <= t
        let upto = |t: f64| st.times.partition_point(|&u| u <= t);
        for row in b.lo..b.hi {
            let x = &prep.x[row * p..(row + 1) * p];
            let r = ws.risk[row] / prep.weight[row];
            let hi = upto(prep.stop[row]);
            let lo = if prep.counting { upto(prep.start[row]) } else { 0 };
            let cum = |v: &[f64], k: usize, idx: usize| if idx == 0 { 0.0 } else { v[(idx - 1) * p + k] };
            let c1 = if hi == 0 { 0.0 } else { st.c1[hi - 1] } - if lo == 0 { 0.0 } else { st.c1[lo - 1] };
            for k in 0..p {
                let m1 = cum(&st.m1, k, hi) - cum(&st.m1, k, lo);
                res[k] = -r * (x[k] * c1 - m1);
            }
            if prep.event[row] && hi > 0 && st.times[hi - 1] == prep.stop[row] {
                let t = hi - 1;
                for k in 0..p {
                    res[k] += x[k] - st.mh3[t * p + k] - r * x[k] * st.temp2[t] + r * st.mh2[t * p + k];
                    res[k] += r * (x[k] * st.temp1[t] - st.mh1[t * p + k]);
                }
            }
            let orig = prep.row[row];
            for k in 0..p {
                resid[orig * p + k] = res[k] / prep.scale()[k];
            }
        }
    }
    Ok(resid)
}

/// Per-cluster sums of weighted score residuals `U_c` (`resid` n × p, as from
/// [`score_residuals`]): returns `(Σ_c U_c, Σ_c U_c U_cᵀ)`, the latter row-major p × p. What a
/// federation's site contributes to the robust variance (clusters must not span sites).
pub fn cluster_sums(resid: &[f64], p: usize, cluster: &[u64], weights: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
    let u = collapse(resid, p, cluster, weights);
    let total: Vec<f64> = (0..p).map(|k| u.chunks_exact(p).map(|r| r[k]).sum()).collect();
    (total, crossprod(&u, p))
}

/// Robust variance `V M V` and robust score test from cluster sums (original scale): `meat` =
/// Σ_c U_c U_cᵀ at the estimate, `meat0` and `score0` = Σ_c T_c T_cᵀ and Σ_c T_c at `init`;
/// `variance` the model-based variance. Equals [`robust_variance`] on the pooled rows.
pub fn robust_from_sums(
    variance: &[f64],
    meat: &[f64],
    meat0: &[f64],
    score0: &[f64],
    p: usize,
    toler_chol: f64,
) -> Result<RobustResult, CoxError> {
    for (field, len, want) in [
        ("variance", variance.len(), p * p),
        ("meat", meat.len(), p * p),
        ("meat0", meat0.len(), p * p),
        ("score0", score0.len(), p),
    ] {
        if len != want {
            return Err(CoxError::Length { field, expected: want, got: len });
        }
    }
    let mut vm = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            vm[i * p + j] = (0..p).map(|k| variance[i * p + k] * meat[k * p + j]).sum();
        }
    }
    let mut var = vec![0.0; p * p];
    for i in 0..p {
        for j in 0..p {
            var[i * p + j] = (0..p).map(|k| vm[i * p + k] * variance[k * p + j]).sum();
        }
    }
    let all: Vec<usize> = (0..p).collect();
    let (score_test, df) = wald(meat0, score0, &all, toler_chol)?;
    Ok(RobustResult { var, score_test, df })
}

/// Sum weighted rows of `m` (n × p) by cluster; returns (clusters × p).
fn collapse(m: &[f64], p: usize, cluster: &[u64], weights: Option<&[f64]>) -> Vec<f64> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<f64> = Vec::new();
    for (i, &c) in cluster.iter().enumerate() {
        let next = index.len();
        let g = *index.entry(c).or_insert(next);
        if g == out.len() / p {
            out.extend(std::iter::repeat_n(0.0, p));
        }
        let w = weights.map_or(1.0, |w| w[i]);
        for k in 0..p {
            out[g * p + k] += w * m[i * p + k];
        }
    }
    out
}

fn crossprod(d: &[f64], p: usize) -> Vec<f64> {
    let mut v = vec![0.0; p * p];
    for row in d.chunks_exact(p) {
        for i in 0..p {
            for j in 0..p {
                v[i * p + j] += row[i] * row[j];
            }
        }
    }
    v
}

/// Robust variance `DᵀD` with `D` the cluster sums of weighted dfbeta
/// residuals at the estimate, and the robust score test at `init`.
///
/// `beta` and `variance` are on the original scale (aliased coefficients 0,
/// aliased rows/columns of `variance` 0); `data.cluster` must be set.
pub fn robust_variance(
    data: &CoxData,
    prep: &PreparedCox,
    ties: Ties,
    beta: &[f64],
    variance: &[f64],
    init: &[f64],
    toler_chol: f64,
) -> Result<RobustResult, CoxError> {
    let p = prep.p();
    let cluster = data.cluster.as_deref().ok_or(CoxError::Unsupported("robust variance needs cluster ids"))?;
    let resid = score_residuals(prep, &prep.to_internal(beta), ties)?;
    let n = data.n();
    let mut dfbeta = vec![0.0; n * p];
    for i in 0..n {
        for j in 0..p {
            dfbeta[i * p + j] = (0..p).map(|k| resid[i * p + k] * variance[k * p + j]).sum();
        }
    }
    let d = collapse(&dfbeta, p, cluster, data.weights.as_deref());
    let var = crossprod(&d, p);

    let resid0 = score_residuals(prep, &prep.to_internal(init), ties)?;
    let t0 = collapse(&resid0, p, cluster, data.weights.as_deref());
    let u: Vec<f64> = (0..p).map(|k| t0.chunks_exact(p).map(|r| r[k]).sum()).collect();
    let all: Vec<usize> = (0..p).collect();
    let (score_test, df) = wald(&crossprod(&t0, p), &u, &all, toler_chol)?;
    Ok(RobustResult { var, score_test, df })
}
