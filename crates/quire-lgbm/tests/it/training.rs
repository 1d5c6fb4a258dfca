//! Training: lambdarank learns, metrics are what they say, early stopping keeps the best.

use quire_lgbm::{EarlyStopping, Eval, TrainOptions, train};

use crate::synth::{N_FEATURES, PARAMS, ltr, ndcg_at};

fn value(evals: &[Eval], name: &str) -> f64 {
    evals.iter().find(|e| e.name == name).unwrap().value
}

#[test]
fn lambdarank_learns_and_reports_lightgbm_ndcg() {
    let (train_data, valid_data) = (ltr(1, 60, 15, 0.3), ltr(2, 20, 15, 0.3));
    let train_set = train_data.dataset(PARAMS, None);
    let valid_set = valid_data.dataset(PARAMS, Some(&train_set));
    let mut history = Vec::new();
    let options = TrainOptions {
        num_boost_round: 30,
        early_stopping: None,
    };
    let booster = train(PARAMS, &train_set, &[&valid_set], &options, |it| {
        assert!(it.train.is_empty(), "no training metric unless asked");
        assert_eq!(it.best_iteration, None);
        history.push((it.iteration, it.valid[0].clone()));
    })
    .unwrap();

    // LightGBM sorts eval_at: 5,1,3 → ndcg@1, ndcg@3, ndcg@5.
    assert_eq!(booster.eval_names(), ["ndcg@1", "ndcg@3", "ndcg@5"]);
    assert_eq!(booster.num_iterations(), 30);
    assert_eq!(booster.best_iteration(), None);
    let iterations: Vec<usize> = history.iter().map(|(i, _)| *i).collect();
    assert_eq!(iterations, (1..=30).collect::<Vec<_>>());

    // NDCG improves over the iterations and ends high on this learnable data.
    let (first, last) = (&history[0].1, &history[29].1);
    for name in ["ndcg@1", "ndcg@3", "ndcg@5"] {
        assert!(
            value(last, name) > value(first, name),
            "{name}: {first:?} → {last:?}"
        );
    }
    assert!(value(last, "ndcg@5") > 0.9, "{last:?}");

    // The reported metric is the NDCG of the model's predictions, by its definition.
    let n = valid_data.n_rows();
    let scores = booster.predict_dense(&valid_data.x, n, N_FEATURES).unwrap();
    assert_eq!(scores.len(), n);
    for (k, name) in [(1, "ndcg@1"), (3, "ndcg@3"), (5, "ndcg@5")] {
        let ours = ndcg_at(&scores, &valid_data.labels, &valid_data.groups, k);
        assert!(
            (ours - value(last, name)).abs() < 1e-9,
            "{name}: {ours} vs {last:?}"
        );
    }
    assert_eq!(booster.eval(1).unwrap(), *last);

    // Predictions separate the grades: the mean score rises with the label.
    let mean = |grade: f32| {
        let s: Vec<f64> = (0..n)
            .filter(|&i| valid_data.labels[i] == grade)
            .map(|i| scores[i])
            .collect();
        s.iter().sum::<f64>() / s.len() as f64
    };
    assert!(mean(0.0) < mean(1.0) && mean(1.0) < mean(2.0) && mean(2.0) < mean(3.0));
}

#[test]
fn training_metrics_when_the_parameters_ask_for_them() {
    let params = format!("{PARAMS} is_provide_training_metric=true");
    let data = ltr(3, 20, 10, 0.3);
    let train_set = data.dataset(&params, None);
    let mut seen = Vec::new();
    let options = TrainOptions {
        num_boost_round: 3,
        early_stopping: None,
    };
    let booster = train(&params, &train_set, &[], &options, |it| {
        assert!(it.valid.is_empty());
        seen.push(it.train.to_vec());
    })
    .unwrap();
    assert_eq!(seen.len(), 3);
    let names: Vec<&str> = seen[2].iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["ndcg@1", "ndcg@3", "ndcg@5"]);
    assert_eq!(booster.eval(0).unwrap(), seen[2]);
}

#[test]
fn early_stopping_stops_and_keeps_the_best_iteration() {
    // Weak signal, big trees, fast learning: the validation NDCG peaks early.
    let params = format!("{PARAMS} num_leaves=31 min_data_in_leaf=2 learning_rate=0.5");
    let (train_data, valid_data) = (ltr(4, 20, 10, 2.5), ltr(5, 20, 10, 2.5));
    let train_set = train_data.dataset(&params, None);
    let valid_set = valid_data.dataset(&params, Some(&train_set));
    let patience = 5;
    let options = TrainOptions {
        num_boost_round: 200,
        early_stopping: Some(EarlyStopping {
            patience,
            metric: Some("ndcg@3".to_string()),
        }),
    };
    let mut watched = Vec::new();
    let mut best_so_far = Vec::new();
    let booster = train(&params, &train_set, &[&valid_set], &options, |it| {
        watched.push(value(&it.valid[0], "ndcg@3"));
        best_so_far.push(it.best_iteration);
    })
    .unwrap();

    let best = booster
        .best_iteration()
        .expect("early stopping records the best iteration");
    // Stopped `patience` rounds after the best, long before the limit.
    assert_eq!(watched.len(), best + patience, "{watched:?}");
    assert!(watched.len() < 200);
    assert_eq!(best_so_far.last().copied().flatten(), Some(best));
    // The best is the first iteration with the highest value (strict improvement).
    let top = watched.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(watched[best - 1], top);
    assert!(watched[..best - 1].iter().all(|&v| v < top));

    // The model was cut back to the best iteration: its trees, its scores, its metric.
    assert_eq!(booster.num_iterations(), best);
    let dump: serde_json::Value =
        serde_json::from_str(&booster.dump_model_json().unwrap()).unwrap();
    assert_eq!(dump["tree_info"].as_array().unwrap().len(), best);
    let n = valid_data.n_rows();
    let scores = booster.predict_dense(&valid_data.x, n, N_FEATURES).unwrap();
    let ours = ndcg_at(&scores, &valid_data.labels, &valid_data.groups, 3);
    assert_eq!(ours, top);
}

#[test]
fn early_stopping_without_a_stop_still_keeps_the_best() {
    let (train_data, valid_data) = (ltr(6, 20, 10, 2.5), ltr(7, 20, 10, 2.5));
    let train_set = train_data.dataset(PARAMS, None);
    let valid_set = valid_data.dataset(PARAMS, Some(&train_set));
    let options = TrainOptions {
        num_boost_round: 8,
        early_stopping: Some(EarlyStopping {
            patience: 100,
            metric: None,
        }),
    };
    let mut watched = Vec::new();
    let booster = train(PARAMS, &train_set, &[&valid_set], &options, |it| {
        watched.push(value(&it.valid[0], "ndcg@1"));
    })
    .unwrap();
    assert_eq!(watched.len(), 8);
    let best = booster.best_iteration().unwrap();
    let top = watched.iter().copied().fold(f64::MIN, f64::max);
    assert_eq!(watched[best - 1], top);
    assert_eq!(booster.num_iterations(), best);
}
