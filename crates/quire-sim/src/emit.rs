//! Output buffers: events are serialized by hand into one byte buffer per chunk of users, with a
//! small record per line (arrival time, offset, length, kind) that is later sorted and written.

use crate::rng::mix64;
use crate::world::{DAY_MS, World};

/// What a written line is, for the summary counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    TestEvent,
    /// The first `order_placed` of a non-test order.
    Order,
    Duplicate,
    Malformed,
}

/// One line of output.
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    /// Arrival time in ms since the start (what the file is ordered by).
    pub arrival: i64,
    /// Tie breaker: (entity, sequence).
    pub tie: u64,
    /// Index of the buffer holding the line (set when merging).
    pub chunk: u32,
    pub off: u32,
    pub len: u32,
    pub kind: Kind,
}

/// Malformed line kinds, in truth.json order.
pub const MALFORMED_KINDS: [&str; 7] = [
    "not_json",
    "truncated_json",
    "missing_required_field",
    "wrong_type",
    "negative_quantity",
    "unknown_event_type",
    "bad_timestamp",
];

/// Realized counters of one day, summed over all users.
#[derive(Debug, Clone, Default)]
pub struct DayStats {
    pub sessions: u64,
    pub sessions_reaching_order_step: u64,
    pub orders: u64,
    pub rec_click_sessions: u64,
    /// Sessions with a recommendation click (a review read) that reached the order decision.
    pub rec_click_order_step: u64,
    pub review_order_step: u64,
    pub rec_click_orders: u64,
    pub rec_ate_sum: f64,
    pub rec_att_sum: f64,
    pub review_sessions: u64,
    pub review_orders: u64,
    pub review_ate_sum: f64,
    pub review_att_sum: f64,
    pub promoted_units: u64,
    pub same_genre_units: u64,
    pub other_units: u64,
    pub promo_code_orders: u64,
    pub series_in_order: u64,
    pub series_out_of_order: u64,
    pub pair_a_orders: u64,
    pub pair_ab_orders: u64,
    pub anon_exposed: [u64; 2],
    pub anon_converted: [u64; 2],
    pub duplicates: u64,
    pub retried_orders: u64,
    pub late_events: u64,
    pub offset_timestamps: u64,
    pub returns: u64,
    pub malformed: [u64; 7],
    /// Sessions and sessions with an order, by device (`Device as usize`).
    pub device_sessions: [u64; 3],
    pub device_orders: [u64; 3],
    /// Sessions with an add_to_cart and no order; those followed by a session of the same
    /// user (visitor); and of those, the next sessions that started at the cart.
    pub abandoned_sessions: u64,
    pub abandoned_then_session: u64,
    pub cart_returns: u64,
    /// Anonymous visitors of the day: first event and first two orders (ms since the start).
    pub anon_purchase_times: Vec<(i64, [Option<i64>; 2])>,
}

impl DayStats {
    pub fn add(&mut self, o: &DayStats) {
        self.sessions += o.sessions;
        self.sessions_reaching_order_step += o.sessions_reaching_order_step;
        self.orders += o.orders;
        self.rec_click_sessions += o.rec_click_sessions;
        self.rec_click_order_step += o.rec_click_order_step;
        self.review_order_step += o.review_order_step;
        self.rec_click_orders += o.rec_click_orders;
        self.rec_ate_sum += o.rec_ate_sum;
        self.rec_att_sum += o.rec_att_sum;
        self.review_sessions += o.review_sessions;
        self.review_orders += o.review_orders;
        self.review_ate_sum += o.review_ate_sum;
        self.review_att_sum += o.review_att_sum;
        self.promoted_units += o.promoted_units;
        self.same_genre_units += o.same_genre_units;
        self.other_units += o.other_units;
        self.promo_code_orders += o.promo_code_orders;
        self.series_in_order += o.series_in_order;
        self.series_out_of_order += o.series_out_of_order;
        self.pair_a_orders += o.pair_a_orders;
        self.pair_ab_orders += o.pair_ab_orders;
        for i in 0..2 {
            self.anon_exposed[i] += o.anon_exposed[i];
            self.anon_converted[i] += o.anon_converted[i];
        }
        self.duplicates += o.duplicates;
        self.retried_orders += o.retried_orders;
        self.late_events += o.late_events;
        self.offset_timestamps += o.offset_timestamps;
        self.returns += o.returns;
        for i in 0..7 {
            self.malformed[i] += o.malformed[i];
        }
        for i in 0..3 {
            self.device_sessions[i] += o.device_sessions[i];
            self.device_orders[i] += o.device_orders[i];
        }
        self.abandoned_sessions += o.abandoned_sessions;
        self.abandoned_then_session += o.abandoned_then_session;
        self.cart_returns += o.cart_returns;
        self.anon_purchase_times
            .extend_from_slice(&o.anon_purchase_times);
    }
}

