//! The contract (ranking-api.md): the answer's shape, every status code and error shape, the
//! request id, `top_k`, health, readiness and metrics.

use std::io::{Read, Write};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::harness::{Fixture, Req, Variant, metric, score, world};

fn request() -> Req {
    Req {
        request_id: Some("req-1".to_owned()),
        query: "dragon star".to_owned(),
        user_id: Some("usr_1".to_owned()),
        device: Some("mobile".to_owned()),
        candidates: vec![
            ("bk_1".to_owned(), 12.7),
            ("bk_3".to_owned(), 9.1),
            ("ev_0".to_owned(), 3.0),
            ("unknown_9".to_owned(), 7.5),
            ("bk_20".to_owned(), 1.0),
        ],
        top_k: None,
    }
}

/// The `{"error": {"code", "message"}}` shape, with `code`.
fn assert_error(body: &Value, code: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(obj.len(), 1, "{body}");
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(error.len(), 2, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn rank_answers_the_contract_shape_sorted_by_score() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    let req = request();
    let a = svc.post_json("/v1/rank", &req.json()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/json");
    assert_eq!(a.headers["x-request-id"], "req-1");
    let body = a.body;
    assert_eq!(body["request_id"], "req-1");
    assert_eq!(body["model"], json!({"name": "ltr", "version": 1}));
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    let ranked = body["ranked"].as_array().unwrap();
    assert_eq!(ranked.len(), req.candidates.len());
    let mut ids: Vec<&str> = ranked
        .iter()
        .map(|r| r["book_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = req.candidates.iter().map(|(b, _)| b.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let scores: Vec<f32> = ranked.iter().map(|r| score(&r["score"])).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for r in ranked {
        assert_eq!(r.as_object().unwrap().len(), 2, "{r}");
    }
}

#[tokio::test]
async fn top_k_keeps_the_best_k_and_request_ids_are_echoed_or_made() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    let full = svc.rank(&request()).await;
    let mut req = request();
    req.top_k = Some(2);
    let top2 = svc.rank(&req).await;
    assert_eq!(
        top2["ranked"].as_array().unwrap()[..],
        full["ranked"].as_array().unwrap()[..2]
    );
    req.top_k = Some(50);
    assert_eq!(svc.rank(&req).await["ranked"], full["ranked"]);
    // `top_k` is optional, default all; 0 is a well-formed value: the best 0, none.
    req.top_k = Some(0);
    assert_eq!(svc.rank(&req).await["ranked"], serde_json::json!([]));

    // No id in the body: the header's, else a fresh one per request.
    req.request_id = None;
    let a = svc
        .client
        .post(svc.url("/v1/rank"))
        .header("x-request-id", "from-header")
        .body(req.json().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(a.headers()["x-request-id"], "from-header");
    let body: Value = serde_json::from_str(&a.text().await.unwrap()).unwrap();
    assert_eq!(body["request_id"], "from-header");
    let first = svc.rank(&req).await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = svc.rank(&req).await["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(first.len() >= 16 && first != second, "{first} {second}");

    // An id that is not visible ASCII, or too long for a header line, is echoed in the body
    // only: every answer stays readable by HTTP clients.
    for id in ["livre-\u{e9}t\u{e9}".to_owned(), "x".repeat(200_000)] {
        req.request_id = Some(id.clone());
        let a = svc.post_json("/v1/rank", &req.json()).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["request_id"], id.as_str());
        assert!(!a.headers.contains_key("x-request-id"), "{:?}", a.headers);
    }
    // A UTF-8 header id is taken as the body's would be.
    req.request_id = None;
    let a = svc
        .client
        .post(svc.url("/v1/rank"))
        .header("x-request-id", "r\u{e9}q".as_bytes())
        .body(req.json().to_string())
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&a.text().await.unwrap()).unwrap();
    assert_eq!(body["request_id"], "r\u{e9}q");
}

#[tokio::test]
async fn every_bad_request_gets_its_status_and_error_shape() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx
        .start_with(|o| {
            o.max_body_bytes = 64 * 1024;
            o.max_candidates = 10;
        })
        .await;
    svc.wait_for_version(v1.version).await;

    let cand = |n: usize| {
        (0..n)
            .map(|i| json!({"book_id": format!("bk_{i}"), "bm25": 1.0}))
            .collect::<Vec<_>>()
    };
    let cases: Vec<(String, u16, &str)> = vec![
        ("{\"query\": \"x\", ".to_owned(), 400, "malformed_json"),
        ("not json".to_owned(), 400, "malformed_json"),
        (String::new(), 400, "malformed_json"),
        ("[1, 2, 3]".to_owned(), 400, "invalid_request"),
        (
            json!({"candidates": cand(1)}).to_string(),
            400,
            "invalid_request",
        ),
        (json!({"query": "q"}).to_string(), 400, "invalid_request"),
        (
            json!({"query": "q", "candidates": "bk_1"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "q", "candidates": [{"book_id": "bk_1", "bm25": "high"}]}).to_string(),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "q", "candidates": [{"bm25": 1.0}]}).to_string(),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "q", "user_id": 42, "candidates": cand(1)}).to_string(),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "q", "candidates": []}).to_string(),
            400,
            "no_candidates",
        ),
        (
            json!({"query": "q", "candidates": cand(11)}).to_string(),
            400,
            "too_many_candidates",
        ),
        (
            r#"{"query": "q", "candidates": [{"book_id": "bk_1", "bm25": 1e999}]}"#.to_owned(),
            400,
            "non_finite_number",
        ),
        (
            json!({"query": "q", "candidates": cand(1), "top_k": -3}).to_string(),
            400,
            "invalid_request",
        ),
        (
            json!({"query": "x".repeat(70 * 1024), "candidates": cand(1)}).to_string(),
            413,
            "payload_too_large",
        ),
    ];
    for (body, status, code) in &cases {
        let a = svc.post("/v1/rank", body.clone()).await;
        assert_eq!(a.status, *status, "{body:.200}: {}", a.body);
        assert_eq!(a.headers["content-type"], "application/json");
        assert!(a.headers.contains_key("x-request-id"));
        assert_error(&a.body, code);
    }
    // The body's request id is echoed in the header of a refusal after parsing.
    let a = svc
        .post_json(
            "/v1/rank",
            &json!({"request_id": "bad-1", "query": "q", "candidates": []}),
        )
        .await;
    assert_eq!(a.headers["x-request-id"], "bad-1");

    // Wrong paths and methods are JSON errors too.
    let a = svc.get("/v1/rank").await;
    assert_eq!(a.status, 405);
    assert_error(&a.body, "method_not_allowed");
    let a = svc.get("/v1/nothing").await;
    assert_eq!(a.status, 404);
    assert_error(&a.body, "not_found");

    // The service still answers well after all that.
    svc.rank(&request()).await;
    let text = svc.metrics().await;
    for (code, n) in [
        ("malformed_json", 3.0),
        ("invalid_request", 8.0),
        ("no_candidates", 2.0),
        ("too_many_candidates", 1.0),
        ("non_finite_number", 1.0),
        ("payload_too_large", 1.0),
    ] {
        let series = format!("quire_ranking_errors_total{{endpoint=\"rank\",code=\"{code}\"}}");
        assert_eq!(metric(&text, &series), Some(n), "{series}\n{text}");
    }
}

