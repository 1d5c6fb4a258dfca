//! The warehouse models: facts and aggregates, built lazily over the staged events.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::staging::{
    NEW_SESSION, ORDER_PLACED, ORDER_RETURNED, REC_BEFORE, SESSION_KEY, is_type, session_id_expr,
    stage_events, staged_of, staged_session_events, ts, with_sessions,
};
use crate::{Dims, Error, Result};

/// Every model of the warehouse, as lazy frames. The expensive parts (sessionization, orders,
/// items) are computed once by [`build_models`]; the frames here wrap those results.
#[derive(Clone)]
pub struct Models {
    /// `stg_events`: [`stage_events`] of the input (lazy, all columns).
    pub stg_events: LazyFrame,
    /// `fct_sessions`: one row per session.
    pub fct_sessions: LazyFrame,
    /// `fct_orders`: one row per `order_id` (its standing `order_placed`).
    pub fct_orders: LazyFrame,
    /// `fct_order_items`: the items of `fct_orders`, one row per item.
    pub fct_order_items: LazyFrame,
    /// `agg_daily_kpis`: one row per UTC day with sessions or orders.
    pub agg_daily_kpis: LazyFrame,
    /// `agg_hourly_gmv`: one row per UTC hour with orders.
    pub agg_hourly_gmv: LazyFrame,
    /// `agg_book_leaderboard_units`: per day and book, ranked by units sold.
    pub agg_book_leaderboard_units: LazyFrame,
    /// `agg_book_leaderboard_gmv`: per day and book, ranked by item GMV.
    pub agg_book_leaderboard_gmv: LazyFrame,
    /// Per day, event type and module: event counts and zero-result searches.
    pub(crate) site_events: LazyFrame,
}

fn f64_null() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

/// `num / den` as Float64, null when `den` is 0 (or null).
pub(crate) fn ratio(num: Expr, den: Expr) -> Expr {
    when(den.clone().gt(lit(0)))
        .then(num.cast(DataType::Float64) / den.cast(DataType::Float64))
        .otherwise(f64_null())
}

fn date_of(e: Expr) -> Expr {
    e.dt().date()
}

fn hour_of(e: Expr) -> Expr {
    e.dt().truncate(lit("1h"))
}

/// A left join that keeps the left frame's row order.
fn left() -> JoinArgs {
    JoinArgs {
        maintain_order: MaintainOrderJoin::Left,
        ..JoinArgs::new(JoinType::Left)
    }
}

fn count(e: Expr) -> Expr {
    e.sum().cast(DataType::Int64)
}

/// The session flags: event type → `fct_sessions` column.
const SESSION_FLAGS: [(&str, &str); 6] = [
    ("product_view", "has_product_view"),
    ("add_to_cart", "has_add_to_cart"),
    ("checkout_started", "has_checkout"),
    (ORDER_PLACED, "has_order"),
    ("search_performed", "has_search"),
    ("recommendation_clicked", "has_rec_click"),
];

