//! `cf-bench`: the Quire side of the CF benchmark (benches/README.md, "CF"; driven by
//! `scripts/bench-cf.sh` through `benches/cf/run.py`).
//!
//! - `cf-bench train`: fits `quire_cf::train_als` on the prepared split's `train.tsv` with a
//!   rayon pool of `--threads`, writes the model and the per-iteration timings and losses, then
//!   times the publisher's batch jobs on it (`recommend_all_users`, `similar_items`).
//! - `cf-bench eval`: the single evaluator of the benchmark. Scores every model file given
//!   (Quire's and `implicit`'s factors, both in Quire's model format) and the popularity
//!   baseline with `quire_cf::evaluate` on `test.tsv`, and recomputes each model's training
//!   loss with `AlsModel::loss`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use quire_cf::{
    AlsConfig, AlsModel, Csr, Popularity, evaluate, recommend_all_users, similar_items, train_als,
};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Quire's side of the CF benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit ALS on SPLIT/train.tsv.
    Train(TrainArgs),
    /// Evaluate model files and the popularity baseline on SPLIT/test.tsv.
    Eval(EvalArgs),
}

#[derive(Args)]
struct Hyper {
    #[arg(long, default_value_t = 64)]
    factors: usize,
    #[arg(long, default_value_t = 0.01)]
    regularization: f32,
    /// Confidence = 1 + alpha * value.
    #[arg(long, default_value_t = 1.0)]
    alpha: f32,
    #[arg(long, default_value_t = 15)]
    iterations: usize,
    #[arg(long, default_value_t = 3)]
    cg_steps: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl Hyper {
    fn config(&self) -> AlsConfig {
        AlsConfig {
            factors: self.factors,
            regularization: self.regularization,
            alpha: self.alpha,
            iterations: self.iterations,
            cg_steps: self.cg_steps,
            seed: self.seed,
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Directory written by benches/cf/prepare.py.
    #[arg(long)]
    split: PathBuf,
    #[command(flatten)]
    hyper: Hyper,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where to write the model.
    #[arg(long)]
    model: PathBuf,
    /// Where to write the timings (JSON).
    #[arg(long)]
    stats: PathBuf,
    /// List length of the timed batch jobs (top-N per user, N similar items per item).
    #[arg(long, default_value_t = 10)]
    top_n: usize,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    split: PathBuf,
    /// Loss parameters (alpha, regularization) used to recompute each model's training loss.
    #[command(flatten)]
    hyper: Hyper,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// NAME=PATH of a model file; repeatable.
    #[arg(long = "model", value_parser = parse_named)]
    models: Vec<(String, PathBuf)>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Where to write the results (JSON).
    #[arg(long)]
    out: PathBuf,
}

fn parse_named(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got {s:?}")),
    }
}

/// The split's shape, from its users.txt and items.txt.
fn shape(split: &Path) -> Result<(usize, usize)> {
    let count = |name: &str| -> Result<usize> {
        let path = split.join(name);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(BufReader::new(file).lines().count())
    };
    Ok((count("users.txt")?, count("items.txt")?))
}

/// Reads `user<TAB>item<TAB>value` lines into a CSR of the split's shape.
fn read_matrix(split: &Path, name: &str) -> Result<Csr> {
    let (n_users, n_items) = shape(split)?;
    let path = split.join(name);
    let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut triplets = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let mut fields = line.split('\t');
        let (Some(u), Some(i), Some(v), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            bail!(
                "{}:{}: expected 3 tab-separated fields",
                path.display(),
                n + 1
            );
        };
        let parsed = (u.parse::<u32>(), i.parse::<u32>(), v.parse::<f32>());
        let (Ok(u), Ok(i), Ok(v)) = parsed else {
            bail!("{}:{}: bad number in {line:?}", path.display(), n + 1);
        };
        triplets.push((u, i, v));
    }
    Csr::from_triplets(n_users, n_items, &triplets).with_context(|| format!("building {name}"))
}

/// CPU time (user + system, all threads) of this process so far, from `/proc/self/stat`
/// (Linux; clock ticks of 1/100 s, the kernel's USER_HZ).
fn process_cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("unexpected /proc/self/stat: {stat:?}"))
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the rayon pool")
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer_pretty(BufWriter::new(file), value)
        .with_context(|| format!("writing {}", path.display()))
}

fn train(args: &TrainArgs) -> Result<()> {
    let interactions = read_matrix(&args.split, "train.tsv")?;
    let config = args.hyper.config();
    let pool = pool(args.threads)?;
    let mut iterations = Vec::new();
    let (start, cpu_start) = (Instant::now(), process_cpu_seconds()?);
    let model = pool.install(|| {
        train_als(&interactions, &config, |s| {
            iterations
                .push(json!({"iteration": s.iteration, "seconds": s.seconds, "loss": s.loss}));
        })
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    let train_cpu_seconds = process_cpu_seconds()? - cpu_start;

    // The batch jobs of the recommendation publisher, timed on the fresh model.
    let start = Instant::now();
    let lists = pool.install(|| recommend_all_users(&model, args.top_n, &interactions, 256))?;
    let recommend_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let similar = pool.install(|| similar_items(&model, args.top_n, 256))?;
    let similar_seconds = start.elapsed().as_secs_f64();
    let file =
        File::create(&args.model).with_context(|| format!("creating {}", args.model.display()))?;
    let mut w = BufWriter::new(file);
    model.write_to(&mut w)?;
    write_json(
        &args.stats,
        &json!({
            "side": "quire",
            "threads": args.threads,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "iterations": iterations,
            "recommend_all_users_seconds": recommend_seconds,
            "recommend_lists": lists.iter().filter(|l| !l.is_empty()).count(),
            "similar_items_seconds": similar_seconds,
            "similar_lists": similar.iter().filter(|l| !l.is_empty()).count(),
            "top_n": args.top_n,
            "users": interactions.n_rows(),
            "items": interactions.n_cols(),
            "nnz": interactions.nnz(),
        }),
    )
}

fn eval(args: &EvalArgs) -> Result<()> {
    let train = read_matrix(&args.split, "train.tsv")?;
    let test = read_matrix(&args.split, "test.tsv")?;
    let config = args.hyper.config();
    let pool = pool(args.threads)?;
    let mut results = serde_json::Map::new();
    for (name, path) in &args.models {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let model = AlsModel::read_from(BufReader::new(file))
            .with_context(|| format!("reading the model {}", path.display()))?;
        let (report, loss) = pool.install(|| -> Result<_> {
            Ok((
                evaluate(&model, &train, &test, args.k)?,
                model.loss(&train, &config)?,
            ))
        })?;
        results.insert(
            name.clone(),
            json!({"metrics": report, "loss": loss, "factors": model.factors()}),
        );
    }
    let popularity = pool.install(|| evaluate(&Popularity::fit(&train), &train, &test, args.k))?;
    results.insert("popularity".to_owned(), json!({ "metrics": popularity }));
    write_json(&args.out, &Value::Object(results))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(&args),
        Command::Eval(args) => eval(&args),
    }
}
