//! Hostile cohort definitions: deep TOML nesting and oversized files are refused with an
//! error naming the file — never a stack overflow. The toml crate bounds nesting itself
//! (recursion limit 80, its `unbounded` feature is off); these tests keep it that way, and run
//! on a small stack so a recursion per level would crash the test process.

use seh_data::cohort::{CohortDef, MAX_COHORT_DEF_LEN};

const VALID: &str = r#"
name = "ckd-death"
[index]
kind = "date"
date = "2015-01-01"
[follow_up]
end_date = "2020-12-31"
[outcome]
kind = "death"
[[baseline]]
kind = "age"
name = "age"
"#;

fn small_stack(text: String) -> Result<CohortDef, String> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || CohortDef::from_toml(&text, "hostile.toml").map_err(|e| e.to_string()))
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn the_valid_definition_parses() {
    small_stack(VALID.to_string()).unwrap();
}

#[test]
fn deeply_nested_toml_is_refused() {
    let deep = [
        // Arrays in an array, inline tables in an inline table, dotted keys, table headers.
        format!("{VALID}\nx = {}1{}\n", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{VALID}\nx = {}1{}\n", "{a = ".repeat(40_000), "}".repeat(40_000)),
        format!("{VALID}\n{} = 1\n", vec!["a"; 100_000].join(".")),
        format!("{}\n{VALID}", format_args!("[{}]", vec!["a"; 100_000].join("."))),
        // Unclosed.
        format!("{VALID}\nx = {}", "[".repeat(200_000)),
    ];
    for text in deep {
        let e = small_stack(text).unwrap_err();
        assert!(e.starts_with("hostile.toml: "), "{e}");
    }
}

#[test]
fn oversized_definition_is_refused_before_parsing() {
    // A valid definition padded with a comment past the limit.
    let text = format!("{VALID}#{}\n", "x".repeat(MAX_COHORT_DEF_LEN));
    let e = small_stack(text).unwrap_err();
    assert!(e.starts_with("hostile.toml: definition longer than 262144 bytes"), "{e}");
    // Just under the limit is fine.
    let pad = MAX_COHORT_DEF_LEN - VALID.len() - 2;
    small_stack(format!("{VALID}#{}\n", "x".repeat(pad))).unwrap();
}
