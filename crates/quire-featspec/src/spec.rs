//! Feature names, the spec, the tables and [`assemble`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Version of the feature definitions; part of every feature set's and snapshot's version, so
/// a model is never served with features computed by other code.
pub const FEATURES_VERSION: &str = "ltr-features.2";

/// The features, in the order of the model's input columns.
pub const FEATURE_NAMES: [&str; 28] = [
    // The request
    "bm25",
    "bm25_rank",
    "bm25_ratio",
    "device_code",
    // The query–book pair
    "title_overlap",
    "author_overlap",
    "genre_overlap",
    // The book (catalog)
    "price",
    "average_rating",
    "log_ratings_count",
    "publication_year",
    "genre_code",
    // The book (activity before the search)
    "views_7d",
    "purchases_7d",
    "views_30d",
    "purchases_30d",
    "conversion_30d",
    "search_ctr",
    "purchases_total",
    // The user (history before the search)
    "user_orders",
    "user_spend",
    "user_aov",
    "user_views",
    // The user and the book
    "genre_affinity",
    "author_prior_units",
    "series_prior_units",
    "series_next",
    "already_bought",
];

/// Number of features.
pub const N_FEATURES: usize = FEATURE_NAMES.len();

/// Smoothing of `conversion_30d` = purchases / (views + this): a book seen twice and bought
/// once is not a 50 % converter.
pub const CONVERSION_PRIOR_VIEWS: f32 = 10.0;
/// Smoothing of `search_ctr` = clicks / (impressions + this).
pub const CTR_PRIOR_IMPRESSIONS: f32 = 20.0;
/// Weight of a purchased unit against a product view in `genre_affinity`.
pub const AFFINITY_PURCHASE_WEIGHT: f32 = 3.0;

/// What a model needs to know about its features: names in order, the code version that
/// computes them and the genre coding (`genre_code` is the index in `genres`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub version: String,
    pub names: Vec<String>,
    pub genres: Vec<String>,
}

impl FeatureSpec {
    /// The spec of this code for the given genre list (sorted and deduplicated here).
    pub fn new(mut genres: Vec<String>) -> Self {
        genres.sort();
        genres.dedup();
        Self {
            version: FEATURES_VERSION.to_string(),
            names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            genres,
        }
    }

    /// Whether features computed by this code match the spec a model was trained with.
    pub fn check_compatible(&self) -> Result<(), String> {
        if self.version != FEATURES_VERSION {
            return Err(format!(
                "the model's features are version {}, this code computes {FEATURES_VERSION}",
                self.version
            ));
        }
        if self.names.iter().map(String::as_str).ne(FEATURE_NAMES) {
            return Err("the model's feature names differ from this code's".into());
        }
        Ok(())
    }

    /// The code of `genre`, if known.
    pub fn genre_code(&self, genre: &str) -> Option<usize> {
        self.genres.binary_search_by(|g| g.as_str().cmp(genre)).ok()
    }
}

/// Lowercase alphanumeric words of `text`, each once, in order of appearance. Linear in the
/// text: a query is whatever a request sends, up to the body limit.
pub fn tokens(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

/// The catalog facts of a book (from the books dimension); they do not change over time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BookInfo {
    pub title_tokens: Vec<String>,
    pub author: String,
    pub author_tokens: Vec<String>,
    pub genre: String,
    pub genre_tokens: Vec<String>,
    pub series: Option<String>,
    pub series_index: Option<i64>,
    pub price: Option<f64>,
    pub average_rating: Option<f64>,
    pub ratings_count: Option<i64>,
    pub publication_year: Option<i64>,
}

impl BookInfo {
    /// The facts of one books-dimension row.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        title: &str,
        author: &str,
        genre: &str,
        series: Option<&str>,
        series_index: Option<i64>,
        price: Option<f64>,
        average_rating: Option<f64>,
        ratings_count: Option<i64>,
        publication_year: Option<i64>,
    ) -> Self {
        Self {
            title_tokens: tokens(title),
            author: author.to_string(),
            author_tokens: tokens(author),
            genre: genre.to_string(),
            genre_tokens: tokens(genre),
            series: series.filter(|s| !s.is_empty()).map(str::to_string),
            series_index,
            price,
            average_rating,
            ratings_count,
            publication_year,
        }
    }
}

