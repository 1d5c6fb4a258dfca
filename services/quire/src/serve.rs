//! `quire serve …`: the long-running services.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::ml::RegistryArgs;

#[derive(Subcommand)]
pub enum ServeCommand {
    /// The ranking service for the Search Service (contracts/ranking-api.md)
    Ranking(RankingArgs),
    /// The registry over HTTP: MLflow's REST API for the `mlflow` client, and a web UI
    Registry(RegistryServerArgs),
}

#[derive(Args)]
pub struct RegistryServerArgs {
    /// Address to listen on
    #[arg(long, default_value = quire_registry_server::DEFAULT_LISTEN)]
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
    /// Address to listen on
    #[arg(long, default_value = quire_ranking::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Seconds between checks of where the alias points
    #[arg(long, default_value_t = quire_ranking::DEFAULT_POLL_INTERVAL.as_secs())]
    poll_seconds: u64,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = quire_ranking::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
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
        ServeCommand::Registry(a) => serve_registry(a),
    }
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
    let mut opts = quire_ranking::RankingOptions::new(a.model.clone(), a.registry.url()?);
    opts.listen = a.listen;
    opts.artifacts = a.registry.artifacts_dir()?;
    opts.poll_interval = Duration::from_secs(a.poll_seconds.max(1));
    opts.max_body_bytes = a.max_body_bytes;
    runtime()?
        .block_on(quire_ranking::serve(opts, shutdown_signal()))
        .with_context(|| format!("ranking service for {} on {}", a.model, a.listen))
}
