//! Every analysis on a simulated store: the effect the simulator planted (truth.json, or its
//! documented mechanism) is recovered within the interval, and an absent effect is not found.
//!
//! One store (14 days, 2,000 users, seed 42) is simulated and ingested once per test run and
//! shared by the tests through a directory keyed by the run (nextest runs each test in its own
//! process; the first one builds the lake under a lock file, the others wait for it).

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use quire_analytics::{Dataset, DateRange};
use quire_lake::{DimTable, Lake};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::Value;

fn build(dir: &Path) {
    // quire-lake's ingest runs on rayon's global pool; in the unoptimized test build its
    // recursion needs more than rayon's default 2 MiB thread stacks for a file of this size.
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(64 << 20)
        .build_global();
    let cfg = quire_sim::SimConfig {
        days: 14,
        users: 2_000,
        seed: 42,
        ..Default::default()
    };
    let sim = quire_sim::simulate(&cfg, &dir.join("sim"), &|_| {}).unwrap();
    let lake = Lake::open(dir.join("lake")).unwrap();
    lake.ingest_file(&sim.events_path, &Default::default(), &|_| {})
        .unwrap();
    lake.load_dim(DimTable::Books, &dir.join("sim/books.csv"))
        .unwrap();
}

/// The shared store's directory (`lake/`, `sim/truth.json`).
fn store() -> PathBuf {
    let run = std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quire-analytics-sim");
    std::fs::create_dir_all(&base).unwrap();
    let dir = base.join(&run);
    let ready = dir.join("READY");
    if ready.exists() {
        return dir;
    }
    let lock = base.join(format!("{run}.lock"));
    if OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&lock)
        .is_ok()
    {
        // Stores of earlier runs are removed.
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let p = e.path();
            if p != dir
                && p != lock
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().ends_with(".lock"))
            {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
        build(&dir);
        std::fs::write(&ready, b"ok").unwrap();
        let _ = std::fs::remove_file(&lock);
        return dir;
    }
    let start = Instant::now();
    while !ready.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "waited 10 minutes for the simulated store at {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    dir
}

fn dataset(range: DateRange) -> Dataset {
    let lake = Lake::open(store().join("lake")).unwrap();
    Dataset::new(
        lake.scan_events().unwrap(),
        lake.scan_dim(DimTable::Books).unwrap(),
        range,
    )
    .unwrap()
}

