//! LightGBM's lambdarank example (a Yahoo LTR sample, `data/lightgbm-lambdarank`) trained as
//! its `train.conf` says gives exactly the NDCG of the Python `lightgbm` 4.7.0 package.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use quire_lgbm::{Dataset, TrainOptions, train};

/// `train.conf`'s training parameters, one thread, quiet.
const PARAMS: &str = "objective=lambdarank metric=ndcg ndcg_eval_at=1,3,5 max_bin=255 \
    learning_rate=0.1 num_leaves=31 tree_learner=serial feature_fraction=1.0 bagging_freq=1 \
    bagging_fraction=0.9 min_data_in_leaf=50 min_sum_hessian_in_leaf=5.0 is_enable_sparse=true \
    use_two_round_loading=false num_threads=1 verbosity=-1";

/// NDCG@1/3/5 on rank.test after iterations 1 and 100, from `benches/ltr/python_ltr.py
/// --threads 1` (lightgbm 4.7.0 from PyPI; see data/lightgbm-lambdarank/README.md).
const PYTHON_ITER_1: [f64; 3] = [0.4495238095238095, 0.5117210417743034, 0.5653737018390876];
const PYTHON_ITER_100: [f64; 3] = [0.5775238095238096, 0.6189577988179461, 0.6545726136019515];

/// Unpacks `<name>.gz` and copies `<name>.query` beside it into `dir`.
fn unpack(dir: &Path, name: &str) -> PathBuf {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/lightgbm-lambdarank");
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(data.join(format!("{name}.gz"))).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::copy(
        data.join(format!("{name}.query")),
        dir.join(format!("{name}.query")),
    )
    .unwrap();
    path
}

#[test]
fn yahoo_sample_ndcg_equals_python_lightgbm() {
    let dir = tempfile::tempdir().unwrap();
    let train_set = Dataset::from_file(&unpack(dir.path(), "rank.train"), PARAMS, None).unwrap();
    let test_set =
        Dataset::from_file(&unpack(dir.path(), "rank.test"), PARAMS, Some(&train_set)).unwrap();
    assert_eq!((train_set.n_rows(), test_set.n_rows()), (3005, 768));

    let mut ndcg = Vec::new();
    let options = TrainOptions {
        num_boost_round: 100,
        early_stopping: None,
    };
    let booster = train(PARAMS, &train_set, &[&test_set], &options, |it| {
        ndcg.push(it.valid[0].iter().map(|e| e.value).collect::<Vec<_>>());
    })
    .unwrap();
    assert_eq!(booster.num_iterations(), 100);
    for (ours, python) in [(&ndcg[0], PYTHON_ITER_1), (&ndcg[99], PYTHON_ITER_100)] {
        for (a, b) in ours.iter().zip(python) {
            assert!((a - b).abs() < 1e-12, "{ours:?} vs Python {python:?}");
        }
    }
}
