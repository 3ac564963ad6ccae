//! Writing a data frame as CSV that `DataFrame::from_csv_bytes` and R's
//! `read.csv` both read back exactly (shortest round-trip numbers, `NA` for missing).

use std::io::Write;
use std::path::Path;

use seh_stats::DataFrame;

use crate::error::DataError;

/// The CSV text of `frame`: header, then one line per row.
pub fn to_csv_string(frame: &DataFrame) -> String {
    let names = frame.names();
    let cols: Vec<&[f64]> = names.iter().filter_map(|n| frame.column(n).ok()).collect();
    let mut out = String::with_capacity(16 * (frame.nrows() + 1) * names.len().max(1));
    out.push_str(&names.iter().map(|n| quote_header(n)).collect::<Vec<_>>().join(","));
    out.push('\n');
    for r in 0..frame.nrows() {
        for (j, c) in cols.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            match c.get(r) {
                Some(v) if !v.is_nan() => out.push_str(&v.to_string()),
                _ => out.push_str("NA"),
            }
        }
        out.push('\n');
    }
    out
}

fn quote_header(n: &str) -> String {
    if n.contains([',', '"', '\n']) {
        format!("\"{}\"", n.replace('"', "\"\""))
    } else {
        n.to_string()
    }
}

/// Writes `frame` to `path` (replacing it).
pub fn write_csv(frame: &DataFrame, path: &Path) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::Io { path: path.to_path_buf(), message: e.to_string() };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(to_csv_string(frame).as_bytes()).map_err(io)
}
