//! Scoring rows with an exported model through ONNX Runtime (`ort`, loaded at run time).
//!
//! ONNX Runtime is not linked: `ort`'s `load-dynamic` feature opens the shared library named by
//! `ORT_DYLIB_PATH` (`make setup` links it at `.venv/libonnxruntime.so`) the first time a model
//! is loaded, and the process keeps that one ONNX Runtime environment for its lifetime (ONNX
//! Runtime allows one per process).
//!
//! `Session::run` needs `&mut Session`, so an [`OnnxScorer`] holds a small pool of sessions,
//! each single-threaded (`intra_threads = 1`): parallelism comes from concurrent calls, one per
//! blocking-pool thread, not from threads inside one call.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::export::{
    INPUT_NAME, META_FEATURE_NAMES, META_MODEL_NAME, META_MODEL_VERSION, META_OBJECTIVE,
    META_QUIRE_VERSION, META_RUN_ID, OUTPUT_NAME,
};

/// The environment variable naming ONNX Runtime's shared library.
pub const ORT_DYLIB_VAR: &str = "ORT_DYLIB_PATH";

/// Result of the scorer's operations.
pub type Result<T, E = ScorerError> = std::result::Result<T, E>;

/// Why ONNX Runtime or a model could not be loaded, or rows could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    /// `ORT_DYLIB_PATH` is unset or empty.
    #[error(
        "{ORT_DYLIB_VAR} is not set: it must name ONNX Runtime's shared library \
         (`make setup` links it at .venv/libonnxruntime.so)"
    )]
    RuntimeNotConfigured,
    /// `ORT_DYLIB_PATH` names no file.
    #[error(
        "ONNX Runtime library not found at {0} (the path in {ORT_DYLIB_VAR}); run `make setup`"
    )]
    RuntimeMissing(PathBuf),
    /// The library exists but ONNX Runtime could not be started from it.
    #[error("cannot start ONNX Runtime from {path}: {message}")]
    Runtime {
        /// The library's path.
        path: PathBuf,
        /// ONNX Runtime's or the loader's message.
        message: String,
    },
    /// The model file could not be read or ONNX Runtime rejected it.
    #[error("cannot load onnx model {path}: {message}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The model loads but is not one quire-onnx exported: its inputs, outputs or metadata
    /// are not as expected.
    #[error("onnx model {path} is not a quire ranking model: {message}")]
    NotQuireModel {
        /// The model file.
        path: PathBuf,
        /// What is missing or wrong.
        message: String,
    },
    /// The caller's rows do not fit the model or their own declared shape.
    #[error("bad rows for scoring: {0}")]
    BadRows(String),
    /// ONNX Runtime failed while scoring.
    #[error("onnx runtime failed to score {n_rows} rows: {message}")]
    Run {
        /// Rows in the failed call.
        n_rows: usize,
        /// ONNX Runtime's message.
        message: String,
    },
}

/// What an exported model says about itself (its ONNX metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Feature names, in input-column order.
    pub feature_names: Vec<String>,
    /// The registry run that trained the model.
    pub run_id: String,
    /// The registered model's name.
    pub model_name: String,
    /// The registered version, if it was known at export.
    pub model_version: Option<i64>,
    /// LightGBM's objective string.
    pub objective: String,
    /// The quire-onnx version that exported the model.
    pub exporter_version: String,
    /// Every other metadata pair (the exporter's `extra`), by key.
    pub extra: BTreeMap<String, String>,
}

/// A loaded model and a pool of ONNX Runtime sessions for it; `Sync`, so one scorer serves
/// concurrent callers.
pub struct OnnxScorer {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    info: ModelInfo,
}

impl std::fmt::Debug for OnnxScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxScorer")
            .field("sessions", &self.sessions.len())
            .field("info", &self.info)
            .finish()
    }
}

impl OnnxScorer {
    /// Loads an ONNX model written by [`export`](crate::export) from a file into `pool_size`
    /// sessions (at least one), starting ONNX Runtime from `ORT_DYLIB_PATH` if this is the first
    /// model of the process.
    ///
    /// # Errors
    /// [`ScorerError`] when ONNX Runtime cannot be found or started, the file cannot be read or
    /// parsed, or it lacks the input, output or metadata the exporter writes.
    pub fn load(path: impl AsRef<Path>, pool_size: usize) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ScorerError::Load {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_bytes(&bytes, path, pool_size)
    }

