//! [`ModelFrame::build`](super::ModelFrame::build): resolve columns, `na.omit`,
//! validate the response, evaluate variables, build design, strata, cluster, offset.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::design::{build_design, Design, VarData};
use super::{Groups, ModelError, ModelFrame, ModelKind, Response, SurvResponse};
use crate::formula::{r_number, Expr, Formula, FormulaErrorKind, Span, SpecialKind, Terms, VarKind, Variable};
use crate::DataFrame;

/// The response as named columns.
enum RespSpec {
    Surv { start: Option<(String, Span)>, stop: (String, Span), event: Option<(String, Span)> },
    Numeric(String, Span),
}

fn not_allowed(formula: &Formula, msg: String, span: Span) -> ModelError {
    ModelError::Formula(formula.error(FormulaErrorKind::NotAllowed(msg), span))
}

fn response_spec(formula: &Formula, kind: ModelKind) -> Result<RespSpec, ModelError> {
    let Some(lhs) = &formula.lhs else {
        let what = if kind == ModelKind::Glm { "a response column" } else { "`Surv(time, event)`" };
        return Err(not_allowed(
            formula,
            format!("the formula needs {what} on the left of `~`"),
            super::whole(formula),
        ));
    };
    let name_of = |e: &Expr| -> Result<(String, Span), ModelError> {
        match e {
            Expr::Name { name, span } => Ok((name.clone(), *span)),
            other => Err(ModelError::Formula(
                formula.error(FormulaErrorKind::BadArguments("`Surv()` takes column names".into()), other.span()),
            )),
        }
    };
    match (kind, lhs) {
        (ModelKind::Cox | ModelKind::KaplanMeier, Expr::Call { func, args, span, .. }) if func == "Surv" => {
            match args.as_slice() {
                [t] => Ok(RespSpec::Surv { start: None, stop: name_of(t)?, event: None }),
                [t, e] => Ok(RespSpec::Surv { start: None, stop: name_of(t)?, event: Some(name_of(e)?) }),
                [s, t, e] => {
                    Ok(RespSpec::Surv { start: Some(name_of(s)?), stop: name_of(t)?, event: Some(name_of(e)?) })
                }
                _ => Err(ModelError::Formula(formula.error(
                    FormulaErrorKind::BadArguments(
                        "`Surv()` takes (time), (time, event) or (start, stop, event)".into(),
                    ),
                    *span,
                ))),
            }
        }
        (ModelKind::Cox | ModelKind::KaplanMeier, Expr::Call { func, func_span, .. }) => {
            let kind = FormulaErrorKind::UnknownFunction { name: func.clone(), supported: "Surv".into() };
            Err(ModelError::Formula(formula.error(kind, *func_span)))
        }
        (ModelKind::Cox | ModelKind::KaplanMeier, other) => Err(not_allowed(
            formula,
            "a survival model needs `Surv(time, event)` or `Surv(start, stop, event)` on the left".into(),
            other.span(),
        )),
        (ModelKind::Glm, Expr::Name { name, span }) => Ok(RespSpec::Numeric(name.clone(), *span)),
        (ModelKind::Glm, other) => Err(not_allowed(
            formula,
            "a GLM needs a column name on the left (use `seh fit cox` or `seh fit km` for `Surv()`)".into(),
            other.span(),
        )),
    }
}

/// Rejects formula parts the model kind does not support.
fn check_allowed(formula: &Formula, terms: &Terms, kind: ModelKind) -> Result<(), ModelError> {
    let model = match kind {
        ModelKind::Cox => "a Cox model",
        ModelKind::KaplanMeier => "a Kaplan-Meier fit",
        ModelKind::Glm => "a GLM",
    };
    for s in &terms.specials {
        let ok = match s.kind {
            SpecialKind::Strata => kind != ModelKind::Glm,
            SpecialKind::Cluster => kind == ModelKind::Cox,
            SpecialKind::Offset => kind != ModelKind::KaplanMeier,
        };
        if !ok {
            return Err(not_allowed(formula, format!("`{}()` is not supported in {model}", s.kind.name()), s.span));
        }
    }
    if terms.specials_of(SpecialKind::Cluster).count() > 1 {
        let s = terms.specials_of(SpecialKind::Cluster).nth(1).map_or(super::whole(formula), |s| s.span);
        return Err(not_allowed(formula, "only one `cluster()` term is allowed".into(), s));
    }
    for term in &terms.terms {
        for &v in &term.vars {
            let var = &terms.variables[v];
            match (&var.kind, kind) {
                (VarKind::Tt(_), ModelKind::Cox) if term.vars.len() > 1 => {
                    return Err(not_allowed(formula, "`tt()` cannot be part of an interaction".into(), term.span))
                }
                (VarKind::Tt(_), ModelKind::KaplanMeier | ModelKind::Glm) => {
                    return Err(not_allowed(formula, format!("`tt()` is only for Cox models, not {model}"), var.span))
                }
                (VarKind::Log(_), ModelKind::KaplanMeier) => {
                    return Err(not_allowed(
                        formula,
                        "Kaplan-Meier groups must be columns or factor()".into(),
                        var.span,
                    ))
                }
                _ => {}
            }
        }
        if kind == ModelKind::KaplanMeier && term.vars.len() > 1 {
            let msg = "Kaplan-Meier groups are given with `+` (`~ a + b`), not interactions".into();
            return Err(not_allowed(formula, msg, term.span));
        }
    }
    Ok(())
}

