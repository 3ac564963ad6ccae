//! Property: parse → display → parse gives the same tree (spans aside), and
//! display is a fixed point after one round.

use proptest::prelude::*;
use seh_stats::formula::{Formula, Terms};

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9._]{0,6}",
        Just("ph.ecog".to_string()),
        "[a-z]{1,3} [a-z]{1,3}".prop_map(|s| format!("`{s}`")),
    ]
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => name(),
        1 => prop_oneof![Just("0"), Just("1"), Just("2.5"), Just("0.0001")].prop_map(str::to_string),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    atom().prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), prop_oneof![Just("+"), Just("-"), Just("*"), Just(":")], inner.clone())
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (prop_oneof![Just("log"), Just("factor"), Just("strata"), Just("f")], prop::collection::vec(inner, 1..3))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
        ]
    })
}

fn formula() -> impl Strategy<Value = String> {
    (prop::option::of(expr()), expr(), prop::bool::ANY).prop_map(|(l, r, tight)| {
        let s = match l {
            Some(l) => format!("{l} ~ {r}"),
            None => format!("~ {r}"),
        };
        if tight {
            s.replace(' ', "")
        } else {
            s
        }
    })
}

proptest! {
    #[test]
    fn parse_display_parse_round_trips(text in formula()) {
        // Removing all spaces can glue a back-quoted name; such texts may fail to parse, which is fine.
        if let Ok(f1) = Formula::parse(&text) {
            let shown = f1.to_string();
            let f2 = Formula::parse(&shown).map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
            prop_assert_eq!(f1.lhs.as_ref().map(|e| e.without_spans()), f2.lhs.as_ref().map(|e| e.without_spans()));
            prop_assert_eq!(f1.rhs.without_spans(), f2.rhs.without_spans());
            prop_assert_eq!(f2.to_string(), shown);
            // Expansion depends only on the tree, so it agrees too.
            let (t1, t2) = (Terms::from_formula(&f1), Terms::from_formula(&f2));
            prop_assert_eq!(t1.is_ok(), t2.is_ok());
            if let (Ok(t1), Ok(t2)) = (t1, t2) {
                let l1: Vec<String> = t1.terms.iter().map(|t| t.label.clone()).collect();
                let l2: Vec<String> = t2.terms.iter().map(|t| t.label.clone()).collect();
                prop_assert_eq!(l1, l2);
                prop_assert_eq!(t1.intercept, t2.intercept);
            }
        }
    }

    #[test]
    fn parser_never_panics(text in "[ -~]{0,40}") {
        let _ = Formula::parse(&text).map(|f| Terms::from_formula(&f));
    }
}

#[test]
fn generated_texts_mostly_parse() {
    // Guard against a generator that only produces parse errors (a test that cannot fail).
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let ok = (0..200)
        .filter(|_| {
            let t = formula().new_tree(&mut runner).unwrap().current();
            Formula::parse(&t).is_ok()
        })
        .count();
    assert!(ok > 150, "only {ok} of 200 generated formulas parse");
}
