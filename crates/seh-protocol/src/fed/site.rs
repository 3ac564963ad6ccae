//! The site's side: a site answers a [`Query`] over its own rows with a vector of words for the
//! secure sum. The statistics come from the same `seh-stats` code a local `seh fit` uses.

use seh_stats::formula::Formula;
use seh_stats::glm::{Family, GlmData};
use seh_stats::model::{ModelError, ModelFrame, ModelKind, Response};
use seh_stats::DataFrame;

use super::{cox, stat_err, Enc, Query, RANGE_BUCKETS};
use crate::error::ProtocolError;
use crate::spec::Analysis;

/// The model frame of an analysis's formula on this site's rows.
pub fn frame(analysis: &Analysis, data: &DataFrame) -> Result<ModelFrame, ProtocolError> {
    let (formula, kind) = match analysis {
        Analysis::Cox(c) => (&c.formula, ModelKind::Cox),
        Analysis::Km(k) => (&k.formula, ModelKind::KaplanMeier),
        Analysis::Glm(g) => (&g.formula, ModelKind::Glm),
        Analysis::Describe(_) => return Err(stat_err("model frame", "descriptive studies have no formula")),
    };
    let f = Formula::parse(formula).map_err(|e| stat_err("formula", e))?;
    match ModelFrame::build(data, &f, kind) {
        // A site without events still has risk sets to contribute; build the frame with the
        // event column set to 1 and then mark every kept row censored again.
        Err(ModelError::NoEvents { column, .. }) if kind != ModelKind::Glm => {
            let cols: Vec<(String, Vec<f64>)> = data
                .names()
                .iter()
                .map(|c| {
                    let v = data.column(c).map(<[f64]>::to_vec).unwrap_or_default();
                    let v =
                        if *c == column { v.iter().map(|x| if x.is_nan() { *x } else { 1.0 }).collect() } else { v };
                    (c.clone(), v)
                })
                .collect();
            let patched = DataFrame::from_columns(cols).map_err(|e| stat_err("model frame", e))?;
            let mut fr = ModelFrame::build(&patched, &f, kind).map_err(|e| stat_err("model frame", e))?;
            if let Response::Surv(s) = &mut fr.response {
                s.event.iter_mut().for_each(|e| *e = 0.0);
            }
            Ok(fr)
        }
        r => r.map_err(|e| stat_err("model frame", e)),
    }
}

/// What a site tells the coordinator about its model frame when it accepts a study: group
/// labels (Cox strata, KM groups) and design column names. No counts, no values.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Group labels in this site's level order (empty: no groups).
    pub levels: Vec<String>,
    /// Design column names.
    pub terms: Vec<String>,
    /// Column 0 is the intercept.
    pub intercept: bool,
    /// The model has an offset.
    pub has_offset: bool,
    /// Counting-process `(start, stop]` rows.
    pub counting: bool,
    /// The model has a `cluster()` term (robust variance).
    #[serde(default)]
    pub cluster: bool,
    /// The site's disclosure floor for strata and risk sets (the larger of its policy's
    /// `min_cell_count` and `min_risk_set`; the merge keeps the largest): pooled strata and risk
    /// sets below it are not released ([`super::strata`]).
    #[serde(default)]
    pub min_count: u64,
    /// Set by the coordinator's merge, never by a site: `Some(sites)` when the secure sum is exact
    /// modulo 2⁶⁴ over at most `sites` summands, so the planner may pack counts and send reals in
    /// the one-word form; `None`: unpacked counts and wide reals only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub word_sites: Option<u32>,
}

/// This site's [`ModelInfo`] (empty for descriptive studies).
pub fn model_info(analysis: &Analysis, data: &DataFrame) -> Result<ModelInfo, ProtocolError> {
    if matches!(analysis, Analysis::Describe(_)) {
        return Ok(ModelInfo::default());
    }
    let f = frame(analysis, data)?;
    if let Analysis::Cox(spec) = analysis {
        // Refuse at the offer (with the reason) what the Cox rounds could not compute.
        cox::cox_data(&f)?;
        super::cox_terms::tt_expr(spec, &f)?;
    }
    Ok(ModelInfo {
        levels: f.strata.as_ref().map(|g| g.labels.clone()).unwrap_or_default(),
        terms: f.design.names.clone(),
        intercept: f.design.intercept,
        has_offset: f.offset.is_some(),
        counting: f.surv().is_some_and(|s| s.start.is_some()),
        cluster: f.cluster.is_some(),
        min_count: 0,
        word_sites: None,
    })
}

/// The bucket of the time-range histogram: `⌈log₂ t⌉ + 64`, clamped; 0 for `t ≤ 0`.
pub fn range_bucket(t: f64) -> usize {
    if t <= 0.0 || !t.is_finite() {
        return 0;
    }
    (t.log2().ceil() as i64 + 64).clamp(0, RANGE_BUCKETS as i64 - 1) as usize
}

