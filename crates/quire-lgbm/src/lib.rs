//! A small safe API over LightGBM's C API (LightGBM 4.7.0, vendored and built by
//! `lightgbm3-sys` with OpenMP): datasets with query groups, boosters trained iteration by
//! iteration with validation metrics and early stopping, and the model as LightGBM text or
//! JSON. Used by the learning-to-rank trainer (`quire-train`) and the ONNX exporter
//! (`quire-onnx`, which reads [`Booster::dump_model_json`] and checks parity against
//! [`Booster::predict_dense`]).
//!
//! # API
//!
//! ```text
//! Dataset::from_dense(rows: &[f32 | f64], n_rows, n_cols, labels: &[f32],
//!                     groups: Option<&[i32]>, params: &str, reference: Option<&Dataset>) -> Result<Dataset>
//! Dataset::from_file(path: &Path, params: &str, reference: Option<&Dataset>) -> Result<Dataset>
//! dataset.set_feature_names(&[impl AsRef<str>]) -> Result<()>     // before Booster::new
//! dataset.n_rows(), dataset.n_features()
//!
//! train(params: &str, train: &Dataset, valid: &[&Dataset], &TrainOptions { num_boost_round,
//!       early_stopping: Option<EarlyStopping { patience, metric: Option<String> }> },
//!       on_iteration: impl FnMut(&IterationReport { iteration, train, valid, best_iteration })) -> Result<Booster>
//!
//! Booster::new(train: &Dataset, params: &str) -> Result<Booster>
//! Booster::from_model_string(&str) -> Result<Booster>
//! booster.add_valid(&Dataset) -> Result<usize /* data index, 1.. */>
//! booster.update_one_iter() -> Result<bool /* finished: no split found */>
//! booster.eval(data_idx) -> Result<Vec<Eval { name, value }>>       // 0 = training data
//! booster.eval_names() -> &[String]                                  // ["ndcg@1", "ndcg@3", ...]
//! booster.num_iterations(), booster.best_iteration() -> Option<usize>
//! booster.num_features(), booster.feature_names(), booster.feature_importance(Split | Gain)
//! booster.save_model_string(num_iteration: Option<usize>) -> Result<String>   // LightGBM text
//! booster.dump_model_json() -> Result<String>                                 // LightGBM JSON
//! booster.predict_dense(rows: &[f32 | f64], n_rows, n_cols) -> Result<Vec<f64>>
//! ```
//!
//! ```
//! use quire_lgbm::{Dataset, EarlyStopping, TrainOptions, train};
//! # fn main() -> quire_lgbm::Result<()> {
//! // Two queries of 3 and 2 documents, 2 features each, graded relevance.
//! let x = [0.1f32, 1.0, 0.5, 2.0, 0.9, 0.0, 0.3, 1.0, 0.7, 0.5];
//! let (labels, groups) = ([0.0f32, 1.0, 2.0, 0.0, 1.0], [3, 2]);
//! let params = "objective=lambdarank metric=ndcg eval_at=1,3 min_data_in_leaf=1 num_threads=1 verbosity=-1";
//! let train_set = Dataset::from_dense(&x, 5, 2, &labels, Some(&groups), params, None)?;
//! let valid_set = Dataset::from_dense(&x, 5, 2, &labels, Some(&groups), params, Some(&train_set))?;
//! let options = TrainOptions {
//!     num_boost_round: 100,
//!     early_stopping: Some(EarlyStopping { patience: 10, metric: Some("ndcg@3".into()) }),
//! };
//! let booster = train(params, &train_set, &[&valid_set], &options, |it| {
//!     println!("{} {:?}", it.iteration, it.valid[0]);
//! })?;
//! let scores = booster.predict_dense(&x, 5, 2)?;
//! let model_text = booster.save_model_string(None)?;
//! # let _ = (scores, model_text);
//! # Ok(())
//! # }
//! ```
//!
//! # Parameters
//!
//! Parameters are LightGBM's, as one string of `key=value` pairs separated by whitespace; lists
//! are comma-separated without spaces (`eval_at=1,3,5`). Pass the same string to the datasets
//! (where `max_bin` and the other dataset parameters act) and to the booster. Before calling C
//! this crate refuses pieces LightGBM would silently drop (`eval_at=1, 3, 5`), bracketed lists,
//! and `min_sum_hessian_in_leaf=0` with `lambdarank` (it can make LightGBM fail mid-training,
//! depending on the data). With
//! `lambdarank`, labels are relevance grades below 31 unless `label_gain` lists more gains;
//! LightGBM reports a violation when the booster is created.
//!
//! LightGBM logs `[LightGBM] [Info] …` lines to **stdout** and its errors to stderr; pass
//! `verbosity=-1` to silence the former (a CLI printing JSON on stdout must).
//!
//! # Determinism
//!
//! The same data, parameters and `num_threads` give the same model. Across thread counts
//! results can differ in the last bits (histogram sums are added in another order) unless
//! `deterministic=true` (and `force_row_wise=true` or `force_col_wise=true`) is set.
//!
//! # Threads
//!
//! LightGBM parallelises each call with OpenMP over `num_threads` threads (default: all cores).
//! That thread count is a **process-wide** setting inside LightGBM, written by every call that
//! receives parameters: two trainings running at once in one process with different
//! `num_threads` use whichever was set last.
//!
//! [`Dataset`] is `Send + Sync`. [`Booster`] is `Send` but not `Sync`: LightGBM's C API guards
//! a booster with a reader-writer lock (predictions take it shared, training exclusively), so
//! concurrent predictions would be safe in C++, but each call also writes the process-wide
//! thread count above without synchronisation. To predict from several threads, give each its
//! own booster ([`Booster::from_model_string`]) or share one behind a `Mutex`. Serving uses the
//! ONNX export, not this crate.

mod booster;
mod dataset;
mod error;
mod ffi;
mod params;
mod train;

pub use booster::{Booster, Eval, ImportanceType};
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use ffi::FeatureValue;
pub use params::canonical_param;
pub use train::{EarlyStopping, IterationReport, TrainOptions, train};