/// A chunked body (no Content-Length) over the limit is cut off with 413 as well.
#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start_with(|o| o.max_body_bytes = 4096).await;
    svc.wait_for_version(v1.version).await;
    let addr = svc.addr;
    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST /v1/rank HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        .unwrap();
        let chunk = "a".repeat(1000);
        for _ in 0..8 {
            // The server may answer and close before every chunk is sent.
            if write!(s, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
                break;
            }
        }
        let _ = write!(s, "0\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains(r#""code":"payload_too_large""#),
        "{response}"
    );
}

#[tokio::test]
async fn not_ready_until_the_alias_points_at_a_version() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    let svc = fx.start().await;
    // Give the follower a few polls.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let a = svc.get("/health/live").await;
    assert_eq!(
        (a.status.as_u16(), &a.body),
        (200, &json!({"status": "live"}))
    );
    let a = svc.get("/health/ready").await;
    assert_eq!(a.status, 503);
    assert_error(&a.body, "model_not_loaded");
    let a = svc.post_json("/v1/rank", &request().json()).await;
    assert_eq!(a.status, 503);
    assert_error(&a.body, "model_not_loaded");
    // Even a bad request: nothing can be served yet.
    let a = svc.post("/v1/rank", "{").await;
    assert_eq!(a.status, 503);
    // The protocol's readiness is a 4xx when false.
    let a = svc.get("/v2/health/ready").await;
    assert_eq!(
        (a.status.as_u16(), &a.body),
        (400, &json!({"ready": false}))
    );
    let a = svc.get("/v2/models/ltr/ready").await;
    assert_eq!(
        (a.status.as_u16(), &a.body),
        (400, &json!({"name": "ltr", "ready": false}))
    );
    let a = svc.get("/v2/models/ltr").await;
    assert_eq!(a.status, 503);
    assert!(a.body["error"].is_string(), "{}", a.body);
    let text = svc.metrics().await;
    assert_eq!(metric(&text, "quire_ranking_ready"), Some(0.0));
    assert_eq!(metric(&text, "quire_ranking_model_version"), Some(0.0));

    fx.promote(v1.version).await;
    svc.wait_for_version(v1.version).await;
    let a = svc.get("/health/ready").await;
    assert_eq!(
        a.body,
        json!({"status": "ready", "model": {"name": "ltr", "version": 1}})
    );
    svc.rank(&request()).await;
    assert_eq!(svc.get("/v2/health/ready").await.status, 200);
}

