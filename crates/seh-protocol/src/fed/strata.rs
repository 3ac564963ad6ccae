//! Small strata (DESIGN §4, "Disclosure control"): a Kaplan–Meier stratum, log-rank group, Cox
//! stratum or GLM factor level (a 0/1 design column) with fewer patients than the site's floors
//! is never released.
//!
//! * **Per site** ([`site_check`], run by each site on its own consented rows when it is offered
//!   the study): every group level present at the site has at least `min_cell_count` rows, and
//!   every 0/1 design column of a GLM has no, or at least `min_cell_count`, ones and zeros.
//!   Otherwise the site refuses with rule `disclosure.min_cell_count`.
//! * **Pooled** (the coordinator's planner, with the largest floor of the accepting sites, which
//!   each site sends in [`super::site::ModelInfo::min_count`]): a KM stratum whose pooled size is
//!   below the floor is suppressed (left out of the curves and the log-rank test, counted in
//!   `federation.suppressed_strata`) and each curve ends before the first time whose risk set is
//!   below the floor (`federation.truncated`); a pooled Cox stratum or GLM 0/1 column below the
//!   floor refuses the study (a model cannot drop a stratum silently).
//! * **Before co-signing** ([`check_release`]): each site checks a KM release against its own
//!   floor: every released stratum size and risk set is at least the floor.

use seh_stats::model::ModelFrame;
use serde_json::Value;

/// Whether `c` is a count the floor `k` hides (zeros are released).
pub fn small(c: u64, k: u64) -> bool {
    c > 0 && c < k
}

/// The rule the refusals here name.
pub const RULE: &str = "disclosure.min_cell_count";

/// Per-site check of `frame` against the floor `k` (module docs). `glm`: also the 0/1 design
/// columns. `Err` holds the reason (no counts, no values).
pub fn site_check(frame: &ModelFrame, glm: bool, k: u64) -> Result<(), String> {
    if let Some(g) = &frame.strata {
        let mut counts = vec![0u64; g.labels.len()];
        for &c in &g.codes {
            if let Some(x) = counts.get_mut(c as usize) {
                *x += 1;
            }
        }
        if let Some(i) = counts.iter().position(|&c| small(c, k)) {
            let label = g.labels.get(i).map_or("?", String::as_str);
            return Err(format!("group `{label}` has fewer than {k} patients at this site"));
        }
    }
    if glm {
        for j in 0..frame.design.ncols() {
            let col = frame.design.column(j);
            if !col.iter().all(|v| *v == 0.0 || *v == 1.0) {
                continue;
            }
            let ones = col.iter().filter(|v| **v == 1.0).count() as u64;
            let zeros = col.len() as u64 - ones;
            if small(ones, k) || small(zeros, k) {
                let name = frame.design.names.get(j).map_or("?", String::as_str);
                return Err(format!("the 0/1 column `{name}` has fewer than {k} ones or zeros at this site"));
            }
        }
    }
    Ok(())
}

/// Pooled check of a GLM's 0/1 design columns from the secure moments: `n` rows, and per column
/// the count of values outside {−1, 0, 1}, Σx and Σx². A column is 0/1 when no value is outside
/// and Σx = Σx² (no −1); its ones are Σx.
pub fn pooled_binary_check(
    names: &[String],
    n: u64,
    nonbinary: &[u64],
    sum: &[f64],
    sumsq: &[f64],
    k: u64,
) -> Result<(), String> {
    for j in 0..names.len().min(nonbinary.len()).min(sum.len()).min(sumsq.len()) {
        if nonbinary[j] != 0 || (sum[j] - sumsq[j]).abs() > 0.5 || sum[j] < -0.5 {
            continue;
        }
        let ones = sum[j].round().max(0.0) as u64;
        let zeros = n.saturating_sub(ones);
        if small(ones, k) || small(zeros, k) {
            return Err(format!("the pooled 0/1 column `{}` has fewer than {k} ones or zeros", names[j]));
        }
    }
    Ok(())
}

/// Checks a model release (`doc.model`) against the floor `k` before a site co-signs it: every
/// KM stratum size and every released risk set at least `k`. Other analyses pass (their floors
/// are checked when the site answers and by the planner).
pub fn check_release(kind: &str, model: Option<&Value>, k: u64) -> Result<(), String> {
    if kind != "km" {
        return Ok(());
    }
    let Some(strata) = model.and_then(|m| m["fit"]["strata"].as_array()) else {
        return Err("a KM release without curves".into());
    };
    for s in strata {
        let n = s["n"].as_u64().unwrap_or(0);
        if small(n, k) {
            return Err(format!("a released stratum has fewer than {k} patients"));
        }
        let risks = s["n_risk"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if risks.iter().any(|r| r.as_f64().is_none_or(|r| r > 0.0 && r < k as f64)) {
            return Err(format!("a released risk set has fewer than {k} patients"));
        }
    }
    Ok(())
}
