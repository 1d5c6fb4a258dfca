//! One user's day: sessions walking the funnel, written as events.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::catalog::{N_GENRES, tokenize};
use crate::emit::{
    Ids, Kind, OFFSETS, Out, Rec, counter, push_book, push_cents, push_timestamp, push_u64,
};
use crate::rng::{mix64, rng_for, sigmoid};
use crate::world::{
    DAY_MS, DIRECT, Device, EMAIL, HOUR_WEIGHTS, ORGANIC, PAID, Profile, REFERRAL, SOCIAL, SOURCES,
    World, genre_query_words,
};

/// Who a simulated entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    Registered,
    Test,
    Anon,
}

/// A return scheduled for a later day.
#[derive(Debug, Clone)]
pub struct PendingReturn {
    pub t: i64,
    pub order_id: [u8; 20],
    pub refund_cents: i64,
    pub device: Device,
}

/// A user's state, persisted across days.
#[derive(Debug, Clone)]
pub struct UserState {
    pub entity: u32,
    pub user_id: String,
    pub kind: UserKind,
    pub profile: Profile,
    pub last_event_ms: i64,
    pub purchased: Vec<u32>,
    pub first_purchase_day: Option<u32>,
    pub gateway_first: bool,
    pub orders: u32,
    /// Orders placed on days after the day of the first purchase.
    pub orders_after_first: u32,
    pub series_progress: Vec<(u32, u32)>,
    pub pending_returns: Vec<PendingReturn>,
    pub exposed: bool,
    pub converted: bool,
    /// Time of the first event (ms since the start).
    pub first_visit_ms: Option<i64>,
    /// Times of the first two orders (ms since the start).
    pub order_ms: [Option<i64>; 2],
    /// Gateway books in the first order.
    pub first_gateways: Vec<u32>,
    /// Revenue (cents) of the orders placed, within `GATEWAY_HORIZON_DAYS` after the first order,
    /// in the sessions the gateway multiplier added.
    pub gateway_added_cents: i64,
    /// The last session added to the cart and did not order.
    pub abandoned_cart: bool,
}

impl UserState {
    pub fn new(world: &World, entity: u32, user_id: String, kind: UserKind) -> UserState {
        let day_key = if kind == UserKind::Anon {
            entity as u64
        } else {
            u64::MAX
        };
        let mut rng = rng_for(world.seed, 0x9F0F, crate::rng::hash_str(&user_id), day_key);
        let profile = world.profile(&user_id, kind == UserKind::Anon, &mut rng);
        UserState {
            entity,
            user_id,
            kind,
            profile,
            last_event_ms: i64::MIN / 2,
            purchased: Vec::new(),
            first_purchase_day: None,
            gateway_first: false,
            orders: 0,
            orders_after_first: 0,
            series_progress: Vec::new(),
            pending_returns: Vec::new(),
            exposed: false,
            converted: false,
            first_visit_ms: None,
            order_ms: [None; 2],
            first_gateways: Vec::new(),
            gateway_added_cents: 0,
            abandoned_cart: false,
        }
    }

    fn progress(&self, series: u32) -> u32 {
        self.series_progress
            .iter()
            .find(|p| p.0 == series)
            .map_or(0, |p| p.1)
    }
}

/// Reusable buffers of one worker.
#[derive(Debug, Default)]
pub struct Scratch {
    tokens: Vec<String>,
    hits: Vec<(u32, f32)>,
    cand: Vec<(u32, f32, f64)>,
    books: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Search,
    Recommendation,
    Browse,
    Direct,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Search => "search",
            Via::Recommendation => "recommendation",
            Via::Browse => "browse",
            Via::Direct => "direct",
        }
    }
}

const PURPOSE_DAY: u64 = 0xDA7;
/// A second stream per user and day for the draws of the planted effects that must not shift
/// the main stream (which sessions the gateway multiplier added, returns to an abandoned cart).
const PURPOSE_SIDE: u64 = 0x51DE;
/// The gateway truth's horizon: revenue of the days after the first order, as `quire analyze
/// gateway --days` (default 14) measures it.
pub const GATEWAY_HORIZON_DAYS: i64 = 14;
const ADD_BASE_LOGIT: f64 = -3.6;
const CHECKOUT_BASE_LOGIT: f64 = 0.3;
const ORDER_BASE_LOGIT: f64 = 0.8;
/// Probability of leaving after a search without a click.
const SEARCH_ABANDON: f64 = 0.75;

/// Simulates one day of `st` into `out`.
pub fn simulate_day(
    world: &World,
    ids: &Ids,
    st: &mut UserState,
    day: u32,
    out: &mut Out,
    scratch: &mut Scratch,
) {
    let mut rng = rng_for(world.seed, PURPOSE_DAY, st.entity as u64, day as u64);
    let mut s = Sess {
        side: rng_for(world.seed, PURPOSE_SIDE, st.entity as u64, day as u64),
        gateway_added: false,
        added_to_cart: false,
        world,
        ids,
        st,
        out,
        scratch,
        day,
        seq: 0,
        t: 0,
        device: Device::Desktop,
        source: None,
        first: true,
        intent: 0.0,
        cart: Vec::new(),
        rec_clicked: false,
        review_read: false,
        rec_offered: false,
        review_offered: false,
        abandon: false,
        queue: Vec::new(),
    };
    s.returns_due(&mut rng);
    let p = &s.st.profile;
    let day_start = day as i64 * DAY_MS;
    let boosted = s.st.gateway_first && s.st.first_purchase_day.is_some_and(|d| d < day);
    let n = match s.st.kind {
        UserKind::Anon => 1 + usize::from(rng.gen_bool(0.08)),
        _ if (day as i64) < p.signup_day => 0,
        _ => {
            let mut rate = p.sessions_per_day * world.day_factor[day as usize];
            if boosted {
                rate *= world.effects.gateway_session_multiplier;
            }
            poisson(rate, &mut rng)
        }
    };
    if n == 0 {
        return;
    }
    let mut starts: Vec<i64> = (0..n)
        .map(|_| day_start + session_start_ms(&mut rng, p.device))
        .collect();
    starts.sort_unstable();
    for start in starts {
        let start = start.max(s.st.last_event_ms + 31 * 60_000 + rng.gen_range(0..600_000));
        // Thinning: of a boosted day's Poisson(m × rate) sessions, each is one the multiplier
        // added with probability (m − 1) / m; their revenue is the gateway truth's effect.
        s.gateway_added = boosted
            && s.side
                .gen_bool(1.0 - 1.0 / world.effects.gateway_session_multiplier);
        s.session(start, &mut rng);
    }
    // An anonymous visitor (one `anonymous_id`, all its sessions of the day) is one user of the
    // A/B truth, as `quire analyze abtest` counts users: counted once, after its day.
    if s.st.kind == UserKind::Anon {
        let arm = usize::from(s.st.profile.ltr);
        s.out.stats.anon_exposed[arm] += u64::from(s.st.exposed);
        s.out.stats.anon_converted[arm] += u64::from(s.st.converted);
        // A visitor lives one day: its purchase times go to the time-to-purchase truth now.
        if let Some(v) = s.st.first_visit_ms {
            s.out.stats.anon_purchase_times.push((v, s.st.order_ms));
        }
    }
}

