//! A numeric data frame: named `f64` columns of equal length, `NaN` marking a
//! missing value (R's `NA`), and a strict CSV reader for it.
//!
//! CSV contract (see the `seh fit` issue): a header row, numeric columns, an
//! empty field is missing. `NA` and `NaN` are also read as missing because R's
//! `write.csv` writes them. Anything else that does not parse as a number is an
//! error naming the source, the 1-based line and the column.
//!
//! Written by hand rather than with the `csv` crate: the format is the simple,
//! quote-free numeric subset, and a direct byte scanner parses 10^6 rows several
//! times faster than building records first. Quoted header names are accepted.

use std::fmt;

/// Where a value came from, for error messages (`file.csv`, `<stdin>`, ...).
pub type SourceName = String;

/// Errors reading or using a data frame. Messages name the file, line and column
/// but never contain a data value (a value may be patient data).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("{source_name}: the file is empty (a header row is required)")]
    Empty { source_name: SourceName },
    #[error("{source_name}: line 1: the header has an empty column name (column {column})")]
    EmptyHeaderName { source_name: SourceName, column: usize },
    #[error("{source_name}: line 1: column name `{name}` appears twice")]
    DuplicateColumn { source_name: SourceName, name: String },
    #[error("{source_name}: line {line}: expected {expected} fields as in the header, found {found}")]
    Ragged { source_name: SourceName, line: usize, expected: usize, found: usize },
    #[error("{source_name}: line {line}, column `{column}`: not a number (numeric columns only; leave the field empty for a missing value)")]
    NotNumeric { source_name: SourceName, line: usize, column: String },
    #[error("{source_name}: the file has a header but no data rows")]
    NoRows { source_name: SourceName },
    #[error("{source_name}: the file is not valid UTF-8 at line {line}")]
    Encoding { source_name: SourceName, line: usize },
    #[error("unknown column `{name}`{hint}")]
    UnknownColumn { name: String, hint: String },
    #[error("column `{name}` has {found} rows but the frame has {expected}")]
    LengthMismatch { name: String, expected: usize, found: usize },
}

/// A column-major table of `f64` with unique column names.
#[derive(Clone, PartialEq)]
pub struct DataFrame {
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
    nrows: usize,
}

impl fmt::Debug for DataFrame {
    /// Shows the shape and names only: the values may be patient data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataFrame").field("nrows", &self.nrows).field("columns", &self.names).finish_non_exhaustive()
    }
}

impl DataFrame {
    /// An empty frame with `nrows` rows and no columns.
    pub fn with_rows(nrows: usize) -> Self {
        DataFrame { names: Vec::new(), columns: Vec::new(), nrows }
    }

    /// Builds a frame from `(name, values)` pairs of equal length.
    pub fn from_columns<S: Into<String>>(cols: Vec<(S, Vec<f64>)>) -> Result<Self, FrameError> {
        let nrows = cols.first().map_or(0, |c| c.1.len());
        let mut df = DataFrame::with_rows(nrows);
        for (name, values) in cols {
            df.push_column(name, values)?;
        }
        Ok(df)
    }

    /// Adds (or replaces) a column.
    pub fn push_column<S: Into<String>>(&mut self, name: S, values: Vec<f64>) -> Result<(), FrameError> {
        let name = name.into();
        if values.len() != self.nrows {
            return Err(FrameError::LengthMismatch { name, expected: self.nrows, found: values.len() });
        }
        match self.names.iter().position(|n| *n == name) {
            Some(i) => self.columns[i] = values,
            None => {
                self.names.push(name);
                self.columns.push(values);
            }
        }
        Ok(())
    }

    pub fn nrows(&self) -> usize {
        self.nrows
    }

