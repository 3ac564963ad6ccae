//! The node's `[consent] file`: purposes are v3-ActReason purpose-of-use codes, checked
//! case-sensitively at node start (naming the file, line and field); future-dated lines are
//! reported; objection lines count as opt-outs in the consent filter's breakdown.

use std::path::PathBuf;

use seh_node::governance::read_consent_file;
use seh_policy::consent::{ConsentRegime, ConsentRegistry, Purpose};
use seh_policy::Date;

fn file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seh-node-consent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn today() -> Date {
    Date::new(2026, 1, 1).unwrap()
}

#[test]
fn a_wrongly_cased_or_unknown_purpose_is_refused_naming_file_line_and_field() {
    for (i, (purpose, hint)) in
        [("hresch", "write `HRESCH`"), ("Hresch", "write `HRESCH`"), ("FOO", "not a v3-ActReason")]
            .into_iter()
            .enumerate()
    {
        let path =
            file(&format!("bad{i}.csv"), &format!("patient,purpose,date\n17,HRESCH,\n18,{purpose},2020-01-01\n"));
        let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
        let err = read_consent_file(&path, &mut reg, today()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:3: field `purpose`: ", path.display())), "{err}");
        assert!(err.contains(hint), "{err}");
        assert!(!err.contains("18"), "no patient id in the message: {err}");
        let path = file(&format!("bad_d{i}.csv"), &format!("patient,purpose,date,decision\n18,{purpose},,deny\n"));
        let err = read_consent_file(&path, &mut reg, today()).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}:2: field `purpose`: ", path.display())), "{err}");
    }
}

#[test]
fn objections_count_as_opt_outs_and_future_dated_lines_are_reported() {
    let path = file(
        "objections.csv",
        "patient,purpose,date\n1,HRESCH,2020-01-01\n2,*,\n3,BIORCH,\n4,HRESCH,2027-03-01\n5,TREAT,\n",
    );
    let mut reg = ConsentRegistry::new(ConsentRegime::OptOut);
    let read = read_consent_file(&path, &mut reg, today()).unwrap();
    assert_eq!(read.entries, 5);
    assert_eq!(read.future_dated, [5]);
    let rows: Vec<&str> = vec!["1", "1", "2", "3", "4", "4", "5", "6"];
    let (kept, audit) = reg.filter_rows(rows, |r| *r, &Purpose::act_reason("HRESCH"), today());
    assert_eq!(kept, ["4", "4", "5", "6"]);
    let a = audit.audit_value();
    assert_eq!((a.kept, a.removed, a.by_opt_out, a.by_deny_provision), (4, 4, 4, 0), "{a:?}");
    assert_eq!(a.kept_with_pending_opt_out, 2, "{a:?}");

    let path = file("decisions.csv", "patient,purpose,date,decision\n1,HRESCH,,deny\n2,CLINTRCH,,permit\n");
    let mut reg = ConsentRegistry::new(ConsentRegime::OptIn);
    read_consent_file(&path, &mut reg, today()).unwrap();
    let (kept, audit) = reg.filter_rows(vec!["1", "2", "3"], |r| *r, &Purpose::act_reason("CLINTRCH"), today());
    assert_eq!(kept, ["2"]);
    let a = audit.audit_value();
    assert_eq!((a.by_opt_out, a.by_deny_provision, a.by_no_applicable_consent), (0, 1, 1), "{a:?}");
}
