//! Bad input: every case exits with code 2 and a message naming the file, line
//! and column (or the formula part), never a panic or a data value.

use assert_cmd::Command;

/// Writes `contents` to a fresh file named `name` in a per-test directory; returns its path.
fn file(test: &str, name: &str, contents: &str) -> String {
    let dir = std::env::temp_dir().join(format!("seh-cli-errors-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

/// Runs `seh` and returns stderr, asserting exit code 2 and no panic.
fn fails(args: &[&str]) -> String {
    let out = Command::cargo_bin("seh").unwrap().args(args).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "seh {args:?}: stderr {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    err
}

fn cox(path: &str, formula: &str) -> String {
    fails(&["fit", "cox", "--data", path, "--formula", formula])
}

const GOOD: &str = "time,status,age,sex\n5,1,60,1\n8,0,55,2\n3,1,70,1\n9,1,48,2\n";

#[test]
fn ragged_csv() {
    let p = file("ragged", "ragged.csv", "time,status,age\n5,1,60\n8,0\n");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("ragged.csv: line 3: expected 3 fields as in the header, found 2"), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

#[test]
fn text_in_a_numeric_column() {
    let p = file("text", "text.csv", "time,status,age\n5,1,60\n8,0,old\n");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("text.csv: line 3, column `age`: not a number"), "{e}");
    assert!(!e.contains("old"), "the value is not echoed: {e}");
}

#[test]
fn unknown_column_in_formula() {
    let p = file("unknown", "d.csv", GOOD);
    let e = cox(&p, "Surv(time, status) ~ agee + sex");
    assert!(e.contains("unknown column `agee` (did you mean `age`?) at 22..26"), "{e}");
    assert!(e.contains("\n  Surv(time, status) ~ agee + sex\n                       ^^^^"), "{e}");
}

#[test]
fn empty_file() {
    let p = file("empty", "empty.csv", "");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("empty.csv: the file is empty"), "{e}");
    let p = file("empty", "header.csv", "time,status,age\n");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("header.csv: the file has a header but no data rows"), "{e}");
}

#[test]
fn missing_file() {
    let e = cox("/nonexistent/dir/nope.csv", "Surv(time, status) ~ age");
    assert!(e.contains("nope.csv: cannot read the data file"), "{e}");
}

#[test]
fn no_events() {
    let p = file("noevents", "noev.csv", "time,status,age\n5,0,60\n8,0,55\n3,0,70\n");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("noev.csv: column `status`: no events"), "{e}");
}

#[test]
fn single_valued_covariate() {
    let p = file("single", "single.csv", "time,status,age\n5,1,60\n8,0,60\n3,1,60\n");
    let e = cox(&p, "Surv(time, status) ~ age");
    assert!(e.contains("single.csv: covariate `age` has the same value in all 3 complete rows"), "{e}");
    let e = cox(&p, "Surv(time, status) ~ factor(age)");
    assert!(e.contains("single.csv: column `age`: `factor(age)` has a single level"), "{e}");
}

#[test]
fn start_not_before_stop() {
    let p = file("startstop", "cp.csv", "start,stop,event,x\n0,5,1,1\n5,5,0,2\n0,3,1,3\n");
    let e = cox(&p, "Surv(start, stop, event) ~ x");
    assert!(e.contains("cp.csv: line 3, columns `start`/`stop`: the start time must be before the stop time"), "{e}");
}

#[test]
fn negative_times() {
    let p = file("negative", "neg.csv", "time,status,x\n5,1,1\n-2,1,2\n3,0,3\n");
    let e = cox(&p, "Surv(time, status) ~ x");
    assert!(e.contains("neg.csv: line 3, column `time`: survival times must be >= 0"), "{e}");
    let e = fails(&["fit", "km", "--data", &p, "--formula", "Surv(time, status) ~ 1"]);
    assert!(e.contains("neg.csv: line 3, column `time`"), "{e}");
}

#[test]
fn bad_event_codes_and_log() {
    let p = file("event", "ev.csv", "time,status,x\n5,1,1\n4,3,2\n3,0,0\n");
    let e = cox(&p, "Surv(time, status) ~ x");
    assert!(e.contains("ev.csv: line 3, column `status`: the event indicator must be 0/1"), "{e}");
    let p = file("log", "log.csv", "time,status,x\n5,1,1\n4,1,2\n3,0,0\n");
    let e = cox(&p, "Surv(time, status) ~ log(x)");
    assert!(e.contains("log.csv: line 4, column `x`: log() needs positive values"), "{e}");
}

#[test]
fn formula_errors_show_a_caret() {
    let p = file("formula", "d.csv", GOOD);
    let e = cox(&p, "Sruv(time, status) ~ age");
    assert!(e.contains("formula: unknown function `Sruv`") && e.contains("at 1..5"), "{e}");
    assert!(e.contains("\n  Sruv(time, status) ~ age\n  ^^^^"), "{e}");
    let e = cox(&p, "Surv(time, status) ~ age +");
    assert!(e.contains("formula: expected a column name"), "{e}");
    let e = cox(&p, "Surv(time, status) age");
    assert!(e.contains("`~`"), "{e}");
}

#[test]
fn glm_response_checked_with_line() {
    let p = file("glm", "g.csv", "y,x\n0,1\n1,2\n2,3\n0,4\n");
    let e = fails(&["fit", "glm", "--data", &p, "--formula", "y ~ x", "--family", "binomial"]);
    assert!(e.contains("g.csv: line 4: column `y`: the Binomial response must be 0/1"), "{e}");
}

#[test]
fn flags_are_validated() {
    let p = file("flags", "d.csv", GOOD);
    let e = fails(&["fit", "cox", "--data", &p, "--formula", "Surv(time, status) ~ tt(age)"]);
    assert!(e.contains("give the transform with --tt"), "{e}");
    let e = fails(&["fit", "cox", "--data", &p, "--formula", "Surv(time, status) ~ age", "--tt", "x*log(t)"]);
    assert!(e.contains("no tt() term"), "{e}");
    let e = fails(&["fit", "cox", "--data", &p, "--formula", "Surv(time, status) ~ tt(age)", "--tt", "x*lg(t)"]);
    assert!(e.contains("--tt: tt expression: unknown name `lg`") && e.contains("at column 3"), "{e}");
    let e = fails(&["fit", "cox", "--data", &p, "--formula", "Surv(time, status) ~ age", "--ties", "fast"]);
    assert!(e.contains("invalid value 'fast'"), "{e}");
    let e = fails(&["fit", "glm", "--data", &p, "--formula", "status ~ age"]);
    assert!(e.contains("--family"), "{e}");
    let e = fails(&["fit", "km", "--data", &p, "--formula", "Surv(time, status) ~ age + strata(sex) + cluster(age)"]);
    assert!(e.contains("`cluster()` is not supported in a Kaplan-Meier fit"), "{e}");
}
