//! The live KPIs' consumer: consumer group `live` feeding [`LiveKpis`] and the live store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::streams::{StreamReadOptions, StreamReadReply};
use tracing::{debug, info, warn};

use crate::bus::Entry;
use crate::state::TodayInput;
use crate::{
    Bus, Error, LiveKpis, LiveStatus, LiveStore, RedisAt, Result, blocking, blocking_off_pool,
};

/// How the live consumer reads and recomputes.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub group: String,
    pub consumer: String,
    /// Most entries taken per step (an entry holds one request's events).
    pub batch_max: usize,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// Today's KPIs (the whole KPI model over the window) are recomputed at most this often.
    pub today_every: Duration,
    /// While events keep arriving, the hourly GMV is recomputed at most this often (at once
    /// when the bus goes quiet): under load the events of many reads share one
    /// recomputation, and an accepted order shows within about this long plus one
    /// computation.
    pub hourly_every: Duration,
    /// ... and at least this many times its typical computation's CPU time (the median of the
    /// last three) after the last one ended, so a recomputation that grew expensive takes
    /// about 1/(1+N) of a core at most. CPU time, not wall time, is what that bound is about:
    /// while other work keeps the cores busy (Redis rewriting its AOF), a computation's wall
    /// time stretches, and pacing by it delayed the live figure by up to a second.
    pub hourly_backoff: u32,
    /// Today's KPIs likewise, on top of [`Self::today_every`], by the median of their last
    /// three wall times (they run at a low priority, so their wall time stretches when the
    /// cores are wanted elsewhere, and they wait the longer): the whole KPI model over the
    /// window grows with the day's events, and under load it must not crowd out the intake.
    pub today_backoff: u32,
}

impl Default for LiveOptions {
    fn default() -> Self {
        Self {
            group: "live".to_owned(),
            consumer: "live-1".to_owned(),
            batch_max: 500,
            block: Duration::from_millis(100),
            today_every: Duration::from_secs(2),
            hourly_every: Duration::from_millis(250),
            hourly_backoff: 4,
            today_backoff: 9,
        }
    }
}

/// The cost a pacing rule goes by: the median of the last three computations, so one
/// computation slowed by a stall does not hold back the next ones (multiplied by the backoff,
/// a 260 ms blip among 30 ms computations delayed the next by a second), while a computation
/// that grew expensive shows from its second time.
#[derive(Debug, Default)]
struct RecentCost {
    last: [Duration; 3],
    recorded: usize,
}

impl RecentCost {
    fn record(&mut self, took: Duration) {
        self.last[self.recorded % 3] = took;
        self.recorded += 1;
    }

    fn typical(&self) -> Duration {
        let mut d = self.last;
        d.sort_unstable();
        d[1]
    }
}

/// A step (read, apply, acknowledge) slower than this is logged with its parts (debug).
const SLOW_STEP: Duration = Duration::from_millis(200);

/// CPU time this thread has used.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// Feeds the live KPIs from the bus and publishes them.
pub struct LiveConsumer {
    bus: Bus,
    store: LiveStore,
    state: Arc<Mutex<LiveKpis>>,
    opts: LiveOptions,
    lateness: chrono::Duration,
}

impl std::fmt::Debug for LiveConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConsumer")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<LiveKpis>) -> Result<std::sync::MutexGuard<'_, LiveKpis>> {
    state
        .lock()
        .map_err(|_| Error::Task("the live state's lock is poisoned".to_owned()))
}

impl LiveConsumer {
    /// Rewinds consumer group `live` to the start of the retained stream, then seeds `state`
    /// from the lake (blocking pool): the events not yet in the lake are read again, repeats
    /// of lake rows are removed by the KPI staging's dedup. Rewinding first keeps the bus from
    /// trimming, while the lake is read, an entry the archiver writes meanwhile.
    pub async fn start(
        bus: Bus,
        store: LiveStore,
        mut state: LiveKpis,
        lateness: chrono::Duration,
        opts: LiveOptions,
    ) -> Result<Self> {
        bus.ensure_group(&opts.group, "0", false).await?;
        let mut con = bus.connection();
        let stream = bus.config().events_stream.clone();
        let _: () = redis::cmd("XGROUP")
            .arg("SETID")
            .arg(&stream)
            .arg(&opts.group)
            .arg("0")
            .query_async(&mut con)
            .await
            .at(|| format!("rewinding group {} of {stream}", opts.group))?;
        let state = blocking(move || {
            state.seed()?;
            Ok(state)
        })
        .await?;
        let consumer = Self {
            bus,
            store,
            state: Arc::new(Mutex::new(state)),
            opts,
            lateness,
        };
        // Publish what the lake gave, so the dashboard has the closed hours at once.
        consumer.recompute_hourly().await?;
        Ok(consumer)
    }

