//! Training/serving parity on logged requests: for searches as the feature job logs them, the
//! service computes the very feature vectors the training job computed (bit for bit, NaN
//! included) and scores them exactly as the exported model does outside the service.

use quire_featspec::{FEATURE_NAMES, N_FEATURES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::harness::{Fixture, Req, Variant, local_scorer, metric, score, world};

fn feature(row: &[f32], name: &str) -> f32 {
    row[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()]
}

/// `null` (missing) as NaN.
fn values(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().map_or(f32::NAN, |x| x as f32))
        .collect()
}

/// `ranked` holds every candidate of `req` once, each with its score in `expected`.
fn assert_scored_as(ranked: &Value, req: &Req, expected: &[f32]) {
    let mut used = vec![false; req.candidates.len()];
    for r in ranked["ranked"].as_array().unwrap() {
        // Duplicated book ids: match the first unused candidate with that id and score.
        let i = (0..req.candidates.len())
            .find(|&i| {
                !used[i]
                    && r["book_id"] == req.candidates[i].0.as_str()
                    && score(&r["score"]) == expected[i]
            })
            .unwrap_or_else(|| panic!("{r} is no candidate's score: {expected:?}"));
        used[i] = true;
    }
    assert!(used.iter().all(|u| *u));
}

#[tokio::test]
async fn serving_computes_the_training_features_and_scores_of_logged_searches() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;
    let scorer = local_scorer(&v1.onnx);

    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut logged: Vec<Req> = (0..40)
        .map(|_| world().random_request(&mut rng, 60))
        .collect();
    // One search with every kind of candidate and a known buyer, checked by hand below.
    logged.push(Req {
        request_id: Some("by-hand".to_owned()),
        query: "Dragon STAR, night".to_owned(),
        user_id: Some("usr_1".to_owned()),
        device: Some("tablet".to_owned()),
        candidates: vec![
            ("bk_0".to_owned(), 4.0),
            ("ev_0".to_owned(), 8.0),
            ("nowhere".to_owned(), 8.0),
            ("bk_0".to_owned(), 2.0),
        ],
        top_k: None,
    });
    // Finite scores beyond f32, which the contract accepts: saturated as in training.
    logged.push(Req {
        request_id: Some("huge".to_owned()),
        query: "dragon".to_owned(),
        user_id: None,
        device: None,
        candidates: vec![
            ("bk_0".to_owned(), 1e39),
            ("bk_1".to_owned(), -3.5e38),
            ("bk_2".to_owned(), 3.0),
        ],
        top_k: None,
    });
    for req in &logged {
        let training = world().training_features(req);
        let a = svc.post_json("/v1/features", &req.json()).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["model"]["version"], 1);
        let names: Vec<&str> = a.body["feature_names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(names, FEATURE_NAMES);
        let served = a.body["candidates"].as_array().unwrap();
        assert_eq!(served.len(), req.candidates.len());
        for (i, (c, (book, _))) in served.iter().zip(&req.candidates).enumerate() {
            assert_eq!(c["book_id"], book.as_str());
            let got = values(&c["features"]);
            let want = &training[i * N_FEATURES..(i + 1) * N_FEATURES];
            for (f, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{:?} candidate {i} ({book}) {}: served {g}, training {w}",
                    req.query,
                    FEATURE_NAMES[f]
                );
            }
        }
        // /v1/rank scores those vectors as the model does outside the service.
        let expected = scorer
            .score(&training, req.candidates.len(), N_FEATURES)
            .unwrap();
        assert_scored_as(&svc.rank(req).await, req, &expected);
    }

    let huge = svc
        .post_json("/v1/features", &logged.last().unwrap().json())
        .await;
    let bm25: Vec<f32> = huge.body["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| feature(&values(&c["features"]), "bm25"))
        .collect();
    assert_eq!(bm25, [f32::MAX, f32::MIN, 3.0]);

    // The hand-checked search: usr_1's history, the catalog book, the book known only from
    // events (no catalog facts), the unknown book (cold start), the duplicate.
    let req = &logged[logged.len() - 2];
    let a = svc.post_json("/v1/features", &req.json()).await;
    let rows: Vec<Vec<f32>> = a.body["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| values(&c["features"]))
        .collect();
    let w = world();
    let user = &w.users["usr_1"];
    let bk0 = &w.catalog["bk_0"];
    for row in &rows {
        assert_eq!(feature(row, "device_code"), 2.0);
        assert_eq!(feature(row, "user_orders"), user.orders as f32);
        assert_eq!(feature(row, "user_views"), user.product_views as f32);
    }
    // bm25 8, 8, 4, 2: ranks 3, 1, 2, 4 (ties in input order); ratio to the max 8.
    let ranks: Vec<f32> = rows.iter().map(|r| feature(r, "bm25_rank")).collect();
    assert_eq!(ranks, [3.0, 1.0, 2.0, 4.0]);
    assert_eq!(feature(&rows[0], "bm25_ratio"), 0.5);
    let title_hits = ["dragon", "star", "night"]
        .iter()
        .filter(|t| bk0.title_tokens.iter().any(|x| x == *t))
        .count();
    assert_eq!(feature(&rows[0], "title_overlap"), title_hits as f32 / 3.0);
    match bk0.price {
        Some(p) => assert_eq!(feature(&rows[0], "price"), p as f32),
        None => assert!(feature(&rows[0], "price").is_nan()),
    }
    let act = w.activity["ev_0"];
    assert_eq!(feature(&rows[1], "views_30d"), act.views_30d as f32);
    assert!(feature(&rows[1], "price").is_nan());
    assert!(feature(&rows[1], "genre_code").is_nan());
    // No catalog facts: no genre to compare with the user's (NaN, as in training).
    assert!(feature(&rows[1], "genre_affinity").is_nan());
    assert_eq!(
        feature(&rows[1], "already_bought"),
        f32::from(u8::from(user.books_bought.contains("ev_0")))
    );
    for name in [
        "views_30d",
        "purchases_total",
        "title_overlap",
        "author_prior_units",
    ] {
        assert_eq!(feature(&rows[2], name), 0.0, "{name}");
    }
    for name in ["price", "average_rating", "genre_code", "genre_affinity"] {
        assert!(feature(&rows[2], name).is_nan(), "{name}");
    }
    let mut same = rows[3].clone();
    for name in ["bm25", "bm25_rank", "bm25_ratio"] {
        let i = FEATURE_NAMES.iter().position(|n| *n == name).unwrap();
        same[i] = rows[0][i];
    }
    let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&same), bits(&rows[0]));
}

