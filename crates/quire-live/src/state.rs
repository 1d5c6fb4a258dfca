//! The live KPIs' state: the events of the window (from the lake at start, then from the
//! bus), the watermark, and what was emitted. Every figure comes from `quire-kpi`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use polars::prelude::*;
use quire_events::{Event, EventType, Payload};
use quire_kpi::{DailyKpis, DateRange, Dims};
use quire_lake::{IdSet, Lake, events_frame, events_schema};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::Result;

const HOUR_MS: i64 = 3_600_000;
/// Orders per group of an hour: the hourly GMV is recomputed per group (see [`Slot`]), so an
/// hour's recomputation costs at most the groups that changed, however busy the hour.
const GROUP_ORDERS: usize = 2048;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The key of an hour in the live store and the API's `from`/`to`: `YYYY-MM-DDTHH`.
pub fn hour_key(hour: DateTime<Utc>) -> String {
    hour.format("%Y-%m-%dT%H").to_string()
}

/// GMV of one UTC hour as the live path emits it (`GET /api/v1/hourly-gmv`, cli.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourFigure {
    #[serde(with = "hour_format")]
    pub hour: DateTime<Utc>,
    pub gmv: f64,
    pub net_gmv: f64,
    /// Not yet closed by the watermark.
    pub live: bool,
}

/// A closed hour emitted again because a late event or a return changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reemission {
    #[serde(with = "hour_format")]
    pub hour: DateTime<Utc>,
    /// `late_order` (an `order_placed` after its hour closed) or `return`.
    pub reason: String,
    /// The event that caused it.
    pub event_id: String,
    pub net_gmv_before: Option<f64>,
    pub net_gmv: f64,
    pub at: DateTime<Utc>,
}

/// One book of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookRow {
    pub book_id: String,
    /// From the books dimension, when loaded.
    pub title: Option<String>,
    pub units: i64,
    pub gmv: f64,
}

/// Today's KPIs (the UTC day of the newest event seen), from the `quire kpis` report code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodayKpis {
    pub date: NaiveDate,
    /// `None` when the day has no sessions and no orders yet.
    pub kpis: Option<DailyKpis>,
    pub top_books_by_units: Vec<BookRow>,
    pub top_books_by_gmv: Vec<BookRow>,
    pub computed_at: DateTime<Utc>,
}

mod hour_format {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.format("%Y-%m-%dT%H:00:00Z"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// What today's KPIs are computed from: a snapshot of the state, so the computation can run
/// beside the next updates ([`LiveKpis::today_input`], [`TodayInput::compute`]).
pub struct TodayInput {
    frames: Vec<DataFrame>,
    dims: Dims,
    date: NaiveDate,
    top_n: usize,
}

/// Where an order counts: the hour of its first `order_placed` (epoch ms) and its group among
/// that hour's orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Slot {
    hour: i64,
    group: usize,
}

/// A group's share of its hour's figure.
#[derive(Debug, Clone, Copy, PartialEq)]
struct GroupFigure {
    gmv: f64,
    net_gmv: f64,
}

impl GroupFigure {
    /// The row of `hour` in an output of [`quire_kpi::hourly_gmv`]; `None` when it has none.
    fn of(df: &DataFrame, hour: i64) -> Result<Option<Self>> {
        let hours = df.column("hour")?.cast(&DataType::Int64)?;
        let hours = hours.i64()?;
        let gmv = df.column("gmv")?.f64()?;
        let net = df.column("net_gmv")?.f64()?;
        Ok(hours
            .iter()
            .zip(gmv.iter())
            .zip(net.iter())
            .find_map(|((h, g), n)| match (h, g, n) {
                (Some(h), Some(gmv), Some(net_gmv)) if h == hour => {
                    Some(GroupFigure { gmv, net_gmv })
                }
                _ => None,
            }))
    }
}

/// The state of the live KPIs.
///
/// It holds every event of the *window* — from the start of the day before the newest
/// event's UTC day — plus, from the lake, each earlier user's first event and first order
/// (so "new vs returning user" and a customer's first order, which look at all history, come
/// out as in the replay), and the orders and returns of older hours a late event or a return
/// touched. The open hours' GMV and the closed hours' `net_gmv` are [`quire_kpi::hourly_gmv`]
/// over its orders and returns, computed per group of an hour's orders (an order and its
/// returns are in one group) and summed; today's KPIs are `quire_kpi::build_models` +
/// `kpi_report_from_models` over all of it.
pub struct LiveKpis {
    lake: Option<Lake>,
    dims: Dims,
    lateness: Duration,
    top_n: usize,
    max_event_ms: Option<i64>,
    window_start_ms: Option<i64>,
    /// Lake rows: the window's events, the history rows, and the earlier placements of
    /// orders placed again in the window (see `history_orders`).
    base: Vec<DataFrame>,
    /// Events from the bus, one frame per step.
    fresh: Vec<DataFrame>,
    /// Bus events the window left before the lake had them (a burst, or an archiver behind,
    /// can roll the window before they are committed): read with the lake's events until the
    /// lake has them, so the history never misses an event the state has taken.
    unarchived: Vec<DataFrame>,
    /// `order_placed` and `order_returned` rows of `base` and `fresh`, and of older hours.
    orders: Vec<DataFrame>,
    /// The rows of `orders` by the group their order counts in, as sorted by the last
    /// [`Self::hourly`]: a group's recomputation reads its own rows, not every held order.
    group_rows: HashMap<Slot, Vec<DataFrame>>,
    /// Rows of `orders` not in `group_rows` yet: held since the last [`Self::hourly`], or of
    /// an order not seen then (a return before its order).
    unsorted: Vec<DataFrame>,
    /// Orders that moved to an earlier hour's group since the last [`Self::hourly`], with the
    /// group they left (their rows there follow them).
    moved: Vec<(String, Slot)>,
    /// Hashed ids of the events held: the window's (lake and bus) and the bus events taken
    /// since the window last moved (see `index_seen`).
    seen: IdSet,
    /// Hashed ids of the history's events (the lake's and [`Self::unarchived`]'s before the
    /// window), rebuilt when the window loads: a bus event with one of them is a copy of an
    /// event already counted (a sender's resend, maybe with another time, days later), which
    /// the lake's dedup drops from the replay too. 16 bytes per event, as the archiver's own id
    /// index.
    history_ids: IdSet,
    /// Where every held order counts, by `order_id`: the hour (epoch ms) of its first
    /// `order_placed` and its group in that hour.
    order_slots: HashMap<String, Slot>,
    /// The same by hour: the `order_id`s of each group of the hour, in arrival order (the last
    /// group takes new orders until it holds [`GROUP_ORDERS`]).
    hour_orders: HashMap<i64, Vec<HashSet<String>>>,
    /// Each group's share of its hour's figure ([`quire_kpi::hourly_gmv`] over the group's
    /// orders) as of the last [`Self::hourly`]; `None`: no standing order.
    group_figures: HashMap<Slot, Option<GroupFigure>>,
    /// Groups whose orders or returns changed since the last [`Self::hourly`]; `None`: all.
    dirty_groups: Option<BTreeSet<Slot>>,
    /// Hours before the window whose orders were loaded from the lake.
    loaded_hours: HashSet<i64>,
    /// Hashed `order_id`s the lake has an `order_placed` of before the window: a placement
    /// of one of them in the window is a re-placement, which counts in the older hour of the
    /// first (loaded from the lake then), as in the replay. Orders are few beside events, so
    /// this costs a fraction of the lake writer's own id set.
    placed_before: IdSet,
    /// Orders of `placed_before` placed again in the window, whose earlier placements were
    /// added to the history rows of `base`.
    history_orders: HashSet<String>,
    emitted: BTreeMap<i64, HourFigure>,
    /// Hours without a standing order any more (their only order was placed again earlier)
    /// that were emitted before, by this process or, for all we know after a start, by an
    /// earlier one: the store drops them, as the replay leaves such an hour out.
    removed: Vec<i64>,
    /// Closed hours touched since the last [`Self::hourly`], in arrival order:
    /// (hour, reason, event id).
    touched: Vec<(i64, &'static str, String)>,
    reemissions: Vec<Reemission>,
    events_seen: u64,
    dirty_today: bool,
}

impl LiveKpis {
    /// A state reading history from `lake` (none: only what [`Self::add`] brings), with the
    /// watermark's allowed lateness and the leaderboards' length.
    pub fn new(lake: Option<Lake>, dims: Dims, lateness: Duration, top_n: usize) -> Self {
        Self {
            lake,
            dims,
            lateness,
            top_n,
            max_event_ms: None,
            window_start_ms: None,
            base: Vec::new(),
            fresh: Vec::new(),
            unarchived: Vec::new(),
            orders: Vec::new(),
            group_rows: HashMap::new(),
            unsorted: Vec::new(),
            moved: Vec::new(),
            seen: IdSet::new(),
            history_ids: IdSet::new(),
            order_slots: HashMap::new(),
            hour_orders: HashMap::new(),
            group_figures: HashMap::new(),
            dirty_groups: None,
            loaded_hours: HashSet::new(),
            placed_before: IdSet::new(),
            history_orders: HashSet::new(),
            emitted: BTreeMap::new(),
            removed: Vec::new(),
            touched: Vec::new(),
            reemissions: Vec::new(),
            events_seen: 0,
            dirty_today: true,
        }
    }

