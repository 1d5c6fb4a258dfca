//! `quire recs publish`: the recommendation batch (docs/contracts/recs-redis.md, cli.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quire_recs::{ModelRef, PublishOptions, RedisTarget};
use serde::Serialize;

use crate::ml::RegistryArgs;
use crate::output::{print_json, table};

#[derive(Subcommand)]
pub enum RecsCommand {
    /// Compute top-N lists for every user and book and publish them to Redis atomically
    Publish(PublishArgs),
}

#[derive(Args)]
pub struct PublishArgs {
    /// CF model: NAME or NAME@ALIAS (e.g. cf@production); NAME alone is its latest version
    #[arg(long)]
    model: String,
    /// Redis URL, e.g. redis://127.0.0.1:6391/0
    #[arg(long, env = "QUIRE_REDIS")]
    redis: String,
    /// The Redis URL is a seed node of a Redis Cluster (more nodes with --cluster-node); a
    /// cluster node given without it is detected and its cluster used
    #[arg(long)]
    cluster: bool,
    /// More cluster seed nodes
    #[arg(long = "cluster-node")]
    cluster_nodes: Vec<String>,
    /// List length (N)
    #[arg(long, default_value_t = 50)]
    n: usize,
    /// How long the previous set stays readable after the pointer moves, in seconds (at least
    /// 60: a reader that has just read the pointer must still find that set's keys)
    #[arg(long, default_value_t = 6 * 3600, value_parser = clap::value_parser!(u64).range(60..))]
    grace_seconds: u64,
    /// The lake whose purchases are left out of the users' lists, besides those the model was
    /// trained on, so that a publish after training leaves out newer ones too [env:
    /// QUIRE_LAKE] [default: .quire/lake]
    // Read from the environment here, not by clap, so that `--no-lake` refuses only a
    // `--lake` given with it, not a QUIRE_LAKE set for the other commands.
    #[arg(long)]
    lake: Option<PathBuf>,
    /// Read no lake: leave out only the purchases the model was trained on
    #[arg(long)]
    no_lake: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    #[arg(long)]
    json: bool,
}

/// What `--json` prints: cli.md's fields first, then the rest of the publish summary.
#[derive(Serialize)]
struct Out {
    set: String,
    users: u64,
    items: u64,
    seconds: f64,
    model: ModelRef,
    summary: quire_recs::PublishSummary,
}

pub fn recs(cmd: RecsCommand) -> Result<()> {
    let RecsCommand::Publish(a) = cmd;
    // The lake is read, never created here: a missing one would silently hide every purchase
    // made since the model was trained (docs/contracts/recs-redis.md: never a book already bought).
    let lake_dir = match (&a.lake, a.no_lake) {
        (Some(_), true) => anyhow::bail!("--lake and --no-lake contradict each other"),
        (_, true) => None,
        (Some(dir), false) => Some(dir.clone()),
        (None, false) => Some(
            std::env::var_os("QUIRE_LAKE")
                .map_or_else(|| PathBuf::from(".quire/lake"), PathBuf::from),
        ),
    };
    let lake = match &lake_dir {
        Some(dir) if !dir.is_dir() => anyhow::bail!(
            "no lake at {}: give --lake DIR (or QUIRE_LAKE), or --no-lake to leave out only the \
             purchases the model was trained on",
            dir.display()
        ),
        dir => dir.as_deref(),
    };
    let target = if a.cluster {
        RedisTarget::Cluster(
            std::iter::once(a.redis.clone())
                .chain(a.cluster_nodes.clone())
                .collect(),
        )
    } else {
        RedisTarget::Single(a.redis.clone())
    };
    let opts = PublishOptions {
        grace: Duration::from_secs(a.grace_seconds),
        ..Default::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (registry, artifacts) = (a.registry.url()?, a.registry.artifacts_dir()?);
    let enabled = crate::commands::progress_enabled(a.json);
    let bar = if enabled {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.enable_steady_tick(Duration::from_millis(120));
    let (model, s) = rt
        .block_on(quire_pipeline::recs::publish_recs(
            &quire_pipeline::recs::RecsJob {
                registry: &registry,
                artifacts: &artifacts,
                model: &a.model,
                target: &target,
                n: a.n,
                opts: &opts,
                lake,
            },
            |stage| bar.set_message(stage.to_owned()),
            |p| {
                if bar.length() != Some(p.keys_total) {
                    bar.set_length(p.keys_total);
                    bar.set_style(
                        ProgressStyle::with_template("publishing [{bar:30}] {pos}/{len} keys")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                }
                bar.set_position(p.keys_done);
            },
        ))
        .with_context(|| {
            format!(
                "publishing recommendations to {}",
                quire_registry::redacted_url(&a.redis)
            )
        })?;
    bar.finish_and_clear();
    if a.json {
        return print_json(&Out {
            set: s.set.clone(),
            users: s.users,
            items: s.items,
            seconds: s.seconds,
            model,
            summary: s,
        });
    }
    let rows = [
        ["set (quire:recs:current)".to_string(), s.set.clone()],
        [
            "model".into(),
            format!("{} v{} (run {})", model.name, model.version, model.run_id),
        ],
        ["users with lists".into(), s.users.to_string()],
        ["books with lists".into(), s.items.to_string()],
        ["keys".into(), s.keys.to_string()],
        [
            "compute / write".into(),
            format!("{:.2}s / {:.2}s", s.compute_seconds, s.write_seconds),
        ],
        ["unchanged".into(), s.unchanged.to_string()],
        [
            "previous set (expires after the grace period)".into(),
            s.previous.clone().unwrap_or_else(|| "-".into()),
        ],
    ];
    outln!("{}", table(["", ""], rows));
    Ok(())
}
