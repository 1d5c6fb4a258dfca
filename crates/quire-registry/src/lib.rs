//! `quire-registry`: Quire's experiment tracker and model registry, MLflow's data model on
//! SQLite or PostgreSQL, plus a content-addressed local artifact store.
//!
//! # What it owns
//! - The registry database (SQLite file by default: `sqlite:///abs/path/registry.db`; a team's
//!   PostgreSQL via `postgres://…`). Migrations are embedded (`migrations/sqlite`,
//!   `migrations/postgres`) and run on [`Registry::connect`]. One code path serves both
//!   backends: every query is written once against `sqlx::Any` with `$n` placeholders.
//! - The artifact store ([`ArtifactStore`]): files addressed by their SHA-256 under
//!   `<root>/sha256/ab/cdef…` (`models/` by default, chosen by the caller); a read whose bytes
//!   do not match the recorded digest is refused with [`Error::ChecksumMismatch`].
//!
//! It depends on no data or training crate: trainers, the CLI (`quire train`,
//! `quire models list`) and the MLflow REST server (`quire serve registry`) sit on top.
//!
//! # Data model and its MLflow counterparts
//! | table | MLflow | notes |
//! |---|---|---|
//! | `experiments` | Experiment | integer `experiment_id` (the REST layer stringifies it), `artifact_location`, `lifecycle_stage` |
//! | `experiment_tags` | ExperimentTag | |
//! | `runs` | Run / RunInfo | `run_uuid` (32 hex), status, start/end time, `artifact_uri`, `lifecycle_stage`; plus the training config text and git commit |
//! | `params` | Param | immutable: the same value again is a no-op, another value [`Error::InvalidParameter`] |
//! | `metrics`, `latest_metrics` | Metric, GetMetricHistory | append-only history with step and timestamp; the latest value per key is the highest step, then newest timestamp; NaN is stored as `NULL` (it passes no filter and sorts last, with the runs that lack the metric) |
//! | `tags` | RunTag | `mlflow.runName`, `mlflow.user`, `mlflow.source.git.commit` are set on creation |
//! | `registered_models` | RegisteredModel | `latest_version` is the version counter |
//! | `registered_model_tags` | RegisteredModelTag | |
//! | `model_versions` | ModelVersion | integer versions from 1 (strings in REST), `source`, `run_id`, status `READY` |
//! | `model_version_artifacts` | — | every named file of a version (`model.txt` in LightGBM's own text format, `model.onnx`, `features.json`) with URI, SHA-256 and size |
//! | `model_version_tags` | ModelVersionTag | |
//! | `registered_model_aliases` | RegisteredModelAlias | `production`, `staging`, any name except `latest` and `v<n>` |
//! | `alias_history` | — | every alias move (from, to, when, by whom): which version served when |
//! | `artifact_files` | the artifact proxy's files | a path under `mlflow-artifacts:/` → its bytes in the content-addressed store and their SHA-256 |
//! | `logged_models`, `logged_model_tags`, `logged_model_params` | LoggedModel (MLflow 3) | `m-<32 hex>` ids, artifacts under `<experiment location>/models/<id>/artifacts` |
//! | `run_outputs` | RunOutputs | the logged models a run produced, with their step |
//!
//! Times are milliseconds since the Unix epoch, as in MLflow. Errors map to MLflow's codes:
//! [`Error::NotFound`] → `RESOURCE_DOES_NOT_EXIST`, [`Error::AlreadyExists`] →
//! `RESOURCE_ALREADY_EXISTS`, [`Error::InvalidParameter`] → `INVALID_PARAMETER_VALUE`.
//!
//! # Concurrency
//! SQLite runs in WAL mode with a 60 s busy timeout, and every transaction starts with a write,
//! so concurrent writers queue rather than fail; version numbers come from an `UPDATE …
//! RETURNING` on the model row, so concurrent registrations never share a number.
//! Within one process, `log-batch` calls that arrive while another is writing wait for the
//! write turn and are then written together, in one transaction (group commit); if one of them
//! fails, each is replayed in its own transaction, so a bad batch fails alone with its own error
//! and a good one lands whole.
//!
//! # Durability
//! SQLite commits with `synchronous = NORMAL` (WAL): a committed write survives a crash of the
//! process, and a power loss never corrupts the file, but the last commits before a power loss
//! may be lost — the WAL is synced to disk at checkpoints, not at every commit. (MLflow's
//! SQLite backend keeps SQLite's defaults, a rollback journal with `synchronous = FULL`: one
//! sync per commit.) PostgreSQL keeps its server's settings.

mod artifacts;
mod batch;
mod error;
pub mod filter;
mod mlflow;
mod model;
mod registry;
mod script;

pub use artifacts::{ArtifactRef, ArtifactStore, NamedArtifact, local_path};
pub use error::{Error, Result};
pub use mlflow::{
    ArtifactFile, LOGGED_MODEL_STATUSES, LoggedModel, NewLoggedModel, SearchLoggedModels,
    check_artifact_path, proxy_path,
};
pub use model::{
    ACTIVE, AliasMove, DELETED, Experiment, Metric, ModelVersion, NewModelVersion, NewRun,
    RegisteredModel, Run, RunData, RunInfo, RunStatus, RunsPage, SearchRuns, ViewType,
};
pub use registry::{Backend, Registry, redacted_url};
