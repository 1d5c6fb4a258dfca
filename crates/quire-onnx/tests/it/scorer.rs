//! Hand-written LightGBM dumps through the exporter and ONNX Runtime, checked against values
//! worked out by hand from LightGBM's rules (`x <= threshold` in f64, NaN to `default_left`
//! or read as 0, `|x| <= 1e-35` read as 0).

use std::sync::Arc;

use quire_onnx::{META_FEATURE_NAMES, ModelInfo, OnnxScorer, ScorerError};
use serde_json::{Value, json};

use crate::{load, meta, write_onnx};

fn leaf(value: f64) -> Value {
    json!({"leaf_index": 0, "leaf_value": value, "leaf_weight": 1.0, "leaf_count": 1})
}

fn split(
    feature: i64,
    threshold: f64,
    default_left: bool,
    missing: &str,
    left: Value,
    right: Value,
) -> Value {
    json!({
        "split_index": 0, "split_feature": feature, "split_gain": 1.0, "threshold": threshold,
        "decision_type": "<=", "default_left": default_left, "missing_type": missing,
        "internal_value": 0.0, "internal_weight": 2.0, "internal_count": 2,
        "left_child": left, "right_child": right
    })
}

fn dump(objective: &str, average_output: bool, trees: Vec<Value>) -> String {
    json!({
        "name": "tree", "version": "v4", "num_class": 1, "num_tree_per_iteration": 1,
        "label_index": 0, "max_feature_idx": 1, "objective": objective,
        "average_output": average_output, "feature_names": ["bm25", "price"],
        "monotone_constraints": [], "feature_infos": {},
        "tree_info": trees.into_iter().enumerate().map(|(i, t)| json!({
            "tree_index": i, "num_leaves": 2, "num_cat": 0, "shrinkage": 1, "tree_structure": t
        })).collect::<Vec<_>>()
    })
    .to_string()
}

/// Scores one row per `price` value (bm25 = 1) and compares with `expected`, exactly.
fn check(model_json: &str, cases: &[(f32, f32)]) {
    let (_dir, scorer) = load(model_json);
    let rows: Vec<f32> = cases.iter().flat_map(|&(price, _)| [1.0, price]).collect();
    let scores = scorer.score(&rows, cases.len(), 2).unwrap();
    for (&(price, expected), score) in cases.iter().zip(scores) {
        assert_eq!(score, expected, "price = {price:e}");
    }
}

#[test]
fn threshold_and_its_f32_neighbours() {
    // 0.1 (f64) lies between two f32s: 0.1f32 is above it (goes right), the f32 below it
    // goes left. NaN with missing_type NaN and default_left=false goes right.
    let model = dump(
        "lambdarank",
        false,
        vec![split(1, 0.1, false, "NaN", leaf(-1.0), leaf(2.0))],
    );
    let below = 0.1_f32.next_down();
    check(
        &model,
        &[
            (0.1, 2.0),
            (below, -1.0),
            (below.next_down(), -1.0),
            (f32::NAN, 2.0),
            (0.0, -1.0),
            (-0.0, -1.0),
            (f32::INFINITY, 2.0),
            (f32::NEG_INFINITY, -1.0),
        ],
    );
    // The same split with default_left=true sends NaN left.
    let model = dump(
        "lambdarank",
        false,
        vec![split(1, 0.1, true, "NaN", leaf(-1.0), leaf(2.0))],
    );
    check(&model, &[(f32::NAN, -1.0), (0.1, 2.0)]);
}

#[test]
fn exactly_representable_threshold_keeps_equal_values_left() {
    let model = dump(
        "regression",
        false,
        vec![split(1, 2.5, true, "None", leaf(-1.0), leaf(2.0))],
    );
    check(
        &model,
        &[
            (2.5, -1.0),
            (2.5_f32.next_up(), 2.0),
            (2.5_f32.next_down(), -1.0),
        ],
    );
}

