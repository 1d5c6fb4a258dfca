//! A model version made ready to serve: its artifacts read and checked, the ONNX model loaded
//! into a session pool and warmed, the feature snapshot in memory.

use std::sync::Arc;

use quire_featspec::{
    FEATURE_NAMES, FeatureSpec, N_FEATURES, OnlineSnapshot, ServingTables, SnapshotError,
};
use quire_onnx::{ModelInfo, OnnxScorer, ScorerError};
use quire_registry::{ArtifactStore, ModelVersion};

use crate::rank::{self, Candidate, RankRequest};
use crate::scoring::Helpers;

/// Artifact names of an LTR version (as `quire_train::artifact` registers them; that crate
/// builds Polars, so the names are repeated here rather than imported).
pub(crate) mod artifact {
    /// The ONNX model.
    pub const ONNX: &str = "model.onnx";
    /// The feature spec: names, code version, genre coding.
    pub const FEATURE_SPEC: &str = "feature_spec.json";
    /// The online feature snapshot.
    pub const FEATURE_SNAPSHOT: &str = "feature_snapshot.json";
}

/// ONNX metadata the trainer adds (`quire_train`): the feature code version and the snapshot
/// version the model was trained with. Checked when present.
const META_FEATURES_VERSION: &str = "quire.features_version";
const META_SNAPSHOT_VERSION: &str = "quire.snapshot_version";

/// Candidates in the warm-up sample.
const WARMUP_CANDIDATES: usize = 100;

/// Why a model version was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The version has no artifact of that name.
    #[error("{model} v{version} has no artifact {artifact}")]
    MissingArtifact {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// The artifact name.
        artifact: &'static str,
    },
    /// The artifact could not be read, or its bytes do not match the recorded SHA-256.
    #[error("{model} v{version} artifact {artifact}: {source}")]
    Artifact {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// The artifact name.
        artifact: &'static str,
        /// The store's error ([`quire_registry::Error::ChecksumMismatch`] for altered bytes).
        source: quire_registry::Error,
    },
    /// `feature_spec.json` is not a feature spec.
    #[error(
        "{model} v{version} artifact {}: not a feature spec: {message}",
        artifact::FEATURE_SPEC
    )]
    Spec {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// The parser's message.
        message: String,
    },
    /// `feature_snapshot.json` is not a snapshot this code reads.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// ONNX Runtime could not load `model.onnx`, or it is not a quire ranking model.
    #[error("{model} v{version} artifact {}: {source}", artifact::ONNX)]
    Onnx {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// The scorer's error.
        source: ScorerError,
    },
    /// The artifacts do not fit this code or each other.
    #[error("{model} v{version} is not compatible with this service: {message}")]
    Incompatible {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// What differs.
        message: String,
    },
    /// The model failed or gave non-finite scores on the warm-up sample.
    #[error("{model} v{version} failed its warm-up: {message}")]
    Warmup {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// What went wrong.
        message: String,
    },
    /// The loading task died.
    #[error("loading {model} v{version}: {message}")]
    Local {
        /// Registered model.
        model: String,
        /// Its version.
        version: i64,
        /// What went wrong.
        message: String,
    },
}

impl LoadError {
    /// The `reason` label of `quire_ranking_model_load_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            LoadError::MissingArtifact { .. } => "missing_artifact",
            LoadError::Artifact {
                source: quire_registry::Error::ChecksumMismatch { .. },
                ..
            } => "checksum_mismatch",
            LoadError::Artifact { .. } => "artifact_unreadable",
            LoadError::Spec { .. } => "invalid_spec",
            LoadError::Snapshot(_) => "invalid_snapshot",
            LoadError::Onnx { .. } => "invalid_model",
            LoadError::Incompatible { .. } => "incompatible",
            LoadError::Warmup { .. } => "warmup_failed",
            LoadError::Local { .. } => "local_error",
        }
    }
}

