//! Distribution helpers shared by the survival and GLM code: two-sided normal
//! and t p-values, upper chi-square tail, the normal quantile, and a small
//! dense linear solver (R's `solve`, LU with partial pivoting).
//!
//! All functions are total: invalid arguments (negative degrees of freedom,
//! NaN) give NaN rather than a panic, as R's `pchisq`/`pnorm` give `NaN`.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::{beta, gamma};

/// Two-sided normal p-value `2 · Φ(−|z|)` (R: `2 * pnorm(-abs(z))`).
///
/// Computed as the upper tail of a chi-square with 1 degree of freedom at `z²`
/// (the regularised incomplete gamma function), which keeps ~1e-15 relative
/// precision far into the tail; statrs' `erfc` is only good to ~1e-10 here.
pub fn normal_two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    if z == 0.0 {
        return 1.0;
    }
    chisq_upper(z * z, 1.0)
}

/// Upper normal tail `1 − Φ(z)` (R: `pnorm(z, lower.tail = FALSE)`).
pub fn normal_upper(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    let half = 0.5 * normal_two_sided_p(z);
    if z >= 0.0 {
        half
    } else {
        1.0 - half
    }
}

/// The standard normal quantile `Φ⁻¹(p)` for `0 < p < 1` (R: `qnorm(p)`);
/// NaN outside `(0, 1)`.
pub fn normal_quantile(p: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) {
        return f64::NAN;
    }
    match Normal::new(0.0, 1.0) {
        Ok(n) => n.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Upper chi-square tail `P(X > x)` with `df > 0` degrees of freedom
/// (R: `pchisq(x, df, lower.tail = FALSE)`). `x ≤ 0` gives 1; `df ≤ 0` or NaN gives NaN.
pub fn chisq_upper(x: f64, df: f64) -> f64 {
    if x.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    gamma::gamma_ur(df / 2.0, x / 2.0)
}

/// Two-sided Student t p-value `2 · P(T > |t|)` with `df > 0` degrees of freedom
/// (R: `2 * pt(-abs(t), df)`); NaN for `df ≤ 0` or NaN input.
pub fn t_two_sided_p(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if t.is_infinite() {
        return 0.0;
    }
    let x = df / (df + t * t);
    beta::beta_reg(df / 2.0, 0.5, x)
}

/// `ln Γ(x)` for `x > 0` (R: `lgamma`).
pub fn ln_gamma(x: f64) -> f64 {
    gamma::ln_gamma(x)
}

/// Solve the dense `n × n` system `A x = b` (row-major `a`) by LU decomposition
/// with partial pivoting, as R's `solve` does. Returns `None` when `A` is
/// numerically singular (a pivot of exactly zero or a non-finite result), or
/// when the slice lengths do not match `n`.
pub fn solve_dense(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    if a.len() != n * n || b.len() != n {
        return None;
    }
    let mut m = a.to_vec();
    let mut x = b.to_vec();
    for col in 0..n {
        // Partial pivoting: the largest magnitude in this column at or below the diagonal.
        let mut piv = col;
        let mut best = m[col * n + col].abs();
        for r in (col + 1)..n {
            let v = m[r * n + col].abs();
            if v > best {
                best = v;
                piv = r;
            }
        }
        if best == 0.0 || !best.is_finite() {
            return None;
        }
        if piv != col {
            for k in 0..n {
                m.swap(col * n + k, piv * n + k);
            }
            x.swap(col, piv);
        }
        let d = m[col * n + col];
        for r in (col + 1)..n {
            let f = m[r * n + col] / d;
            if f != 0.0 {
                for k in col..n {
                    m[r * n + k] -= f * m[col * n + k];
                }
                x[r] -= f * x[col];
            }
        }
    }
    for col in (0..n).rev() {
        let mut s = x[col];
        for k in (col + 1)..n {
            s -= m[col * n + k] * x[k];
        }
        x[col] = s / m[col * n + col];
    }
    if x.iter().all(|v| v.is_finite()) {
        Some(x)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn matches_r_values() {
        // Values from R 4.2.2.
        assert!(rel(normal_quantile(0.975), 1.959963984540054) < 1e-14);
        let p = normal_two_sided_p(1.96);
        assert!(rel(p, 0.049995790296440856) < 1e-13, "{p}");
        assert!(rel(normal_two_sided_p(-8.0), 1.244192114854357e-15) < 1e-12);
        assert!(rel(normal_upper(-1.0), 0.841_344_746_068_542_9) < 1e-14);
        assert_eq!(normal_two_sided_p(0.0), 1.0);
        // pchisq(10.326741954885632, 1, lower.tail = FALSE) from km_lung_sex.json
        assert!(rel(chisq_upper(10.326741954885632, 1.0), 0.0013111645203554882) < 1e-12);
        // pchisq(33.3872011373374, 9, lower.tail = FALSE) from logistic_birthwt.json
        assert!(rel(chisq_upper(33.3872011373374, 9.0), 0.0001143272330920523) < 1e-12);
        // 2 * pt(-2.1, 10)
        assert!(rel(t_two_sided_p(2.1, 10.0), 0.062_077_244_202_218_47) < 1e-12);
        assert_eq!(chisq_upper(0.0, 3.0), 1.0);
        assert!(chisq_upper(1.0, 0.0).is_nan());
        assert!(normal_quantile(1.0).is_nan());
    }

    #[test]
    fn dense_solve() {
        let a = [0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let x = solve_dense(&a, 3, &[-1.0, 1.0, 7.0]).unwrap();
        for (got, want) in x.iter().zip([2.0, -1.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
        assert!(solve_dense(&[1.0, 2.0, 2.0, 4.0], 2, &[1.0, 1.0]).is_none());
        assert!(solve_dense(&[1.0], 2, &[1.0, 1.0]).is_none());
    }
}
