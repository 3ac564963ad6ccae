//! The coordinator's side: what to ask next, and the result.
//!
//! [`plan`] is a pure function of the study, the sites' [`ModelInfo`] and the secure sums received
//! so far (the *transcript*): it replays the transcript through the `seh-stats` drivers (the Cox
//! `NewtonDriver`, the GLM IRLS driver) and returns either the next [`Query`] or the result. A
//! restarted coordinator therefore resumes from the persisted sums alone.

use seh_stats::cox::assemble::{federated_fit, FederatedCox};
use seh_stats::cox::basehaz::BaselineCumhaz;
use seh_stats::cox::driver::Flavour;
use seh_stats::cox::{CoxControl, DriverRequest, NewtonDriver, StoredSums};
use seh_stats::glm::{glm_fit_with, Family, GlmControl, GlmError, GlmPieces, GlmSource, GlmSpec as StatsGlmSpec};
use seh_stats::km::{km_curves, ConfType, KmCounts, KmOptions, StratumCounts};
use seh_stats::logrank::logrank_from_counts;
use serde_json::{json, Value};

use seh_stats::cox::robust::robust_from_sums;

use super::cox::{read_histogram, read_pooled, read_stratified, release_grid, LevelHistogram};
use super::site::ModelInfo;
use super::{
    stat_err, Centring, ClusterPoint, CoxMode, CoxSpec, Dec, GlmSpec, KmSpec, Query, MAX_FINE_BINS, RANGE_BUCKETS,
};
use crate::error::ProtocolError;
use crate::spec::Analysis;

/// What the coordinator does next.
#[derive(Clone, PartialEq, Debug)]
pub enum Step {
    /// Ask every site for this and securely sum the answers.
    Query(Query),
    /// The analysis is finished; the result (JSON, `seh fit` field names plus `federation`).
    Done(Value),
}

/// What the secure sum of a study guarantees about its words; the coordinator chooses it from
/// the aggregation back-end, so the analyses here stay independent of the back-end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WordSum {
    /// The exact word-wise sum modulo 2⁶⁴ (SecAgg+): counts may be packed and reals sent in the
    /// one-word form with an exact per-site bound.
    Modular64,
    /// Only the layouts that never rely on a wrap: one count per word, reals as 32-bit limbs.
    Limbs,
}

/// Merges the sites' model descriptions: design columns must agree; group labels are united.
/// `sum` says what the secure sum guarantees (see [`WordSum`]).
pub fn merge_info(infos: &[ModelInfo], sum: WordSum) -> Result<ModelInfo, ProtocolError> {
    let first = infos.first().ok_or_else(|| stat_err("model", "no site described its model"))?;
    for i in infos {
        if i.terms != first.terms
            || i.intercept != first.intercept
            || i.counting != first.counting
            || i.cluster != first.cluster
        {
            return Err(stat_err(
                "model",
                "the sites' design columns differ (a factor level missing at a site?); recode it as indicator columns",
            ));
        }
    }
    let levels: Vec<Vec<String>> = infos.iter().map(|i| i.levels.clone()).collect();
    Ok(ModelInfo {
        levels: super::merge_levels(&levels),
        terms: first.terms.clone(),
        intercept: first.intercept,
        has_offset: infos.iter().any(|i| i.has_offset),
        counting: first.counting,
        cluster: first.cluster,
        min_count: infos.iter().map(|i| i.min_count).max().unwrap_or(0),
        word_sites: match sum {
            WordSum::Modular64 => Some(u32::try_from(infos.len()).map_err(|e| stat_err("model", e))?),
            WordSum::Limbs => None,
        },
    })
}