    /// Recomputes the hours and publishes what changed; gives the computation's CPU time.
    async fn recompute_hourly(&self) -> Result<Duration> {
        let state = self.state.clone();
        let lateness = self.lateness;
        let (hours, removed, reemitted, status, cpu) = blocking_off_pool(move || {
            let started = thread_cpu_time();
            let mut s = lock(&state)?;
            let (hours, reemitted) = s.hourly()?;
            let removed = s.take_removed();
            let status = LiveStatus::new(s.max_event_time(), lateness, s.events_seen());
            Ok((
                hours,
                removed,
                reemitted,
                status,
                thread_cpu_time().saturating_sub(started),
            ))
        })
        .await?;
        for r in &reemitted {
            info!(hour = %r.hour, reason = %r.reason, event_id = %r.event_id, net_gmv = r.net_gmv, "live: closed hour re-emitted");
        }
        self.store
            .publish(&hours, &removed, &reemitted, &status)
            .await?;
        Ok(cpu)
    }

    /// Reads (waiting up to `wait` for new entries), applies and acknowledges one batch;
    /// `Ok(false)` when nothing arrived. With `pending`, re-reads the entries delivered to this
    /// consumer and not acknowledged (after a failed step) instead of new ones.
    async fn step(
        &self,
        con: &mut redis::aio::ConnectionManager,
        pending: bool,
        wait: Duration,
    ) -> Result<bool> {
        let stream = self.bus.config().events_stream.clone();
        let mut opts = StreamReadOptions::default()
            .group(&self.opts.group, &self.opts.consumer)
            .count(self.opts.batch_max);
        // `BLOCK 0` would wait forever: a read that must not wait leaves it out. A wait under a
        // millisecond rounds up, so a read never spins on a gap Redis cannot express.
        let wait_ms = usize::try_from(wait.as_micros().div_ceil(1000)).unwrap_or(usize::MAX);
        if !pending && wait_ms > 0 {
            opts = opts.block(wait_ms);
        }
        let started = std::time::Instant::now();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg(&opts)
            .arg("STREAMS")
            .arg(&stream)
            .arg(if pending { "0" } else { ">" })
            .query_async(con)
            .await
            .at(|| format!("reading {stream} as {}", self.opts.consumer))?;
        let entries: Vec<redis::streams::StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if entries.is_empty() {
            return Ok(false);
        }
        let read = started.elapsed();
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let entries: Vec<Entry> = entries.iter().map(Entry::of).collect();
        let state = self.state.clone();
        blocking_off_pool(move || {
            let mut events = Vec::new();
            for decoded in entries.into_iter().flat_map(Entry::decode) {
                match decoded {
                    Ok(e) => events.push(e),
                    // The archiver stores such a field as a bad row; the KPIs skip it.
                    Err(not) => debug!(entry = %not.at, reason = %not.reason, "live: entry field without an event skipped"),
                }
            }
            lock(&state)?.add(events)
        })
        .await?;
        let applied = started.elapsed();
        // The state has them: a restart rebuilds it from the lake and the retained stream.
        let _: i64 = redis::cmd("XACK")
            .arg(&stream)
            .arg(&self.opts.group)
            .arg(&ids)
            .query_async(con)
            .await
            .at(|| format!("acknowledging {} entries of {stream}", ids.len()))?;
        let took = started.elapsed();
        if took > SLOW_STEP {
            // `read_ms` includes waiting for entries to arrive (up to the read's wait).
            debug!(
                entries = ids.len(),
                read_ms = read.as_millis() as u64,
                apply_ms = (applied - read).as_millis() as u64,
                ack_ms = (took - applied).as_millis() as u64,
                "live: slow step"
            );
        }
        Ok(true)
    }

    fn today_input(&self) -> Result<Option<TodayInput>> {
        let mut s = lock(&self.state)?;
        Ok(if s.today_is_dirty() {
            s.today_input()
        } else {
            None
        })
    }

