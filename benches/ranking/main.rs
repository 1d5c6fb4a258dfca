//! `ranking-bench`: Quire's side of the ranking service benchmark (`scripts/bench-ranking.sh`,
//! harness `benches/ranking/run.py`).
//!
//! - `prepare --dir D`: a bookstore from the real goodbooks-10k catalog (synthetic activity and
//!   users), a 300-tree, 31-leaf LightGBM lambdarank model over the 28 features of
//!   `quire_featspec` trained on BM25 searches of it, exported to ONNX and registered as
//!   `ltr@production` in a SQLite registry under D, and D/requests.jsonl: request bodies of 100
//!   BM25 candidates each. Also D/model.onnx and D/feature_snapshot.json for the Python peer.
//! - `floor --dir D`: the in-process floor: `OnnxScorer::score` of the same 100-row matrices
//!   with one single-threaded session, no HTTP; with `--rate R`, in an open loop at R calls a
//!   second over one thread and session per core.
//! - `serve --dir D --listen ADDR`: `quire_ranking::serve` on that registry until SIGINT.
//! - `echo --listen ADDR`: an axum server answering each request with a fixed answer and no
//!   other work (HTTP alone); with `--score-dir D`, after ONNX Runtime's scoring of one of D's
//!   prepared feature matrices on `spawn_blocking` (the simplest ONNX server); with
//!   `--work-us US`, after US microseconds of plain arithmetic there (the control servers).
//! - `load --url URL --bodies FILE …`: the load generator (closed loop, or open loop at a fixed
//!   rate) printing throughput and latency percentiles as JSON.
//! - `hiccups --seconds S --threads N`: the machine's own stalls, with N cores kept busy.

mod hiccups;
mod load;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::response::IntoResponse;
use clap::{Parser, Subcommand};
use quire_featspec::{N_FEATURES, OnlineSnapshot, ServingTables};
use quire_onnx::OnnxScorer;
use serde_json::json;

/// The allocator of the deployed service (`quire serve ranking`), so the served figures are
/// the deployment's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "The ranking service benchmark's Quire side and load generator")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds the bookstore, trains, exports and registers the model, writes the requests.
    Prepare {
        #[arg(long)]
        dir: PathBuf,
        /// Boosting rounds (trees).
        #[arg(long, default_value_t = 300)]
        trees: usize,
        /// Leaves per tree.
        #[arg(long, default_value_t = 31)]
        leaves: usize,
        /// Request bodies to write.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Candidates per request.
        #[arg(long, default_value_t = 100)]
        candidates: usize,
    },
    /// Times ONNX Runtime scoring the requests' feature matrices in process.
    Floor {
        #[arg(long)]
        dir: PathBuf,
        /// Timed calls.
        #[arg(long, default_value_t = 5000)]
        calls: usize,
        /// Idle time between calls, in microseconds (0: back to back).
        #[arg(long, default_value_t = 0)]
        gap_us: u64,
        /// Open loop instead: calls at this many a second in all, spread over `--threads`
        /// threads (each its own session, its slots evenly interleaved with the others'), each
        /// timed from its slot; no HTTP, no hand-off between threads.
        #[arg(long, conflicts_with = "gap_us")]
        rate: Option<f64>,
        /// Threads of the open loop (default: one per core).
        #[arg(long, requires = "rate")]
        threads: Option<usize>,
    },
    /// Runs the ranking service on the prepared registry until SIGINT.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Tokio worker threads (default: one per core, as `#[tokio::main]`).
        #[arg(long)]
        threads: Option<usize>,
        /// Scoring threads, one ONNX Runtime session each (default: the service's).
        #[arg(long)]
        scoring_threads: Option<usize>,
        /// Fewest rows for a batch to be split with an idle scoring thread, 0 never (default:
        /// the service's).
        #[arg(long)]
        split_min_rows: Option<usize>,
    },
    /// HTTP alone: answers every POST /v1/rank with the same JSON of `answer_bytes` bytes, no
    /// other work (and GET /health/ready), until SIGINT. Under the load generator it measures what HTTP and the load
    /// generator take on this machine.
    Echo {
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Size of the answer (a ranking of 100 candidates: about 4 KB).
        #[arg(long, default_value_t = 4096)]
        answer_bytes: usize,
        /// CPU work per request before answering, on tokio's blocking pool: a fixed count of
        /// arithmetic steps that takes this many microseconds on an undisturbed core (0: none).
        /// A stall of the core lengthens it, as it lengthens real scoring.
        #[arg(long, default_value_t = 0)]
        work_us: u64,
        /// Score instead, on tokio's blocking pool, one of the prepared requests' feature
        /// matrices (computed up front) with the model in this prepared directory: ONNX
        /// Runtime's work behind the simplest server, with no parsing and no features.
        #[arg(long, conflicts_with = "work_us")]
        score_dir: Option<PathBuf>,
    },
    /// Sends requests and reports throughput and latency.
    Load(load::LoadArgs),
    /// The machine's own stalls: threads that only read the clock, each reporting the gaps in
    /// which it did not run.
    Hiccups {
        /// Seconds measured.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Spinning threads (cores kept busy).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Prepare {
            dir,
            trees,
            leaves,
            requests,
            candidates,
        } => {
            let report = world::prepare(&dir, trees, leaves, requests, candidates)?;
            println!("{report}");
        }
        Command::Floor {
            dir,
            calls,
            gap_us,
            rate,
            threads,
        } => match rate {
            Some(rate) => floor_open(&dir, calls, rate, threads)?,
            None => floor(&dir, calls, gap_us)?,
        },
        Command::Serve {
            dir,
            listen,
            threads,
            scoring_threads,
            split_min_rows,
        } => serve(&dir, listen, threads, scoring_threads, split_min_rows)?,
        Command::Echo {
            listen,
            answer_bytes,
            work_us,
            score_dir,
        } => echo(listen, answer_bytes, work_us, score_dir.as_deref())?,
        Command::Load(args) => {
            let report = load::run(&args)?;
            println!("{report}");
        }
        Command::Hiccups { seconds, threads } => println!("{}", hiccups::run(seconds, threads)?),
    }
    Ok(())
}

