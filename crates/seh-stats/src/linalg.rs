//! Small dense symmetric linear algebra with the semantics of R `survival`'s
//! `cholesky2`, `chsolve2` and `chinv2`.
//!
//! Matrices are `p × p`, stored **row-major** in a `&[f64]` / `Vec<f64>` of
//! length `p * p` (element `(i, j)` at index `i * p + j`). They are meant for the
//! handful of coefficients of a regression model (p up to a few hundred), not for
//! large systems.
//!
//! The factorisation is the generalised Cholesky decomposition `A = F D Fᵀ`
//! (`F` unit lower triangular, `D` diagonal). A pivot that is not finite or is
//! smaller than `toler × max(diag(A))` is set to zero: the corresponding
//! coefficient is *aliased* (collinear with earlier columns). Solving then
//! returns 0 for that coefficient and the inverse has a zero row and column
//! for it, exactly as R does (its `coxph` reports such a coefficient as `NA`).
//!
//! The in-place functions ([`cholesky2`], [`chsolve2`], [`chinv2`]) do not
//! allocate and are what the Newton–Raphson drivers call every iteration; the
//! owned [`SymFactor`] wraps them for one-off use.

use thiserror::Error;

/// Errors of the linear-algebra helpers. They only arise from API misuse
/// (inconsistent dimensions), never from the values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinalgError {
    /// A slice did not have the length implied by the dimension `p`.
    #[error("dimension mismatch in {what}: expected {expected} elements, got {got}")]
    Dimension {
        /// Which argument was wrong.
        what: &'static str,
        /// The length implied by `p`.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
}

/// Outcome of [`cholesky2`]: the numerical rank and whether the matrix looked
/// non-negative definite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CholeskyRank {
    /// Number of non-zero pivots.
    pub rank: usize,
    /// `false` when some pivot was clearly negative (below `-8 × toler × max diag`),
    /// i.e. the matrix is not non-negative definite. R signals this with a negative rank.
    pub nonneg: bool,
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), LinalgError> {
    if got == expected {
        Ok(())
    } else {
        Err(LinalgError::Dimension { what, expected, got })
    }
}

/// Generalised Cholesky factorisation `A = F D Fᵀ`, in place (R's `cholesky2`).
///
/// Input: `a`, a `p × p` row-major symmetric matrix of which only the upper
/// triangle (including the diagonal) is read; `toler`, the relative pivot
/// tolerance (coxph's `toler.chol`, default `1e-9`).
///
/// Output: the strict lower triangle of `a` holds `F` (below its unit
/// diagonal), the diagonal holds `D` with aliased pivots set to exactly 0; the
/// upper triangle is left untouched. Returns the rank and the
/// non-negativity flag.
pub fn cholesky2(a: &mut [f64], p: usize, toler: f64) -> Result<CholeskyRank, LinalgError> {
    check_len("cholesky2 matrix", a.len(), p * p)?;
    let mut eps = 0.0f64;
    for i in 0..p {
        if a[i * p + i] > eps {
            eps = a[i * p + i];
        }
        for j in (i + 1)..p {
            a[j * p + i] = a[i * p + j];
        }
    }
    eps = if eps == 0.0 { toler } else { eps * toler };

    let mut rank = 0usize;
    let mut nonneg = true;
    for i in 0..p {
        let pivot = a[i * p + i];
        if !pivot.is_finite() || pivot < eps {
            a[i * p + i] = 0.0;
            if pivot < -8.0 * eps {
                nonneg = false;
            }
        } else {
            rank += 1;
            for j in (i + 1)..p {
                let temp = a[j * p + i] / pivot;
                a[j * p + i] = temp;
                a[j * p + j] -= temp * temp * pivot;
                for k in (j + 1)..p {
                    a[k * p + j] -= temp * a[k * p + i];
                }
            }
        }
    }
    Ok(CholeskyRank { rank, nonneg })
}