/// A model version ready to serve.
#[derive(Debug)]
pub(crate) struct ServedModel {
    /// Registered model name.
    pub name: String,
    /// Registry version.
    pub version: i64,
    /// The training run.
    pub run_id: String,
    /// The ONNX model's session pool.
    pub scorer: OnnxScorer,
    /// The feature snapshot registered with the version (spec and tables), resolved for serving.
    pub features: ServingTables,
}

/// The served model as a request's job on a scoring thread has it: with the idle scoring
/// threads it may split its batch with.
pub(crate) struct Scoring<'a> {
    pub model: &'a Arc<ServedModel>,
    pub helpers: &'a Helpers,
}

impl Scoring<'_> {
    /// Scores `n_rows` rows of the model's features (row-major), the second half on an idle
    /// scoring thread when [`Helpers::should_split`] says so. Each row's score does not depend
    /// on the batch it is in, so a split batch scores as the whole.
    pub fn score(&self, rows: &[f32], n_rows: usize) -> Result<Vec<f32>, ScorerError> {
        let scorer = &self.model.scorer;
        if rows.len() != n_rows * N_FEATURES || !self.helpers.should_split(n_rows) {
            // A mismatch is refused by the scorer, naming the sizes.
            return scorer.score(rows, n_rows, N_FEATURES);
        }
        let half = n_rows / 2;
        let (head, tail) = rows.split_at(half * N_FEATURES);
        let tail = tail.to_vec();
        let model = Arc::clone(self.model);
        let (scores, rest) = self.helpers.join(
            || scorer.score(head, half, N_FEATURES),
            move || model.scorer.score(&tail, n_rows - half, N_FEATURES),
        );
        let mut scores = scores?;
        scores.extend(rest?);
        Ok(scores)
    }
}

/// Reads `version`'s artifacts from `store` (checksums checked), then loads, checks and warms
/// the model on a blocking thread.
pub(crate) async fn load(
    store: &ArtifactStore,
    version: &ModelVersion,
    session_pool: usize,
) -> Result<ServedModel, LoadError> {
    let onnx = fetch(store, version, artifact::ONNX).await?;
    let spec = fetch(store, version, artifact::FEATURE_SPEC).await?;
    let snapshot = fetch(store, version, artifact::FEATURE_SNAPSHOT).await?;
    let mv = version.clone();
    tokio::task::spawn_blocking(move || build(&mv, &onnx, &spec, &snapshot, session_pool))
        .await
        .map_err(|e| LoadError::Local {
            model: version.name.clone(),
            version: version.version,
            message: format!("the loading task failed: {e}"),
        })?
}

async fn fetch(
    store: &ArtifactStore,
    version: &ModelVersion,
    name: &'static str,
) -> Result<Vec<u8>, LoadError> {
    let named = version
        .artifacts
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| LoadError::MissingArtifact {
            model: version.name.clone(),
            version: version.version,
            artifact: name,
        })?;
    store
        .get(&named.artifact)
        .await
        .map_err(|source| LoadError::Artifact {
            model: version.name.clone(),
            version: version.version,
            artifact: name,
            source,
        })
}

