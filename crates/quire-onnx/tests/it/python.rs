//! The exported lambdarank model checked by the reference tools: `onnx.checker` (full check)
//! and the Python `onnxruntime` package, on the same 10,000 probe rows as the Rust parity test,
//! against LightGBM's predictions. Runs `tests/check_onnx.py` with the tool venv's Python
//! (`$VENV`, else the repository's `.venv`, which `make setup` creates).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::lightgbm::{FEATURES, TOLERANCE, lambdarank};
use crate::meta;

/// The tool venv's Python; fails the test (never skips it) when the venv is missing.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "the python cross-check needs the tool venv with onnx and onnxruntime, but {} does not exist: \
         run `make setup` (scripts/setup.sh), or point VENV at a venv with those packages",
        python.display()
    );
    python
}

#[test]
fn onnx_checker_and_python_onnxruntime_agree_with_lightgbm() {
    let python = venv_python();
    let parity = lambdarank();
    let dir = tempfile::tempdir().unwrap();
    let model = crate::write_onnx(dir.path(), &parity.model_json);
    let rows = dir.path().join("rows.f32");
    let expected = dir.path().join("expected.f64");
    std::fs::write(
        &rows,
        parity
            .rows
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(
        &expected,
        parity
            .expected
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_onnx.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([&model, &rows, &expected])
        .arg(FEATURES.len().to_string())
        .arg(TOLERANCE.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "check_onnx.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("check_onnx.py printed no json ({e}):\n{stdout}"));
    eprintln!("python cross-check: {report}");
    assert_eq!(report["rows"], 10_000);
    assert_eq!(report["rows_off"], 0);
    assert!(report["max_abs_diff"].as_f64().unwrap() <= TOLERANCE);
    assert_eq!(report["feature_names"], serde_json::json!(FEATURES));
    assert_eq!(report["run_id"], meta().run_id);
}