/// Solve `A x = y` given the factor produced by [`cholesky2`] (R's `chsolve2`).
///
/// `y` is overwritten with `x`. Components belonging to aliased pivots are set
/// to 0 (a generalised inverse solution).
pub fn chsolve2(factor: &[f64], p: usize, y: &mut [f64]) -> Result<(), LinalgError> {
    check_len("chsolve2 matrix", factor.len(), p * p)?;
    check_len("chsolve2 right-hand side", y.len(), p)?;
    // Solve F b = y.
    for i in 0..p {
        let mut temp = y[i];
        for j in 0..i {
            temp -= y[j] * factor[i * p + j];
        }
        y[i] = temp;
    }
    // Solve D Fᵀ z = b.
    for i in (0..p).rev() {
        let d = factor[i * p + i];
        if d == 0.0 {
            y[i] = 0.0;
        } else {
            let mut temp = y[i] / d;
            for j in (i + 1)..p {
                temp -= y[j] * factor[j * p + i];
            }
            y[i] = temp;
        }
    }
    Ok(())
}

/// Invert a matrix from its [`cholesky2`] factor, in place (R's `chinv2`, plus
/// the symmetric fill R's callers do afterwards).
///
/// On return `a` holds the full symmetric (generalised) inverse; rows and
/// columns of aliased pivots are zero.
pub fn chinv2(a: &mut [f64], p: usize) -> Result<(), LinalgError> {
    check_len("chinv2 matrix", a.len(), p * p)?;
    // Invert the Cholesky factor in the lower triangle (unit diagonal of F), and D.
    for i in 0..p {
        if a[i * p + i] > 0.0 {
            a[i * p + i] = 1.0 / a[i * p + i];
            for j in (i + 1)..p {
                a[j * p + i] = -a[j * p + i];
                for k in 0..i {
                    a[j * p + k] += a[j * p + i] * a[i * p + k];
                }
            }
        }
    }
    // Form Fᵀ⁻¹ D⁻¹ F⁻¹ in the upper triangle.
    for i in 0..p {
        if a[i * p + i] == 0.0 {
            for j in 0..i {
                a[j * p + i] = 0.0;
            }
            for j in i..p {
                a[i * p + j] = 0.0;
            }
        } else {
            for j in (i + 1)..p {
                let temp = a[j * p + i] * a[j * p + j];
                a[i * p + j] = temp;
                for k in i..j {
                    a[i * p + k] += temp * a[j * p + k];
                }
            }
        }
    }
    // Mirror the upper triangle into the lower one.
    for i in 1..p {
        for j in 0..i {
            a[i * p + j] = a[j * p + i];
        }
    }
    Ok(())
}

/// `out = A v` for a row-major `p × p` matrix.
pub fn mat_vec(a: &[f64], p: usize, v: &[f64], out: &mut [f64]) -> Result<(), LinalgError> {
    check_len("mat_vec matrix", a.len(), p * p)?;
    check_len("mat_vec vector", v.len(), p)?;
    check_len("mat_vec output", out.len(), p)?;
    for (i, o) in out.iter_mut().enumerate() {
        *o = a[i * p..(i + 1) * p].iter().zip(v).map(|(x, y)| x * y).sum();
    }
    Ok(())
}

/// Quadratic form `vᵀ A v` for a row-major `p × p` matrix.
pub fn quad_form(a: &[f64], p: usize, v: &[f64]) -> Result<f64, LinalgError> {
    check_len("quad_form matrix", a.len(), p * p)?;
    check_len("quad_form vector", v.len(), p)?;
    let mut s = 0.0;
    for i in 0..p {
        let row: f64 = a[i * p..(i + 1) * p].iter().zip(v).map(|(x, y)| x * y).sum();
        s += v[i] * row;
    }
    Ok(s)
}

/// An owned generalised Cholesky factorisation (allocating convenience
/// wrapper around [`cholesky2`], [`chsolve2`], [`chinv2`]).
#[derive(Debug, Clone)]
pub struct SymFactor {
    p: usize,
    factor: Vec<f64>,
    rank: CholeskyRank,
}

impl SymFactor {
    /// Factor the row-major `p × p` symmetric matrix `a` (upper triangle read)
    /// with relative pivot tolerance `toler`.
    pub fn new(a: &[f64], p: usize, toler: f64) -> Result<Self, LinalgError> {
        check_len("SymFactor matrix", a.len(), p * p)?;
        let mut factor = a.to_vec();
        let rank = cholesky2(&mut factor, p, toler)?;
        Ok(Self { p, factor, rank })
    }

    /// Dimension `p`.
    pub fn dim(&self) -> usize {
        self.p
    }

