//! The bad-rows store: every invalid line, kept with where it came from and why.

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::{At, Lake, Result};

/// One rejected line.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BadRow {
    /// The original line, unchanged (invalid UTF-8 replaced by U+FFFD).
    pub line: String,
    /// The file path, or `http:<request id>`.
    pub source: String,
    /// 1-based line in the file, or index in the request's batch.
    pub line_number: i64,
    /// `field.path: rule`.
    pub reason: String,
    pub rejected_at: DateTime<Utc>,
}

fn ts_type() -> DataType {
    DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
}

pub(crate) fn schema() -> Schema {
    Schema::from_iter([
        Field::new("line".into(), DataType::String),
        Field::new("source".into(), DataType::String),
        Field::new("line_number".into(), DataType::Int64),
        Field::new("reason".into(), DataType::String),
        Field::new("rejected_at".into(), ts_type()),
    ])
}

pub(crate) fn frame(rows: &[BadRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let ts: Vec<i64> = rows
        .iter()
        .map(|r| r.rejected_at.timestamp_millis())
        .collect();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "line".into(),
                rows.iter().map(|r| r.line.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "source".into(),
                rows.iter().map(|r| r.source.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "line_number".into(),
                rows.iter().map(|r| r.line_number).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rows.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
            ),
            Int64Chunked::from_vec("rejected_at".into(), ts)
                .into_series()
                .cast(&ts_type())?
                .into_column(),
        ],
    )
}

impl Lake {
    /// The stored bad rows, oldest first, optionally only those whose source contains `source`.
    pub fn bad_rows(&self, source: Option<&str>, limit: Option<usize>) -> Result<Vec<BadRow>> {
        let mut lf = self.scan_bad_rows()?;
        if let Some(s) = source {
            lf = lf.filter(col("source").str().contains_literal(lit(s.to_owned())));
        }
        if let Some(n) = limit {
            lf = lf.limit(n as IdxSize);
        }
        let df = lf.collect().at(|| "reading the bad rows".to_owned())?;
        let get = |name: &str| df.column(name).at(|| format!("bad rows column {name}"));
        let line = get("line")?
            .str()
            .at(|| "bad rows: line".to_owned())?
            .clone();
        let source = get("source")?
            .str()
            .at(|| "bad rows: source".to_owned())?
            .clone();
        let number = get("line_number")?
            .i64()
            .at(|| "bad rows: line_number".to_owned())?
            .clone();
        let reason = get("reason")?
            .str()
            .at(|| "bad rows: reason".to_owned())?
            .clone();
        let at = get("rejected_at")?
            .datetime()
            .at(|| "bad rows: rejected_at".to_owned())?
            .physical()
            .clone();
        Ok((0..df.height())
            .map(|i| BadRow {
                line: line.get(i).unwrap_or_default().to_owned(),
                source: source.get(i).unwrap_or_default().to_owned(),
                line_number: number.get(i).unwrap_or_default(),
                reason: reason.get(i).unwrap_or_default().to_owned(),
                rejected_at: at
                    .get(i)
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or_default(),
            })
            .collect())
    }
}
