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
    lines: SourceLines,
}

/// Source line of each row of a [`DataFrame`], for error messages
/// ([`SourceLines::line`]).
///
/// Data read from a file without blank lines needs no table: row `i` is on
/// line `first + i`. Every skipped blank line adds a jump, so the memory is
/// proportional to the number of blank runs, not to the number of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLines(LineMap);

#[derive(Debug, Clone, PartialEq, Eq)]
enum LineMap {
    /// Row `i` is on line `first + i + extra`, where `extra` is the second
    /// element of the last jump `(row, extra)` with `row <= i` (0 before any).
    Sparse { first: usize, jumps: Vec<(usize, usize)> },
    /// One line per row (after [`DataFrame::take_rows`] of a frame with jumps).
    Dense(Vec<usize>),
}

impl Default for LineMap {
    /// Row `i` on line `i + 2`: a header line, then the rows.
    fn default() -> Self {
        LineMap::Sparse { first: 2, jumps: Vec::new() }
    }
}

impl SourceLines {
    /// The 1-based source line of data row `row` (0-based); `row + 2` for frames
    /// not read from a file.
    pub fn line(&self, row: usize) -> usize {
        self.0.line(row)
    }
}

impl LineMap {
    fn line(&self, row: usize) -> usize {
        match self {
            LineMap::Sparse { first, jumps } => {
                let k = jumps.partition_point(|&(r, _)| r <= row);
                first + row + k.checked_sub(1).map_or(0, |k| jumps[k].1)
            }
            LineMap::Dense(lines) => lines.get(row).copied().unwrap_or(row + 2),
        }
    }
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
        DataFrame { names: Vec::new(), columns: Vec::new(), nrows, lines: SourceLines::default() }
    }

    /// The 1-based line of the source file that data row `row` (0-based) came
    /// from: `row + 2` (a header line, then one line per row) unless blank lines
    /// were skipped. Frames not read from a file use `row + 2` as well.
    pub fn source_line(&self, row: usize) -> usize {
        self.lines.line(row)
    }

    /// The source lines of all rows (see [`DataFrame::source_line`]).
    pub fn source_lines(&self) -> &SourceLines {
        &self.lines
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
    /// Source lines follow the rows. Panics if an index is out of range.
    pub fn take_rows(&self, rows: &[usize]) -> DataFrame {
        let lines = SourceLines(LineMap::Dense(rows.iter().map(|&r| self.lines.line(r)).collect()));
        DataFrame {
            names: self.names.clone(),
            columns: self.columns.iter().map(|c| rows.iter().map(|&r| c[r]).collect()).collect(),
            nrows: rows.len(),
            lines,
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
        // One hash look-up per name: the duplicate check is O(columns), not quadratic.
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (i, raw) in header_str.split(',').enumerate() {
            let name = raw.trim().trim_matches('"').trim();
            if name.is_empty() {
                return Err(FrameError::EmptyHeaderName { source_name: src(), column: i + 1 });
            }
            if !seen.insert(name) {
                return Err(FrameError::DuplicateColumn { source_name: src(), name: name.to_string() });
            }
            names.push(name.to_string());
        }
        let p = names.len();
        let body = lines.rest;
        let first_line = header.0 + 1;
        // Large files are parsed in two halves on two threads (split at a line
        // break); the result is the same as one sequential pass.
        let parallel = body.len() >= PARALLEL_BYTES && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let split = if parallel {
            body[body.len() / 2..].iter().position(|&b| b == b'\n').map_or(body.len(), |i| body.len() / 2 + i + 1)
        } else {
            body.len()
        };
        let (head, tail) = body.split_at(split);
        // Rows expected, from the length of the first lines: reserving room for
        // all of them in the first half's columns makes appending the second free.
        let sample = &body[..body.len().min(1 << 16)];
        let sample_lines = sample.iter().filter(|&&b| b == b'\n').count().max(1);
        let per_line = sample.len().div_ceil(sample_lines).max(1);
        // A row of `p` fields takes at least `p` bytes, which bounds the estimate for wide files.
        let most = body.len() / p.max(1) + 1;
        let expect = |bytes: usize| ((bytes / per_line) + (bytes / per_line) / 8 + 16).min(most);
        let (a, b) = if tail.is_empty() {
            (parse_rows(head, p, expect(body.len())), Ok(Chunk::default()))
        } else {
            std::thread::scope(|s| {
                let t = s.spawn(|| parse_rows(tail, p, expect(tail.len())));
                let a = parse_rows(head, p, expect(body.len()));
                (a, t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            })
        };
        let err = |e: ChunkError, offset: usize| match e {
            ChunkError::NotNumeric { line, column } => FrameError::NotNumeric {
                source_name: src(),
                line: first_line + offset + line,
                column: names[column].clone(),
            },
            ChunkError::Ragged { line, found } => {
                FrameError::Ragged { source_name: src(), line: first_line + offset + line, expected: p, found }
            }
        };
        let mut a = a.map_err(|e| err(e, 0))?;
        let b = b.map_err(|e| err(e, a.lines))?;
        let rows_a = a.columns.first().map_or(0, Vec::len);
        let mut jumps = a.jumps;
        if a.skipped > jumps.last().map_or(0, |j| j.1) {
            jumps.push((rows_a, a.skipped)); // blank lines at the end of the first half
        }
        jumps.extend(b.jumps.into_iter().map(|(r, extra)| (r + rows_a, extra + a.skipped)));
        if !b.columns.is_empty() {
            for (ca, cb) in a.columns.iter_mut().zip(b.columns) {
                ca.extend_from_slice(&cb);
            }
        }
        let columns = a.columns;
        let nrows = columns.first().map_or(0, Vec::len);
        if nrows == 0 {
            return Err(FrameError::NoRows { source_name: src() });
        }
        Ok(DataFrame { names, columns, nrows, lines: SourceLines(LineMap::Sparse { first: first_line, jumps }) })
    }
}

/// Bytes of data from which the reader uses two threads.
const PARALLEL_BYTES: usize = 4 << 20;

/// The parsed rows of a run of lines.
#[derive(Default)]
struct Chunk {
    /// One vector per column (`p` of them; none for an empty run).
    columns: Vec<Vec<f64>>,
    /// Lines consumed (blank ones included).
    lines: usize,
    /// Blank lines skipped.
    skipped: usize,
    /// `(row, blank lines skipped before it)` at every row that follows a blank line.
    jumps: Vec<(usize, usize)>,
}

/// A parse error in a run of lines; `line` is 0-based within the run.
enum ChunkError {
    NotNumeric { line: usize, column: usize },
    Ragged { line: usize, found: usize },
}

/// Parses the data lines in `bytes` (no header) into `p` columns with room for `capacity` rows.
fn parse_rows(bytes: &[u8], p: usize, capacity: usize) -> Result<Chunk, ChunkError> {
    let mut columns: Vec<Vec<f64>> = (0..p).map(|_| Vec::with_capacity(capacity)).collect();
    let mut chunk = Chunk::default();
    let mut pending_skip = false;
    let mut line_no = 0usize;
    for (k, line) in (LineIter { rest: bytes, line: 0 }) {
        line_no = k;
        if line.first().is_none_or(u8::is_ascii_whitespace) && line.iter().all(u8::is_ascii_whitespace) {
            chunk.skipped += 1;
            pending_skip = true;
            continue;
        }
        if pending_skip {
            chunk.jumps.push((columns[0].len(), chunk.skipped));
            pending_skip = false;
        }
        let mut found = 0usize;
        for field in line.split(|&b| b == b',') {
            if found < p {
                let v = parse_field(field).ok_or(ChunkError::NotNumeric { line: k - 1, column: found })?;
                columns[found].push(v);
            }
            found += 1;
        }
        if found != p {
            return Err(ChunkError::Ragged { line: k - 1, found });
        }
    }
    chunk.lines = line_no;
    chunk.columns = columns;
    Ok(chunk)
}

/// Parses one CSV field: empty / `NA` / `NaN` → missing (`NaN`), else a finite number.
fn parse_field(field: &[u8]) -> Option<f64> {
    let f = trim_ascii(field);
    let f = if f.len() >= 2 && f[0] == b'"' && f[f.len() - 1] == b'"' { trim_ascii(&f[1..f.len() - 1]) } else { f };
    if f.is_empty() || f == b"NA" || f == b"NaN" {
        return Some(f64::NAN);
    }
    if let Some(v) = parse_simple(f) {
        return Some(v);
    }
    let s = std::str::from_utf8(f).ok()?;
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        // `inf` parses in Rust but is not a usable covariate or time here.
        _ => None,
    }
}

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// The common case of a decimal number, `[+-]digits[.digits][e[+-]digits]`
/// whose digits form an integer mantissa of at most 2^53 and whose decimal
/// exponent lies within ±22. Then mantissa and power of ten are exact
/// doubles and one IEEE multiplication or division rounds correctly, so the
/// result is bit-identical to `str::parse::<f64>` (Clinger's fast path).
/// Anything else returns `None` and goes to the general parser.
fn parse_simple(f: &[u8]) -> Option<f64> {
    let (neg, mut i) = match f.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut mant: u64 = 0;
    let mut digits = 0u32;
    let mut frac = 0i32;
    while let Some(&c) = f.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        digits += 1;
        i += 1;
    }
    if f.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = f.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            digits += 1;
            frac += 1;
            i += 1;
        }
    }
    if digits == 0 || digits > 19 || mant > 1 << 53 {
        return None;
    }
    let mut exp = 0i32;
    if matches!(f.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match f.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c) = f.get(i) {
            if !c.is_ascii_digit() || exp > 1000 {
                break;
            }
            exp = exp * 10 + i32::from(c - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != f.len() {
        return None;
    }
    let e10 = exp - frac;
    let m = mant as f64;
    let v = if e10 == 0 {
        m
    } else if (-22..0).contains(&e10) {
        m / POW10[e10.unsigned_abs() as usize]
    } else if (1..=22).contains(&e10) {
        m * POW10[e10 as usize]
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
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
    fn blank_lines_keep_source_line_numbers() {
        let df = DataFrame::from_csv_bytes(b"\na,b\n1,2\n\n  \n3,4\n5,6\n\n7,8\n", "t.csv").unwrap();
        assert_eq!(df.nrows(), 4);
        let lines: Vec<usize> = (0..4).map(|r| df.source_line(r)).collect();
        assert_eq!(lines, vec![3, 6, 7, 9]);
        let e = DataFrame::from_csv_bytes(b"a,b\n1,2\n\n3,x\n", "d.csv").unwrap_err();
        assert!(matches!(e, FrameError::NotNumeric { line: 4, .. }), "{e:?}");
        let plain = DataFrame::from_csv_bytes(b"a\n1\n2\n", "t.csv").unwrap();
        assert_eq!((plain.source_line(0), plain.source_line(1)), (2, 3));
        let taken = df.take_rows(&[3, 1]);
        assert_eq!((taken.source_line(0), taken.source_line(1)), (9, 6));
    }

    /// Two halves parsed on two threads give the one-pass result, line numbers included.
    #[test]
    fn large_input_split_in_halves_matches_line_numbers() {
        let mut text = String::from("t,x\n");
        let mut expect_lines = Vec::new();
        let mut line = 1;
        let mut i = 0u64;
        while text.len() < PARALLEL_BYTES + 1000 {
            line += 1;
            if line % 100_003 == 7 {
                text.push('\n'); // a blank line now and then, in both halves
                continue;
            }
            text.push_str(&format!("{i},{}.{:03}\n", i % 97, i % 1000));
            expect_lines.push(line);
            i += 1;
        }
        let df = DataFrame::from_csv_bytes(text.as_bytes(), "big.csv").unwrap();
        assert_eq!(df.nrows(), expect_lines.len());
        for (r, &l) in expect_lines.iter().enumerate() {
            assert_eq!(df.source_line(r), l, "row {r}");
            assert_eq!(df.column("t").unwrap()[r], r as f64);
        }
        let last = expect_lines.len() - 1;
        assert_eq!(df.column("x").unwrap()[last], format!("{}.{:03}", last % 97, last % 1000).parse::<f64>().unwrap());
        // An error in the second half names its line in the whole file.
        let bad_line = *expect_lines.last().unwrap();
        let mut broken = text.clone();
        broken.push_str("1,oops\n");
        let e = DataFrame::from_csv_bytes(broken.as_bytes(), "big.csv").unwrap_err();
        assert_eq!(e, FrameError::NotNumeric { source_name: "big.csv".into(), line: bad_line + 1, column: "x".into() });
    }

    #[test]
    fn simple_parser_is_bit_identical_to_std() {
        let mut s = 88172645463325252u64;
        let mut cases: Vec<String> = vec![
            "0",
            "-0",
            "+5",
            "1.",
            ".5",
            "-.5",
            "0.1",
            "9007199254740993",
            "9007199254740992",
            "123456789012345678",
            "1e22",
            "1e23",
            "1e-22",
            "4.5e-23",
            "12.5E+3",
            "-7e0",
            "0.000000000000000000001",
            "1.7976931348623157e308",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for _ in 0..20_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let digits = (s % 17) as usize + 1;
            let mant = s >> 11;
            let m = format!("{mant}");
            let m = &m[..digits.min(m.len())];
            let dot = (s >> 5) as usize % (m.len() + 1);
            let mut t = format!("{}{}.{}", if s & 1 == 1 { "-" } else { "" }, &m[..dot], &m[dot..]);
            if (s >> 3).is_multiple_of(4) {
                t.push_str(&format!("e{}", (s >> 20) as i64 % 30 - 15));
            }
            cases.push(t);
        }
        for c in &cases {
            let std = c.parse::<f64>().ok();
            if let Some(v) = parse_simple(c.as_bytes()) {
                assert_eq!(Some(v.to_bits()), std.map(f64::to_bits), "{c}");
            }
            assert_eq!(
                parse_field(c.as_bytes()).map(f64::to_bits),
                std.filter(|v| v.is_finite()).map(f64::to_bits),
                "{c}"
            );
        }
        for bad in ["", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "1,2", "0x10", "--1", "1e5x"] {
            assert_eq!(parse_simple(bad.as_bytes()), None, "{bad}");
        }
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