/// A book's activity over trailing windows, as of some instant (computed by the replay in
/// `quire_features::state`; stored as is in the online snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BookActivity {
    pub views_7d: u32,
    pub purchases_7d: u32,
    pub views_30d: u32,
    pub purchases_30d: u32,
    pub purchases_total: u32,
    pub search_clicks: u32,
    pub search_impressions: u32,
}

/// A user's history, as of some instant: what the features of the user and of the
/// user–book pair are computed from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserProfile {
    pub orders: u32,
    pub spend: f64,
    pub product_views: u32,
    /// Per genre: product views + [`AFFINITY_PURCHASE_WEIGHT`] × purchased units.
    pub genre_weight: BTreeMap<String, f32>,
    /// Purchased units per author.
    pub author_units: BTreeMap<String, u32>,
    /// Purchased units per series.
    pub series_units: BTreeMap<String, u32>,
    /// Series indexes bought, per series.
    pub series_indexes: BTreeMap<String, Vec<i64>>,
    /// Books bought.
    pub books_bought: BTreeSet<String>,
}

impl UserProfile {
    /// Records a product view of a book of `genre`.
    pub fn record_view(&mut self, genre: Option<&str>) {
        self.product_views += 1;
        if let Some(g) = genre {
            bump(&mut self.genre_weight, g, 1.0);
        }
    }

    /// Records an order (its total); its items are recorded with [`Self::record_unit`].
    pub fn record_order(&mut self, total_price: f64) {
        self.orders += 1;
        self.spend += total_price;
    }

    /// Records `quantity` purchased units of `book_id`.
    pub fn record_units(&mut self, book_id: &str, info: Option<&BookInfo>, quantity: u32) {
        self.books_bought.insert(book_id.to_string());
        let Some(info) = info else { return };
        bump(
            &mut self.genre_weight,
            &info.genre,
            AFFINITY_PURCHASE_WEIGHT * quantity as f32,
        );
        bump(&mut self.author_units, &info.author, quantity);
        if let Some(series) = &info.series {
            bump(&mut self.series_units, series, quantity);
            if let Some(i) = info.series_index {
                let bought = self.series_indexes.entry(series.clone()).or_default();
                if !bought.contains(&i) {
                    bought.push(i);
                }
            }
        }
    }
}

fn bump<V: Copy + std::ops::AddAssign>(map: &mut BTreeMap<String, V>, key: &str, by: V) {
    match map.get_mut(key) {
        Some(v) => *v += by,
        None => {
            map.insert(key.to_string(), by);
        }
    }
}

/// A BM25 score (logged in `result_scores`, or sent to the ranking service) as the `f32` the
/// features hold: beyond `f32`'s range it saturates to the largest finite `f32` of its sign
/// (`as f32` would give an infinity, which no JSON answer can carry back); NaN stays NaN.
pub fn bm25_feature(score: f64) -> f32 {
    score.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32
}

/// One ranking request, prepared once for all its candidates.
#[derive(Clone, Debug)]
pub struct Request {
    query_tokens: Vec<String>,
    device_code: f32,
    bm25: Vec<f32>,
    ranks: Vec<u32>,
    max_bm25: f32,
}

impl Request {
    /// A request for `query` from `device` with the candidates' BM25 scores in the order the
    /// search engine returned them (NaN when unknown).
    pub fn new(query: &str, device: Option<&str>, bm25: Vec<f32>) -> Self {
        // 1-based rank by BM25, descending; ties (and unknown scores, last) keep input order.
        let mut order: Vec<usize> = (0..bm25.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (bm25[a], bm25[b]);
            match (x.is_nan(), y.is_nan()) {
                (false, false) => y.total_cmp(&x),
                (a_nan, b_nan) => a_nan.cmp(&b_nan),
            }
            .then(a.cmp(&b))
        });
        let mut ranks = vec![0; bm25.len()];
        for (r, &i) in order.iter().enumerate() {
            ranks[i] = r as u32 + 1;
        }
        let max_bm25 = bm25
            .iter()
            .copied()
            .filter(|x| !x.is_nan())
            .fold(f32::NAN, f32::max);
        Self {
            query_tokens: tokens(query),
            device_code: device_code(device),
            bm25,
            ranks,
            max_bm25,
        }
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.bm25.len()
    }

    /// Whether there are no candidates.
    pub fn is_empty(&self) -> bool {
        self.bm25.is_empty()
    }

    /// The query's [`tokens`].
    pub fn query_tokens(&self) -> &[String] {
        &self.query_tokens
    }
}

