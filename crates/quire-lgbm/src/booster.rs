//! A gradient-boosted tree model being trained or loaded.

use std::ffi::CString;

use crate::dataset::Dataset;
use crate::ffi::{self, FeatureValue, RawBooster};
use crate::params::{NUM_THREADS, Params};
use crate::{Error, Result};

/// How [`Booster::feature_importance`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportanceType {
    /// Number of splits on the feature.
    Split,
    /// Total gain of the splits on the feature.
    Gain,
}

/// One metric value, e.g. `ndcg@5 = 0.65`.
#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    /// LightGBM's metric name (`ndcg@1`, `map@3`, `auc`, `l2`, …).
    pub name: String,
    /// Its value.
    pub value: f64,
}

impl Eval {
    /// Whether a larger value is better: true for `auc*`, `ndcg@*`, `map@*` and
    /// `average_precision`, false for losses and errors (the rule of LightGBM's Python package).
    pub fn higher_is_better(&self) -> bool {
        higher_is_better(&self.name)
    }
}

pub(crate) fn higher_is_better(metric: &str) -> bool {
    ["auc", "ndcg@", "map@", "average_precision"]
        .iter()
        .any(|p| metric.starts_with(p))
}

/// A LightGBM booster: built on a training [`Dataset`] and trained iteration by iteration, or
/// loaded from LightGBM's model text.
///
/// `Send` but not `Sync`: see the crate documentation on threads.
pub struct Booster {
    raw: RawBooster,
    eval_names: Vec<String>,
    /// `num_threads=…` from the training parameters, passed to predictions.
    predict_params: CString,
    iterations: usize,
    best_iteration: Option<usize>,
}

impl std::fmt::Debug for Booster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booster")
            .field("iterations", &self.iterations)
            .field("best_iteration", &self.best_iteration)
            .field("eval_names", &self.eval_names)
            .finish()
    }
}

impl Booster {
    /// Creates a booster on `train` with LightGBM parameters (`key=value` pairs separated by
    /// spaces, lists without spaces: `"objective=lambdarank metric=ndcg eval_at=1,3,5"`).
    pub fn new(train: &Dataset, params: &str) -> Result<Self> {
        let parsed = Params::parse(params)?;
        parsed.check_known_crashes()?;
        let raw = RawBooster::create(&train.raw, &ffi::c_string("parameters", params)?)?;
        let eval_names = raw.eval_names()?;
        Ok(Self {
            raw,
            eval_names,
            predict_params: ffi::c_string("parameters", &parsed.only(NUM_THREADS))?,
            iterations: 0,
            best_iteration: None,
        })
    }

    /// Loads a model from LightGBM's text format (any LightGBM 4 writes it, and
    /// [`save_model_string`](Self::save_model_string)). It predicts and dumps; it cannot train.
    pub fn from_model_string(model: &str) -> Result<Self> {
        let (raw, iterations) =
            RawBooster::from_model_string(&ffi::c_string("model text", model)?)?;
        Ok(Self {
            eval_names: raw.eval_names()?,
            raw,
            predict_params: CString::default(),
            iterations,
            best_iteration: None,
        })
    }

    /// Adds a validation set (built with the training set as reference); returns its data index
    /// for [`eval`](Self::eval): 1 for the first, 2 for the second, ….
    pub fn add_valid(&mut self, valid: &Dataset) -> Result<usize> {
        self.raw.add_valid(&valid.raw)?;
        Ok(self.raw.num_datasets() - 1)
    }

    /// Trains one more iteration. Returns `true` when LightGBM found no split to make (the
    /// iteration added no tree, training has converged).
    pub fn update_one_iter(&mut self) -> Result<bool> {
        let finished = self.raw.update_one_iter()?;
        self.iterations = self.raw.current_iteration()?;
        Ok(finished)
    }

    /// The metric values on dataset `data_idx`: 0 is the training data, 1.. the validation sets
    /// in the order added. Names as [`eval_names`](Self::eval_names). Computed on the scores
    /// LightGBM keeps for each dataset, updated as trees are added (and removed by early
    /// stopping's cut-back, see [`best_iteration`](Self::best_iteration)).
    pub fn eval(&self, data_idx: usize) -> Result<Vec<Eval>> {
        let values = self.raw.eval(data_idx)?;
        Ok(self
            .eval_names
            .iter()
            .zip(values)
            .map(|(name, value)| Eval {
                name: name.clone(),
                value,
            })
            .collect())
    }