    /// Loads the window from the lake (the day of the lake's newest non-test event and the day
    /// before) and the history rows. A no-op without a lake or with an empty one.
    pub fn seed(&mut self) -> Result<()> {
        let Some(lake) = self.lake.clone() else {
            return Ok(());
        };
        let max = lake
            .scan_events()?
            .filter(not_test())
            .select([col("event_timestamp").max().cast(DataType::Int64)])
            .collect()?;
        let max = max.column("event_timestamp")?.i64()?.get(0);
        let Some(max) = max else {
            return Ok(());
        };
        self.max_event_ms = Some(self.max_event_ms.map_or(max, |m| m.max(max)));
        self.load_window(&lake)
    }

    /// The watermark: the newest event time seen minus the allowed lateness. Test events are
    /// not counted: test traffic is in no KPI, and a tester's clock must not close real hours.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.max_event_ms
            .and_then(|m| DateTime::from_timestamp_millis(m - self.lateness.num_milliseconds()))
    }

    /// The newest event time seen.
    pub fn max_event_time(&self) -> Option<DateTime<Utc>> {
        self.max_event_ms.and_then(DateTime::from_timestamp_millis)
    }

    /// Events taken from the bus so far (duplicates not counted).
    pub fn events_seen(&self) -> u64 {
        self.events_seen
    }

    fn closed(&self, hour_ms: i64) -> bool {
        self.watermark()
            .is_some_and(|w| hour_ms + HOUR_MS <= w.timestamp_millis())
    }

    /// Adds events from the bus. Repeats of an event already added, or of one of the history
    /// (before the window), are ignored, as the lake's dedup drops them from the replay; a
    /// repeat of a lake row of the window is removed by the staging's dedup, as in the replay.
    pub fn add(&mut self, events: Vec<Event>) -> Result<()> {
        let events: Vec<Event> = events
            .into_iter()
            .filter(|e| {
                let id = xxh3_128(e.event_id.as_bytes());
                !self.history_ids.contains(id) && self.seen.insert(id)
            })
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        self.events_seen += events.len() as u64;
        self.dirty_today = true;
        // Lateness is judged against the watermark before this step's events.
        for e in &events {
            if e.is_test {
                continue;
            }
            match &e.payload {
                Payload::OrderPlaced { order_id, .. } => {
                    let h = floor_hour(e.event_timestamp.timestamp_millis());
                    self.ensure_hour(h)?;
                    self.find_earlier_placement(order_id)?;
                    self.place(order_id, h);
                    if self.closed(h) {
                        self.touched.push((h, "late_order", e.event_id.clone()));
                    }
                }
                Payload::OrderReturned { order_id, .. } => {
                    // A return of an order seen nowhere counts nowhere until its order comes:
                    // then the order's group is recomputed with it.
                    if let Some(slot) = self.order_slot(order_id)? {
                        self.mark_dirty(slot);
                        if self.closed(slot.hour) {
                            self.touched.push((slot.hour, "return", e.event_id.clone()));
                        }
                    }
                }
                _ => {}
            }
        }
        // Test traffic counts nowhere, so it neither moves the watermark nor starts a day.
        let newest = events
            .iter()
            .filter(|e| !e.is_test)
            .map(|e| e.event_timestamp.timestamp_millis())
            .max();
        let refs: Vec<&Event> = events.iter().collect();
        let df = events_frame(&refs, Utc::now())?;
        // Test orders count nowhere (the KPI staging drops them), so they are not held.
        let order_refs: Vec<&Event> = events
            .iter()
            .filter(|e| {
                !e.is_test
                    && matches!(
                        e.event_type(),
                        EventType::OrderPlaced | EventType::OrderReturned
                    )
            })
            .collect();
        if !order_refs.is_empty() {
            self.hold_orders(events_frame(&order_refs, Utc::now())?)?;
        }
        push_chunk(&mut self.fresh, df)?;
        let old_day = self.max_event_ms.map(floor_day);
        if let Some(newest) = newest {
            self.max_event_ms = Some(self.max_event_ms.map_or(newest, |m| m.max(newest)));
        }
        let new_day = self.max_event_ms.map(floor_day);
        if self.window_start_ms.is_none() || old_day != new_day {
            self.roll_window()?;
        }
        Ok(())
    }

    /// Records an `order_placed` of `order_id` in hour `h`: the order counts in the hour of its
    /// first placement (as the replay's `standing_orders` has it), whose group is marked for
    /// recomputation, and so is the group it leaves when this placement is earlier.
    fn place(&mut self, order_id: &str, h: i64) {
        match self.order_slots.get(order_id).copied() {
            Some(home) if home.hour <= h => self.mark_dirty(home),
            old => {
                if let Some(old) = old {
                    self.moved.push((order_id.to_owned(), old));
                    if let Some(ids) = self
                        .hour_orders
                        .get_mut(&old.hour)
                        .and_then(|groups| groups.get_mut(old.group))
                    {
                        ids.remove(order_id);
                    }
                    self.mark_dirty(old);
                }
                let groups = self.hour_orders.entry(h).or_default();
                if groups.last().is_none_or(|g| g.len() >= GROUP_ORDERS) {
                    groups.push(HashSet::new());
                }
                let group = groups.len() - 1;
                groups[group].insert(order_id.to_owned());
                let slot = Slot { hour: h, group };
                self.order_slots.insert(order_id.to_owned(), slot);
                self.mark_dirty(slot);
            }
        }
    }

    /// Before `order_id` is placed in the window: when the lake placed it before the window
    /// and that placement is not held, loads its hour, so that the earlier placement stands.
    /// Its earlier `order_placed` rows also join the history (once), so that today's KPIs
    /// keep the first placement standing too (staging drops copies of rows already there).
    fn find_earlier_placement(&mut self, order_id: &str) -> Result<()> {
        if !self.placed_before.contains(xxh3_128(order_id.as_bytes()))
            || self.history_orders.contains(order_id)
        {
            return Ok(());
        }
        if !self.order_slots.contains_key(order_id) {
            self.order_slot(order_id)?;
        }
        if let (Some(lake), Some(start)) = (&self.lake, self.window_start_ms) {
            let rows = self
                .history_events(lake)?
                .filter(
                    placements_of(order_id)
                        .and(col("event_timestamp").cast(DataType::Int64).lt(lit(start))),
                )
                .collect()?;
            self.base.push(rows);
        }
        self.history_orders.insert(order_id.to_owned());
        Ok(())
    }

    fn mark_dirty(&mut self, slot: Slot) {
        if let Some(d) = &mut self.dirty_groups {
            d.insert(slot);
        }
    }

    /// Where a held order counts, loading it (and its hour) from the lake when it is older
    /// than the window. `None` for an order seen nowhere.
    fn order_slot(&mut self, order_id: &str) -> Result<Option<Slot>> {
        if let Some(slot) = self.order_slots.get(order_id) {
            return Ok(Some(*slot));
        }
        let Some(lake) = &self.lake else {
            return Ok(None);
        };
        let df = self
            .history_events(lake)?
            .filter(placements_of(order_id))
            .select([col("event_timestamp").min().cast(DataType::Int64)])
            .collect()?;
        let Some(ts) = df.column("event_timestamp")?.i64()?.get(0) else {
            return Ok(None);
        };
        self.ensure_hour(floor_hour(ts))?;
        Ok(self.order_slots.get(order_id).copied())
    }

