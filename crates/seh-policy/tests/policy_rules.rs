//! Site policy: parsing, validation against the DataSHIELD floors, and one refusal per rule.

use seh_policy::consent::Purpose;
use seh_policy::error::PolicyError;
use seh_policy::policy::{
    check_rows, decide, Aggregation, AnalysisKind, DpRequest, SitePolicy, StudyRequest, TimeGridRequest,
};
use seh_policy::{Decision, Rule};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy/site-policy.toml");
const MINIMAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy/minimal-site-policy.toml");
const KEY_A: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn example() -> (SitePolicy, String) {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    (SitePolicy::from_toml_str(&text, "site-policy.toml").unwrap(), text)
}

fn key_a() -> [u8; 32] {
    seh_policy::policy::parse_public_key(KEY_A).unwrap()
}

fn request() -> StudyRequest {
    StudyRequest {
        researcher_key: key_a(),
        analysis: AnalysisKind::Cox,
        aggregation: Aggregation::Secagg,
        purpose: Purpose::act_reason("HRESCH"),
        n_parameters: Some(4),
        time_grid: Some(TimeGridRequest::Points(vec![0.0, 30.0, 90.0, 365.0])),
        dp: Some(DpRequest { epsilon: 0.5, delta: 0.0 }),
    }
}

fn refused_by(d: Decision) -> Rule {
    match d {
        Decision::Refuse { rule, reason } => {
            assert!(!reason.is_empty());
            rule
        }
        Decision::Accept => panic!("expected a refusal"),
    }
}

