//! `quire analyze after-abandon`: what users do after abandoning a cart. A session abandons its
//! cart when it has an `add_to_cart` and no `order_placed`; the abandonment point is its last
//! `add_to_cart`. Reported with Wilson intervals: the next event in that session (or leaving),
//! and the first action of the user's next session (or no next session within observation),
//! plus how often that next session orders and how often it starts at the cart.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::strs;
use crate::output::{AnalysisResult, Table};
use crate::stats::{Z95, wilson};
use crate::{Dataset, Error, Result};

/// One event of a session, in time order: its action label (`page_view:<page>` for page views,
/// else the event type).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub user: String,
    pub actions: Vec<String>,
}

pub const LEFT: &str = "(left the site)";
/// The action of a session that starts by returning to the cart.
pub const CART: &str = "page_view:cart";
pub const NO_NEXT: &str = "(no next session)";

/// What follows each abandonment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcomes {
    pub abandoned: u64,
    pub next_in_session: BTreeMap<String, u64>,
    pub next_session_first: BTreeMap<String, u64>,
    pub next_session_orders: u64,
    /// Next sessions that start at the cart ([`CART`]).
    pub next_session_at_cart: u64,
    pub with_next_session: u64,
}

/// `sessions` grouped by user and in time order within each user.
pub fn outcomes(sessions: &[Session]) -> Outcomes {
    let mut o = Outcomes::default();
    for (i, s) in sessions.iter().enumerate() {
        let ordered = s.actions.iter().any(|a| a == "order_placed");
        let Some(last_add) = s.actions.iter().rposition(|a| a == "add_to_cart") else {
            continue;
        };
        if ordered {
            continue;
        }
        o.abandoned += 1;
        let next = s.actions.get(last_add + 1).map_or(LEFT, String::as_str);
        *o.next_in_session.entry(next.to_owned()).or_default() += 1;
        match sessions.get(i + 1).filter(|n| n.user == s.user) {
            Some(n) => {
                o.with_next_session += 1;
                let first = n.actions.first().map_or(NO_NEXT, String::as_str);
                *o.next_session_first.entry(first.to_owned()).or_default() += 1;
                if n.actions.iter().any(|a| a == "order_placed") {
                    o.next_session_orders += 1;
                }
                if first == CART {
                    o.next_session_at_cart += 1;
                }
            }
            None => *o.next_session_first.entry(NO_NEXT.to_owned()).or_default() += 1,
        }
    }
    o
}

fn share_table(name: &str, title: &str, counts: &BTreeMap<String, u64>, n: u64) -> Table {
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let ci: Vec<(f64, f64)> = rows.iter().map(|r| wilson(*r.1, n, Z95)).collect();
    Table::new(name, title)
        .text("action", rows.iter().map(|r| r.0.clone()))
        .int("count", rows.iter().map(|r| *r.1 as i64))
        .pct("share", rows.iter().map(|r| *r.1 as f64 / n as f64))
        .pct("lo", ci.iter().map(|c| c.0))
        .pct("hi", ci.iter().map(|c| c.1))
}

