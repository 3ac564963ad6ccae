//! Time-transform expressions for Cox `tt()` terms: `x*log(t)`, `x*log(t+20)`,
//! `x*(t>100)`, ...
//!
//! An expression in the covariate value `x` and the event time `t` built from
//! numbers, `+ - * / ^`, parentheses, the functions `log`, `exp`, `sqrt`, `abs`,
//! and the comparisons `< <= > >= == !=` (which yield 1 or 0, as R's
//! `as.numeric(t > 100)`). Precedence follows R: `^` (right-associative) binds
//! tighter than unary minus (`-x^2` is `-(x^2)`), then `* /`, `+ -`, and the
//! comparisons last.
//!
//! [`TtExpr::parse`] compiles the text to a small postfix program so that
//! [`TtExpr::eval`], called once per (row, event time) pair while fitting, does
//! no allocation or recursion.

use std::fmt;

/// The longest `tt` expression accepted, in bytes (real ones are a few dozen characters).
/// Checked before the text is read.
pub const MAX_TT_LEN: usize = 1024;

/// The deepest nesting accepted: parentheses, function calls, unary signs and `^` each open a
/// level. The parser refuses the level past this before recursing into it.
pub const MAX_TT_DEPTH: usize = 64;

/// A compiled time-transform expression.
#[derive(Debug, Clone, PartialEq)]
pub struct TtExpr {
    source: String,
    program: Vec<Op>,
    max_stack: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Const(f64),
    X,
    T,
    Neg,
    Bin(Bin),
    Func(Func),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Log,
    Exp,
    Sqrt,
    Abs,
}

/// An error in a `--tt` expression, with the 0-based byte position at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tt expression: {message} at column {}\n  {source_text}\n  {}^", position + 1, " ".repeat(*position))]
pub struct TtExprError {
    /// What is wrong.
    pub message: String,
    /// 0-based byte offset into the expression text.
    pub position: usize,
    source_text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    End,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    out: Vec<Op>,
    /// Levels of nesting around the current position (see [`MAX_TT_DEPTH`]).
    depth: usize,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, TtExprError> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |m: String, p: usize| TtExprError { message: m, position: p, source_text: text.to_string() };
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == b'.' {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let save = i;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                if i < b.len() && b[i].is_ascii_digit() {
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let v: f64 = text[start..i].parse().map_err(|_| err("malformed number".into(), start))?;
            out.push((Tok::Num(v), start));
            continue;
        }
        if c.is_ascii_alphabetic() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            out.push((Tok::Ident(text[start..i].to_string()), start));
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let tok = match two {
            "<=" => Some("<="),
            ">=" => Some(">="),
            "==" => Some("=="),
            "!=" => Some("!="),
            _ => None,
        };
        if let Some(op) = tok {
            out.push((Tok::Op(op), start));
            i += 2;
            continue;
        }
        let tok = match c {
            b'+' => Tok::Op("+"),
            b'-' => Tok::Op("-"),
            b'*' => Tok::Op("*"),
            b'/' => Tok::Op("/"),
            b'^' => Tok::Op("^"),
            b'<' => Tok::Op("<"),
            b'>' => Tok::Op(">"),
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(format!("unexpected character `{ch}`"), start));
            }
        };
        out.push((tok, start));
        i += 1;
    }
    out.push((Tok::End, text.len()));
    Ok(out)
}