/// The sessions (one row per session, in user then time order) and the sessions of the
/// `order_placed` events (`event_id`, `session_id`, `rec_driven`: a `recommendation_clicked`
/// precedes the order in its session).
///
/// This is the one sort of the event stream. No group-by: the sorted events are cut into
/// sessions with cumulative sums, and only the first and last row of each session and the
/// order rows are collected.
pub(crate) fn sessions_and_order_sessions(raw: LazyFrame) -> Result<(DataFrame, DataFrame)> {
    let needed = [
        "event_id",
        "event_type",
        "event_timestamp",
        "user_id",
        "device",
        "traffic_source",
        "is_test",
        "ingested_at",
    ];
    let src = col("traffic_source");
    let valid_src = src.clone().is_not_null().and(src.clone().neq(lit("")));
    let backward = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Backward(None));
    let cum = |name: &str| format!("_cum_{name}");
    let is_last = col(NEW_SESSION)
        .shift(lit(-1))
        .fill_null(lit(true))
        .alias("_is_last");
    let mut per_row: Vec<Expr> = SESSION_FLAGS
        .iter()
        .map(|(ty, name)| {
            is_type(ty)
                .cast(DataType::UInt32)
                .cum_sum(false)
                .alias(cum(name))
        })
        .collect();
    per_row.extend([
        is_last,
        // The first non-empty traffic_source at or after each row, and its session.
        backward(
            when(valid_src.clone())
                .then(col(SESSION_KEY))
                .otherwise(lit(NULL)),
        )
        .alias("_src_key"),
        backward(when(valid_src).then(src).otherwise(lit(NULL))).alias("_src"),
    ]);
    let sparse = with_sessions(staged_session_events(raw.select(needed.map(col))))
        .with_row_index("_row", None)
        .with_columns(per_row)
        .filter(
            col(NEW_SESSION)
                .or(col("_is_last"))
                .or(is_type(ORDER_PLACED)),
        )
        .drop(by_name(
            ["traffic_source", "is_test", "ingested_at"],
            true,
            false,
        ))
        .collect()?
        .lazy();

    let mut start_cols = vec![
        col(SESSION_KEY),
        col("user_id"),
        col("session_start"),
        col("device"),
        when(col("_src_key").eq(col(SESSION_KEY)))
            .then(col("_src"))
            .otherwise(lit("direct"))
            .alias("traffic_source"),
        col("_row").alias("_start_row"),
    ];
    // Counts strictly before the session's first event.
    start_cols.extend(SESSION_FLAGS.iter().map(|(ty, name)| {
        (col(cum(name)) - is_type(ty).cast(DataType::UInt32)).alias(format!("_before_{name}"))
    }));
    let starts = sparse
        .clone()
        .filter(col(NEW_SESSION))
        .select(start_cols)
        .collect()?;
    let mut end_cols = vec![ts().alias("session_end"), col("_row").alias("_end_row")];
    end_cols.extend(SESSION_FLAGS.iter().map(|(_, name)| col(cum(name))));
    let ends = sparse
        .clone()
        .filter(col("_is_last"))
        .select(end_cols)
        .collect()?;
    if starts.height() != ends.height() {
        return Err(Error::Shape {
            table: "fct_sessions",
            reason: format!(
                "{} session starts but {} session ends",
                starts.height(),
                ends.height()
            ),
        });
    }
    let mut flags: Vec<Expr> = SESSION_FLAGS
        .iter()
        .map(|(_, name)| {
            col(cum(name))
                .gt(col(format!("_before_{name}")))
                .alias(*name)
        })
        .collect();
    let user_changed = col("user_id")
        .neq(col("user_id").shift(lit(1)))
        .fill_null(lit(true));
    flags.extend([
        session_id_expr(col("user_id"), col("session_start")).alias("session_id"),
        date_of(col("session_start")).alias("date"),
        hour_of(col("session_start")).alias("hour"),
        (col("_end_row") - col("_start_row") + lit(1))
            .cast(DataType::Int64)
            .alias("n_events"),
        user_changed.clone().alias("is_first_session"),
    ]);
    let forward = |e: Expr| e.fill_null_with_strategy(FillNullStrategy::Forward(None));
    let sessions = starts
        .hstack(ends.columns())?
        .lazy()
        .with_columns(flags)
        .with_columns([
            col("n_events").eq(lit(1)).alias("is_bounce"),
            // Sessions are in user order: the user's first session date, carried forward.
            col("date")
                .eq(forward(
                    when(user_changed).then(col("date")).otherwise(lit(NULL)),
                ))
                .alias("is_new_user_session"),
        ])
        .select(SESSION_COLUMNS.map(col))
        .collect()?;
    let order_sessions = sparse
        .filter(is_type(ORDER_PLACED))
        .select([
            col("event_id"),
            session_id_expr(col("user_id"), col("session_start")).alias("session_id"),
            col(REC_BEFORE).alias("rec_driven"),
        ])
        .collect()?;
    Ok((sessions, order_sessions))
}

/// The published columns of `fct_sessions`.
const SESSION_COLUMNS: [&str; 18] = [
    "session_id",
    "user_id",
    "date",
    "hour",
    "session_start",
    "session_end",
    "device",
    "traffic_source",
    "n_events",
    "has_product_view",
    "has_add_to_cart",
    "has_checkout",
    "has_order",
    "has_search",
    "has_rec_click",
    "is_bounce",
    "is_new_user_session",
    "is_first_session",
];

