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

use std::panic::AssertUnwindSafe;

use tokio::sync::oneshot;
use tracing::error;

type Job = Box<dyn FnOnce() + Send>;

/// The threads and the channel that feeds them; the threads end when this is dropped and the
/// jobs already sent are done.
#[derive(Debug)]
pub(crate) struct ScoringPool {
    jobs: crossbeam_channel::Sender<Job>,
}

/// The work panicked (its thread lives on).
#[derive(Debug)]
pub(crate) struct Panicked;

impl ScoringPool {
    /// `threads` scoring threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("quire-scoring-{i}"))
                .spawn(move || {
                    for job in queue {
                        // A panicking request fails alone (its answer's sender is dropped, the
                        // caller sees `Panicked`); the thread serves the next one.
                        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                            error!("a scoring job panicked");
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Queues `work` for a scoring thread now; the future gives its result.
    pub fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T, Panicked>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that has gone (the client hung up or timed out while the job waited)
            // wants no answer: skip its work, which would only delay the requests behind it.
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(work());
        });
        // The receiving threads live as long as the pool, so sending cannot fail; if it did,
        // the job (and its answer's sender) is dropped and the caller sees `Panicked`.
        let _ = self.jobs.send(job);
        async { rx.await.map_err(|_| Panicked) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_off_the_runtime_and_survives_a_panic() {
        let pool = ScoringPool::new(2).unwrap();
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("quire-scoring-"));
        assert!(pool.run(|| -> u32 { panic!("boom") }).await.is_err());
        // More jobs than threads, queued at once, all run, on both threads.
        let pending: Vec<_> = (0..8)
            .map(|i| {
                pool.run(move || {
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
        let pool = ScoringPool::new(1).unwrap();
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // The one thread is busy while the next job waits; its caller gives up meanwhile.
        let busy = pool.run(|| std::thread::sleep(std::time::Duration::from_millis(50)));
        let flag = ran.clone();
        drop(pool.run(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)));
        busy.await.unwrap();
        pool.run(|| ()).await.unwrap();
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
        // A caller that waits gets its work done.
        let flag = ran.clone();
        pool.run(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
            .await
            .unwrap();
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