/// What a site keeps between the rounds of one study: its model frame and, for pooled Cox, its
/// rows sorted and mapped onto the released grid (so a Newton round costs one kernel pass).
#[derive(Debug, Default)]
pub struct SiteCache {
    frame: Option<(String, ModelFrame)>,
    pooled: Option<(String, cox::PooledPrep)>,
    stratified: Option<(String, cox::StratifiedPrep)>,
    agreed: super::check::Agreed,
}

/// Rows of a site for this query, encoded for the secure sum (no cache).
///
/// Errors: the formula does not fit this site's data, a value cannot be encoded, or the query
/// does not belong to the analysis.
pub fn answer(analysis: &Analysis, query: &Query, data: &DataFrame) -> Result<Vec<u64>, ProtocolError> {
    answer_cached(analysis, query, data, &mut SiteCache::default())
}

/// [`answer`] reusing what `cache` holds from earlier rounds of the same study.
pub fn answer_cached(
    analysis: &Analysis,
    query: &Query,
    data: &DataFrame,
    cache: &mut SiteCache,
) -> Result<Vec<u64>, ProtocolError> {
    let akey = serde_json::to_string(analysis).map_err(|e| stat_err("cache", e))?;
    if cache.frame.as_ref().is_none_or(|(k, _)| *k != akey) {
        cache.pooled = None;
        cache.stratified = None;
        cache.agreed = Default::default();
        cache.frame = Some((akey.clone(), frame(analysis, data)?));
    }
    let Some((_, frame)) = &cache.frame else { return Err(stat_err("cache", "no frame")) };
    let efron = matches!(analysis, Analysis::Cox(c) if c.ties == seh_stats::cox::Ties::Efron);
    super::check::check_query(query, frame.design.ncols(), efron)?;
    cache.agreed.admit(query)?;
    let mut enc = Enc::default();
    match query {
        Query::Moments => moments(frame, &mut enc)?,
        Query::Histogram { resolution, bins, levels, pack } => {
            histogram(frame, *resolution, *bins, levels, *pack, &mut enc)?
        }
        Query::CoxStratified { centring, beta } => {
            let Analysis::Cox(spec) = analysis else { return Err(wrong()) };
            let ckey = serde_json::to_string(centring).map_err(|e| stat_err("cache", e))?;
            if cache.stratified.as_ref().is_none_or(|(k, _)| *k != ckey) {
                cache.stratified = Some((ckey, cox::prepare_stratified(spec, frame, centring)?));
            }
            let Some((_, sp)) = cache.stratified.as_mut() else { return Err(stat_err("cache", "no data")) };
            cox::site_stratified(spec, sp, beta, &mut enc)?
        }
        Query::CoxPooled { centring, resolution, edges, levels, .. } => {
            let Analysis::Cox(spec) = analysis else { return Err(wrong()) };
            let gkey =
                serde_json::to_string(&(centring, resolution, edges, levels)).map_err(|e| stat_err("cache", e))?;
            if cache.pooled.as_ref().is_none_or(|(k, _)| *k != gkey) {
                cache.pooled = Some((gkey, cox::prepare_pooled(spec, frame, query)?));
            }
            let Some((_, pp)) = cache.pooled.as_mut() else { return Err(stat_err("cache", "no grid")) };
            cox::site_pooled(spec, pp, query, &mut enc)?
        }
        Query::CoxCluster { centring, grid, points } => {
            let Analysis::Cox(spec) = analysis else { return Err(wrong()) };
            // The rows as the Newton rounds prepared them (prepared again after a restart).
            match grid {
                Some((resolution, edges, levels)) => {
                    let gkey = serde_json::to_string(&(centring, resolution, edges, levels))
                        .map_err(|e| stat_err("cache", e))?;
                    if cache.pooled.as_ref().is_none_or(|(k, _)| *k != gkey) {
                        let records: usize = edges.iter().map(Vec::len).sum();
                        let q = Query::CoxPooled {
                            centring: centring.clone(),
                            beta: vec![0.0; frame.design.ncols()],
                            resolution: *resolution,
                            edges: edges.clone(),
                            levels: levels.clone(),
                            shifts: vec![0.0; records],
                            narrow: None,
                        };
                        super::check::check_query(&q, frame.design.ncols(), efron)?;
                        cache.pooled = Some((gkey, cox::prepare_pooled(spec, frame, &q)?));
                    }
                }
                None => {
                    let ckey = serde_json::to_string(centring).map_err(|e| stat_err("cache", e))?;
                    if cache.stratified.as_ref().is_none_or(|(k, _)| *k != ckey) {
                        cache.stratified = Some((ckey, cox::prepare_stratified(spec, frame, centring)?));
                    }
                }
            }
            let pooled = cache.pooled.as_ref().map(|(_, pp)| pp).filter(|_| grid.is_some());
            let stratified = cache.stratified.as_ref().map(|(_, sp)| sp).filter(|_| grid.is_none());
            super::cox_terms::site_cluster(spec, pooled, stratified, points, &mut enc)?
        }
        Query::Glm { point, cols } => {
            let Analysis::Glm(spec) = analysis else { return Err(wrong()) };
            glm(spec, frame, point, cols, &mut enc)?
        }
    }
    Ok(enc.words)
}