/// The next step of `analysis` after the secure sums `sums` (in round order).
pub fn plan(analysis: &Analysis, info: &ModelInfo, sums: &[Vec<u64>]) -> Result<Step, ProtocolError> {
    let mut it = sums.iter();
    match analysis {
        Analysis::Cox(spec) => plan_cox(spec, info, &mut it),
        Analysis::Km(spec) => plan_km(spec, info, &mut it),
        Analysis::Glm(spec) => plan_glm(spec, info, &mut it),
        Analysis::Describe(_) => Err(stat_err("plan", "descriptive studies are a single aggregation")),
    }
}

type Sums<'a> = std::slice::Iter<'a, Vec<u64>>;

/// Secure moments: rows, events, per column the count outside {−1, 0, 1}, Σx, Σx²; time range.
#[derive(Debug, Clone)]
pub struct Moments {
    /// Rows.
    pub n: u64,
    /// Events.
    pub nevent: u64,
    /// Per column: values outside {−1, 0, 1}.
    pub nonbinary: Vec<u64>,
    /// Per column Σx.
    pub sum: Vec<f64>,
    /// Per column Σx².
    pub sumsq: Vec<f64>,
    /// Upper bound of every time (a power of two).
    pub time_max: f64,
}

fn read_moments(words: &[u64], p: usize) -> Result<Moments, ProtocolError> {
    let mut d = Dec::new(words);
    let n = d.count()?;
    let nevent = d.count()?;
    let (mut nonbinary, mut sum, mut sumsq) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..p {
        nonbinary.push(d.count()?);
        sum.push(d.real()?);
        sumsq.push(d.real()?);
    }
    let mut top = 0usize;
    for k in 0..RANGE_BUCKETS {
        if d.count()? > 0 {
            top = k;
        }
    }
    d.finish()?;
    Ok(Moments { n, nevent, nonbinary, sum, sumsq, time_max: 2f64.powi(top as i32 - 64) })
}

impl Moments {
    /// Common centring (R's rule for which columns to centre; scale 1/SD) and R's reported means.
    pub fn centring(&self) -> (Centring, Vec<f64>) {
        let nf = self.n as f64;
        let p = self.sum.len();
        let (mut centre, mut scale, mut means) = (vec![0.0; p], vec![1.0; p], vec![0.0; p]);
        for j in 0..p {
            if self.nonbinary[j] == 0 || self.n == 0 {
                continue;
            }
            let m = self.sum[j] / nf;
            means[j] = m;
            centre[j] = m;
            let var = (self.sumsq[j] / nf - m * m).max(0.0);
            if var > 0.0 && var.is_finite() {
                scale[j] = 1.0 / var.sqrt();
            }
        }
        (Centring { centre, scale }, means)
    }

    /// The public fine grid: `(resolution, bins)`.
    pub fn fine_grid(&self, requested: Option<f64>) -> Result<(f64, u64), ProtocolError> {
        let res = match requested {
            Some(r) if r.is_finite() && r > 0.0 => r,
            Some(_) => return Err(stat_err("time grid", "the time resolution must be finite and > 0")),
            None => 10f64.powf((self.time_max / MAX_FINE_BINS as f64).log10().floor()),
        };
        let bins = (self.time_max / res).ceil();
        if bins > super::MAX_QUERY_BINS as f64 {
            return Err(stat_err("time grid", "the time resolution gives too many bins; choose a coarser one"));
        }
        Ok((res, bins as u64))
    }
}

/// The next sum of the transcript, or (when the transcript ends here) return the query.
macro_rules! ask {
    ($it:expr, $q:expr) => {
        match $it.next() {
            Some(s) => s,
            None => return Ok(Step::Query($q)),
        }
    };
}

