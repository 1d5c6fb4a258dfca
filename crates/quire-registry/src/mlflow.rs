//! What MLflow's REST server needs beyond the core registry: files uploaded through the
//! artifact proxy (each backed by the content-addressed store), MLflow 3's logged models, run
//! outputs, the logged model a version was registered from, the `Default` experiment, and
//! runs loaded in batches for searches.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AssertSqlSafe, FromRow, Row};

use crate::artifacts::ArtifactRef;
use crate::error::{Error, Result, classify};
use crate::model::{ACTIVE, AliasMove, Metric, Run, RunData};
use crate::registry::{
    MAX_TAG_VALUE_LEN, RUN_COLUMNS, Registry, RunRow, check_key, check_value, now_millis,
};

/// How many ids one `IN (…)` list binds (well under SQLite's and PostgreSQL's limits).
const IN_CHUNK: usize = 500;

/// A file under the artifact proxy's root, e.g. `1/<run id>/artifacts/model/MLmodel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactFile {
    /// Relative to the proxy's root, without a leading `/`.
    pub path: String,
    /// Where its bytes are and what they hash to.
    pub artifact: ArtifactRef,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`, as MLflow's
/// `LoggedModelStatus`.
pub const LOGGED_MODEL_STATUSES: [&str; 3] = [
    "LOGGED_MODEL_PENDING",
    "LOGGED_MODEL_READY",
    "LOGGED_MODEL_UPLOAD_FAILED",
];

/// What a new logged model is made of.
#[derive(Debug, Clone, Default)]
pub struct NewLoggedModel {
    pub experiment_id: i64,
    /// A generated name when empty.
    pub name: String,
    pub model_type: String,
    pub source_run_id: Option<String>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// MLflow 3's `LoggedModel`: a model logged by a run, with its own artifact location.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    /// `m-` and 32 hex digits.
    pub model_id: String,
    pub experiment_id: i64,
    pub name: String,
    pub model_type: String,
    pub source_run_id: Option<String>,
    pub status: String,
    pub status_message: String,
    /// `<experiment artifact location>/models/<model_id>/artifacts`.
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub tags: BTreeMap<String, String>,
    pub params: BTreeMap<String, String>,
}

/// A logged-model search: every condition given must hold.
#[derive(Debug, Clone, Default)]
pub struct SearchLoggedModels {
    /// Empty searches every experiment.
    pub experiment_ids: Vec<i64>,
    pub name: Option<String>,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    pub status: Option<String>,
    /// 100 when 0.
    pub max_results: i64,
    /// An offset handed out as `next_page_token`.
    pub page_token: Option<String>,
}

#[derive(FromRow)]
struct ArtifactFileRow {
    path: String,
    uri: String,
    sha256: String,
    size: i64,
    created_at: i64,
}

impl From<ArtifactFileRow> for ArtifactFile {
    fn from(r: ArtifactFileRow) -> Self {
        ArtifactFile {
            path: r.path,
            artifact: ArtifactRef {
                uri: r.uri,
                sha256: r.sha256,
                size: r.size,
            },
            created_at: r.created_at,
        }
    }
}

#[derive(FromRow)]
struct LoggedModelRow {
    model_id: String,
    experiment_id: i64,
    name: String,
    model_type: String,
    source_run_id: Option<String>,
    status: String,
    status_message: String,
    artifact_uri: String,
    lifecycle_stage: String,
    creation_time: i64,
    last_updated_time: i64,
}

const LOGGED_MODEL_COLUMNS: &str = "model_id, experiment_id, name, model_type, source_run_id, \
     status, status_message, artifact_uri, lifecycle_stage, creation_time, last_updated_time";

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `$start, $start+1, …` for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Registry {
    /// Creates MLflow's `Default` experiment with id 0 (where runs go when a client names no
    /// experiment), unless an experiment with id 0 or that name exists.
    pub async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_millis();
        sqlx::query(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) \
             VALUES (0, 'Default', 'mlflow-artifacts:/0', $1, $2, $2) ON CONFLICT DO NOTHING",
        )
        .bind(ACTIVE)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- files of the artifact proxy ----

    /// Records (or replaces, as MLflow's proxy does) the file at `path`.
    pub async fn put_artifact_file(&self, path: &str, artifact: &ArtifactRef) -> Result<()> {
        check_artifact_path(path)?;
        // A file a registered version holds keeps its bytes: the version's recorded digest is
        // what its downloads are checked against, and a replaced file would pass as the
        // version's. The same bytes again (a retried upload) are fine. Held: the version was
        // registered from a directory (its source, or its logged model's) that has this file,
        // with these bytes, among its recorded artifacts.
        let holders: Vec<(String, i64, String, String)> = sqlx::query_as(
            "SELECT v.name, v.version, COALESCE(lm.artifact_uri, v.source), a.artifact_name \
             FROM artifact_files f \
             JOIN model_version_artifacts a ON a.sha256 = f.sha256 \
             JOIN model_versions v ON v.name = a.name AND v.version = a.version \
             LEFT JOIN logged_models lm ON v.source = 'models:/' || lm.model_id \
             WHERE f.path = $1 AND f.sha256 <> $2 ORDER BY v.name, v.version",
        )
        .bind(path)
        .bind(&artifact.sha256)
        .fetch_all(&self.pool)
        .await?;
        let held = holders.into_iter().find(|(_, _, root, name)| {
            proxy_path(root).is_some_and(|root| match root.as_str() {
                "" => name == path,
                root => path.strip_prefix(root).and_then(|p| p.strip_prefix('/')) == Some(name),
            })
        });
        if let Some((name, version, _, _)) = held {
            return Err(Error::InvalidParameter(format!(
                "artifact {path} is a file of model version {name} v{version}: it cannot be \
                 replaced (log the new file under another path)"
            )));
        }
        sqlx::query(
            "INSERT INTO artifact_files (path, uri, sha256, size, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (path) DO UPDATE SET uri = excluded.uri, sha256 = excluded.sha256, \
             size = excluded.size, created_at = excluded.created_at",
        )
        .bind(path)
        .bind(&artifact.uri)
        .bind(&artifact.sha256)
        .bind(artifact.size)
        .bind(now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The file at exactly `path`.
    pub async fn get_artifact_file(&self, path: &str) -> Result<ArtifactFile> {
        sqlx::query_as::<_, ArtifactFileRow>(
            "SELECT path, uri, sha256, size, created_at FROM artifact_files WHERE path = $1",
        )
        .bind(path)
        .fetch_optional(&self.pool)
        .await?
        .map(ArtifactFile::from)
        .ok_or_else(|| Error::not_found("artifact", path))
    }

    /// Every file under the directory `dir` (recursively), by path; the root when `dir` is empty.
    pub async fn list_artifact_files(&self, dir: &str) -> Result<Vec<ArtifactFile>> {
        let dir = dir.trim_matches('/');
        let pattern = if dir.is_empty() {
            "%".to_owned()
        } else {
            like_prefix(&format!("{dir}/"))
        };
        let rows = sqlx::query_as::<_, ArtifactFileRow>(
            "SELECT path, uri, sha256, size, created_at FROM artifact_files \
             WHERE path LIKE $1 ESCAPE '\\' ORDER BY path",
        )
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ArtifactFile::from).collect())
    }

    // ---- logged models ----

    /// Creates a logged model (status `LOGGED_MODEL_PENDING`) under its experiment's artifact
    /// location.
    pub async fn create_logged_model(&self, new: &NewLoggedModel) -> Result<LoggedModel> {
        let experiment = self.get_experiment(new.experiment_id).await?;
        if experiment.lifecycle_stage != ACTIVE {
            return Err(Error::InvalidParameter(format!(
                "experiment {} is deleted; models cannot be logged in it",
                experiment.experiment_id
            )));
        }
        if let Some(run_id) = &new.source_run_id {
            self.get_run(run_id).await?;
        }
        for (k, v) in new.tags.iter().chain(&new.params) {
            check_key("logged model tag or param", k)?;
            check_value("logged model tag or param", k, v, MAX_TAG_VALUE_LEN)?;
        }
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let name = if new.name.is_empty() {
            format!("model-{}", &model_id[2..10])
        } else {
            new.name.clone()
        };
        let artifact_uri = format!(
            "{}/models/{model_id}/artifacts",
            experiment.artifact_location.trim_end_matches('/')
        );
        let now = now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO logged_models (model_id, experiment_id, name, model_type, source_run_id, status, \
             status_message, artifact_uri, lifecycle_stage, creation_time, last_updated_time) \
             VALUES ($1, $2, $3, $4, $5, 'LOGGED_MODEL_PENDING', '', $6, $7, $8, $8)",
        )
        .bind(&model_id)
        .bind(new.experiment_id)
        .bind(&name)
        .bind(&new.model_type)
        .bind(new.source_run_id.as_deref())
        .bind(&artifact_uri)
        .bind(ACTIVE)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (table, pairs) in [
            ("logged_model_tags", &new.tags),
            ("logged_model_params", &new.params),
        ] {
            for (k, v) in pairs {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
                )))
                .bind(&model_id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let row = sqlx::query_as::<_, LoggedModelRow>(AssertSqlSafe(format!(
            "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models WHERE model_id = $1"
        )))
        .bind(model_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| Error::not_found("logged model", model_id))?;
        self.logged_model_from_row(row).await
    }

    async fn logged_model_from_row(&self, r: LoggedModelRow) -> Result<LoggedModel> {
        let mut pairs = [BTreeMap::new(), BTreeMap::new()];
        for (i, table) in ["logged_model_tags", "logged_model_params"]
            .into_iter()
            .enumerate()
        {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT key, value FROM {table} WHERE model_id = $1"
            )))
            .bind(&r.model_id)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                pairs[i].insert(row.try_get("key")?, row.try_get("value")?);
            }
        }
        let [tags, params] = pairs;
        Ok(LoggedModel {
            model_id: r.model_id,
            experiment_id: r.experiment_id,
            name: r.name,
            model_type: r.model_type,
            source_run_id: r.source_run_id,
            status: r.status,
            status_message: r.status_message,
            artifact_uri: r.artifact_uri,
            lifecycle_stage: r.lifecycle_stage,
            creation_time: r.creation_time,
            last_updated_time: r.last_updated_time,
            tags,
            params,
        })
    }

    /// Sets a logged model's status (MLflow's `FinalizeLoggedModel`).
    pub async fn finalize_logged_model(&self, model_id: &str, status: &str) -> Result<LoggedModel> {
        if !LOGGED_MODEL_STATUSES.contains(&status) {
            return Err(Error::InvalidParameter(format!(
                "logged model status {status:?} is not one of {}",
                LOGGED_MODEL_STATUSES.join(", ")
            )));
        }
        let updated = sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_time = $2 WHERE model_id = $3",
        )
        .bind(status)
        .bind(now_millis())
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("logged model", model_id));
        }
        self.get_logged_model(model_id).await
    }

    /// Sets (or overwrites) tags of a logged model.
    pub async fn set_logged_model_tags(
        &self,
        model_id: &str,
        tags: &[(String, String)],
    ) -> Result<()> {
        self.upsert_logged_model_pairs("logged_model_tags", model_id, tags)
            .await
    }

    /// Logs params of a logged model (overwriting, as MLflow does for logged models).
    pub async fn log_logged_model_params(
        &self,
        model_id: &str,
        params: &[(String, String)],
    ) -> Result<()> {
        self.upsert_logged_model_pairs("logged_model_params", model_id, params)
            .await
    }

    async fn upsert_logged_model_pairs(
        &self,
        table: &'static str,
        model_id: &str,
        pairs: &[(String, String)],
    ) -> Result<()> {
        for (k, v) in pairs {
            check_key("logged model tag or param", k)?;
            check_value("logged model tag or param", k, v, MAX_TAG_VALUE_LEN)?;
        }
        let mut tx = self.pool.begin().await?;
        let touched =
            sqlx::query("UPDATE logged_models SET last_updated_time = $1 WHERE model_id = $2")
                .bind(now_millis())
                .bind(model_id)
                .execute(&mut *tx)
                .await?;
        if touched.rows_affected() == 0 {
            return Err(Error::not_found("logged model", model_id));
        }
        for (k, v) in pairs {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {table} (model_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
            )))
            .bind(model_id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes a tag of a logged model.
    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
            .bind(model_id)
            .bind(key)
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(Error::not_found(
                "logged model tag",
                format!("{model_id}/{key}"),
            ));
        }
        Ok(())
    }

    /// Marks a logged model deleted (searches no longer see it).
    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_time = $1 WHERE model_id = $2",
        )
        .bind(now_millis())
        .bind(model_id)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(Error::not_found("logged model", model_id));
        }
        Ok(())
    }

    /// Active logged models matching every condition, newest first, and the next page's token.
    pub async fn search_logged_models(
        &self,
        search: &SearchLoggedModels,
    ) -> Result<(Vec<LoggedModel>, Option<String>)> {
        let max_results = match search.max_results {
            0 => 100,
            n if (1..=1000).contains(&n) => n,
            n => {
                return Err(Error::InvalidParameter(format!(
                    "max_results {n} is outside 1..=1000"
                )));
            }
        };
        let offset = parse_offset(search.page_token.as_deref())?;
        let mut sql = format!(
            "SELECT {LOGGED_MODEL_COLUMNS} FROM logged_models WHERE lifecycle_stage = 'active'"
        );
        let mut texts: Vec<&str> = Vec::new();
        for (column, value) in [
            ("name", &search.name),
            ("source_run_id", &search.source_run_id),
            ("model_type", &search.model_type),
            ("status", &search.status),
        ] {
            if let Some(v) = value {
                texts.push(v);
                sql.push_str(&format!(" AND {column} = ${}", texts.len()));
            }
        }
        let first_id = texts.len() + 1;
        if !search.experiment_ids.is_empty() {
            sql.push_str(&format!(
                " AND experiment_id IN ({})",
                placeholders(first_id, search.experiment_ids.len())
            ));
        }
        let n = first_id + search.experiment_ids.len();
        sql.push_str(&format!(
            " ORDER BY creation_time DESC, model_id LIMIT ${n} OFFSET ${}",
            n + 1
        ));
        let mut query = sqlx::query_as::<_, LoggedModelRow>(AssertSqlSafe(sql));
        for t in texts {
            query = query.bind(t);
        }
        for id in &search.experiment_ids {
            query = query.bind(*id);
        }
        let mut rows = query
            .bind(max_results + 1)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let next = if rows.len() as i64 > max_results {
            rows.truncate(max_results as usize);
            Some((offset + max_results).to_string())
        } else {
            None
        };
        let mut models = Vec::with_capacity(rows.len());
        for row in rows {
            models.push(self.logged_model_from_row(row).await?);
        }
        Ok((models, next))
    }

    // ---- run outputs ----

    /// Records models a run produced (MLflow's `LogOutputs`); logging one again updates its step.
    pub async fn log_run_outputs(&self, run_id: &str, outputs: &[(String, i64)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let touched = sqlx::query("UPDATE runs SET status = status WHERE run_uuid = $1")
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(Error::not_found("run", run_id));
        }
        for (model_id, step) in outputs {
            sqlx::query(
                "INSERT INTO run_outputs (run_uuid, model_id, step) VALUES ($1, $2, $3) \
                 ON CONFLICT (run_uuid, model_id) DO UPDATE SET step = excluded.step",
            )
            .bind(run_id)
            .bind(model_id)
            .bind(*step)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(e, ("run output", model_id), ("logged model", model_id)))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The models runs produced: run id → (model id, step), by model id.
    pub async fn run_outputs(
        &self,
        run_ids: &[String],
    ) -> Result<HashMap<String, Vec<(String, i64)>>> {
        let mut out: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for chunk in run_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT run_uuid, model_id, step FROM run_outputs WHERE run_uuid IN ({}) ORDER BY model_id",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.entry(row.try_get("run_uuid")?)
                    .or_default()
                    .push((row.try_get("model_id")?, row.try_get("step")?));
            }
        }
        Ok(out)
    }

    // ---- model versions and logged models ----

    /// The logged model each version of `name` was registered from (versions without one are
    /// left out).
    pub async fn model_version_model_ids(&self, name: &str) -> Result<HashMap<i64, String>> {
        let rows = sqlx::query(
            "SELECT version, model_id FROM model_versions WHERE name = $1 AND model_id IS NOT NULL",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("version")?, r.try_get("model_id")?)))
            .collect()
    }

    /// Every alias move of a model, oldest first (aliases since deleted included).
    pub async fn model_alias_history(&self, name: &str) -> Result<Vec<AliasMove>> {
        let rows = sqlx::query(
            "SELECT alias, from_version, to_version, moved_at, moved_by FROM alias_history \
             WHERE name = $1 ORDER BY id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AliasMove {
                    name: name.to_owned(),
                    alias: r.try_get("alias")?,
                    from_version: r.try_get("from_version")?,
                    to_version: r.try_get("to_version")?,
                    moved_at: r.try_get("moved_at")?,
                    moved_by: r.try_get("moved_by")?,
                })
            })
            .collect()
    }

    // ---- runs in batches ----

    /// Runs by id, in the order given, each with its params, tags and latest metrics: four
    /// queries per 500 runs instead of four per run. A missing id is `NotFound`.
    pub async fn get_runs(&self, run_ids: &[String]) -> Result<Vec<Run>> {
        let mut by_id: HashMap<String, Run> = HashMap::with_capacity(run_ids.len());
        for chunk in run_ids.chunks(IN_CHUNK) {
            let list = placeholders(1, chunk.len());
            let bind_all = |sql: String| {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(id);
                }
                q.fetch_all(&self.pool)
            };
            let mut runs_query = sqlx::query_as::<_, RunRow>(AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid IN ({list})"
            )));
            for id in chunk {
                runs_query = runs_query.bind(id);
            }
            // The four reads go out at once, each on its own pooled connection.
            let (run_rows, metric_rows, param_rows, tag_rows) = tokio::try_join!(
                runs_query.fetch_all(&self.pool),
                bind_all(format!(
                    "SELECT run_uuid, key, value, timestamp, step FROM latest_metrics \
                     WHERE run_uuid IN ({list})"
                )),
                bind_all(format!(
                    "SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({list})"
                )),
                bind_all(format!(
                    "SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({list})"
                )),
            )?;
            for r in run_rows {
                let info = r.into_info()?;
                let run = Run {
                    data: RunData::default(),
                    info,
                };
                by_id.insert(run.info.run_id.clone(), run);
            }
            for row in metric_rows {
                let id: String = row.try_get("run_uuid")?;
                if let Some(run) = by_id.get_mut(&id) {
                    run.data.metrics.push(Metric {
                        key: row.try_get("key")?,
                        // NULL: NaN (see the `nan_metrics` migration).
                        value: row.try_get::<Option<f64>, _>("value")?.unwrap_or(f64::NAN),
                        timestamp: row.try_get("timestamp")?,
                        step: row.try_get("step")?,
                    });
                }
            }
            for (rows, is_params) in [(param_rows, true), (tag_rows, false)] {
                for row in rows {
                    let id: String = row.try_get("run_uuid")?;
                    if let Some(run) = by_id.get_mut(&id) {
                        let map = if is_params {
                            &mut run.data.params
                        } else {
                            &mut run.data.tags
                        };
                        map.insert(row.try_get("key")?, row.try_get("value")?);
                    }
                }
            }
        }
        run_ids
            .iter()
            .map(|id| {
                let mut run = by_id
                    .remove(id)
                    .ok_or_else(|| Error::not_found("run", id))?;
                // Sorted here rather than by the database: one sort per run, not one of all rows.
                run.data.metrics.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(run)
            })
            .collect()
    }
}

/// A page token: an offset handed out by a previous page.
pub(crate) fn parse_offset(token: Option<&str>) -> Result<i64> {
    match token {
        None | Some("") => Ok(0),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| Error::InvalidParameter(format!("invalid page token {t:?}"))),
    }
}

/// The artifact proxy's path of an `mlflow-artifacts:` URI (`mlflow-artifacts:/1/x` and
/// `mlflow-artifacts://host/1/x` both give `1/x`); `None` for another scheme.
pub fn proxy_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mlflow-artifacts:")?;
    let path = match rest.strip_prefix("//") {
        Some(host_and_path) => host_and_path.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    Some(path.trim_matches('/').to_owned())
}

/// A relative path of `/`-separated, non-empty, non-dot parts.
pub fn check_artifact_path(path: &str) -> Result<()> {
    let bad = path.is_empty()
        || path.len() > 4096
        || path.contains('\0')
        || path.contains('\\')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(Error::InvalidParameter(format!(
            "artifact path {path:?} must be relative, with non-empty parts and no `.` or `..`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("1/a_b%/"), "1/a\\_b\\%/%");
        assert_eq!(like_prefix("x\\y"), "x\\\\y%");
    }

    #[test]
    fn artifact_paths_must_be_clean_and_relative() {
        for ok in ["a", "1/run/artifacts/model/MLmodel", "a b/c.txt"] {
            assert!(check_artifact_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/a", "a//b", "a/../b", "./a", "a/", "a\\b", ".."] {
            assert!(check_artifact_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_tokens_are_offsets() {
        assert_eq!(parse_offset(None).unwrap(), 0);
        assert_eq!(parse_offset(Some("")).unwrap(), 0);
        assert_eq!(parse_offset(Some("40")).unwrap(), 40);
        assert!(parse_offset(Some("-1")).is_err());
        assert!(parse_offset(Some("abc")).is_err());
    }
}
