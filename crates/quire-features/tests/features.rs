//! The feature jobs on hand-written events (labels, CF matrices, hand-computed values) and on a
//! small simulated store (no leakage; training and serving compute the same vectors).

use std::path::Path;

use polars::prelude::*;
use quire_features::spec::{Request, assemble};
use quire_features::{FEATURE_NAMES, N_FEATURES, OnlineSnapshot, build_cf, build_ltr};
use quire_lake::{DimTable, Lake};

/// A lake frame of JSON event lines (parsed and converted exactly as ingest does).
fn frame(lines: &[String]) -> LazyFrame {
    let events: Vec<_> = lines
        .iter()
        .map(|l| quire_events::parse_line(l).unwrap_or_else(|e| panic!("{l}: {e:?}")))
        .collect();
    let refs: Vec<_> = events.iter().collect();
    quire_lake::events_frame(&refs, chrono::Utc::now())
        .unwrap()
        .lazy()
}

fn ev(id: &str, ty: &str, ts: &str, user: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"{ty}","event_timestamp":"2025-10-01T{ts}Z","user_id":"{user}","device":"mobile"{extra}}}"#
    )
}

fn books() -> LazyFrame {
    df!(
        "book_id" => ["bk_1", "bk_2", "bk_3", "bk_4"],
        "title" => ["Dragon Fire", "Quiet Seas", "Dragon Ash", "Old Rome"],
        "author" => ["Ann Lee", "Bo Kim", "Ann Lee", "Cy Ray"],
        "genre" => ["Fantasy", "Romance", "Fantasy", "History"],
        "series" => [Some("Dragons"), None, Some("Dragons"), None],
        "series_index" => [Some(1i64), None, Some(2), None],
        "price" => [10.0, 12.0, 11.0, 20.0],
        "unit_cost" => [5.0, 6.0, 5.0, 9.0],
        "publication_year" => [2001i64, 2010, 2003, 1999],
        "average_rating" => [4.0, 3.5, 4.2, 3.9],
        "ratings_count" => [100i64, 10, 50, 5],
    )
    .unwrap()
    .lazy()
}

fn col_f32(df: &DataFrame, name: &str) -> Vec<f32> {
    df.column(name)
        .unwrap()
        .f32()
        .unwrap()
        .iter()
        .map(|x| x.unwrap())
        .collect()
}

fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|x| x.unwrap().to_string())
        .collect()
}

fn search(
    id: &str,
    ts: &str,
    user: &str,
    sid: &str,
    query: &str,
    results: &[(&str, f64)],
) -> String {
    let ids: Vec<String> = results.iter().map(|(b, _)| format!("\"{b}\"")).collect();
    let scores: Vec<String> = results.iter().map(|(_, s)| s.to_string()).collect();
    ev(
        id,
        "search_performed",
        ts,
        user,
        &format!(
            r#","search_id":"{sid}","query":"{query}","results_count":{},"ranker":"bm25","results":[{}],"result_scores":[{}]"#,
            results.len(),
            ids.join(","),
            scores.join(",")
        ),
    )
}

