//! The model out of the booster: text, JSON dump, predictions, names and importances.

use quire_lgbm::{Booster, Error, ImportanceType, TrainOptions, train};
use serde_json::Value;

use crate::synth::{Ltr, N_FEATURES, PARAMS, ltr};

const NAMES: [&str; N_FEATURES] = ["price", "rating", "age", "noise_a", "noise_b"];

/// A booster trained `rounds` iterations on named features, with its validation data.
fn trained(rounds: usize) -> (Booster, Ltr) {
    let (train_data, valid_data) = (ltr(11, 40, 12, 0.3), ltr(12, 15, 12, 0.3));
    let mut train_set = train_data.dataset(PARAMS, None);
    train_set.set_feature_names(&NAMES).unwrap();
    let options = TrainOptions {
        num_boost_round: rounds,
        early_stopping: None,
    };
    let booster = train(PARAMS, &train_set, &[], &options, |_| {}).unwrap();
    (booster, valid_data)
}

#[test]
fn saved_text_loads_back_and_predicts_identically() {
    let (booster, data) = trained(20);
    let n = data.n_rows();
    let scores = booster.predict_dense(&data.x, n, N_FEATURES).unwrap();

    let text = booster.save_model_string(None).unwrap();
    assert!(text.starts_with("tree\nversion=v4"), "{}", &text[..40]);
    let loaded = Booster::from_model_string(&text).unwrap();
    assert_eq!(loaded.num_iterations(), 20);
    assert_eq!(loaded.feature_names().unwrap(), NAMES);
    assert_eq!(
        loaded.predict_dense(&data.x, n, N_FEATURES).unwrap(),
        scores
    );
    assert_eq!(loaded.save_model_string(None).unwrap(), text);

    // f64 input gives the same scores as the f32 values it holds.
    let x64: Vec<f64> = data.x.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(loaded.predict_dense(&x64, n, N_FEATURES).unwrap(), scores);

    // The first 5 iterations only.
    let five = Booster::from_model_string(&booster.save_model_string(Some(5)).unwrap()).unwrap();
    assert_eq!(five.num_iterations(), 5);
    assert_ne!(five.predict_dense(&data.x, n, N_FEATURES).unwrap(), scores);
    for bad in [0, 21] {
        let e = booster.save_model_string(Some(bad)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("num_iteration {bad}: the model has 20 iteration(s)")
        );
    }

    // A loaded model predicts but cannot train or evaluate.
    let mut loaded = loaded;
    assert!(
        matches!(loaded.update_one_iter(), Err(Error::Usage(m)) if m.contains("no training data"))
    );
    assert!(matches!(loaded.eval(0), Err(Error::Usage(_))));
    assert!(loaded.eval_names().is_empty());
    assert!(matches!(
        Booster::from_model_string("not a model"),
        Err(Error::LightGbm {
            call: "LGBM_BoosterLoadModelFromString",
            ..
        })
    ));
}

/// Walks one tree of LightGBM's JSON dump for a row (no missing values in these data).
fn tree_output(node: &Value, row: &[f32]) -> f64 {
    if let Some(leaf) = node.get("leaf_value") {
        return leaf.as_f64().unwrap();
    }
    assert_eq!(node["decision_type"], "<=");
    let feature = node["split_feature"].as_u64().unwrap() as usize;
    let threshold = node["threshold"].as_f64().unwrap();
    let next = if f64::from(row[feature]) <= threshold {
        "left_child"
    } else {
        "right_child"
    };
    tree_output(&node[next], row)
}

/// Internal nodes of a tree.
fn splits(node: &Value) -> usize {
    match node.get("left_child") {
        Some(left) => 1 + splits(left) + splits(&node["right_child"]),
        None => 0,
    }
}

#[test]
fn json_dump_is_the_model() {
    let (booster, data) = trained(15);
    let dump: Value = serde_json::from_str(&booster.dump_model_json().unwrap()).unwrap();
    assert_eq!(dump["objective"], "lambdarank");
    assert_eq!(dump["feature_names"], serde_json::json!(NAMES));
    let trees = dump["tree_info"].as_array().unwrap();
    assert_eq!(trees.len(), 15);

    // Summing the leaves a row reaches in every tree gives the prediction.
    let scores = booster
        .predict_dense(&data.x, data.n_rows(), N_FEATURES)
        .unwrap();
    for (row, score) in data.x.chunks(N_FEATURES).zip(&scores) {
        let sum: f64 = trees
            .iter()
            .map(|t| tree_output(&t["tree_structure"], row))
            .sum();
        assert!((sum - score).abs() < 1e-9, "{sum} vs {score}");
    }

    // Split importance counts the splits of the dump; gain ranks the strongest feature first.
    let split = booster.feature_importance(ImportanceType::Split).unwrap();
    assert_eq!(split.len(), N_FEATURES);
    let total: usize = trees.iter().map(|t| splits(&t["tree_structure"])).sum();
    assert_eq!(split.iter().sum::<f64>(), total as f64);
    let gain = booster.feature_importance(ImportanceType::Gain).unwrap();
    assert_eq!(gain.len(), N_FEATURES);
    assert!(
        gain[0] > gain[1] && gain[1] > gain[3] && gain[1] > gain[4],
        "{gain:?}"
    );
    assert_eq!(booster.feature_names().unwrap(), NAMES);
    assert_eq!(booster.num_features().unwrap(), N_FEATURES);
}

#[test]
fn feature_names_are_checked() {
    let data = ltr(13, 5, 4, 0.3);
    let mut set = data.dataset(PARAMS, None);
    let e = set.set_feature_names(&["a", "b"]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "feature names: expected one per feature (5), got 2"
    );
    assert!(matches!(
        set.set_feature_names(&["a\0", "b", "c", "d", "e"]),
        Err(Error::Nul { .. })
    ));
    let booster = Booster::new(&set, PARAMS).unwrap();
    assert_eq!(booster.feature_names().unwrap()[0], "Column_0");
    let e = set.set_feature_names(&NAMES).unwrap_err();
    assert!(e.to_string().contains("already used by a booster"), "{e}");
    drop(booster);
    set.set_feature_names(&NAMES).unwrap();
}
