//! The online snapshot laid out for serving: what [`assemble`](crate::assemble) computes, per
//! request, in a few microseconds for a hundred candidates.
//!
//! [`ServingTables::new`] resolves everything that does not depend on the request once per
//! loaded snapshot: a dense index per book id, each book's [`BookColumns`] in one contiguous
//! array, the title, author and genre tokens interned to integers in one contiguous arena. A
//! request then costs one hash lookup per candidate, integer compares for the query–book overlaps
//! (through a set of the query's tokens for a long query, so the cost stays linear)
//! and the user's history looked up by interned ids (the [`PairFacts`] that
//! [`PairFacts::lookup`] finds by name in the profile's ordered maps, where each lookup is a
//! chain of string compares), and [`assemble_parts`] — the function
//! [`assemble`](crate::assemble) itself ends in. The equality with `assemble` is tested bit for
//! bit below.

use std::collections::{HashMap, HashSet};

use crate::snapshot::OnlineSnapshot;
use crate::spec::{
    BookColumns, BookInfo, FeatureSpec, N_FEATURES, PairFacts, Request, UserProfile, UserView,
    assemble_parts, overlap, overlap_share,
};

/// The interned id of a query token no book has: no field holds it, so it never overlaps.
const UNKNOWN_TOKEN: u32 = u32::MAX;

/// Query tokens from which a request's overlaps are counted through a set of them.
const QUERY_SET_FROM: usize = 9;

/// A request's query as interned token ids. [`overlap`] looks each query token up in the field
/// (query × field compares per candidate); a long query is instead put in a set once and each
/// field's tokens looked up in it, so a request's cost stays linear in its size whatever
/// query it sends. The same count either way (the query's and the fields' tokens are distinct,
/// and an unknown token is in no field), so the same bits.
struct QueryIds {
    ids: Vec<u32>,
    set: Option<HashSet<u32>>,
}

impl QueryIds {
    fn overlap(&self, field: &[u32]) -> f32 {
        match &self.set {
            None => overlap(&self.ids, field),
            Some(set) => overlap_share(
                field.iter().filter(|t| set.contains(t)).count(),
                self.ids.len(),
            ),
        }
    }
}

/// A book's genre, author and series as interned names, for the user–book facts.
#[derive(Debug, Clone, Copy)]
struct PairKeys {
    genre: u32,
    author: u32,
    series: Option<u32>,
    series_index: Option<i64>,
}

/// A book of the snapshot, resolved.
#[derive(Debug)]
struct ServedBook {
    columns: BookColumns,
    /// Its catalog facts' names, interned (`None`: not in the catalog).
    keys: Option<PairKeys>,
    /// Its title, author and genre token ids: `tokens[spans[0]..spans[1]]` is the title,
    /// `[spans[1]..spans[2]]` the author, `[spans[2]..spans[3]]` the genre.
    spans: [u32; 4],
}

/// The snapshot's tables resolved for serving (see the module docs).
#[derive(Debug)]
pub struct ServingTables {
    spec: FeatureSpec,
    index: HashMap<String, u32>,
    books: Vec<ServedBook>,
    /// Every token of a title, an author or a genre, and its id.
    vocabulary: HashMap<String, u32>,
    tokens: Vec<u32>,
    users: HashMap<String, ServedUser>,
}

/// A user's profile, and its maps keyed by interned names (sorted by key for a binary search);
/// entries of names no book of the snapshot has are left out, as no candidate can look them up.
#[derive(Debug)]
struct ServedUser {
    profile: UserProfile,
    genre_weight: Vec<(u32, f32)>,
    author_units: Vec<(u32, u32)>,
    series_units: Vec<(u32, u32)>,
    series_indexes: Vec<(u32, Vec<i64>)>,
    /// Rows of the books bought that the snapshot has.
    books_bought: Vec<u32>,
}

fn find<T>(entries: &[(u32, T)], key: u32) -> Option<&T> {
    entries
        .binary_search_by_key(&key, |(k, _)| *k)
        .ok()
        .map(|i| &entries[i].1)
}

