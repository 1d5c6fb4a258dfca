//! The `quire kpis --json` report and the hourly GMV shared with the live path.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::{hourly_of_orders, ratio, rec_by_module, sessions_by, standing_orders};
use crate::{DateRange, Dims, Error, Models, Result, build_models};

/// GMV per UTC hour of the orders in `raw` (lake schema): `hour` (Datetime(ms, UTC),
/// truncated to the hour), `gmv`, `net_gmv` (refunds of the frame, capped per order),
/// `orders`; sorted by hour, hours without orders left out.
///
/// The live path calls this on the events seen so far (its `gmv` is the live figure of the
/// open hour), the replay on the whole lake; same events, same numbers.
pub fn hourly_gmv(raw: LazyFrame) -> Result<DataFrame> {
    Ok(hourly_of_orders(standing_orders(raw)).collect()?)
}

/// The `quire kpis --json` object (`contracts/kpis.md`, "Machine-readable output").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiReport {
    pub daily: Vec<DailyKpis>,
    pub hourly_gmv: Vec<HourlyGmv>,
    pub clv_historical: Option<f64>,
    pub top_books_by_units: Vec<BookUnits>,
    /// Beyond the contract's object: the first `top_n` books of the range by item GMV, then
    /// `book_id` (the contract's second leaderboard).
    pub top_books_by_gmv: Vec<BookGmv>,
    /// Beyond the contract's object: every book viewed, put in a cart or sold in the range,
    /// with the contract's book metrics over the range, by `book_id`.
    pub books: Vec<BookKpis>,
}

/// Every per-day metric of `contracts/kpis.md`, by its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyKpis {
    pub date: NaiveDate,
    pub gmv: f64,
    pub net_gmv: f64,
    pub orders: i64,
    pub aov: Option<f64>,
    pub revenue: f64,
    pub units: i64,
    pub sessions: i64,
    pub users: i64,
    pub new_users: i64,
    pub returning_users: i64,
    pub bounce_rate: Option<f64>,
    pub cvr: Option<f64>,
    pub funnel: Funnel,
    pub funnel_rates: FunnelRates,
    pub cart_abandonment_rate: Option<f64>,
    pub search_usage: Option<f64>,
    pub search_cvr: Option<f64>,
    pub non_search_cvr: Option<f64>,
    pub no_results_rate: Option<f64>,
    pub rec_ctr: Option<f64>,
    pub rec_ctr_by_module: BTreeMap<String, Option<f64>>,
    pub rec_driven_gmv: f64,
    pub cac: Option<f64>,
    pub sessions_by_source: BTreeMap<String, i64>,
    pub sessions_by_device: BTreeMap<String, i64>,
}

/// The funnel of a day, in sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Funnel {
    pub landed: i64,
    pub viewed_product: i64,
    pub added_to_cart: i64,
    pub started_checkout: i64,
    pub purchased: i64,
}

/// Each funnel step over the previous step (null when the previous step is 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelRates {
    pub viewed_product: Option<f64>,
    pub added_to_cart: Option<f64>,
    pub started_checkout: Option<f64>,
    pub purchased: Option<f64>,
}

/// GMV of one UTC hour; `hour` is written `YYYY-MM-DDTHH:00:00Z`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourlyGmv {
    #[serde(with = "hour_format")]
    pub hour: DateTime<Utc>,
    pub gmv: f64,
    pub net_gmv: f64,
}

/// Units sold of one book over the report's range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookUnits {
    pub book_id: String,
    pub units: i64,
}

/// Item GMV of one book over the report's range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookGmv {
    pub book_id: String,
    pub gmv: f64,
}

/// The book metrics of `contracts/kpis.md` for one book over the report's range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookKpis {
    pub book_id: String,
    pub units_sold: i64,
    pub gmv: f64,
    pub views: i64,
    pub add_to_carts: i64,
    /// `add_to_cart` events / `product_view` events; `null` without views.
    pub view_to_cart_rate: Option<f64>,
}

mod hour_format {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format("%Y-%m-%dT%H:%M:%SZ"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// Typed access to the columns of a small collected frame.
struct Cols<'a> {
    df: &'a DataFrame,
    table: &'static str,
}

impl Cols<'_> {
    fn f64(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let c = self.df.column(name)?.cast(&DataType::Float64)?;
        Ok(c.f64()?.iter().collect())
    }

    fn f64_zero(&self, name: &str) -> Result<Vec<f64>> {
        Ok(self
            .f64(name)?
            .into_iter()
            .map(|v| v.unwrap_or(0.0))
            .collect())
    }

    fn i64(&self, name: &str) -> Result<Vec<i64>> {
        let c = self.df.column(name)?.cast(&DataType::Int64)?;
        Ok(c.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
    }

    fn str(&self, name: &str) -> Result<Vec<String>> {
        let c = self.df.column(name)?.cast(&DataType::String)?;
        c.str()?
            .iter()
            .map(|v| {
                v.map(str::to_owned).ok_or_else(|| Error::Shape {
                    table: self.table,
                    reason: format!("null in column {name}"),
                })
            })
            .collect()
    }

    fn dates(&self, name: &str) -> Result<Vec<NaiveDate>> {
        self.str(name)?
            .iter()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| Error::Shape {
                    table: self.table,
                    reason: format!("date {d}: {e}"),
                })
            })
            .collect()
    }
}