fn plan_cox(spec: &CoxSpec, info: &ModelInfo, it: &mut Sums<'_>) -> Result<Step, ProtocolError> {
    let p = info.terms.len();
    let m = read_moments(ask!(it, Query::Moments), p)?;
    let (centring, means) = m.centring();
    let control = CoxControl::default();
    let flavour = if info.counting { Flavour::CountingProcess } else { Flavour::RightCensored };
    let zeros = vec![0.0; p];
    let mut driver = NewtonDriver::new(p, &zeros, control, flavour).map_err(|e| stat_err("cox driver", e))?;
    let mut meta =
        json!({ "mode": spec.mode, "concordance": "omitted: R's concordance needs every pair of rows across sites" });
    let mut last: Option<(Vec<f64>, StoredSums)> = None;
    // Pooled sums at the initial coefficients (the robust score test of cluster() models).
    let mut first: Option<StoredSums> = None;
    let mut pooled_grid: Option<(f64, Vec<Vec<u64>>, Vec<String>)> = None;
    let outcome = match spec.mode {
        CoxMode::Stratified => loop {
            match driver.next() {
                DriverRequest::Evaluate(beta) => {
                    let s = ask!(it, Query::CoxStratified { centring: centring.clone(), beta });
                    let sum = read_stratified(s, p)?;
                    driver.feed(sum.eval).map_err(|e| stat_err("cox driver", e))?;
                }
                DriverRequest::Done(out) => break out,
            }
        },
        CoxMode::Pooled => {
            let (resolution, bins) = m.fine_grid(spec.time_resolution)?;
            let levels = info.levels.clone();
            let pack = histogram_pack(info, m.n);
            let h = ask!(it, Query::Histogram { resolution, bins, levels: levels.clone(), pack });
            let hist = read_histogram(h, levels.len(), bins, pack)?;
            for (i, lh) in hist.iter().enumerate() {
                let n: u64 = lh.events.iter().chain(&lh.censored).sum();
                if super::strata::small(n, info.min_count) {
                    let label = levels.get(i).map_or("?", String::as_str);
                    return Err(stat_err(
                        super::strata::RULE,
                        format!("refused: the pooled stratum `{label}` has fewer than {} patients", info.min_count),
                    ));
                }
            }
            let (edges, mut shifts, merged) = grid(&hist, spec.min_risk_set.max(info.min_count))?;
            pooled_grid = Some((resolution, edges.clone(), levels.clone()));
            meta["grid"] = json!({
                "time_resolution": resolution,
                "fine_bins": bins,
                "min_risk_set": spec.min_risk_set,
                "released_times": edges.iter().map(Vec::len).sum::<usize>(),
                "merged": merged,
                "exact": !merged,
            });
            // Reals go in the one-word form while every site's values fit its bound; after a round in
            // which one did not, that round is asked again and the rest of the fit in the wide form.
            let mut narrow = info.word_sites;
            let mut wide_retries = 0u32;
            let outcome = loop {
                match driver.next() {
                    DriverRequest::Evaluate(beta) => {
                        let store = loop {
                            let q = Query::CoxPooled {
                                centring: centring.clone(),
                                beta: beta.clone(),
                                resolution,
                                edges: edges.clone(),
                                levels: levels.clone(),
                                shifts: shifts.clone(),
                                narrow,
                            };
                            let s = ask!(it, q);
                            match read_pooled(s, p, spec.ties, &edges, resolution, &shifts, narrow.is_some())? {
                                Some(store) => break store,
                                None => {
                                    narrow = None;
                                    wide_retries += 1;
                                }
                            }
                        };
                        let ev = store.fold(spec.ties).map_err(|e| stat_err("cox fold", e))?;
                        for (c, r) in shifts.iter_mut().zip(&store.records) {
                            if r.s0 > 0.0 && r.s0.is_finite() {
                                *c += r.s0.ln();
                            }
                        }
                        driver.feed(ev).map_err(|e| stat_err("cox driver", e))?;
                        if first.is_none() && info.cluster {
                            first = Some(store.clone());
                        }
                        last = Some((beta, store));
                    }
                    DriverRequest::Done(out) => break out,
                }
            };
            meta["words_per_real"] = json!(if narrow.is_some() { 1 } else { crate::wide::WORDS });
            meta["wide_retries"] = json!(wide_retries);
            meta["histogram_counts_per_word"] = json!(pack);
            outcome
        }
    };
    let robust = if info.cluster {
        let points = match spec.mode {
            CoxMode::Stratified => vec![
                ClusterPoint { beta: outcome.beta.clone(), records: Vec::new() },
                ClusterPoint { beta: zeros.clone(), records: Vec::new() },
            ],
            CoxMode::Pooled => match (&last, &first) {
                (Some((b, fin)), Some(init)) if *b == outcome.beta => vec![
                    ClusterPoint { beta: outcome.beta.clone(), records: first_order(fin) },
                    ClusterPoint { beta: zeros.clone(), records: first_order(init) },
                ],
                _ => return Err(stat_err("cox cluster", "the pooled sums at the estimate are missing")),
            },
        };
        let grid = match spec.mode {
            CoxMode::Pooled => pooled_grid.clone(),
            CoxMode::Stratified => None,
        };
        let s = ask!(it, Query::CoxCluster { centring: centring.clone(), grid, points });
        let sums = super::cox_terms::read_cluster(s, p, 2)?;
        if sums.len() != 2 {
            return Err(stat_err("cox cluster", "two evaluation points expected"));
        }
        let mut v = outcome.variance.clone();
        for i in 0..p {
            for j in 0..p {
                v[i * p + j] *= centring.scale[i] * centring.scale[j];
            }
        }
        meta["robust"] = json!("cluster(): sandwich variance from per-site cluster sums; clusters must not span sites");
        Some(
            robust_from_sums(&v, &sums[0].meat, &sums[1].meat, &sums[1].total, p, control.toler_chol)
                .map_err(|e| stat_err("cox cluster", e))?,
        )
    } else {
        None
    };
    let baseline = match &last {
        // No baseline hazard for tt() models (R's basehaz refuses them too).
        Some((beta, store)) if *beta == outcome.beta && spec.tt.is_none() => {
            Some(baseline(store, &outcome.beta, &centring, &info.levels))
        }
        _ => None,
    };
    let fit = federated_fit(FederatedCox {
        ties: spec.ties,
        terms: &info.terms,
        control,
        init: &zeros,
        outcome: &outcome,
        scale: &centring.scale,
        means: &means,
        n: m.n as usize,
        nevent: m.nevent as usize,
        baseline,
        warnings: Vec::new(),
        counting: info.counting,
        robust,
    })
    .map_err(|e| stat_err("cox fit", e))?;
    let mut v = serde_json::to_value(&fit).map_err(|e| stat_err("cox fit", e))?;
    v["concordance"] = Value::Null;
    Ok(Step::Done(json!({ "fit": v, "federation": meta })))
}

