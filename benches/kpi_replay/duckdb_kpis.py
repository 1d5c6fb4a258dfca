#!/usr/bin/env python3
"""The `quire kpis --json` report of contracts/kpis.md, computed by DuckDB from the same lake.

Usage: python duckdb_kpis.py --lake DIR OUT.json [--threads N] [--glob] [--top N]

Reads the lake's event Parquet (docs/lake.md) and the dimension tables at
`<lake>/warehouse/dims/{books,marketing_spend}.parquet` with plain SQL, and writes the same
JSON object as `quire kpis --lake DIR --json` to OUT.json. This is the peer of the KPI replay
benchmark (benches/kpi_replay/run.py) and an independent second implementation of kpis.md:
the two reports must agree.

Input files: by default the committed event files listed by the lake's commit log
(`<lake>/_manifest/*.json`, the set Quire reads); with `--glob`, every file matched by
`read_parquet('<lake>/events/**/*.parquet')`. Both are the same set for a lake whose last
ingest finished.

Needs only the `duckdb` package. Uses DuckDB's own threads (all cores unless --threads).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from pathlib import Path

import duckdb

SESSION_GAP_MS = 30 * 60 * 1000

# Per-day metrics in the order `quire kpis --json` prints them.
DAILY_KEYS = [
    "date", "gmv", "net_gmv", "orders", "aov", "revenue", "units", "sessions", "users",
    "new_users", "returning_users", "bounce_rate", "cvr", "funnel", "funnel_rates",
    "cart_abandonment_rate", "search_usage", "search_cvr", "non_search_cvr", "no_results_rate",
    "rec_ctr", "rec_ctr_by_module", "rec_driven_gmv", "cac", "sessions_by_source",
    "sessions_by_device",
]


def sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def event_files(lake: Path, use_glob: bool) -> list[str] | str:
    """The event Parquet files to read: the commit log's list, or the documented glob."""
    if use_glob:
        return str(lake / "events" / "**" / "*.parquet")
    manifests = sorted(glob.glob(str(lake / "_manifest" / "*.json")))
    files: list[str] = []
    for m in manifests:
        with open(m, encoding="utf-8") as f:
            commit = json.load(f)
        files += [str(lake / c["path"]) for c in commit["files"] if c["kind"] == "events"]
    return files


