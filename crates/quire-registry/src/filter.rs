//! The run search grammar (a subset of MLflow's): filters and orderings, compiled to SQL with
//! bind parameters — values never enter the SQL text.
//!
//! ```text
//! filter  := clause ( AND clause )*
//! clause  := entity '.' key op value | attribute op value
//! entity  := metrics | metric | params | param | tags | tag | attributes | attribute | attr | run
//! key     := bare word ([A-Za-z0-9_.@:/-]) | `back quoted` | "double quoted"
//! op      := = | != | < | <= | > | >= | LIKE | ILIKE
//! value   := number | 'single quoted' | "double quoted"
//! order   := ( entity '.' key | attribute ) [ ASC | DESC ]
//! ```
//! Metrics compare numbers against the latest value; params, tags and text attributes compare
//! strings (`=`, `!=`, `LIKE`, `ILIKE`); `start_time` and `end_time` compare numbers.
//!
//! A `LIKE` pattern means the same on both backends ([`like_tokens`]): `%` any run of
//! characters, `_` one character, and `\` makes the character after it literal (PostgreSQL's
//! default; SQLite has no escape unless told, so the SQL says `ESCAPE '\'`).

use sqlx::any::AnyArguments;
use sqlx::{Arguments, AssertSqlSafe};

use crate::error::{Error, Result};
use crate::registry::Backend;

/// One piece of a `LIKE` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeToken {
    /// `%`: any run of characters, the empty one too.
    Any,
    /// `_`: exactly one character.
    One,
    /// A character that must be there: any other, or the one after a `\`.
    Char(char),
}

