//! `quire analyze gateway`: books whose purchase as a customer's first book raises their later
//! spend. Per book with enough first buyers: the effect (ATT) on the revenue of the N days after
//! the first order, against first buyers of other books with comparable first orders, by doubly
//! robust AIPW with bootstrap intervals, Benjamini–Hochberg across books, and balance.
//! Comparable first buyers are those whose first order has a book of the same genre.
//!
//! Unit: a logged-in customer whose first order (over the lake's whole history) falls in the
//! range and is followed by at least N days of data. Treated for book b: b is in the first order.
//! Covariates of the first order: its price and item count (log scale), promo code or discount,
//! genre shares, the device and traffic source of its session, weekend; of the user before it:
//! sessions before the first order and days since the first visit. Per book, also the other
//! books often in its first orders that are also often bought without it: a book usually bought
//! together with a gateway book would otherwise inherit that book's effect.

use std::collections::{BTreeMap, HashMap, HashSet};

use polars::prelude::*;
use quire_causal::Covariates;
use quire_causal::effects::{CausalData, Estimand, Options, estimate};
use quire_causal::multiple::benjamini_hochberg;

use super::{Resampling, day_of, dummies, f64s, i64s, strs};
use crate::customers::DAY_MS;
use crate::data::in_range;
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct GatewayParams {
    /// Days after the first order whose revenue is the outcome.
    pub days: u32,
    /// Books with fewer first buyers are not tested.
    pub min_buyers: usize,
    /// At most this many books (those with the most first buyers) are tested.
    pub max_books: usize,
    /// False discovery rate for the Benjamini–Hochberg decision.
    pub fdr: f64,
    pub resampling: Resampling,
}

impl Default for GatewayParams {
    fn default() -> Self {
        GatewayParams {
            days: 14,
            min_buyers: 30,
            max_books: 25,
            fdr: 0.05,
            resampling: Resampling {
                replicates: 100,
                ..Resampling::default()
            },
        }
    }
}

/// First buyers with their first-order books, outcome and covariates.
pub struct FirstBuyers {
    pub books: Vec<Vec<String>>,
    /// Genres in each first order.
    pub genres: Vec<Vec<String>>,
    pub later_revenue: Vec<f64>,
    pub covariates: Covariates,
    pub genre_of: HashMap<String, String>,
}

