//! The registry: one code path over SQLite and PostgreSQL through `sqlx::Any`.
//!
//! Every statement is written once, with `$n` placeholders (which SQLite accepts too) and
//! portable SQL (`ON CONFLICT`, `RETURNING`). Times are `i64` milliseconds, as in MLflow.
//! Transactions start with a write, so SQLite takes its write lock up front and concurrent
//! writers queue on the busy timeout instead of failing on a lock upgrade.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Executor, FromRow, Row};
use tracing::debug;

use crate::artifacts::{ArtifactRef, NamedArtifact};
use crate::batch::{Batch, MAX_GROUP, Waiting, WaitingBatches};
use crate::error::{Error, Result, classify};
use crate::filter::{
    Bind, OrderTerm, SqlBuilder, compile_filter, like_tokens, parse_order, render_order,
};
use crate::mlflow::parse_offset;
use crate::model::{
    ACTIVE, AliasMove, DELETED, Experiment, Metric, ModelVersion, NewModelVersion, NewRun,
    RegisteredModel, Run, RunData, RunInfo, RunStatus, RunsPage, SearchRuns, ViewType,
};
use crate::script::Script;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for the write lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u64 = 60_000;
/// MLflow's limits.
pub(crate) const MAX_PARAM_VALUE_LEN: usize = 6000;
pub(crate) const MAX_TAG_VALUE_LEN: usize = 8000;
const MAX_RESULTS_LIMIT: i64 = 50_000;

/// The database behind a [`Registry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the registry database; cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// SQLite: this process's run writers take turns here instead of in SQLite's busy handler,
    /// which sleeps (1, 2, 5, 10… ms) whenever another connection holds the write lock; that
    /// sleeping made a few concurrent `log-batch` calls wait 100+ ms. Other processes still
    /// wait on the busy timeout. PostgreSQL locks rows and needs no turn.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// SQLite: log-batches waiting for the write turn, written together by whoever gets it.
    waiting: Arc<WaitingBatches>,
}

pub(crate) fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Sets a model version's tag (name, version, key, value), replacing its value.
const SET_VERSION_TAG: &str = "INSERT INTO model_version_tags (name, version, key, value) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value";

pub(crate) fn check_key(what: &str, key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 250 {
        return Err(Error::InvalidParameter(format!(
            "{what} key {key:?} must have 1 to 250 characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_value(what: &str, key: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::InvalidParameter(format!(
            "{what} {key:?} has a value of {} characters; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

fn check_alias(alias: &str) -> Result<()> {
    let version_like = alias
        .strip_prefix(['v', 'V'])
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
    if alias.is_empty() || alias.len() > 255 || alias.eq_ignore_ascii_case("latest") || version_like
    {
        return Err(Error::InvalidParameter(format!(
            "alias {alias:?} is reserved or malformed; aliases are 1 to 255 characters and not `latest` or `v<number>`"
        )));
    }
    Ok(())
}

#[derive(FromRow)]
struct ExperimentRow {
    experiment_id: i64,
    name: String,
    artifact_location: String,
    lifecycle_stage: String,
    creation_time: i64,
    last_update_time: i64,
}

#[derive(FromRow)]
pub(crate) struct RunRow {
    run_uuid: String,
    experiment_id: i64,
    name: String,
    user_id: String,
    status: String,
    start_time: i64,
    end_time: Option<i64>,
    artifact_uri: String,
    lifecycle_stage: String,
    source_config: Option<String>,
    git_commit: Option<String>,
}

impl RunRow {
    /// The run's info; fails on a status the schema should not hold.
    pub(crate) fn into_info(self) -> Result<RunInfo> {
        Ok(RunInfo {
            run_id: self.run_uuid,
            experiment_id: self.experiment_id,
            run_name: self.name,
            user_id: self.user_id,
            status: self.status.parse()?,
            start_time: self.start_time,
            end_time: self.end_time,
            artifact_uri: self.artifact_uri,
            lifecycle_stage: self.lifecycle_stage,
            source_config: self.source_config,
            git_commit: self.git_commit,
        })
    }
}

#[derive(FromRow)]
struct MetricRow {
    key: String,
    /// `NULL`: NaN (see the `nan_metrics` migration).
    value: Option<f64>,
    timestamp: i64,
    step: i64,
}

impl From<MetricRow> for Metric {
    fn from(r: MetricRow) -> Self {
        Metric {
            key: r.key,
            value: r.value.unwrap_or(f64::NAN),
            timestamp: r.timestamp,
            step: r.step,
        }
    }
}

#[derive(FromRow)]
struct ModelRow {
    name: String,
    description: String,
    creation_time: i64,
    last_updated_time: i64,
    latest_version: i64,
}

#[derive(FromRow)]
struct VersionRow {
    name: String,
    version: i64,
    description: String,
    creation_time: i64,
    last_updated_time: i64,
    source: String,
    run_id: Option<String>,
    status: String,
}

#[derive(FromRow)]
struct ArtifactRow {
    artifact_name: String,
    uri: String,
    sha256: String,
    size: i64,
}

#[derive(FromRow)]
struct AliasMoveRow {
    name: String,
    alias: String,
    from_version: Option<i64>,
    to_version: Option<i64>,
    moved_at: i64,
    moved_by: String,
}

const EXPERIMENT_COLUMNS: &str =
    "experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time";
pub(crate) const RUN_COLUMNS: &str = "run_uuid, experiment_id, name, user_id, status, start_time, end_time, \
     artifact_uri, lifecycle_stage, source_config, git_commit";
const VERSION_COLUMNS: &str =
    "name, version, description, creation_time, last_updated_time, source, run_id, status";

/// The file path and query of a `sqlite://path?query` (or `sqlite:path`) url.
fn sqlite_parts(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split_once('?').unwrap_or((rest, "")))
}

/// How long a first connection to a PostgreSQL registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection to the server, alone, before the pool: the pool retries a refused or
/// failing connection until its acquire timeout (two minutes, sized for waits under load)
/// and then reports only that it timed out; this reports the server's own error at once.
async fn probe_server(url: &str) -> Result<()> {
    use sqlx::Connection;
    match tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url)).await {
        Ok(conn) => conn?.close().await.map_err(Error::from),
        Err(_) => Err(Error::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from the server within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        )))),
    }
}