/// Collects a long `(date, key, value)` frame into date → key → value.
fn nested<T>(
    lf: LazyFrame,
    key: &str,
    value: impl Fn(&Cols<'_>) -> Result<Vec<T>>,
) -> Result<BTreeMap<NaiveDate, BTreeMap<String, T>>> {
    let df = lf.collect()?;
    let cols = Cols {
        df: &df,
        table: "daily maps",
    };
    let mut out: BTreeMap<NaiveDate, BTreeMap<String, T>> = BTreeMap::new();
    let dates = cols.dates("date")?;
    let keys = cols.str(key)?;
    for ((d, k), v) in dates.into_iter().zip(keys).zip(value(&cols)?) {
        out.entry(d).or_default().insert(k, v);
    }
    Ok(out)
}

/// The `quire kpis --json` report over `range` (inclusive UTC dates).
///
/// All of `raw` is used for what needs history — sessions crossing into the range, new vs
/// returning users, a customer's first order (cac), refunds (whenever they arrive) and
/// `clv_historical` (all history, ignores the range); only the output rows are filtered.
/// `top_books_by_units` and `top_books_by_gmv` list the first `top_n` books sold in the range
/// by units and by item GMV, then `book_id`; `books` has every book's metrics over the range.
pub fn kpi_report(
    raw: LazyFrame,
    dims: &Dims,
    range: DateRange,
    top_n: usize,
) -> Result<KpiReport> {
    kpi_report_from_models(&build_models(raw, dims)?, range, top_n)
}

/// [`kpi_report`] from models already built by [`build_models`] (e.g. by a warehouse build
/// that also writes them), so the events are not sessionized twice.
pub fn kpi_report_from_models(
    models: &Models,
    range: DateRange,
    top_n: usize,
) -> Result<KpiReport> {
    let in_range = range.contains(col("date"));
    let daily_df = models
        .agg_daily_kpis
        .clone()
        .filter(in_range.clone())
        .drop(cols([
            "rec_ctr_by_module",
            "sessions_by_source",
            "sessions_by_device",
        ]))
        .collect()?;
    let sessions = models.fct_sessions.clone().filter(in_range.clone());
    let by_source = nested(
        sessions_by(sessions.clone(), "traffic_source"),
        "traffic_source",
        |c| c.i64("sessions"),
    )?;
    let by_device = nested(sessions_by(sessions, "device"), "device", |c| {
        c.i64("sessions")
    })?;
    let by_module = nested(
        rec_by_module(models.site_events.clone().filter(in_range.clone())),
        "module",
        |c| c.f64("rec_ctr"),
    )?;
    let daily = daily_rows(&daily_df, &by_source, &by_device, &by_module)?;

    let hourly_df = models
        .agg_hourly_gmv
        .clone()
        .filter(range.contains(col("hour").dt().date()))
        .select([
            col("hour").cast(DataType::Int64),
            col("gmv"),
            col("net_gmv"),
        ])
        .collect()?;
    let h = Cols {
        df: &hourly_df,
        table: "agg_hourly_gmv",
    };
    let hourly_gmv = h
        .i64("hour")?
        .into_iter()
        .zip(h.f64_zero("gmv")?)
        .zip(h.f64_zero("net_gmv")?)
        .map(|((hour, gmv), net_gmv)| {
            DateTime::from_timestamp_millis(hour)
                .map(|hour| HourlyGmv { hour, gmv, net_gmv })
                .ok_or_else(|| Error::Shape {
                    table: "agg_hourly_gmv",
                    reason: format!("hour {hour} ms out of range"),
                })
        })
        .collect::<Result<Vec<_>>>()?;

    let clv_df = models
        .fct_orders
        .clone()
        .select([ratio(col("net").sum(), col("user_id").n_unique()).alias("clv")])
        .collect()?;
    let clv_historical = Cols {
        df: &clv_df,
        table: "fct_orders",
    }
    .f64("clv")?
    .first()
    .copied()
    .flatten();

    // The days' book rows summed over the range (every count is additive), then the rate.
    let books_df = models
        .agg_book_leaderboard_units
        .clone()
        .filter(in_range)
        .group_by([col("book_id")])
        .agg([
            col("units").sum(),
            col("gmv").sum(),
            col("views").sum(),
            col("add_to_carts").sum(),
        ])
        .with_columns([ratio(col("add_to_carts"), col("views")).alias("view_to_cart_rate")])
        .sort(["book_id"], SortMultipleOptions::default())
        .collect()?;
    let b = Cols {
        df: &books_df,
        table: "agg_book_leaderboard_units",
    };
    let books: Vec<BookKpis> = b
        .str("book_id")?
        .into_iter()
        .zip(b.i64("units")?)
        .zip(b.f64_zero("gmv")?)
        .zip(b.i64("views")?.into_iter().zip(b.i64("add_to_carts")?))
        .zip(b.f64("view_to_cart_rate")?)
        .map(
            |((((book_id, units_sold), gmv), (views, add_to_carts)), view_to_cart_rate)| BookKpis {
                book_id,
                units_sold,
                gmv,
                views,
                add_to_carts,
                view_to_cart_rate,
            },
        )
        .collect();
    // The leaderboards rank the books sold in the range; ties by `book_id`.
    let board = |key: fn(&BookKpis) -> f64| {
        let mut sold: Vec<&BookKpis> = books.iter().filter(|b| b.units_sold > 0).collect();
        sold.sort_by(|x, y| {
            key(y)
                .total_cmp(&key(x))
                .then_with(|| x.book_id.cmp(&y.book_id))
        });
        sold.truncate(top_n);
        sold
    };
    let top_books_by_units = board(|b| b.units_sold as f64)
        .into_iter()
        .map(|b| BookUnits {
            book_id: b.book_id.clone(),
            units: b.units_sold,
        })
        .collect();
    let top_books_by_gmv = board(|b| b.gmv)
        .into_iter()
        .map(|b| BookGmv {
            book_id: b.book_id.clone(),
            gmv: b.gmv,
        })
        .collect();

    Ok(KpiReport {
        daily,
        hourly_gmv,
        clv_historical,
        top_books_by_units,
        top_books_by_gmv,
        books,
    })
}

type DayMap<T> = BTreeMap<NaiveDate, BTreeMap<String, T>>;

fn daily_rows(
    df: &DataFrame,
    by_source: &DayMap<i64>,
    by_device: &DayMap<i64>,
    by_module: &DayMap<Option<f64>>,
) -> Result<Vec<DailyKpis>> {
    let c = Cols {
        df,
        table: "agg_daily_kpis",
    };
    let dates = c.dates("date")?;
    let money = |n: &str| c.f64_zero(n);
    let (gmv, net_gmv, revenue, rec_driven_gmv) = (
        money("gmv")?,
        money("net_gmv")?,
        money("revenue")?,
        money("rec_driven_gmv")?,
    );
    let int = |n: &str| c.i64(n);
    let (orders, units, sessions, users) = (
        int("orders")?,
        int("units")?,
        int("sessions")?,
        int("users")?,
    );
    let (new_users, returning_users) = (int("new_users")?, int("returning_users")?);
    let (landed, viewed, added) = (
        int("funnel_landed")?,
        int("funnel_viewed_product")?,
        int("funnel_added_to_cart")?,
    );
    let (checkout, purchased) = (int("funnel_started_checkout")?, int("funnel_purchased")?);
    let rate = |n: &str| c.f64(n);
    let (aov, bounce_rate, cvr) = (rate("aov")?, rate("bounce_rate")?, rate("cvr")?);
    let (r_viewed, r_added, r_checkout, r_purchased) = (
        rate("funnel_rate_viewed_product")?,
        rate("funnel_rate_added_to_cart")?,
        rate("funnel_rate_started_checkout")?,
        rate("funnel_rate_purchased")?,
    );
    let (cart_abandonment_rate, search_usage, search_cvr, non_search_cvr) = (
        rate("cart_abandonment_rate")?,
        rate("search_usage")?,
        rate("search_cvr")?,
        rate("non_search_cvr")?,
    );
    let (no_results_rate, rec_ctr, cac) =
        (rate("no_results_rate")?, rate("rec_ctr")?, rate("cac")?);
    Ok((0..dates.len())
        .map(|i| {
            let date = dates[i];
            DailyKpis {
                date,
                gmv: gmv[i],
                net_gmv: net_gmv[i],
                orders: orders[i],
                aov: aov[i],
                revenue: revenue[i],
                units: units[i],
                sessions: sessions[i],
                users: users[i],
                new_users: new_users[i],
                returning_users: returning_users[i],
                bounce_rate: bounce_rate[i],
                cvr: cvr[i],
                funnel: Funnel {
                    landed: landed[i],
                    viewed_product: viewed[i],
                    added_to_cart: added[i],
                    started_checkout: checkout[i],
                    purchased: purchased[i],
                },
                funnel_rates: FunnelRates {
                    viewed_product: r_viewed[i],
                    added_to_cart: r_added[i],
                    started_checkout: r_checkout[i],
                    purchased: r_purchased[i],
                },
                cart_abandonment_rate: cart_abandonment_rate[i],
                search_usage: search_usage[i],
                search_cvr: search_cvr[i],
                non_search_cvr: non_search_cvr[i],
                no_results_rate: no_results_rate[i],
                rec_ctr: rec_ctr[i],
                rec_ctr_by_module: by_module.get(&date).cloned().unwrap_or_default(),
                rec_driven_gmv: rec_driven_gmv[i],
                cac: cac[i],
                sessions_by_source: by_source.get(&date).cloned().unwrap_or_default(),
                sessions_by_device: by_device.get(&date).cloned().unwrap_or_default(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn report(events: &[Ev], dims: &Dims) -> KpiReport {
        kpi_report(lake(events), dims, DateRange::default(), 10).unwrap()
    }

    fn day<'a>(r: &'a KpiReport, date: &str) -> &'a DailyKpis {
        let d: NaiveDate = date.parse().unwrap();
        r.daily
            .iter()
            .find(|k| k.date == d)
            .unwrap_or_else(|| panic!("no day {date}"))
    }

    fn dates(r: &KpiReport) -> Vec<String> {
        r.daily.iter().map(|d| d.date.to_string()).collect()
    }

    fn pv(id: &str, ts: &str, user: &str) -> Ev {
        ev(id, "page_view", ts, user)
    }

    fn order(id: &str, ts: &str, user: &str, order_id: &str, total: f64) -> Ev {
        ev(id, "order_placed", ts, user).order(order_id, total, &[("bk_1", 1, total)])
    }

    #[test]
    fn session_over_midnight_belongs_to_its_first_day() {
        let r = report(
            &[
                pv("e1", "2025-10-01T23:50:00Z", "u1"),
                ev("e2", "product_view", "2025-10-02T00:10:00Z", "u1").book("bk_1"),
                order("e3", "2025-10-02T00:15:00Z", "u1", "o1", 20.0),
            ],
            &Dims::default(),
        );
        assert_eq!(dates(&r), ["2025-10-01", "2025-10-02"]);
        let d1 = day(&r, "2025-10-01");
        assert_eq!((d1.sessions, d1.orders, d1.users), (1, 0, 1));
        assert_eq!((d1.gmv, d1.aov, d1.cvr), (0.0, None, Some(1.0)));
        assert_eq!(d1.funnel.purchased, 1);
        let d2 = day(&r, "2025-10-02");
        assert_eq!(
            (d2.sessions, d2.orders, d2.gmv, d2.aov),
            (0, 1, 20.0, Some(20.0))
        );
        assert_eq!(
            (d2.cvr, d2.bounce_rate, d2.search_usage),
            (None, None, None)
        );
        assert_eq!(d2.funnel_rates.viewed_product, None);
        assert!(d2.sessions_by_source.is_empty());
    }

    #[test]
    fn duplicate_event_ids_count_once() {
        let r = report(
            &[
                pv("e1", "2025-10-01T10:00:00Z", "u1"),
                pv("e1", "2025-10-01T10:00:00Z", "u1").ingested("2025-10-01T10:09:00Z"),
                order("e2", "2025-10-01T11:00:00Z", "u2", "o1", 30.0),
                order("e2", "2025-10-01T11:00:00Z", "u2", "o1", 30.0)
                    .ingested("2025-10-01T12:00:00Z"),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        assert_eq!((d.sessions, d.orders, d.units), (2, 1, 1));
        assert_eq!((d.gmv, d.bounce_rate), (30.0, Some(1.0)));
    }

    #[test]
    fn retried_order_counts_once_and_the_earliest_stands() {
        let events = [
            pv("e0", "2025-10-01T09:59:00Z", "u1"),
            order("e5", "2025-10-01T10:00:00Z", "u1", "o1", 30.0),
            order("e4", "2025-10-01T10:02:00Z", "u1", "o1", 31.0),
            // Same instant: the smaller event_id stands.
            order("e9", "2025-10-01T12:00:00Z", "u2", "o2", 9.0),
            order("e8", "2025-10-01T12:00:00Z", "u2", "o2", 8.0),
        ];
        let r = report(&events, &Dims::default());
        let d = day(&r, "2025-10-01");
        assert_eq!((d.orders, d.gmv), (2, 38.0));
        let orders = build_models(lake(&events), &Dims::default())
            .unwrap()
            .fct_orders
            .collect()
            .unwrap();
        assert_eq!(strs(&orders, "event_id"), ["e5", "e8"]);
        let s1 = format!("u1#{}", ms("2025-10-01T09:59:00Z"));
        let s2 = format!("u2#{}", ms("2025-10-01T12:00:00Z"));
        assert_eq!(strs(&orders, "session_id"), [s1, s2]);
    }

    #[test]
    fn refunds_are_capped_and_count_on_the_order_day() {
        let events = [
            order("e1", "2025-10-01T10:00:00Z", "u1", "o1", 50.0),
            order("e2", "2025-10-01T10:30:00Z", "u2", "o2", 30.0),
            ev("r1", "order_returned", "2025-10-01T18:00:00Z", "u1").ret("o1", 20.0),
            ev("r2", "order_returned", "2025-10-03T09:00:00Z", "u1").ret("o1", 40.0),
            ev("r3", "order_returned", "2025-10-04T09:00:00Z", "u2").ret("o2", 10.0),
            // A return of an order never placed is ignored.
            ev("r4", "order_returned", "2025-10-04T09:00:00Z", "u2").ret("o9", 99.0),
        ];
        let r = report(&events, &Dims::default());
        assert_eq!(dates(&r), ["2025-10-01"]);
        let d = day(&r, "2025-10-01");
        assert_eq!((d.gmv, d.net_gmv, d.revenue), (80.0, 20.0, 20.0));
        let orders = build_models(lake(&events), &Dims::default())
            .unwrap()
            .fct_orders
            .collect()
            .unwrap();
        assert_eq!(f64s(&orders, "refunds"), [Some(50.0), Some(10.0)]);
        assert_eq!(f64s(&orders, "net"), [Some(0.0), Some(20.0)]);
        assert_eq!(
            r.hourly_gmv,
            [HourlyGmv {
                hour: DateTime::from_timestamp_millis(ms("2025-10-01T10:00:00Z")).unwrap(),
                gmv: 80.0,
                net_gmv: 20.0,
            }]
        );
    }

    #[test]
    fn test_traffic_is_excluded() {
        let r = report(
            &[
                pv("e1", "2025-10-01T10:00:00Z", "u1"),
                pv("e2", "2025-10-01T10:00:00Z", "qa").test(),
                order("e3", "2025-10-01T10:01:00Z", "qa", "o1", 99.0).test(),
                pv("e4", "2025-10-02T10:00:00Z", "qa").test(),
            ],
            &Dims::default(),
        );
        assert_eq!(dates(&r), ["2025-10-01"]);
        let d = day(&r, "2025-10-01");
        assert_eq!((d.sessions, d.users, d.orders, d.gmv), (1, 1, 0, 0.0));
        assert_eq!(r.clv_historical, None);
    }

    #[test]
    fn cogs_use_the_books_dimension_and_unknown_books_cost_nothing() {
        let events = [ev("e1", "order_placed", "2025-10-01T10:00:00Z", "u1")
            .order("o1", 25.0, &[("bk_1", 2, 10.0), ("bk_x", 1, 5.0)])
            .fees(1.5)];
        let with_books = Dims {
            books: Some(books(&[("bk_1", 4.0), ("bk_2", 7.0)])),
            marketing_spend: None,
        };
        let d = report(&events, &with_books).daily[0].clone();
        assert_eq!((d.gmv, d.units, d.revenue), (25.0, 3, 15.5));
        let d = report(&events, &Dims::default()).daily[0].clone();
        assert_eq!(d.revenue, 23.5);
        let m = build_models(lake(&events), &with_books).unwrap();
        let items = m.fct_order_items.collect().unwrap();
        assert_eq!(strs(&items, "book_id"), ["bk_1", "bk_x"]);
        assert_eq!(f64s(&items, "unit_cost"), [Some(4.0), None]);
        assert_eq!(f64s(&items, "line_cogs"), [Some(8.0), Some(0.0)]);
        assert_eq!(f64s(&items, "line_gmv"), [Some(20.0), Some(5.0)]);
        let orders = m.fct_orders.collect().unwrap();
        assert_eq!(f64s(&orders, "cogs"), [Some(8.0)]);
        assert_eq!(i64s(&orders, "units"), [Some(3)]);
    }

    #[test]
    fn a_day_without_orders_has_zero_money_and_null_ratios() {
        let r = report(
            &[
                pv("e1", "2025-10-01T10:00:00Z", "u1"),
                ev("e2", "add_to_cart", "2025-10-01T10:01:00Z", "u1").cart("bk_1", 9.0),
            ],
            &Dims {
                books: None,
                marketing_spend: Some(spend(&[("2025-10-01", "paid", 100.0)])),
            },
        );
        let d = day(&r, "2025-10-01");
        assert_eq!(
            (d.gmv, d.net_gmv, d.revenue, d.rec_driven_gmv),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((d.orders, d.units), (0, 0));
        assert_eq!((d.aov, d.cac), (None, None));
        assert_eq!((d.cvr, d.cart_abandonment_rate), (Some(0.0), Some(1.0)));
        assert_eq!(
            (d.search_usage, d.search_cvr, d.non_search_cvr),
            (Some(0.0), None, Some(0.0))
        );
        assert_eq!((d.no_results_rate, d.rec_ctr), (None, None));
        assert!(d.rec_ctr_by_module.is_empty());
        assert_eq!(d.funnel_rates.viewed_product, Some(0.0));
        assert_eq!(d.funnel_rates.added_to_cart, None);
        assert_eq!(r.hourly_gmv, []);
        assert_eq!(r.top_books_by_units, []);
    }

    #[test]
    fn new_and_returning_users_across_days() {
        let r = report(
            &[
                pv("a1", "2025-10-01T08:00:00Z", "u1"),
                pv("a2", "2025-10-01T20:00:00Z", "u1"),
                pv("b1", "2025-10-02T08:00:00Z", "u1"),
                pv("b2", "2025-10-02T09:00:00Z", "u2"),
                pv("b3", "2025-10-02T10:00:00Z", "u2"),
            ],
            &Dims::default(),
        );
        let d1 = day(&r, "2025-10-01");
        assert_eq!(
            (d1.sessions, d1.users, d1.new_users, d1.returning_users),
            (2, 1, 1, 0)
        );
        let d2 = day(&r, "2025-10-02");
        assert_eq!(
            (d2.sessions, d2.users, d2.new_users, d2.returning_users),
            (3, 2, 1, 1)
        );
    }

    #[test]
    fn bounce_funnel_and_cart_abandonment() {
        let t = |m: u32| format!("2025-10-01T10:{m:02}:00Z");
        let r = report(
            &[
                // A: bounce.
                pv("a1", &t(0), "uA"),
                // B: views, adds, leaves.
                pv("b1", &t(0), "uB"),
                ev("b2", "product_view", &t(1), "uB").book("bk_1"),
                ev("b3", "add_to_cart", &t(2), "uB").cart("bk_1", 9.0),
                // C: the whole way.
                ev("c1", "product_view", &t(0), "uC").book("bk_1"),
                ev("c2", "add_to_cart", &t(1), "uC").cart("bk_1", 9.0),
                ev("c3", "checkout_started", &t(2), "uC"),
                order("c4", &t(3), "uC", "o1", 9.0),
                // D: checks out, does not order.
                ev("d1", "product_view", &t(0), "uD").book("bk_2"),
                ev("d2", "add_to_cart", &t(1), "uD").cart("bk_2", 5.0),
                ev("d3", "checkout_started", &t(2), "uD"),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        assert_eq!(
            d.funnel,
            Funnel {
                landed: 4,
                viewed_product: 3,
                added_to_cart: 3,
                started_checkout: 2,
                purchased: 1
            }
        );
        close(d.funnel_rates.viewed_product, Some(0.75));
        close(d.funnel_rates.added_to_cart, Some(1.0));
        close(d.funnel_rates.started_checkout, Some(2.0 / 3.0));
        close(d.funnel_rates.purchased, Some(0.5));
        close(d.bounce_rate, Some(0.25));
        close(d.cvr, Some(0.25));
        close(d.cart_abandonment_rate, Some(2.0 / 3.0));
    }

    #[test]
    fn search_usage_cvr_and_no_results() {
        let t = |m: u32| format!("2025-10-01T10:{m:02}:00Z");
        let search = |id: &str, m: u32, user: &str, n: i64| {
            ev(id, "search_performed", &t(m), user).results(n)
        };
        let r = report(
            &[
                search("s1", 0, "u1", 0),
                search("s2", 1, "u1", 5),
                order("s3", &t(2), "u1", "o1", 10.0),
                search("s4", 0, "u2", 3),
                pv("s5", &t(0), "u3"),
                order("s6", &t(1), "u3", "o2", 10.0),
                pv("s7", &t(0), "u4"),
                pv("s8", &t(0), "u5"),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        close(d.search_usage, Some(0.4));
        close(d.search_cvr, Some(0.5));
        close(d.non_search_cvr, Some(1.0 / 3.0));
        close(d.no_results_rate, Some(1.0 / 3.0));
        close(d.cvr, Some(0.4));
    }

    #[test]
    fn rec_ctr_per_module_and_overall() {
        let t = |m: u32| format!("2025-10-01T10:{m:02}:00Z");
        let shown = |id: &str, m: &str| ev(id, "recommendation_shown", &t(0), "u1").module(m);
        let clicked = |id: &str, m: &str| {
            ev(id, "recommendation_clicked", &t(1), "u1")
                .module(m)
                .book("bk_1")
        };
        let r = report(
            &[
                shown("r1", "similar"),
                shown("r2", "similar"),
                clicked("r3", "similar"),
                shown("r4", "for_you"),
                clicked("r5", "popular"),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        close(d.rec_ctr, Some(2.0 / 3.0));
        let expected: BTreeMap<String, Option<f64>> = [
            ("for_you".to_owned(), Some(0.0)),
            ("popular".to_owned(), None),
            ("similar".to_owned(), Some(0.5)),
        ]
        .into();
        assert_eq!(d.rec_ctr_by_module, expected);
    }

    #[test]
    fn rec_driven_gmv_needs_a_click_before_the_order_in_the_session() {
        let click = |id: &str, ts: &str, user: &str| {
            ev(id, "recommendation_clicked", ts, user)
                .module("similar")
                .book("bk_1")
        };
        let r = report(
            &[
                // Click then order: driven.
                click("a1", "2025-10-01T10:00:00Z", "u1"),
                order("a2", "2025-10-01T10:05:00Z", "u1", "o1", 30.0),
                // Order then click: not driven.
                order("b1", "2025-10-01T11:00:00Z", "u2", "o2", 20.0),
                click("b2", "2025-10-01T11:01:00Z", "u2"),
                // Same instant, the order's event_id sorts first: not driven.
                click("c2", "2025-10-01T12:00:00Z", "u3"),
                order("c1", "2025-10-01T12:00:00Z", "u3", "o3", 7.0),
                // Same instant, the click's event_id sorts first: driven.
                click("d1", "2025-10-01T13:00:00Z", "u4"),
                order("d2", "2025-10-01T13:00:00Z", "u4", "o4", 15.0),
                // A click in an earlier session does not drive this order.
                click("e1", "2025-10-01T14:00:00Z", "u5"),
                order("e2", "2025-10-01T14:30:00.001Z", "u5", "o5", 11.0),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        assert_eq!((d.gmv, d.rec_driven_gmv), (83.0, 45.0));
    }

    #[test]
    fn cac_is_spend_over_first_time_customers() {
        let events = [
            order("a1", "2025-10-01T10:00:00Z", "u1", "o1", 10.0),
            order("a2", "2025-10-01T11:00:00Z", "u2", "o2", 10.0),
            order("b1", "2025-10-02T10:00:00Z", "u1", "o3", 10.0),
            order("b2", "2025-10-02T11:00:00Z", "u3", "o4", 10.0),
            pv("c1", "2025-10-03T10:00:00Z", "u1"),
        ];
        let dims = Dims {
            books: None,
            marketing_spend: Some(spend(&[
                ("2025-10-01", "paid", 60.0),
                ("2025-10-01", "social", 40.0),
                ("2025-10-02", "paid", 30.0),
                ("2025-10-03", "paid", 10.0),
            ])),
        };
        let r = report(&events, &dims);
        assert_eq!(day(&r, "2025-10-01").cac, Some(50.0));
        assert_eq!(day(&r, "2025-10-02").cac, Some(30.0));
        assert_eq!(day(&r, "2025-10-03").cac, None);
        let r = report(&events, &Dims::default());
        assert_eq!(day(&r, "2025-10-01").cac, None);
    }

    #[test]
    fn clv_historical_is_net_gmv_per_customer() {
        let r = report(
            &[
                order("a1", "2025-10-01T10:00:00Z", "u1", "o1", 50.0),
                order("a2", "2025-10-02T10:00:00Z", "u1", "o2", 20.0),
                order("a3", "2025-10-02T11:00:00Z", "u2", "o3", 30.0),
                ev("r1", "order_returned", "2025-10-05T10:00:00Z", "u1").ret("o1", 10.0),
            ],
            &Dims::default(),
        );
        assert_eq!(r.clv_historical, Some(45.0));
    }

    #[test]
    fn hourly_gmv_and_net_gmv() {
        let events = [
            order("a1", "2025-10-01T10:05:00Z", "u1", "o1", 30.0),
            order("a2", "2025-10-01T10:59:59.999Z", "u2", "o2", 20.0),
            order("a3", "2025-10-01T11:00:00Z", "u3", "o3", 10.0),
            ev("r1", "order_returned", "2025-10-02T10:00:00Z", "u2").ret("o2", 5.0),
        ];
        let df = hourly_gmv(lake(&events)).unwrap();
        assert_eq!(
            i64s(&df, "hour"),
            [
                Some(ms("2025-10-01T10:00:00Z")),
                Some(ms("2025-10-01T11:00:00Z"))
            ]
        );
        assert_eq!(f64s(&df, "gmv"), [Some(50.0), Some(10.0)]);
        assert_eq!(f64s(&df, "net_gmv"), [Some(45.0), Some(10.0)]);
        assert_eq!(
            df.column("hour").unwrap().dtype(),
            &DataType::Datetime(TimeUnit::Milliseconds, Some(TimeZone::UTC))
        );
        let from_models = build_models(lake(&events), &Dims::default())
            .unwrap()
            .agg_hourly_gmv
            .collect()
            .unwrap();
        assert!(from_models.equals(&df));
    }

    #[test]
    fn range_filters_rows_but_history_still_counts() {
        let events = [
            // Before the range: u1's first session and first order.
            pv("a1", "2025-10-01T10:00:00Z", "u1"),
            order("a2", "2025-10-01T10:01:00Z", "u1", "o1", 40.0),
            // A session starting before the range and crossing into it.
            pv("b1", "2025-10-01T23:50:00Z", "u2"),
            pv("b2", "2025-10-02T00:10:00Z", "u2"),
            // In the range.
            pv("c1", "2025-10-02T10:00:00Z", "u1"),
            ev("c2", "order_placed", "2025-10-02T10:01:00Z", "u1").order(
                "o2",
                30.0,
                &[("bk_2", 3, 10.0)],
            ),
            // After the range: a return of o2 and another order.
            ev("r1", "order_returned", "2025-10-04T10:00:00Z", "u1").ret("o2", 12.0),
            ev("d1", "order_placed", "2025-10-04T10:00:00Z", "u3").order(
                "o3",
                99.0,
                &[("bk_9", 9, 11.0)],
            ),
        ];
        let dims = Dims {
            books: None,
            marketing_spend: Some(spend(&[("2025-10-02", "paid", 10.0)])),
        };
        let range = DateRange {
            from: Some("2025-10-02".parse().unwrap()),
            to: Some("2025-10-03".parse().unwrap()),
        };
        let r = kpi_report(lake(&events), &dims, range, 10).unwrap();
        assert_eq!(dates(&r), ["2025-10-02"]);
        let d = &r.daily[0];
        assert_eq!((d.sessions, d.new_users, d.returning_users), (1, 0, 1));
        assert_eq!((d.gmv, d.net_gmv, d.cac), (30.0, 18.0, None));
        assert_eq!(r.hourly_gmv.len(), 1);
        assert_eq!((r.hourly_gmv[0].gmv, r.hourly_gmv[0].net_gmv), (30.0, 18.0));
        assert_eq!(
            r.top_books_by_units,
            [BookUnits {
                book_id: "bk_2".into(),
                units: 3
            }]
        );
        close(r.clv_historical, Some((40.0 + 18.0 + 99.0) / 2.0));
    }

    #[test]
    fn top_books_by_units_ties_by_book_id_and_stop_at_top_n() {
        let events = [
            ev("e1", "order_placed", "2025-10-01T10:00:00Z", "u1").order(
                "o1",
                1.0,
                &[("bk_c", 2, 1.0), ("bk_a", 1, 1.0), ("bk_b", 2, 1.0)],
            ),
            ev("e2", "order_placed", "2025-10-02T10:00:00Z", "u2").order(
                "o2",
                1.0,
                &[("bk_a", 2, 1.0), ("bk_d", 1, 1.0)],
            ),
        ];
        let r = kpi_report(lake(&events), &Dims::default(), DateRange::default(), 3).unwrap();
        let got: Vec<(&str, i64)> = r
            .top_books_by_units
            .iter()
            .map(|b| (b.book_id.as_str(), b.units))
            .collect();
        assert_eq!(got, [("bk_a", 3), ("bk_b", 2), ("bk_c", 2)]);
    }

    #[test]
    fn book_metrics_over_the_range() {
        let events = [
            // Day 1: bk_a viewed twice and carted once, then bought (2 × 5.0); bk_v viewed
            // once and carted twice, never bought.
            ev("v1", "product_view", "2025-10-01T09:00:00Z", "u1").book("bk_a"),
            ev("v2", "product_view", "2025-10-01T09:01:00Z", "u1").book("bk_a"),
            ev("c1", "add_to_cart", "2025-10-01T09:02:00Z", "u1").cart("bk_a", 5.0),
            ev("v3", "product_view", "2025-10-01T09:03:00Z", "u1").book("bk_v"),
            ev("c2", "add_to_cart", "2025-10-01T09:04:00Z", "u1").cart("bk_v", 9.0),
            ev("c3", "add_to_cart", "2025-10-01T09:05:00Z", "u1").cart("bk_v", 9.0),
            ev("o1", "order_placed", "2025-10-01T10:00:00Z", "u1").order(
                "o1",
                10.0,
                &[("bk_a", 2, 5.0)],
            ),
            // Day 2: bk_a viewed twice more, bk_b bought (1 × 30.0) without a view.
            ev("v4", "product_view", "2025-10-02T09:00:00Z", "u2").book("bk_a"),
            ev("v5", "product_view", "2025-10-02T09:01:00Z", "u2").book("bk_a"),
            ev("o2", "order_placed", "2025-10-02T10:00:00Z", "u2").order(
                "o2",
                30.0,
                &[("bk_b", 1, 30.0)],
            ),
            // Day 3, outside the range: bk_a bought again.
            ev("o3", "order_placed", "2025-10-03T10:00:00Z", "u3").order(
                "o3",
                50.0,
                &[("bk_a", 10, 5.0)],
            ),
        ];
        let range = DateRange {
            from: Some("2025-10-01".parse().unwrap()),
            to: Some("2025-10-02".parse().unwrap()),
        };
        let r = kpi_report(lake(&events), &Dims::default(), range, 10).unwrap();
        let book = |id: &str, units_sold, gmv, views, add_to_carts, rate| BookKpis {
            book_id: id.to_owned(),
            units_sold,
            gmv,
            views,
            add_to_carts,
            view_to_cart_rate: rate,
        };
        assert_eq!(
            r.books,
            [
                // 1 cart / 4 views over the two days.
                book("bk_a", 2, 10.0, 4, 1, Some(0.25)),
                book("bk_b", 1, 30.0, 0, 0, None),
                book("bk_v", 0, 0.0, 1, 2, Some(2.0)),
            ]
        );
        // The leaderboards rank what was sold: bk_v is on neither.
        let units: Vec<(&str, i64)> = r
            .top_books_by_units
            .iter()
            .map(|b| (b.book_id.as_str(), b.units))
            .collect();
        assert_eq!(units, [("bk_a", 2), ("bk_b", 1)]);
        let gmv: Vec<(&str, f64)> = r
            .top_books_by_gmv
            .iter()
            .map(|b| (b.book_id.as_str(), b.gmv))
            .collect();
        assert_eq!(gmv, [("bk_b", 30.0), ("bk_a", 10.0)]);
    }

    #[test]
    fn sessions_by_source_and_device() {
        let r = report(
            &[
                // First non-empty source wins; device is the first event's.
                pv("a1", "2025-10-01T10:00:00Z", "u1").device("mobile"),
                pv("a2", "2025-10-01T10:01:00Z", "u1")
                    .src("")
                    .device("desktop"),
                pv("a3", "2025-10-01T10:02:00Z", "u1").src("paid"),
                pv("a4", "2025-10-01T10:03:00Z", "u1").src("social"),
                // No source at all: direct.
                pv("b1", "2025-10-01T10:00:00Z", "u2"),
                pv("c1", "2025-10-01T10:00:00Z", "u3")
                    .src("paid")
                    .device("tablet"),
            ],
            &Dims::default(),
        );
        let d = day(&r, "2025-10-01");
        let m = |kv: &[(&str, i64)]| -> BTreeMap<String, i64> {
            kv.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        assert_eq!(d.sessions_by_source, m(&[("direct", 1), ("paid", 2)]));
        assert_eq!(
            d.sessions_by_device,
            m(&[("desktop", 1), ("mobile", 1), ("tablet", 1)])
        );
    }

    #[test]
    fn json_has_exactly_the_contract_shape() {
        let r = report(
            &[
                pv("e1", "2025-10-01T10:00:00Z", "u1").src("paid"),
                order("e2", "2025-10-01T10:01:00Z", "u1", "o1", 12.5),
            ],
            &Dims::default(),
        );
        let json = serde_json::to_value(&r).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        // The contract's four keys, and two more of the books over the range.
        assert_eq!(
            keys(&json),
            [
                "books",
                "clv_historical",
                "daily",
                "hourly_gmv",
                "top_books_by_gmv",
                "top_books_by_units"
            ]
        );
        let day = &json["daily"][0];
        let mut expected = vec![
            "date",
            "gmv",
            "net_gmv",
            "orders",
            "aov",
            "revenue",
            "units",
            "sessions",
            "users",
            "new_users",
            "returning_users",
            "bounce_rate",
            "cvr",
            "funnel",
            "funnel_rates",
            "cart_abandonment_rate",
            "search_usage",
            "search_cvr",
            "non_search_cvr",
            "no_results_rate",
            "rec_ctr",
            "rec_ctr_by_module",
            "rec_driven_gmv",
            "cac",
            "sessions_by_source",
            "sessions_by_device",
        ];
        expected.sort();
        assert_eq!(keys(day), expected);
        assert_eq!(
            keys(&day["funnel"]),
            [
                "added_to_cart",
                "landed",
                "purchased",
                "started_checkout",
                "viewed_product"
            ]
        );
        assert_eq!(
            keys(&day["funnel_rates"]),
            [
                "added_to_cart",
                "purchased",
                "started_checkout",
                "viewed_product"
            ]
        );
        assert_eq!(day["date"], "2025-10-01");
        assert_eq!(day["gmv"], 12.5);
        assert_eq!(day["orders"], 1);
        assert_eq!(day["search_cvr"], serde_json::Value::Null);
        assert_eq!(day["cac"], serde_json::Value::Null);
        assert_eq!(day["sessions_by_source"], serde_json::json!({"paid": 1}));
        assert_eq!(
            json["hourly_gmv"],
            serde_json::json!([{"hour": "2025-10-01T10:00:00Z", "gmv": 12.5, "net_gmv": 12.5}])
        );
        assert_eq!(
            json["top_books_by_units"],
            serde_json::json!([{"book_id": "bk_1", "units": 1}])
        );
        assert_eq!(json["clv_historical"], 12.5);
        let text = serde_json::to_string(&r).unwrap();
        let back: KpiReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
