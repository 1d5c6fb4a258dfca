//! `quire analyze <question>`: the deep-dive analyses (crate quire-analytics), their common
//! flags, and the HTML report.
//!
//! Every subcommand takes [`CommonArgs`] (lake, date range, `--json`, `--out DIR`) and returns
//! an [`AnalysisResult`]; [`emit`] prints it (table or one JSON document) and writes its tables
//! as Parquet and its charts as SVG under `--out`. Another set of analyses joins by adding a
//! flattened subcommand enum beside [`AnalyzeCommand`]'s variants and its report entries to
//! [`report_entries`].

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use quire_analytics::basket::{BasketParams, Fraction};
use quire_analytics::report::Entry;
use quire_analytics::{AnalysisResult, Dataset, DateRange};
use quire_lake::DimTable;

use crate::LakeArg;
use crate::output::print_json;

/// The flags every `quire analyze` subcommand shares.
#[derive(Args, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub lake: LakeArg,
    /// First UTC day (YYYY-MM-DD), inclusive
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last UTC day (YYYY-MM-DD), inclusive
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Print one JSON document on stdout instead of tables
    #[arg(long)]
    pub json: bool,
    /// Also write each table as Parquet and each chart as SVG into this directory
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl CommonArgs {
    pub fn range(&self) -> DateRange {
        DateRange {
            from: self.from,
            to: self.to,
        }
    }

    /// Opens the lake and stages the range (with the books dimension when loaded).
    pub fn dataset(&self) -> Result<Dataset> {
        let lake = crate::commands::existing_lake(&self.lake)?;
        let books = lake.scan_dim(DimTable::Books)?;
        Dataset::new(lake.scan_events()?, books, self.range()).context("staging the lake")
    }
}

#[derive(Args)]
pub struct BasketArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Minimum support, a decimal fraction of transactions (compared exactly)
    #[arg(long, default_value = "0.001")]
    pub min_support: String,
    /// Minimum confidence, a decimal fraction (compared exactly)
    #[arg(long, default_value = "0.2")]
    pub min_confidence: String,
    /// Largest rule (books in antecedent + consequent); 0, the default, = no limit (every
    /// rule meeting the thresholds, as cli.md asks)
    #[arg(long, default_value_t = 0)]
    pub max_len: usize,
    /// Mine this basket file (one transaction per line, items separated by commas) instead
    /// of the lake's orders
    #[arg(long)]
    pub transactions: Option<PathBuf>,
    /// Also write the lake's transactions in that format to this file
    #[arg(long)]
    pub transactions_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct SegmentsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of segments (default: chosen by silhouette over 2..=--max-k)
    #[arg(long)]
    pub k: Option<usize>,
    #[arg(long, default_value_t = 8)]
    pub max_k: usize,
    /// Seed of k-means (printed with the result)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Horizon of the predicted CLV, in days
    #[arg(long, default_value_t = 90.0)]
    pub horizon_days: f64,
}

#[derive(Args)]
pub struct TopCustomersArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Size of the top group, percent of customers by spend
    #[arg(long, default_value_t = 10.0)]
    pub pct: f64,
    /// Seed of the bootstrap
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Args)]
pub struct PlainArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args)]
pub struct PathsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// How many of the most common paths to show
    #[arg(long, default_value_t = 30)]
    pub top: usize,
}

#[derive(Args)]
pub struct SequencesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Items of a sequence: book or genre
    #[arg(long, default_value = "book")]
    pub by: String,
    /// PrefixSpan minimum support, a fraction of purchasing users
    #[arg(long, default_value_t = 0.005)]
    pub min_support: f64,
    /// Longest pattern, in items (at least 1)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_items: u64,
    /// Transitions seen by fewer users are left out (at least 1)
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub min_count: u64,
    /// Rows shown per table
    #[arg(long, default_value_t = 30)]
    pub top: usize,
    /// Mine this sequence database (SPMF format) instead of the lake's purchases
    #[arg(long)]
    pub spmf: Option<PathBuf>,
    /// Also write the lake's purchase sequences to this file (SPMF format)
    #[arg(long)]
    pub sequences_out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Subcommand)]
pub enum AnalyzeCommand {
    /// Customer segments (k-means) with historical and predicted CLV (BG/NBD + Gamma-Gamma)
    Segments(SegmentsArgs),
    /// The top customers' share of revenue and their attributes against the rest
    TopCustomers(TopCustomersArgs),
    /// First visit → first purchase → second purchase (Kaplan–Meier, censored)
    TimeToPurchase(PlainArgs),
    /// Page paths of high- vs low-converting users (tests, Benjamini–Hochberg)
    Paths(PathsArgs),
    /// What users do after abandoning a cart
    AfterAbandon(PlainArgs),
    /// Mobile vs desktop vs tablet, stratified by traffic source
    Devices(PlainArgs),
    /// Frequently bought together: association rules by FP-growth (docs/contracts/cli.md)
    Basket(BasketArgs),
    /// What users buy in a later session: transitions and PrefixSpan patterns
    Sequences(SequencesArgs),
    /// Every analysis into one HTML report (DIR/report.html) with tables and charts
    Report(ReportArgs),
    #[command(flatten)]
    Causal(crate::analyze_causal::CausalCommand),
}

