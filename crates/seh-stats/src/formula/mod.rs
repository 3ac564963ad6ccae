//! R-style model formulas: `Surv(start, stop, event) ~ age + factor(sex) * log(dose) + strata(inst)`.
//!
//! Two steps, as in R:
//!
//! 1. [`Formula::parse`] turns text into an abstract syntax tree ([`Expr`]) and
//!    checks only the grammar ("parse, don't validate"). Every node keeps the byte
//!    [`Span`] it came from, so later errors can point at the offending text.
//! 2. [`Terms::from_formula`] expands the right-hand side the way R's
//!    `terms.formula` does: `a*b` becomes `a + b + a:b`, `- 1` / `+ 0` remove the
//!    intercept, duplicate terms collapse, and terms are ordered by degree (main
//!    effects first). The special functions `strata()`, `cluster()` and `offset()`
//!    are taken out of the term list; `tt()`, `factor()` and `log()` stay terms.
//!
//! The model frame ([`crate::model`]) then evaluates the terms on a
//! [`crate::DataFrame`].
//!
//! Supported grammar (a subset of R's):
//!
//! ```text
//! formula := [expr] '~' expr
//! expr    := ['-'] product (('+' | '-') product)*
//! product := inter ('*' inter)*
//! inter   := atom (':' atom)*
//! atom    := name | number | name '(' [expr (',' expr)*] ')' | '(' expr ')'
//! name    := [A-Za-z.][A-Za-z0-9._]* | `backquoted`
//! ```

mod parse;
mod terms;

/// The longest formula text accepted, in bytes (a real formula is well under 2 KB). Checked
/// before anything else, so a hostile spec costs no more than reading this many bytes.
pub const MAX_FORMULA_LEN: usize = 4096;

/// The deepest nesting of parentheses and function calls accepted (real formulas nest fewer
/// than 10 levels). The recursive-descent parser counts levels and refuses the one past this
/// before recursing, so no formula can exhaust the stack.
pub const MAX_FORMULA_DEPTH: usize = 64;

/// The most binary operators (`+ - * :`) a formula may have: each one is a level of the
/// left-deep syntax tree, which every later step walks recursively, so this bounds the stack
/// they need (a formula of 500 terms is far wider than any real model). Counted on the tokens,
/// before the parser runs.
pub const MAX_FORMULA_OPERATORS: usize = 512;

/// The most terms the right-hand side may expand to, counted at every step of the expansion
/// (`a*b*c*...` doubles the count with each factor).
pub const MAX_FORMULA_TERMS: usize = 4096;

use std::fmt;

pub use terms::{Special, SpecialKind, Term, Terms, VarKind, Variable};

/// A half-open byte range `start..end` into the formula text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte (0-based).
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// A binary formula operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `a + b`: both terms (or, inside a function call, arithmetic addition).
    Plus,
    /// `a - b`: remove the terms of `b` (or arithmetic subtraction inside a call).
    Minus,
    /// `a * b`: `a + b + a:b`.
    Star,
    /// `a:b`: the interaction.
    Colon,
}

impl BinOp {
    fn symbol(self) -> &'static str {
        match self {
            BinOp::Plus => " + ",
            BinOp::Minus => " - ",
            BinOp::Star => " * ",
            BinOp::Colon => ":",
        }
    }
}

/// A node of the formula syntax tree. Spans are byte ranges into the source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A column name such as `age` or `` `my var` ``.
    Name {
        /// The name without back-quotes.
        name: String,
        /// Where it is.
        span: Span,
    },
    /// A numeric literal (`0` and `1` are meaningful on the right-hand side).
    Number {
        /// Its value.
        value: f64,
        /// Where it is.
        span: Span,
    },
    /// A function call such as `Surv(time, status)` or `log(dose)`.
    Call {
        /// The function name.
        func: String,
        /// Where the function name is.
        func_span: Span,
        /// The arguments in order.
        args: Vec<Expr>,
        /// The whole call, name to closing parenthesis.
        span: Span,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left operand.
        lhs: Box<Expr>,
        /// Right operand.
        rhs: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// Unary minus, `- 1`.
    Neg {
        /// The operand.
        operand: Box<Expr>,
        /// The whole expression.
        span: Span,
    },
    /// `( inner )`.
    Paren {
        /// The parenthesised expression.
        inner: Box<Expr>,
        /// Including the parentheses.
        span: Span,
    },
}