    /// The metric names, e.g. `["ndcg@1", "ndcg@3", "ndcg@5"]` for `metric=ndcg
    /// eval_at=5,1,3` (LightGBM sorts `eval_at`); empty for a loaded model.
    pub fn eval_names(&self) -> &[String] {
        &self.eval_names
    }

    /// Iterations (trees per class) in the model.
    pub fn num_iterations(&self) -> usize {
        self.iterations
    }

    /// The best iteration found by early stopping in [`train`](crate::train) (1-based); the
    /// model has been cut back to it. `None` when training ran without early stopping.
    ///
    /// The metrics of the best iteration are those reported to `train`'s callback for it.
    /// [`eval`](Self::eval) after the cut-back may differ slightly: LightGBM removes the later
    /// trees by subtracting their outputs from the kept scores, and a last-bit difference can
    /// reorder documents whose scores tie. Predictions and the saved model are exact.
    pub fn best_iteration(&self) -> Option<usize> {
        self.best_iteration
    }

    /// Number of features the model expects per row.
    pub fn num_features(&self) -> Result<usize> {
        self.raw.num_feature()
    }

    /// Feature names (`Column_0`, … unless set on the training dataset).
    pub fn feature_names(&self) -> Result<Vec<String>> {
        self.raw.feature_names()
    }

    /// Importance of each feature, in feature order, over the whole model.
    pub fn feature_importance(&self, kind: ImportanceType) -> Result<Vec<f64>> {
        self.raw.feature_importance(0, kind)
    }

    /// The model in LightGBM's text format (loadable by any LightGBM 4: CLI, Python,
    /// [`from_model_string`](Self::from_model_string)), with its first `num_iteration`
    /// iterations, or all of them for `None`.
    pub fn save_model_string(&self, num_iteration: Option<usize>) -> Result<String> {
        self.raw
            .save_model_to_string(self.check_iterations(num_iteration)?)
    }

    /// The whole model as LightGBM's JSON dump (`LGBM_BoosterDumpModel`): `tree_info[]` with one
    /// `tree_structure` per tree, `feature_names`, `objective`, ….
    pub fn dump_model_json(&self) -> Result<String> {
        self.raw.dump_model(0)
    }

    /// Predicts a dense row-major matrix with the whole model: one value per row, LightGBM's
    /// normal prediction (the raw score for `lambdarank` and regression, a probability for
    /// `binary`). Uses the training's `num_threads` (all cores for a loaded model).
    pub fn predict_dense<T: FeatureValue>(
        &self,
        rows: &[T],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<Vec<f64>> {
        self.raw
            .predict_mat(rows, n_rows, n_cols, 0, &self.predict_params)
    }

    /// Removes the trees after `iteration` and records it as the best iteration.
    pub(crate) fn keep_best(&mut self, iteration: usize) -> Result<()> {
        while self.iterations > iteration {
            self.raw.rollback_one_iter()?;
            let now = self.raw.current_iteration()?;
            if now >= self.iterations {
                return Err(Error::Usage(format!(
                    "rolling back to iteration {iteration}: LightGBM stayed at {now}"
                )));
            }
            self.iterations = now;
        }
        self.best_iteration = Some(iteration);
        Ok(())
    }

    /// `Some(n)` with `1 <= n <= iterations` → `n`; `None` → 0 (LightGBM's "all").
    fn check_iterations(&self, num_iteration: Option<usize>) -> Result<usize> {
        match num_iteration {
            None => Ok(0),
            Some(n) if (1..=self.iterations).contains(&n) => Ok(n),
            Some(n) => Err(Error::Usage(format!(
                "num_iteration {n}: the model has {} iteration(s)",
                self.iterations
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::higher_is_better;

    #[test]
    fn ranking_metrics_and_auc_are_maximised_losses_minimised() {
        for m in [
            "ndcg@1",
            "ndcg@10",
            "map@5",
            "auc",
            "auc_mu",
            "average_precision",
        ] {
            assert!(higher_is_better(m), "{m}");
        }
        for m in ["l2", "l1", "binary_logloss", "binary_error", "rmse", "ndcg"] {
            assert!(!higher_is_better(m), "{m}");
        }
    }
}