/// Percentile `p` (0–100) of sorted `v`, nearest rank.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn floor(dir: &std::path::Path, calls: usize, gap_us: u64) -> Result<()> {
    let snapshot = OnlineSnapshot::read(&dir.join("feature_snapshot.json"))?;
    let bodies = world::read_requests(&dir.join("requests.jsonl"))?;
    let scorer = OnnxScorer::load(dir.join("model.onnx"), 1)?;
    // The matrices the service scores, computed up front as the service does per request
    // (timed), and checked bit for bit against the feature job's `assemble` (the training rows).
    let parsed: Vec<world::Body> = bodies
        .iter()
        .map(world::Body::parse)
        .collect::<Result<_>>()?;
    let tables = ServingTables::new(snapshot.clone());
    let t = Instant::now();
    let matrices: Vec<(Vec<f32>, usize)> = parsed
        .iter()
        .map(|b| world::serving_features(&tables, b))
        .collect();
    let features_us = t.elapsed().as_secs_f64() * 1e6 / matrices.len() as f64;
    let t = Instant::now();
    let training: Vec<(Vec<f32>, usize)> = parsed
        .iter()
        .map(|b| world::features(&snapshot, b))
        .collect();
    let assemble_us = t.elapsed().as_secs_f64() * 1e6 / training.len() as f64;
    let bits = |rows: &[f32]| rows.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (i, (served, trained)) in matrices.iter().zip(&training).enumerate() {
        if bits(&served.0) != bits(&trained.0) {
            anyhow::bail!("request {i}: the service's features are not the training job's");
        }
    }
    for (rows, n) in matrices.iter().take(200) {
        scorer.score(rows, *n, N_FEATURES)?;
    }
    let mut micros = Vec::with_capacity(calls);
    for i in 0..calls {
        let (rows, n) = &matrices[i % matrices.len()];
        if gap_us > 0 {
            std::thread::sleep(Duration::from_micros(gap_us));
        }
        let t = Instant::now();
        let scores = scorer.score(rows, *n, N_FEATURES)?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(scores);
    }
    let split = if gap_us == 0 {
        let two = OnnxScorer::load(dir.join("model.onnx"), 2)?;
        Some(summary(&split_floor(&two, &matrices, calls)?))
    } else {
        None
    };
    let rows = matrices.first().map_or(0, |m| m.1);
    let report = json!({
        "what": "OnnxScorer::score, one single-threaded ONNX Runtime session, no HTTP",
        "rows_per_call": rows,
        "calls": calls,
        "score_us": summary(&micros),
        "split_us": split,
        "features_us_per_request": features_us,
        "assemble_us_per_request": assemble_us,
    });
    println!("{report}");
    Ok(())
}

