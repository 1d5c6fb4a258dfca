//! The live path of Quire (Kappa): events arrive over HTTP, go onto a Redis Streams event
//! bus, and two consumer groups read the bus — the archiver, which writes them into the lake,
//! and the live KPIs, which keep the open hour and today current with the same KPI functions
//! as the replay (`quire-kpi`).
//!
//! - [`Bus`]: the event stream and the bad-rows stream. [`Bus::append`] adds validated events
//!   (deduplicated by `event_id` among the events of the same hour, for
//!   [`BusConfig::dedup_ttl`]) and bad rows in one atomic server-side script, so an event the
//!   intake acknowledged is on the bus. Events travel decoded ([`quire_events::Event`] in
//!   MessagePack): the intake is the only JSON parser.
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
pub use bus::{Appended, Bus, BusConfig, DEFAULT_BUS_MAX_ENTRIES, IncomingBadRow};
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

/// Runs work like [`blocking`], with its Polars work kept on that one thread instead of Polars'
/// thread pool: the latency-critical work (applying bus entries, recomputing the changed
/// hours), and the archiver's writes, which would otherwise fill the pool. A busy pool makes
/// small queries wait: rayon runs a worker's own queued tasks before injected ones (one hourly
/// recomputation took 907 ms instead of 25–130 ms behind today's KPIs, when they used the
/// pool). On their own threads, the OS shares the cores between them.
pub(crate) async fn blocking_off_pool<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    blocking(move || {
        let _pool = OffPolarsPool::enter();
        f()
    })
    .await
}

/// The OS priority of [`background`] work: about nice 10 (`thread-priority` maps 22 of its
/// 0–99 scale to niceness 10), a tenth of a nice-0 thread's share of a busy core.
const BACKGROUND_PRIORITY: u8 = 22;

/// Runs background work (today's KPIs: the whole day's model, seconds of CPU on a busy day)
/// on a new thread of its own at a lower OS priority, with its Polars work kept on that
/// thread: under load the intake, the archiver and the hourly GMV get the cores first, and
/// today's figures take what they leave. (Polars' pool, shared by the process, cannot be
/// lowered for one computation, and a blocking-pool thread would keep the priority for the
/// tasks after it.)
pub(crate) async fn background<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("quire-live-today".to_owned())
        .spawn(move || {
            let lowered = thread_priority::ThreadPriorityValue::try_from(BACKGROUND_PRIORITY)
                .map_err(|e| e.to_owned())
                .and_then(|p| {
                    thread_priority::ThreadPriority::Crossplatform(p)
                        .set_for_current()
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = lowered {
                tracing::debug!(error = %e, "live: background work runs at normal priority");
            }
            let _pool = OffPolarsPool::enter();
            // The receiver is gone only when the caller stopped waiting.
            let _ = tx.send(f());
        })
        .map_err(|e| Error::Task(format!("starting a background thread: {e}")))?;
    rx.await
        .map_err(|_| Error::Task("a background task panicked".to_owned()))?
}

/// While alive, Polars runs this thread's work on this thread (its single-thread pool, the one
/// its streaming engine uses for its own workers). Restores the previous setting when dropped:
/// tokio's blocking threads also run work that should use the pool.
struct OffPolarsPool(bool);

impl OffPolarsPool {
    fn enter() -> Self {
        Self(polars_async::executor::ALLOW_RAYON_THREADS.replace(false))
    }
}

impl Drop for OffPolarsPool {
    fn drop(&mut self) {
        polars_async::executor::ALLOW_RAYON_THREADS.set(self.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, mpsc};
    use std::time::Duration;

    use polars::prelude::*;
    use polars_core::runtime::THREAD_POOL;

    use super::{OffPolarsPool, background};

    /// A group-by of 200,000 rows, sent on `done` when finished.
    fn group_by_on_new_thread(off_pool: bool) -> mpsc::Receiver<PolarsResult<DataFrame>> {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _pool = off_pool.then(OffPolarsPool::enter);
            let df = df!(
                "k" => (0..200_000i64).map(|i| i % 97).collect::<Vec<_>>(),
                "v" => (0..200_000i64).map(|i| i as f64).collect::<Vec<_>>(),
            );
            let out = df.and_then(|df| {
                df.lazy()
                    .group_by([col("k")])
                    .agg([col("v").sum()])
                    .collect()
            });
            let _ = done.send(out);
        });
        finished
    }

    #[test]
    fn off_pool_work_finishes_while_polars_pool_is_busy() {
        // Hold every thread of Polars' pool until released.
        let threads = THREAD_POOL.current_num_threads();
        let started = Arc::new(Barrier::new(threads + 1));
        let (release, held) = mpsc::channel::<()>();
        let held = Arc::new(std::sync::Mutex::new(held));
        for _ in 0..threads {
            let (started, held) = (started.clone(), held.clone());
            THREAD_POOL.spawn(move || {
                started.wait();
                let _ = held.lock().map(|h| h.recv());
            });
        }
        started.wait();
        // On the pool, the query waits for it (so the check below is not vacuous).
        let pooled = group_by_on_new_thread(false);
        assert!(pooled.recv_timeout(Duration::from_millis(300)).is_err());
        // Off the pool, it runs on its own thread.
        let own = group_by_on_new_thread(true)
            .recv_timeout(Duration::from_secs(30))
            .expect("off-pool query finished")
            .unwrap();
        assert_eq!(own.height(), 97);
        for _ in 0..threads {
            release.send(()).unwrap();
        }
        let pooled = pooled
            .recv_timeout(Duration::from_secs(30))
            .unwrap()
            .unwrap();
        let sorted = |df: DataFrame| df.sort(["k"], Default::default()).unwrap();
        assert_eq!(sorted(pooled), sorted(own));
    }

    #[test]
    fn off_pool_guard_restores_the_setting() {
        let allowed = || polars_async::executor::ALLOW_RAYON_THREADS.get();
        assert!(allowed());
        {
            let _outer = OffPolarsPool::enter();
            assert!(!allowed());
            {
                let _inner = OffPolarsPool::enter();
            }
            assert!(!allowed());
        }
        assert!(allowed());
    }

    /// The niceness of the calling thread (field 19 of `/proc/thread-self/stat`).
    fn niceness() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) may hold spaces: count from the `)` that ends it.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        after.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn background_work_runs_on_its_own_thread_below_normal_priority() {
        let caller = (std::thread::current().id(), niceness());
        let (id, name, nice, allowed) = background(|| {
            Ok((
                std::thread::current().id(),
                std::thread::current().name().map(str::to_owned),
                niceness(),
                polars_async::executor::ALLOW_RAYON_THREADS.get(),
            ))
        })
        .await
        .unwrap();
        assert_ne!(id, caller.0);
        assert_eq!(name.as_deref(), Some("quire-live-today"));
        // Nice 10 (a caller already at a lower priority may keep its own).
        assert!(nice >= 10, "nice {nice}, caller at {}", caller.1);
        assert!(!allowed, "the work must stay off Polars' pool");
        // The caller's own thread keeps its priority.
        assert_eq!(niceness(), caller.1);
        let err = background(|| -> crate::Result<()> { panic!("boom") }).await;
        assert!(matches!(err, Err(crate::Error::Task(_))), "{err:?}");
    }
}
