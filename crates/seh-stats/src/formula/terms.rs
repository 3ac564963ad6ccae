//! Expansion of a formula's right-hand side into model terms, following R's
//! `terms.formula` (`EncodeVars` in R's `model.c`): `a*b` → `a + b + a:b`,
//! `(a + b):c` → `a:c + b:c`, `- t` removes terms, `- 1` / `+ 0` remove the
//! intercept, duplicates collapse, and terms are stably ordered by degree.

use std::collections::HashSet;

use super::{BinOp, Expr, Formula, FormulaError, FormulaErrorKind, Span, MAX_FORMULA_TERMS};

/// What a model variable computes from the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarKind {
    /// A numeric column used as is.
    Column(String),
    /// `log(column)`.
    Log(String),
    /// `factor(column)`: treatment coding, the lowest level is the reference.
    Factor(String),
    /// `tt(column)`: a Cox time-transform term; the column value enters the design
    /// and the fitting code applies the user's `tt` function at each event time.
    Tt(String),
}

impl VarKind {
    /// The data column the variable reads.
    pub fn column(&self) -> &str {
        match self {
            VarKind::Column(c) | VarKind::Log(c) | VarKind::Factor(c) | VarKind::Tt(c) => c,
        }
    }
}

/// A distinct variable of the formula (R's "variables" attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// How R deparses it, e.g. `age`, `log(dose)`, `factor(sex)`. Column and term names are built from this.
    pub label: String,
    /// What it computes.
    pub kind: VarKind,
    /// The span of its first appearance in the formula.
    pub span: Span,
}

/// A model term: a set of variables multiplied together (one variable for a main effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Indices into [`Terms::variables`], ascending (R's variable order).
    pub vars: Vec<usize>,
    /// R's term label, e.g. `age`, `factor(sex):age`.
    pub label: String,
    /// Where the term came from in the formula.
    pub span: Span,
}

/// The special functions that are not design terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialKind {
    /// `strata(a, ...)`: separate baseline hazards per combination.
    Strata,
    /// `cluster(id)`: robust variance grouped by `id`.
    Cluster,
    /// `offset(x)`: a fixed term of the linear predictor with coefficient 1.
    Offset,
}

impl SpecialKind {
    /// The R function name.
    pub fn name(self) -> &'static str {
        match self {
            SpecialKind::Strata => "strata",
            SpecialKind::Cluster => "cluster",
            SpecialKind::Offset => "offset",
        }
    }
}

/// One use of a special function with its (validated) variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Special {
    /// Which special.
    pub kind: SpecialKind,
    /// Its arguments: columns for `strata`/`cluster`; a column or `log(column)` for `offset`.
    pub vars: Vec<Variable>,
    /// The whole call.
    pub span: Span,
}

/// The expanded right-hand side of a formula.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    /// The unexpanded left-hand side, if any.
    pub response: Option<Expr>,
    /// Distinct variables in order of first appearance.
    pub variables: Vec<Variable>,
    /// Terms, main effects first (stable order by degree, as R's `keep.order = FALSE`).
    pub terms: Vec<Term>,
    /// Whether the formula keeps the intercept (`- 1` and `+ 0` remove it).
    pub intercept: bool,
    /// `strata()`, `cluster()` and `offset()` calls, in order of appearance.
    pub specials: Vec<Special>,
}

const FUNCTIONS: &str = "Surv, strata, cluster, offset, tt, factor, log";

type TermSet = (Vec<usize>, Span);

struct Encoder<'a> {
    f: &'a Formula,
    variables: Vec<Variable>,
    specials: Vec<Special>,
    intercept: bool,
}

impl Terms {
    /// Expands `formula`'s right-hand side. Errors name the offending part
    /// (unknown function, misplaced `strata()`, number other than 0/1, ...).
    pub fn from_formula(formula: &Formula) -> Result<Terms, FormulaError> {
        let mut enc = Encoder { f: formula, variables: Vec::new(), specials: Vec::new(), intercept: true };
        let raw = enc.encode(&formula.rhs, true, false)?;
        let mut terms: Vec<TermSet> = Vec::new();
        for t in raw {
            if !t.0.is_empty() && !terms.iter().any(|u| u.0 == t.0) {
                terms.push(t);
            }
        }
        terms.sort_by_key(|t| t.0.len());
        let variables = enc.variables;
        let terms = terms
            .into_iter()
            .map(|(vars, span)| {
                let label = vars.iter().map(|&v| variables[v].label.as_str()).collect::<Vec<_>>().join(":");
                Term { vars, label, span }
            })
            .collect();
        Ok(Terms { response: formula.lhs.clone(), variables, terms, intercept: enc.intercept, specials: enc.specials })
    }

