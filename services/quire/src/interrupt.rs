//! What `quire` does when it is interrupted (SIGINT, SIGTERM, SIGHUP) while it trains: it
//! marks the runs in progress `KILLED` in their registry, as MLflow's client does for a run
//! ended by Ctrl-C (without it they would stay `RUNNING` for ever), then ends as the signal's
//! default action would have.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long the registry gets to record each killed run before the process ends anyway.
const MARK_TIMEOUT: Duration = Duration::from_secs(5);

/// A second signal this soon after the first is the same interrupt delivered twice (the
/// terminal signals the whole process group, and a wrapper may forward it again): ignored.
const REPEAT: Duration = Duration::from_millis(250);

/// Handles the signals above for the rest of the process, on a thread of its own: the first
/// one marks the open runs killed (`quire_train::mark_open_runs_killed`, on another thread) and
/// ends the process; a second one while the registry is still being written ends it at once,
/// as a second Ctrl-C does in most tools. A signal the process was started ignoring (`nohup`
/// ignores SIGHUP; a shell's background job, SIGINT) stays ignored. Messages go to stderr and
/// are dropped if it is gone (after a SIGHUP the terminal may be): the process still ends.
pub fn mark_runs_killed_on_signal() -> Result<()> {
    let handled: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|&s| !ignored(s))
        .collect();
    let mut signals = Signals::new(handled).context("installing the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut signals = signals.forever();
            let Some(signal) = signals.next() else { return };
            let first = Instant::now();
            say("interrupted: marking the runs in progress KILLED (interrupt again to quit at once)");
            let marking = std::thread::Builder::new()
                .name("mark-killed".into())
                .spawn(move || {
                    // The process ends below whatever happens here, a panic included.
                    let marked = std::panic::catch_unwind(|| {
                        quire_train::mark_open_runs_killed(MARK_TIMEOUT)
                    })
                    .unwrap_or_default();
                    for (run, error) in marked {
                        match error {
                            None => say(&format!("interrupted: run {run} marked KILLED")),
                            Some(e) => say(&format!(
                                "interrupted: run {run} could not be marked KILLED: {e}"
                            )),
                        }
                    }
                    end_by(signal);
                });
            if marking.is_err() {
                say("interrupted: the runs in progress could not be marked KILLED");
                end_by(signal);
            }
            for again in signals {
                if first.elapsed() >= REPEAT {
                    say("interrupted again: ending without waiting for the registry");
                    end_by(again);
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Writes `message` to stderr, or nothing if stderr is gone (`eprintln!` would panic).
fn say(message: &str) {
    let _ = writeln!(std::io::stderr(), "quire: {message}");
}

/// Ends the process as `signal` would have (its exit status says so).
fn end_by(signal: i32) -> ! {
    if let Err(e) = signal_hook::low_level::emulate_default_handler(signal) {
        say(&format!("interrupted: {e}"));
    }
    // Only if the signal's default action did not end the process.
    std::process::exit(128 + signal)
}

/// Whether `signal`'s action is to be ignored (as inherited across `exec`): its bit in the
/// `SigIgn` mask of `/proc/self/status` (Linux; elsewhere, or unreadable: not ignored).
fn ignored(signal: i32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| ignored_in(&status, signal))
        .unwrap_or(false)
}

fn ignored_in(status: &str, signal: i32) -> Option<bool> {
    let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
    let bit = u32::try_from(signal - 1).ok()?;
    Some(mask.checked_shr(bit)? & 1 == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ignored_signals_mask() {
        // SIGHUP (1) and SIGINT (2) ignored, as under `nohup` in a shell's background job.
        let status = "Name:\tquire\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000003\n";
        assert_eq!(ignored_in(status, SIGHUP), Some(true));
        assert_eq!(ignored_in(status, SIGINT), Some(true));
        assert_eq!(ignored_in(status, SIGTERM), Some(false));
        assert_eq!(ignored_in("Name:\tquire\n", SIGINT), None);
    }
}
