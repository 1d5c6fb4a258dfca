//! Parity with LightGBM: models trained by LightGBM itself (through `quire-lgbm`) on
//! synthetic data with NaNs, zeros, negative values and integer features, exported, and scored
//! by ONNX Runtime on rows built to sit on LightGBM's thresholds, on their `f32` neighbours, on
//! NaN, ±0, ±inf and the zero band; every score must match LightGBM's own prediction.

use std::sync::OnceLock;

use quire_lgbm::{Booster, Dataset, TrainOptions, train};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::load;

/// The largest difference allowed between ONNX Runtime's `f32` score and LightGBM's `f64` one.
pub(crate) const TOLERANCE: f64 = 1e-5;

/// The synthetic features, in column order.
pub(crate) const FEATURES: [&str; 8] = [
    "bm25",
    "price",
    "rating",
    "n_reviews",
    "age_days",
    "ctr",
    "discount",
    "grade",
];
const F: usize = FEATURES.len();

/// One value of `feature` as the training data has it.
fn sample(rng: &mut ChaCha8Rng, feature: usize) -> f32 {
    let u = |rng: &mut ChaCha8Rng| rng.r#gen::<f64>();
    let x = match feature {
        // Missing for 10% of rows (missing_type NaN).
        0 if rng.gen_bool(0.1) => f64::NAN,
        0 => 10.0 + 3.0 * (u(rng) + u(rng) + u(rng) - 1.5),
        // Never missing in training (missing_type None), prices in cents.
        1 => ((1.0 + 3.0 * u(rng)).exp() * 100.0).round() / 100.0,
        2 if rng.gen_bool(0.2) => f64::NAN,
        2 => (10.0 + 40.0 * u(rng)).round() / 10.0,
        // Counts, many zeros.
        3 if rng.gen_bool(0.4) => 0.0,
        3 => (u(rng).powi(3) * 500.0).floor(),
        4 if rng.gen_bool(0.05) => 0.0,
        4 => 730.0 * u(rng) - 365.0,
        5 if rng.gen_bool(0.05) => f64::NAN,
        5 => 0.3 * u(rng),
        // Zero or negative: LightGBM's boundary between them is -1e-35.
        6 if rng.gen_bool(0.5) => 0.0,
        6 => -0.5 * u(rng),
        _ => f64::from(rng.gen_range(0u8..5)),
    };
    x as f32
}

