//! A date range selects whole sessions, by the day they start (kpis.md): a session that crosses
//! midnight belongs to its first event's day, with all its events.

use chrono::NaiveDate;
use polars::prelude::*;
use quire_analytics::{Dataset, DateRange};
use quire_lake::Lake;

fn event(id: &str, kind: &str, at: &str, user: &str, extra: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"{kind}","event_timestamp":"{at}","user_id":"{user}","device":"mobile"{extra}}}"#
    )
}

fn day(s: &str) -> Option<NaiveDate> {
    Some(s.parse().unwrap())
}

/// The session ids and event types of the range's events, in order.
fn events(lake: &Lake, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Vec<(String, String)> {
    let ds = Dataset::new(lake.scan_events().unwrap(), None, DateRange { from, to }).unwrap();
    let df = ds
        .events()
        .unwrap()
        .lazy()
        .sort(["ts"], SortMultipleOptions::default())
        .collect()
        .unwrap();
    let col = |name: &str| -> Vec<String> {
        df.column(name)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(|s| s.unwrap().to_owned())
            .collect()
    };
    col("session_id")
        .into_iter()
        .zip(col("event_type"))
        .collect()
}

#[test]
fn a_session_crossing_midnight_belongs_to_the_day_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines = [
        // u1's late session: starts on Oct 1, ends on Oct 2.
        event(
            "e1",
            "page_view",
            "2025-10-01T23:50:00Z",
            "u1",
            r#","page":"home""#,
        ),
        event(
            "e2",
            "product_view",
            "2025-10-02T00:05:00Z",
            "u1",
            r#","book_id":"bk_1","via":"browse""#,
        ),
        event(
            "e3",
            "add_to_cart",
            "2025-10-02T00:10:00Z",
            "u1",
            r#","book_id":"bk_1","quantity":1,"unit_price":9.5"#,
        ),
        // u1's next session, on Oct 2.
        event(
            "e4",
            "page_view",
            "2025-10-02T12:00:00Z",
            "u1",
            r#","page":"search""#,
        ),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let lake = Lake::open(dir.path().join("lake")).unwrap();
    lake.ingest_file(&file, &Default::default(), &|_| {})
        .unwrap();
    let late = "u1#1759362600000".to_owned(); // 2025-10-01T23:50:00Z in epoch ms
    let next = "u1#1759406400000".to_owned(); // 2025-10-02T12:00:00Z

    // Oct 1 alone: the whole late session, its events after midnight included.
    let oct1 = events(&lake, day("2025-10-01"), day("2025-10-01"));
    assert_eq!(
        oct1,
        [
            (late.clone(), "page_view".to_owned()),
            (late.clone(), "product_view".to_owned()),
            (late.clone(), "add_to_cart".to_owned()),
        ]
    );
    // From Oct 2: not the late session's tail, only the session that starts that day.
    let oct2 = events(&lake, day("2025-10-02"), None);
    assert_eq!(oct2, [(next.clone(), "page_view".to_owned())]);
    assert_eq!(events(&lake, None, None).len(), 4);
}
