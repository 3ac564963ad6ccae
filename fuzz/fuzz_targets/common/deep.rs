//! A depth amplifier shared by the parser targets, so that libFuzzer reaches deep nesting
//! from short inputs: an input `DEEP:<k>:<open>:<core>:<close>` (`k` a decimal count, the
//! three parts separated by `:` and free of it) stands for `open` repeated `k` times, then
//! `core`, then `close` repeated `k` times. Results longer than [`MAX_AMPLIFIED`] are skipped.

/// The longest amplified text tried (well past every parser's length limit).
pub const MAX_AMPLIFIED: usize = 1 << 20;

/// The text `data` stands for: itself, or its amplification when it has the `DEEP:` form.
pub fn expand(text: &str) -> Option<String> {
    let rest = text.strip_prefix("DEEP:")?;
    let mut parts = rest.splitn(4, ':');
    let k: usize = parts.next()?.parse().ok()?;
    let (open, core, close) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let len = k.checked_mul(open.len() + close.len())?.checked_add(core.len())?;
    if len > MAX_AMPLIFIED {
        return None;
    }
    Some(format!("{}{core}{}", open.repeat(k), close.repeat(k)))
}
