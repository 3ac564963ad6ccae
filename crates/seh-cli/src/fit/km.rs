//! `seh fit km`: R's `survfit` (print and summary) + `survdiff`.

use seh_stats::km::{km_fit, ConfType, KmFit, KmOptions, SurvInputError};
use seh_stats::logrank::{logrank, Logrank};

use super::{Ctx, Format};
use crate::output::{column, missing_line, num, pval, table};

fn error_row(e: &SurvInputError) -> Option<usize> {
    match e {
        SurvInputError::NotFinite { row, .. }
        | SurvInputError::NegativeTime { row, .. }
        | SurvInputError::BadStatus { row }
        | SurvInputError::BadInterval { row }
        | SurvInputError::BadWeight { row } => Some(*row),
        _ => None,
    }
}

fn conf_name(c: ConfType) -> &'static str {
    match c {
        ConfType::Log => "log",
        ConfType::LogLog => "log-log",
        ConfType::Plain => "plain",
        ConfType::None => "none",
    }
}

/// Fits and renders.
pub(super) fn run(ctx: &Ctx<'_>, conf_type: ConfType) -> anyhow::Result<String> {
    let frame = ctx.frame;
    let s = frame.surv().ok_or_else(|| anyhow::anyhow!("internal: a Kaplan-Meier frame without Surv()"))?;
    let all = vec!["all".to_string()];
    let labels = frame.strata.as_ref().map_or(&all, |g| &g.labels);
    let codes = frame.strata.as_ref().map(|g| g.codes.as_slice());
    let opts = KmOptions { conf_type, conf_int: 0.95 };
    let fit = km_fit(&s.stop, s.start.as_deref(), &s.event, codes, None, Some(labels), &opts)
        .map_err(|e| ctx.row_error(error_row(&e), &e))?;
    // The log-rank test compares the groups of right-censored data (survdiff has no (start, stop] form).
    let test = match (codes, &s.start) {
        (Some(g), None) if labels.len() > 1 => {
            Some(logrank(&s.stop, &s.event, g, None, 0.0).map_err(|e| ctx.row_error(error_row(&e), &e))?)
        }
        _ => None,
    };
    match ctx.format {
        Format::Json => {
            let lr = match &test {
                Some(t) => serde_json::to_value(t)?,
                None => serde_json::Value::Null,
            };
            ctx.json(&fit, vec![("logrank", lr)])
        }
        Format::Text => Ok(text(&fit, test.as_ref(), labels, ctx)),
    }
}

fn text(fit: &KmFit, test: Option<&Logrank>, labels: &[String], ctx: &Ctx<'_>) -> String {
    let formula = ctx.formula.to_string();
    let mut out = format!(
        "Call: survfit(formula = {formula}, data = {}, conf.type = \"{}\")\n\n",
        ctx.name,
        conf_name(fit.conf_type)
    );
    if let Some(l) = missing_line(ctx.frame.n_dropped_missing) {
        out.push_str(l.trim_start());
        out.push_str("\n\n");
    }
    let names: Vec<String> = fit.strata.iter().map(|c| c.stratum.clone()).collect();
    let opt = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let cols = vec![
        fit.strata.iter().map(|c| c.n.to_string()).collect(),
        column(&fit.strata.iter().map(|c| c.events).collect::<Vec<_>>(), 7),
        column(&fit.strata.iter().map(|c| opt(c.median)).collect::<Vec<_>>(), 7),
        column(&fit.strata.iter().map(|c| opt(c.median_lower95)).collect::<Vec<_>>(), 7),
        column(&fit.strata.iter().map(|c| opt(c.median_upper95)).collect::<Vec<_>>(), 7),
    ];
    out.push_str(&table(&["n", "events", "median", "0.95LCL", "0.95UCL"], &names, &cols));
    for c in &fit.strata {
        let idx: Vec<usize> = (0..c.time.len()).filter(|&i| c.n_event[i] > 0.0).collect();
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        out.push_str(&format!("\n{:>w$} \n", c.stratum, w = 16 + c.stratum.len() / 2));
        let rows: Vec<String> = vec![String::new(); idx.len()];
        let cols = vec![
            column(&pick(&c.time), 7),
            column(&pick(&c.n_risk), 7),
            column(&pick(&c.n_event), 7),
            column(&pick(&c.surv), 3),
            column(&pick(&c.se_surv), 3),
            column(&pick(&c.lower), 3),
            column(&pick(&c.upper), 3),
        ];
        let header = ["time", "n.risk", "n.event", "survival", "std.err", "lower 95% CI", "upper 95% CI"];
        out.push_str(&table(&header, &rows, &cols));
    }
    if let Some(t) = test {
        out.push_str(&format!("\nCall:\nsurvdiff(formula = {formula}, data = {})\n\n", ctx.name));
        let names: Vec<String> =
            t.groups.iter().map(|&g| labels.get(g as usize).cloned().unwrap_or_default()).collect();
        let oe2e: Vec<f64> = t.observed.iter().zip(&t.expected).map(|(o, e)| (o - e).powi(2) / e).collect();
        let oe2v: Vec<f64> =
            (0..t.groups.len()).map(|i| (t.observed[i] - t.expected[i]).powi(2) / t.var[i][i]).collect();
        let cols = vec![
            t.n.iter().map(u64::to_string).collect(),
            column(&t.observed, 7),
            column(&t.expected, 3),
            column(&oe2e, 3),
            column(&oe2v, 3),
        ];
        out.push_str(&table(&["N", "Observed", "Expected", "(O-E)^2/E", "(O-E)^2/V"], &names, &cols));
        out.push_str(&format!("\n Chisq= {}  on {} degrees of freedom, p= {} \n", num(t.chisq, 3), t.df, pval(t.p, 3)));
    }
    out
}
