//! The design matrix, built like R's `model.matrix` (stats `model.c`): column
//! names and order, treatment contrasts, and the Chambers–Heiberger rule for
//! when a factor in a term is coded by contrasts or by full dummy variables.

use std::borrow::Cow;
use std::ops::Range;

use crate::formula::Terms;

/// One model term's block of design columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesignTerm {
    /// R's term label (`age`, `factor(sex):age`, `(Intercept)`).
    pub label: String,
    /// Its columns in the design matrix.
    pub columns: Range<usize>,
}

/// An `n × p` design matrix, row-major (`values[i * p + j]`), with R's column names.
#[derive(Clone, PartialEq)]
pub struct Design {
    /// Column names as R's `model.matrix` gives them (`factor(x)2`, `age:sex`).
    pub names: Vec<String>,
    /// Row-major values.
    pub values: Vec<f64>,
    /// Terms and their column ranges (R's `assign`).
    pub terms: Vec<DesignTerm>,
    /// Whether column 0 is `(Intercept)`.
    pub intercept: bool,
    nrows: usize,
}

impl std::fmt::Debug for Design {
    /// Shape and names only: values may be patient data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Design").field("nrows", &self.nrows).field("names", &self.names).finish_non_exhaustive()
    }
}

impl Design {
    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Number of columns `p`.
    pub fn ncols(&self) -> usize {
        self.names.len()
    }

    /// Row `i` (`p` values). Panics if `i >= nrows()` (caller's index, not input data).
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.ncols();
        &self.values[i * p..(i + 1) * p]
    }

    /// A copy of column `j`.
    pub fn column(&self, j: usize) -> Vec<f64> {
        let p = self.ncols();
        (0..self.nrows).map(|i| self.values[i * p + j]).collect()
    }

    /// Builds a design from named columns of equal length `nrows`, one term per column.
    pub fn from_columns(nrows: usize, cols: Vec<(String, Vec<f64>)>, intercept: bool) -> Design {
        let p = cols.len();
        let mut values = vec![0.0; nrows * p];
        for (j, (_, c)) in cols.iter().enumerate() {
            for (i, v) in c.iter().enumerate().take(nrows) {
                values[i * p + j] = *v;
            }
        }
        let terms =
            cols.iter().enumerate().map(|(j, (n, _))| DesignTerm { label: n.clone(), columns: j..j + 1 }).collect();
        Design { names: cols.into_iter().map(|c| c.0).collect(), values, terms, intercept, nrows }
    }
}

/// A variable evaluated on the kept rows.
#[derive(Debug, Clone)]
pub(super) enum VarData<'a> {
    /// Numeric values (borrowed from the data frame when no row was dropped).
    Numeric(Cow<'a, [f64]>),
    /// A factor: per-row level index and the level labels (sorted).
    Factor { codes: Vec<u32>, levels: Vec<String> },
}

/// R's `TermCode`: variable `v` of `term` gets contrasts (false) or full dummy
/// coding (true). Contrasts when the term without `v` is empty or is contained
/// in an earlier term.
fn full_dummy(terms: &Terms, t: usize, v: usize) -> bool {
    let rest: Vec<usize> = terms.terms[t].vars.iter().copied().filter(|&u| u != v).collect();
    if rest.is_empty() {
        return false;
    }
    !terms.terms[..t].iter().any(|earlier| rest.iter().all(|u| earlier.vars.contains(u)))
}

/// Builds the design matrix.
///
/// `data[v]` holds variable `v` of `terms.variables` on the `nrows` kept rows.
/// `coding_intercept`: whether factors are coded as if an intercept were present
/// (true for Cox, as R's `coxph`); `intercept_column`: whether to emit `(Intercept)`.
pub(super) fn build_design(
    terms: &Terms,
    data: &[VarData<'_>],
    nrows: usize,
    coding_intercept: bool,
    intercept_column: bool,
) -> Design {
    // Code per (term, var): false = contrasts, true = full dummy.
    let mut dummy: Vec<Vec<bool>> = terms
        .terms
        .iter()
        .enumerate()
        .map(|(t, term)| term.vars.iter().map(|&v| full_dummy(terms, t, v)).collect())
        .collect();
    if !coding_intercept {
        // R: without an intercept, the first factor found (term order, then variable order)
        // is coded by dummy variables.
        'outer: for (t, term) in terms.terms.iter().enumerate() {
            for (k, &v) in term.vars.iter().enumerate() {
                if matches!(&data[v], VarData::Factor { levels, .. } if levels.len() > 1) {
                    dummy[t][k] = true;
                    break 'outer;
                }
            }
        }
    }

    let mut names: Vec<String> = Vec::new();
    // Columns borrow the variable data where a term is a single numeric variable.
    let mut columns: Vec<Cow<'_, [f64]>> = Vec::new();
    let mut dterms = Vec::new();
    if intercept_column {
        names.push("(Intercept)".into());
        columns.push(Cow::Owned(vec![1.0; nrows]));
        dterms.push(DesignTerm { label: "(Intercept)".into(), columns: 0..1 });
    }
    for (t, term) in terms.terms.iter().enumerate() {
        // Start from one empty-named column of ones (`None`: not materialised) and
        // multiply in each variable; existing columns vary fastest, as in R's
        // `addvar` / `addfactor`. Multiplying by the implicit ones is skipped
        // (1 * x == x exactly).
        let mut block: Vec<(String, Option<Cow<'_, [f64]>>)> = vec![(String::new(), None)];
        for (k, &v) in term.vars.iter().enumerate() {
            let label = &terms.variables[v].label;
            let pieces: Vec<(String, Cow<'_, [f64]>)> = match &data[v] {
                VarData::Numeric(x) => vec![(label.clone(), Cow::Borrowed(x.as_ref()))],
                VarData::Factor { codes, levels } => {
                    let first = usize::from(!dummy[t][k]);
                    (first..levels.len())
                        .map(|l| {
                            let col = codes.iter().map(|&c| if c as usize == l { 1.0 } else { 0.0 }).collect();
                            (format!("{label}{}", levels[l]), Cow::Owned(col))
                        })
                        .collect()
                }
            };
            let mut next = Vec::with_capacity(block.len() * pieces.len());
            for (pname, pcol) in &pieces {
                for (bname, bcol) in &block {
                    let name = if bname.is_empty() { pname.clone() } else { format!("{bname}:{pname}") };
                    let col = match bcol {
                        None => pcol.clone(),
                        Some(b) => Cow::Owned(b.iter().zip(pcol.iter()).map(|(a, b)| a * b).collect()),
                    };
                    next.push((name, Some(col)));
                }
            }
            block = next;
        }
        let start = names.len();
        for (n, c) in block {
            names.push(n);
            columns.push(c.unwrap_or_else(|| Cow::Owned(vec![1.0; nrows])));
        }
        dterms.push(DesignTerm { label: term.label.clone(), columns: start..names.len() });
    }
    let p = names.len();
    let mut values = vec![0.0; nrows * p];
    if p > 0 {
        for (i, row) in values.chunks_exact_mut(p).enumerate() {
            for (v, c) in row.iter_mut().zip(&columns) {
                *v = c[i];
            }
        }
    }
    Design { names, values, terms: dterms, intercept: intercept_column, nrows }
}
