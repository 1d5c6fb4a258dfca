//! Late events and returns re-emit the right closed hour, also an hour older than the live
//! window (its orders come from the lake).

use serde_json::Value;

use crate::harness::*;

fn hour<'a>(hours: &'a Value, h: &str) -> &'a Value {
    hours
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["hour"] == h)
        .unwrap_or_else(|| panic!("{h} not in {hours}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_orders_and_returns_reemit_their_hour() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    // An order three days back, already in the lake before the service starts.
    let lake_dir = dir.path().join("lake");
    let old = dir.path().join("old.jsonl");
    std::fs::write(
        &old,
        format!(
            "{}\n{}\n",
            order("old-1", "2025-09-28T09:10:00Z", "usr_9", "o-old", 40.0),
            order("old-2", "2025-09-28T09:50:00Z", "usr_8", "o-old2", 2.5)
        ),
    )
    .unwrap();
    quire_lake::Lake::open(&lake_dir)
        .unwrap()
        .ingest_file(&old, &quire_lake::IngestOptions::default(), &|_| {})
        .unwrap();
    let svc = Service::start(options(&lake_dir, &redis)).await;

    svc.post_events(&[
        order("a", "2025-10-01T10:05:00Z", "usr_1", "o-a", 30.0),
        page_view("p", "2025-10-01T12:30:00Z", "usr_2"),
    ])
    .await;
    let path = "/api/v1/hourly-gmv?from=2025-10-01T10&to=2025-10-01T12";
    let hours = wait_for(20, "hour 10 closed", || async {
        let (_, h) = svc.get(path).await;
        (h.as_array().is_some_and(|a| a.len() == 1) && h[0]["live"] == false).then_some(h)
    })
    .await;
    assert_eq!(hours[0]["hour"], "2025-10-01T10:00:00Z");
    assert_eq!(hours[0]["net_gmv"], 30.0);

    // A late order for closed hour 10: re-emitted with the new figure.
    svc.post_events(&[order("b", "2025-10-01T10:40:00Z", "usr_3", "o-b", 12.5)])
        .await;
    wait_for(20, "the late order's re-emission", || async {
        let (_, h) = svc.get(path).await;
        (hour(&h, "2025-10-01T10:00:00Z")["gmv"] == 42.5).then_some(())
    })
    .await;
    // A return of order a: hour 10 again, its net GMV down by the refund.
    svc.post_events(&[order_return(
        "r",
        "2025-10-01T12:35:00Z",
        "usr_1",
        "o-a",
        10.0,
    )])
    .await;
    // A return of the lake's old order: its hour (outside the live window) is re-emitted,
    // with the other order of that hour loaded from the lake.
    svc.post_events(&[order_return(
        "r-old",
        "2025-10-01T12:36:00Z",
        "usr_9",
        "o-old",
        15.0,
    )])
    .await;
    let emitted = wait_for(20, "the returns' re-emissions", || async {
        let (_, r) = svc.get("/api/v1/reemitted").await;
        (r.as_array().is_some_and(|a| a.len() == 3)).then_some(r)
    })
    .await;
    let found: Vec<(&str, &str, &str, f64)> = emitted
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["hour"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
                r["event_id"].as_str().unwrap(),
                r["net_gmv"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("2025-09-28T09:00:00Z", "return", "r-old", 27.5),
            ("2025-10-01T10:00:00Z", "return", "r", 32.5),
            ("2025-10-01T10:00:00Z", "late_order", "b", 42.5),
        ],
        "newest first"
    );
    let (_, h) = svc.get(path).await;
    let h10 = hour(&h, "2025-10-01T10:00:00Z");
    assert_eq!(
        (h10["gmv"].as_f64(), h10["net_gmv"].as_f64()),
        (Some(42.5), Some(32.5))
    );
    let (_, old) = svc
        .get("/api/v1/hourly-gmv?from=2025-09-28T09&to=2025-09-28T09")
        .await;
    assert_eq!(old[0]["gmv"], 42.5);
    assert_eq!(old[0]["net_gmv"], 27.5);
    assert_eq!(old[0]["live"], false);
    let (_, status) = svc.get("/api/v1/status").await;
    assert_eq!(status["current_hour"], "2025-10-01T12:00:00Z");
    assert_eq!(status["watermark"], "2025-10-01T12:26:00Z");

    // An order placed in hour 11, then placed again earlier, in hour 10: it counts in hour 10
    // alone, and hour 11, left without an order, is gone from the answer (as in the replay).
    let path = "/api/v1/hourly-gmv?from=2025-10-01T10&to=2025-10-01T12";
    svc.post_events(&[order("m1", "2025-10-01T11:30:00Z", "usr_5", "o-m", 7.0)])
        .await;
    wait_for(20, "hour 11's order", || async {
        let (_, h) = svc.get(path).await;
        h.as_array()
            .is_some_and(|a| a.iter().any(|x| x["hour"] == "2025-10-01T11:00:00Z"))
            .then_some(())
    })
    .await;
    svc.post_events(&[order("m2", "2025-10-01T10:45:00Z", "usr_5", "o-m", 7.0)])
        .await;
    let hours = wait_for(20, "the order moved to hour 10", || async {
        let (_, h) = svc.get(path).await;
        (hour(&h, "2025-10-01T10:00:00Z")["gmv"] == 49.5).then_some(h)
    })
    .await;
    let listed: Vec<&str> = hours
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["hour"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["2025-10-01T10:00:00Z"]);
    svc.stop().await;
}
