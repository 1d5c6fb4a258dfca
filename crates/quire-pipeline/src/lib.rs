//! The main job (`quire pipeline run`, what `make run` calls): every step of Quire in
//! dependency order — simulate (when no input is given) → ingest → dimensions → warehouse and
//! KPIs → features and training of every config given (LTR, CF) → registration → promotion of
//! a model's first version to `production` (or of its latest, when the version in `production`
//! has features of another version than this code computes) — each skipped when its inputs did
//! not change since it last ran.
//!
//! A step's inputs are summarised as a fingerprint (content digests of its input files, the
//! lake's commit log, its configuration); the fingerprints of the last successful run are kept in
//! `<work>/pipeline-state.json`. A step whose fingerprint matches and whose outputs exist is
//! skipped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use quire_kpi::{DateRange, Dims};
use quire_lake::{DimTable, IngestOptions, Lake, file_digest};
use quire_sim::SimConfig;
use serde::{Deserialize, Serialize};

pub mod recs;

/// Errors of the pipeline, each naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("step {step}: {source}")]
    Lake {
        step: &'static str,
        #[source]
        source: quire_lake::Error,
    },
    #[error("step {step}: {source}")]
    Kpi {
        step: &'static str,
        #[source]
        source: quire_kpi::Error,
    },
    #[error("step simulate: {0}")]
    Sim(#[from] quire_sim::Error),
    #[error("step train: {0}")]
    Train(#[from] quire_train::Error),
    #[error("step promote: {0}")]
    Registry(#[from] quire_registry::Error),
    #[error("step publish recs: {0}")]
    Recs(#[from] recs::RecsError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "step ingest: the lake at {lake} already holds a store simulated with other settings \
         (from {input}); adding this one would mix two stores. Give another --lake, or remove \
         {lake} to start over"
    )]
    OtherSimulation { lake: String, input: String },
}

pub type Result<T> = std::result::Result<T, Error>;

trait StepContext<T> {
    fn step(self, step: &'static str) -> Result<T>;
}

impl<T> StepContext<T> for std::result::Result<T, quire_lake::Error> {
    fn step(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Lake { step, source })
    }
}

impl<T> StepContext<T> for std::result::Result<T, quire_kpi::Error> {
    fn step(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Kpi { step, source })
    }
}

/// Dimension files to load; `None` means "take the simulator's when it ran".
#[derive(Debug, Clone, Default)]
pub struct DimFiles {
    pub books: Option<PathBuf>,
    pub users: Option<PathBuf>,
    pub marketing_spend: Option<PathBuf>,
}

/// What to run on.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Working directory for the pipeline's own files (simulated input, state, reports).
    pub work_dir: PathBuf,
    /// The lake and warehouse root.
    pub lake: PathBuf,
    /// Event files to ingest; empty means "simulate a bookstore first".
    pub inputs: Vec<PathBuf>,
    pub dims: DimFiles,
    pub sim: SimConfig,
    /// Run every step even when its inputs did not change.
    pub force: bool,
    /// Show progress bars (on stderr).
    pub progress: bool,
    /// Training: configs to run and where the registry is; `None` stops after the warehouse.
    pub train: Option<TrainSetup>,
    /// Publishing recommendations after training; `None` skips it.
    pub recs: Option<RecsSetup>,
}

/// The `publish recs` step: which CF model, which Redis.
#[derive(Debug, Clone)]
pub struct RecsSetup {
    /// `NAME[@ALIAS]`, e.g. `cf@production`.
    pub model: String,
    /// `redis://host:port/db`.
    pub redis: String,
    /// List length.
    pub n: usize,
}

/// The training steps' configs and registry.
#[derive(Debug, Clone)]
pub struct TrainSetup {
    /// Training configs, each run as one step (`train <file stem>`).
    pub configs: Vec<PathBuf>,
    /// Registry URL.
    pub registry: String,
    /// Artifact store root.
    pub artifacts: PathBuf,
}

