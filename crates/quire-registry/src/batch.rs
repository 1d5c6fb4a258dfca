//! `log-batch` writes: one batch's statements and checks, and the queue of batches that wait
//! for SQLite's write turn so that one transaction can write them together (group commit).
//!
//! A SQLite commit costs the same whether it carries one batch or ten: three hand-offs to the
//! connection's thread (begin, the script, commit) and a WAL append of every page touched.
//! Under concurrent loggers the batches queue for the write turn anyway; whoever gets the turn
//! writes all of them at once (`Registry::group_commit`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::filter::{Bind, SqlBuilder};
use crate::model::{ACTIVE, Metric};
use crate::registry::{MAX_PARAM_VALUE_LEN, MAX_TAG_VALUE_LEN, check_key, check_value};
use crate::script::Script;

/// At most this many batches share a transaction: bounds the script (and a fallback's
/// replays) while a burst of loggers drains.
pub(crate) const MAX_GROUP: usize = 64;

/// Rows (or keys) per multi-row statement of a batch: a few hundred bound values each, far
/// below SQLite's and PostgreSQL's limits.
const ROWS_PER_STATEMENT: usize = 100;

/// One `log-batch` request, checked.
#[derive(Debug)]
pub(crate) struct Batch {
    run_id: String,
    metrics: Vec<Metric>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
}