/// A `LIKE` pattern's pieces: `%` any run of characters, `_` one character, `\` makes the
/// next character literal (`\%`, `\_`, `\\`). The run search's SQL and the registry server's
/// in-memory searches read patterns by this one rule, on every backend.
///
/// # Errors
/// A pattern that ends with a lone `\`, in words.
pub fn like_tokens(pattern: &str) -> std::result::Result<Vec<LikeToken>, String> {
    let mut out = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => LikeToken::Any,
            '_' => LikeToken::One,
            '\\' => match chars.next() {
                Some(next) => LikeToken::Char(next),
                None => {
                    return Err(format!(
                        "the LIKE pattern {pattern:?} ends with the escape character \\ \
                         (write \\\\ for a backslash)"
                    ));
                }
            },
            c => LikeToken::Char(c),
        });
    }
    Ok(out)
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// SQL text plus the values of its placeholders, in order.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl SqlBuilder {
    /// Records `value` and returns its placeholder.
    pub fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// The SQL and its values, for `sqlx::query_with` and its kin.
    pub fn into_parts(self) -> Result<(AssertSqlSafe<String>, AnyArguments), sqlx::Error> {
        let mut arguments = AnyArguments::default();
        for b in self.binds {
            match b {
                Bind::Text(s) => arguments.add(s),
                Bind::Int(i) => arguments.add(i),
                Bind::Float(f) => arguments.add(f),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok((AssertSqlSafe(self.sql), arguments))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Backquoted(String),
    Number(String),
    Op(&'static str),
    Dot,
    Comma,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Word(w) | Token::Number(w) => write!(f, "`{w}`"),
            Token::Quoted(q) => write!(f, "'{q}'"),
            Token::Backquoted(b) => write!(f, "`{b}`"),
            Token::Op(op) => write!(f, "`{op}`"),
            Token::Dot => f.write_str("`.`"),
            Token::Comma => f.write_str("`,`"),
        }
    }
}

/// A token as an error message names it: the token, or the end of the text.
fn found(t: Option<&Token>) -> String {
    t.map_or_else(|| "the end".to_owned(), Token::to_string)
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let invalid = |msg: String| Error::InvalidParameter(format!("{msg} in {input:?}"));
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '\'' | '"' | '`' => {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(invalid(format!("unterminated quote at column {}", i + 1)));
                        }
                        // A doubled quote stands for itself.
                        Some(&q) if q == c && chars.get(j + 1) == Some(&c) => {
                            text.push(c);
                            j += 2;
                        }
                        Some(&q) if q == c => break,
                        Some(&other) => {
                            text.push(other);
                            j += 1;
                        }
                    }
                }
                tokens.push(if c == '`' {
                    Token::Backquoted(text)
                } else {
                    Token::Quoted(text)
                });
                i = j + 1;
            }
            '=' => {
                tokens.push(Token::Op("="));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                tokens.push(Token::Op(match (c, eq) {
                    ('<', true) => "<=",
                    ('<', false) => "<",
                    ('>', true) => ">=",
                    _ => ">",
                }));
                i += if eq { 2 } else { 1 };
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                tokens.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(invalid(format!(
                    "unexpected character {other:?} at column {}",
                    i + 1
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

/// A column of `runs` that filters and orderings may name.
fn attribute_column(name: &str) -> Option<(&'static str, bool)> {
    // (column, numeric)
    Some(match name {
        "run_id" | "run_uuid" => ("r.run_uuid", false),
        "run_name" => ("r.name", false),
        "status" => ("r.status", false),
        "user_id" => ("r.user_id", false),
        "artifact_uri" => ("r.artifact_uri", false),
        "lifecycle_stage" => ("r.lifecycle_stage", false),
        "git_commit" => ("r.git_commit", false),
        "start_time" => ("r.start_time", true),
        "end_time" => ("r.end_time", true),
        _ => return None,
    })
}

/// The table holding an entity's values per run (metrics: the latest value).
fn table_of(ent: Entity) -> &'static str {
    match ent {
        Entity::Metric => "latest_metrics",
        Entity::Param => "params",
        Entity::Tag | Entity::Attribute => "tags",
    }
}

fn entity(word: &str) -> Option<Entity> {
    Some(match word.to_ascii_lowercase().as_str() {
        "metrics" | "metric" => Entity::Metric,
        "params" | "param" | "parameters" | "parameter" => Entity::Param,
        "tags" | "tag" => Entity::Tag,
        "attributes" | "attribute" | "attr" | "run" => Entity::Attribute,
        _ => return None,
    })
}

impl Parser<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::InvalidParameter(format!("{msg} in {:?}", self.input))
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    /// `entity.key` or a bare attribute name.
    fn identifier(&mut self) -> Result<(Entity, String)> {
        let first = match self.next() {
            Some(Token::Word(w)) => w,
            other => {
                return Err(self.err(format!(
                    "expected an identifier, found {}",
                    found(other.as_ref())
                )));
            }
        };
        if self.peek() != Some(&Token::Dot) {
            return if attribute_column(&first).is_some() {
                Ok((Entity::Attribute, first))
            } else {
                Err(self.err(format!(
                    "unknown attribute {first:?}; prefix keys with metrics., params., tags. or attributes."
                )))
            };
        }
        let ent = entity(&first).ok_or_else(|| {
            self.err(format!(
                "unknown entity {first:?}; expected metrics, params, tags or attributes"
            ))
        })?;
        self.pos += 1; // the dot
        let mut key = match self.next() {
            Some(Token::Backquoted(k) | Token::Quoted(k)) => return self.checked_key(ent, k),
            Some(Token::Word(w) | Token::Number(w)) => w,
            other => {
                return Err(self.err(format!(
                    "expected a key after {first}., found {}",
                    found(other.as_ref())
                )));
            }
        };
        // Bare keys may contain dots (`metrics.ndcg.5`); quote anything more exotic.
        while self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            match self.next() {
                Some(Token::Word(w) | Token::Number(w)) => {
                    key.push('.');
                    key.push_str(&w);
                }
                other => {
                    return Err(self.err(format!(
                        "expected a key part, found {}",
                        found(other.as_ref())
                    )));
                }
            }
        }
        self.checked_key(ent, key)
    }

    fn checked_key(&self, ent: Entity, key: String) -> Result<(Entity, String)> {
        if key.is_empty() {
            return Err(self.err("empty key"));
        }
        if ent == Entity::Attribute && attribute_column(&key).is_none() {
            return Err(self.err(format!("unknown attribute {key:?}")));
        }
        Ok((ent, key))
    }
}

/// Appends the SQL condition for `filter` (empty means none) to `out`, joined with `AND`.
pub(crate) fn compile_filter(filter: &str, out: &mut SqlBuilder) -> Result<()> {
    let mut p = Parser {
        input: filter,
        tokens: tokenize(filter)?,
        pos: 0,
    };
    if p.tokens.is_empty() {
        return Ok(());
    }
    loop {
        let (ent, key) = p.identifier()?;
        let op = match p.next() {
            Some(Token::Op(op)) => op,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("like") => "LIKE",
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ilike") => "ILIKE",
            other => {
                return Err(p.err(format!(
                    "expected a comparison operator, found {}",
                    found(other.as_ref())
                )));
            }
        };
        let value = p.next();
        let numeric = match ent {
            Entity::Metric => true,
            Entity::Attribute => attribute_column(&key).is_some_and(|(_, n)| n),
            Entity::Param | Entity::Tag => false,
        };
        let bound = if numeric {
            if matches!(op, "LIKE" | "ILIKE") {
                return Err(p.err(format!("{op} does not apply to the number {key:?}")));
            }
            match value {
                Some(Token::Number(n)) => match n.parse::<i64>() {
                    Ok(i) if ent == Entity::Attribute => Bind::Int(i),
                    // Only finite numbers: a NaN bound compares as NULL on SQLite and above
                    // every number on PostgreSQL, so `< nan` would mean two things.
                    _ => Bind::Float(
                        n.parse::<f64>()
                            .ok()
                            .filter(|x| x.is_finite())
                            .ok_or_else(|| p.err(format!("{n:?} is not a finite number")))?,
                    ),
                },
                other => {
                    return Err(p.err(format!(
                        "expected a number for {key:?}, found {}",
                        found(other.as_ref())
                    )));
                }
            }
        } else {
            if !matches!(op, "=" | "!=" | "LIKE" | "ILIKE") {
                return Err(p.err(format!(
                    "{op} does not apply to the string {key:?}; use =, !=, LIKE or ILIKE"
                )));
            }
            match value {
                Some(Token::Quoted(s)) => Bind::Text(s),
                other => {
                    return Err(p.err(format!(
                        "expected a quoted string for {key:?}, found {}",
                        found(other.as_ref())
                    )));
                }
            }
        };
        if let ("LIKE" | "ILIKE", Bind::Text(pattern)) = (op, &bound) {
            like_tokens(pattern).map_err(|e| p.err(e))?;
        }
        let condition = |column: &str, out: &mut SqlBuilder| {
            let placeholder = out.bind(bound.clone());
            match op {
                "LIKE" => format!("{column} LIKE {placeholder} ESCAPE '\\'"),
                "ILIKE" => format!("LOWER({column}) LIKE LOWER({placeholder}) ESCAPE '\\'"),
                op => format!("{column} {op} {placeholder}"),
            }
        };
        let sql = match ent {
            Entity::Attribute => {
                let (column, _) =
                    attribute_column(&key).ok_or_else(|| p.err("unknown attribute"))?;
                condition(column, out)
            }
            // A metric filter selects runs from the metric's side: the `(key, value, run_uuid)`
            // index finds the runs whose latest value passes without touching the others (on
            // 10,000 runs, half the time of probing every run's value). Params and tags are
            // few per key and compared as text: probing each candidate run is as good.
            Entity::Metric => {
                let key_ph = out.bind(Bind::Text(key));
                let cond = condition("x.value", out);
                format!(
                    "r.run_uuid IN (SELECT x.run_uuid FROM latest_metrics x WHERE x.key = {key_ph} AND {cond})"
                )
            }
            Entity::Param | Entity::Tag => {
                let table = table_of(ent);
                let key_ph = out.bind(Bind::Text(key));
                let cond = condition("x.value", out);
                format!(
                    "EXISTS (SELECT 1 FROM {table} x WHERE x.run_uuid = r.run_uuid AND x.key = {key_ph} AND {cond})"
                )
            }
        };
        out.sql.push_str(" AND ");
        out.sql.push_str(&sql);
        match p.next() {
            None => return Ok(()),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => {}
            Some(other) => return Err(p.err(format!("expected AND, found {other}"))),
        }
    }
}

/// One `order_by` clause: what to order by, and which way.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderTerm {
    entity: Entity,
    /// The metric, param or tag key; for an attribute, its column in `runs r`.
    key: String,
    /// Whether the values are text (params, tags, text attributes).
    text: bool,
    descending: bool,
}