#[tokio::test]
async fn a_batch_split_over_two_scoring_threads_scores_as_the_whole() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    // Every batch of two rows or more is offered to the idle thread.
    let svc = fx.start_with(|o| o.split_min_rows = 2).await;
    svc.wait_for_version(v1.version).await;
    let scorer = local_scorer(&v1.onnx);
    let helped = "quire_ranking_split_batches_total{outcome=\"helped\"}";

    // One core: a helper would only take turns with the request's thread, so nothing is split.
    let one_core = std::thread::available_parallelism().map_or(1, usize::from) < 2;
    let mut rng = ChaCha8Rng::seed_from_u64(33);
    // One request at a time, so the other thread is idle; until a helper has scored a half
    // (which needs that thread to run before the first half is done).
    for sent in 1..=300 {
        let req = world().random_request(&mut rng, 60);
        let rows = world().training_features(&req);
        let expected = scorer
            .score(&rows, req.candidates.len(), N_FEATURES)
            .unwrap();
        assert_scored_as(&svc.rank(&req).await, &req, &expected);
        let split = metric(&svc.metrics().await, helped).unwrap_or(0.0);
        if one_core {
            assert_eq!(split, 0.0);
        } else if sent >= 20 && split >= 1.0 {
            return;
        }
    }
    assert!(one_core, "no batch was split with a helper in 300 requests");
}