/// The pooled per-time sums the sites need for their cluster score residuals (first-order sums
/// only).
fn first_order(store: &StoredSums) -> Vec<seh_stats::cox::kernel::TimeRecord> {
    store
        .records
        .iter()
        .map(|r| seh_stats::cox::kernel::TimeRecord {
            s2: Vec::new(),
            d2: Vec::new(),
            death_x: Vec::new(),
            ..r.clone()
        })
        .collect()
}

/// Counts per word of the event histogram: packed only when the sum is exact modulo 2⁶⁴ and the
/// pooled row count `n` (which bounds every summed count) fits the field.
fn histogram_pack(info: &ModelInfo, n: u64) -> u32 {
    if info.word_sites.is_none() {
        return 1;
    }
    (1..=super::MAX_PACK).rev().find(|&k| k == 1 || n < 1u64 << super::pack_bits(k)).unwrap_or(1)
}

/// Released grid of every level; initial shifts `ln(at risk)` in record order (levels in order,
/// times descending).
type Grid = (Vec<Vec<u64>>, Vec<f64>, bool);

fn grid(hist: &[LevelHistogram], k: u64) -> Result<Grid, ProtocolError> {
    let mut edges = Vec::new();
    let mut shifts = Vec::new();
    let mut merged = false;
    for h in hist {
        if h.events.iter().all(|e| *e == 0) {
            edges.push(Vec::new());
            continue;
        }
        let (e, risk, m) = release_grid(h, k.max(1))?;
        merged |= m;
        shifts.extend(risk.iter().rev().map(|&r| (r.max(1) as f64).ln()));
        edges.push(e);
    }
    Ok((edges, shifts, merged))
}

