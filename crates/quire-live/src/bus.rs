//! The event bus: two Redis streams (valid events, bad rows) and the intake's deduplication
//! keys, appended to by one server-side script per request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::{RedisAt, Result};

/// Where the bus lives in Redis and how long it remembers.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// The stream of valid events (field `e`: the event as compact JSON).
    pub events_stream: String,
    /// The stream of rejected events (field `r`: an [`IncomingBadRow`] as JSON).
    pub bad_rows_stream: String,
    /// Prefix of the intake's "event id seen" keys.
    pub seen_prefix: String,
    /// How long the intake remembers an `event_id` to answer `duplicate` (the lake's own
    /// dedup, by the archiver, holds forever).
    pub dedup_ttl: Duration,
    /// Entries older than this may be trimmed from the streams once every consumer group has
    /// acknowledged them (the bus is the log of recent events; the lake the permanent one).
    pub retention: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            events_stream: "quire:bus:events".to_owned(),
            bad_rows_stream: "quire:bus:badrows".to_owned(),
            seen_prefix: "quire:bus:seen:".to_owned(),
            dedup_ttl: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(24 * 3600),
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

/// Appends events and bad rows atomically: for each event, `SET seen:<id> NX EX ttl` and, when
/// the id is new, `XADD`. Redis runs a script as one unit (and logs it to its AOF as one),
/// so an event is on the bus exactly when its id is marked seen.
const APPEND_SCRIPT: &str = r"
local ttl = ARGV[1]
local prefix = ARGV[2]
local n = tonumber(ARGV[3])
local out = {}
for i = 1, n do
  local id = ARGV[2 + 2 * i]
  local body = ARGV[3 + 2 * i]
  if redis.call('SET', prefix .. id, '1', 'NX', 'EX', ttl) then
    out[i] = redis.call('XADD', KEYS[1], '*', 'e', body)
  else
    out[i] = ''
  end
end
for j = 4 + 2 * n, #ARGV do
  redis.call('XADD', KEYS[2], '*', 'r', ARGV[j])
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

    /// Appends `events` (`(event_id, compact JSON)`) and `bad_rows` in one atomic step.
    /// When it returns `Ok`, every `Accepted` event is in Redis (and in its AOF, as far as the
    /// server's `appendfsync` makes it durable).
    pub async fn append(
        &self,
        events: &[(String, String)],
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
            .arg(events.len());
        for (id, body) in events {
            inv.arg(id).arg(body);
        }
        for row in bad_rows {
            // Serializing a struct of strings, an integer and a timestamp cannot fail.
            inv.arg(serde_json::to_string(row).unwrap_or_default());
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

    /// Trims entries older than [`BusConfig::retention`] that every consumer group has
    /// acknowledged (and, for entries never delivered, that every group has read past).
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
            // Exact trimming: it runs once a minute, and `~` would keep up to a whole
            // macro node (100 entries) that the bound allows to drop.
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
    use super::StreamId;

    #[test]
    fn stream_ids_order_by_time_then_sequence() {
        assert!(StreamId::parse("10-2") < StreamId::parse("11-0"));
        assert!(StreamId::parse("10-2") > StreamId::parse("10-1"));
        assert_eq!(StreamId::parse("17").to_string(), "17-0");
        assert_eq!(StreamId::parse("0-0"), StreamId::parse("garbage"));
    }
}