/// p50, p90, p99 and mean of `micros`.
fn summary(micros: &[f64]) -> serde_json::Value {
    let mut sorted = micros.to_vec();
    sorted.sort_by(f64::total_cmp);
    json!({
        "p50": percentile(&sorted, 50.0),
        "p90": percentile(&sorted, 90.0),
        "p99": percentile(&sorted, 99.0),
        "mean": sorted.iter().sum::<f64>() / sorted.len().max(1) as f64,
    })
}

/// The back-to-back floor with each batch split in two halves scored at once, the first on
/// this thread and the second on a helper thread (each with its own single-threaded session of
/// `scorer`), as the ranking service splits a batch while a core is free
/// (`RankingOptions::split_min_rows`): the least a server scoring that way could take.
/// Microseconds per call.
fn split_floor(
    scorer: &OnnxScorer,
    matrices: &[(Vec<f32>, usize)],
    calls: usize,
) -> Result<Vec<f64>> {
    let (work, halves) = std::sync::mpsc::sync_channel::<(&[f32], usize)>(1);
    let (done, scored) = std::sync::mpsc::sync_channel(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for (rows, n) in halves {
                let _ = done.send(scorer.score(rows, n, N_FEATURES));
            }
        });
        let call = |i: usize| -> Result<()> {
            let (rows, n) = &matrices[i % matrices.len()];
            let (rows, n) = (rows.as_slice(), *n);
            let half = n / 2;
            let (head, tail) = rows.split_at(half * N_FEATURES);
            work.send((tail, n - half))
                .map_err(|_| anyhow::anyhow!("the helper thread stopped"))?;
            std::hint::black_box(scorer.score(head, half, N_FEATURES)?);
            std::hint::black_box(scored.recv()??);
            Ok(())
        };
        for i in 0..200 {
            call(i)?;
        }
        let mut micros = Vec::with_capacity(calls);
        for i in 0..calls {
            let t = Instant::now();
            call(i)?;
            micros.push(t.elapsed().as_secs_f64() * 1e6);
        }
        drop(work);
        Ok(micros)
    })
}

/// The in-process floor under the open loop of the service's half-saturation run: `threads`
/// threads, one session each, scoring the request matrices at `rate` calls a second in all
/// (each thread every `threads`-th slot), timed as the load generator times a request: from
/// when the thread woke for its slot, or from the slot when it woke more than
/// [`load::PACER_SLACK`] late. The least any server could take at that rate on this machine:
/// no HTTP, no hand-off between threads, no load generator sharing the cores.
fn floor_open(
    dir: &std::path::Path,
    calls: usize,
    rate: f64,
    threads: Option<usize>,
) -> Result<()> {
    anyhow::ensure!(rate > 0.0, "--rate must be above 0, not {rate}");
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
        .max(1);
    let tables = ServingTables::new(OnlineSnapshot::read(&dir.join("feature_snapshot.json"))?);
    let matrices: Vec<(Vec<f32>, usize)> = world::read_requests(&dir.join("requests.jsonl"))?
        .iter()
        .map(|v| world::Body::parse(v).map(|b| world::serving_features(&tables, &b)))
        .collect::<Result<_>>()?;
    let scorer = OnnxScorer::load(dir.join("model.onnx"), threads)?;
    for (rows, n) in matrices.iter().cycle().take(200 * threads) {
        scorer.score(rows, *n, N_FEATURES)?;
    }
    let period = Duration::from_secs_f64(threads as f64 / rate);
    let per_thread = calls.div_ceil(threads);
    let start = Instant::now() + Duration::from_millis(50);
    let (scorer, matrices) = (&scorer, &matrices);
    // Each call's (microseconds, timed from its slot).
    let timed: Vec<Vec<(f64, bool)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<Vec<(f64, bool)>> {
                    let mut out = Vec::with_capacity(per_thread);
                    for i in 0..per_thread {
                        let slot = start + period.mul_f64(i as f64 + t as f64 / threads as f64);
                        if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let woke = Instant::now();
                        let late = woke - slot > load::PACER_SLACK;
                        let (rows, n) = &matrices[(i * threads + t) % matrices.len()];
                        std::hint::black_box(scorer.score(rows, *n, N_FEATURES)?);
                        let from = if late { slot } else { woke };
                        out.push((from.elapsed().as_secs_f64() * 1e6, late));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a scoring thread panicked"))?
            })
            .collect::<Result<_>>()
    })?;
    let late = timed.iter().flatten().filter(|t| t.1).count();
    let mut micros: Vec<f64> = timed.iter().flatten().map(|t| t.0).collect();
    micros.sort_by(f64::total_cmp);
    let report = json!({
        "what": "OnnxScorer::score in an open loop: threads with a session each, no HTTP",
        "rate": rate,
        "threads": threads,
        "calls": micros.len(),
        "late": late,
        "score_us": {
            "p50": percentile(&micros, 50.0),
            "p90": percentile(&micros, 90.0),
            "p99": percentile(&micros, 99.0),
        },
    });
    println!("{report}");
    Ok(())
}

