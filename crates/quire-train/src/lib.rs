//! Trainers launched from `training-configs/*.toml`: LightGBM lambdarank on the
//! learning-to-rank set and implicit ALS on the CF matrices. Every run is logged to the
//! registry (params, metric history, the config file, the git commit) and its model becomes a
//! new, checksummed model version.

pub mod config;
pub mod load;
pub mod metrics;
mod run;
pub mod train_cf;
mod train_ltr;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

pub use config::{Kind, TrainConfig};
pub use run::{mark_open_runs_killed, train};
pub use train_cf::CfIndex;

/// Version of the trainers' code: part of the pipeline's fingerprint of a training step.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+train.2");

/// Where a training run reads and writes.
#[derive(Clone, Debug)]
pub struct Locations {
    /// Lake and warehouse root.
    pub lake: PathBuf,
    /// Registry URL (`sqlite:///…` or `postgres://…`).
    pub registry: String,
    /// Artifact store root.
    pub artifacts: PathBuf,
}

/// Artifact names of the model versions Quire registers.
pub mod artifact {
    /// LightGBM's own text format (loadable by any LightGBM).
    pub const LTR_MODEL: &str = "model.txt";
    /// The same model as ONNX (`ai.onnx.ml` tree ensemble), what the ranking service runs.
    pub const LTR_ONNX: &str = "model.onnx";
    /// The feature spec: names in input order, code version, genre coding.
    pub const FEATURE_SPEC: &str = "feature_spec.json";
    /// The online feature snapshot the ranking service loads with this version.
    pub const FEATURE_SNAPSHOT: &str = "feature_snapshot.json";
    /// Gain and split importance per feature.
    pub const FEATURE_IMPORTANCE: &str = "feature_importance.json";
    /// The ALS factors (quire-cf's binary format).
    pub const CF_MODEL: &str = "als.bin";
    /// Ids of the factor rows, purchases to exclude and co-purchase counts (recommendation batch).
    pub const CF_INDEX: &str = "cf_index.json";
}

/// What one training run produced (the `--json` shape of `quire train`, cli.md, plus extras).
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub run_id: String,
    pub model: ModelRef,
    pub metrics: BTreeMap<String, f64>,
    /// URI of the model's main artifact (`file://…`).
    pub artifact_uri: String,
    pub experiment: String,
    pub kind: &'static str,
    pub seconds: f64,
    /// Extra tables for the human summary (baseline comparison, importance…).
    #[serde(skip)]
    pub summary: Vec<(String, String)>,
}

/// A registered model version.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRef {
    pub name: String,
    pub version: i64,
}

/// Progress of a run, for a CLI's bars (all methods have no-op defaults).
pub trait Progress {
    /// A named stage begins (`features`, `train`, `evaluate`, `register`).
    fn stage(&self, _name: &str) {}
    /// Iteration `done` of at most `total`, with a metric to show.
    fn iteration(&self, _done: u64, _total: u64, _metric: &str, _value: f64) {}
}

/// No progress output.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {}

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("training config {0}")]
    Config(String),
    #[error("features: {0}")]
    Features(#[from] quire_features::Error),
    #[error("lake: {0}")]
    Lake(#[from] quire_lake::Error),
    #[error("LightGBM: {0}")]
    LightGbm(#[from] quire_lgbm::Error),
    #[error("ONNX export: {0}")]
    Onnx(#[from] quire_onnx::ExportError),
    #[error("ALS: {0}")]
    Cf(#[from] quire_cf::CfError),
    #[error("registry: {0}")]
    Registry(#[from] quire_registry::Error),
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Io(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
