//! Model frames: na.omit counts, factor coding and column names as R's
//! `model.matrix`, strata labels, response validation and located errors.

use seh_stats::formula::Formula;
use seh_stats::model::{ModelError, ModelFrame, ModelKind, Response};
use seh_stats::DataFrame;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/ref/data/");

fn load(name: &str) -> DataFrame {
    let bytes = std::fs::read(format!("{DATA}{name}")).unwrap();
    DataFrame::from_csv_bytes(&bytes, name).unwrap()
}

fn frame(df: &DataFrame, f: &str, kind: ModelKind) -> ModelFrame {
    ModelFrame::build(df, &Formula::parse(f).unwrap(), kind).unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn frame_err(df: &DataFrame, f: &str, kind: ModelKind) -> ModelError {
    ModelFrame::build(df, &Formula::parse(f).unwrap(), kind).expect_err(f)
}

fn df(cols: Vec<(&str, Vec<f64>)>) -> DataFrame {
    DataFrame::from_columns(cols).unwrap()
}

#[test]
fn na_omit_counts_on_lung_full() {
    let lung = load("lung_full.csv");
    // R: coxph(Surv(time, status) ~ age + sex + ph.ecog, lung) -> n = 227, 1 deleted.
    let m = frame(&lung, "Surv(time, status) ~ age + sex + ph.ecog", ModelKind::Cox);
    assert_eq!((m.nrows(), m.n_dropped_missing), (227, 1));
    let m = frame(
        &lung,
        "Surv(time, status) ~ age + sex + ph.ecog + ph.karno + pat.karno + meal.cal + wt.loss",
        ModelKind::Cox,
    );
    assert_eq!((m.nrows(), m.n_dropped_missing), (168, 60));
    // Columns not in the formula do not count.
    let m = frame(&lung, "Surv(time, status) ~ sex", ModelKind::KaplanMeier);
    assert_eq!((m.nrows(), m.n_dropped_missing), (228, 0));
    let events: f64 = m.surv().unwrap().event.iter().sum();
    assert_eq!(events, 165.0);
    // Strata variables count too (inst is missing once).
    let m = frame(&lung, "Surv(time, status) ~ age + strata(inst)", ModelKind::Cox);
    assert_eq!(m.n_dropped_missing, 1);
    assert!(m.rows.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn strata_labels_like_r() {
    let lung = load("lung.csv");
    let m = frame(&lung, "Surv(time, status) ~ age + sex + ph.ecog + strata(inst)", ModelKind::Cox);
    let s = m.strata.unwrap();
    let expected: Vec<String> =
        [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 15, 16, 21, 22, 26, 32, 33].iter().map(|i| format!("inst={i}")).collect();
    assert_eq!(s.labels, expected);
    assert_eq!(s.codes.len(), 212);
    assert_eq!(m.design.names, ["age", "sex", "ph.ecog"]);

    let d = df(vec![
        ("t", vec![1.0, 2.0, 3.0, 4.0, 5.0]),
        ("e", vec![1.0, 0.0, 1.0, 1.0, 0.0]),
        ("a", vec![2.0, 1.0, 2.0, 1.0, 2.0]),
        ("b", vec![0.5, 3.0, 3.0, 0.5, 0.5]),
        ("x", vec![0.1, 0.4, 0.2, 0.9, 0.3]),
    ]);
    // strata(a, b): first variable slowest, only occurring combinations.
    let m = frame(&d, "Surv(t, e) ~ x + strata(a, b)", ModelKind::Cox);
    let s = m.strata.unwrap();
    assert_eq!(s.labels, ["a=1, b=0.5", "a=1, b=3", "a=2, b=0.5", "a=2, b=3"]);
    assert_eq!(s.codes, [2, 1, 3, 0, 2]);
    // Kaplan-Meier groups from the right-hand side.
    let m = frame(&d, "Surv(t, e) ~ a", ModelKind::KaplanMeier);
    assert_eq!(m.strata.unwrap().labels, ["a=1", "a=2"]);
    assert_eq!(m.design.ncols(), 0);
    let m = frame(&d, "Surv(t, e) ~ 1", ModelKind::KaplanMeier);
    assert!(m.strata.is_none());
}

fn coding_data() -> DataFrame {
    df(vec![
        ("y", vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
        ("f", vec![3.0, 1.0, 2.0, 2.0, 1.0, 3.0]),
        ("g", vec![1.0, 1.0, 2.0, 2.0, 2.0, 2.0]),
        ("z", vec![0.5, 1.5, 2.0, 2.5, 3.0, 4.0]),
    ])
}

fn names(f: &str, kind: ModelKind) -> Vec<String> {
    frame(&coding_data(), f, kind).design.names
}

#[test]
fn factor_coding_and_names_like_model_matrix() {
    use ModelKind::Glm;
    assert_eq!(names("y ~ factor(f)", Glm), ["(Intercept)", "factor(f)2", "factor(f)3"]);
    assert_eq!(names("y ~ factor(f) - 1", Glm), ["factor(f)1", "factor(f)2", "factor(f)3"]);
    assert_eq!(names("y ~ 0 + z + factor(f)", Glm), ["z", "factor(f)1", "factor(f)2", "factor(f)3"]);
    assert_eq!(
        names("y ~ factor(f)*z", Glm),
        ["(Intercept)", "factor(f)2", "factor(f)3", "z", "factor(f)2:z", "factor(f)3:z"]
    );
    // No main effects: the factor in `z:factor(f)` gets dummy coding (R's marginality rule).
    assert_eq!(names("y ~ z:factor(f)", Glm), ["(Intercept)", "z:factor(f)1", "z:factor(f)2", "z:factor(f)3"]);
    assert_eq!(
        names("y ~ factor(f)*factor(g)", Glm),
        ["(Intercept)", "factor(f)2", "factor(f)3", "factor(g)2", "factor(f)2:factor(g)2", "factor(f)3:factor(g)2"]
    );
    // Nested: factor(f) + factor(f):factor(g) codes f fully inside the interaction.
    assert_eq!(
        names("y ~ factor(f) + factor(f):factor(g)", Glm),
        [
            "(Intercept)",
            "factor(f)2",
            "factor(f)3",
            "factor(f)1:factor(g)2",
            "factor(f)2:factor(g)2",
            "factor(f)3:factor(g)2"
        ]
    );
    assert_eq!(names("y ~ z + log(z)", Glm), ["(Intercept)", "z", "log(z)"]);
}

#[test]
fn factor_values_and_cox_has_no_intercept() {
    let d = coding_data();
    let m = frame(&d, "y ~ factor(f)*z", ModelKind::Glm);
    // Row 0: f = 3, z = 0.5.
    assert_eq!(m.design.row(0), [1.0, 0.0, 1.0, 0.5, 0.0, 0.5]);
    assert_eq!(m.design.row(1), [1.0, 0.0, 0.0, 1.5, 0.0, 0.0]);
    assert_eq!(m.design.terms.len(), 4);
    assert_eq!(m.design.terms[3].label, "factor(f):z");
    assert_eq!(m.design.terms[3].columns, 4..6);
    let col = m.design.column(2);
    assert_eq!(col, [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);

    // Cox: R codes factors as if an intercept were present, then drops it, even with `- 1`.
    let d2 = df(vec![
        ("t", vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("e", vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0]),
        ("f", vec![3.0, 1.0, 2.0, 2.0, 1.0, 3.0]),
    ]);
    let m = frame(&d2, "Surv(t, e) ~ factor(f) - 1", ModelKind::Cox);
    assert_eq!(m.design.names, ["factor(f)2", "factor(f)3"]);
    assert!(!m.design.intercept);
}

#[test]
fn response_tt_offset_cluster() {
    let heart = load("heart.csv");
    let m = frame(&heart, "Surv(start, stop, event) ~ age + tt(age) + cluster(id) + offset(year)", ModelKind::Cox);
    assert_eq!(m.nrows(), 172);
    let s = m.surv().unwrap();
    assert!(s.start.is_some());
    assert_eq!(s.columns, ["start", "stop", "event"]);
    assert_eq!(s.event.iter().sum::<f64>(), 75.0);
    assert_eq!(m.design.names, ["age", "tt(age)"]);
    assert_eq!(m.tt_columns, [1]);
    let cl = m.cluster.unwrap();
    assert_eq!(cl.iter().max(), Some(&102));
    assert_eq!(m.offset.unwrap()[0], heart.column("year").unwrap()[0]);

    let bw = load("birthwt.csv");
    let m = frame(&bw, "low ~ age + smoke", ModelKind::Glm);
    assert!(matches!(&m.response, Response::Numeric { name, y } if name == "low" && y.len() == 189));
    assert_eq!(m.design.names, ["(Intercept)", "age", "smoke"]);
}

#[test]
fn status_coded_1_2_like_r_surv() {
    let d = df(vec![("t", vec![1.0, 2.0, 3.0]), ("s", vec![2.0, 1.0, 2.0]), ("x", vec![1.0, 2.0, 0.0])]);
    let m = frame(&d, "Surv(t, s) ~ x", ModelKind::Cox);
    assert_eq!(m.surv().unwrap().event, [1.0, 0.0, 1.0]);
    // Surv(time) alone: every row is an event.
    let m = frame(&d, "Surv(t) ~ x", ModelKind::Cox);
    assert_eq!(m.surv().unwrap().event, [1.0, 1.0, 1.0]);
}

#[test]
fn located_errors() {
    let d = df(vec![
        ("t", vec![1.0, 2.0, -3.0, 4.0]),
        ("t0", vec![0.0, 2.0, 0.0, 0.0]),
        ("s", vec![1.0, 0.0, 1.0, 3.0]),
        ("e", vec![1.0, 0.0, 1.0, 0.0]),
        ("x", vec![1.0, 0.0, 2.0, 3.0]),
        ("k", vec![5.0, 5.0, 5.0, 5.0]),
        ("m", vec![f64::NAN, 1.0, f64::NAN, f64::NAN]),
        ("z", vec![0.0; 4]),
    ]);
    use ModelKind::{Cox, Glm, KaplanMeier};
    let e = frame_err(&d, "Surv(t, e) ~ x", Cox);
    assert_eq!(e, ModelError::NegativeTime { column: "t".into(), line: 4 });
    let e = frame_err(&d, "Surv(t0, t, e) ~ x", Cox);
    assert!(matches!(e, ModelError::StartNotBeforeStop { line: 3, .. }), "{e}");
    let e = frame_err(&d, "Surv(t0, t, s) ~ x", Cox);
    assert_eq!(e, ModelError::InvalidEvent { column: "s".into(), line: 5 });
    let e = frame_err(&d, "e ~ log(x)", Glm);
    assert_eq!(e, ModelError::NonPositiveLog { column: "x".into(), line: 3 });
    assert_eq!(e.to_string(), "line 3, column `x`: log() needs positive values");
    let e = frame_err(&d, "Surv(t0, e) ~ k", Cox);
    assert!(matches!(e, ModelError::ConstantCovariate { ref term, .. } if term == "k"), "{e}");
    let e = frame_err(&d, "Surv(t0, z) ~ x", Cox);
    assert!(matches!(e, ModelError::NoEvents { .. }), "{e}");
    let e = frame_err(&d, "Surv(t0, e) ~ factor(k)", Cox);
    assert_eq!(e, ModelError::SingleLevelFactor { column: "k".into() });
    let e = frame_err(&d, "e ~ x + m", Glm);
    assert!(matches!(e, ModelError::ConstantCovariate { .. }), "{e}");
    let e = frame_err(&d, "e ~ m + k", Glm);
    assert!(matches!(e, ModelError::ConstantCovariate { .. }), "{e}");
    let d2 = df(vec![("a", vec![f64::NAN, 1.0]), ("b", vec![1.0, f64::NAN])]);
    assert_eq!(frame_err(&d2, "a ~ b", Glm), ModelError::NoCompleteRows { dropped: 2 });

    // Unknown column: the formula caret and a suggestion.
    let e = frame_err(&d, "Surv(t0, e) ~ xx + k", Cox).to_string();
    assert!(e.starts_with("formula: unknown column `xx` (did you mean ") && e.contains("`x`"), "{e}");
    assert!(e.contains(" at 15..17\n"), "{e}");
    assert!(e.ends_with("\n  Surv(t0, e) ~ xx + k\n                ^^"), "{e}");
    let e = frame_err(&d, "Surv(t0, e) ~ qqq", Cox).to_string();
    assert!(e.contains("columns: t, t0, s, e, x, k, m, z"), "{e}");

    // What a model does not allow.
    let e = frame_err(&d, "e ~ x + strata(k)", Glm).to_string();
    assert!(e.contains("`strata()` is not supported in a GLM"), "{e}");
    let e = frame_err(&d, "Surv(t0, e) ~ x", Glm).to_string();
    assert!(e.contains("a GLM needs a column name on the left"), "{e}");
    let e = frame_err(&d, "e ~ x", Cox).to_string();
    assert!(e.contains("needs `Surv(time, event)`"), "{e}");
    let e = frame_err(&d, "Sruv(t0, e) ~ x", Cox).to_string();
    assert!(e.starts_with("formula: unknown function `Sruv`") && e.contains("at 1..5"), "{e}");
    let e = frame_err(&d, "Surv(t0, e) ~ tt(x):k", Cox).to_string();
    assert!(e.contains("interaction"), "{e}");
    let e = frame_err(&d, "Surv(t0, e) ~ tt(x)", KaplanMeier).to_string();
    assert!(e.contains("only for Cox"), "{e}");
    let e = frame_err(&d, "~ x", Glm).to_string();
    assert!(e.contains("needs a response column"), "{e}");
}

#[test]
fn errors_never_contain_values() {
    let d = df(vec![("t", vec![1.0, -987654.0]), ("e", vec![1.0, 1.0]), ("x", vec![1.0, 2.0])]);
    let e = frame_err(&d, "Surv(t, e) ~ x", ModelKind::Cox).to_string();
    assert!(!e.contains("987654"), "{e}");
}