fn serve(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    threads: Option<usize>,
    scoring_threads: Option<usize>,
    split_min_rows: Option<usize>,
) -> Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        builder.worker_threads(t);
    }
    let rt = builder.enable_all().build().context("a tokio runtime")?;
    let mut opts =
        quire_ranking::RankingOptions::new("ltr@production".parse()?, world::registry_url(dir));
    opts.listen = listen;
    opts.artifacts = dir.join("models");
    opts.poll_interval = Duration::from_secs(1);
    if let Some(n) = scoring_threads {
        opts.session_pool = n;
    }
    if let Some(n) = split_min_rows {
        opts.split_min_rows = n;
    }
    rt.block_on(quire_ranking::serve(opts, async {
        let _ = tokio::signal::ctrl_c().await;
    }))?;
    Ok(())
}

/// Steps of [`work`] in one calibration measurement.
const CALIBRATION_STEPS: u64 = 2_000_000;

/// `steps` dependent arithmetic steps: CPU time with no memory traffic.
fn work(steps: u64) -> u64 {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15_u64);
    for _ in 0..steps {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

/// Steps of [`work`] that take `us` microseconds on this core undisturbed: the fastest of
/// several measurements, so a stall during calibration does not shorten the work.
fn steps_for(us: u64) -> u64 {
    if us == 0 {
        return 0;
    }
    let fastest = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(work(CALIBRATION_STEPS));
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_secs(1));
    (CALIBRATION_STEPS as f64 * us as f64 / (fastest.as_secs_f64() * 1e6)).round() as u64
}

fn echo(
    listen: std::net::SocketAddr,
    answer_bytes: usize,
    work_us: u64,
    score_dir: Option<&std::path::Path>,
) -> Result<()> {
    // `{"pad":"xx…"}`: valid JSON of the asked size (at least its 10 bytes of frame).
    let answer = axum::body::Bytes::from(format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(answer_bytes.saturating_sub(10))
    ));
    let steps = steps_for(work_us);
    let scoring = match score_dir {
        Some(dir) => {
            let snapshot = OnlineSnapshot::read(&dir.join("feature_snapshot.json"))?;
            let tables = ServingTables::new(snapshot);
            let matrices: Vec<(Vec<f32>, usize)> =
                world::read_requests(&dir.join("requests.jsonl"))?
                    .iter()
                    .map(|b| Ok(world::serving_features(&tables, &world::Body::parse(b)?)))
                    .collect::<Result<_>>()?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let scorer = OnnxScorer::load(dir.join("model.onnx"), cores)?;
            Some(std::sync::Arc::new((scorer, matrices)))
        }
        None => None,
    };
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/v1/rank",
            axum::routing::post(move |_body: axum::body::Bytes| {
                let answer = answer.clone();
                let scoring = scoring.clone();
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    // A failure is answered 500 (the load generator counts it failed and the
                    // harness stops), not a panic.
                    let worked = match scoring {
                        Some(scoring) => tokio::task::spawn_blocking(move || {
                            let (scorer, matrices) = &*scoring;
                            let (rows, n) = &matrices[i % matrices.len()];
                            scorer
                                .score(rows, *n, N_FEATURES)
                                .map(|scores| drop(std::hint::black_box(scores)))
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|scored| scored),
                        None if steps > 0 => tokio::task::spawn_blocking(move || {
                            std::hint::black_box(work(steps));
                        })
                        .await
                        .map_err(|e| e.to_string()),
                        None => Ok(()),
                    };
                    match worked {
                        Ok(()) => (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            answer,
                        )
                            .into_response(),
                        Err(e) => {
                            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response()
                        }
                    }
                }
            }),
        )
        .route("/health/ready", axum::routing::get(|| async { "ready" }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        // As the ranking service's listener: answers leave at once (no Nagle delay).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving")
    })
}