#[tokio::test]
async fn metrics_count_requests_candidates_and_the_served_version() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut total = 0;
    for _ in 0..7 {
        let req = world().random_request(&mut rng, 30);
        total += req.candidates.len();
        svc.rank(&req).await;
    }
    for _ in 0..2 {
        assert_eq!(svc.post("/v1/rank", "{").await.status, 400);
    }
    let text = svc.metrics().await;
    let m = |series: &str| metric(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        m(r#"quire_ranking_requests_total{endpoint="rank",status="200"}"#),
        7.0
    );
    assert_eq!(
        m(r#"quire_ranking_requests_total{endpoint="rank",status="400"}"#),
        2.0
    );
    assert_eq!(
        m(r#"quire_ranking_errors_total{endpoint="rank",code="malformed_json"}"#),
        2.0
    );
    assert_eq!(
        m(r#"quire_ranking_request_duration_seconds_count{endpoint="rank"}"#),
        9.0
    );
    assert_eq!(m(r#"quire_ranking_candidates_count{endpoint="rank"}"#), 7.0);
    assert_eq!(
        m(r#"quire_ranking_candidates_sum{endpoint="rank"}"#),
        total as f64
    );
    assert_eq!(m("quire_ranking_scoring_duration_seconds_count"), 7.0);
    // Every request that reached a scoring thread, the malformed ones too (parsed there).
    assert_eq!(m("quire_ranking_queue_duration_seconds_count"), 9.0);
    assert_eq!(m("quire_ranking_model_version"), 1.0);
    assert_eq!(m("quire_ranking_ready"), 1.0);
    assert_eq!(m("quire_ranking_model_swaps_total"), 0.0);
    let info = format!(
        r#"quire_ranking_model_info{{name="ltr",version="1",run_id="{}"}}"#,
        v1.run_id
    );
    assert_eq!(m(&info), 1.0);
    // The latency histogram's buckets are cumulative and end with every request.
    assert_eq!(
        m(r#"quire_ranking_request_duration_seconds_bucket{le="+Inf",endpoint="rank"}"#),
        9.0
    );
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let mut svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    // A request whose body is half sent when the shutdown starts.
    let body = request().json().to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let mut stream = tokio::net::TcpStream::connect(svc.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let headers = format!(
        "POST /v1/rank HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(headers.as_bytes()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    svc.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stream.write_all(tail.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut out))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(stream);
    let addr = svc.addr;
    tokio::time::timeout(Duration::from_secs(10), svc.join())
        .await
        .expect("the service stops")
        .expect("a clean stop");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
