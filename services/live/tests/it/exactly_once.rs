//! Events posted through the intake end up in the lake exactly once, also when the archiver
//! dies mid-batch (after its lake commit, before its acknowledgement; and after re-reading,
//! before writing) and when Redis restarts.

use std::collections::HashSet;

use quire_live::{Archiver, ArchiverOptions, Bus, BusConfig};
use serde_json::Value;

use crate::harness::*;

fn batch(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            page_view(
                &format!("{prefix}-{i}"),
                &format!("2025-10-01T{:02}:{:02}:00Z", 8 + i % 10, i % 60),
                &format!("usr_{}", i % 7),
            )
        })
        .collect()
}

async fn archiver(redis: &Redis, lake: &quire_lake::Lake) -> Archiver {
    let bus = Bus::connect(&redis.url(), BusConfig::default())
        .await
        .unwrap();
    let opts = ArchiverOptions {
        batch_max: 4,
        block: std::time::Duration::from_millis(100),
        ..ArchiverOptions::default()
    };
    Archiver::new(bus, lake.clone(), opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_gets_every_event_once_across_archiver_crashes_and_a_redis_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(dir.path());
    let mut opts = options(&dir.path().join("lake"), &redis);
    // The test plays the archiver itself, to kill it where it wants.
    opts.run_archiver = false;
    let svc = Service::start(opts).await;
    let lake = svc.lake();

    // Ten requests of ten events: ten bus entries (a request's events share one).
    let first = batch("a", 100);
    for request in first.chunks(10) {
        let answer = svc.post_events(request).await;
        assert_eq!(answer["accepted"], 10, "{answer}");
    }

    // Crash 1: the batch is committed to the lake, the process dies before XACK.
    let mut a1 = archiver(&redis, &lake).await;
    let d = a1.next_delivery().await.unwrap();
    assert_eq!(d.len(), 4);
    let written = a1.write(&d).await.unwrap();
    assert_eq!(written.valid - written.duplicates, 40);
    drop(a1);
    // Crash 2: the restarted archiver re-reads its pending entries first, and dies before
    // writing them.
    let mut a2 = archiver(&redis, &lake).await;
    let d2 = a2.next_delivery().await.unwrap();
    assert_eq!(d2.len(), 4, "the pending entries come back first");
    drop(a2);
    assert_eq!(lake_event_ids(&lake).len(), 40);

    // Redis stops and starts again (its AOF keeps the stream and the pending entries); the
    // intake reconnects, and a second batch comes in (one event repeated from the first).
    redis.restart();
    let mut second = batch("b", 60);
    second.push(first[5].clone());
    let answer = svc.post_events(&second).await;
    assert_eq!(answer["accepted"], 60, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");

    // A restarted archiver (same consumer name) finishes everything.
    let mut a3 = archiver(&redis, &lake).await;
    let mut duplicates = 0;
    while let Some(r) = a3.step().await.unwrap() {
        duplicates += r.lake.duplicates;
    }
    assert_eq!(
        duplicates, 40,
        "the committed, unacknowledged batch came back and was dropped"
    );

    let ids = lake_event_ids(&lake);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 160, "every accepted event in the lake");
    assert_eq!(distinct.len(), 160, "and each once");
    assert_eq!(
        redis
            .cli(&["XPENDING", "quire:bus:events", "archiver"])
            .lines()
            .next(),
        Some("0")
    );
    svc.stop().await;
}