/// `desktop` 0, `mobile` 1, `tablet` 2, anything else NaN (missing).
pub fn device_code(device: Option<&str>) -> f32 {
    match device {
        Some("desktop") => 0.0,
        Some("mobile") => 1.0,
        Some("tablet") => 2.0,
        _ => f32::NAN,
    }
}

/// Fraction of the query's tokens found in `field` (0 for an empty query). Generic so a server
/// can compare interned tokens: equal tokens must map to equal values and a query token absent
/// from every field to a value no field holds.
pub fn overlap<T: PartialEq>(query: &[T], field: &[T]) -> f32 {
    overlap_share(
        query.iter().filter(|t| field.contains(t)).count(),
        query.len(),
    )
}

/// What [`overlap`] gives when `found` of the query's `n` tokens are in the field: for a
/// server that counts them another way (the same count, so the same bits).
pub fn overlap_share(found: usize, n: usize) -> f32 {
    if n == 0 {
        return 0.0;
    }
    found as f32 / n as f32
}

fn opt(x: Option<f64>) -> f32 {
    x.map_or(f32::NAN, |v| v as f32)
}

/// The columns of the book's catalog facts and activity (`price` … `purchases_total`), the same
/// for every request.
pub const BOOK_COLUMNS: std::ops::Range<usize> = 8..20;

/// A book's columns [`BOOK_COLUMNS`]: they depend on neither the request nor the user, so a
/// server computes them once per book (with its snapshot) and the feature job per row, both
/// with [`BookColumns::new`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BookColumns(pub [f32; BOOK_COLUMNS.end - BOOK_COLUMNS.start]);

impl BookColumns {
    /// The columns of a book; `None` for a book the catalog or the activity history does not
    /// know (missing or zero, as in [`assemble`]).
    pub fn new(
        spec: &FeatureSpec,
        info: Option<&BookInfo>,
        activity: Option<&BookActivity>,
    ) -> Self {
        let act = activity.copied().unwrap_or_default();
        let genre_code = info
            .and_then(|b| spec.genre_code(&b.genre))
            .map_or(f32::NAN, |c| c as f32);
        let conversion = act.purchases_30d as f32 / (act.views_30d as f32 + CONVERSION_PRIOR_VIEWS);
        let ctr =
            act.search_clicks as f32 / (act.search_impressions as f32 + CTR_PRIOR_IMPRESSIONS);
        Self([
            opt(info.and_then(|b| b.price)),
            opt(info.and_then(|b| b.average_rating)),
            opt(info
                .and_then(|b| b.ratings_count)
                .map(|n| (n.max(0) as f64).ln_1p())),
            opt(info.and_then(|b| b.publication_year).map(|y| y as f64)),
            genre_code,
            act.views_7d as f32,
            act.purchases_7d as f32,
            act.views_30d as f32,
            act.purchases_30d as f32,
            conversion,
            ctr,
            act.purchases_total as f32,
        ])
    }
}

/// What the user's columns and the user–book pair's need of a user, computed once per request
/// by [`UserView::new`].
#[derive(Clone, Copy, Debug)]
pub struct UserView<'a> {
    profile: Option<&'a UserProfile>,
    /// `user_orders`, `user_spend`, `user_aov`, `user_views`.
    columns: [f32; 4],
    /// The sum of the user's genre weights (what `genre_affinity` divides by).
    genre_total: f32,
}

