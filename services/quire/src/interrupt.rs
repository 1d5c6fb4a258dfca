//! What `quire` does when it is interrupted (SIGINT, SIGTERM, SIGHUP) while it trains: it
//! marks the runs in progress `KILLED` in their registry, as MLflow's client does for a run
//! ended by Ctrl-C (without it they would stay `RUNNING` for ever), then ends as the signal's
//! default action would have.

use std::time::Duration;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How long the registry gets to record a killed run before the process ends anyway.
const MARK_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles the signals above for the rest of the process, on a thread of its own: the first
/// one marks the open runs killed (`quire_train::mark_open_runs_killed`) and ends the process.
pub fn mark_runs_killed_on_signal() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing the signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // The process ends below whatever happens here, a panic included.
                let marked =
                    std::panic::catch_unwind(|| quire_train::mark_open_runs_killed(MARK_TIMEOUT))
                        .unwrap_or_default();
                for (run, error) in marked {
                    match error {
                        None => eprintln!("quire: interrupted: run {run} marked KILLED"),
                        Some(e) => {
                            eprintln!(
                                "quire: interrupted: run {run} could not be marked KILLED: {e}"
                            )
                        }
                    }
                }
                // Ends the process as the signal would have (its exit status says so).
                if let Err(e) = signal_hook::low_level::emulate_default_handler(signal) {
                    eprintln!("quire: interrupted: {e}");
                }
                std::process::exit(128 + signal);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
