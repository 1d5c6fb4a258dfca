//! Bad input gives an error naming the problem, from this crate's checks or from LightGBM.

use quire_lgbm::{Booster, Dataset, EarlyStopping, Error, TrainOptions, train};

use crate::synth::{N_FEATURES, PARAMS, ltr};

fn message<T: std::fmt::Debug>(r: quire_lgbm::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn dense_inputs_are_checked_before_c() {
    let d = ltr(21, 4, 5, 0.3);
    let n = d.n_rows();
    let dense = |x: &[f32], rows, labels: &[f32], groups: Option<&[i32]>, params| {
        Dataset::from_dense(x, rows, N_FEATURES, labels, groups, params, None)
    };
    assert_eq!(
        message(dense(&d.x, n, &d.labels, Some(&[5, 5, 5]), PARAMS)),
        "query groups: 3 groups cover 15 rows but the matrix has 20; sizes are rows per query, \
         queries stored contiguously"
    );
    assert_eq!(
        message(dense(&d.x, n, &d.labels, Some(&[10, 0, 10]), PARAMS)),
        "query groups: group 1 has size 0; sizes must be positive"
    );
    assert_eq!(
        message(dense(&d.x, n, &d.labels[1..], Some(&d.groups), PARAMS)),
        "labels: expected one per row (20), got 19"
    );
    let mut nan = d.labels.clone();
    nan[7] = f32::NAN;
    assert_eq!(
        message(dense(&d.x, n, &nan, Some(&d.groups), PARAMS)),
        "labels: row 7 has label NaN: labels must be finite"
    );
    assert_eq!(
        message(dense(&d.x[1..], n, &d.labels, Some(&d.groups), PARAMS)),
        "feature matrix: expected 20 rows × 5 columns = 100 values, got 99 values"
    );
    assert!(message(dense(&[], 0, &[], None, PARAMS)).contains("at least one row"));
    let huge = Dataset::from_dense(&d.x, usize::MAX, 2, &[0.0], None, PARAMS, None);
    assert!(message(huge).contains("labels: expected one per row"));
    let train_set = d.dataset(PARAMS, None);
    let booster = Booster::new(&train_set, PARAMS).unwrap();
    let e = booster
        .predict_dense(&d.x, usize::MAX, N_FEATURES)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "prediction matrix: expected {} rows × 5 columns (more values than memory), got 100 values",
            usize::MAX
        )
    );
    assert!(
        message(dense(&d.x, n, &d.labels, Some(&d.groups), "eval_at=1, 3"))
            .contains("without spaces")
    );
    // A validation set must have the reference's columns.
    let e = Dataset::from_dense(&d.x, 25, 4, &[0.0; 25], None, PARAMS, Some(&train_set));
    assert_eq!(
        message(e),
        "validation matrix: expected 5 columns, as the reference dataset, got 4 columns"
    );
}

#[test]
fn lightgbm_errors_carry_its_message() {
    let d = ltr(22, 4, 5, 0.3);
    let n = d.n_rows();

    // Ranking without query groups.
    let no_groups =
        Dataset::from_dense(&d.x, n, N_FEATURES, &d.labels, None, PARAMS, None).unwrap();
    let e = Booster::new(&no_groups, PARAMS).unwrap_err();
    assert!(
        matches!(&e, Error::LightGbm { call: "LGBM_BoosterCreate", message } if message.contains("query")),
        "{e}"
    );

    // A grade of 31 is past the default 31 label gains.
    let mut high = d.labels.clone();
    high[0] = 31.0;
    let set =
        Dataset::from_dense(&d.x, n, N_FEATURES, &high, Some(&d.groups), PARAMS, None).unwrap();
    let e = Booster::new(&set, PARAMS).unwrap_err();
    assert!(
        e.to_string()
            .contains("Label 31 is not less than the number of label mappings"),
        "{e}"
    );

    // A validation set built without the training set as reference (other values, so other
    // bin boundaries; identical data would happen to align).
    let train_set = d.dataset(PARAMS, None);
    let stray = ltr(24, 4, 5, 0.3).dataset(PARAMS, None);
    let mut booster = Booster::new(&train_set, PARAMS).unwrap();
    let e = booster.add_valid(&stray).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::LightGbm {
                call: "LGBM_BoosterAddValidData",
                ..
            }
        ),
        "{e}"
    );

    // Predicting rows of the wrong width.
    booster.update_one_iter().unwrap();
    let e = booster.predict_dense(&d.x[..16], 4, 4).unwrap_err();
    assert!(e.to_string().contains("number of features"), "{e}");
    assert!(matches!(booster.eval(1), Err(Error::Usage(m)) if m.contains("1 dataset(s)")));
}

#[test]
fn known_crashes_and_misuse_are_refused() {
    let d = ltr(23, 4, 5, 0.3);
    let set = d.dataset(PARAMS, None);
    let e = Booster::new(&set, &format!("{PARAMS} min_sum_hessian_in_leaf=0")).unwrap_err();
    assert!(matches!(e, Error::Params(m) if m.contains("min_sum_hessian_in_leaf=0")));

    let stop = |patience, metric: Option<&str>| TrainOptions {
        num_boost_round: 5,
        early_stopping: Some(EarlyStopping {
            patience,
            metric: metric.map(String::from),
        }),
    };
    let e = train(PARAMS, &set, &[], &stop(3, None), |_| {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "early stopping needs at least one validation set"
    );
    let valid = d.dataset(PARAMS, Some(&set));
    let e = train(PARAMS, &set, &[&valid], &stop(3, Some("map@3")), |_| {}).unwrap_err();
    assert!(e.to_string().contains("\"map@3\" is not evaluated"), "{e}");
}