fn interned<'m, T: Clone + 'm>(
    names: &HashMap<String, u32>,
    map: impl IntoIterator<Item = (&'m String, &'m T)>,
) -> Vec<(u32, T)> {
    let mut entries: Vec<(u32, T)> = map
        .into_iter()
        .filter_map(|(name, v)| names.get(name).map(|&id| (id, v.clone())))
        .collect();
    entries.sort_by_key(|(k, _)| *k);
    entries
}

impl ServedUser {
    fn new(
        profile: UserProfile,
        names: &HashMap<String, u32>,
        index: &HashMap<String, u32>,
    ) -> Self {
        let mut books_bought: Vec<u32> = profile
            .books_bought
            .iter()
            .filter_map(|b| index.get(b).copied())
            .collect();
        books_bought.sort_unstable();
        Self {
            genre_weight: interned(names, &profile.genre_weight),
            author_units: interned(names, &profile.author_units),
            series_units: interned(names, &profile.series_units),
            series_indexes: interned(names, &profile.series_indexes),
            books_bought,
            profile,
        }
    }

    /// [`PairFacts::lookup`] of a book of the snapshot (row `row`, names `keys`), by ids.
    fn pair(&self, row: u32, keys: Option<PairKeys>) -> PairFacts {
        PairFacts {
            genre_weight: keys.and_then(|k| find(&self.genre_weight, k.genre).copied()),
            author_units: keys.and_then(|k| find(&self.author_units, k.author).copied()),
            series_units: keys
                .and_then(|k| k.series)
                .and_then(|s| find(&self.series_units, s).copied()),
            series_next: keys.is_some_and(|k| match (k.series, k.series_index) {
                (Some(s), Some(i)) => {
                    find(&self.series_indexes, s).is_some_and(|bought| bought.contains(&(i - 1)))
                }
                _ => false,
            }),
            bought: self.books_bought.binary_search(&row).is_ok(),
        }
    }
}

impl ServingTables {
    /// Resolves `snapshot`'s tables, moving its entries.
    pub fn new(snapshot: OnlineSnapshot) -> Self {
        let spec = snapshot.spec;
        let n = snapshot.tables.books.len();
        let mut index = HashMap::with_capacity(n);
        let mut books = Vec::with_capacity(n);
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut tokens = Vec::new();
        // Genres, authors and series, interned (one id space: each is only ever compared with
        // the user's entries of its own kind).
        let mut names: HashMap<String, u32> = HashMap::new();
        let mut name_id = |name: &str| {
            let next = names.len() as u32;
            *names.entry(name.to_owned()).or_insert(next)
        };
        for (id, (info, activity)) in snapshot.tables.books {
            let info = catalog_info(info);
            let keys = info.as_ref().map(|b| PairKeys {
                genre: name_id(&b.genre),
                author: name_id(&b.author),
                series: b.series.as_deref().map(&mut name_id),
                series_index: b.series_index,
            });
            let mut spans = [tokens.len() as u32; 4];
            if let Some(b) = &info {
                for (k, field) in [&b.title_tokens, &b.author_tokens, &b.genre_tokens]
                    .into_iter()
                    .enumerate()
                {
                    let start = tokens.len();
                    for t in field {
                        let next = vocabulary.len() as u32;
                        let id = *vocabulary.entry(t.clone()).or_insert(next);
                        // Each token once per field, as `tokens` gives them: counting a field's
                        // tokens in the query's set ([`QueryIds`]) then counts each once, as
                        // `overlap` does, also for a snapshot whose fields repeat a token.
                        if !tokens[start..].contains(&id) {
                            tokens.push(id);
                        }
                    }
                    spans[k + 1] = tokens.len() as u32;
                }
            }
            index.insert(id, books.len() as u32);
            books.push(ServedBook {
                columns: BookColumns::new(&spec, info.as_ref(), Some(&activity)),
                keys,
                spans,
            });
        }
        let users = snapshot
            .tables
            .users
            .into_iter()
            .map(|(id, profile)| (id, ServedUser::new(profile, &names, &index)))
            .collect();
        Self {
            spec,
            index,
            books,
            vocabulary,
            tokens,
            users,
        }
    }

