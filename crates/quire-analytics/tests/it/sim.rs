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
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn build(dir: &Path) {
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
    // The members' historical CLV is kpis.md's: the net of their orders (refunds taken off),
    // shown to the cent.
    let members = j["members"].as_array().unwrap();
    let clv: f64 = members
        .iter()
        .map(|m| m["historical_clv"].as_f64().unwrap())
        .sum();
    let orders = ds.orders().unwrap();
    let total = |name: &str| -> f64 {
        orders
            .column(name)
            .unwrap()
            .f64()
            .unwrap()
            .iter()
            .flatten()
            .sum()
    };
    let (net, gross) = (total("net"), total("total_price"));
    let cents = 0.005 * members.len() as f64;
    assert!((clv - net).abs() <= cents, "{clv} vs net {net}");
    assert!((gross - net).abs() > cents, "the data has refunds");
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
/// more than a tenth of revenue (interval above 0.1) and spends more than the rest (ratio
/// interval above 1). Calibrated: with the store's customers as the population, samples of
/// 1,000 give ratio intervals that hold the population's top-decile ratios about 95% of the
/// time (the top group is chosen by spend in each resample, as in the sample itself).
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

    // Coverage: the store's customers as a population, whose top 10% by spend has the true
    // ratios; samples of 1,000 drawn from it: their intervals, the top group chosen again in
    // each resample, hold the population's ratios about 95% of the time.
    let mut population = quire_analytics::customers::customers(&ds).unwrap().rows;
    population.sort_by(|a, b| b.spend.total_cmp(&a.spend));
    let k = quire_analytics::top::top_count(population.len(), 10.0);
    let (group, rest) = population.split_at(k);
    let truth: Vec<f64> = quire_analytics::top::compare(group, rest)
        .iter()
        .map(|a| a.ratio)
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (mut intervals, mut holding) = (0, 0);
    for s in 0..30 {
        let sample: Vec<_> = (0..1000)
            .map(|_| population[rng.gen_range(0..population.len())].clone())
            .collect();
        let cis = quire_analytics::top::ratio_intervals(&sample, 10.0, s, 200);
        for (t, (lo, hi)) in truth.iter().zip(cis) {
            if t.is_finite() && lo.is_finite() {
                intervals += 1;
                holding += usize::from(lo <= *t && *t <= hi);
            }
        }
    }
    let coverage = holding as f64 / intervals as f64;
    assert!(
        intervals >= 150 && (0.88..=0.98).contains(&coverage),
        "{holding} of {intervals} intervals hold the population's ratio"
    );
}

