//! The learning-to-rank set and the online feature snapshot, from the lake and the books
//! dimension.
//!
//! Polars reads and stages the events (the KPI pipeline's staging and sessions: test traffic
//! and duplicates out), finds the labels and the orders; the point-in-time replay
//! ([`crate::state`]) computes the features; [`crate::spec::assemble`] turns them into vectors.

use std::collections::HashMap;

use polars::prelude::*;

use crate::spec::{
    BookInfo, FEATURE_NAMES, FeatureSpec, FeatureTables, N_FEATURES, Request, assemble,
    bm25_feature,
};
use crate::state::{Interner, Op, Replay, sort_ops};
use crate::{Error, Result, collect_all};

/// Graded relevance of a shown result, from what the user did with it in the session of the
/// search, after the search: the highest that applies.
pub mod label {
    /// Shown only.
    pub const SHOWN: i32 = 0;
    /// Clicked in this search's result list.
    pub const CLICKED: i32 = 1;
    /// Added to the cart later in the session.
    pub const CARTED: i32 = 2;
    /// Bought later in the session.
    pub const PURCHASED: i32 = 3;
}

/// Per session (or search) id, per book: the latest time of an action (or just presence).
/// Nested so that the per-row lookups borrow the ids instead of building owned key pairs.
type ByKeyAndBook<V> = HashMap<String, HashMap<String, V>>;

/// The output of [`build_ltr`].
#[derive(Debug)]
pub struct LtrOutput {
    /// One row per (search, shown result), sorted by search time, `search_id`, position:
    /// `search_id`, `search_ts` (Datetime ms UTC), `user_id`, `book_id`, `shown_position`
    /// (1-based), `label` (Int32, [`label`]), then one Float32 column per feature in
    /// [`FEATURE_NAMES`] order.
    pub rows: DataFrame,
    /// The feature spec (names, code version, genre coding).
    pub spec: FeatureSpec,
    /// The state at the end of the events: the online snapshot's content.
    pub tables: FeatureTables,
    /// The instant the snapshot describes (epoch ms; one past the last event).
    pub as_of_ms: i64,
    /// Searches that produced rows.
    pub searches: usize,
}

fn type_is(t: &str) -> Expr {
    col("event_type").eq(lit(t))
}

fn ts_ms() -> Expr {
    col("event_timestamp").cast(DataType::Int64).alias("ts")
}

/// Reads the books dimension into catalog facts by `book_id`, and the genre list.
pub fn book_infos(books: Option<LazyFrame>) -> Result<HashMap<String, BookInfo>> {
    let Some(books) = books else {
        return Ok(HashMap::new());
    };
    let df = books
        .select([
            col("book_id"),
            col("title"),
            col("author"),
            col("genre"),
            col("series"),
            col("series_index").cast(DataType::Int64),
            col("price").cast(DataType::Float64),
            col("average_rating").cast(DataType::Float64),
            col("ratings_count").cast(DataType::Int64),
            col("publication_year").cast(DataType::Int64),
        ])
        .collect()
        .map_err(|e| Error::polars("reading the books dimension", e))?;
    let s = |c: &str| df.column(c).and_then(|c| c.str().cloned());
    let i = |c: &str| df.column(c).and_then(|c| c.i64().cloned());
    let f = |c: &str| df.column(c).and_then(|c| c.f64().cloned());
    let cols = (|| -> PolarsResult<_> {
        Ok((
            s("book_id")?,
            s("title")?,
            s("author")?,
            s("genre")?,
            s("series")?,
            i("series_index")?,
            f("price")?,
            f("average_rating")?,
            i("ratings_count")?,
            i("publication_year")?,
        ))
    })()
    .map_err(|e| Error::polars("reading the books dimension", e))?;
    let (id, title, author, genre, series, sidx, price, rating, count, year) = cols;
    let mut out = HashMap::with_capacity(df.height());
    for r in 0..df.height() {
        let Some(book_id) = id.get(r) else { continue };
        out.insert(
            book_id.to_string(),
            BookInfo::new(
                title.get(r).unwrap_or(""),
                author.get(r).unwrap_or(""),
                genre.get(r).unwrap_or(""),
                series.get(r),
                sidx.get(r),
                price.get(r),
                rating.get(r),
                count.get(r),
                year.get(r),
            ),
        );
    }
    Ok(out)
}

/// Collected columns of the replay's inputs.
struct Inputs {
    events: DataFrame,
    units: DataFrame,
    orders: DataFrame,
    searches: DataFrame,
    clicks: DataFrame,
    carts: DataFrame,
}

