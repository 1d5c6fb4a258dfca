//! The LTR trainer: LightGBM lambdarank on the learning-to-rank set, early stopping on a
//! validation period, NDCG on a later test period against the BM25 order, ONNX export.

use std::collections::BTreeMap;

use polars::prelude::*;
use quire_features::{FEATURE_NAMES, N_FEATURES, OnlineSnapshot, build_ltr};
use quire_lake::{DimTable, Lake};
use quire_lgbm::{Dataset, EarlyStopping, ImportanceType, TrainOptions};

use crate::config::{LtrConfig, TrainConfig};
use crate::metrics::mean_ndcg;
use crate::run::Trained;
use crate::{Error, Locations, Progress, Result, artifact};

/// Query groups of one split, row-major.
#[derive(Default)]
struct Split {
    x: Vec<f32>,
    y: Vec<f32>,
    groups: Vec<usize>,
}

impl Split {
    fn rows(&self) -> usize {
        self.y.len()
    }

    fn dataset(&self, params: &str, reference: Option<&Dataset>) -> Result<Dataset> {
        let groups: Vec<i32> = self.groups.iter().map(|&g| g as i32).collect();
        let mut d = Dataset::from_dense(
            &self.x,
            self.rows(),
            N_FEATURES,
            &self.y,
            Some(&groups),
            params,
            reference,
        )?;
        d.set_feature_names(&FEATURE_NAMES)?;
        Ok(d)
    }

    /// One feature column (the BM25 baseline's scores).
    fn column(&self, j: usize) -> Vec<f32> {
        self.x.chunks(N_FEATURES).map(|r| r[j]).collect()
    }
}

