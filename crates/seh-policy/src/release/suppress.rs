//! Small-count suppression with secondary suppression for one- and two-way count tables.
//!
//! Primary suppression hides every count in `1..min_cell_count` (zeros are released, as in
//! DataSHIELD). Secondary suppression then hides further cells until no hidden cell can be
//! recovered exactly from the released cells and totals: in a one-way table (one additive
//! constraint) no line may hide exactly one entry; in a two-way table with margins every hidden
//! cell must lie on a cycle of hidden cells in the row/column graph (a hidden cell that is a
//! bridge of that graph is determined by the margins, so another cell is hidden to close a
//! cycle). Complementary cells are the smallest non-zero visible ones. Interval protection
//! (how narrow the feasible range of a hidden cell is) is not guaranteed beyond that.

use serde::Serialize;

use super::Releasable;
use crate::policy::SitePolicy;

/// A released count or the suppression marker.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(untagged)]
pub enum Cell {
    /// The count.
    Value(u64),
    /// Hidden by disclosure control (serializes as `"suppressed"`).
    #[serde(serialize_with = "suppressed_marker")]
    Suppressed,
}

fn suppressed_marker<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("suppressed")
}

impl Cell {
    /// The count, or `None` when suppressed.
    pub fn value(self) -> Option<u64> {
        match self {
            Cell::Value(v) => Some(v),
            Cell::Suppressed => None,
        }
    }
}

/// A released one-way table.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct CountTable {
    /// The cells, in input order.
    pub cells: Vec<Cell>,
    /// The total.
    pub total: Cell,
}

/// A released two-way table with margins.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Table2 {
    /// Cells, row-major.
    pub cells: Vec<Vec<Cell>>,
    /// Row totals.
    pub row_totals: Vec<Cell>,
    /// Column totals.
    pub col_totals: Vec<Cell>,
    /// Grand total.
    pub total: Cell,
}

/// A table that is not a proper table (API misuse).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No rows or no columns.
    #[error("table has no cells")]
    Empty,
    /// A row's length differs from the first row's.
    #[error("table row {row} has a different length from row 0")]
    Ragged {
        /// The offending row.
        row: usize,
    },
    /// A total overflowed u64.
    #[error("table total overflows")]
    Overflow,
}

fn primary(v: u64, k: u64) -> bool {
    v > 0 && v < k
}

/// Index of the smallest visible entry among `idx`, preferring non-zero values.
fn pick_complement(idx: impl Iterator<Item = usize>, values: &[u64], hidden: &[bool]) -> Option<usize> {
    idx.filter(|&i| !hidden[i]).min_by_key(|&i| (values[i] == 0, values[i]))
}

/// Releases a one-way table of `counts` and its total under the policy's `min_cell_count`,
/// with secondary suppression so that no hidden cell follows from the total and the others.
pub fn release_counts(policy: &SitePolicy, counts: &[u64]) -> Result<Releasable<CountTable>, TableError> {
    let k = policy.disclosure().min_cell_count;
    let total = counts.iter().try_fold(0u64, |a, &c| a.checked_add(c)).ok_or(TableError::Overflow)?;
    // Entries 0..n are cells, n is the total.
    let mut values = counts.to_vec();
    values.push(total);
    let mut hidden: Vec<bool> = values.iter().map(|&v| primary(v, k)).collect();
    while hidden.iter().filter(|&&h| h).count() == 1 {
        match pick_complement(0..values.len(), &values, &hidden) {
            Some(i) => hidden[i] = true,
            None => break,
        }
    }
    let out = |i: usize| if hidden[i] { Cell::Suppressed } else { Cell::Value(values[i]) };
    let n = counts.len();
    Ok(Releasable::new(CountTable { cells: (0..n).map(out).collect(), total: out(n) }))
}

/// Augmented (R+1)×(C+1) matrix: cells, row totals in the last column, column totals in the last
/// row, grand total in the corner. Rows and columns of it are the additive constraints.
struct Aug {
    r: usize,
    c: usize,
    v: Vec<u64>,
    h: Vec<bool>,
}

impl Aug {
    fn at(&self, i: usize, j: usize) -> usize {
        i * (self.c + 1) + j
    }

