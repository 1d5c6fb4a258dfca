//! End-to-end: the real `quire` binary, from simulated or hand-written events to KPIs.

use std::fs;
use std::path::Path;

use quire_tests::{quire, quire_json, quire_ok};
use serde_json::Value;

fn simulate(dir: &Path) -> Value {
    quire_json(
        dir,
        &[
            "simulate", "--days", "3", "--users", "300", "--seed", "7", "--out", "sim", "--json",
        ],
    )
}

#[test]
fn simulate_ingest_dims_kpis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sim = simulate(dir);
    assert!(sim["events"].as_u64().expect("events") > 1_000, "{sim}");

    let ingest = quire_json(
        dir,
        &["ingest", "--lake", "lake", "sim/events.jsonl", "--json"],
    );
    let mut keys: Vec<&str> = ingest
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["duplicates", "invalid", "lines", "test", "valid"]);
    assert_eq!(
        ingest["lines"], sim["lines"],
        "every simulated line is read"
    );
    assert_eq!(
        ingest["invalid"], sim["malformed"],
        "exactly the malformed lines are bad rows"
    );
    assert!(ingest["duplicates"].as_u64().expect("n") >= sim["duplicates"].as_u64().expect("n"));

    // the same file again changes nothing
    let again = quire_json(
        dir,
        &["ingest", "--lake", "lake", "sim/events.jsonl", "--json"],
    );
    assert_eq!(again["valid"], ingest["valid"]);
    assert_eq!(again["duplicates"], ingest["valid"]);

    let bad = quire_json(
        dir,
        &["badrows", "--lake", "lake", "--limit", "1000", "--json"],
    );
    let bad = bad.as_array().expect("array");
    assert_eq!(
        bad.len() as u64,
        ingest["invalid"].as_u64().expect("n"),
        "bad rows stored once"
    );
    for row in bad {
        assert!(
            row["reason"].as_str().expect("reason").contains(':'),
            "{row}"
        );
        assert!(row["line_number"].as_i64().expect("line") >= 1);
    }

    let dims = quire_json(
        dir,
        &[
            "dims",
            "load",
            "--lake",
            "lake",
            "--books",
            "sim/books.csv",
            "--users",
            "sim/users.csv",
            "--marketing-spend",
            "sim/marketing_spend.csv",
            "--json",
        ],
    );
    assert_eq!(dims["books"], 10_000);
    assert!(dims["users"].as_u64().expect("users") > 0);

    let k = quire_json(dir, &["kpis", "--lake", "lake", "--json"]);
    let daily = k["daily"].as_array().expect("daily");
    assert!(daily.len() >= 3, "{} days", daily.len());
    for key in [
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
        "cart_abandonment_rate",
        "search_usage",
        "search_cvr",
        "non_search_cvr",
        "no_results_rate",
        "rec_ctr",
        "rec_driven_gmv",
        "cac",
        "sessions_by_source",
        "sessions_by_device",
    ] {
        assert!(
            daily[0].get(key).is_some(),
            "daily entry lacks {key}: {}",
            daily[0]
        );
    }
    for key in [
        "landed",
        "viewed_product",
        "added_to_cart",
        "started_checkout",
        "purchased",
    ] {
        assert!(daily[0]["funnel"].get(key).is_some(), "funnel lacks {key}");
    }
    assert!(k["clv_historical"].as_f64().expect("clv") > 0.0);
    let hourly = k["hourly_gmv"].as_array().expect("hourly");
    let by_hours: f64 = hourly.iter().map(|h| h["gmv"].as_f64().expect("gmv")).sum();
    let by_days: f64 = daily.iter().map(|d| d["gmv"].as_f64().expect("gmv")).sum();
    assert!(
        (by_hours - by_days).abs() < 1e-6 * by_days.max(1.0),
        "{by_hours} vs {by_days}"
    );
    assert!(!k["top_books_by_units"].as_array().expect("top").is_empty());

    // a date range narrows the days
    let first = daily[0]["date"].as_str().expect("date").to_owned();
    let one = quire_json(
        dir,
        &[
            "kpis", "--lake", "lake", "--from", &first, "--to", &first, "--json",
        ],
    );
    assert_eq!(one["daily"].as_array().expect("daily").len(), 1);
    assert_eq!(
        one["daily"][0], daily[0],
        "a day's figures do not depend on the range"
    );

    // the warehouse layers are materialized as Parquet
    quire_ok(dir, &["warehouse", "build", "--lake", "lake"]);
    for table in [
        "staging/stg_events",
        "facts/fct_sessions",
        "facts/fct_orders",
        "facts/fct_order_items",
        "aggregates/agg_daily_kpis",
        "aggregates/agg_hourly_gmv",
    ] {
        let p = dir.join("lake/warehouse").join(format!("{table}.parquet"));
        assert!(p.exists(), "{} missing", p.display());
    }
}