/// `url` with its password, if any, replaced by `***`: for messages and logs. A URL that does
/// not parse (a password with an unencoded `#`, `/` or `?`) has everything between `://` and
/// its last `@` replaced.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &url[..scheme], &url[at + 1..])
            }
            _ => url.to_owned(),
        },
    }
}

impl Registry {
    /// This process's turn to write a run (SQLite; see [`Registry::writer`]); `None` on
    /// PostgreSQL.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// [`Self::connect`] to a registry that must exist already: a SQLite file that is not there
    /// is [`Error::NotFound`] (naming it) rather than a new, empty registry, so that a
    /// mistyped path read by a command does not list nothing, successfully.
    pub async fn connect_existing(url: &str) -> Result<Self> {
        if let Some((path, _)) = sqlite_parts(url)
            && !path.is_empty()
            && !Path::new(path).exists()
        {
            return Err(Error::not_found("registry database", path));
        }
        Self::connect(url).await
    }

    /// Opens the registry at `url` and brings its schema up to date.
    ///
    /// `sqlite:///abs/path/registry.db` creates the file and its parent directories and uses
    /// WAL with a busy timeout, so concurrent writers (threads or processes) wait for each
    /// other; `postgres://user@host:port/db` connects to a server.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some((path, query)) = sqlite_parts(url) {
            if path.is_empty() || path == ":memory:" {
                return Err(Error::InvalidParameter(format!(
                    "registry url {url:?} names no database file; use sqlite:///abs/path/registry.db"
                )));
            }
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| Error::io(dir, e))?;
            }
            let query = if query.is_empty() {
                "mode=rwc".to_owned()
            } else {
                query.to_owned()
            };
            (Backend::Sqlite, format!("sqlite://{path}?{query}"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(Error::InvalidParameter(format!(
                "unsupported registry url {:?}; expected sqlite:///path/registry.db or postgres://…",
                redacted_url(url)
            )));
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(120));
        if backend == Backend::Sqlite {
            // A SQLite connection is a file handle in this process: it cannot have been lost
            // while idle, so the pool's ping before each use would only cost a round trip.
            options = options.test_before_acquire(false);
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(format!(
                        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
                    )))
                    .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // Statement journals (kept for every multi-row write inside a transaction,
                    // so one failing statement can be undone alone) stay in memory: by default
                    // SQLite spills them past 64 KiB to a temporary file, which a log-batch
                    // created, wrote and deleted on every commit.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    // Checkpoint every ~40 MB of WAL rather than every 4 MB: a log-batch rewrites
                    // ~40 scattered index pages, and a longer interval copies each page back once
                    // for many commits and syncs ten times less often (the checkpoint runs inside
                    // a commit, in the writers' turn).
                    conn.execute("PRAGMA wal_autocheckpoint = 10000").await?;
                    // Reads through a memory map share the OS page cache across connections
                    // instead of each connection's 2 MiB page cache (a run search probing
                    // 10,000 runs' metrics ran in half the time). Virtual size, not memory.
                    conn.execute("PRAGMA mmap_size = 268435456").await?;
                    // LIKE is case-sensitive on PostgreSQL; make SQLite agree.
                    conn.execute("PRAGMA case_sensitive_like = ON").await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            probe_server(&url).await?;
        }
        let pool = options.connect(&url).await?;
        match backend {
            Backend::Sqlite => init_sqlite(&pool).await?,
            // PostgreSQL migrations take an advisory lock: concurrent first connects are safe.
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        debug!(?backend, "registry connected");
        Ok(Registry {
            pool,
            backend,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            waiting: Arc::default(),
        })
    }

    /// Which database this registry lives in.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- experiments ----

    /// Creates an experiment; its artifact location defaults to `mlflow-artifacts:/<id>`.
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
    ) -> Result<i64> {
        if name.trim().is_empty() {
            return Err(Error::InvalidParameter(
                "experiment name must not be empty".into(),
            ));
        }
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES ($1, $2, $3, $4, $4) RETURNING experiment_id",
        )
        .bind(name)
        .bind(artifact_location.unwrap_or(""))
        .bind(ACTIVE)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| classify(e, ("experiment", name), ("experiment", name)))?;
        if artifact_location.is_none() {
            sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE experiment_id = $2")
                .bind(format!("mlflow-artifacts:/{id}"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn get_experiment(&self, experiment_id: i64) -> Result<Experiment> {
        let row = sqlx::query_as::<_, ExperimentRow>(AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE experiment_id = $1"
        )))
        .bind(experiment_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("experiment", experiment_id))?;
        self.experiment_from_row(row).await
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query_as::<_, ExperimentRow>(AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("experiment", name))?;
        self.experiment_from_row(row).await
    }

    /// Experiments whose name matches the SQL `LIKE` pattern (all when `None`; `\\` escapes the
    /// next character, an unfinished escape is [`Error::InvalidParameter`]), by id.
    pub async fn search_experiments(
        &self,
        name_like: Option<&str>,
        view: ViewType,
    ) -> Result<Vec<Experiment>> {
        let rows = sqlx::query_as::<_, ExperimentRow>(AssertSqlSafe(format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments \
             WHERE name LIKE $1 ESCAPE '\\' AND ($2 = 'all' OR lifecycle_stage = $2) \
             ORDER BY experiment_id"
        )))
        .bind(like_pattern(name_like)?)
        .bind(view_stage(view))
        .fetch_all(&self.pool)
        .await?;
        let mut experiments = Vec::with_capacity(rows.len());
        for row in rows {
            experiments.push(self.experiment_from_row(row).await?);
        }
        Ok(experiments)
    }

    async fn experiment_from_row(&self, r: ExperimentRow) -> Result<Experiment> {
        let tags = sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1")
            .bind(r.experiment_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("key")?, row.try_get("value")?)))
            .collect::<Result<BTreeMap<String, String>>>()?;
        Ok(Experiment {
            experiment_id: r.experiment_id,
            name: r.name,
            artifact_location: r.artifact_location,
            lifecycle_stage: r.lifecycle_stage,
            creation_time: r.creation_time,
            last_update_time: r.last_update_time,
            tags,
        })
    }

    /// Sets (or overwrites) an experiment tag.
    pub async fn set_experiment_tag(
        &self,
        experiment_id: i64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        check_key("experiment tag", key)?;
        check_value("experiment tag", key, value, MAX_TAG_VALUE_LEN)?;
        sqlx::query(
            "INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(experiment_id)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            classify(
                e,
                ("experiment tag", key),
                ("experiment", &experiment_id.to_string()),
            )
        })?;
        Ok(())
    }

    /// Removes an experiment tag.
    pub async fn delete_experiment_tag(&self, experiment_id: i64, key: &str) -> Result<()> {
        let deleted =
            sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                .bind(experiment_id)
                .bind(key)
                .execute(&self.pool)
                .await?;
        found(deleted, "experiment tag", format!("{experiment_id}/{key}"))?;
        Ok(())
    }

    /// Marks an experiment deleted (MLflow's soft delete) or active again.
    pub async fn set_experiment_lifecycle(&self, experiment_id: i64, deleted: bool) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE experiment_id = $3",
        )
        .bind(if deleted { DELETED } else { ACTIVE })
        .bind(now_millis())
        .bind(experiment_id)
        .execute(&self.pool)
        .await?;
        found(updated, "experiment", experiment_id)?;
        Ok(())
    }

    // ---- runs ----

    /// Starts a run (status `RUNNING`) and returns it.
    pub async fn create_run(&self, new: NewRun) -> Result<Run> {
        let experiment = self.get_experiment(new.experiment_id).await?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(Error::InvalidParameter(format!(
                "experiment {} is deleted; runs cannot be created in it",
                experiment.experiment_id
            )));
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let run_name = if new.run_name.is_empty() {
            format!("run-{}", &run_id[..8])
        } else {
            new.run_name
        };
        let mut tags = new.tags;
        tags.push(("mlflow.runName".into(), run_name.clone()));
        if !new.user_id.is_empty() {
            tags.push(("mlflow.user".into(), new.user_id.clone()));
        }
        if let Some(commit) = &new.git_commit {
            tags.push(("mlflow.source.git.commit".into(), commit.clone()));
        }
        for (k, v) in &tags {
            check_key("tag", k)?;
            check_value("tag", k, v, MAX_TAG_VALUE_LEN)?;
        }
        let artifact_uri = format!(
            "{}/{run_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (run_uuid, experiment_id, name, user_id, status, start_time, end_time, \
             artifact_uri, lifecycle_stage, source_config, git_commit) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, $10)",
        )
        .bind(&run_id)
        .bind(new.experiment_id)
        .bind(&run_name)
        .bind(&new.user_id)
        .bind(RunStatus::Running.as_str())
        .bind(new.start_time.unwrap_or_else(now_millis))
        .bind(&artifact_uri)
        .bind(ACTIVE)
        .bind(new.source_config.as_deref())
        .bind(new.git_commit.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            classify(
                e,
                ("run", &run_id),
                ("experiment", &new.experiment_id.to_string()),
            )
        })?;
        for (k, v) in &tags {
            upsert_tag(&mut tx, &run_id, k, v).await?;
        }
        tx.commit().await?;
        self.get_run(&run_id).await
    }

    /// A run with its params, tags and the latest value of each metric.
    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let row = sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = $1"
        )))
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("run", run_id))?;
        let mut metrics = sqlx::query_as::<_, MetricRow>(
            "SELECT key, value, timestamp, step FROM latest_metrics WHERE run_uuid = $1",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        // Keys by their bytes on every backend (a PostgreSQL database may collate by language).
        metrics.sort_by(|a, b| a.key.cmp(&b.key));
        let params = self.key_values("params", run_id).await?;
        let tags = self.key_values("tags", run_id).await?;
        Ok(Run {
            info: row.into_info()?,
            data: RunData {
                metrics: metrics.into_iter().map(Metric::from).collect(),
                params,
                tags,
            },
        })
    }

    async fn key_values(
        &self,
        table: &'static str,
        run_id: &str,
    ) -> Result<BTreeMap<String, String>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT key, value FROM {table} WHERE run_uuid = $1"
        )))
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    /// Sets a run's status, end time and (when given) name.
    pub async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time: Option<i64>,
        run_name: Option<&str>,
    ) -> Result<RunInfo> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = $1, end_time = COALESCE($2, end_time), name = COALESCE($3, name) \
             WHERE run_uuid = $4",
        )
        .bind(status.as_str())
        .bind(end_time)
        .bind(run_name)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        found(updated, "run", run_id)?;
        if let Some(name) = run_name {
            upsert_tag(&mut tx, run_id, "mlflow.runName", name).await?;
        }
        tx.commit().await?;
        Ok(self.get_run(run_id).await?.info)
    }

    /// Marks a run deleted (MLflow's soft delete) or active again.
    pub async fn set_run_lifecycle(&self, run_id: &str, deleted: bool) -> Result<()> {
        let updated = sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE run_uuid = $2")
            .bind(if deleted { DELETED } else { ACTIVE })
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        found(updated, "run", run_id)?;
        Ok(())
    }

    /// Logs params. A param is immutable: the same value again is a no-op, a different value
    /// an error; the batch is all or nothing.
    pub async fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()> {
        self.log_batch(run_id, &[], params, &[]).await
    }

    /// Appends one metric value to the run's history.
    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        self.log_batch(run_id, std::slice::from_ref(metric), &[], &[])
            .await
    }

    /// Sets (or overwrites) a tag.
    pub async fn set_tag(&self, run_id: &str, key: &str, value: &str) -> Result<()> {
        self.log_batch(run_id, &[], &[], &[(key.to_owned(), value.to_owned())])
            .await
    }

    /// Removes a run tag (MLflow's `DeleteTag`).
    pub async fn delete_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM tags WHERE run_uuid = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        found(deleted, "run tag", format!("{run_id}/{key}"))?;
        Ok(())
    }

    /// Logs metrics, params and tags in one transaction (MLflow's `LogBatch`). On SQLite,
    /// batches logged at the same moment share a transaction (see [`crate::batch`]); each
    /// still succeeds or fails on its own.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> Result<()> {
        let batch = Batch::new(run_id, metrics, params, tags)?;
        match self.backend {
            Backend::Sqlite => self.group_commit(batch).await,
            Backend::Postgres => self.write_batches(&[&batch]).await,
        }
    }

    /// Writes `batch` in this process's write turn, with whatever other batches wait for it.
    /// The first caller to get the turn writes every waiting batch (up to [`MAX_GROUP`]) in
    /// one transaction and hands each caller its answer; the others find theirs written when
    /// their turn comes. The write runs in its own task, holding the turn, so a caller that
    /// goes away (its client hung up) never leaves the others' batches half done.
    async fn group_commit(&self, batch: Batch) -> Result<()> {
        let (done, mut answer) = tokio::sync::oneshot::channel();
        self.waiting.push(batch, done);
        let mut turn = self.writer.clone().lock_owned().await;
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    return Err(Error::Internal(
                        "a log-batch writer stopped before answering".into(),
                    ));
                }
            }
            let group = self.waiting.take(MAX_GROUP);
            let registry = self.clone();
            turn = tokio::spawn(async move {
                registry.write_group(group).await;
                turn
            })
            .await
            .map_err(|e| Error::Internal(format!("log-batch writer failed: {e}")))?;
        }
    }

    /// Writes a group of waiting batches and answers each: together in one transaction, or,
    /// when that fails, each in its own so that only the bad batch fails (with its own error).
    async fn write_group(&self, mut group: Vec<Waiting>) {
        // Callers that went away before their batch was taken: nobody waits for the answer.
        group.retain(|w| !w.done.is_closed());
        if group.len() > 1 {
            let batches: Vec<&Batch> = group.iter().map(|w| &w.batch).collect();
            if self.write_batches(&batches).await.is_ok() {
                for w in group {
                    let _ = w.done.send(Ok(()));
                }
                return;
            }
        }
        for w in group {
            let result = self.write_batches(&[&w.batch]).await;
            let _ = w.done.send(result);
        }
    }

    /// Writes batches in one transaction: all of them, or none and the first failure.
    async fn write_batches(&self, batches: &[&Batch]) -> Result<()> {
        // The whole group is one script (one round trip on SQLite; see `crate::script`), and
        // its statements write many rows each.
        let mut script = Script::new(self.backend);
        let firsts: Vec<usize> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| b.append(i as i64, &mut script))
            .collect();
        let mut tx = self.pool.begin().await?;
        let done = script.run(&mut tx).await;
        // The run checks first: a missing run also fails the later statements (their foreign
        // keys), but it is reported as missing; a deleted one fails nothing else.
        for (b, first) in batches.iter().zip(firsts) {
            if done.changed.get(first) == Some(&0) {
                return Err(Error::not_found("active run", b.run_id()));
            }
        }
        if let Some(e) = done.error {
            return Err(e.into());
        }
        let mut stored: Vec<HashMap<String, String>> = vec![HashMap::new(); batches.len()];
        for row in &done.rows {
            let i: i64 = row.try_get("batch")?;
            if let Some(map) = usize::try_from(i).ok().and_then(|i| stored.get_mut(i)) {
                map.insert(row.try_get("key")?, row.try_get("value")?);
            }
        }
        for (b, stored) in batches.iter().zip(&stored) {
            b.check_params(stored)?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every logged value of one metric, by step, then timestamp, then logging order.
    pub async fn get_metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM runs WHERE run_uuid = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(Error::not_found("run", run_id));
        }
        let rows = sqlx::query_as::<_, MetricRow>(
            "SELECT key, value, timestamp, step FROM metrics WHERE run_uuid = $1 AND key = $2 \
             ORDER BY step, timestamp, id",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Metric::from).collect())
    }

    /// Searches runs (MLflow's `SearchRuns`); see [`crate::filter`] for the grammar.
    pub async fn search_runs(&self, search: &SearchRuns) -> Result<RunsPage> {
        let max_results = match search.max_results {
            0 => 1000,
            n if (1..=MAX_RESULTS_LIMIT).contains(&n) => n,
            n => {
                return Err(Error::InvalidParameter(format!(
                    "max_results {n} is outside 1..={MAX_RESULTS_LIMIT}"
                )));
            }
        };
        let offset = parse_offset(search.page_token.as_deref())?;
        let order = parse_order(&search.order_by)?;
        // One row more than the page: whether a next page exists.
        let wanted = max_results + 1;
        let mut ids = match order.first().and_then(OrderTerm::metric) {
            Some(key) if self.backend == Backend::Sqlite => {
                self.run_ids_by_metric(search, key, &order, wanted, offset)
                    .await?
            }
            _ => {
                let mut q = SqlBuilder {
                    sql: "SELECT r.run_uuid FROM runs r WHERE 1 = 1".into(),
                    binds: Vec::new(),
                };
                append_run_conditions(search, &mut q)?;
                let terms = render_order(&order, &mut q, self.backend);
                self.run_ids(q, terms, wanted, offset).await?
            }
        };
        let next_page_token = if ids.len() as i64 > max_results {
            ids.truncate(max_results as usize);
            Some((offset + max_results).to_string())
        } else {
            None
        };
        let runs = self.get_runs(&ids).await?;
        Ok(RunsPage {
            runs,
            next_page_token,
        })
    }

    /// The ids of a run query's page: `q` selects `r.run_uuid` with its conditions; `order`
    /// comes first, then newest start, then id.
    async fn run_ids(
        &self,
        mut q: SqlBuilder,
        mut order: Vec<String>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>> {
        order.extend(["r.start_time DESC".to_owned(), "r.run_uuid ASC".to_owned()]);
        let limit = q.bind(Bind::Int(limit));
        let off = q.bind(Bind::Int(offset));
        q.sql.push_str(&format!(
            " ORDER BY {} LIMIT {limit} OFFSET {off}",
            order.join(", ")
        ));
        let (sql, arguments) = q.into_parts()?;
        Ok(sqlx::query_scalar_with(sql, arguments)
            .fetch_all(&self.pool)
            .await?)
    }

    /// A page of runs ordered first by the metric `key` (SQLite). The general query looks up
    /// every candidate run's value and sorts them all before it can return the first page
    /// (≈ 20 ms for 10,000 runs); this one walks the metric's `(key, value, run_uuid)` index
    /// in the order asked and stops after the page (≈ 1 ms), leaving SQLite to sort only runs
    /// tied on the value. SQLite's planner does not choose that plan itself (its cost model
    /// cannot see the `LIMIT`), hence `INDEXED BY` and `CROSS JOIN`, which fix the loop order.
    /// Runs without the metric, or whose value is NaN (stored as NULL), come last, as in the
    /// general query (`NULLS LAST`): a second query fills the
    /// page with them once the runs with it run out.
    async fn run_ids_by_metric(
        &self,
        search: &SearchRuns,
        key: &str,
        order: &[OrderTerm],
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>> {
        const WITH_METRIC: &str = " FROM latest_metrics o \
             INDEXED BY latest_metrics_key_value_run CROSS JOIN runs r ON r.run_uuid = o.run_uuid \
             WHERE o.key = $1 AND o.value IS NOT NULL";
        let with_metric = |select: &str| -> Result<SqlBuilder> {
            let mut q = SqlBuilder {
                sql: format!("{select}{WITH_METRIC}"),
                binds: vec![Bind::Text(key.to_owned())],
            };
            append_run_conditions(search, &mut q)?;
            Ok(q)
        };
        let mut q = with_metric("SELECT r.run_uuid")?;
        let mut terms = vec![format!("o.value {}", order[0].direction())];
        terms.extend(render_order(&order[1..], &mut q, self.backend));
        let mut ids = self.run_ids(q, terms, limit, offset).await?;
        if ids.len() as i64 == limit {
            return Ok(ids);
        }
        // How many runs have the metric, to know where the runs without it start: the page
        // just read tells when it holds any of them; otherwise they are counted.
        let with_count = if ids.is_empty() && offset > 0 {
            let q = with_metric("SELECT count(*)")?;
            let (sql, arguments) = q.into_parts()?;
            sqlx::query_scalar_with::<_, i64, _>(sql, arguments)
                .fetch_one(&self.pool)
                .await?
        } else {
            offset + ids.len() as i64
        };
        let mut q = SqlBuilder {
            sql: "SELECT r.run_uuid FROM runs r WHERE NOT EXISTS \
                  (SELECT 1 FROM latest_metrics o WHERE o.run_uuid = r.run_uuid AND o.key = $1 \
                   AND o.value IS NOT NULL)"
                .into(),
            binds: vec![Bind::Text(key.to_owned())],
        };
        append_run_conditions(search, &mut q)?;
        let terms = render_order(&order[1..], &mut q, self.backend);
        let rest = limit - ids.len() as i64;
        ids.extend(
            self.run_ids(q, terms, rest, (offset - with_count).max(0))
                .await?,
        );
        Ok(ids)
    }

    // ---- registered models ----

    pub async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
    ) -> Result<RegisteredModel> {
        if name.trim().is_empty() {
            return Err(Error::InvalidParameter(
                "registered model name must not be empty".into(),
            ));
        }
        let now = now_millis();
        sqlx::query(
            "INSERT INTO registered_models (name, description, creation_time, last_updated_time, latest_version) \
             VALUES ($1, $2, $3, $3, 0)",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, ("registered model", name), ("registered model", name)))?;
        self.get_registered_model(name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let row = sqlx::query_as::<_, ModelRow>(
            "SELECT name, description, creation_time, last_updated_time, latest_version \
             FROM registered_models WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("registered model", name))?;
        self.model_from_row(row).await
    }

    async fn model_from_row(&self, row: ModelRow) -> Result<RegisteredModel> {
        let aliases =
            sqlx::query("SELECT alias, version FROM registered_model_aliases WHERE name = $1")
                .bind(&row.name)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("alias")?, r.try_get("version")?)))
                .collect::<Result<BTreeMap<String, i64>>>()?;
        let tags = sqlx::query("SELECT key, value FROM registered_model_tags WHERE name = $1")
            .bind(&row.name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<BTreeMap<String, String>>>()?;
        Ok(RegisteredModel {
            name: row.name,
            description: row.description,
            creation_time: row.creation_time,
            last_updated_time: row.last_updated_time,
            latest_version: row.latest_version,
            aliases,
            tags,
        })
    }

    /// Registered models whose name matches the SQL `LIKE` pattern (all when `None`; `\\`
    /// escapes the next character, an unfinished escape is [`Error::InvalidParameter`]), by
    /// name (its bytes).
    pub async fn search_registered_models(
        &self,
        name_like: Option<&str>,
    ) -> Result<Vec<RegisteredModel>> {
        let rows = sqlx::query_as::<_, ModelRow>(
            "SELECT name, description, creation_time, last_updated_time, latest_version \
             FROM registered_models WHERE name LIKE $1 ESCAPE '\\'",
        )
        .bind(like_pattern(name_like)?)
        .fetch_all(&self.pool)
        .await?;
        let mut models = Vec::with_capacity(rows.len());
        for row in rows {
            models.push(self.model_from_row(row).await?);
        }
        // By the names' bytes, on every backend (a PostgreSQL database may collate by a
        // language's rules).
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// Deletes a registered model with its versions, aliases, their history and tags (the
    /// artifacts stay in the content-addressed store).
    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // The model's row first, as its registrations and alias moves lock it: one in flight
        // finishes before the deletes. On PostgreSQL that lock does not stop a tag writer's
        // foreign-key check (a key-share lock), so the model's and its versions' rows are
        // also locked for update: a tag added meanwhile would land after the deletes and fail
        // the deletion of the row it refers to. (SQLite writes one transaction at a time.)
        lock_model(&mut tx, name, now_millis()).await?;
        if self.backend == Backend::Postgres {
            for table in ["registered_models", "model_versions"] {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT 1 FROM {table} WHERE name = $1 FOR UPDATE"
                )))
                .bind(name)
                .fetch_all(&mut *tx)
                .await?;
            }
        }
        for table in [
            "alias_history",
            "registered_model_aliases",
            "model_version_tags",
            "model_version_artifacts",
            "model_versions",
            "registered_model_tags",
        ] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE name = $1"
            )))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM registered_models WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets (or overwrites) a registered model tag.
    pub async fn set_registered_model_tag(&self, name: &str, key: &str, value: &str) -> Result<()> {
        check_key("registered model tag", key)?;
        check_value("registered model tag", key, value, MAX_TAG_VALUE_LEN)?;
        sqlx::query(
            "INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(|e| classify(e, ("registered model tag", key), ("registered model", name)))?;
        Ok(())
    }

    /// Removes a registered model tag.
    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2")
            .bind(name)
            .bind(key)
            .execute(&self.pool)
            .await?;
        found(deleted, "registered model tag", format!("{name}/{key}"))?;
        Ok(())
    }

    /// Replaces a registered model's description.
    pub async fn update_registered_model(&self, name: &str, description: &str) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE registered_models SET description = $1, last_updated_time = $2 WHERE name = $3",
        )
        .bind(description)
        .bind(now_millis())
        .bind(name)
        .execute(&self.pool)
        .await?;
        found(updated, "registered model", name)?;
        Ok(())
    }

    // ---- model versions ----

    /// Registers the next version of a model with its artifacts (status `READY`).
    pub async fn create_model_version(&self, new: &NewModelVersion) -> Result<ModelVersion> {
        if let Some(run_id) = &new.run_id {
            self.get_run(run_id).await?;
        }
        for a in &new.artifacts {
            if a.name.is_empty() {
                return Err(Error::InvalidParameter(format!(
                    "an artifact of model {:?} has an empty name",
                    new.name
                )));
            }
        }
        for (key, value) in &new.tags {
            check_key("model version tag", key)?;
            check_value("model version tag", key, value, MAX_TAG_VALUE_LEN)?;
        }
        if let Some(id) = &new.model_id {
            self.get_logged_model(id).await?;
        }
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        // The version number comes from a counter on the model row; the update locks it, so
        // concurrent registrations get distinct numbers on both backends.
        let version: i64 = sqlx::query_scalar(
            "UPDATE registered_models SET latest_version = latest_version + 1, last_updated_time = $1 \
             WHERE name = $2 RETURNING latest_version",
        )
        .bind(now)
        .bind(&new.name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::not_found("registered model", &new.name))?;
        sqlx::query(
            "INSERT INTO model_versions (name, version, description, creation_time, last_updated_time, source, run_id, status, model_id) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, 'READY', $7)",
        )
        .bind(&new.name)
        .bind(version)
        .bind(&new.description)
        .bind(now)
        .bind(&new.source)
        .bind(new.run_id.as_deref())
        .bind(new.model_id.as_deref())
        .execute(&mut *tx)
        .await?;
        // The tags in the same transaction: a version is never seen without them.
        for (key, value) in &new.tags {
            sqlx::query(SET_VERSION_TAG)
                .bind(&new.name)
                .bind(version)
                .bind(key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        for a in &new.artifacts {
            sqlx::query(
                "INSERT INTO model_version_artifacts (name, version, artifact_name, uri, sha256, size) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&new.name)
            .bind(version)
            .bind(&a.name)
            .bind(&a.artifact.uri)
            .bind(&a.artifact.sha256)
            .bind(a.artifact.size)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                classify(
                    e,
                    ("artifact", &a.name),
                    ("model version", &format!("{}/{version}", new.name)),
                )
            })?;
        }
        tx.commit().await?;
        self.get_model_version(&new.name, version).await
    }

    pub async fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        // One snapshot: a version deleted meanwhile is not found, not read without its
        // artifacts.
        let mut tx = self.snapshot().await?;
        let mv = read_version(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(mv)
    }

    /// A read-only transaction whose reads all see one snapshot: SQLite's deferred
    /// transaction does (in WAL mode), PostgreSQL's needs `REPEATABLE READ` (each statement of
    /// a `READ COMMITTED` one sees the commits made before it).
    async fn snapshot(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The highest version `name` has (its `latest_version` counts the numbers handed out,
    /// deleted versions' too); `None` when it has none.
    pub async fn newest_version(&self, name: &str) -> Result<Option<ModelVersion>> {
        let row = sqlx::query_as::<_, VersionRow>(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = $1 \
             ORDER BY version DESC LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(
                version_from_row(&mut *self.pool.acquire().await?, row).await?,
            )),
            None => Ok(None),
        }
    }
}

/// `name`'s version `version`, whole, read on `conn`.
async fn read_version(conn: &mut AnyConnection, name: &str, version: i64) -> Result<ModelVersion> {
    let row = sqlx::query_as::<_, VersionRow>(AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM model_versions WHERE name = $1 AND version = $2"
    )))
    .bind(name)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found("model version", format!("{name}/{version}")))?;
    version_from_row(conn, row).await
}