/// Prints a result as `--json` or tables, and writes it under `--out`.
pub fn emit(result: &AnalysisResult, common: &CommonArgs) -> Result<()> {
    result.check()?;
    if let Some(dir) = &common.out {
        let written = result
            .write_out(dir)
            .with_context(|| format!("writing the results into {}", dir.display()))?;
        for p in written {
            tracing::info!(path = %p.display(), "written");
        }
    }
    if common.json {
        return print_json(&result.to_json());
    }
    outln!("{}", result.to_text(30));
    if let Some(dir) = &common.out {
        outln!("\ntables and charts written to {}", dir.display());
    }
    Ok(())
}

/// The report's analyses, in order.
pub fn report_entries() -> Vec<Entry> {
    let mut entries = quire_analytics::report::entries();
    entries.extend(crate::analyze_causal::report_entries());
    entries
}

pub fn analyze(cmd: AnalyzeCommand) -> Result<()> {
    use quire_analytics as qa;
    match cmd {
        AnalyzeCommand::Segments(a) => {
            let p = qa::segments::SegmentParams {
                k: a.k,
                max_k: a.max_k,
                seed: a.seed,
                horizon_days: a.horizon_days,
            };
            emit(&qa::segments::run(&a.common.dataset()?, &p)?, &a.common)
        }
        AnalyzeCommand::TopCustomers(a) => emit(
            &qa::top::run(&a.common.dataset()?, a.pct, a.seed)?,
            &a.common,
        ),
        AnalyzeCommand::TimeToPurchase(a) => emit(&qa::ttp::run(&a.common.dataset()?)?, &a.common),
        AnalyzeCommand::Paths(a) => emit(&qa::paths::run(&a.common.dataset()?, a.top)?, &a.common),
        AnalyzeCommand::AfterAbandon(a) => {
            emit(&qa::abandon::run(&a.common.dataset()?)?, &a.common)
        }
        AnalyzeCommand::Devices(a) => emit(&qa::devices::run(&a.common.dataset()?)?, &a.common),
        AnalyzeCommand::Sequences(a) => {
            let p = qa::sequences::SequenceParams {
                by: a.by.clone(),
                min_support: a.min_support,
                max_items: usize::try_from(a.max_items).unwrap_or(usize::MAX),
                min_count: a.min_count,
                top: a.top,
            };
            let pur = match &a.spmf {
                Some(f) => qa::sequences::read_spmf(f)?,
                None => qa::sequences::prepare(&a.common.dataset()?, &p.by)?,
            };
            if let Some(f) = &a.sequences_out {
                qa::sequences::write_spmf(f, &pur)?;
            }
            emit(&qa::sequences::analyze(&pur, &p)?, &a.common)
        }
        AnalyzeCommand::Basket(a) => {
            let p = BasketParams {
                min_support: Fraction::parse(&a.min_support, "--min-support")?,
                min_confidence: Fraction::parse(&a.min_confidence, "--min-confidence")?,
                max_len: if a.max_len == 0 {
                    usize::MAX
                } else {
                    a.max_len
                },
            };
            let tx = match &a.transactions {
                Some(f) => qa::basket::read_transactions(f)?,
                None => qa::basket::transactions(&a.common.dataset()?)?,
            };
            if let Some(f) = &a.transactions_out {
                qa::basket::write_transactions(f, &tx)?;
            }
            // No orders (in the range): 0 transactions and no rules, an answer like any other.
            emit(&qa::basket::analyze(&tx, &p)?, &a.common)
        }
        AnalyzeCommand::Report(a) => report(&a),
        AnalyzeCommand::Causal(c) => crate::analyze_causal::analyze(c),
    }
}

fn report(a: &ReportArgs) -> Result<()> {
    let dir = a
        .common
        .out
        .clone()
        .context("quire analyze report needs --out DIR")?;
    let ds = a.common.dataset()?;
    let entries = report_entries();
    let progress = crate::commands::progress_enabled(a.common.json);
    let sections = quire_analytics::report::run_entries(&ds, &entries, &|name| {
        if progress {
            eprintln!("analyzing: {name}");
        }
    });
    let range = |d: Option<NaiveDate>| d.map_or("unbounded".to_owned(), |d| d.to_string());
    let facts = vec![
        ("lake".to_owned(), a.common.lake.lake.display().to_string()),
        ("from".to_owned(), range(a.common.from)),
        ("to".to_owned(), range(a.common.to)),
        (
            "generated".to_owned(),
            chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        ),
    ];
    let path =
        quire_analytics::report::write_report(&dir, "Quire analytics report", &facts, &sections)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
    let failed: Vec<(&str, &str)> = sections
        .iter()
        .filter_map(|s| {
            s.outcome
                .as_ref()
                .err()
                .map(|e| (s.name.as_str(), e.as_str()))
        })
        .collect();
    if a.common.json {
        let v = serde_json::json!({
            "report": path.display().to_string(),
            "sections": sections.iter().map(|s| serde_json::json!({
                "name": s.name,
                "ok": s.outcome.is_ok(),
                "error": s.outcome.as_ref().err(),
            })).collect::<Vec<_>>(),
        });
        return print_json(&v);
    }
    outln!("report written to {}", path.display());
    for (name, e) in failed {
        outln!("  {name}: not computed: {e}");
    }
    Ok(())
}
