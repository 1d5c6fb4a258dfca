//! The A/B analysis by hand on a tiny lake: a user's variant and exposure are their earliest
//! ever, and `--from`/`--to` select the users first exposed in the range.

use quire_analytics::causal::abtest::{self, AbParams};
use quire_analytics::{Dataset, DateRange};
use quire_lake::Lake;
use serde_json::Value;

fn view(id: &str, at: &str, user: &str, variant: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"page_view","event_timestamp":"{at}","user_id":"{user}","device":"mobile","page":"home","experiments":{{"search_ranker":"{variant}"}}}}"#
    )
}

fn order(id: &str, at: &str, user: &str, total: f64) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"order_placed","event_timestamp":"{at}","user_id":"{user}","device":"mobile","order_id":"o-{id}","items":[{{"book_id":"bk_1","quantity":1,"unit_price":{total}}}],"total_price":{total}}}"#
    )
}

fn run(lake: &Lake, from: &str, to: Option<&str>) -> Value {
    let day = |s: &str| Some(s.parse().unwrap());
    let range = DateRange {
        from: day(from),
        to: to.and_then(day),
    };
    let ds = Dataset::new(lake.scan_events().unwrap(), None, range).unwrap();
    let p = AbParams {
        experiment: "search_ranker".into(),
        control: "bm25".into(),
        planned_users: None,
        mde: 0.05,
    };
    abtest::run(&ds, &p).unwrap().to_json()
}

#[test]
fn exposure_is_the_earliest_ever_and_the_range_picks_first_exposures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines = [
        // a: exposed Oct 1 (ltr), seen again Oct 3, orders Oct 3.
        view("a1", "2025-10-01T10:00:00Z", "a", "ltr"),
        view("a2", "2025-10-03T10:00:00Z", "a", "ltr"),
        order("a3", "2025-10-03T10:05:00Z", "a", 10.0),
        // b: orders Oct 1 before any exposure, exposed Oct 3 (bm25), orders Oct 4.
        order("b1", "2025-10-01T09:00:00Z", "b", 5.0),
        view("b2", "2025-10-03T11:00:00Z", "b", "bm25"),
        order("b3", "2025-10-04T11:00:00Z", "b", 7.0),
        // c: exposed Oct 3 (ltr), seen Oct 5 with bm25: mixed, even if the range ends Oct 4.
        view("c1", "2025-10-03T12:00:00Z", "c", "ltr"),
        view("c2", "2025-10-05T12:00:00Z", "c", "bm25"),
        // d: exposed Oct 3 (bm25), no order.
        view("d1", "2025-10-03T13:00:00Z", "d", "bm25"),
        // e: exposed Oct 3 (ltr), orders Oct 3.
        view("e1", "2025-10-03T14:00:00Z", "e", "ltr"),
        order("e2", "2025-10-03T14:05:00Z", "e", 4.0),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let lake = Lake::open(dir.path().join("lake")).unwrap();
    lake.ingest_file(&file, &Default::default(), &|_| {})
        .unwrap();

    // From Oct 2: a was first exposed on Oct 1 and is not in the test, though seen in range.
    let j = run(&lake, "2025-10-02", Some("2025-10-04"));
    assert_eq!(j["mixed_users"], 1, "{j}");
    assert_eq!(j["variants"]["bm25"]["users"], 2, "{j}");
    assert_eq!(j["variants"]["bm25"]["conversions"], 1, "{j}");
    assert_eq!(j["variants"]["bm25"]["revenue_per_user"], 3.5, "{j}");
    assert_eq!(j["variants"]["ltr"]["users"], 1, "{j}");
    assert_eq!(j["variants"]["ltr"]["revenue_per_user"], 4.0, "{j}");
    // Over the whole history: a is in, with its order after its Oct 1 exposure.
    let j = run(&lake, "2025-10-01", None);
    assert_eq!(j["variants"]["ltr"]["users"], 2, "{j}");
    assert_eq!(j["variants"]["ltr"]["revenue_per_user"], 7.0, "{j}");
    assert_eq!(j["mixed_users"], 1, "{j}");
}