fn collect_inputs(raw: LazyFrame) -> Result<Inputs> {
    let sessions = quire_kpi::sessionize(quire_kpi::stage_events(raw)).with_columns([ts_ms()]);
    let standing_orders = crate::standing_orders(sessions.clone());
    let units = crate::order_units(standing_orders.clone(), &["ts", "user_id", "session_id"]);
    let plans = [
        // State changes that are not orders: product views and search result clicks.
        sessions
            .clone()
            .filter(type_is("product_view").or(type_is("search_result_clicked")))
            .select([col("ts"), col("event_type"), col("user_id"), col("book_id")]),
        units,
        standing_orders.select([col("ts"), col("user_id"), col("total_price")]),
        sessions
            .clone()
            .filter(type_is("search_performed"))
            .sort(["ts", "event_id"], SortMultipleOptions::default())
            .filter(col("search_id").is_first_distinct())
            .select([
                col("ts"),
                col("search_id"),
                col("session_id"),
                col("user_id"),
                col("device"),
                col("query"),
                col("results"),
                col("result_scores"),
            ]),
        sessions
            .clone()
            .filter(type_is("search_result_clicked"))
            .select([col("search_id"), col("book_id")]),
        sessions
            .filter(type_is("add_to_cart"))
            .group_by([col("session_id"), col("book_id")])
            .agg([col("ts").max()]),
    ];
    let mut frames =
        collect_all(plans.to_vec()).map_err(|e| Error::polars("reading the lake's events", e))?;
    let mut next = || frames.remove(0);
    Ok(Inputs {
        events: next(),
        units: next(),
        orders: next(),
        searches: next(),
        clicks: next(),
        carts: next(),
    })
}

