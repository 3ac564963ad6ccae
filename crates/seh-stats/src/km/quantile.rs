//! Quantiles of a survival curve with R's `quantile.survfit` rules
//! (survival 3.5-3, `findq`): a horizontal line at `1 − p` meets the curve;
//! when the curve is flat at exactly that level (within `sqrt(eps)`), the
//! quantile is the midpoint of the flat segment, and a flat at the end of the
//! curve uses the last observed time.

use std::collections::HashSet;

/// R's tolerance: `sqrt(.Machine$double.eps)`.
const TOL: f64 = 1.4901161193847656e-8;

/// A hash key under which two values collide exactly when `a == b` or both are NaN
/// (the equality R's `duplicated` uses): every NaN maps to one key, `-0.0` to `0.0`'s.
fn dedup_key(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else if v == 0.0 {
        0.0f64.to_bits()
    } else {
        v.to_bits()
    }
}

/// The `p`-quantile of a survival curve `surv` (values at `time`, starting
/// implicitly at `S(0) = 1`), e.g. `p = 0.5` for the median. Apply it to a
/// lower/upper confidence curve for the quantile's confidence limits. NaN
/// values (R's `NA`) are skipped. Returns `None` when the curve never gets
/// down to `1 − p` (R's `NA`).
///
/// Precondition: `time` ascending, `surv` non-increasing where not NaN, same length.
pub fn find_quantile(time: &[f64], surv: &[f64], p: f64) -> Option<f64> {
    // x = c(0, time), y = c(0, 1 - surv)
    let mut x = Vec::with_capacity(time.len() + 1);
    let mut y = Vec::with_capacity(time.len() + 1);
    x.push(0.0);
    y.push(0.0);
    for (&t, &s) in time.iter().zip(surv) {
        x.push(t);
        y.push(1.0 - s);
    }
    let xmax = *x.last()?;
    let ymax = y.iter().copied().filter(|v| !v.is_nan()).fold(f64::NEG_INFINITY, f64::max);
    if ymax < p {
        return None;
    }
    // Drop duplicated y values (censoring times), keeping the first occurrence (R's
    // `duplicated`): one hash look-up per point, so the whole search is O(n).
    let mut seen: HashSet<u64> = HashSet::with_capacity(y.len());
    let mut ux: Vec<f64> = Vec::with_capacity(x.len());
    let mut uy: Vec<f64> = Vec::with_capacity(y.len());
    for (&xi, &yi) in x.iter().zip(&y) {
        if seen.insert(dedup_key(yi)) {
            ux.push(xi);
            uy.push(yi);
        }
    }
    let n = uy.len();
    // approx(y ± tol, 1:n, p, method = "constant", f = 1): the first index whose
    // shifted y is >= p, provided p lies within the range of the shifted y.
    let step_index = |shift: f64| -> Option<usize> {
        let pts: Vec<(usize, f64)> =
            uy.iter().enumerate().filter(|(_, v)| !v.is_nan()).map(|(i, &v)| (i, v + shift)).collect();
        let (first, last) = (pts.first()?.1, pts.last()?.1);
        if p < first || p > last {
            return None;
        }
        pts.iter().find(|(_, v)| *v >= p).map(|(i, _)| *i)
    };
    let i1 = step_index(TOL);
    let i2 = step_index(-TOL);
    let mut quant = match (i1, i2) {
        (Some(a), Some(b)) => Some((ux[a] + ux[b]) / 2.0),
        _ => None,
    };
    if p == 0.0 {
        quant = Some(ux[0]);
    }
    let ylast = uy[n - 1];
    if !ylast.is_nan() && (p - ylast).abs() < TOL {
        quant = i1.map(|a| (ux[a] + xmax) / 2.0);
    }
    quant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_crossing_and_flat_at_half() {
        // Drops below 0.5 at t = 3.
        assert_eq!(find_quantile(&[1.0, 2.0, 3.0, 4.0], &[0.9, 0.7, 0.4, 0.2], 0.5), Some(3.0));
        // Exactly 0.5 on [2, 4): midpoint of 2 and the next drop at 4 (survfit(Surv(1:4)) style).
        assert_eq!(find_quantile(&[1.0, 2.0, 3.0, 4.0], &[0.75, 0.5, 0.5, 0.25], 0.5), Some(3.0));
        // Flat at 0.5 until the end: midpoint of 2 and the last time 5.
        assert_eq!(find_quantile(&[1.0, 2.0, 5.0], &[0.75, 0.5, 0.5], 0.5), Some(3.5));
        // Never reaches 0.5.
        assert_eq!(find_quantile(&[1.0, 2.0], &[0.9, 0.8], 0.5), None);
        // NaN tail (log CI at S = 0) is skipped.
        assert_eq!(find_quantile(&[1.0, 2.0, 3.0], &[0.8, 0.3, f64::NAN], 0.5), Some(2.0));
    }

    /// The first-occurrence filter as it was (a linear scan per point, O(n²)).
    fn dedup_by_scan(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (mut ux, mut uy) = (Vec::new(), Vec::<f64>::new());
        for (&xi, &yi) in x.iter().zip(y) {
            if !uy.iter().any(|&v| v == yi || (v.is_nan() && yi.is_nan())) {
                ux.push(xi);
                uy.push(yi);
            }
        }
        (ux, uy)
    }

    #[test]
    fn hashed_dedup_keeps_exactly_what_the_scan_kept() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let pool = [0.0, -0.0, 0.25, 0.5, 0.5 + 1e-17, 0.75, 1.0, f64::NAN, -f64::NAN, 1e-300];
        for _ in 0..500 {
            let n = rng.gen_range(0..40);
            let y: Vec<f64> = (0..n).map(|_| pool[rng.gen_range(0..pool.len())]).collect();
            let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let (sx, sy) = dedup_by_scan(&x, &y);
            let mut seen = HashSet::new();
            let kept: Vec<usize> = (0..n).filter(|&i| seen.insert(dedup_key(y[i]))).collect();
            assert_eq!(kept.iter().map(|&i| x[i]).collect::<Vec<_>>(), sx, "{y:?}");
            assert_eq!(kept.len(), sy.len());
        }
    }
}