    pub fn ncols(&self) -> usize {
        self.names.len()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The column called `name`, or an error naming it and listing close names.
    pub fn column(&self, name: &str) -> Result<&[f64], FrameError> {
        match self.names.iter().position(|n| n == name) {
            Some(i) => Ok(&self.columns[i]),
            None => Err(FrameError::UnknownColumn { name: name.to_string(), hint: self.hint(name) }),
        }
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    fn hint(&self, name: &str) -> String {
        let lname = name.to_ascii_lowercase();
        let close: Vec<&str> = self
            .names
            .iter()
            .filter(|n| {
                let ln = n.to_ascii_lowercase();
                ln == lname || ln.contains(&lname) || lname.contains(&ln) || edit_distance(&ln, &lname) <= 2
            })
            .map(String::as_str)
            .collect();
        if close.is_empty() {
            format!(" (columns: {})", self.names.join(", "))
        } else {
            format!(" (did you mean {}?)", close.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(" or "))
        }
    }

    /// Keeps the rows whose index is in `rows` (in that order).
    pub fn take_rows(&self, rows: &[usize]) -> DataFrame {
        DataFrame {
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| rows.iter().map(|&r| c[r]).collect()).collect(),
            nrows: rows.len(),
        }
    }

    /// Parses CSV bytes. `source_name` is used in error messages only.
    pub fn from_csv_bytes(bytes: &[u8], source_name: &str) -> Result<Self, FrameError> {
        let src = || source_name.to_string();
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut lines = LineIter { rest: bytes, line: 0 };
        let header = loop {
            match lines.next() {
                None => return Err(FrameError::Empty { source_name: src() }),
                Some((_, l)) if l.iter().all(u8::is_ascii_whitespace) => continue,
                Some((ln, l)) => break (ln, l),
            }
        };
        let header_str =
            std::str::from_utf8(header.1).map_err(|_| FrameError::Encoding { source_name: src(), line: header.0 })?;
        let mut names: Vec<String> = Vec::new();
        for (i, raw) in header_str.split(',').enumerate() {
            let name = raw.trim().trim_matches('"').trim().to_string();
            if name.is_empty() {
                return Err(FrameError::EmptyHeaderName { source_name: src(), column: i + 1 });
            }
            if names.contains(&name) {
                return Err(FrameError::DuplicateColumn { source_name: src(), name });
            }
            names.push(name);
        }
        let p = names.len();
        let guess = bytes.len() / (p * 4).max(1);
        let mut columns: Vec<Vec<f64>> = (0..p).map(|_| Vec::with_capacity(guess)).collect();
        for (line_no, line) in lines {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut found = 0usize;
            for field in line.split(|&b| b == b',') {
                if found < p {
                    let v = parse_field(field).ok_or_else(|| FrameError::NotNumeric {
                        source_name: src(),
                        line: line_no,
                        column: names[found].clone(),
                    })?;
                    columns[found].push(v);
                }
                found += 1;
            }
            if found != p {
                return Err(FrameError::Ragged { source_name: src(), line: line_no, expected: p, found });
            }
        }
        let nrows = columns[0].len();
        if nrows == 0 {
            return Err(FrameError::NoRows { source_name: src() });
        }
        Ok(DataFrame { names, columns, nrows })
    }
}

/// Parses one CSV field: empty / `NA` / `NaN` → missing (`NaN`), else a finite number.
fn parse_field(field: &[u8]) -> Option<f64> {
    let f = trim_ascii(field);
    let f = if f.len() >= 2 && f[0] == b'"' && f[f.len() - 1] == b'"' { trim_ascii(&f[1..f.len() - 1]) } else { f };
    if f.is_empty() || f == b"NA" || f == b"NaN" {
        return Some(f64::NAN);
    }
    let s = std::str::from_utf8(f).ok()?;
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        // `inf` parses in Rust but is not a usable covariate or time here.
        _ => None,
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// Iterates lines (LF or CRLF) with their 1-based numbers.
struct LineIter<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Iterator for LineIter<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        self.line += 1;
        let (mut line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        self.rest = rest;
        Some((self.line, line))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_and_missing() {
        let df = DataFrame::from_csv_bytes(b"a,b\r\n1,2.5\n,NA\n-3e2,4\n", "t.csv").unwrap();
        assert_eq!(df.nrows(), 3);
        assert_eq!(df.column("a").unwrap()[2], -300.0);
        assert!(df.column("a").unwrap()[1].is_nan());
        assert!(df.column("b").unwrap()[1].is_nan());
    }

    #[test]
    fn errors_name_file_line_column() {
        let e = DataFrame::from_csv_bytes(b"a,b\n1,2\n3,x\n", "d.csv").unwrap_err();
        assert_eq!(e, FrameError::NotNumeric { source_name: "d.csv".into(), line: 3, column: "b".into() });
        assert!(e.to_string().contains("d.csv: line 3, column `b`"));
        let e = DataFrame::from_csv_bytes(b"a,b\n1,2\n3\n", "d.csv").unwrap_err();
        assert_eq!(e, FrameError::Ragged { source_name: "d.csv".into(), line: 3, expected: 2, found: 1 });
        let e = DataFrame::from_csv_bytes(b"a,b\n1,2,3\n", "d.csv").unwrap_err();
        assert!(matches!(e, FrameError::Ragged { found: 3, .. }));
        assert!(matches!(DataFrame::from_csv_bytes(b"", "e.csv"), Err(FrameError::Empty { .. })));
        assert!(matches!(DataFrame::from_csv_bytes(b"a,b\n", "e.csv"), Err(FrameError::NoRows { .. })));
        assert!(matches!(DataFrame::from_csv_bytes(b"a,a\n1,2\n", "e.csv"), Err(FrameError::DuplicateColumn { .. })));
        assert!(matches!(DataFrame::from_csv_bytes(b"a,inf\n1,inf\n", "e.csv"), Err(FrameError::NotNumeric { .. })));
    }

    #[test]
    fn unknown_column_suggests() {
        let df = DataFrame::from_csv_bytes(b"age,sex\n1,2\n", "d.csv").unwrap();
        let e = df.column("Age").unwrap_err().to_string();
        assert!(e.contains("unknown column `Age`") && e.contains("`age`"), "{e}");
        let e = df.column("zzz").unwrap_err().to_string();
        assert!(e.contains("columns: age, sex"), "{e}");
    }

    #[test]
    fn debug_hides_values() {
        let df = DataFrame::from_csv_bytes(b"secret\n123456789\n", "d.csv").unwrap();
        assert!(!format!("{df:?}").contains("123456789"));
    }
}
