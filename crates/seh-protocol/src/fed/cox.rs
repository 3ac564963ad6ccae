//! Cox PH in a federation: the site steps (stratified and pooled-exact), the released event-time
//! grid with risk-set merging, and the layout of the per-time sums.

use seh_stats::cox::kernel::{evaluate_local, packed_len, TimeRecord};
use seh_stats::cox::prepared::{Centring as KernelCentring, PrepareOptions};
use seh_stats::cox::tt::{expand, TtTerm};
use seh_stats::cox::{evaluate, CoxData, FoldSink, PreparedCox, StoredSums, Strata, Ties, Workspace};
use seh_stats::model::ModelFrame;

use super::site::{fine_bin, global_codes};
use super::{stat_err, Centring, CoxSpec, Dec, Enc, Query};
use crate::error::ProtocolError;

/// The Cox input of a model frame (the same mapping `seh fit cox` uses).
/// `tt()` columns hold the raw values; [`tt_expr`] gives their transform.
pub fn cox_data(frame: &ModelFrame) -> Result<CoxData, ProtocolError> {
    frame.cox_data().ok_or_else(|| stat_err("cox", "the model has no Surv() response"))
}

fn kernel_centring(c: &Centring, p: usize) -> Result<KernelCentring, ProtocolError> {
    if c.centre.len() != p || c.scale.len() != p {
        return Err(ProtocolError::invalid("query", "centring", "length differs from the model's columns"));
    }
    Ok(KernelCentring::Given { centre: c.centre.clone(), scale: c.scale.clone() })
}

pub(super) fn check_ties(spec: &CoxSpec) -> Result<Ties, ProtocolError> {
    match spec.ties {
        Ties::Exact => Err(stat_err("cox", "ties = \"exact\" is not available in a federation")),
        t => Ok(t),
    }
}

/// A site's rows prepared for the stratified kernel (its own strata), reused across rounds.
/// `None` inside when the site has no events (its strata add nothing).
#[derive(Debug)]
pub struct StratifiedPrep {
    pub(super) prep: Option<(PreparedCox, Workspace)>,
    /// Cluster ids and case weights of the rows (`cluster(id)` models).
    pub(super) cluster: Option<(Vec<u64>, Option<Vec<f64>>)>,
    n: usize,
    nevent: usize,
    pub(super) p: usize,
}

/// Prepares this site's rows with the common centring for [`site_stratified`].
pub fn prepare_stratified(
    spec: &CoxSpec,
    frame: &ModelFrame,
    centring: &Centring,
) -> Result<StratifiedPrep, ProtocolError> {
    check_ties(spec)?;
    let data = cox_data(frame)?;
    let p = data.p;
    let (n, nevent) = (data.n(), data.event.iter().filter(|e| **e == 1.0).count());
    // tt(): R's expansion at this site's own event times (its strata are its own).
    let (data, timefix) = match super::cox_terms::tt_expr(spec, frame)? {
        Some(expr) if nevent > 0 => {
            let f = |x: f64, t: f64| expr.eval(x, t);
            let terms: Vec<TtTerm<'_>> = frame.tt_columns.iter().map(|&column| TtTerm { column, f: &f }).collect();
            (expand(&data, &terms, true).map_err(|e| stat_err("cox tt", e))?, false)
        }
        _ => (data, true),
    };
    let prep = if nevent == 0 {
        None
    } else {
        let opts = PrepareOptions { centring: kernel_centring(centring, p)?, timefix, grid: None };
        let prep = PreparedCox::new(&data, &opts).map_err(|e| stat_err("cox", e))?;
        let ws = Workspace::new(&prep);
        Some((prep, ws))
    };
    let cluster = data.cluster.clone().map(|c| (c, data.weights.clone()));
    Ok(StratifiedPrep { prep, cluster, n, nevent, p })
}

