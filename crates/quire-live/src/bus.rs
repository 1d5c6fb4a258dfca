//! The event bus: two Redis streams (valid events, bad rows) and the intake's deduplication
//! keys, appended to by one server-side script per request.
//!
//! An event is validated once, by the intake; the bus carries it decoded
//! ([`quire_events::Event`]'s serde form in MessagePack), so the archiver and the live KPIs
//! read it back without parsing and validating JSON again. A request's new events share one
//! stream entry, and one field of it: their MessagePack values one after another, so a reader
//! gets one bulk string per entry from Redis, not one per event (parsing a reply of hundreds
//! of small values was the readers' largest cost).

use std::time::Duration;

use chrono::{DateTime, Utc};
use quire_events::Event;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::{RedisAt, Result};

/// Default [`BusConfig::max_entries`]: at 100 events a request, 2 million events, about 300 MB
/// of Redis memory.
pub const DEFAULT_BUS_MAX_ENTRIES: usize = 20_000;

/// Where the bus lives in Redis and how long it remembers.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// The stream of valid events: an entry per request, field `m` holding its events in
    /// MessagePack, one value after another.
    pub events_stream: String,
    /// The stream of rejected events (field `r`: an [`IncomingBadRow`] as JSON).
    pub bad_rows_stream: String,
    /// Prefix of the intake's "event ids seen" hashes: one per hour of event time,
    /// `<prefix>YYYYMMDDHH`, a field per `event_id`. A client's resend of an event carries its
    /// time, so it meets its id in the same hash; a hash field costs Redis about half of a key
    /// with its own expiry, in memory and in the AOF. An hour's hash expires whole: run Redis
    /// with `lazyfree-lazy-expire yes` (as `make run` does) so that freeing it does not stall
    /// the server.
    pub seen_prefix: String,
    /// How long after the last new event of its hour arrived the intake remembers the hour's
    /// `event_id`s to answer `duplicate` (the lake's own dedup, by the archiver, holds forever,
    /// and also drops a repeated id sent with another time).
    pub dedup_ttl: Duration,
    /// Entries older than this may be trimmed from the streams once every consumer group has
    /// acknowledged them (the bus is the log of recent events; the lake the permanent one).
    pub retention: Duration,
    /// About how many entries a stream keeps, however recent, once every group has
    /// acknowledged them (the oldest go first; the cut is placed by the entries' times, so
    /// after a burst followed by a lull it may keep fewer): bounds Redis' memory, and the size
    /// of its AOF rewrites, when events arrive fast. An entry holds one intake request's new
    /// events.
    pub max_entries: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            events_stream: "quire:bus:events".to_owned(),
            bad_rows_stream: "quire:bus:badrows".to_owned(),
            seen_prefix: "quire:bus:seen:".to_owned(),
            dedup_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(24 * 3600),
            max_entries: DEFAULT_BUS_MAX_ENTRIES,
        }
    }
}

/// A rejected event as it travels on the bus to the bad-rows store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingBadRow {
    /// The original event text (for a body that is not JSON: the body).
    pub line: String,
    /// `http:<request id>`.
    pub source: String,
    /// Index of the event in the request's batch (0 for a single event or the whole body).
    pub line_number: i64,
    /// `field.path: rule`.
    pub reason: String,
    pub rejected_at: DateTime<Utc>,
}

/// What [`Bus::append`] did with each event, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// On the bus, under this stream entry id.
    Accepted(String),
    /// Its `event_id` was appended before (within the dedup window): not appended again.
    Duplicate,
}

