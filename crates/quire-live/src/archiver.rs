//! The archiver: consumer group `archiver` writing the bus into the lake.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use quire_lake::{BadRow, IngestReport, Lake, Source, Writer};
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use tracing::{info, warn};

use crate::bus::{Entry, IncomingBadRow};
use crate::{Bus, Error, RedisAt, Result, blocking, blocking_off_pool};

/// How the archiver reads and writes.
#[derive(Debug, Clone)]
pub struct ArchiverOptions {
    /// The consumer group.
    pub group: String,
    /// This archiver's name in the group; a restarted archiver must keep its name to resume
    /// from its own pending entries at once (others' are claimed after `claim_idle`).
    pub consumer: String,
    /// Most entries per stream and lake commit (an events entry holds one request's events).
    pub batch_max: usize,
    /// Under load, entries are gathered this long before a commit (each commit writes a file
    /// per hour partition and fsyncs it, so fewer, larger commits cost less per event).
    pub linger: Duration,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// Entries delivered to another consumer and unacknowledged this long are claimed.
    pub claim_idle: Duration,
    /// How often the streams are trimmed.
    pub trim_every: Duration,
}

impl Default for ArchiverOptions {
    fn default() -> Self {
        Self {
            group: "archiver".to_owned(),
            consumer: "archiver-1".to_owned(),
            batch_max: 2_000,
            linger: Duration::from_millis(1000),
            block: Duration::from_millis(1000),
            claim_idle: Duration::from_secs(60),
            // Often enough that `BusConfig::max_entries` holds at a high rate.
            trim_every: Duration::from_secs(5),
        }
    }
}

/// Entries read from the bus, not yet acknowledged.
#[derive(Debug, Default)]
pub struct Delivery {
    events: Vec<StreamId>,
    bad_rows: Vec<StreamId>,
}

impl Delivery {
    /// Entries in the delivery (both streams).
    pub fn len(&self) -> usize {
        self.events.len() + self.bad_rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn extend(&mut self, more: Delivery) {
        self.events.extend(more.events);
        self.bad_rows.extend(more.bad_rows);
    }
}

/// What one archived batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Stream entries archived and acknowledged.
    pub entries: usize,
    /// The lake commit's counts (duplicates: re-delivered events already in the lake).
    pub lake: IngestReport,
}

/// The archiver of one process.
pub struct Archiver {
    bus: Bus,
    lake: Lake,
    /// The lake writer, kept from one batch to the next with the lake's event-id index.
    writer: Arc<Mutex<Writer>>,
    opts: ArchiverOptions,
    con: ConnectionManager,
    /// `0` while the own pending entries are re-read after a start, then `>`.
    cursor: &'static str,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("lake", &self.lake.root())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl Archiver {
    /// Creates the consumer group (from the start of the retained stream) if needed and opens
    /// the lake writer (reading the lake's event-id index once).
    pub async fn new(bus: Bus, lake: Lake, opts: ArchiverOptions) -> Result<Self> {
        bus.ensure_group(&opts.group, "0", true).await?;
        let con = bus.consumer_connection(opts.block).await?;
        let opened = lake.clone();
        let mut writer = blocking(move || Ok(Writer::open(&opened)?)).await?;
        // The archiver shares the cores with the live KPIs, whose small Polars queries would
        // wait in the pool's queue behind a batch's file encoding (an applied step stalled for
        // up to 0.8 s, each time during a commit): it writes on its own thread.
        writer.set_parallel(false);
        info!(
            event_ids = writer.indexed_ids(),
            "archiver: lake writer open with the lake's event-id index"
        );
        Ok(Self {
            bus,
            lake,
            writer: Arc::new(Mutex::new(writer)),
            opts,
            con,
            cursor: "0",
        })
    }

