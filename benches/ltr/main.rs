//! `ltr-bench`: Quire's side of the learning-to-rank benchmark (`scripts/bench-ltr.sh`).
//!
//! Loads a LightGBM training and test file (LibSVM with `.query` side files) with LightGBM's
//! own loader through `quire-lgbm`, trains `--rounds` lambdarank iterations with `--params`
//! evaluating the test set after each, and prints one JSON object: load and training seconds,
//! the test metrics after every iteration, and a SHA-256 of the trees, so the harness can check
//! that the Python `lightgbm` package built the same model. `benches/ltr/python_ltr.py` is the
//! Python peer and prints the same object.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use quire_lgbm::{Dataset, TrainOptions, train};
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(
    about = "Train LightGBM lambdarank through quire-lgbm and print timings and NDCG as JSON"
)]
struct Args {
    /// Training data (LibSVM; group sizes in `<file>.query`).
    #[arg(long)]
    train: PathBuf,
    /// Test data, evaluated after each iteration.
    #[arg(long)]
    test: PathBuf,
    /// LightGBM parameters, `key=value` separated by spaces.
    #[arg(long)]
    params: String,
    /// Boosting rounds.
    #[arg(long)]
    rounds: usize,
}

/// SHA-256 of the model text from the first tree to `end of trees`: the trees alone, without
/// the parameter section (which differs between the C API and the Python package).
fn trees_sha256(model: &str) -> Result<String> {
    let start = model
        .find("Tree=0")
        .context("the model text has no `Tree=0`")?;
    let end = model
        .find("end of trees")
        .context("the model text has no `end of trees`")?;
    if end < start {
        bail!("`end of trees` comes before `Tree=0` in the model text");
    }
    Ok(hex::encode(Sha256::digest(&model.as_bytes()[start..end])))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let train_set = Dataset::from_file(&args.train, &args.params, None)
        .with_context(|| format!("loading {}", args.train.display()))?;
    let test_set = Dataset::from_file(&args.test, &args.params, Some(&train_set))
        .with_context(|| format!("loading {}", args.test.display()))?;
    let load_seconds = t0.elapsed().as_secs_f64();

    let mut history: Vec<Vec<f64>> = Vec::with_capacity(args.rounds);
    let options = TrainOptions {
        num_boost_round: args.rounds,
        early_stopping: None,
    };
    let t1 = Instant::now();
    let booster = train(&args.params, &train_set, &[&test_set], &options, |it| {
        history.push(it.valid[0].iter().map(|e| e.value).collect());
    })
    .context("training")?;
    let train_seconds = t1.elapsed().as_secs_f64();

    let names = booster.eval_names();
    let last = history.last().context("no iteration was trained")?;
    let ndcg: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(last)
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let report = json!({
        "tool": "quire-lgbm",
        "lightgbm": "LightGBM 4.7.0 as vendored and built by lightgbm3-sys 1.0.11 (cmake Release, OpenMP)",
        "train_rows": train_set.n_rows(),
        "test_rows": test_set.n_rows(),
        "features": train_set.n_features(),
        "load_seconds": load_seconds,
        "train_seconds": train_seconds,
        "iterations": booster.num_iterations(),
        "metrics": names,
        "ndcg": ndcg,
        "history": history,
        "trees_sha256": trees_sha256(&booster.save_model_string(None)?)?,
    });
    println!("{report}");
    Ok(())
}