/// A chunk's output for one day.
#[derive(Debug, Default)]
pub struct Out {
    pub buf: Vec<u8>,
    pub recs: Vec<Rec>,
    pub stats: DayStats,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowest `digits` hex digits of `v`.
pub fn push_hex(buf: &mut Vec<u8>, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        buf.push(HEX[((v >> (i * 4)) & 0xF) as usize]);
    }
}

/// Appends an unsigned integer.
pub fn push_u64(buf: &mut Vec<u8>, v: u64) {
    let mut b = itoa::Buffer::new();
    buf.extend_from_slice(b.format(v).as_bytes());
}

/// Appends cents as a JSON number with two decimals.
pub fn push_cents(buf: &mut Vec<u8>, c: i64) {
    if c < 0 {
        buf.push(b'-');
    }
    let c = c.unsigned_abs();
    push_u64(buf, c / 100);
    buf.push(b'.');
    buf.push(b'0' + (c % 100 / 10) as u8);
    buf.push(b'0' + (c % 10) as u8);
}

/// Appends `bk_<id>` with quotes.
pub fn push_book(buf: &mut Vec<u8>, world: &World, book: u32) {
    buf.extend_from_slice(b"\"bk_");
    push_u64(buf, world.catalog.books[book as usize].id as u64);
    buf.push(b'"');
}

/// Offsets used for non-UTC timestamps, in minutes.
pub const OFFSETS: [i64; 5] = [120, -300, 330, 60, -480];

/// Appends an RFC 3339 timestamp for `t` ms since the start, shown at `offset_min` from UTC.
pub fn push_timestamp(buf: &mut Vec<u8>, world: &World, t: i64, offset_min: i64) {
    let local = t + offset_min * 60_000;
    let day = local.div_euclid(DAY_MS);
    let ms = local.rem_euclid(DAY_MS);
    buf.extend_from_slice(world.date_bytes(day));
    buf.push(b'T');
    let two = |buf: &mut Vec<u8>, v: i64| {
        buf.push(b'0' + (v / 10) as u8);
        buf.push(b'0' + (v % 10) as u8);
    };
    two(buf, ms / 3_600_000);
    buf.push(b':');
    two(buf, ms / 60_000 % 60);
    buf.push(b':');
    two(buf, ms / 1000 % 60);
    buf.push(b'.');
    let frac = ms % 1000;
    buf.push(b'0' + (frac / 100) as u8);
    two(buf, frac % 100);
    if offset_min == 0 {
        buf.push(b'Z');
    } else {
        buf.push(if offset_min > 0 { b'+' } else { b'-' });
        let o = offset_min.abs();
        two(buf, o / 60);
        buf.push(b':');
        two(buf, o % 60);
    }
}

/// Unique ids derived from a per-run key and a unique counter (a bijection, so no collisions).
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    k1: u64,
    k2: u64,
    k3: u64,
    k4: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids {
            k1: mix64(seed ^ 0x1D51),
            k2: mix64(seed ^ 0x1D52),
            k3: mix64(seed ^ 0x1D53),
            k4: mix64(seed ^ 0x1D54),
        }
    }

    /// A UUID-shaped event id; the last 16 hex digits are a bijection of `counter`.
    pub fn event_id(&self, buf: &mut Vec<u8>, counter: u64) {
        let hi = mix64(counter ^ self.k1);
        let lo = mix64(counter ^ self.k2);
        push_hex(buf, hi >> 32, 8);
        buf.push(b'-');
        push_hex(buf, hi >> 16, 4);
        buf.push(b'-');
        push_hex(buf, 0x4000 | (hi & 0x0FFF), 4);
        buf.push(b'-');
        push_hex(buf, lo >> 48, 4);
        buf.push(b'-');
        push_hex(buf, lo, 12);
    }

    /// 16 hex digits, a bijection of `counter` (order and search ids).
    pub fn short(&self, buf: &mut Vec<u8>, counter: u64) {
        push_hex(buf, mix64(counter ^ self.k3), 16);
    }

    /// 16 hex digits for anonymous cookie ids.
    pub fn anon(&self, counter: u64) -> u64 {
        mix64(counter ^ self.k4)
    }
}

/// The unique counter of (day, entity, sequence).
pub fn counter(day: u32, entity: u32, seq: u32) -> u64 {
    ((day as u64) << 52) ^ ((entity as u64) << 20) ^ (seq as u64 & 0xF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_hex() {
        let mut b = Vec::new();
        push_cents(&mut b, 1299);
        b.push(b' ');
        push_cents(&mut b, 5);
        b.push(b' ');
        push_hex(&mut b, 0xAB, 4);
        assert_eq!(String::from_utf8_lossy(&b), "12.99 0.05 00ab");
    }
}