    /// Makes sure every order of hour `h` (and their returns) is held: hours of the window
    /// are; an older hour is loaded from the lake once.
    fn ensure_hour(&mut self, h: i64) -> Result<()> {
        let in_window = self.window_start_ms.is_some_and(|w| h >= w);
        if in_window || self.loaded_hours.contains(&h) {
            return Ok(());
        }
        let Some(lake) = &self.lake else {
            return Ok(());
        };
        let all = self.history_events(lake)?;
        let placed = all.clone().filter(
            placements().and(
                col("event_timestamp")
                    .cast(DataType::Int64)
                    .gt_eq(lit(h))
                    .and(
                        col("event_timestamp")
                            .cast(DataType::Int64)
                            .lt(lit(h + HOUR_MS)),
                    ),
            ),
        );
        let ids = placed.clone().select([col("order_id")]);
        let returns = all
            .filter(col("event_type").eq(lit("order_returned")))
            .join(
                ids,
                [col("order_id")],
                [col("order_id")],
                JoinArgs::new(JoinType::Semi),
            );
        let rows = concat([placed, returns], UnionArgs::default())?.collect()?;
        self.loaded_hours.insert(h);
        self.index_orders(&rows, false)?;
        self.hold_orders(rows)
    }

    /// Holds order rows (lake schema): in `orders`, and to be sorted into their groups.
    fn hold_orders(&mut self, df: DataFrame) -> Result<()> {
        self.unsorted.push(df.clone());
        push_chunk(&mut self.orders, df)
    }

    /// Records the hour of every `order_placed` of real traffic in `df` (lake schema): a test
    /// placement has no slot, as the KPIs leave it out.
    fn index_orders(&mut self, df: &DataFrame, in_window: bool) -> Result<()> {
        let placed = df
            .clone()
            .lazy()
            .filter(placements())
            .select([
                col("order_id"),
                col("event_timestamp").cast(DataType::Int64),
            ])
            .collect()?;
        let ids = placed.column("order_id")?.str()?;
        let ts = placed.column("event_timestamp")?.i64()?;
        for (id, t) in ids.iter().zip(ts.iter()) {
            if let (Some(id), Some(t)) = (id, t) {
                if in_window {
                    self.find_earlier_placement(id)?;
                }
                self.place(id, floor_hour(t));
            }
        }
        Ok(())
    }

    /// Moves the window to the day before the newest event's day: reloads the lake's part
    /// and moves bus events now before the window out of it (to `unarchived` while the lake
    /// does not have them yet).
    fn roll_window(&mut self) -> Result<()> {
        let Some(max) = self.max_event_ms else {
            return Ok(());
        };
        let start = floor_day(max) - DAY_MS;
        if self.window_start_ms == Some(start) {
            return Ok(());
        }
        let cut = col("event_timestamp")
            .cast(DataType::Int64)
            .gt_eq(lit(start));
        let fresh = std::mem::take(&mut self.fresh);
        let left = retain(fresh.clone(), cut.clone().not())?;
        self.fresh = retain(fresh, cut.clone())?;
        if let Some(lake) = self.lake.clone() {
            self.unarchived.extend(left);
            self.unarchived = not_in_lake(&lake, std::mem::take(&mut self.unarchived))?;
        }
        match self.lake.clone() {
            Some(lake) => self.load_window_at(&lake, start)?,
            None => {
                self.window_start_ms = Some(start);
                self.index_seen()?;
            }
        }
        Ok(())
    }

    /// Rebuilds the ids bus events are deduplicated against from the events held: the
    /// window's, from the lake and from the bus. So a copy of a lake event that reaches the bus
    /// again (a sender's resend with another time, read after a restart) is not taken twice,
    /// and the set forgets the ids of the days the window left instead of growing with every
    /// day: with a lake, those are in [`Self::history_ids`].
    fn index_seen(&mut self) -> Result<()> {
        let mut seen = IdSet::new();
        seen.reserve(
            self.base
                .iter()
                .chain(&self.fresh)
                .map(DataFrame::height)
                .sum(),
        );
        for df in self.base.iter().chain(&self.fresh) {
            seen.extend(
                df.column("event_id")?
                    .str()?
                    .iter()
                    .flatten()
                    .map(|id| xxh3_128(id.as_bytes())),
            );
        }
        self.seen = seen;
        Ok(())
    }

    fn load_window(&mut self, lake: &Lake) -> Result<()> {
        let Some(max) = self.max_event_ms else {
            return Ok(());
        };
        self.load_window_at(lake, floor_day(max) - DAY_MS)
    }

    /// The lake's events with the bus events it may not have yet ([`Self::unarchived`]): the
    /// history the state reads. An event in both is one for staging (the lake's copy, first).
    fn history_events(&self, lake: &Lake) -> Result<LazyFrame> {
        let lake_events = lake.scan_events()?;
        if self.unarchived.is_empty() {
            return Ok(lake_events);
        }
        let frames = std::iter::once(lake_events)
            .chain(self.unarchived.iter().map(|df| df.clone().lazy()))
            .collect::<Vec<_>>();
        Ok(concat(frames, UnionArgs::default())?)
    }

