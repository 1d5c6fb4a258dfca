//! quire-sim: the bookstore simulator behind `quire simulate`.
//!
//! [`simulate`] writes, into one directory, a tracker log `events.jsonl` (or `events.jsonl.gz`)
//! following `contracts/events.md`, the dimension tables `books.csv`, `users.csv` and
//! `marketing_spend.csv`, and `truth.json`, the effects planted in the data with their true sizes.
//!
//! # The model
//! - **Catalog**: the 10,000 real books of goodbooks-10k (embedded). Genre from author and title
//!   keywords, else a seeded draw keyed by the series (or author), so a series stays in one genre;
//!   prices $4.99–$39.99 by genre, unit costs 40–65% of price.
//! - **Users**: logged-in `usr_<n>` (in users.csv; 75% signed up before the start, the rest
//!   during the run) and daily anonymous visitors `anon_<hex>` (about 0.15 per user and day, one
//!   session). Each has a segment (fantasy_fan, history_buff, mystery_reader, bargain_hunter,
//!   high_spender, casual_browser) that sets genre affinities, price sensitivity, intent and
//!   activity; a main device; a country. Sessions per day are Poisson with weekday seasonality,
//!   a diurnal start-time curve and marketing spend (paid, social, email, referral) pulling
//!   extra paid/social/email traffic; the first event of a session usually has `traffic_source`.
//! - **Sessions** walk the funnel: landing (home, a product from an ad or email, a search) then
//!   searches (BM25 over title, authors and genre; 10–20 results with scores; typos give 0
//!   results), category browsing, recommendation modules (for_you, popular, similar,
//!   bought_together), product views, review reading, add/remove to cart, checkout and orders
//!   (discounts, promo codes, 2–3% fees). Returns arrive 2–20 days later for 4% of the
//!   logged-in users' orders (some partial, a few above the total to test capping).
//! - **Relevance** a ranker can learn: the utility of a book for a user is genre affinity +
//!   rating − price sensitivity × price + popularity + an idiosyncratic taste term; search
//!   clicks are position bias × sigmoid(utility + query match).
//!
//! # Planted effects (`truth.json`)
//! `config`; `segments` (parameters); `users` (`usr_<n>` → segment, every logged-in user) and
//! `test_users`; `effects` (every effect size: [`EFFECTS`] unless [`SimConfig::effects`] says
//! otherwise, e.g. a stronger gateway effect for a test with the power to find it);
//! `experiment` (`search_ranker`: bm25 vs ltr by a hash of the user id; ltr orders by true
//! relevance plus noise, which lifts clicks and conversion; realized per-arm user cvr as
//! `quire analyze abtest` defines it);
//! `gateway_books` (a first order holding one multiplies the user's later session rate by a known
//! multiplier; per book, its first buyers' effect on the
//! treated in `quire analyze gateway`'s units: the revenue of the 14 days after the first order
//! from the sessions the multiplier added, marked by thinning on a separate random stream);
//! `bought_together` (pairs A → B: adding A adds B with a known probability);
//! `series_order` (volume n is bought before n+1); `recommendation_click_effect` and
//! `review_effect` (a logit shift at the order decision, with the exact ATE/ATT on session
//! conversion, the ATT over treated sessions that reached the order decision, and the naive
//! difference, confounded through device and login, which also drive the click or read decided
//! at the session's first recommendation module or product page); `promotion` (code, books, window,
//! discount, lift, cannibalization of the same genres, pull-forward dip, realized daily units);
//! `devices` (each device's intent shift and its sessions' realized conversion, the device drawn
//! independently of the traffic source); `after_abandon` (the next session after an abandoned
//! cart starts at the cart with a known probability, decided on a separate stream; realized
//! counts); `time_to_purchase` (the users whose first visit is in the run's first half, followed
//! to its end: exact shares who bought within 1 h to 28 days of the first visit, and again
//! within as many days of the first order, with medians); `data_quality` (test traffic, duplicate lines, retried orders, late mobile events, non-UTC
//! offsets, malformed lines by kind); `volumes` (events per user-day).
//!
//! # Data quality
//! About 1% of users are test accounts `usr_test_<n>` (`is_test: true`); 0.5% of lines are
//! exact duplicates; 1% of orders are retried (same `order_id`, new `event_id`, seconds later);
//! 4% of mobile events arrive 5–90 minutes late; 2% of timestamps carry a non-UTC offset; 0.1%
//! of lines are malformed (not JSON, truncated, missing field, wrong type, negative quantity,
//! unknown type, bad timestamp). The file is ordered by arrival time.
//!
//! # Determinism and volume
//! Every random draw comes from a ChaCha8 stream keyed by (seed, purpose, user, day), users are
//! simulated in parallel and each day is sorted before it is written, so the same config gives
//! byte-identical files. Memory holds the users' state and a day's events (while the previous
//! day is written and, with `gzip`, compressed on a writer thread). The default config (14 days,
//! 2,000 users) gives about 200k events: about 7 events per user-day (events / (users × days),
//! anonymous visitors included), about 0.5 sessions per user-day. 30 days × 46,000 users give
//! about 10 million events.

