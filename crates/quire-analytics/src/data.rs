//! The lake side: a date range of events, staged and sessionized by quire-kpi.

use std::sync::OnceLock;

use polars::prelude::*;
use quire_kpi::{DateRange, Dims, Models};

use crate::Result;

/// A date range of the lake, ready for the analyses.
///
/// Built from the lake's raw event frame: the warehouse models are computed once over the
/// whole history (so "first session", "new user" and first orders see everything before the
/// range), and each accessor returns the rows whose day is inside the range. Frames are
/// collected on first use and cached, so `quire analyze report` stages the lake once.
pub struct Dataset {
    range: DateRange,
    raw: LazyFrame,
    models: Models,
    books: Option<LazyFrame>,
    sessions: OnceLock<DataFrame>,
    orders: OnceLock<DataFrame>,
    items: OnceLock<DataFrame>,
    events: OnceLock<DataFrame>,
}

pub(crate) fn in_range(range: DateRange, date: Expr) -> Expr {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let day = |d: chrono::NaiveDate| {
        lit(i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX)).cast(DataType::Date)
    };
    let mut p = lit(true);
    if let Some(f) = range.from {
        p = p.and(date.clone().gt_eq(day(f)));
    }
    if let Some(t) = range.to {
        p = p.and(date.lt_eq(day(t)));
    }
    p
}

fn cached(cell: &OnceLock<DataFrame>, f: impl FnOnce() -> Result<DataFrame>) -> Result<DataFrame> {
    if let Some(df) = cell.get() {
        return Ok(df.clone());
    }
    let df = f()?;
    Ok(cell.get_or_init(|| df).clone())
}

impl Dataset {
    /// `raw`: events in the lake schema (`Lake::scan_events`); `books`: the books dimension
    /// if loaded (genres, series).
    pub fn new(raw: LazyFrame, books: Option<LazyFrame>, range: DateRange) -> Result<Self> {
        if let (Some(f), Some(t)) = (range.from, range.to)
            && f > t
        {
            return Err(crate::Error::Invalid(format!(
                "--from {f} is after --to {t}"
            )));
        }
        let models = quire_kpi::build_models(
            raw.clone(),
            &Dims {
                books: books.clone(),
                marketing_spend: None,
            },
        )?;
        Ok(Dataset {
            range,
            raw,
            models,
            books,
            sessions: OnceLock::new(),
            orders: OnceLock::new(),
            items: OnceLock::new(),
            events: OnceLock::new(),
        })
    }

    pub fn range(&self) -> DateRange {
        self.range
    }

    /// The raw event frame (lake schema, unstaged) for analyses that need other columns.
    pub fn raw(&self) -> LazyFrame {
        self.raw.clone()
    }

    /// The warehouse models over the whole history.
    pub fn models(&self) -> &Models {
        &self.models
    }

    /// The books dimension, if loaded.
    pub fn books(&self) -> Option<LazyFrame> {
        self.books.clone()
    }

    /// `fct_sessions` of the sessions that start inside the range.
    pub fn sessions(&self) -> Result<DataFrame> {
        cached(&self.sessions, || {
            Ok(self
                .models
                .fct_sessions
                .clone()
                .filter(in_range(self.range, col("date")))
                .collect()?)
        })
    }

    /// `fct_orders` of the orders placed inside the range.
    pub fn orders(&self) -> Result<DataFrame> {
        cached(&self.orders, || {
            Ok(self
                .models
                .fct_orders
                .clone()
                .filter(in_range(self.range, col("date")))
                .collect()?)
        })
    }

    /// `fct_order_items` of those orders, with `genre` (null without the books dimension).
    pub fn items(&self) -> Result<DataFrame> {
        cached(&self.items, || {
            let items = self
                .models
                .fct_order_items
                .clone()
                .filter(in_range(self.range, col("date")));
            let items = match &self.books {
                Some(b) => items.join(
                    b.clone().select([col("book_id"), col("genre")]),
                    [col("book_id")],
                    [col("book_id")],
                    JoinArgs {
                        maintain_order: MaintainOrderJoin::Left,
                        ..JoinArgs::new(JoinType::Left)
                    },
                ),
                None => items.with_column(lit(NULL).cast(DataType::String).alias("genre")),
            };
            Ok(items.collect()?)
        })
    }

    /// The sessionized staged events of the sessions that start inside the range (a session
    /// belongs to the UTC day of its first event, kpis.md, with all its events, even those
    /// after midnight), each user's events in time order: `user_id`, `session_id`, `ts` (epoch
    /// ms), `event_type`, `page`, `book_id`, `device`, `traffic_source`, `is_session_start`.
    pub fn events(&self) -> Result<DataFrame> {
        cached(&self.events, || {
            let staged = quire_kpi::stage_events(self.raw.clone());
            Ok(quire_kpi::sessionize(staged)
                .filter(in_range(self.range, col("session_start").dt().date()))
                .select([
                    col("user_id"),
                    col("session_id"),
                    col("event_timestamp").cast(DataType::Int64).alias("ts"),
                    col("event_type"),
                    col("page"),
                    col("book_id"),
                    col("device"),
                    col("traffic_source"),
                    col("is_session_start"),
                ])
                .collect()?)
        })
    }

    /// The end of observation, epoch ms: the end of the latest session of the range (the
    /// censoring time of the survival and CLV models).
    pub fn end_ms(&self) -> Result<Option<i64>> {
        let s = self.sessions()?;
        Ok(s.column("session_end")?
            .cast(&DataType::Int64)?
            .i64()?
            .max())
    }

    /// The UTC days from the range's first order to its last, both counted (0 without
    /// orders).
    pub fn order_days(&self) -> Result<u32> {
        let span = self
            .orders()?
            .lazy()
            .select([(col("date").max() - col("date").min())
                .dt()
                .total_days(false)
                .alias("span")])
            .collect()?;
        let span = span.column("span")?.cast(&DataType::Int64)?;
        Ok(span
            .i64()?
            .get(0)
            .map_or(0, |d| u32::try_from(d + 1).unwrap_or(u32::MAX)))
    }
}