/// A relevance-like target: depends on every feature, and on whether bm25 and rating are missing.
fn target(row: &[f32], rng: &mut ChaCha8Rng) -> f64 {
    let v = |i: usize| f64::from(row[i]);
    let bm25 = if row[0].is_nan() {
        0.5
    } else {
        0.3 * (v(0) - 10.0)
    };
    let rating = if row[2].is_nan() { -1.0 } else { v(2) - 3.0 };
    bm25 - 0.2 * v(1).ln() + rating + 0.5 * v(3).ln_1p() - v(4) / 365.0
        + 5.0 * v(5).max(0.0)
        + if v(6) < 0.0 { 1.0 } else { 0.0 }
        + 0.3 * v(7)
        + 0.5 * (rng.r#gen::<f64>() - 0.5)
}

/// `n_rows` training rows (row-major) and their targets.
fn training_data(rng: &mut ChaCha8Rng, n_rows: usize) -> (Vec<f32>, Vec<f64>) {
    let mut rows = Vec::with_capacity(n_rows * F);
    let mut targets = Vec::with_capacity(n_rows);
    for _ in 0..n_rows {
        let row: Vec<f32> = (0..F).map(|f| sample(rng, f)).collect();
        targets.push(target(&row, rng));
        rows.extend(row);
    }
    (rows, targets)
}

/// Every numerical threshold in the dump, per feature, and every split's missing type.
fn thresholds(model_json: &str) -> (Vec<Vec<f64>>, Vec<String>) {
    fn walk(node: &Value, per_feature: &mut [Vec<f64>], missing: &mut Vec<String>) {
        if let (Some(f), Some(t)) = (node["split_feature"].as_u64(), node["threshold"].as_f64()) {
            per_feature[f as usize].push(t);
            missing.push(node["missing_type"].as_str().unwrap().to_owned());
            walk(&node["left_child"], per_feature, missing);
            walk(&node["right_child"], per_feature, missing);
        }
    }
    let dump: Value = serde_json::from_str(model_json).unwrap();
    let mut per_feature = vec![Vec::new(); F];
    let mut missing = Vec::new();
    for tree in dump["tree_info"].as_array().unwrap() {
        walk(&tree["tree_structure"], &mut per_feature, &mut missing);
    }
    (per_feature, missing)
}

/// The largest `f32` not above `t`.
fn f32_below(t: f64) -> f32 {
    let nearest = t as f32;
    if f64::from(nearest) > t {
        nearest.next_down()
    } else {
        nearest
    }
}

/// A value for `feature` chosen to probe the export: ordinary values, NaN, ±0, the zero band,
/// ±inf, and (most often) a threshold's nearest `f32` or an `f32` neighbour of it.
fn probe(rng: &mut ChaCha8Rng, feature: usize, thresholds: &[f64]) -> f32 {
    let band = 1e-35_f32;
    match rng.gen_range(0..100) {
        0..30 => sample(rng, feature),
        30..40 => f32::NAN,
        40..44 => 0.0,
        44..48 => -0.0,
        48..52 => {
            let edges = [
                band,
                -band,
                band.next_up(),
                (-band).next_down(),
                1e-36,
                -1e-36,
            ];
            edges[rng.gen_range(0..edges.len())]
        }
        52..54 => {
            if rng.gen_bool(0.5) {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            }
        }
        _ if thresholds.is_empty() => sample(rng, feature),
        _ => {
            let t = thresholds[rng.gen_range(0..thresholds.len())];
            let below = f32_below(t);
            [t as f32, below, below.next_up(), below.next_down()][rng.gen_range(0..4)]
        }
    }
}

/// A trained model, probe rows and LightGBM's predictions for them.
pub(crate) struct Parity {
    pub model_json: String,
    pub rows: Vec<f32>,
    pub n_rows: usize,
    pub expected: Vec<f64>,
    pub n_trees: usize,
    /// Splits per missing type (`NaN`, `None`).
    pub missing_types: Vec<String>,
    /// Probe cells whose value is the nearest `f32` of a threshold and lies above it — the
    /// rows an exporter rounding thresholds to nearest sends the wrong way.
    pub cells_above_threshold_nearest_f32: usize,
}

/// Trains with `params` for `rounds` rounds (`labels` turns targets into LightGBM labels;
/// `groups` of 20 rows for ranking) and builds `n_probe` probe rows.
fn build(
    seed: u64,
    params: &str,
    rounds: usize,
    n_train: usize,
    n_probe: usize,
    ranking: bool,
    labels: impl Fn(f64) -> f32,
) -> Parity {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (train_rows, targets) = training_data(&mut rng, n_train);
    let labels: Vec<f32> = targets.iter().map(|&t| labels(t)).collect();
    let groups = vec![20; n_train / 20];
    let mut dataset = Dataset::from_dense(
        &train_rows,
        n_train,
        F,
        &labels,
        ranking.then_some(groups.as_slice()),
        params,
        None,
    )
    .unwrap();
    dataset.set_feature_names(&FEATURES).unwrap();
    let options = TrainOptions {
        num_boost_round: rounds,
        early_stopping: None,
    };
    let booster: Booster = train(params, &dataset, &[], &options, |_| {}).unwrap();
    let model_json = booster.dump_model_json().unwrap();
    let (per_feature, missing_types) = thresholds(&model_json);

    let mut rows = Vec::with_capacity(n_probe * F);
    for _ in 0..n_probe {
        rows.extend((0..F).map(|f| probe(&mut rng, f, &per_feature[f])));
    }
    let cells_above_threshold_nearest_f32 = rows
        .iter()
        .enumerate()
        .filter(|&(i, &x)| {
            per_feature[i % F]
                .iter()
                .any(|&t| x == t as f32 && f64::from(x) > t)
        })
        .count();
    let expected = booster.predict_dense(&rows, n_probe, F).unwrap();
    Parity {
        n_trees: booster.num_iterations(),
        model_json,
        rows,
        n_rows: n_probe,
        expected,
        missing_types,
        cells_above_threshold_nearest_f32,
    }
}

/// The ranking model of the issue: lambdarank, 150 trees of up to 31 leaves, 10,000 probe rows.
pub(crate) fn lambdarank() -> &'static Parity {
    static PARITY: OnceLock<Parity> = OnceLock::new();
    PARITY.get_or_init(|| {
        let params = "objective=lambdarank metric=ndcg eval_at=5 num_leaves=31 learning_rate=0.1 \
                      min_data_in_leaf=5 verbosity=-1 num_threads=1 deterministic=true seed=7";
        build(7, params, 150, 4000, 10_000, true, |t| {
            (t / 1.5 + 2.0).round().clamp(0.0, 4.0) as f32
        })
    })
}

/// ONNX Runtime's scores for the probe rows.
fn onnx_scores(parity: &Parity) -> Vec<f32> {
    let (_dir, scorer) = load(&parity.model_json);
    assert_eq!(scorer.info().feature_names, FEATURES);
    let scores = scorer.score(&parity.rows, parity.n_rows, F).unwrap();
    assert_eq!(scores.len(), parity.n_rows);
    scores
}

