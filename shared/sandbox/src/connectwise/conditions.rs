//! The `conditions` language of list endpoints (fact sheet §3), parsed into
//! a tree (not matched as text) and evaluated against rows' JSON; the
//! grammar and semantics are described in `query`.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::query::{Kind, Schema};
use Kind::{Bool, Date, Int, Str};

// ---------------------------------------------------------------------------
// Conditions: tokens
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Date(String),
    LParen,
    RParen,
    Comma,
    Op(&'static str),
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '"' => {
                i += 1;
                let mut text = String::new();
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "the string starting at position {start} is not closed with '\"'"
                            ))
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            text.push(ch);
                            i += 1;
                        }
                    }
                }
                Tok::Str(text)
            }
            '[' => {
                let Some(end) = chars[i..].iter().position(|&ch| ch == ']') else {
                    return Err(format!(
                        "the datetime starting at position {start} is not closed with ']'"
                    ));
                };
                let text: String = chars[i + 1..i + end].iter().collect();
                i += end + 1;
                Tok::Date(text)
            }
            '=' => {
                i += 1;
                Tok::Op("=")
            }
            '!' if next == Some('=') => {
                i += 2;
                Tok::Op("!=")
            }
            '<' if next == Some('=') => {
                i += 2;
                Tok::Op("<=")
            }
            '<' if next == Some('>') => {
                return Err(format!(
                    "'<>' at position {start} is not an operator: use !="
                ))
            }
            '<' => {
                i += 1;
                Tok::Op("<")
            }
            '>' if next == Some('=') => {
                i += 2;
                Tok::Op(">=")
            }
            '>' => {
                i += 1;
                Tok::Op(">")
            }
            '\'' => {
                return Err(format!(
                    "strings go in double quotes (single quote at position {start})"
                ))
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                if chars
                    .get(i)
                    .is_some_and(|ch| ch.is_alphanumeric() || *ch == '_')
                {
                    return Err(format!("malformed number at position {start}"));
                }
                let text: String = chars[start..i].iter().collect();
                Tok::Num(
                    text.parse()
                        .map_err(|_| format!("malformed number {text:?} at position {start}"))?,
                )
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '/')
                {
                    i += 1;
                }
                Tok::Word(chars[start..i].iter().collect())
            }
            other => {
                return Err(format!(
                    "unexpected character {other:?} at position {start}"
                ))
            }
        };
        out.push((start, token));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Conditions: tree and parser
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Like,
    In,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: &'static str,
        kind: Kind,
        op: Op,
        /// `not contains`, `not like`, `not in`.
        negated: bool,
        values: Vec<Lit>,
    },
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "contains", "like", "in", "true", "false", "null",
];

/// Parses `conditions` for `schema`; `Ok(None)` when blank.
pub(super) fn parse_conditions(input: &str, schema: &Schema) -> Result<Option<Expr>, String> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut parser = Parser {
        tokens,
        pos: 0,
        schema,
        end: input.chars().count(),
    };
    let expr = parser.expr()?;
    if let Some((at, token)) = parser.tokens.get(parser.pos) {
        return Err(format!(
            "unexpected {} at position {at}: expected and, or or the end",
            describe(token)
        ));
    }
    Ok(Some(expr))
}

fn describe(token: &Tok) -> String {
    match token {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Num(n) => format!("number {n}"),
        Tok::Date(d) => format!("datetime [{d}]"),
        Tok::LParen => "'('".to_owned(),
        Tok::RParen => "')'".to_owned(),
        Tok::Comma => "','".to_owned(),
        Tok::Op(op) => format!("'{op}'"),
    }
}

struct Parser<'a> {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    schema: &'a Schema,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn keyword_at(&self, offset: usize, word: &str) -> bool {
        matches!(self.tokens.get(self.pos + offset), Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case(word))
    }

    fn found(&self) -> String {
        self.peek().map_or_else(|| "the end".to_owned(), describe)
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.term()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.factor()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.expr()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(format!(
                    "expected ')' at position {}, found {}",
                    self.at(),
                    self.found()
                ));
            }
            self.pos += 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let at = self.at();
        let name = match self.peek() {
            Some(Tok::Word(w)) if !KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) => w.clone(),
            _ => {
                return Err(format!(
                    "expected a field name at position {at}, found {}",
                    self.found()
                ))
            }
        };
        let (field, kind) = self
            .schema
            .field(&name)
            .ok_or_else(|| format!("unknown field '{name}' at position {at}"))?;
        self.pos += 1;
        let op_at = self.at();
        let mut negated = false;
        if self.keyword("not")
            && (self.keyword_at(1, "contains")
                || self.keyword_at(1, "like")
                || self.keyword_at(1, "in"))
        {
            negated = true;
            self.pos += 1;
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) if !negated => match *op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("contains") => Op::Contains,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => Op::Like,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => Op::In,
            _ => {
                return Err(format!(
                    "expected an operator (=, !=, <, <=, >, >=, contains, like, in) after '{name}' \
                     at position {op_at}, found {}",
                    self.found()
                ))
            }
        };
        self.pos += 1;
        let values = if op == Op::In {
            if self.peek() != Some(&Tok::LParen) {
                return Err(format!(
                    "expected '(' after in at position {}, found {}",
                    self.at(),
                    self.found()
                ));
            }
            self.pos += 1;
            let mut values = vec![self.literal()?];
            loop {
                match self.peek() {
                    Some(Tok::Comma) => {
                        self.pos += 1;
                        values.push(self.literal()?);
                    }
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        break;
                    }
                    _ => {
                        return Err(format!(
                            "expected ',' or ')' in the in list at position {}, found {}",
                            self.at(),
                            self.found()
                        ))
                    }
                }
            }
            values
        } else {
            vec![self.literal()?]
        };
        check_types(&name, kind, op, &values).map_err(|e| format!("{e} (position {at})"))?;
        Ok(Expr::Cmp {
            field,
            kind,
            op,
            negated,
            values,
        })
    }

    fn literal(&mut self) -> Result<Lit, String> {
        let at = self.at();
        let lit = match self.peek() {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Num(n)) => Lit::Num(*n),
            Some(Tok::Date(d)) => Lit::Date(
                parse_datetime(d)
                    .ok_or_else(|| format!("[{d}] at position {at} is not a datetime"))?,
            ),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Lit::Null,
            Some(Tok::Word(w)) => {
                return Err(format!(
                    "expected a value at position {at}, found '{w}' (strings go in double quotes)"
                ))
            }
            _ => {
                return Err(format!(
                    "expected a value at position {at}, found {}",
                    self.found()
                ))
            }
        };
        self.pos += 1;
        Ok(lit)
    }
}