# The report's SQL, one temporary table per model (as in the warehouse: staging → sessions →
# facts → aggregates). Timestamps are handled as epoch milliseconds (BIGINT) so that nothing
# depends on the session time zone; days and hours are UTC.
SQL_MODELS = r"""
-- stg_events: deduplicated by event_id (the copy with the earliest ingested_at stays), test
-- events dropped. Two narrow projections, as the report reads them: the session and site
-- events, and the order events with their items (the copies of an event_id are copies of one
-- event, hence of one type, so staging each type group apart gives the same rows).
CREATE TEMP TABLE stg AS
SELECT event_id, event_type, epoch_ms(event_timestamp) AS ts_ms, user_id, device,
       traffic_source, results_count, module
FROM raw_events
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingested_at NULLS LAST) = 1
    AND NOT coalesce(is_test, false);

CREATE TEMP TABLE stg_orders AS
SELECT event_id, event_type, epoch_ms(event_timestamp) AS ts_ms, user_id, order_id, items,
       total_price, coalesce(fees, 0.0) AS fees, refund_amount
FROM raw_events
WHERE event_type IN ('order_placed', 'order_returned')
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingested_at NULLS LAST) = 1
    AND NOT coalesce(is_test, false);

-- fct_sessions. Session events (all but order_returned) in session order per user: time,
-- then event_id. new_sess marks the first event of a session (the user's first, or more than
-- 30 minutes after the previous one), sess_no numbers the user's sessions, clicks_before
-- counts the user's recommendation clicks strictly before the event. A session's day is its
-- first event's, and so are its device and first non-empty traffic_source (else 'direct').
-- placed_ids/placed_clicks: its order_placed events and the clicks before each.
CREATE TEMP TABLE sessions AS
WITH ordered AS (
    SELECT event_id, event_type, ts_ms, user_id, device, traffic_source,
           row_number() OVER w AS rn,
           coalesce(ts_ms - lag(ts_ms) OVER w > {gap}, true) AS new_sess,
           coalesce(sum((event_type = 'recommendation_clicked')::INTEGER) OVER (w ROWS BETWEEN
               UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS clicks_before
    FROM stg
    WHERE event_type <> 'order_returned'
    WINDOW w AS (PARTITION BY user_id ORDER BY ts_ms, event_id)
), numbered AS (
    SELECT *, sum(new_sess::INTEGER) OVER (PARTITION BY user_id ORDER BY rn
                                           ROWS UNBOUNDED PRECEDING) AS sess_no
    FROM ordered
)
SELECT user_id, sess_no,
       min(ts_ms) AS start_ms,
       make_timestamp(min(ts_ms) * 1000)::DATE AS date,
       any_value(device) FILTER (WHERE new_sess) AS device,
       coalesce(arg_min(traffic_source, rn)
                    FILTER (WHERE traffic_source IS NOT NULL AND traffic_source <> ''),
                'direct') AS traffic_source,
       count(*) AS n_events,
       bool_or(event_type = 'product_view') AS has_product_view,
       bool_or(event_type = 'add_to_cart') AS has_add_to_cart,
       bool_or(event_type = 'checkout_started') AS has_checkout,
       bool_or(event_type = 'order_placed') AS has_order,
       bool_or(event_type = 'search_performed') AS has_search,
       min(clicks_before) AS clicks_before_start,
       list(event_id) FILTER (WHERE event_type = 'order_placed') AS placed_ids,
       list(clicks_before) FILTER (WHERE event_type = 'order_placed') AS placed_clicks
FROM numbered
GROUP BY user_id, sess_no;

-- A user is new on the day of their first session ever.
CREATE TEMP TABLE first_session_day AS
SELECT user_id, min(date) AS first_day FROM sessions GROUP BY user_id;

-- fct_orders: the standing order_placed per order_id (earliest by time, then event_id), its
-- refunds (all returns of the order, capped at total_price), and whether a recommendation
-- click precedes it in its session.
CREATE TEMP TABLE orders AS
WITH placed AS (
    SELECT event_id, ts_ms, user_id, order_id, items, total_price, fees
    FROM stg_orders
    WHERE event_type = 'order_placed'
    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY ts_ms, event_id) = 1
), refunds AS (
    SELECT order_id, sum(refund_amount) AS refund_total
    FROM stg_orders WHERE event_type = 'order_returned'
    GROUP BY order_id
), placed_in_session AS (
    SELECT unnest(placed_ids) AS event_id, unnest(placed_clicks) AS clicks_before,
           clicks_before_start
    FROM sessions WHERE has_order
), rec AS (
    SELECT event_id, clicks_before > clicks_before_start AS rec_driven FROM placed_in_session
)
SELECT p.order_id, p.event_id, p.user_id, p.ts_ms, p.items, p.total_price, p.fees,
       make_timestamp(p.ts_ms * 1000)::DATE AS date,
       (p.ts_ms // 3600000) * 3600000 AS hour_ms,
       least(coalesce(r.refund_total, 0.0), p.total_price) AS refunds,
       p.total_price - least(coalesce(r.refund_total, 0.0), p.total_price) AS net,
       coalesce(rec.rec_driven, false) AS rec_driven
FROM placed p
LEFT JOIN refunds r USING (order_id)
LEFT JOIN rec USING (event_id);

-- fct_order_items: one row per item, with books.unit_cost (unknown book: 0).
CREATE TEMP TABLE items AS
WITH exploded AS (
    SELECT order_id, date, unnest(items) AS it FROM orders
)
SELECT x.order_id, x.date, struct_extract(x.it, 'book_id') AS book_id,
       struct_extract(x.it, 'quantity') AS quantity,
       struct_extract(x.it, 'quantity') * coalesce(b.unit_cost, 0.0) AS line_cogs
FROM exploded x
LEFT JOIN books b ON b.book_id = struct_extract(x.it, 'book_id');
"""

