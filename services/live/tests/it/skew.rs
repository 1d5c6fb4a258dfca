//! No lambda skew: a simulated day streamed through the live path on top of two days of
//! history, then the lake replayed with `quire kpis`' code; every hour's live figure equals
//! the replayed one, and so do today's KPIs.

use std::collections::HashSet;

use quire_kpi::{DateRange, Dims};
use serde_json::Value;

use crate::harness::*;

/// Sums of the same numbers in another order may differ in the last bits.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_day_equals_its_replay() {
    let dir = tempfile::tempdir().unwrap();
    let sim = quire_sim::simulate(
        &quire_sim::SimConfig {
            days: 3,
            users: 1500,
            ..quire_sim::SimConfig::default()
        },
        &dir.path().join("sim"),
        &|_| {},
    )
    .unwrap();
    let first = quire_sim::SimConfig::default().start;
    let day = first + chrono::Duration::days(2);

    // The first two days are history, ingested from a file before the service starts (the
    // live KPIs seed from them: yesterday whole, and every earlier user's first event, so
    // "new vs returning" is right). The third day is streamed through the intake; events
    // after it (sessions running past midnight) are left out, so "today" is the whole day.
    let mut history = String::new();
    let mut streamed: Vec<String> = Vec::new();
    let text = std::fs::read_to_string(&sim.events_path).unwrap();
    for line in text.lines() {
        let date = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| quire_events::parse_value(&v).ok())
            .map(|e| e.event_timestamp.date_naive());
        match date {
            Some(d) if d < day => {
                history.push_str(line);
                history.push('\n');
            }
            Some(d) if d > day => {}
            _ => streamed.push(line.to_owned()),
        }
    }
    let lake_dir = dir.path().join("lake");
    let history_file = dir.path().join("history.jsonl");
    std::fs::write(&history_file, history).unwrap();
    let ingested = quire_lake::Lake::open(&lake_dir)
        .unwrap()
        .ingest_file(
            &history_file,
            &quire_lake::IngestOptions::default(),
            &|_| {},
        )
        .unwrap();
    let redis = Redis::start(dir.path());
    let svc = Service::start(options(&lake_dir, &redis)).await;

    // The day's lines in file order, 500 per request; a line that is not JSON at all is
    // posted alone (the intake refuses it and keeps it as a bad row).
    let mut batch: Vec<Value> = Vec::new();
    let mut accepted = 0u64;
    let mut distinct = HashSet::new();
    for line in &streamed {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                if let Ok(e) = quire_events::parse_value(&v) {
                    distinct.insert(e.event_id);
                }
                batch.push(v);
            }
            Err(_) => assert_eq!(svc.post(line, None).await.0, 400),
        }
        if batch.len() == 500 {
            accepted += svc.post_events(&batch).await["accepted"].as_u64().unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        accepted += svc.post_events(&batch).await["accepted"].as_u64().unwrap();
    }
    assert_eq!(
        accepted,
        distinct.len() as u64,
        "every distinct valid event accepted once"
    );

    let lake = svc.lake();
    let in_lake = ingested.valid - ingested.duplicates + accepted;
    wait_for(60, "the archiver to catch up", || {
        let lake = lake.clone();
        async move { (lake_event_ids(&lake).len() as u64 == in_lake).then_some(()) }
    })
    .await;
    let window = format!(
        "/api/v1/hourly-gmv?from={}T00&to={}T23",
        day - chrono::Duration::days(1),
        day + chrono::Duration::days(1)
    );
    let live = wait_for(30, "the live KPIs to catch up", || async {
        let (_, s) = svc.get("/api/v1/status").await;
        (s["events_seen"].as_u64() == Some(accepted)).then_some(())?;
        let (_, h) = svc.get(&window).await;
        Some(h)
    })
    .await;

    // The replay: the lake through quire-kpi, as `quire kpis` does.
    let replay = quire_kpi::kpi_report(
        lake.scan_events().unwrap(),
        &Dims::default(),
        DateRange {
            from: Some(day - chrono::Duration::days(1)),
            to: Some(day),
        },
        10,
    )
    .unwrap();
    let live = live.as_array().unwrap();
    assert_eq!(
        live.len(),
        replay.hourly_gmv.len(),
        "{live:#?} vs {:#?}",
        replay.hourly_gmv
    );
    let mut closed = 0;
    for (l, r) in live.iter().zip(&replay.hourly_gmv) {
        assert_eq!(l["hour"], r.hour.format("%Y-%m-%dT%H:00:00Z").to_string());
        let (gmv, net) = (l["gmv"].as_f64().unwrap(), l["net_gmv"].as_f64().unwrap());
        assert!(same(gmv, r.gmv), "{l} vs {r:?}");
        assert!(same(net, r.net_gmv), "{l} vs {r:?}");
        if l["live"] == false {
            closed += 1;
        }
    }
    assert!(closed >= 18, "only {closed} closed hours compared");

    // Today's KPIs, once recomputed after the last event, are the replay's day.
    let day = replay.daily.iter().find(|d| d.date == day).unwrap().clone();
    assert!(
        day.returning_users > 0,
        "history makes some users returning"
    );
    let today = wait_for(30, "today's KPIs", || async {
        let (_, t) = svc.get("/api/v1/today").await;
        (t["kpis"]["sessions"].as_i64() == Some(day.sessions)
            && t["kpis"]["orders"].as_i64() == Some(day.orders))
        .then_some(t)
    })
    .await;
    let k = &today["kpis"];
    assert_eq!(k["date"], day.date.to_string());
    for (name, v) in [
        ("new_users", day.new_users),
        ("returning_users", day.returning_users),
        ("units", day.units),
        ("users", day.users),
    ] {
        assert_eq!(k[name].as_i64(), Some(v), "{name}");
    }
    assert_eq!(k["funnel"], serde_json::to_value(&day.funnel).unwrap());
    assert_eq!(
        k["sessions_by_source"],
        serde_json::to_value(&day.sessions_by_source).unwrap()
    );
    for (name, v) in [
        ("gmv", Some(day.gmv)),
        ("net_gmv", Some(day.net_gmv)),
        ("cvr", day.cvr),
        ("bounce_rate", day.bounce_rate),
        ("cart_abandonment_rate", day.cart_abandonment_rate),
        ("rec_ctr", day.rec_ctr),
    ] {
        match (k[name].as_f64(), v) {
            (Some(a), Some(b)) => assert!(same(a, b), "{name}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{name}"),
        }
    }
    let top: Vec<&str> = today["top_books_by_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["book_id"].as_str().unwrap())
        .collect();
    let today_only = quire_kpi::kpi_report(
        lake.scan_events().unwrap(),
        &Dims::default(),
        DateRange {
            from: Some(day.date),
            to: Some(day.date),
        },
        10,
    )
    .unwrap();
    let replay_top: Vec<&str> = today_only
        .top_books_by_units
        .iter()
        .map(|b| b.book_id.as_str())
        .collect();
    assert_eq!(top, replay_top);
    svc.stop().await;
}