/// Looks up every used column once, with the span of its first use.
fn resolve<'a>(
    data: &'a DataFrame,
    formula: &Formula,
    used: &[(String, Span)],
) -> Result<BTreeMap<String, &'a [f64]>, ModelError> {
    let mut out = BTreeMap::new();
    for (name, span) in used {
        if out.contains_key(name) {
            continue;
        }
        let col = data
            .column(name)
            .map_err(|e| ModelError::Formula(formula.error(FormulaErrorKind::UnknownColumn(e.to_string()), *span)))?;
        out.insert(name.clone(), col);
    }
    Ok(out)
}

/// Levels (sorted distinct values) and per-row level codes.
fn levels_of(values: &[f64]) -> (Vec<f64>, Vec<u32>) {
    let mut lv: Vec<f64> = values.to_vec();
    lv.sort_by(f64::total_cmp);
    lv.dedup();
    let codes = values.iter().map(|v| lv.partition_point(|l| l < v) as u32).collect();
    (lv, codes)
}

/// R's `strata()` of several variables: labels `a=1, b=2`, first variable slowest,
/// only combinations that occur.
fn groups(vars: &[(String, Vec<f64>)], n: usize) -> Groups {
    let per: Vec<(Vec<f64>, Vec<u32>)> = vars.iter().map(|(_, v)| levels_of(v)).collect();
    let tuples: Vec<Vec<u32>> = (0..n).map(|i| per.iter().map(|(_, c)| c[i]).collect()).collect();
    let mut distinct = tuples.clone();
    distinct.sort();
    distinct.dedup();
    let labels = distinct
        .iter()
        .map(|t| {
            t.iter()
                .enumerate()
                .map(|(k, &l)| format!("{}={}", vars[k].0, r_number(per[k].0[l as usize])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    let codes = tuples.iter().map(|t| distinct.binary_search(t).unwrap_or(0) as u32).collect();
    Groups { codes, labels }
}

/// Evaluates a numeric variable (column, log, tt) on the kept rows.
/// Borrows the data frame's column when every row is kept and no function applies.
fn numeric<'a>(
    var: &Variable,
    cols: &BTreeMap<String, &'a [f64]>,
    kept: &Kept<'_>,
) -> Result<Cow<'a, [f64]>, ModelError> {
    let name = var.kind.column();
    let col = cols.get(name).copied().unwrap_or(&[]);
    match var.kind {
        VarKind::Log(_) => {
            let mut out = Vec::with_capacity(kept.rows.len());
            for &r in kept.rows {
                let x = col.get(r).copied().unwrap_or(f64::NAN);
                if x <= 0.0 {
                    return Err(ModelError::NonPositiveLog {
                        column: name.to_string(),
                        line: kept.data.source_line(r),
                    });
                }
                out.push(x.ln());
            }
            Ok(Cow::Owned(out))
        }
        _ if kept.all => Ok(Cow::Borrowed(col)),
        _ => Ok(Cow::Owned(kept.take(col))),
    }
}

/// The rows kept after `na.omit`, with a fast path when none were dropped.
struct Kept<'a> {
    data: &'a DataFrame,
    rows: &'a [usize],
    all: bool,
}

impl Kept<'_> {
    /// `col` on the kept rows (a plain copy when every row is kept).
    fn take(&self, col: &[f64]) -> Vec<f64> {
        if self.all {
            col.to_vec()
        } else {
            self.rows.iter().map(|&r| col.get(r).copied().unwrap_or(f64::NAN)).collect()
        }
    }
}