    /// Reads the next delivery: first this consumer's pending entries (left by a crash), then
    /// entries idle too long at other consumers, then new entries (waiting up to `block`).
    pub async fn next_delivery(&mut self) -> Result<Delivery> {
        let cfg = self.bus.config().clone();
        let streams = [&cfg.events_stream, &cfg.bad_rows_stream];
        if self.cursor == "0" {
            let d = self.read(&streams, ["0", "0"], None).await?;
            if !d.is_empty() {
                info!(
                    entries = d.len(),
                    "archiver: re-reading its pending entries"
                );
                return Ok(d);
            }
            self.cursor = ">";
            let claimed = self.claim_idle().await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        let block = usize::try_from(self.opts.block.as_millis()).unwrap_or(usize::MAX);
        self.read(&streams, [">", ">"], Some(block)).await
    }

    /// New entries, waiting at most `wait` (at least 1 ms: 0 would block forever).
    async fn next_delivery_within(&mut self, wait: Duration) -> Result<Delivery> {
        let cfg = self.bus.config().clone();
        let streams = [&cfg.events_stream, &cfg.bad_rows_stream];
        let ms = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        self.read(&streams, [">", ">"], Some(ms)).await
    }

    async fn read(
        &mut self,
        streams: &[&String; 2],
        ids: [&str; 2],
        block: Option<usize>,
    ) -> Result<Delivery> {
        let mut opts = StreamReadOptions::default()
            .group(&self.opts.group, &self.opts.consumer)
            .count(self.opts.batch_max);
        if let Some(ms) = block {
            opts = opts.block(ms);
        }
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg(&opts)
            .arg("STREAMS")
            .arg(streams.as_slice())
            .arg(ids.as_slice())
            .query_async(&mut self.con)
            .await
            .at(|| format!("reading {} as {}", streams[0], self.opts.consumer))?;
        let mut d = Delivery::default();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            if key.key == *streams[0] {
                d.events = key.ids;
            } else {
                d.bad_rows = key.ids;
            }
        }
        Ok(d)
    }

    /// Claims entries another consumer of the group has held longer than `claim_idle`.
    async fn claim_idle(&mut self) -> Result<Delivery> {
        let cfg = self.bus.config().clone();
        let idle = u64::try_from(self.opts.claim_idle.as_millis()).unwrap_or(u64::MAX);
        let mut d = Delivery::default();
        for (stream, into) in [
            (&cfg.events_stream, &mut d.events),
            (&cfg.bad_rows_stream, &mut d.bad_rows),
        ] {
            let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(stream)
                .arg(&self.opts.group)
                .arg(&self.opts.consumer)
                .arg(idle)
                .arg("0-0")
                .arg("COUNT")
                .arg(self.opts.batch_max)
                .query_async(&mut self.con)
                .await
                .at(|| format!("claiming idle entries of {stream}"))?;
            *into = reply.claimed;
        }
        if !d.is_empty() {
            info!(
                entries = d.len(),
                "archiver: claimed entries of a consumer gone idle"
            );
        }
        Ok(d)
    }

    /// Writes a delivery into the lake as one committed batch (on a blocking thread, off
    /// Polars' pool). Events already in the lake (a re-delivery after a crash) are counted as
    /// duplicates and not written again; an entry that does not hold a valid event goes to the
    /// bad-rows store.
    pub async fn write(&self, d: &Delivery) -> Result<IngestReport> {
        let writer = self.writer.clone();
        let cfg = self.bus.config().clone();
        let events: Vec<Entry> = d.events.iter().map(Entry::of).collect();
        let bad: Vec<(String, Option<String>)> = d
            .bad_rows
            .iter()
            .map(|e| (e.id.clone(), e.get::<String>("r")))
            .collect();
        blocking_off_pool(move || {
            let mut writer = writer
                .lock()
                .map_err(|_| Error::Task("the lake writer's lock is poisoned".to_owned()))?;
            let mut batch = writer.batch(usize::MAX)?;
            let now = Utc::now();
            for decoded in events.into_iter().flat_map(Entry::decode) {
                match decoded {
                    Ok(event) => {
                        batch.push_event(event)?;
                    }
                    Err(not) => {
                        batch.push_invalid_keyed(
                            format!("{}/{}", cfg.events_stream, not.at),
                            BadRow {
                                source: format!("redis:{}/{}", cfg.events_stream, not.at),
                                line: not.text,
                                line_number: 0,
                                reason: not.reason,
                                rejected_at: now,
                            },
                        )?;
                    }
                }
            }
            for (id, body) in bad {
                let row = body.as_deref().map(serde_json::from_str::<IncomingBadRow>);
                let row = match row {
                    Some(Ok(r)) => BadRow {
                        line: r.line,
                        source: r.source,
                        line_number: r.line_number,
                        reason: r.reason,
                        rejected_at: r.rejected_at,
                    },
                    other => BadRow {
                        line: body.unwrap_or_default(),
                        source: format!("redis:{}/{id}", cfg.bad_rows_stream),
                        line_number: 0,
                        reason: match other {
                            Some(Err(e)) => format!("entry: not a bad row ({e})"),
                            _ => "entry: has no field \"r\" holding the bad row".to_owned(),
                        },
                        rejected_at: now,
                    },
                };
                // Keyed by the entry: a delivery received again (a crash between the commit
                // and the acknowledgement) stores its bad rows once.
                batch.push_invalid_keyed(format!("{}/{id}", cfg.bad_rows_stream), row)?;
            }
            Ok(batch.commit(Source::stream(format!("redis:{}", cfg.events_stream)))?)
        })
        .await
    }

