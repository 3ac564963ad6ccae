//! Lexer and recursive-descent parser for the formula grammar (see the module docs).

use super::{
    BinOp, Expr, Formula, FormulaError, FormulaErrorKind, Span, MAX_FORMULA_DEPTH, MAX_FORMULA_LEN,
    MAX_FORMULA_OPERATORS,
};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Number(f64),
    Tilde,
    Plus,
    Minus,
    Star,
    Colon,
    LParen,
    RParen,
    Comma,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Name(n) => format!("name `{n}`"),
            Tok::Number(_) => "a number".into(),
            Tok::Tilde => "`~`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Colon => "`:`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Eof => "the end of the formula".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, Span)>, FormulaError> {
    let err = |kind, s, e| FormulaError::new(kind, Span::new(s, e), text);
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = match c {
            b'~' => Some(Tok::Tilde),
            b'+' => Some(Tok::Plus),
            b'-' => Some(Tok::Minus),
            b'*' => Some(Tok::Star),
            b':' => Some(Tok::Colon),
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, Span::new(start, start + 1)));
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'`' {
            let Some(len) = bytes[i + 1..].iter().position(|&b| b == b'`') else {
                return Err(err(FormulaErrorKind::UnterminatedQuote, start, bytes.len()));
            };
            let name = &text[i + 1..i + 1 + len];
            i += len + 2;
            out.push((Tok::Name(name.to_string()), Span::new(start, i)));
        } else if c.is_ascii_digit() || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let save = i;
                i += 1;
                if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                    i += 1;
                }
                if i < bytes.len() && bytes[i].is_ascii_digit() {
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let lit = &text[start..i];
            let v: f64 = lit.parse().map_err(|_| {
                err(FormulaErrorKind::Expected { expected: "a number".into(), found: format!("`{lit}`") }, start, i)
            })?;
            out.push((Tok::Number(v), Span::new(start, i)));
        } else if c.is_ascii_alphabetic() || c == b'.' || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Name(text[start..i].to_string()), Span::new(start, i)));
        } else if matches!(c, b'^' | b'/' | b'%' | b'|' | b'=' | b'<' | b'>' | b'!' | b'&' | b'$' | b'@') {
            let op_end = if c == b'%' {
                bytes[i + 1..].iter().position(|&b| b == b'%').map_or(i + 1, |p| i + p + 2)
            } else {
                i + 1
            };
            let op = text[start..op_end].to_string();
            return Err(err(FormulaErrorKind::UnsupportedOperator(op), start, op_end));
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(err(FormulaErrorKind::UnexpectedChar(ch), start, start + ch.len_utf8()));
        }
    }
    out.push((Tok::Eof, Span::new(text.len(), text.len())));
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, Span)>,
    pos: usize,
    /// Open parentheses and calls around the current position.
    depth: usize,
}

impl Parser<'_> {
    /// Enters one more level of nesting at the `(` at `open`; refuses the level past
    /// [`MAX_FORMULA_DEPTH`] before the parser recurses into it.
    fn enter(&mut self, open: Span) -> Result<(), FormulaError> {
        if self.depth >= MAX_FORMULA_DEPTH {
            return Err(FormulaError::new(FormulaErrorKind::TooDeep, open, self.text));
        }
        self.depth += 1;
        Ok(())
    }

    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.0)
    }

    fn span(&self) -> Span {
        self.toks.get(self.pos).map_or(Span::new(self.text.len(), self.text.len()), |t| t.1)
    }

    fn bump(&mut self) -> (Tok, Span) {
        let t = self.toks.get(self.pos).cloned().unwrap_or((Tok::Eof, Span::new(self.text.len(), self.text.len())));
        self.pos += 1;
        t
    }

    fn unexpected(&self, expected: &str) -> FormulaError {
        let found = self.peek().describe();
        FormulaError::new(FormulaErrorKind::Expected { expected: expected.into(), found }, self.span(), self.text)
    }

    /// expr := ['-'] product (('+' | '-') product)*
    fn expr(&mut self) -> Result<Expr, FormulaError> {
        let mut lhs = if *self.peek() == Tok::Minus {
            let (_, s) = self.bump();
            let operand = self.product()?;
            let span = s.to(operand.span());
            Expr::Neg { operand: Box::new(operand), span }
        } else {
            self.product()?
        };
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Plus,
                Tok::Minus => BinOp::Minus,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.product()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
    }

    /// product := inter ('*' inter)*
    fn product(&mut self) -> Result<Expr, FormulaError> {
        let mut lhs = self.inter()?;
        while *self.peek() == Tok::Star {
            self.bump();
            let rhs = self.inter()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Binary { op: BinOp::Star, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
        Ok(lhs)
    }

    /// inter := atom (':' atom)*
    fn inter(&mut self) -> Result<Expr, FormulaError> {
        let mut lhs = self.atom()?;
        while *self.peek() == Tok::Colon {
            self.bump();
            let rhs = self.atom()?;
            let span = lhs.span().to(rhs.span());
            lhs = Expr::Binary { op: BinOp::Colon, lhs: Box::new(lhs), rhs: Box::new(rhs), span };
        }
        Ok(lhs)
    }

    fn atom(&mut self) -> Result<Expr, FormulaError> {
        match self.peek().clone() {
            Tok::Number(value) => {
                let (_, span) = self.bump();
                Ok(Expr::Number { value, span })
            }
            Tok::LParen => {
                let (_, open) = self.bump();
                self.enter(open)?;
                let inner = self.expr()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.unexpected("`)`"));
                }
                self.depth -= 1;
                let (_, close) = self.bump();
                Ok(Expr::Paren { inner: Box::new(inner), span: open.to(close) })
            }
            Tok::Name(name) => {
                let (_, span) = self.bump();
                if *self.peek() != Tok::LParen {
                    return Ok(Expr::Name { name, span });
                }
                let (_, open) = self.bump();
                self.enter(open)?;
                let mut args = Vec::new();
                if *self.peek() != Tok::RParen {
                    loop {
                        args.push(self.expr()?);
                        match self.peek() {
                            Tok::Comma => {
                                self.bump();
                            }
                            Tok::RParen => break,
                            _ => return Err(self.unexpected("`,` or `)`")),
                        }
                    }
                }
                self.depth -= 1;
                let (_, close) = self.bump();
                Ok(Expr::Call { func: name, func_span: span, args, span: span.to(close) })
            }
            _ => Err(self.unexpected("a column name, a function call, a number or `(`")),
        }
    }
}

