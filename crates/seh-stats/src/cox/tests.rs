//! Unit tests of the Cox engine: hand-derived closed forms, invariances, errors.

use super::exact::evaluate_exact;
use super::kernel::{evaluate_local, Evaluation, FoldSink, Workspace};
use super::prepared::{PrepareOptions, PreparedCox};
use super::*;

/// Six rows: (time, status, x) = (1,1,1) (1,0,0) (2,1,1) (2,1,1) (2,0,0) (3,1,0).
/// Risk sets: t=1 all six (x̄ = ½, one death with x=1); t=2 rows 3–6
/// (S0=4, S1=2, two deaths with x=1); t=3 row 6 alone (x=0).
fn six() -> CoxData {
    CoxData::new(
        vec![1.0, 1.0, 2.0, 2.0, 2.0, 3.0],
        vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0],
        vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0],
        vec!["x".into()],
    )
}

fn eval_at_zero(d: &CoxData, ties: Ties) -> Evaluation {
    let prep = PreparedCox::new(d, &PrepareOptions::default()).unwrap();
    let mut ws = Workspace::new(&prep);
    if ties == Ties::Exact {
        return evaluate_exact(&prep, &[0.0], &mut ws).unwrap();
    }
    let mut sink = FoldSink::new(1, ties);
    evaluate_local(&prep, &[0.0], ties, &mut ws, &mut sink).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-13 * (1.0 + b.abs())
}

#[test]
fn breslow_closed_form_at_zero() {
    // ℓ = −ln 6 − 2 ln 4; U = ½ + (2 − 2·½) = 3/2; I = ¼ + 2(½ − ¼) = ¾.
    let ev = eval_at_zero(&six(), Ties::Breslow);
    assert!(close(ev.loglik, -(6f64).ln() - 2.0 * (4f64).ln()), "{}", ev.loglik);
    assert!(close(ev.score[0], 1.5));
    assert!(close(ev.info[0], 0.75));
}

#[test]
fn efron_closed_form_at_zero() {
    // t=2, two deaths: denominators 4 − ½·2 = 3 and 4; means 1/3 and ½;
    // ℓ = −ln 6 − ln 3 − ln 4; U = ½ + 2 − 1/3 − ½ = 5/3;
    // I = ¼ + (1/3 − 1/9) + (½ − ¼) = 13/18.
    let ev = eval_at_zero(&six(), Ties::Efron);
    assert!(close(ev.loglik, -(6f64).ln() - (3f64).ln() - (4f64).ln()), "{}", ev.loglik);
    assert!(close(ev.score[0], 5.0 / 3.0), "{}", ev.score[0]);
    assert!(close(ev.info[0], 13.0 / 18.0), "{}", ev.info[0]);
}

#[test]
fn exact_closed_form_at_zero() {
    // t=2: 2 deaths among 4 → C(4,2) = 6 subsets; the subset sum of x has mean 1
    // and variance 2·¼·(4−2)/(4−1) = 1/3. ℓ = −ln 6 − ln 6; U = ½ + 1; I = ¼ + 1/3.
    let ev = eval_at_zero(&six(), Ties::Exact);
    assert!(close(ev.loglik, -2.0 * (6f64).ln()), "{}", ev.loglik);
    assert!(close(ev.score[0], 1.5));
    assert!(close(ev.info[0], 7.0 / 12.0));
}

#[test]
fn counting_process_equals_right_censored_when_all_start_at_zero() {
    let rc = six();
    let cp = six().with_start(vec![0.0; 6]);
    for ties in [Ties::Breslow, Ties::Efron] {
        let a = eval_at_zero(&rc, ties);
        let b = eval_at_zero(&cp, ties);
        assert!(close(a.loglik, b.loglik) && close(a.score[0], b.score[0]) && close(a.info[0], b.info[0]));
    }
}

#[test]
fn left_truncation_removes_rows_from_early_risk_sets() {
    // Row 2 enters at 1.5: it is not at risk at t=1, so the t=1 risk set has
    // five rows (x̄ = 3/5 with rows 1,3,4,5,6 → x = 1,1,1,0,0).
    let d = six().with_start(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let mut e = d.clone();
    e.start = Some(vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    e.stop[1] = 2.5;
    e.start.as_mut().unwrap()[1] = 1.5;
    let ev = eval_at_zero(&e, Ties::Breslow);
    // t=1: risk {1,3,4,5,6}: ln5, x̄=3/5; t=2: risk {2,3,4,5,6}: S0=5, x̄=2/5, two deaths;
    // t=3: row 6 only.
    let ll = -(5f64).ln() - 2.0 * (5f64).ln();
    assert!(close(ev.loglik, ll), "{} vs {ll}", ev.loglik);
    assert!(close(ev.score[0], (1.0 - 0.6) + (2.0 - 2.0 * 0.4)));
    assert!(close(ev.info[0], 0.6 * 0.4 + 2.0 * 0.4 * 0.6));
}

fn small_lung_like() -> CoxData {
    let d = synth::generate(300, 3, 7, false);
    CoxData { terms: vec!["a".into(), "b".into(), "c".into()], ..d }
}

#[test]
fn permuting_rows_does_not_change_the_fit() {
    use proptest::prelude::*;
    let base = small_lung_like();
    let reference = fit(&base, &CoxOptions::default()).unwrap();
    let n = base.n();
    let mut runner =
        proptest::test_runner::TestRunner::new(proptest::test_runner::Config { cases: 8, ..Default::default() });
    runner
        .run(&Just((0..n).collect::<Vec<usize>>()).prop_shuffle(), |perm| {
            let p = base.p;
            let mut x = Vec::with_capacity(n * p);
            for &i in &perm {
                x.extend_from_slice(&base.x[i * p..(i + 1) * p]);
            }
            let d = CoxData::new(
                perm.iter().map(|&i| base.stop[i]).collect(),
                perm.iter().map(|&i| base.event[i]).collect(),
                x,
                base.terms.clone(),
            );
            let f = fit(&d, &CoxOptions::default()).unwrap();
            for (a, b) in f.coef.values().iter().zip(reference.coef.values()) {
                let (a, b) = (a.unwrap(), b.unwrap());
                prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-3), "{a} vs {b}");
            }
            prop_assert!((f.loglik - reference.loglik).abs() <= 1e-9 * reference.loglik.abs());
            Ok(())
        })
        .unwrap();
}

