//! The point-in-time replay: one pass over the events in time order that keeps every book's
//! activity and every user's history current, and reads them at each search *before* applying
//! anything at or after the search's instant.
//!
//! Why a replay rather than as-of joins in Polars: the state it keeps is exactly what the
//! ranking service holds in memory (the online snapshot is the state at the end of the
//! replay), so one piece of code defines a feature for training and for serving. As-of joins
//! would compute the same numbers with a second implementation that could drift from the
//! serving one. Reading the lake, staging, sessions and labels stay in Polars ([`crate::ltr`]).

use std::collections::HashMap;

use crate::spec::{BookActivity, UserProfile};

const DAY_MS: i64 = 86_400_000;
const WINDOW_DAYS: usize = 30;

/// UTC day number of an epoch-millisecond instant.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

/// Daily counts over the last [`WINDOW_DAYS`] days, for sums over trailing calendar-day windows.
#[derive(Clone, Debug)]
struct Window {
    buckets: [u32; WINDOW_DAYS],
    last_day: i64,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            buckets: [0; WINDOW_DAYS],
            last_day: i64::MIN,
        }
    }
}

impl Window {
    fn add(&mut self, day: i64, n: u32) {
        if day > self.last_day {
            // Days between the last recorded one and this one had nothing: clear their slots.
            let first = if self.last_day == i64::MIN {
                day - WINDOW_DAYS as i64 + 1
            } else {
                (self.last_day + 1).max(day - WINDOW_DAYS as i64 + 1)
            };
            for d in first..=day {
                self.buckets[d.rem_euclid(WINDOW_DAYS as i64) as usize] = 0;
            }
            self.last_day = day;
        }
        if day > self.last_day - WINDOW_DAYS as i64 {
            self.buckets[day.rem_euclid(WINDOW_DAYS as i64) as usize] += n;
        }
    }

    /// Sum over the `width` calendar days ending with `day` (inclusive); `day` is at or after
    /// the last recorded day (time only moves forward in the replay).
    fn sum(&self, day: i64, width: usize) -> u32 {
        if self.last_day == i64::MIN {
            return 0;
        }
        let lo = (day - width as i64 + 1).max(self.last_day - WINDOW_DAYS as i64 + 1);
        (lo..=day.min(self.last_day))
            .map(|d| self.buckets[d.rem_euclid(WINDOW_DAYS as i64) as usize])
            .sum()
    }
}

/// A book's running counters.
#[derive(Clone, Debug, Default)]
struct BookState {
    views: Window,
    purchases: Window,
    purchases_total: u32,
    clicks: u32,
    impressions: u32,
}

/// One state change or one read, at an instant.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Emit the rows of search number `0` (reads the state; changes nothing).
    Search(u32),
    /// A product view of `book` by `user`.
    View { user: u32, book: u32 },
    /// A search result click on `book`.
    Click { book: u32 },
    /// `book` was shown in a search result list.
    Impression { book: u32 },
    /// An order by `user` for `total`.
    Order { user: u32, total: f64 },
    /// `quantity` purchased units of `book` by `user`.
    Units { user: u32, book: u32, quantity: u32 },
}

impl Op {
    /// Reads before writes at the same instant: a search sees only what happened strictly
    /// before it.
    fn priority(&self) -> u8 {
        u8::from(!matches!(self, Op::Search(_)))
    }
}

/// The replay's state: books and users by dense index (see [`Interner`]).
#[derive(Debug, Default)]
pub struct Replay {
    books: Vec<BookState>,
    users: Vec<UserProfile>,
}

/// Dense `u32` indexes for string ids.
#[derive(Debug, Default)]
pub struct Interner {
    index: HashMap<String, u32>,
    ids: Vec<String>,
}

impl Interner {
    /// The index of `id`, assigned on first sight.
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.to_string(), i);
        self.ids.push(id.to_string());
        i
    }

    /// The index of `id`, if it was interned.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The id of index `i`.
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id was interned.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Sorts `ops` into replay order: by time, reads before writes at one instant, otherwise in
/// the given order (stable).
pub fn sort_ops(ops: &mut [(i64, Op)]) {
    ops.sort_by_key(|(ts, op)| (*ts, op.priority()));
}

