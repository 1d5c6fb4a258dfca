//! The live path of Quire (Kappa): events arrive over HTTP, go onto a Redis Streams event
//! bus, and two consumer groups read the bus — the archiver, which writes them into the lake,
//! and the live KPIs, which keep the open hour and today current with the same KPI functions
//! as the replay (`quire-kpi`).
//!
//! - [`Bus`]: the event stream and the bad-rows stream. [`Bus::append`] adds validated events
//!   (deduplicated by `event_id` within [`BusConfig::dedup_ttl`]) and bad rows in one atomic
//!   server-side script, so an event the intake acknowledged is on the bus. Events travel
//!   decoded ([`quire_events::Event`] in MessagePack): the intake is the only JSON parser.
//! - [`Archiver`]: consumer group `archiver`; writes batches with its long-lived
//!   [`quire_lake::Writer`] (the lake's `event_id` dedup with the id index kept across
//!   commits, manifest commit and writer lock) and acknowledges them only
//!   after the commit; on start it first re-reads its own pending entries, and it claims those
//!   of a dead archiver after [`ArchiverOptions::claim_idle`]. Exactly once in effect.
//! - [`LiveKpis`]: the in-memory state of the live KPIs (events of the window, the watermark,
//!   the hours already emitted); [`LiveConsumer`] feeds it from consumer group `live` and
//!   writes what it computes to the [`LiveStore`] (Redis), which the dashboard reads.
//!
//! Architecture Invariant: the live figures come from `quire_kpi::hourly_gmv` and
//! `quire_kpi::build_models`/`kpi_report_from_models` — no KPI is computed here.
//! Architecture Invariant: only the archiver writes the lake; the intake never does.

mod archiver;
mod bus;
mod consumer;
mod state;
mod store;

pub use archiver::{Archiver, ArchiverOptions, BatchReport, Delivery};
pub use bus::{Appended, Bus, BusConfig, IncomingBadRow};
pub use consumer::{LiveConsumer, LiveOptions};
pub use state::{HourFigure, LiveKpis, Reemission, TodayKpis, hour_key};
pub use store::{LiveStatus, LiveStore};

/// Errors of the live path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Redis command failed (connection lost, server error).
    #[error("redis ({what}): {source}")]
    Redis {
        what: String,
        #[source]
        source: redis::RedisError,
    },
    /// Reading or writing the lake failed.
    #[error("lake: {0}")]
    Lake(#[from] quire_lake::Error),
    /// A KPI computation failed.
    #[error("kpis: {0}")]
    Kpi(#[from] quire_kpi::Error),
    /// A Polars operation of the live state failed.
    #[error("live state: {0}")]
    Polars(#[from] polars::prelude::PolarsError),
    /// A value in the live store is not what this code writes.
    #[error("live store key {key}: {reason}")]
    Store { key: String, reason: String },
    /// A blocking task panicked or was cancelled.
    #[error("{0}")]
    Task(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) trait RedisAt<T> {
    fn at(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> RedisAt<T> for redis::RedisResult<T> {
    fn at(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Redis {
            what: what(),
            source,
        })
    }
}

/// Runs CPU or file work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(format!("blocking task failed: {e}")))?
}