fn truth() -> Value {
    serde_json::from_str(&std::fs::read_to_string(store().join("sim/truth.json")).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// Planted: adding A to the cart adds B with probability 0.6 (`bought_together`). Recovered:
/// pooled over the planted pairs, the share of orders with A that also hold B (the rules'
/// counts over the antecedents' orders) has a Wilson interval containing the simulator's
/// realized share, and each pair with at least 5 orders of A has lift > 10. Absent: no rule as
/// strong as the planted ones (count ≥ 4, confidence ≥ 0.5, lift > 10) outside the planted
/// pairs and series volumes.
#[test]
fn basket_recovers_the_planted_pairs() {
    let ds = dataset(DateRange::default());
    let p = quire_analytics::basket::BasketParams {
        min_support: quire_analytics::basket::Fraction::parse("0.0005", "s").unwrap(),
        min_confidence: quire_analytics::basket::Fraction::parse("0", "c").unwrap(),
        max_len: 2,
    };
    let r = quire_analytics::basket::run(&ds, &p).unwrap();
    let j = r.to_json();
    let rules = j["rules"].as_array().unwrap();
    let t = truth();
    let bt = &t["bought_together"];
    let planted: Vec<(String, String)> = bt["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["antecedent"].as_str().unwrap().to_owned(),
                p["consequent"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let tx = quire_analytics::basket::transactions(&ds).unwrap();
    let (mut with_a, mut with_both, mut checked) = (0u64, 0u64, 0);
    for (a, b) in &planted {
        let n_a = tx.iter().filter(|t| t.contains(a)).count() as u64;
        let rule = rules.iter().find(|x| {
            x["antecedent"] == serde_json::json!([a]) && x["consequent"] == serde_json::json!([b])
        });
        let count = rule.map_or(0, |x| x["count"].as_u64().unwrap());
        with_a += n_a;
        with_both += count;
        if n_a >= 5 {
            checked += 1;
            let rule = rule.unwrap_or_else(|| {
                panic!("planted rule {a} → {b} ({n_a} orders with {a}) not found")
            });
            assert!(f(&rule["lift"]) > 10.0, "{rule}");
        }
    }
    assert!(checked >= 3, "only {checked} planted pairs have 5 orders");
    let realized = f(&bt["orders_with_a_full_pair"]) / f(&bt["orders_with_an_antecedent"]);
    let (lo, hi) = quire_analytics::stats::wilson(with_both, with_a, quire_analytics::stats::Z95);
    assert!(
        lo <= realized && realized <= hi,
        "pooled {with_both}/{with_a} [{lo:.3}, {hi:.3}] vs realized {realized:.3}"
    );
    let books = ds.books().unwrap().collect().unwrap();
    let series: HashMap<String, String> = books
        .column("book_id")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .zip(books.column("series").unwrap().str().unwrap().iter())
        .filter_map(|(b, s)| Some((b?.to_owned(), s?.to_owned())))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    for x in rules.iter().filter(|x| {
        x["count"].as_i64().unwrap() >= 4 && f(&x["confidence"]) >= 0.5 && f(&x["lift"]) > 10.0
    }) {
        let a = x["antecedent"][0].as_str().unwrap().to_owned();
        let b = x["consequent"][0].as_str().unwrap().to_owned();
        let is_planted =
            planted.contains(&(a.clone(), b.clone())) || planted.contains(&(b.clone(), a.clone()));
        let same_series = series.get(&a).is_some_and(|s| series.get(&b) == Some(s));
        assert!(
            is_planted || same_series,
            "unplanted strong rule {a} → {b}: {x}"
        );
    }
}

/// Planted: series volumes are bought in order (`series_order.in_order_probability` 0.99).
/// Recovered: the planted probability lies inside the in-order share's interval, whose lower end
/// is above 0.8; absent: buying volume n+1 before n (the reverse transition) is rare.
#[test]
fn sequences_recover_the_series_order() {
    let ds = dataset(DateRange::default());
    let r = quire_analytics::sequences::run(&ds, &Default::default()).unwrap();
    let j = r.to_json();
    let s = &j["series_order"][0];
    let (fwd, rev) = (
        s["in_order_users"].as_i64().unwrap(),
        s["reverse_users"].as_i64().unwrap(),
    );
    assert!(fwd >= 10, "{s}");
    assert!(f(&s["lo"]) > 0.8, "{s}");
    assert!(rev * 10 <= fwd, "{s}");
    let planted = f(&truth()["series_order"]["in_order_probability"]);
    assert!(
        f(&s["lo"]) <= planted && planted <= f(&s["hi"]) + 1e-12,
        "{s} vs {planted}"
    );
}

/// Planted: segments with favourite genres (fantasy_fan, history_buff, …) and high spenders.
/// Recovered: the segment named for Fantasy (History) is mostly the simulator's fantasy_fan
/// (history_buff) users, and "High-Spenders" mostly high_spender.
#[test]
fn segments_recover_the_planted_segments() {
    let ds = dataset(DateRange::default());
    let r = quire_analytics::segments::run(&ds, &Default::default()).unwrap();
    let j = r.to_json();
    let t = truth();
    let truth_seg: HashMap<&str, &str> = t["users"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str().unwrap()))
        .collect();
    let mut by_name: BTreeMap<String, HashMap<&str, usize>> = BTreeMap::new();
    for m in j["members"].as_array().unwrap() {
        if let Some(seg) = truth_seg.get(m["user_id"].as_str().unwrap()) {
            *by_name
                .entry(m["name"].as_str().unwrap().to_owned())
                .or_default()
                .entry(seg)
                .or_default() += 1;
        }
    }
    let majority = |name: &str| {
        by_name
            .get(name)
            .and_then(|m| m.iter().max_by_key(|x| x.1).map(|x| x.0.to_string()))
    };
    // Every segment named for a genre is mostly that genre's planted segment.
    let genre_names = [
        ("Fantasy Fans", "fantasy_fan"),
        ("History Buffs", "history_buff"),
        ("Mystery Readers", "mystery_reader"),
    ];
    let mut found = 0;
    for (name, seg) in genre_names {
        if by_name.contains_key(name) {
            found += 1;
            assert_eq!(majority(name).as_deref(), Some(seg), "{name}: {by_name:?}");
        }
    }
    assert!(
        found >= 2,
        "fewer than two genre segments named: {by_name:?}"
    );
    // High-Spenders hold high_spender users at least 1.5 times as often as everyone.
    let share = |m: &HashMap<&str, usize>, seg: &str| {
        m.get(seg).copied().unwrap_or(0) as f64 / m.values().sum::<usize>() as f64
    };
    let mut all: HashMap<&str, usize> = HashMap::new();
    for m in by_name.values() {
        for (k, v) in m {
            *all.entry(k).or_default() += v;
        }
    }
    let hs = by_name
        .get("High-Spenders")
        .expect("a High-Spenders segment");
    assert!(
        share(hs, "high_spender") >= 1.5 * share(&all, "high_spender"),
        "{by_name:?}"
    );
    // Absent structure: the segments' purity against the planted segments beats every one of
    // 100 random relabelings of the same sizes.
    let mut pairs: Vec<(String, &str)> = Vec::new();
    for (name, m) in &by_name {
        for (seg, n) in m {
            pairs.extend(std::iter::repeat_n((name.clone(), *seg), *n));
        }
    }
    let purity = |labels: &[String], segs: &[&str]| {
        let mut c: HashMap<(&str, &str), usize> = HashMap::new();
        for (l, s) in labels.iter().zip(segs) {
            *c.entry((l.as_str(), s)).or_default() += 1;
        }
        let mut best: HashMap<&str, usize> = HashMap::new();
        for ((l, _), n) in c {
            let e = best.entry(l).or_default();
            *e = (*e).max(n);
        }
        best.values().sum::<usize>()
    };
    let labels: Vec<String> = pairs.iter().map(|p| p.0.clone()).collect();
    let mut segs: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let real = purity(&labels, &segs);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for _ in 0..100 {
        segs.shuffle(&mut rng);
        assert!(purity(&labels, &segs) < real);
    }
    assert!(j["bgnbd_r"].as_f64().is_some() && j["gamma_gamma_p"].as_f64().is_some());
}

/// Planted: a high_spender segment with larger baskets. Recovered: the top decile holds far
/// more than a tenth of revenue (interval above 0.1) and its users are mostly high spenders
/// compared with the rest. Absent: the interval of the share contains the point estimate.
#[test]
fn top_customers_finds_the_concentration() {
    let ds = dataset(DateRange::default());
    let r = quire_analytics::top::run(&ds, 10.0, 7).unwrap();
    let j = r.to_json();
    let share = f(&j["revenue_share"]);
    let ci = j["revenue_share_ci95"].as_array().unwrap();
    assert!(
        f(&ci[0]) > 0.1 && f(&ci[0]) <= share && share <= f(&ci[1]),
        "{j}"
    );
    let spend = j["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["attribute"] == "spend")
        .unwrap();
    assert!(f(&spend["ratio_lo"]) > 1.0, "{spend}");
}

/// Recovered within the interval: the share of a cohort that buys within 3 days of its first
/// visit, estimated by Kaplan–Meier from a censored first week, covers the share seen with full
/// follow-up (the next week shows every cohort member at least 7 days). Absent: the naive
/// share (purchases / cohort, ignoring censoring) is biased low.
#[test]
fn time_to_purchase_handles_censoring() {
    use quire_analytics::stats::kaplan_meier;
    use quire_analytics::ttp::{at, cohort, stages};
    let start = chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    let week = DateRange {
        from: Some(start),
        to: Some(start + chrono::Days::new(6)),
    };
    let first_week = dataset(week);
    let users = cohort(&first_week).unwrap();
    let end_week = first_week.end_ms().unwrap().unwrap();
    let censored = stages(&users, end_week);
    let km = kaplan_meier(&censored.to_first);
    let (s3, lo, hi) = at(&km, 3.0);
    // Full follow-up: every cohort member's first visit is ≥ 7 days before the lake's end.
    let day = 86_400_000i64;
    let truth3 = users
        .iter()
        .filter(|(v, o)| o.iter().any(|&t| t >= *v && t - v <= 3 * day))
        .count() as f64
        / users.len() as f64;
    assert!(
        1.0 - hi <= truth3 && truth3 <= 1.0 - lo,
        "KM {:.4} [{:.4}, {:.4}] vs full follow-up {truth3:.4}",
        1.0 - s3,
        1.0 - hi,
        1.0 - lo
    );
    let naive = censored
        .to_first
        .iter()
        .filter(|x| x.1 && x.0 <= 3.0)
        .count() as f64
        / users.len() as f64;
    assert!(naive < 1.0 - s3, "naive {naive} vs KM {}", 1.0 - s3);
    let r = quire_analytics::ttp::run(&first_week).unwrap();
    assert_eq!(
        r.to_json()["medians"][0]["users"].as_u64().unwrap() as usize,
        users.len()
    );
}

/// Planted: session intent shifts by device (desktop +0.25, tablet 0, mobile −0.3 logit points,
/// quire-sim's `Device::intent_shift`), independent of the traffic source. Recovered: mobile
/// converts less than desktop, crude and within sources (intervals below 0); absent: no
/// Simpson's paradox warning.
#[test]
fn devices_recover_the_intent_shift() {
    let ds = dataset(DateRange::default());
    let r = quire_analytics::devices::run(&ds).unwrap();
    let j = r.to_json();
    let mobile = j["comparison"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["device"] == "mobile")
        .unwrap();
    assert!(f(&mobile["crude_hi"]) < 0.0, "{mobile}");
    assert!(f(&mobile["stratified_hi"]) < 0.0, "{mobile}");
    assert!(
        !r.warnings.iter().any(|w| w.contains("Simpson")),
        "{:?}",
        r.warnings
    );
}

/// The abandonment counts are the KPI definitions' (sessions with an add-to-cart and no
/// order), and every abandoned session has exactly one "next" outcome of each kind.
#[test]
fn after_abandon_counts_match_the_session_facts() {
    let ds = dataset(DateRange::default());
    let r = quire_analytics::abandon::run(&ds).unwrap();
    let j = r.to_json();
    let s = ds.sessions().unwrap();
    let atc = s.column("has_add_to_cart").unwrap().bool().unwrap().clone();
    let ord = s.column("has_order").unwrap().bool().unwrap().clone();
    let expected = atc
        .iter()
        .zip(ord.iter())
        .filter(|(a, o)| a.unwrap_or(false) && !o.unwrap_or(false))
        .count() as u64;
    assert_eq!(j["abandoned_sessions"].as_u64().unwrap(), expected);
    for table in ["next_in_session", "next_session_first_action"] {
        let total: i64 = j[table]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["count"].as_i64().unwrap())
            .sum();
        assert_eq!(total as u64, expected, "{table}");
    }
}

/// Planted: low-intent sessions bounce (a one-page path) more. Recovered: the single-page
/// `home` path is significantly more common among low converters. Absent: two random halves
/// of the users (by id hash) differ on no path after Benjamini–Hochberg.
#[test]
fn paths_find_the_bounce_difference_and_nothing_between_random_halves() {
    let ds = dataset(DateRange::default());
    let users = quire_analytics::paths::prepare(&ds).unwrap();
    let r = quire_analytics::paths::analyze(&users, 50).unwrap();
    let j = r.to_json();
    let home = j["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["path"] == "home")
        .unwrap();
    assert!(
        f(&home["diff_hi"]) < 0.0 && f(&home["q_value"]) < 0.05,
        "{home}"
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (u, sessions) in &users {
        let h = u
            .bytes()
            .fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c)));
        let target = if h % 2 == 0 { &mut a } else { &mut b };
        target.extend(sessions.iter().map(|s| s.0.as_str()));
    }
    let r = quire_analytics::paths::compare(&a, &b, 50).unwrap();
    assert_eq!(r.to_json()["significant_paths"], 0, "{}", r.to_text(50));
}

/// The report runs every analysis on the store; each result's JSON document has exactly its
/// documented keys, every chart renders to SVG, and `--out` writes a Parquet file per table.
#[test]
fn report_json_shapes_and_outputs_are_stable() {
    let ds = dataset(DateRange::default());
    let entries = quire_analytics::report::entries();
    let sections = quire_analytics::report::run_entries(&ds, &entries, &|_| {});
    let fixed = ["analysis", "charts", "notes", "warnings"];
    let expected: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        (
            "segments",
            vec![
                "customers",
                "k",
                "seed",
                "silhouette",
                "clv_horizon_days",
                "bgnbd_r",
                "bgnbd_alpha",
                "bgnbd_a",
                "bgnbd_b",
                "bgnbd_log_likelihood",
                "gamma_gamma_p",
                "gamma_gamma_q",
                "gamma_gamma_v",
                "segments",
                "centroids",
                "silhouette_by_k",
                "members",
            ],
        ),
        (
            "top-customers",
            vec![
                "customers",
                "top_customers",
                "revenue_share",
                "revenue_share_ci95",
                "seed",
                "attributes",
            ],
        ),
        (
            "time-to-purchase",
            vec!["medians", "first_purchase_curve", "second_purchase_curve"],
        ),
        (
            "paths",
            vec![
                "high_sessions",
                "low_sessions",
                "median_user_cvr",
                "paths_tested",
                "significant_paths",
                "paths",
            ],
        ),
        (
            "after-abandon",
            vec![
                "abandoned_sessions",
                "with_next_session",
                "next_session_order_rate",
                "next_session_order_rate_ci95",
                "next_in_session",
                "next_session_first_action",
            ],
        ),
        (
            "devices",
            vec![
                "sessions",
                "reference_device",
                "rates",
                "means",
                "comparison",
                "by_source",
            ],
        ),
        (
            "basket",
            vec![
                "transactions",
                "min_support",
                "min_confidence",
                "frequent_itemsets",
                "rule_count",
                "rules",
            ],
        ),
        (
            "sequences",
            vec![
                "users",
                "repeat_purchasers",
                "transitions",
                "prefixspan_min_count",
                "pattern_count",
                "patterns",
                "series_order",
            ],
        ),
    ]);
    let mut names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, expected.keys().copied().collect::<Vec<_>>());
    let out = tempfile::tempdir().unwrap();
    for s in &sections {
        let r = s
            .outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        let mut keys: Vec<String> = r.to_json().as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut want: Vec<String> = expected[s.name.as_str()]
            .iter()
            .chain(fixed.iter())
            .map(|k| (*k).to_owned())
            .collect();
        want.sort();
        assert_eq!(keys, want, "{}", s.name);
        assert!(!r.charts.is_empty(), "{} has no chart", s.name);
        for c in &r.charts {
            assert!(
                c.to_svg().unwrap().contains("</svg>"),
                "{}: {}",
                s.name,
                c.name
            );
        }
        let written = r.write_out(out.path()).unwrap();
        assert_eq!(written.len(), r.tables.len() + r.charts.len());
    }
    let page = quire_analytics::report::render_html("t", &[], &sections).unwrap();
    assert_eq!(page.matches("<section").count(), 8);
    assert!(!page.contains("not computed"));
}