/// Recorded: `time_to_purchase` in truth.json, the shares of the users whose first visit falls
/// in the run's first week who bought within 1 h, 1, 2, 3 (and 7) days of it, and of those who
/// bought in that week who bought again within as many days of the first order, each user
/// followed to the end of the run (two weeks), so exact. Recovered: the Kaplan–Meier curves of
/// `time-to-purchase` over the first week alone (every user censored at its end) hold each share
/// at each tabulated day within their 95% intervals, on the same cohort, and reports a median
/// exactly when the truth reaches one. Absent: the bias of ignoring censoring — the naive share
/// (purchases seen / cohort) is below the KM estimate and below the truth.
#[test]
fn time_to_purchase_recovers_the_uncensored_truth() {
    use quire_analytics::stats::kaplan_meier;
    use quire_analytics::ttp::{at, cohort, stages};
    let start = chrono::NaiveDate::from_ymd_opt(2025, 10, 1).unwrap();
    let t = truth();
    let tt = &t["time_to_purchase"];
    assert_eq!(tt["cohort_start_date"], "2025-10-01");
    assert_eq!(tt["cohort_end_date"], "2025-10-07");
    let week = DateRange {
        from: Some(start),
        to: Some(start + chrono::Days::new(6)),
    };
    let first_week = dataset(week);
    let j = quire_analytics::ttp::run(&first_week).unwrap().to_json();
    for (stage, row, curve) in [
        ("first_purchase", 0, "first_purchase_curve"),
        ("second_purchase", 1, "second_purchase_curve"),
    ] {
        let truth_stage = &tt[stage];
        let medians = &j["medians"][row];
        // The same cohort (the second stage's may differ by an order placed just after
        // midnight in the range's last session).
        let (n, n_truth) = (f(&medians["users"]), f(&truth_stage["users"]));
        assert!(
            (n - n_truth).abs() <= 0.01 * n_truth,
            "{stage}: {medians} vs {truth_stage}"
        );
        let rows = j[curve].as_array().unwrap();
        let mut checked = 0;
        for w in truth_stage["share_within"].as_array().unwrap() {
            let Some(r) = rows
                .iter()
                .find(|r| (f(&r["days"]) - f(&w["days"])).abs() < 1e-9)
            else {
                continue;
            };
            let share = f(&w["share"]);
            assert!(
                f(&r["lo"]) <= share && share <= f(&r["hi"]),
                "{stage} at {} days: KM {} [{}, {}] vs truth {share}",
                w["days"],
                r["purchased"],
                r["lo"],
                r["hi"]
            );
            checked += 1;
        }
        assert!(checked >= 4, "{stage}: {checked} days checked");
        match truth_stage["median_days"].as_f64() {
            None => assert!(medians["median_days"].is_null(), "{stage}: {medians}"),
            Some(m) => assert!(
                f(&medians["median_lo"]) <= m && m <= f(&medians["median_hi"]),
                "{stage}: {medians} vs {m}"
            ),
        }
    }
    // Ignoring censoring underestimates: fewer purchases seen within 3 days than there are.
    let users = cohort(&first_week).unwrap();
    let censored = stages(&users, first_week.end_ms().unwrap().unwrap());
    let (s3, _, _) = at(&kaplan_meier(&censored.to_first), 3.0);
    let naive = censored
        .to_first
        .iter()
        .filter(|x| x.1 && x.0 <= 3.0)
        .count() as f64
        / users.len() as f64;
    let truth3 = tt["first_purchase"]["share_within"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| (f(&w["days"]) - 3.0).abs() < 1e-9)
        .map(|w| f(&w["share"]))
        .unwrap();
    assert!(
        naive < 1.0 - s3 && naive < truth3,
        "naive {naive} vs KM {} and truth {truth3}",
        1.0 - s3
    );
}