mod catalog;
pub use catalog::GENRES;
mod emit;
mod rng;
mod session;
mod truth;
mod world;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::{Catalog, cents};
use crate::emit::{DayStats, Ids, Kind, Out, Rec};
use crate::session::{Scratch, UserKind, UserState, simulate_day};
use crate::world::{DAY_MS, SOURCES, World};
pub use crate::world::{EFFECTS, Effects};

/// The generator's version: bumped whenever the same config would write different files, so
/// schedulers (the pipeline) know to simulate again.
pub const VERSION: u32 = 2;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid simulation config: {0}")]
    Config(String),
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("csv error on {}: {source}", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("json error on {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("embedded catalog, line {line}: {reason}")]
    Catalog { line: usize, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub days: u32,
    pub users: u32,
    pub seed: u64,
    /// First simulated day (UTC).
    pub start: NaiveDate,
    /// Write `events.jsonl.gz` instead of `events.jsonl`.
    pub gzip: bool,
    /// Sizes of the planted effects (default [`EFFECTS`]); written to truth.json.
    pub effects: Effects,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            days: 14,
            users: 2_000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2025, 10, 1).unwrap_or(NaiveDate::MIN),
            gzip: false,
            effects: EFFECTS,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    pub events_path: PathBuf,
    /// Lines in the event file.
    pub lines: u64,
    /// Valid, distinct events (test events and retried orders included).
    pub events: u64,
    /// Malformed lines.
    pub malformed: u64,
    /// Exact duplicate lines (same `event_id`).
    pub duplicates: u64,
    /// Valid, distinct events with `is_test: true`.
    pub test_events: u64,
    /// Distinct non-test orders (`order_id`s).
    pub orders: u64,
    pub books: usize,
    /// Rows of users.csv.
    pub users: usize,
    pub seconds: f64,
}

/// Anonymous visitors per day, per logged-in user (before seasonality).
const ANON_PER_USER_DAY: f64 = 0.15;
const CHUNK: usize = 128;

enum Sink {
    Plain(BufWriter<File>),
    Gz(Box<GzEncoder<BufWriter<File>>>),
}

impl Sink {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(b),
            Sink::Gz(w) => w.write_all(b),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            Sink::Gz(w) => w.finish()?.flush(),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    lines: u64,
    malformed: u64,
    duplicates: u64,
    test_events: u64,
    orders: u64,
}

/// Runs the simulation and writes its files into `out_dir` (created if missing).
/// `progress` is called with the number of days written so far.
pub fn simulate(cfg: &SimConfig, out_dir: &Path, progress: &dyn Fn(u32)) -> Result<SimSummary> {
    let started = Instant::now();
    if cfg.days == 0 || cfg.days > 3_000 {
        return Err(Error::Config(format!(
            "days must be between 1 and 3000, got {}",
            cfg.days
        )));
    }
    if cfg.users > 50_000_000 {
        return Err(Error::Config(format!(
            "users must be at most 50000000, got {}",
            cfg.users
        )));
    }
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let world = World::new(cfg, Catalog::load(cfg.seed)?);
    let ids = Ids::new(cfg.seed);

    let mut users: Vec<UserState> = (0..cfg.users)
        .into_par_iter()
        .map(|i| UserState::new(&world, i, format!("usr_{}", i + 1), UserKind::Registered))
        .collect();
    users.extend((0..world.test_users).map(|j| {
        UserState::new(
            &world,
            cfg.users + j,
            format!("usr_test_{}", j + 1),
            UserKind::Test,
        )
    }));
    let anon_base = cfg.users + world.test_users;

    let events_path = out_dir.join(if cfg.gzip {
        "events.jsonl.gz"
    } else {
        "events.jsonl"
    });
    let file = File::create(&events_path).map_err(io_err(&events_path))?;
    let buffered = BufWriter::with_capacity(1 << 20, file);
    let mut sink = if cfg.gzip {
        Sink::Gz(Box::new(GzEncoder::new(buffered, Compression::fast())))
    } else {
        Sink::Plain(buffered)
    };

    // Writing (and compressing) runs on its own thread while the next day is simulated.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(0);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for bytes in rx {
            sink.write_all(&bytes)?;
        }
        sink.finish()
    });
    let mut counts = Counts::default();
    let mut daily: Vec<DayStats> = Vec::with_capacity(cfg.days as usize);
    let mut carry = Out::default();
    for day in 0..cfg.days {
        let mut outs: Vec<Out> = users
            .par_chunks_mut(CHUNK)
            .map(|chunk| {
                let mut out = Out::default();
                let mut scratch = Scratch::default();
                for st in chunk {
                    simulate_day(&world, &ids, st, day, &mut out, &mut scratch);
                }
                out
            })
            .collect();
        let n_anon =
            (cfg.users as f64 * ANON_PER_USER_DAY * world.day_factor[day as usize]).round() as u32;
        let anon_chunks = n_anon.div_ceil(CHUNK as u32);
        outs.extend(
            (0..anon_chunks)
                .into_par_iter()
                .map(|c| {
                    let mut out = Out::default();
                    let mut scratch = Scratch::default();
                    for k in c * CHUNK as u32..((c + 1) * CHUNK as u32).min(n_anon) {
                        let entity = anon_base + k;
                        let key = ((day as u64) << 32) | k as u64;
                        let mut id = String::with_capacity(21);
                        id.push_str("anon_");
                        let mut hex = Vec::with_capacity(16);
                        emit::push_hex(&mut hex, ids.anon(key), 16);
                        id.push_str(&String::from_utf8_lossy(&hex));
                        let mut st = UserState::new(&world, entity, id, UserKind::Anon);
                        simulate_day(&world, &ids, &mut st, day, &mut out, &mut scratch);
                    }
                    out
                })
                .collect::<Vec<Out>>(),
        );
        let mut stats = DayStats::default();
        for o in &outs {
            stats.add(&o.stats);
        }
        daily.push(stats);
        outs.push(std::mem::take(&mut carry));
        let last = day + 1 == cfg.days;
        let horizon = if last {
            i64::MAX
        } else {
            (day as i64 + 1) * DAY_MS
        };
        let (bytes, next) = arrange_day(&mut outs, horizon, &mut counts);
        carry = next;
        if tx.send(bytes).is_err() {
            // The writer stopped on an error, reported by join below.
            break;
        }
        progress(day + 1);
    }
    drop(tx);
    writer
        .join()
        .map_err(|_| Error::Internal("the event writer thread panicked".into()))?
        .map_err(io_err(&events_path))?;

    let books_path = out_dir.join("books.csv");
    world.catalog.write_csv(&books_path)?;
    let users_path = out_dir.join("users.csv");
    let n_users = write_users(&world, &users, &users_path)?;
    write_spend(&world, &out_dir.join("marketing_spend.csv"))?;

    let events = counts.lines - counts.malformed - counts.duplicates;
    let file_counts = truth::FileCounts {
        lines: counts.lines,
        events,
        test_events: counts.test_events,
        orders: counts.orders,
    };
    let truth = truth::build(&world, &users, &daily, file_counts);
    let truth_path = out_dir.join("truth.json");
    let f = File::create(&truth_path).map_err(io_err(&truth_path))?;
    let mut w = BufWriter::new(f);
    serde_json::to_writer_pretty(&mut w, &truth).map_err(|source| Error::Json {
        path: truth_path.clone(),
        source,
    })?;
    w.write_all(b"\n")
        .and_then(|()| w.flush())
        .map_err(io_err(&truth_path))?;

    let summary = SimSummary {
        events_path,
        lines: counts.lines,
        events,
        malformed: counts.malformed,
        duplicates: counts.duplicates,
        test_events: counts.test_events,
        orders: counts.orders,
        books: world.catalog.books.len(),
        users: n_users,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        lines = summary.lines,
        events = summary.events,
        orders = summary.orders,
        seconds = summary.seconds,
        "simulation written"
    );
    Ok(summary)
}