/// The version of `row` with its tags, aliases and artifacts, read on `conn`.
async fn version_from_row(conn: &mut AnyConnection, row: VersionRow) -> Result<ModelVersion> {
    let tags =
        sqlx::query("SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2")
            .bind(&row.name)
            .bind(row.version)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<BTreeMap<String, String>>>()?;
    // Aliases and artifacts by their bytes on every backend (sorted here: a PostgreSQL
    // database may collate by language).
    let mut aliases: Vec<String> = sqlx::query_scalar(
        "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2",
    )
    .bind(&row.name)
    .bind(row.version)
    .fetch_all(&mut *conn)
    .await?;
    aliases.sort();
    let mut artifacts = sqlx::query_as::<_, ArtifactRow>(
        "SELECT artifact_name, uri, sha256, size FROM model_version_artifacts \
             WHERE name = $1 AND version = $2",
    )
    .bind(&row.name)
    .bind(row.version)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|a| NamedArtifact {
        name: a.artifact_name,
        artifact: ArtifactRef {
            uri: a.uri,
            sha256: a.sha256,
            size: a.size,
        },
    })
    .collect::<Vec<_>>();
    artifacts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ModelVersion {
        name: row.name,
        version: row.version,
        description: row.description,
        creation_time: row.creation_time,
        last_updated_time: row.last_updated_time,
        source: row.source,
        run_id: row.run_id,
        status: row.status,
        tags,
        aliases,
        artifacts,
    })
}