    /// The feature spec of the snapshot.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Up to `n` book ids and a user id of the tables (for a warm-up request).
    pub fn sample(&self, n: usize) -> (Vec<String>, Option<String>) {
        (
            self.index.keys().take(n).cloned().collect(),
            self.users.keys().next().cloned(),
        )
    }

    /// Appends to `rows` the feature vectors of `book_ids`, the candidates of `req` in order,
    /// for `user_id`: what [`assemble`](crate::assemble) gives with the snapshot's facts,
    /// activity and profile of each (`None` for a book or user the snapshot does not know).
    ///
    /// # Panics
    /// If `book_ids` does not yield `req.len()` ids.
    pub fn features<'b>(
        &self,
        req: &Request,
        user_id: Option<&str>,
        book_ids: impl IntoIterator<Item = &'b str>,
        rows: &mut Vec<f32>,
    ) {
        let served_user = user_id.and_then(|u| self.users.get(u));
        let user = UserView::new(served_user.map(|u| &u.profile));
        let ids: Vec<u32> = req
            .query_tokens()
            .iter()
            .map(|t| self.vocabulary.get(t).copied().unwrap_or(UNKNOWN_TOKEN))
            .collect();
        let query = QueryIds {
            set: (ids.len() >= QUERY_SET_FROM).then(|| ids.iter().copied().collect()),
            ids,
        };
        let unknown = BookColumns::new(&self.spec, None, None);
        rows.reserve(req.len() * N_FEATURES);
        let mut n = 0;
        for (i, book_id) in book_ids.into_iter().enumerate() {
            let row = self.index.get(book_id).copied();
            let (columns, in_catalog, overlaps, pair) = match row {
                Some(r) => {
                    let b = &self.books[r as usize];
                    let [t, a, g, end] = b.spans.map(|s| s as usize);
                    let overlaps = [
                        query.overlap(&self.tokens[t..a]),
                        query.overlap(&self.tokens[a..g]),
                        query.overlap(&self.tokens[g..end]),
                    ];
                    let pair = served_user.map(|u| u.pair(r, b.keys));
                    (&b.columns, b.keys.is_some(), overlaps, pair)
                }
                None => {
                    let pair = served_user.map(|u| PairFacts::lookup(&u.profile, book_id, None));
                    (&unknown, false, [query.overlap(&[]); 3], pair)
                }
            };
            rows.extend_from_slice(&assemble_parts(
                req,
                i,
                overlaps,
                columns,
                in_catalog,
                &user,
                pair.as_ref(),
            ));
            n += 1;
        }
        assert_eq!(n, req.len(), "one book id per candidate of the request");
    }
}