/// Whether a step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ran,
    Skipped,
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: String,
    pub status: Status,
    pub detail: String,
    pub seconds: f64,
}

/// The pipeline's outcome and where its outputs are.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub steps: Vec<StepReport>,
    /// (what, where)
    pub locations: Vec<(String, PathBuf)>,
    /// The KPI report of the whole lake (also written to `<work>/reports/kpis.json`).
    pub kpis: serde_json::Value,
    /// Models registered by this run's training steps (name, version).
    pub models: Vec<(String, i64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    fingerprints: BTreeMap<String, String>,
}

struct Runner {
    state_path: PathBuf,
    state: State,
    force: bool,
    progress: bool,
    steps: Vec<StepReport>,
}

impl Runner {
    fn load(work_dir: &Path, force: bool, progress: bool) -> Result<Self> {
        let state_path = work_dir.join("pipeline-state.json");
        // A state file that cannot be read only costs a re-run of every step.
        let state = fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Self {
            state_path,
            state,
            force,
            progress,
            steps: Vec::new(),
        })
    }

    fn spinner(&self, step: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {prefix:>10} {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_prefix(step.to_owned());
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    }

    /// Runs `f` unless the step's fingerprint is unchanged and `outputs_exist`.
    fn step(
        &mut self,
        name: &str,
        fingerprint: String,
        outputs_exist: bool,
        f: impl FnOnce(&ProgressBar) -> Result<String>,
    ) -> Result<Status> {
        let started = Instant::now();
        let unchanged = self.state.fingerprints.get(name) == Some(&fingerprint);
        if unchanged && outputs_exist && !self.force {
            self.steps.push(StepReport {
                step: name.to_owned(),
                status: Status::Skipped,
                detail: "inputs unchanged".to_owned(),
                seconds: 0.0,
            });
            return Ok(Status::Skipped);
        }
        let pb = self.spinner(name);
        let detail = f(&pb)?;
        pb.finish_and_clear();
        self.state.fingerprints.insert(name.to_owned(), fingerprint);
        self.save()?;
        tracing::info!(step = name, %detail, "step done");
        self.steps.push(StepReport {
            step: name.to_owned(),
            status: Status::Ran,
            detail,
            seconds: started.elapsed().as_secs_f64(),
        });
        Ok(Status::Ran)
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&self.state).unwrap_or_default();
        fs::write(&self.state_path, bytes).map_err(|source| Error::Io {
            context: format!("writing {}", self.state_path.display()),
            source,
        })
    }
}

fn digests(files: &[&Path]) -> std::result::Result<String, quire_lake::Error> {
    let mut parts = Vec::new();
    for f in files {
        let (d, n) = file_digest(f)?;
        parts.push(format!("{}={d}:{n}", f.display()));
    }
    Ok(parts.join(";"))
}