#[test]
fn missing_type_none_reads_nan_as_zero() {
    // threshold -0.5: 0 <= -0.5 is false, so NaN goes right although default_left=true.
    let negative = dump(
        "lambdarank",
        false,
        vec![split(1, -0.5, true, "None", leaf(-1.0), leaf(2.0))],
    );
    check(
        &negative,
        &[(f32::NAN, 2.0), (-0.5, -1.0), (-0.6, -1.0), (0.0, 2.0)],
    );
    // threshold 0.5: 0 <= 0.5, so NaN goes left although default_left=false.
    let positive = dump(
        "lambdarank",
        false,
        vec![split(1, 0.5, false, "None", leaf(-1.0), leaf(2.0))],
    );
    check(&positive, &[(f32::NAN, -1.0), (0.75, 2.0)]);
}

#[test]
fn values_in_lightgbm_zero_band_go_where_zero_goes() {
    // LightGBM's boundary between negatives and zero is -kZeroThreshold = -(1e-35f32), and
    // its predict reads |x| <= 1e-35 as 0: -1e-35f32 itself goes right, like 0.
    let band = 1e-35_f32;
    let model = dump(
        "lambdarank",
        false,
        vec![split(
            1,
            f64::from(-band),
            true,
            "None",
            leaf(-1.0),
            leaf(2.0),
        )],
    );
    check(
        &model,
        &[
            (-band, 2.0),
            ((-band).next_down(), -1.0),
            (-1e-36, 2.0),
            (0.0, 2.0),
            (f32::NAN, 2.0),
            (-1.0, -1.0),
        ],
    );
    // The boundary between zero and positives: +1e-35f32 goes left with 0.
    let model = dump(
        "lambdarank",
        false,
        vec![split(
            1,
            f64::from(band),
            true,
            "None",
            leaf(-1.0),
            leaf(2.0),
        )],
    );
    check(
        &model,
        &[
            (band, -1.0),
            (band.next_up(), 2.0),
            (1e-36, -1.0),
            (-1.0, -1.0),
        ],
    );
}

