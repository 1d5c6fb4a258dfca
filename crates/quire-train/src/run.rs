//! One training run: config → features → trainer → registry.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use quire_registry::{
    ArtifactStore, Metric, NamedArtifact, NewModelVersion, NewRun, Registry, RunStatus,
};

use crate::config::{Kind, TrainConfig};
use crate::{Error, Locations, ModelRef, Progress, Result, TrainReport};

/// What a trainer hands back to be registered.
pub(crate) struct Trained {
    /// Final metrics and per-iteration histories (key, step, value). The final ones are logged
    /// one step past the last iteration, as MLflow's LightGBM autologging does, so that a key
    /// with a history (`valid_ndcg_at_5`: every iteration, then the best iteration's value,
    /// which the kept model has) reads as the final value where the latest is shown.
    pub metrics: Vec<(String, f64)>,
    pub history: Vec<(String, i64, f64)>,
    /// Params beyond the config (data sizes, versions).
    pub params: Vec<(String, String)>,
    /// (name, bytes) of the version's artifacts; the first is the main one.
    pub artifacts: Vec<(String, Vec<u8>)>,
    pub summary: Vec<(String, String)>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs this process started and has not ended: (registry URL, run id). A run's creation and
/// its final status are written with this lock held, and a signal handler's
/// [`mark_open_runs_killed`] keeps it until the process ends: so the handler sees every run
/// that exists, never overwrites a final status, and no run starts after it.
static OPEN_RUNS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A run in [`OPEN_RUNS`] while it trains; a panic's unwinding removes it too.
struct OpenRun((String, String));

impl OpenRun {
    /// Creates a run with `create` (returning its id) and records it as open, both under the
    /// lock.
    fn create<T>(
        registry: &str,
        create: impl FnOnce() -> Result<T>,
        id: impl Fn(&T) -> String,
    ) -> Result<(Self, T)> {
        let mut runs = open_runs();
        let created = create()?;
        let run = (registry.to_owned(), id(&created));
        runs.push(run.clone());
        Ok((Self(run), created))
    }

    /// Writes the run's final status with `end` and removes it from the open runs, both under
    /// the lock.
    fn end<T>(self, end: impl FnOnce() -> T) -> T {
        let mut runs = open_runs();
        let ended = end();
        runs.retain(|r| *r != self.0);
        drop(runs);
        ended
    }
}

impl Drop for OpenRun {
    fn drop(&mut self) {
        open_runs().retain(|r| *r != self.0);
    }
}

fn open_runs() -> std::sync::MutexGuard<'static, Vec<(String, String)>> {
    OPEN_RUNS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Marks `KILLED`, with an end time, every run this process started and has not ended, as
/// MLflow's client does for a run ended by Ctrl-C. For a binary's signal handler, right before
/// the process ends: the open runs stay locked afterwards, so a run being created or ended
/// waits for it and no run starts after it. Each registry gets at most `timeout`. Returns the
/// runs, each with the error that kept it from being marked, if any.
pub fn mark_open_runs_killed(timeout: Duration) -> Vec<(String, Option<String>)> {
    let mut open = open_runs();
    let runs = std::mem::take(&mut *open);
    // Held until the process ends (see above).
    std::mem::forget(open);
    if runs.is_empty() {
        return Vec::new();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let why = format!("starting the async runtime: {e}");
            return runs
                .into_iter()
                .map(|(_, id)| (id, Some(why.clone())))
                .collect();
        }
    };
    runs.into_iter()
        .map(|(url, id)| {
            let mark = async {
                let registry = Registry::connect_existing(&url).await?;
                registry
                    .update_run(&id, RunStatus::Killed, Some(now_ms()), None)
                    .await?;
                registry.close().await;
                Ok::<(), quire_registry::Error>(())
            };
            // The timer needs the runtime: the timeout is made inside it.
            let marked = rt.block_on(async { tokio::time::timeout(timeout, mark).await });
            let error = match marked {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("the registry did not answer within {timeout:?}")),
            };
            (id, error)
        })
        .collect()
}