impl<'a> UserView<'a> {
    /// The view of `user`; `None` for an anonymous or unknown user.
    pub fn new(user: Option<&'a UserProfile>) -> Self {
        let columns = user.map_or([0.0, 0.0, f32::NAN, 0.0], |u| {
            let aov = if u.orders > 0 {
                (u.spend / f64::from(u.orders)) as f32
            } else {
                f32::NAN
            };
            [u.orders as f32, u.spend as f32, aov, u.product_views as f32]
        });
        Self {
            profile: user,
            columns,
            genre_total: user.map_or(0.0, |u| u.genre_weight.values().sum()),
        }
    }

    /// The profile viewed.
    pub fn profile(&self) -> Option<&'a UserProfile> {
        self.profile
    }
}

/// The user–book pair's columns (`genre_affinity` … `already_bought`) from the lookups of the
/// book in the user's history: what a user's history holds for the book's genre, author and
/// series, whether it holds the book's predecessor in its series, whether it holds the book.
/// [`assemble`] looks them up by name; a server may look them up by interned keys, giving the
/// same answers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairFacts {
    /// The user's weight of the book's genre (`None`: no weight, or no catalog facts).
    pub genre_weight: Option<f32>,
    /// Units of the book's author the user bought.
    pub author_units: Option<u32>,
    /// Units of the book's series the user bought.
    pub series_units: Option<u32>,
    /// Whether the user bought the book's predecessor in its series.
    pub series_next: bool,
    /// Whether the user bought the book.
    pub bought: bool,
}

impl PairFacts {
    /// The facts of `book_id` (catalog facts `info`) in `user`'s history, looked up by name.
    pub fn lookup(user: &UserProfile, book_id: &str, info: Option<&BookInfo>) -> Self {
        let series = info.and_then(|b| b.series.as_ref());
        Self {
            genre_weight: info.and_then(|b| user.genre_weight.get(&b.genre).copied()),
            author_units: info.and_then(|b| user.author_units.get(&b.author).copied()),
            series_units: series.and_then(|s| user.series_units.get(s).copied()),
            series_next: match (series, info.and_then(|b| b.series_index)) {
                (Some(s), Some(i)) => user
                    .series_indexes
                    .get(s)
                    .is_some_and(|bought| bought.contains(&(i - 1))),
                _ => false,
            },
            bought: user.books_bought.contains(book_id),
        }
    }
}

/// The feature vector of candidate `i` of `req` ([`FEATURE_NAMES`] order). `info` and
/// `activity` are `None` for a book the catalog or the activity history does not know,
/// `user` is `None` for an anonymous or unknown user: their features are then missing (NaN)
/// or zero, as documented per feature in docs/features.md.
///
/// This is [`assemble_parts`] of the parts computed here; a server computes the parts that do
/// not depend on the request once ([`BookColumns`] per book, [`UserView`] per request).
pub fn assemble(
    spec: &FeatureSpec,
    req: &Request,
    i: usize,
    book_id: &str,
    info: Option<&BookInfo>,
    activity: Option<&BookActivity>,
    user: Option<&UserProfile>,
) -> [f32; N_FEATURES] {
    let user = UserView::new(user);
    let pair = user.profile.map(|u| PairFacts::lookup(u, book_id, info));
    let (title, author, genre) = info.map_or((&[][..], &[][..], &[][..]), |b| {
        (
            &b.title_tokens[..],
            &b.author_tokens[..],
            &b.genre_tokens[..],
        )
    });
    let overlaps = [
        overlap(&req.query_tokens, title),
        overlap(&req.query_tokens, author),
        overlap(&req.query_tokens, genre),
    ];
    assemble_parts(
        req,
        i,
        overlaps,
        &BookColumns::new(spec, info, activity),
        info.is_some(),
        &user,
        pair.as_ref(),
    )
}

