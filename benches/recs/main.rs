//! `recs-bench`: the Quire side of the recommendation batch benchmark (benches/recs/README.md;
//! driven by `scripts/bench-recs.sh` through `benches/recs/run.py`).
//!
//! Reads the input written by `benches/recs/gen_data.py` (factors, purchases, orders), then
//! does what `quire recs publish` does after loading a model from the registry: count
//! co-purchases ([`CoPurchases::from_orders`]), compute every list ([`compute_recs`]) on a
//! rayon pool of `--threads`, and publish them to Redis ([`publish`]). Prints one JSON object:
//! the phases' seconds, the publish summary, and the mean size of a user list's value.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use ndarray::Array2;
use quire_cf::{AlsModel, Csr};
use quire_recs::layout::{RecItem, RecListValue};
use quire_recs::{
    CoPurchases, ModelRef, PublishOptions, RecsConfig, RecsInput, RedisTarget, compute_recs,
    publish,
};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Quire's side of the recommendation batch benchmark")]
struct Cli {
    /// Directory written by gen_data.py.
    #[arg(long)]
    data: PathBuf,
    /// Redis URL (repeat with --cluster for cluster nodes).
    #[arg(long, required = true)]
    redis: Vec<String>,
    /// Publish to a Redis Cluster.
    #[arg(long)]
    cluster: bool,
    /// List length N.
    #[arg(long, default_value_t = 50)]
    n: usize,
    /// Threads for the computation (rayon) and the Redis client (tokio).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Model name and version for the set id and meta.
    #[arg(long, default_value = "cf")]
    model: String,
    #[arg(long, default_value_t = 1)]
    version: u64,
    /// Commands per pipeline.
    #[arg(long, default_value_t = PublishOptions::default().batch_size)]
    batch_size: usize,
    /// Pipelines in flight.
    #[arg(long, default_value_t = PublishOptions::default().in_flight)]
    in_flight: usize,
    /// Skip the EXISTS check of every key before the pointer moves.
    #[arg(long)]
    no_verify: bool,
}

fn read_le<const W: usize, T>(path: &Path, from: fn([u8; W]) -> T) -> Result<Vec<T>> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() % W != 0 {
        bail!(
            "{}: {} bytes is not a multiple of {W}",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes
        .chunks_exact(W)
        .map(|c| from(c.try_into().unwrap_or([0; W])))
        .collect())
}

/// Rows of a CSR pair of files as `(indptr, indices)`.
fn read_csr(dir: &Path, name: &str) -> Result<(Vec<usize>, Vec<u32>)> {
    let indptr = read_le(&dir.join(format!("{name}.indptr.i64")), i64::from_le_bytes)?;
    let indices = read_le(&dir.join(format!("{name}.indices.i32")), i32::from_le_bytes)?;
    let indptr: Vec<usize> = indptr.into_iter().map(|v| v as usize).collect();
    if indptr.last().copied() != Some(indices.len()) {
        bail!("{name}: indptr does not end at the number of indices");
    }
    Ok((indptr, indices.into_iter().map(|v| v as u32).collect()))
}

fn load(dir: &Path) -> Result<(RecsInput, Vec<usize>, Vec<u32>)> {
    let meta: Value = serde_json::from_slice(&fs::read(dir.join("meta.json"))?)?;
    let get = |k: &str| -> Result<usize> {
        meta[k]
            .as_u64()
            .map(|v| v as usize)
            .with_context(|| format!("meta.json: no {k}"))
    };
    let (users, books, k) = (get("users")?, get("books")?, get("factors")?);
    let uf = read_le(&dir.join("user_factors.f32"), f32::from_le_bytes)?;
    let itf = read_le(&dir.join("item_factors.f32"), f32::from_le_bytes)?;
    let model = AlsModel {
        user_factors: Array2::from_shape_vec((users, k), uf)?,
        item_factors: Array2::from_shape_vec((books, k), itf)?,
    };
    let (b_ptr, b_idx) = read_csr(dir, "bought")?;
    let mut triplets = Vec::with_capacity(b_idx.len());
    for u in 0..users {
        for &b in &b_idx[b_ptr[u]..b_ptr[u + 1]] {
            triplets.push((u as u32, b, 1.0f32));
        }
    }
    let bought = Csr::from_triplets(users, books, &triplets)?;
    let (o_ptr, o_idx) = read_csr(dir, "orders")?;
    let input = RecsInput {
        user_ids: (0..users).map(|u| format!("usr_{u}")).collect(),
        book_ids: (0..books).map(|b| format!("bk_{b}")).collect(),
        model,
        bought,
        co_purchases: CoPurchases::default(),
        popularity: Vec::new(),
    };
    Ok((input, o_ptr, o_idx))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let start = Instant::now();
    let (mut input, o_ptr, o_idx) = load(&cli.data)?;
    let load_seconds = start.elapsed().as_secs_f64();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cli.threads)
        .build()?;
    let t = Instant::now();
    let sets = pool.install(|| -> Result<_> {
        let orders = o_ptr.windows(2).map(|w| &o_idx[w[0]..w[1]]);
        let t = Instant::now();
        input.co_purchases = CoPurchases::from_orders(input.book_ids.len(), orders)?;
        eprintln!("from_orders {:?}", t.elapsed());
        input.popularity = input
            .co_purchases
            .item_orders
            .iter()
            .map(|&c| u64::from(c))
            .collect();
        Ok(compute_recs(&input, &RecsConfig::new(cli.n))?)
    })?;
    let compute_seconds = t.elapsed().as_secs_f64();
    drop(pool);

    let target = if cli.cluster {
        RedisTarget::Cluster(cli.redis.clone())
    } else {
        RedisTarget::Single(cli.redis[0].clone())
    };
    let model = ModelRef {
        name: cli.model.clone(),
        version: cli.version,
        run_id: "bench".into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads)
        .enable_all()
        .build()?;
    let summary = runtime.block_on(publish(
        &target,
        &sets,
        &model,
        &PublishOptions {
            batch_size: cli.batch_size,
            in_flight: cli.in_flight,
            verify: !cli.no_verify,
            ..PublishOptions::default()
        },
        |_| {},
    ))?;
    let seconds = start.elapsed().as_secs_f64();

    // Mean size of a user list's value, for redis-benchmark's -d (not timed).
    let sample: Vec<usize> = sets
        .users
        .iter()
        .step_by(97)
        .map(|list| {
            let value = RecListValue {
                items: list
                    .iter()
                    .map(|&(j, score)| RecItem {
                        book_id: sets.book_ids[j as usize].clone(),
                        score,
                    })
                    .collect(),
            };
            serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0)
        })
        .collect();
    let mean_value_bytes = sample.iter().sum::<usize>() as f64 / sample.len().max(1) as f64;

    println!(
        "{}",
        json!({
            "side": "quire",
            "load_seconds": load_seconds,
            "compute_seconds": compute_seconds,
            "compute_phases": {
                "co_purchase_counts": compute_seconds - sets.compute_seconds,
                "users": sets.timings.users,
                "similar": sets.timings.similar,
                "items": sets.timings.items,
                "finish": sets.timings.finish,
            },
            "write_seconds": summary.write_seconds,
            "seconds": seconds,
            "set": summary.set,
            "users": summary.users,
            "items": summary.items,
            "keys": summary.keys,
            "mean_value_bytes": mean_value_bytes,
            "threads": cli.threads,
            "batch_size": cli.batch_size,
            "in_flight": cli.in_flight,
            "verify": !cli.no_verify,
            "n": cli.n,
        })
    );
    Ok(())
}