/// Runs the pipeline.
pub fn run(cfg: &PipelineConfig) -> Result<PipelineReport> {
    fs::create_dir_all(&cfg.work_dir).map_err(|source| Error::Io {
        context: format!("creating {}", cfg.work_dir.display()),
        source,
    })?;
    let mut runner = Runner::load(&cfg.work_dir, cfg.force, cfg.progress)?;
    let lake = Lake::open(&cfg.lake).step("open lake")?;
    let mut locations = vec![(
        "lake (events, hive-partitioned Parquet)".to_owned(),
        lake.events_dir(),
    )];

    // 1. simulate, when no input is given
    let sim_dir = cfg.work_dir.join("sim");
    let (inputs, dims) = if cfg.inputs.is_empty() {
        let s = &cfg.sim;
        let events_name = if s.gzip {
            "events.jsonl.gz"
        } else {
            "events.jsonl"
        };
        let events = sim_dir.join(events_name);
        let exists = events.exists() && sim_dir.join("books.csv").exists();
        let fp = format!(
            "days={} users={} seed={} start={} gzip={} effects={:?} sim={}",
            s.days,
            s.users,
            s.seed,
            s.start,
            s.gzip,
            s.effects,
            quire_sim::VERSION
        );
        runner.step("simulate", fp, exists, |pb| {
            pb.set_message(format!("{} users over {} days", s.users, s.days));
            let summary = quire_sim::simulate(s, &sim_dir, &|d| {
                pb.set_message(format!("day {d} of {}", s.days));
            })?;
            Ok(format!(
                "{} lines ({} events, {} orders) in {:.1}s",
                summary.lines, summary.events, summary.orders, summary.seconds
            ))
        })?;
        locations.push(("simulated input and truth.json".to_owned(), sim_dir.clone()));
        refuse_another_simulation(&lake, &events)?;
        let dims = DimFiles {
            books: Some(cfg.dims.books.clone().unwrap_or(sim_dir.join("books.csv"))),
            users: Some(cfg.dims.users.clone().unwrap_or(sim_dir.join("users.csv"))),
            marketing_spend: Some(
                cfg.dims
                    .marketing_spend
                    .clone()
                    .unwrap_or(sim_dir.join("marketing_spend.csv")),
            ),
        };
        (vec![events], dims)
    } else {
        (cfg.inputs.clone(), cfg.dims.clone())
    };

    // 2. ingest: a file whose bytes were committed before is skipped by the lake itself
    let input_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let fp = digests(&input_refs).step("ingest")?;
    let commits_before = lake.commits().step("ingest")?.len();
    runner.step("ingest", fp, commits_before > 0, |pb| {
        let mut lines = Vec::new();
        for path in &inputs {
            let (digest, _) = file_digest(path).step("ingest")?;
            if lake.has_source_digest(&digest).step("ingest")? {
                lines.push(format!("{} already in the lake", path.display()));
                continue;
            }
            pb.set_message(path.display().to_string());
            let r = lake
                .ingest_file(path, &IngestOptions::default(), &|bytes| {
                    pb.set_message(format!("{} ({} MB read)", path.display(), bytes >> 20));
                })
                .step("ingest")?;
            lines.push(format!(
                "{}: {} lines, {} valid, {} invalid, {} duplicates, {} test",
                path.display(),
                r.lines,
                r.valid,
                r.invalid,
                r.duplicates,
                r.test
            ));
        }
        Ok(lines.join("; "))
    })?;
    locations.push(("bad rows (quire badrows)".to_owned(), lake.badrows_dir()));

    // 3. dimensions
    let dim_files: Vec<(DimTable, &PathBuf)> = [
        (DimTable::Books, dims.books.as_ref()),
        (DimTable::Users, dims.users.as_ref()),
        (DimTable::MarketingSpend, dims.marketing_spend.as_ref()),
    ]
    .into_iter()
    .filter_map(|(t, p)| p.map(|p| (t, p)))
    .collect();
    let dim_refs: Vec<&Path> = dim_files.iter().map(|(_, p)| p.as_path()).collect();
    let dims_fp = digests(&dim_refs).step("dims")?;
    let dims_exist = dim_files.iter().all(|(t, _)| lake.dim_path(*t).exists());
    runner.step("dims", dims_fp.clone(), dims_exist, |_| {
        // Every file read and validated before any table is replaced, as `quire dims load`.
        let checked = dim_files
            .iter()
            .map(|(table, path)| Ok((*table, quire_lake::CheckedDim::read(*table, path)?)))
            .collect::<quire_lake::Result<Vec<_>>>()
            .step("dims")?;
        let mut loaded = Vec::new();
        for (table, dim) in checked {
            let rows = lake.replace_dim(dim).step("dims")?;
            loaded.push(format!("{} {rows} rows", table.name()));
        }
        Ok(loaded.join(", "))
    })?;

    // 4. warehouse models and the KPI report
    let commits = lake.commits().step("warehouse")?;
    let wh_fp = format!(
        "commits={} last={} dims={dims_fp} kpi={}",
        commits.len(),
        commits.last().map(|c| c.batch_id.as_str()).unwrap_or(""),
        quire_kpi::VERSION
    );
    let reports = cfg.work_dir.join("reports");
    let kpis_path = reports.join("kpis.json");
    let warehouse = lake.warehouse_dir();
    // Its outputs: the report and every warehouse table (a deleted warehouse is rebuilt).
    let warehouse_built = kpis_path.exists()
        && quire_kpi::WAREHOUSE_TABLES.iter().all(|(layer, table)| {
            warehouse
                .join(layer)
                .join(format!("{table}.parquet"))
                .exists()
        });
    runner.step("warehouse", wh_fp, warehouse_built, |pb| {
        let dims = Dims {
            books: lake.scan_dim(DimTable::Books).step("warehouse")?,
            marketing_spend: lake.scan_dim(DimTable::MarketingSpend).step("warehouse")?,
        };
        pb.set_message("staging, facts, aggregates");
        let models = quire_kpi::build_models(lake.scan_events().step("warehouse")?, &dims)
            .step("warehouse")?;
        let summary = quire_kpi::materialize(&models, &warehouse).step("warehouse")?;
        pb.set_message("KPI report");
        let report = quire_kpi::kpi_report_from_models(&models, DateRange::default(), 10)
            .step("warehouse")?;
        fs::create_dir_all(&reports).map_err(|source| Error::Io {
            context: format!("creating {}", reports.display()),
            source,
        })?;
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        fs::write(&kpis_path, json).map_err(|source| Error::Io {
            context: format!("writing {}", kpis_path.display()),
            source,
        })?;
        let rows: usize = summary.rows.values().sum();
        Ok(format!("{} tables, {rows} rows", summary.rows.len()))
    })?;
    locations.push((
        "warehouse (staging, facts, aggregates, dims)".to_owned(),
        warehouse,
    ));
    locations.push((
        "KPI report (quire kpis --json)".to_owned(),
        kpis_path.clone(),
    ));
    let kpis = fs::read(&kpis_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);

    // 5. features + training (one step per config), then promotion of first versions
    let mut models = Vec::new();
    if let Some(t) = &cfg.train {
        let commits = lake.commits().step("train")?;
        // The registry and the artifact store are where a step's model goes: another one
        // means training again.
        let data_fp = format!(
            "commits={} last={} dims={dims_fp} train={} registry={} artifacts={}",
            commits.len(),
            commits.last().map(|c| c.batch_id.as_str()).unwrap_or(""),
            quire_train::VERSION,
            t.registry,
            t.artifacts.display()
        );
        let loc = quire_train::Locations {
            lake: cfg.lake.clone(),
            registry: t.registry.clone(),
            artifacts: t.artifacts.clone(),
        };
        // The configs' models, whether trained now or before: each gets `production` if it has
        // none, so a run that failed after training one model still promotes it next time.
        // (A config that does not load names none; its step reports why.)
        let models_of: Vec<Option<String>> = t
            .configs
            .iter()
            .map(|c| quire_train::TrainConfig::load(c).ok().map(|(c, _)| c.model))
            .collect();
        let config_models: Vec<String> = models_of.iter().flatten().cloned().collect();
        // A step's output is its model in the registry: a registry emptied, removed or
        // replaced since means training again.
        let in_registry = registered(&t.registry, &config_models)?;
        for (config, model) in t.configs.iter().zip(&models_of) {
            let stem = config
                .file_stem()
                .map_or("config".into(), |s| s.to_string_lossy().into_owned());
            let name = format!("train {stem}");
            let fp = format!(
                "{data_fp} config={}",
                digests(&[config.as_path()]).step("train")?
            );
            let done = model
                .as_ref()
                .is_some_and(|m| in_registry.iter().any(|(r, _)| r == m));
            runner.step(&name, fp, done, |pb| {
                let progress = StepProgress(pb);
                let r = quire_train::train(config, &loc, &progress)?;
                models.push((r.model.name.clone(), r.model.version));
                let mut headline: Vec<String> = r
                    .metrics
                    .iter()
                    .filter(|(k, _)| {
                        k.starts_with("test_ndcg_at_5")
                            || k.starts_with("bm25_test_ndcg_at_5")
                            || k.starts_with("precision_at")
                            || k.starts_with("popularity_precision_at")
                    })
                    .map(|(k, v)| format!("{k} {v:.3}"))
                    .collect();
                headline.sort();
                Ok(format!(
                    "{} v{} ({}) run {}",
                    r.model.name,
                    r.model.version,
                    headline.join(", "),
                    r.run_id
                ))
            })?;
        }
        if !config_models.is_empty() {
            let fp = format!("{config_models:?}");
            let served = to_promote(&t.registry, &t.artifacts, &config_models)?.is_empty();
            runner.step("promote", fp, served, |_| {
                promote(&t.registry, &t.artifacts, &config_models)
            })?;
        }
        if let Some(r) = &cfg.recs {
            // Always runs: Redis is not the pipeline's to remember (it may have restarted);
            // an unchanged set is detected by the publisher and not rewritten.
            // Its password never shown nor saved in the pipeline's state.
            let redis = quire_registry::redacted_url(&r.redis);
            let fp = format!("{} {redis} n={}", r.model, r.n);
            runner.step("publish recs", fp, false, |pb| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|source| Error::Io {
                        context: "starting the async runtime".into(),
                        source,
                    })?;
                let target = quire_recs::RedisTarget::Single(r.redis.clone());
                let opts = quire_recs::PublishOptions::default();
                let job = recs::RecsJob {
                    registry: &t.registry,
                    artifacts: &t.artifacts,
                    model: &r.model,
                    target: &target,
                    n: r.n,
                    opts: &opts,
                    lake: Some(&cfg.lake),
                };
                let (model, s) = rt.block_on(recs::publish_recs(
                    &job,
                    |stage| pb.set_message(stage.to_owned()),
                    |p| pb.set_message(format!("{}/{} keys", p.keys_done, p.keys_total)),
                ))?;
                Ok(format!(
                    "{} v{} → set {} ({} users, {} books{}) on {}",
                    model.name,
                    model.version,
                    s.set,
                    s.users,
                    s.items,
                    if s.unchanged { ", unchanged" } else { "" },
                    redis
                ))
            })?;
            locations.push((
                "recommendations in Redis (GET quire:recs:current)".to_owned(),
                PathBuf::from(&redis),
            ));
        }
        locations.push((
            "model registry (quire runs list, quire models list)".to_owned(),
            PathBuf::from(&t.registry),
        ));
        locations.push((
            "model artifacts (content-addressed)".to_owned(),
            t.artifacts.clone(),
        ));
        locations.push((
            "LTR training rows (Parquet)".to_owned(),
            cfg.lake.join("features/ltr_rows.parquet"),
        ));
    }

    Ok(PipelineReport {
        steps: runner.steps,
        locations,
        kpis,
        models,
    })
}

