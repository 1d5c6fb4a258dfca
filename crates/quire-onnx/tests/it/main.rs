//! Integration tests of quire-onnx: exported models run in ONNX Runtime (through `ort`, and
//! through the Python `onnxruntime` package) against hand-computed values and against
//! LightGBM's own predictions. Needs `ORT_DYLIB_PATH` and the tool venv (`make setup`).

mod lightgbm;
mod python;
mod scorer;

use std::path::{Path, PathBuf};

use quire_onnx::{ExportMeta, OnnxScorer, export};

/// The metadata every test model is exported with.
fn meta() -> ExportMeta {
    ExportMeta {
        run_id: "5f0c2b1e9a7d4c3b8e6f1a2d3c4b5a69".to_owned(),
        model_name: "ltr".to_owned(),
        model_version: Some(3),
        extra: vec![(
            "quire.feature_spec_sha256".to_owned(),
            "9f86d081".to_owned(),
        )],
    }
}

/// Exports `model_json` into `dir/model.onnx`; returns the path.
fn write_onnx(dir: &Path, model_json: &str) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, export(model_json, &meta()).unwrap()).unwrap();
    path
}

/// Exports `model_json` and loads it with a pool of two sessions.
fn load(model_json: &str) -> (tempfile::TempDir, OnnxScorer) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_onnx(dir.path(), model_json);
    let scorer = OnnxScorer::load(&path, 2).unwrap_or_else(|e| panic!("{e}"));
    (dir, scorer)
}
