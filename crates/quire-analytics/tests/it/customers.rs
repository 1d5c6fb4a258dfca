//! The customer table's purchase summary, by hand: a purchase is a distinct order day.

use quire_analytics::customers::customers;
use quire_analytics::{Dataset, DateRange};
use quire_lake::Lake;

fn order(id: &str, at: &str, total: f64) -> String {
    format!(
        r#"{{"event_id":"{id}","event_type":"order_placed","event_timestamp":"{at}","user_id":"u1","device":"mobile","order_id":"o-{id}","items":[{{"book_id":"bk_1","quantity":1,"unit_price":{total}}}],"total_price":{total}}}"#
    )
}

/// Two orders on one later day are one repeat purchase of their sum (the Gamma-Gamma model's
/// spend per transaction, whose transactions `rfm.x` counts), not two of their mean.
#[test]
fn a_repeat_purchase_is_an_order_day() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines = [
        order("a", "2025-10-01T10:00:00Z", 10.0),
        order("b", "2025-10-03T09:00:00Z", 20.0),
        order("c", "2025-10-03T18:00:00Z", 40.0),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let lake = Lake::open(dir.path().join("lake")).unwrap();
    lake.ingest_file(&file, &Default::default(), &|_| {})
        .unwrap();
    let ds = Dataset::new(lake.scan_events().unwrap(), None, DateRange::default()).unwrap();
    let c = customers(&ds).unwrap();
    assert_eq!(c.rows.len(), 1);
    let u = &c.rows[0];
    assert_eq!((u.orders, u.spend), (3, 70.0));
    assert_eq!((u.rfm.x, u.rfm.t_x), (1.0, 2.0));
    assert_eq!(u.repeat_mean, 60.0);
}