/// How long a command on the shared connection may take before it fails.
const APPEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Most events in one stream entry (bounds an entry's size, about 200 bytes an event).
pub(crate) const EVENTS_PER_ENTRY: usize = 1000;

/// The events field of an entry: MessagePack values one after another.
const PACKED_FIELD: &str = "m";

/// Appends events and bad rows atomically: for each event `HSETNX seen:<event hour> <id> 1`
/// (each hash written to gets `EXPIRE ttl` once); the events whose id is new go into one
/// stream entry (field `m`: their MessagePack values concatenated, at most
/// [`EVENTS_PER_ENTRY`] per entry), so a request's events cost Redis one `XADD`, one entry to
/// deliver and one to acknowledge per consumer group. A bad row is marked seen in
/// `seen:bad:<day>` by the hash of its line and goes to the bad-rows stream only when new, so a
/// retried request does not store its bad rows twice. Redis runs a script as one unit (and
/// logs it to its AOF as one), so an event is on the bus exactly when its id is marked seen.
const APPEND_SCRIPT: &str = r"
local ttl = ARGV[1]
local prefix = ARGV[2]
local n = tonumber(ARGV[3])
local per_entry = tonumber(ARGV[4])
local field = ARGV[5]
local out = {}
local packed = {}
local held = {}
local touched = {}
local in_call = {}
local function flush()
  if #held > 0 then
    local entry = redis.call('XADD', KEYS[1], '*', field, table.concat(packed))
    for _, i in ipairs(held) do
      out[i] = entry
    end
    packed = {}
    held = {}
  end
end
for i = 1, n do
  local seen = prefix .. ARGV[3 + 3 * i]
  local id = ARGV[4 + 3 * i]
  -- An id twice in one call is a duplicate whatever the hours of its copies.
  local first = not in_call[id]
  in_call[id] = true
  if first and redis.call('HSETNX', seen, id, '1') == 1 then
    touched[seen] = true
    packed[#packed + 1] = ARGV[5 + 3 * i]
    held[#held + 1] = i
    if #held == per_entry then
      flush()
    end
  else
    out[i] = ''
  end
end
flush()
for j = 6 + 3 * n, #ARGV, 3 do
  local seen = prefix .. ARGV[j]
  if redis.call('HSETNX', seen, ARGV[j + 1], '1') == 1 then
    touched[seen] = true
    redis.call('XADD', KEYS[2], '*', 'r', ARGV[j + 2])
  end
end
for seen in pairs(touched) do
  redis.call('EXPIRE', seen, ttl)
end
return out
";

/// A handle on the bus (cheap to clone; one multiplexed, reconnecting connection).
#[derive(Clone)]
pub struct Bus {
    con: ConnectionManager,
    client: redis::Client,
    config: BusConfig,
    script: redis::Script,
    url: String,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.url)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects to Redis at `url` (`redis://host:port/db`).
    pub async fn connect(url: &str, config: BusConfig) -> Result<Self> {
        let client = redis::Client::open(url).at(|| format!("opening {url}"))?;
        // A slow answer (an fsync on a busy disk) is waited for: after a timeout the outcome
        // of an append is unknown, and the sender has to send the request again.
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(APPEND_TIMEOUT))
            .set_number_of_retries(3);
        let con = client
            .get_connection_manager_with_config(cfg)
            .await
            .at(|| format!("connecting to {url}"))?;
        Ok(Self {
            con,
            client,
            config,
            script: redis::Script::new(APPEND_SCRIPT),
            url: url.to_owned(),
        })
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut con = self.con.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .at(|| format!("pinging {}", self.url))?;
        Ok(())
    }

    /// The shared connection (for short commands).
    pub fn connection(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// A new connection of its own for a consumer's blocking reads (a blocked `XREADGROUP`
    /// would hold up everyone on a shared connection), without a response timeout shorter
    /// than `block`.
    pub async fn consumer_connection(&self, block: Duration) -> Result<ConnectionManager> {
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(block + Duration::from_secs(5)))
            .set_number_of_retries(3);
        self.client
            .get_connection_manager_with_config(cfg)
            .await
            .at(|| format!("connecting to {}", self.url))
    }

    /// Appends validated `events` and `bad_rows` in one atomic step (one script call).
    /// When it returns `Ok`, every `Accepted` event is in Redis (and in its AOF, as far as the
    /// server's `appendfsync` makes it durable).
    pub async fn append(
        &self,
        events: &[Event],
        bad_rows: &[IncomingBadRow],
    ) -> Result<Vec<Appended>> {
        if events.is_empty() && bad_rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.script.prepare_invoke();
        inv.key(&self.config.events_stream)
            .key(&self.config.bad_rows_stream)
            .arg(self.config.dedup_ttl.as_secs().max(1))
            .arg(&self.config.seen_prefix)
            .arg(events.len())
            .arg(EVENTS_PER_ENTRY)
            .arg(PACKED_FIELD);
        for event in events {
            inv.arg(event.event_timestamp.format("%Y%m%d%H").to_string())
                .arg(&event.event_id)
                .arg(encode(event));
        }
        for row in bad_rows {
            // A rejected line sent again the same UTC day (a retry after an unknown outcome)
            // is stored once: marked seen by the hash of its text, as events by their id.
            inv.arg(format!("bad:{}", row.rejected_at.format("%Y%m%d")))
                .arg(format!(
                    "{:032x}",
                    xxhash_rust::xxh3::xxh3_128(row.line.as_bytes())
                ))
                // Serializing a struct of strings, an integer and a timestamp cannot fail.
                .arg(serde_json::to_string(row).unwrap_or_default());
        }
        let mut con = self.con.clone();
        let ids: Vec<String> = inv
            .invoke_async(&mut con)
            .await
            .at(|| format!("appending to {}", self.config.events_stream))?;
        Ok(ids
            .into_iter()
            .map(|id| {
                if id.is_empty() {
                    Appended::Duplicate
                } else {
                    Appended::Accepted(id)
                }
            })
            .collect())
    }

    /// Creates consumer group `group` on the events stream and, with `bad_rows`, on the
    /// bad-rows stream too (creating the streams) unless it exists; a new group starts at
    /// `start` (`0`: everything retained, `$`: new entries). A group must read every stream
    /// it is on: an entry is trimmed only once every group of its stream is past it.
    pub async fn ensure_group(&self, group: &str, start: &str, bad_rows: bool) -> Result<()> {
        let mut con = self.con.clone();
        let streams: &[&String] = if bad_rows {
            &[&self.config.events_stream, &self.config.bad_rows_stream]
        } else {
            &[&self.config.events_stream]
        };
        for stream in streams {
            let r: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(group)
                .arg(start)
                .arg("MKSTREAM")
                .query_async(&mut con)
                .await;
            match r {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => {
                    return Err(crate::Error::Redis {
                        what: format!("creating consumer group {group} on {stream}"),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    /// Trims entries older than [`BusConfig::retention`], and the oldest entries past
    /// [`BusConfig::max_entries`], that every consumer group has acknowledged (and, for
    /// entries never delivered, that every group has read past).
    pub async fn trim(&self) -> Result<()> {
        let mut con = self.con.clone();
        let cutoff = Utc::now().timestamp_millis()
            - i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX);
        for stream in [&self.config.events_stream, &self.config.bad_rows_stream] {
            let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
                .arg("GROUPS")
                .arg(stream)
                .query_async(&mut con)
                .await
                .at(|| format!("reading the groups of {stream}"))?;
            let mut bound = StreamId::ms(cutoff.max(0));
            let info: redis::streams::StreamInfoStreamReply = redis::cmd("XINFO")
                .arg("STREAM")
                .arg(stream)
                .query_async(&mut con)
                .await
                .at(|| format!("reading the length of {stream}"))?;
            if info.length > self.config.max_entries {
                bound = bound.max(size_bound(
                    StreamId::parse(&info.first_entry.id),
                    StreamId::parse(&info.last_entry.id),
                    info.length,
                    self.config.max_entries,
                ));
            }
            for g in &groups.groups {
                let mut keep_from = StreamId::parse(&g.last_delivered_id);
                if g.pending > 0 {
                    let p: redis::streams::StreamPendingReply = redis::cmd("XPENDING")
                        .arg(stream)
                        .arg(&g.name)
                        .query_async(&mut con)
                        .await
                        .at(|| format!("reading the pending entries of {stream}/{}", g.name))?;
                    if let redis::streams::StreamPendingReply::Data(d) = p {
                        keep_from = keep_from.min(StreamId::parse(&d.start_id));
                    }
                }
                bound = bound.min(keep_from);
            }
            // Exact trimming: `~` would keep up to a whole macro node (100 entries) that the
            // bound allows to drop.
            let _: i64 = redis::cmd("XTRIM")
                .arg(stream)
                .arg("MINID")
                .arg(bound.to_string())
                .query_async(&mut con)
                .await
                .at(|| format!("trimming {stream}"))?;
        }
        Ok(())
    }
}

/// An event as the bus carries it.
fn encode(event: &Event) -> Vec<u8> {
    // Serializing an event (strings, numbers, lists, maps with string keys) into a buffer
    // cannot fail.
    rmp_serde::to_vec(event).unwrap_or_default()
}

/// Where to trim a stream of `length` entries from `first` to `last` to keep about `keep`:
/// the newest `keep` span that share of the time between the two ends. Redis cannot find the
/// `keep`-th newest entry's id without reading the entries, and this is exact at a steady
/// rate; after a burst, the trims that follow (every few seconds) come closer each time.
fn size_bound(first: StreamId, last: StreamId, length: usize, keep: usize) -> StreamId {
    let span = last.0.saturating_sub(first.0) as f64;
    let kept = (span * keep as f64 / length.max(1) as f64) as u64;
    StreamId(last.0.saturating_sub(kept), 0)
}

/// An events-stream entry, taken out of Redis' reply to be decoded on the blocking pool.
pub(crate) struct Entry {
    pub(crate) id: String,
    /// `(field, body)` in field order.
    bodies: Vec<(String, Body)>,
}

enum Body {
    /// Field `m`: events in MessagePack, one value after another.
    Packed(Vec<u8>),
    /// Fields `0`, `1`, …: one event each in MessagePack (how the bus carried events before
    /// `m`; such entries may still be within the bus's retention after an upgrade).
    Numbered(Vec<u8>),
    /// Field `e`: one event's JSON text (the bus's first format, kept for the same reason).
    Json(String),
    /// Any other field: not written by this code.
    Unknown(Vec<u8>),
}

/// An entry's field that holds no event: why, and its text for the bad-rows store.
pub(crate) struct NotAnEvent {
    /// `<entry id>/<field>`.
    pub(crate) at: String,
    pub(crate) reason: String,
    pub(crate) text: String,
}

impl Entry {
    pub(crate) fn of(entry: &redis::streams::StreamId) -> Self {
        let mut fields: Vec<(Option<usize>, &String, &redis::Value)> = entry
            .map
            .iter()
            .map(|(k, v)| (k.parse::<usize>().ok(), k, v))
            .collect();
        // Numbered fields in their order, then the others by name.
        fields.sort_by(|a, b| (a.0.is_none(), a.0, a.1).cmp(&(b.0.is_none(), b.0, b.1)));
        let bodies = fields
            .into_iter()
            .map(|(n, k, v)| {
                let bytes =
                    <Vec<u8> as redis::FromRedisValue>::from_redis_value_ref(v).unwrap_or_default();
                let body = match (n, k.as_str()) {
                    (Some(_), _) => Body::Numbered(bytes),
                    (None, PACKED_FIELD) => Body::Packed(bytes),
                    (None, "e") => Body::Json(String::from_utf8_lossy(&bytes).into_owned()),
                    (None, _) => Body::Unknown(bytes),
                };
                (k.clone(), body)
            })
            .collect();
        Self {
            id: entry.id.clone(),
            bodies,
        }
    }

    /// The entry's events, in order; a field that holds none is returned as such (the
    /// archiver stores it as a bad row; the live KPIs skip it). In field `m`, a value that
    /// is not an event ends the field: what follows it cannot be told apart, so it is
    /// returned with it.
    pub(crate) fn decode(self) -> Vec<std::result::Result<Event, NotAnEvent>> {
        let id = self.id;
        let mut out = Vec::new();
        for (field, body) in self.bodies {
            let not = |reason: String, text: &[u8]| NotAnEvent {
                at: format!("{id}/{field}"),
                reason,
                text: String::from_utf8_lossy(text).into_owned(),
            };
            match body {
                Body::Packed(b) => {
                    let mut rest: &[u8] = &b;
                    let mut n = 0;
                    while !rest.is_empty() {
                        let at = rest;
                        match rmp_serde::from_read::<_, Event>(&mut rest) {
                            Ok(e) => out.push(Ok(e)),
                            Err(e) => {
                                out.push(Err(not(
                                    format!("entry: field {field:?}, value {n} and after: not an event ({e})"),
                                    at,
                                )));
                                break;
                            }
                        }
                        n += 1;
                    }
                }
                Body::Numbered(b) => out.push(rmp_serde::from_slice(&b).map_err(|e| {
                    not(
                        format!("entry: field {field:?} does not hold an event ({e})"),
                        &b,
                    )
                })),
                Body::Json(text) => out.push(
                    quire_events::parse_line(&text).map_err(|e| not(e.reason(), text.as_bytes())),
                ),
                Body::Unknown(b) => out.push(Err(not(
                    format!("entry: field {field:?} is not an event field"),
                    &b,
                ))),
            }
        }
        if out.is_empty() {
            out.push(Err(NotAnEvent {
                at: id,
                reason: "entry: has no field holding an event".to_owned(),
                text: String::new(),
            }));
        }
        out
    }
}

/// A stream entry id `ms-seq`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct StreamId(u64, u64);

impl StreamId {
    fn ms(ms: i64) -> Self {
        Self(u64::try_from(ms).unwrap_or(0), 0)
    }

    /// Parses `ms-seq` (an unparsable id, which Redis never sends, counts as 0-0: trims nothing).
    pub(crate) fn parse(s: &str) -> Self {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Self(ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use quire_events::Event;

    use super::{Entry, StreamId, encode, size_bound};

    fn entry(fields: Vec<(String, Vec<u8>)>) -> redis::streams::StreamId {
        redis::streams::StreamId {
            id: "1-0".to_owned(),
            map: fields
                .into_iter()
                .map(|(k, v)| (k, redis::Value::BulkString(v)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn events_come_off_the_bus_as_they_went_on() {
        let lines = [
            r#"{"event_id":"o1","event_type":"order_placed","event_timestamp":"2025-10-01T10:05:00.123456789+02:00","user_id":"u1","device":"mobile","traffic_source":"paid","experiments":{"exp_a":"B"},"order_id":"o-1","items":[{"book_id":"bk_1","quantity":2,"unit_price":5.5}],"total_price":11.0,"discount":1.0,"promo_code":"FALL","fees":0.5}"#,
            r#"{"event_id":"s1","event_type":"search_performed","event_timestamp":"2025-10-01T10:05:00Z","user_id":"u1","device":"desktop","is_test":true,"search_id":"s-1","query":"dragons","results_count":2,"ranker":"ltr","results":["bk_1","bk_2"],"result_scores":[2.5,1.0]}"#,
            r#"{"event_id":"c1","event_type":"checkout_started","event_timestamp":"2025-10-01T10:05:00Z","user_id":"u1","device":"tablet"}"#,
            r#"{"event_id":"r1","event_type":"order_returned","event_timestamp":"2025-10-02T00:00:00Z","user_id":"u1","device":"mobile","order_id":"o-1","refund_amount":3.25}"#,
        ];
        let events: Vec<Event> = lines
            .iter()
            .map(|l| quire_events::parse_line(l).unwrap())
            .collect();
        // 12 fields: numbered fields come back in their order, not the map's or the text's.
        let fields: Vec<(String, Vec<u8>)> = (0..12)
            .rev()
            .map(|i| (i.to_string(), encode(&events[i % 4])))
            .collect();
        let got: Vec<Event> = Entry::of(&entry(fields))
            .decode()
            .into_iter()
            .map(|r| r.map_err(|e| e.reason).unwrap())
            .collect();
        let want: Vec<Event> = (0..12).map(|i| events[i % 4].clone()).collect();
        assert_eq!(got, want);
        // The bus's format: the same 12 events one after another in field `m`.
        let packed: Vec<u8> = want.iter().flat_map(encode).collect();
        let got: Vec<Event> = Entry::of(&entry(vec![("m".to_owned(), packed)]))
            .decode()
            .into_iter()
            .map(|r| r.map_err(|e| e.reason).unwrap())
            .collect();
        assert_eq!(got, want);
        // An entry from before the bus carried events in fields still reads.
        for (line, event) in lines.iter().zip(&events) {
            let got = Entry::of(&entry(vec![("e".to_owned(), line.as_bytes().to_vec())])).decode();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].as_ref().map_err(|e| &e.reason), Ok(event));
        }
    }

    #[test]
    fn a_field_without_an_event_says_why() {
        let event = quire_events::parse_line(
            r#"{"event_id":"c1","event_type":"checkout_started","event_timestamp":"2025-10-01T10:05:00Z","user_id":"u1","device":"tablet"}"#,
        )
        .unwrap();
        // An event, then a value that is not one: the event reads, the rest is returned.
        let mut packed = encode(&event);
        packed.extend_from_slice(b"\xc1 tail");
        let got = Entry::of(&entry(vec![("m".to_owned(), packed)])).decode();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().map_err(|e| &e.reason), Ok(&event));
        let not = got[1].as_ref().err().unwrap();
        assert_eq!(not.at, "1-0/m");
        assert!(
            not.reason
                .starts_with("entry: field \"m\", value 1 and after: not an event"),
            "{}",
            not.reason
        );
        assert!(not.text.ends_with(" tail"), "{}", not.text);
        let fields = vec![
            ("0".to_owned(), b"\xc1 not msgpack".to_vec()),
            ("x".to_owned(), b"1".to_vec()),
            ("e".to_owned(), br#"{"event_id":"x"}"#.to_vec()),
        ];
        let got = Entry::of(&entry(fields)).decode();
        let errs: Vec<(String, String)> = got
            .into_iter()
            .map(|r| r.err().map(|e| (e.at, e.reason)).unwrap())
            .collect();
        assert_eq!(errs[0].0, "1-0/0");
        assert!(
            errs[0]
                .1
                .starts_with("entry: field \"0\" does not hold an event"),
            "{errs:?}"
        );
        assert!(errs[1].1.starts_with("event_type"), "{errs:?}");
        assert_eq!(
            errs[2],
            (
                "1-0/x".to_owned(),
                "entry: field \"x\" is not an event field".to_owned()
            )
        );
        let empty = Entry::of(&entry(Vec::new())).decode();
        assert_eq!(
            empty[0].as_ref().err().map(|e| e.reason.as_str()),
            Some("entry: has no field holding an event")
        );
    }

    #[test]
    fn the_size_bound_keeps_the_newest_share_of_the_time() {
        let (first, last) = (StreamId::parse("1000-0"), StreamId::parse("2000-5"));
        // 100 entries over 1,000 ms, 10 kept: the last 100 ms.
        assert_eq!(size_bound(first, last, 100, 10), StreamId::parse("1900-0"));
        assert_eq!(size_bound(first, last, 100, 100), StreamId::parse("1000-0"));
        // All in one millisecond: nothing can be told apart, nothing goes.
        let one = StreamId::parse("1000-3");
        assert_eq!(size_bound(one, one, 50, 10), StreamId::parse("1000-0"));
    }

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        assert!(StreamId::parse("10-2") < StreamId::parse("11-0"));
        assert!(StreamId::parse("10-2") > StreamId::parse("10-1"));
        assert_eq!(StreamId::parse("17").to_string(), "17-0");
        assert_eq!(StreamId::parse("0-0"), StreamId::parse("garbage"));
    }
}
