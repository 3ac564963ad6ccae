//! Disclosure control: suppression (with secondary suppression), risk-set merging and the
//! model-size rule, with property tests.

use proptest::prelude::*;
use seh_policy::release::{release_counts, release_model, release_risk_table, release_table2, Cell, RiskRow};
use seh_policy::{Rule, SitePolicy};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy/site-policy.toml");

/// The example policy (k = 5 for cells and risk sets, model ratio 0.2, subset 10).
fn policy() -> SitePolicy {
    SitePolicy::load(std::path::Path::new(EXAMPLE)).unwrap()
}

fn count_hidden(cells: &[Cell]) -> usize {
    cells.iter().filter(|c| c.value().is_none()).count()
}

#[test]
fn one_way_table_suppression_and_secondary() {
    let p = policy();
    let t = release_counts(&p, &[10, 2, 30, 0]).unwrap().into_inner();
    // 2 is hidden; so must be one more cell (the smallest non-zero visible: 10), not the zero.
    assert_eq!(t.cells, [Cell::Suppressed, Cell::Suppressed, Cell::Value(30), Cell::Value(0)]);
    assert_eq!(t.total, Cell::Value(42));
    // Nothing small: nothing hidden.
    let t = release_counts(&p, &[10, 20]).unwrap().into_inner();
    assert_eq!(count_hidden(&t.cells), 0);
    // A small total hides everything.
    let t = release_counts(&p, &[1, 2]).unwrap().into_inner();
    assert_eq!(t.total, Cell::Suppressed);
    assert_eq!(count_hidden(&t.cells), 2);
    // One cell: the total goes too.
    let t = release_counts(&p, &[3]).unwrap().into_inner();
    assert_eq!((t.cells[0], t.total), (Cell::Suppressed, Cell::Suppressed));
    // JSON shows the marker.
    let json = serde_json::to_string(&release_counts(&p, &[10, 2, 30]).unwrap()).unwrap();
    assert!(json.contains("\"suppressed\""), "{json}");
}

#[test]
fn two_way_table_hides_bridges() {
    let p = policy();
    // One small cell in the middle of a 3×3 table: at least 4 cells must hide (a rectangle).
    let t = release_table2(&p, &[vec![20, 30, 40], vec![25, 2, 35], vec![50, 60, 70]]).unwrap().into_inner();
    let hidden: usize = t.cells.iter().map(|r| count_hidden(r)).sum();
    assert!(hidden >= 4, "{t:?}");
    assert_eq!(t.cells[1][1], Cell::Suppressed);
    // Two hidden rectangles joined by one small cell (row 1, column 2): every line hides 0 or ≥ 2
    // entries, yet that cell follows from the margins (it is a bridge). It must get company.
    let bridge = [vec![1, 1, 20, 20], vec![1, 1, 1, 20], vec![20, 20, 1, 1], vec![20, 20, 1, 1]];
    check_table2(&p, &bridge).unwrap();
    assert!(release_table2(&p, &[vec![1, 2], vec![3]]).is_err());
    assert!(release_table2(&p, &[]).is_err());
}

/// In the augmented matrix (cells + margins), no row or column hides exactly one entry, and
/// every hidden entry lies on a cycle of hidden entries (so it is not determined by the rest).
fn check_table2(p: &SitePolicy, rows: &[Vec<u64>]) -> Result<(), TestCaseError> {
    let k = p.disclosure().min_cell_count;
    let t = release_table2(p, rows).unwrap().into_inner();
    let (r, c) = (rows.len(), rows[0].len());
    let mut aug: Vec<Vec<Cell>> = t.cells.clone();
    for (i, row) in aug.iter_mut().enumerate() {
        row.push(t.row_totals[i]);
    }
    let mut last = t.col_totals.clone();
    last.push(t.total);
    aug.push(last);
    // Released values are correct and never small.
    for i in 0..r {
        for j in 0..c {
            if let Cell::Value(v) = aug[i][j] {
                prop_assert_eq!(v, rows[i][j]);
            }
        }
    }
    for row in &aug {
        for cell in row {
            if let Cell::Value(v) = cell {
                prop_assert!(*v == 0 || *v >= k);
            }
        }
    }
    for row in &aug {
        prop_assert_ne!(row.iter().filter(|x| x.value().is_none()).count(), 1);
    }
    for j in 0..=c {
        prop_assert_ne!(aug.iter().filter(|row| row[j].value().is_none()).count(), 1);
    }
    // Bridge check by brute force: removing a hidden edge must keep its endpoints connected.
    let hidden: Vec<(usize, usize)> =
        (0..=r).flat_map(|i| (0..=c).map(move |j| (i, j))).filter(|&(i, j)| aug[i][j].value().is_none()).collect();
    for &(bi, bj) in &hidden {
        let mut seen_rows = vec![false; r + 1];
        let mut seen_cols = vec![false; c + 1];
        seen_rows[bi] = true;
        let mut changed = true;
        while changed {
            changed = false;
            for &(i, j) in &hidden {
                if (i, j) == (bi, bj) {
                    continue;
                }
                if seen_rows[i] != seen_cols[j] {
                    seen_rows[i] = true;
                    seen_cols[j] = true;
                    changed = true;
                }
            }
        }
        prop_assert!(seen_cols[bj], "hidden cell ({}, {}) is determined by the margins", bi, bj);
    }
    Ok(())
}

