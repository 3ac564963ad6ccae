//! Consent evaluation and the pre-computation row filter.

use seh_policy::consent::{
    ConsentDecision, ConsentRecord, ConsentRegime, ConsentRegistry, ConsentRule, ConsentStatus, Period, Provision,
    ProvisionType, Purpose,
};
use seh_policy::{Date, SiteOnly};

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

fn research() -> Purpose {
    Purpose::act_reason("HRESCH")
}

fn permit_record(id: &str, patient: &str) -> ConsentRecord {
    let mut p = Provision::new(ProvisionType::Permit);
    p.purposes = vec![research()];
    ConsentRecord {
        id: id.into(),
        patient: patient.into(),
        status: ConsentStatus::Active,
        research_scope: true,
        provision: p,
    }
}

#[derive(Debug)]
struct Row {
    patient: String,
    value: f64,
}

fn rows(patients: &[&str]) -> Vec<Row> {
    patients.iter().enumerate().map(|(i, p)| Row { patient: (*p).into(), value: i as f64 }).collect()
}

/// Registry where p1 consents; p2 denied by a nested provision; p3 expired; p4 opted out;
/// p5 consents only for clinical-trial research; p6 has only an inactive record; p7 none.
fn registry(regime: ConsentRegime) -> ConsentRegistry {
    let mut reg = ConsentRegistry::new(regime);
    reg.add_record(permit_record("c1", "p1")).unwrap();

    let mut r2 = permit_record("c2", "p2");
    let mut deny = Provision::new(ProvisionType::Deny);
    deny.period = Some(Period { start: Some(d("2020-01-01")), end: None });
    r2.provision.provisions.push(deny);
    reg.add_record(r2).unwrap();

    let mut r3 = permit_record("c3", "p3");
    r3.provision.period = Some(Period { start: Some(d("2015-01-01")), end: Some(d("2019-12-31")) });
    reg.add_record(r3).unwrap();

    reg.add_record(permit_record("c4", "p4")).unwrap();
    reg.opt_out("p4");

    let mut r5 = permit_record("c5", "p5");
    r5.provision.purposes = vec![Purpose::act_reason("CLINTRCH")];
    reg.add_record(r5).unwrap();

    let mut r6 = permit_record("c6", "p6");
    r6.status = ConsentStatus::Inactive;
    reg.add_record(r6).unwrap();
    reg
}

#[test]
fn each_reason_removes_the_row() {
    let reg = registry(ConsentRegime::OptIn);
    let date = d("2024-06-01");
    let (kept, audit) =
        reg.filter_rows(rows(&["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p1"]), |r| &r.patient, &research(), date);
    let kept_patients: Vec<&str> = kept.iter().map(|r| r.patient.as_str()).collect();
    assert_eq!(kept_patients, ["p1", "p1"]);
    assert_eq!(kept[1].value, 7.0, "order preserved");
    let a = audit.audit_value();
    assert_eq!(a.removed, 6);
    assert_eq!(a.by_opt_out, 1);
    assert_eq!(a.by_deny_provision, 1);
    assert_eq!(a.by_no_applicable_consent, 4);
}

