//! A CSV header with 10^6 columns: the duplicate-column check is one hash look-up per name
//! (it was a scan of all earlier names, 5·10^11 comparisons here — hours). Not a timed test;
//! the time is measured by hand (see the issue-18 report).

use seh_stats::{DataFrame, FrameError};

const K: usize = 1_000_000;

fn header(names: impl Iterator<Item = String>) -> String {
    names.collect::<Vec<_>>().join(",")
}

#[test]
fn a_million_column_header_parses() {
    let mut text = header((0..K).map(|i| format!("c{i}")));
    text.push('\n');
    text.push_str(&vec!["1"; K].join(","));
    text.push('\n');
    let df = DataFrame::from_csv_bytes(text.as_bytes(), "wide.csv").unwrap();
    assert_eq!(df.ncols(), K);
    assert_eq!(df.nrows(), 1);
    assert_eq!(df.names()[K - 1], format!("c{}", K - 1));
    assert_eq!(df.column("c123456").unwrap(), &[1.0]);
}

#[test]
fn a_duplicate_at_the_end_of_a_million_columns_is_named() {
    // The last name repeats one from the start (quotes and spaces are trimmed first).
    let mut text = header((0..K).map(|i| format!("c{i}")));
    text.push_str(", \"c5\" \n1\n");
    let e = DataFrame::from_csv_bytes(text.as_bytes(), "wide.csv").unwrap_err();
    assert_eq!(e, FrameError::DuplicateColumn { source_name: "wide.csv".into(), name: "c5".into() });
    assert_eq!(e.to_string(), "wide.csv: line 1: column name `c5` appears twice");
}