impl OrderTerm {
    /// The metric key when this term orders by a metric.
    pub fn metric(&self) -> Option<&str> {
        (self.entity == Entity::Metric).then_some(self.key.as_str())
    }

    /// `ASC` or `DESC`.
    pub fn direction(&self) -> &'static str {
        if self.descending { "DESC" } else { "ASC" }
    }
}

/// Parses `order_by` clauses (`entity.key [ASC|DESC]` each).
pub(crate) fn parse_order(order_by: &[String]) -> Result<Vec<OrderTerm>> {
    order_by
        .iter()
        .map(|clause| {
            let mut p = Parser {
                input: clause,
                tokens: tokenize(clause)?,
                pos: 0,
            };
            let (entity, key) = p.identifier()?;
            let descending = match p.next() {
                None => false,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("asc") => false,
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("desc") => true,
                Some(other) => return Err(p.err(format!("expected ASC or DESC, found {other}"))),
            };
            if let Some(extra) = p.next() {
                return Err(p.err(format!("unexpected {extra}")));
            }
            let (key, text) = match entity {
                Entity::Attribute => {
                    let (column, numeric) =
                        attribute_column(&key).ok_or_else(|| p.err("unknown attribute"))?;
                    (column.to_owned(), !numeric)
                }
                Entity::Metric => (key, false),
                Entity::Param | Entity::Tag => (key, true),
            };
            Ok(OrderTerm {
                entity,
                key,
                text,
                descending,
            })
        })
        .collect()
}

