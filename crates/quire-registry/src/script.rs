//! Several statements sent as few round trips as the database allows.
//!
//! sqlx runs each SQLite connection on its own thread: every statement is a hand-off from the
//! async task to that thread and back (a few futex wake-ups and context switches), which cost
//! more than the statements of a `log-batch` themselves. SQLite prepares a string of several
//! statements one after another, and sqlx's SQLite driver binds a `$n` placeholder of any of
//! them to the n-th value of the whole query, so on SQLite a script is one query: one hand-off.
//! PostgreSQL's extended protocol takes one statement per prepared query, so there each
//! statement is sent on its own, numbered from `$1`.

use futures_util::StreamExt;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Either, Executor};

use crate::filter::SqlBuilder;
use crate::registry::Backend;

/// At most this many values go into one SQLite query (SQLite allows 32,766 placeholders);
/// a script with more is split into several queries. Every statement of a script binds at
/// most a few hundred values, so a query never goes over the limit.
const SQLITE_QUERY_BINDS: usize = 16_000;

/// Statements that run in order on one connection (inside the caller's transaction).
pub(crate) struct Script {
    /// SQLite: statements share a query, and its numbering, until it has enough values.
    shared: bool,
    /// Never empty: the query being written is the last.
    queries: Vec<SqlBuilder>,
    /// Statements started so far.
    statements: usize,
}

/// What a script did, as far as it got.
#[derive(Default)]
pub(crate) struct ScriptRun {
    /// The rows each finished statement changed, in order.
    pub changed: Vec<u64>,
    /// The rows the statements returned, in order.
    pub rows: Vec<AnyRow>,
    /// The error that stopped the script, if one did.
    pub error: Option<sqlx::Error>,
}

impl Script {
    pub fn new(backend: Backend) -> Self {
        Script {
            shared: backend == Backend::Sqlite,
            queries: vec![SqlBuilder::default()],
            statements: 0,
        }
    }

    /// The index the next statement will have in [`ScriptRun::changed`].
    pub fn next_index(&self) -> usize {
        self.statements
    }

    /// Starts the next statement; write its SQL and bind its values into the builder returned.
    pub fn statement(&mut self) -> &mut SqlBuilder {
        self.statements += 1;
        let last = self.queries.len() - 1;
        let current = &mut self.queries[last];
        if !current.sql.is_empty() {
            if self.shared && current.binds.len() < SQLITE_QUERY_BINDS {
                current.sql.push_str(";\n");
            } else {
                self.queries.push(SqlBuilder::default());
            }
        }
        let last = self.queries.len() - 1;
        &mut self.queries[last]
    }

    /// Runs the statements until one fails.
    pub async fn run(self, conn: &mut AnyConnection) -> ScriptRun {
        let mut done = ScriptRun::default();
        for q in self.queries.into_iter().filter(|q| !q.sql.is_empty()) {
            let (sql, arguments) = match q.into_parts() {
                Ok(parts) => parts,
                Err(e) => {
                    done.error = Some(e);
                    return done;
                }
            };
            let mut results = conn.fetch_many(sqlx::query_with(sql, arguments));
            while let Some(result) = results.next().await {
                match result {
                    Ok(Either::Left(finished)) => done.changed.push(finished.rows_affected()),
                    Ok(Either::Right(row)) => done.rows.push(row),
                    Err(e) => {
                        done.error = Some(e);
                        return done;
                    }
                }
            }
        }
        done
    }
}
