//! Collaborative-filtering matrices from the lake: implicit feedback per (user, book) with a
//! confidence weight per interaction type, split by time, plus what the recommendation batch
//! needs beside the model (purchases to exclude, "bought together" co-occurrence counts).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, collect_all};

const DAY_MS: i64 = 86_400_000;

/// Confidence weight of each interaction type (summed per user and book, in f32). f64 here so
/// a run logs them as written (an f32 0.3 would be logged as 0.30000001192092896).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CfWeights {
    /// Per product view.
    pub view: f64,
    /// Per add-to-cart event.
    pub cart: f64,
    /// Per purchased unit.
    pub purchase: f64,
}

impl Default for CfWeights {
    fn default() -> Self {
        Self {
            view: 1.0,
            cart: 4.0,
            purchase: 10.0,
        }
    }
}

/// The output of [`build_cf`]. Users and books are dense indexes into `users` / `books`
/// (sorted ids of everyone and everything with at least one interaction).
#[derive(Clone, Debug, Default)]
pub struct CfData {
    pub users: Vec<String>,
    pub books: Vec<String>,
    /// (user, book, weight) of interactions before `split_at_ms`.
    pub train: Vec<(u32, u32, f32)>,
    /// (user, book, 1.0) for books a user bought at or after `split_at_ms`, that the user had
    /// not bought before it (what a recommender should have found).
    pub test: Vec<(u32, u32, f32)>,
    /// (user, book, weight) of all interactions: the matrix a published model is fitted on.
    pub full: Vec<(u32, u32, f32)>,
    /// (user, book) pairs of everything bought, ever (never recommended back).
    pub bought: Vec<(u32, u32)>,
    /// (book a, book b, orders containing both), a < b.
    pub cooccurrence: Vec<(u32, u32, u32)>,
    /// Orders containing each book (by book index).
    pub book_orders: Vec<u32>,
    /// Number of orders.
    pub orders: u32,
    pub split_at_ms: i64,
    pub as_of_ms: i64,
}

fn type_is(t: &str) -> Expr {
    col("event_type").eq(lit(t))
}

/// The (user, book) pairs of every standing order among `raw`'s events (deduplicated, test
/// traffic dropped, as [`build_cf`] counts purchases), each once: what a recommendation publish
/// excludes as already bought when it reads purchases newer than its model's.
pub fn bought_pairs(raw: LazyFrame) -> Result<Vec<(String, String)>> {
    let staged = quire_kpi::stage_events(raw.filter(type_is("order_placed"))).with_columns([col(
        "event_timestamp",
    )
    .cast(DataType::Int64)
    .alias("ts")]);
    let pairs = crate::order_units(crate::standing_orders(staged), &["user_id"])
        .select([col("user_id"), col("book_id")])
        .unique(None, UniqueKeepStrategy::Any)
        .collect()
        .map_err(|e| Error::polars("reading the lake's orders", e))?;
    let pe = |e: PolarsError| Error::polars("the lake's orders", e);
    let users = pairs.column("user_id").and_then(|c| c.str()).map_err(pe)?;
    let books = pairs.column("book_id").and_then(|c| c.str()).map_err(pe)?;
    Ok(users
        .iter()
        .zip(books.iter())
        .filter_map(|(u, b)| Some((u?.to_owned(), b?.to_owned())))
        .collect())
}