/// Parses and checks the artifacts, loads the model and warms it (blocking).
fn build(
    mv: &ModelVersion,
    onnx: &[u8],
    spec: &[u8],
    snapshot: &[u8],
    session_pool: usize,
) -> Result<ServedModel, LoadError> {
    let model = mv.name.clone();
    let version = mv.version;
    let incompatible = |message: String| LoadError::Incompatible {
        model: model.clone(),
        version,
        message,
    };
    let spec: FeatureSpec = serde_json::from_slice(spec).map_err(|e| LoadError::Spec {
        model: model.clone(),
        version,
        message: e.to_string(),
    })?;
    spec.check_compatible()
        .map_err(|e| incompatible(format!("{}: {e}", artifact::FEATURE_SPEC)))?;
    let snapshot = OnlineSnapshot::from_slice(
        snapshot,
        &format!("{model} v{version} artifact {}", artifact::FEATURE_SNAPSHOT),
    )?;
    if snapshot.spec != spec {
        return Err(incompatible(format!(
            "the spec in {} is not {} (genre coding or names differ)",
            artifact::FEATURE_SNAPSHOT,
            artifact::FEATURE_SPEC
        )));
    }

    // Loaded from the bytes just checked against the registry's sha256, never from the store's
    // file again, so nothing can change between the check and the load.
    let origin = format!("{model} v{version} artifact {}", artifact::ONNX);
    let scorer =
        OnnxScorer::from_bytes(onnx, &origin, session_pool).map_err(|source| LoadError::Onnx {
            model: model.clone(),
            version,
            source,
        })?;
    check_model(scorer.info(), mv, &snapshot).map_err(incompatible)?;

    let served = ServedModel {
        run_id: scorer.info().run_id.clone(),
        name: model.clone(),
        version,
        scorer,
        features: ServingTables::new(snapshot),
    };
    served
        .warm(session_pool)
        .map_err(|message| LoadError::Warmup {
            model,
            version,
            message,
        })?;
    Ok(served)
}

/// Whether the ONNX model's metadata fits this code, the version and its snapshot.
fn check_model(
    info: &ModelInfo,
    mv: &ModelVersion,
    snapshot: &OnlineSnapshot,
) -> Result<(), String> {
    if info
        .feature_names
        .iter()
        .map(String::as_str)
        .ne(FEATURE_NAMES)
    {
        let at = info
            .feature_names
            .iter()
            .map(String::as_str)
            .zip(FEATURE_NAMES)
            .position(|(m, c)| m != c)
            .map_or_else(
                || {
                    format!(
                        "it has {} columns, this code computes {N_FEATURES}",
                        info.feature_names.len()
                    )
                },
                |i| {
                    format!(
                        "column {i} is `{}`, this code computes `{}`",
                        info.feature_names[i], FEATURE_NAMES[i]
                    )
                },
            );
        return Err(format!(
            "the features of {} (metadata quire.feature_names) are not this code's: {at}",
            artifact::ONNX
        ));
    }
    if let Some(run) = &mv.run_id
        && *run != info.run_id
    {
        return Err(format!(
            "{} was trained by run {}, the version's run is {run}",
            artifact::ONNX,
            info.run_id
        ));
    }
    for (key, expected) in [
        (META_FEATURES_VERSION, &snapshot.spec.version),
        (META_SNAPSHOT_VERSION, &snapshot.version),
    ] {
        if let Some(found) = info.extra.get(key)
            && found != expected
        {
            return Err(format!(
                "{} says {key} = {found}, the version's {} has {expected}",
                artifact::ONNX,
                artifact::FEATURE_SNAPSHOT
            ));
        }
    }
    Ok(())
}