/// The LightGBM parameter string of a config.
pub(crate) fn lightgbm_params(l: &LtrConfig) -> String {
    let p = &l.lightgbm;
    let eval_at: Vec<String> = l.eval_at.iter().map(u32::to_string).collect();
    let mut s = format!(
        "objective=lambdarank metric=ndcg eval_at={} learning_rate={} num_leaves={} min_data_in_leaf={} \
         feature_fraction={} bagging_fraction={} bagging_freq={} lambda_l2={} max_bin={} seed={} \
         deterministic=true verbosity=-1",
        eval_at.join(","),
        p.learning_rate,
        p.num_leaves,
        p.min_data_in_leaf,
        p.feature_fraction,
        p.bagging_fraction,
        p.bagging_freq,
        p.lambda_l2,
        p.max_bin,
        p.seed,
    );
    if p.num_threads > 0 {
        s.push_str(&format!(" num_threads={}", p.num_threads));
    }
    for (k, v) in &p.extra {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

fn day_start_ms(d: chrono::NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

/// Splits the LTR rows by time into train / valid / test query groups. Only searches with at
/// least two results and at least one result acted on are kept: a group without a relevant
/// document teaches lambdarank nothing and NDCG scores it 1 whatever the order.
fn split_rows(rows: &DataFrame, l: &LtrConfig) -> Result<(Split, Split, Split, usize)> {
    let pe = |e: PolarsError| Error::Data(format!("reading the LTR rows: {e}"));
    let ids = rows.column("search_id").and_then(|c| c.str()).map_err(pe)?;
    let labels = rows.column("label").and_then(|c| c.i32()).map_err(pe)?;
    let cols: Vec<Vec<f32>> = FEATURE_NAMES
        .iter()
        .map(|n| {
            rows.column(n)
                .and_then(|c| c.f32())
                .map(|c| c.iter().map(|x| x.unwrap_or(f32::NAN)).collect())
        })
        .collect::<PolarsResult<_>>()
        .map_err(pe)?;
    // Contiguous groups (the rows are sorted by search time, then search id).
    let mut bounds = Vec::new();
    let mut start = 0;
    for r in 1..=rows.height() {
        if r == rows.height() || ids.get(r) != ids.get(start) {
            bounds.push((start, r));
            start = r;
        }
    }
    let total_searches = bounds.len();
    let kept: Vec<(usize, usize)> = bounds
        .into_iter()
        .filter(|&(a, b)| b - a >= 2 && (a..b).any(|r| labels.get(r).unwrap_or(0) > 0))
        .collect();
    let n = kept.len();
    let n_test = (n as f64 * l.test_fraction).round() as usize;
    let n_valid = ((n as f64 * l.valid_fraction).round() as usize).max(1);
    if n < n_test + n_valid + 1 || (l.test_fraction > 0.0 && n_test == 0) {
        return Err(Error::Data(format!(
            "only {n} of {total_searches} searches have a clicked, carted or bought result: \
             too few to split into train, validation and test (simulate or ingest more events)"
        )));
    }
    let mut splits = [Split::default(), Split::default(), Split::default()];
    for (g, &(a, b)) in kept.iter().enumerate() {
        let s = if g < n - n_test - n_valid {
            0
        } else if g < n - n_test {
            1
        } else {
            2
        };
        let split = &mut splits[s];
        for r in a..b {
            split.y.push(labels.get(r).unwrap_or(0) as f32);
            split.x.extend(cols.iter().map(|c| c[r]));
        }
        split.groups.push(b - a);
    }
    let [train, valid, test] = splits;
    Ok((train, valid, test, total_searches))
}

/// The lake and its events up to the config's `data.to` (inclusive). The LTR set keeps the
/// events before `data.from` too: they are the history its features are computed from.
pub(crate) fn lake_events(cfg: &TrainConfig, loc: &Locations) -> Result<(Lake, LazyFrame)> {
    let lake = Lake::open_existing(&loc.lake)?;
    let mut raw = lake.scan_events()?;
    if let Some(to) = cfg.data.to {
        let end = day_start_ms(to) + 86_400_000;
        raw = raw.filter(col("event_timestamp").cast(DataType::Int64).lt(lit(end)));
    }
    Ok((lake, raw))
}

/// The lake's events from `data.from` to `data.to`, both inclusive (the CF matrices, which
/// have no history before the window).
pub(crate) fn lake_events_in_window(cfg: &TrainConfig, loc: &Locations) -> Result<LazyFrame> {
    let (_, mut raw) = lake_events(cfg, loc)?;
    if let Some(from) = cfg.data.from {
        raw = raw.filter(
            col("event_timestamp")
                .cast(DataType::Int64)
                .gt_eq(lit(day_start_ms(from))),
        );
    }
    Ok(raw)
}

pub(crate) fn run(
    cfg: &TrainConfig,
    loc: &Locations,
    run_id: &str,
    progress: &dyn Progress,
) -> Result<Trained> {
    let Some(l) = cfg.ltr.as_ref() else {
        return Err(Error::Config("has no [ltr] table".into()));
    };
    progress.stage("features");
    let (lake, raw) = lake_events(cfg, loc)?;
    let books = lake.scan_dim(DimTable::Books)?;
    let out = build_ltr(raw, books)?;
    let mut rows = out.rows;
    if let Some(from) = cfg.data.from {
        rows = rows
            .lazy()
            .filter(
                col("search_ts")
                    .cast(DataType::Int64)
                    .gt_eq(lit(day_start_ms(from))),
            )
            .collect()
            .map_err(|e| Error::Data(format!("filtering the LTR rows by date: {e}")))?;
    }
    let features_dir = loc.lake.join("features");
    let mut to_write = rows.clone();
    quire_lake::write_parquet_atomic(&mut to_write, &features_dir.join("ltr_rows.parquet"))?;
    let snapshot = OnlineSnapshot::new(out.spec.clone(), out.tables, out.as_of_ms)
        .map_err(quire_features::Error::from)?;

    let (train, valid, test, searches) = split_rows(&rows, l)?;
    let params = lightgbm_params(l);
    progress.stage("train");
    let dtrain = train.dataset(&params, None)?;
    let dvalid = valid.dataset(&params, Some(&dtrain))?;
    let watch = format!("ndcg@{}", l.eval_at[0]);
    let mut history: Vec<(String, i64, f64)> = Vec::new();
    let rounds = u64::from(l.num_boost_round);
    let booster = quire_lgbm::train(
        &params,
        &dtrain,
        &[&dvalid],
        &TrainOptions {
            num_boost_round: l.num_boost_round as usize,
            early_stopping: Some(EarlyStopping {
                patience: l.early_stopping_rounds.max(1) as usize,
                metric: Some(watch.clone()),
            }),
        },
        |it| {
            for e in it.valid.first().into_iter().flatten() {
                history.push((
                    format!("valid_{}", metric_key(&e.name)),
                    it.iteration as i64,
                    e.value,
                ));
                if e.name == watch {
                    progress.iteration(it.iteration as u64, rounds, &e.name, e.value);
                }
            }
        },
    )?;
    let best = booster
        .best_iteration()
        .unwrap_or_else(|| booster.num_iterations());

    progress.stage("evaluate");
    let mut metrics: Vec<(String, f64)> = vec![("best_iteration".into(), best as f64)];
    let best_valid: BTreeMap<String, f64> = history
        .iter()
        .filter(|(_, step, _)| *step == best as i64)
        .map(|(k, _, v)| (k.clone(), *v))
        .collect();
    metrics.extend(best_valid);
    let mut summary = Vec::new();
    if test.rows() > 0 {
        let pred: Vec<f32> = booster
            .predict_dense(&test.x, test.rows(), N_FEATURES)?
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let bm25 = test.column(0);
        let mut cutoffs = l.eval_at.clone();
        cutoffs.sort_unstable();
        for k in cutoffs {
            let m = mean_ndcg(&test.y, &pred, &test.groups, k as usize);
            let b = mean_ndcg(&test.y, &bm25, &test.groups, k as usize);
            metrics.push((format!("test_ndcg_at_{k}"), m));
            metrics.push((format!("bm25_test_ndcg_at_{k}"), b));
            summary.push((
                format!("NDCG@{k} test: model / BM25"),
                format!("{m:.4} / {b:.4}"),
            ));
        }
    }
    let gain = booster.feature_importance(ImportanceType::Gain)?;
    let split = booster.feature_importance(ImportanceType::Split)?;
    let mut importance: Vec<(&str, f64, f64)> = FEATURE_NAMES
        .iter()
        .zip(gain.iter().zip(&split))
        .map(|(n, (g, s))| (*n, *g, *s))
        .collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = importance
        .iter()
        .take(5)
        .map(|(n, _, _)| (*n).to_string())
        .collect();
    summary.push(("Top features (gain)".into(), top.join(", ")));
    let importance_json = to_json(
        &importance
            .iter()
            .map(|(n, g, s)| serde_json::json!({"feature": n, "gain": g, "split": s}))
            .collect::<Vec<_>>(),
    )?;

    let model_text = booster.save_model_string(None)?;
    let onnx = quire_onnx::export(
        &booster.dump_model_json()?,
        &quire_onnx::ExportMeta {
            run_id: run_id.to_string(),
            model_name: cfg.model.clone(),
            model_version: None,
            extra: vec![
                (
                    "quire.features_version".into(),
                    snapshot.spec.version.clone(),
                ),
                ("quire.snapshot_version".into(), snapshot.version.clone()),
            ],
        },
    )?;
    let artifacts = vec![
        (artifact::LTR_MODEL.to_string(), model_text.into_bytes()),
        (artifact::LTR_ONNX.to_string(), onnx),
        (artifact::FEATURE_SPEC.to_string(), to_json(&snapshot.spec)?),
        (artifact::FEATURE_SNAPSHOT.to_string(), to_json(&snapshot)?),
        (artifact::FEATURE_IMPORTANCE.to_string(), importance_json),
    ];
    let params = vec![
        (
            "features.version".to_string(),
            snapshot.spec.version.clone(),
        ),
        (
            "features.snapshot_version".to_string(),
            snapshot.version.clone(),
        ),
        ("data.searches".to_string(), searches.to_string()),
        (
            "data.train_queries".to_string(),
            train.groups.len().to_string(),
        ),
        (
            "data.valid_queries".to_string(),
            valid.groups.len().to_string(),
        ),
        (
            "data.test_queries".to_string(),
            test.groups.len().to_string(),
        ),
        ("data.train_rows".to_string(), train.rows().to_string()),
        ("lightgbm.params".to_string(), params),
    ];
    Ok(Trained {
        metrics,
        history,
        params,
        artifacts,
        summary,
    })
}

/// `ndcg@5` → `ndcg_at_5` (MLflow metric keys allow no `@`).
fn metric_key(name: &str) -> String {
    name.replace('@', "_at_")
}

/// JSON bytes of an artifact.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Data(e.to_string()))
}