/// Layout of the stratified answer: `n`, `nevent`, log-likelihood, score (p), packed information.
pub fn site_stratified(
    spec: &CoxSpec,
    sp: &mut StratifiedPrep,
    beta: &[f64],
    enc: &mut Enc,
) -> Result<(), ProtocolError> {
    let ties = check_ties(spec)?;
    let p = sp.p;
    if beta.len() != p {
        return Err(ProtocolError::invalid("query", "beta", "length differs from the model's columns"));
    }
    enc.count(sp.n as u64);
    enc.count(sp.nevent as u64);
    let Some((prep, ws)) = sp.prep.as_mut() else {
        // No event: this site's strata add nothing to the partial likelihood.
        enc.real(0.0, "loglik")?;
        return enc.reals(&vec![0.0; p + packed_len(p)], "score");
    };
    let mut sink = FoldSink::new(p, ties);
    evaluate_local(prep, beta, ties, ws, &mut sink).map_err(|e| stat_err("cox kernel", e))?;
    enc.real(sink.loglik(), "loglik")?;
    enc.reals(sink.score(), "score")?;
    enc.reals(sink.info_packed(), "information")
}

/// Decoded stratified sum.
#[derive(Debug)]
pub struct StratifiedSum {
    /// Rows.
    pub n: u64,
    /// Events.
    pub nevent: u64,
    /// Evaluation (full information matrix).
    pub eval: seh_stats::cox::Evaluation,
}

/// Reads the summed stratified answer.
pub fn read_stratified(words: &[u64], p: usize) -> Result<StratifiedSum, ProtocolError> {
    let mut d = Dec::new(words);
    let n = d.count()?;
    let nevent = d.count()?;
    let loglik = d.real()?;
    let score = d.reals(p)?;
    let packed = d.reals(packed_len(p))?;
    d.finish()?;
    let info = seh_stats::cox::kernel::unpack_symmetric(&packed, p);
    Ok(StratifiedSum { n, nevent, eval: seh_stats::cox::Evaluation { loglik, score, info } })
}

/// Largest edge `<= b`, if any.
fn floor_edge(edges: &[u64], b: u64) -> Option<u64> {
    let k = edges.partition_point(|&e| e <= b);
    (k > 0).then(|| edges[k - 1])
}

/// Maps a site's rows onto the released grid (see the module docs of [`super`]): event times to
/// the smallest edge `>=` them, censoring and entry times to the largest edge `<=` them. Without
/// merging this leaves every risk set at every grid time unchanged. Rows left with an empty
/// interval (never at risk at a grid time, no event) are dropped.
fn map_to_grid(
    data: &mut CoxData,
    codes: &[usize],
    edges: &[Vec<u64>],
    resolution: f64,
    bins: u64,
) -> Result<(), ProtocolError> {
    let n = data.n();
    let mut keep = vec![true; n];
    for i in 0..n {
        let e = &edges[codes[i]];
        let b = fine_bin(data.stop[i], resolution, bins)?;
        let stop_b = if data.event[i] == 1.0 {
            let k = e.partition_point(|&x| x < b);
            *e.get(k).ok_or_else(|| stat_err("cox grid", "an event lies after the released grid"))?
        } else {
            floor_edge(e, b).unwrap_or(b)
        };
        data.stop[i] = stop_b as f64 * resolution;
        if let Some(st) = data.start.as_mut() {
            let sb = fine_bin(st[i], resolution, bins)?;
            let start_b = floor_edge(e, sb).unwrap_or(sb);
            st[i] = start_b as f64 * resolution;
            if start_b >= stop_b {
                if data.event[i] == 1.0 {
                    return Err(stat_err("cox grid", "the time resolution is too coarse for an interval"));
                }
                keep[i] = false;
            }
        }
    }
    if keep.iter().all(|k| *k) {
        return Ok(());
    }
    let p = data.p;
    let idx: Vec<usize> = (0..n).filter(|&i| keep[i]).collect();
    let pick = |v: &Vec<f64>| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
    data.stop = pick(&data.stop);
    data.event = pick(&data.event);
    data.start = data.start.as_ref().map(pick);
    data.offset = data.offset.as_ref().map(pick);
    data.x = idx.iter().flat_map(|&i| data.x[i * p..(i + 1) * p].to_vec()).collect();
    if let Some(s) = data.strata.as_mut() {
        s.codes = idx.iter().map(|&i| s.codes[i]).collect();
    }
    data.cluster = data.cluster.as_ref().map(|c| idx.iter().map(|&i| c[i]).collect());
    Ok(())
}

