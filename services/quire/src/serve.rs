//! `quire serve …`: the long-running services.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::ml::RegistryArgs;

#[derive(Subcommand)]
pub enum ServeCommand {
    /// The ranking service for the Search Service (docs/contracts/ranking-api.md)
    Ranking(RankingArgs),
    /// The live path: HTTP intake (POST /v1/events), archiver, live KPIs and dashboard
    Live(LiveArgs),
    /// The registry over HTTP: MLflow's REST API for the `mlflow` client, and a web UI
    Registry(RegistryServerArgs),
}

#[derive(Args)]
pub struct LiveArgs {
    /// Address to listen on (intake, JSON API and dashboard): IP:PORT or HOST:PORT
    #[arg(long, default_value = quire_live_server::DEFAULT_LISTEN, value_parser = listen_addr)]
    listen: SocketAddr,
    #[command(flatten)]
    lake: crate::LakeArg,
    /// Redis URL of the event bus and the live store, e.g. redis://127.0.0.1:6391/0
    #[arg(long, env = "QUIRE_REDIS")]
    redis: String,
    /// Bearer token senders must present on POST /v1/events (none: no token needed)
    #[arg(long, env = "QUIRE_INTAKE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Most events per intake request
    #[arg(long, default_value_t = quire_live_server::DEFAULT_MAX_BATCH)]
    max_batch: usize,
    /// Largest intake request body, in bytes
    #[arg(long, default_value_t = quire_live_server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// The watermark's allowed lateness, in minutes (docs/contracts/kpis.md)
    #[arg(long, default_value_t = quire_live_server::DEFAULT_ALLOWED_LATENESS.as_secs() / 60)]
    allowed_lateness_minutes: u64,
    /// This archiver's consumer name; keep it across restarts to resume its pending entries
    #[arg(long, default_value = "archiver-1")]
    archiver_name: String,
    /// Hours a bus entry is kept at most once every consumer group has acknowledged it
    /// (fewer when --bus-max-entries is reached)
    #[arg(long, default_value_t = 24)]
    bus_retention_hours: u64,
    /// About how many bus entries (one per intake request) are kept, however recent, once
    /// every consumer group has acknowledged them: bounds Redis' memory at a high event rate
    #[arg(long, default_value_t = quire_live_server::DEFAULT_BUS_MAX_ENTRIES)]
    bus_max_entries: usize,
    /// Seconds between recomputations of today's KPIs (the hourly GMV follows every batch)
    #[arg(long, default_value_t = quire_live_server::DEFAULT_TODAY_EVERY.as_secs_f64())]
    today_every_seconds: f64,
}