/// Knuth's Poisson sampler (small rates).
fn poisson(rate: f64, rng: &mut ChaCha8Rng) -> usize {
    let l = (-rate).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.r#gen::<f64>();
        if p <= l || k >= 30 {
            return k;
        }
        k += 1;
    }
}

fn session_start_ms(rng: &mut ChaCha8Rng, device: Device) -> i64 {
    // Mobile leans to the evening.
    let weight = |h: usize| {
        let evening = device == Device::Mobile && h >= 18;
        HOUR_WEIGHTS[h] * if evening { 1.3 } else { 1.0 }
    };
    let total: f64 = (0..24).map(weight).sum();
    let mut r = rng.r#gen::<f64>() * total;
    let mut hour = 23;
    for h in 0..24 {
        let w = weight(h);
        if r < w {
            hour = h;
            break;
        }
        r -= w;
    }
    hour as i64 * 3_600_000 + rng.gen_range(0..3_600_000)
}

struct Sess<'a> {
    /// The side stream (`PURPOSE_SIDE`).
    side: ChaCha8Rng,
    /// The session is one the gateway multiplier added.
    gateway_added: bool,
    /// The session has an add_to_cart.
    added_to_cart: bool,
    world: &'a World,
    ids: &'a Ids,
    st: &'a mut UserState,
    out: &'a mut Out,
    scratch: &'a mut Scratch,
    day: u32,
    seq: u32,
    t: i64,
    device: Device,
    source: Option<usize>,
    first: bool,
    intent: f64,
    /// (book, quantity, unit price in cents).
    cart: Vec<(u32, u32, i64)>,
    rec_clicked: bool,
    review_read: bool,
    /// The session's first recommendation module (first product page) has been shown: only
    /// there is the click (review) decided, so how long a session runs does not change its
    /// chance of being treated.
    rec_offered: bool,
    review_offered: bool,
    /// Set by a search without a click: the visitor may leave.
    abandon: bool,
    /// Books to view next: (book, via).
    queue: Vec<(u32, Via)>,
}

