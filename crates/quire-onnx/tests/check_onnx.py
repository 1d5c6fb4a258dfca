"""Cross-check a model exported by quire-onnx with the reference ONNX tools.

Usage: check_onnx.py MODEL.onnx ROWS.f32 EXPECTED.f64 N_FEATURES TOLERANCE

- `onnx.checker.check_model(model, full_check=True)` (full check runs shape inference too);
- the Python `onnxruntime` package scores ROWS (little-endian float32, row-major,
  N_FEATURES columns) and every score must be within TOLERANCE of EXPECTED (little-endian
  float64, LightGBM's own predictions, written by the Rust test).

Prints one JSON line with the figures; exits 1 if any row is off (or not finite), 2 on bad use.
"""

import json
import sys

import numpy as np
import onnx
import onnxruntime


def main(argv):
    if len(argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    model_path, rows_path, expected_path = argv[1:4]
    n_features, tolerance = int(argv[4]), float(argv[5])

    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)

    rows = np.fromfile(rows_path, dtype="<f4").reshape(-1, n_features)
    expected = np.fromfile(expected_path, dtype="<f8")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model_path, options, providers=["CPUExecutionProvider"]
    )
    (scores,) = session.run(["Y"], {"X": rows})
    scores = scores.reshape(-1).astype(np.float64)
    if scores.shape != expected.shape:
        print(f"{scores.shape[0]} scores for {expected.shape[0]} expected", file=sys.stderr)
        return 1

    diff = np.abs(scores - expected)
    # `not <=` also catches NaN scores.
    off = int(np.count_nonzero(~(diff <= tolerance)))
    metadata = {p.key: p.value for p in model.metadata_props}
    print(
        json.dumps(
            {
                "rows": int(rows.shape[0]),
                "max_abs_diff": float(np.nanmax(diff)) if diff.size else 0.0,
                "rows_off": off,
                "feature_names": json.loads(metadata["quire.feature_names"]),
                "run_id": metadata["quire.run_id"],
                "onnx": onnx.__version__,
                "onnxruntime": onnxruntime.__version__,
            }
        )
    )
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
