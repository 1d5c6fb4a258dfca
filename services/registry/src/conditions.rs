//! The small filter language of MLflow's experiment, registered-model, model-version and
//! logged-model searches: `field op value` clauses joined by `AND`, where a field is a word
//! (`name`, `run_id`, `source_run_id`…) or `tags.<key>` (the key bare or back-quoted), `op` is
//! `=`, `!=`, `LIKE` or `ILIKE`, and a value is a quoted string or a number. These searches
//! run over few records, so conditions are checked in memory. (Run searches use the
//! registry's SQL compiler in `quire_registry::filter`; both read `LIKE` patterns by
//! `quire_registry::filter::like_tokens`.)
//!
//! Hand-written because no crate parses MLflow's filter grammar; it is a dozen tokens.

use quire_registry::filter::{LikeToken, like_tokens};

use crate::error::ApiError;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Like,
    ILike,
}

/// One `field op value` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `name`, or `tags.<key>` with the key unquoted.
    pub field: String,
    pub op: Op,
    pub value: String,
}

impl Condition {
    /// Whether `actual` satisfies the clause. An absent value (a tag not set) satisfies only
    /// `!=`, as in MLflow, whose client excludes prompts with `tags.mlflow.prompt.is_prompt !=
    /// 'true'` from every registered-model search.
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let Some(actual) = actual else {
            return self.op == Op::Ne;
        };
        match self.op {
            Op::Eq => actual == self.value,
            Op::Ne => actual != self.value,
            // Patterns are checked by `parse`; one that fails here matches nothing.
            Op::Like => like_tokens(&self.value).is_ok_and(|p| like(actual, &p)),
            Op::ILike => like_tokens(&self.value.to_lowercase())
                .is_ok_and(|p| like(&actual.to_lowercase(), &p)),
        }
    }
}

/// SQL `LIKE` over `pattern`'s pieces ([`like_tokens`]: `%`, `_`, `\` escapes), as the run
/// search's SQL reads them.
///
/// The greedy wildcard matcher: on a mismatch it resumes after the last `%` seen, with that
/// `%` taking one character more. O(|s| × |p|) steps and no recursion, so a pattern of many
/// `%` (a request's filter) can neither blow the stack nor take exponential time.
fn like(s: &str, pattern: &[LikeToken]) -> bool {
    let s: Vec<char> = s.chars().collect();
    let (mut i, mut j) = (0, 0);
    // After the last `%` met: the pattern index following it, and where in `s` its run ends.
    let mut resume: Option<(usize, usize)> = None;
    while i < s.len() {
        match pattern.get(j) {
            Some(LikeToken::Any) => {
                j += 1;
                resume = Some((j, i));
            }
            Some(LikeToken::One) => {
                i += 1;
                j += 1;
            }
            Some(LikeToken::Char(c)) if *c == s[i] => {
                i += 1;
                j += 1;
            }
            _ => match resume {
                Some((after, end)) => {
                    resume = Some((after, end + 1));
                    (i, j) = (end + 1, after);
                }
                None => return false,
            },
        }
    }
    pattern[j..].iter().all(|t| *t == LikeToken::Any)
}

