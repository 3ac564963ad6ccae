//! A Cox `tt()` time-transform expression (`x*log(t+20)`), part of a researcher's spec:
//! parsing never panics or overflows the stack, the length and nesting limits hold, and a
//! compiled expression evaluates anywhere without panicking (its postfix program is well
//! formed). Depth-heavy seeds are in `fuzz/seeds/tt_expr/`; `DEEP:` inputs are amplified
//! (see `common/deep.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use seh_stats::ttexpr::{TtExpr, MAX_TT_LEN};

#[path = "common/deep.rs"]
mod deep;

fn check(text: &str) {
    match TtExpr::parse(text) {
        Ok(e) => {
            assert!(text.len() <= MAX_TT_LEN);
            for (x, t) in [(0.0, 0.0), (1.5, 100.0), (-3.0, 1e-9), (f64::NAN, f64::INFINITY)] {
                let _ = e.eval(x, t);
            }
            let again = TtExpr::parse(e.as_str()).expect("the trimmed source parses again");
            assert_eq!(again.eval(2.0, 3.0).to_bits(), e.eval(2.0, 3.0).to_bits());
        }
        Err(err) => {
            if text.len() > MAX_TT_LEN {
                assert!(err.message.contains("longer than"), "{err}");
            }
            assert!(err.to_string().len() < 2 * MAX_TT_LEN + 400, "an error that quotes too much");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(text);
    if let Some(deep) = deep::expand(text) {
        check(&deep);
    }
});