impl Replay {
    /// An empty state for `books` books and `users` users.
    pub fn new(books: usize, users: usize) -> Self {
        Self {
            books: vec![BookState::default(); books],
            users: vec![UserProfile::default(); users],
        }
    }

    /// Runs `ops` (in [`sort_ops`] order) and calls `on_search(search, ts, &self)` at every
    /// [`Op::Search`]. `genre_of(book)` gives a book's genre for the user's affinities and
    /// `info_of(book)` its catalog facts.
    pub fn run<'a>(
        &mut self,
        ops: &[(i64, Op)],
        books: &'a Interner,
        info_of: impl Fn(&str) -> Option<&'a crate::spec::BookInfo>,
        mut on_search: impl FnMut(u32, i64, &Replay),
    ) {
        for &(ts, op) in ops {
            let day = day_of(ts);
            match op {
                Op::Search(s) => on_search(s, ts, self),
                Op::View { user, book } => {
                    self.books[book as usize].views.add(day, 1);
                    let genre = info_of(books.id(book)).map(|b| b.genre.as_str());
                    self.users[user as usize].record_view(genre);
                }
                Op::Click { book } => self.books[book as usize].clicks += 1,
                Op::Impression { book } => self.books[book as usize].impressions += 1,
                Op::Order { user, total } => self.users[user as usize].record_order(total),
                Op::Units {
                    user,
                    book,
                    quantity,
                } => {
                    let b = &mut self.books[book as usize];
                    b.purchases.add(day, quantity);
                    b.purchases_total += quantity;
                    let id = books.id(book);
                    self.users[user as usize].record_units(id, info_of(id), quantity);
                }
            }
        }
    }

    /// A book's activity as seen at instant `ts_ms`.
    pub fn activity(&self, book: u32, ts_ms: i64) -> BookActivity {
        let b = &self.books[book as usize];
        let day = day_of(ts_ms);
        BookActivity {
            views_7d: b.views.sum(day, 7),
            purchases_7d: b.purchases.sum(day, 7),
            views_30d: b.views.sum(day, 30),
            purchases_30d: b.purchases.sum(day, 30),
            purchases_total: b.purchases_total,
            search_clicks: b.clicks,
            search_impressions: b.impressions,
        }
    }

    /// A user's history so far.
    pub fn user(&self, user: u32) -> &UserProfile {
        &self.users[user as usize]
    }

    /// Takes the users' histories out (at the end of the replay, for the snapshot).
    pub fn into_users(self) -> Vec<UserProfile> {
        self.users
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sums_trailing_calendar_days() {
        let mut w = Window::default();
        assert_eq!(w.sum(100, 7), 0);
        w.add(100, 2);
        w.add(103, 1);
        w.add(106, 4);
        assert_eq!(w.sum(106, 7), 7); // days 100..=106
        assert_eq!(w.sum(107, 7), 5); // 101..=107
        assert_eq!(w.sum(110, 7), 4); // 104..=110
        assert_eq!(w.sum(106, 30), 7);
        assert_eq!(w.sum(129, 30), 7); // 100..=129
        assert_eq!(w.sum(130, 30), 5); // 101..=130
        // A jump of more than the window clears everything before it.
        w.add(200, 1);
        assert_eq!(w.sum(200, 30), 1);
        // Same-day adds accumulate; a slot reused 30 days later starts from zero.
        w.add(230, 3);
        w.add(230, 1);
        assert_eq!(w.sum(230, 1), 4);
        assert_eq!(w.sum(230, 30), 4);
    }

    #[test]
    fn reads_happen_before_writes_at_the_same_instant() {
        let mut books = Interner::default();
        let b = books.intern("bk_1");
        let mut ops = vec![
            (10, Op::View { user: 0, book: b }),
            (
                20,
                Op::Units {
                    user: 0,
                    book: b,
                    quantity: 2,
                },
            ),
            (20, Op::Search(7)),
            (30, Op::Search(8)),
        ];
        sort_ops(&mut ops);
        let mut r = Replay::new(1, 1);
        let mut seen = Vec::new();
        r.run(
            &ops,
            &books,
            |_| None,
            |s, ts, st| {
                seen.push((
                    s,
                    st.activity(b, ts).purchases_total,
                    st.user(0).product_views,
                ));
            },
        );
        assert_eq!(seen, [(7, 0, 1), (8, 2, 1)]);
    }
}
