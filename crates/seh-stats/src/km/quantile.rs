//! Quantiles of a survival curve with R's `quantile.survfit` rules
//! (survival 3.5-3, `findq`): a horizontal line at `1 − p` meets the curve;
//! when the curve is flat at exactly that level (within `sqrt(eps)`), the
//! quantile is the midpoint of the flat segment, and a flat at the end of the
//! curve uses the last observed time.

/// R's tolerance: `sqrt(.Machine$double.eps)`.
const TOL: f64 = 1.4901161193847656e-8;

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
    // Drop duplicated y values (censoring times), keeping the first occurrence.
    let mut ux: Vec<f64> = Vec::with_capacity(x.len());
    let mut uy: Vec<f64> = Vec::with_capacity(y.len());
    for (&xi, &yi) in x.iter().zip(&y) {
        let dup = uy.iter().any(|&v| v == yi || (v.is_nan() && yi.is_nan()));
        if !dup {
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
}