/// Parses a whole formula: `[lhs] ~ rhs`.
///
/// The length limit is checked before the text is read at all, the operator count on the
/// tokens, the nesting limit by the parser before each level (see [`MAX_FORMULA_LEN`],
/// [`MAX_FORMULA_OPERATORS`], [`MAX_FORMULA_DEPTH`]).
pub(super) fn parse_formula(text: &str) -> Result<Formula, FormulaError> {
    if text.len() > MAX_FORMULA_LEN {
        // Quote only the start: the error must stay small whatever was sent.
        let shown: String = text.chars().take(40).collect();
        return Err(FormulaError::new(FormulaErrorKind::TooLong(text.len()), Span::new(0, 0), &format!("{shown}...")));
    }
    let toks = lex(text)?;
    let mut operators = toks.iter().filter(|t| matches!(t.0, Tok::Plus | Tok::Minus | Tok::Star | Tok::Colon));
    if let Some((_, at)) = operators.nth(MAX_FORMULA_OPERATORS) {
        return Err(FormulaError::new(FormulaErrorKind::TooManyOperators, *at, text));
    }
    let tildes: Vec<Span> = toks.iter().filter(|t| t.0 == Tok::Tilde).map(|t| t.1).collect();
    match tildes.as_slice() {
        [] => return Err(FormulaError::new(FormulaErrorKind::MissingTilde, Span::new(0, text.len()), text)),
        [_] => {}
        [_, second, ..] => {
            let kind = FormulaErrorKind::Expected { expected: "a single `~`".into(), found: "a second `~`".into() };
            return Err(FormulaError::new(kind, *second, text));
        }
    }
    let mut p = Parser { text, toks, pos: 0, depth: 0 };
    let lhs = if *p.peek() == Tok::Tilde { None } else { Some(p.expr()?) };
    if *p.peek() != Tok::Tilde {
        return Err(p.unexpected("`~`"));
    }
    p.bump();
    let rhs = p.expr()?;
    if *p.peek() != Tok::Eof {
        return Err(p.unexpected("`+`, `-`, `*`, `:` or the end of the formula"));
    }
    Ok(Formula { lhs, rhs, source: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Formula {
        parse_formula(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn precedence_matches_r() {
        // `:` binds tighter than `*`, which binds tighter than `+`.
        let f = p("y ~ a + b*c:d");
        assert_eq!(f.to_string(), "y ~ a + b * c:d");
        let Expr::Binary { op: BinOp::Plus, rhs, .. } = &f.rhs else { panic!("{:?}", f.rhs) };
        let Expr::Binary { op: BinOp::Star, rhs: cd, .. } = rhs.as_ref() else { panic!() };
        assert!(matches!(cd.as_ref(), Expr::Binary { op: BinOp::Colon, .. }));
    }

    #[test]
    fn spans_point_at_source() {
        let f = p("Surv(time, status) ~ age");
        let Some(Expr::Call { func, func_span, args, span }) = &f.lhs else { panic!() };
        assert_eq!(func, "Surv");
        assert_eq!(*func_span, Span::new(0, 4));
        assert_eq!(*span, Span::new(0, 18));
        assert_eq!(args[1].span(), Span::new(11, 17));
        assert_eq!(f.rhs.span(), Span::new(21, 24));
    }

    #[test]
    fn backquotes_and_numbers() {
        let f = p("y ~ `my var` + 0 - 1 + x.2");
        assert_eq!(f.to_string(), "y ~ `my var` + 0 - 1 + x.2");
        let f = p("~ -1 + x");
        assert!(f.lhs.is_none());
        assert_eq!(f.to_string(), "~-1 + x");
    }

    #[test]
    fn errors_point_at_token() {
        let e = parse_formula("y ~ a +").unwrap_err();
        assert_eq!(e.span, Span::new(7, 7));
        let e = parse_formula("y ~ a ^ 2").unwrap_err();
        assert_eq!(e.kind, FormulaErrorKind::UnsupportedOperator("^".into()));
        assert_eq!(e.span, Span::new(6, 7));
        let e = parse_formula("y ~ a %in% b").unwrap_err();
        assert_eq!(e.kind, FormulaErrorKind::UnsupportedOperator("%in%".into()));
        let e = parse_formula("y + a").unwrap_err();
        assert_eq!(e.kind, FormulaErrorKind::MissingTilde);
        let e = parse_formula("y ~ a ~ b").unwrap_err();
        assert_eq!(e.span, Span::new(6, 7));
        let e = parse_formula("y ~ f(a b)").unwrap_err();
        assert_eq!(e.span, Span::new(8, 9));
        let e = parse_formula("y ~ (a + b").unwrap_err();
        assert!(e.to_string().contains("expected `)`"), "{e}");
        let e = parse_formula("y ~ `a").unwrap_err();
        assert_eq!(e.kind, FormulaErrorKind::UnterminatedQuote);
        let e = parse_formula("y ~ a # b").unwrap_err();
        assert_eq!(e.kind, FormulaErrorKind::UnexpectedChar('#'));
    }
}
