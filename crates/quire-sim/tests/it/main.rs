//! Integration tests of the simulator: determinism, contract validity, summary counts and the
//! planted effects.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use quire_events::{Event, Payload, parse_line};
use quire_sim::{SimConfig, SimSummary, simulate};
use serde_json::Value;

/// One mid-sized run shared by the tests that only read it (files kept in memory).
struct Run {
    summary: SimSummary,
    lines: Vec<String>,
    truth: Value,
    files: HashMap<&'static str, String>,
}

impl Run {
    fn csv(&self, name: &str) -> csv::Reader<&[u8]> {
        csv::Reader::from_reader(self.files[name].as_bytes())
    }
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = SimConfig {
            days: 10,
            users: 1_500,
            seed: 7,
            ..SimConfig::default()
        };
        let summary = simulate(&cfg, dir.path(), &|_| {}).expect("simulate");
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("events");
        let lines = text.lines().map(str::to_string).collect();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect(name);
        let truth = serde_json::from_str(&read("truth.json")).expect("truth json");
        let files = ["books.csv", "users.csv", "marketing_spend.csv"]
            .into_iter()
            .map(|n| (n, read(n)))
            .collect();
        Run {
            summary,
            lines,
            truth,
            files,
        }
    })
}

/// Valid events, first occurrence of each event_id.
fn events() -> &'static Vec<Event> {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let mut seen = HashSet::new();
        run()
            .lines
            .iter()
            .filter_map(|l| parse_line(l).ok())
            .filter(|e| seen.insert(e.event_id.clone()))
            .collect()
    })
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().to_string();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

fn small(seed: u64, gzip: bool) -> SimConfig {
    SimConfig {
        days: 3,
        users: 300,
        seed,
        gzip,
        ..SimConfig::default()
    }
}

#[test]
fn same_seed_gives_identical_files_whatever_the_threads_and_another_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    simulate(&small(1, false), a.path(), &|_| {}).expect("a");
    // Another thread count must not change a byte.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool")
        .install(|| simulate(&small(1, false), b.path(), &|_| {}))
        .expect("b");
    simulate(&small(2, false), c.path(), &|_| {}).expect("c");
    let (fa, fb, fc) = (read_all(a.path()), read_all(b.path()), read_all(c.path()));
    let names: Vec<&str> = fa.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "books.csv",
            "events.jsonl",
            "marketing_spend.csv",
            "truth.json",
            "users.csv"
        ]
    );
    assert!(fa == fb, "same config must give byte-identical files");
    let events = |f: &[(String, Vec<u8>)]| f[1].1.clone();
    assert_ne!(events(&fa), events(&fc));
}

#[test]
fn gzip_output_has_the_same_lines() {
    let (plain, gz) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let s1 = simulate(&small(3, false), plain.path(), &|_| {}).expect("plain");
    let s2 = simulate(&small(3, true), gz.path(), &|_| {}).expect("gzip");
    assert!(s2.events_path.ends_with("events.jsonl.gz"));
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&s2.events_path).expect("open"))
        .read_to_end(&mut text)
        .expect("gunzip");
    assert_eq!(text, std::fs::read(&s1.events_path).expect("plain"));
}

#[test]
fn progress_reports_every_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let days = std::sync::Mutex::new(Vec::new());
    simulate(&small(4, false), dir.path(), &|d| {
        days.lock().expect("lock").push(d)
    })
    .expect("simulate");
    assert_eq!(*days.lock().expect("lock"), [1, 2, 3]);
}

#[test]
fn zero_days_is_a_config_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SimConfig {
        days: 0,
        ..SimConfig::default()
    };
    let err = simulate(&cfg, dir.path(), &|_| {}).expect_err("must fail");
    assert!(err.to_string().contains("days"), "{err}");
}