/// Reals per time record: death weight, death η, S0, D0, S1, D1, Σx of deaths, S2 (+ D2 for Efron).
pub fn reals_per_record(p: usize, ties: Ties) -> usize {
    4 + 3 * p + packed_len(p) * if ties == Ties::Efron { 2 } else { 1 }
}

/// A site's data prepared for the pooled-exact kernel on the released grid (reused across the
/// Newton rounds of one study).
#[derive(Debug)]
pub struct PooledPrep {
    pub(super) prep: PreparedCox,
    /// Cluster ids and case weights of the mapped rows (`cluster(id)` models).
    pub(super) cluster: Option<(Vec<u64>, Option<Vec<f64>>)>,
    ws: Workspace,
    /// `(level, time)` of the negligible-weight event row of a site without events.
    dummy: Option<(usize, f64)>,
    records: usize,
}

/// Prepares this site's rows for the pooled-exact query (see [`site_pooled`]).
pub fn prepare_pooled(spec: &CoxSpec, frame: &ModelFrame, query: &Query) -> Result<PooledPrep, ProtocolError> {
    let Query::CoxPooled { centring, beta, resolution, edges, levels, shifts, .. } = query else {
        return Err(ProtocolError::invalid("query", "query", "not a pooled Cox query"));
    };
    check_ties(spec)?;
    let mut data = cox_data(frame)?;
    let p = data.p;
    let nl = levels.len().max(1);
    let n_records: usize = edges.iter().map(Vec::len).sum();
    if edges.len() != nl || shifts.len() != n_records || beta.len() != p {
        return Err(ProtocolError::invalid("query", "grid", "sizes do not match the model"));
    }
    // Every time is below the planner's public range, so any bin up to the query cap is valid.
    let bins = super::MAX_QUERY_BINS;
    let codes = global_codes(frame, levels)?;
    let labels: Vec<String> = if levels.is_empty() { vec![String::new()] } else { levels.clone() };
    data.strata = Some(Strata { codes: codes.iter().map(|&c| c as u32).collect(), labels });
    map_to_grid(&mut data, &codes, edges, *resolution, bins)?;
    if let Some(expr) = super::cox_terms::tt_expr(spec, frame)? {
        super::cox_terms::split_at_grid(&mut data, edges, *resolution, &frame.tt_columns, &expr)?;
    }
    // A site without events still has risk sets; the kernel's validation needs one event, so a
    // negligible-weight event row is added and its counts taken back out in `site_pooled`.
    let mut dummy: Option<(usize, f64)> = None;
    if !data.event.contains(&1.0) {
        let (lvl, e) =
            edges.iter().enumerate().find(|(_, e)| !e.is_empty()).ok_or_else(|| stat_err("cox", "empty grid"))?;
        let t = e[0] as f64 * resolution;
        dummy = Some((lvl, t));
        let n = data.n();
        data.weights = Some(vec![1.0; n]);
        push_row(&mut data, lvl, t, &centring.centre);
    }
    let cluster = data.cluster.take().map(|c| (c, data.weights.clone()));
    let opts = PrepareOptions {
        centring: kernel_centring(centring, p)?,
        timefix: false,
        grid: Some(edges.iter().map(|e| e.iter().map(|&b| b as f64 * resolution).collect()).collect()),
    };
    let prep = PreparedCox::new(&data, &opts).map_err(|e| stat_err("cox", e))?;
    let ws = Workspace::new(&prep);
    Ok(PooledPrep { prep, ws, cluster, dummy, records: n_records })
}

/// The pooled-exact site step: per-time sums on the released grid at β, each time's exponential
/// sums scaled to the public shift of the query. `prep` must come from [`prepare_pooled`] with a
/// query of the same grid and centring.
///
/// In the one-word form (`narrow`) the answer starts with a word that is 1 when one of this
/// site's values did not fit the bound (the rest is then zeros: nothing is sent that could wrap).
pub fn site_pooled(spec: &CoxSpec, pp: &mut PooledPrep, query: &Query, enc: &mut Enc) -> Result<(), ProtocolError> {
    let Query::CoxPooled { narrow, .. } = query else {
        return Err(ProtocolError::invalid("query", "query", "not a pooled Cox query"));
    };
    let mut body = Enc::with_form(*narrow);
    pooled_records(spec, pp, query, &mut body)?;
    if narrow.is_some() {
        enc.count(u64::from(body.overflowed()));
        if body.overflowed() {
            enc.words.extend(std::iter::repeat_n(0, body.words.len()));
            return Ok(());
        }
    }
    enc.words.extend_from_slice(&body.words);
    Ok(())
}

