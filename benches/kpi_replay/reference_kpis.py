#!/usr/bin/env python3
"""A third, deliberately plain implementation of contracts/kpis.md: a referee for small lakes.

Usage: python reference_kpis.py --lake DIR OUT.json

Loads the committed events and the dims with DuckDB (a plain SELECT: no logic in SQL), then
computes the `quire kpis --json` report event by event in Python, following kpis.md line by
line. Slow (about 10 s per million events) and memory-hungry: meant for the harness's small
mode (run.py runs it when the lake has at most --referee-max events) to tell which of Quire
and DuckDB is wrong when they disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from duckdb_kpis import DAILY_KEYS, event_files, finite, sql_str

GAP_MS = 30 * 60 * 1000


def day_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def hour_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")


def ratio(n, d):
    return None if d == 0 else n / d


def load(lake: Path):
    con = duckdb.connect()
    files = event_files(lake, False) or event_files(lake, True)
    src = sql_str(files) if isinstance(files, str) else "[" + ", ".join(map(sql_str, files)) + "]"
    rows = con.execute(
        "SELECT event_id, event_type, epoch_ms(event_timestamp), user_id, device, "
        "traffic_source, coalesce(is_test, false), epoch_ms(ingested_at), results_count, module, "
        "order_id, items, total_price, fees, refund_amount "
        f"FROM read_parquet({src}, hive_partitioning = false)").fetchall()
    dims = lake / "warehouse" / "dims"
    unit_cost: dict[str, float] = {}
    if (dims / "books.parquet").exists():
        for b, c in con.execute("SELECT book_id, unit_cost::DOUBLE FROM read_parquet("
                                f"{sql_str(str(dims / 'books.parquet'))})").fetchall():
            unit_cost.setdefault(b, c)
    spend = None
    if (dims / "marketing_spend.parquet").exists():
        spend = defaultdict(float)
        for d, s in con.execute("SELECT date::VARCHAR, spend::DOUBLE FROM read_parquet("
                                f"{sql_str(str(dims / 'marketing_spend.parquet'))})").fetchall():
            spend[d] += s
    return rows, unit_cost, spend


def report(rows, unit_cost, spend, top: int = 10) -> dict:
    # Staging: by event_id, the copy with the earliest ingested_at stays; test events dropped.
    best: dict[str, tuple] = {}
    for r in rows:
        cur = best.get(r[0])
        if cur is None or (r[7] is not None and (cur[7] is None or r[7] < cur[7])):
            best[r[0]] = r
    stg = [r for r in best.values() if not r[6]]
    E = dict(id=0, type=1, ts=2, user=3, device=4, src=5, rc=8, module=9, order=10, items=11,
             total=12, fees=13, refund=14)

    # Sessions: per user, by (time, event_id); a gap > 30 min starts a new one.
    by_user = defaultdict(list)
    for r in stg:
        if r[E["type"]] != "order_returned":
            by_user[r[E["user"]]].append(r)
    sessions = []  # dicts
    session_of_event: dict[str, dict] = {}
    rec_before_order: dict[str, bool] = {}
    for user, evs in by_user.items():
        evs.sort(key=lambda r: (r[E["ts"]], r[E["id"]]))
        cur = None
        prev_ts = None
        for r in evs:
            if cur is None or r[E["ts"]] - prev_ts > GAP_MS:
                cur = {"user": user, "start": r[E["ts"]], "device": r[E["device"]],
                       "source": None, "types": set(), "n": 0, "clicked": False}
                sessions.append(cur)
            prev_ts = r[E["ts"]]
            cur["n"] += 1
            t = r[E["type"]]
            cur["types"].add(t)
            if cur["source"] is None and r[E["src"]]:
                cur["source"] = r[E["src"]]
            if t == "order_placed":
                rec_before_order[r[E["id"]]] = cur["clicked"]
            if t == "recommendation_clicked":
                cur["clicked"] = True
            session_of_event[r[E["id"]]] = cur
    first_day: dict[str, str] = {}
    for s in sessions:
        s["date"] = day_of(s["start"])
        s["source"] = s["source"] or "direct"
        if s["user"] not in first_day or s["date"] < first_day[s["user"]]:
            first_day[s["user"]] = s["date"]

    # Orders: the earliest order_placed per order_id by (time, event_id) stands.
    standing: dict[str, tuple] = {}
    refunds = defaultdict(float)
    for r in stg:
        if r[E["type"]] == "order_placed":
            cur = standing.get(r[E["order"]])
            if cur is None or (r[E["ts"]], r[E["id"]]) < (cur[E["ts"]], cur[E["id"]]):
                standing[r[E["order"]]] = r
        elif r[E["type"]] == "order_returned":
            refunds[r[E["order"]]] += r[E["refund"]]
    orders = []
    for oid, r in standing.items():
        total = r[E["total"]]
        ref = min(refunds.get(oid, 0.0), total)
        items = r[E["items"]] or []
        orders.append({
            "user": r[E["user"]], "date": day_of(r[E["ts"]]), "hour": hour_of(r[E["ts"]]),
            "total": total, "net": total - ref, "fees": r[E["fees"]] or 0.0,
            "units": sum(it["quantity"] for it in items),
            "cogs": sum(it["quantity"] * (unit_cost.get(it["book_id"]) or 0.0) for it in items),
            "items": items, "rec": rec_before_order.get(r[E["id"]], False),
        })
    first_order_day: dict[str, str] = {}
    for o in orders:
        if o["user"] not in first_order_day or o["date"] < first_order_day[o["user"]]:
            first_order_day[o["user"]] = o["date"]

    days = sorted({s["date"] for s in sessions} | {o["date"] for o in orders})
    sess_by_day, orders_by_day = defaultdict(list), defaultdict(list)
    searches_by_day, recs_by_day = defaultdict(list), defaultdict(list)
    for s in sessions:
        sess_by_day[s["date"]].append(s)
    for o in orders:
        orders_by_day[o["date"]].append(o)
    for r in stg:
        if r[E["type"]] == "search_performed":
            searches_by_day[day_of(r[E["ts"]])].append(r)
        elif r[E["type"]] in ("recommendation_shown", "recommendation_clicked"):
            recs_by_day[day_of(r[E["ts"]])].append(r)
    daily = []
    for d in days:
        ss = sess_by_day[d]
        os_ = orders_by_day[d]
        has = lambda s, t: t in s["types"]  # noqa: E731
        n = len(ss)
        users = {s["user"] for s in ss}
        new = {u for u in users if first_day[u] == d}
        viewed = sum(has(s, "product_view") for s in ss)
        added = sum(has(s, "add_to_cart") for s in ss)
        checkout = sum(has(s, "checkout_started") for s in ss)
        bought = sum(has(s, "order_placed") for s in ss)
        search = [s for s in ss if has(s, "search_performed")]
        nosearch = [s for s in ss if not has(s, "search_performed")]
        searches = searches_by_day[d]
        recs = recs_by_day[d]
        modules = defaultdict(lambda: [0, 0])
        for r in recs:
            modules[r[E["module"]]][r[E["type"]] == "recommendation_clicked"] += 1
        gmv = sum(o["total"] for o in os_)
        net = sum(o["net"] for o in os_)
        new_customers = sum(1 for u, fd in first_order_day.items() if fd == d)
        by_src, by_dev = defaultdict(int), defaultdict(int)
        for s in ss:
            by_src[s["source"]] += 1
            by_dev[s["device"]] += 1
        day = {
            "date": d, "gmv": gmv, "net_gmv": net, "orders": len(os_),
            "aov": ratio(gmv, len(os_)),
            "revenue": net - sum(o["fees"] for o in os_) - sum(o["cogs"] for o in os_),
            "units": sum(o["units"] for o in os_),
            "sessions": n, "users": len(users), "new_users": len(new),
            "returning_users": len(users) - len(new),
            "bounce_rate": ratio(sum(s["n"] == 1 for s in ss), n),
            "cvr": ratio(bought, n),
            "funnel": {"landed": n, "viewed_product": viewed, "added_to_cart": added,
                       "started_checkout": checkout, "purchased": bought},
            "funnel_rates": {"viewed_product": ratio(viewed, n),
                             "added_to_cart": ratio(added, viewed),
                             "started_checkout": ratio(checkout, added),
                             "purchased": ratio(bought, checkout)},
            "cart_abandonment_rate": ratio(
                sum(has(s, "add_to_cart") and not has(s, "order_placed") for s in ss), added),
            "search_usage": ratio(len(search), n),
            "search_cvr": ratio(sum(has(s, "order_placed") for s in search), len(search)),
            "non_search_cvr": ratio(sum(has(s, "order_placed") for s in nosearch), len(nosearch)),
            "no_results_rate": ratio(sum(r[E["rc"]] == 0 for r in searches), len(searches)),
            "rec_ctr": ratio(sum(v[1] for v in modules.values()),
                             sum(v[0] for v in modules.values())),
            "rec_ctr_by_module": {m: ratio(v[1], v[0]) for m, v in sorted(modules.items())},
            "rec_driven_gmv": sum(o["total"] for o in os_ if o["rec"]),
            "cac": None if spend is None else ratio(spend.get(d, 0.0), new_customers),
            "sessions_by_source": dict(sorted(by_src.items())),
            "sessions_by_device": dict(sorted(by_dev.items())),
        }
        daily.append({k: day[k] for k in DAILY_KEYS})

    hourly = defaultdict(lambda: [0.0, 0.0])
    for o in orders:
        hourly[o["hour"]][0] += o["total"]
        hourly[o["hour"]][1] += o["net"]
    units = defaultdict(int)
    for o in orders:
        for it in o["items"]:
            units[it["book_id"]] += it["quantity"]
    customers = {o["user"] for o in orders}
    return {
        "daily": daily,
        "hourly_gmv": [{"hour": h, "gmv": v[0], "net_gmv": v[1]} for h, v in sorted(hourly.items())],
        "clv_historical": ratio(sum(o["net"] for o in orders), len(customers)),
        "top_books_by_units": [{"book_id": b, "units": u} for b, u in
                               sorted(units.items(), key=lambda x: (-x[1], x[0]))[:top]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lake", required=True, type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    rows, unit_cost, spend = load(args.lake)
    rep = finite(report(rows, unit_cost, spend))
    args.out.write_text(json.dumps(rep) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
