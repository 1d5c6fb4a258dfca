//! `quire analyze promotion --code CODE`: the incremental sales of a promotion by
//! difference-in-differences, and its cannibalization.
//!
//! The promotion's window is the first to the last day with an order using the code (inside
//! `--from`/`--to` when given: the range picks the campaign; its baseline and after period may
//! lie outside it). Promoted books: the campaign's books when the analyst names them
//! (`--books`); otherwise books with at least 3 code orders whose units in the window were
//! mostly (≥ 50%) sold in code orders — a selection on the window's own sales, so the lift is
//! biased upwards (a book that happened to sell then is picked), which the result warns about.
//! Comparable books: books of other genres (not a promoted book's genre) that
//! sold on some day of the analysed span (before, during or after); the same-genre books too.
//! Selecting them on one period's sales (say, those that sold before) would bias the DiD: books
//! picked for selling in that period sell less in the others by chance alone (regression to
//! the mean), which reads as a lift and a pull-forward dip that are not there.
//!
//! Unit × day panel of units sold: DiD of promoted vs comparable books, before vs during
//! (pre-trend check on the days before); the pull-forward dip: the same DiD, before vs the days
//! after; cannibalization: DiD of the non-promoted books of the promoted genres vs comparable
//! books, before vs during; discount paid to buyers who would have bought anyway: the code
//! orders' discount × the share of promoted units that were not incremental.

use std::collections::{BTreeSet, HashMap, HashSet};

use polars::prelude::*;
use quire_causal::did::{Did, Panel, did, pre_trend};
use quire_causal::stats::Welch;

use super::{date_of_day, day_in_range, day_of, f64s, i64s, strs};
use crate::chart::{Chart, ChartKind, LineSeries};
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

#[derive(Debug, Clone)]
pub struct PromotionParams {
    pub code: String,
    /// Days compared before the window (at most; fewer when the lake starts later).
    pub before_days: u32,
    /// Days after the window examined for a pull-forward dip.
    pub after_days: u32,
    /// The campaign's books, when known; `None`: chosen by their code orders in the window.
    pub books: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Promoted,
    SameGenre,
    Comparable,
}

