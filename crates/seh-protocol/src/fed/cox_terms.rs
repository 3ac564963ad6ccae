//! `cluster()` and `tt()` terms in a federation: the sites' cluster sums of score residuals for
//! the robust variance, and the `tt()` transform with the survSplit of rows at the released grid.

use seh_stats::cox::kernel::packed_len;
use seh_stats::cox::{CoxData, Strata};
use seh_stats::model::ModelFrame;
use seh_stats::ttexpr::TtExpr;

use super::cox::{check_ties, PooledPrep, StratifiedPrep};
use super::{stat_err, CoxSpec, Dec, Enc};
use crate::error::ProtocolError;

/// The study's `tt()` transform when the formula has `tt()` terms. Errors: `tt()` terms without
/// a transform in the study, or a transform that does not parse.
pub fn tt_expr(spec: &CoxSpec, frame: &ModelFrame) -> Result<Option<TtExpr>, ProtocolError> {
    if frame.tt_columns.is_empty() {
        return Ok(None);
    }
    let text = spec
        .tt
        .as_deref()
        .ok_or_else(|| stat_err("cox", "the formula has tt() terms but the study gives no tt transform"))?;
    TtExpr::parse(text).map(Some).map_err(|e| stat_err("cox tt", e))
}

/// Splits every row at the released grid times it is at risk at (survSplit): one
/// counting-process row per (row, grid time), `(previous grid time, grid time]`, with each `tt()`
/// column replaced by `f(x, grid time)` and the event kept on the piece ending at the row's own
/// (mapped) event time. Risk sets and deaths at every grid time are unchanged, so the pooled sums
/// are those of R's `tt()` expansion at the pooled event times.
pub(super) fn split_at_grid(
    data: &mut CoxData,
    edges: &[Vec<u64>],
    resolution: f64,
    tt_cols: &[usize],
    expr: &TtExpr,
) -> Result<(), ProtocolError> {
    let p = data.p;
    let n = data.n();
    let codes: Vec<usize> = match &data.strata {
        Some(s) => s.codes.iter().map(|&c| c as usize).collect(),
        None => vec![0; n],
    };
    let mut out = CoxData::new(Vec::new(), Vec::new(), Vec::new(), data.terms.clone());
    let (mut start, mut scodes, mut weights, mut offset, mut cluster) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let times: Vec<f64> =
            edges.get(codes[i]).map_or(Vec::new(), |e| e.iter().map(|&b| b as f64 * resolution).collect());
        let (lo, hi) = (data.start.as_ref().map_or(f64::NEG_INFINITY, |s| s[i]), data.stop[i]);
        let first = times.partition_point(|&t| t <= lo);
        let last = times.partition_point(|&t| t <= hi);
        for k in first..last {
            let t = times[k];
            let from = match (k == first, lo.is_finite()) {
                (true, true) => lo,
                // A right-censored row is at risk from time 0.
                (true, false) => 0.0,
                (false, _) => times[k - 1],
            };
            if from >= t {
                return Err(stat_err("cox tt", "tt() needs event times > 0"));
            }
            start.push(from);
            out.stop.push(t);
            out.event.push(if data.event[i] == 1.0 && t == hi { 1.0 } else { 0.0 });
            let base = out.x.len();
            out.x.extend_from_slice(&data.x[i * p..(i + 1) * p]);
            for &c in tt_cols {
                let v = expr.eval(data.x[i * p + c], t);
                if !v.is_finite() {
                    return Err(stat_err("cox tt", "the tt() transform is not finite at a grid time"));
                }
                out.x[base + c] = v;
            }
            scodes.push(codes[i] as u32);
            weights.extend(data.weights.as_ref().map(|w| w[i]));
            offset.extend(data.offset.as_ref().map(|o| o[i]));
            cluster.extend(data.cluster.as_ref().map(|c| c[i]));
        }
    }
    out.start = Some(start);
    out.strata = data.strata.as_ref().map(|s| Strata { codes: scodes, labels: s.labels.clone() });
    out.weights = data.weights.as_ref().map(|_| weights);
    out.offset = data.offset.as_ref().map(|_| offset);
    out.cluster = data.cluster.as_ref().map(|_| cluster);
    *data = out;
    Ok(())
}

/// Packs the lower triangle of a symmetric row-major `p × p` matrix (the order of
/// `seh_stats::cox::kernel::unpack_symmetric`).
fn pack_lower(full: &[f64], p: usize) -> Vec<f64> {
    (0..p).flat_map(|i| (0..=i).map(move |j| full[i * p + j])).collect()
}

/// The cluster step: per point, `Σ_c U_c` (p) and the packed `Σ_c U_c U_cᵀ` of this site's
/// clusters, from the `seh-stats` score residuals — against the pooled per-time sums in pooled
/// mode (`pooled`), against this site's own strata in stratified mode.
pub fn site_cluster(
    spec: &CoxSpec,
    pooled: Option<&PooledPrep>,
    stratified: Option<&StratifiedPrep>,
    points: &[super::ClusterPoint],
    enc: &mut Enc,
) -> Result<(), ProtocolError> {
    use seh_stats::cox::robust::{cluster_sums, score_residuals, score_residuals_with};
    let ties = check_ties(spec)?;
    let (prep, cluster, p) =
        match (spec.mode, pooled, stratified) {
            (super::CoxMode::Pooled, Some(pp), _) => (Some(&pp.prep), &pp.cluster, pp.prep.p()),
            (super::CoxMode::Stratified, _, Some(sp)) => (sp.prep.as_ref().map(|(prep, _)| prep), &sp.cluster, sp.p),
            _ => return Err(ProtocolError::invalid(
                "query",
                "cox-cluster",
                "this site holds no prepared rounds of this study (it restarted?); the cluster step must follow them",
            )),
        };
    let Some((ids, weights)) = cluster else {
        return Err(ProtocolError::invalid("query", "cox-cluster", "the model has no cluster() term"));
    };
    for pt in points {
        let Some(prep) = prep else {
            // A site without events in stratified mode: its strata add nothing.
            enc.reals(&vec![0.0; p + packed_len(p)], "cluster sums")?;
            continue;
        };
        let resid = match spec.mode {
            super::CoxMode::Pooled => score_residuals_with(prep, &pt.beta, ties, &pt.records),
            super::CoxMode::Stratified => score_residuals(prep, &pt.beta, ties),
        }
        .map_err(|e| stat_err("cox cluster", e))?;
        let (total, meat) = cluster_sums(&resid, p, ids, weights.as_deref());
        enc.reals(&total, "cluster score sums")?;
        enc.reals(&pack_lower(&meat, p), "cluster score products")?;
    }
    Ok(())
}

/// The summed cluster sums of one evaluation point (original scale).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSums {
    /// `Σ_c U_c` (p).
    pub total: Vec<f64>,
    /// `Σ_c U_c U_cᵀ`, row-major `p × p`.
    pub meat: Vec<f64>,
}

/// Reads the summed cluster answer, one [`ClusterSums`] per point.
pub fn read_cluster(words: &[u64], p: usize, points: usize) -> Result<Vec<ClusterSums>, ProtocolError> {
    let mut d = Dec::new(words);
    let mut out = Vec::new();
    for _ in 0..points {
        let total = d.reals(p)?;
        let packed = d.reals(packed_len(p))?;
        out.push(ClusterSums { total, meat: seh_stats::cox::kernel::unpack_symmetric(&packed, p) });
    }
    d.finish()?;
    Ok(out)
}
