//! Text formatting in the style of R's printed summaries: numbers formatted a
//! column at a time to a number of significant digits (R's `format(x, digits =)`),
//! p-values as `format.pval`, and right-aligned tables with a row-name column.

use std::io::Write;

/// Formats one number to `digits` significant digits, dropping digits that are
/// not needed (R's `format(x, digits = digits)` for a single value). `NA` for NaN.
pub fn num(v: f64, digits: usize) -> String {
    column(&[v], digits).pop().unwrap_or_default()
}

/// Decimals needed to show `v` to `digits` significant digits, without trailing zeros (the
/// reference the faster [`decimals_at_least`] is tested against).
#[cfg(test)]
fn decimals_needed(v: f64, digits: usize) -> Option<usize> {
    decimals_at_least(v, digits, 0)
}

/// `max(floor, decimals_needed(v, digits))`, faster when `floor` already suffices: one
/// rendering at `floor` decides it. (If `v` needs `d ≤ floor` decimals, its rendering at
/// `floor` is the same number: the rounded value has `d` decimals and `v` lies within half a
/// unit of the full precision's last place of it, strictly less than half a unit at `floor`.)
fn decimals_at_least(v: f64, digits: usize, floor: usize) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    if v == 0.0 {
        return Some(floor);
    }
    let digits = digits.clamp(1, 15);
    let mag = v.abs().log10().floor() as i32;
    let full = (digits as i32 - 1 - mag).max(0) as usize;
    if full <= floor {
        return Some(floor);
    }
    let target: f64 = format!("{:.*}", full, v).parse().unwrap_or(f64::NAN);
    let same = |d: usize| format!("{:.*}", d, v).parse::<f64>().unwrap_or(f64::NAN) == target;
    if same(floor) {
        return Some(floor);
    }
    // Fewest decimals that round to the same value as the full-precision rendering.
    (floor + 1..=full).find(|&d| same(d))
}

/// Formats a column of numbers with a common number of decimals so that every
/// value shows at least `digits` significant digits (as R formats a vector).
/// Values too large or too small for fixed notation switch the column to scientific.
pub fn column(values: &[f64], digits: usize) -> Vec<String> {
    let mut dec = 0;
    for &v in values {
        dec = decimals_at_least(v, digits, dec).unwrap_or(dec);
    }
    let huge = values.iter().any(|v| v.is_finite() && v.abs() >= 1e15);
    if dec > 10 || huge {
        return values
            .iter()
            .map(|&v| if v.is_finite() { format!("{:.*e}", digits.saturating_sub(1), v) } else { na(v) })
            .collect();
    }
    values.iter().map(|&v| if v.is_finite() { format!("{:.*}", dec, v) } else { na(v) }).collect()
}

fn na(v: f64) -> String {
    if v.is_nan() {
        "NA".into()
    } else if v > 0.0 {
        "Inf".into()
    } else {
        "-Inf".into()
    }
}

/// R's `format.pval(p, digits)`: `<2e-16` below machine precision, otherwise
/// `digits` significant digits (scientific for very small values).
pub fn pval(p: f64, digits: usize) -> String {
    if p.is_nan() {
        return "NA".into();
    }
    let eps = f64::EPSILON;
    if p < eps {
        return format!("<{}", sci_short(eps, digits.min(1)));
    }
    if p < 1e-4 {
        return sci_short(p, digits);
    }
    num(p, digits)
}

/// Scientific notation like R's: `4.03e-05`, mantissa to `digits` significant digits.
fn sci_short(v: f64, digits: usize) -> String {
    let s = format!("{:.*e}", digits.saturating_sub(1), v);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let m = if m.contains('.') { m.trim_end_matches('0').trim_end_matches('.') } else { m };
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { "-" } else { "+" }, e.abs())
}

/// A right-aligned table: a header row, row names in the first column.
pub fn table(header: &[&str], row_names: &[String], cols: &[Vec<String>]) -> String {
    let name_w = row_names.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = header
        .iter()
        .zip(cols)
        .map(|(h, c)| c.iter().map(|s| s.chars().count()).chain([h.chars().count()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    out.push_str(&" ".repeat(name_w));
    for (h, w) in header.iter().zip(&widths) {
        out.push_str(&format!(" {h:>w$}"));
    }
    out.push('\n');
    for (i, name) in row_names.iter().enumerate() {
        out.push_str(&format!("{name:<name_w$}"));
        for (c, w) in cols.iter().zip(&widths) {
            let cell = c.get(i).map_or("", String::as_str);
            out.push_str(&format!(" {cell:>w$}"));
        }
        out.push('\n');
    }
    out
}

/// Writes `text` to standard output; a closed pipe (`seh fit ... | head`) is not an error.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Pluralises "observation(s) deleted due to missingness" like R's summary.
pub fn missing_line(n: usize) -> Option<String> {
    match n {
        0 => None,
        1 => Some("   (1 observation deleted due to missingness)".into()),
        n => Some(format!("   ({n} observations deleted due to missingness)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_like_r_format() {
        // R: format(c(0.02716664, -0.1463463, -0.6372099, -0.01025077), digits = 4)
        assert_eq!(
            column(&[0.02716664, -0.1463463, -0.6372099, -0.01025077], 4),
            ["0.02717", "-0.14635", "-0.63721", "-0.01025"]
        );
        assert_eq!(column(&[1.0, 2.5, 10.0], 4), ["1.0", "2.5", "10.0"]);
        assert_eq!(column(&[270.0, 426.0], 4), ["270", "426"]);
        assert_eq!(column(&[f64::NAN, 1.25], 3), ["NA", "1.25"]);
        assert_eq!(num(0.6357601, 3), "0.636");
        assert_eq!(num(15.111478, 4), "15.11");
    }

    #[test]
    fn pvalues_like_format_pval() {
        assert_eq!(pval(0.0044755, 3), "0.00448");
        assert_eq!(pval(4.0263951e-05, 3), "4.03e-05");
        assert_eq!(pval(1e-20, 3), "<2e-16");
        assert_eq!(pval(0.97393672, 3), "0.974");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["a", "bb"],
            &["x".into(), "long".into()],
            &[vec!["1".into(), "10".into()], vec!["2".into(), "3".into()]],
        );
        assert_eq!(t, "      a bb\nx     1  2\nlong 10  3\n");
    }
}

#[cfg(test)]
mod decimals_tests {
    use super::*;

    #[test]
    fn the_running_maximum_equals_the_maximum_of_each_value_s_decimals() {
        let mut x = 0x2545f4914f6cdd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let scale = 10f64.powi((x % 13) as i32 - 6);
            let v = ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.3) * scale;
            let w = (v * 1000.0).round() / 1000.0;
            for digits in [3, 4, 7] {
                for floor in 0..8 {
                    let want = decimals_needed(v, digits).map(|d| d.max(floor));
                    assert_eq!(decimals_at_least(v, digits, floor), want, "{v} {digits} {floor}");
                    let want = decimals_needed(w, digits).map(|d| d.max(floor));
                    assert_eq!(decimals_at_least(w, digits, floor), want, "{w} {digits} {floor}");
                }
            }
        }
    }
}
