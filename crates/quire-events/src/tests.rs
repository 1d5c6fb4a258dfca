use serde_json::{Value, json};

use super::*;

fn envelope(event_type: &str) -> Value {
    json!({
        "event_id": "ev_1",
        "event_type": event_type,
        "event_timestamp": "2025-10-01T07:32:45.123Z",
        "user_id": "usr_1",
        "device": "mobile",
    })
}

fn with(event_type: &str, fields: Value) -> Value {
    let mut v = envelope(event_type);
    for (k, x) in fields.as_object().expect("fields object") {
        v[k] = x.clone();
    }
    v
}

fn valid_order() -> Value {
    with(
        "order_placed",
        json!({
            "order_id": "o_1",
            "items": [
                {"book_id": "bk_1", "quantity": 1, "unit_price": 10.0},
                {"book_id": "bk_2", "quantity": 2, "unit_price": 5.5},
                {"book_id": "bk_3", "quantity": 1, "unit_price": 0},
            ],
            "total_price": 21.0,
        }),
    )
}

/// Asserts the value is rejected with exactly this reason.
#[track_caller]
fn rejects(v: Value, reason: &str) {
    match parse_value(&v) {
        Ok(e) => panic!("accepted {v}: {e:?}"),
        Err(e) => assert_eq!(e.reason(), reason, "for {v}"),
    }
}

fn remove(mut v: Value, field: &str) -> Value {
    v.as_object_mut().expect("object").remove(field);
    v
}

#[test]
fn every_event_type_parses() {
    let cases = [
        with("page_view", json!({"page": "home"})),
        with("product_view", json!({"book_id": "bk_1", "via": "search"})),
        with("review_viewed", json!({"book_id": "bk_1"})),
        with(
            "search_performed",
            json!({"search_id": "s1", "query": "dragons", "results_count": 2, "ranker": "ltr",
                   "results": ["bk_1", "bk_2"], "result_scores": [3.5, 1.25]}),
        ),
        with(
            "search_result_clicked",
            json!({"search_id": "s1", "book_id": "bk_2", "position": 2}),
        ),
        with(
            "recommendation_shown",
            json!({"module": "for_you", "book_ids": ["bk_1"]}),
        ),
        with(
            "recommendation_clicked",
            json!({"module": "bought_together", "book_id": "bk_1", "position": 1}),
        ),
        with(
            "add_to_cart",
            json!({"book_id": "bk_1", "quantity": 1, "unit_price": 9.99}),
        ),
        with(
            "remove_from_cart",
            json!({"book_id": "bk_1", "quantity": 1}),
        ),
        envelope("checkout_started"),
        valid_order(),
        with(
            "order_returned",
            json!({"order_id": "o_1", "refund_amount": 4.5}),
        ),
    ];
    assert_eq!(cases.len(), EventType::ALL.len());
    for (case, ty) in cases.iter().zip(EventType::ALL) {
        let e = parse_value(case).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(e.event_type(), *ty);
    }
}