#[derive(Args)]
pub struct RegistryServerArgs {
    /// Address to listen on: IP:PORT or HOST:PORT
    #[arg(long, default_value = quire_registry_server::DEFAULT_LISTEN, value_parser = listen_addr)]
    listen: SocketAddr,
    /// Largest request body (one artifact upload), in bytes
    #[arg(long, default_value_t = quire_registry_server::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args)]
pub struct RankingArgs {
    /// The model alias to serve and follow, e.g. ltr@production
    #[arg(long)]
    model: quire_ranking::ModelAlias,
    /// Address to listen on: IP:PORT or HOST:PORT
    #[arg(long, default_value = quire_ranking::DEFAULT_LISTEN, value_parser = listen_addr)]
    listen: SocketAddr,
    /// Seconds between checks of where the alias points
    #[arg(long, default_value_t = quire_ranking::DEFAULT_POLL_INTERVAL.as_secs())]
    poll_seconds: u64,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = quire_ranking::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Scoring threads, one single-threaded ONNX Runtime session each: requests scored at
    /// once (default: one more than the cores)
    #[arg(long, default_value_t = quire_ranking::default_scoring_threads())]
    scoring_threads: usize,
    /// Fewest candidates for a request's batch to be split in two, scored at once on two
    /// threads while a core is free (0: never split)
    #[arg(long, default_value_t = quire_ranking::DEFAULT_SPLIT_MIN_ROWS)]
    split_min_rows: usize,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(cmd: ServeCommand) -> Result<()> {
    match cmd {
        ServeCommand::Ranking(a) => serve_ranking(a),
        ServeCommand::Live(a) => serve_live(a),
        ServeCommand::Registry(a) => serve_registry(a),
    }
}

fn serve_live(a: LiveArgs) -> Result<()> {
    if a.max_batch == 0 {
        anyhow::bail!("--max-batch must be at least 1");
    }
    let mut opts = quire_live_server::LiveServerOptions::new(&a.lake.lake, a.redis.clone());
    opts.listen = a.listen;
    opts.token = a.token.filter(|t| !t.is_empty());
    opts.max_batch = a.max_batch;
    opts.max_body_bytes = a.max_body_bytes;
    opts.allowed_lateness = Duration::from_secs(a.allowed_lateness_minutes * 60);
    opts.archiver.consumer = a.archiver_name;
    opts.bus.retention = Duration::from_secs(a.bus_retention_hours.max(1) * 3600);
    if a.bus_max_entries == 0 {
        anyhow::bail!("--bus-max-entries must be at least 1");
    }
    opts.bus.max_entries = a.bus_max_entries;
    if !(a.today_every_seconds.is_finite() && a.today_every_seconds > 0.0) {
        anyhow::bail!("--today-every-seconds must be a positive number of seconds");
    }
    opts.live.today_every = Duration::from_secs_f64(a.today_every_seconds);
    runtime()?
        .block_on(quire_live_server::serve(opts, shutdown_signal()))
        .with_context(|| {
            format!(
                "live service on {} (lake {}, redis {})",
                a.listen,
                a.lake.lake.display(),
                a.redis
            )
        })
}

fn serve_registry(a: RegistryServerArgs) -> Result<()> {
    let mut opts = quire_registry_server::RegistryServerOptions::new(
        a.registry.url()?,
        a.registry.artifacts_dir()?,
    );
    opts.listen = a.listen;
    opts.max_body_bytes = a.max_body_bytes;
    runtime()?
        .block_on(quire_registry_server::serve(opts, shutdown_signal()))
        .with_context(|| format!("registry server on {}", a.listen))
}

fn serve_ranking(a: RankingArgs) -> Result<()> {
    if a.scoring_threads == 0 {
        anyhow::bail!("--scoring-threads must be at least 1");
    }
    let mut opts = quire_ranking::RankingOptions::new(a.model.clone(), a.registry.url()?);
    opts.listen = a.listen;
    opts.artifacts = a.registry.artifacts_dir()?;
    opts.poll_interval = Duration::from_secs(a.poll_seconds.max(1));
    opts.max_body_bytes = a.max_body_bytes;
    opts.session_pool = a.scoring_threads;
    opts.split_min_rows = a.split_min_rows;
    runtime()?
        .block_on(quire_ranking::serve(opts, shutdown_signal()))
        .with_context(|| format!("ranking service for {} on {}", a.model, a.listen))
}

/// `--listen`: an `IP:PORT`, or a `HOST:PORT` resolved at start (its first IPv4 address if it
/// has one, so `localhost:8080` is 127.0.0.1, as clients on the same host usually try first).
fn listen_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s} is not IP:PORT nor a HOST:PORT that resolves ({e})"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::listen_addr;

    #[test]
    fn listen_takes_an_address_or_a_host() {
        assert_eq!(
            listen_addr("127.0.0.1:8391").unwrap().to_string(),
            "127.0.0.1:8391"
        );
        assert_eq!(listen_addr("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert_eq!(
            listen_addr("localhost:8391").unwrap().to_string(),
            "127.0.0.1:8391"
        );
        for bad in ["localhost", "localhost:99999", "127.0.0.1:http"] {
            assert!(listen_addr(bad).is_err(), "{bad}");
        }
    }
}