impl Expr {
    /// The byte span of this node.
    pub fn span(&self) -> Span {
        match self {
            Expr::Name { span, .. }
            | Expr::Number { span, .. }
            | Expr::Call { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Neg { span, .. }
            | Expr::Paren { span, .. } => *span,
        }
    }

    /// A copy with every span set to `0..0`, for comparing trees built from different texts.
    pub fn without_spans(&self) -> Expr {
        let z = Span::default();
        match self {
            Expr::Name { name, .. } => Expr::Name { name: name.clone(), span: z },
            Expr::Number { value, .. } => Expr::Number { value: *value, span: z },
            Expr::Call { func, args, .. } => Expr::Call {
                func: func.clone(),
                func_span: z,
                args: args.iter().map(Expr::without_spans).collect(),
                span: z,
            },
            Expr::Binary { op, lhs, rhs, .. } => Expr::Binary {
                op: *op,
                lhs: Box::new(lhs.without_spans()),
                rhs: Box::new(rhs.without_spans()),
                span: z,
            },
            Expr::Neg { operand, .. } => Expr::Neg { operand: Box::new(operand.without_spans()), span: z },
            Expr::Paren { inner, .. } => Expr::Paren { inner: Box::new(inner.without_spans()), span: z },
        }
    }
}

/// Writes an expression the way R's `deparse` does (`a + b`, `a:b`, `f(x, y)`), which
/// is also how R names model terms. Names that are not syntactic are back-quoted.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Name { name, .. } => {
                if is_syntactic_name(name) {
                    f.write_str(name)
                } else {
                    write!(f, "`{name}`")
                }
            }
            Expr::Number { value, .. } => f.write_str(&r_number(*value)),
            Expr::Call { func, args, .. } => {
                write!(f, "{func}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Binary { op, lhs, rhs, .. } => write!(f, "{lhs}{}{rhs}", op.symbol()),
            Expr::Neg { operand, .. } => write!(f, "-{operand}"),
            Expr::Paren { inner, .. } => write!(f, "({inner})"),
        }
    }
}

/// A parsed formula `lhs ~ rhs`. The text is kept for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Formula {
    /// The response (`Surv(time, status)`, `low`), absent in `~ x`.
    pub lhs: Option<Expr>,
    /// The right-hand side, unexpanded.
    pub rhs: Expr,
    /// The text the formula was parsed from.
    pub source: String,
}

impl Formula {
    /// Parses `text` into a syntax tree. Only the grammar is checked; see
    /// [`Terms::from_formula`] for the meaning. Errors carry the byte span at fault.
    pub fn parse(text: &str) -> Result<Formula, FormulaError> {
        parse::parse_formula(text)
    }

    /// An error of kind `kind` at `span`, rendered against this formula's text.
    pub fn error(&self, kind: FormulaErrorKind, span: Span) -> FormulaError {
        FormulaError::new(kind, span, &self.source)
    }
}

impl fmt::Display for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.lhs {
            Some(l) => write!(f, "{l} ~ {}", self.rhs),
            None => write!(f, "~{}", self.rhs),
        }
    }
}

/// What is wrong with a formula.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormulaErrorKind {
    /// A character that is not part of the grammar.
    #[error("unexpected character `{0}`")]
    UnexpectedChar(char),
    /// A token in the wrong place.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the parser wanted.
        expected: String,
        /// What it saw.
        found: String,
    },
    /// No `~` in the text.
    #[error("a formula needs `~` (for example `Surv(time, status) ~ age`)")]
    MissingTilde,
    /// A back-quoted name without its closing quote.
    #[error("unterminated back-quoted name")]
    UnterminatedQuote,
    /// An R operator this subset does not support (`^`, `/`, `%in%`, ...).
    #[error("operator `{0}` is not supported (use +, -, *, : and parentheses)")]
    UnsupportedOperator(String),
    /// A function other than the supported ones.
    #[error("unknown function `{name}` (supported: {supported})")]
    UnknownFunction {
        /// The name as written.
        name: String,
        /// The supported functions in this position.
        supported: String,
    },
    /// A function called with the wrong number or kind of arguments.
    #[error("{0}")]
    BadArguments(String),
    /// A number other than 0 or 1 used as a term.
    #[error("only 0 and 1 can be terms (they remove or keep the intercept)")]
    BadNumberTerm,
    /// `strata()`, `cluster()` or `offset()` inside an interaction or after `-`.
    #[error("`{0}()` must be added with `+` on its own, not inside an interaction or after `-`")]
    SpecialInInteraction(String),
    /// A formula element that the chosen model does not allow.
    #[error("{0}")]
    NotAllowed(String),
    /// A column the data does not have; the text names it and suggests close names.
    #[error("{0}")]
    UnknownColumn(String),
    /// The text is longer than [`MAX_FORMULA_LEN`] bytes (the length found).
    #[error("formula longer than {MAX_FORMULA_LEN} characters ({0} bytes)")]
    TooLong(usize),
    /// Parentheses and calls nest deeper than [`MAX_FORMULA_DEPTH`] levels.
    #[error("formula nests deeper than {MAX_FORMULA_DEPTH} levels")]
    TooDeep,
    /// More than [`MAX_FORMULA_OPERATORS`] operators.
    #[error("formula has more than {MAX_FORMULA_OPERATORS} operators (`+`, `-`, `*`, `:`)")]
    TooManyOperators,
    /// The expansion would have more than [`MAX_FORMULA_TERMS`] terms.
    #[error("formula expands to more than {MAX_FORMULA_TERMS} terms")]
    TooManyTerms,
}