fn pooled_records(spec: &CoxSpec, pp: &mut PooledPrep, query: &Query, enc: &mut Enc) -> Result<(), ProtocolError> {
    let Query::CoxPooled { beta, shifts, .. } = query else {
        return Err(ProtocolError::invalid("query", "query", "not a pooled Cox query"));
    };
    let ties = check_ties(spec)?;
    let p = pp.prep.p();
    if beta.len() != p || shifts.len() != pp.records {
        return Err(ProtocolError::invalid("query", "beta", "sizes do not match the prepared grid"));
    }
    let mut store = StoredSums::new(p, true);
    evaluate(&pp.prep, beta, ties, &mut pp.ws, &mut store).map_err(|e| stat_err("cox kernel", e))?;
    if store.records.len() != pp.records {
        return Err(stat_err("cox kernel", "the kernel's grid differs from the query's"));
    }
    let efron = ties == Ties::Efron;
    let dummy = pp.dummy;
    for (r, &c) in store.records.iter().zip(shifts) {
        let mut n_risk = r.n_risk;
        let mut n_deaths = r.n_deaths;
        if let Some((lvl, t)) = dummy {
            if r.stratum == lvl && r.time == t {
                n_risk -= 1;
                n_deaths -= 1;
            }
        }
        enc.count(n_risk);
        enc.count(n_deaths);
        let f = if r.n_risk == 0 { 0.0 } else { (r.shift - c).exp() };
        let zeros = vec![0.0; p];
        let (dw, de, dx) = if dummy.is_some() { (0.0, 0.0, &zeros) } else { (r.death_weight, r.death_eta, &r.death_x) };
        enc.real(dw, "death weight")?;
        enc.real(de, "death linear predictor")?;
        enc.real(r.s0 * f, "S0")?;
        enc.real(r.d0 * f, "D0")?;
        let scaled = |v: &[f64]| v.iter().map(|x| x * f).collect::<Vec<f64>>();
        enc.reals(&scaled(&r.s1), "S1")?;
        enc.reals(&scaled(&r.d1), "D1")?;
        enc.reals(dx, "death covariates")?;
        enc.reals(&scaled(&r.s2), "S2")?;
        if efron {
            enc.reals(&scaled(&r.d2), "D2")?;
        }
    }
    Ok(())
}

fn push_row(data: &mut CoxData, lvl: usize, t: f64, centre: &[f64]) {
    data.stop.push(t);
    data.event.push(1.0);
    if let Some(s) = data.start.as_mut() {
        s.push(0.0_f64.min(t / 2.0));
    }
    data.x.extend_from_slice(centre);
    if let Some(o) = data.offset.as_mut() {
        o.push(0.0);
    }
    if let Some(s) = data.strata.as_mut() {
        s.codes.push(lvl as u32);
    }
    if let Some(w) = data.weights.as_mut() {
        w.push(1e-200);
    }
    if let Some(c) = data.cluster.as_mut() {
        // Its own cluster: with weight 1e-200 it adds nothing to the cluster sums.
        c.push(u64::MAX);
    }
}