impl Registry {
    /// Model versions, optionally of one model and/or from one run, by name then version.
    pub async fn search_model_versions(
        &self,
        name: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<Vec<ModelVersion>> {
        // One snapshot: every version listed is read whole.
        let mut tx = self.snapshot().await?;
        let rows = sqlx::query_as::<_, VersionRow>(AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions \
             WHERE ($1 = '' OR name = $1) AND ($2 = '' OR run_id = $2)"
        )))
        .bind(name.unwrap_or(""))
        .bind(run_id.unwrap_or(""))
        .fetch_all(&mut *tx)
        .await?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in rows {
            versions.push(version_from_row(&mut tx, row).await?);
        }
        tx.commit().await?;
        // Names by their bytes on every backend, as `search_registered_models`.
        versions.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        Ok(versions)
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
        value: &str,
    ) -> Result<()> {
        check_key("model version tag", key)?;
        check_value("model version tag", key, value, MAX_TAG_VALUE_LEN)?;
        sqlx::query(SET_VERSION_TAG)
            .bind(name)
            .bind(version)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                classify(
                    e,
                    ("model version tag", key),
                    ("model version", &format!("{name}/{version}")),
                )
            })?;
        Ok(())
    }

    /// Replaces a model version's description.
    pub async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: &str,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE model_versions SET description = $1, last_updated_time = $2 \
             WHERE name = $3 AND version = $4",
        )
        .bind(description)
        .bind(now_millis())
        .bind(name)
        .bind(version)
        .execute(&self.pool)
        .await?;
        found(updated, "model version", format!("{name}/{version}"))?;
        Ok(())
    }

    /// Deletes a model version with its tags and artifact records; aliases pointing at it are
    /// removed and the removals recorded in the alias history. Version numbers are not reused.
    pub async fn delete_model_version(
        &self,
        name: &str,
        version: i64,
        moved_by: &str,
    ) -> Result<()> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        lock_model(&mut tx, name, now).await?;
        let mut aliases: Vec<String> = sqlx::query_scalar(
            "SELECT alias FROM registered_model_aliases WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_all(&mut *tx)
        .await?;
        aliases.sort();
        for alias in &aliases {
            record_move(&mut tx, name, alias, Some(version), None, now, moved_by).await?;
        }
        for table in [
            "registered_model_aliases",
            "model_version_tags",
            "model_version_artifacts",
        ] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE name = $1 AND version = $2"
            )))
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        }
        let deleted = sqlx::query("DELETE FROM model_versions WHERE name = $1 AND version = $2")
            .bind(name)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        found(deleted, "model version", format!("{name}/{version}"))?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a model version tag.
    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()> {
        let deleted = sqlx::query(
            "DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3",
        )
        .bind(name)
        .bind(version)
        .bind(key)
        .execute(&self.pool)
        .await?;
        found(
            deleted,
            "model version tag",
            format!("{name}/{version}/{key}"),
        )?;
        Ok(())
    }

    // ---- aliases ----

    /// Points `alias` at `version`, recording the move (no record when it already points there).
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: i64,
        moved_by: &str,
    ) -> Result<()> {
        check_alias(alias)?;
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        lock_model(&mut tx, name, now).await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM model_versions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(Error::not_found(
                "model version",
                format!("{name}/{version}"),
            ));
        }
        let from = current_alias(&mut tx, name, alias).await?;
        if from == Some(version) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO registered_model_aliases (name, alias, version) VALUES ($1, $2, $3) \
             ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version",
        )
        .bind(name)
        .bind(alias)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        record_move(&mut tx, name, alias, from, Some(version), now, moved_by).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an alias, recording the move.
    pub async fn delete_alias(&self, name: &str, alias: &str, moved_by: &str) -> Result<()> {
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        lock_model(&mut tx, name, now).await?;
        let from = current_alias(&mut tx, name, alias)
            .await?
            .ok_or_else(|| Error::not_found("alias", format!("{name}@{alias}")))?;
        sqlx::query("DELETE FROM registered_model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        record_move(&mut tx, name, alias, Some(from), None, now, moved_by).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The version an alias points at.
    pub async fn get_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        // The alias and its version from one snapshot: a promotion that moves the alias and
        // deletes the old version cannot fall between the two reads.
        let mut tx = self.snapshot().await?;
        let version = current_alias(&mut tx, name, alias)
            .await?
            .ok_or_else(|| Error::not_found("alias", format!("{name}@{alias}")))?;
        let mv = read_version(&mut tx, name, version).await?;
        tx.commit().await?;
        Ok(mv)
    }

    /// Every move of an alias, oldest first: which version served when.
    pub async fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasMove>> {
        let rows = sqlx::query_as::<_, AliasMoveRow>(
            "SELECT name, alias, from_version, to_version, moved_at, moved_by FROM alias_history \
             WHERE name = $1 AND alias = $2 ORDER BY id",
        )
        .bind(name)
        .bind(alias)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AliasMove {
                name: r.name,
                alias: r.alias,
                from_version: r.from_version,
                to_version: r.to_version,
                moved_at: r.moved_at,
                moved_by: r.moved_by,
            })
            .collect())
    }
}