    /// Acknowledges a delivery (after [`Self::write`] committed it).
    pub async fn ack(&mut self, d: &Delivery) -> Result<()> {
        let cfg = self.bus.config().clone();
        for (stream, ids) in [
            (&cfg.events_stream, &d.events),
            (&cfg.bad_rows_stream, &d.bad_rows),
        ] {
            if ids.is_empty() {
                continue;
            }
            let ids: Vec<&str> = ids.iter().map(|e| e.id.as_str()).collect();
            let _: i64 = redis::cmd("XACK")
                .arg(stream)
                .arg(&self.opts.group)
                .arg(&ids)
                .query_async(&mut self.con)
                .await
                .at(|| format!("acknowledging {} entries of {stream}", ids.len()))?;
        }
        Ok(())
    }

    /// One step: read (gathering new entries for up to [`ArchiverOptions::linger`] or
    /// [`ArchiverOptions::batch_max`] entries), write, acknowledge. `None` when nothing
    /// arrived within `block`.
    pub async fn step(&mut self) -> Result<Option<BatchReport>> {
        let started = tokio::time::Instant::now();
        let mut d = self.next_delivery().await?;
        if d.is_empty() {
            return Ok(None);
        }
        if self.cursor == ">" {
            while d.events.len() < self.opts.batch_max && started.elapsed() < self.opts.linger {
                let left = self.opts.linger.saturating_sub(started.elapsed());
                let more = self.next_delivery_within(left).await?;
                if more.is_empty() {
                    break;
                }
                d.extend(more);
            }
        }
        let lake = self.write(&d).await?;
        self.ack(&d).await?;
        Ok(Some(BatchReport {
            entries: d.len(),
            lake,
        }))
    }

    /// Archives until `stop` turns true. A failed step (Redis restarting, the lake locked by
    /// an ingest that failed) is logged and retried after a pause; unacknowledged entries are
    /// re-read from the pending list, so nothing is lost.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_trim = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(100);
        while !*stop.borrow() {
            let step = tokio::select! {
                r = self.step() => r,
                _ = stop.changed() => break,
            };
            match step {
                Ok(Some(r)) => {
                    backoff = Duration::from_millis(100);
                    info!(
                        entries = r.entries,
                        written = r.lake.valid - r.lake.duplicates,
                        duplicates = r.lake.duplicates,
                        invalid = r.lake.invalid,
                        "archiver: batch committed to the lake"
                    );
                }
                Ok(None) => backoff = Duration::from_millis(100),
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "archiver: step failed");
                    // Whatever was delivered and not acknowledged is re-read from the start.
                    self.cursor = "0";
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            if last_trim.elapsed() >= self.opts.trim_every {
                last_trim = tokio::time::Instant::now();
                if let Err(e) = self.bus.trim().await {
                    warn!(error = %e, "archiver: trimming the bus failed");
                }
            }
        }
        info!("archiver stopped");
    }
}
