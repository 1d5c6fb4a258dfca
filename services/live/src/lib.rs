//! quire-live-server: the live path on one address, started by `quire serve live --listen ADDR`
//! (`contracts/cli.md`): the HTTP intake, the archiver, the live KPIs and the dashboard.
//!
//! # What it runs
//! - **Intake**: `POST /v1/events` takes one event object or a JSON array of them (at most
//!   [`LiveServerOptions::max_batch`] events, a body of at most
//!   [`LiveServerOptions::max_body_bytes`]). Each event is validated by
//!   [`quire_events::parse_line`] on its own text — what file ingest does with a line — and
//!   answered on its own:
//!   `accepted`, `duplicate` (its `event_id` was accepted before with a time in the same
//!   hour, within the bus's dedup window; the lake drops any repeated id) or `rejected` with
//!   the reason. Valid events and bad rows go onto the Redis event
//!   bus in one atomic step ([`quire_live::Bus::append`]); the answer is sent only after
//!   Redis has them, so an accepted event is never lost (with Redis' AOF on). The bad rows
//!   reach the lake's bad-rows store through the archiver. An optional bearer token
//!   ([`LiveServerOptions::token`]) is then required of senders.
//! - **Archiver** ([`quire_live::Archiver`]): consumer group `archiver`, writing the bus into
//!   the lake's hourly partitions exactly once in effect.
//! - **Live KPIs** ([`quire_live::LiveConsumer`]): consumer group `live`; hourly GMV and today's
//!   KPIs from the `quire-kpi` functions, written to the live store in Redis.
//! - **Dashboard** at `/`: hourly GMV of the last 24 hours (closed hours' reconciled
//!   `net_gmv`, open hours' live `gmv`, marked live), today's KPIs, the funnel, top books,
//!   search and recommendation metrics, sessions by source and device; charts by Chart.js
//!   (vendored, served by the binary); refreshed every few seconds.
//!
//! # Endpoints
//! | method, path | answer |
//! |---|---|
//! | `POST /v1/events` | `{"request_id", "accepted", "duplicates", "rejected", "results": [{"index", "event_id", "status", "reason"?}]}` |
//! | `GET /api/v1/hourly-gmv?from=YYYY-MM-DDTHH&to=YYYY-MM-DDTHH` | `[{"hour", "gmv", "net_gmv", "live"}]` (cli.md); without `from`/`to`: the 24 hours ending at the current hour |
//! | `GET /api/v1/today` | today's KPIs (`kpis`: the `quire kpis --json` daily object), top books by units and GMV |
//! | `GET /api/v1/status` | newest event time, watermark, current hour, allowed lateness, events seen |
//! | `GET /api/v1/reemitted` | the latest closed hours re-emitted by a late event or a return |
//! | `GET /api/v1/dashboard` | status, the 24 hours and today in one object (what the page reads) |
//! | `GET /` , `/assets/…` | the dashboard page, its script and Chart.js |
//! | `GET /health/live`, `/health/ready` | `200` while up; ready once Redis answers |
//! | `GET /metrics` | Prometheus: `quire_live_intake_events_total{status}`, `quire_live_intake_requests_total{status}`, `quire_live_intake_request_duration_seconds` |
//!
//! Errors are `{"error": {"code", "message"}}`: 400 `malformed_json`, `empty_batch`,
//! `batch_too_large`, `invalid_parameter`; 401 `unauthorized`; 413 `payload_too_large`;
//! 503 `bus_unavailable` (Redis failed or did not answer within 10 s: send the request again;
//! events that reached the bus before the failure are then answered `duplicate`, so a retry
//! never duplicates and never loses an event; a rejected line sent again the same UTC day is
//! answered `rejected` again but stored in the bad-rows store once).

mod api;
mod dashboard;
mod error;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quire_lake::{DimTable, Lake};
use quire_live::{
    Archiver, ArchiverOptions, Bus, BusConfig, LiveConsumer, LiveKpis, LiveOptions, LiveStore,
};
use tokio::net::TcpListener;
use tracing::info;

pub use error::{Error, Result};

/// Default [`LiveServerOptions::listen`].
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8392";
/// Default [`LiveServerOptions::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Default [`LiveServerOptions::max_body_bytes`]: 4 MiB (1,000 events take about 400 kB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
/// Default interval between recomputations of today's KPIs (the dashboard refreshes every
/// 5 s; the hourly GMV is recomputed at most every [`LiveOptions::hourly_every`] under load,
/// at once when the bus goes quiet).
pub const DEFAULT_TODAY_EVERY: Duration = Duration::from_secs(5);
/// Default allowed lateness of the watermark (`contracts/kpis.md`).
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(10 * 60);
/// Default [`quire_live::BusConfig::max_entries`].
pub const DEFAULT_BUS_MAX_ENTRIES: usize = quire_live::DEFAULT_BUS_MAX_ENTRIES;