pub fn prepare(ds: &Dataset, days: u32) -> Result<FirstBuyers> {
    let horizon = i64::from(days) * 86_400_000;
    let orders = ds
        .models()
        .fct_orders
        .clone()
        .filter(col("user_id").str().starts_with(lit("usr_")))
        .select([
            col("order_id"),
            col("user_id"),
            col("order_timestamp").cast(DataType::Int64).alias("ts"),
            col("date"),
            col("total_price"),
            col("discount"),
            col("promo_code"),
        ])
        .sort(["user_id", "ts"], SortMultipleOptions::default())
        .collect()?;
    let end = orders.column("ts")?.i64()?.max().unwrap_or(0);
    let ds_end = ds
        .models()
        .fct_sessions
        .clone()
        .select([col("session_end").cast(DataType::Int64).max()])
        .collect()?;
    let end = end.max(i64s(&ds_end, "session_end")?.first().copied().unwrap_or(0));
    // First orders in the range with a full follow-up window.
    let first = orders
        .clone()
        .lazy()
        .filter(col("user_id").is_first_distinct())
        .filter(in_range(ds.range(), col("date")))
        .filter(col("ts").lt_eq(lit(end - horizon)))
        .collect()?;
    if first.height() == 0 {
        return Err(Error::NoAnswer(format!(
            "no first order in the range is followed by {days} days of data"
        )));
    }
    let f_user = strs(&first, "user_id")?;
    let f_ts = i64s(&first, "ts")?;
    let f_order = strs(&first, "order_id")?;
    let index: HashMap<&str, usize> = f_user
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    // Later revenue: orders after the first, within the horizon.
    let (o_user, o_ts, o_total) = (
        strs(&orders, "user_id")?,
        i64s(&orders, "ts")?,
        f64s(&orders, "total_price")?,
    );
    let mut later = vec![0.0; first.height()];
    for i in 0..orders.height() {
        if let Some(&u) = index.get(o_user[i].as_str())
            && o_ts[i] > f_ts[u]
            && o_ts[i] <= f_ts[u] + horizon
        {
            later[u] += o_total[i];
        }
    }
    // Items of the first orders, with genres.
    let wanted: HashSet<&str> = f_order.iter().map(String::as_str).collect();
    let items = ds.models().fct_order_items.clone().select([
        col("order_id"),
        col("book_id"),
        col("quantity"),
    ]);
    let items = match ds.books() {
        Some(b) => items.join(
            b.select([col("book_id"), col("genre")]),
            [col("book_id")],
            [col("book_id")],
            JoinArgs::new(JoinType::Left),
        ),
        None => items.with_column(lit(NULL).cast(DataType::String).alias("genre")),
    }
    .collect()?;
    let (i_order, i_book, i_genre, i_qty) = (
        strs(&items, "order_id")?,
        strs(&items, "book_id")?,
        strs(&items, "genre")?,
        f64s(&items, "quantity")?,
    );
    let order_index: HashMap<&str, usize> = f_order
        .iter()
        .enumerate()
        .map(|(i, o)| (o.as_str(), i))
        .collect();
    let mut books = vec![Vec::new(); first.height()];
    let mut n_items = vec![0.0; first.height()];
    let mut genre_units: Vec<BTreeMap<String, f64>> = vec![BTreeMap::new(); first.height()];
    let mut genre_of = HashMap::new();
    for i in 0..items.height() {
        if !wanted.contains(i_order[i].as_str()) {
            continue;
        }
        let u = order_index[i_order[i].as_str()];
        if !books[u].contains(&i_book[i]) {
            books[u].push(i_book[i].clone());
        }
        n_items[u] += i_qty[i];
        let g = if i_genre[i].is_empty() {
            "unknown"
        } else {
            i_genre[i].as_str()
        };
        *genre_units[u].entry(g.to_owned()).or_default() += i_qty[i];
        genre_of.insert(i_book[i].clone(), g.to_owned());
    }
    // Device and source of the first order's session.
    let sessions = ds
        .models()
        .fct_sessions
        .clone()
        .filter(col("user_id").is_in(
            lit(Series::new("u".into(), f_user.clone())).implode(false),
            false,
        ))
        .select([
            col("user_id"),
            col("session_start").cast(DataType::Int64).alias("start"),
            col("session_end").cast(DataType::Int64).alias("end"),
            col("device"),
            col("traffic_source"),
        ])
        .collect()?;
    let (s_user, s_start, s_end, s_dev, s_src) = (
        strs(&sessions, "user_id")?,
        i64s(&sessions, "start")?,
        i64s(&sessions, "end")?,
        strs(&sessions, "device")?,
        strs(&sessions, "traffic_source")?,
    );
    let mut device = vec![String::new(); first.height()];
    let mut source = vec![String::new(); first.height()];
    // Engagement before the first order (pre-treatment): how often the user came back before
    // buying, and since when. It stands for the user's own visit rate, which drives later spend
    // whatever the first book was.
    let mut sessions_before = vec![0.0; first.height()];
    let mut first_visit = f_ts.clone();
    for i in 0..sessions.height() {
        let u = index[s_user[i].as_str()];
        if s_start[i] <= f_ts[u] && f_ts[u] <= s_end[i] {
            device[u] = s_dev[i].clone();
            source[u] = s_src[i].clone();
        } else if s_end[i] < f_ts[u] {
            sessions_before[u] += 1.0;
        }
        first_visit[u] = first_visit[u].min(s_start[i]);
    }
    let n = first.height();
    let mut covs = vec![
        // On the log scale: linear in the propensity model, a few very large first orders
        // (11 items, $209) got scores near 1 and weights in the thousands, which unbalanced
        // every other covariate.
        (
            "log1p_first_order_price".to_owned(),
            f64s(&first, "total_price")?
                .iter()
                .map(|p| p.ln_1p())
                .collect(),
        ),
        (
            "log1p_first_order_items".to_owned(),
            n_items.iter().map(|n| n.ln_1p()).collect(),
        ),
        ("promo".to_owned(), {
            let d = f64s(&first, "discount")?;
            let c = strs(&first, "promo_code")?;
            d.iter()
                .zip(&c)
                .map(|(d, c)| f64::from(u8::from(*d > 0.0 || !c.is_empty())))
                .collect()
        }),
        (
            "log1p_sessions_before".to_owned(),
            sessions_before.iter().map(|c: &f64| c.ln_1p()).collect(),
        ),
        (
            "days_since_first_visit".to_owned(),
            f_ts.iter()
                .zip(&first_visit)
                .map(|(t, v)| (t - v) as f64 / DAY_MS)
                .collect(),
        ),
        (
            "weekend".to_owned(),
            f_ts.iter()
                .map(|ms| f64::from(u8::from(matches!(day_of(*ms).rem_euclid(7), 2 | 3))))
                .collect(),
        ),
    ];
    let mut genres: BTreeMap<&str, usize> = BTreeMap::new();
    for g in genre_units.iter().flat_map(|m| m.keys()) {
        *genres.entry(g.as_str()).or_default() += 1;
    }
    // Genre shares of the first order (all but the most common genre, which is the reference).
    let top = genres
        .iter()
        .max_by_key(|(_, c)| **c)
        .map(|(g, _)| *g)
        .unwrap_or("");
    for (g, c) in &genres {
        if *g == top || *c < 20 {
            continue;
        }
        covs.push((
            format!("genre_share={g}"),
            (0..n)
                .map(|u| genre_units[u].get(*g).copied().unwrap_or(0.0) / n_items[u].max(1.0))
                .collect(),
        ));
    }
    covs.extend(dummies("device", &device, 20));
    covs.extend(dummies("source", &source, 20));
    Ok(FirstBuyers {
        books,
        genres: genre_units
            .iter()
            .map(|m| m.keys().cloned().collect())
            .collect(),
        later_revenue: later,
        covariates: Covariates::new(n, covs)?,
        genre_of,
    })
}

