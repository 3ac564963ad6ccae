//! Formula parsing and term expansion against R's `terms.formula` results.

use seh_stats::formula::{Formula, FormulaErrorKind, Span, SpecialKind, Terms, VarKind};

fn terms(s: &str) -> Terms {
    let f = Formula::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    Terms::from_formula(&f).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn labels(s: &str) -> Vec<String> {
    terms(s).terms.into_iter().map(|t| t.label).collect()
}

#[test]
fn expansion_matches_r_term_labels() {
    // Each expected vector is R's attr(terms(f), "term.labels").
    assert_eq!(labels("y ~ a + b"), ["a", "b"]);
    assert_eq!(labels("y ~ a*b"), ["a", "b", "a:b"]);
    assert_eq!(labels("y ~ a:b + c"), ["c", "a:b"]);
    assert_eq!(labels("y ~ b:a + a"), ["a", "b:a"]);
    assert_eq!(labels("y ~ a + b:a"), ["a", "a:b"]);
    assert_eq!(labels("y ~ a*b*c"), ["a", "b", "c", "a:b", "a:c", "b:c", "a:b:c"]);
    assert_eq!(labels("y ~ a*b - a:b"), ["a", "b"]);
    assert_eq!(labels("y ~ a*b - a"), ["b", "a:b"]);
    assert_eq!(labels("y ~ (a + b):c"), ["a:c", "b:c"]);
    assert_eq!(labels("y ~ (a + b)*c"), ["a", "b", "c", "a:c", "b:c"]);
    assert_eq!(labels("y ~ a + a + a:a"), ["a"]);
    assert_eq!(labels("y ~ factor(x)*age"), ["factor(x)", "age", "factor(x):age"]);
    assert_eq!(labels("y ~ log(dose) + tt(age)"), ["log(dose)", "tt(age)"]);
    assert_eq!(labels("y ~ `my var` + b"), ["`my var`", "b"]);
}

#[test]
fn intercept_rules() {
    assert!(terms("y ~ a").intercept);
    assert!(!terms("y ~ a - 1").intercept);
    assert!(!terms("y ~ -1 + a").intercept);
    assert!(!terms("y ~ a + 0").intercept);
    assert!(!terms("y ~ 0 + a").intercept);
    assert!(terms("y ~ 0 + a + 1").intercept);
    assert!(terms("y ~ a - 0").intercept);
    assert!(terms("y ~ 1").terms.is_empty());
}

#[test]
fn specials_are_taken_out() {
    let t = terms("Surv(time, status) ~ age + strata(inst) + cluster(id) + offset(log(w)) + strata(a, b)");
    assert_eq!(t.terms.len(), 1);
    let kinds: Vec<SpecialKind> = t.specials.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [SpecialKind::Strata, SpecialKind::Cluster, SpecialKind::Offset, SpecialKind::Strata]);
    assert_eq!(t.specials[2].vars[0].kind, VarKind::Log("w".into()));
    assert_eq!(t.specials[3].vars.len(), 2);
    assert_eq!(t.specials[0].span, Span::new(27, 39));
}

#[test]
fn variable_kinds() {
    let t = terms("y ~ a + log(b) + factor(c) + tt(d)");
    let kinds: Vec<VarKind> = t.variables.iter().map(|v| v.kind.clone()).collect();
    assert_eq!(
        kinds,
        [VarKind::Column("a".into()), VarKind::Log("b".into()), VarKind::Factor("c".into()), VarKind::Tt("d".into())]
    );
}

fn expand_err(s: &str) -> (FormulaErrorKind, Span, String) {
    let f = Formula::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    let e = Terms::from_formula(&f).expect_err(s);
    (e.kind.clone(), e.span, e.to_string())
}

#[test]
fn errors_point_at_the_offending_part() {
    let (k, span, msg) = expand_err("Surv(time, status) ~ Sqrt(age)");
    assert!(matches!(k, FormulaErrorKind::UnknownFunction { ref name, .. } if name == "Sqrt"));
    assert_eq!(span, Span::new(21, 25));
    assert!(msg.starts_with("formula: unknown function `Sqrt`"), "{msg}");
    assert!(msg.contains("at 22..26"), "{msg}");
    assert!(msg.ends_with("\n  Surv(time, status) ~ Sqrt(age)\n                       ^^^^"), "{msg}");

    let (k, span, _) = expand_err("y ~ age:strata(inst)");
    assert_eq!(k, FormulaErrorKind::SpecialInInteraction("strata".into()));
    assert_eq!(span, Span::new(8, 20));
    let (k, _, _) = expand_err("y ~ age - strata(inst)");
    assert_eq!(k, FormulaErrorKind::SpecialInInteraction("strata".into()));
    let (k, span, _) = expand_err("y ~ a + 2");
    assert_eq!(k, FormulaErrorKind::BadNumberTerm);
    assert_eq!(span, Span::new(8, 9));
    let (k, _, _) = expand_err("y ~ log(a, b)");
    assert!(matches!(k, FormulaErrorKind::BadArguments(_)));
    let (k, _, _) = expand_err("y ~ factor(a + b)");
    assert!(matches!(k, FormulaErrorKind::BadArguments(_)));
    let (k, _, _) = expand_err("y ~ cluster(a, b)");
    assert!(matches!(k, FormulaErrorKind::BadArguments(_)));
    let (k, _, _) = expand_err("y ~ strata()");
    assert!(matches!(k, FormulaErrorKind::BadArguments(_)));
    let (k, span, _) = expand_err("y ~ a + Surv(t, e)");
    assert!(matches!(k, FormulaErrorKind::NotAllowed(_)));
    assert_eq!(span, Span::new(8, 12));
}

#[test]
fn parse_errors_point_at_the_offending_token() {
    let e = Formula::parse("Surv(time, status) ~ age +").unwrap_err();
    assert_eq!(e.span, Span::new(26, 26));
    assert!(e.to_string().contains("expected a column name"), "{e}");
    let e = Formula::parse("Surv(time, status) ~ age + + sex").unwrap_err();
    assert_eq!(e.span, Span::new(27, 28));
    let e = Formula::parse("Surv(time status) ~ age").unwrap_err();
    assert_eq!(e.span, Span::new(10, 16));
    let e = Formula::parse("y ~ a | b").unwrap_err();
    assert_eq!(e.kind, FormulaErrorKind::UnsupportedOperator("|".into()));
}

#[test]
fn display_is_r_deparse() {
    let f = Formula::parse("Surv( start,stop ,event )~age+ factor(sex)*log(dose) -1+strata(inst,  site)").unwrap();
    assert_eq!(f.to_string(), "Surv(start, stop, event) ~ age + factor(sex) * log(dose) - 1 + strata(inst, site)");
}