/// Appends ` AND …` conditions on `runs r` for a run search's experiments, lifecycle and filter.
fn append_run_conditions(search: &SearchRuns, q: &mut SqlBuilder) -> Result<()> {
    if !search.experiment_ids.is_empty() {
        let placeholders: Vec<String> = search
            .experiment_ids
            .iter()
            .map(|id| q.bind(Bind::Int(*id)))
            .collect();
        q.sql.push_str(&format!(
            " AND r.experiment_id IN ({})",
            placeholders.join(", ")
        ));
    }
    match search.view {
        ViewType::ActiveOnly => q.sql.push_str(" AND r.lifecycle_stage = 'active'"),
        ViewType::DeletedOnly => q.sql.push_str(" AND r.lifecycle_stage = 'deleted'"),
        ViewType::All => {}
    }
    compile_filter(&search.filter, q)
}

/// Switches a SQLite registry to WAL and migrates it. Processes opening a fresh file at the
/// same moment race here (switching to WAL cannot wait on the busy timeout, and two migrators
/// may both see an empty schema), so a lost race is retried; the winner's work is then seen.
async fn init_sqlite(pool: &AnyPool) -> Result<()> {
    const ATTEMPTS: u64 = 10;
    let mut attempt = 0;
    loop {
        let result = async {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await?;
            if !mode.eq_ignore_ascii_case("wal") {
                pool.execute("PRAGMA journal_mode = WAL").await?;
            }
            SQLITE_MIGRATIONS.run(pool).await?;
            Ok::<(), Error>(())
        }
        .await;
        match result {
            Err(e) if attempt + 1 < ATTEMPTS && lost_init_race(&e) => {
                attempt += 1;
                debug!(attempt, error = %e, "sqlite registry initialization raced another connection; retrying");
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// SQLITE_BUSY / SQLITE_LOCKED, or a migration that found its tables already created or its
/// version already recorded (one that runs again without failing, as a table rebuild does).
fn lost_init_race(err: &Error) -> bool {
    let db = match err {
        Error::Database(sqlx::Error::Database(db)) => db,
        Error::Migration(
            sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)
            | sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db)),
        ) => db,
        _ => return false,
    };
    matches!(db.code().as_deref(), Some("5" | "6"))
        || db.message().contains("already exists")
        || (db.is_unique_violation() && db.message().contains("_sqlx_migrations"))
}

fn view_stage(view: ViewType) -> &'static str {
    match view {
        ViewType::ActiveOnly => ACTIVE,
        ViewType::DeletedOnly => DELETED,
        ViewType::All => "all",
    }
}