/// SQL `ORDER BY` terms (without the keywords) for parsed clauses, missing values last on
/// every backend, text by its bytes on every backend: SQLite's default, and `COLLATE "C"` on
/// PostgreSQL, whose database may sort by a language's rules (`Adam, adamw, SGD` rather than
/// `Adam, SGD, adamw`), which would page the same search differently.
pub(crate) fn render_order(
    terms: &[OrderTerm],
    out: &mut SqlBuilder,
    backend: Backend,
) -> Vec<String> {
    let bytewise = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " COLLATE \"C\"",
    };
    terms
        .iter()
        .map(|t| {
            // `NULLS LAST` (SQLite 3.30+, PostgreSQL) evaluates the key once per row; a CASE on
            // `IS NULL` would look each value up twice.
            let expr = match t.entity {
                Entity::Attribute => t.key.clone(),
                Entity::Metric | Entity::Param | Entity::Tag => {
                    let ph = out.bind(Bind::Text(t.key.clone()));
                    format!(
                        "(SELECT x.value FROM {} x WHERE x.run_uuid = r.run_uuid AND x.key = {ph})",
                        table_of(t.entity)
                    )
                }
            };
            let collate = if t.text { bytewise } else { "" };
            format!("{expr}{collate} {} NULLS LAST", t.direction())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(filter: &str, expected_sql: &str, expected_binds: &[Bind]) {
        let mut out = SqlBuilder::default();
        compile_filter(filter, &mut out).unwrap_or_else(|e| panic!("{filter:?}: {e}"));
        assert_eq!(out.sql, expected_sql, "{filter:?}");
        assert_eq!(out.binds, expected_binds, "{filter:?}");
    }

    fn text(s: &str) -> Bind {
        Bind::Text(s.into())
    }

    #[test]
    fn empty_filter_adds_nothing() {
        check("", "", &[]);
        check("   ", "", &[]);
    }

    #[test]
    fn metrics_params_tags_compile_to_bound_subqueries() {
        check(
            "metrics.ndcg_5 > 0.6",
            " AND r.run_uuid IN (SELECT x.run_uuid FROM latest_metrics x WHERE x.key = $1 AND x.value > $2)",
            &[text("ndcg_5"), Bind::Float(0.6)],
        );
        check(
            "params.objective = 'lambdarank' and tags.`team name` ILIKE \"A%\"",
            " AND EXISTS (SELECT 1 FROM params x WHERE x.run_uuid = r.run_uuid AND x.key = $1 AND x.value = $2) \
             AND EXISTS (SELECT 1 FROM tags x WHERE x.run_uuid = r.run_uuid AND x.key = $3 AND LOWER(x.value) LIKE LOWER($4) ESCAPE '\\')",
            &[
                text("objective"),
                text("lambdarank"),
                text("team name"),
                text("A%"),
            ],
        );
        // Dotted bare keys and integral metric values.
        check(
            "metric.ndcg.5 >= 1",
            " AND r.run_uuid IN (SELECT x.run_uuid FROM latest_metrics x WHERE x.key = $1 AND x.value >= $2)",
            &[text("ndcg.5"), Bind::Float(1.0)],
        );
    }

    #[test]
    fn attributes_map_to_whitelisted_columns() {
        check(
            "attributes.status = 'FINISHED' AND start_time < 1700000000000",
            " AND r.status = $1 AND r.start_time < $2",
            &[text("FINISHED"), Bind::Int(1_700_000_000_000)],
        );
        check("run_name != 'a'", " AND r.name != $1", &[text("a")]);
    }

    #[test]
    fn quotes_are_values_never_sql() {
        check(
            "params.p = 'it''s; DROP TABLE runs --'",
            " AND EXISTS (SELECT 1 FROM params x WHERE x.run_uuid = r.run_uuid AND x.key = $1 AND x.value = $2)",
            &[text("p"), text("it's; DROP TABLE runs --")],
        );
    }

    #[test]
    fn bad_filters_are_invalid_parameters() {
        for bad in [
            "metrics.m > 'x'",
            "metrics.m LIKE 1",
            "params.p < 'x'",
            "tags.t = 3",
            "params.p = 'a' OR params.q = 'b'",
            "foo.bar = 'x'",
            "attributes.secret = 'x'",
            "password = 'x'",
            "metrics.m > 1e",
            "metrics. > 1",
            "params.p = 'open",
            "metrics.m > 1 AND",
            "metrics.m # 1",
        ] {
            let mut out = SqlBuilder::default();
            assert!(
                matches!(
                    compile_filter(bad, &mut out),
                    Err(Error::InvalidParameter(_))
                ),
                "{bad:?}"
            );
        }
        // Messages name the token as written, not Rust's debug form.
        let message = |bad: &str| {
            let mut out = SqlBuilder::default();
            compile_filter(bad, &mut out).unwrap_err().to_string()
        };
        let e = message("metrics.test_ndcg_at_5 >> 0.5");
        assert!(
            e.contains("expected a number for \"test_ndcg_at_5\", found `>`"),
            "{e}"
        );
        let e = message("metrics.m > 1 AND");
        assert!(e.contains("found the end"), "{e}");
    }

    #[test]
    fn order_puts_missing_values_last() {
        let mut out = SqlBuilder::default();
        let parsed =
            parse_order(&["metrics.ndcg_5 DESC".into(), "attributes.start_time".into()]).unwrap();
        assert_eq!(parsed[0].metric(), Some("ndcg_5"));
        assert_eq!(parsed[1].metric(), None);
        assert_eq!(
            (parsed[0].direction(), parsed[1].direction()),
            ("DESC", "ASC")
        );
        let terms = render_order(&parsed, &mut out, Backend::Sqlite);
        let sub =
            "(SELECT x.value FROM latest_metrics x WHERE x.run_uuid = r.run_uuid AND x.key = $1)";
        assert_eq!(
            terms,
            [
                format!("{sub} DESC NULLS LAST"),
                "r.start_time ASC NULLS LAST".to_owned(),
            ]
        );
        assert_eq!(out.binds, [text("ndcg_5")]);
        for bad in ["metrics.m up", "params.p ASC DESC", "nothing", ""] {
            assert!(parse_order(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
