//! Helpers shared by the end-to-end tests: locate and run the real `quire` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `quire` binary of this build (`QUIRE_BIN` overrides). `make test` builds it first.
pub fn quire_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("QUIRE_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/e2e-<hash> → target/<profile>/quire
    let exe = std::env::current_exe().expect("the test binary has a path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("quire"))
        .expect("the test binary lives in target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo build --workspace --all-targets`, which `make test` does)",
        bin.display()
    );
    bin
}

/// `quire` with `args` in `cwd`, with no QUIRE_* locations inherited, to run or spawn.
pub fn quire_command(cwd: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(quire_bin());
    cmd.current_dir(cwd).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("QUIRE_") && k != "QUIRE_BIN" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs [`quire_command`].
pub fn quire(cwd: &Path, args: &[&str]) -> Output {
    quire_command(cwd, args).output().expect("quire runs")
}

/// Runs `quire` and returns its stdout, failing the test with stderr when it fails.
#[track_caller]
pub fn quire_ok(cwd: &Path, args: &[&str]) -> String {
    let out = quire(cwd, args);
    assert!(
        out.status.success(),
        "quire {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs `quire … --json` and parses the one JSON document it prints.
#[track_caller]
pub fn quire_json(cwd: &Path, args: &[&str]) -> serde_json::Value {
    let out = quire_ok(cwd, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("quire {args:?}: not one JSON document ({e}): {out}"))
}
