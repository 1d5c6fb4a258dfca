//! `quire`: the one command line of Quire (docs/contracts/cli.md).
//!
//! Human-readable output by default; `--json` prints exactly one JSON document on stdout, while
//! logs and progress go to stderr. Exit code 0 on success, otherwise non-zero with a one-line
//! reason on stderr.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// `println!` for the command's output (see [`output::write_line`]): a closed stdout ends the
/// process quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

mod analyze;
mod analyze_causal;
mod commands;
mod interrupt;
mod ml;
mod output;
mod recs;
mod serve;

/// mimalloc instead of glibc's malloc: the servers build and drop many small objects per
/// request (rows, JSON values), and under glibc a registry run search spent a third of its CPU
/// in malloc (free-list consolidation, heap trimming and re-faulting fresh pages).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "quire",
    version,
    about = "Bookstore clickstream → KPIs, models and predictions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The lake location, shared by every command that reads or writes it.
#[derive(Args, Clone)]
pub struct LakeArg {
    /// Lake and warehouse root
    #[arg(long, env = "QUIRE_LAKE", default_value = ".quire/lake")]
    pub lake: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and append events (JSON Lines, optionally gzip) to the lake
    Ingest(commands::IngestArgs),
    /// Dimension tables (books, users, marketing spend)
    Dims {
        #[command(subcommand)]
        command: commands::DimsCommand,
    },
    /// Replay the lake and compute the KPIs of docs/contracts/kpis.md
    Kpis(commands::KpisArgs),
    /// List rejected lines with their reasons
    Badrows(commands::BadrowsArgs),
    /// Build the warehouse models (staging, facts, aggregates) from the lake
    Warehouse {
        #[command(subcommand)]
        command: commands::WarehouseCommand,
    },
    /// Simulate a bookstore: events, dimension CSVs and the planted truths
    Simulate(commands::SimulateArgs),
    /// Train a model from a training config; log the run and register the model
    Train(ml::TrainArgs),
    /// Training runs in the registry: list, show, compare
    Runs(ml::RunsArgs),
    /// Registered models: list, show, versions, promote, history, verify
    Models(ml::ModelsArgs),
    /// Recommendations: publish top-N lists to Redis
    Recs {
        #[command(subcommand)]
        command: recs::RecsCommand,
    },
    /// Long-running services (ranking, live, registry)
    Serve {
        #[command(subcommand)]
        command: serve::ServeCommand,
    },
    /// Deep-dive analyses over a date range of the lake (tables, --json, --out DIR, report)
    Analyze {
        #[command(subcommand)]
        command: analyze::AnalyzeCommand,
    },
    /// The main job, end to end
    Pipeline {
        #[command(subcommand)]
        command: commands::PipelineCommand,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("QUIRE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help (asked for, or shown for a missing subcommand) and --version print as clap
            // prints them; a usage error is one line, with clap's exit status (2).
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!("quire: {}", one_line(&e.to_string()));
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire: {}", reason(&e));
            ExitCode::FAILURE
        }
    }
}

/// The chain of contexts, outermost first, on one line. A cause whose text its parent's
/// already shows (an error type that prints its source) is not repeated.
fn reason(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = one_line(&cause.to_string());
        // Only a parent that ends with this cause's text shows it already.
        let shown = parts
            .last()
            .is_some_and(|p| *p == text || p.ends_with(&format!(": {text}")));
        if !shown {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// `text`'s non-blank lines, trimmed and joined with "; ": errors are one line on stderr
/// (cli.md), also those whose text has several (a TOML parse error's snippet, clap's usage).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(a) => commands::ingest(a),
        Command::Dims { command } => commands::dims(command),
        Command::Kpis(a) => commands::kpis(a),
        Command::Badrows(a) => commands::badrows(a),
        Command::Warehouse { command } => commands::warehouse(command),
        Command::Simulate(a) => commands::simulate(a),
        Command::Train(a) => {
            interrupt::mark_runs_killed_on_signal()?;
            ml::train(a)
        }
        Command::Runs(a) => ml::runs(a),
        Command::Models(a) => ml::models(a),
        Command::Recs { command } => recs::recs(command),
        Command::Serve { command } => serve::serve(command),
        Command::Analyze { command } => analyze::analyze(command),
        Command::Pipeline { command } => {
            interrupt::mark_runs_killed_on_signal()?;
            commands::pipeline(command)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Inner {
        #[error("registered model \"m\" not found")]
        NotFound,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        /// Prints its source, and gives it as its source too.
        #[error("registry: {0}")]
        Registry(#[from] Inner),
    }

    #[test]
    fn a_cause_is_kept_when_its_parent_merely_mentions_it() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("model not found in the registry, reading entity not found.txt");
        assert_eq!(
            reason(&e),
            "model not found in the registry, reading entity not found.txt: entity not found"
        );
    }

    #[test]
    fn a_reason_shows_each_cause_once_on_one_line() {
        let e = anyhow::Error::new(Outer::from(Inner::NotFound))
            .context("loading the CF model m")
            .context("publishing\nrecommendations");
        assert_eq!(
            reason(&e),
            "publishing; recommendations: loading the CF model m: registry: registered model \"m\" not found"
        );
    }
}