SQL_DAILY = r"""
WITH sess_daily AS (
    SELECT s.date,
           count(*) AS sessions,
           count(DISTINCT s.user_id) AS users,
           count(DISTINCT s.user_id) FILTER (WHERE f.first_day = s.date) AS new_users,
           count(*) FILTER (WHERE n_events = 1) AS bounces,
           count(*) FILTER (WHERE has_product_view) AS viewed_product,
           count(*) FILTER (WHERE has_add_to_cart) AS added_to_cart,
           count(*) FILTER (WHERE has_checkout) AS started_checkout,
           count(*) FILTER (WHERE has_order) AS purchased,
           count(*) FILTER (WHERE has_search) AS search_sessions,
           count(*) FILTER (WHERE has_search AND has_order) AS search_purchased,
           count(*) FILTER (WHERE has_add_to_cart AND NOT has_order) AS abandoned
    FROM sessions s JOIN first_session_day f USING (user_id)
    GROUP BY s.date
), per_order AS (
    SELECT order_id, sum(quantity) AS units, sum(line_cogs) AS cogs
    FROM items GROUP BY order_id
), orders_daily AS (
    SELECT o.date,
           sum(total_price) AS gmv,
           sum(net) AS net_gmv,
           count(*) AS orders,
           sum(fees) AS fees,
           sum(coalesce(po.cogs, 0.0)) AS cogs,
           sum(coalesce(po.units, 0)) AS units,
           coalesce(sum(total_price) FILTER (WHERE rec_driven), 0.0) AS rec_driven_gmv
    FROM orders o LEFT JOIN per_order po USING (order_id)
    GROUP BY o.date
), new_customers AS (
    SELECT first_order_day AS date, count(*) AS new_customers
    FROM (SELECT user_id, min(date) AS first_order_day FROM orders GROUP BY user_id)
    GROUP BY first_order_day
), search_daily AS (
    SELECT make_timestamp(ts_ms * 1000)::DATE AS date,
           count(*) AS searches,
           count(*) FILTER (WHERE results_count = 0) AS zero_results
    FROM stg WHERE event_type = 'search_performed'
    GROUP BY 1
), rec_daily AS (
    SELECT date, sum(shown) AS shown, sum(clicked) AS clicked FROM rec_by_module GROUP BY date
), days AS (
    SELECT date FROM sess_daily UNION SELECT date FROM orders_daily
)
SELECT d.date::VARCHAR AS date,
       coalesce(o.gmv, 0.0) AS gmv,
       coalesce(o.net_gmv, 0.0) AS net_gmv,
       coalesce(o.orders, 0) AS orders,
       coalesce(o.fees, 0.0) AS fees,
       coalesce(o.cogs, 0.0) AS cogs,
       coalesce(o.units, 0) AS units,
       coalesce(o.rec_driven_gmv, 0.0) AS rec_driven_gmv,
       coalesce(s.sessions, 0) AS sessions,
       coalesce(s.users, 0) AS users,
       coalesce(s.new_users, 0) AS new_users,
       coalesce(s.bounces, 0) AS bounces,
       coalesce(s.viewed_product, 0) AS viewed_product,
       coalesce(s.added_to_cart, 0) AS added_to_cart,
       coalesce(s.started_checkout, 0) AS started_checkout,
       coalesce(s.purchased, 0) AS purchased,
       coalesce(s.search_sessions, 0) AS search_sessions,
       coalesce(s.search_purchased, 0) AS search_purchased,
       coalesce(s.abandoned, 0) AS abandoned,
       coalesce(sd.searches, 0) AS searches,
       coalesce(sd.zero_results, 0) AS zero_results,
       coalesce(r.shown, 0) AS rec_shown,
       coalesce(r.clicked, 0) AS rec_clicked,
       coalesce(nc.new_customers, 0) AS new_customers,
       {spend_expr} AS spend
FROM days d
LEFT JOIN sess_daily s USING (date)
LEFT JOIN orders_daily o USING (date)
LEFT JOIN new_customers nc USING (date)
LEFT JOIN search_daily sd USING (date)
LEFT JOIN rec_daily r USING (date)
{spend_join}
ORDER BY d.date
"""