pub(super) fn build(data: &DataFrame, formula: &Formula, kind: ModelKind) -> Result<ModelFrame, ModelError> {
    let terms = Terms::from_formula(formula)?;
    let resp = response_spec(formula, kind)?;
    check_allowed(formula, &terms, kind)?;

    // Every column the formula reads, response first (for R-like error order).
    let mut used: Vec<(String, Span)> = Vec::new();
    match &resp {
        RespSpec::Surv { start, stop, event } => {
            used.extend(start.iter().cloned());
            used.push(stop.clone());
            used.extend(event.iter().cloned());
        }
        RespSpec::Numeric(n, s) => used.push((n.clone(), *s)),
    }
    used.extend(terms.variables.iter().map(|v| (v.kind.column().to_string(), v.span)));
    for s in &terms.specials {
        used.extend(s.vars.iter().map(|v| (v.kind.column().to_string(), v.span)));
    }
    let cols = resolve(data, formula, &used)?;

    // na.omit over all used columns (column by column: sequential memory).
    let n_all = data.nrows();
    let mut missing = vec![false; n_all];
    for c in cols.values() {
        for (m, v) in missing.iter_mut().zip(c.iter()) {
            *m |= v.is_nan();
        }
    }
    let rows: Vec<usize> = (0..n_all).filter(|&i| !missing[i]).collect();
    drop(missing);
    let n_dropped_missing = n_all - rows.len();
    if rows.is_empty() {
        return Err(ModelError::NoCompleteRows { dropped: n_dropped_missing });
    }
    let n = rows.len();
    let kept = Kept { data, rows: &rows, all: n_dropped_missing == 0 };
    let take = |name: &str| -> Vec<f64> { cols.get(name).map_or_else(Vec::new, |c| kept.take(c)) };

    let response = match &resp {
        RespSpec::Numeric(name, _) => Response::Numeric { name: name.clone(), y: take(name) },
        RespSpec::Surv { start, stop, event } => Response::Surv(surv_response(&cols, &kept, start, stop, event)?),
    };

    if let (ModelKind::Cox, Response::Surv(s)) = (kind, &response) {
        if !s.event.contains(&1.0) {
            let column = s.columns.last().cloned().unwrap_or_default();
            return Err(ModelError::NoEvents { column, n });
        }
    }

    // Variables on the kept rows.
    let mut vdata = Vec::with_capacity(terms.variables.len());
    for var in &terms.variables {
        let d = match &var.kind {
            VarKind::Factor(c) => {
                let (lv, codes) = levels_of(&take(c));
                if lv.len() < 2 && kind != ModelKind::KaplanMeier {
                    return Err(ModelError::SingleLevelFactor { column: c.clone() });
                }
                VarData::Factor { codes, levels: lv.into_iter().map(r_number).collect() }
            }
            _ => VarData::Numeric(numeric(var, &cols, &kept)?),
        };
        vdata.push(d);
    }

    let mut strata_vars: Vec<(String, Vec<f64>)> = Vec::new();
    let design = match kind {
        ModelKind::KaplanMeier => {
            for term in &terms.terms {
                for &v in &term.vars {
                    let var = &terms.variables[v];
                    strata_vars.push((var.label.clone(), take(var.kind.column())));
                }
            }
            Design::from_columns(n, Vec::new(), false)
        }
        ModelKind::Cox => build_design(&terms, &vdata, n, true, false),
        ModelKind::Glm => build_design(&terms, &vdata, n, terms.intercept, terms.intercept),
    };
    for s in terms.specials_of(SpecialKind::Strata) {
        strata_vars.extend(s.vars.iter().map(|v| (v.label.clone(), take(v.kind.column()))));
    }
    let strata = (!strata_vars.is_empty()).then(|| groups(&strata_vars, n));

    let cluster = terms.specials_of(SpecialKind::Cluster).next().and_then(|s| s.vars.first()).map(|v| {
        let (_, codes) = levels_of(&take(v.kind.column()));
        codes.into_iter().map(u64::from).collect::<Vec<u64>>()
    });

    let mut offset: Option<Vec<f64>> = None;
    for s in terms.specials_of(SpecialKind::Offset) {
        for v in &s.vars {
            let vals = numeric(v, &cols, &kept)?.into_owned();
            offset = Some(match offset {
                None => vals,
                Some(o) => o.iter().zip(&vals).map(|(a, b)| a + b).collect(),
            });
        }
    }

    let first_term = usize::from(design.intercept);
    let tt_columns: Vec<usize> = terms
        .terms
        .iter()
        .enumerate()
        .filter(|(_, t)| t.vars.iter().any(|&v| matches!(terms.variables[v].kind, VarKind::Tt(_))))
        .filter_map(|(k, _)| design.terms.get(k + first_term).map(|d| d.columns.clone()))
        .flatten()
        .collect();

    check_constant(&design, &tt_columns, kind, n)?;

    Ok(ModelFrame {
        kind,
        response,
        design,
        strata,
        cluster,
        tt_columns,
        offset,
        n_dropped_missing,
        rows,
        source_lines: data.source_lines().clone(),
    })
}