/// The feature vector of candidate `i` of `req` from its parts: the query–book `overlaps`
/// (title, author, genre: [`overlap`] of [`Request::query_tokens`] with the book's
/// tokens), the book's [`BookColumns`], whether the book has catalog facts, the user's
/// [`UserView`] and the book's [`PairFacts`] in the user's history (`None` when the view has no
/// profile). [`assemble`] is this function of parts it computes.
pub fn assemble_parts(
    req: &Request,
    i: usize,
    overlaps: [f32; 3],
    book: &BookColumns,
    in_catalog: bool,
    user: &UserView<'_>,
    pair: Option<&PairFacts>,
) -> [f32; N_FEATURES] {
    let bm25 = req.bm25[i];
    let (affinity, author_units, series_units, series_next, bought) = match pair {
        None => (f32::NAN, 0.0, 0.0, 0.0, 0.0),
        Some(p) => (
            if in_catalog && user.genre_total > 0.0 {
                p.genre_weight.unwrap_or(0.0) / user.genre_total
            } else {
                f32::NAN
            },
            p.author_units.map_or(0.0, |n| n as f32),
            p.series_units.map_or(0.0, |n| n as f32),
            f32::from(u8::from(p.series_next)),
            f32::from(u8::from(p.bought)),
        ),
    };
    let b = &book.0;
    let [orders, spend, aov, views] = user.columns;
    [
        bm25,
        req.ranks[i] as f32,
        if req.max_bm25 > 0.0 {
            // Saturated as `bm25_feature`: a far negative score over a tiny positive maximum
            // would overflow to -infinity.
            (bm25 / req.max_bm25).clamp(f32::MIN, f32::MAX)
        } else {
            f32::NAN
        },
        req.device_code,
        overlaps[0],
        overlaps[1],
        overlaps[2],
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        orders,
        spend,
        aov,
        views,
        affinity,
        author_units,
        series_units,
        series_next,
        bought,
    ]
}

