//! Hostile formulas and `tt` expressions: deep nesting, oversized text and exploding
//! expansions are refused with an error that names the limit — never a stack overflow,
//! an abort or an out-of-memory. The deep inputs run on a thread with a small stack, so a
//! parser that recursed once per level would overflow here (on the old code these tests
//! aborted the test process).

use seh_stats::formula::{
    Formula, FormulaErrorKind, Terms, MAX_FORMULA_DEPTH, MAX_FORMULA_LEN, MAX_FORMULA_OPERATORS, MAX_FORMULA_TERMS,
};
use seh_stats::ttexpr::{TtExpr, MAX_TT_DEPTH, MAX_TT_LEN};

/// Runs `f` on a thread with a 256 KiB stack (a tokio worker has 2 MiB): deep recursion
/// shows up as a crash of the test process instead of passing by luck.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap()
}

fn nested_parens(levels: usize) -> String {
    format!("Surv(time, status) ~ {}x{}", "(".repeat(levels), ")".repeat(levels))
}

#[test]
fn the_reported_crash_1400_nested_parentheses_is_refused() {
    // The 2.8 KB formula that crashed the coordinator.
    let text = nested_parens(1400);
    assert!(text.len() > 2800 && text.len() <= MAX_FORMULA_LEN);
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooDeep);
    assert!(e.to_string().contains("formula nests deeper than 64 levels"), "{e}");
    // The caret points at the first `(` past the limit.
    let at = "Surv(time, status) ~ ".len() + MAX_FORMULA_DEPTH;
    assert_eq!(e.span.start, at);
}

#[test]
fn nesting_limit_is_exact_and_counts_calls_too() {
    let ok = nested_parens(MAX_FORMULA_DEPTH - 1); // plus Surv( on the left is fine: levels are per side
    Formula::parse(&ok).unwrap();
    let ok = nested_parens(MAX_FORMULA_DEPTH);
    let f = Formula::parse(&ok).unwrap();
    assert_eq!(Terms::from_formula(&f).unwrap().terms[0].label, "x");
    assert_eq!(Formula::parse(&nested_parens(MAX_FORMULA_DEPTH + 1)).unwrap_err().kind, FormulaErrorKind::TooDeep);
    // Function calls nest the same way: log(log(...)) and f((((...)))) mixes.
    let calls = |n: usize| format!("y ~ {}x{}", "log(".repeat(n), ")".repeat(n));
    Formula::parse(&calls(MAX_FORMULA_DEPTH)).unwrap();
    let text = calls(800);
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooDeep);
    let mixed = |n: usize| format!("y ~ {}x{}", "factor((".repeat(n), "))".repeat(n));
    let text = mixed(300);
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooDeep);
    // On the left of `~` too.
    let text = format!("{}y{} ~ x", "(".repeat(2000), ")".repeat(2000));
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooDeep);
    // Unbalanced: opening only.
    let text = format!("y ~ {}", "(".repeat(4000));
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooDeep);
}

#[test]
fn oversized_formula_is_refused_before_parsing() {
    // 10 MB of nesting: refused by length, with a short message.
    let text = nested_parens(5_000_000);
    let e = small_stack(move || Formula::parse(&text).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooLong(10_000_000 + "Surv(time, status) ~ x".len()));
    let s = e.to_string();
    assert!(s.contains("formula longer than 4096 characters"), "{s}");
    assert!(s.len() < 300, "the error quotes the whole input: {} bytes", s.len());
    // Exactly at the limit is fine; one byte more is not.
    let at_limit = format!("y ~ x{}", " ".repeat(MAX_FORMULA_LEN - 5));
    assert_eq!(at_limit.len(), MAX_FORMULA_LEN);
    Formula::parse(&at_limit).unwrap();
    let over = format!("{at_limit} ");
    assert!(matches!(Formula::parse(&over).unwrap_err().kind, FormulaErrorKind::TooLong(_)));
}

#[test]
fn the_widest_formula_parses_and_expands_on_a_small_stack() {
    // Not nested, but a left-deep tree with one level per operator: the operator limit
    // bounds the tree every later step walks. At the limit, parsing, expanding, printing,
    // comparing and dropping fit in a quarter of a tokio worker's 2 MiB stack.
    let wide = |ops: usize| format!("y ~ a0{}", (1..=ops).map(|i| format!("+a{i}")).collect::<String>());
    let text = wide(MAX_FORMULA_OPERATORS);
    assert!(text.len() <= MAX_FORMULA_LEN);
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            let f = Formula::parse(&text).unwrap();
            let shown = f.to_string();
            assert_eq!(f.rhs.without_spans(), Formula::parse(&shown).unwrap().rhs.without_spans());
            let t = Terms::from_formula(&f).unwrap();
            assert_eq!(t.terms.len(), MAX_FORMULA_OPERATORS + 1);
            assert_eq!(t.terms[MAX_FORMULA_OPERATORS].label, format!("a{MAX_FORMULA_OPERATORS}"));
            drop(f);
        })
        .unwrap()
        .join()
        .unwrap();
    // One more operator is refused, pointing at it, before the parser runs.
    let text = wide(MAX_FORMULA_OPERATORS + 1);
    let e = Formula::parse(&text).unwrap_err();
    assert_eq!(e.kind, FormulaErrorKind::TooManyOperators);
    assert!(e.to_string().contains("formula has more than 512 operators"), "{e}");
    assert_eq!(&text[e.span.start..e.span.end], "+");
    // A 4 KB chain of `+a` (2,000 operators) crashed a 256 KiB stack before.
    let mut chain = String::from("y ~ a");
    while chain.len() + 2 <= MAX_FORMULA_LEN {
        chain.push_str("+a");
    }
    let e = small_stack(move || Formula::parse(&chain).unwrap_err());
    assert_eq!(e.kind, FormulaErrorKind::TooManyOperators);
}

