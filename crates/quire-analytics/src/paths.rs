//! `quire analyze paths`: the most common session page paths (consecutive repeats collapsed)
//! of high- vs low-converting users, with each path's support in each group and a test per
//! path, Benjamini–Hochberg corrected.
//!
//! A session's path is its events as pages — `page_view` by its page, `product_view` →
//! product, `search_performed` → search, `add_to_cart` → cart; other events are skipped — up
//! to its first `checkout_started` or `order_placed`, with repeats collapsed and cut after
//! [`MAX_STEPS`] steps. The purchase steps are left out: the groups are made by conversion, so
//! paths holding `checkout > order` would only restate the split. Users with at least two
//! sessions are split by their session conversion rate: high = above the median of those users
//! (with a median of 0: every user who converted at least once), low = the others.
//!
//! The unit is the user, as the split is: a path's support in a group is the mean, over the
//! group's users, of the share of the user's sessions with that path, and the test is Welch's
//! on those per-user shares. Counting sessions as independent would treat a user's many
//! similar sessions as many observations, and give p-values too small.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::strs;
use crate::output::{AnalysisResult, Table};
use crate::stats::benjamini_hochberg;
use crate::{Dataset, Error, Result};

pub const MAX_STEPS: usize = 8;
/// Paths seen in fewer sessions (both groups together) are not tested.
pub const MIN_SESSIONS: u64 = 20;

/// A step of a session's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A page of the path.
    Page(String),
    /// `checkout_started` or `order_placed`: the path ends before it.
    Purchase,
    /// Not part of the path.
    Skip,
}

/// The step of an event.
pub fn step_of(event_type: &str, page: Option<&str>) -> Step {
    Step::Page(match event_type {
        "page_view" => page.unwrap_or("other").to_owned(),
        "product_view" => "product".into(),
        "search_performed" => "search".into(),
        "add_to_cart" => "cart".into(),
        "checkout_started" | "order_placed" => return Step::Purchase,
        _ => return Step::Skip,
    })
}

/// Pages → the collapsed path text (`home > search > product`).
pub fn collapse(pages: &[String]) -> String {
    let mut out: Vec<&str> = Vec::new();
    for p in pages {
        if out.last() != Some(&p.as_str()) {
            out.push(p);
        }
    }
    let cut = out.len() > MAX_STEPS;
    let mut s = out[..out.len().min(MAX_STEPS)].join(" > ");
    if cut {
        s.push_str(" > …");
    }
    s
}

/// One user's sessions: (path, converted).
pub type UserSessions = Vec<(String, bool)>;