#[test]
fn hand_written_events_give_hand_computed_kpis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let lines = [
        // usr_a: one session (gap of exactly 30 minutes), buys 2 × 10 + 1 × 5, pays 25
        r#"{"event_id":"a1","event_type":"page_view","event_timestamp":"2025-10-01T10:00:00Z","user_id":"usr_a","device":"desktop","traffic_source":"email","page":"home"}"#,
        r#"{"event_id":"a2","event_type":"add_to_cart","event_timestamp":"2025-10-01T12:30:00+02:00","user_id":"usr_a","device":"desktop","book_id":"bk_1","quantity":2,"unit_price":10}"#,
        r#"{"event_id":"a3","event_type":"order_placed","event_timestamp":"2025-10-01T10:40:00Z","user_id":"usr_a","device":"desktop","order_id":"o1","items":[{"book_id":"bk_1","quantity":2,"unit_price":10},{"book_id":"bk_2","quantity":1,"unit_price":5}],"total_price":25,"fees":1}"#,
        // a retried order_placed: counts once
        r#"{"event_id":"a4","event_type":"order_placed","event_timestamp":"2025-10-01T10:40:03Z","user_id":"usr_a","device":"desktop","order_id":"o1","items":[{"book_id":"bk_1","quantity":2,"unit_price":10},{"book_id":"bk_2","quantity":1,"unit_price":5}],"total_price":25,"fees":1}"#,
        // a duplicate line
        r#"{"event_id":"a1","event_type":"page_view","event_timestamp":"2025-10-01T10:00:00Z","user_id":"usr_a","device":"desktop","traffic_source":"email","page":"home"}"#,
        // usr_b: a bounce session on mobile
        r#"{"event_id":"b1","event_type":"page_view","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_b","device":"mobile","page":"home"}"#,
        // test traffic: ignored by every KPI
        r#"{"event_id":"t1","event_type":"order_placed","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_t","device":"mobile","is_test":true,"order_id":"ot","items":[{"book_id":"bk_1","quantity":1,"unit_price":99}],"total_price":99}"#,
        // a return larger than the order, a day later: capped at 25, counted on the order's day
        r#"{"event_id":"r1","event_type":"order_returned","event_timestamp":"2025-10-02T09:00:00Z","user_id":"usr_a","device":"desktop","order_id":"o1","refund_amount":40}"#,
        r#"{"event_id":"bad","event_type":"add_to_cart","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_b","device":"mobile","book_id":"bk_1","quantity":0,"unit_price":1}"#,
    ];
    fs::write(dir.join("events.jsonl"), lines.join("\n")).expect("write");
    let ingest = quire_json(dir, &["ingest", "--lake", "lake", "events.jsonl", "--json"]);
    assert_eq!(
        ingest,
        serde_json::json!({"lines": 9, "valid": 8, "invalid": 1, "duplicates": 1, "test": 1})
    );
    fs::write(
        dir.join("books.csv"),
        "book_id,title,author,genre,series,series_index,price,unit_cost,publication_year,average_rating,ratings_count\n\
         bk_1,One,A,Fantasy,,,10,4,2001,4.1,10\n",
    )
    .expect("write books");
    quire_ok(
        dir,
        &["dims", "load", "--lake", "lake", "--books", "books.csv"],
    );
    let k = quire_json(dir, &["kpis", "--lake", "lake", "--json"]);
    let d = &k["daily"][0];
    assert_eq!(
        k["daily"].as_array().expect("daily").len(),
        1,
        "the return's day has no sessions or orders"
    );
    assert_eq!(d["date"], "2025-10-01");
    assert_eq!(d["gmv"], 25.0);
    assert_eq!(d["orders"], 1);
    assert_eq!(d["net_gmv"], 0.0);
    // revenue = net_gmv − fees − cogs = 0 − 1 − 2 × 4 (bk_2 is unknown: cost 0)
    assert_eq!(d["revenue"], -9.0);
    assert_eq!(d["units"], 3);
    assert_eq!(d["sessions"], 2);
    assert_eq!(d["bounce_rate"], 0.5);
    assert_eq!(d["cvr"], 0.5);
    assert_eq!(d["cart_abandonment_rate"], 0.0);
    assert_eq!(d["sessions_by_source"]["email"], 1);
    assert_eq!(d["sessions_by_source"]["direct"], 1);
    assert_eq!(d["sessions_by_device"]["mobile"], 1);
    assert_eq!(k["hourly_gmv"][0]["hour"], "2025-10-01T10:00:00Z");
    assert_eq!(k["hourly_gmv"][0]["net_gmv"], 0.0);
    assert_eq!(
        k["top_books_by_units"][0],
        serde_json::json!({"book_id": "bk_1", "units": 2})
    );
}

#[test]
fn errors_are_one_line_and_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = quire(tmp.path(), &["ingest", "--lake", "lake", "missing.jsonl"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("missing.jsonl"), "{err}");

    fs::write(
        tmp.path().join("spend.csv"),
        "date,channel,spend\n2025-10-01,tv,3\n",
    )
    .expect("write");
    let out = quire(
        tmp.path(),
        &[
            "dims",
            "load",
            "--lake",
            "lake",
            "--marketing-spend",
            "spend.csv",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spend.csv: line 2: column channel"), "{err}");
}

#[test]
fn pipeline_runs_then_skips_unchanged_steps() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let args = [
        "pipeline",
        "run",
        "--work",
        "w",
        "--lake",
        "w/lake",
        "--days",
        "2",
        "--sim-users",
        "200",
        "--json",
    ];
    let first = quire_json(dir, &args);
    let status = |r: &Value| -> Vec<(String, String)> {
        r["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["step"].as_str().expect("step").to_owned(),
                    s["status"].as_str().expect("status").to_owned(),
                )
            })
            .collect()
    };
    let ran: Vec<(String, String)> = ["simulate", "ingest", "dims", "warehouse"]
        .iter()
        .map(|s| ((*s).to_owned(), "ran".to_owned()))
        .collect();
    assert_eq!(status(&first), ran);
    assert!(first["kpis"]["daily"].as_array().expect("daily").len() >= 2);
    assert!(dir.join("w/reports/kpis.json").exists());

    let second = quire_json(dir, &args);
    assert!(
        status(&second).iter().all(|(_, s)| s == "skipped"),
        "{:?}",
        status(&second)
    );
    assert_eq!(first["kpis"], second["kpis"]);
}