/// Max |ONNX Runtime − LightGBM| over the probe rows.
fn max_abs_diff(parity: &Parity) -> f64 {
    onnx_scores(parity)
        .iter()
        .zip(&parity.expected)
        .map(|(&s, &e)| {
            assert!(s.is_finite() && e.is_finite(), "score {s} vs LightGBM {e}");
            (f64::from(s) - e).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn lambdarank_model_matches_lightgbm_on_10000_edge_rows() {
    let parity = lambdarank();
    assert!(parity.n_trees >= 100, "{} trees", parity.n_trees);
    assert_eq!(parity.n_rows, 10_000);
    // Both missing-value rules are exercised: NaN-trained features and never-missing ones.
    for kind in ["NaN", "None"] {
        assert!(
            parity.missing_types.iter().any(|m| m == kind),
            "no split with missing_type {kind}"
        );
    }
    // The probes would catch round-to-nearest thresholds.
    assert!(
        parity.cells_above_threshold_nearest_f32 > 1000,
        "{}",
        parity.cells_above_threshold_nearest_f32
    );
    let diff = max_abs_diff(parity);
    eprintln!(
        "lambdarank parity: {} rows, {} trees, {} splits, {} probe cells above a threshold's nearest f32; \
         max |ort - lightgbm| = {diff:.3e}",
        parity.n_rows,
        parity.n_trees,
        parity.missing_types.len(),
        parity.cells_above_threshold_nearest_f32
    );
    assert!(diff <= TOLERANCE, "max |ort - lightgbm| = {diff:e}");
    // Stronger: sums are in double, so only the final rounding to f32 remains — each score is
    // within one f32 ulp of LightGBM's (an f32 sum over 150 trees is off by several).
    for (i, (&s, &e)) in onnx_scores(parity).iter().zip(&parity.expected).enumerate() {
        let ulp = f64::from(s.abs().next_up() - s.abs());
        assert!(
            (f64::from(s) - e).abs() <= ulp,
            "row {i}: ort {s} vs lightgbm {e}"
        );
    }
}

#[test]
fn binary_model_matches_lightgbm_probabilities() {
    let params = "objective=binary sigmoid=1.5 num_leaves=15 learning_rate=0.1 min_data_in_leaf=5 \
                  verbosity=-1 num_threads=1 deterministic=true seed=11";
    let parity = build(11, params, 40, 2000, 2000, false, |t| {
        f32::from(u8::from(t > 0.5))
    });
    let diff = max_abs_diff(&parity);
    eprintln!(
        "binary parity: {} rows, {} trees, max diff {diff:.3e}",
        parity.n_rows, parity.n_trees
    );
    assert!(diff <= TOLERANCE, "max |ort - lightgbm| = {diff:e}");
}

#[test]
fn random_forest_model_matches_lightgbm_average() {
    let params = "objective=regression boosting=rf bagging_freq=1 bagging_fraction=0.7 \
                  feature_fraction=0.8 num_leaves=15 min_data_in_leaf=5 verbosity=-1 \
                  num_threads=1 deterministic=true seed=13";
    let parity = build(13, params, 30, 2000, 2000, false, |t| t as f32);
    assert!(parity.model_json.contains("\"average_output\":true"));
    let diff = max_abs_diff(&parity);
    eprintln!(
        "random forest parity: {} rows, {} trees, max diff {diff:.3e}",
        parity.n_rows, parity.n_trees
    );
    assert!(diff <= TOLERANCE, "max |ort - lightgbm| = {diff:e}");
}

#[test]
fn zero_as_missing_model_is_refused_naming_a_feature() {
    let params = "objective=regression zero_as_missing=true num_leaves=7 min_data_in_leaf=5 \
                  verbosity=-1 num_threads=1 seed=17";
    let parity = build(17, params, 5, 1000, 1, false, |t| t as f32);
    let err = quire_onnx::export(&parity.model_json, &crate::meta()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("zero_as_missing"), "{message}");
    assert!(
        FEATURES.iter().any(|f| message.contains(&format!("`{f}`"))),
        "{message}"
    );
}

#[test]
fn categorical_model_is_refused_naming_the_feature() {
    let params = "objective=regression categorical_feature=7 num_leaves=7 min_data_in_leaf=5 \
                  min_data_per_group=5 cat_smooth=1 verbosity=-1 num_threads=1 seed=19";
    let parity = build(19, params, 30, 1000, 1, false, |t| t as f32);
    assert!(
        parity.model_json.contains("\"decision_type\":\"==\""),
        "no categorical split was made: {}",
        &parity.model_json[..3000]
    );
    let err = quire_onnx::export(&parity.model_json, &crate::meta()).unwrap_err();
    assert!(
        matches!(err, quire_onnx::ExportError::CategoricalSplit { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`grade`"), "{err}");
}

/// A row's score does not depend on the batch it is scored in, whatever path ONNX Runtime's
/// tree ensemble takes for the batch's size (it switches at some numbers of rows and trees):
/// the ranking service scores a batch in two halves when a core is free, and must answer as for
/// the whole batch.
#[test]
fn a_rows_score_does_not_depend_on_its_batch() {
    let parity = lambdarank();
    let (_dir, scorer) = load(&parity.model_json);
    let whole = scorer.score(&parity.rows, parity.n_rows, F).unwrap();
    let bits = |s: &[f32]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for batch in [1, 2, 49, 50, 51, 100, 127, 128, 129, 500] {
        // The first 2,000 rows in batches of `batch`.
        for (k, chunk) in parity.rows[..2000 * F].chunks(batch * F).enumerate() {
            let n = chunk.len() / F;
            let got = scorer.score(chunk, n, F).unwrap();
            let start = k * batch;
            assert_eq!(
                bits(&got),
                bits(&whole[start..start + n]),
                "rows {start}..{} scored in a batch of {n}",
                start + n
            );
        }
    }
}