proptest! {
    #[test]
    fn one_way_no_small_cell_and_no_single_hidden(counts in prop::collection::vec(0u64..40, 1..12)) {
        let p = policy();
        let k = p.disclosure().min_cell_count;
        let t = release_counts(&p, &counts).unwrap().into_inner();
        let mut all = t.cells.clone();
        all.push(t.total);
        for (i, c) in t.cells.iter().enumerate() {
            if let Cell::Value(v) = c {
                prop_assert_eq!(*v, counts[i]);
                prop_assert!(*v == 0 || *v >= k);
            }
        }
        if let Cell::Value(v) = t.total {
            prop_assert_eq!(v, counts.iter().sum::<u64>());
            prop_assert!(v == 0 || v >= k);
        }
        prop_assert_ne!(count_hidden(&all), 1);
    }

    #[test]
    fn two_way_no_small_cell_and_no_recoverable_cell(
        (r, c, cells) in (1usize..7, 1usize..7).prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(0u64..14, r * c)))
    ) {
        let rows: Vec<Vec<u64>> = cells.chunks(c).map(<[u64]>::to_vec).collect();
        prop_assert_eq!(rows.len(), r);
        check_table2(&policy(), &rows)?;
    }

    #[test]
    fn risk_sets_merge_to_at_least_k(
        steps in prop::collection::vec((1u64..6, 0u64..4, 0u64..4, 0u64..3), 1..30)
    ) {
        // Build a right-censored-like table from the end backwards, plus some delayed entry.
        let mut rows = Vec::new();
        let mut at_risk = 0u64;
        for (i, &(events, censored, _, entries)) in steps.iter().enumerate().rev() {
            at_risk += events + censored + entries;
            rows.push(RiskRow { time: i as f64 * 7.0, at_risk, events, censored });
        }
        rows.reverse();
        let p = policy();
        let k = p.disclosure().min_risk_set;
        match release_risk_table(&p, &rows) {
            Ok(t) => {
                let t = t.into_inner();
                prop_assert!(t.rows.len() <= rows.len());
                prop_assert_eq!(t.merged, t.rows.len() < rows.len());
                prop_assert!(t.rows.iter().all(|r| r.at_risk >= k));
                prop_assert_eq!(t.rows.iter().map(|r| r.events).sum::<u64>(), rows.iter().map(|r| r.events).sum::<u64>());
                prop_assert_eq!(t.rows.iter().map(|r| r.censored).sum::<u64>(), rows.iter().map(|r| r.censored).sum::<u64>());
                prop_assert!(t.rows.windows(2).all(|w| w[0].time < w[1].time));
                prop_assert!(t.rows.iter().all(|r| rows.iter().any(|x| x.time == r.time)));
                prop_assert_eq!(t.group_ends.len(), t.rows.len());
                prop_assert_eq!(t.group_ends.last().copied(), Some(rows.len() - 1));
            }
            Err(_) => prop_assert!(rows.iter().all(|r| r.at_risk < k)),
        }
    }
}

#[test]
fn risk_set_merging_examples() {
    let p = policy();
    let row = |time: f64, at_risk: u64, events: u64| RiskRow { time, at_risk, events, censored: 0 };
    let rows = [row(1.0, 20, 2), row(2.0, 18, 3), row(3.0, 6, 1), row(4.0, 4, 2), row(5.0, 2, 1)];
    let t = release_risk_table(&p, &rows).unwrap().into_inner();
    assert!(t.merged);
    assert_eq!(t.rows.len(), 3);
    assert_eq!(t.rows[2], RiskRow { time: 5.0, at_risk: 6, events: 4, censored: 0 });
    assert_eq!(t.group_ends, [0, 1, 4]);
    // Nothing to merge.
    let t = release_risk_table(&p, &rows[..2]).unwrap().into_inner();
    assert!(!t.merged);
    // Everything below k: refused with the rule.
    match release_risk_table(&p, &[row(1.0, 4, 1), row(2.0, 3, 1)]) {
        Err(seh_policy::release::RiskTableError::Refused(r)) => assert_eq!(r.rule, Rule::MinRiskSet),
        other => panic!("{other:?}"),
    }
    assert!(release_risk_table(&p, &[row(2.0, 9, 1), row(1.0, 9, 1)]).is_err());
}

#[test]
fn model_size_rule() {
    let p = policy(); // ratio 0.2, subset 10
    assert!(release_model(&p, vec![0.1, 0.2], 2, 10).is_ok());
    assert_eq!(release_model(&p, vec![0.1; 3], 3, 14).unwrap_err().rule, Rule::ModelSize);
    assert!(release_model(&p, vec![0.1; 3], 3, 15).is_ok());
    assert_eq!(release_model(&p, (), 1, 9).unwrap_err().rule, Rule::MinSubsetSize);
}
