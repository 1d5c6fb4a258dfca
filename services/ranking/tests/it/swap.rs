//! Following the alias: a newly promoted version is served after loading, with no failed request
//! while clients keep the service busy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_featspec::N_FEATURES;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::harness::{Fixture, Variant, local_scorer, metric, score, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_under_concurrent_load_fails_no_request() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    // Version 2 takes a while to load (a snapshot of 40,000 more users): the clients are
    // busy the whole time it loads and warms.
    let v2 = fx.register_large(Variant::B, 40_000).await;
    fx.promote(v1.version).await;
    let svc = Arc::new(fx.start().await);
    svc.wait_for_version(v1.version).await;

    // 8 clients send requests back to back until each has had 20 answers from version 2 (or
    // 60 s pass); every answer and its version are kept in order.
    let mut clients = Vec::new();
    for c in 0..8u64 {
        let svc = svc.clone();
        clients.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + c);
            let mut seen = Vec::new();
            let mut failures = Vec::new();
            let mut on_v2 = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while on_v2 < 20 && Instant::now() < deadline {
                let req = world().random_request(&mut rng, 100);
                let a = svc.post_json("/v1/rank", &req.json()).await;
                if a.status != 200 {
                    failures.push(format!("{} {}", a.status, a.body));
                    continue;
                }
                let version = a.body["model"]["version"].as_i64().unwrap();
                on_v2 += usize::from(version == 2);
                seen.push((req, version, a.body));
            }
            (seen, failures)
        }));
    }
    // Let the clients run on version 1 for a while, then promote version 2.
    tokio::time::sleep(Duration::from_millis(300)).await;
    fx.promote(v2.version).await;

    let mut results = Vec::new();
    for c in clients {
        results.push(c.await.unwrap());
    }

    let scorers = [local_scorer(&v1.onnx), local_scorer(&v2.onnx)];
    let mut total = 0;
    for (c, (seen, failures)) in results.iter().enumerate() {
        assert!(failures.is_empty(), "client {c}: {failures:?}");
        let versions: Vec<i64> = seen.iter().map(|(_, v, _)| *v).collect();
        assert!(
            versions.contains(&1) && versions.contains(&2),
            "client {c}: {versions:?}"
        );
        // Each client's requests are sequential: once it was answered by version 2, never by 1.
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "client {c}: {versions:?}"
        );
        // Every answer is that version's model's, exactly.
        for (req, version, body) in seen {
            let rows = world().training_features(req);
            let expected = scorers[(*version - 1) as usize]
                .score(&rows, req.candidates.len(), N_FEATURES)
                .unwrap();
            for r in body["ranked"].as_array().unwrap() {
                let i = req
                    .candidates
                    .iter()
                    .position(|(b, _)| r["book_id"] == b.as_str())
                    .unwrap();
                assert_eq!(score(&r["score"]), expected[i], "client {c} v{version}");
            }
        }
        total += seen.len();
    }
    assert!(total >= 160, "{total} answers");
    let text = svc.metrics().await;
    assert_eq!(metric(&text, "quire_ranking_model_swaps_total"), Some(1.0));
    assert_eq!(metric(&text, "quire_ranking_model_version"), Some(2.0));
    assert!(
        !text.contains("quire_ranking_model_load_failures_total{"),
        "{text}"
    );
    // The old version's info series is gone, the new one's is there.
    assert!(!text.contains(&v1.run_id), "{text}");
    assert!(text.contains(&v2.run_id), "{text}");
    // Errors counted: none.
    assert!(!text.contains("quire_ranking_errors_total{"), "{text}");
}

#[tokio::test]
async fn the_alias_moving_back_is_followed_too() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    let v2 = fx.register(Variant::B).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;
    fx.promote(v2.version).await;
    svc.wait_for_version(v2.version).await;
    // A rollback is a move like any other.
    fx.promote(v1.version).await;
    svc.wait_for_version(v1.version).await;
    let text = svc.metrics().await;
    assert_eq!(metric(&text, "quire_ranking_model_swaps_total"), Some(2.0));
    // Deleting the alias keeps the last version serving.
    fx.registry
        .delete_alias("ltr", "production", "test")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a = svc.get("/health/ready").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["model"]["version"], 1);
}