/// Breslow cumulative baseline hazard at covariates 0 from the final summed per-time sums
/// (the same fold `seh fit` uses).
fn baseline(store: &StoredSums, beta_int: &[f64], c: &Centring, levels: &[String]) -> BaselineCumhaz {
    let bc: f64 = beta_int.iter().zip(&c.scale).zip(&c.centre).map(|((b, s), m)| b * s * m).sum();
    seh_stats::cox::basehaz::baseline_from_sums(store, bc, (!levels.is_empty()).then_some(levels))
}

fn plan_km(spec: &KmSpec, info: &ModelInfo, it: &mut Sums<'_>) -> Result<Step, ProtocolError> {
    let conf_type = ConfType::parse(&spec.conf_type).ok_or_else(|| stat_err("km", "unknown conf_type"))?;
    let m = read_moments(ask!(it, Query::Moments), 0)?;
    let (resolution, bins) = m.fine_grid(spec.time_resolution)?;
    let levels = info.levels.clone();
    let pack = histogram_pack(info, m.n);
    let h = ask!(it, Query::Histogram { resolution, bins, levels: levels.clone(), pack });
    let hist = read_histogram(h, levels.len(), bins, pack)?;
    let floor = info.min_count;
    let (mut strata, mut full) = (Vec::new(), Vec::new());
    let (mut suppressed, mut truncated) = (0u64, false);
    for (code, lh) in hist.iter().enumerate() {
        let width = lh.events.len();
        let (mut ge_stop, mut ge_start) = (vec![0u64; width + 1], vec![0u64; width + 1]);
        for b in (0..width).rev() {
            ge_stop[b] = ge_stop[b + 1] + lh.events[b] + lh.censored[b];
            ge_start[b] = ge_start[b + 1] + lh.entries[b];
        }
        let keep: Vec<usize> = (0..width).filter(|&b| lh.events[b] + lh.censored[b] > 0).collect();
        if keep.is_empty() {
            continue;
        }
        // A stratum below the floor is suppressed (not in the curves nor in the log-rank test).
        if super::strata::small(ge_stop[0], floor) {
            suppressed += 1;
            continue;
        }
        let all = StratumCounts {
            stratum: code as u32,
            n: ge_stop[0],
            time: keep.iter().map(|&b| b as f64 * resolution).collect(),
            // Entries at bin >= b are not yet at risk at b (start < t <= stop).
            n_risk: keep.iter().map(|&b| ge_stop[b].saturating_sub(ge_start[b]) as f64).collect(),
            n_event: keep.iter().map(|&b| lh.events[b] as f64).collect(),
            n_censor: keep.iter().map(|&b| lh.censored[b] as f64).collect(),
        };
        // The curve ends before the first time whose risk set is below the floor.
        let mut curve = all.clone();
        if let Some(cut) = curve.n_risk.iter().position(|&r| floor > 1 && r < floor as f64) {
            truncated = true;
            curve.time.truncate(cut);
            curve.n_risk.truncate(cut);
            curve.n_event.truncate(cut);
            curve.n_censor.truncate(cut);
        }
        full.push(all);
        if !curve.time.is_empty() {
            strata.push(curve);
        }
    }
    if strata.is_empty() {
        return Err(stat_err(
            super::strata::RULE,
            format!("refused: every stratum has fewer than {floor} patients, or fewer than {floor} at risk at its first time"),
        ));
    }
    let counts = KmCounts { counting: info.counting, weighted: false, strata };
    let tested = KmCounts { counting: info.counting, weighted: false, strata: full };
    let all = vec!["all".to_string()];
    let labels = if levels.is_empty() { &all } else { &levels };
    let opts = KmOptions { conf_type, conf_int: 0.95 };
    let fit = km_curves(&counts, Some(labels), &opts).map_err(|e| stat_err("km", e))?;
    let logrank = if levels.len() > 1 && !info.counting && tested.strata.len() > 1 {
        let t = logrank_from_counts(std::slice::from_ref(&tested), 0.0).map_err(|e| stat_err("log-rank", e))?;
        serde_json::to_value(t).map_err(|e| stat_err("log-rank", e))?
    } else {
        Value::Null
    };
    let v = serde_json::to_value(&fit).map_err(|e| stat_err("km", e))?;
    Ok(Step::Done(json!({
        "fit": v,
        "logrank": logrank,
        "federation": {
            "time_resolution": resolution,
            "fine_bins": bins,
            "min_count": floor,
            "suppressed_strata": suppressed,
            "truncated": truncated,
        },
    })))
}

