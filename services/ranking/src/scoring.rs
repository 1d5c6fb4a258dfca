//! The scoring threads: a few dedicated OS threads (one per ONNX Runtime session) fed by one
//! channel, on which every `/v1` request's CPU work runs — parsing, features, the ONNX call,
//! sorting, the answer's JSON — never on the async runtime.
//!
//! Rather than tokio's `spawn_blocking` behind a semaphore of one permit per session: with a
//! semaphore a scoring thread sits idle, after each request, for the hops that hand its permit
//! to the next waiting task and that task's work to a thread; here the next request waits in the
//! channel and the thread takes it as soon as it is done. Measured on 2 cores (ranking
//! benchmark's world, 3 threads or permits, 5 alternating runs each): 2,327 against 1,989 req/s
//! saturated (medians), and at 1,000 req/s p50 0.955 against 0.970 ms, p99 2.35 against 2.57 ms.
//! The queue is not bounded here: each waiting request already holds its body (at most
//! `max_body_bytes`) and a connection, one request per connection at a time.
//!
//! A request's rows can be split with an idle scoring thread ([`Helpers::join`]): while fewer
//! threads score than the machine has cores, the second half of a large batch is offered to the
//! idle threads, which take such offers before new requests. An offer no thread has taken when
//! the first half is done is withdrawn and scored by the request's own thread, so a split never
//! waits for a thread that is not already working on it. Under saturation every thread is busy
//! and nothing is split.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::oneshot;
use tracing::error;

use crate::metrics::{Metrics, SplitLabels};

type Job = Box<dyn FnOnce() + Send>;

/// The threads and the channel that feeds them; the threads end when this is dropped and the
/// jobs already sent are done.
#[derive(Debug)]
pub(crate) struct ScoringPool {
    jobs: Sender<Job>,
    helpers: Helpers,
    /// Each job's wait for a thread.
    queue: Histogram,
}

/// The work panicked (its thread lives on).
#[derive(Debug)]
pub(crate) struct Panicked;

impl ScoringPool {
    /// `threads` scoring threads (at least one). A batch of at least `split_min_rows` rows (0:
    /// never) is split while fewer than `cores` threads score (see [`Helpers::join`]). Counts
    /// into `metrics`' queue wait and split batches.
    pub fn new(
        threads: usize,
        cores: usize,
        split_min_rows: usize,
        metrics: &Metrics,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        let (offers, offered) = crossbeam_channel::unbounded::<Job>();
        let threads = threads.max(1);
        // One statement each: `get_or_create` holds the family's lock until the statement
        // ends, and creating the second counter needs it for writing.
        let helped = metrics
            .splits
            .get_or_create(&SplitLabels { outcome: "helped" })
            .clone();
        let withdrawn = metrics
            .splits
            .get_or_create(&SplitLabels {
                outcome: "withdrawn",
            })
            .clone();
        let helpers = Helpers {
            waiting: queue.clone(),
            offers,
            idle: Arc::new(AtomicUsize::new(0)),
            threads,
            cores: cores.max(1),
            split_min_rows,
            helped,
            withdrawn,
        };
        for i in 0..threads {
            let (queue, offered, idle) = (queue.clone(), offered.clone(), helpers.idle.clone());
            std::thread::Builder::new()
                .name(format!("quire-scoring-{i}"))
                .spawn(move || serve_jobs(&queue, &offered, &idle))?;
        }
        Ok(Self {
            jobs,
            helpers,
            queue: metrics.queue.clone(),
        })
    }

    /// Queues `work` for a scoring thread now; the future gives its result. `work` gets the
    /// pool's [`Helpers`] to split its batch with.
    pub fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T, Panicked>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Helpers) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let helpers = self.helpers.clone();
        let (queue, queued) = (self.queue.clone(), std::time::Instant::now());
        let job: Job = Box::new(move || {
            // Every wait counts, a caller's that has gone too: the longest are theirs.
            queue.observe(queued.elapsed().as_secs_f64());
            // A caller that has gone (the client hung up or timed out while the job waited)
            // wants no answer: skip its work, which would only delay the requests behind it.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(work(&helpers));
        });
        // The receiving threads live as long as the pool, so sending cannot fail; if it did,
        // the job (and its answer's sender) is dropped and the caller sees `Panicked`.
        let _ = self.jobs.send(job);
        async { rx.await.map_err(|_| Panicked) }
    }
}

/// A scoring thread's loop: offers of split work first, then requests, until the pool is
/// dropped.
fn serve_jobs(queue: &Receiver<Job>, offered: &Receiver<Job>, idle: &AtomicUsize) {
    loop {
        idle.fetch_add(1, Ordering::SeqCst);
        let job = crossbeam_channel::select_biased! {
            recv(offered) -> job => job,
            recv(queue) -> job => job,
        };
        idle.fetch_sub(1, Ordering::SeqCst);
        let Ok(job) = job else { return };
        // A panicking request fails alone (its answer's sender is dropped, the caller sees
        // `Panicked`); the thread serves the next one.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            error!("a scoring job panicked");
        }
    }
}