    fn load_window_at(&mut self, lake: &Lake, start: i64) -> Result<()> {
        let all = self.history_events(lake)?;
        let ts = col("event_timestamp").cast(DataType::Int64);
        let window = all.clone().filter(ts.clone().gt_eq(lit(start))).collect()?;
        let before = quire_kpi::stage_events(all.clone().filter(ts.lt(lit(start))));
        let by_time = |lf: LazyFrame| {
            lf.sort(
                ["event_timestamp", "event_id"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .unique_stable(Some(cols(["user_id"])), UniqueKeepStrategy::First)
        };
        let first_events = by_time(
            before
                .clone()
                .filter(col("event_type").neq(lit("order_returned"))),
        );
        let first_orders = by_time(before.filter(col("event_type").eq(lit("order_placed"))));
        // Staging keeps every lake column but sorts: select the lake's columns in its order.
        let names: Vec<Expr> = events_schema()
            .iter_names()
            .map(|n| col(n.clone()))
            .collect();
        let history = concat([first_events, first_orders], UnionArgs::default())?
            .select(names)
            .collect()?;
        let before_window = col("event_timestamp").cast(DataType::Int64).lt(lit(start));
        self.history_ids = hashed(&all, before_window.clone(), "event_id")?;
        self.placed_before = hashed(&all, placements().and(before_window), "order_id")?;
        self.history_orders.clear();
        self.window_start_ms = Some(start);
        self.base = vec![window.clone(), history];
        // Orders: the window's, then those older hours already loaded stay loaded.
        let window_orders = window
            .lazy()
            .filter(
                col("event_type")
                    .eq(lit("order_placed"))
                    .or(col("event_type").eq(lit("order_returned"))),
            )
            .collect()?;
        self.order_slots.clear();
        self.hour_orders.clear();
        self.group_figures.clear();
        // Everything is recomputed after a reload.
        self.dirty_groups = None;
        self.loaded_hours.clear();
        let fresh_orders = retain(
            std::mem::take(&mut self.orders),
            col("event_timestamp")
                .cast(DataType::Int64)
                .gt_eq(lit(start)),
        )?;
        // The groups' rows are rebuilt from `orders` by the next (full) recomputation.
        self.orders = Vec::new();
        self.index_orders(&window_orders, true)?;
        self.hold_orders(window_orders.clone())?;
        for df in fresh_orders {
            self.index_orders(&df, true)?;
            self.hold_orders(df)?;
        }
        // Returns in the window for orders before it: their hours' orders come from the lake.
        let returned = window_orders
            .lazy()
            .filter(col("event_type").eq(lit("order_returned")))
            .select([col("order_id")])
            .collect()?;
        let returned: Vec<String> = returned
            .column("order_id")?
            .str()?
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        for id in returned {
            self.order_slot(&id)?;
        }
        self.index_seen()?;
        self.dirty_today = true;
        Ok(())
    }

    /// Recomputes the hourly GMV ([`quire_kpi::hourly_gmv`]) of the hours whose orders or
    /// returns changed since the last call — over the changed groups' orders only (at most
    /// [`GROUP_ORDERS`] each), so the cost follows what changed, not what is held, however busy
    /// the hour — and returns the figures that changed (a new figure, or
    /// an hour the watermark closed), with the closed hours re-emitted because of a late event
    /// or a return.
    pub fn hourly(&mut self) -> Result<(Vec<HourFigure>, Vec<Reemission>)> {
        let dirty = self.dirty_groups.replace(BTreeSet::new());
        let hours = self.recompute_groups(dirty.as_ref());
        if hours.is_err() {
            // Nothing is lost: the next call recomputes every group.
            self.dirty_groups = None;
        }
        let mut changed = Vec::new();
        for h in hours? {
            // The hour's figure: its groups' shares summed (an hour without a standing order
            // has none, as `hourly_gmv` leaves it out).
            let groups = self.hour_orders.get(&h).map_or(0, Vec::len);
            let Some((g, n)) = (0..groups)
                .filter_map(|group| self.group_figures.get(&Slot { hour: h, group }))
                .flatten()
                .fold(None, |sum: Option<(f64, f64)>, f| {
                    let (g, n) = sum.unwrap_or((0.0, 0.0));
                    Some((g + f.gmv, n + f.net_gmv))
                })
            else {
                // Dropped from the store if this process emitted it, and on a full
                // recomputation (the first after a start) whatever this process did: the store
                // outlives a restart, and an earlier process may have published the hour.
                if self.emitted.remove(&h).is_some() || dirty.is_none() {
                    self.removed.push(h);
                }
                continue;
            };
            let Some(hour) = Utc.timestamp_millis_opt(h).single() else {
                continue;
            };
            let fig = HourFigure {
                hour,
                gmv: g,
                net_gmv: n,
                live: !self.closed(h),
            };
            if self.emitted.get(&h) != Some(&fig) {
                changed.push(fig);
            }
        }
        // Hours not recomputed whose figure the watermark has closed since.
        if dirty.is_some() {
            for (h, fig) in &self.emitted {
                if fig.live
                    && self.closed(*h)
                    && !changed.iter().any(|f| f.hour.timestamp_millis() == *h)
                {
                    changed.push(HourFigure {
                        live: false,
                        ..fig.clone()
                    });
                }
            }
            changed.sort_by_key(|f| f.hour);
        }
        let mut reemitted = Vec::new();
        let now = Utc::now();
        let touched = std::mem::take(&mut self.touched);
        for (i, (h, reason, event_id)) in touched.iter().enumerate() {
            // An hour touched twice since the last call is re-emitted once, for the last cause.
            if touched[i + 1..].iter().any(|(later, _, _)| later == h) {
                continue;
            }
            let Some(fig) = changed.iter().find(|f| f.hour.timestamp_millis() == *h) else {
                continue;
            };
            reemitted.push(Reemission {
                hour: fig.hour,
                reason: (*reason).to_owned(),
                event_id: event_id.clone(),
                net_gmv_before: self.emitted.get(h).map(|f| f.net_gmv),
                net_gmv: fig.net_gmv,
                at: now,
            });
        }
        for f in &changed {
            self.emitted.insert(f.hour.timestamp_millis(), f.clone());
        }
        self.reemissions.extend(reemitted.iter().cloned());
        Ok((changed, reemitted))
    }

    /// The hours [`Self::hourly`] found without a standing order since the last call, that had
    /// a figure before (on its first call: that may have had one, published by an earlier
    /// process): to drop from wherever the figures were published.
    pub fn take_removed(&mut self) -> Vec<DateTime<Utc>> {
        std::mem::take(&mut self.removed)
            .into_iter()
            .filter_map(|h| Utc.timestamp_millis_opt(h).single())
            .collect()
    }

    /// Recomputes each group's share ([`quire_kpi::hourly_gmv`] over the group's orders and
    /// their returns) of `groups` (every group: `None`) and returns their hours. An order and
    /// its returns fall in one group, so an hour's figure is the sum of its groups' shares.
    fn recompute_groups(&mut self, groups: Option<&BTreeSet<Slot>>) -> Result<BTreeSet<i64>> {
        let slots: Vec<Slot> = match groups {
            Some(groups) => groups.iter().copied().collect(),
            None => {
                // Every group from `orders`, which holds every row: also what recovers the
                // rows of a call that failed part-way.
                self.group_rows.clear();
                self.moved.clear();
                self.unsorted = self.orders.clone();
                self.group_figures.clear();
                self.hour_orders
                    .iter()
                    .flat_map(|(&hour, groups)| {
                        (0..groups.len()).map(move |group| Slot { hour, group })
                    })
                    .collect()
            }
        };
        self.sort_rows()?;
        let mut hours = BTreeSet::new();
        for slot in slots {
            let ids: Vec<&str> = self
                .hour_orders
                .get(&slot.hour)
                .and_then(|groups| groups.get(slot.group))
                .map(|ids| ids.iter().map(String::as_str).collect())
                .unwrap_or_default();
            let frames = self.group_rows.remove(&slot).unwrap_or_default();
            let figure = if ids.is_empty() {
                None
            } else {
                // The group's rows, kept as one frame; the filter drops nothing unless an
                // order left the group.
                let ids = Series::new("ids".into(), ids);
                let mut rows = union(&frames)?
                    .filter(col("order_id").is_in(lit(ids).implode(false), false))
                    .collect()?;
                rows.rechunk_mut();
                let df = quire_kpi::hourly_gmv(rows.clone().lazy())?;
                self.group_rows.insert(slot, vec![rows]);
                GroupFigure::of(&df, slot.hour)?
            };
            self.group_figures.insert(slot, figure);
            hours.insert(slot.hour);
        }
        Ok(hours)
    }

    /// Sorts the rows held since the last call into their orders' groups, and moves the rows
    /// of orders that changed group. Rows of an order not seen yet wait for it.
    fn sort_rows(&mut self) -> Result<()> {
        for (id, from) in std::mem::take(&mut self.moved) {
            let Some(to) = self.order_slots.get(&id).copied() else {
                continue;
            };
            let Some(frames) = self.group_rows.remove(&from) else {
                continue;
            };
            let this = col("order_id").eq(lit(id));
            let all = union(&frames)?;
            let taken = all.clone().filter(this.clone()).collect()?;
            let kept = all.filter(this.not()).collect()?;
            self.group_rows.insert(from, vec![kept]);
            if taken.height() > 0 {
                self.group_rows.entry(to).or_default().push(taken);
            }
        }
        let mut waiting = Vec::new();
        for df in std::mem::take(&mut self.unsorted) {
            let ids = df.column("order_id")?.str()?;
            let mut by_group: HashMap<Option<Slot>, Vec<IdxSize>> = HashMap::new();
            for (i, id) in ids.iter().enumerate() {
                let slot = id.and_then(|id| self.order_slots.get(id).copied());
                // A frame's rows number under `IdxSize::MAX` (Polars' own bound).
                by_group
                    .entry(slot)
                    .or_default()
                    .push(IdxSize::try_from(i).unwrap_or(IdxSize::MAX));
            }
            for (slot, idx) in by_group {
                let rows = df.take(&IdxCa::from_vec("idx".into(), idx))?;
                match slot {
                    Some(slot) => self.group_rows.entry(slot).or_default().push(rows),
                    None => waiting.push(rows),
                }
            }
        }
        // Kept as one frame: they are read again at every call until their order comes.
        if !waiting.is_empty() {
            self.unsorted.push(union(&waiting)?.collect()?);
        }
        Ok(())
    }

    /// Every hour emitted so far, by hour.
    pub fn emitted(&self) -> impl Iterator<Item = &HourFigure> {
        self.emitted.values()
    }

    /// Every re-emission so far, oldest first.
    pub fn reemissions(&self) -> &[Reemission] {
        &self.reemissions
    }

    /// Whether events arrived since the last [`Self::today_input`].
    pub fn today_is_dirty(&self) -> bool {
        self.dirty_today
    }

    /// A snapshot for computing today's KPIs (cheap: frames share their buffers). `None`
    /// before any event.
    pub fn today_input(&mut self) -> Option<TodayInput> {
        let max = self.max_event_ms?;
        let date = DateTime::from_timestamp_millis(max)?.date_naive();
        self.dirty_today = false;
        Some(TodayInput {
            frames: self.base.iter().chain(&self.fresh).cloned().collect(),
            dims: self.dims.clone(),
            date,
            top_n: self.top_n,
        })
    }
}

impl TodayInput {
    /// Today's KPIs: `quire_kpi::build_models` and `kpi_report_from_models` over the
    /// snapshot, only the day's rows kept.
    pub fn compute(self) -> Result<TodayKpis> {
        let models = quire_kpi::build_models(union(&self.frames)?, &self.dims)?;
        let range = DateRange {
            from: Some(self.date),
            to: Some(self.date),
        };
        let report = quire_kpi::kpi_report_from_models(&models, range, self.top_n)?;
        let kpis = report.daily.into_iter().find(|d| d.date == self.date);
        let day = i32::try_from((self.date - NaiveDate::default()).num_days()).unwrap_or(0);
        // The day's books sold (the leaderboards also hold the books only viewed or carted).
        let board = |lf: LazyFrame| -> Result<Vec<BookRow>> {
            let mut lf = lf
                .filter(col("date").cast(DataType::Int32).eq(lit(day)))
                .filter(col("units").gt(lit(0i64)))
                .sort(["rank"], SortMultipleOptions::default())
                .limit(u32::try_from(self.top_n).unwrap_or(u32::MAX) as IdxSize)
                .select([
                    col("book_id"),
                    col("units").cast(DataType::Int64),
                    col("gmv").cast(DataType::Float64),
                ]);
            if let Some(books) = &self.dims.books {
                lf = lf.join(
                    books.clone().select([col("book_id"), col("title")]),
                    [col("book_id")],
                    [col("book_id")],
                    JoinArgs::new(JoinType::Left),
                );
            } else {
                lf = lf.with_column(lit(NULL).cast(DataType::String).alias("title"));
            }
            let df = lf.collect()?;
            let ids = df.column("book_id")?.str()?;
            let titles = df.column("title")?.cast(&DataType::String)?;
            let titles = titles.str()?;
            let units = df.column("units")?.i64()?;
            let gmv = df.column("gmv")?.f64()?;
            Ok((0..df.height())
                .map(|i| BookRow {
                    book_id: ids.get(i).unwrap_or_default().to_owned(),
                    title: titles.get(i).map(str::to_owned),
                    units: units.get(i).unwrap_or(0),
                    gmv: gmv.get(i).unwrap_or(0.0),
                })
                .collect())
        };
        Ok(TodayKpis {
            date: self.date,
            kpis,
            top_books_by_units: board(models.agg_book_leaderboard_units)?,
            top_books_by_gmv: board(models.agg_book_leaderboard_gmv)?,
            computed_at: Utc::now(),
        })
    }
}

/// Rows that are not test traffic.
fn not_test() -> Expr {
    col("is_test").fill_null(lit(false)).not()
}

/// The `order_placed` rows of real traffic.
fn placements() -> Expr {
    col("event_type").eq(lit("order_placed")).and(not_test())
}

/// The rows that place `order_id` (test traffic left out).
fn placements_of(order_id: &str) -> Expr {
    placements().and(col("order_id").eq(lit(order_id.to_owned())))
}

fn floor_hour(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn floor_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// The frames as one lazy frame (an empty one with the lake schema when there are none).
fn union(frames: &[DataFrame]) -> Result<LazyFrame> {
    if frames.is_empty() {
        return Ok(DataFrame::empty_with_schema(&events_schema()).lazy());
    }
    let lfs: Vec<LazyFrame> = frames.iter().map(|f| f.clone().lazy()).collect();
    Ok(concat(lfs, UnionArgs::default())?)
}

/// Rows past which frames are no longer merged: a merge copies its rows on the live consumer's
/// path. Merging the whole window (millions of rows under load) in one step stalled it for
/// seconds; with merges of up to 2^18 rows an applied step's p99 was 110 ms in the benchmark,
/// at 2^15 it is 55 ms. Frames stay few enough: one per half to once this many rows (250–500
/// for the benchmark's 8 million events), plus the logarithmic tail below.
const MERGED_ROWS_MAX: usize = 1 << 15;

/// Appends a frame, then merges the newest frames while the last is at least half the size
/// of the one before (as a log-structured merge does) and the merge stays within
/// [`MERGED_ROWS_MAX`] rows: frames stay few and each row is copied a logarithmic number of
/// times, however small the steps, and no step copies more than that many rows.
fn push_chunk(chunks: &mut Vec<DataFrame>, df: DataFrame) -> Result<()> {
    push_chunk_capped(chunks, df, MERGED_ROWS_MAX)
}

fn push_chunk_capped(chunks: &mut Vec<DataFrame>, df: DataFrame, cap: usize) -> Result<()> {
    if df.height() == 0 {
        return Ok(());
    }
    chunks.push(df);
    while chunks.len() >= 2 {
        let n = chunks.len();
        let (prev, last) = (chunks[n - 2].height(), chunks[n - 1].height());
        if last * 2 < prev || prev + last > cap {
            break;
        }
        let pair = chunks.split_off(n - 2);
        let mut merged = union(&pair)?.collect()?;
        merged.rechunk_mut();
        chunks.push(merged);
    }
    Ok(())
}

/// The rows of `frames` whose event id the lake does not have (yet).
fn not_in_lake(lake: &Lake, frames: Vec<DataFrame>) -> Result<Vec<DataFrame>> {
    if frames.is_empty() {
        return Ok(frames);
    }
    let ids = lake.scan_events()?.select([col("event_id")]);
    let left = union(&frames)?
        .join(
            ids,
            [col("event_id")],
            [col("event_id")],
            JoinArgs::new(JoinType::Anti),
        )
        .collect()?;
    Ok(if left.height() == 0 {
        Vec::new()
    } else {
        vec![left]
    })
}

/// Keeps the rows of each frame that satisfy `pred`.
/// The hashed values of column `column` of the rows of `frame` that pass `filter`.
fn hashed(frame: &LazyFrame, filter: Expr, column: &str) -> Result<IdSet> {
    let df = frame
        .clone()
        .filter(filter)
        .select([col(column)])
        .collect()?;
    let values = df.column(column)?.str()?;
    let mut set = IdSet::new();
    set.reserve(values.len());
    set.extend(values.iter().flatten().map(|v| xxh3_128(v.as_bytes())));
    Ok(set)
}

fn retain(chunks: Vec<DataFrame>, pred: Expr) -> Result<Vec<DataFrame>> {
    chunks
        .into_iter()
        .map(|df| Ok(df.lazy().filter(pred.clone()).collect()?))
        .filter(|r: &Result<DataFrame>| r.as_ref().map_or(true, |d| d.height() > 0))
        .collect()
}

/// The hour (UTC) an event time falls in.
pub(crate) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(json: &str) -> Event {
        quire_events::parse_line(json).unwrap()
    }

    fn order(id: &str, ts: &str, total: f64) -> Event {
        placed(id, id, ts, total)
    }

    /// Event `id` placing order `o-{order}` (again, when `id` is not `order`).
    fn placed(id: &str, order: &str, ts: &str, total: f64) -> Event {
        ev(&format!(
            r#"{{"event_id":"{id}","event_type":"order_placed","event_timestamp":"{ts}","user_id":"u1","device":"mobile","order_id":"o-{order}","items":[{{"book_id":"bk_1","quantity":1,"unit_price":{total}}}],"total_price":{total}}}"#
        ))
    }

    fn hour_keys(hours: &[HourFigure]) -> Vec<String> {
        hours.iter().map(|h| hour_key(h.hour)).collect()
    }

    fn removed_keys(s: &mut LiveKpis) -> Vec<String> {
        s.take_removed().into_iter().map(hour_key).collect()
    }

    fn view(id: &str, ts: &str) -> Event {
        ev(&format!(
            r#"{{"event_id":"{id}","event_type":"page_view","event_timestamp":"{ts}","user_id":"u2","device":"mobile","page":"home"}}"#
        ))
    }

    fn state() -> LiveKpis {
        LiveKpis::new(None, Dims::default(), Duration::minutes(10), 5)
    }

    #[test]
    fn an_hour_closes_when_the_watermark_reaches_its_end() {
        let mut s = state();
        s.add(vec![order("a", "2025-10-01T10:05:00Z", 30.0)])
            .unwrap();
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hours.len(), 1);
        assert!(hours[0].live);
        // 11:09:59 − 10 min < 11:00: still open; 11:10 closes it, and it is emitted again.
        s.add(vec![view("v1", "2025-10-01T11:09:59Z")]).unwrap();
        assert!(s.hourly().unwrap().0.is_empty());
        s.add(vec![view("v2", "2025-10-01T11:10:00Z")]).unwrap();
        let (hours, reemitted) = s.hourly().unwrap();
        assert_eq!(hours.len(), 1);
        assert!(!hours[0].live);
        assert_eq!(hours[0].net_gmv, 30.0);
        assert!(reemitted.is_empty(), "closing is not a re-emission");
    }

    #[test]
    fn late_orders_and_returns_reemit_their_closed_hour() {
        let mut s = state();
        s.add(vec![
            order("a", "2025-10-01T10:05:00Z", 30.0),
            order("b", "2025-10-01T12:01:00Z", 5.0),
            view("v", "2025-10-01T12:30:00Z"),
        ])
        .unwrap();
        s.hourly().unwrap();
        // A late order in closed hour 10, an order in open hour 12: only 10 is re-emitted.
        s.add(vec![
            order("late", "2025-10-01T10:40:00Z", 12.5),
            order("c", "2025-10-01T12:31:00Z", 1.0),
        ])
        .unwrap();
        let (hours, reemitted) = s.hourly().unwrap();
        assert_eq!(hours.len(), 2);
        assert_eq!(reemitted.len(), 1);
        assert_eq!(hour_key(reemitted[0].hour), "2025-10-01T10");
        assert_eq!(reemitted[0].reason, "late_order");
        assert_eq!(reemitted[0].net_gmv_before, Some(30.0));
        assert_eq!(reemitted[0].net_gmv, 42.5);
        // A return of order a (arriving in hour 12) re-emits hour 10, net of the refund.
        s.add(vec![ev(
            r#"{"event_id":"r","event_type":"order_returned","event_timestamp":"2025-10-01T12:40:00Z","user_id":"u1","device":"mobile","order_id":"o-a","refund_amount":10}"#,
        )])
        .unwrap();
        let (hours, reemitted) = s.hourly().unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!((hours[0].gmv, hours[0].net_gmv), (42.5, 32.5));
        assert_eq!(reemitted[0].reason, "return");
        assert_eq!(reemitted[0].event_id, "r");
        // The same events again change nothing.
        s.add(vec![order("late", "2025-10-01T10:40:00Z", 12.5)])
            .unwrap();
        assert_eq!(s.hourly().unwrap(), (vec![], vec![]));
        assert_eq!(s.reemissions().len(), 2);
    }

    /// `quire_kpi::hourly_gmv` over all of `events` at once: (hour, gmv, net_gmv) by hour.
    fn replayed(events: &[Event]) -> Vec<(String, f64, f64)> {
        let refs: Vec<&Event> = events.iter().collect();
        let df = quire_kpi::hourly_gmv(events_frame(&refs, Utc::now()).unwrap().lazy()).unwrap();
        let h = df.column("hour").unwrap().cast(&DataType::Int64).unwrap();
        let h = h.i64().unwrap();
        let g = df.column("gmv").unwrap().f64().unwrap().clone();
        let n = df.column("net_gmv").unwrap().f64().unwrap().clone();
        (0..df.height())
            .map(|i| {
                let hour = Utc.timestamp_millis_opt(h.get(i).unwrap()).unwrap();
                (hour_key(hour), g.get(i).unwrap(), n.get(i).unwrap())
            })
            .collect()
    }

    fn emitted(s: &LiveKpis) -> Vec<(String, f64, f64)> {
        s.emitted()
            .map(|f| (hour_key(f.hour), f.gmv, f.net_gmv))
            .collect()
    }

    /// After a restart the state is seeded anew: an hour an earlier process published, whose
    /// only order was placed again in another hour since, has no figure in the new state, and
    /// is dropped from the store all the same.
    #[test]
    fn the_first_computation_drops_hours_an_earlier_process_may_have_published() {
        let mut s = state();
        s.add(vec![
            order("b", "2025-10-01T11:05:00Z", 5.0),
            order("a", "2025-10-01T10:05:00Z", 30.0),
        ])
        .unwrap();
        // Order b placed again, earlier: it belongs to hour 10 now.
        s.add(vec![placed("b2", "b", "2025-10-01T10:50:00Z", 5.0)])
            .unwrap();
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hour_keys(&hours), ["2025-10-01T10"]);
        assert_eq!(removed_keys(&mut s), ["2025-10-01T11"]);
        // Later computations drop only hours this process emitted.
        s.add(vec![order("d", "2025-10-01T10:20:00Z", 1.0)])
            .unwrap();
        s.hourly().unwrap();
        assert!(s.take_removed().is_empty());
    }

