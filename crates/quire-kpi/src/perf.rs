//! A timing smoke test over synthetic events (ignored by default):
//! `QUIRE_KPI_PERF_EVENTS=1000000 cargo test -p quire-kpi perf -- --ignored --nocapture`
//! (add `QUIRE_KPI_PERF_PARQUET=<file>` to write the events once, then time a Parquet scan).

use std::time::Instant;

use polars::prelude::*;

use crate::{DateRange, Dims, build_models, kpi_report};

/// `n` synthetic events in the lake schema: `n / 20` users, one event every few minutes per
/// user, a mix of types, every 40th event an order of two items, a few returns and duplicates.
fn synthetic(n: i64) -> LazyFrame {
    let users = (n / 20).max(1);
    let i = || col("i");
    let kind = i() % lit(40);
    let ty = when(kind.clone().eq(lit(0)))
        .then(lit("order_placed"))
        .when(kind.clone().eq(lit(1)))
        .then(lit("order_returned"))
        .when(kind.clone().lt(lit(8)))
        .then(lit("product_view"))
        .when(kind.clone().lt(lit(12)))
        .then(lit("add_to_cart"))
        .when(kind.clone().lt(lit(16)))
        .then(lit("search_performed"))
        .when(kind.clone().lt(lit(20)))
        .then(lit("recommendation_shown"))
        .when(kind.clone().lt(lit(22)))
        .then(lit("recommendation_clicked"))
        .when(kind.clone().lt(lit(24)))
        .then(lit("checkout_started"))
        .otherwise(lit("page_view"));
    let is_order = kind.clone().eq(lit(0));
    let str_of = |e: Expr| e.cast(DataType::String);
    let base_ms = 1_759_276_800_000i64; // 2025-10-01T00:00:00Z
    let ts =
        (lit(base_ms) + (i() / lit(users)) * lit(37 * 60 * 1000) + (i() % lit(users)) * lit(997))
            .cast(DataType::Datetime(
                TimeUnit::Milliseconds,
                Some(TimeZone::UTC),
            ));
    let item = |book: Expr| {
        as_struct(vec![
            concat_str([lit("bk_"), str_of(book)], "", false).alias("book_id"),
            lit(1i64).alias("quantity"),
            lit(10.0).alias("unit_price"),
        ])
    };
    df!("i" => (0..n).collect::<Vec<i64>>())
        .unwrap()
        .lazy()
        .with_columns([
            concat_str([lit("ev_"), str_of(i() % lit(n - n / 100))], "", false).alias("event_id"),
            ty.alias("event_type"),
            ts.clone().alias("event_timestamp"),
            ts.alias("ingested_at"),
            concat_str([lit("usr_"), str_of(i() % lit(users))], "", false).alias("user_id"),
            when((i() % lit(3)).eq(lit(0)))
                .then(lit("mobile"))
                .otherwise(lit("desktop"))
                .alias("device"),
            when((i() % lit(5)).eq(lit(0)))
                .then(lit("paid"))
                .otherwise(lit(NULL).cast(DataType::String))
                .alias("traffic_source"),
            (i() % lit(1000)).eq(lit(7)).alias("is_test"),
            concat_str([lit("bk_"), str_of(i() % lit(500))], "", false).alias("book_id"),
            (i() % lit(7)).alias("results_count"),
            when((i() % lit(2)).eq(lit(0)))
                .then(lit("similar"))
                .otherwise(lit("for_you"))
                .alias("module"),
            concat_str([lit("o_"), str_of(i() / lit(40))], "", false).alias("order_id"),
            when(is_order.clone())
                .then(concat_list([item(i() % lit(500)), item(i() % lit(300))]).unwrap())
                .otherwise(lit(NULL))
                .alias("items"),
            when(is_order.clone())
                .then(lit(20.0))
                .otherwise(lit(NULL))
                .alias("total_price"),
            when(is_order)
                .then(lit(1.0))
                .otherwise(lit(NULL))
                .alias("fees"),
            lit(5.0).alias("refund_amount"),
            lit(0.0).alias("discount"),
            lit(NULL).cast(DataType::String).alias("promo_code"),
        ])
}

/// Times each model's query and `kpi_report` over a scan of the events, as the replay does.
fn time_report(raw: LazyFrame) {
    let t = Instant::now();
    let (sessions, orders) = crate::models::sessions_and_order_sessions(raw.clone()).unwrap();
    eprintln!(
        "sessions: {:?} ({} sessions, {} order events)",
        t.elapsed(),
        sessions.height(),
        orders.height()
    );
    let t = Instant::now();
    let orders = crate::models::standing_orders(raw.clone())
        .collect()
        .unwrap();
    eprintln!("orders: {:?} ({} orders)", t.elapsed(), orders.height());
    let t = Instant::now();
    crate::models::site_events(raw.clone()).collect().unwrap();
    eprintln!("site events: {:?}", t.elapsed());
    let t = Instant::now();
    let r = kpi_report(raw.clone(), &Dims::default(), DateRange::default(), 10).unwrap();
    eprintln!("kpi_report: {:?} ({} days)", t.elapsed(), r.daily.len());
    let t = Instant::now();
    build_models(raw, &Dims::default()).unwrap();
    eprintln!("build_models: {:?}", t.elapsed());
}

#[test]
#[ignore]
fn perf_smoke() {
    let n = std::env::var("QUIRE_KPI_PERF_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000i64);
    // With QUIRE_KPI_PERF_PARQUET=<file>: the first run writes the events there, the next
    // runs scan that file (as the replay scans the lake).
    let Ok(path) = std::env::var("QUIRE_KPI_PERF_PARQUET") else {
        let raw = synthetic(n).collect().unwrap();
        eprintln!("{} events in memory", raw.height());
        return time_report(raw.lazy());
    };
    let path = std::path::PathBuf::from(path);
    if !path.exists() {
        let mut df = synthetic(n).collect().unwrap();
        let file = std::fs::File::create(&path).unwrap();
        ParquetWriter::new(file).finish(&mut df).unwrap();
        eprintln!("wrote {} events to {}", df.height(), path.display());
        return;
    }
    let scan = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&path).unwrap(),
        ScanArgsParquet::default(),
    )
    .unwrap();
    time_report(scan);
}