/// How the live service runs.
#[derive(Debug, Clone)]
pub struct LiveServerOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The lake root the archiver writes and the live KPIs seed from.
    pub lake: PathBuf,
    /// Redis URL of the event bus and the live store.
    pub redis_url: String,
    /// When set, `POST /v1/events` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Most events per request.
    pub max_batch: usize,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// The watermark's allowed lateness.
    pub allowed_lateness: Duration,
    /// Leaderboard length on the dashboard.
    pub top_n: usize,
    pub bus: BusConfig,
    pub archiver: ArchiverOptions,
    pub live: LiveOptions,
    /// Run the archiver (off: another process archives; used by tests that stop and restart it).
    pub run_archiver: bool,
}

impl LiveServerOptions {
    /// Defaults for everything but the lake and Redis.
    pub fn new(lake: impl Into<PathBuf>, redis_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8392)),
            lake: lake.into(),
            redis_url: redis_url.into(),
            token: None,
            max_batch: DEFAULT_MAX_BATCH,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            top_n: 10,
            bus: BusConfig::default(),
            archiver: ArchiverOptions::default(),
            live: LiveOptions {
                today_every: DEFAULT_TODAY_EVERY,
                ..LiveOptions::default()
            },
            run_archiver: true,
        }
    }
}

/// A bound, not yet running service.
#[derive(Debug)]
pub struct LiveServer {
    listener: TcpListener,
    state: Arc<api::AppState>,
    archiver: Option<Archiver>,
    consumer: LiveConsumer,
}

impl LiveServer {
    /// Opens the lake, connects to Redis, seeds the live KPIs from the lake and binds.
    ///
    /// # Errors
    /// [`Error::Lake`], [`Error::Live`] (Redis unreachable, lake unreadable), [`Error::Bind`].
    pub async fn bind(opts: LiveServerOptions) -> Result<Self> {
        let lake = Lake::open(&opts.lake).map_err(Error::Lake)?;
        let bus = Bus::connect(&opts.redis_url, opts.bus.clone()).await?;
        let store = LiveStore::new(bus.connection());
        let dims = quire_kpi::Dims {
            books: lake.scan_dim(DimTable::Books).map_err(Error::Lake)?,
            marketing_spend: lake
                .scan_dim(DimTable::MarketingSpend)
                .map_err(Error::Lake)?,
        };
        let lateness = chrono::Duration::from_std(opts.allowed_lateness)
            .unwrap_or(chrono::Duration::minutes(10));
        let state = LiveKpis::new(Some(lake.clone()), dims, lateness, opts.top_n);
        let consumer = LiveConsumer::start(
            bus.clone(),
            store.clone(),
            state,
            lateness,
            opts.live.clone(),
        )
        .await?;
        let archiver = if opts.run_archiver {
            Some(Archiver::new(bus.clone(), lake, opts.archiver.clone()).await?)
        } else {
            None
        };
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let state = Arc::new(api::AppState::new(&opts, bus, store));
        Ok(Self {
            listener,
            state,
            archiver,
            consumer,
        })
    }

    /// The address the service listens on.
    ///
    /// # Errors
    /// [`Error::Serve`] if the socket cannot tell.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` completes, then stops taking requests, lets those in flight
    /// finish (for at most [`quire_http::DEFAULT_DRAIN`]), stops the archiver and the live
    /// KPIs (an archiver batch being written is finished and acknowledged, or left pending for
    /// the next start) and returns.
    ///
    /// # Errors
    /// [`Error::Serve`] if the socket cannot tell its address.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let archiver = self.archiver.map(|a| tokio::spawn(a.run(stopped.clone())));
        let consumer = tokio::spawn(self.consumer.run(stopped));
        info!(%addr, "live service listening: dashboard at http://{addr}/");
        quire_http::serve(self.listener, api::router(self.state), shutdown).await;
        let _ = stop.send(true);
        if let Some(a) = archiver
            && let Err(e) = a.await
        {
            tracing::error!(error = %e, "the archiver task failed");
        }
        if let Err(e) = consumer.await {
            tracing::error!(error = %e, "the live KPIs task failed");
        }
        info!(%addr, "live service stopped");
        Ok(())
    }
}

/// Binds, then serves until `shutdown` completes.
///
/// # Errors
/// Those of [`LiveServer::bind`] and [`LiveServer::run`].
pub async fn serve(
    opts: LiveServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    LiveServer::bind(opts).await?.run(shutdown).await
}