SQL_REC_BY_MODULE = r"""
CREATE TEMP TABLE rec_by_module AS
SELECT make_timestamp(ts_ms * 1000)::DATE AS date, module,
       count(*) FILTER (WHERE event_type = 'recommendation_shown') AS shown,
       count(*) FILTER (WHERE event_type = 'recommendation_clicked') AS clicked
FROM stg
WHERE event_type IN ('recommendation_shown', 'recommendation_clicked')
GROUP BY 1, 2;
"""


def ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def nested(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for date, key, value in con.execute(sql).fetchall():
        out.setdefault(str(date), {})[key] = value
    return out


def report(con: duckdb.DuckDBPyConnection, lake: Path, files: list[str] | str, top: int) -> dict:
    if isinstance(files, list) and not files:
        raise SystemExit(f"duckdb_kpis: no committed event files under {lake}")
    source = sql_str(files) if isinstance(files, str) else "[" + ", ".join(map(sql_str, files)) + "]"
    con.execute(f"CREATE TEMP VIEW raw_events AS SELECT * FROM read_parquet({source}, "
                "hive_partitioning = false)")
    dims = lake / "warehouse" / "dims"
    books = dims / "books.parquet"
    spend = dims / "marketing_spend.parquet"
    if books.exists():
        con.execute("CREATE TEMP TABLE books AS SELECT book_id, any_value(unit_cost::DOUBLE) "
                    f"AS unit_cost FROM read_parquet({sql_str(str(books))}) GROUP BY book_id")
    else:
        con.execute("CREATE TEMP TABLE books (book_id VARCHAR, unit_cost DOUBLE)")
    con.execute(SQL_MODELS.format(gap=SESSION_GAP_MS))
    con.execute(SQL_REC_BY_MODULE)

    if spend.exists():
        con.execute("CREATE TEMP TABLE spend AS SELECT date::DATE AS date, "
                    f"sum(spend::DOUBLE) AS spend FROM read_parquet({sql_str(str(spend))}) "
                    "GROUP BY 1")
        spend_expr, spend_join = "coalesce(sp.spend, 0.0)", "LEFT JOIN spend sp USING (date)"
    else:
        # No marketing spend loaded: cac is unknown (null) every day.
        spend_expr, spend_join = "NULL::DOUBLE", ""
    cur = con.execute(SQL_DAILY.format(spend_expr=spend_expr, spend_join=spend_join))
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]

    by_source = nested(con, "SELECT date::VARCHAR, traffic_source, count(*) FROM sessions "
                            "GROUP BY ALL ORDER BY ALL")
    by_device = nested(con, "SELECT date::VARCHAR, device, count(*) FROM sessions "
                            "GROUP BY ALL ORDER BY ALL")
    by_module = nested(con, "SELECT date::VARCHAR, module, CASE WHEN shown > 0 THEN "
                            "clicked / shown END FROM rec_by_module ORDER BY ALL")

    daily = []
    for r in rows:
        d = r["date"]
        sessions = r["sessions"]
        day = {
            "date": d,
            "gmv": r["gmv"],
            "net_gmv": r["net_gmv"],
            "orders": r["orders"],
            "aov": ratio(r["gmv"], r["orders"]),
            "revenue": r["net_gmv"] - r["fees"] - r["cogs"],
            "units": int(r["units"]),
            "sessions": sessions,
            "users": r["users"],
            "new_users": r["new_users"],
            "returning_users": r["users"] - r["new_users"],
            "bounce_rate": ratio(r["bounces"], sessions),
            "cvr": ratio(r["purchased"], sessions),
            "funnel": {
                "landed": sessions,
                "viewed_product": r["viewed_product"],
                "added_to_cart": r["added_to_cart"],
                "started_checkout": r["started_checkout"],
                "purchased": r["purchased"],
            },
            "funnel_rates": {
                "viewed_product": ratio(r["viewed_product"], sessions),
                "added_to_cart": ratio(r["added_to_cart"], r["viewed_product"]),
                "started_checkout": ratio(r["started_checkout"], r["added_to_cart"]),
                "purchased": ratio(r["purchased"], r["started_checkout"]),
            },
            "cart_abandonment_rate": ratio(r["abandoned"], r["added_to_cart"]),
            "search_usage": ratio(r["search_sessions"], sessions),
            "search_cvr": ratio(r["search_purchased"], r["search_sessions"]),
            "non_search_cvr": ratio(r["purchased"] - r["search_purchased"],
                                    sessions - r["search_sessions"]),
            "no_results_rate": ratio(r["zero_results"], r["searches"]),
            "rec_ctr": ratio(r["rec_clicked"], r["rec_shown"]),
            "rec_ctr_by_module": by_module.get(d, {}),
            "rec_driven_gmv": r["rec_driven_gmv"],
            "cac": None if r["spend"] is None else ratio(r["spend"], r["new_customers"]),
            "sessions_by_source": by_source.get(d, {}),
            "sessions_by_device": by_device.get(d, {}),
        }
        daily.append({k: day[k] for k in DAILY_KEYS})

    hourly = [
        {"hour": h, "gmv": g, "net_gmv": n}
        for h, g, n in con.execute(
            "SELECT strftime(make_timestamp(hour_ms * 1000), '%Y-%m-%dT%H:00:00Z'), "
            "sum(total_price), sum(net) FROM orders GROUP BY hour_ms ORDER BY hour_ms"
        ).fetchall()
    ]
    clv = con.execute("SELECT CASE WHEN count(*) > 0 THEN sum(net) / count(DISTINCT user_id) "
                      "END FROM orders").fetchone()[0]
    top_books = [
        {"book_id": b, "units": int(u)}
        for b, u in con.execute(
            "SELECT book_id, sum(quantity) AS units FROM items GROUP BY book_id "
            f"ORDER BY units DESC, book_id ASC LIMIT {int(top)}"
        ).fetchall()
    ]
    return {
        "daily": daily,
        "hourly_gmv": hourly,
        "clv_historical": clv,
        "top_books_by_units": top_books,
    }


def finite(obj):
    """NaN/inf are not JSON; none should occur (rates are null when the denominator is 0)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number in the report: {obj}")
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", required=True, type=Path, help="lake root")
    ap.add_argument("out", type=Path, help="where to write the JSON report")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all cores)")
    ap.add_argument("--glob", action="store_true",
                    help="read <lake>/events/**/*.parquet instead of the committed file list")
    ap.add_argument("--top", type=int, default=10, help="books in top_books_by_units")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory_limit, e.g. 4GB")
    args = ap.parse_args()

    t0 = time.perf_counter()
    con = duckdb.connect(":memory:")
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    if args.memory_limit:
        con.execute(f"SET memory_limit = {sql_str(args.memory_limit)}")
    # Nothing below depends on row order; this lets DuckDB stream and spill more freely.
    con.execute("SET preserve_insertion_order = false")
    files = event_files(args.lake, args.glob)
    rep = finite(report(con, args.lake, files, args.top))
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(rep, f)
        f.write("\n")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(f"duckdb_kpis: duckdb {duckdb.__version__}, {threads} threads, "
          f"{len(rep['daily'])} days, {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