#[test]
fn summary_counts_match_the_file() {
    let r = run();
    let mut malformed = 0;
    let mut duplicates = 0;
    let mut test_events = 0;
    let mut seen = HashSet::new();
    let mut orders = HashSet::new();
    for line in &r.lines {
        match parse_line(line) {
            Err(_) => malformed += 1,
            Ok(e) => {
                if !seen.insert(e.event_id.clone()) {
                    duplicates += 1;
                    continue;
                }
                test_events += u64::from(e.is_test);
                if let Payload::OrderPlaced { order_id, .. } = &e.payload
                    && !e.is_test
                {
                    orders.insert(order_id.clone());
                }
            }
        }
    }
    let s = &r.summary;
    assert_eq!(s.lines, r.lines.len() as u64);
    assert_eq!(s.malformed, malformed);
    assert_eq!(s.duplicates, duplicates);
    assert_eq!(s.events, seen.len() as u64);
    assert_eq!(s.test_events, test_events);
    assert_eq!(s.orders, orders.len() as u64);
    assert_eq!(s.books, 10_000);
    assert_eq!(s.users, 1_500);
    // Every data-quality case is present.
    assert!(malformed > 0 && duplicates > 0 && test_events > 0);
    let dq = &r.truth["data_quality"];
    let kinds = dq["malformed"].as_object().expect("malformed kinds");
    assert_eq!(kinds.len(), 7);
    assert_eq!(
        kinds.values().map(|v| v.as_u64().unwrap_or(0)).sum::<u64>(),
        malformed
    );
    assert_eq!(dq["duplicate_lines"].as_u64(), Some(duplicates));
    assert!(dq["retried_orders"].as_u64() > Some(0));
}

#[test]
fn every_line_is_valid_or_counted_malformed_and_events_follow_the_contract() {
    let r = run();
    let books: HashMap<String, f64> = r
        .csv("books.csv")
        .records()
        .map(|rec| {
            let rec = rec.expect("record");
            (rec[0].to_string(), rec[6].parse::<f64>().expect("price"))
        })
        .collect();
    let mut offsets = 0;
    let mut sources = 0;
    let mut retried: HashMap<&str, u32> = HashMap::new();
    for e in events() {
        let ranker = e
            .experiments
            .as_ref()
            .and_then(|x| x.get("search_ranker"))
            .cloned();
        assert_eq!(e.is_test, e.user_id.starts_with("usr_test_"), "{e:?}");
        sources += u64::from(e.traffic_source.is_some());
        match &e.payload {
            Payload::SearchPerformed {
                ranker: r,
                results,
                result_scores,
                results_count,
                ..
            } => {
                assert_eq!(Some(r.as_str().to_string()), ranker);
                assert!(results.len() <= 20 && results.len() as i64 <= *results_count);
                let scores = result_scores.as_ref().expect("scores");
                assert_eq!(scores.len(), results.len());
                if r.as_str() == "bm25" {
                    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
                }
            }
            Payload::AddToCart {
                book_id,
                unit_price,
                ..
            } => {
                assert!(*unit_price <= books[book_id] + 1e-9);
            }
            Payload::OrderPlaced {
                order_id,
                items,
                total_price,
                discount,
                fees,
                ..
            } => {
                let sum: f64 = items.iter().map(|i| i.quantity as f64 * i.unit_price).sum();
                assert!((sum - discount - total_price).abs() < 0.005, "{e:?}");
                assert!(*fees >= total_price * 0.019 && *fees <= total_price * 0.031 + 0.01);
                *retried.entry(order_id.as_str()).or_default() += 1;
            }
            Payload::OrderReturned { refund_amount, .. } => assert!(*refund_amount > 0.0),
            _ => assert!(ranker.is_some()),
        }
    }
    for line in &r.lines {
        if parse_line(line).is_ok() {
            let v: Value = serde_json::from_str(line).expect("valid json");
            let ts = v["event_timestamp"].as_str().expect("timestamp");
            offsets += u64::from(!ts.ends_with('Z'));
        }
    }
    assert!(offsets > 0, "some timestamps carry a non-UTC offset");
    assert!(sources > 0);
    assert!(retried.values().any(|&n| n == 2), "retried orders");
}

#[test]
fn file_is_in_arrival_order_with_late_mobile_events() {
    let r = run();
    let mut late = 0;
    let mut max_seen = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    for line in &r.lines {
        if let Ok(e) = parse_line(line) {
            if e.event_timestamp + chrono::Duration::minutes(4) < max_seen {
                late += 1;
                assert_eq!(
                    e.device.as_str(),
                    "mobile",
                    "only mobile events arrive late"
                );
            }
            max_seen = max_seen.max(e.event_timestamp);
        }
    }
    assert!(late > 0);
}