/// Flattens a config into dotted `key = value` params (`ltr.lightgbm.num_leaves = 31`).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// The commit of the git checkout holding the training config (with `-dirty` when it has
/// changes), as MLflow logs the commit of the source it ran: the config is a run's source.
/// Quire's own version is the `quire.version` tag.
fn git_commit(config_path: &Path) -> Option<String> {
    let dir = match config_path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let git = || {
        let mut c = std::process::Command::new("git");
        c.arg("-C").arg(dir);
        c
    };
    let out = git().args(["rev-parse", "HEAD"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let mut commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let dirty = git()
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    Some(commit)
}

/// Runs the training config at `config_path`: computes the features from the lake, trains,
/// evaluates, logs the run and registers the model as a new version of the config's model.
pub fn train(config_path: &Path, loc: &Locations, progress: &dyn Progress) -> Result<TrainReport> {
    let started = Instant::now();
    let (cfg, text) = TrainConfig::load(config_path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io(format!("starting the async runtime: {e}")))?;
    let registry = rt.block_on(Registry::connect(&loc.registry))?;
    let store = rt.block_on(ArtifactStore::open(&loc.artifacts))?;
    let experiment = match rt.block_on(registry.get_experiment_by_name(&cfg.experiment)) {
        Ok(e) => e.experiment_id,
        Err(quire_registry::Error::NotFound { .. }) => {
            match rt.block_on(registry.create_experiment(&cfg.experiment, None)) {
                Ok(id) => id,
                // Another run created it meanwhile (two first runs at once): use that one.
                Err(quire_registry::Error::AlreadyExists { .. }) => {
                    rt.block_on(registry.get_experiment_by_name(&cfg.experiment))?
                        .experiment_id
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let kind = cfg.kind();
    let mut tags: Vec<(String, String)> = cfg
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.push(("quire.trainer".into(), kind_name(kind).into()));
    tags.push(("quire.config".into(), config_path.display().to_string()));
    tags.push(("quire.version".into(), env!("CARGO_PKG_VERSION").into()));
    if let Some(d) = &cfg.description {
        tags.push(("mlflow.note.content".into(), d.clone()));
    }
    let mut params = Vec::new();
    let value = serde_json::to_value(&cfg).map_err(|e| Error::Data(e.to_string()))?;
    flatten("", &value, &mut params);
    params.retain(|(k, _)| k != "description" && !k.starts_with("tags."));
    let git_commit = git_commit(config_path);

    // From its creation on, the run ends FINISHED, FAILED or, interrupted, KILLED.
    let (open, run) = OpenRun::create(
        &loc.registry,
        || {
            Ok(rt.block_on(registry.create_run(NewRun {
                experiment_id: experiment,
                run_name: cfg.run_name.clone().unwrap_or_default(),
                user_id: std::env::var("USER").unwrap_or_default(),
                start_time: None,
                tags,
                source_config: Some(text),
                git_commit,
            }))?)
        },
        |run| run.info.run_id.clone(),
    )?;
    let run_id = run.info.run_id.clone();
    // A panic is caught only to mark the run failed; it then goes on unwinding.
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<TrainReport> {
        // The config's params first: a run that fails still shows what it was run with.
        rt.block_on(registry.log_params(&run_id, &params))?;
        let trained = match kind {
            Kind::Ltr => crate::train_ltr::run(&cfg, loc, &run_id, progress)?,
            Kind::Cf => crate::train_cf::run(&cfg, loc, progress)?,
        };
        progress.stage("register");
        rt.block_on(registry.log_params(&run_id, &trained.params))?;
        let ts = now_ms();
        let mut metrics: Vec<Metric> = trained
            .history
            .iter()
            .map(|(k, step, v)| Metric {
                key: k.clone(),
                value: *v,
                timestamp: ts,
                step: *step,
            })
            .collect();
        let final_step = trained.history.iter().map(|h| h.1 + 1).max().unwrap_or(0);
        metrics.extend(trained.metrics.iter().map(|(k, v)| Metric {
            key: k.clone(),
            value: *v,
            timestamp: ts,
            step: final_step,
        }));
        for chunk in metrics.chunks(1000) {
            rt.block_on(registry.log_batch(&run_id, chunk, &[], &[]))?;
        }
        let mut artifacts = Vec::new();
        for (name, bytes) in &trained.artifacts {
            let artifact = rt.block_on(store.put(bytes))?;
            artifacts.push(NamedArtifact {
                name: name.clone(),
                artifact,
            });
        }
        let source = artifacts
            .first()
            .map(|a| a.artifact.uri.clone())
            .unwrap_or_default();
        ensure_model(&rt, &registry, &cfg.model)?;
        let version = rt.block_on(registry.create_model_version(&NewModelVersion {
            name: cfg.model.clone(),
            source: source.clone(),
            run_id: Some(run_id.clone()),
            description: cfg.description.clone().unwrap_or_default(),
            artifacts,
            ..Default::default()
        }))?;
        Ok(TrainReport {
            run_id: run_id.clone(),
            model: ModelRef {
                name: cfg.model.clone(),
                version: version.version,
            },
            metrics: trained.metrics.into_iter().collect(),
            artifact_uri: source,
            experiment: cfg.experiment.clone(),
            kind: kind_name(kind),
            seconds: started.elapsed().as_secs_f64(),
            summary: trained.summary,
        })
    }));
    let status = match &outcome {
        Ok(Ok(_)) => RunStatus::Finished,
        _ => RunStatus::Failed,
    };
    let ended =
        open.end(|| rt.block_on(registry.update_run(&run_id, status, Some(now_ms()), None)));
    rt.block_on(registry.close());
    match outcome {
        Ok(Ok(report)) => ended.map(|_| report).map_err(Error::from),
        // Marking the run failed is best effort: the original error is what the user sees.
        Ok(Err(e)) => Err(e),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn ensure_model(rt: &tokio::runtime::Runtime, registry: &Registry, name: &str) -> Result<()> {
    match rt.block_on(registry.get_registered_model(name)) {
        Ok(_) => Ok(()),
        Err(quire_registry::Error::NotFound { .. }) => {
            match rt.block_on(registry.create_registered_model(name, "")) {
                Ok(_) | Err(quire_registry::Error::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Ltr => "ltr",
        Kind::Cf => "cf",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// The commit logged is the config's checkout's, wherever quire runs from.
    #[test]
    fn the_commit_is_the_configs_checkout() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("configs");
        std::fs::create_dir(&repo).unwrap();
        assert_eq!(git_commit(&repo.join("ltr.toml")), None, "not a checkout");
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("ltr.toml"), "version = 1\n").unwrap();
        git(&repo, &["add", "ltr.toml"]);
        git(&repo, &["commit", "-q", "-m", "c"]);
        let head = git(&repo, &["rev-parse", "HEAD"]);
        assert_eq!(git_commit(&repo.join("ltr.toml")), Some(head.clone()));
        std::fs::write(repo.join("ltr.toml"), "version = 2\n").unwrap();
        assert_eq!(
            git_commit(&repo.join("ltr.toml")),
            Some(format!("{head}-dirty"))
        );
    }
}