    /// Rank and non-negativity flag.
    pub fn rank(&self) -> CholeskyRank {
        self.rank
    }

    /// `true` when pivot `i` was zeroed (the `i`-th coefficient is aliased).
    /// Out-of-range `i` returns `false`.
    pub fn is_aliased(&self, i: usize) -> bool {
        i < self.p && self.factor[i * self.p + i] == 0.0
    }

    /// Solve `A x = b`; aliased components of `x` are 0.
    pub fn solve(&self, b: &[f64]) -> Result<Vec<f64>, LinalgError> {
        let mut y = b.to_vec();
        check_len("SymFactor::solve right-hand side", y.len(), self.p)?;
        chsolve2(&self.factor, self.p, &mut y)?;
        Ok(y)
    }

    /// The full symmetric generalised inverse, row-major; aliased rows and
    /// columns are zero.
    pub fn inverse(&self) -> Vec<f64> {
        let mut inv = self.factor.clone();
        // Dimensions are consistent by construction, so this cannot fail.
        if chinv2(&mut inv, self.p).is_err() {
            inv.iter_mut().for_each(|x| *x = f64::NAN);
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(a: &[f64], b: &[f64], p: usize) -> Vec<f64> {
        let mut c = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..p {
                c[i * p + j] = (0..p).map(|k| a[i * p + k] * b[k * p + j]).sum();
            }
        }
        c
    }

    #[test]
    fn inverse_of_spd_matrix() {
        let a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let f = SymFactor::new(&a, 3, 1e-9).unwrap();
        assert_eq!(f.rank(), CholeskyRank { rank: 3, nonneg: true });
        let inv = f.inverse();
        let id = matmul(&a, &inv, 3);
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((id[i * 3 + j] - want).abs() < 1e-12, "{id:?}");
            }
        }
        let x = f.solve(&[1.0, 2.0, 3.0]).unwrap();
        let mut back = vec![0.0; 3];
        mat_vec(&a, 3, &x, &mut back).unwrap();
        for (b, want) in back.iter().zip([1.0, 2.0, 3.0]) {
            assert!((b - want).abs() < 1e-12);
        }
        let q = quad_form(&a, 3, &[1.0, -1.0, 2.0]).unwrap();
        // 4 + 5 + 12 + 2*(2*1*-1) + 2*(0.6*1*2) + 2*(1*-1*2) = 21 - 4 + 2.4 - 4
        assert!((q - 15.4).abs() < 1e-12);
    }

    #[test]
    fn collinear_column_is_aliased() {
        // Column 2 = column 0 + column 1 in a Gram matrix XᵀX.
        let x = [[1.0, 2.0, 3.0], [2.0, 0.5, 2.5], [0.3, 1.0, 1.3], [1.5, -1.0, 0.5]];
        let mut a = vec![0.0; 9];
        for row in &x {
            for i in 0..3 {
                for j in 0..3 {
                    a[i * 3 + j] += row[i] * row[j];
                }
            }
        }
        let f = SymFactor::new(&a, 3, 1e-9).unwrap();
        assert_eq!(f.rank().rank, 2);
        assert!(f.is_aliased(2));
        assert!(!f.is_aliased(0));
        let inv = f.inverse();
        for k in 0..3 {
            assert_eq!(inv[2 * 3 + k], 0.0);
            assert_eq!(inv[k * 3 + 2], 0.0);
        }
        // The 2×2 leading block is the inverse of the leading block of A.
        let sub = [a[0], a[1], a[3], a[4]];
        let det = sub[0] * sub[3] - sub[1] * sub[2];
        assert!((inv[0] - sub[3] / det).abs() < 1e-12);
        assert!((inv[1] + sub[1] / det).abs() < 1e-12);
        let sol = f.solve(&[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(sol[2], 0.0);
    }

    #[test]
    fn negative_definite_is_flagged_and_dimensions_checked() {
        let a = vec![1.0, 0.0, 0.0, -5.0];
        let f = SymFactor::new(&a, 2, 1e-9).unwrap();
        assert!(!f.rank().nonneg);
        assert_eq!(f.rank().rank, 1);
        assert!(matches!(SymFactor::new(&a, 3, 1e-9), Err(LinalgError::Dimension { .. })));
        assert!(f.solve(&[1.0]).is_err());
    }
}