/// The standing orders (the earliest `order_placed` per `order_id`, by time then `event_id`)
/// with their refunds (all `order_returned` of the frame, capped at `total_price`) and `net`.
/// Returns whose order is not in the frame are ignored.
pub(crate) fn standing_orders(raw: LazyFrame) -> LazyFrame {
    let src = staged_of(raw, &[ORDER_PLACED, ORDER_RETURNED]).select([
        col("event_id"),
        col("event_type"),
        ts(),
        col("user_id"),
        col("order_id"),
        col("items"),
        col("total_price"),
        col("discount"),
        col("promo_code"),
        col("fees"),
        col("refund_amount"),
    ]);
    let placed = src
        .clone()
        .filter(is_type(ORDER_PLACED))
        .sort(
            ["event_timestamp", "event_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .filter(col("order_id").is_first_distinct());
    let refunds = src
        .filter(is_type(ORDER_RETURNED))
        .group_by([col("order_id")])
        .agg([col("refund_amount").sum().alias("_refund_total")]);
    let refund_total = col("_refund_total").fill_null(lit(0.0));
    placed
        .join(refunds, [col("order_id")], [col("order_id")], left())
        .select([
            col("order_id"),
            col("event_id"),
            col("user_id"),
            ts().alias("order_timestamp"),
            date_of(ts()).alias("date"),
            hour_of(ts()).alias("hour"),
            col("total_price"),
            col("discount").fill_null(lit(0.0)),
            col("promo_code"),
            col("fees").fill_null(lit(0.0)),
            when(refund_total.clone().gt(col("total_price")))
                .then(col("total_price"))
                .otherwise(refund_total)
                .alias("refunds"),
            col("items"),
        ])
        .with_columns([(col("total_price") - col("refunds")).alias("net")])
}

/// GMV per UTC hour of a frame of orders (`hour`, `total_price`, `net`): `hour`, `gmv`,
/// `net_gmv`, `orders`, sorted by hour.
pub(crate) fn hourly_of_orders(orders: LazyFrame) -> LazyFrame {
    orders
        .group_by([col("hour")])
        .agg([
            col("total_price").sum().alias("gmv"),
            col("net").sum().alias("net_gmv"),
            len().cast(DataType::Int64).alias("orders"),
        ])
        .sort(["hour"], Default::default())
}

/// The items of the orders, one row per item, with `unit_cost` from the books dimension
/// (null when unknown) and `line_gmv`, `line_cogs` (unknown cost counts 0).
fn order_items(orders: LazyFrame, books: Option<LazyFrame>) -> LazyFrame {
    let item = |f: &str| col("items").struct_().field_by_name(f).alias(f);
    let items = orders
        .select([
            col("order_id"),
            col("user_id"),
            col("order_timestamp"),
            col("date"),
            col("items"),
        ])
        .explode(
            cols(["items"]),
            ExplodeOptions {
                empty_as_null: false,
                keep_nulls: false,
            },
        )
        .with_columns([item("book_id"), item("quantity"), item("unit_price")])
        .drop(cols(["items"]))
        .with_columns([
            (col("quantity").cast(DataType::Float64) * col("unit_price")).alias("line_gmv"),
        ]);
    let with_cost = match books {
        Some(books) => {
            let costs = books
                .select([col("book_id"), col("unit_cost").cast(DataType::Float64)])
                .group_by([col("book_id")])
                .agg([col("unit_cost").first()]);
            items.join(costs, [col("book_id")], [col("book_id")], left())
        }
        None => items.with_columns([f64_null().alias("unit_cost")]),
    };
    with_cost
        .with_columns([(col("quantity").cast(DataType::Float64)
            * col("unit_cost").fill_null(lit(0.0)))
        .alias("line_cogs")])
        .sort(
            ["order_timestamp", "order_id"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
}

/// Per UTC day (of the event), event type and module: `n` events and `zero_results`
/// (searches with `results_count` = 0), for searches and recommendations.
pub(crate) fn site_events(raw: LazyFrame) -> LazyFrame {
    staged_of(
        raw,
        &[
            "search_performed",
            "recommendation_shown",
            "recommendation_clicked",
        ],
    )
    .group_by([
        date_of(ts()).alias("date"),
        col("event_type"),
        col("module"),
    ])
    .agg([
        len().cast(DataType::Int64).alias("n"),
        count(col("results_count").eq(lit(0))).alias("zero_results"),
    ])
}

/// Per UTC day and book: `views` (`product_view`) and `add_to_carts`.
fn book_views(raw: LazyFrame) -> LazyFrame {
    staged_of(raw, &["product_view", "add_to_cart"])
        .filter(col("book_id").is_not_null())
        .group_by([date_of(ts()).alias("date"), col("book_id")])
        .agg([
            count(is_type("product_view")).alias("views"),
            count(is_type("add_to_cart")).alias("add_to_carts"),
        ])
}

/// Per day and module: `rec_shown`, `rec_clicked`, `rec_ctr`.
pub(crate) fn rec_by_module(site: LazyFrame) -> LazyFrame {
    site.filter(col("event_type").neq(lit("search_performed")))
        .group_by([col("date"), col("module")])
        .agg([
            col("n")
                .filter(is_type("recommendation_shown"))
                .sum()
                .alias("rec_shown"),
            col("n")
                .filter(is_type("recommendation_clicked"))
                .sum()
                .alias("rec_clicked"),
        ])
        .with_columns([ratio(col("rec_clicked"), col("rec_shown")).alias("rec_ctr")])
        .sort(["date", "module"], Default::default())
}

/// Per day and key (`traffic_source` or `device`): `sessions`.
pub(crate) fn sessions_by(sessions: LazyFrame, key: &str) -> LazyFrame {
    sessions
        .group_by([col("date"), col(key)])
        .agg([len().cast(DataType::Int64).alias("sessions")])
        .sort(["date", key], Default::default())
}

/// A long (date, key, value) frame as one list-of-struct column per date.
fn nest(long: LazyFrame, key: &str, value: &str, name: &str) -> LazyFrame {
    long.sort(["date", key], Default::default())
        .group_by_stable([col("date")])
        .agg([as_struct(vec![col(key), col(value)]).alias(name)])
}

/// `agg_daily_kpis`: every per-day metric of `contracts/kpis.md`, one row per UTC day with
/// sessions or orders, sorted by date.
fn daily_kpis(
    sessions: LazyFrame,
    orders: LazyFrame,
    site: LazyFrame,
    spend: Option<LazyFrame>,
) -> Result<LazyFrame> {
    let s = |c: &str| col(c);
    let sess_daily = sessions.clone().group_by([col("date")]).agg([
        len().cast(DataType::Int64).alias("sessions"),
        s("user_id").n_unique().cast(DataType::Int64).alias("users"),
        s("user_id")
            .filter(s("is_new_user_session"))
            .n_unique()
            .cast(DataType::Int64)
            .alias("new_users"),
        count(s("is_bounce")).alias("_bounces"),
        count(s("has_product_view")).alias("funnel_viewed_product"),
        count(s("has_add_to_cart")).alias("funnel_added_to_cart"),
        count(s("has_checkout")).alias("funnel_started_checkout"),
        count(s("has_order")).alias("funnel_purchased"),
        count(s("has_search")).alias("_search_sessions"),
        count(s("has_search").and(s("has_order"))).alias("_search_purchased"),
        count(s("has_add_to_cart").and(s("has_order").not())).alias("_abandoned"),
    ]);
    let orders_daily = orders.clone().group_by([col("date")]).agg([
        s("total_price").sum().alias("gmv"),
        s("net").sum().alias("net_gmv"),
        len().cast(DataType::Int64).alias("orders"),
        s("fees").sum().alias("_fees"),
        s("cogs").sum().alias("_cogs"),
        s("units").sum().cast(DataType::Int64).alias("units"),
        s("total_price")
            .filter(s("rec_driven"))
            .sum()
            .alias("rec_driven_gmv"),
    ]);
    let new_customers = orders
        .group_by([col("user_id")])
        .agg([col("date").min()])
        .group_by([col("date")])
        .agg([len().cast(DataType::Int64).alias("_new_customers")]);
    let search_daily = site
        .clone()
        .filter(is_type("search_performed"))
        .group_by([col("date")])
        .agg([
            s("n").sum().alias("_searches"),
            s("zero_results").sum().alias("_zero_results"),
        ]);
    let by_module = rec_by_module(site);
    let rec_daily = by_module
        .clone()
        .group_by([col("date")])
        .agg([s("rec_shown").sum(), s("rec_clicked").sum()]);
    let days = concat(
        [
            sess_daily.clone().select([col("date")]),
            orders_daily.clone().select([col("date")]),
        ],
        UnionArgs::default(),
    )?
    .unique(None, UniqueKeepStrategy::Any);
    let on = || [col("date")];
    let mut daily = days
        .join(sess_daily, on(), on(), left())
        .join(orders_daily, on(), on(), left())
        .join(new_customers, on(), on(), left())
        .join(search_daily, on(), on(), left())
        .join(rec_daily, on(), on(), left())
        .join(
            nest(
                sessions_by(sessions.clone(), "traffic_source"),
                "traffic_source",
                "sessions",
                "sessions_by_source",
            ),
            on(),
            on(),
            left(),
        )
        .join(
            nest(
                sessions_by(sessions, "device"),
                "device",
                "sessions",
                "sessions_by_device",
            ),
            on(),
            on(),
            left(),
        )
        .join(
            nest(by_module, "module", "rec_ctr", "rec_ctr_by_module"),
            on(),
            on(),
            left(),
        );
    daily = match spend {
        Some(spend) => {
            let per_day = spend
                .select([
                    col("date").cast(DataType::Date),
                    col("spend").cast(DataType::Float64),
                ])
                .group_by([col("date")])
                .agg([col("spend").sum().alias("_spend")]);
            daily
                .join(per_day, on(), on(), left())
                .with_columns([col("_spend").fill_null(lit(0.0))])
        }
        None => daily.with_columns([f64_null().alias("_spend")]),
    };
    let zero_i = [
        "sessions",
        "users",
        "new_users",
        "_bounces",
        "funnel_viewed_product",
        "funnel_added_to_cart",
        "funnel_started_checkout",
        "funnel_purchased",
        "_search_sessions",
        "_search_purchased",
        "_abandoned",
        "orders",
        "units",
        "_new_customers",
        "_searches",
        "_zero_results",
        "rec_shown",
        "rec_clicked",
    ]
    .map(|c| col(c).cast(DataType::Int64).fill_null(lit(0i64)));
    let zero_f = ["gmv", "net_gmv", "_fees", "_cogs", "rec_driven_gmv"]
        .map(|c| col(c).cast(DataType::Float64).fill_null(lit(0.0)));
    Ok(daily
        .with_columns(zero_i)
        .with_columns(zero_f)
        .with_columns([
            ratio(s("gmv"), s("orders")).alias("aov"),
            (s("net_gmv") - s("_fees") - s("_cogs")).alias("revenue"),
            (s("users") - s("new_users")).alias("returning_users"),
            ratio(s("_bounces"), s("sessions")).alias("bounce_rate"),
            ratio(s("funnel_purchased"), s("sessions")).alias("cvr"),
            s("sessions").alias("funnel_landed"),
            ratio(s("funnel_viewed_product"), s("sessions")).alias("funnel_rate_viewed_product"),
            ratio(s("funnel_added_to_cart"), s("funnel_viewed_product"))
                .alias("funnel_rate_added_to_cart"),
            ratio(s("funnel_started_checkout"), s("funnel_added_to_cart"))
                .alias("funnel_rate_started_checkout"),
            ratio(s("funnel_purchased"), s("funnel_started_checkout"))
                .alias("funnel_rate_purchased"),
            ratio(s("_abandoned"), s("funnel_added_to_cart")).alias("cart_abandonment_rate"),
            ratio(s("_search_sessions"), s("sessions")).alias("search_usage"),
            ratio(s("_search_purchased"), s("_search_sessions")).alias("search_cvr"),
            ratio(
                s("funnel_purchased") - s("_search_purchased"),
                s("sessions") - s("_search_sessions"),
            )
            .alias("non_search_cvr"),
            ratio(s("_zero_results"), s("_searches")).alias("no_results_rate"),
            ratio(s("rec_clicked"), s("rec_shown")).alias("rec_ctr"),
            ratio(s("_spend"), s("_new_customers")).alias("cac"),
        ])
        .select(
            DAILY_COLUMNS
                .iter()
                .map(|(name, rename)| col(*name).alias(*rename))
                .collect::<Vec<_>>(),
        )
        .sort(["date"], Default::default()))
}

/// The columns of `agg_daily_kpis` (internal name → published name).
const DAILY_COLUMNS: [(&str, &str); 37] = [
    ("date", "date"),
    ("gmv", "gmv"),
    ("net_gmv", "net_gmv"),
    ("orders", "orders"),
    ("aov", "aov"),
    ("revenue", "revenue"),
    ("_fees", "fees"),
    ("_cogs", "cogs"),
    ("units", "units"),
    ("sessions", "sessions"),
    ("users", "users"),
    ("new_users", "new_users"),
    ("returning_users", "returning_users"),
    ("bounce_rate", "bounce_rate"),
    ("cvr", "cvr"),
    ("funnel_landed", "funnel_landed"),
    ("funnel_viewed_product", "funnel_viewed_product"),
    ("funnel_added_to_cart", "funnel_added_to_cart"),
    ("funnel_started_checkout", "funnel_started_checkout"),
    ("funnel_purchased", "funnel_purchased"),
    ("funnel_rate_viewed_product", "funnel_rate_viewed_product"),
    ("funnel_rate_added_to_cart", "funnel_rate_added_to_cart"),
    (
        "funnel_rate_started_checkout",
        "funnel_rate_started_checkout",
    ),
    ("funnel_rate_purchased", "funnel_rate_purchased"),
    ("cart_abandonment_rate", "cart_abandonment_rate"),
    ("search_usage", "search_usage"),
    ("search_cvr", "search_cvr"),
    ("non_search_cvr", "non_search_cvr"),
    ("no_results_rate", "no_results_rate"),
    ("rec_ctr", "rec_ctr"),
    ("rec_ctr_by_module", "rec_ctr_by_module"),
    ("rec_driven_gmv", "rec_driven_gmv"),
    ("_new_customers", "new_customers"),
    ("_spend", "marketing_spend"),
    ("cac", "cac"),
    ("sessions_by_source", "sessions_by_source"),
    ("sessions_by_device", "sessions_by_device"),
];

/// Per UTC day and book, every book with a view, an add-to-cart or a sale that day (the
/// contract's book metrics): `date`, `book_id`, `units`, `gmv` (its order items), `views`,
/// `add_to_carts`, `view_to_cart_rate` (null without views); counts 0 where a book had none.
fn book_day_stats(items: LazyFrame, views: LazyFrame) -> LazyFrame {
    let on = || [col("date"), col("book_id")];
    items
        .group_by(on())
        .agg([
            col("quantity").sum().cast(DataType::Int64).alias("units"),
            col("line_gmv").sum().alias("gmv"),
        ])
        .join(
            views,
            on(),
            on(),
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .with_columns([
            col("units").fill_null(lit(0i64)),
            col("gmv").fill_null(lit(0.0)),
            col("views").fill_null(lit(0i64)),
            col("add_to_carts").fill_null(lit(0i64)),
        ])
        .with_columns([ratio(col("add_to_carts"), col("views")).alias("view_to_cart_rate")])
}

/// A per-day book leaderboard of [`book_day_stats`] ranked by `by` (`units` or `gmv`) desc,
/// then `book_id`: `date`, `rank` (1-based), `book_id`, `units`, `gmv`, `views`,
/// `add_to_carts`, `view_to_cart_rate`.
fn leaderboard(stats: LazyFrame, by: &str) -> Result<LazyFrame> {
    Ok(stats
        .sort(
            ["date", by, "book_id"],
            SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
        )
        .with_columns([col("book_id")
            .cum_count(false)
            .over([col("date")])?
            .cast(DataType::Int64)
            .alias("rank")])
        .select([
            col("date"),
            col("rank"),
            col("book_id"),
            col("units"),
            col("gmv"),
            col("views"),
            col("add_to_carts"),
            col("view_to_cart_rate"),
        ]))
}

/// Builds every model. Sessionization, the standing orders and their items are computed
/// (collected) here, once; the aggregates stay lazy over those results.
pub fn build_models(raw: LazyFrame, dims: &Dims) -> Result<Models> {
    let (sessions, order_sessions) = sessions_and_order_sessions(raw.clone())?;
    let books = dims.books.clone();
    let orders = standing_orders(raw.clone()).collect()?;
    let items = order_items(orders.clone().lazy(), books).collect()?;
    let per_order = items.clone().lazy().group_by([col("order_id")]).agg([
        col("quantity").sum().cast(DataType::Int64).alias("units"),
        col("line_cogs").sum().alias("cogs"),
    ]);
    let fct_orders = orders
        .lazy()
        .join(per_order, [col("order_id")], [col("order_id")], left())
        .join(
            order_sessions.lazy(),
            [col("event_id")],
            [col("event_id")],
            left(),
        )
        .select([
            col("order_id"),
            col("event_id"),
            col("user_id"),
            col("session_id"),
            col("order_timestamp"),
            col("date"),
            col("hour"),
            col("total_price"),
            col("discount"),
            col("promo_code"),
            col("fees"),
            col("refunds"),
            col("net"),
            col("units").fill_null(lit(0i64)),
            col("cogs").fill_null(lit(0.0)),
            col("rec_driven").fill_null(lit(false)),
        ])
        .sort(["order_timestamp", "event_id"], Default::default())
        .collect()?
        .lazy();
    let fct_sessions = sessions.lazy();
    let site = site_events(raw.clone()).collect()?.lazy();
    let fct_order_items = items.lazy().select([
        col("order_id"),
        col("user_id"),
        col("order_timestamp"),
        col("date"),
        col("book_id"),
        col("quantity"),
        col("unit_price"),
        col("line_gmv"),
        col("unit_cost"),
        col("line_cogs"),
    ]);
    // Collected once: both leaderboards and the report's range figures read it.
    let book_days = book_day_stats(fct_order_items.clone(), book_views(raw.clone()))
        .collect()?
        .lazy();
    Ok(Models {
        stg_events: stage_events(raw),
        agg_daily_kpis: daily_kpis(
            fct_sessions.clone(),
            fct_orders.clone(),
            site.clone(),
            dims.marketing_spend.clone(),
        )?,
        agg_hourly_gmv: hourly_of_orders(fct_orders.clone()),
        agg_book_leaderboard_units: leaderboard(book_days.clone(), "units")?,
        agg_book_leaderboard_gmv: leaderboard(book_days, "gmv")?,
        fct_sessions,
        fct_orders,
        fct_order_items,
        site_events: site,
    })
}

/// Rows written per table by [`materialize`], keyed by table name (`stg_events`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MaterializeSummary {
    pub rows: BTreeMap<String, usize>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Writes every model to `warehouse_dir/{staging,facts,aggregates}/<name>.parquet`, each
/// atomically: written as `.tmp-<name>.parquet` beside it, fsynced, then renamed into place.
/// `stg_events` is streamed to its file; the other tables are collected first.
pub fn materialize(models: &Models, warehouse_dir: &Path) -> Result<MaterializeSummary> {
    let frames = [
        &models.stg_events,
        &models.fct_sessions,
        &models.fct_orders,
        &models.fct_order_items,
        &models.agg_daily_kpis,
        &models.agg_hourly_gmv,
        &models.agg_book_leaderboard_units,
        &models.agg_book_leaderboard_gmv,
    ];
    let mut summary = MaterializeSummary::default();
    for ((layer, name), lf) in WAREHOUSE_TABLES.into_iter().zip(frames) {
        let dir = warehouse_dir.join(layer);
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = model_path(warehouse_dir, layer, name);
        let tmp = dir.join(format!(".tmp-{name}.parquet"));
        let rows = if name == "stg_events" {
            sink_parquet(lf.clone(), &tmp)?
        } else {
            write_parquet(&mut lf.clone().collect()?, &tmp)?
        };
        fs::rename(&tmp, &path).map_err(io("renaming into place", &tmp))?;
        summary.rows.insert(name.to_owned(), rows);
    }
    Ok(summary)
}

fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<usize> {
    let file = File::create(path).map_err(io("creating", path))?;
    ParquetWriter::new(&file)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)?;
    file.sync_all().map_err(io("syncing", path))?;
    Ok(df.height())
}

/// Streams a frame to a Parquet file (fsynced) and returns its row count.
fn sink_parquet(lf: LazyFrame, path: &Path) -> Result<usize> {
    let target = PlRefPath::try_from_path(path)?;
    lf.sink(
        SinkDestination::File {
            target: SinkTarget::Path(target.clone()),
        },
        FileWriteFormat::Parquet(Arc::new(ParquetWriteOptions::default())),
        UnifiedSinkArgs {
            sync_on_close: polars::io::utils::sync_on_close::SyncOnCloseType::All,
            ..Default::default()
        },
    )?
    .collect()?;
    let counted = LazyFrame::scan_parquet(target, ScanArgsParquet::default())?
        .select([len()])
        .collect()?;
    let rows = counted
        .column("len")?
        .cast(&DataType::UInt64)?
        .u64()?
        .get(0)
        .ok_or_else(|| Error::Shape {
            table: "stg_events",
            reason: "row count of the written file is missing".to_owned(),
        })?;
    usize::try_from(rows).map_err(|e| Error::Shape {
        table: "stg_events",
        reason: e.to_string(),
    })
}

/// The warehouse tables as `(layer folder, table name)`, in the order they are written.
pub const WAREHOUSE_TABLES: [(&str, &str); 8] = [
    ("staging", "stg_events"),
    ("facts", "fct_sessions"),
    ("facts", "fct_orders"),
    ("facts", "fct_order_items"),
    ("aggregates", "agg_daily_kpis"),
    ("aggregates", "agg_hourly_gmv"),
    ("aggregates", "agg_book_leaderboard_units"),
    ("aggregates", "agg_book_leaderboard_gmv"),
];

/// The path of a warehouse table: `warehouse_dir/<layer>/<name>.parquet`.
pub fn model_path(warehouse_dir: &Path, layer: &str, name: &str) -> PathBuf {
    warehouse_dir.join(layer).join(format!("{name}.parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn leaderboard_events() -> Vec<Ev> {
        vec![
            ev("v1", "product_view", "2025-10-01T09:00:00Z", "u1").book("bk_a"),
            ev("v2", "product_view", "2025-10-01T09:01:00Z", "u1").book("bk_a"),
            ev("v3", "add_to_cart", "2025-10-01T09:02:00Z", "u1").cart("bk_a", 5.0),
            // Viewed and put in a cart twice, never bought: on the boards with no sales.
            ev("v4", "product_view", "2025-10-01T09:03:00Z", "u1").book("bk_d"),
            ev("v5", "add_to_cart", "2025-10-01T09:04:00Z", "u1").cart("bk_d", 9.0),
            ev("v6", "add_to_cart", "2025-10-01T09:05:00Z", "u1").cart("bk_d", 9.0),
            ev("o1", "order_placed", "2025-10-01T10:00:00Z", "u1").order(
                "o1",
                58.0,
                &[("bk_a", 3, 5.0), ("bk_b", 2, 20.0), ("bk_c", 3, 1.0)],
            ),
            ev("o2", "order_placed", "2025-10-02T10:00:00Z", "u2").order(
                "o2",
                1.0,
                &[("bk_c", 1, 1.0)],
            ),
        ]
    }

    #[test]
    fn leaderboards_rank_per_day() {
        let m = build_models(lake(&leaderboard_events()), &Dims::default()).unwrap();
        let units = m.agg_book_leaderboard_units.collect().unwrap();
        assert_eq!(
            strs(&units, "book_id"),
            ["bk_a", "bk_c", "bk_b", "bk_d", "bk_c"]
        );
        assert_eq!(
            i64s(&units, "rank"),
            [Some(1), Some(2), Some(3), Some(4), Some(1)]
        );
        assert_eq!(
            i64s(&units, "units"),
            [Some(3), Some(3), Some(2), Some(0), Some(1)]
        );
        assert_eq!(
            i64s(&units, "views"),
            [Some(2), Some(0), Some(0), Some(1), Some(0)]
        );
        assert_eq!(
            i64s(&units, "add_to_carts"),
            [Some(1), Some(0), Some(0), Some(2), Some(0)]
        );
        // 1 cart / 2 views; 2 carts / 1 view (the contract's ratio of events, above 1 here).
        assert_eq!(
            f64s(&units, "view_to_cart_rate"),
            [Some(0.5), None, None, Some(2.0), None]
        );
        let gmv = m.agg_book_leaderboard_gmv.collect().unwrap();
        assert_eq!(
            strs(&gmv, "book_id"),
            ["bk_b", "bk_a", "bk_c", "bk_d", "bk_c"]
        );
        assert_eq!(
            f64s(&gmv, "gmv"),
            [Some(40.0), Some(15.0), Some(3.0), Some(0.0), Some(1.0)]
        );
        assert_eq!(
            i64s(&gmv, "rank"),
            [Some(1), Some(2), Some(3), Some(4), Some(1)]
        );
    }

    #[test]
    fn fct_sessions_has_one_row_per_session() {
        let events = [
            ev("a1", "page_view", "2025-10-01T10:00:00Z", "u1").device("mobile"),
            ev("a2", "search_performed", "2025-10-01T10:10:00Z", "u1").results(2),
            ev("a3", "product_view", "2025-10-01T10:20:00Z", "u1").book("bk_1"),
            ev("b1", "page_view", "2025-10-02T10:00:00Z", "u1").src("email"),
        ];
        let s = build_models(lake(&events), &Dims::default())
            .unwrap()
            .fct_sessions
            .collect()
            .unwrap();
        assert_eq!(
            s.get_column_names()
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
            SESSION_COLUMNS.to_vec(),
            "fct_sessions columns"
        );
        assert_eq!(
            strs(&s, "session_id"),
            [
                format!("u1#{}", ms("2025-10-01T10:00:00Z")),
                format!("u1#{}", ms("2025-10-02T10:00:00Z"))
            ]
        );
        assert_eq!(strs(&s, "date"), ["2025-10-01", "2025-10-02"]);
        assert_eq!(i64s(&s, "n_events"), [Some(3), Some(1)]);
        assert_eq!(
            i64s(&s, "session_end"),
            [
                Some(ms("2025-10-01T10:20:00Z")),
                Some(ms("2025-10-02T10:00:00Z"))
            ]
        );
        assert_eq!(strs(&s, "device"), ["mobile", "desktop"]);
        assert_eq!(strs(&s, "traffic_source"), ["direct", "email"]);
        assert_eq!(bools(&s, "has_search"), [true, false]);
        assert_eq!(bools(&s, "has_product_view"), [true, false]);
        assert_eq!(bools(&s, "is_bounce"), [false, true]);
        assert_eq!(bools(&s, "is_new_user_session"), [true, false]);
        assert_eq!(bools(&s, "is_first_session"), [true, false]);
    }

    #[test]
    fn materialize_writes_every_table_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let m = build_models(lake(&leaderboard_events()), &Dims::default()).unwrap();
        let summary = materialize(&m, dir.path()).unwrap();
        let expected: BTreeMap<String, usize> = [
            ("stg_events", 8),
            ("fct_sessions", 3),
            ("fct_orders", 2),
            ("fct_order_items", 4),
            ("agg_daily_kpis", 2),
            ("agg_hourly_gmv", 2),
            ("agg_book_leaderboard_units", 5),
            ("agg_book_leaderboard_gmv", 5),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(summary.rows, expected);
        for (layer, name) in WAREHOUSE_TABLES {
            let path = model_path(dir.path(), layer, name);
            let df = LazyFrame::scan_parquet(
                PlRefPath::try_from_path(&path).unwrap(),
                ScanArgsParquet::default(),
            )
            .unwrap()
            .collect()
            .unwrap();
            assert_eq!(df.height(), expected[name], "{name}");
            let leftovers = fs::read_dir(dir.path().join(layer))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".tmp-")
                })
                .count();
            assert_eq!(leftovers, 0);
        }
    }
}