/// Planted: session intent shifts by device (truth.json `devices`: desktop +0.25, tablet 0,
/// mobile −0.3 logit points), drawn independently of the traffic source; the truth records each
/// device's simulated sessions and conversion. Recovered: each device's conversion interval
/// (Wilson) holds the truth's, and mobile's and tablet's differences from desktop — crude and
/// stratified by source (Mantel–Haenszel) — hold the truth's difference, mobile's below 0.
/// Absent: no Simpson's paradox warning, and with the device labels shuffled across sessions the
/// stratified differences' intervals hold 0 at their nominal rate.
#[test]
fn devices_recover_the_conversion_by_device() {
    let ds = dataset(DateRange::default());
    let rows = quire_analytics::devices::prepare(&ds).unwrap();
    let r = quire_analytics::devices::analyze(&rows, "desktop").unwrap();
    let j = r.to_json();
    let t = truth();
    let truth_devices = t["devices"]["by_device"].as_array().unwrap();
    assert_eq!(t["devices"]["reference"], "desktop");
    for d in truth_devices {
        let name = d["device"].as_str().unwrap();
        let cvr = f(&d["cvr"]);
        let rate = j["rates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["device"] == name && x["metric"] == "cvr")
            .unwrap();
        assert!(
            f(&rate["lo"]) <= cvr && cvr <= f(&rate["hi"]),
            "{name}: {rate} vs truth {cvr}"
        );
        if name == "desktop" {
            continue;
        }
        let diff = f(&d["cvr_diff_vs_reference"]);
        let c = j["comparison"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["device"] == name)
            .unwrap();
        for m in ["crude", "stratified"] {
            assert!(
                f(&c[format!("{m}_lo")]) <= diff && diff <= f(&c[format!("{m}_hi")]),
                "{name} {m}: {c} vs truth {diff}"
            );
        }
        if name == "mobile" {
            assert!(diff < 0.0 && f(&c["stratified_hi"]) < 0.0, "{c}");
        }
    }
    assert!(
        !r.warnings.iter().any(|w| w.contains("Simpson")),
        "{:?}",
        r.warnings
    );
    // No device effect once the labels are shuffled across sessions: over 20 shufflings, the
    // stratified intervals of both comparisons hold 0 at about their nominal 95% (at least 34
    // of 40; fewer has probability about 1% when they are calibrated).
    let mut shuffled = rows.clone();
    let mut devices: Vec<String> = rows.iter().map(|x| x.device.clone()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let (mut held, mut intervals) = (0, 0);
    for _ in 0..20 {
        devices.shuffle(&mut rng);
        for (x, d) in shuffled.iter_mut().zip(&devices) {
            x.device.clone_from(d);
        }
        let j = quire_analytics::devices::analyze(&shuffled, "desktop")
            .unwrap()
            .to_json();
        for c in j["comparison"].as_array().unwrap() {
            intervals += 1;
            held += usize::from(f(&c["stratified_lo"]) <= 0.0 && 0.0 <= f(&c["stratified_hi"]));
        }
    }
    assert_eq!(intervals, 40);
    assert!(held >= 34, "shuffled labels: {held} of 40 intervals hold 0");
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

/// Planted: the next session of a user after an abandoned cart starts at the cart with
/// probability `after_abandon.cart_return_probability` (0.35); no other session starts there.
/// Recovered: the abandoned sessions, those with a next session and the returns to the cart are
/// the simulator's counts (within 1%), and the next sessions' cart rate has a Wilson interval
/// holding the planted probability. Absent: with the bought carts in the place of the abandoned
/// ones (the order dropped from sessions that ordered, the adds from those that abandoned), the
/// cart rate's interval holds 0 and not the planted probability.
#[test]
fn after_abandon_recovers_the_returns_to_the_cart() {
    use quire_analytics::abandon;
    let ds = dataset(DateRange::default());
    let sessions = abandon::prepare(&ds).unwrap();
    let j = abandon::analyze(&sessions).unwrap().to_json();
    let t = truth();
    let ta = &t["after_abandon"];
    let close = |a: &Value, b: &Value| {
        let (a, b) = (f(a), f(b));
        assert!((a - b).abs() <= 0.01 * b, "{a} vs truth {b}");
    };
    close(&j["abandoned_sessions"], &ta["abandoned_sessions"]);
    close(&j["with_next_session"], &ta["with_next_session"]);
    let at_cart = j["next_session_first_action"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["action"] == abandon::CART)
        .unwrap();
    close(&at_cart["count"], &ta["next_session_at_cart"]);
    let planted = f(&ta["cart_return_probability"]);
    let ci = &j["next_session_cart_rate_ci95"];
    assert!(
        f(&ci[0]) <= planted && planted <= f(&ci[1]),
        "cart rate {} {ci} vs planted {planted}",
        j["next_session_cart_rate"]
    );
    let bought: Vec<abandon::Session> = sessions
        .into_iter()
        .map(|mut s| {
            if s.actions.iter().any(|a| a == "order_placed") {
                s.actions.retain(|a| a != "order_placed");
            } else {
                s.actions.retain(|a| a != "add_to_cart");
            }
            s
        })
        .collect();
    let j = abandon::analyze(&bought).unwrap().to_json();
    let ci = &j["next_session_cart_rate_ci95"];
    assert!(j["with_next_session"].as_u64().unwrap() >= 100, "{j}");
    assert!(
        f(&ci[0]) < 1e-12 && f(&ci[1]) < planted,
        "bought carts: cart rate {} {ci}",
        j["next_session_cart_rate"]
    );
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
    // Paths end before the purchase steps the groups are made of.
    for sessions in users.values() {
        for (path, _) in sessions {
            assert!(
                !path.contains("checkout") && !path.contains("order"),
                "{path}"
            );
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (u, sessions) in &users {
        let h = u
            .bytes()
            .fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(u64::from(c)));
        let target = if h % 2 == 0 { &mut a } else { &mut b };
        target.push(sessions.iter().map(|s| s.0.as_str()).collect::<Vec<_>>());
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
                "high_users",
                "low_users",
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
                "next_session_cart_rate",
                "next_session_cart_rate_ci95",
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

/// On a store as short as `make run`'s (14 days), the report's promotion section takes the
/// planted campaign, not the welcome code used on every day.
#[test]
fn a_short_stores_campaign_is_the_planted_one() {
    let ds = dataset(DateRange::default());
    assert_eq!(ds.order_days().unwrap(), 14);
    let t = truth();
    assert_eq!(
        quire_analytics::causal::promotion::campaign_code(&ds).unwrap(),
        t["promotion"]["promo_code"].as_str().unwrap()
    );
}