/// Shows a trainer's stages and iterations on a step's spinner.
struct StepProgress<'a>(&'a ProgressBar);

impl quire_train::Progress for StepProgress<'_> {
    fn stage(&self, name: &str) {
        self.0.set_message(name.to_owned());
    }
    fn iteration(&self, done: u64, total: u64, metric: &str, value: f64) {
        self.0
            .set_message(format!("iteration {done}/{total}, {metric} {value:.4}"));
    }
}

/// Refuses to ingest a simulated file into a lake that holds one simulated with other
/// settings (another seed, length or size), from the same path: its ids differ, so the two
/// stores would be added together, while `users.csv` and `truth.json` describe the new one.
fn refuse_another_simulation(lake: &Lake, events: &Path) -> Result<()> {
    let path = events.display().to_string();
    let (digest, _) = file_digest(events).step("ingest")?;
    let other = lake.commits().step("ingest")?.into_iter().any(|c| {
        matches!(&c.source, quire_lake::Source::File { path: p, digest: d, .. }
            if *p == path && *d != digest)
    });
    if other {
        return Err(Error::OtherSimulation {
            lake: lake.root().display().to_string(),
            input: path,
        });
    }
    Ok(())
}

/// A runtime for one registry call on this thread.
fn registry_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })
}

/// The registered models among `names` in the registry at `url`, as (name, has a
/// `production` alias); none when the registry does not exist.
fn registered(url: &str, names: &[String]) -> Result<Vec<(String, bool)>> {
    registry_runtime()?.block_on(async {
        let reg = match quire_registry::Registry::connect_existing(url).await {
            Ok(reg) => reg,
            Err(quire_registry::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut found = Vec::new();
        for name in names {
            match reg.get_registered_model(name).await {
                Ok(m) if m.latest_version > 0 => {
                    found.push((name.clone(), m.aliases.contains_key("production")));
                }
                Ok(_) | Err(quire_registry::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        reg.close().await;
        Ok(found)
    })
}

/// The models among `names` that [`promote`] would move: without a `production` alias
/// (registered or not), or whose `production` version has stale features.
fn to_promote(url: &str, artifacts: &Path, names: &[String]) -> Result<Vec<String>> {
    let found = registered(url, names)?;
    let (aliased, mut out): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| found.iter().any(|(m, aliased)| m == n && *aliased));
    if aliased.is_empty() {
        return Ok(out);
    }
    registry_runtime()?.block_on(async {
        let reg = quire_registry::Registry::connect_existing(url).await?;
        let store = quire_registry::ArtifactStore::open(artifacts).await?;
        for name in aliased {
            let m = reg.get_registered_model(&name).await?;
            if let Some(&v) = m.aliases.get("production")
                && stale_features(&reg, &store, &name, v).await?.is_some()
            {
                out.push(name);
            }
        }
        reg.close().await;
        Ok(out)
    })
}

/// Points `production` at the latest version of each model that has no `production` yet (the
/// pipeline's first versions), or whose `production` version has features of another version
/// than this code computes (a registry from before a change of the features: the ranking
/// service refuses that version). A model with a servable `production` keeps it (a later
/// version is promoted by a person: `quire models promote`).
fn promote(registry: &str, artifacts: &Path, names: &[String]) -> Result<String> {
    registry_runtime()?.block_on(async {
        let reg = quire_registry::Registry::connect(registry).await?;
        let store = quire_registry::ArtifactStore::open(artifacts).await?;
        let mut lines = Vec::new();
        for name in names {
            let m = reg.get_registered_model(name).await?;
            let latest = m.latest_version;
            let why = match m.aliases.get("production") {
                None => None,
                Some(&v) => match stale_features(&reg, &store, name, v).await? {
                    None => {
                        lines.push(format!("{name}@production stays v{v}"));
                        continue;
                    }
                    Some(_)
                        if v == latest
                            || stale_features(&reg, &store, name, latest).await?.is_some() =>
                    {
                        lines.push(format!(
                            "{name}@production stays v{v}: neither it nor the latest, v{latest}, \
                             has the features this code computes; train it again"
                        ));
                        continue;
                    }
                    Some(old) => Some(format!(
                        " (v{v} has features {old}, this code computes {})",
                        quire_featspec::FEATURES_VERSION
                    )),
                },
            };
            reg.set_alias(name, "production", latest, "quire pipeline")
                .await?;
            lines.push(format!(
                "{name}@production → v{latest}{}",
                why.unwrap_or_default()
            ));
        }
        reg.close().await;
        Ok(lines.join(", "))
    })
}

/// The features version of `version` of `name` when it is not the one this code computes
/// (read from its `feature_spec.json`); `None` for a version without one (CF), or whose spec
/// cannot be read (the ranking service names that problem itself).
async fn stale_features(
    reg: &quire_registry::Registry,
    store: &quire_registry::ArtifactStore,
    name: &str,
    version: i64,
) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct SpecVersion {
        version: String,
    }
    let mv = reg.get_model_version(name, version).await?;
    let Some(spec) = mv
        .artifacts
        .iter()
        .find(|a| a.name == quire_train::artifact::FEATURE_SPEC)
    else {
        return Ok(None);
    };
    let Ok(bytes) = store.get(&spec.artifact).await else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<SpecVersion>(&bytes)
        .ok()
        .map(|s| s.version)
        .filter(|v| v != quire_featspec::FEATURES_VERSION))
}

#[cfg(test)]
mod tests {
    use quire_registry::{ArtifactStore, NamedArtifact, NewModelVersion, Registry};

    use super::*;

    /// Registers a version of `ltr` whose `feature_spec.json` has features `version`.
    async fn register_ltr(reg: &Registry, store: &ArtifactStore, version: &str) {
        let spec = format!(r#"{{"version": "{version}"}}"#);
        let spec = store.put(spec.as_bytes()).await.unwrap();
        reg.create_model_version(&NewModelVersion {
            name: "ltr".into(),
            source: spec.uri.clone(),
            artifacts: vec![NamedArtifact {
                name: quire_train::artifact::FEATURE_SPEC.into(),
                artifact: spec,
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    }

    /// A registry from before a change of the features: `production` points at a version whose
    /// features this code does not compute, and a later version has the current ones.
    #[test]
    fn a_production_version_with_stale_features_gives_way_to_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("reg.db").display());
        let artifacts = dir.path().join("artifacts");
        registry_runtime().unwrap().block_on(async {
            let reg = Registry::connect(&url).await.unwrap();
            let store = ArtifactStore::open(&artifacts).await.unwrap();
            for name in ["ltr", "cf"] {
                reg.create_registered_model(name, "").await.unwrap();
            }
            for version in ["ltr-features.0", quire_featspec::FEATURES_VERSION] {
                register_ltr(&reg, &store, version).await;
            }
            // A CF version has no feature spec: never stale.
            let model = store.put(b"factors").await.unwrap();
            reg.create_model_version(&NewModelVersion {
                name: "cf".into(),
                source: model.uri.clone(),
                artifacts: vec![NamedArtifact {
                    name: "model.bin".into(),
                    artifact: model,
                }],
                ..Default::default()
            })
            .await
            .unwrap();
            for name in ["ltr", "cf"] {
                reg.set_alias(name, "production", 1, "test").await.unwrap();
            }
            reg.close().await;
        });
        let names = ["ltr".to_owned(), "cf".to_owned()];
        assert_eq!(to_promote(&url, &artifacts, &names).unwrap(), ["ltr"]);
        let said = promote(&url, &artifacts, &names).unwrap();
        assert!(
            said.contains("ltr@production → v2 (v1 has features ltr-features.0"),
            "{said}"
        );
        assert!(said.contains("cf@production stays v1"), "{said}");
        assert!(to_promote(&url, &artifacts, &names).unwrap().is_empty());
        // A latest version with stale features too (its training did not use this code):
        // production stays where it is.
        registry_runtime().unwrap().block_on(async {
            let reg = Registry::connect(&url).await.unwrap();
            let store = ArtifactStore::open(&artifacts).await.unwrap();
            register_ltr(&reg, &store, "ltr-features.0").await;
            reg.set_alias("ltr", "production", 1, "test").await.unwrap();
            reg.close().await;
        });
        let said = promote(&url, &artifacts, &names).unwrap();
        assert!(
            said.contains("ltr@production stays v1: neither it nor the latest, v3,"),
            "{said}"
        );
    }
}