    /// Runs until `stop` turns true. Today's KPIs are computed beside the reads, one
    /// computation at a time, at most every [`LiveOptions::today_every`].
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut con = match self.bus.consumer_connection(self.opts.block).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "live: cannot open the consumer connection");
                return;
            }
        };
        let mut today_task: Option<tokio::task::JoinHandle<Result<crate::TodayKpis>>> = None;
        // When the last computation of today's KPIs ended and how long they take: the next
        // starts `today_every` after, or later when they are expensive (`today_backoff`).
        let mut last_today = tokio::time::Instant::now() - self.opts.today_every;
        let mut today_started = tokio::time::Instant::now();
        let mut today_cost = RecentCost::default();
        let mut backoff = Duration::from_millis(100);
        let mut pending = false;
        let mut dirty = false;
        let mut last_hourly = tokio::time::Instant::now();
        let mut hourly_cost = RecentCost::default();
        while !*stop.borrow() {
            if let Some(t) = &today_task
                && t.is_finished()
                && let Some(t) = today_task.take()
            {
                last_today = tokio::time::Instant::now();
                let today_took = last_today - today_started;
                today_cost.record(today_took);
                debug!(
                    took_ms = today_took.as_millis() as u64,
                    "live: today's KPIs computed"
                );
                match t.await {
                    Ok(Ok(today)) => {
                        if let Err(e) = self.store.publish_today(&today).await {
                            warn!(error = %e, "live: publishing today's KPIs failed");
                        }
                    }
                    Ok(Err(e)) => warn!(error = %e, "live: computing today's KPIs failed"),
                    Err(e) => warn!(error = %e, "live: today's KPIs task failed"),
                }
            }
            let today_due = self
                .opts
                .today_every
                .max(today_cost.typical() * self.opts.today_backoff);
            if today_task.is_none() && last_today.elapsed() >= today_due {
                match self.today_input() {
                    Ok(Some(input)) => {
                        today_started = tokio::time::Instant::now();
                        today_task = Some(tokio::spawn(crate::background(move || input.compute())));
                    }
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "live: snapshot for today's KPIs failed"),
                }
            }
            // The hourly GMV is recomputed at once when the bus goes quiet, but never sooner
            // than `hourly_backoff` times its typical CPU time after the last one ended
            // (the cost bound): with changes waiting, a read waits no longer than that, and one
            // that comes back empty means quiet.
            let cost_gap = hourly_cost.typical() * self.opts.hourly_backoff;
            let wait = if dirty {
                cost_gap
                    .saturating_sub(last_hourly.elapsed())
                    .min(self.opts.block)
            } else {
                self.opts.block
            };
            let step = tokio::select! {
                r = self.step(&mut con, pending, wait) => r,
                _ = stop.changed() => break,
            };
            match step {
                Ok(got) => {
                    backoff = Duration::from_millis(100);
                    // Pending entries are re-read until none is left.
                    pending = pending && got;
                    dirty |= got;
                    let since = last_hourly.elapsed();
                    let quiet = !got && since >= cost_gap;
                    let due = since >= self.opts.hourly_every.max(cost_gap);
                    if dirty && (quiet || due) {
                        let started = tokio::time::Instant::now();
                        match self.recompute_hourly().await {
                            Ok(cpu) => {
                                dirty = false;
                                hourly_cost.record(cpu);
                                debug!(
                                    took_ms = started.elapsed().as_millis() as u64,
                                    cpu_ms = cpu.as_millis() as u64,
                                    quiet,
                                    "live: hourly GMV recomputed"
                                );
                            }
                            Err(e) => warn!(error = %e, "live: publishing the hourly GMV failed"),
                        }
                        last_hourly = tokio::time::Instant::now();
                    }
                }
                Err(e) => {
                    pending = true;
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "live: step failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {},
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if let Some(t) = today_task {
            t.abort();
        }
        info!("live KPIs stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_counts_this_threads_work_not_its_sleep() {
        let started = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        let slept = thread_cpu_time() - started;
        assert!(slept < Duration::from_millis(20), "{slept:?} while asleep");
        // Spinning advances it (bounded in wall time: a clock that stood still fails).
        let wall = std::time::Instant::now();
        while thread_cpu_time() - started < slept + Duration::from_millis(20)
            && wall.elapsed() < Duration::from_secs(10)
        {
            std::hint::black_box(wall.elapsed());
        }
        assert!(thread_cpu_time() - started >= slept + Duration::from_millis(20));
    }

    #[test]
    fn one_slow_computation_does_not_set_the_pace_two_do() {
        let ms = Duration::from_millis;
        let mut cost = RecentCost::default();
        assert_eq!(cost.typical(), Duration::ZERO);
        for _ in 0..3 {
            cost.record(ms(30));
        }
        cost.record(ms(260));
        assert_eq!(cost.typical(), ms(30));
        cost.record(ms(250));
        assert_eq!(cost.typical(), ms(250));
        cost.record(ms(40));
        assert_eq!(cost.typical(), ms(250));
        cost.record(ms(35));
        assert_eq!(cost.typical(), ms(40));
    }
}