    /// Hides one complement in any line with exactly one hidden entry. Returns whether it did.
    fn fix_lines(&mut self) -> bool {
        for i in 0..=self.r {
            let line: Vec<usize> = (0..=self.c).map(|j| self.at(i, j)).collect();
            if line.iter().filter(|&&x| self.h[x]).count() == 1 {
                if let Some(x) = pick_complement(line.into_iter(), &self.v, &self.h) {
                    self.h[x] = true;
                    return true;
                }
            }
        }
        for j in 0..=self.c {
            let line: Vec<usize> = (0..=self.r).map(|i| self.at(i, j)).collect();
            if line.iter().filter(|&&x| self.h[x]).count() == 1 {
                if let Some(x) = pick_complement(line.into_iter(), &self.v, &self.h) {
                    self.h[x] = true;
                    return true;
                }
            }
        }
        false
    }

    /// Nodes reachable from `start` in the hidden-cell graph (rows 0..=r, columns r+1..) without
    /// using the edge `skip`.
    fn reach(&self, start: usize, skip: (usize, usize)) -> Vec<bool> {
        let nodes = self.r + self.c + 2;
        let mut seen = vec![false; nodes];
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(n) = stack.pop() {
            let next: Vec<usize> = if n <= self.r {
                (0..=self.c).filter(|&j| (n, j) != skip && self.h[self.at(n, j)]).map(|j| self.r + 1 + j).collect()
            } else {
                let j = n - self.r - 1;
                (0..=self.r).filter(|&i| (i, j) != skip && self.h[self.at(i, j)]).collect()
            };
            for m in next {
                if !seen[m] {
                    seen[m] = true;
                    stack.push(m);
                }
            }
        }
        seen
    }

    /// Finds a hidden bridge cell and hides a complement closing a cycle through it.
    fn fix_bridge(&mut self) -> bool {
        for i in 0..=self.r {
            for j in 0..=self.c {
                if !self.h[self.at(i, j)] {
                    continue;
                }
                let side = self.reach(i, (i, j));
                if side[self.r + 1 + j] {
                    continue; // on a cycle
                }
                // Candidates: visible (a, b) joining the two sides.
                let cands = (0..=self.r).flat_map(|a| (0..=self.c).map(move |b| (a, b)));
                let idx = cands.filter(|&(a, b)| side[a] != side[self.r + 1 + b]).map(|(a, b)| self.at(a, b));
                if let Some(x) = pick_complement(idx, &self.v, &self.h) {
                    self.h[x] = true;
                } else {
                    self.h.iter_mut().for_each(|h| *h = true);
                }
                return true;
            }
        }
        false
    }
}

/// Releases a two-way table `rows` (row-major counts) with row, column and grand totals, under
/// the policy's `min_cell_count`, with secondary suppression (see the module docs).
pub fn release_table2(policy: &SitePolicy, rows: &[Vec<u64>]) -> Result<Releasable<Table2>, TableError> {
    let k = policy.disclosure().min_cell_count;
    let r = rows.len();
    let c = rows.first().map_or(0, Vec::len);
    if r == 0 || c == 0 {
        return Err(TableError::Empty);
    }
    if let Some(row) = rows.iter().position(|x| x.len() != c) {
        return Err(TableError::Ragged { row });
    }
    let mut a = Aug { r, c, v: vec![0; (r + 1) * (c + 1)], h: Vec::new() };
    for (i, row) in rows.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let (ij, ic, rj, rc) = (a.at(i, j), a.at(i, c), a.at(r, j), a.at(r, c));
            a.v[ij] = x;
            for t in [ic, rj, rc] {
                a.v[t] = a.v[t].checked_add(x).ok_or(TableError::Overflow)?;
            }
        }
    }
    a.h = a.v.iter().map(|&v| primary(v, k)).collect();
    while a.fix_lines() || a.fix_bridge() {}
    let out = |x: usize| if a.h[x] { Cell::Suppressed } else { Cell::Value(a.v[x]) };
    Ok(Releasable::new(Table2 {
        cells: (0..r).map(|i| (0..c).map(|j| out(a.at(i, j))).collect()).collect(),
        row_totals: (0..r).map(|i| out(a.at(i, c))).collect(),
        col_totals: (0..c).map(|j| out(a.at(r, j))).collect(),
        total: out(a.at(r, c)),
    }))
}