impl ServedModel {
    /// Scores a sample request through every session (ONNX Runtime's first runs allocate), and
    /// checks the scores are finite.
    fn warm(&self, session_pool: usize) -> Result<(), String> {
        let request = self.warmup_request();
        let rows = rank::features(&self.features, &request);
        let n = request.candidates.len();
        // Sessions are taken round-robin: two rounds reach each one at least once.
        for _ in 0..2 * session_pool.max(1) {
            let scores = self
                .scorer
                .score(&rows, n, N_FEATURES)
                .map_err(|e| e.to_string())?;
            if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
                return Err(format!(
                    "the score of sample candidate {i} is {}",
                    scores[i]
                ));
            }
        }
        Ok(())
    }

    /// Up to [`WARMUP_CANDIDATES`] books of the snapshot (made-up ids if it has none), for one
    /// of its users, from a phone.
    fn warmup_request(&self) -> RankRequest<'static> {
        let (mut ids, user_id) = self.features.sample(WARMUP_CANDIDATES);
        if ids.is_empty() {
            ids = (0..WARMUP_CANDIDATES)
                .map(|i| format!("warmup_{i}"))
                .collect();
        }
        let n = ids.len();
        RankRequest {
            request_id: None,
            query: "warm up".into(),
            user_id: user_id.map(Into::into),
            device: Some("mobile".into()),
            candidates: ids
                .into_iter()
                .enumerate()
                .map(|(i, book_id)| Candidate {
                    book_id: book_id.into(),
                    bm25: (n - i) as f64,
                })
                .collect(),
            top_k: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use quire_featspec::FeatureTables;

    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            run_id: "run1".into(),
            model_name: "ltr".into(),
            model_version: None,
            objective: "lambdarank".into(),
            exporter_version: "0.1.0".into(),
            extra: BTreeMap::new(),
        }
    }

    fn version(run_id: Option<&str>) -> ModelVersion {
        ModelVersion {
            name: "ltr".into(),
            version: 4,
            description: String::new(),
            creation_time: 0,
            last_updated_time: 0,
            source: String::new(),
            run_id: run_id.map(str::to_owned),
            status: "READY".into(),
            tags: BTreeMap::new(),
            aliases: Vec::new(),
            artifacts: Vec::new(),
        }
    }

    fn snapshot() -> OnlineSnapshot {
        OnlineSnapshot::new(
            FeatureSpec::new(vec!["Fantasy".into()]),
            FeatureTables::default(),
            1,
        )
        .unwrap()
    }

    #[test]
    fn a_fitting_model_passes() {
        let snap = snapshot();
        let mut i = info();
        i.extra
            .insert(META_FEATURES_VERSION.into(), snap.spec.version.clone());
        i.extra
            .insert(META_SNAPSHOT_VERSION.into(), snap.version.clone());
        assert_eq!(check_model(&i, &version(Some("run1")), &snap), Ok(()));
        // A version without a run checks no run.
        assert_eq!(check_model(&info(), &version(None), &snap), Ok(()));
    }

    #[test]
    fn misfits_are_named() {
        let snap = snapshot();
        let mv = version(Some("run1"));
        let mut i = info();
        i.feature_names.swap(1, 2);
        let err = check_model(&i, &mv, &snap).unwrap_err();
        assert!(
            err.contains("column 1 is `bm25_ratio`, this code computes `bm25_rank`"),
            "{err}"
        );
        let mut i = info();
        i.feature_names.pop();
        let err = check_model(&i, &mv, &snap).unwrap_err();
        assert!(
            err.contains("it has 27 columns, this code computes 28"),
            "{err}"
        );
        let err = check_model(&info(), &version(Some("run2")), &snap).unwrap_err();
        assert!(
            err.contains("trained by run run1, the version's run is run2"),
            "{err}"
        );
        let mut i = info();
        i.extra.insert(META_SNAPSHOT_VERSION.into(), "abc".into());
        let err = check_model(&i, &mv, &snap).unwrap_err();
        assert!(err.contains("quire.snapshot_version = abc"), "{err}");
        assert!(err.contains(&snap.version), "{err}");
    }

    #[test]
    fn load_errors_have_reasons_and_say_what_and_where() {
        let e = LoadError::MissingArtifact {
            model: "ltr".into(),
            version: 3,
            artifact: artifact::FEATURE_SNAPSHOT,
        };
        assert_eq!(e.reason(), "missing_artifact");
        assert_eq!(
            e.to_string(),
            "ltr v3 has no artifact feature_snapshot.json"
        );
        let e = LoadError::Artifact {
            model: "ltr".into(),
            version: 3,
            artifact: artifact::ONNX,
            source: quire_registry::Error::ChecksumMismatch {
                artifact: "file:///m/ab".into(),
                expected: "aa".into(),
                actual: "bb".into(),
            },
        };
        assert_eq!(e.reason(), "checksum_mismatch");
        assert!(
            e.to_string()
                .starts_with("ltr v3 artifact model.onnx: checksum mismatch"),
            "{e}"
        );
    }
}