    #[test]
    fn only_changed_hours_are_recomputed_and_they_equal_the_replay() {
        let ret = |id: &str, order: &str, ts: &str, refund: f64| {
            ev(&format!(
                r#"{{"event_id":"{id}","event_type":"order_returned","event_timestamp":"{ts}","user_id":"u1","device":"mobile","order_id":"{order}","refund_amount":{refund}}}"#
            ))
        };
        let mut all = vec![
            order("a", "2025-10-01T10:05:00Z", 30.0),
            order("b", "2025-10-01T11:05:00Z", 5.0),
        ];
        let mut s = state();
        s.add(all.clone()).unwrap();
        assert_eq!(s.hourly().unwrap().0.len(), 2);
        // A return of an order seen nowhere changes no hour...
        // (Times stay before 11:10, so the watermark closes no hour.)
        let early_return = ret("r1", "o-c", "2025-10-01T11:06:00Z", 4.0);
        all.push(early_return.clone());
        s.add(vec![early_return]).unwrap();
        assert_eq!(s.hourly().unwrap().0, vec![]);
        // ... until its order comes: then only the order's hour is emitted, with the refund.
        let c = order("c", "2025-10-01T11:08:00Z", 10.0);
        all.push(c.clone());
        s.add(vec![c]).unwrap();
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!(
            (hour_key(hours[0].hour), hours[0].gmv, hours[0].net_gmv),
            ("2025-10-01T11".to_owned(), 15.0, 11.0)
        );
        // A placement of order b earlier than the one held moves b to hour 10 (the replay
        // counts an order in its first placement's hour): both hours change.
        let b_again = placed("b2", "b", "2025-10-01T10:50:00Z", 6.0);
        all.push(b_again.clone());
        s.add(vec![b_again]).unwrap();
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hour_keys(&hours), ["2025-10-01T10", "2025-10-01T11"]);
        assert_eq!(emitted(&s), replayed(&all));
        assert!(s.take_removed().is_empty());
        // Hour 11's last order moves to hour 10 too: hour 11 has no order left, and is dropped
        // from what was emitted (the replay leaves it out).
        let c_again = placed("c2", "c", "2025-10-01T10:55:00Z", 10.0);
        all.push(c_again.clone());
        s.add(vec![c_again]).unwrap();
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hour_keys(&hours), ["2025-10-01T10"]);
        assert_eq!(removed_keys(&mut s), ["2025-10-01T11"]);
        assert_eq!(emitted(&s), replayed(&all));
    }

    /// A busy hour spans several groups: a step recomputes only the groups it changed (the
    /// newest for new orders, an older one for a return or an order moving hours), each from
    /// its own rows (an order's rows follow it when it moves; a return waits for its order),
    /// and every figure still equals the replay's `hourly_gmv` over all events (to rounding:
    /// the groups' shares are summed in another order than the replay's rows).
    #[test]
    fn a_busy_hour_recomputes_only_its_changed_groups() {
        // Every emitted figure equals the replay's over `all` (to rounding).
        fn assert_replayed(s: &LiveKpis, all: &[Event]) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
            let (live, replay) = (emitted(s), replayed(all));
            assert_eq!(live.len(), replay.len());
            for (l, r) in live.iter().zip(&replay) {
                assert_eq!(l.0, r.0);
                assert!(close(l.1, r.1) && close(l.2, r.2), "{l:?} vs {r:?}");
            }
        }
        let ret = |id: &str, order: &str, refund: f64| {
            ev(&format!(
                r#"{{"event_id":"{id}","event_type":"order_returned","event_timestamp":"2025-10-01T11:59:00Z","user_id":"u1","device":"mobile","order_id":"o-{order}","refund_amount":{refund}}}"#
            ))
        };
        let hour11 = floor_hour(
            DateTime::parse_from_rfc3339("2025-10-01T11:00:00Z")
                .unwrap()
                .timestamp_millis(),
        );
        let mut s = state();
        let mut all = Vec::new();
        let n = 2 * GROUP_ORDERS + 500;
        for chunk in (0..n).collect::<Vec<_>>().chunks(300) {
            let step: Vec<Event> = chunk
                .iter()
                .map(|i| {
                    let ts = format!("2025-10-01T11:{:02}:{:02}Z", (i / 60) % 50, i % 60);
                    order(&format!("k{i}"), &ts, 1.0 + (*i as f64) * 0.37)
                })
                .collect();
            all.extend(step.iter().cloned());
            s.add(step).unwrap();
            s.hourly().unwrap();
        }
        assert_eq!(s.hour_orders[&hour11].len(), 3);
        // Adds a step, checks which groups it marked, recomputes, and checks every figure
        // against the replay; the hours re-emitted.
        let mut apply = |step: Vec<Event>, groups: &[(i64, usize)]| {
            all.extend(step.iter().cloned());
            s.add(step).unwrap();
            let expected: BTreeSet<Slot> = groups
                .iter()
                .map(|&(hour, group)| Slot { hour, group })
                .collect();
            assert_eq!(s.dirty_groups, Some(expected));
            let (hours, _) = s.hourly().unwrap();
            assert_replayed(&s, &all);
            hours.len()
        };

        // New orders: the newest group only.
        apply(
            vec![order("new", "2025-10-01T11:58:00Z", 9.99)],
            &[(hour11, 2)],
        );
        // A return of an order of the first group: that group only.
        assert_eq!(apply(vec![ret("r1", "k5", 0.5)], &[(hour11, 0)]), 1);
        // A return of an order of the second group, then an earlier placement of that order
        // moves it to hour 10: the group it leaves and the one it joins, which takes the
        // order's rows (the return's refund with them).
        assert_eq!(apply(vec![ret("r0", "k3000", 0.4)], &[(hour11, 1)]), 1);
        let moved = placed("m", "k3000", "2025-10-01T10:30:00Z", 2.5);
        assert_eq!(apply(vec![moved], &[(hour11 - HOUR_MS, 0), (hour11, 1)]), 2);
        // A return of the moved order: the group it joined, whose rows now hold the order's.
        assert_eq!(
            apply(vec![ret("r2", "k3000", 0.75)], &[(hour11 - HOUR_MS, 0)]),
            1
        );
        // A return before its order counts nowhere; with the order, its group has both.
        assert_eq!(apply(vec![ret("r3", "late", 1.25)], &[]), 0);
        assert_eq!(
            apply(
                vec![order("late", "2025-10-01T11:57:00Z", 7.5)],
                &[(hour11, 2)]
            ),
            1
        );
        // A call that failed part-way may leave the groups' rows in any state and marks every
        // group dirty: the next call rebuilds them from the held orders, and the steps after
        // it still add up to the replay.
        s.group_rows.clear();
        s.dirty_groups = None;
        s.hourly().unwrap();
        let step = vec![order("after", "2025-10-01T11:58:30Z", 4.25)];
        all.extend(step.iter().cloned());
        s.add(step).unwrap();
        s.hourly().unwrap();
        assert_replayed(&s, &all);
    }

    #[test]
    fn the_ids_it_deduplicates_against_are_the_windows() {
        let mut s = state();
        s.add(vec![view("d1", "2025-10-01T10:00:00Z")]).unwrap();
        s.add(vec![view("d2", "2025-10-02T10:00:00Z")]).unwrap();
        assert_eq!(s.seen.len(), 2);
        // The window moves to Oct 2–3: Oct 1's id is forgotten, Oct 2's is still a duplicate.
        s.add(vec![view("d3", "2025-10-03T10:00:00Z")]).unwrap();
        assert_eq!(s.seen.len(), 2);
        s.add(vec![view("d2", "2025-10-02T10:00:00Z")]).unwrap();
        assert_eq!(s.events_seen(), 3);
    }

    /// A lake (in the returned directory) holding `events`, and live KPIs seeded from it.
    fn seeded_from_lake(events: impl IntoIterator<Item = Event>) -> (tempfile::TempDir, LiveKpis) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().join("lake")).unwrap();
        let mut w = quire_lake::Writer::open(&lake).unwrap();
        let mut b = w.batch(usize::MAX).unwrap();
        for e in events {
            b.push_event(e).unwrap();
        }
        b.commit(quire_lake::Source::stream("test")).unwrap();
        let mut s = LiveKpis::new(Some(lake), Dims::default(), Duration::minutes(10), 5);
        s.seed().unwrap();
        (dir, s)
    }

    /// A test placement of a real order, earlier than the real one, gives the order no
    /// slot: after a restart a return still reconciles the real placement's hour.
    #[test]
    fn a_test_placement_does_not_move_a_real_order_after_a_restart() {
        let test_placement = ev(
            r#"{"event_id":"t","event_type":"order_placed","event_timestamp":"2025-10-01T08:05:00Z","user_id":"qa","device":"mobile","order_id":"o-x","items":[{"book_id":"bk_1","quantity":1,"unit_price":40}],"total_price":40,"is_test":true}"#,
        );
        let mut all = vec![
            test_placement,
            order("x", "2025-10-01T09:20:00Z", 40.0),
            view("v", "2025-10-01T09:30:00Z"),
        ];
        let (_dir, mut s) = seeded_from_lake(all.clone());
        let refund = ev(
            r#"{"event_id":"r","event_type":"order_returned","event_timestamp":"2025-10-01T11:20:00Z","user_id":"u1","device":"mobile","order_id":"o-x","refund_amount":10}"#,
        );
        all.push(refund.clone());
        s.add(vec![refund]).unwrap();
        s.hourly().unwrap();
        assert_eq!(
            emitted(&s),
            [("2025-10-01T09".to_owned(), 40.0, 30.0)],
            "the return reconciles hour 09"
        );
        assert_eq!(emitted(&s), replayed(&all));
    }

    #[test]
    fn a_lake_event_sent_again_with_another_time_is_not_taken_after_a_restart() {
        let first = [
            order("a", "2025-10-01T10:05:00Z", 30.0),
            view("v", "2025-10-01T10:50:00Z"),
        ];
        // A new process reads the lake, then the bus brings order a again, an hour earlier.
        let (_dir, mut s) = seeded_from_lake(first.clone());
        s.add(vec![order("a", "2025-10-01T09:05:00Z", 30.0)])
            .unwrap();
        s.hourly().unwrap();
        assert_eq!(emitted(&s), replayed(&first));
        assert_eq!(s.events_seen(), 0);
    }

    /// A lake event from before the window, sent again days later with a time in the open
    /// hour, is not taken, after a restart or after the window moved past it: the lake's dedup
    /// drops it from the replay too. (Here a page view of u2, whose first event is older: the
    /// state's history rows do not hold it.)
    #[test]
    fn a_lake_event_from_before_the_window_sent_again_now_is_not_taken() {
        // Today's one session (u2's view v), with one event: a bounce, as in the replay.
        let today = |s: &mut LiveKpis| {
            let k = s.today_input().unwrap().compute().unwrap().kpis.unwrap();
            (k.sessions, k.bounce_rate)
        };
        let resent = || view("p", "2025-10-05T10:20:00Z");
        // After a restart: the window is Oct 4–5, view p of Oct 1 is history.
        let (_dir, mut s) = seeded_from_lake([
            view("first", "2025-09-20T10:00:00Z"),
            view("p", "2025-10-01T10:00:00Z"),
            view("v", "2025-10-05T10:00:00Z"),
        ]);
        s.add(vec![resent()]).unwrap();
        assert_eq!(s.events_seen(), 0);
        assert_eq!(today(&mut s), (1, Some(1.0)));
        // The same process: view p was in the window (Oct 1–2) until view v moved it.
        let (_dir, mut s) = seeded_from_lake([
            view("first", "2025-09-20T10:00:00Z"),
            view("p", "2025-10-01T10:00:00Z"),
            view("w", "2025-10-02T10:00:00Z"),
        ]);
        s.add(vec![view("v", "2025-10-05T10:00:00Z")]).unwrap();
        s.add(vec![resent()]).unwrap();
        assert_eq!(s.events_seen(), 1);
        assert_eq!(today(&mut s), (1, Some(1.0)));
    }

    #[test]
    fn an_order_placed_again_days_later_stands_in_its_first_hour() {
        // Order o-a placed on Oct 1 (in the lake), not u1's first order (o-x is, and the
        // live state keeps each user's first order of the history); the window is Oct 4–5.
        let lake = [
            order("x", "2025-09-20T10:00:00Z", 7.0),
            order("a", "2025-10-01T10:05:00Z", 30.0),
            order("b", "2025-10-05T11:00:00Z", 5.0),
        ];
        let (_dir, mut s) = seeded_from_lake(lake.clone());
        // The same order placed again (another event) on Oct 5: the Oct 1 placement stands,
        // as in the replay; hour Oct 5 12 has no order.
        let again = placed("a2", "a", "2025-10-05T12:10:00Z", 30.0);
        s.add(vec![again.clone()]).unwrap();
        s.hourly().unwrap();
        // Today (Oct 5) has order b alone, as in the replay.
        let today = s.today_input().unwrap().compute().unwrap();
        let k = today.kpis.unwrap();
        assert_eq!((k.orders, k.gmv), (1, 5.0));
        let all: Vec<Event> = lake.into_iter().chain([again]).collect();
        let replay = replayed(&all);
        assert_eq!(
            replay.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
            ["2025-09-20T10", "2025-10-01T10", "2025-10-05T11"]
        );
        let live = emitted(&s);
        assert!(
            live.iter().all(|h| replay.contains(h)),
            "{live:?} vs {replay:?}"
        );
        assert!(live.iter().any(|h| h.0 == "2025-10-05T11"), "{live:?}");
        // After a restart, with both placements in the lake, likewise.
        let (_dir, mut s) = seeded_from_lake(all);
        s.hourly().unwrap();
        let live = emitted(&s);
        assert!(
            live.iter().all(|h| replay.contains(h)),
            "{live:?} vs {replay:?}"
        );
        assert!(live.iter().any(|h| h.0 == "2025-10-05T11"), "{live:?}");
        let k = s.today_input().unwrap().compute().unwrap().kpis.unwrap();
        assert_eq!((k.orders, k.gmv), (1, 5.0));
    }

    /// After a restart the bus brings again an order from before the window that the lake
    /// held: it is not taken, and its closed hour is not re-emitted as late. A late order the
    /// lake did not have is.
    #[test]
    fn a_restart_does_not_take_the_lakes_old_events_again() {
        // Order a is not u1's first (x is): the state's history does not hold it.
        let (_dir, mut s) = seeded_from_lake([
            order("x", "2025-09-20T10:00:00Z", 7.0),
            order("a", "2025-10-01T10:05:00Z", 30.0),
            view("v", "2025-10-05T10:00:00Z"),
        ]);
        s.hourly().unwrap();
        s.add(vec![order("a", "2025-10-01T10:05:00Z", 30.0)])
            .unwrap();
        let (_, reemitted) = s.hourly().unwrap();
        assert!(reemitted.is_empty(), "{reemitted:?}");
        assert_eq!(s.events_seen(), 0);
        s.add(vec![order("b", "2025-10-01T10:30:00Z", 5.0)])
            .unwrap();
        let (_, reemitted) = s.hourly().unwrap();
        assert_eq!(reemitted.len(), 1, "{reemitted:?}");
        assert_eq!(reemitted[0].net_gmv, 35.0);
    }

    /// A burst rolls the window before the archiver commits: the bus events that left it are
    /// still the history (a returning user, an order's first placement), as in the replay.
    #[test]
    fn events_the_window_left_before_the_lake_had_them_stay_history() {
        let (_dir, mut s) = seeded_from_lake([view("old", "2025-09-20T10:00:00Z")]);
        let a = order("a", "2025-10-01T10:05:00Z", 30.0);
        let b = order("b", "2025-10-03T11:00:00Z", 5.0);
        let again = placed("a2", "a", "2025-10-03T12:10:00Z", 30.0);
        // Oct 1, then Oct 3: the window moves to Oct 2–3 with order a in no lake yet.
        s.add(vec![a.clone()]).unwrap();
        s.add(vec![b.clone()]).unwrap();
        s.add(vec![again.clone()]).unwrap();
        s.hourly().unwrap();
        let k = s.today_input().unwrap().compute().unwrap().kpis.unwrap();
        // u1 bought on Oct 1: returning, and o-a stands on Oct 1, not today.
        assert_eq!((k.orders, k.gmv), (1, 5.0));
        assert_eq!((k.new_users, k.returning_users), (0, 1));
        let all = [view("old", "2025-09-20T10:00:00Z"), a, b, again];
        assert_eq!(emitted(&s), replayed(&all));
    }

    #[test]
    fn test_events_move_neither_the_watermark_nor_today() {
        let test_view = |id: &str, ts: &str| {
            ev(&format!(
                r#"{{"event_id":"{id}","event_type":"page_view","event_timestamp":"{ts}","user_id":"qa","device":"mobile","page":"home","is_test":true}}"#
            ))
        };
        // Test traffic alone: no watermark yet.
        let mut s = state();
        s.add(vec![test_view("t0", "2025-10-01T13:00:00Z")])
            .unwrap();
        assert_eq!(s.watermark(), None);
        // A tester's event two hours ahead does not close hour 11 nor start Oct 2.
        s.add(vec![
            order("a", "2025-10-01T11:05:00Z", 30.0),
            view("v", "2025-10-01T11:20:00Z"),
            test_view("t1", "2025-10-02T01:00:00Z"),
        ])
        .unwrap();
        let utc = |t: &str| Some(t.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(s.max_event_time(), utc("2025-10-01T11:20:00Z"));
        let (hours, _) = s.hourly().unwrap();
        assert_eq!(hours.len(), 1);
        assert!(hours[0].live, "hour 11 is still open");
        assert_eq!(
            s.today_input().unwrap().compute().unwrap().date.to_string(),
            "2025-10-01"
        );

        // Nor after a restart, from the lake.
        let (_dir, s) = seeded_from_lake([
            order("a", "2025-10-01T11:05:00Z", 30.0),
            test_view("t1", "2025-10-02T01:00:00Z"),
        ]);
        assert_eq!(s.max_event_time(), utc("2025-10-01T11:05:00Z"));
    }

    #[test]
    fn frames_merge_into_logarithmically_many() {
        let mut chunks = Vec::new();
        for i in 0..200 {
            let e = view(&format!("v{i}"), "2025-10-01T10:00:00Z");
            push_chunk(&mut chunks, events_frame(&[&e], Utc::now()).unwrap()).unwrap();
        }
        // Each frame is more than twice the next: at most log2(200) + 1 frames.
        let heights: Vec<usize> = chunks.iter().map(DataFrame::height).collect();
        assert_eq!(heights.iter().sum::<usize>(), 200);
        assert!(heights.windows(2).all(|w| w[0] > 2 * w[1]), "{heights:?}");
        assert!(heights.len() <= 8, "{heights:?}");

        // With a cap, no merge goes past it, and the frames under it still merge.
        let mut chunks = Vec::new();
        for i in 0..200 {
            let e = view(&format!("w{i}"), "2025-10-01T10:00:00Z");
            push_chunk_capped(&mut chunks, events_frame(&[&e], Utc::now()).unwrap(), 16).unwrap();
        }
        let heights: Vec<usize> = chunks.iter().map(DataFrame::height).collect();
        assert_eq!(heights.iter().sum::<usize>(), 200);
        assert!(heights.iter().all(|&h| h <= 16), "{heights:?}");
        assert!(heights.len() <= 200 / 16 + 5, "{heights:?}");
    }

    #[test]
    fn today_is_the_newest_events_day_from_the_kpi_report() {
        let mut s = state();
        s.add(vec![
            order("y", "2025-09-30T23:50:00Z", 7.0),
            view("v", "2025-10-01T00:10:00Z"),
            ev(r#"{"event_id":"p","event_type":"product_view","event_timestamp":"2025-10-01T00:11:00Z","user_id":"u2","device":"mobile","book_id":"bk_seen","via":"browse"}"#),
            order("a", "2025-10-01T00:12:00Z", 30.0),
        ])
        .unwrap();
        let today = s.today_input().unwrap().compute().unwrap();
        assert!(!s.today_is_dirty());
        assert_eq!(today.date.to_string(), "2025-10-01");
        let k = today.kpis.unwrap();
        assert_eq!((k.orders, k.gmv), (1, 30.0));
        // The boards list the books sold: not bk_seen, only viewed.
        let board = |rows: &[BookRow]| -> Vec<(String, i64)> {
            rows.iter().map(|b| (b.book_id.clone(), b.units)).collect()
        };
        assert_eq!(board(&today.top_books_by_units), [("bk_1".to_owned(), 1)]);
        assert_eq!(board(&today.top_books_by_gmv), [("bk_1".to_owned(), 1)]);
    }
}