/// Parses `filter` (empty: no conditions), allowing only the fields in `allowed` (and
/// `tags.<key>` when `tags` is true).
pub fn parse(filter: &str, allowed: &[&str], tags: bool) -> Result<Vec<Condition>, ApiError> {
    let err = |msg: String| ApiError::invalid(format!("{msg} in filter {filter:?}"));
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let word = |i: &mut usize| -> String {
        let start = *i;
        while *i < chars.len()
            && (chars[*i].is_alphanumeric() || matches!(chars[*i], '_' | '.' | '-'))
        {
            *i += 1;
        }
        chars[start..*i].iter().collect()
    };
    let quoted = |i: &mut usize, q: char| -> Result<String, ApiError> {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && chars[j] != q {
            j += 1;
        }
        if j == chars.len() {
            return Err(err(format!("unterminated {q} quote at column {}", start)));
        }
        *i = j + 1;
        Ok(chars[start..j].iter().collect())
    };
    skip_ws(&mut i);
    if i == chars.len() {
        return Ok(out);
    }
    loop {
        skip_ws(&mut i);
        let mut field = word(&mut i);
        if field.eq_ignore_ascii_case("tags.") || field.eq_ignore_ascii_case("tag.") {
            match chars.get(i) {
                Some(&q @ ('`' | '"')) => field = format!("tags.{}", quoted(&mut i, q)?),
                _ => return Err(err("expected a tag key after tags.".into())),
            }
        } else if let Some(key) = field
            .strip_prefix("tags.")
            .or_else(|| field.strip_prefix("tag."))
        {
            field = format!("tags.{key}");
        }
        let known = allowed.contains(&field.as_str()) || (tags && field.starts_with("tags."));
        if field.is_empty() || !known {
            let mut fields = allowed.join(", ");
            if tags {
                fields.push_str(", tags.<key>");
            }
            return Err(err(format!(
                "unsupported field {field:?}; searchable fields are {fields}"
            )));
        }
        skip_ws(&mut i);
        let op = match chars.get(i) {
            Some('=') => {
                i += 1;
                Op::Eq
            }
            Some('!') if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                Op::Ne
            }
            _ => match word(&mut i).to_ascii_uppercase().as_str() {
                "LIKE" => Op::Like,
                "ILIKE" => Op::ILike,
                other => {
                    return Err(err(format!(
                        "unsupported operator {other:?}; use =, !=, LIKE or ILIKE"
                    )));
                }
            },
        };
        skip_ws(&mut i);
        let value = match chars.get(i) {
            Some(&q @ ('\'' | '"')) => quoted(&mut i, q)?,
            Some(c) if c.is_ascii_digit() || *c == '-' => word(&mut i),
            _ => return Err(err(format!("expected a quoted value for {field:?}"))),
        };
        if matches!(op, Op::Like | Op::ILike) {
            like_tokens(&value).map_err(err)?;
        }
        out.push(Condition { field, op, value });
        skip_ws(&mut i);
        if i == chars.len() {
            return Ok(out);
        }
        let and = word(&mut i);
        if !and.eq_ignore_ascii_case("and") {
            return Err(err(format!("expected AND, found {and:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clauses_joined_by_and() {
        let c = parse(
            "name = 'ltr' AND tags.`team name` != \"x\" and run_id LIKE 'ab%'",
            &["name", "run_id"],
            true,
        )
        .unwrap();
        assert_eq!(
            c,
            [
                Condition {
                    field: "name".into(),
                    op: Op::Eq,
                    value: "ltr".into()
                },
                Condition {
                    field: "tags.team name".into(),
                    op: Op::Ne,
                    value: "x".into()
                },
                Condition {
                    field: "run_id".into(),
                    op: Op::Like,
                    value: "ab%".into()
                },
            ]
        );
        assert!(parse("  ", &["name"], false).unwrap().is_empty());
        assert_eq!(
            parse("tags.stage = 'a'", &[], true).unwrap()[0].field,
            "tags.stage"
        );
    }

    #[test]
    fn refuses_unknown_fields_operators_and_syntax() {
        for bad in [
            "owner = 'x'",
            "name > 'x'",
            "name = x",
            "name = 'x' OR name = 'y'",
            "name = 'x",
            "tags.k = 'v'",
            r"name LIKE 'ends with \'",
        ] {
            let e = parse(bad, &["name"], false).unwrap_err();
            assert_eq!(e.code, "INVALID_PARAMETER_VALUE", "{bad}");
        }
    }

    #[test]
    fn like_matches_sql_wildcards() {
        let c = |op, value: &str| Condition {
            field: "name".into(),
            op,
            value: value.into(),
        };
        assert!(c(Op::Like, "ab%").matches(Some("abc")));
        assert!(c(Op::Like, "a_c").matches(Some("abc")));
        assert!(!c(Op::Like, "A%").matches(Some("abc")));
        assert!(c(Op::ILike, "A%").matches(Some("abc")));
        assert!(c(Op::Ne, "x").matches(Some("y")));
        assert!(!c(Op::Eq, "x").matches(None));
        assert!(!c(Op::Like, "%").matches(None));
        assert!(c(Op::Ne, "true").matches(None));
    }

    #[test]
    fn like_by_hand() {
        for (s, p, want) in [
            ("", "", true),
            ("", "%", true),
            ("", "_", false),
            ("abc", "%%%", true),
            ("abc", "a%c", true),
            ("abc", "a%b", false),
            ("abcbc", "a%bc", true),
            ("abcbd", "a%bc", false),
            ("aXbXc", "%X%X%", true),
            ("aXb", "%X%X%", false),
            ("mississippi", "%iss%ppi", true),
            ("mississippi", "m%iss%iss%", true),
            ("mississippi", "m%iss%iss%iss%", false),
            // `_` is one character, not one byte.
            ("é", "_", true),
            ("éa", "__", true),
            ("é", "__", false),
            // `\` makes the next character literal.
            ("a_b", r"a\_b", true),
            ("axb", r"a\_b", false),
            ("50%", r"50\%", true),
            ("500", r"50\%", false),
            (r"C:\dir", r"C:\\%", true),
        ] {
            assert_eq!(like(s, &like_tokens(p).unwrap()), want, "{s:?} LIKE {p:?}");
        }
    }

    /// A filter of many `%` from a request: linear in each, not recursive (100,000 `%` used to
    /// overflow the stack) nor exponential (30 `%` against 30 characters, about 10^17 steps).
    #[test]
    fn like_with_many_wildcards_ends() {
        let name = "a".repeat(30);
        let like = |s: &str, p: &str| like(s, &like_tokens(p).unwrap());
        assert!(like(&name, &"%".repeat(100_000)));
        assert!(!like(&name, &format!("{}b", "%a".repeat(30))));
        assert!(like(&name, &format!("{}a", "%a".repeat(29))));
    }
}