struct Replay<'a, 'b> {
    it: &'b mut Sums<'a>,
    need: Option<Query>,
}

fn read_pieces(words: &[u64], k: usize) -> Result<GlmPieces, ProtocolError> {
    let mut d = Dec::new(words);
    let xtwx = d.reals(k * k)?;
    let xtwz = d.reals(k)?;
    let r = d.reals(7)?;
    d.finish()?;
    Ok(GlmPieces {
        k,
        xtwx,
        xtwz,
        deviance: r[0],
        aic_sum: r[1],
        n_obs: r[2],
        sum_w: r[3],
        sum_wy: r[4],
        n_boundary: r[5],
        n_invalid: r[6],
    })
}

impl GlmSource for Replay<'_, '_> {
    fn pieces(&mut self, at: &seh_stats::glm::IrlsPoint, cols: &[usize]) -> Result<GlmPieces, GlmError> {
        match self.it.next() {
            Some(words) => read_pieces(words, cols.len())
                .map_err(|e| GlmError::Source { party: "secure sum".into(), message: e.to_string() }),
            None => {
                // The first unanswered request is the next round (the driver may try others after
                // an error; they are not rounds).
                if self.need.is_none() {
                    self.need = Some(Query::Glm { point: at.clone(), cols: cols.to_vec() });
                }
                Err(GlmError::Source { party: "federation".into(), message: "next round pending".into() })
            }
        }
    }
}

/// IRLS control of federated GLMs (as `seh fit glm`).
pub fn glm_control() -> GlmControl {
    GlmControl { epsilon: 1e-12, maxit: 100, ..GlmControl::default() }
}

fn plan_glm(spec: &GlmSpec, info: &ModelInfo, it: &mut Sums<'_>) -> Result<Step, ProtocolError> {
    let family = Family::parse(&spec.family).ok_or_else(|| stat_err("glm", "unknown family"))?;
    let stats_spec =
        StatsGlmSpec { family, names: &info.terms, intercept: info.intercept, has_offset: info.has_offset };
    // Pooled floor of the 0/1 design columns (GLM factor levels) from the secure moments.
    let p = info.terms.len();
    let m = read_moments(ask!(it, Query::Moments), p)?;
    super::strata::pooled_binary_check(&info.terms, m.n, &m.nonbinary, &m.sum, &m.sumsq, info.min_count)
        .map_err(|e| stat_err(super::strata::RULE, format!("refused: {e}")))?;
    let mut replay = Replay { it, need: None };
    match glm_fit_with(&mut replay, &stats_spec, &glm_control()) {
        Ok(fit) => {
            let v = serde_json::to_value(&fit).map_err(|e| stat_err("glm", e))?;
            Ok(Step::Done(json!({ "fit": v, "federation": {} })))
        }
        Err(_) if replay.need.is_some() => Ok(Step::Query(replay.need.take().unwrap_or(Query::Moments))),
        Err(e) => Err(stat_err("glm", e)),
    }
}