/// The idle scoring threads, as a job running on a scoring thread sees them.
#[derive(Debug, Clone)]
pub(crate) struct Helpers {
    /// The requests' queue, to see whether any waits.
    waiting: Receiver<Job>,
    offers: Sender<Job>,
    /// Scoring threads waiting for work.
    idle: Arc<AtomicUsize>,
    threads: usize,
    cores: usize,
    split_min_rows: usize,
    /// Splits whose second half an idle thread scored, and those it did not take in time.
    helped: Counter,
    withdrawn: Counter,
}

impl Helpers {
    /// Whether a batch of `rows` rows is worth splitting now: it is large enough (at least
    /// `split_min_rows`, and two rows: a half of none would be an empty call), no request
    /// waits for a thread, and an idle thread could take half without the threads scoring
    /// outnumbering the cores (the caller's thread is one of those scoring).
    pub fn should_split(&self, rows: usize) -> bool {
        let busy = self
            .threads
            .saturating_sub(self.idle.load(Ordering::SeqCst));
        self.split_min_rows > 0
            && rows >= self.split_min_rows.max(2)
            && busy < self.threads
            && busy < self.cores
            && self.waiting.is_empty()
    }

    /// Runs `here` on this thread and offers `there` to the idle scoring threads; `there` runs
    /// on this thread after `here` if no thread took it by then. Returns both results. Worth
    /// calling when [`Self::should_split`] says so (it is correct whenever).
    ///
    /// Written here rather than with `rayon::join`: a rayon thread waiting for the stolen half
    /// runs other queued work meanwhile (here, whole requests), delaying its own answer by as
    /// much; this join only ever waits for a half already being scored.
    pub fn join<A, B>(
        &self,
        here: impl FnOnce() -> A,
        there: impl FnOnce() -> B + Send + 'static,
    ) -> (A, B)
    where
        B: Send + 'static,
    {
        // Whoever takes `there` out of the slot first runs it: an idle thread, or this one
        // after `here`.
        let slot = Arc::new(Mutex::new(Some(there)));
        let (done, result) = crossbeam_channel::bounded(1);
        let offered = slot.clone();
        let offer: Job = Box::new(move || {
            let taken = offered
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(there) = taken {
                let _ = done.send(std::panic::catch_unwind(AssertUnwindSafe(there)));
            }
        });
        // Cannot fail while this pool's threads run; an offer never taken is run below.
        let _ = self.offers.send(offer);
        let withdraw = || slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        let a = match std::panic::catch_unwind(AssertUnwindSafe(here)) {
            Ok(a) => a,
            Err(panic) => {
                // This request fails: no thread should score its other half any more.
                drop(withdraw());
                std::panic::resume_unwind(panic)
            }
        };
        let withdrawn = withdraw();
        if withdrawn.is_some() {
            &self.withdrawn
        } else {
            &self.helped
        }
        .inc();
        let b = match withdrawn {
            Some(there) => there(),
            // Taken: the helper sends its result, or its panic, which fails this job too.
            None => match result.recv() {
                Ok(Ok(b)) => b,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                Err(_) => panic!("a scoring thread took split work and gave no result"),
            },
        };
        (a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_off_the_runtime_and_survives_a_panic() {
        let pool = ScoringPool::new(2, 2, 0, &Metrics::new()).unwrap();
        let name = pool
            .run(|_| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("quire-scoring-"));
        assert!(pool.run(|_| -> u32 { panic!("boom") }).await.is_err());
        // More jobs than threads, queued at once, all run, on both threads.
        let pending: Vec<_> = (0..8)
            .map(|i| {
                pool.run(move |_| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    (i, std::thread::current().name().map(str::to_owned))
                })
            })
            .collect();
        let mut threads = std::collections::BTreeSet::new();
        for (i, p) in pending.into_iter().enumerate() {
            let (j, name) = p.await.unwrap();
            assert_eq!(i, j);
            threads.insert(name);
        }
        assert_eq!(threads.len(), 2);
    }

    #[tokio::test]
    async fn the_work_of_a_caller_that_has_gone_is_skipped() {
        let metrics = Metrics::new();
        let pool = ScoringPool::new(1, 1, 0, &metrics).unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The one thread is busy while the next job waits; its caller gives up meanwhile.
        let busy = pool.run(|_| std::thread::sleep(std::time::Duration::from_millis(50)));
        let flag = ran.clone();
        drop(pool.run(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst)));
        busy.await.unwrap();
        pool.run(|_| ()).await.unwrap();
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        // A caller that waits gets its work done.
        let flag = ran.clone();
        pool.run(move |_| flag.store(true, std::sync::atomic::Ordering::SeqCst))
            .await
            .unwrap();
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        // The skipped job's wait counts too.
        assert_eq!(queue_wait(&metrics).0, 4.0);
    }