#[test]
fn trees_sum_average_and_logistic() {
    let two_leaves = || {
        vec![
            json!({"leaf_value": 1.0, "leaf_count": 5}),
            split(1, 0.0, true, "None", leaf(2.0), leaf(4.0)),
        ]
    };
    // SUM: 1 + 2 for price <= 0, 1 + 4 above.
    check(
        &dump("lambdarank", false, two_leaves()),
        &[(-1.0, 3.0), (1.0, 5.0)],
    );
    // average_output (random forest): divided by the number of trees.
    check(
        &dump("regression", true, two_leaves()),
        &[(-1.0, 1.5), (1.0, 2.5)],
    );
    // binary sigmoid:2 — 1 / (1 + exp(-2 · 0.5)) = 0.7310586 for a single leaf of 0.5.
    let (_dir, scorer) = load(&dump(
        "binary sigmoid:2",
        false,
        vec![json!({"leaf_value": 0.5, "leaf_count": 5})],
    ));
    let p = scorer.score(&[0.0, 0.0], 1, 2).unwrap()[0];
    assert!(
        (f64::from(p) - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-6,
        "{p}"
    );
}

#[test]
fn metadata_reads_back() {
    let (_dir, scorer) = load(&dump("lambdarank", false, vec![leaf(1.0)]));
    let expected = ModelInfo {
        feature_names: vec!["bm25".to_owned(), "price".to_owned()],
        run_id: meta().run_id,
        model_name: "ltr".to_owned(),
        model_version: Some(3),
        objective: "lambdarank".to_owned(),
        exporter_version: env!("CARGO_PKG_VERSION").to_owned(),
        extra: [(
            "quire.feature_spec_sha256".to_owned(),
            "9f86d081".to_owned(),
        )]
        .into(),
    };
    assert_eq!(scorer.info(), &expected);
    assert_eq!(scorer.n_features(), 2);
}

#[test]
fn loads_from_bytes_as_from_a_file() {
    let model = dump(
        "lambdarank",
        false,
        vec![split(0, 0.5, true, "NaN", leaf(-1.0), leaf(2.0))],
    );
    let (_dir, from_file) = load(&model);
    let bytes = quire_onnx::export(&model, &meta()).unwrap();
    let from_bytes = OnnxScorer::from_bytes(&bytes, "ltr v3 artifact model.onnx", 1).unwrap();
    assert_eq!(from_bytes.info(), from_file.info());
    let rows = [0.25, 0.0, 0.75, 0.0, f32::NAN, 0.0];
    assert_eq!(
        from_bytes.score(&rows, 3, 2).unwrap(),
        from_file.score(&rows, 3, 2).unwrap()
    );
    assert_eq!(from_bytes.score(&rows, 3, 2).unwrap(), [-1.0, 2.0, -1.0]);

    // Bytes that are not a model: the error names where they came from.
    let err = OnnxScorer::from_bytes(b"not onnx", "ltr v9 artifact model.onnx", 1).unwrap_err();
    assert!(
        matches!(err, ScorerError::Load { .. }) && err.to_string().contains("ltr v9 artifact"),
        "{err}"
    );
}

#[test]
fn bad_rows_are_refused() {
    let (_dir, scorer) = load(&dump("lambdarank", false, vec![leaf(1.0)]));
    let err = scorer.score(&[1.0, 2.0, 3.0], 1, 3).unwrap_err();
    assert!(
        matches!(err, ScorerError::BadRows(_)) && err.to_string().contains("model takes 2"),
        "{err}"
    );
    let err = scorer.score(&[1.0, 2.0, 3.0], 2, 2).unwrap_err();
    assert!(
        err.to_string()
            .contains("3 values given for 2 rows of 2 features"),
        "{err}"
    );
    assert_eq!(scorer.score(&[], 0, 2).unwrap(), Vec::<f32>::new());
}

#[test]
fn concurrent_callers_share_the_pool() {
    let model = dump(
        "lambdarank",
        false,
        vec![split(1, 0.0, true, "None", leaf(-1.0), leaf(2.0))],
    );
    let dir = tempfile::tempdir().unwrap();
    let scorer = Arc::new(OnnxScorer::load(write_onnx(dir.path(), &model), 2).unwrap());
    let rows: Vec<f32> = (0..200).flat_map(|i| [0.0, i as f32 - 100.0]).collect();
    let expected: Vec<f32> = (0..200)
        .map(|i| if i <= 100 { -1.0 } else { 2.0 })
        .collect();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (scorer, rows) = (Arc::clone(&scorer), rows.clone());
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| scorer.score(&rows, 200, 2).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for scores in handle.join().unwrap() {
            assert_eq!(scores, expected);
        }
    }
}

#[test]
fn unreadable_or_foreign_models_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.onnx");
    let err = OnnxScorer::load(&missing, 1).unwrap_err();
    assert!(
        matches!(err, ScorerError::Load { .. }) && err.to_string().contains("nope.onnx"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not an onnx model").unwrap();
    let err = OnnxScorer::load(&garbage, 1).unwrap_err();
    assert!(
        matches!(err, ScorerError::Load { .. }) && err.to_string().contains("garbage.onnx"),
        "{err}"
    );

    // A valid ONNX model without quire's metadata: the exported file with the metadata
    // (and every other field not listed below) dropped by decoding into a smaller message.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Stripped {
        #[prost(int64, tag = "1")]
        ir_version: i64,
        #[prost(bytes = "vec", tag = "7")]
        graph: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "8")]
        opset_import: Vec<Vec<u8>>,
    }
    let exported =
        quire_onnx::export(&dump("lambdarank", false, vec![leaf(1.0)]), &meta()).unwrap();
    let stripped = <Stripped as prost::Message>::decode(exported.as_slice()).unwrap();
    let foreign = dir.path().join("foreign.onnx");
    std::fs::write(&foreign, prost::Message::encode_to_vec(&stripped)).unwrap();
    let err = OnnxScorer::load(&foreign, 1).unwrap_err();
    assert!(matches!(err, ScorerError::NotQuireModel { .. }), "{err}");
    assert!(
        err.to_string().contains(META_FEATURE_NAMES) && err.to_string().contains("foreign.onnx"),
        "{err}"
    );
}
