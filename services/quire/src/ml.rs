//! `quire train`, `quire runs …`, `quire models …`: the data scientists' side (cli.md).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use quire_registry::{ArtifactStore, Registry, SearchRuns};
use serde::Serialize;

use crate::LakeArg;
use crate::output::{print_json, table};

/// Where the registry and its artifacts live.
#[derive(Args, Clone)]
pub struct RegistryArgs {
    /// Registry URL: sqlite:///path/registry.db or postgres://… [default: sqlite://<cwd>/models/registry.db]
    #[arg(long, env = "QUIRE_REGISTRY", global = true)]
    pub registry: Option<String>,
    /// Artifact store root [default: <cwd>/models/artifacts]
    #[arg(long, env = "QUIRE_ARTIFACTS", global = true)]
    pub artifacts: Option<PathBuf>,
}

impl RegistryArgs {
    pub fn url(&self) -> Result<String> {
        match &self.registry {
            Some(u) => Ok(u.clone()),
            None => {
                let db = std::path::absolute("models/registry.db").context("resolving models/")?;
                Ok(format!("sqlite://{}", db.display()))
            }
        }
    }

    pub fn artifacts_dir(&self) -> Result<PathBuf> {
        let dir = self
            .artifacts
            .clone()
            .unwrap_or_else(|| PathBuf::from("models/artifacts"));
        std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))
    }

    /// Opens the registry the `runs` and `models` commands read: one that exists (a mistyped
    /// SQLite path is an error naming it, not a new empty registry that lists nothing).
    pub async fn connect_existing(&self) -> Result<Registry> {
        let url = self.url()?;
        Registry::connect_existing(&url).await.with_context(|| {
            let shown = quire_registry::redacted_url(&url);
            if url.starts_with("sqlite:") {
                format!(
                    "opening the registry {shown} (`quire train` or `quire pipeline run` creates one)"
                )
            } else {
                format!("opening the registry {shown}")
            }
        })
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[derive(Args)]
pub struct TrainArgs {
    /// A training config (training-configs/*.toml)
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    lake: LakeArg,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print the result as JSON (cli.md)
    #[arg(long)]
    json: bool,
}

/// Progress bars of a training run on stderr.
struct Bars {
    enabled: bool,
    bar: std::cell::RefCell<Option<ProgressBar>>,
}

impl Bars {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            bar: std::cell::RefCell::new(None),
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

impl quire_train::Progress for Bars {
    fn stage(&self, name: &str) {
        self.finish();
        if !self.enabled {
            return;
        }
        let b = ProgressBar::new_spinner().with_message(name.to_string());
        b.enable_steady_tick(Duration::from_millis(120));
        *self.bar.borrow_mut() = Some(b);
    }

    fn iteration(&self, done: u64, total: u64, metric: &str, value: f64) {
        if !self.enabled {
            return;
        }
        let mut slot = self.bar.borrow_mut();
        let b = slot.get_or_insert_with(ProgressBar::hidden);
        if b.length() != Some(total) {
            let msg = b.message();
            b.finish_and_clear();
            let nb = ProgressBar::new(total).with_message(msg).with_style(
                ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} {prefix}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            *b = nb;
        }
        b.set_position(done);
        b.set_prefix(format!("{metric} {value:.4}"));
    }
}

pub fn train(a: TrainArgs) -> Result<()> {
    let loc = quire_train::Locations {
        lake: a.lake.lake.clone(),
        registry: a.registry.url()?,
        artifacts: a.registry.artifacts_dir()?,
    };
    let bars = Bars::new(crate::commands::progress_enabled(a.json));
    let report = quire_train::train(&a.config, &loc, &bars)
        .with_context(|| format!("training {}", a.config.display()));
    bars.finish();
    let report = report?;
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            run_id: &'a str,
            model: &'a quire_train::ModelRef,
            metrics: &'a std::collections::BTreeMap<String, f64>,
            artifact_uri: &'a str,
        }
        return print_json(&Out {
            run_id: &report.run_id,
            model: &report.model,
            metrics: &report.metrics,
            artifact_uri: &report.artifact_uri,
        });
    }
    outln!(
        "Trained {} → {} v{} in {:.1}s (run {}, experiment {})",
        report.kind,
        report.model.name,
        report.model.version,
        report.seconds,
        report.run_id,
        report.experiment
    );
    outln!(
        "{}",
        table(
            ["", ""],
            report.summary.iter().map(|(k, v)| [k.clone(), v.clone()])
        )
    );
    let metrics = report
        .metrics
        .iter()
        .map(|(k, v)| [k.clone(), format!("{v:.4}")]);
    outln!("{}", table(["metric", "value"], metrics));
    outln!("Model artifact: {}", report.artifact_uri);
    outln!(
        "Promote: quire models promote {} {} --alias production",
        report.model.name,
        report.model.version
    );
    Ok(())
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first
    List {
        /// Only this experiment (by name)
        #[arg(long)]
        experiment: Option<String>,
        /// MLflow filter, e.g. "metrics.test_ndcg_at_5 > 0.5 and params.ltr.lightgbm.num_leaves = '31'"
        #[arg(long, default_value = "")]
        filter: String,
        /// Order, e.g. "metrics.test_ndcg_at_5 DESC"
        #[arg(long = "order-by")]
        order_by: Vec<String>,
        #[arg(long, default_value_t = 20)]
        max: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run: params, metrics, tags, config
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Runs side by side: the params that differ and every metric
    Compare {
        #[arg(required = true, num_args = 2..)]
        run_ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
    #[command(flatten)]
    registry: RegistryArgs,
}

fn ms_to_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn runs(a: RunsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let reg = a.registry.connect_existing().await?;
        match a.command {
            RunsCommand::List {
                experiment,
                filter,
                order_by,
                max,
                json,
            } => {
                let experiment_ids = match experiment {
                    Some(name) => vec![
                        reg.get_experiment_by_name(&name)
                            .await
                            .with_context(|| format!("experiment {name:?}"))?
                            .experiment_id,
                    ],
                    None => Vec::new(),
                };
                let page = reg
                    .search_runs(&SearchRuns {
                        experiment_ids,
                        filter,
                        order_by,
                        max_results: max,
                        ..Default::default()
                    })
                    .await?;
                if json {
                    return print_json(&page.runs);
                }
                let rows = page.runs.iter().map(|r| {
                    let mut metrics: Vec<String> = r
                        .data
                        .metrics
                        .iter()
                        .filter(|m| {
                            m.key.starts_with("test_")
                                || m.key.starts_with("ndcg")
                                || m.key.starts_with("precision")
                        })
                        .map(|m| format!("{}={:.4}", m.key, m.value))
                        .collect();
                    metrics.sort();
                    [
                        r.info.run_id.clone(),
                        r.info.run_name.clone(),
                        r.info.experiment_id.to_string(),
                        r.info.status.to_string(),
                        ms_to_time(r.info.start_time),
                        metrics.join(" "),
                    ]
                });
                outln!(
                    "{}",
                    table(
                        ["run", "name", "exp", "status", "started", "key metrics"],
                        rows
                    )
                );
            }
            RunsCommand::Show { run_id, json } => {
                let run = reg
                    .get_run(&run_id)
                    .await
                    .with_context(|| format!("run {run_id}"))?;
                if json {
                    return print_json(&run);
                }
                let i = &run.info;
                outln!(
                    "run {} ({}), experiment {}, {}",
                    i.run_id,
                    i.run_name,
                    i.experiment_id,
                    i.status
                );
                outln!(
                    "started {}, ended {}, git {}",
                    ms_to_time(i.start_time),
                    i.end_time.map(ms_to_time).unwrap_or_else(|| "-".into()),
                    i.git_commit.as_deref().unwrap_or("-")
                );
                outln!(
                    "{}",
                    table(
                        ["param", "value"],
                        run.data.params.iter().map(|(k, v)| [k.clone(), v.clone()])
                    )
                );
                outln!(
                    "{}",
                    table(
                        ["metric", "value"],
                        run.data
                            .metrics
                            .iter()
                            .map(|m| [m.key.clone(), format!("{:.6}", m.value)])
                    )
                );
                outln!(
                    "{}",
                    table(
                        ["tag", "value"],
                        run.data.tags.iter().map(|(k, v)| [k.clone(), v.clone()])
                    )
                );
                if let Some(cfg) = &i.source_config {
                    outln!("config:\n{cfg}");
                }
            }
            RunsCommand::Compare { run_ids, json } => {
                let mut runs = Vec::new();
                for id in &run_ids {
                    runs.push(reg.get_run(id).await.with_context(|| format!("run {id}"))?);
                }
                if json {
                    return print_json(&runs);
                }
                let mut keys: Vec<String> = runs
                    .iter()
                    .flat_map(|r| r.data.params.keys().cloned())
                    .collect();
                keys.sort();
                keys.dedup();
                let mut rows: Vec<Vec<String>> = Vec::new();
                for k in keys {
                    let vals: Vec<String> = runs
                        .iter()
                        .map(|r| r.data.params.get(&k).cloned().unwrap_or_else(|| "-".into()))
                        .collect();
                    if vals.iter().any(|v| v != &vals[0]) {
                        rows.push(std::iter::once(format!("params.{k}")).chain(vals).collect());
                    }
                }
                let mut mkeys: Vec<String> = runs
                    .iter()
                    .flat_map(|r| r.data.metrics.iter().map(|m| m.key.clone()))
                    .collect();
                mkeys.sort();
                mkeys.dedup();
                for k in mkeys {
                    let vals = runs.iter().map(|r| {
                        r.data
                            .metrics
                            .iter()
                            .find(|m| m.key == k)
                            .map_or("-".into(), |m| format!("{:.4}", m.value))
                    });
                    rows.push(
                        std::iter::once(format!("metrics.{k}"))
                            .chain(vals)
                            .collect(),
                    );
                }
                let header: Vec<String> = std::iter::once("".to_string())
                    .chain(run_ids.iter().cloned())
                    .collect();
                outln!("{}", table(header, rows));
            }
        }
        reg.close().await;
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Registered models, their versions, aliases and artifacts
    List {
        #[arg(long)]
        json: bool,
    },
    /// One registered model
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// The versions of a model, with their runs and checksums
    Versions {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Point an alias (production, staging, …) at a version
    Promote {
        name: String,
        version: i64,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Which version an alias pointed at, and when
    History {
        name: String,
        #[arg(long, default_value = "production")]
        alias: String,
        #[arg(long)]
        json: bool,
    },
    /// Verify every artifact of a version against its recorded SHA-256
    Verify { name: String, version: i64 },
}

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Serialize)]
struct ArtifactOut {
    name: String,
    uri: String,
    sha256: String,
    size: i64,
}

#[derive(Serialize)]
struct VersionOut {
    version: i64,
    run_id: Option<String>,
    aliases: Vec<String>,
    artifacts: Vec<ArtifactOut>,
    created: i64,
}

#[derive(Serialize)]
struct ModelOut {
    name: String,
    versions: Vec<VersionOut>,
}

async fn model_out(reg: &Registry, name: &str) -> Result<ModelOut> {
    let versions = reg.search_model_versions(Some(name), None).await?;
    Ok(ModelOut {
        name: name.to_string(),
        versions: versions
            .into_iter()
            .map(|v| VersionOut {
                version: v.version,
                run_id: v.run_id,
                aliases: v.aliases,
                created: v.creation_time,
                artifacts: v
                    .artifacts
                    .into_iter()
                    .map(|a| ArtifactOut {
                        name: a.name,
                        uri: a.artifact.uri,
                        sha256: a.artifact.sha256,
                        size: a.artifact.size,
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn print_versions(m: &ModelOut) {
    let rows = m.versions.iter().map(|v| {
        [
            v.version.to_string(),
            v.aliases.join(","),
            v.run_id.clone().unwrap_or_default(),
            ms_to_time(v.created),
            v.artifacts
                .iter()
                .map(|a| format!("{} {}…", a.name, &a.sha256[..12.min(a.sha256.len())]))
                .collect::<Vec<_>>()
                .join("\n"),
        ]
    });
    outln!(
        "{}",
        table(
            ["version", "aliases", "run", "created", "artifacts (sha256)"],
            rows
        )
    );
}

pub fn models(a: ModelsArgs) -> Result<()> {
    let artifacts = a.registry.artifacts_dir()?;
    runtime()?.block_on(async {
        let reg = a.registry.connect_existing().await?;
        match a.command {
            ModelsCommand::List { json } => {
                let mut out = Vec::new();
                for m in reg.search_registered_models(None).await? {
                    out.push(model_out(&reg, &m.name).await?);
                }
                if json {
                    return print_json(&out);
                }
                let rows = out.iter().map(|m| {
                    let aliases: Vec<String> = m
                        .versions
                        .iter()
                        .flat_map(|v| v.aliases.iter().map(move |a| format!("{a}→v{}", v.version)))
                        .collect();
                    [
                        m.name.clone(),
                        m.versions.len().to_string(),
                        m.versions
                            .last()
                            .map_or("-".into(), |v| v.version.to_string()),
                        aliases.join(", "),
                    ]
                });
                outln!(
                    "{}",
                    table(["model", "versions", "latest", "aliases"], rows)
                );
            }
            ModelsCommand::Show { name, json } => {
                let m = reg
                    .get_registered_model(&name)
                    .await
                    .with_context(|| format!("model {name:?}"))?;
                if json {
                    return print_json(&m);
                }
                let created = match m.latest_version {
                    1 => "1 version created".to_owned(),
                    n => format!("{n} versions created"),
                };
                let line = format!("{} ({created}) {}", m.name, m.description);
                outln!("{}", line.trim_end());
                outln!(
                    "{}",
                    table(
                        ["alias", "version"],
                        m.aliases.iter().map(|(k, v)| [k.clone(), v.to_string()])
                    )
                );
                print_versions(&model_out(&reg, &name).await?);
            }
            ModelsCommand::Versions { name, json } => {
                reg.get_registered_model(&name)
                    .await
                    .with_context(|| format!("model {name:?}"))?;
                let m = model_out(&reg, &name).await?;
                if json {
                    return print_json(&m.versions);
                }
                print_versions(&m);
            }
            ModelsCommand::Promote {
                name,
                version,
                alias,
                json,
            } => {
                let who = std::env::var("USER").unwrap_or_else(|_| "quire".into());
                reg.set_alias(&name, &alias, version, &who)
                    .await
                    .with_context(|| format!("promoting {name} v{version} to {alias}"))?;
                if json {
                    return print_json(
                        &serde_json::json!({"name": name, "alias": alias, "version": version}),
                    );
                }
                outln!("{name}@{alias} → v{version}");
            }
            ModelsCommand::History { name, alias, json } => {
                let moves = reg.alias_history(&name, &alias).await?;
                if moves.is_empty() {
                    // An unknown model, or an alias it never had: an error, not an empty table.
                    reg.get_registered_model(&name).await?;
                    bail!("{name} has never had an alias {alias:?}");
                }
                if json {
                    return print_json(&moves);
                }
                let rows = moves.iter().map(|m| {
                    [
                        ms_to_time(m.moved_at),
                        m.from_version.map_or("-".into(), |v| format!("v{v}")),
                        m.to_version.map_or("(deleted)".into(), |v| format!("v{v}")),
                        m.moved_by.clone(),
                    ]
                });
                outln!(
                    "{name}@{alias}:\n{}",
                    table(["when (UTC)", "from", "to", "by"], rows)
                );
            }
            ModelsCommand::Verify { name, version } => {
                let v = reg
                    .get_model_version(&name, version)
                    .await
                    .with_context(|| format!("{name} v{version}"))?;
                let store = ArtifactStore::open(&artifacts).await?;
                for a in &v.artifacts {
                    store
                        .get(&a.artifact)
                        .await
                        .with_context(|| format!("artifact {} of {name} v{version}", a.name))?;
                    outln!("ok  {}  sha256 {}", a.name, a.artifact.sha256);
                }
                if v.artifacts.is_empty() {
                    bail!("{name} v{version} has no artifacts");
                }
            }
        }
        reg.close().await;
        Ok(())
    })
}