fn wrong() -> ProtocolError {
    ProtocolError::invalid("query", "query", "does not belong to this study's analysis")
}

fn moments(frame: &ModelFrame, enc: &mut Enc) -> Result<(), ProtocolError> {
    let n = frame.nrows();
    let p = frame.design.ncols();
    enc.count(n as u64);
    let surv = frame.surv();
    enc.count(surv.map_or(0, |s| s.event.iter().filter(|e| **e == 1.0).count() as u64));
    for j in 0..p {
        let col = frame.design.column(j);
        enc.count(col.iter().filter(|v| !(**v == 0.0 || **v == 1.0 || **v == -1.0)).count() as u64);
        enc.real(col.iter().sum(), "column sum")?;
        enc.real(col.iter().map(|v| v * v).sum(), "column sum of squares")?;
    }
    let mut buckets = vec![0u64; RANGE_BUCKETS];
    if let Some(s) = surv {
        for &t in &s.stop {
            buckets[range_bucket(t)] += 1;
        }
    }
    enc.words.extend_from_slice(&buckets);
    Ok(())
}

/// The fine bin of `t`: `round(t / resolution)`. Errors beyond `bins`.
pub fn fine_bin(t: f64, resolution: f64, bins: u64) -> Result<u64, ProtocolError> {
    let b = (t / resolution).round();
    if !(b >= 0.0 && b <= bins as f64) {
        return Err(stat_err("histogram", "a time lies outside the public time grid"));
    }
    Ok(b as u64)
}

/// Global level index of each row (0 when the formula has no groups).
pub fn global_codes(frame: &ModelFrame, levels: &[String]) -> Result<Vec<usize>, ProtocolError> {
    match &frame.strata {
        None if levels.len() <= 1 => Ok(vec![0; frame.nrows()]),
        None => Err(stat_err("groups", "the study has groups but this site's frame has none")),
        Some(g) => {
            let map: Vec<usize> = g
                .labels
                .iter()
                .map(|l| levels.iter().position(|x| x == l))
                .collect::<Option<_>>()
                .ok_or_else(|| stat_err("groups", "a group of this site is not in the study's level list"))?;
            Ok(g.codes.iter().map(|&c| map.get(c as usize).copied().unwrap_or(0)).collect())
        }
    }
}

fn histogram(
    frame: &ModelFrame,
    resolution: f64,
    bins: u64,
    levels: &[String],
    pack: u32,
    enc: &mut Enc,
) -> Result<(), ProtocolError> {
    let s = frame.surv().ok_or_else(|| stat_err("histogram", "the model has no survival response"))?;
    let nl = levels.len().max(1);
    let width = bins as usize + 1;
    let codes = global_codes(frame, levels)?;
    let mut counts = vec![0u64; nl * 3 * width];
    for i in 0..frame.nrows() {
        let base = codes[i] * 3 * width;
        let b = fine_bin(s.stop[i], resolution, bins)? as usize;
        if s.event[i] == 1.0 {
            counts[base + b] += 1;
        } else {
            counts[base + width + b] += 1;
        }
        if let Some(st) = &s.start {
            counts[base + 2 * width + fine_bin(st[i], resolution, bins)? as usize] += 1;
        }
    }
    enc.words.extend(super::pack_counts(&counts, pack)?);
    Ok(())
}

fn glm(
    spec: &super::GlmSpec,
    frame: &ModelFrame,
    point: &seh_stats::glm::IrlsPoint,
    cols: &[usize],
    enc: &mut Enc,
) -> Result<(), ProtocolError> {
    let Response::Numeric { y, .. } = &frame.response else {
        return Err(stat_err("glm", "the model has no numeric response"));
    };
    let family = Family::parse(&spec.family).ok_or_else(|| stat_err("glm", "unknown family"))?;
    let d = &frame.design;
    let data =
        GlmData::new(&d.values, d.ncols(), y, None, frame.offset.as_deref(), family).map_err(|e| stat_err("glm", e))?;
    let pc = data.pieces(point, cols).map_err(|e| stat_err("glm", e))?;
    enc.reals(&pc.xtwx, "XtWX")?;
    enc.reals(&pc.xtwz, "XtWz")?;
    for v in [pc.deviance, pc.aic_sum, pc.n_obs, pc.sum_w, pc.sum_wy, pc.n_boundary, pc.n_invalid] {
        enc.real(v, "glm sums")?;
    }
    Ok(())
}