#[test]
fn envelope_fields_and_defaults() {
    let mut v = valid_order();
    v["event_timestamp"] = json!("2025-10-01T09:32:45.123+02:00");
    v["traffic_source"] = json!("email");
    v["experiments"] = json!({"search_ranker": "ltr"});
    v["unknown_future_field"] = json!({"anything": [1, 2]});
    let e = parse_value(&v).expect("valid");
    assert_eq!(
        e.event_timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2025-10-01T07:32:45.123Z"
    );
    assert_eq!(e.traffic_source, Some(TrafficSource::Email));
    assert!(!e.is_test);
    assert_eq!(
        e.experiments_json().as_deref(),
        Some(r#"{"search_ranker":"ltr"}"#)
    );
    let Payload::OrderPlaced {
        items,
        discount,
        fees,
        promo_code,
        ..
    } = e.payload
    else {
        panic!("not an order")
    };
    assert_eq!(items.len(), 3);
    assert_eq!(items[1].quantity, 2);
    assert_eq!((discount, fees, promo_code), (0.0, 0.0, None));
}

#[test]
fn null_optional_fields_are_absent() {
    let mut v = envelope("checkout_started");
    v["traffic_source"] = Value::Null;
    v["is_test"] = Value::Null;
    let e = parse_value(&v).expect("valid");
    assert_eq!(e.traffic_source, None);
    assert!(!e.is_test);
}

#[test]
fn not_json() {
    let e = parse_line(r#"{"event_id": "ev_1", "event_type": "#).expect_err("truncated");
    assert_eq!(e.field, "line");
    assert!(
        e.rule.starts_with("not valid JSON (EOF while parsing"),
        "{e}"
    );
}

#[test]
fn not_an_object() {
    let e = parse_line("[1, 2]").expect_err("array");
    assert_eq!(e.reason(), "line: must be a JSON object");
}

#[test]
fn missing_event_type() {
    rejects(
        remove(envelope("page_view"), "event_type"),
        "event_type: is required",
    );
}

#[test]
fn unknown_event_type() {
    rejects(
        envelope("page_click"),
        "event_type: unknown event type \"page_click\" (expected one of \"page_view\", \"product_view\", \"review_viewed\", \"search_performed\", \"search_result_clicked\", \"recommendation_shown\", \"recommendation_clicked\", \"add_to_cart\", \"remove_from_cart\", \"checkout_started\", \"order_placed\", \"order_returned\")",
    );
}

#[test]
fn missing_required_field() {
    rejects(
        remove(with("page_view", json!({"page": "home"})), "event_id"),
        "page_view.event_id: is required",
    );
    rejects(
        envelope("product_view"),
        "product_view.book_id: is required",
    );
}

#[test]
fn id_too_long_or_empty() {
    let mut v = envelope("checkout_started");
    v["user_id"] = json!("u".repeat(129));
    rejects(
        v.clone(),
        "checkout_started.user_id: must be a string of 1 to 128 characters, got 129",
    );
    v["user_id"] = json!("");
    rejects(
        v,
        "checkout_started.user_id: must be a string of 1 to 128 characters, got 0",
    );
}

#[test]
fn references_have_no_length_limit_but_are_not_empty() {
    // The contract limits only `event_id` and `user_id` to 1..128 characters.
    let long = "x".repeat(300);
    let mut v = with(
        "order_returned",
        json!({"order_id": long, "refund_amount": 2.5}),
    );
    let e = crate::parse_line(&v.to_string()).expect("a 300-character order_id is valid");
    assert!(
        matches!(e.payload, Payload::OrderReturned { ref order_id, .. } if order_id.len() == 300)
    );
    v["order_id"] = json!("");
    rejects(v, "order_returned.order_id: must be a non-empty string");
    let v = with(
        "recommendation_shown",
        json!({"module": "similar", "book_ids": ["bk_1", ""]}),
    );
    rejects(
        v,
        "recommendation_shown.book_ids[1]: must be a non-empty string",
    );
    let v = with(
        "search_performed",
        json!({"search_id": "s".repeat(200), "query": "q", "results_count": 1,
               "ranker": "bm25", "results": ["b".repeat(200)]}),
    );
    assert!(crate::parse_line(&v.to_string()).is_ok());
}

#[test]
fn wrong_type() {
    let mut v = envelope("checkout_started");
    v["user_id"] = json!(42);
    rejects(v, "checkout_started.user_id: must be a string");
    let mut v = envelope("checkout_started");
    v["is_test"] = json!("yes");
    rejects(v, "checkout_started.is_test: must be true or false");
    let mut v = envelope("checkout_started");
    v["experiments"] = json!({"search_ranker": 1});
    rejects(
        v,
        "checkout_started.experiments.search_ranker: must be a string",
    );
}

#[test]
fn bad_timestamp() {
    let mut v = envelope("checkout_started");
    v["event_timestamp"] = json!("2025-10-01 07:32:45");
    let e = parse_value(&v).expect_err("no offset");
    assert!(
        e.reason().starts_with(
            "checkout_started.event_timestamp: must be an RFC 3339 timestamp with offset, got \"2025-10-01 07:32:45\""
        ),
        "{e}"
    );
    v["event_timestamp"] = json!("2025-10-01T07:32:45");
    assert!(parse_value(&v).is_err(), "a timestamp without offset");
    // An offset that carries the time out of four-digit years in UTC.
    v["event_timestamp"] = json!("0000-01-01T00:30:00+01:00");
    let e = parse_value(&v).expect_err("year -1 in UTC");
    assert_eq!(
        e.reason(),
        "checkout_started.event_timestamp: must fall within the years 0000-9999 in UTC, got \"0000-01-01T00:30:00+01:00\""
    );
    v["event_timestamp"] = json!("9999-12-31T23:30:00-01:00");
    assert!(parse_value(&v).is_err(), "year 10000 in UTC");
}

/// A leap second is the next second's start, so its hour and its time agree.
#[test]
fn leap_second_is_the_next_seconds_start() {
    let mut v = envelope("checkout_started");
    v["event_timestamp"] = json!("2016-12-31T23:59:60.250Z");
    let t = parse_value(&v).expect("valid").event_timestamp;
    assert_eq!(
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "2017-01-01T00:00:00.250Z"
    );
    assert_eq!(t.timestamp_millis(), 1_483_228_800_250);
}

#[test]
fn bad_enum_values() {
    let mut v = envelope("checkout_started");
    v["device"] = json!("watch");
    rejects(
        v,
        "checkout_started.device: must be one of \"desktop\", \"mobile\", \"tablet\", got \"watch\"",
    );
    let mut v = envelope("checkout_started");
    v["traffic_source"] = json!("tv");
    rejects(
        v,
        "checkout_started.traffic_source: must be one of \"organic\", \"paid\", \"social\", \"direct\", \"email\", \"referral\", got \"tv\"",
    );
    rejects(
        with("page_view", json!({"page": "landing"})),
        "page_view.page: must be one of \"home\", \"search\", \"category\", \"product\", \"cart\", \"checkout\", \"account\", \"other\", got \"landing\"",
    );
    rejects(
        with(
            "recommendation_clicked",
            json!({"module": "trending", "book_id": "bk_1", "position": 1}),
        ),
        "recommendation_clicked.module: must be one of \"similar\", \"bought_together\", \"for_you\", \"popular\", got \"trending\"",
    );
}

#[test]
fn integer_rules() {
    let mut v = valid_order();
    v["items"][2]["quantity"] = json!(0);
    rejects(
        v.clone(),
        "order_placed.items[2].quantity: must be an integer >= 1",
    );
    v["items"][2]["quantity"] = json!(1.5);
    rejects(
        v.clone(),
        "order_placed.items[2].quantity: must be an integer >= 1",
    );
    // Beyond i64, written as an integer or as a float.
    v["items"][2]["quantity"] = json!(u64::MAX);
    rejects(
        v.clone(),
        "order_placed.items[2].quantity: must be an integer >= 1",
    );
    v["items"][2]["quantity"] = json!(1e19);
    rejects(v, "order_placed.items[2].quantity: must be an integer >= 1");
    rejects(
        with(
            "search_result_clicked",
            json!({"search_id": "s", "book_id": "bk_1", "position": 0}),
        ),
        "search_result_clicked.position: must be an integer >= 1",
    );
    rejects(
        with(
            "search_performed",
            json!({"search_id": "s", "query": "q", "results_count": -1, "ranker": "bm25", "results": []}),
        ),
        "search_performed.results_count: must be an integer >= 0",
    );
}

/// JSON has one number type: whole numbers written with a point or an exponent are integers.
#[test]
fn whole_floats_are_integers() {
    let line = with(
        "add_to_cart",
        json!({"book_id": "bk_1", "quantity": 2.0, "unit_price": 9.5}),
    )
    .to_string();
    assert!(line.contains(r#""quantity":2.0"#), "{line}");
    let e = parse_line(&line).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(e.payload, Payload::AddToCart { quantity: 2, .. }),
        "{:?}",
        e.payload
    );
    let e = parse_value(&with(
        "search_performed",
        json!({"search_id": "s", "query": "q", "results_count": 0e3, "ranker": "bm25", "results": []}),
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            e.payload,
            Payload::SearchPerformed {
                results_count: 0,
                ..
            }
        ),
        "{:?}",
        e.payload
    );
}

#[test]
fn number_rules() {
    let mut v = valid_order();
    v["total_price"] = json!(-0.01);
    rejects(v, "order_placed.total_price: must be a number >= 0");
    let mut v = valid_order();
    v["discount"] = json!("5");
    rejects(v, "order_placed.discount: must be a number >= 0");
    rejects(
        with(
            "order_returned",
            json!({"order_id": "o", "refund_amount": 0}),
        ),
        "order_returned.refund_amount: must be a number > 0",
    );
    rejects(
        with(
            "add_to_cart",
            json!({"book_id": "bk_1", "quantity": 1, "unit_price": -1}),
        ),
        "add_to_cart.unit_price: must be a number >= 0",
    );
}

#[test]
fn array_rules() {
    let mut v = valid_order();
    v["items"] = json!([]);
    rejects(v, "order_placed.items: must have at least 1 item");
    let mut v = valid_order();
    v["items"][1] = json!("bk_2");
    rejects(v, "order_placed.items[1]: must be an object");
    rejects(
        with(
            "recommendation_shown",
            json!({"module": "popular", "book_ids": []}),
        ),
        "recommendation_shown.book_ids: must have at least 1 item",
    );
    rejects(
        with(
            "search_performed",
            json!({"search_id": "s", "query": "q", "results_count": 2, "ranker": "bm25",
                   "results": ["bk_1", "bk_2"], "result_scores": [1.0]}),
        ),
        "search_performed.result_scores: must have the same length as results (1 scores for 2 results)",
    );
    rejects(
        with(
            "search_performed",
            json!({"search_id": "s", "query": "q", "results_count": 1, "ranker": "bm25",
                   "results": [7]}),
        ),
        "search_performed.results[0]: must be a string",
    );
}

/// A line that repeats a key means different events to different readers: invalid, named.
#[test]
fn a_line_with_a_repeated_key_is_invalid() {
    let line = r#"{"event_id":"k1","event_type":"page_view","event_timestamp":"2025-10-01T07:00:00Z","user_id":"u","device":"mobile","page":"home","event_type":"order_returned","order_id":"o9","refund_amount":5}"#;
    let e = parse_line(line).expect_err("a repeated key");
    assert_eq!(e.field, "line");
    assert!(
        e.rule.contains("key \"event_type\" appears more than once"),
        "{}",
        e.reason()
    );
}