pub fn run(ds: &Dataset, p: &PromotionParams) -> Result<AnalysisResult> {
    if p.before_days < 3 || p.after_days == 0 {
        return Err(Error::Invalid(format!(
            "--before-days must be >= 3 (a pre-trend needs 3 days) and --after-days >= 1; got {} and {}",
            p.before_days, p.after_days
        )));
    }
    let m = ds.models();
    let orders = m
        .fct_orders
        .clone()
        .select([
            col("order_id"),
            col("order_timestamp").cast(DataType::Int64).alias("ts"),
            col("promo_code"),
            col("discount"),
        ])
        .collect()?;
    let (o_id, o_ts, o_code, o_disc) = (
        strs(&orders, "order_id")?,
        i64s(&orders, "ts")?,
        strs(&orders, "promo_code")?,
        f64s(&orders, "discount")?,
    );
    // The code's orders inside the range: they make the window.
    let range = ds.range();
    let with_code = |i: usize| o_code[i] == p.code && day_in_range(range, day_of(o_ts[i]));
    let code_orders: HashSet<&str> = (0..orders.height())
        .filter(|&i| with_code(i))
        .map(|i| o_id[i].as_str())
        .collect();
    let code_days: Vec<i64> = (0..orders.height())
        .filter(|&i| with_code(i))
        .map(|i| day_of(o_ts[i]))
        .collect();
    let (Some(&first), Some(&last)) = (code_days.iter().min(), code_days.iter().max()) else {
        return Err(Error::NoAnswer(format!(
            "no order used the promo code {}{}",
            p.code,
            if range.from.is_some() || range.to.is_some() {
                " in the range"
            } else {
                ""
            }
        )));
    };
    let discount: f64 = (0..orders.height())
        .filter(|&i| with_code(i))
        .map(|i| o_disc[i])
        .sum();
    let items = m.fct_order_items.clone().select([
        col("order_id"),
        col("book_id"),
        col("quantity").cast(DataType::Float64),
        col("order_timestamp").cast(DataType::Int64).alias("ts"),
    ]);
    let items = match ds.books() {
        Some(b) => items.join(
            b.select([col("book_id"), col("genre")]),
            [col("book_id")],
            [col("book_id")],
            JoinArgs::new(JoinType::Left),
        ),
        None => {
            return Err(Error::Invalid(
                "promotion needs the books dimension (genres): run `quire dims load --books`"
                    .into(),
            ));
        }
    }
    .collect()?;
    let (i_order, i_book, i_qty, i_ts, i_genre) = (
        strs(&items, "order_id")?,
        strs(&items, "book_id")?,
        f64s(&items, "quantity")?,
        i64s(&items, "ts")?,
        strs(&items, "genre")?,
    );
    let data_first = i_ts.iter().copied().min().map(day_of).unwrap_or(first);
    let data_last = i_ts.iter().copied().max().map(day_of).unwrap_or(last);
    let before_start = (first - i64::from(p.before_days)).max(data_first);
    let after_end = (last + i64::from(p.after_days)).min(data_last);
    if first - before_start < 3 {
        return Err(Error::NoAnswer(format!(
            "the promotion starts on {}: fewer than 3 days of data before it",
            date_of_day(first)
        )));
    }
    // Promoted books: mostly sold with the code in the window.
    let mut window_units: HashMap<&str, (f64, f64, usize)> = HashMap::new();
    let mut genre_of: HashMap<&str, &str> = HashMap::new();
    for i in 0..items.height() {
        genre_of.insert(i_book[i].as_str(), i_genre[i].as_str());
        let d = day_of(i_ts[i]);
        if d < first || d > last {
            continue;
        }
        let e = window_units.entry(i_book[i].as_str()).or_default();
        e.0 += i_qty[i];
        if code_orders.contains(i_order[i].as_str()) {
            e.1 += i_qty[i];
            e.2 += 1;
        }
    }
    // Named books that never sold still belong to the campaign (with no units): their genre
    // comes from the catalogue.
    let catalogue_genres: Vec<(String, String)> = match (&p.books, ds.books()) {
        (Some(books), Some(dim)) => {
            let named = Series::new("named".into(), books.clone());
            let df = dim
                .select([col("book_id"), col("genre")])
                .filter(col("book_id").is_in(lit(named).implode(false), false))
                .collect()?;
            let (b, g) = (strs(&df, "book_id")?, strs(&df, "genre")?);
            b.into_iter().zip(g).collect()
        }
        _ => Vec::new(),
    };
    for (b, g) in &catalogue_genres {
        genre_of.entry(b.as_str()).or_insert(g.as_str());
    }
    let promoted: BTreeSet<&str> = match &p.books {
        Some(books) => {
            let unknown: Vec<&str> = books
                .iter()
                .map(String::as_str)
                .filter(|b| !genre_of.contains_key(b))
                .collect();
            if !unknown.is_empty() {
                return Err(Error::Invalid(format!(
                    "--books: {} not in the books dimension",
                    unknown.join(", ")
                )));
            }
            books.iter().map(String::as_str).collect()
        }
        None => window_units
            .iter()
            .filter(|(_, (all, code, n))| *n >= 3 && *code >= 0.5 * *all)
            .map(|(b, _)| *b)
            .collect(),
    };
    if promoted.is_empty() {
        return Err(Error::NoAnswer(format!(
            "no book was sold mostly with the code {} (>= 3 code orders, >= 50% of its window \
             units): name the campaign's books with --books",
            p.code
        )));
    }
    let promo_genres: BTreeSet<&str> = promoted
        .iter()
        .filter_map(|b| genre_of.get(b).copied())
        .collect();
    // Daily units per book over [before_start, after_end].
    let periods = (after_end - before_start + 1) as usize;
    let mut units: HashMap<&str, Vec<f64>> = HashMap::new();
    for i in 0..items.height() {
        let d = day_of(i_ts[i]);
        if d < before_start || d > after_end {
            continue;
        }
        units
            .entry(i_book[i].as_str())
            .or_insert_with(|| vec![0.0; periods])[(d - before_start) as usize] += i_qty[i];
    }
    // A named book that sold nothing in the span is in the panel with no units.
    for b in &promoted {
        units.entry(b).or_insert_with(|| vec![0.0; periods]);
    }
    let pre = 0..(first - before_start) as usize;
    let during = pre.end..(last - before_start + 1) as usize;
    let after = during.end..periods;
    // Every book of `units` sold on some day of the span: the same selection for every day.
    let group = |b: &str| -> Group {
        if promoted.contains(b) {
            return Group::Promoted;
        }
        match genre_of.get(b) {
            Some(g) if promo_genres.contains(g) => Group::SameGenre,
            _ => Group::Comparable,
        }
    };
    let mut rows: Vec<(&str, Group, &Vec<f64>)> =
        units.iter().map(|(b, s)| (*b, group(b), s)).collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let panel_of = |treated: Group| -> Result<Panel> {
        let sel: Vec<&(&str, Group, &Vec<f64>)> = rows
            .iter()
            .filter(|r| r.1 == treated || r.1 == Group::Comparable)
            .collect();
        Ok(Panel::new(
            sel.iter().map(|r| r.1 == treated).collect(),
            periods,
            sel.iter().flat_map(|r| r.2.iter().copied()).collect(),
        )?)
    };
    let promo_panel = panel_of(Group::Promoted)?;
    let lift = did(&promo_panel, pre.clone(), during.clone())?;
    let trend = pre_trend(&promo_panel, pre.clone())?;
    let dip = if after.is_empty() {
        None
    } else {
        Some(did(&promo_panel, pre.clone(), after.clone())?)
    };
    let cannibal = if rows.iter().any(|r| r.1 == Group::SameGenre) {
        Some(did(
            &panel_of(Group::SameGenre)?,
            pre.clone(),
            during.clone(),
        )?)
    } else {
        None
    };
    // Discount on units that would have sold anyway.
    let promoted_window_units: f64 = rows
        .iter()
        .filter(|r| r.1 == Group::Promoted)
        .map(|r| r.2[during.clone()].iter().sum::<f64>())
        .sum();
    let incremental = lift.total.max(0.0).min(promoted_window_units);
    let anyway_share = if promoted_window_units > 0.0 {
        1.0 - incremental / promoted_window_units
    } else {
        0.0
    };

    let mut res = AnalysisResult::new(
        "promotion",
        format!(
            "Promotion {}: incremental sales and cannibalization",
            p.code
        ),
    );
    res.fact("code", p.code.clone());
    res.fact(
        "window",
        serde_json::json!([date_of_day(first), date_of_day(last)]),
    );
    res.fact(
        "before",
        serde_json::json!([date_of_day(before_start), date_of_day(first - 1)]),
    );
    res.fact(
        "after",
        if after.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!([date_of_day(last + 1), date_of_day(after_end)])
        },
    );
    res.fact(
        "promoted_books",
        serde_json::Value::from(promoted.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
    );
    res.fact(
        "promoted_genres",
        serde_json::Value::from(
            promo_genres
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ),
    );
    res.fact("code_orders", code_orders.len() as u64);
    res.fact("discount_paid", discount);
    res.fact("incremental_units", lift.total);
    res.fact("promoted_units_in_window", promoted_window_units);
    res.fact(
        "discount_to_buyers_who_would_have_bought_anyway",
        discount * anyway_share,
    );
    res.fact("pre_trend_p_value", trend.p_value);
    if trend.p_value < 0.05 {
        res.warn(format!(
            "pre-trend check failed: promoted and comparable books already trended apart before \
             the promotion (slope difference {:.4} units/book/day, p = {:.4}); the DiD assumes \
             parallel trends",
            trend.diff, trend.p_value
        ));
    }
    if p.books.is_none() {
        res.warn(
            "the promoted books were chosen by their code orders in the window, a selection on \
             the outcome: books that happened to sell then are picked, so the lift is biased \
             upwards; name the campaign's books with --books for an unbiased estimate",
        );
    }
    let mut comps: Vec<(&str, &Did)> = vec![("promotion lift (during vs before)", &lift)];
    if let Some(d) = &dip {
        comps.push(("pull-forward dip (after vs before)", d));
    }
    if let Some(d) = &cannibal {
        comps.push(("cannibalization: same-genre books (during vs before)", d));
    }
    let w = |f: &dyn Fn(&Welch) -> f64| comps.iter().map(|c| f(&c.1.effect)).collect::<Vec<f64>>();
    res.tables.push(
        Table::new(
            "did",
            "difference-in-differences of units per book and day, against comparable books",
        )
        .text("comparison", comps.iter().map(|c| c.0))
        .int(
            "treated_books",
            comps.iter().map(|c| c.1.treated_units as i64),
        )
        .int(
            "control_books",
            comps.iter().map(|c| c.1.control_units as i64),
        )
        .float(
            "treated_before",
            comps.iter().map(|c| c.1.treated_before),
            4,
        )
        .float("treated_after", comps.iter().map(|c| c.1.treated_after), 4)
        .float(
            "control_before",
            comps.iter().map(|c| c.1.control_before),
            4,
        )
        .float("control_after", comps.iter().map(|c| c.1.control_after), 4)
        .float("effect_per_book_day", w(&|x| x.diff), 4)
        .float("ci95_low", w(&|x| x.ci95[0]), 4)
        .float("ci95_high", w(&|x| x.ci95[1]), 4)
        .float("p_value", w(&|x| x.p_value), 4)
        .float("total_units", comps.iter().map(|c| c.1.total), 1),
    );
    res.tables.push(
        Table::new(
            "pre_trend",
            "pre-trend check: per-book slope of daily units before the promotion",
        )
        .float("slope_difference", [trend.diff], 5)
        .float("ci95_low", [trend.ci95[0]], 5)
        .float("ci95_high", [trend.ci95[1]], 5)
        .float("p_value", [trend.p_value], 4),
    );
    let mean_series = |g: Group| -> Vec<(f64, f64)> {
        let sel: Vec<&Vec<f64>> = rows.iter().filter(|r| r.1 == g).map(|r| r.2).collect();
        (0..periods)
            .map(|d| {
                let v = sel.iter().map(|s| s[d]).sum::<f64>() / sel.len().max(1) as f64;
                ((d as i64 - pre.end as i64) as f64, v)
            })
            .collect()
    };
    let mut series = vec![
        LineSeries {
            name: "promoted".into(),
            points: mean_series(Group::Promoted),
            step: false,
        },
        LineSeries {
            name: "comparable".into(),
            points: mean_series(Group::Comparable),
            step: false,
        },
    ];
    if cannibal.is_some() {
        series.push(LineSeries {
            name: "same genre, not promoted".into(),
            points: mean_series(Group::SameGenre),
            step: false,
        });
    }
    res.charts.push(Chart {
        name: "units".into(),
        title: format!(
            "Units per book and day around {} (day 0 = first day)",
            p.code
        ),
        x_label: "day relative to the promotion".into(),
        y_label: "units per book".into(),
        kind: ChartKind::Lines { series },
    });
    res.note(
        "promoted books: >= 3 code orders and >= 50% of their window units sold with the code; \
         comparable books: other genres, sold on some day from before to after the window (so \
         that no period is favoured); each book's mean daily units after minus before, \
         compared by Welch's test (robust to serial correlation within a book)",
    );
    res.note(
        "discount to buyers who would have bought anyway = discount paid x (1 − incremental \
         units / promoted units sold in the window)",
    );
    Ok(res)
}

/// The code of the report's promotion section: among the codes used during less than 31 days
/// and less than half of the data's days (a campaign, not a standing code such as a welcome
/// discount, which on a short store spans it all), the one with the most orders (ties: the
/// smallest code).
pub fn campaign_code(ds: &Dataset) -> Result<String> {
    let longest = 31.min(i64::from(ds.order_days()?) / 2);
    let df = ds
        .models()
        .fct_orders
        .clone()
        .filter(
            col("promo_code")
                .is_not_null()
                .and(col("promo_code").neq(lit(""))),
        )
        .group_by([col("promo_code")])
        .agg([
            len().alias("n"),
            (col("date").max() - col("date").min())
                .dt()
                .total_days(false)
                .alias("span"),
        ])
        .filter(col("span").lt(lit(longest)))
        .sort(
            ["n", "promo_code"],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .limit(1)
        .collect()?;
    strs(&df, "promo_code")?.into_iter().next().ok_or_else(|| {
        Error::NoAnswer(format!(
            "no promo code was used during fewer than {longest} days (a campaign)"
        ))
    })
}