/// `text` with the first line starting with `prefix` replaced by `line`.
fn with_line(text: &str, prefix: &str, line: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with(prefix) {
                done = true;
                line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn line_of(text: &str, prefix: &str) -> usize {
    text.lines().position(|l| l.starts_with(prefix)).unwrap() + 1
}

#[test]
fn example_files_parse() {
    let (p, _) = example();
    assert_eq!(p.researchers().len(), 2);
    assert_eq!(p.disclosure().min_cell_count, 5);
    assert_eq!(p.disclosure().max_parameters_per_row, 0.2);
    assert_eq!(p.analyses().len(), 5);
    let m = SitePolicy::load(std::path::Path::new(MINIMAL)).unwrap();
    assert_eq!(m.disclosure().min_cell_count, 3);
}

#[test]
fn accepts_a_conforming_study() {
    let (p, _) = example();
    assert_eq!(decide(&p, &request()), Decision::Accept);
    assert_eq!(check_rows(&p, &request(), 100), Decision::Accept);
}

#[test]
fn each_rule_refuses_with_its_reason() {
    let (p, _) = example();
    let cases: Vec<(Rule, StudyRequest)> = vec![
        (Rule::ResearcherNotAllowed, StudyRequest { researcher_key: [7u8; 32], ..request() }),
        (Rule::AnalysisNotAllowed, StudyRequest { analysis: AnalysisKind::Fl, ..request() }),
        (Rule::PurposeNotAllowed, StudyRequest { purpose: Purpose::act_reason("TREAT"), ..request() }),
        (Rule::TimeGridTooFine, StudyRequest { time_grid: Some(TimeGridRequest::EventTimes), ..request() }),
        (
            Rule::TimeGridTooFine,
            StudyRequest { time_grid: Some(TimeGridRequest::Points(vec![0.0, 10.0])), ..request() },
        ),
        (Rule::DpEpsilonPerQuery, StudyRequest { dp: Some(DpRequest { epsilon: 1.5, delta: 0.0 }), ..request() }),
        (Rule::DpDeltaPerQuery, StudyRequest { dp: Some(DpRequest { epsilon: 0.5, delta: 1e-3 }), ..request() }),
    ];
    for (rule, req) in cases {
        assert_eq!(refused_by(decide(&p, &req)), rule, "{req:?}");
    }
    // A specialisation of an allowed purpose is accepted.
    assert!(decide(&p, &StudyRequest { purpose: Purpose::act_reason("CLINTRCH"), ..request() }).is_accept());

    // Aggregation: the minimal policy allows only secagg.
    let m = SitePolicy::load(std::path::Path::new(MINIMAL)).unwrap();
    let req = StudyRequest { analysis: AnalysisKind::Descriptive, aggregation: Aggregation::He, ..request() };
    assert_eq!(refused_by(decide(&m, &req)), Rule::AggregationNotAllowed);

    // DP required.
    let (_, text) = example();
    let strict = SitePolicy::from_toml_str(&with_line(&text, "required =", "required = true"), "p").unwrap();
    let describe = StudyRequest { analysis: AnalysisKind::Descriptive, dp: None, ..request() };
    assert_eq!(refused_by(decide(&strict, &describe)), Rule::DpRequired);
    // Models have no DP mechanism: `dp.required` governs descriptive releases only.
    assert!(decide(&strict, &StudyRequest { dp: None, ..request() }).is_accept());
    assert!(decide(&p, &StudyRequest { dp: None, ..request() }).is_accept());

    // Data-dependent rules: subset size (10) and model size (0.2 per row).
    assert_eq!(refused_by(check_rows(&p, &request(), 9)), Rule::MinSubsetSize);
    assert_eq!(refused_by(check_rows(&p, &StudyRequest { n_parameters: Some(5), ..request() }, 24)), Rule::ModelSize);
    assert!(check_rows(&p, &StudyRequest { n_parameters: Some(5), ..request() }, 25).is_accept());
}

#[test]
fn refusal_names_the_policy_key() {
    assert_eq!(Rule::MinCellCount.key(), "disclosure.min_cell_count");
    assert_eq!(Rule::ModelSize.key(), "disclosure.max_parameters_per_row");
    let json = serde_json::to_value(Decision::Refuse { rule: Rule::DpBudgetExhausted, reason: "x".into() }).unwrap();
    assert_eq!(json["rule"], "dp_budget_exhausted");
}

#[test]
fn unknown_key_is_an_error_naming_key_and_line() {
    let (_, text) = example();
    let bad = with_line(&text, "min_risk_set =", "min_risk_sets = 5");
    let line = line_of(&bad, "min_risk_sets");
    match SitePolicy::from_toml_str(&bad, "p.toml") {
        Err(PolicyError::UnknownKey { key, line: l, .. }) => {
            assert_eq!(key, "min_risk_sets");
            assert_eq!(l, line);
        }
        other => panic!("{other:?}"),
    }
    let top = format!("{text}\nfoo = 1\n");
    assert!(matches!(SitePolicy::from_toml_str(&top, "p"), Err(PolicyError::UnknownKey { key, .. }) if key == "foo"));
}

#[test]
fn missing_key_and_type_errors_are_located() {
    let (_, text) = example();
    let bad = with_line(&text, "min_step =", "");
    assert!(
        matches!(SitePolicy::from_toml_str(&bad, "p"), Err(PolicyError::MissingKey { key, .. }) if key == "min_step")
    );
    let bad = with_line(&text, "min_cell_count =", "min_cell_count = \"five\"");
    let line = line_of(&bad, "min_cell_count");
    match SitePolicy::from_toml_str(&bad, "p") {
        Err(PolicyError::Syntax { line: l, .. }) => assert_eq!(l, line),
        other => panic!("{other:?}"),
    }
}

#[test]
fn looser_than_floor_is_an_error_naming_the_key() {
    let (_, text) = example();
    let cases = [
        ("min_cell_count =", "min_cell_count = 2", "disclosure.min_cell_count"),
        ("min_risk_set =", "min_risk_set = 1", "disclosure.min_risk_set"),
        ("min_subset_size =", "min_subset_size = 2", "disclosure.min_subset_size"),
        ("max_parameters_per_row =", "max_parameters_per_row = 0.5", "disclosure.max_parameters_per_row"),
    ];
    for (prefix, line, want) in cases {
        let bad = with_line(&text, prefix, line);
        let at = line_of(&bad, prefix);
        match SitePolicy::from_toml_str(&bad, "p") {
            Err(PolicyError::LooserThanFloor { key, line, .. }) => {
                assert_eq!(key, want);
                assert_eq!(line, at);
            }
            other => panic!("{want}: {other:?}"),
        }
    }
    // At the floor is fine; stricter is fine.
    for line in ["min_cell_count = 3", "min_cell_count = 10"] {
        assert!(SitePolicy::from_toml_str(&with_line(&text, "min_cell_count =", line), "p").is_ok());
    }
    assert!(SitePolicy::from_toml_str(
        &with_line(&text, "max_parameters_per_row =", "max_parameters_per_row = 0.33"),
        "p"
    )
    .is_ok());
}

#[test]
fn local_verification_lowers_the_floors_only_when_asked() {
    let (_, text) = example();
    let low = with_line(&text, "min_risk_set =", "min_risk_set = 1");
    assert!(matches!(SitePolicy::from_toml_str(&low, "p"), Err(PolicyError::LooserThanFloor { .. })));
    let local = with_line(&low, "max_parameters_per_row =", "max_parameters_per_row = 0.9\nlocal_verification = true");
    let p = SitePolicy::from_toml_str(&local, "p").unwrap();
    assert!(p.disclosure().local_verification);
    assert_eq!(p.disclosure().min_risk_set, 1);
    assert_eq!(p.disclosure().max_parameters_per_row, 0.9);
    let (example_policy, _) = example();
    assert!(!example_policy.disclosure().local_verification);
    // `seh federate`'s generated policy asks for it only below the floors.
    let kinds = [AnalysisKind::Cox];
    let researchers = [("r".to_owned(), KEY_A.to_owned())];
    for (min, want) in [(1, true), (2, true), (3, false), (5, false)] {
        let t = seh_policy::policy::open_policy_toml(&researchers, &kinds, min);
        let p = SitePolicy::from_toml_str(&t, "generated").unwrap();
        assert_eq!(p.disclosure().local_verification, want, "min {min}");
        assert_eq!(p.disclosure().min_risk_set, min);
    }
}

#[test]
fn invalid_values_name_the_key() {
    let (_, text) = example();
    let cases = [
        ("key = \"d75a", "key = \"00\"", "researchers[0].key"),
        ("allowed = [\"descriptive\"", "allowed = [\"anova\"]", "analyses.allowed"),
        ("allowed = [\"secagg\"", "allowed = [\"mpc\"]", "aggregation.allowed"),
        ("epsilon_per_query =", "epsilon_per_query = 20.0", "dp.epsilon_per_query"),
        ("delta_per_query =", "delta_per_query = 1e-3", "dp.delta_per_query"),
        ("epsilon_total =", "epsilon_total = -1.0", "dp.epsilon_total"),
        ("regime =", "regime = \"maybe\"", "consent.regime"),
        ("purposes =", "purposes = []", "consent.purposes"),
        ("min_step =", "min_step = -1.0", "time_grid.min_step"),
        ("version =", "version = 2", "version"),
    ];
    for (prefix, line, want) in cases {
        match SitePolicy::from_toml_str(&with_line(&text, prefix, line), "p") {
            Err(PolicyError::Invalid { key, .. }) => assert_eq!(key, want),
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn public_keys_accept_hex_and_base64_and_reject_garbage() {
    use seh_policy::policy::parse_public_key;
    let b64 = "PUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=";
    assert!(parse_public_key(b64).is_some());
    assert!(parse_public_key(KEY_A).is_some());
    assert!(parse_public_key(&KEY_A[..62]).is_none());
    assert!(parse_public_key("not a key").is_none());
}

#[test]
fn generated_policy_is_the_example_except_where_a_flag_says_otherwise() {
    use seh_policy::policy::open_policy_toml_for;
    let (ex, _) = example();
    let kinds = [AnalysisKind::Descriptive, AnalysisKind::Km, AnalysisKind::Cox, AnalysisKind::Glm];
    let researchers = [("r".to_owned(), KEY_A.to_owned())];
    let gen =
        |k: u64| SitePolicy::from_toml_str(&open_policy_toml_for(&researchers, &kinds, k, &["HRESCH"]), "g").unwrap();
    let g = gen(5);
    assert_eq!(g.disclosure(), ex.disclosure());
    assert_eq!(g.time_grid(), ex.time_grid());
    assert_eq!(g.dp(), ex.dp());
    assert_eq!(g.aggregation(), ex.aggregation());
    assert!(g.dp().required && !g.time_grid().allow_event_times && g.disclosure().min_bin_width == 5.0);
    // `--min-cell-count 7`: the two counts, nothing else.
    let g7 = gen(7);
    assert_eq!((g7.disclosure().min_cell_count, g7.disclosure().min_risk_set), (7, 7));
    assert_eq!(g7.disclosure().min_subset_size, ex.disclosure().min_subset_size);
    assert_eq!((g7.time_grid(), g7.dp()), (ex.time_grid(), ex.dp()));
    // `--min-risk-set 1`: a local verification run.
    let l = gen(1);
    assert!(l.disclosure().local_verification && l.time_grid().allow_event_times && !l.dp().required);
    assert_eq!((l.disclosure().min_cell_count, l.disclosure().min_bin_width), (1, 0.0));
}

#[test]
fn histograms_must_lie_on_the_lattice() {
    use seh_policy::policy::check_histogram;
    let (p, text) = example();
    assert_eq!(p.disclosure().min_bin_width, 5.0);
    // [0, 40] in 4 bins: 8 steps of 5, two per bin.
    assert!(check_histogram(&p, 0.0, 40.0, 4).is_ok());
    assert!(check_histogram(&p, -15.0, 85.0, 20).is_ok());
    for (lo, hi, bins) in [(0.0, 40.0, 3), (0.0, 42.0, 1), (0.1, 40.0, 1), (0.0, 40.0, 16), (0.0, 87.654321, 1)] {
        let r = check_histogram(&p, lo, hi, bins).unwrap_err();
        assert_eq!(r.rule, Rule::HistogramLattice, "[{lo}, {hi}] / {bins}");
        assert_eq!(r.rule.key(), "disclosure.min_bin_width");
    }
    // Decimal widths: 0.1 steps with rounding error in the bounds.
    let fine = SitePolicy::from_toml_str(&with_line(&text, "min_bin_width =", "min_bin_width = 0.1"), "p").unwrap();
    assert!(check_histogram(&fine, 0.3, 0.7, 4).is_ok());
    assert!(check_histogram(&fine, 0.35, 0.7, 1).is_err());
    // Optional key: absent means no lattice; a negative width is an error naming the key.
    let none = SitePolicy::from_toml_str(&with_line(&text, "min_bin_width =", ""), "p").unwrap();
    assert!(check_histogram(&none, 0.0, 87.654321, 3).is_ok());
    let err = SitePolicy::from_toml_str(&with_line(&text, "min_bin_width =", "min_bin_width = -1.0"), "p").unwrap_err();
    assert!(err.to_string().contains("disclosure.min_bin_width"), "{err}");
}