#[test]
fn exploding_expansions_are_refused_not_allocated() {
    // `a*a*a*...`: each `*` doubled the raw term list (2^k entries) before duplicates were
    // dropped at the end; 60 factors would need 2^60 entries. Now it is one term.
    let text = format!("y ~ a{}", "*a".repeat(60));
    let f = Formula::parse(&text).unwrap();
    let t = Terms::from_formula(&f).unwrap();
    assert_eq!(t.terms.len(), 1);
    assert_eq!(t.terms[0].label, "a");
    // 13 distinct factors expand to 2^13 - 1 = 8191 terms: over the limit, named.
    let names: Vec<String> = (0..13).map(|i| format!("x{i}")).collect();
    let text = format!("y ~ {}", names.join("*"));
    let e = Terms::from_formula(&Formula::parse(&text).unwrap()).unwrap_err();
    assert_eq!(e.kind, FormulaErrorKind::TooManyTerms);
    assert!(e.to_string().contains(&format!("formula expands to more than {MAX_FORMULA_TERMS} terms")), "{e}");
    // 12 factors (4095 terms) is still allowed.
    let text = format!("y ~ {}", names[..12].join("*"));
    let t = Terms::from_formula(&Formula::parse(&text).unwrap()).unwrap();
    assert_eq!(t.terms.len(), 4095);
    // A cross of two long sums is refused before the product is built.
    let sum = |p: &str| (0..100).map(|i| format!("{p}{i}")).collect::<Vec<_>>().join("+");
    let text = format!("y ~ ({}):({})", sum("a"), sum("b"));
    let e = Terms::from_formula(&Formula::parse(&text).unwrap()).unwrap_err();
    assert_eq!(e.kind, FormulaErrorKind::TooManyTerms);
}

#[test]
fn expansion_with_repeats_keeps_r_order() {
    // The per-step de-duplication keeps the first occurrence, as R does at the end.
    let f = Formula::parse("y ~ (a + b + a) * (b + c + b) - c").unwrap();
    let labels: Vec<String> = Terms::from_formula(&f).unwrap().terms.into_iter().map(|t| t.label).collect();
    assert_eq!(labels, ["a", "b", "a:b", "a:c", "b:c"]);
}

fn tt_err(text: String) -> String {
    small_stack(move || TtExpr::parse(&text).unwrap_err().to_string())
}

#[test]
fn deep_tt_expressions_are_refused() {
    let limit = format!("tt expression: expression nests deeper than {MAX_TT_DEPTH} levels");
    let deep = [
        format!("{}x{}", "(".repeat(500), ")".repeat(500)),
        format!("{}x{}", "log(".repeat(200), ")".repeat(200)),
        format!("{}x", "-".repeat(1000)),
        format!("{}x", "+".repeat(1000)),
        format!("x{}", "^2".repeat(500)),
        format!("x*{}t", "(-".repeat(500)),
        "(".repeat(1000),
    ];
    for text in deep {
        let e = tt_err(text.clone());
        assert!(e.starts_with(&limit), "{}: {e}", &text[..20]);
    }
    // At the limit it still parses and evaluates.
    let ok = format!("{}x{}", "(".repeat(MAX_TT_DEPTH), ")".repeat(MAX_TT_DEPTH));
    assert_eq!(TtExpr::parse(&ok).unwrap().eval(3.0, 1.0), 3.0);
    let ok = format!("{}x", "-".repeat(MAX_TT_DEPTH));
    assert_eq!(TtExpr::parse(&ok).unwrap().eval(3.0, 1.0), 3.0);
}

#[test]
fn oversized_tt_expression_is_refused_with_a_short_message() {
    let e = tt_err(format!("x{}", "+1".repeat(1_000_000)));
    assert!(e.contains(&format!("expression longer than {MAX_TT_LEN} characters")), "{e}");
    assert!(e.len() < 300, "{} bytes", e.len());
    // A long flat sum under the limit is fine (it is compiled to a flat program).
    let flat = format!("x{}", "+1".repeat((MAX_TT_LEN - 1) / 2));
    assert!(flat.len() <= MAX_TT_LEN);
    assert_eq!(TtExpr::parse(&flat).unwrap().eval(1.0, 0.0), 1.0 + ((MAX_TT_LEN - 1) / 2) as f64);
}