/// One tested book.
#[derive(Debug, Clone)]
pub struct BookEffect {
    pub book_id: String,
    pub genre: String,
    pub first_buyers: usize,
    pub mean_later_revenue: f64,
    pub effect: f64,
    pub ci95: Option<[f64; 2]>,
    pub p_value: f64,
    pub q_value: f64,
    pub max_smd_before: f64,
    pub max_smd_after: f64,
}

/// The covariates of `rows`, plus an indicator per other book X that `book`'s effect could
/// otherwise borrow: X is in at least 10 % (and at least 5) of `book`'s first orders, and X is
/// bought without `book` at least half as often as with it (among `rows`). The second condition
/// keeps out the books that come with `book` (the consequent of a bought-together pair whose
/// antecedent is `book`): they follow from the treatment, and almost no control has them.
fn with_bought_together(
    fb: &FirstBuyers,
    book: &str,
    rows: &[usize],
    treated: &[bool],
) -> Result<Covariates> {
    let selected = fb.covariates.select(rows);
    // Per other book: first orders holding it with `book`, and without.
    let mut with: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut n_treated = 0;
    for (&u, &t) in rows.iter().zip(treated) {
        n_treated += usize::from(t);
        for b in fb.books[u].iter().filter(|b| *b != book) {
            let c = with.entry(b.as_str()).or_default();
            if t {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }
    let often: Vec<&str> = with
        .into_iter()
        .filter(|&(_, (w, wo))| w >= 5 && w * 10 >= n_treated && wo * 2 >= w)
        .map(|(b, _)| b)
        .collect();
    if often.is_empty() {
        return Ok(selected);
    }
    let mut columns: Vec<(String, Vec<f64>)> = selected
        .names()
        .iter()
        .enumerate()
        .map(|(j, name)| (name.clone(), selected.column(j).to_vec()))
        .collect();
    for other in often {
        columns.push((
            format!("also_bought={other}"),
            rows.iter()
                .map(|&u| f64::from(u8::from(fb.books[u].iter().any(|b| b == other))))
                .collect(),
        ));
    }
    Ok(Covariates::new(rows.len(), columns)?)
}

/// A book that could not be estimated, and why.
pub type Skipped = (String, String);

/// The tested books (sorted by q-value), and the books that could not be estimated.
pub fn effects(fb: &FirstBuyers, p: &GatewayParams) -> Result<(Vec<BookEffect>, Vec<Skipped>)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for b in fb.books.iter().flatten() {
        *counts.entry(b.as_str()).or_default() += 1;
    }
    let mut candidates: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, c)| *c >= p.min_buyers)
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    candidates.truncate(p.max_books);
    let opts = Options {
        estimand: Estimand::Att,
        trim: Some(0.001),
        // Few treated buyers per book: a light penalty keeps the propensity model finite when
        // the covariates (quasi-)separate them from the controls.
        ridge: 1.0,
        replicates: p.resampling.replicates,
        seed: p.resampling.seed,
    };
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (book, n) in candidates {
        // Comparable first buyers: those whose first order has a book of the same genre.
        let genre = fb.genre_of.get(book).cloned().unwrap_or_default();
        let rows: Vec<usize> = (0..fb.books.len())
            .filter(|&u| fb.genres[u].contains(&genre))
            .collect();
        let treated: Vec<bool> = rows
            .iter()
            .map(|&u| fb.books[u].iter().any(|b| b == book))
            .collect();
        let covariates = with_bought_together(fb, book, &rows, &treated)?;
        let data = CausalData::new(
            rows.iter().map(|&u| fb.later_revenue[u]).collect(),
            treated,
            covariates,
        )?;
        let r = match estimate(&data, &opts) {
            Ok(r) => r,
            // A book whose buyers cannot be compared (too few comparable controls, separation
            // even with the penalty) is reported as not estimable.
            Err(e) => {
                skipped.push((book.to_owned(), e.to_string()));
                continue;
            }
        };
        let max_abs = |f: &dyn Fn(&quire_causal::effects::Balance) -> Option<f64>| {
            r.balance
                .iter()
                .filter_map(f)
                .fold(0.0f64, |m, v| m.max(v.abs()))
        };
        let mean_t = {
            let (s, c) = data
                .outcome
                .iter()
                .zip(&data.treated)
                .filter(|(_, t)| **t)
                .fold((0.0, 0usize), |(s, c), (y, _)| (s + y, c + 1));
            s / c as f64
        };
        out.push(BookEffect {
            book_id: book.to_owned(),
            genre,
            first_buyers: n,
            mean_later_revenue: mean_t,
            effect: r.aipw.estimate,
            ci95: r.aipw.ci95,
            p_value: r.aipw.p_value().unwrap_or(1.0),
            q_value: 1.0,
            max_smd_before: max_abs(&|b| b.smd_before),
            max_smd_after: max_abs(&|b| b.smd_after),
        });
    }
    let q = benjamini_hochberg(&out.iter().map(|b| b.p_value).collect::<Vec<_>>())?;
    for (b, q) in out.iter_mut().zip(q) {
        b.q_value = q;
    }
    out.sort_by(|a, b| {
        a.q_value
            .total_cmp(&b.q_value)
            .then(b.effect.total_cmp(&a.effect))
    });
    Ok((out, skipped))
}

