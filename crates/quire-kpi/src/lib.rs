//! The one KPI codebase of Quire: every metric of `contracts/kpis.md`, written once as
//! lazy Polars queries over a frame of events in the lake schema (`docs/lake.md`).
//!
//! The historical replay (`quire kpis`, the warehouse build) and the live view of the open
//! hour call the very same functions; none of them assumes its input is complete history
//! unless documented (new vs returning users, first orders and `clv_historical` look at
//! everything in the frame they are given).
//!
//! Layers, as in the warehouse (`<lake>/warehouse/`):
//! - staging: [`stage_events`] (deduplicated by `event_id`, test traffic dropped) and
//!   [`sessionize`] (the session columns);
//! - facts: `fct_sessions`, `fct_orders`, `fct_order_items`;
//! - aggregates: `agg_daily_kpis`, `agg_hourly_gmv`, `agg_book_leaderboard_units`,
//!   `agg_book_leaderboard_gmv`.
//!
//! [`build_models`] builds all of them ([`Models`]), [`materialize`] writes them,
//! [`kpi_report`] turns them into the `quire kpis --json` object ([`KpiReport`]) and
//! [`hourly_gmv`] is the hourly GMV shared with the live path.
//!
//! Columns of the models (all days and hours UTC; `date` is Date, `hour` Datetime(ms, UTC)):
//! - `fct_sessions`: session_id, user_id, date, hour, session_start, session_end, device,
//!   traffic_source, n_events, has_product_view, has_add_to_cart, has_checkout, has_order,
//!   has_search, has_rec_click, is_bounce, is_new_user_session, is_first_session;
//! - `fct_orders`: order_id, event_id, user_id, session_id, order_timestamp, date, hour,
//!   total_price, discount, promo_code, fees, refunds (capped), net, units, cogs, rec_driven;
//! - `fct_order_items`: order_id, user_id, order_timestamp, date, book_id, quantity,
//!   unit_price, line_gmv, unit_cost (null if unknown), line_cogs (unknown cost = 0);
//! - `agg_daily_kpis`: date and every per-day metric (funnel as `funnel_<step>`, rates as
//!   `funnel_rate_<step>`, maps as lists of structs), plus fees, cogs, new_customers and
//!   marketing_spend;
//! - `agg_hourly_gmv`: hour, gmv, net_gmv, orders;
//! - `agg_book_leaderboard_{units,gmv}`: date, rank, book_id, units, gmv, views,
//!   add_to_carts, view_to_cart_rate; every book viewed, put in a cart or sold that day.
//!
//! Event-level site metrics (`no_results_rate`, `rec_ctr`) count events by their own UTC day;
//! session metrics count sessions by the day they start; money counts orders by the day of
//! their standing `order_placed`.
//!
//! Session ids are `"{user_id}#{session_start as epoch milliseconds}"`: deterministic, and the
//! same in the replay and the live path whenever the session's first event is in both frames.

mod models;
#[cfg(test)]
mod perf;
mod report;
mod staging;
#[cfg(test)]
mod testutil;

use std::path::PathBuf;

use polars::prelude::*;

pub use models::{
    MaterializeSummary, Models, WAREHOUSE_TABLES, build_models, materialize, model_path,
};
pub use report::{
    BookGmv, BookKpis, BookUnits, DailyKpis, Funnel, FunnelRates, HourlyGmv, KpiReport, hourly_gmv,
    kpi_report, kpi_report_from_models,
};
pub use staging::{SESSION_GAP_MS, sessionize, stage_events};

/// The version of the KPI definitions implemented here; part of the fingerprint of anything
/// derived from them (bump the suffix when a definition or a model's columns change).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+kpi.1");

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Polars query failed (bad schema, missing column, …).
    #[error("polars: {0}")]
    Polars(#[from] PolarsError),
    /// Reading or writing a warehouse file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A computed table did not have the expected shape.
    #[error("table {table}: {reason}")]
    Shape { table: &'static str, reason: String },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The warehouse dimension tables, schemas in `docs/lake.md`; `None` = table not loaded.
#[derive(Clone, Default)]
pub struct Dims {
    /// `books`: `book_id`, `unit_cost`, … (only those two are read).
    pub books: Option<LazyFrame>,
    /// `marketing_spend`: `date` (Date), `channel`, `spend` (only `date` and `spend` are read).
    pub marketing_spend: Option<LazyFrame>,
}

/// An inclusive range of UTC dates; `None` = unbounded on that side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DateRange {
    pub from: Option<chrono::NaiveDate>,
    pub to: Option<chrono::NaiveDate>,
}

impl DateRange {
    /// The predicate "`date_col` is inside the range" (`date_col` of type Date).
    pub(crate) fn contains(&self, date_col: Expr) -> Expr {
        let mut pred = lit(true);
        if let Some(from) = self.from {
            pred = pred.and(date_col.clone().gt_eq(date_lit(from)));
        }
        if let Some(to) = self.to {
            pred = pred.and(date_col.lt_eq(date_lit(to)));
        }
        pred
    }
}

/// A Date literal.
pub(crate) fn date_lit(d: chrono::NaiveDate) -> Expr {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX);
    lit(days).cast(DataType::Date)
}