/// Book facts and activity by `book_id`, users by `user_id`: what [`assemble`] reads, in
/// memory. The online snapshot is one of these, serialized (ordered maps, so equal tables
/// serialize to equal bytes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureTables {
    pub books: BTreeMap<String, (BookInfo, BookActivity)>,
    pub users: BTreeMap<String, UserProfile>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FeatureSpec {
        FeatureSpec::new(vec!["Fantasy".into(), "History".into(), "Fantasy".into()])
    }

    fn feature(v: &[f32; N_FEATURES], name: &str) -> f32 {
        v[FEATURE_NAMES.iter().position(|n| *n == name).unwrap()]
    }

    fn dragon() -> BookInfo {
        BookInfo::new(
            "The Dragon's Path",
            "Daniel Abraham",
            "Fantasy",
            Some("Dagger and Coin"),
            Some(2),
            Some(12.5),
            Some(4.1),
            Some(999),
            Some(2011),
        )
    }

    #[test]
    fn tokens_are_lowercase_words_once() {
        assert_eq!(
            tokens("The Dragon's  path, the END"),
            ["the", "dragon", "s", "path", "end"]
        );
        assert!(tokens(" ,; ").is_empty());
    }

    #[test]
    fn bm25_beyond_f32_saturates() {
        assert_eq!(bm25_feature(12.5), 12.5);
        assert_eq!(bm25_feature(1e39), f32::MAX);
        assert_eq!(bm25_feature(-3.5e38), f32::MIN);
        assert_eq!(bm25_feature(f64::INFINITY), f32::MAX);
        assert!(bm25_feature(f64::NAN).is_nan());
        // Two saturated scores tie: ranks in input order, ratio 1 to the max.
        let r = Request::new("q", None, vec![bm25_feature(1e39), bm25_feature(2e39), 1.0]);
        assert_eq!(r.ranks, [1, 2, 3]);
        assert_eq!(r.max_bm25, f32::MAX);
        // The ratio to the max saturates too: -1e39 over 1e-30.
        let r = Request::new("q", None, vec![1e-30, bm25_feature(-1e39)]);
        let v = assemble(&spec(), &r, 1, "b", None, None, None);
        assert_eq!(feature(&v, "bm25_ratio"), f32::MIN);
    }

    #[test]
    fn request_ranks_by_bm25_ties_and_unknown_in_input_order() {
        let r = Request::new("q", Some("mobile"), vec![1.0, 3.0, f32::NAN, 3.0, 2.0]);
        assert_eq!(r.ranks, [4, 1, 5, 2, 3]);
        assert_eq!(r.max_bm25, 3.0);
        assert_eq!(r.device_code, 1.0);
    }

    #[test]
    fn hand_computed_vector() {
        let spec = spec();
        assert_eq!(spec.genres, ["Fantasy", "History"]);
        let req = Request::new("dragon fantasy abraham x", Some("tablet"), vec![4.0, 8.0]);
        let info = dragon();
        let act = BookActivity {
            views_7d: 3,
            purchases_7d: 1,
            views_30d: 10,
            purchases_30d: 2,
            purchases_total: 5,
            search_clicks: 4,
            search_impressions: 20,
        };
        let mut user = UserProfile::default();
        user.record_view(Some("Fantasy"));
        user.record_view(Some("History"));
        user.record_order(30.0);
        let book1 = BookInfo::new(
            "A",
            "Daniel Abraham",
            "Fantasy",
            Some("Dagger and Coin"),
            Some(1),
            None,
            None,
            None,
            None,
        );
        user.record_units("bk_1", Some(&book1), 2);
        let v = assemble(&spec, &req, 0, "bk_2", Some(&info), Some(&act), Some(&user));
        assert_eq!(feature(&v, "bm25"), 4.0);
        assert_eq!(feature(&v, "bm25_rank"), 2.0);
        assert_eq!(feature(&v, "bm25_ratio"), 0.5);
        assert_eq!(feature(&v, "device_code"), 2.0);
        assert_eq!(feature(&v, "title_overlap"), 0.25); // dragon
        assert_eq!(feature(&v, "author_overlap"), 0.25); // abraham
        assert_eq!(feature(&v, "genre_overlap"), 0.25); // fantasy
        assert_eq!(feature(&v, "price"), 12.5);
        assert!((feature(&v, "log_ratings_count") - 1000f32.ln()).abs() < 1e-5);
        assert_eq!(feature(&v, "genre_code"), 0.0);
        assert_eq!(feature(&v, "conversion_30d"), 2.0 / 20.0);
        assert_eq!(feature(&v, "search_ctr"), 4.0 / 40.0);
        assert_eq!(feature(&v, "user_orders"), 1.0);
        assert_eq!(feature(&v, "user_aov"), 30.0);
        assert_eq!(feature(&v, "user_views"), 2.0);
        // Fantasy: 1 view + 3 × 2 units = 7 of 8.
        assert_eq!(feature(&v, "genre_affinity"), 7.0 / 8.0);
        assert_eq!(feature(&v, "author_prior_units"), 2.0);
        assert_eq!(feature(&v, "series_prior_units"), 2.0);
        assert_eq!(feature(&v, "series_next"), 1.0); // bought index 1, this is 2
        assert_eq!(feature(&v, "already_bought"), 0.0);
        let again = assemble(&spec, &req, 0, "bk_1", Some(&book1), None, Some(&user));
        assert_eq!(feature(&again, "already_bought"), 1.0);
        assert_eq!(feature(&again, "series_next"), 0.0);
    }

    #[test]
    fn cold_start_is_missing_or_zero() {
        let spec = spec();
        let req = Request::new("", None, vec![f32::NAN]);
        let v = assemble(&spec, &req, 0, "bk_9", None, None, None);
        for name in [
            "bm25",
            "bm25_ratio",
            "device_code",
            "price",
            "genre_code",
            "user_aov",
            "genre_affinity",
        ] {
            assert!(feature(&v, name).is_nan(), "{name}");
        }
        for name in ["title_overlap", "views_7d", "user_orders", "already_bought"] {
            assert_eq!(feature(&v, name), 0.0, "{name}");
        }
    }

    #[test]
    fn spec_compatibility() {
        let mut s = spec();
        assert!(s.check_compatible().is_ok());
        s.names.swap(0, 1);
        assert!(s.check_compatible().is_err());
        let mut s = spec();
        s.version = "ltr-features.0".into();
        assert!(s.check_compatible().unwrap_err().contains("ltr-features.0"));
    }
}