    /// Loads an ONNX model held in memory, as [`Self::load`] does a file: for bytes already
    /// read and checked (a registry artifact verified against its checksum), so nothing can
    /// change between the check and the load. `origin` names where the bytes came from in
    /// errors.
    ///
    /// # Errors
    /// As [`Self::load`], except reading.
    pub fn from_bytes(bytes: &[u8], origin: impl AsRef<Path>, pool_size: usize) -> Result<Self> {
        let origin = origin.as_ref();
        let env = environment()?;
        let load_err = |message: String| ScorerError::Load {
            path: origin.to_owned(),
            message,
        };
        let sessions = (0..pool_size.max(1))
            .map(|_| {
                Session::builder(&env)
                    .and_then(|b| Ok(b.with_intra_threads(1)?))
                    .and_then(|mut b| b.commit_from_memory(bytes))
                    .map(Mutex::new)
                    .map_err(|e| load_err(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let info = {
            let session = sessions[0].lock().unwrap_or_else(PoisonError::into_inner);
            read_info(&session).map_err(|message| ScorerError::NotQuireModel {
                path: origin.to_owned(),
                message,
            })?
        };
        Ok(Self {
            sessions,
            next: AtomicUsize::new(0),
            info,
        })
    }

    /// The model's metadata: feature names and order, run id, name, version.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Number of input columns (features) the model takes.
    pub fn n_features(&self) -> usize {
        self.info.feature_names.len()
    }

    /// Scores `n_rows` rows of `n_features` values each, row after row in `rows` (row-major,
    /// columns in [`ModelInfo::feature_names`] order, NaN for missing); returns one score per
    /// row. Blocks for the model's run time: call it from a blocking pool, not an async task.
    ///
    /// # Errors
    /// [`ScorerError::BadRows`] when `n_features` is not the model's or `rows` does not hold
    /// `n_rows × n_features` values; [`ScorerError::Run`] when ONNX Runtime fails.
    pub fn score(&self, rows: &[f32], n_rows: usize, n_features: usize) -> Result<Vec<f32>> {
        if n_features != self.n_features() {
            return Err(ScorerError::BadRows(format!(
                "{n_features} features per row given, the model takes {}",
                self.n_features()
            )));
        }
        if n_rows.checked_mul(n_features) != Some(rows.len()) {
            return Err(ScorerError::BadRows(format!(
                "{} values given for {n_rows} rows of {n_features} features",
                rows.len()
            )));
        }
        if n_rows == 0 {
            return Ok(Vec::new());
        }
        let run_err = |message: String| ScorerError::Run { n_rows, message };
        let input = TensorRef::from_array_view(([n_rows, n_features], rows))
            .map_err(|e| run_err(e.to_string()))?;
        let mut session = self.session();
        let outputs = session
            .run(ort::inputs![INPUT_NAME => input])
            .map_err(|e| run_err(e.to_string()))?;
        let output = outputs
            .get(OUTPUT_NAME)
            .ok_or_else(|| run_err(format!("no output `{OUTPUT_NAME}`")))?;
        let (_, scores) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| run_err(e.to_string()))?;
        if scores.len() != n_rows {
            return Err(run_err(format!("{} scores returned", scores.len())));
        }
        Ok(scores.to_vec())
    }

    /// A free session if there is one (round-robin start), else waits for the next in turn.
    fn session(&self) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            match self.sessions[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                // A panic elsewhere while holding the lock leaves the session itself usable.
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[start]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The path in `ORT_DYLIB_PATH`, checked to name an existing file.
///
/// # Errors
/// [`ScorerError::RuntimeNotConfigured`] or [`ScorerError::RuntimeMissing`].
fn runtime_path() -> Result<PathBuf> {
    runtime_path_from(std::env::var_os(ORT_DYLIB_VAR))
}

fn runtime_path_from(var: Option<OsString>) -> Result<PathBuf> {
    let path = var
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(ScorerError::RuntimeNotConfigured)?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(ScorerError::RuntimeMissing(path))
    }
}

/// Starts the process's ONNX Runtime environment now (it is otherwise started by the first
/// scorer): a server calls it at start, so a missing or broken library is an error of the
/// process, not of the first model it loads.
///
/// # Errors
/// [`ScorerError::RuntimeNotConfigured`], [`ScorerError::RuntimeMissing`] or
/// [`ScorerError::Runtime`] (the library cannot be loaded or started).
pub fn start_runtime() -> Result<()> {
    environment().map(drop)
}

/// The process's ONNX Runtime environment, started on first use. Kept for the process's
/// lifetime: `ort` refuses a second environment even after the first is dropped.
fn environment() -> Result<Environment> {
    static ENV: Mutex<Option<Environment>> = Mutex::new(None);
    let mut slot = ENV.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let path = runtime_path()?;
    let runtime_err = |message: String| ScorerError::Runtime {
        path: path.clone(),
        message,
    };
    // `init_from` returns an error for a bad library; `ort::init()` would panic instead.
    let env = ort::init_from(&path)
        .map_err(|e| runtime_err(e.to_string()))?
        .with_name("quire")
        .with_telemetry(false)
        .build()
        .map_err(|e| runtime_err(e.to_string()))?;
    *slot = Some(env.clone());
    Ok(env)
}

/// Checks the session's input and output against the exporter's and reads the metadata.
fn read_info(session: &Session) -> std::result::Result<ModelInfo, String> {
    let metadata = session.metadata().map_err(|e| e.to_string())?;
    let keys = metadata.custom_keys().map_err(|e| e.to_string())?;
    let mut extra: BTreeMap<String, String> = keys
        .into_iter()
        .filter_map(|key| metadata.custom(&key).map(|value| (key, value)))
        .collect();
    let mut take = |key: &str| {
        extra
            .remove(key)
            .ok_or_else(|| format!("metadata `{key}` is missing"))
    };
    let feature_names_json = take(META_FEATURE_NAMES)?;
    let feature_names: Vec<String> = serde_json::from_str(&feature_names_json).map_err(|e| {
        format!("metadata `{META_FEATURE_NAMES}` is not a json array of strings: {e}")
    })?;
    let run_id = take(META_RUN_ID)?;
    let model_name = take(META_MODEL_NAME)?;
    let objective = take(META_OBJECTIVE)?;
    let exporter_version = take(META_QUIRE_VERSION)?;
    let model_version = extra
        .remove(META_MODEL_VERSION)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|e| format!("metadata `{META_MODEL_VERSION}` = {v:?}: {e}"))
        })
        .transpose()?;

    let [input] = session.inputs() else {
        return Err(format!(
            "it has {} inputs, expected one",
            session.inputs().len()
        ));
    };
    let width_ok = match input.dtype() {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => shape.len() == 2 && usize::try_from(shape[1]).ok() == Some(feature_names.len()),
        _ => false,
    };
    if input.name() != INPUT_NAME || !width_ok {
        return Err(format!(
            "its input is `{}` {:?}, expected `{INPUT_NAME}` float[N, {}] ({} feature names)",
            input.name(),
            input.dtype(),
            feature_names.len(),
            feature_names.len()
        ));
    }
    if !session.outputs().iter().any(|o| o.name() == OUTPUT_NAME) {
        return Err(format!("it has no output `{OUTPUT_NAME}`"));
    }
    Ok(ModelInfo {
        feature_names,
        run_id,
        model_name,
        model_version,
        objective,
        exporter_version,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_path_unset_or_empty_says_which_variable() {
        for var in [None, Some(OsString::new())] {
            let err = runtime_path_from(var).unwrap_err();
            assert!(matches!(err, ScorerError::RuntimeNotConfigured));
            assert!(
                err.to_string().contains("ORT_DYLIB_PATH is not set"),
                "{err}"
            );
        }
    }

    #[test]
    fn runtime_path_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("libonnxruntime.so");
        let err = runtime_path_from(Some(missing.clone().into_os_string())).unwrap_err();
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("ORT_DYLIB_PATH"), "{err}");
        // A directory is not a library either.
        let err = runtime_path_from(Some(dir.path().as_os_str().to_owned())).unwrap_err();
        assert!(matches!(err, ScorerError::RuntimeMissing(_)));
    }

    #[test]
    fn runtime_path_accepts_an_existing_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = runtime_path_from(Some(file.path().as_os_str().to_owned())).unwrap();
        assert_eq!(path, file.path());
    }
}