impl Batch {
    /// Checks keys and values (nothing is written when one is bad).
    pub fn new(
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<Self> {
        for m in metrics {
            check_key("metric", &m.key)?;
        }
        for (k, v) in params {
            check_key("param", k)?;
            check_value("param", k, v, MAX_PARAM_VALUE_LEN)?;
        }
        for (k, v) in tags {
            check_key("tag", k)?;
            check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
        }
        Ok(Batch {
            run_id: run_id.to_owned(),
            metrics: metrics.to_vec(),
            params: params.to_vec(),
            tags: tags.to_vec(),
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Appends this batch's statements to `script` and returns the index of its first, the run
    /// check, whose changed-row count is 0 when the run is missing or not active. The stored
    /// values of its params come back as rows `(batch, key, value)` with `batch` = `index`.
    pub fn append(&self, index: i64, script: &mut Script) -> usize {
        let run_id = self.run_id.as_str();
        let first = script.next_index();
        // A write first: it takes SQLite's write lock and checks the run exists and is active.
        let q = script.statement();
        let (run, active) = (
            q.bind(Bind::Text(run_id.into())),
            q.bind(Bind::Text(ACTIVE.into())),
        );
        q.sql.push_str(&format!(
            "UPDATE runs SET lifecycle_stage = lifecycle_stage WHERE run_uuid = {run} AND lifecycle_stage = {active}"
        ));
        // Params: a new key is stored, a logged one kept; then the stored values of the batch's
        // keys come back, to refuse a changed one.
        for chunk in self.params.chunks(ROWS_PER_STATEMENT) {
            let q = script.statement();
            let run = q.bind(Bind::Text(run_id.into()));
            let rows: Vec<String> = chunk
                .iter()
                .map(|(k, v)| {
                    let (k, v) = (q.bind(Bind::Text(k.clone())), q.bind(Bind::Text(v.clone())));
                    format!("({run}, {k}, {v})")
                })
                .collect();
            q.sql.push_str(&format!(
                "INSERT INTO params (run_uuid, key, value) VALUES {} \
                 ON CONFLICT (run_uuid, key) DO NOTHING",
                rows.join(", ")
            ));
            let q = script.statement();
            let (batch, run) = (q.bind(Bind::Int(index)), q.bind(Bind::Text(run_id.into())));
            let keys: Vec<String> = chunk
                .iter()
                .map(|(k, _)| q.bind(Bind::Text(k.clone())))
                .collect();
            q.sql.push_str(&format!(
                "SELECT {batch} AS batch, key, value FROM params WHERE run_uuid = {run} AND key IN ({})",
                keys.join(", ")
            ));
        }
        // The batch's latest value per key (a statement may not upsert a row twice), by the
        // same order as the stored one: step, then timestamp, then value.
        let mut latest: BTreeMap<&str, &Metric> = BTreeMap::new();
        for m in &self.metrics {
            // As the upsert below decides: in a tie of step and timestamp a NaN (NULL) value
            // loses to any number.
            let newer = |cur: &Metric| {
                let value = match (m.value.is_nan(), cur.value.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Less,
                    (false, true) => std::cmp::Ordering::Greater,
                    (false, false) => m.value.total_cmp(&cur.value),
                };
                (m.step, m.timestamp)
                    .cmp(&(cur.step, cur.timestamp))
                    .then(value)
                    .is_gt()
            };
            match latest.get(m.key.as_str()) {
                Some(cur) if !newer(cur) => {}
                _ => {
                    latest.insert(&m.key, m);
                }
            }
        }
        let latest: Vec<&Metric> = latest.into_values().collect();
        let all: Vec<&Metric> = self.metrics.iter().collect();
        for chunk in all.chunks(ROWS_PER_STATEMENT) {
            metric_rows(script.statement(), "INSERT INTO metrics", "", run_id, chunk);
        }
        for chunk in latest.chunks(ROWS_PER_STATEMENT) {
            metric_rows(
                script.statement(),
                "INSERT INTO latest_metrics",
                "ON CONFLICT (run_uuid, key) DO UPDATE \
                 SET value = excluded.value, timestamp = excluded.timestamp, step = excluded.step \
                 WHERE excluded.step > latest_metrics.step \
                    OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                    OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                        AND (excluded.value > latest_metrics.value \
                             OR (latest_metrics.value IS NULL AND excluded.value IS NOT NULL)))",
                run_id,
                chunk,
            );
        }
        for (k, v) in &self.tags {
            let q = script.statement();
            let (run, k, v) = (
                q.bind(Bind::Text(run_id.into())),
                q.bind(Bind::Text(k.clone())),
                q.bind(Bind::Text(v.clone())),
            );
            q.sql.push_str(&format!(
                "INSERT INTO tags (run_uuid, key, value) VALUES ({run}, {k}, {v}) \
                 ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value"
            ));
        }
        first
    }

    /// Refuses a param whose stored value (read back after the insert) differs from this
    /// batch's: params are immutable.
    pub fn check_params(&self, stored: &HashMap<String, String>) -> Result<()> {
        for (k, v) in &self.params {
            if let Some(old) = stored.get(k).filter(|old| *old != v) {
                return Err(Error::InvalidParameter(format!(
                    "param {k:?} of run {} was already logged with value {old:?}; \
                     params are immutable, so {v:?} is refused",
                    self.run_id
                )));
            }
        }
        Ok(())
    }
}

/// `{insert} (run_uuid, key, value, timestamp, step) VALUES (…), (…) {tail}`: one statement
/// for `rows` of run `run_id`.
fn metric_rows(q: &mut SqlBuilder, insert: &str, tail: &str, run_id: &str, rows: &[&Metric]) {
    let run = q.bind(Bind::Text(run_id.into()));
    let values: Vec<String> = rows
        .iter()
        .map(|m| {
            // NaN is stored as NULL on both backends (SQLite has no NaN; see the migration).
            let value = if m.value.is_nan() {
                "NULL".to_owned()
            } else {
                q.bind(Bind::Float(m.value))
            };
            format!(
                "({run}, {}, {value}, {}, {})",
                q.bind(Bind::Text(m.key.clone())),
                q.bind(Bind::Int(m.timestamp)),
                q.bind(Bind::Int(m.step))
            )
        })
        .collect();
    q.sql.push_str(&format!(
        "{insert} (run_uuid, key, value, timestamp, step) VALUES {} {tail}",
        values.join(", ")
    ));
}

/// A batch waiting for the write turn, and where its answer goes.
#[derive(Debug)]
pub(crate) struct Waiting {
    pub batch: Batch,
    pub done: oneshot::Sender<Result<()>>,
}

/// The batches waiting for the write turn, oldest first.
#[derive(Debug, Default)]
pub(crate) struct WaitingBatches(Mutex<VecDeque<Waiting>>);

impl WaitingBatches {
    pub fn push(&self, batch: Batch, done: oneshot::Sender<Result<()>>) {
        // The queue holds plain data and no invariant a panicking holder could break.
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        queue.push_back(Waiting { batch, done });
    }

    /// The oldest `max` waiting batches.
    pub fn take(&self, max: usize) -> Vec<Waiting> {
        let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(max);
        queue.drain(..n).collect()
    }
}