#[test]
fn input_errors_are_reported_with_rows() {
    let mut d = six();
    d.event = vec![0.0; 6];
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::NoEvents);

    let mut d = six().with_start(vec![0.0; 6]);
    d.start.as_mut().unwrap()[3] = 2.0;
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::StartNotBeforeStop { row: 4 });

    let mut d = six();
    d.stop[2] = -1.0;
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::NegativeTime { field: "stop", row: 3 });

    let mut d = six();
    d.event[4] = 2.0;
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::EventNotBinary { row: 5 });

    let mut d = six();
    d.x[1] = f64::NAN;
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::NotFinite { field: "covariates", row: 2 });

    let d = CoxData::new(vec![], vec![], vec![], vec![]);
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::Empty);

    let mut d = six();
    d.weights = Some(vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::NonPositiveWeight { row: 3 });
    // No patient value in a message.
    let msg = CoxError::NotFinite { field: "stop", row: 7 }.to_string();
    assert!(msg.contains("row 7"));
}

#[test]
fn timefix_merges_times_equal_up_to_rounding() {
    let mut d = six();
    d.stop[0] = 1.0 + 1e-12; // tied with row 2 after timefix
    let f = fit(&d, &CoxOptions { ties: Ties::Breslow, ..CoxOptions::default() }).unwrap();
    let g = fit(&six(), &CoxOptions { ties: Ties::Breslow, ..CoxOptions::default() }).unwrap();
    assert!((f.loglik_null - g.loglik_null).abs() < 1e-12);
    let h = fit(&d, &CoxOptions { ties: Ties::Breslow, timefix: false, ..CoxOptions::default() }).unwrap();
    assert!((h.loglik_null - g.loglik_null).abs() > 1e-6, "without timefix the death at 1+1e-12 is not tied");

    let mut d = six().with_start(vec![0.0; 6]);
    d.start.as_mut().unwrap()[0] = 1.0 - 1e-13; // (1-1e-13, 1+0] collapses to length 0
    d.stop[0] = 1.0;
    assert_eq!(fit(&d, &CoxOptions::default()).unwrap_err(), CoxError::ZeroLengthAfterTimefix { row: 1 });
}

#[test]
fn collinear_covariate_is_reported_as_aliased() {
    let mut d = small_lung_like();
    let p = d.p;
    // Column c := 2a − b.
    for i in 0..d.n() {
        d.x[i * p + 2] = 2.0 * d.x[i * p] - d.x[i * p + 1];
    }
    let f = fit(&d, &CoxOptions::default()).unwrap();
    assert!(f.coef.get("a").is_some() && f.coef.get("b").is_some());
    assert_eq!(f.coef.values()[2], None);
    assert_eq!(f.lrt.df, 2);
    assert!(f.warnings.iter().any(|w| w.contains("singular")));
    let json = serde_json::to_string(&f).unwrap();
    assert!(json.contains("\"c\":null"), "{json}");
}

#[test]
fn monotone_likelihood_warns_infinite_coefficient() {
    // Every x=1 row dies before any x=0 row: the MLE of β is +∞.
    let n = 20;
    let stop: Vec<f64> = (1..=n).map(|t| t as f64).collect();
    let event = vec![1.0; n];
    let x: Vec<f64> = (0..n).map(|i| if i < n / 2 { 1.0 } else { 0.0 }).collect();
    let d = CoxData::new(stop, event, x, vec!["x".into()]);
    let f = fit(&d, &CoxOptions::default()).unwrap();
    assert!(f.warnings.iter().any(|w| w.contains("may be infinite")), "{:?}", f.warnings);
    assert!(f.coef.get("x").unwrap() > 5.0);
}

#[test]
fn driver_is_sans_io_and_rejects_misuse() {
    use driver::{DriverRequest, Flavour};
    let d = small_lung_like();
    let prep = PreparedCox::new(&d, &PrepareOptions::default()).unwrap();
    let mut drv = NewtonDriver::new(3, &[0.0; 3], CoxControl::default(), Flavour::RightCensored).unwrap();
    assert!(drv.feed(Evaluation::zero(2)).is_err());
    let mut ws = Workspace::new(&prep);
    let mut sink = FoldSink::new(3, Ties::Efron);
    let mut steps = 0;
    let out = loop {
        match drv.next() {
            DriverRequest::Evaluate(b) => {
                steps += 1;
                drv.feed(evaluate_local(&prep, &b, Ties::Efron, &mut ws, &mut sink).unwrap()).unwrap();
            }
            DriverRequest::Done(o) => break o,
        }
    };
    assert_eq!(steps as u32, out.iterations + 1);
    assert_eq!(out.convergence, Convergence::Converged);
    assert!(drv.feed(Evaluation::zero(3)).is_err());
}
