//! A researcher's model formula (`Surv(time, status) ~ age + factor(sex)`), parsed by the
//! coordinator and every site while validating a study: parsing and expanding never panic or
//! overflow the stack, the length and nesting limits hold, and a formula that parses prints to
//! a text that parses to the same tree. Depth-heavy seeds are in `fuzz/seeds/formula/`; inputs of
//! the form `DEEP:<k>:<open>:<core>:<close>` are amplified (see `common/deep.rs`) and tried
//! alone and after `y ~ `.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_stats::formula::{Expr, Formula, FormulaErrorKind, Terms, MAX_FORMULA_DEPTH, MAX_FORMULA_LEN};

#[path = "common/deep.rs"]
mod deep;

/// Nesting of parentheses and calls in `e`, and whether it holds a number literal.
fn depth_and_numbers(e: &Expr) -> (usize, bool) {
    match e {
        Expr::Name { .. } => (0, false),
        Expr::Number { .. } => (0, true),
        Expr::Paren { inner, .. } => {
            let (d, n) = depth_and_numbers(inner);
            (d + 1, n)
        }
        Expr::Neg { operand, .. } => depth_and_numbers(operand),
        Expr::Binary { lhs, rhs, .. } => {
            let (a, n) = depth_and_numbers(lhs);
            let (b, m) = depth_and_numbers(rhs);
            (a.max(b), n || m)
        }
        Expr::Call { args, .. } => {
            let inner = args.iter().map(depth_and_numbers);
            inner.fold((1, false), |(d, n), (a, m)| (d.max(a + 1), n || m))
        }
    }
}

fn check(text: &str) {
    let f = match Formula::parse(text) {
        Ok(f) => f,
        Err(e) => {
            if text.len() > MAX_FORMULA_LEN {
                assert!(matches!(e.kind, FormulaErrorKind::TooLong(_)), "{e}");
            }
            assert!(e.to_string().len() < 2 * MAX_FORMULA_LEN + 400, "an error that quotes too much");
            return;
        }
    };
    assert!(text.len() <= MAX_FORMULA_LEN);
    let sides: Vec<&Expr> = f.lhs.iter().chain(std::iter::once(&f.rhs)).collect();
    let mut numbers = false;
    for e in &sides {
        let (d, n) = depth_and_numbers(e);
        assert!(d <= MAX_FORMULA_DEPTH, "a formula nested {d} deep parsed");
        numbers |= n;
    }
    let terms = Terms::from_formula(&f);
    let shown = f.to_string();
    if shown.len() > MAX_FORMULA_LEN {
        return;
    }
    let again = Formula::parse(&shown).unwrap_or_else(|e| panic!("{shown:?} does not parse: {e}"));
    assert_eq!(again.to_string(), shown);
    if !numbers {
        // Printing numbers rounds them to 15 digits; everything else round-trips exactly.
        assert_eq!(again.rhs.without_spans(), f.rhs.without_spans());
        assert_eq!(again.lhs.map(|e| e.without_spans()), f.lhs.as_ref().map(Expr::without_spans));
        let terms2 = Terms::from_formula(&Formula::parse(&shown).expect("parsed above"));
        assert_eq!(terms.is_ok(), terms2.is_ok());
        if let (Ok(a), Ok(b)) = (terms, terms2) {
            let labels = |t: &Terms| t.terms.iter().map(|t| t.label.clone()).collect::<Vec<_>>();
            assert_eq!(labels(&a), labels(&b));
            assert_eq!(a.intercept, b.intercept);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    if let Some(deep) = deep::expand(text) {
        check(&deep);
        check(&format!("y ~ {deep}"));
    }
});