#[test]
fn truth_lists_every_user_segment_and_the_csvs_have_the_contract_columns() {
    let r = run();
    let header = |name: &str| {
        r.csv(name)
            .headers()
            .expect("headers")
            .iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header("books.csv"),
        [
            "book_id",
            "title",
            "author",
            "genre",
            "series",
            "series_index",
            "price",
            "unit_cost",
            "publication_year",
            "average_rating",
            "ratings_count"
        ]
    );
    assert_eq!(header("users.csv"), ["user_id", "signup_date", "country"]);
    assert_eq!(header("marketing_spend.csv"), ["date", "channel", "spend"]);
    let users: Vec<String> = r
        .csv("users.csv")
        .records()
        .map(|r| r.expect("row")[0].to_string())
        .collect();
    let seg = r.truth["users"].as_object().expect("users map");
    assert_eq!(seg.len(), users.len());
    let segments: HashSet<&str> = seg.values().filter_map(|v| v.as_str()).collect();
    assert_eq!(segments.len(), 6, "{segments:?}");
    for u in &users {
        assert!(seg.contains_key(u), "{u}");
    }
    let spend_rows = r.csv("marketing_spend.csv").records().count();
    assert_eq!(spend_rows, 10 * 4);
}

fn order_baskets() -> Vec<HashSet<&'static str>> {
    let mut seen = HashSet::new();
    events()
        .iter()
        .filter(|e| !e.is_test)
        .filter_map(|e| match &e.payload {
            Payload::OrderPlaced {
                order_id, items, ..
            } if seen.insert(order_id.clone()) => {
                Some(items.iter().map(|i| i.book_id.as_str()).collect())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn bought_together_pairs_cooccur_far_above_chance() {
    let r = run();
    let baskets = order_baskets();
    let n = baskets.len() as f64;
    let (mut with_a, mut with_ab, mut with_b) = (0.0, 0.0, 0.0);
    let pairs = r.truth["bought_together"]["pairs"]
        .as_array()
        .expect("pairs");
    for p in pairs {
        let a = p["antecedent"].as_str().expect("a");
        let b = p["consequent"].as_str().expect("b");
        for basket in &baskets {
            with_a += f64::from(u8::from(basket.contains(a)));
            with_b += f64::from(u8::from(basket.contains(b)));
            with_ab += f64::from(u8::from(basket.contains(a) && basket.contains(b)));
        }
    }
    assert!(
        with_a >= 10.0,
        "too few baskets with an antecedent: {with_a}"
    );
    let confidence = with_ab / with_a;
    let base = with_b / (n * pairs.len() as f64);
    assert!(confidence > 0.3, "P(B|A) = {confidence}");
    assert!(
        confidence > 20.0 * base,
        "P(B|A) = {confidence}, P(B) = {base}"
    );
}

#[test]
fn ltr_arm_clicks_and_converts_more() {
    let r = run();
    let mut searches = [0u64; 2];
    let mut clicks = [0u64; 2];
    let mut users: HashMap<&str, (usize, bool)> = HashMap::new();
    for e in events().iter().filter(|e| !e.is_test) {
        let Some(arm) = e.experiments.as_ref().and_then(|x| x.get("search_ranker")) else {
            continue;
        };
        let arm = usize::from(arm == "ltr");
        let u = users.entry(e.user_id.as_str()).or_insert((arm, false));
        match e.payload {
            Payload::SearchPerformed { .. } => searches[arm] += 1,
            Payload::SearchResultClicked { .. } => clicks[arm] += 1,
            Payload::OrderPlaced { .. } => u.1 = true,
            _ => {}
        }
    }
    let ctr = |a: usize| clicks[a] as f64 / searches[a] as f64;
    assert!(ctr(1) > 1.03 * ctr(0), "ltr {} vs bm25 {}", ctr(1), ctr(0));
    let mut n = [0f64; 2];
    let mut conv = [0f64; 2];
    for (arm, c) in users.values() {
        n[*arm] += 1.0;
        conv[*arm] += f64::from(u8::from(*c));
    }
    assert!((n[0] / n[1] - 1.0).abs() < 0.1, "50/50 split: {n:?}");
    let cvr = |a: usize| conv[a] / n[a];
    assert!(cvr(1) > cvr(0), "ltr {} vs bm25 {}", cvr(1), cvr(0));
    let t = &r.truth["experiment"];
    assert!(t["rel_lift"].as_f64().expect("lift") > 0.0);
}

#[test]
fn truth_records_the_planted_effects() {
    let t = &run().truth;
    let rec = &t["recommendation_click_effect"];
    let ate = rec["ate_on_session_cvr"].as_f64().expect("ate");
    let naive = rec["naive_cvr_diff"].as_f64().expect("naive");
    assert!(
        ate > 0.0 && naive > ate,
        "confounding overstates: {ate} vs {naive}"
    );
    let review = t["review_effect"]["att_on_session_cvr"]
        .as_f64()
        .expect("review");
    assert!(review > 0.0 && review < rec["att_on_session_cvr"].as_f64().expect("att"));
    let series = &t["series_order"];
    assert!(series["in_order_purchases"].as_u64() > series["out_of_order_purchases"].as_u64());
    let gw = &t["gateway_books"];
    assert_eq!(gw["book_ids"].as_array().map(Vec::len), Some(5));
    let books = gw["books"].as_array().expect("gateway books");
    assert_eq!(books.len(), 5);
    // Ten days leave no first order 14 days of follow-up: no buyer counts, no effect.
    assert_eq!(gw["effect_horizon_days"], 14);
    for b in books {
        assert_eq!(b["first_buyers"], 0, "{b}");
        assert!(b["att_later_revenue"].is_null(), "{b}");
    }
    // Devices: the realized counts add up to the sessions; intent orders the conversion.
    let dev = t["devices"]["by_device"].as_array().expect("devices");
    let sessions: u64 = dev.iter().filter_map(|d| d["sessions"].as_u64()).sum();
    assert_eq!(Some(sessions), t["volumes"]["sessions"].as_u64());
    let cvr = |i: usize| dev[i]["cvr"].as_f64().expect("cvr");
    assert_eq!(dev[0]["device"], "desktop");
    assert!(cvr(0) > cvr(2) && cvr(2) > cvr(1), "{dev:?}");
    // After an abandoned cart: the returns are a binomial share of the next sessions.
    let ab = &t["after_abandon"];
    let n = |k: &str| ab[k].as_u64().expect(k) as f64;
    assert!(n("with_next_session") <= n("abandoned_sessions") && n("with_next_session") > 100.0);
    let p = ab["cart_return_probability"].as_f64().expect("p");
    let share = n("next_session_at_cart") / n("with_next_session");
    let se = (p * (1.0 - p) / n("with_next_session")).sqrt();
    assert!((share - p).abs() < 4.0 * se, "{share} vs {p}");
    // Time to purchase: shares grow with the days and stay below one.
    let ttp = &t["time_to_purchase"];
    assert_eq!(ttp["follow_up_days"], 5);
    for stage in ["first_purchase", "second_purchase"] {
        let w: Vec<f64> = ttp[stage]["share_within"]
            .as_array()
            .expect("shares")
            .iter()
            .map(|x| x["share"].as_f64().expect("share"))
            .collect();
        assert_eq!(w.len(), 4, "{stage}: 1 h, 1, 2 and 3 days within 5");
        assert!(
            w.windows(2).all(|p| p[0] <= p[1]) && w[3] <= 1.0,
            "{stage}: {w:?}"
        );
        assert!(ttp[stage]["users"].as_u64() > Some(0));
    }
    let promo = &t["promotion"];
    assert_eq!(promo["promo_code"], "FALLREADS20");
    let daily = promo["daily"].as_array().expect("daily");
    let per_day = |phase: &str| {
        let days: Vec<f64> = daily
            .iter()
            .filter(|d| d["phase"] == phase)
            .map(|d| d["promoted_units"].as_f64().unwrap_or(0.0))
            .collect();
        days.iter().sum::<f64>() / days.len().max(1) as f64
    };
    assert!(per_day("promo") > 2.0 * per_day("before"));
    assert!(per_day("dip") < per_day("promo"));
    // The promo code appears in the events with the discount.
    let with_code = events()
        .iter()
        .filter(|e| {
            matches!(&e.payload, Payload::OrderPlaced { promo_code: Some(c), discount, .. }
                if c == "FALLREADS20" && *discount > 0.0)
        })
        .count();
    assert!(with_code > 0);
}