    /// The queue-wait histogram's count and sum (seconds).
    fn queue_wait(metrics: &Metrics) -> (f64, f64) {
        let text = metrics.encode().unwrap();
        let value = |series: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        };
        (
            value("quire_ranking_queue_duration_seconds_count"),
            value("quire_ranking_queue_duration_seconds_sum"),
        )
    }

    #[tokio::test]
    async fn a_job_counts_its_wait_for_a_thread() {
        let metrics = Metrics::new();
        let pool = ScoringPool::new(1, 1, 0, &metrics).unwrap();
        // The one thread is held until the second job has waited 50 ms behind it.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = pool.run(move |_| held.recv().unwrap());
        let behind = pool.run(|_| ());
        std::thread::sleep(std::time::Duration::from_millis(50));
        release.send(()).unwrap();
        busy.await.unwrap();
        behind.await.unwrap();
        let (count, sum) = queue_wait(&metrics);
        assert_eq!(count, 2.0);
        assert!(sum >= 0.05, "{sum}");
    }

    fn name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    fn count(metrics: &Metrics, outcome: &'static str) -> u64 {
        metrics.splits.get_or_create(&SplitLabels { outcome }).get()
    }

    /// Waits (at most 10 s) until `n` of the pool's threads wait for work.
    fn until_idle(helpers: &Helpers, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while helpers.idle.load(Ordering::SeqCst) != n {
            assert!(
                std::time::Instant::now() < deadline,
                "{n} threads never idle"
            );
            std::thread::yield_now();
        }
    }

    /// `helpers.join` of `there` with a first half that ends only once `there` has started on
    /// another thread (waiting at most 10 s), so the offer is surely taken; the first half
    /// gives its thread's name.
    fn join_taken<B: Send + 'static>(
        helpers: &Helpers,
        there: impl FnOnce() -> B + Send + 'static,
    ) -> (String, B) {
        until_idle(helpers, 1);
        let (started, seen) = std::sync::mpsc::channel();
        helpers.join(
            move || {
                seen.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("the offer was taken");
                name()
            },
            move || {
                started.send(()).unwrap();
                there()
            },
        )
    }

    #[tokio::test]
    async fn an_idle_thread_takes_the_offered_half() {
        let metrics = Metrics::new();
        let pool = ScoringPool::new(2, 2, 1, &metrics).unwrap();
        let (here, there) = pool.run(|h| join_taken(h, name)).await.unwrap();
        assert_ne!(here, there);
        assert!(there.starts_with("quire-scoring-"));
        assert_eq!(
            (count(&metrics, "helped"), count(&metrics, "withdrawn")),
            (1, 0)
        );
    }

    #[tokio::test]
    async fn an_offer_no_thread_takes_is_run_by_its_own_thread() {
        let metrics = Metrics::new();
        // One thread: the caller's own, so nobody else can take the offer.
        let pool = ScoringPool::new(1, 2, 1, &metrics).unwrap();
        let (here, there) = pool
            .run(|helpers| {
                assert!(!helpers.should_split(100), "no thread is idle");
                helpers.join(|| (name(), 1), || (name(), 2))
            })
            .await
            .unwrap();
        assert_eq!(here.0, there.0);
        assert_eq!((here.1, there.1), (1, 2));
        assert_eq!(
            (count(&metrics, "helped"), count(&metrics, "withdrawn")),
            (0, 1)
        );
        // The withdrawn offer, still queued, finds its work gone: the thread serves on.
        assert_eq!(pool.run(|_| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_half_that_panics_on_the_helper_fails_its_request_alone() {
        let metrics = Metrics::new();
        let pool = ScoringPool::new(2, 2, 1, &metrics).unwrap();
        let failed = pool
            .run(|h| join_taken(h, || -> u32 { panic!("boom") }))
            .await;
        assert!(failed.is_err());
        assert_eq!(count(&metrics, "helped"), 1);
        assert_eq!(pool.run(|_| 7).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_first_half_that_panics_withdraws_the_second() {
        // One thread: the offer stays queued until the failed job is over.
        let pool = ScoringPool::new(1, 2, 1, &Metrics::new()).unwrap();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        let failed = pool
            .run(move |helpers| {
                helpers.join(
                    || -> u32 { panic!("boom") },
                    move || flag.store(true, Ordering::SeqCst),
                )
            })
            .await;
        assert!(failed.is_err());
        // The thread took the stale offer before this job, and found nothing to run.
        assert_eq!(pool.run(|_| 7).await.unwrap(), 7);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn batches_are_split_only_when_large_and_a_core_is_free() {
        /// `should_split(rows)`, asked by a job once `idle` other threads wait.
        async fn asked(pool: &ScoringPool, idle: usize, rows: usize) -> bool {
            pool.run(move |helpers| {
                until_idle(helpers, idle);
                helpers.should_split(rows)
            })
            .await
            .unwrap()
        }
        let pool = ScoringPool::new(3, 2, 10, &Metrics::new()).unwrap();
        assert!(asked(&pool, 2, 10).await);
        assert!(!asked(&pool, 2, 9).await);
        // A second thread busy: two threads scoring on two cores, no room for a helper.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = pool.run(move |_| hold.recv_timeout(std::time::Duration::from_secs(10)));
        let crowded = asked(&pool, 1, 100).await;
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert!(!crowded);
        // Splitting turned off.
        let off = ScoringPool::new(3, 2, 0, &Metrics::new()).unwrap();
        assert!(!asked(&off, 2, 1000).await);
    }
}