impl Parser<'_> {
    /// Runs `inner` one nesting level deeper, refusing the level past [`MAX_TT_DEPTH`].
    fn nested(&mut self, inner: fn(&mut Self) -> Result<(), TtExprError>) -> Result<(), TtExprError> {
        if self.depth >= MAX_TT_DEPTH {
            return Err(self.err(format!("expression nests deeper than {MAX_TT_DEPTH} levels")));
        }
        self.depth += 1;
        let r = inner(self);
        self.depth -= 1;
        r
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |t| &t.0)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.text.len(), |t| t.1)
    }

    fn err(&self, message: String) -> TtExprError {
        TtExprError { message, position: self.at(), source_text: self.text.to_string() }
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Num(_) => "a number".into(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Op(o) => format!("`{o}`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::End => "the end of the expression".into(),
        }
    }

    fn comparison(&mut self) -> Result<(), TtExprError> {
        self.additive()?;
        let op = match self.peek() {
            Tok::Op("<") => Bin::Lt,
            Tok::Op("<=") => Bin::Le,
            Tok::Op(">") => Bin::Gt,
            Tok::Op(">=") => Bin::Ge,
            Tok::Op("==") => Bin::Eq,
            Tok::Op("!=") => Bin::Ne,
            _ => return Ok(()),
        };
        self.pos += 1;
        self.additive()?;
        self.out.push(Op::Bin(op));
        Ok(())
    }

    fn additive(&mut self) -> Result<(), TtExprError> {
        self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => Bin::Add,
                Tok::Op("-") => Bin::Sub,
                _ => return Ok(()),
            };
            self.pos += 1;
            self.multiplicative()?;
            self.out.push(Op::Bin(op));
        }
    }

    fn multiplicative(&mut self) -> Result<(), TtExprError> {
        self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => Bin::Mul,
                Tok::Op("/") => Bin::Div,
                _ => return Ok(()),
            };
            self.pos += 1;
            self.unary()?;
            self.out.push(Op::Bin(op));
        }
    }

    fn unary(&mut self) -> Result<(), TtExprError> {
        match self.peek() {
            Tok::Op("-") => {
                self.pos += 1;
                self.nested(Self::unary)?;
                self.out.push(Op::Neg);
                Ok(())
            }
            Tok::Op("+") => {
                self.pos += 1;
                self.nested(Self::unary)
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<(), TtExprError> {
        self.atom()?;
        if *self.peek() == Tok::Op("^") {
            self.pos += 1;
            self.nested(Self::unary)?; // right-associative; allows 2^-1
            self.out.push(Op::Bin(Bin::Pow));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), TtExprError> {
        match self.peek().clone() {
            Tok::Num(v) => {
                self.pos += 1;
                self.out.push(Op::Const(v));
                Ok(())
            }
            Tok::LParen => {
                self.pos += 1;
                self.nested(Self::comparison)?;
                if *self.peek() != Tok::RParen {
                    return Err(self.err(format!("expected `)`, found {}", self.describe())));
                }
                self.pos += 1;
                Ok(())
            }
            Tok::Ident(name) => {
                let func = match name.as_str() {
                    "x" => {
                        self.pos += 1;
                        self.out.push(Op::X);
                        return Ok(());
                    }
                    "t" => {
                        self.pos += 1;
                        self.out.push(Op::T);
                        return Ok(());
                    }
                    "log" => Func::Log,
                    "exp" => Func::Exp,
                    "sqrt" => Func::Sqrt,
                    "abs" => Func::Abs,
                    _ => {
                        return Err(self.err(format!(
                            "unknown name `{name}` (use x for the covariate, t for time, and log, exp, sqrt, abs)"
                        )))
                    }
                };
                self.pos += 1;
                if *self.peek() != Tok::LParen {
                    return Err(self.err(format!("expected `(` after `{name}`, found {}", self.describe())));
                }
                self.pos += 1;
                self.nested(Self::comparison)?;
                if *self.peek() != Tok::RParen {
                    return Err(self.err(format!("expected `)`, found {}", self.describe())));
                }
                self.pos += 1;
                self.out.push(Op::Func(func));
                Ok(())
            }
            _ => Err(self.err(format!("expected a number, x, t, a function or `(`, found {}", self.describe()))),
        }
    }
}

impl TtExpr {
    /// Parses and compiles `text`. Errors give the byte position at fault.
    /// Longer than [`MAX_TT_LEN`] or nested deeper than [`MAX_TT_DEPTH`] is an error too.
    pub fn parse(text: &str) -> Result<TtExpr, TtExprError> {
        if text.len() > MAX_TT_LEN {
            let shown: String = text.chars().take(40).collect();
            return Err(TtExprError {
                message: format!("expression longer than {MAX_TT_LEN} characters ({} bytes)", text.len()),
                position: 0,
                source_text: format!("{shown}..."),
            });
        }
        let toks = lex(text)?;
        let mut p = Parser { text, toks, pos: 0, out: Vec::new(), depth: 0 };
        p.comparison()?;
        if *p.peek() != Tok::End {
            return Err(p.err(format!("expected an operator or the end, found {}", p.describe())));
        }
        let mut depth = 0usize;
        let mut max_stack = 0usize;
        for op in &p.out {
            match op {
                Op::Const(_) | Op::X | Op::T => depth += 1,
                Op::Bin(_) => depth -= 1,
                Op::Neg | Op::Func(_) => {}
            }
            max_stack = max_stack.max(depth);
        }
        Ok(TtExpr { source: text.trim().to_string(), program: p.out, max_stack })
    }

    /// The expression `x` (the identity transform, R's default when no `tt` is given).
    pub fn identity() -> TtExpr {
        TtExpr { source: "x".into(), program: vec![Op::X], max_stack: 1 }
    }

    /// Whether the expression depends on `t` (if not, `tt()` is an ordinary covariate).
    pub fn uses_time(&self) -> bool {
        self.program.contains(&Op::T)
    }

    /// Evaluates at covariate value `x` and time `t`. Follows IEEE arithmetic:
    /// `log(0)` is `-inf`, `log(-1)` is NaN; callers check finiteness of the results.
    pub fn eval(&self, x: f64, t: f64) -> f64 {
        // Expressions are tiny; a fixed array avoids allocating per call.
        let mut stack = [0.0f64; 32];
        let mut heap;
        let st: &mut [f64] = if self.max_stack <= stack.len() {
            &mut stack
        } else {
            heap = vec![0.0; self.max_stack];
            &mut heap
        };
        let mut n = 0usize;
        for op in &self.program {
            match *op {
                Op::Const(v) => {
                    st[n] = v;
                    n += 1;
                }
                Op::X => {
                    st[n] = x;
                    n += 1;
                }
                Op::T => {
                    st[n] = t;
                    n += 1;
                }
                Op::Neg => st[n - 1] = -st[n - 1],
                Op::Func(f) => {
                    let a = st[n - 1];
                    st[n - 1] = match f {
                        Func::Log => a.ln(),
                        Func::Exp => a.exp(),
                        Func::Sqrt => a.sqrt(),
                        Func::Abs => a.abs(),
                    };
                }
                Op::Bin(b) => {
                    let (a, c) = (st[n - 2], st[n - 1]);
                    n -= 1;
                    let bool01 = |v: bool| if v { 1.0 } else { 0.0 };
                    st[n - 1] = match b {
                        Bin::Add => a + c,
                        Bin::Sub => a - c,
                        Bin::Mul => a * c,
                        Bin::Div => a / c,
                        Bin::Pow => a.powf(c),
                        Bin::Lt => bool01(a < c),
                        Bin::Le => bool01(a <= c),
                        Bin::Gt => bool01(a > c),
                        Bin::Ge => bool01(a >= c),
                        Bin::Eq => bool01(a == c),
                        Bin::Ne => bool01(a != c),
                    };
                }
            }
        }
        st[0]
    }

    /// The expression text as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for TtExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str, x: f64, t: f64) -> f64 {
        TtExpr::parse(s).unwrap_or_else(|e| panic!("{e}")).eval(x, t)
    }

    #[test]
    fn evaluates_common_transforms() {
        assert_eq!(ev("x*log(t)", 2.0, 10.0), 2.0 * 10f64.ln());
        assert_eq!(ev("x*log(t+20)", 3.0, 5.0), 3.0 * 25f64.ln());
        assert_eq!(ev("x*t", 3.0, 5.0), 15.0);
        assert_eq!(ev("x*(t>100)", 3.0, 50.0), 0.0);
        assert_eq!(ev("x*(t>100)", 3.0, 150.0), 3.0);
        assert_eq!(ev("x * (t >= 100)", 3.0, 100.0), 3.0);
        assert_eq!(ev("x", 7.5, 1.0), 7.5);
        assert_eq!(ev("sqrt(abs(x)) + exp(0)", -4.0, 1.0), 3.0);
        assert_eq!(ev("x / 2 - 1", 4.0, 0.0), 1.0);
        assert_eq!(ev("1.5e1 * t", 0.0, 2.0), 30.0);
        assert_eq!(ev("(t == 3) + (t != 3) * 10", 0.0, 3.0), 1.0);
        assert_eq!(ev("t < 3", 0.0, 3.0), 0.0);
        assert_eq!(ev("t <= 3", 0.0, 3.0), 1.0);
    }

    #[test]
    fn precedence_like_r() {
        assert_eq!(ev("-x^2", 3.0, 0.0), -9.0);
        assert_eq!(ev("2^3^2", 0.0, 0.0), 512.0);
        assert_eq!(ev("2^-1", 0.0, 0.0), 0.5);
        assert_eq!(ev("1 + 2 * 3", 0.0, 0.0), 7.0);
        assert_eq!(ev("(1 + 2) * 3", 0.0, 0.0), 9.0);
        assert_eq!(ev("8 / 4 / 2", 0.0, 0.0), 1.0);
        assert_eq!(ev("x + 1 > t", 1.0, 1.5), 1.0);
    }

    #[test]
    fn uses_time() {
        assert!(TtExpr::parse("x*log(t)").unwrap().uses_time());
        assert!(!TtExpr::parse("x*2").unwrap().uses_time());
        assert!(!TtExpr::identity().uses_time());
    }

    #[test]
    fn errors_have_positions() {
        let e = TtExpr::parse("x*lg(t)").unwrap_err();
        assert_eq!(e.position, 2);
        assert!(e.to_string().contains("unknown name `lg`"), "{e}");
        assert!(e.to_string().ends_with("\n  x*lg(t)\n    ^"), "{e}");
        assert_eq!(TtExpr::parse("x*(t>100").unwrap_err().position, 8);
        assert_eq!(TtExpr::parse("x*").unwrap_err().position, 2);
        assert_eq!(TtExpr::parse("x $ t").unwrap_err().position, 2);
        assert_eq!(TtExpr::parse("x t").unwrap_err().position, 2);
        assert_eq!(TtExpr::parse("").unwrap_err().position, 0);
        assert_eq!(TtExpr::parse("log t").unwrap_err().position, 4);
    }

    #[test]
    fn deep_expressions_do_not_overflow_the_fixed_stack() {
        let s = (0..40).map(|_| "(1+").collect::<String>() + "x" + &")".repeat(40);
        assert_eq!(ev(&s, 1.0, 0.0), 41.0);
    }
}