/// Decoded pooled sums: records in kernel order, each at its query shift. `None` when the answer
/// is in the one-word form (`narrow`) and a site reported a value outside the bound.
pub fn read_pooled(
    words: &[u64],
    p: usize,
    ties: Ties,
    edges: &[Vec<u64>],
    resolution: f64,
    shifts: &[f64],
    narrow: bool,
) -> Result<Option<StoredSums>, ProtocolError> {
    let mut d = Dec::with_form(words, narrow);
    if narrow && d.count()? > 0 {
        return Ok(None);
    }
    let mut store = StoredSums::new(p, true);
    let pp = packed_len(p);
    let mut k = 0;
    for (stratum, e) in edges.iter().enumerate() {
        for &b in e.iter().rev() {
            let shift = *shifts.get(k).ok_or_else(|| ProtocolError::invalid("aggregate", "shifts", "too few"))?;
            k += 1;
            let n_risk = d.count()?;
            let n_deaths = d.count()?;
            let death_weight = d.real()?;
            let death_eta = d.real()?;
            let s0 = d.real()?;
            let d0 = d.real()?;
            let s1 = d.reals(p)?;
            let d1 = d.reals(p)?;
            let death_x = d.reals(p)?;
            let s2 = d.reals(pp)?;
            let d2 = if ties == Ties::Efron { d.reals(pp)? } else { Vec::new() };
            store.records.push(TimeRecord {
                stratum,
                time: b as f64 * resolution,
                n_risk,
                n_deaths,
                death_weight,
                death_eta,
                shift,
                s0,
                s1,
                s2,
                d0,
                d1,
                d2,
                death_x,
            });
        }
    }
    d.finish()?;
    Ok(Some(store))
}

/// Per level, the summed event / censoring / entry counts of the fine bins.
#[derive(Debug, Clone)]
pub struct LevelHistogram {
    /// Events per bin.
    pub events: Vec<u64>,
    /// Censorings per bin.
    pub censored: Vec<u64>,
    /// Entries (counting-process starts) per bin.
    pub entries: Vec<u64>,
}

/// Splits the summed histogram (`pack` counts per word) into levels.
pub fn read_histogram(
    words: &[u64],
    levels: usize,
    bins: u64,
    pack: u32,
) -> Result<Vec<LevelHistogram>, ProtocolError> {
    let width = bins as usize + 1;
    let counts = super::unpack_counts(words, pack, levels.max(1) * 3 * width)?;
    Ok(counts
        .chunks_exact(3 * width)
        .map(|c| LevelHistogram {
            events: c[..width].to_vec(),
            censored: c[width..2 * width].to_vec(),
            entries: c[2 * width..].to_vec(),
        })
        .collect())
}

/// The released grid of one level: event bins, merged (from the last time backwards) until every
/// released time has at least `k` rows at risk. Returns the edges and the number at risk at each,
/// and whether any merge happened. Errors when even the first released time has fewer than `k`
/// at risk (the whole level is too small to release).
pub fn release_grid(h: &LevelHistogram, k: u64) -> Result<(Vec<u64>, Vec<u64>, bool), ProtocolError> {
    let width = h.events.len();
    // Suffix sums: events with bin > L, censorings and entries with bin >= U.
    let mut ev_ge = vec![0u64; width + 1];
    let mut ce_ge = vec![0u64; width + 1];
    let mut en_ge = vec![0u64; width + 1];
    for b in (0..width).rev() {
        ev_ge[b] = ev_ge[b + 1] + h.events[b];
        ce_ge[b] = ce_ge[b + 1] + h.censored[b];
        en_ge[b] = en_ge[b + 1] + h.entries[b];
    }
    let event_bins: Vec<usize> = (0..width).filter(|&b| h.events[b] > 0).collect();
    // Rows at risk at upper edge u of a group whose lower boundary is the edge l (exclusive).
    let at_risk = |l: Option<usize>, u: usize| -> u64 {
        let ev = match l {
            Some(l) => ev_ge[l + 1],
            None => ev_ge[0],
        };
        (ev + ce_ge[u]).saturating_sub(en_ge[u])
    };
    let mut edges = Vec::new();
    let mut risk = Vec::new();
    let mut merged = false;
    let mut i = event_bins.len();
    while i > 0 {
        let upper = event_bins[i - 1];
        let mut j = i - 1; // the group's earliest event bin index
        loop {
            let lower = if j == 0 { None } else { Some(event_bins[j - 1]) };
            let r = at_risk(lower, upper);
            if r >= k {
                break;
            }
            if j == 0 {
                return Err(stat_err(
                    "cox grid",
                    format!("fewer than {k} rows at risk even after merging all event times of a stratum"),
                ));
            }
            j -= 1;
            merged = true;
        }
        let lower = if j == 0 { None } else { Some(event_bins[j - 1]) };
        edges.push(upper as u64);
        risk.push(at_risk(lower, upper));
        i = j;
    }
    edges.reverse();
    risk.reverse();
    Ok((edges, risk, merged))
}