    /// The specials of one kind.
    pub fn specials_of(&self, kind: SpecialKind) -> impl Iterator<Item = &Special> {
        self.specials.iter().filter(move |s| s.kind == kind)
    }
}

impl Encoder<'_> {
    fn err(&self, kind: FormulaErrorKind, span: Span) -> FormulaError {
        self.f.error(kind, span)
    }

    /// Encodes `e` into terms. `top`: in a plain sum, where specials may appear.
    /// `deleting`: on the right of `-`, where `1` removes and `0` restores the intercept.
    fn encode(&mut self, e: &Expr, top: bool, deleting: bool) -> Result<Vec<TermSet>, FormulaError> {
        match e {
            Expr::Number { value, span } => {
                if !top {
                    return Err(self.err(FormulaErrorKind::BadNumberTerm, *span));
                }
                if *value == 1.0 {
                    self.intercept = !deleting;
                } else if *value == 0.0 {
                    self.intercept = deleting;
                } else {
                    return Err(self.err(FormulaErrorKind::BadNumberTerm, *span));
                }
                Ok(Vec::new())
            }
            Expr::Paren { inner, .. } => self.encode(inner, top, deleting),
            Expr::Neg { operand, .. } => {
                self.encode(operand, top, true)?;
                Ok(Vec::new())
            }
            Expr::Binary { op: BinOp::Plus, span, .. } => {
                // A sum is a left-deep chain; walk its spine in a loop, so a long sum costs
                // one stack frame, not one per term. Same order as the recursion: left first.
                let mut spine = Vec::new();
                let mut first = e;
                while let Expr::Binary { op: BinOp::Plus, lhs, rhs, .. } = first {
                    spine.push(rhs.as_ref());
                    first = lhs;
                }
                let mut a = self.encode(first, top, deleting)?;
                for rhs in spine.into_iter().rev() {
                    a.extend(self.encode(rhs, top, deleting)?);
                    a = self.trim(a, *span)?;
                }
                Ok(a)
            }
            Expr::Binary { op: BinOp::Minus, lhs, rhs, .. } => {
                let a = self.encode(lhs, top, deleting)?;
                let b = self.encode(rhs, top, !deleting)?;
                Ok(a.into_iter().filter(|t| !b.iter().any(|d| d.0 == t.0)).collect())
            }
            Expr::Binary { op: BinOp::Colon, lhs, rhs, span } => {
                let a = self.encode(lhs, false, deleting)?;
                let b = self.encode(rhs, false, deleting)?;
                let ab = self.cross(&a, &b, *span)?;
                self.trim(ab, *span)
            }
            Expr::Binary { op: BinOp::Star, lhs, rhs, span } => {
                let a = self.encode(lhs, false, deleting)?;
                let b = self.encode(rhs, false, deleting)?;
                let ab = self.cross(&a, &b, *span)?;
                self.trim(a.into_iter().chain(b).chain(ab).collect(), *span)
            }
            Expr::Name { .. } | Expr::Call { .. } => {
                if let Expr::Call { func, args, span, func_span } = e {
                    let kind = match func.as_str() {
                        "strata" => Some(SpecialKind::Strata),
                        "cluster" => Some(SpecialKind::Cluster),
                        "offset" => Some(SpecialKind::Offset),
                        _ => None,
                    };
                    if let Some(kind) = kind {
                        if !top || deleting {
                            return Err(self.err(FormulaErrorKind::SpecialInInteraction(func.clone()), *span));
                        }
                        let special = self.special(kind, args, *span)?;
                        self.specials.push(special);
                        return Ok(Vec::new());
                    }
                    if func == "Surv" {
                        let msg = "`Surv(...)` belongs on the left of `~`".to_string();
                        return Err(self.err(FormulaErrorKind::NotAllowed(msg), *func_span));
                    }
                }
                let v = self.variable(e)?;
                let idx = match self.variables.iter().position(|u| u.label == v.label) {
                    Some(i) => i,
                    None => {
                        self.variables.push(v);
                        self.variables.len() - 1
                    }
                };
                Ok(vec![(vec![idx], e.span())])
            }
        }
    }

    /// Interprets a name or a supported call as a [`Variable`].
    fn variable(&self, e: &Expr) -> Result<Variable, FormulaError> {
        let label = e.to_string();
        match e {
            Expr::Name { name, span } => Ok(Variable { label, kind: VarKind::Column(name.clone()), span: *span }),
            Expr::Call { func, func_span, args, span } => {
                let make: fn(String) -> VarKind = match func.as_str() {
                    "log" => VarKind::Log,
                    "factor" => VarKind::Factor,
                    "tt" => VarKind::Tt,
                    _ => {
                        let kind =
                            FormulaErrorKind::UnknownFunction { name: func.clone(), supported: FUNCTIONS.into() };
                        return Err(self.err(kind, *func_span));
                    }
                };
                match args.as_slice() {
                    [Expr::Name { name, .. }] => Ok(Variable { label, kind: make(name.clone()), span: *span }),
                    _ => {
                        let msg = format!("`{func}()` takes exactly one column name");
                        Err(self.err(FormulaErrorKind::BadArguments(msg), *span))
                    }
                }
            }
            other => {
                let kind = FormulaErrorKind::Expected {
                    expected: "a column name or function call".into(),
                    found: format!("`{other}`"),
                };
                Err(self.err(kind, other.span()))
            }
        }
    }

    fn special(&self, kind: SpecialKind, args: &[Expr], span: Span) -> Result<Special, FormulaError> {
        let name = kind.name();
        let bad = |msg: String| self.err(FormulaErrorKind::BadArguments(msg), span);
        let mut vars = Vec::new();
        for a in args {
            let v = match (kind, a) {
                (_, Expr::Name { name, span }) => {
                    Variable { label: a.to_string(), kind: VarKind::Column(name.clone()), span: *span }
                }
                (SpecialKind::Offset, Expr::Call { func, args: inner, span, .. }) if func == "log" => {
                    match inner.as_slice() {
                        [Expr::Name { name, .. }] => {
                            Variable { label: a.to_string(), kind: VarKind::Log(name.clone()), span: *span }
                        }
                        _ => return Err(bad("`log()` takes exactly one column name".into())),
                    }
                }
                _ => {
                    let what =
                        if kind == SpecialKind::Offset { "a column name or log(column)" } else { "column names" };
                    return Err(self.err(FormulaErrorKind::BadArguments(format!("`{name}()` takes {what}")), a.span()));
                }
            };
            vars.push(v);
        }
        match (kind, vars.len()) {
            (_, 0) => Err(bad(format!("`{name}()` needs at least one column"))),
            (SpecialKind::Cluster | SpecialKind::Offset, n) if n > 1 => {
                Err(bad(format!("`{name}()` takes exactly one argument")))
            }
            _ => Ok(Special { kind, vars, span }),
        }
    }

    /// Drops repeated terms (keeping the first, as the final de-duplication would, so the
    /// result is unchanged) and refuses a list longer than [`MAX_FORMULA_TERMS`]. Applied at
    /// every step, so `a*a*a*...` stays one term instead of doubling.
    fn trim(&self, terms: Vec<TermSet>, span: Span) -> Result<Vec<TermSet>, FormulaError> {
        let mut seen: HashSet<Vec<usize>> = HashSet::with_capacity(terms.len());
        let out: Vec<TermSet> = terms.into_iter().filter(|t| seen.insert(t.0.clone())).collect();
        if out.len() > MAX_FORMULA_TERMS {
            return Err(self.err(FormulaErrorKind::TooManyTerms, span));
        }
        Ok(out)
    }

    /// All pairwise unions of the terms of `a` and `b` (R's `InteractTerms`), `a` outer;
    /// refused before allocating when there would be more than [`MAX_FORMULA_TERMS`] pairs.
    fn cross(&self, a: &[TermSet], b: &[TermSet], span: Span) -> Result<Vec<TermSet>, FormulaError> {
        if a.len().saturating_mul(b.len()) > MAX_FORMULA_TERMS {
            return Err(self.err(FormulaErrorKind::TooManyTerms, span));
        }
        let mut out = Vec::with_capacity(a.len() * b.len());
        for (ta, sa) in a {
            for (tb, sb) in b {
                let mut v: Vec<usize> = ta.iter().chain(tb).copied().collect();
                v.sort_unstable();
                v.dedup();
                out.push((v, sa.to(*sb)));
            }
        }
        Ok(out)
    }
}