/// Builds the learning-to-rank rows of every search in the events, with point-in-time
/// features, and the online snapshot's tables at the end of the events.
///
/// `raw` is a frame of lake events (the lake's schema); `books` the books dimension.
pub fn build_ltr(raw: LazyFrame, books: Option<LazyFrame>) -> Result<LtrOutput> {
    let infos = book_infos(books)?;
    let spec = FeatureSpec::new(infos.values().map(|b| b.genre.clone()).collect());
    let inp = collect_inputs(raw)?;
    let pe = |what: &'static str| move |e: PolarsError| Error::polars(what, e);

    let mut book_ix = Interner::default();
    let mut user_ix = Interner::default();
    // Known books first, in id order, so the snapshot covers the whole catalog.
    let mut catalog: Vec<&String> = infos.keys().collect();
    catalog.sort();
    for b in catalog {
        book_ix.intern(b);
    }
    let mut ops: Vec<(i64, Op)> = Vec::new();
    let mut last_ts = i64::MIN;

    // Product views and clicks.
    {
        let e = &inp.events;
        let ts = e.column("ts").and_then(|c| c.i64()).map_err(pe("events"))?;
        let ty = e
            .column("event_type")
            .and_then(|c| c.str())
            .map_err(pe("events"))?;
        let user = e
            .column("user_id")
            .and_then(|c| c.str())
            .map_err(pe("events"))?;
        let book = e
            .column("book_id")
            .and_then(|c| c.str())
            .map_err(pe("events"))?;
        for (((ts, ty), user), book) in ts.iter().zip(ty.iter()).zip(user.iter()).zip(book.iter()) {
            let (Some(ts), Some(ty), Some(user), Some(book)) = (ts, ty, user, book) else {
                continue;
            };
            last_ts = last_ts.max(ts);
            let book = book_ix.intern(book);
            let op = if ty == "product_view" {
                Op::View {
                    user: user_ix.intern(user),
                    book,
                }
            } else {
                Op::Click { book }
            };
            ops.push((ts, op));
        }
    }
    // Orders and their units; purchases by (session, book) for the labels.
    let mut purchased: ByKeyAndBook<i64> = HashMap::new();
    {
        let o = &inp.orders;
        let ts = o.column("ts").and_then(|c| c.i64()).map_err(pe("orders"))?;
        let user = o
            .column("user_id")
            .and_then(|c| c.str())
            .map_err(pe("orders"))?;
        let total = o
            .column("total_price")
            .and_then(|c| c.f64())
            .map_err(pe("orders"))?;
        for ((ts, user), total) in ts.iter().zip(user.iter()).zip(total.iter()) {
            let (Some(ts), Some(user)) = (ts, user) else {
                continue;
            };
            last_ts = last_ts.max(ts);
            ops.push((
                ts,
                Op::Order {
                    user: user_ix.intern(user),
                    total: total.unwrap_or(0.0),
                },
            ));
        }
        let u = &inp.units;
        let ts = u
            .column("ts")
            .and_then(|c| c.i64())
            .map_err(pe("order items"))?;
        let user = u
            .column("user_id")
            .and_then(|c| c.str())
            .map_err(pe("order items"))?;
        let session = u
            .column("session_id")
            .and_then(|c| c.str())
            .map_err(pe("order items"))?;
        let book = u
            .column("book_id")
            .and_then(|c| c.str())
            .map_err(pe("order items"))?;
        let qty = u
            .column("quantity")
            .and_then(|c| c.i64())
            .map_err(pe("order items"))?;
        for ((((ts, user), session), book), qty) in ts
            .iter()
            .zip(user.iter())
            .zip(session.iter())
            .zip(book.iter())
            .zip(qty.iter())
        {
            let (Some(ts), Some(user), Some(book)) = (ts, user, book) else {
                continue;
            };
            ops.push((
                ts,
                Op::Units {
                    user: user_ix.intern(user),
                    book: book_ix.intern(book),
                    quantity: qty.unwrap_or(1).clamp(0, i64::from(u32::MAX)) as u32,
                },
            ));
            if let Some(session) = session {
                let t = purchased
                    .entry(session.to_string())
                    .or_default()
                    .entry(book.to_string())
                    .or_insert(ts);
                *t = (*t).max(ts);
            }
        }
    }
    // Searches: a read at their instant, then their impressions.
    struct Search {
        id: String,
        session: String,
        user: u32,
        device: Option<String>,
        query: String,
        results: Vec<String>,
        scores: Option<Vec<f64>>,
    }
    let mut searches: Vec<Search> = Vec::new();
    {
        let s = &inp.searches;
        let ts = s
            .column("ts")
            .and_then(|c| c.i64())
            .map_err(pe("searches"))?;
        let id = s
            .column("search_id")
            .and_then(|c| c.str())
            .map_err(pe("searches"))?;
        let session = s
            .column("session_id")
            .and_then(|c| c.str())
            .map_err(pe("searches"))?;
        let user = s
            .column("user_id")
            .and_then(|c| c.str())
            .map_err(pe("searches"))?;
        let device = s
            .column("device")
            .and_then(|c| c.str())
            .map_err(pe("searches"))?;
        let query = s
            .column("query")
            .and_then(|c| c.str())
            .map_err(pe("searches"))?;
        let results = s
            .column("results")
            .and_then(|c| c.list())
            .map_err(pe("searches"))?;
        let scores = s
            .column("result_scores")
            .and_then(|c| c.list())
            .map_err(pe("searches"))?;
        for r in 0..s.height() {
            let (Some(ts), Some(sid), Some(session), Some(user)) =
                (ts.get(r), id.get(r), session.get(r), user.get(r))
            else {
                continue;
            };
            let list: Vec<String> = match results.get_as_series(r) {
                Some(series) => series
                    .str()
                    .map_err(pe("search results"))?
                    .iter()
                    .map(|b| b.unwrap_or_default().to_string())
                    .collect(),
                None => Vec::new(),
            };
            if list.is_empty() {
                continue;
            }
            let sc: Option<Vec<f64>> = match scores.get_as_series(r) {
                Some(series) => {
                    let v: Vec<f64> = series
                        .f64()
                        .map_err(pe("search result scores"))?
                        .iter()
                        .map(|x| x.unwrap_or(f64::NAN))
                        .collect();
                    (v.len() == list.len()).then_some(v)
                }
                None => None,
            };
            last_ts = last_ts.max(ts);
            let n = searches.len() as u32;
            ops.push((ts, Op::Search(n)));
            for b in &list {
                ops.push((
                    ts,
                    Op::Impression {
                        book: book_ix.intern(b),
                    },
                ));
            }
            searches.push(Search {
                id: sid.to_string(),
                session: session.to_string(),
                user: user_ix.intern(user),
                device: device.get(r).map(str::to_string),
                query: query.get(r).unwrap_or("").to_string(),
                results: list,
                scores: sc,
            });
        }
    }
    let clicked: ByKeyAndBook<()> = {
        let c = &inp.clicks;
        let id = c
            .column("search_id")
            .and_then(|c| c.str())
            .map_err(pe("clicks"))?;
        let book = c
            .column("book_id")
            .and_then(|c| c.str())
            .map_err(pe("clicks"))?;
        let mut m: ByKeyAndBook<()> = HashMap::new();
        for (s, b) in id.iter().zip(book.iter()) {
            if let (Some(s), Some(b)) = (s, b) {
                m.entry(s.to_string())
                    .or_default()
                    .insert(b.to_string(), ());
            }
        }
        m
    };
    let carted: ByKeyAndBook<i64> = {
        let c = &inp.carts;
        let session = c
            .column("session_id")
            .and_then(|c| c.str())
            .map_err(pe("carts"))?;
        let book = c
            .column("book_id")
            .and_then(|c| c.str())
            .map_err(pe("carts"))?;
        let ts = c.column("ts").and_then(|c| c.i64()).map_err(pe("carts"))?;
        let mut m: ByKeyAndBook<i64> = HashMap::new();
        for ((s, b), t) in session.iter().zip(book.iter()).zip(ts.iter()) {
            if let (Some(s), Some(b), Some(t)) = (s, b, t) {
                m.entry(s.to_string()).or_default().insert(b.to_string(), t);
            }
        }
        m
    };

    sort_ops(&mut ops);
    let mut replay = Replay::new(book_ix.len(), user_ix.len());
    let mut rows = RowsBuilder::default();
    replay.run(
        &ops,
        &book_ix,
        |b| infos.get(b),
        |s, ts, state| {
            let s = &searches[s as usize];
            let bm25: Vec<f32> = match &s.scores {
                Some(v) => v.iter().map(|&x| bm25_feature(x)).collect(),
                None => vec![f32::NAN; s.results.len()],
            };
            let req = Request::new(&s.query, s.device.as_deref(), bm25);
            let user = state.user(s.user);
            for (i, book_id) in s.results.iter().enumerate() {
                let after = |m: &ByKeyAndBook<i64>| {
                    m.get(&s.session)
                        .and_then(|b| b.get(book_id))
                        .is_some_and(|&t| t > ts)
                };
                let label = if after(&purchased) {
                    label::PURCHASED
                } else if after(&carted) {
                    label::CARTED
                } else if clicked.get(&s.id).is_some_and(|b| b.contains_key(book_id)) {
                    label::CLICKED
                } else {
                    label::SHOWN
                };
                let book = book_ix.index_of(book_id);
                let activity = book.map(|b| state.activity(b, ts));
                let v = assemble(
                    &spec,
                    &req,
                    i,
                    book_id,
                    infos.get(book_id),
                    activity.as_ref(),
                    Some(user),
                );
                rows.push(
                    &s.id,
                    ts,
                    user_ix.id(s.user),
                    book_id,
                    i as i64 + 1,
                    label,
                    &v,
                );
            }
        },
    );

    let as_of_ms = if last_ts == i64::MIN { 0 } else { last_ts + 1 };
    let mut tables = FeatureTables::default();
    for b in 0..book_ix.len() as u32 {
        let id = book_ix.id(b);
        let info = infos.get(id).cloned().unwrap_or_default();
        tables
            .books
            .insert(id.to_string(), (info, replay.activity(b, as_of_ms)));
    }
    for (u, profile) in replay.into_users().into_iter().enumerate() {
        tables
            .users
            .insert(user_ix.id(u as u32).to_string(), profile);
    }
    let n_searches = searches.len();
    Ok(LtrOutput {
        rows: rows.finish()?,
        spec,
        tables,
        as_of_ms,
        searches: n_searches,
    })
}