fn order(id: &str, ts: &str, user: &str, oid: &str, items: &[(&str, i64, f64)]) -> String {
    let total: f64 = items.iter().map(|(_, q, p)| *q as f64 * p).sum();
    let it: Vec<String> = items
        .iter()
        .map(|(b, q, p)| format!(r#"{{"book_id":"{b}","quantity":{q},"unit_price":{p}}}"#))
        .collect();
    ev(
        id,
        "order_placed",
        ts,
        user,
        &format!(
            r#","order_id":"{oid}","items":[{}],"total_price":{total}"#,
            it.join(",")
        ),
    )
}

/// One session of usr_1 around a search, and an earlier day of history.
fn session_events() -> Vec<String> {
    vec![
        // Earlier history (same day, a separate session): a view of bk_1, an order of bk_1.
        ev("e1", "product_view", "01:00:00", "usr_1", r#","book_id":"bk_1","via":"browse""#),
        order("e2", "01:05:00", "usr_1", "o1", &[("bk_1", 1, 10.0)]),
        // The session of the search.
        ev("e3", "add_to_cart", "08:00:00", "usr_1", r#","book_id":"bk_4","quantity":1,"unit_price":20.0"#),
        search("e4", "08:01:00", "usr_1", "s1", "dragon ann", &[("bk_1", 9.0), ("bk_2", 5.0), ("bk_3", 7.0), ("bk_4", 1.0)]),
        ev("e5", "search_result_clicked", "08:02:00", "usr_1", r#","search_id":"s1","book_id":"bk_1","position":1"#),
        ev("e6", "search_result_clicked", "08:02:30", "usr_1", r#","search_id":"s1","book_id":"bk_3","position":2"#),
        ev("e7", "add_to_cart", "08:03:00", "usr_1", r#","book_id":"bk_2","quantity":1,"unit_price":12.0"#),
        ev("e8", "add_to_cart", "08:04:00", "usr_1", r#","book_id":"bk_3","quantity":2,"unit_price":11.0"#),
        order("e9", "08:05:00", "usr_1", "o2", &[("bk_3", 2, 11.0)]),
        // The same order again (a retry with a new event id) counts once.
        order("e10", "08:05:01", "usr_1", "o2", &[("bk_3", 2, 11.0)]),
        // Another user's session: a product view of bk_3 before the search, one after it.
        ev("e11", "product_view", "07:59:00", "usr_2", r#","book_id":"bk_3","via":"direct""#),
        ev("e12", "product_view", "08:01:00", "usr_2", r#","book_id":"bk_3","via":"direct""#),
        // A test event is ignored.
        r#"{"event_id":"t1","event_type":"product_view","event_timestamp":"2025-10-01T07:00:00Z","user_id":"usr_9","device":"desktop","is_test":true,"book_id":"bk_3","via":"direct"}"#.to_string(),
    ]
}

fn feature(df: &DataFrame, name: &str) -> Vec<f32> {
    col_f32(df, name)
}

#[test]
fn labels_are_graded_from_the_session_after_the_search() {
    let out = build_ltr(frame(&session_events()), Some(books())).unwrap();
    let df = &out.rows;
    assert_eq!(out.searches, 1);
    assert_eq!(strs(df, "book_id"), ["bk_1", "bk_2", "bk_3", "bk_4"]);
    let labels: Vec<i32> = df
        .column("label")
        .unwrap()
        .i32()
        .unwrap()
        .iter()
        .map(|x| x.unwrap())
        .collect();
    // bk_1 clicked; bk_2 carted; bk_3 clicked, carted and bought; bk_4 carted only *before*.
    assert_eq!(labels, [1, 2, 3, 0]);
}

#[test]
fn hand_computed_features_see_only_the_past() {
    let out = build_ltr(frame(&session_events()), Some(books())).unwrap();
    let df = &out.rows;
    assert_eq!(feature(df, "bm25"), [9.0, 5.0, 7.0, 1.0]);
    assert_eq!(feature(df, "bm25_rank"), [1.0, 3.0, 2.0, 4.0]);
    assert_eq!(feature(df, "title_overlap"), [0.5, 0.0, 0.5, 0.0]); // "dragon"
    assert_eq!(feature(df, "author_overlap"), [0.5, 0.0, 0.5, 0.0]); // "ann"
    assert_eq!(feature(df, "device_code"), [1.0; 4]);
    // bk_3 was viewed once before the search (07:59) and once at its instant (not counted);
    // the test event is ignored.
    assert_eq!(feature(df, "views_7d"), [1.0, 0.0, 1.0, 0.0]);
    // bk_1 was bought (1 unit) before; bk_3's purchase comes after the search.
    assert_eq!(feature(df, "purchases_total"), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(feature(df, "user_orders"), [1.0; 4]);
    assert_eq!(feature(df, "user_spend"), [10.0; 4]);
    assert_eq!(feature(df, "already_bought"), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(feature(df, "author_prior_units"), [1.0, 0.0, 1.0, 0.0]);
    // bk_3 is Dragons #2 and the user owns #1.
    assert_eq!(feature(df, "series_next"), [0.0, 0.0, 1.0, 0.0]);
    // Fantasy: 1 view + 3 × 1 unit = 4 of 4.
    assert_eq!(feature(df, "genre_affinity"), [1.0, 0.0, 1.0, 0.0]);
    assert_eq!(feature(df, "search_ctr"), [0.0; 4]);

    // The snapshot at the end sees everything: the retried order once.
    let (_, act) = &out.tables.books["bk_3"];
    assert_eq!(
        (
            act.views_7d,
            act.purchases_total,
            act.search_clicks,
            act.search_impressions
        ),
        (2, 2, 1, 1)
    );
    let u = &out.tables.users["usr_1"];
    assert_eq!((u.orders, u.spend), (2, 32.0));
    assert!(!out.tables.users.contains_key("usr_9"));
}

#[test]
fn cf_matrices_weights_split_and_cooccurrence() {
    let mut evs = session_events();
    // A later day: usr_2 buys bk_1 and bk_3 together (test period when test_days = 1).
    evs.push(
        order(
            "e20",
            "23:00:00",
            "usr_2",
            "o3",
            &[("bk_1", 1, 10.0), ("bk_3", 1, 11.0)],
        )
        .replace("2025-10-01", "2025-10-03"),
    );
    let cf = build_cf(frame(&evs), Default::default(), 1).unwrap();
    assert_eq!(cf.users, ["usr_1", "usr_2"]);
    assert_eq!(cf.books, ["bk_1", "bk_2", "bk_3", "bk_4"]);
    // usr_1: bk_1 view 1 + 1 unit × 10; bk_2 cart 4; bk_3 cart 4 + 2 units × 10; bk_4 cart 4.
    // usr_2: bk_3 two views.
    assert_eq!(
        cf.train,
        [
            (0, 0, 11.0),
            (0, 1, 4.0),
            (0, 2, 24.0),
            (0, 3, 4.0),
            (1, 2, 2.0)
        ]
    );
    assert_eq!(cf.test, [(1, 0, 1.0), (1, 2, 1.0)]);
    // All days: usr_2 also bought bk_1 and bk_3 (one unit each).
    assert_eq!(
        cf.full,
        [
            (0, 0, 11.0),
            (0, 1, 4.0),
            (0, 2, 24.0),
            (0, 3, 4.0),
            (1, 0, 10.0),
            (1, 2, 12.0)
        ]
    );
    assert_eq!(cf.bought, [(0, 0), (0, 2), (1, 0), (1, 2)]);
    assert_eq!(cf.cooccurrence, [(0, 2, 1)]);
    assert_eq!(cf.book_orders, [2, 0, 2, 0]);
    assert_eq!(cf.orders, 3);

    // A weight of 0 leaves its interaction type out: no views, so usr_2's row is empty.
    let no_views = quire_features::CfWeights {
        view: 0.0,
        ..Default::default()
    };
    let cf0 = build_cf(frame(&evs), no_views, 1).unwrap();
    assert_eq!(
        cf0.train,
        [(0, 0, 10.0), (0, 1, 4.0), (0, 2, 24.0), (0, 3, 4.0)]
    );
    assert_eq!(cf0.test, cf.test);

    // The test period ends one ms after the last event of any type: a page view a day and
    // an hour after the last order moves that order into training.
    evs.push(
        ev("e21", "page_view", "00:00:00", "usr_9", r#","page":"home""#)
            .replace("2025-10-01", "2025-10-05"),
    );
    let later = build_cf(frame(&evs), Default::default(), 1).unwrap();
    assert_eq!(later.as_of_ms, 1_759_622_400_001);
    assert_eq!(later.split_at_ms, later.as_of_ms - 86_400_000);
    assert!(later.test.is_empty(), "{:?}", later.test);
}

/// A small simulated store, ingested into a lake with its books dimension.
fn simulated_lake(dir: &Path) -> Lake {
    let cfg = quire_sim::SimConfig {
        days: 3,
        users: 150,
        ..Default::default()
    };
    let sim = quire_sim::simulate(&cfg, &dir.join("sim"), &|_| {}).unwrap();
    let lake = Lake::open(dir.join("lake")).unwrap();
    lake.ingest_file(&sim.events_path, &Default::default(), &|_| {})
        .unwrap();
    lake.load_dim(DimTable::Books, &dir.join("sim/books.csv"))
        .unwrap();
    lake
}

fn row_features(df: &DataFrame, search_id: &str) -> Vec<Vec<f32>> {
    let sub = df
        .clone()
        .lazy()
        .filter(col("search_id").eq(lit(search_id)))
        .collect()
        .unwrap();
    (0..sub.height())
        .map(|r| FEATURE_NAMES.iter().map(|n| col_f32(&sub, n)[r]).collect())
        .collect()
}

fn same(a: &[Vec<f32>], b: &[Vec<f32>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.iter()
                .zip(y)
                .all(|(p, q)| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()))
        })
}

/// No leakage: every feature of a search is unchanged when everything at or after the search's
/// instant is removed from the lake (apart from the search itself).
#[test]
fn no_leakage_features_equal_those_from_the_past_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = simulated_lake(dir.path());
    let raw = lake.scan_events().unwrap();
    let books = lake.scan_dim(DimTable::Books).unwrap();
    let full = build_ltr(raw.clone(), books.clone()).unwrap();
    assert!(full.searches > 50, "{} searches", full.searches);

    let searches = full
        .rows
        .clone()
        .lazy()
        .group_by_stable([col("search_id")])
        .agg([col("search_ts").first(), col("label").max()])
        .collect()
        .unwrap();
    let ids = strs(&searches, "search_id");
    let ts = searches
        .column("search_ts")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    let ts: Vec<i64> = ts.i64().unwrap().iter().map(|x| x.unwrap()).collect();
    let mut checked = 0;
    // Searches spread over the period, late ones included (the most history to leak from).
    for k in (0..ids.len())
        .step_by((ids.len() / 12).max(1))
        .chain([ids.len() - 1])
    {
        let cut = raw.clone().filter(
            col("event_timestamp")
                .cast(DataType::Int64)
                .lt(lit(ts[k]))
                .or(col("search_id")
                    .eq(lit(ids[k].clone()))
                    .and(col("event_type").eq(lit("search_performed")))),
        );
        let past = build_ltr(cut, books.clone()).unwrap();
        let a = row_features(&full.rows, &ids[k]);
        let b = row_features(&past.rows, &ids[k]);
        assert!(!a.is_empty());
        assert!(same(&a, &b), "search {} leaks: {a:?} vs {b:?}", ids[k]);
        checked += 1;
    }
    assert!(checked >= 10);
}

/// Training and serving compute the same vectors: a search replayed by the feature job gets
/// exactly the features the ranking path computes from the snapshot taken just before it.
#[test]
fn serving_from_the_snapshot_equals_training() {
    let dir = tempfile::tempdir().unwrap();
    let lake = simulated_lake(dir.path());
    let raw = lake.scan_events().unwrap();
    let books = lake.scan_dim(DimTable::Books).unwrap();
    let before = build_ltr(raw.clone(), books.clone()).unwrap();
    let snap =
        OnlineSnapshot::new(before.spec.clone(), before.tables.clone(), before.as_of_ms).unwrap();
    let path = dir.path().join("snapshot.json");
    snap.write(&path).unwrap();
    let snap = OnlineSnapshot::read(&path).unwrap();

    // The most active user searches right at the snapshot's instant.
    let user = snap
        .tables
        .users
        .iter()
        .max_by_key(|(id, u)| (u.orders, u.product_views, std::cmp::Reverse(id.to_string())))
        .map(|(id, _)| id.clone())
        .unwrap();
    let candidates: Vec<(String, f64)> = snap
        .tables
        .books
        .iter()
        .filter(|(_, (_, a))| a.views_30d > 0)
        .take(8)
        .enumerate()
        .map(|(i, (id, _))| (id.clone(), 10.0 - i as f64))
        .chain([("bk_unknown".to_string(), 0.5)])
        .collect();
    let when = chrono::DateTime::from_timestamp_millis(snap.as_of_ms).unwrap();
    let line = format!(
        r#"{{"event_id":"late-search","event_type":"search_performed","event_timestamp":"{}","user_id":"{user}","device":"tablet","search_id":"s-late","query":"the dragon history","results_count":{},"ranker":"bm25","results":[{}],"result_scores":[{}]}}"#,
        when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        candidates.len(),
        candidates
            .iter()
            .map(|(b, _)| format!("\"{b}\""))
            .collect::<Vec<_>>()
            .join(","),
        candidates
            .iter()
            .map(|(_, s)| s.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    let with_search = concat([raw, frame(&[line])], UnionArgs::default()).unwrap();
    let trained = build_ltr(with_search, books).unwrap();
    let offline = row_features(&trained.rows, "s-late");

    let req = Request::new(
        "the dragon history",
        Some("tablet"),
        candidates.iter().map(|(_, s)| *s as f32).collect(),
    );
    let online: Vec<Vec<f32>> = candidates
        .iter()
        .enumerate()
        .map(|(i, (b, _))| {
            let book = snap.tables.books.get(b);
            let v: [f32; N_FEATURES] = assemble(
                &snap.spec,
                &req,
                i,
                b,
                book.map(|(info, _)| info),
                book.map(|(_, act)| act),
                snap.tables.users.get(&user),
            );
            v.to_vec()
        })
        .collect();
    assert!(
        same(&offline, &online),
        "offline {offline:?}\nonline {online:?}"
    );
    // The check is not vacuous: the user has history and the books have activity.
    let idx = |n: &str| FEATURE_NAMES.iter().position(|f| *f == n).unwrap();
    assert!(online.iter().any(|v| v[idx("user_views")] > 0.0));
    assert!(online.iter().any(|v| v[idx("views_30d")] > 0.0));
}