/// Whether the literals fit the field and the operator.
fn check_types(name: &str, kind: Kind, op: Op, values: &[Lit]) -> Result<(), String> {
    if matches!(op, Op::Contains | Op::Like) && kind != Str {
        return Err(format!(
            "{name} is not a text field: contains and like need text"
        ));
    }
    if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge) && kind == Bool {
        return Err(format!("{name} is true/false: compare it with = or !="));
    }
    for value in values {
        let fits = match (value, kind) {
            (Lit::Null, _) => {
                if matches!(op, Op::Eq | Op::Ne) {
                    true
                } else {
                    return Err(format!("null can only be compared with = or != ({name})"));
                }
            }
            (Lit::Str(_), Str)
            | (Lit::Num(_), Int)
            | (Lit::Bool(_), Bool)
            | (Lit::Date(_), Date) => true,
            _ => false,
        };
        if !fits {
            let wanted = match kind {
                Int => "a bare number",
                Str => "a string in double quotes",
                Bool => "true or false",
                Date => "a datetime in square brackets, e.g. [2025-01-01T00:00:00Z]",
            };
            return Err(format!("{name} takes {wanted}"));
        }
    }
    Ok(())
}

/// `2025-01-01T00:00:00Z` (any RFC 3339 form), `2025-01-01T00:00:00`
/// (UTC) or `2025-01-01` (midnight UTC).
pub(super) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

// ---------------------------------------------------------------------------
// Conditions: evaluation
// ---------------------------------------------------------------------------

/// The value at a `/` path of a row (case-insensitive keys); null if absent.
pub(super) fn lookup<'a>(row: &'a Value, path: &str) -> &'a Value {
    let mut current = row;
    for segment in path.split('/') {
        let next = current.as_object().and_then(|o| {
            o.get(segment).or_else(|| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                    .map(|(_, v)| v)
            })
        });
        match next {
            Some(v) => current = v,
            None => return &Value::Null,
        }
    }
    current
}

pub(super) fn matches(expr: &Expr, row: &Value) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, row) && matches(b, row),
        Expr::Or(a, b) => matches(a, row) || matches(b, row),
        Expr::Not(inner) => !matches(inner, row),
        Expr::Cmp {
            field,
            kind,
            op,
            negated,
            values,
        } => {
            let actual = lookup(row, field);
            if let [Lit::Null] = values.as_slice() {
                return match op {
                    Op::Eq => actual.is_null(),
                    _ => !actual.is_null(),
                };
            }
            if actual.is_null() {
                return false;
            }
            let Some(first) = values.first() else {
                return false;
            };
            let result = match op {
                Op::In => values
                    .iter()
                    .any(|v| compare(actual, v, *kind) == Some(Ordering::Equal)),
                Op::Contains | Op::Like => {
                    let (Some(text), Lit::Str(pattern)) = (actual.as_str(), first) else {
                        return false;
                    };
                    let (text, pattern) = (text.to_lowercase(), pattern.to_lowercase());
                    if *op == Op::Contains {
                        text.contains(&pattern)
                    } else {
                        like(&text, &pattern)
                    }
                }
                _ => match compare(actual, first, *kind) {
                    None => false,
                    Some(ordering) => match op {
                        Op::Eq => ordering.is_eq(),
                        Op::Ne => ordering.is_ne(),
                        Op::Lt => ordering.is_lt(),
                        Op::Le => ordering.is_le(),
                        Op::Gt => ordering.is_gt(),
                        _ => ordering.is_ge(),
                    },
                },
            };
            result != *negated
        }
    }
}

/// How a row's value orders against a literal of the field's kind.
fn compare(actual: &Value, literal: &Lit, kind: Kind) -> Option<Ordering> {
    match (kind, literal) {
        (Int, Lit::Num(n)) => actual.as_f64()?.partial_cmp(n),
        (Str, Lit::Str(s)) => Some(actual.as_str()?.to_lowercase().cmp(&s.to_lowercase())),
        (Bool, Lit::Bool(b)) => Some(actual.as_bool()?.cmp(b)),
        (Date, Lit::Date(d)) => Some(parse_datetime(actual.as_str()?)?.cmp(d)),
        _ => None,
    }
}

/// SQL `like` with `%` as the only wildcard (both sides already lower case).
fn like(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return text == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}