#[test]
fn deciding_rules_are_reported() {
    let reg = registry(ConsentRegime::OptIn);
    let date = d("2024-06-01");
    assert!(matches!(
        reg.evaluate("p1", &research(), date),
        ConsentDecision::Permitted(ConsentRule::PermitProvision { .. })
    ));
    match reg.evaluate("p2", &research(), date) {
        ConsentDecision::Denied(ConsentRule::DenyProvision { record, path }) => {
            assert_eq!(record, "c2");
            assert_eq!(path, "provision.provision[0]");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(reg.evaluate("p4", &research(), date), ConsentDecision::Denied(ConsentRule::OptOutList));
    match reg.evaluate("p3", &research(), date) {
        ConsentDecision::Denied(ConsentRule::Regime { why, .. }) => assert!(why.contains("outside period"), "{why}"),
        other => panic!("{other:?}"),
    }
    match reg.evaluate("p5", &research(), date) {
        ConsentDecision::Denied(ConsentRule::Regime { why, .. }) => assert!(why.contains("purpose"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The nested deny only starts in 2020; before that, the permit stands.
    assert!(reg.evaluate("p2", &research(), d("2019-06-01")).is_permitted());
    // The expired consent was valid within its period (inclusive end).
    assert!(reg.evaluate("p3", &research(), d("2019-12-31")).is_permitted());
    assert!(!reg.evaluate("p3", &research(), d("2020-01-01")).is_permitted());
    // A clinical-trial study is covered by the CLINTRCH consent and by the general HRESCH one.
    let trial = Purpose::act_reason("CLINTRCH");
    assert!(reg.evaluate("p5", &trial, d("2024-06-01")).is_permitted());
    assert!(reg.evaluate("p1", &trial, d("2024-06-01")).is_permitted());
    // A different purpose (treatment) is not covered by a research consent.
    assert!(!reg.evaluate("p1", &Purpose::act_reason("TREAT"), date).is_permitted());
}

#[test]
fn opt_out_regime_keeps_patients_without_records_but_honours_objections() {
    let reg = registry(ConsentRegime::OptOut);
    let date = d("2024-06-01");
    assert!(reg.evaluate("p7", &research(), date).is_permitted());
    assert!(reg.evaluate("p6", &research(), date).is_permitted(), "an inactive record has no effect");
    assert!(!reg.evaluate("p4", &research(), date).is_permitted());
    assert!(!reg.evaluate("p2", &research(), date).is_permitted());
}

#[test]
fn deny_is_read_broadly_and_unmodelled_conditions_fail_safe() {
    let mut reg = ConsentRegistry::new(ConsentRegime::OptIn);
    // Permit all research, deny clinical trials: a general research study is denied too.
    let mut r = permit_record("c", "p");
    let mut deny = Provision::new(ProvisionType::Deny);
    deny.purposes = vec![Purpose::act_reason("CLINTRCH")];
    r.provision.provisions.push(deny);
    reg.add_record(r).unwrap();
    assert!(!reg.evaluate("p", &research(), d("2024-01-01")).is_permitted());
    // A permit restricted by an unmodelled condition (e.g. a data class) does not apply.
    let mut r = permit_record("c2", "q");
    r.provision.has_unmodelled_conditions = true;
    reg.add_record(r).unwrap();
    assert!(!reg.evaluate("q", &research(), d("2024-01-01")).is_permitted());
    // A deny with unmodelled conditions always applies.
    let mut r = permit_record("c3", "s");
    let mut deny = Provision::new(ProvisionType::Deny);
    deny.has_unmodelled_conditions = true;
    r.provision.provisions.push(deny);
    reg.add_record(r).unwrap();
    assert!(!reg.evaluate("s", &research(), d("2024-01-01")).is_permitted());
    // Nested permit inside a deny re-permits.
    let mut base = Provision::new(ProvisionType::Deny);
    let mut exc = Provision::new(ProvisionType::Permit);
    exc.purposes = vec![Purpose::act_reason("DSRCH")];
    base.provisions.push(exc);
    reg.add_record(ConsentRecord {
        id: "c4".into(),
        patient: "t".into(),
        status: ConsentStatus::Active,
        research_scope: true,
        provision: base,
    })
    .unwrap();
    assert!(reg.evaluate("t", &Purpose::act_reason("DSRCH"), d("2024-01-01")).is_permitted());
    assert!(!reg.evaluate("t", &research(), d("2024-01-01")).is_permitted());
}

#[test]
fn invalid_records_are_refused_naming_the_field() {
    let mut reg = ConsentRegistry::new(ConsentRegime::OptIn);
    let mut r = permit_record("bad", "p");
    r.provision.period = Some(Period { start: Some(d("2020-01-02")), end: Some(d("2020-01-01")) });
    let err = reg.add_record(r).unwrap_err().to_string();
    assert!(err.contains("provision.period") && err.contains("bad"), "{err}");
    assert!(reg.add_record(permit_record("x", " ")).is_err());
    assert_eq!(ConsentStatus::from_fhir("entered-in-error"), Some(ConsentStatus::EnteredInError));
    assert_eq!(ConsentStatus::from_fhir("Active"), None);
}

/// Compile-time check: `SiteOnly<T>` must not implement `serde::Serialize`. If it ever does,
/// the call below becomes ambiguous and this test file stops compiling.
#[test]
fn site_only_is_not_serializable() {
    trait AmbiguousIfSerialize<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSerialize<()> for T {}
    #[allow(dead_code)]
    struct IsSerialize;
    impl<T: ?Sized + serde::Serialize> AmbiguousIfSerialize<IsSerialize> for T {}
    <SiteOnly<seh_policy::consent::ConsentFilterAudit> as AmbiguousIfSerialize<_>>::check();
    <SiteOnly<u64> as AmbiguousIfSerialize<_>>::check();
}

#[test]
fn purposes_are_v3_act_reason_codes_checked_case_sensitively() {
    use seh_policy::consent::{check_purpose_code, OptOutEntry, PurposeCodeError};
    // A record whose purpose is a wrongly-cased code would match no study: it is refused.
    for code in ["hresch", "Hresch", "RESEARCH"] {
        let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
        let mut r = permit_record("c1", "p1");
        let mut deny = Provision::new(ProvisionType::Deny);
        deny.purposes = vec![Purpose::act_reason(code)];
        r.provision.provisions.push(deny);
        let err = reg.add_record(r).unwrap_err().to_string();
        assert!(err.contains("c1") && err.contains("provision.provision[0].purpose[0]"), "{err}");
        let entry = OptOutEntry { purpose: Some(Purpose::act_reason(code)), since: None };
        let err = reg.add_opt_out("opt_out.csv:3", "p1", entry).unwrap_err().to_string();
        assert!(err.contains("opt_out.csv:3") && err.contains("purpose"), "{err}");
        assert!(reg.evaluate("p1", &research(), d("2024-01-01")).is_permitted(), "nothing was added");
    }
    // Another code system is not understood either.
    let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
    let mut r = permit_record("c1", "p1");
    r.provision.purposes = vec![Purpose { system: "http://example.org".into(), code: "HRESCH".into() }];
    assert!(reg.add_record(r).is_err());
    assert_eq!(Purpose::parse_act_reason("hresch"), Err(PurposeCodeError::WrongCase { expected: "HRESCH" }));
    assert_eq!(Purpose::parse_act_reason("HTEST").map(|p| p.code), Ok("HTEST".to_owned()));
    assert!(check_purpose_code("PUBHLTH").is_ok() && check_purpose_code("COVERAGE").is_ok());
}

#[test]
fn the_purpose_hierarchy_covers_every_branch_of_purpose_of_use() {
    // BIORCH is research: an objection to research covers a biomedical-research study.
    assert!(research().subsumes(&Purpose::act_reason("BIORCH")));
    assert!(research().subsumes(&Purpose::act_reason("CLINTRCHNPC")));
    assert!(Purpose::act_reason("TREAT").subsumes(&Purpose::act_reason("BTG")));
    assert!(Purpose::act_reason("HOPERAT").subsumes(&Purpose::act_reason("HTEST")));
    assert!(!research().subsumes(&Purpose::act_reason("TREAT")));
    assert!(!Purpose::act_reason("CLINTRCH").subsumes(&research()));
    let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
    reg.add_opt_out("l2", "p", seh_policy::consent::OptOutEntry { purpose: Some(research()), since: None }).unwrap();
    assert!(!reg.evaluate("p", &Purpose::act_reason("BIORCH"), d("2024-01-01")).is_permitted());
    assert!(reg.evaluate("p", &Purpose::act_reason("TREAT"), d("2024-01-01")).is_permitted());
}

#[test]
fn opt_out_entries_are_counted_as_opt_outs_and_pending_ones_are_reported() {
    use seh_policy::consent::OptOutEntry;
    let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
    let entry =
        |p: Option<&str>, since: Option<&str>| OptOutEntry { purpose: p.map(Purpose::act_reason), since: since.map(d) };
    reg.add_opt_out("l2", "a", entry(Some("HRESCH"), Some("2020-01-01"))).unwrap();
    reg.add_opt_out("l3", "b", entry(Some("CLINTRCH"), None)).unwrap();
    reg.add_opt_out("l4", "c", entry(None, Some("2030-01-01"))).unwrap();
    reg.add_opt_out("l5", "e", entry(Some("TREAT"), Some("2030-01-01"))).unwrap();
    let mut r = permit_record("k", "f");
    r.provision.kind = ProvisionType::Deny;
    reg.add_record(r).unwrap();
    let date = d("2024-06-01");
    // a: opted out (dated); b: opted out of a narrower research purpose (read broadly);
    // c: pending (kept, counted); e: pending but for another purpose (kept, not counted);
    // f: a deny; g: nothing (opt-out regime: kept).
    let (kept, audit) = reg.filter_rows(rows(&["a", "b", "c", "c", "e", "f", "g"]), |r| &r.patient, &research(), date);
    let kept: Vec<&str> = kept.iter().map(|r| r.patient.as_str()).collect();
    assert_eq!(kept, ["c", "c", "e", "g"]);
    let a = audit.audit_value();
    assert_eq!((a.kept, a.removed, a.by_opt_out, a.by_deny_provision, a.by_no_applicable_consent), (4, 3, 2, 1, 0));
    assert_eq!(a.kept_with_pending_opt_out, 2);
    // From its date on, the pending opt-out applies (inclusive).
    assert_eq!(reg.evaluate("c", &research(), d("2030-01-01")), ConsentDecision::Denied(ConsentRule::OptOutList));
    assert!(reg.evaluate("c", &research(), d("2029-12-31")).is_permitted());
}

#[test]
fn a_site_policy_with_a_wrongly_cased_purpose_is_refused_naming_the_key_and_line() {
    use seh_policy::error::PolicyError;
    use seh_policy::SitePolicy;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/policy/site-policy.toml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(SitePolicy::from_toml_str(&text, "p").is_ok());
    assert!(text.contains("\"HRESCH\""));
    let bad = text.replacen("\"HRESCH\"", "\"hresch\"", 1);
    match SitePolicy::from_toml_str(&bad, "p") {
        Err(PolicyError::Invalid { key, reason, line, .. }) => {
            let want = 1 + text.lines().position(|l| l.starts_with("purposes = ")).unwrap();
            assert_eq!((key.as_str(), line), ("consent.purposes", want));
            assert!(reason.contains("write `HRESCH`"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