fn surv_response(
    cols: &BTreeMap<String, &[f64]>,
    kept: &Kept<'_>,
    start: &Option<(String, Span)>,
    stop: &(String, Span),
    event: &Option<(String, Span)>,
) -> Result<SurvResponse, ModelError> {
    let rows = kept.rows;
    let line = |r: usize| kept.data.source_line(r);
    let get = |name: &str| cols.get(name).copied().unwrap_or(&[]);
    let stop_col = get(&stop.0);
    let mut columns = Vec::new();
    columns.extend(start.iter().map(|s| s.0.clone()));
    columns.push(stop.0.clone());
    columns.extend(event.iter().map(|e| e.0.clone()));
    let event_vals: Vec<f64> = match event {
        None => vec![1.0; rows.len()],
        Some((name, _)) => {
            let col = get(name);
            // R's Surv: a status whose largest non-missing value is 2 is coded 1/2 → 0/1.
            let max = col.iter().copied().filter(|v| !v.is_nan()).fold(f64::NEG_INFINITY, f64::max);
            let shift = if max == 2.0 { 1.0 } else { 0.0 };
            let mut out = Vec::with_capacity(rows.len());
            for &r in rows {
                let e = col[r] - shift;
                if e != 0.0 && e != 1.0 {
                    return Err(ModelError::InvalidEvent { column: name.clone(), line: line(r) });
                }
                out.push(e);
            }
            out
        }
    };
    let stop_vals: Vec<f64> = kept.take(stop_col);
    let start_vals = match start {
        None => {
            if let Some((k, _)) = stop_vals.iter().enumerate().find(|(_, t)| **t < 0.0) {
                return Err(ModelError::NegativeTime { column: stop.0.clone(), line: line(rows[k]) });
            }
            None
        }
        Some((sname, _)) => {
            let sc = get(sname);
            let sv: Vec<f64> = kept.take(sc);
            if let Some(k) = (0..rows.len()).find(|&k| sv[k] >= stop_vals[k]) {
                return Err(ModelError::StartNotBeforeStop {
                    start: sname.clone(),
                    stop: stop.0.clone(),
                    line: line(rows[k]),
                });
            }
            Some(sv)
        }
    };
    Ok(SurvResponse { start: start_vals, stop: stop_vals, event: event_vals, columns })
}

/// A design column with a single value cannot be estimated (R would report `NA`).
fn check_constant(design: &Design, tt_columns: &[usize], kind: ModelKind, n: usize) -> Result<(), ModelError> {
    if kind == ModelKind::KaplanMeier || (kind == ModelKind::Glm && !design.intercept) {
        return Ok(());
    }
    let first = usize::from(design.intercept);
    for j in first..design.ncols() {
        if tt_columns.contains(&j) {
            continue;
        }
        let v0 = design.values[j];
        let p = design.ncols();
        if (1..n).all(|i| design.values[i * p + j] == v0) {
            return Err(ModelError::ConstantCovariate { term: design.names[j].clone(), n });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::formula::Formula;
    use crate::model::{ModelError, ModelFrame, ModelKind};
    use crate::DataFrame;

    /// Errors name the file line even after blank lines and dropped rows.
    #[test]
    fn errors_and_lines_count_blank_lines() {
        let csv = b"time,status,x\n1,1,0.5\n\n2,0,\n3,1,1.5\n\n\n4,7,2\n";
        let df = DataFrame::from_csv_bytes(csv, "t.csv").unwrap();
        let f = Formula::parse("Surv(time, status) ~ x").unwrap();
        let e = ModelFrame::build(&df, &f, ModelKind::Cox).unwrap_err();
        assert_eq!(e, ModelError::InvalidEvent { column: "status".into(), line: 8 });
        let df = DataFrame::from_csv_bytes(&csv[..csv.len() - 6], "t.csv").unwrap();
        let f = Formula::parse("Surv(time, status) ~ log(x)").unwrap();
        let frame = ModelFrame::build(&df, &f, ModelKind::Cox).unwrap();
        assert_eq!(frame.n_dropped_missing, 1);
        assert_eq!((frame.line_of(0), frame.line_of(1), frame.line_of(2)), (Some(2), Some(5), None));
        let df = DataFrame::from_csv_bytes(b"time,status,x\n\n1,1,2\n2,1,0\n", "t.csv").unwrap();
        let e = ModelFrame::build(&df, &f, ModelKind::Cox).unwrap_err();
        assert_eq!(e, ModelError::NonPositiveLog { column: "x".into(), line: 4 });
    }
}