/// The catalog facts to pass to [`assemble`](crate::assemble) for a book of the snapshot.
///
/// The feature job stores `BookInfo::default()` for a book seen in events but absent from the
/// catalog (`quire_features::ltr::build_ltr`), while its training rows passed `None` for it:
/// map it back to `None` so serving computes what training computed.
pub fn catalog_info(info: BookInfo) -> Option<BookInfo> {
    (info != BookInfo::default()).then_some(info)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::spec::{BookActivity, FeatureTables, assemble};

    const WORDS: [&str; 8] = [
        "dragon", "night", "sea", "war", "queen", "star", "garden", "city",
    ];
    const GENRES: [&str; 3] = ["Fantasy", "History", "Science Fiction"];
    const AUTHORS: [&str; 3] = ["Robin Hobb", "Mary Beard", "Iain Banks"];

    /// A bookstore from a seed of small numbers: catalog books with words, authors, genres,
    /// series; a book known only from events (default facts); users with histories.
    fn snapshot(seed: &[u32]) -> OnlineSnapshot {
        let at = |i: usize| seed[i % seed.len()] as usize;
        let mut tables = FeatureTables::default();
        for b in 0..12 {
            let title: Vec<&str> = (0..1 + at(b) % 3).map(|k| WORDS[at(b + k) % 8]).collect();
            let series = (at(b) % 3 == 0).then(|| format!("Saga {}", at(b + 1) % 2));
            let info = BookInfo::new(
                &title.join(" "),
                AUTHORS[at(b + 2) % 3],
                GENRES[at(b + 3) % 3],
                series.as_deref(),
                series.as_ref().map(|_| (at(b + 4) % 3) as i64 + 1),
                (at(b) % 4 != 0).then(|| at(b + 5) as f64 / 7.0),
                (at(b) % 5 != 0).then(|| 3.0 + at(b + 6) as f64 / 10.0),
                (at(b) % 6 != 0).then(|| at(b + 7) as i64 * 37),
                Some(1950 + at(b + 8) as i64),
            );
            let activity = BookActivity {
                views_7d: at(b + 1) as u32,
                purchases_7d: at(b + 2) as u32 % 3,
                views_30d: at(b + 3) as u32 * 3,
                purchases_30d: at(b + 4) as u32,
                purchases_total: at(b + 5) as u32 * 2,
                search_clicks: at(b + 6) as u32,
                search_impressions: at(b + 7) as u32 * 5,
            };
            tables.books.insert(format!("bk_{b}"), (info, activity));
        }
        // A series of two, whose first volume usr_3 bought.
        for i in [1, 2] {
            let info = BookInfo::new(
                "Tides",
                "Robin Hobb",
                "Fantasy",
                Some("Tide"),
                Some(i),
                None,
                None,
                None,
                None,
            );
            tables
                .books
                .insert(format!("bk_{}", 11 + i), (info, BookActivity::default()));
        }
        tables.books.insert(
            "ev_0".into(),
            (BookInfo::default(), BookActivity::default()),
        );
        for u in 0..4 {
            let mut user = UserProfile::default();
            for k in 0..at(u) % 5 {
                let (info, _) = &tables.books[&format!("bk_{}", at(u + k) % 12)];
                user.record_view(Some(&info.genre));
            }
            for k in 0..at(u + 1) % 4 {
                user.record_order(at(u + k) as f64 * 1.25);
                let id = format!("bk_{}", at(u * 3 + k) % 12);
                let info = tables.books[&id].0.clone();
                user.record_units(&id, Some(&info), 1 + at(k) as u32 % 2);
            }
            if u == 3 {
                // A book and a genre the snapshot's books do not have (the served maps leave
                // them out; a candidate with that id still finds it bought).
                user.record_units("nowhere_16", None, 1);
                user.record_view(Some("Poetry"));
                user.record_units("ev_0", None, 1);
                let first = tables.books["bk_12"].0.clone();
                user.record_units("bk_12", Some(&first), 1);
            }
            tables.users.insert(format!("usr_{u}"), user);
        }
        let spec = FeatureSpec::new(GENRES[..2].iter().map(|g| g.to_string()).collect());
        OnlineSnapshot::new(spec, tables, 1).unwrap()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// What `assemble` gives, as the feature job calls it: the snapshot's facts and activity,
    /// `None` for unknown ids.
    fn assembled(
        snap: &OnlineSnapshot,
        req: &Request,
        user: Option<&str>,
        ids: &[String],
    ) -> Vec<f32> {
        let t = &snap.tables;
        let user = user.and_then(|u| t.users.get(u));
        let mut rows = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let (info, act) = match t.books.get(id) {
                Some((info, act)) => (catalog_info(info.clone()), Some(act)),
                None => (None, None),
            };
            rows.extend(assemble(&snap.spec, req, i, id, info.as_ref(), act, user));
        }
        rows
    }

    proptest! {
        #[test]
        fn serving_tables_compute_what_assemble_computes(
            seed in prop::collection::vec(0u32..40, 1..30),
            picks in prop::collection::vec(0usize..18, 1..40),
            // Up to 14 words: short queries and long ones (QueryIds' set).
            words in prop::collection::vec(0usize..14, 0..15),
            user in 0usize..6,
            device in 0usize..4,
        ) {
            let snap = snapshot(&seed);
            let tables = ServingTables::new(snap.clone());
            // Catalog books, the event-only book, ids no table has, duplicates.
            let ids: Vec<String> = picks
                .iter()
                .map(|&p| match p {
                    0..14 => format!("bk_{p}"),
                    14 => "ev_0".into(),
                    _ => format!("nowhere_{p}"),
                })
                .collect();
            // Title words, an author's and a genre's, and words no book has (unheard, quill,
            // ember).
            let vocabulary = [
                "dragon", "NIGHT", "sea", "war", "queen", "star", "hobb", "fiction", "history",
                "unheard", "Saga", "quill", "ember", "garden",
            ];
            let query: Vec<&str> = words.iter().map(|&w| vocabulary[w]).collect();
            let bm25 = (0..ids.len()).map(|i| (i * 7 % 5) as f32 - 1.0).collect();
            let req = Request::new(
                &query.join(" "),
                ["mobile", "tablet", "fridge", "desktop"].get(device).copied(),
                bm25,
            );
            let user_id = ["usr_0", "usr_1", "usr_2", "usr_3", "visitor"].get(user).copied();
            let mut served = Vec::new();
            tables.features(&req, user_id, ids.iter().map(String::as_str), &mut served);
            prop_assert_eq!(bits(&served), bits(&assembled(&snap, &req, user_id, &ids)));
        }
    }

    #[test]
    fn the_property_sees_every_kind_of_value() {
        // Non-vacuous: among a few seeds, overlaps, affinities, series and purchases occur.
        let names = crate::FEATURE_NAMES;
        let col = |n: &str| names.iter().position(|x| *x == n).unwrap();
        let mut seen = vec![false; names.len()];
        for s in 0..20u32 {
            let snap = snapshot(&[s, s * 7 + 1, s * 3 + 2, s + 5, s * 11 + 3]);
            let tables = ServingTables::new(snap.clone());
            let ids: Vec<String> = (0..14).map(|b| format!("bk_{b}")).collect();
            for q in [
                "dragon night sea",
                "war queen star hobb",
                "fiction history garden city",
            ] {
                let req = Request::new(q, Some("mobile"), vec![1.0; ids.len()]);
                for u in ["usr_0", "usr_1", "usr_2", "usr_3"] {
                    let mut rows = Vec::new();
                    tables.features(&req, Some(u), ids.iter().map(String::as_str), &mut rows);
                    assert_eq!(bits(&rows), bits(&assembled(&snap, &req, Some(u), &ids)));
                    for row in rows.chunks_exact(N_FEATURES) {
                        for (k, v) in row.iter().enumerate() {
                            seen[k] |= *v != 0.0 && !v.is_nan();
                        }
                    }
                }
            }
        }
        for name in [
            "title_overlap",
            "author_overlap",
            "genre_overlap",
            "genre_affinity",
            "author_prior_units",
            "series_prior_units",
            "series_next",
            "already_bought",
        ] {
            assert!(seen[col(name)], "{name} never non-zero");
        }
    }

    #[test]
    fn a_snapshot_field_that_repeats_a_token_overlaps_as_assemble_says() {
        let mut snap = snapshot(&[1, 2, 3]);
        let (info, _) = snap.tables.books.get_mut("bk_0").unwrap();
        info.title_tokens = ["sea", "sea", "night", "sea"].map(String::from).to_vec();
        let tables = ServingTables::new(snap.clone());
        let ids = vec!["bk_0".to_owned()];
        // Short (slice) and long (set) queries.
        for q in [
            "sea",
            "sea night war queen star hobb fiction history unheard quill",
        ] {
            let req = Request::new(q, None, vec![1.0]);
            let mut rows = Vec::new();
            tables.features(&req, None, ids.iter().map(String::as_str), &mut rows);
            assert_eq!(
                bits(&rows),
                bits(&assembled(&snap, &req, None, &ids)),
                "{q}"
            );
        }
    }

    #[test]
    fn a_default_book_info_is_no_catalog_entry() {
        assert!(catalog_info(BookInfo::default()).is_none());
        let known = BookInfo::new("T", "A", "G", None, None, None, None, None, None);
        assert!(catalog_info(known).is_some());
    }
}
