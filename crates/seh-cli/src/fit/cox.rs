//! `seh fit cox`: R's `coxph` + `summary.coxph`.

use seh_stats::cox::tt::{fit_tt, TtTerm};
use seh_stats::cox::{fit, CoxError, CoxFit, CoxOptions, Ties};
use seh_stats::ttexpr::TtExpr;

use super::{Ctx, Format};
use crate::output::{column, missing_line, num, pval, table};

/// The 1-based row (of the complete rows) an error refers to, if any.
fn error_row(e: &CoxError) -> Option<usize> {
    match e {
        CoxError::NotFinite { row, .. }
        | CoxError::NegativeTime { row, .. }
        | CoxError::StartNotBeforeStop { row }
        | CoxError::ZeroLengthAfterTimefix { row }
        | CoxError::EventNotBinary { row }
        | CoxError::NonPositiveWeight { row }
        | CoxError::BadStratum { row }
        | CoxError::EventNotOnGrid { row } => Some(*row),
        _ => None,
    }
}

/// Fits and renders.
pub(super) fn run(ctx: &Ctx<'_>, ties: Ties, tt: Option<&TtExpr>) -> anyhow::Result<String> {
    let data = ctx.frame.cox_data().ok_or_else(|| anyhow::anyhow!("internal: a Cox frame without Surv()"))?;
    let opts = CoxOptions { ties, ..CoxOptions::default() };
    let result = match tt {
        Some(expr) if !ctx.frame.tt_columns.is_empty() => {
            let f = |x: f64, t: f64| expr.eval(x, t);
            let terms: Vec<TtTerm<'_>> = ctx.frame.tt_columns.iter().map(|&column| TtTerm { column, f: &f }).collect();
            fit_tt(&data, &terms, &opts)
        }
        _ => fit(&data, &opts),
    };
    let fit = result.map_err(|e| ctx.row_error(error_row(&e), &e))?;
    match ctx.format {
        Format::Json => ctx.json(&fit, vec![("tt", tt.map_or(serde_json::Value::Null, |t| t.as_str().into()))]),
        Format::Text => Ok(summary_text(&fit, ctx.formula.to_string().as_str(), ctx.name, ctx.frame.n_dropped_missing)),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn quote(ties: Ties) -> &'static str {
    match ties {
        Ties::Efron => "efron",
        Ties::Breslow => "breslow",
        Ties::Exact => "exact",
    }
}

/// R's `print(summary(coxph))`, without significance stars.
pub(crate) fn summary_text(fit: &CoxFit, formula: &str, data_name: &str, dropped: usize) -> String {
    let mut out = String::new();
    out.push_str(&format!("Call:\ncoxph(formula = {formula}, data = {data_name}, ties = \"{}\")\n\n", quote(fit.ties)));
    if fit.terms.is_empty() {
        // R prints a null model (`~ 1`, or strata only) this way.
        out.push_str(&format!("Null model\n  log likelihood= {} \n  n= {} \n", num(fit.loglik, 7), fit.n));
        if let Some(l) = missing_line(dropped) {
            out.push_str(&l);
            out.push('\n');
        }
        return out;
    }
    out.push_str(&format!("  n= {}, number of events= {} \n", fit.n, fit.nevent));
    if let Some(l) = missing_line(dropped) {
        out.push_str(&l);
        out.push('\n');
    }
    out.push('\n');
    let names = fit.terms.clone();
    let get = |m: &seh_stats::cox::fit::TermMap| -> Vec<f64> {
        m.values().into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()
    };
    let coef = get(&fit.coef);
    let se = get(&fit.se);
    let hr = get(&fit.hazard_ratio);
    let z: Vec<f64> = get(&fit.z).iter().map(|v| (v * 1000.0).round() / 1000.0).collect();
    let p: Vec<String> = get(&fit.p).iter().map(|&v| pval(v, 3)).collect();
    if !names.is_empty() {
        let mut header = vec!["coef", "exp(coef)", "se(coef)"];
        let mut cols = vec![column(&coef, 4), column(&hr, 4), column(&se, 4)];
        if let Some(r) = &fit.robust_se {
            header.push("robust se");
            cols.push(column(&get(r), 4));
        }
        header.extend(["z", "Pr(>|z|)"]);
        cols.push(column(&z, 4));
        cols.push(p);
        out.push_str(&table(&header, &names, &cols));
        out.push('\n');
        let inv: Vec<f64> = hr.iter().map(|h| 1.0 / h).collect();
        let cols =
            vec![column(&hr, 4), column(&inv, 4), column(&get(&fit.hr_lower95), 4), column(&get(&fit.hr_upper95), 4)];
        out.push_str(&table(&["exp(coef)", "exp(-coef)", "lower .95", "upper .95"], &names, &cols));
        out.push('\n');
    }
    if let Some(c) = &fit.concordance {
        out.push_str(&format!("Concordance= {}  (se = {} )\n", num(round3(c.concordance), 6), num(round3(c.std), 6)));
    }
    let test = |label: &str, t: &seh_stats::cox::fit::ChisqTest| {
        format!("{label}= {}  on {} df,   p={}\n", num((t.statistic * 100.0).round() / 100.0, 6), t.df, pval(t.p, 3))
    };
    out.push_str(&test("Likelihood ratio test", &fit.lrt));
    out.push_str(&test("Wald test            ", &fit.wald_test));
    out.push_str(&test("Score (logrank) test ", &fit.score_test));
    if let Some(r) = &fit.robust_score_test {
        out.push_str(&test("Robust               ", r));
        out.push_str("\n  (Note: the likelihood ratio and score tests assume independence of\n     observations within a cluster, the Wald and robust score tests do not).\n");
    }
    out.push_str(&format!(
        "\nLog partial likelihood: null {}, model {}\nIterations: {} ({:?})\n",
        num(fit.loglik_null, 8),
        num(fit.loglik, 8),
        fit.iterations,
        fit.convergence
    ));
    for w in &fit.warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    out
}