/// A formula error: what is wrong, where (byte span) and the formula text, so that
/// the message can show a caret line under the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormulaError {
    /// What is wrong.
    pub kind: FormulaErrorKind,
    /// Where, as bytes of the formula text.
    pub span: Span,
    source_text: String,
}

impl FormulaError {
    /// Builds an error for `span` of `source_text`.
    pub fn new(kind: FormulaErrorKind, span: Span, source_text: &str) -> Self {
        FormulaError { kind, span, source_text: source_text.to_string() }
    }

    /// The 1-based, end-exclusive character columns of the span (as shown in messages).
    pub fn columns(&self) -> (usize, usize) {
        let col = |b: usize| {
            let b = b.min(self.source_text.len());
            self.source_text.char_indices().take_while(|(i, _)| *i < b).count() + 1
        };
        (col(self.span.start), col(self.span.end))
    }

    /// The formula text and a caret line under the span, two lines without a trailing newline.
    pub fn caret_lines(&self) -> String {
        let (a, b) = self.columns();
        let width = b.saturating_sub(a).max(1);
        format!("  {}\n  {}{}", self.source_text, " ".repeat(a - 1), "^".repeat(width))
    }
}

impl fmt::Display for FormulaError {
    /// `formula: <what> at <a>..<b>` followed by the formula and a caret line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = self.columns();
        write!(f, "formula: {} at {a}..{b}\n{}", self.kind, self.caret_lines())
    }
}

impl std::error::Error for FormulaError {}

/// True when R would print `name` without back-quotes.
pub fn is_syntactic_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    let ok_first =
        first.is_ascii_alphabetic() || (first == '.' && !name[1..].starts_with(|c: char| c.is_ascii_digit()));
    ok_first && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
}

/// Formats a number the way R's `as.character` does for the values seen in data
/// (integers without a decimal point, otherwise up to 15 significant digits).
/// Used for factor level and stratum labels (`factor(x)2`, `inst=3`).
pub fn r_number(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let s = format!("{:.14e}", v.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mant = mant.trim_end_matches('0').trim_end_matches('.');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    let sci = format!("{sign}{mant}e{}{:02}", if exp < 0 { "-" } else { "+" }, exp.abs());
    let fixed = if exp >= 0 {
        let e = exp as usize;
        if digits.len() > e + 1 {
            format!("{sign}{}.{}", &digits[..=e], &digits[e + 1..])
        } else {
            format!("{sign}{digits}{}", "0".repeat(e + 1 - digits.len()))
        }
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    // R prefers fixed notation unless it is wider than scientific.
    if fixed.len() <= sci.len() {
        fixed
    } else {
        sci
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_number_formats_like_r() {
        assert_eq!(r_number(2.0), "2");
        assert_eq!(r_number(-3.0), "-3");
        assert_eq!(r_number(2.5), "2.5");
        assert_eq!(r_number(0.1), "0.1");
        assert_eq!(r_number(-0.25), "-0.25");
        assert_eq!(r_number(123.456), "123.456");
        assert_eq!(r_number(1.0 / 3.0), "0.333333333333333");
        assert_eq!(r_number(1e-7), "1e-07");
        assert_eq!(r_number(1e-4), "1e-04");
        assert_eq!(r_number(1e-3), "0.001");
        assert_eq!(r_number(1e5), "1e+05");
        assert_eq!(r_number(123456.0), "123456");
        assert_eq!(r_number(0.0), "0");
    }

    #[test]
    fn syntactic_names() {
        assert!(is_syntactic_name("ph.ecog"));
        assert!(is_syntactic_name("race_black"));
        assert!(!is_syntactic_name("my var"));
        assert!(!is_syntactic_name("2x"));
        assert!(!is_syntactic_name(".2x"));
    }

    #[test]
    fn error_shows_caret() {
        let e = FormulaError::new(
            FormulaErrorKind::UnknownFunction { name: "Sruv".into(), supported: "Surv".into() },
            Span::new(0, 4),
            "Sruv(time, status) ~ x",
        );
        let s = e.to_string();
        assert!(s.starts_with("formula: unknown function `Sruv`"), "{s}");
        assert!(s.contains("at 1..5"), "{s}");
        assert!(s.ends_with("\n  Sruv(time, status) ~ x\n  ^^^^"), "{s}");
    }
}