impl Sess<'_> {
    fn not_test(&self) -> bool {
        self.st.kind != UserKind::Test
    }

    // ---- writing -------------------------------------------------------------------------

    fn next_counter(&mut self) -> u64 {
        self.seq += 1;
        counter(self.day, self.st.entity, self.seq)
    }

    /// Opens an event line; returns its start offset.
    fn begin(&mut self, rng: &mut ChaCha8Rng, event_type: &str) -> usize {
        if self.st.first_visit_ms.is_none() {
            self.st.first_visit_ms = Some(self.t);
        }
        let c = self.next_counter();
        let world = self.world;
        let offset = if rng.gen_bool(0.02) {
            self.out.stats.offset_timestamps += 1;
            OFFSETS[rng.gen_range(0..OFFSETS.len())]
        } else {
            0
        };
        let buf = &mut self.out.buf;
        let start = buf.len();
        buf.extend_from_slice(b"{\"event_id\":\"");
        self.ids.event_id(buf, c);
        buf.extend_from_slice(b"\",\"event_type\":\"");
        buf.extend_from_slice(event_type.as_bytes());
        buf.extend_from_slice(b"\",\"event_timestamp\":\"");
        push_timestamp(buf, world, self.t, offset);
        buf.extend_from_slice(b"\",\"user_id\":\"");
        buf.extend_from_slice(self.st.user_id.as_bytes());
        buf.extend_from_slice(b"\",\"device\":\"");
        buf.extend_from_slice(self.device.as_str().as_bytes());
        buf.push(b'"');
        if self.first {
            self.first = false;
            if let Some(src) = self.source {
                buf.extend_from_slice(b",\"traffic_source\":\"");
                buf.extend_from_slice(SOURCES[src].as_bytes());
                buf.push(b'"');
            }
        }
        if self.st.kind == UserKind::Test {
            buf.extend_from_slice(b",\"is_test\":true");
        }
        if event_type != "order_returned" {
            buf.extend_from_slice(if self.st.profile.ltr {
                b",\"experiments\":{\"search_ranker\":\"ltr\"}"
            } else {
                b",\"experiments\":{\"search_ranker\":\"bm25\"}"
            });
            self.st.exposed = true;
        }
        start
    }

    /// Closes the line opened at `start` and records it, with its data-quality variants.
    fn finish(&mut self, rng: &mut ChaCha8Rng, start: usize, kind: Kind) {
        self.out.buf.push(b'}');
        let mut arrival = self.t;
        if self.device == Device::Mobile && rng.gen_bool(0.04) {
            arrival += rng.gen_range(5 * 60_000..90 * 60_000);
            self.out.stats.late_events += 1;
        }
        let rec = Rec {
            arrival,
            tie: ((self.st.entity as u64) << 24) | self.seq as u64,
            chunk: 0,
            off: start as u32,
            len: (self.out.buf.len() - start) as u32,
            kind,
        };
        self.out.recs.push(rec);
        if rng.gen_bool(0.005) {
            self.out.stats.duplicates += 1;
            self.seq += 1;
            self.out.recs.push(Rec {
                arrival: arrival + rng.gen_range(0..120_000),
                tie: ((self.st.entity as u64) << 24) | self.seq as u64,
                kind: Kind::Duplicate,
                ..rec
            });
        }
        if rng.gen_bool(0.001) {
            self.malformed(rng);
        }
    }

    fn kind(&self) -> Kind {
        if self.st.kind == UserKind::Test {
            Kind::TestEvent
        } else {
            Kind::Event
        }
    }

    fn field_str(&mut self, key: &str, value: &str) {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":\"");
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'"');
    }

    fn field_book(&mut self, book: u32) {
        self.out.buf.extend_from_slice(b",\"book_id\":");
        push_book(&mut self.out.buf, self.world, book);
    }

    fn field_u64(&mut self, key: &str, v: u64) {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":");
        push_u64(buf, v);
    }

    fn field_cents(&mut self, key: &str, c: i64) {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":");
        push_cents(buf, c);
    }

    fn field_books(&mut self, key: &str, books: &[u32]) {
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":[");
        for (i, &b) in books.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            push_book(buf, self.world, b);
        }
        buf.push(b']');
    }

    fn wait(&mut self, rng: &mut ChaCha8Rng, min_s: i64, max_s: i64) {
        self.t += rng.gen_range(min_s * 1000..max_s * 1000);
    }

    fn page_view(&mut self, rng: &mut ChaCha8Rng, page: &str) {
        let s = self.begin(rng, "page_view");
        self.field_str("page", page);
        let k = self.kind();
        self.finish(rng, s, k);
    }

    /// A malformed line of a random kind, at the current time, with a fresh id.
    fn malformed(&mut self, rng: &mut ChaCha8Rng) {
        let which = rng.gen_range(0..7);
        self.out.stats.malformed[which] += 1;
        let c = self.next_counter();
        let world = self.world;
        let buf = &mut self.out.buf;
        let start = buf.len();
        let head = |buf: &mut Vec<u8>, ids: &Ids, ty: &str, ts: Option<&[u8]>, user: &str| {
            buf.extend_from_slice(b"{\"event_id\":\"");
            ids.event_id(buf, c);
            buf.extend_from_slice(b"\",\"event_type\":\"");
            buf.extend_from_slice(ty.as_bytes());
            buf.push(b'"');
            if let Some(ts) = ts {
                buf.extend_from_slice(b",\"event_timestamp\":\"");
                buf.extend_from_slice(ts);
                buf.push(b'"');
            }
            buf.extend_from_slice(b",\"user_id\":\"");
            buf.extend_from_slice(user.as_bytes());
            buf.extend_from_slice(b"\",\"device\":\"mobile\"");
        };
        let mut ts = Vec::with_capacity(32);
        push_timestamp(&mut ts, world, self.t, 0);
        let user = self.st.user_id.as_str();
        let book = world.catalog.popular[rng.gen_range(0..500)];
        match which {
            0 => {
                let junk: &[&[u8]] = &[
                    b"<html><body>502 Bad Gateway</body></html>",
                    b"page_view\tusr_\t2025-10-01 10:00:00",
                    b"null",
                    b"[\"product_view\", \"bk_1\"]",
                ];
                buf.extend_from_slice(junk[rng.gen_range(0..junk.len())]);
            }
            1 => {
                head(buf, self.ids, "product_view", Some(&ts), user);
                buf.extend_from_slice(b",\"book_id\":");
                push_book(buf, world, book);
                buf.extend_from_slice(b",\"via\":\"browse\"}");
                let cut = rng.gen_range(10..buf.len() - start - 1);
                buf.truncate(start + cut);
            }
            2 => {
                head(buf, self.ids, "product_view", None, user);
                buf.extend_from_slice(b",\"book_id\":");
                push_book(buf, world, book);
                buf.extend_from_slice(b",\"via\":\"direct\"}");
            }
            3 => {
                head(buf, self.ids, "add_to_cart", Some(&ts), user);
                buf.extend_from_slice(b",\"book_id\":");
                push_book(buf, world, book);
                buf.extend_from_slice(b",\"quantity\":\"2\",\"unit_price\":9.99}");
            }
            4 => {
                head(buf, self.ids, "add_to_cart", Some(&ts), user);
                buf.extend_from_slice(b",\"book_id\":");
                push_book(buf, world, book);
                buf.extend_from_slice(b",\"quantity\":-1,\"unit_price\":9.99}");
            }
            5 => {
                head(buf, self.ids, "wishlist_added", Some(&ts), user);
                buf.extend_from_slice(b",\"book_id\":");
                push_book(buf, world, book);
                buf.push(b'}');
            }
            _ => {
                let bad: &[&[u8]] = &[b"2025-13-45T99:00:00Z", b"yesterday", b"10/01/2025 10:00"];
                head(
                    buf,
                    self.ids,
                    "page_view",
                    Some(bad[rng.gen_range(0..bad.len())]),
                    user,
                );
                buf.extend_from_slice(b",\"page\":\"home\"}");
            }
        }
        self.out.recs.push(Rec {
            arrival: self.t,
            tie: ((self.st.entity as u64) << 24) | self.seq as u64,
            chunk: 0,
            off: start as u32,
            len: (self.out.buf.len() - start) as u32,
            kind: Kind::Malformed,
        });
    }

    // ---- behaviour ------------------------------------------------------------------------

    fn returns_due(&mut self, rng: &mut ChaCha8Rng) {
        let day_end = (self.day as i64 + 1) * DAY_MS;
        if self.st.pending_returns.iter().all(|r| r.t >= day_end) {
            return;
        }
        let mut due: Vec<PendingReturn> = Vec::new();
        self.st.pending_returns.retain(|r| {
            if r.t < day_end {
                due.push(r.clone());
                false
            } else {
                true
            }
        });
        for r in due {
            self.t = r.t;
            self.device = r.device;
            self.first = false;
            let s = self.begin(rng, "order_returned");
            self.out.buf.extend_from_slice(b",\"order_id\":\"");
            self.out.buf.extend_from_slice(&r.order_id);
            self.out.buf.push(b'"');
            self.field_cents("refund_amount", r.refund_cents);
            let k = self.kind();
            self.finish(rng, s, k);
            if self.not_test() {
                self.out.stats.returns += 1;
            }
        }
    }

    /// Effective price (cents) of a book today: promotion code excluded, daily deals included.
    fn deal_price(&self, book: u32) -> i64 {
        let p = self.world.catalog.books[book as usize].price_cents;
        if mix64(self.world.seed ^ ((self.day as u64) << 32) ^ book as u64).is_multiple_of(200) {
            (p as f64 * 0.75).round() as i64
        } else {
            p
        }
    }

    /// The user's utility for a book (the relevance signal a ranker can learn).
    fn utility(&self, book: u32) -> f64 {
        let b = &self.world.catalog.books[book as usize];
        let p = &self.st.profile;
        let mut price = self.deal_price(book) as f64 / 100.0;
        if self.world.in_promo(self.day) && self.world.promoted[book as usize] {
            price *= 1.0 - self.world.promo.discount_rate;
        }
        let taste = (mix64(p.taste_salt ^ book as u64) >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let gateway = if self.world.gateway[book as usize] && self.st.orders == 0 {
            self.world.effects.gateway_first_appeal
        } else {
            0.0
        };
        gateway + p.affinity[b.genre as usize] as f64 + 0.9 * (b.rating - 3.95)
            - p.price_sensitivity * (price - 15.0) / 10.0
            + 0.15 * (b.popularity.ln() - 6.0)
            + 1.2 * taste
    }

    /// The part of the session's purchase intent an analyst can see (device, logged in or not):
    /// recommendation clicks and review reading depend on it alone, so the confounding of their
    /// effects is observable and an adjusted estimate can recover the planted effect, while the
    /// naive comparison stays biased (desktop and logged-in sessions click, read and buy more).
    fn visible_intent(&self) -> f64 {
        let anon = if self.st.kind == UserKind::Anon {
            -0.8
        } else {
            0.0
        };
        2.0 * self.device.intent_shift() + anon
    }

    fn session(&mut self, start: i64, rng: &mut ChaCha8Rng) {
        let w = self.world;
        self.t = start;
        self.first = true;
        self.cart.clear();
        self.queue.clear();
        self.rec_clicked = false;
        self.review_read = false;
        self.rec_offered = false;
        self.review_offered = false;
        self.abandon = false;
        self.added_to_cart = false;
        let p = &self.st.profile;
        self.device = if rng.gen_bool(0.8) {
            p.device
        } else {
            [Device::Desktop, Device::Mobile, Device::Tablet][rng.gen_range(0..3)]
        };
        self.intent =
            p.intent + self.device.intent_shift() + 0.8 * rng.sample::<f64, _>(StandardNormal);
        let weights = &w.source_weights[self.day as usize];
        let total: f64 = weights.iter().sum();
        let mut r = rng.r#gen::<f64>() * total;
        let mut src = DIRECT;
        for (i, wt) in weights.iter().enumerate() {
            if r < *wt {
                src = i;
                break;
            }
            r -= wt;
        }
        let keep = if src == DIRECT { 0.5 } else { 0.93 };
        self.source = rng.gen_bool(keep).then_some(src);
        if self.not_test() {
            self.out.stats.sessions += 1;
        }
        // Back after an abandoned cart: the session may start at the cart. The side stream
        // decides and draws this page view's variants and the pause after it, so the rest of
        // the session is drawn as it would have been.
        if std::mem::take(&mut self.st.abandoned_cart) {
            let mut side = self.side.clone();
            let back = side.gen_bool(self.world.effects.cart_return_probability);
            if self.not_test() {
                self.out.stats.abandoned_then_session += 1;
                self.out.stats.cart_returns += u64::from(back);
            }
            if back {
                self.page_view(&mut side, "cart");
                self.wait(&mut side, 5, 40);
            }
            self.side = side;
        }

        // Bounce: some visits leave after their landing page; low intent bounces more.
        let bounce = sigmoid(-1.6 - 1.2 * self.intent).clamp(0.03, 0.6);
        let ordered = if rng.gen_bool(bounce) {
            self.page_view(rng, if src == ORGANIC { "search" } else { "home" });
            false
        } else {
            self.visit(src, start, rng)
        };
        self.st.abandoned_cart = self.added_to_cart && !ordered;
        if self.not_test() {
            let st = &mut self.out.stats;
            st.device_sessions[self.device as usize] += 1;
            st.device_orders[self.device as usize] += u64::from(ordered);
            st.abandoned_sessions += u64::from(self.st.abandoned_cart);
            if self.rec_clicked {
                st.rec_click_sessions += 1;
                st.rec_click_orders += u64::from(ordered);
            }
            if self.review_read {
                st.review_sessions += 1;
                st.review_orders += u64::from(ordered);
            }
        }
        self.st.last_event_ms = self.st.last_event_ms.max(self.t);
    }

    /// A visit that does not bounce: landing, browsing, and perhaps checkout. Returns whether
    /// it ordered.
    fn visit(&mut self, src: usize, start: i64, rng: &mut ChaCha8Rng) -> bool {
        let w = self.world;
        let p = &self.st.profile;
        // Landing.
        let fav = p.fav_genres[0];
        match src {
            EMAIL if w.in_promo(self.day) && rng.gen_bool(0.7) => {
                let b = *w.promo.books.choose(rng).unwrap_or(&0);
                self.queue.push((b, Via::Direct));
            }
            PAID | SOCIAL if rng.gen_bool(0.6) => {
                let g = if src == PAID {
                    fav
                } else {
                    rng.gen_range(0..N_GENRES as u8)
                };
                let b = w.catalog.sample_in_genre(g, rng);
                self.queue.push((b, Via::Direct));
            }
            ORGANIC if rng.gen_bool(0.4) => {
                let b = w.catalog.sample_in_genre(self.pick_genre(rng), rng);
                self.queue.push((b, Via::Direct));
            }
            ORGANIC => self.search(rng),
            REFERRAL => {
                let b = w.catalog.popular[rng.gen_range(0..300)];
                self.queue.push((b, Via::Direct));
            }
            _ => {
                let page = if rng.gen_bool(0.1) { "account" } else { "home" };
                self.page_view(rng, page);
                if page == "home" {
                    self.home_recs(rng);
                }
            }
        }
        if let Some(&(series, _)) = self.st.series_progress.choose(rng)
            && rng.gen_bool(self.world.effects.series_next_volume_probability)
            && let Some(next) = self.next_volume(series, self.st.progress(series))
        {
            self.queue.push((next, Via::Direct));
        }

        // Browsing.
        let stay = sigmoid(0.6 + 0.45 * self.intent).clamp(0.2, 0.9);
        let mut actions = 0;
        loop {
            if let Some((b, via)) = self.queue.pop() {
                self.wait(rng, 3, 40);
                self.product_view(b, via, 0.0, rng);
            } else {
                if actions > 0 && !rng.gen_bool(stay) {
                    break;
                }
                self.wait(rng, 5, 60);
                let r: f64 = rng.r#gen();
                if r < 0.45 {
                    self.search(rng);
                } else if r < 0.75 {
                    self.browse_category(rng);
                } else if r < 0.85 {
                    self.page_view(rng, "home");
                    self.home_recs(rng);
                } else if r < 0.9 && !self.cart.is_empty() {
                    self.page_view(rng, "cart");
                } else {
                    let b = w.catalog.sample_in_genre(self.pick_genre(rng), rng);
                    self.queue.push((b, Via::Browse));
                }
                actions += 1;
            }
            if actions > 25 || self.t > start + 3 * 3_600_000 || self.abandon {
                break;
            }
        }
        self.checkout(rng)
    }

    fn pick_genre(&self, rng: &mut ChaCha8Rng) -> u8 {
        let p = &self.st.profile;
        let r: f64 = rng.r#gen();
        if r < 0.5 {
            p.fav_genres[0]
        } else if r < 0.75 {
            p.fav_genres[1]
        } else {
            rng.gen_range(0..N_GENRES as u8)
        }
    }

    /// The series of `book` if buying it now would skip an earlier volume (not owned, not in
    /// the cart).
    fn skips_volume(&self, book: u32) -> Option<u32> {
        let b = &self.world.catalog.books[book as usize];
        let (series, idx) = (b.series?, b.series_index?);
        let vols = &self.world.catalog.series[series as usize].volumes;
        let prev = vols.iter().rev().find(|v| v.0 < idx)?;
        let owned = self.st.progress(series) >= prev.0 || self.cart.iter().any(|c| c.0 == prev.1);
        (!owned).then_some(series)
    }

    fn next_volume(&self, series: u32, progress: u32) -> Option<u32> {
        self.world.catalog.series[series as usize]
            .volumes
            .iter()
            .find(|v| v.0 > progress)
            .map(|v| v.1)
    }

    fn home_recs(&mut self, rng: &mut ChaCha8Rng) {
        let w = self.world;
        let mut books = std::mem::take(&mut self.scratch.books);
        books.clear();
        let module = if rng.gen_bool(0.65) {
            if self.st.orders == 0 {
                books.extend(w.gateway_books.choose(rng));
            }
            while books.len() < 8 {
                let b = w.catalog.sample_in_genre(self.pick_genre(rng), rng);
                if !books.contains(&b) {
                    books.push(b);
                }
            }
            "for_you"
        } else {
            // Bestseller shelf: two gateway books first, promoted books in the window.
            books.extend(w.gateway_books.choose_multiple(rng, 2));
            if w.in_promo(self.day) {
                books.extend(w.promo.books.choose_multiple(rng, 4));
            }
            while books.len() < 8 {
                let b = w.catalog.popular[rng.gen_range(0..100)];
                if !books.contains(&b) {
                    books.push(b);
                }
            }
            "popular"
        };
        self.recs_shown(module, &books, rng);
        self.scratch.books = books;
    }

    fn browse_category(&mut self, rng: &mut ChaCha8Rng) {
        let g = self.pick_genre(rng);
        self.page_view(rng, "category");
        if rng.gen_bool(0.5) {
            let mut books = std::mem::take(&mut self.scratch.books);
            books.clear();
            books.extend(self.world.catalog.by_genre[g as usize].iter().take(8));
            self.recs_shown("popular", &books, rng);
            self.scratch.books = books;
        }
        if self.queue.is_empty() && rng.gen_bool(0.8) {
            let b = self.world.catalog.sample_in_genre(g, rng);
            self.queue.push((b, Via::Browse));
        }
    }

    /// Shows a recommendation module; at the session's first module the user may click the best
    /// one (more likely on desktop and when logged in, see `visible_intent`).
    fn recs_shown(&mut self, module: &str, books: &[u32], rng: &mut ChaCha8Rng) {
        if books.is_empty() {
            return;
        }
        self.wait(rng, 1, 4);
        let s = self.begin(rng, "recommendation_shown");
        self.field_str("module", module);
        self.field_books("book_ids", books);
        let k = self.kind();
        self.finish(rng, s, k);
        let (pos, _) = books
            .iter()
            .enumerate()
            .map(|(i, &b)| (i, self.utility(b) - 0.15 * i as f64))
            .fold((0, f64::MIN), |a, x| if x.1 > a.1 { x } else { a });
        let p = sigmoid(-1.2 + self.world.effects.rec_click_intent_slope * self.visible_intent());
        let first = !std::mem::replace(&mut self.rec_offered, true);
        if rng.gen_bool(p.clamp(0.0, 1.0)) && first {
            self.wait(rng, 2, 20);
            let s = self.begin(rng, "recommendation_clicked");
            self.field_str("module", module);
            self.field_book(books[pos]);
            self.field_u64("position", pos as u64 + 1);
            let k = self.kind();
            self.finish(rng, s, k);
            self.rec_clicked = true;
            self.queue.push((books[pos], Via::Recommendation));
        }
    }

    fn search(&mut self, rng: &mut ChaCha8Rng) {
        let w = self.world;
        let cat = &w.catalog;
        let g = self.pick_genre(rng);
        let target = cat.sample_in_genre(g, rng);
        let tb = &cat.books[target as usize];
        let r: f64 = rng.r#gen();
        let mut query = if r < 0.40 {
            let opts = genre_query_words(g);
            opts[rng.gen_range(0..opts.len())].to_string()
        } else if r < 0.58 {
            if rng.gen_bool(0.5) {
                tb.author.clone()
            } else {
                tb.author.rsplit(' ').next().unwrap_or("").to_string()
            }
        } else if r < 0.88 || tb.series.is_none() {
            let n = tb.title_words.len().min(rng.gen_range(1..=3));
            tb.title_words[..n].join(" ")
        } else {
            let name = &cat.series[tb.series.unwrap_or(0) as usize].name;
            name.to_lowercase()
        };
        if query.trim().is_empty() || r > 0.96 {
            // Typos and nonsense: usually no results.
            let junk = ["asdf", "bok", "qwrtz", "harry pottre", "xkcd comics", "zzz"];
            query = junk[rng.gen_range(0..junk.len())].to_string();
        }
        if rng.gen_bool(0.3) {
            self.page_view(rng, "search");
        }
        self.wait(rng, 2, 10);
        self.scratch.tokens.clear();
        tokenize(&query, &mut self.scratch.tokens);
        cat.search(&self.scratch.tokens, &mut self.scratch.hits);
        let count = self.scratch.hits.len();
        let n_show = count.min([10, 10, 12, 15, 20][rng.gen_range(0..5)]);
        let max_score = self.scratch.hits.first().map_or(1.0, |h| h.1.max(1e-6));
        let mut cand = std::mem::take(&mut self.scratch.cand);
        cand.clear();
        for &(b, score) in self.scratch.hits.iter().take(60) {
            let rel = self.utility(b) + 1.5 * (score / max_score) as f64;
            cand.push((b, score, rel));
        }
        let ltr = self.st.profile.ltr;
        if ltr {
            let mut keyed: Vec<(f64, usize)> = cand
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let noise =
                        self.world.effects.ltr_noise_sd * rng.sample::<f64, _>(StandardNormal);
                    (c.2 + noise, i)
                })
                .collect();
            keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            cand = keyed.iter().map(|&(_, i)| cand[i]).collect();
        }
        cand.truncate(n_show);
        let c = self.next_counter();
        let mut search_id = Vec::with_capacity(21);
        search_id.extend_from_slice(b"srch_");
        self.ids.short(&mut search_id, c);
        let s = self.begin(rng, "search_performed");
        let buf = &mut self.out.buf;
        buf.extend_from_slice(b",\"search_id\":\"");
        buf.extend_from_slice(&search_id);
        buf.extend_from_slice(b"\",\"query\":");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &query);
        buf.extend_from_slice(b",\"results_count\":");
        push_u64(buf, count as u64);
        buf.extend_from_slice(if ltr {
            b",\"ranker\":\"ltr\",\"results\":["
        } else {
            b",\"ranker\":\"bm25\",\"results\":["
        });
        for (i, c) in cand.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            push_book(buf, w, c.0);
        }
        buf.extend_from_slice(b"],\"result_scores\":[");
        for (i, c) in cand.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            let milli = (c.1 as f64 * 1000.0).round() as u64;
            push_u64(buf, milli / 1000);
            buf.push(b'.');
            let f = milli % 1000;
            buf.extend_from_slice(&[
                b'0' + (f / 100) as u8,
                b'0' + (f / 10 % 10) as u8,
                b'0' + (f % 10) as u8,
            ]);
        }
        buf.push(b']');
        let k = self.kind();
        self.finish(rng, s, k);
        // Clicks: a cascade with position bias; the click probability follows relevance.
        let mut clicks = 0;
        for (i, c) in cand.iter().enumerate() {
            let examine = 0.95 / (i as f64 + 1.0).powf(1.3);
            if !rng.gen_bool(examine) {
                continue;
            }
            if rng.gen_bool(sigmoid(-0.6 + 0.7 * c.2 + 0.3 * self.intent)) {
                self.wait(rng, 2, 25);
                let s = self.begin(rng, "search_result_clicked");
                let buf = &mut self.out.buf;
                buf.extend_from_slice(b",\"search_id\":\"");
                buf.extend_from_slice(&search_id);
                buf.push(b'"');
                self.field_book(c.0);
                self.field_u64("position", i as u64 + 1);
                let k = self.kind();
                self.finish(rng, s, k);
                let matched = (c.1 / max_score) as f64;
                self.product_view(c.0, Via::Search, matched, rng);
                clicks += 1;
                if clicks >= 3 || !rng.gen_bool(0.35) {
                    break;
                }
            }
        }
        if clicks == 0 && rng.gen_bool(SEARCH_ABANDON) {
            self.abandon = true;
        }
        self.scratch.cand = cand;
    }

    fn product_view(&mut self, book: u32, via: Via, matched: f64, rng: &mut ChaCha8Rng) {
        let w = self.world;
        let s = self.begin(rng, "product_view");
        self.field_book(book);
        self.field_str("via", via.as_str());
        let k = self.kind();
        self.finish(rng, s, k);
        let u = self.utility(book);
        self.wait(rng, 10, 90);
        let first = !std::mem::replace(&mut self.review_offered, true);
        if rng.gen_bool(sigmoid(-0.6 + self.visible_intent())) && first {
            let s = self.begin(rng, "review_viewed");
            self.field_book(book);
            let k = self.kind();
            self.finish(rng, s, k);
            self.review_read = true;
            self.wait(rng, 15, 120);
        }
        // Recommendations on the product page.
        let b = &w.catalog.books[book as usize];
        let mut books = std::mem::take(&mut self.scratch.books);
        if let Some(pair) = w.pair_of[book as usize] {
            books.clear();
            books.push(pair);
            self.recs_shown("bought_together", &books, rng);
        } else if rng.gen_bool(0.6) {
            books.clear();
            for _ in 0..12 {
                let x = w.catalog.sample_in_genre(b.genre, rng);
                if x != book && !books.contains(&x) && books.len() < 6 {
                    books.push(x);
                }
            }
            self.recs_shown("similar", &books, rng);
        }
        self.scratch.books = books;
        // Add to cart?
        if self.cart.iter().any(|c| c.0 == book) {
            return;
        }
        if let Some(series) = self.skips_volume(book)
            && rng.gen_bool(self.world.effects.series_in_order_probability)
        {
            if let Some(next) = self.next_volume(series, self.st.progress(series)) {
                self.queue.push((next, Via::Browse));
            }
            return;
        }
        // Searchers know what they want; browsers mostly look.
        let via_shift = match via {
            Via::Search => 0.8,
            Via::Browse => -0.6,
            Via::Recommendation | Via::Direct => 0.0,
        };
        let mut logit = ADD_BASE_LOGIT + u + 0.5 * self.intent + 0.6 * matched + via_shift;
        let p = &self.st.profile;
        if w.promoted[book as usize] {
            if w.in_promo(self.day) {
                logit += self.world.effects.promo_add_logit * p.promo_response;
            } else if w.in_dip(self.day) {
                logit += self.world.effects.pull_forward_logit;
            }
        } else if w.in_promo(self.day) && w.promo_genre[b.genre as usize] {
            logit += self.world.effects.cannibalization_logit;
        }
        if rng.gen_bool(sigmoid(logit)) {
            let q = if rng.gen_bool(p.multi_quantity) { 2 } else { 1 };
            self.add_to_cart(book, q, rng);
            if let Some(pair) = w.pair_of[book as usize]
                && !self.cart.iter().any(|c| c.0 == pair)
                && self.skips_volume(pair).is_none()
                && rng.gen_bool(self.world.effects.pair_probability)
            {
                self.add_to_cart(pair, 1, rng);
            }
        }
    }

    fn add_to_cart(&mut self, book: u32, q: u32, rng: &mut ChaCha8Rng) {
        self.wait(rng, 2, 15);
        let price = self.deal_price(book);
        let s = self.begin(rng, "add_to_cart");
        self.field_book(book);
        self.field_u64("quantity", q as u64);
        self.field_cents("unit_price", price);
        let k = self.kind();
        self.finish(rng, s, k);
        self.cart.push((book, q, price));
        self.added_to_cart = true;
    }

    /// Cart review, checkout and the order decision; true when an order was placed.
    fn checkout(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.cart.is_empty() {
            return false;
        }
        if rng.gen_bool(0.12) {
            let i = rng.gen_range(0..self.cart.len());
            let (book, q, _) = self.cart.remove(i);
            self.wait(rng, 5, 60);
            let s = self.begin(rng, "remove_from_cart");
            self.field_book(book);
            self.field_u64("quantity", q as u64);
            let k = self.kind();
            self.finish(rng, s, k);
            if self.cart.is_empty() {
                return false;
            }
        }
        if rng.gen_bool(0.8) {
            self.wait(rng, 3, 30);
            self.page_view(rng, "cart");
        }
        let chk = sigmoid(CHECKOUT_BASE_LOGIT + 0.6 * self.intent);
        if !rng.gen_bool(chk) {
            return false;
        }
        self.wait(rng, 5, 40);
        let s = self.begin(rng, "checkout_started");
        let k = self.kind();
        self.finish(rng, s, k);
        self.wait(rng, 5, 30);
        self.page_view(rng, "checkout");
        // The order decision carries the causal effects of recommendation clicks and reviews.
        let anon_penalty = if self.st.kind == UserKind::Anon {
            -0.5
        } else {
            0.0
        };
        let z0 = ORDER_BASE_LOGIT + 0.5 * self.intent + anon_penalty;
        let (tr, tv) = (
            self.world.effects.rec_click_order_logit,
            self.world.effects.review_order_logit,
        );
        let (r, v) = (
            f64::from(u8::from(self.rec_clicked)),
            f64::from(u8::from(self.review_read)),
        );
        let z = z0 + tr * r + tv * v;
        let ordered = rng.gen_bool(sigmoid(z));
        if self.not_test() {
            let st = &mut self.out.stats;
            st.sessions_reaching_order_step += 1;
            st.rec_click_order_step += u64::from(self.rec_clicked);
            st.review_order_step += u64::from(self.review_read);
            st.rec_ate_sum += sigmoid(z0 + tr + tv * v) - sigmoid(z0 + tv * v);
            st.review_ate_sum += sigmoid(z0 + tr * r + tv) - sigmoid(z0 + tr * r);
            if self.rec_clicked {
                st.rec_att_sum += sigmoid(z) - sigmoid(z - tr);
            }
            if self.review_read {
                st.review_att_sum += sigmoid(z) - sigmoid(z - tv);
            }
        }
        if ordered {
            self.wait(rng, 20, 120);
            self.place_order(rng);
        }
        ordered
    }

    fn place_order(&mut self, rng: &mut ChaCha8Rng) {
        let w = self.world;
        // Merge lines of the same book.
        let mut items: Vec<(u32, u32, i64)> = Vec::with_capacity(self.cart.len());
        for &(b, q, p) in &self.cart {
            match items.iter_mut().find(|i| i.0 == b) {
                Some(i) => i.1 += q,
                None => items.push((b, q, p)),
            }
        }
        let subtotal: i64 = items.iter().map(|i| i.1 as i64 * i.2).sum();
        let promoted_sub: i64 = items
            .iter()
            .filter(|i| w.promoted[i.0 as usize])
            .map(|i| i.1 as i64 * i.2)
            .sum();
        let (discount, code) = if w.in_promo(self.day)
            && promoted_sub > 0
            && rng.gen_bool(self.world.effects.promo_code_use)
        {
            let d = (promoted_sub as f64 * w.promo.discount_rate).round() as i64;
            (d, Some(w.promo.promo_code))
        } else if self.st.orders == 0 && self.st.kind == UserKind::Registered && rng.gen_bool(0.25)
        {
            ((subtotal as f64 * 0.10).round() as i64, Some("WELCOME10"))
        } else {
            (0, None)
        };
        let total = subtotal - discount;
        let fees = (total as f64 * rng.gen_range(0.02..0.03)).round() as i64;
        let c = self.next_counter();
        let mut order_id = [0u8; 20];
        {
            let mut v = Vec::with_capacity(20);
            v.extend_from_slice(b"ord_");
            self.ids.short(&mut v, c);
            order_id.copy_from_slice(&v);
        }
        let retry = rng.gen_bool(0.01);
        let order_t = self.t;
        for attempt in 0..1 + usize::from(retry) {
            if attempt == 1 {
                self.wait(rng, 2, 8);
            }
            let s = self.begin(rng, "order_placed");
            let buf = &mut self.out.buf;
            buf.extend_from_slice(b",\"order_id\":\"");
            buf.extend_from_slice(&order_id);
            buf.extend_from_slice(b"\",\"items\":[");
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                buf.extend_from_slice(b"{\"book_id\":");
                push_book(buf, w, it.0);
                buf.extend_from_slice(b",\"quantity\":");
                push_u64(buf, it.1 as u64);
                buf.extend_from_slice(b",\"unit_price\":");
                push_cents(buf, it.2);
                buf.push(b'}');
            }
            buf.push(b']');
            self.field_cents("total_price", total);
            self.field_cents("discount", discount);
            if let Some(code) = code {
                self.field_str("promo_code", code);
            }
            self.field_cents("fees", fees);
            let kind = match (self.st.kind, attempt) {
                (UserKind::Test, _) => Kind::TestEvent,
                (_, 0) => Kind::Order,
                _ => Kind::Event,
            };
            self.finish(rng, s, kind);
        }
        if retry {
            self.out.stats.retried_orders += 1;
        }
        if self.not_test() {
            self.record_order(&items, code.is_some_and(|c| c == w.promo.promo_code));
        }
        // Per-user state.
        if self.st.first_purchase_day.is_none() {
            self.st.first_purchase_day = Some(self.day);
            self.st.gateway_first = items.iter().any(|i| w.gateway[i.0 as usize]);
            self.st.first_gateways = items
                .iter()
                .map(|i| i.0)
                .filter(|&b| w.gateway[b as usize])
                .collect();
        }
        match self.st.order_ms {
            [None, _] => self.st.order_ms[0] = Some(order_t),
            [Some(_), None] => self.st.order_ms[1] = Some(order_t),
            _ => {}
        }
        if self.gateway_added
            && let Some(first) = self.st.order_ms[0]
            && order_t > first
            && order_t <= first + GATEWAY_HORIZON_DAYS * DAY_MS
        {
            self.st.gateway_added_cents += total;
        }
        if self.st.first_purchase_day.is_some_and(|d| d < self.day) {
            self.st.orders_after_first += 1;
        }
        self.st.orders += 1;
        self.st.converted = true;
        for it in &items {
            self.st.purchased.push(it.0);
            let b = &w.catalog.books[it.0 as usize];
            if let (Some(series), Some(idx)) = (b.series, b.series_index) {
                match self.st.series_progress.iter_mut().find(|p| p.0 == series) {
                    Some(p) => p.1 = p.1.max(idx),
                    None => self.st.series_progress.push((series, idx)),
                }
            }
        }
        if self.st.kind != UserKind::Anon && rng.gen_bool(0.04) {
            let r: f64 = rng.r#gen();
            let refund = if r < 0.8 {
                total
            } else if r < 0.98 {
                items[rng.gen_range(0..items.len())].2.min(total)
            } else {
                total + 499
            };
            if refund > 0 {
                self.st.pending_returns.push(PendingReturn {
                    t: self.t + rng.gen_range(2 * DAY_MS..20 * DAY_MS),
                    order_id,
                    refund_cents: refund,
                    device: self.device,
                });
            }
        }
        self.cart.clear();
    }

    fn record_order(&mut self, items: &[(u32, u32, i64)], used_code: bool) {
        let w = self.world;
        let st = &mut self.out.stats;
        st.orders += 1;
        st.promo_code_orders += u64::from(used_code);
        let mut has_a = false;
        let mut has_ab = false;
        for it in items {
            let b = &w.catalog.books[it.0 as usize];
            if w.promoted[it.0 as usize] {
                st.promoted_units += it.1 as u64;
            } else if w.promo_genre[b.genre as usize] {
                st.same_genre_units += it.1 as u64;
            } else {
                st.other_units += it.1 as u64;
            }
            if let Some(pair) = w.pair_of[it.0 as usize] {
                has_a = true;
                has_ab |= items.iter().any(|x| x.0 == pair);
            }
            if let (Some(series), Some(idx)) = (b.series, b.series_index) {
                let vols = &w.catalog.series[series as usize].volumes;
                if let Some(prev) = vols.iter().rev().find(|v| v.0 < idx) {
                    let owned =
                        self.st.progress(series) >= prev.0 || items.iter().any(|x| x.0 == prev.1);
                    if owned {
                        st.series_in_order += 1;
                    } else {
                        st.series_out_of_order += 1;
                    }
                }
            }
        }
        st.pair_a_orders += u64::from(has_a);
        st.pair_ab_orders += u64::from(has_ab);
    }
}
