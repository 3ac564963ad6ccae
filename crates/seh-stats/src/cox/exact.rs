//! Exact partial likelihood (`ties = "exact"`, R's `coxexact`).
//!
//! At an event time with `d` deaths and risk set `R`, the likelihood term is
//! `exp(Σ_deaths η) / e_d(R)`, where `e_d` is the elementary symmetric
//! polynomial of degree `d` in the risk scores `r_j = e^{η_j}` (the sum over
//! all `d`-subsets of the risk set of the product of their scores). `e_d`
//! and its first and second derivatives in β follow from the recursion over
//! risk-set members `e_k ← e_k + r_j e_{k−1}`, at cost O(|R| d p²) per time.
//!
//! Supported: right-censored data, strata, offset; not case weights (R
//! refuses them too) nor counting-process data.

use super::data::CoxData;
use super::driver::{CoxControl, DriverOutcome, Flavour};
use super::fit::drive;
use super::kernel::{packed_len, unpack_symmetric, Evaluation, Workspace};
use super::prepared::PreparedCox;
use super::CoxError;

/// Scratch of the exact kernel.
#[derive(Debug, Clone)]
struct ExactScratch {
    e: Vec<f64>,
    g: Vec<f64>,
    h: Vec<f64>,
}

/// Log-likelihood, score and information of the exact partial likelihood at
/// `beta` (kernel scale).
// Index loops mirror the recursion's formulas over packed triangles.
#[allow(clippy::needless_range_loop)]
pub fn evaluate_exact(prep: &PreparedCox, beta: &[f64], ws: &mut Workspace) -> Result<Evaluation, CoxError> {
    let p = prep.p();
    if beta.len() != p {
        return Err(CoxError::CoefLength { expected: p, got: beta.len() });
    }
    let shifts = super::kernel::linear_predictor(prep, beta, ws)?;
    let pl = packed_len(p);
    let mut loglik = 0.0;
    let mut score = vec![0.0; p];
    let mut info = vec![0.0; pl];
    let mut sc = ExactScratch { e: Vec::new(), g: Vec::new(), h: Vec::new() };
    for (sidx, b) in prep.blocks.iter().enumerate() {
        let shift = shifts[sidx];
        let mut ptr = b.lo;
        while ptr < b.hi {
            let t = prep.stop[ptr];
            let mut d = 0usize;
            let group = ptr;
            while ptr < b.hi && prep.stop[ptr] == t {
                if prep.event[ptr] {
                    d += 1;
                    loglik += ws.eta[ptr];
                    for k in 0..p {
                        score[k] += prep.x[ptr * p + k];
                    }
                }
                ptr += 1;
            }
            let _ = group;
            if d == 0 {
                continue;
            }
            // DP over the risk set b.lo..ptr.
            sc.e.clear();
            sc.e.resize(d + 1, 0.0);
            sc.e[0] = 1.0;
            sc.g.clear();
            sc.g.resize((d + 1) * p, 0.0);
            sc.h.clear();
            sc.h.resize((d + 1) * pl, 0.0);
            for (count, j) in (b.lo..ptr).enumerate() {
                let r = ws.risk[j];
                let x = &prep.x[j * p..(j + 1) * p];
                let top = d.min(count + 1);
                for k in (1..=top).rev() {
                    let ek1 = sc.e[k - 1];
                    let (glo, ghi) = sc.g.split_at_mut(k * p);
                    let gk1 = &glo[(k - 1) * p..];
                    let gk = &mut ghi[..p];
                    let (hlo, hhi) = sc.h.split_at_mut(k * pl);
                    let hk1 = &hlo[(k - 1) * pl..];
                    let hk = &mut hhi[..pl];
                    let mut idx = 0;
                    for a in 0..p {
                        for c in 0..=a {
                            hk[idx] += r * (hk1[idx] + x[a] * gk1[c] + gk1[a] * x[c] + x[a] * x[c] * ek1);
                            idx += 1;
                        }
                    }
                    for a in 0..p {
                        gk[a] += r * (gk1[a] + x[a] * ek1);
                    }
                    sc.e[k] += r * ek1;
                }
            }
            let ed = sc.e[d];
            loglik -= ed.ln() + d as f64 * shift;
            let g = &sc.g[d * p..(d + 1) * p];
            let h = &sc.h[d * pl..(d + 1) * pl];
            let mut idx = 0;
            for a in 0..p {
                score[a] -= g[a] / ed;
                for c in 0..=a {
                    info[idx] += h[idx] / ed - (g[a] / ed) * (g[c] / ed);
                    idx += 1;
                }
            }
        }
    }
    Ok(Evaluation { loglik, score, info: unpack_symmetric(&info, p) })
}

/// Newton–Raphson on the exact partial likelihood.
///
/// Errors for counting-process data and for case weights other than 1.
pub fn run_exact(
    prep: &PreparedCox,
    data: &CoxData,
    control: CoxControl,
    init_internal: &[f64],
) -> Result<DriverOutcome, CoxError> {
    if prep.is_counting_process() {
        return Err(CoxError::Unsupported("ties = \"exact\" with (start, stop] data"));
    }
    if data.weights.as_ref().is_some_and(|w| w.iter().any(|v| *v != 1.0)) {
        return Err(CoxError::Unsupported("case weights with ties = \"exact\" (R refuses them too)"));
    }
    let mut ws = Workspace::new(prep);
    // coxexact's loop converges only outside step halving, like agfit4.
    drive(prep.p(), init_internal, control, Flavour::CountingProcess, |beta| evaluate_exact(prep, beta, &mut ws))
}
