//! Shared set-up of the in-process benchmarks (`cargo bench -p quire-benches`): a simulated
//! bookstore written once per process, so every benchmark measures the same input.

use std::path::{Path, PathBuf};

use quire_sim::SimConfig;

/// Simulates `days` × `users` into `dir` (if not there yet) and returns the events file.
pub fn simulated_events(dir: &Path, days: u32, users: u32) -> quire_sim::Result<PathBuf> {
    let events = dir.join("events.jsonl");
    if !events.exists() {
        let cfg = SimConfig {
            days,
            users,
            ..SimConfig::default()
        };
        quire_sim::simulate(&cfg, dir, &|_| {})?;
    }
    Ok(events)
}