/// Column buffers of the LTR rows.
#[derive(Default)]
struct RowsBuilder {
    search_id: Vec<String>,
    ts: Vec<i64>,
    user_id: Vec<String>,
    book_id: Vec<String>,
    position: Vec<i64>,
    label: Vec<i32>,
    features: Vec<Vec<f32>>,
}

impl RowsBuilder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        search: &str,
        ts: i64,
        user: &str,
        book: &str,
        pos: i64,
        label: i32,
        v: &[f32; N_FEATURES],
    ) {
        if self.features.is_empty() {
            self.features = vec![Vec::new(); N_FEATURES];
        }
        self.search_id.push(search.to_string());
        self.ts.push(ts);
        self.user_id.push(user.to_string());
        self.book_id.push(book.to_string());
        self.position.push(pos);
        self.label.push(label);
        for (c, x) in self.features.iter_mut().zip(v) {
            c.push(*x);
        }
    }

    fn finish(mut self) -> Result<DataFrame> {
        if self.features.is_empty() {
            self.features = vec![Vec::new(); N_FEATURES];
        }
        let mut columns = vec![
            Column::new("search_id".into(), self.search_id),
            Column::new("search_ts".into(), self.ts)
                .cast(&DataType::Datetime(
                    TimeUnit::Milliseconds,
                    Some(TimeZone::UTC),
                ))
                .map_err(|e| Error::polars("building the LTR rows", e))?,
            Column::new("user_id".into(), self.user_id),
            Column::new("book_id".into(), self.book_id),
            Column::new("shown_position".into(), self.position),
            Column::new("label".into(), self.label),
        ];
        for (name, values) in FEATURE_NAMES.iter().zip(self.features) {
            columns.push(Column::new((*name).into(), values));
        }
        DataFrame::new_infer_height(columns)
            .and_then(|df| {
                df.sort(
                    ["search_ts", "search_id", "shown_position"],
                    SortMultipleOptions::default(),
                )
            })
            .map_err(|e| Error::polars("building the LTR rows", e))
    }
}