/// Splits users into high/low converters (see the module docs); returns each group's users
/// (each user's session paths) and the threshold used.
pub fn split(users: &BTreeMap<String, UserSessions>) -> (Vec<Vec<&str>>, Vec<Vec<&str>>, f64) {
    let eligible: Vec<(&UserSessions, f64)> = users
        .values()
        .filter(|s| s.len() >= 2)
        .map(|s| (s, s.iter().filter(|x| x.1).count() as f64 / s.len() as f64))
        .collect();
    let mut rates: Vec<f64> = eligible.iter().map(|e| e.1).collect();
    rates.sort_by(f64::total_cmp);
    let median = if rates.is_empty() {
        0.0
    } else if rates.len() % 2 == 1 {
        rates[rates.len() / 2]
    } else {
        (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0
    };
    let (mut high, mut low) = (Vec::new(), Vec::new());
    for (s, rate) in eligible {
        let is_high = if median > 0.0 {
            rate > median
        } else {
            rate > 0.0
        };
        let target = if is_high { &mut high } else { &mut low };
        target.push(s.iter().map(|x| x.0.as_str()).collect());
    }
    (high, low, median)
}

pub fn analyze(users: &BTreeMap<String, UserSessions>, top: usize) -> Result<AnalysisResult> {
    let (high, low, median) = split(users);
    if high.len() < 2 || low.len() < 2 {
        return Err(Error::NoAnswer(
            "need at least two users with at least two sessions in both the high- and the \
             low-converting group"
                .into(),
        ));
    }
    let mut r = compare(&high, &low, top)?;
    r.summary
        .insert(4, ("median_user_cvr".to_owned(), median.into()));
    Ok(r)
}

/// One group's users: per path, the sessions with it, and each user's share of sessions with
/// it (users without it: 0).
struct Group {
    users: usize,
    sessions: u64,
    /// path → (sessions, [(user index, share)])
    paths: HashMap<String, (u64, Vec<(usize, f64)>)>,
}

impl Group {
    fn of(users: &[Vec<&str>]) -> Self {
        let mut paths: HashMap<String, (u64, Vec<(usize, f64)>)> = HashMap::new();
        let mut sessions = 0;
        for (u, s) in users.iter().enumerate() {
            let mut counts: HashMap<&str, u64> = HashMap::new();
            // A session that began at checkout has no path: it counts among the user's
            // sessions, under no path.
            for p in s.iter().filter(|p| !p.is_empty()) {
                *counts.entry(*p).or_default() += 1;
            }
            sessions += s.len() as u64;
            for (p, c) in counts {
                let e = paths.entry(p.to_owned()).or_default();
                e.0 += c;
                e.1.push((u, c as f64 / s.len() as f64));
            }
        }
        Self {
            users: users.len(),
            sessions,
            paths,
        }
    }

    /// Sessions with `path`, and every user's share of sessions with it.
    fn shares(&self, path: &str) -> (u64, Vec<f64>) {
        let mut out = vec![0.0; self.users];
        let Some((n, held)) = self.paths.get(path) else {
            return (0, out);
        };
        for &(u, share) in held {
            out[u] = share;
        }
        (*n, out)
    }
}

/// A tested path: sessions with it in each group, mean per-user share in each, Welch's test.
struct Tested {
    path: String,
    high_sessions: u64,
    low_sessions: u64,
    high_support: f64,
    low_support: f64,
    test: Option<quire_causal::stats::Welch>,
}

/// Compares the session paths of two groups of users (each user: their sessions' paths):
/// per-user support in each, Welch's tests, Benjamini–Hochberg across the paths seen in at
/// least [`MIN_SESSIONS`] sessions.
pub fn compare(high: &[Vec<&str>], low: &[Vec<&str>], top: usize) -> Result<AnalysisResult> {
    if high.len() < 2 || low.len() < 2 {
        return Err(Error::NoAnswer(
            "both groups need at least two users".into(),
        ));
    }
    let (h, l) = (Group::of(high), Group::of(low));
    let mut paths: Vec<(&String, u64)> = h
        .paths
        .keys()
        .chain(l.paths.keys())
        .map(|p| {
            let n = |g: &Group| g.paths.get(p).map_or(0, |e| e.0);
            (p, n(&h) + n(&l))
        })
        .collect();
    paths.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    paths.dedup_by(|a, b| a.0 == b.0);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let tested: Vec<Tested> = paths
        .iter()
        .filter(|p| p.1 >= MIN_SESSIONS)
        .map(|(p, _)| {
            let ((hn, hs), (ln, ls)) = (h.shares(p), l.shares(p));
            Tested {
                path: (*p).clone(),
                high_sessions: hn,
                low_sessions: ln,
                high_support: mean(&hs),
                low_support: mean(&ls),
                // Every user of both groups at one share (a path of every session): no test.
                test: quire_causal::stats::welch(&hs, &ls).ok(),
            }
        })
        .collect();
    let q = benjamini_hochberg(
        &tested
            .iter()
            .map(|t| t.test.as_ref().map_or(f64::NAN, |w| w.p_value))
            .collect::<Vec<_>>(),
    );
    let shown: Vec<&Tested> = tested.iter().take(top).collect();
    let mut r = AnalysisResult::new("paths", "Session paths: high- vs low-converting users");
    r.fact("high_users", h.users as u64);
    r.fact("low_users", l.users as u64);
    r.fact("high_sessions", h.sessions);
    r.fact("low_sessions", l.sessions);
    r.fact("paths_tested", tested.len() as u64);
    r.fact(
        "significant_paths",
        q.iter().filter(|x| **x < 0.05).count() as u64,
    );
    let test = |f: fn(&quire_causal::stats::Welch) -> f64| {
        shown
            .iter()
            .map(move |t| t.test.as_ref().map_or(f64::NAN, f))
    };
    r.tables.push(
        Table::new(
            "paths",
            "Most common paths: support in each group (mean share of a user's sessions), \
             difference, BH-adjusted q",
        )
        .text("path", shown.iter().map(|t| t.path.clone()))
        .int(
            "high_sessions",
            shown.iter().map(|t| t.high_sessions as i64),
        )
        .int("low_sessions", shown.iter().map(|t| t.low_sessions as i64))
        .pct("high_support", shown.iter().map(|t| t.high_support))
        .pct("low_support", shown.iter().map(|t| t.low_support))
        .float("diff", test(|w| w.diff), 4)
        .float("diff_lo", test(|w| w.ci95[0]), 4)
        .float("diff_hi", test(|w| w.ci95[1]), 4)
        .float("p_value", test(|w| w.p_value), 4)
        .float("q_value", q.iter().take(top).copied(), 4),
    );
    let chart_rows: Vec<&Tested> = shown.iter().copied().take(10).collect();
    r.charts.push(Chart {
        name: "support".into(),
        title: "Path support: high- vs low-converting users".into(),
        x_label: "path (most common first)".into(),
        y_label: "mean share of a user's sessions".into(),
        kind: ChartKind::Bars {
            categories: (1..=chart_rows.len()).map(|i| format!("#{i}")).collect(),
            series: vec![
                BarSeries {
                    name: "high".into(),
                    values: chart_rows.iter().map(|t| t.high_support).collect(),
                    ci: None,
                },
                BarSeries {
                    name: "low".into(),
                    values: chart_rows.iter().map(|t| t.low_support).collect(),
                    ci: None,
                },
            ],
        },
    });
    r.note(format!(
        "a path ends before the session's first checkout or order; support = mean over the group's users of the share of their sessions with exactly this path; paths in fewer than {MIN_SESSIONS} sessions are not tested; Welch's t-tests on the per-user shares (the user is the unit), Benjamini–Hochberg across the tested paths; chart bars #n are the table's rows"
    ));
    Ok(r)
}

/// The lake side: per user, each session's path and whether it converted.
pub fn prepare(ds: &Dataset) -> Result<BTreeMap<String, UserSessions>> {
    let ev = ds
        .events()?
        .lazy()
        .sort(
            ["user_id", "ts"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    let users = strs(&ev, "user_id")?;
    let sids = strs(&ev, "session_id")?;
    let types = strs(&ev, "event_type")?;
    let pages = strs(&ev, "page")?;
    let mut out: BTreeMap<String, UserSessions> = BTreeMap::new();
    // (user, session, pages, converted, path ended at a purchase step)
    type Open = (String, String, Vec<String>, bool, bool);
    let mut cur: Option<Open> = None;
    let flush = |c: Option<Open>, out: &mut BTreeMap<String, UserSessions>| {
        if let Some((u, _, pages, conv, _)) = c {
            out.entry(u).or_default().push((collapse(&pages), conv));
        }
    };
    for i in 0..ev.height() {
        let (Some(u), Some(sid), Some(t)) = (&users[i], &sids[i], &types[i]) else {
            continue;
        };
        if cur.as_ref().is_none_or(|c| &c.1 != sid) {
            flush(cur.take(), &mut out);
            cur = Some((u.clone(), sid.clone(), Vec::new(), false, false));
        }
        if let Some(c) = cur.as_mut() {
            if t == "order_placed" {
                c.3 = true;
            }
            match step_of(t, pages[i].as_deref()) {
                Step::Page(p) if !c.4 => c.2.push(p),
                Step::Purchase => c.4 = true,
                _ => {}
            }
        }
    }
    flush(cur.take(), &mut out);
    Ok(out)
}

pub fn run(ds: &Dataset, top: usize) -> Result<AnalysisResult> {
    analyze(&prepare(ds)?, top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_and_cut() {
        let p = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            collapse(&p(&["home", "home", "search", "product", "product"])),
            "home > search > product"
        );
        let long = p(&["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]);
        assert_eq!(collapse(&long), "a > b > a > b > a > b > a > b > …");
        assert_eq!(step_of("review_viewed", None), Step::Skip);
        assert_eq!(step_of("checkout_started", None), Step::Purchase);
    }

    /// High converters: a cart path in one session of two or three, one converting; low:
    /// two or three sessions, none converting, never that path. (Differences where there are
    /// none: the random halves of the simulated store's test.)
    #[test]
    fn a_planted_path_difference_is_found() {
        let mut users = BTreeMap::new();
        for i in 0..100 {
            let mut high = vec![
                ("home > search > product > cart".to_owned(), true),
                ("home".to_owned(), false),
            ];
            let mut low = vec![
                ("home".to_owned(), false),
                ("home > product".to_owned(), false),
            ];
            if i % 2 == 0 {
                high.push(("home".to_owned(), false));
                low.push(("home > product".to_owned(), false));
            }
            users.insert(format!("h{i}"), high);
            users.insert(format!("l{i}"), low);
        }
        let r = analyze(&users, 20).unwrap();
        let j = r.to_json();
        assert_eq!(
            (&j["high_users"], &j["low_users"]),
            (&100.into(), &100.into())
        );
        let rows = j["paths"].as_array().unwrap();
        let cart = rows
            .iter()
            .find(|x| x["path"].as_str().unwrap().ends_with("cart"))
            .unwrap();
        // Shares 1/2 and 1/3 against none.
        let support = cart["high_support"].as_f64().unwrap();
        assert!((support - (0.5 + 1.0 / 3.0) / 2.0).abs() < 1e-9, "{cart}");
        assert!(cart["q_value"].as_f64().unwrap() < 1e-6, "{cart}");
    }

    /// Support is the mean of the users' shares, by hand: high users A (X, X, Y) and B (X, Y),
    /// low users C (Y, Y) and D (X, Y, Y, and one with no path), ten of each (X in 30 + 10
    /// sessions).
    #[test]
    fn support_is_the_mean_share_of_a_users_sessions() {
        let user = |paths: &[&'static str]| paths.to_vec();
        let high: Vec<Vec<&str>> = (0..10)
            .flat_map(|_| [user(&["X", "X", "Y"]), user(&["X", "Y"])])
            .collect();
        let low: Vec<Vec<&str>> = (0..10)
            .flat_map(|_| [user(&["Y", "Y"]), user(&["X", "Y", "Y", ""])])
            .collect();
        let j = compare(&high, &low, 10).unwrap().to_json();
        // D's fourth session began at checkout: a session of D's, no path.
        let paths: Vec<&str> = j["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].as_str().unwrap())
            .collect();
        assert!(!paths.contains(&""), "{paths:?}");
        let x = j["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == "X")
            .unwrap()
            .clone();
        assert_eq!(
            (&x["high_sessions"], &x["low_sessions"]),
            (&30.into(), &10.into())
        );
        let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
        assert!(close(&x["high_support"], (2.0 / 3.0 + 0.5) / 2.0), "{x}");
        assert!(close(&x["low_support"], 0.25 / 2.0), "{x}");
        assert!(close(&x["diff"], (2.0 / 3.0 + 0.5) / 2.0 - 0.125), "{x}");
        assert_eq!(
            (&j["high_users"], &j["high_sessions"]),
            (&20.into(), &50.into())
        );
    }
}