pub fn run(ds: &Dataset, p: &GatewayParams) -> Result<AnalysisResult> {
    if !(0.0..1.0).contains(&p.fdr) || p.days == 0 || p.min_buyers < 5 {
        return Err(Error::Invalid(format!(
            "gateway needs --days > 0, --min-buyers >= 5 and --fdr in (0, 1); got {}, {}, {}",
            p.days, p.min_buyers, p.fdr
        )));
    }
    // Each book's test is its bootstrap: without replicates every p-value would read 1.
    if p.resampling.replicates < 2 {
        return Err(Error::Invalid(format!(
            "gateway tests each book by the bootstrap: --replicates must be at least 2 (100 by \
             default); got {}",
            p.resampling.replicates
        )));
    }
    let fb = prepare(ds, p.days)?;
    let (books, skipped) = effects(&fb, p)?;
    let mut res = AnalysisResult::new(
        "gateway",
        format!(
            "Gateway books: effect of a first order's book on the next {} days' revenue",
            p.days
        ),
    );
    res.fact("first_buyers", fb.books.len() as u64);
    res.fact("days", p.days);
    res.fact("books_tested", books.len() as u64);
    res.fact("fdr", p.fdr);
    res.fact("replicates", p.resampling.replicates as u64);
    res.fact("seed", p.resampling.seed);
    let gateways: Vec<&BookEffect> = books
        .iter()
        .filter(|b| b.q_value <= p.fdr && b.effect > 0.0)
        .collect();
    res.fact(
        "gateway_books",
        serde_json::Value::from(
            gateways
                .iter()
                .map(|b| b.book_id.clone())
                .collect::<Vec<_>>(),
        ),
    );
    if books.is_empty() {
        res.warn(format!(
            "no book has {} first buyers in the range: nothing tested",
            p.min_buyers
        ));
    }
    for (book, why) in &skipped {
        res.warn(format!("{book}: not estimable: {why}"));
    }
    for b in books.iter().filter(|b| b.max_smd_after >= 0.1) {
        res.warn(format!(
            "{}: a covariate is still unbalanced after weighting (max |SMD| {:.3})",
            b.book_id, b.max_smd_after
        ));
    }
    res.tables.push(
        Table::new(
            "books",
            "per book: AIPW effect on later revenue (ATT), BH-adjusted",
        )
        .text("book_id", books.iter().map(|b| b.book_id.clone()))
        .text("genre", books.iter().map(|b| b.genre.clone()))
        .int("first_buyers", books.iter().map(|b| b.first_buyers as i64))
        .float(
            "mean_later_revenue",
            books.iter().map(|b| b.mean_later_revenue),
            2,
        )
        .float("effect", books.iter().map(|b| b.effect), 2)
        .opt_float(
            "ci95_low",
            books.iter().map(|b| b.ci95.map(|c| c[0])).collect(),
            2,
        )
        .opt_float(
            "ci95_high",
            books.iter().map(|b| b.ci95.map(|c| c[1])).collect(),
            2,
        )
        .float("p_value", books.iter().map(|b| b.p_value), 4)
        .float("q_value", books.iter().map(|b| b.q_value), 4)
        .bool(
            "gateway",
            books.iter().map(|b| b.q_value <= p.fdr && b.effect > 0.0),
        )
        .float("max_smd_before", books.iter().map(|b| b.max_smd_before), 3)
        .float("max_smd_after", books.iter().map(|b| b.max_smd_after), 3),
    );
    let shown: Vec<&BookEffect> = books.iter().take(15).collect();
    res.charts.push(crate::chart::Chart {
        name: "effects".into(),
        title: format!("Effect on the next {} days' revenue (AIPW, 95% CI)", p.days),
        x_label: "book".into(),
        y_label: "revenue per first buyer".into(),
        kind: crate::chart::ChartKind::Bars {
            categories: shown.iter().map(|b| b.book_id.clone()).collect(),
            series: vec![crate::chart::BarSeries {
                name: "effect".into(),
                values: shown.iter().map(|b| b.effect).collect(),
                ci: shown.iter().map(|b| b.ci95.map(|c| (c[0], c[1]))).collect(),
            }],
        },
    });
    res.note(
        "unit: logged-in customers whose first order is in the range with the full follow-up \
         window; treated: the book is in the first order; controls: the other first buyers with a \
         book of the same genre in their first order, reweighted by propensity odds on the first order's price, items, promo, genre shares, \
         device, source and weekend; effect: doubly robust AIPW, percentile bootstrap CI; \
         p-values from the bootstrap SE, Benjamini-Hochberg across the tested books",
    );
    Ok(res)
}
