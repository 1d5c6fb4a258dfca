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

pub fn serve(cmd: ServeCommand) -> Result<()> {
    let ServeCommand::Ranking(a) = cmd;
    let mut opts = quire_ranking::RankingOptions::new(a.model.clone(), a.registry.url()?);
    opts.listen = a.listen;
    opts.artifacts = a.registry.artifacts_dir()?;
    opts.poll_interval = Duration::from_secs(a.poll_seconds.max(1));
    opts.max_body_bytes = a.max_body_bytes;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(quire_ranking::serve(opts, shutdown_signal()))
        .with_context(|| format!("ranking service for {} on {}", a.model, a.listen))
}
