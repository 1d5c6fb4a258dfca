//! The registry's records, one struct per MLflow entity.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::artifacts::NamedArtifact;
use crate::error::Error;

/// `active` or `deleted`, as MLflow's `lifecycle_stage`.
pub const ACTIVE: &str = "active";
/// See [`ACTIVE`].
pub const DELETED: &str = "deleted";

/// MLflow's `Experiment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub experiment_id: i64,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: BTreeMap<String, String>,
}

/// MLflow's `RunStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "RUNNING" => RunStatus::Running,
            "SCHEDULED" => RunStatus::Scheduled,
            "FINISHED" => RunStatus::Finished,
            "FAILED" => RunStatus::Failed,
            "KILLED" => RunStatus::Killed,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown run status {other:?}; expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                )));
            }
        })
    }
}

/// What a new run starts with.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    pub experiment_id: i64,
    /// A generated name is used when empty.
    pub run_name: String,
    pub user_id: String,
    /// Milliseconds since the epoch; now when `None`.
    pub start_time: Option<i64>,
    pub tags: Vec<(String, String)>,
    /// The training config file's text, kept with the run.
    pub source_config: Option<String>,
    /// The git commit of the run's source (also tagged `mlflow.source.git.commit`); for
    /// `quire train`, the checkout holding its training config.
    pub git_commit: Option<String>,
}

/// MLflow's `RunInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub experiment_id: i64,
    pub run_name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
    pub source_config: Option<String>,
    pub git_commit: Option<String>,
}

/// One metric value: MLflow's `Metric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub step: i64,
}

/// MLflow's `RunData`: the latest value of every metric, the params and the tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// MLflow's `Run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
}

/// Which runs a search sees, as MLflow's `ViewType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

/// A run search, as MLflow's `SearchRuns` request.
#[derive(Debug, Clone, Default)]
pub struct SearchRuns {
    /// Empty searches every experiment.
    pub experiment_ids: Vec<i64>,
    /// e.g. `metrics.ndcg_5 > 0.6 AND params.objective = 'lambdarank'`; see [`crate::filter`].
    pub filter: String,
    /// e.g. `metrics.ndcg_5 DESC`, `attributes.start_time`; default newest first.
    pub order_by: Vec<String>,
    /// 1000 when 0.
    pub max_results: i64,
    pub page_token: Option<String>,
    pub view: ViewType,
}

/// One page of runs and the token of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsPage {
    pub runs: Vec<Run>,
    pub next_page_token: Option<String>,
}

/// MLflow's `RegisteredModel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    pub description: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    /// The highest version number handed out so far (0: none).
    pub latest_version: i64,
    /// Alias → version.
    pub aliases: BTreeMap<String, i64>,
    pub tags: BTreeMap<String, String>,
}

/// What a new model version is made of.
#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    /// Where the model lives (MLflow's `source`), e.g. the `file://` URI of `model.txt`.
    pub source: String,
    pub run_id: Option<String>,
    pub description: String,
    /// Every file of the version, each with its digest.
    pub artifacts: Vec<NamedArtifact>,
    /// The logged model it was registered from (MLflow 3's `model_id`), if any.
    pub model_id: Option<String>,
    /// Its tags (key, value).
    pub tags: Vec<(String, String)>,
}

/// MLflow's `ModelVersion`, plus its artifacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub description: String,
    pub creation_time: i64,
    pub last_updated_time: i64,
    pub source: String,
    pub run_id: Option<String>,
    /// `READY` (versions are created with their artifacts already stored).
    pub status: String,
    pub tags: BTreeMap<String, String>,
    pub aliases: Vec<String>,
    pub artifacts: Vec<NamedArtifact>,
}

/// One move of an alias: `from_version` is `None` for a first assignment, `to_version` for a
/// deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasMove {
    pub name: String,
    pub alias: String,
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    /// Milliseconds since the epoch.
    pub moved_at: i64,
    pub moved_by: String,
}
