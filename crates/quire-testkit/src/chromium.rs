//! Headless Chromium (Debian's `chromium`) with the flags this environment needs: no sandbox
//! (tests run as root), no GPU, and no background networking (the machine's network is
//! closed; without these flags Chromium's connections are refused many at a time).

use std::process::Command;

/// What one Chromium run printed.
#[derive(Debug)]
pub struct Page {
    /// Standard output (the DOM with `--dump-dom`).
    pub stdout: String,
    /// Standard error: Chromium's log, with the page's console messages as `CONSOLE(` lines.
    pub stderr: String,
}

impl Page {
    /// The log lines that report the page's console messages.
    pub fn console(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .collect()
    }
}

/// Runs Chromium headless on `url` in a fresh profile, with `extra` flags (`--dump-dom`,
/// `--screenshot=PATH`, `--virtual-time-budget=MS`, `--window-size=W,H`, …).
///
/// # Panics
/// When Chromium is not installed or exits with a failure; the message says which.
pub fn run(url: &str, extra: &[&str]) -> Page {
    let profile = tempfile::tempdir().expect("a chromium profile directory");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("chromium could not start ({e}): run scripts/setup.sh, which installs it")
        });
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Page {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