async fn upsert_tag(conn: &mut AnyConnection, run_id: &str, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO tags (run_uuid, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value",
    )
    .bind(run_id)
    .bind(key)
    .bind(value)
    .execute(conn)
    .await
    .map_err(|e| classify(e, ("tag", key), ("run", run_id)))?;
    Ok(())
}

/// A name filter's `LIKE` pattern (every name when `None`), checked as the run search checks
/// its patterns (`filter::like_tokens`: `\\` escapes the next character).
fn like_pattern(pattern: Option<&str>) -> Result<&str> {
    let pattern = pattern.unwrap_or("%");
    like_tokens(pattern).map_err(Error::InvalidParameter)?;
    Ok(pattern)
}

/// Touches the model row: takes the write lock (SQLite) or the row lock (PostgreSQL), so alias
/// moves of one model are serialized and their history is consistent.
async fn lock_model(conn: &mut AnyConnection, name: &str, now: i64) -> Result<()> {
    let updated =
        sqlx::query("UPDATE registered_models SET last_updated_time = $1 WHERE name = $2")
            .bind(now)
            .bind(name)
            .execute(conn)
            .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::not_found("registered model", name));
    }
    Ok(())
}

async fn current_alias(conn: &mut AnyConnection, name: &str, alias: &str) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT version FROM registered_model_aliases WHERE name = $1 AND alias = $2",
    )
    .bind(name)
    .bind(alias)
    .fetch_optional(conn)
    .await?)
}

