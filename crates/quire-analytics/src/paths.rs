//! `quire analyze paths`: the most common session page paths (consecutive repeats collapsed)
//! of high- vs low-converting users, with the support in each group and a two-proportion test
//! per path, Benjamini–Hochberg corrected.
//!
//! A session's path is its events as pages — `page_view` by its page, `product_view` →
//! product, `search_performed` → search, `add_to_cart` → cart, `checkout_started` → checkout,
//! `order_placed` → order; other events are skipped — with repeats collapsed and cut after
//! [`MAX_STEPS`] steps. Users with at least two sessions are split by their session conversion
//! rate: high = above the median of those users (with a median of 0: every user who converted
//! at least once), low = the others.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::strs;
use crate::output::{AnalysisResult, Table};
use crate::stats::{benjamini_hochberg, two_proportions};
use crate::{Dataset, Error, Result};

pub const MAX_STEPS: usize = 8;
/// Paths seen in fewer sessions (both groups together) are not tested.
pub const MIN_SESSIONS: u64 = 20;

/// The page of an event, or `None` for events that are not part of the path.
pub fn page_of(event_type: &str, page: Option<&str>) -> Option<String> {
    Some(match event_type {
        "page_view" => page.unwrap_or("other").to_owned(),
        "product_view" => "product".into(),
        "search_performed" => "search".into(),
        "add_to_cart" => "cart".into(),
        "checkout_started" => "checkout".into(),
        "order_placed" => "order".into(),
        _ => return None,
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

/// Splits users into high/low converters (see the module docs); returns the session paths of
/// each group and the threshold used.
pub fn split(users: &BTreeMap<String, UserSessions>) -> (Vec<&str>, Vec<&str>, f64) {
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
        target.extend(s.iter().map(|x| x.0.as_str()));
    }
    (high, low, median)
}

pub fn analyze(users: &BTreeMap<String, UserSessions>, top: usize) -> Result<AnalysisResult> {
    let (high, low, median) = split(users);
    if high.is_empty() || low.is_empty() {
        return Err(Error::NoAnswer(
            "need users with at least two sessions in both the high- and the low-converting group"
                .into(),
        ));
    }
    let mut r = compare(&high, &low, top)?;
    r.summary
        .insert(2, ("median_user_cvr".to_owned(), median.into()));
    Ok(r)
}

/// Compares the session paths of two groups (`high`, `low`): support in each, two-proportion
/// tests, Benjamini–Hochberg across the paths seen in at least [`MIN_SESSIONS`] sessions.
pub fn compare(high: &[&str], low: &[&str], top: usize) -> Result<AnalysisResult> {
    if high.is_empty() || low.is_empty() {
        return Err(Error::NoAnswer("both groups need sessions".into()));
    }
    let count = |v: &[&str]| {
        let mut m: HashMap<String, u64> = HashMap::new();
        for p in v {
            *m.entry((*p).to_owned()).or_default() += 1;
        }
        m
    };
    let (ch, cl) = (count(high), count(low));
    let (nh, nl) = (high.len() as u64, low.len() as u64);
    let mut paths: Vec<(String, u64, u64)> = ch
        .keys()
        .chain(cl.keys())
        .map(|p| {
            (
                p.clone(),
                ch.get(p).copied().unwrap_or(0),
                cl.get(p).copied().unwrap_or(0),
            )
        })
        .collect();
    paths.sort_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
    paths.dedup_by(|a, b| a.0 == b.0);
    let tested: Vec<&(String, u64, u64)> =
        paths.iter().filter(|p| p.1 + p.2 >= MIN_SESSIONS).collect();
    let tests: Vec<_> = tested
        .iter()
        .map(|p| two_proportions(p.1, nh, p.2, nl))
        .collect();
    let q = benjamini_hochberg(
        &tests
            .iter()
            .map(|t| t.map_or(f64::NAN, |t| t.p_value))
            .collect::<Vec<_>>(),
    );
    let shown: Vec<usize> = (0..tested.len()).take(top).collect();
    let mut r = AnalysisResult::new("paths", "Session paths: high- vs low-converting users");
    r.fact("high_sessions", nh);
    r.fact("low_sessions", nl);
    r.fact("paths_tested", tested.len() as u64);
    r.fact(
        "significant_paths",
        q.iter().filter(|x| **x < 0.05).count() as u64,
    );
    let t = |i: usize| tests[i].map_or(f64::NAN, |t| t.diff);
    r.tables.push(
        Table::new(
            "paths",
            "Most common paths: support in each group, difference, BH-adjusted q",
        )
        .text("path", shown.iter().map(|&i| tested[i].0.clone()))
        .int("high_sessions", shown.iter().map(|&i| tested[i].1 as i64))
        .int("low_sessions", shown.iter().map(|&i| tested[i].2 as i64))
        .pct(
            "high_support",
            shown.iter().map(|&i| tested[i].1 as f64 / nh as f64),
        )
        .pct(
            "low_support",
            shown.iter().map(|&i| tested[i].2 as f64 / nl as f64),
        )
        .float("diff", shown.iter().map(|&i| t(i)), 4)
        .float(
            "diff_lo",
            shown.iter().map(|&i| tests[i].map_or(f64::NAN, |t| t.lo)),
            4,
        )
        .float(
            "diff_hi",
            shown.iter().map(|&i| tests[i].map_or(f64::NAN, |t| t.hi)),
            4,
        )
        .float(
            "p_value",
            shown
                .iter()
                .map(|&i| tests[i].map_or(f64::NAN, |t| t.p_value)),
            4,
        )
        .float("q_value", shown.iter().map(|&i| q[i]), 4),
    );
    let chart_rows: Vec<usize> = shown.iter().copied().take(10).collect();
    r.charts.push(Chart {
        name: "support".into(),
        title: "Path support: high- vs low-converting users".into(),
        x_label: "path (most common first)".into(),
        y_label: "share of the group's sessions".into(),
        kind: ChartKind::Bars {
            categories: chart_rows.iter().map(|&i| format!("#{}", i + 1)).collect(),
            series: vec![
                BarSeries {
                    name: "high".into(),
                    values: chart_rows
                        .iter()
                        .map(|&i| tested[i].1 as f64 / nh as f64)
                        .collect(),
                    ci: None,
                },
                BarSeries {
                    name: "low".into(),
                    values: chart_rows
                        .iter()
                        .map(|&i| tested[i].2 as f64 / nl as f64)
                        .collect(),
                    ci: None,
                },
            ],
        },
    });
    r.note(format!(
        "support = share of the group's sessions with exactly this path; paths in fewer than {MIN_SESSIONS} sessions are not tested; two-sided pooled z-tests, Benjamini–Hochberg across the tested paths; chart bars #n are the table's rows"
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
    let mut cur: Option<(String, String, Vec<String>, bool)> = None;
    let flush = |c: Option<(String, String, Vec<String>, bool)>,
                 out: &mut BTreeMap<String, UserSessions>| {
        if let Some((u, _, pages, conv)) = c {
            out.entry(u).or_default().push((collapse(&pages), conv));
        }
    };
    for i in 0..ev.height() {
        let (Some(u), Some(sid), Some(t)) = (&users[i], &sids[i], &types[i]) else {
            continue;
        };
        if cur.as_ref().is_none_or(|c| &c.1 != sid) {
            flush(cur.take(), &mut out);
            cur = Some((u.clone(), sid.clone(), Vec::new(), false));
        }
        if let Some(c) = cur.as_mut() {
            if t == "order_placed" {
                c.3 = true;
            }
            if let Some(p) = page_of(t, pages[i].as_deref()) {
                c.2.push(p);
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
        assert_eq!(page_of("review_viewed", None), None);
    }

    #[test]
    fn planted_path_difference_is_found_and_none_otherwise() {
        // High converters: 2 sessions each, one converting; low: 2 sessions, none converting.
        let mut users = BTreeMap::new();
        for i in 0..100 {
            users.insert(
                format!("h{i}"),
                vec![
                    (
                        "home > search > product > cart > checkout > order".to_owned(),
                        true,
                    ),
                    ("home".to_owned(), false),
                ],
            );
            users.insert(
                format!("l{i}"),
                vec![
                    ("home".to_owned(), false),
                    ("home > product".to_owned(), false),
                ],
            );
        }
        let r = analyze(&users, 20).unwrap();
        let j = r.to_json();
        let rows = j["paths"].as_array().unwrap();
        let order = rows
            .iter()
            .find(|x| x["path"].as_str().unwrap().ends_with("order"))
            .unwrap();
        assert!(order["q_value"].as_f64().unwrap() < 1e-6);
        let home = rows.iter().find(|x| x["path"] == "home").unwrap();
        // home: 100/200 in both groups → no difference.
        assert!(home["q_value"].as_f64().unwrap() > 0.5, "{home}");
    }
}
