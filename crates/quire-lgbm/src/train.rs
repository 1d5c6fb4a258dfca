//! The training loop: boosting rounds, evaluation, early stopping, a per-iteration callback.

use crate::booster::{Booster, Eval, higher_is_better};
use crate::dataset::Dataset;
use crate::params::{Params, TRAINING_METRIC};
use crate::{Error, Result};

/// How long to train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Boosting rounds at most (LightGBM's `num_boost_round`).
    pub num_boost_round: usize,
    /// Stop when the validation metric has not improved for a while, and keep the best model.
    pub early_stopping: Option<EarlyStopping>,
}

/// Early stopping on one metric of the first validation set, as LightGBM's Python
/// `early_stopping` callback does it: a strictly better value is an improvement; training stops
/// once `patience` rounds passed without one. At the end (stopped or not) the model is cut back
/// to the best iteration, which [`Booster::best_iteration`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyStopping {
    /// Rounds without improvement before stopping (≥ 1).
    pub patience: usize,
    /// The metric watched, e.g. `ndcg@5`; `None` = the first one. LightGBM sorts `eval_at`, so
    /// with `metric=ndcg eval_at=1,3,5` the first is `ndcg@1`.
    pub metric: Option<String>,
}

/// What the callback of [`train`] sees after each iteration.
#[derive(Debug)]
pub struct IterationReport<'a> {
    /// Iterations done so far (1 after the first).
    pub iteration: usize,
    /// Metrics on the training data, evaluated only when the parameters say
    /// `is_provide_training_metric=true` (it costs a pass over the training data); else empty.
    pub train: &'a [Eval],
    /// Metrics on each validation set, in the order given.
    pub valid: &'a [Vec<Eval>],
    /// The best iteration so far, when early stopping is on.
    pub best_iteration: Option<usize>,
}

/// Trains a booster: up to `num_boost_round` iterations on `train`, evaluating every
/// validation set after each (they must have been built with `train` as reference), calling
/// `on_iteration` with the metrics (progress bars, metric history), and stopping early if asked.
///
/// Stops before `num_boost_round` also when LightGBM finds no split to make.
pub fn train(
    params: &str,
    train: &Dataset,
    valid: &[&Dataset],
    options: &TrainOptions,
    mut on_iteration: impl FnMut(&IterationReport<'_>),
) -> Result<Booster> {
    let mut booster = Booster::new(train, params)?;
    let training_metrics = Params::parse(params)?.flag(TRAINING_METRIC);
    for v in valid {
        booster.add_valid(v)?;
    }
    let watch = match &options.early_stopping {
        Some(es) => Some(Watch::new(es, booster.eval_names(), valid.len())?),
        None => None,
    };
    let mut best: Option<(usize, f64)> = None;
    for _ in 0..options.num_boost_round {
        if booster.update_one_iter()? {
            break;
        }
        let iteration = booster.num_iterations();
        let train_evals = if training_metrics {
            booster.eval(0)?
        } else {
            Vec::new()
        };
        let valid_evals = (1..=valid.len())
            .map(|i| booster.eval(i))
            .collect::<Result<Vec<_>>>()?;
        if let Some(w) = &watch {
            let value = valid_evals
                .first()
                .and_then(|v| v.get(w.index))
                .ok_or_else(|| Error::Usage("the watched metric was not evaluated".to_string()))?
                .value;
            if best.is_none_or(|(_, b)| w.improves(value, b)) {
                best = Some((iteration, value));
            }
        }
        on_iteration(&IterationReport {
            iteration,
            train: &train_evals,
            valid: &valid_evals,
            best_iteration: best.map(|(i, _)| i),
        });
        if let (Some(w), Some((best_iteration, _))) = (&watch, best)
            && iteration - best_iteration >= w.patience
        {
            break;
        }
    }
    if let Some((best_iteration, _)) = best {
        booster.keep_best(best_iteration)?;
    }
    Ok(booster)
}

/// The metric early stopping watches.
struct Watch {
    index: usize,
    higher_is_better: bool,
    patience: usize,
}

impl Watch {
    fn new(es: &EarlyStopping, names: &[String], n_valid: usize) -> Result<Self> {
        if n_valid == 0 {
            return Err(Error::Usage(
                "early stopping needs at least one validation set".to_string(),
            ));
        }
        if es.patience == 0 {
            return Err(Error::Usage(
                "early stopping patience must be at least 1".to_string(),
            ));
        }
        let index = match &es.metric {
            None if names.is_empty() => {
                return Err(Error::Usage(
                    "early stopping needs a metric; the parameters set none".to_string(),
                ));
            }
            None => 0,
            Some(m) => names.iter().position(|n| n == m).ok_or_else(|| {
                Error::Usage(format!(
                    "early stopping metric {m:?} is not evaluated; the metrics are {names:?}"
                ))
            })?,
        };
        Ok(Self {
            index,
            higher_is_better: higher_is_better(&names[index]),
            patience: es.patience,
        })
    }

    /// Strictly better than `best` (NaN never is).
    fn improves(&self, value: f64, best: f64) -> bool {
        if self.higher_is_better {
            value > best
        } else {
            value < best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["ndcg@1", "ndcg@3", "ndcg@5"].map(String::from).to_vec()
    }

    fn es(patience: usize, metric: Option<&str>) -> EarlyStopping {
        EarlyStopping {
            patience,
            metric: metric.map(String::from),
        }
    }

    #[test]
    fn watch_picks_the_first_or_the_named_metric() {
        let w = Watch::new(&es(3, None), &names(), 1).unwrap();
        assert_eq!((w.index, w.higher_is_better, w.patience), (0, true, 3));
        let w = Watch::new(&es(3, Some("ndcg@5")), &names(), 1).unwrap();
        assert_eq!(w.index, 2);
        assert!(w.improves(0.5, 0.4) && !w.improves(0.4, 0.4) && !w.improves(f64::NAN, 0.4));
        let w = Watch::new(&es(1, None), &["l2".to_string()], 2).unwrap();
        assert!(w.improves(0.3, 0.4) && !w.improves(0.4, 0.4));
    }

    #[test]
    fn watch_refuses_what_cannot_work() {
        let msg = |r: Result<Watch>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(Watch::new(&es(3, None), &names(), 0)).contains("validation set"));
        assert!(msg(Watch::new(&es(0, None), &names(), 1)).contains("at least 1"));
        assert!(msg(Watch::new(&es(3, None), &[], 1)).contains("needs a metric"));
        assert!(msg(Watch::new(&es(3, Some("ndcg@10")), &names(), 1)).contains("\"ndcg@10\""));
    }
}