/// Sorts the lines of `outs` by arrival; returns the bytes of those arriving before `horizon`
/// and, as the next day's carry, the rest.
fn arrange_day(outs: &mut [Out], horizon: i64, counts: &mut Counts) -> (Vec<u8>, Out) {
    let total: usize = outs.iter().map(|o| o.recs.len()).sum();
    let mut recs: Vec<Rec> = Vec::with_capacity(total);
    for (i, o) in outs.iter_mut().enumerate() {
        recs.extend(o.recs.drain(..).map(|r| Rec {
            chunk: i as u32,
            ..r
        }));
    }
    recs.par_sort_unstable_by_key(|r| (r.arrival, r.tie, r.chunk, r.off));
    let mut carry = Out::default();
    let size: usize = outs.iter().map(|o| o.buf.len() + o.recs.len()).sum();
    let mut bytes = Vec::with_capacity(size + total);
    for r in recs {
        let line = &outs[r.chunk as usize].buf[r.off as usize..(r.off + r.len) as usize];
        if r.arrival >= horizon {
            let off = carry.buf.len() as u32;
            carry.buf.extend_from_slice(line);
            carry.recs.push(Rec { off, ..r });
            continue;
        }
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
        counts.lines += 1;
        match r.kind {
            Kind::Event => {}
            Kind::TestEvent => counts.test_events += 1,
            Kind::Order => counts.orders += 1,
            Kind::Duplicate => counts.duplicates += 1,
            Kind::Malformed => counts.malformed += 1,
        }
    }
    (bytes, carry)
}

fn write_users(world: &World, users: &[UserState], path: &Path) -> Result<usize> {
    let err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(["user_id", "signup_date", "country"])
        .map_err(err)?;
    let mut n = 0;
    for u in users.iter().filter(|u| u.kind == UserKind::Registered) {
        let date = world.start + chrono::TimeDelta::days(u.profile.signup_day);
        w.write_record([
            u.user_id.as_str(),
            &date.format("%Y-%m-%d").to_string(),
            u.profile.country,
        ])
        .map_err(err)?;
        n += 1;
    }
    w.flush().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(n)
}

fn write_spend(world: &World, path: &Path) -> Result<()> {
    let err = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(err)?;
    w.write_record(["date", "channel", "spend"]).map_err(err)?;
    for (d, spend) in world.spend_cents.iter().enumerate() {
        let date = world.date(d as u32).format("%Y-%m-%d").to_string();
        for (c, &s) in spend.iter().enumerate() {
            w.write_record([date.as_str(), SOURCES[c], &cents(s)])
                .map_err(err)?;
        }
    }
    w.flush().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