async fn record_move(
    conn: &mut AnyConnection,
    name: &str,
    alias: &str,
    from: Option<i64>,
    to: Option<i64>,
    now: i64,
    moved_by: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO alias_history (name, alias, from_version, to_version, moved_at, moved_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(name)
    .bind(alias)
    .bind(from)
    .bind(to)
    .bind(now)
    .bind(moved_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Fails with "not found" when a write matched no row (a missing run, model, version, tag…).
fn found(
    done: sqlx::any::AnyQueryResult,
    what: &'static str,
    id: impl std::fmt::Display,
) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(Error::not_found(what, id));
    }
    Ok(())
}

#[cfg(test)]
mod url_tests {
    use super::redacted_url;

    #[test]
    fn a_password_is_not_shown() {
        assert_eq!(
            redacted_url("postgres://quire:s3cret@db:5432/quire"),
            "postgres://quire:***@db:5432/quire"
        );
        assert_eq!(
            redacted_url("postgres://quire@db/quire"),
            "postgres://quire@db/quire"
        );
        assert_eq!(
            redacted_url("sqlite:///tmp/registry.db"),
            "sqlite:///tmp/registry.db"
        );
        // Not a URL the parser takes (an unencoded `#` in the password): still hidden.
        assert_eq!(
            redacted_url("redis://:p#ss/w?rd@host:6379/0"),
            "redis://***@host:6379/0"
        );
    }
}
