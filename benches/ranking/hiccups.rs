//! The machine's own stalls: threads that do nothing but read the clock, each recording the
//! gaps in which it did not run (the host or the kernel had its core). jHiccup's idea, with a
//! spinning loop instead of its short sleeps, so it sees the preemption of a busy core rather
//! than the wake-up of an idle one. Written here: no crate measures this, and it is a clock
//! loop.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

/// Gaps shorter than this are the loop's own steps and timer interrupts.
const RECORDED: Duration = Duration::from_micros(100);

/// Spins `threads` threads (one per core kept busy) for `seconds` and reports their stalls:
/// per thread and second, the gaps longer than 0.5, 1 and 2 ms; the longest; the share of the
/// time lost to gaps.
pub fn run(seconds: f64, threads: usize) -> Result<Value> {
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds, not {seconds}");
    }
    let threads = threads.max(1);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let spinners: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut gaps = Vec::new();
                let mut prev = Instant::now();
                while prev < end {
                    let now = Instant::now();
                    if now - prev > RECORDED {
                        gaps.push(now - prev);
                    }
                    prev = now;
                }
                gaps
            })
        })
        .collect();
    let gaps: Vec<Duration> = spinners
        .into_iter()
        .flat_map(|s| s.join().unwrap_or_default())
        .collect();
    let per_thread_s = |longer: Duration| {
        gaps.iter().filter(|g| **g > longer).count() as f64 / (threads as f64 * seconds)
    };
    let lost: Duration = gaps.iter().sum();
    Ok(json!({
        "threads": threads,
        "seconds": seconds,
        "per_thread_per_s": {
            "over_0.5ms": per_thread_s(Duration::from_micros(500)),
            "over_1ms": per_thread_s(Duration::from_millis(1)),
            "over_2ms": per_thread_s(Duration::from_millis(2)),
        },
        "max_ms": gaps.iter().max().map_or(0.0, |g| g.as_secs_f64() * 1e3),
        "lost_fraction": lost.as_secs_f64() / (threads as f64 * seconds),
    }))
}