pub fn analyze(sessions: &[Session]) -> Result<AnalysisResult> {
    let o = outcomes(sessions);
    if o.abandoned == 0 {
        return Err(Error::NoAnswer("no abandoned carts in the range".into()));
    }
    let mut r = AnalysisResult::new("after-abandon", "After a cart is abandoned");
    r.fact("abandoned_sessions", o.abandoned);
    r.fact("with_next_session", o.with_next_session);
    rate_fact(
        &mut r,
        "next_session_order_rate",
        o.next_session_orders,
        o.with_next_session,
    );
    rate_fact(
        &mut r,
        "next_session_cart_rate",
        o.next_session_at_cart,
        o.with_next_session,
    );
    r.tables.push(share_table(
        "next_in_session",
        "Next event in the session after the last add-to-cart (Wilson 95%)",
        &o.next_in_session,
        o.abandoned,
    ));
    r.tables.push(share_table(
        "next_session_first_action",
        "First action of the user's next session (Wilson 95%)",
        &o.next_session_first,
        o.abandoned,
    ));
    let t = &r.tables[0];
    let cats: Vec<String> = match t.column("action") {
        Some(crate::Values::Text(v)) => v
            .iter()
            .take(10)
            .map(|x| x.clone().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    let vals: Vec<f64> = cats
        .iter()
        .map(|c| o.next_in_session.get(c).copied().unwrap_or(0) as f64 / o.abandoned as f64)
        .collect();
    let cis: Vec<(f64, f64)> = cats
        .iter()
        .map(|c| {
            wilson(
                o.next_in_session.get(c).copied().unwrap_or(0),
                o.abandoned,
                Z95,
            )
        })
        .collect();
    r.charts.push(Chart {
        name: "next_in_session".into(),
        title: "After the last add-to-cart of an abandoned session".into(),
        x_label: "next action".into(),
        y_label: "share of abandoned sessions".into(),
        kind: ChartKind::Bars {
            categories: cats,
            series: vec![BarSeries {
                name: "share".into(),
                values: vals,
                ci: Some(cis),
            }],
        },
    });
    r.note("abandoned = a session with an add_to_cart and no order_placed; the next session is the user's next one within the range; its order rate and cart rate (its first event is a page view of the cart) are shares of the abandoned sessions that have one (Wilson 95%)");
    Ok(r)
}

/// The lake side: each session's actions, users together, in time order.
pub fn prepare(ds: &Dataset) -> Result<Vec<Session>> {
    let ev = ds.events()?;
    let ev = ev
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
    let mut out: Vec<Session> = Vec::new();
    let mut current: Option<&str> = None;
    for i in 0..ev.height() {
        let (Some(u), Some(sid), Some(t)) = (&users[i], &sids[i], &types[i]) else {
            continue;
        };
        if current != Some(sid.as_str()) {
            out.push(Session {
                user: u.clone(),
                actions: Vec::new(),
            });
            current = Some(sid.as_str());
        }
        let label = if t == "page_view" {
            format!("page_view:{}", pages[i].as_deref().unwrap_or("?"))
        } else {
            t.clone()
        };
        if let Some(s) = out.last_mut() {
            s.actions.push(label);
        }
    }
    Ok(out)
}

pub fn run(ds: &Dataset) -> Result<AnalysisResult> {
    analyze(&prepare(ds)?)
}

/// `key` = `k / n` (NaN when `n` is 0) and `key_ci95` = its Wilson 95% interval.
fn rate_fact(r: &mut AnalysisResult, key: &str, k: u64, n: u64) {
    let rate = if n > 0 { k as f64 / n as f64 } else { f64::NAN };
    r.fact(key, rate);
    let (lo, hi) = wilson(k, n, Z95);
    r.fact(&format!("{key}_ci95"), vec![lo, hi]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(user: &str, a: &[&str]) -> Session {
        Session {
            user: user.into(),
            actions: a.iter().map(|x| (*x).to_owned()).collect(),
        }
    }

    #[test]
    fn outcomes_by_hand() {
        let sessions = vec![
            s("u1", &["product_view", "add_to_cart", "page_view:home"]),
            s(
                "u1",
                &["page_view:cart", "checkout_started", "order_placed"],
            ),
            s("u2", &["add_to_cart"]),
            s("u3", &["add_to_cart", "order_placed"]),
            s("u4", &["add_to_cart", "add_to_cart", "remove_from_cart"]),
            s("u4", &["product_view"]),
        ];
        let o = outcomes(&sessions);
        assert_eq!(o.abandoned, 3);
        assert_eq!(o.next_in_session["page_view:home"], 1);
        assert_eq!(o.next_in_session[LEFT], 1);
        assert_eq!(o.next_in_session["remove_from_cart"], 1);
        assert_eq!(o.next_session_first["page_view:cart"], 1);
        assert_eq!(o.next_session_first[NO_NEXT], 1);
        assert_eq!(o.next_session_first["product_view"], 1);
        assert_eq!((o.with_next_session, o.next_session_orders), (2, 1));
        assert_eq!(o.next_session_at_cart, 1);
        let r = analyze(&sessions).unwrap();
        assert_eq!(r.to_json()["next_in_session"].as_array().unwrap().len(), 3);
        assert!(analyze(&sessions[3..4]).is_err());
    }
}
