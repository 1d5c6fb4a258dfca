//! One function per subcommand: parse nothing, call the libraries, print.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quire_kpi::{DateRange, Dims};
use quire_lake::{CheckedDim, DimLoadReport, DimTable, IngestOptions, IngestReport, Lake};
use quire_pipeline::{DimFiles, PipelineConfig, Status};
use quire_sim::SimConfig;

use crate::LakeArg;
use crate::output::{print_json, table};

/// The lake to write into, created when missing.
fn open_lake(arg: &LakeArg) -> Result<Lake> {
    Lake::open(&arg.lake).with_context(|| format!("opening the lake at {}", arg.lake.display()))
}

/// The lake to read: an error when there is none.
pub(crate) fn existing_lake(arg: &LakeArg) -> Result<Lake> {
    Ok(Lake::open_existing(&arg.lake)?)
}

pub(crate) fn progress_enabled(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

#[derive(Args)]
pub struct IngestArgs {
    #[command(flatten)]
    lake: LakeArg,
    /// JSON Lines files (.jsonl or .jsonl.gz)
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print the counts as JSON
    #[arg(long)]
    json: bool,
}

pub fn ingest(a: IngestArgs) -> Result<()> {
    // Every file can be opened before the first is committed: a typo in the last name
    // stops the run before it changes the lake.
    let mut sizes = Vec::with_capacity(a.files.len());
    for file in &a.files {
        let opened = std::fs::File::open(file).and_then(|f| f.metadata());
        let meta = opened.with_context(|| format!("reading {}", file.display()))?;
        if !meta.is_file() {
            bail!("reading {}: not a file", file.display());
        }
        sizes.push(meta.len());
    }
    let lake = open_lake(&a.lake)?;
    let mut total = IngestReport::default();
    let mut committed: Vec<String> = Vec::new();
    for (file, size) in a.files.iter().zip(sizes) {
        let pb = if progress_enabled(a.json) {
            let pb = ProgressBar::new(size);
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_prefix(file.display().to_string());
            pb
        } else {
            ProgressBar::hidden()
        };
        let r = lake
            .ingest_file(file, &IngestOptions::default(), &|bytes| {
                pb.set_position(bytes)
            })
            .with_context(|| match committed.as_slice() {
                [] => format!("ingesting {}", file.display()),
                done => format!(
                    "ingesting {} (committed before it: {}; ingesting them again changes nothing)",
                    file.display(),
                    done.join(", ")
                ),
            })?;
        committed.push(file.display().to_string());
        pb.finish_and_clear();
        total.lines += r.lines;
        total.valid += r.valid;
        total.invalid += r.invalid;
        total.duplicates += r.duplicates;
        total.test += r.test;
    }
    if a.json {
        return print_json(&total);
    }
    outln!(
        "{}",
        table(
            ["lines", "valid", "invalid", "duplicates", "test"],
            [[
                total.lines,
                total.valid,
                total.invalid,
                total.duplicates,
                total.test
            ]
            .map(|n| n.to_string())],
        )
    );
    if total.invalid > 0 {
        outln!(
            "invalid lines are kept with their reasons: quire badrows --lake {}",
            a.lake.lake.display()
        );
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DimsCommand {
    /// Load dimension tables (CSV with header, or Parquet), replacing earlier versions
    Load {
        #[command(flatten)]
        lake: LakeArg,
        #[arg(long)]
        books: Option<PathBuf>,
        #[arg(long)]
        users: Option<PathBuf>,
        #[arg(long = "marketing-spend")]
        marketing_spend: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn dims(cmd: DimsCommand) -> Result<()> {
    let DimsCommand::Load {
        lake,
        books,
        users,
        marketing_spend,
        json,
    } = cmd;
    if books.is_none() && users.is_none() && marketing_spend.is_none() {
        bail!("nothing to load: give --books, --users and/or --marketing-spend");
    }
    let l = open_lake(&lake)?;
    // Every file is read and validated before any table is replaced: a load that fails on
    // one file changes nothing.
    let mut checked = Vec::new();
    for (table, file) in [
        (DimTable::Books, books),
        (DimTable::Users, users),
        (DimTable::MarketingSpend, marketing_spend),
    ] {
        if let Some(file) = file {
            let dim = CheckedDim::read(table, &file)
                .with_context(|| format!("loading {}", table.name()))?;
            checked.push((table, dim));
        }
    }
    let mut report = DimLoadReport::default();
    for (table, dim) in checked {
        let rows = l
            .replace_dim(dim)
            .with_context(|| format!("loading {}", table.name()))?;
        *match table {
            DimTable::Books => &mut report.books,
            DimTable::Users => &mut report.users,
            DimTable::MarketingSpend => &mut report.marketing_spend,
        } = Some(rows);
    }
    if json {
        return print_json(&report);
    }
    let rows: Vec<[String; 2]> = [
        ("books", report.books),
        ("users", report.users),
        ("marketing_spend", report.marketing_spend),
    ]
    .into_iter()
    .filter_map(|(n, r)| r.map(|r| [n.to_owned(), r.to_string()]))
    .collect();
    outln!("{}", table(["table", "rows loaded"], rows));
    Ok(())
}

fn dims_of(lake: &Lake) -> Result<Dims> {
    Ok(Dims {
        books: lake.scan_dim(DimTable::Books)?,
        marketing_spend: lake.scan_dim(DimTable::MarketingSpend)?,
    })
}

#[derive(Args)]
pub struct KpisArgs {
    #[command(flatten)]
    lake: LakeArg,
    /// First UTC day (YYYY-MM-DD), inclusive
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Last UTC day (YYYY-MM-DD), inclusive
    #[arg(long)]
    to: Option<NaiveDate>,
    /// How many books in the leaderboard
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long)]
    json: bool,
}

pub fn kpis(a: KpisArgs) -> Result<()> {
    if let (Some(f), Some(t)) = (a.from, a.to)
        && f > t
    {
        bail!("--from {f} is after --to {t}");
    }
    let lake = existing_lake(&a.lake)?;
    let report = quire_kpi::kpi_report(
        lake.scan_events()?,
        &dims_of(&lake)?,
        DateRange {
            from: a.from,
            to: a.to,
        },
        a.top,
    )
    .context("computing the KPIs")?;
    if a.json {
        return print_json(&report);
    }
    crate::output::print_kpis(&serde_json::to_value(&report)?);
    Ok(())
}

#[derive(Args)]
pub struct BadrowsArgs {
    #[command(flatten)]
    lake: LakeArg,
    /// Only rows whose source contains this text
    #[arg(long)]
    source: Option<String>,
    /// At most this many rows
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

pub fn badrows(a: BadrowsArgs) -> Result<()> {
    let lake = existing_lake(&a.lake)?;
    let rows = lake.bad_rows(a.source.as_deref(), Some(a.limit))?;
    if a.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        outln!("no bad rows");
        return Ok(());
    }
    let shown: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            let mut line = r.line.clone();
            if line.chars().count() > 60 {
                line = line.chars().take(57).collect::<String>() + "...";
            }
            [
                format!("{}:{}", r.source, r.line_number),
                r.reason.clone(),
                line,
                r.rejected_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            ]
        })
        .collect();
    outln!(
        "{}",
        table(["where", "reason", "line", "rejected at"], shown)
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum WarehouseCommand {
    /// Materialize staging, facts and aggregates as Parquet under <lake>/warehouse
    Build {
        #[command(flatten)]
        lake: LakeArg,
        #[arg(long)]
        json: bool,
    },
}

pub fn warehouse(cmd: WarehouseCommand) -> Result<()> {
    let WarehouseCommand::Build { lake, json } = cmd;
    let l = existing_lake(&lake)?;
    let models = quire_kpi::build_models(l.scan_events()?, &dims_of(&l)?)?;
    let summary = quire_kpi::materialize(&models, &l.warehouse_dir())?;
    if json {
        return print_json(&summary);
    }
    let rows = summary.rows.iter().map(|(t, n)| [t.clone(), n.to_string()]);
    outln!("{}", table(["table", "rows"], rows));
    outln!("written under {}", l.warehouse_dir().display());
    Ok(())
}

#[derive(Args)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = SimConfig::default().days)]
    days: u32,
    #[arg(long, default_value_t = SimConfig::default().users)]
    users: u32,
    #[arg(long, default_value_t = SimConfig::default().seed)]
    seed: u64,
    /// First simulated UTC day
    #[arg(long, default_value_t = SimConfig::default().start)]
    start: NaiveDate,
    /// Output directory
    #[arg(long)]
    out: PathBuf,
    /// Write events.jsonl.gz instead of events.jsonl
    #[arg(long)]
    gzip: bool,
    #[arg(long)]
    json: bool,
}

pub fn simulate(a: SimulateArgs) -> Result<()> {
    let cfg = SimConfig {
        days: a.days,
        users: a.users,
        seed: a.seed,
        start: a.start,
        gzip: a.gzip,
        ..Default::default()
    };
    let pb = if progress_enabled(a.json) {
        let pb = ProgressBar::new(u64::from(a.days));
        pb.set_style(
            ProgressStyle::with_template("simulating [{bar:30}] day {pos}/{len} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let summary = quire_sim::simulate(&cfg, &a.out, &|d| pb.set_position(u64::from(d)))
        .with_context(|| format!("simulating into {}", a.out.display()))?;
    pb.finish_and_clear();
    if a.json {
        return print_json(&summary);
    }
    outln!(
        "{} lines ({} events, {} malformed, {} duplicates, {} test, {} orders) in {:.1}s\nwritten to {}",
        summary.lines,
        summary.events,
        summary.malformed,
        summary.duplicates,
        summary.test_events,
        summary.orders,
        summary.seconds,
        a.out.display()
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// Run every step in dependency order, skipping those whose inputs did not change
    Run(PipelineArgs),
}

#[derive(Args)]
pub struct PipelineArgs {
    #[command(flatten)]
    lake: LakeArg,
    /// Working directory (simulated input, pipeline state, reports)
    #[arg(long, env = "QUIRE_WORK", default_value = ".quire")]
    work: PathBuf,
    /// Event files to ingest (default: simulate a bookstore)
    #[arg(long = "input")]
    inputs: Vec<PathBuf>,
    #[arg(long)]
    books: Option<PathBuf>,
    #[arg(long)]
    users: Option<PathBuf>,
    #[arg(long = "marketing-spend")]
    marketing_spend: Option<PathBuf>,
    /// Simulated days (when simulating)
    #[arg(long, default_value_t = SimConfig::default().days)]
    days: u32,
    /// Simulated users (when simulating)
    #[arg(long = "sim-users", default_value_t = SimConfig::default().users)]
    sim_users: u32,
    #[arg(long, default_value_t = SimConfig::default().seed)]
    seed: u64,
    /// Run every step even when its inputs did not change
    #[arg(long)]
    force: bool,
    /// Training configs to run after the warehouse (default: every training-configs/*.toml)
    #[arg(long = "train-config")]
    train_configs: Vec<PathBuf>,
    /// Stop after the warehouse and KPIs (no training)
    #[arg(long)]
    no_train: bool,
    /// Publish the CF model's recommendations to this Redis after training
    #[arg(long, env = "QUIRE_REDIS")]
    redis: Option<String>,
    /// The CF model whose recommendations are published
    #[arg(long, default_value = "cf@production")]
    recs_model: String,
    #[command(flatten)]
    registry: crate::ml::RegistryArgs,
    #[arg(long)]
    json: bool,
}

pub fn pipeline(cmd: PipelineCommand) -> Result<()> {
    let PipelineCommand::Run(a) = cmd;
    let cfg = PipelineConfig {
        work_dir: a.work.clone(),
        lake: a.lake.lake.clone(),
        inputs: a.inputs,
        dims: DimFiles {
            books: a.books,
            users: a.users,
            marketing_spend: a.marketing_spend,
        },
        sim: SimConfig {
            days: a.days,
            users: a.sim_users,
            seed: a.seed,
            ..SimConfig::default()
        },
        force: a.force,
        progress: progress_enabled(a.json),
        recs: match (&a.redis, a.no_train) {
            (Some(redis), false) => Some(quire_pipeline::RecsSetup {
                model: a.recs_model.clone(),
                redis: redis.clone(),
                n: 50,
            }),
            _ => None,
        },
        train: if a.no_train {
            None
        } else {
            let configs = if a.train_configs.is_empty() {
                quire_train::config::config_files(std::path::Path::new("training-configs"))
                    .context(
                        "listing training-configs/ (or pass --train-config FILE, or --no-train)",
                    )?
            } else {
                a.train_configs
            };
            Some(quire_pipeline::TrainSetup {
                configs,
                registry: a.registry.url()?,
                artifacts: a.registry.artifacts_dir()?,
            })
        },
    };
    let report = quire_pipeline::run(&cfg)?;
    if a.json {
        return print_json(&report);
    }
    let rows: Vec<[String; 4]> = report
        .steps
        .iter()
        .map(|s| {
            [
                s.step.clone(),
                match s.status {
                    Status::Ran => "ran",
                    Status::Skipped => "skipped",
                }
                .to_owned(),
                format!("{:.1}s", s.seconds),
                s.detail.clone(),
            ]
        })
        .collect();
    outln!("{}", table(["step", "status", "time", "detail"], rows));
    crate::output::print_kpi_headline(&report.kpis);
    outln!("\nWhere to look:");
    for (what, path) in &report.locations {
        outln!("  {:<52} {}", what, path.display());
    }
    let lake = a.lake.lake.display();
    outln!("\nNext: quire kpis --lake {lake}   ·   quire badrows --lake {lake}");
    if !report.models.is_empty() {
        outln!("      quire runs list   ·   quire models list   ·   quire models history ltr");
    }
    Ok(())
}
