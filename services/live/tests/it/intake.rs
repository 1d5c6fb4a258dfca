//! The intake's answers, the bad-rows store and the bearer token.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_answers_each_event_and_keeps_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let mut opts = options(&dir.path().join("lake"), &redis);
    opts.token = Some("s3cret".to_owned());
    opts.max_batch = 3;
    opts.max_body_bytes = 2000;
    let svc = Service::start(opts).await;

    let a = page_view("e1", "2025-10-01T07:00:00Z", "usr_1");
    let body = Value::Array(vec![
        a.clone(),
        a.clone(),
        json!({"event_id": "e2", "event_type": "order_placed", "event_timestamp": "2025-10-01T07:01:00Z",
               "user_id": "usr_1", "device": "mobile", "order_id": "o1", "total_price": 5.0,
               "items": [{"book_id": "bk_1", "quantity": 0, "unit_price": 5.0}]}),
    ])
    .to_string();

    // No token, a wrong one: refused, nothing accepted.
    let (status, err) = svc.post(&body, None).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error"]["code"], "unauthorized");
    assert_eq!(svc.post(&body, Some("nope")).await.0, 401);

    let (status, answer) = svc.post(&body, Some("s3cret")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["duplicates"], 1);
    assert_eq!(answer["rejected"], 1);
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "duplicate");
    assert_eq!(results[2]["status"], "rejected");
    assert_eq!(results[2]["event_id"], "e2");
    assert_eq!(
        results[2]["reason"],
        "order_placed.items[0].quantity: must be an integer >= 1"
    );
    let rid = answer["request_id"].as_str().unwrap().to_owned();
    // The same request again (a client's retry after an unknown outcome): the same answer for
    // the rejected event, whose bad row is stored once (checked below).
    let (status, retried) = svc.post(&body, Some("s3cret")).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(
        (&retried["duplicates"], &retried["rejected"]),
        (&2.into(), &1.into())
    );

    // The same event again, alone: a duplicate. (The scheme's name in any case.)
    let again = svc
        .client
        .post(format!("{}/v1/events", svc.base))
        .header("authorization", "bearer s3cret")
        .body(a.to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["duplicates"], 1, "{again}");
    // Another method: the error shape, 405.
    let resp = svc
        .client
        .get(format!("{}/v1/events", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let e: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(e["error"]["code"], "method_not_allowed");

    // Refusals of the whole request.
    for (body, status, code) in [
        ("{not json".to_owned(), 400, "malformed_json"),
        ("[]".to_owned(), 400, "empty_batch"),
        (
            Value::Array(vec![a.clone(); 4]).to_string(),
            400,
            "batch_too_large",
        ),
        (
            format!("[{}]", "1,".repeat(1500) + "1"),
            413,
            "payload_too_large",
        ),
    ] {
        let (s, e) = svc.post(&body, Some("s3cret")).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{e}"
        );
    }

    // The valid event reaches the lake once; the rejected one and the unreadable body reach
    // the bad-rows store with their source and reason.
    let lake = svc.lake();
    wait_for(20, "the archiver", || {
        let lake = lake.clone();
        async move {
            let bad = lake.bad_rows(None, None).ok()?;
            (lake_event_ids(&lake) == ["e1"] && bad.len() == 2).then_some(())
        }
    })
    .await;
    let bad = lake.bad_rows(None, None).unwrap();
    let e2_rows = bad
        .iter()
        .filter(|r| r.line.contains("\"event_id\":\"e2\""));
    assert_eq!(
        e2_rows.count(),
        1,
        "the retried request's bad row is stored once"
    );
    let row = bad
        .iter()
        .find(|r| r.source == format!("http:{rid}"))
        .unwrap();
    assert_eq!(row.line_number, 2);
    assert!(row.line.contains("\"event_id\":\"e2\""), "{}", row.line);
    assert!(row.reason.starts_with("order_placed.items[0].quantity"));
    let body_row = bad.iter().find(|r| r.line == "{not json").unwrap();
    assert!(
        body_row.reason.starts_with("body: not valid JSON"),
        "{}",
        body_row.reason
    );

    // The API's own refusals name the parameter.
    let (s, e) = svc
        .get("/api/v1/hourly-gmv?from=2025-10-01T07&to=yesterday")
        .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().starts_with("to: "),
        "{e}"
    );
    let (s, _) = svc.get("/api/v1/hourly-gmv?from=2025-10-01T07").await;
    assert_eq!(s, 400);
    let metrics = svc
        .client
        .get(format!("{}/metrics", svc.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "quire_live_intake_events_total{status=\"accepted\"} 1",
        // One in the first request, two in its retry, the event sent alone.
        "quire_live_intake_events_total{status=\"duplicate\"} 4",
        // The invalid event (twice: its request was retried) and the body that is not JSON.
        "quire_live_intake_events_total{status=\"rejected\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    svc.stop().await;
}