/// Builds the CF matrices from lake events: the last `test_days` days (UTC, ending one
/// millisecond after the last event) are the test period.
pub fn build_cf(raw: LazyFrame, weights: CfWeights, test_days: u32) -> Result<CfData> {
    let staged = quire_kpi::stage_events(raw)
        .with_columns([col("event_timestamp").cast(DataType::Int64).alias("ts")]);
    let orders = crate::standing_orders(staged.clone());
    let units = crate::order_units(orders, &["ts", "user_id", "order_id"]);
    let events = staged
        .clone()
        .filter(type_is("product_view").or(type_is("add_to_cart")))
        .select([
            col("ts"),
            col("user_id"),
            col("book_id"),
            when(type_is("product_view"))
                .then(lit(weights.view))
                .otherwise(lit(weights.cart))
                .cast(DataType::Float32)
                .alias("w"),
            lit(false).alias("purchase"),
        ])
        .filter(col("book_id").is_not_null());
    let bought_units = units.clone().select([
        col("ts"),
        col("user_id"),
        col("book_id"),
        (col("quantity").cast(DataType::Float32) * lit(weights.purchase))
            .cast(DataType::Float32)
            .alias("w"),
        lit(true).alias("purchase"),
    ]);
    let interactions = concat([events, bought_units], UnionArgs::default())
        .map_err(|e| Error::polars("combining interactions", e))?;
    let pairs = units
        .clone()
        .select([col("order_id"), col("book_id")])
        .unique(None, UniqueKeepStrategy::Any);
    let co = pairs
        .clone()
        .join(
            pairs.clone(),
            [col("order_id")],
            [col("order_id")],
            JoinArgs::new(JoinType::Inner).with_suffix(Some("_b".into())),
        )
        .filter(col("book_id").lt(col("book_id_b")))
        .group_by([col("book_id"), col("book_id_b")])
        .agg([len().alias("n")]);
    let per_book = pairs
        .clone()
        .group_by([col("book_id")])
        .agg([len().alias("n")]);
    let n_orders = pairs.select([col("order_id").n_unique().alias("n")]);
    // The test period ends after the last event of any type, not the last interaction.
    let last_event = staged.select([col("ts").max().alias("last")]);
    let frames = collect_all(vec![interactions, co, per_book, n_orders, last_event])
        .map_err(|e| Error::polars("reading the lake's events", e))?;
    let [inter, co, per_book, n_orders, last_event] = <[DataFrame; 5]>::try_from(frames)
        .map_err(|_| Error::Invalid("expected five frames".into()))?;

    let pe = |what: &'static str| move |e: PolarsError| Error::polars(what, e);
    let ts = inter
        .column("ts")
        .and_then(|c| c.i64())
        .map_err(pe("interactions"))?;
    let user = inter
        .column("user_id")
        .and_then(|c| c.str())
        .map_err(pe("interactions"))?;
    let book = inter
        .column("book_id")
        .and_then(|c| c.str())
        .map_err(pe("interactions"))?;
    let w = inter
        .column("w")
        .and_then(|c| c.f32())
        .map_err(pe("interactions"))?;
    let purchase = inter
        .column("purchase")
        .and_then(|c| c.bool())
        .map_err(pe("interactions"))?;

    let mut users: Vec<&str> = user.iter().flatten().collect();
    users.sort_unstable();
    users.dedup();
    let mut books: Vec<&str> = book.iter().flatten().collect();
    let co_a = co
        .column("book_id")
        .and_then(|c| c.str())
        .map_err(pe("co-occurrence"))?;
    let co_b = co
        .column("book_id_b")
        .and_then(|c| c.str())
        .map_err(pe("co-occurrence"))?;
    books.extend(co_a.iter().flatten());
    books.extend(co_b.iter().flatten());
    books.sort_unstable();
    books.dedup();
    let uix = |u: &str| users.binary_search(&u).ok().map(|i| i as u32);
    let bix = |b: &str| books.binary_search(&b).ok().map(|i| i as u32);

    let last = last_event
        .column("last")
        .and_then(|c| c.i64())
        .map_err(pe("the last event"))?
        .get(0)
        .unwrap_or(0);
    let as_of_ms = last + 1;
    let split_at_ms = as_of_ms - i64::from(test_days) * DAY_MS;

    use std::collections::{BTreeMap, BTreeSet};
    let mut train: BTreeMap<(u32, u32), f32> = BTreeMap::new();
    let mut full: BTreeMap<(u32, u32), f32> = BTreeMap::new();
    let mut bought_before: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut bought: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut bought_after: BTreeSet<(u32, u32)> = BTreeSet::new();
    for r in 0..inter.height() {
        let (Some(t), Some(u), Some(b)) = (ts.get(r), user.get(r), book.get(r)) else {
            continue;
        };
        let (Some(u), Some(b)) = (uix(u), bix(b)) else {
            continue;
        };
        let w = w.get(r).unwrap_or(0.0);
        let is_purchase = purchase.get(r).unwrap_or(false);
        // A weight of 0 leaves the interaction type out of the matrices (a stored cell is a
        // positive to ALS, whatever its weight); purchases still count as bought.
        if w > 0.0 {
            *full.entry((u, b)).or_default() += w;
        }
        if t < split_at_ms {
            if w > 0.0 {
                *train.entry((u, b)).or_default() += w;
            }
            if is_purchase {
                bought_before.insert((u, b));
            }
        } else if is_purchase {
            bought_after.insert((u, b));
        }
        if is_purchase {
            bought.insert((u, b));
        }
    }
    let test = bought_after
        .into_iter()
        .filter(|p| !bought_before.contains(p))
        .map(|(u, b)| (u, b, 1.0))
        .collect();

    let n = co
        .column("n")
        .and_then(|c| c.u32())
        .map_err(pe("co-occurrence"))?;
    let mut cooccurrence: Vec<(u32, u32, u32)> = co_a
        .iter()
        .zip(co_b.iter())
        .zip(n.iter())
        .filter_map(|((a, b), n)| Some((bix(a?)?, bix(b?)?, n?)))
        .collect();
    cooccurrence.sort_unstable();
    let mut book_orders = vec![0u32; books.len()];
    let pb = per_book
        .column("book_id")
        .and_then(|c| c.str())
        .map_err(pe("orders per book"))?;
    let pn = per_book
        .column("n")
        .and_then(|c| c.u32())
        .map_err(pe("orders per book"))?;
    for (b, n) in pb.iter().zip(pn.iter()) {
        if let (Some(b), Some(n)) = (b.and_then(bix), n) {
            book_orders[b as usize] = n;
        }
    }
    let orders = n_orders
        .column("n")
        .and_then(|c| c.u32())
        .map_err(pe("orders"))?
        .get(0)
        .unwrap_or(0);

    Ok(CfData {
        users: users.iter().map(|s| s.to_string()).collect(),
        books: books.iter().map(|s| s.to_string()).collect(),
        train: train.into_iter().map(|((u, b), w)| (u, b, w)).collect(),
        test,
        full: full.into_iter().map(|((u, b), w)| (u, b, w)).collect(),
        bought: bought.into_iter().collect(),
        cooccurrence,
        book_orders,
        orders,
        split_at_ms,
        as_of_ms,
    })
}
