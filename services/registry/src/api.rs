//! MLflow's REST API 2.0 (`/api/2.0/mlflow/…`) over the registry, plus Quire's extras under
//! `/api/2.0/quire/…`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::USER_AGENT;
use axum::routing::{get, patch, post};
use quire_registry::{
    Metric, ModelVersion, NewLoggedModel, NewModelVersion, NewRun, RunStatus, SearchLoggedModels,
    SearchRuns, ViewType,
};
use serde_json::{Value, json};

use crate::App;
use crate::conditions::{self, Condition, Op};
use crate::error::ApiError;
use crate::req::Fields;
use crate::shapes;

type St = State<Arc<App>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The routes under `/api/2.0/mlflow` and `/api/2.0/quire`.
pub fn routes() -> Router<Arc<App>> {
    let mlflow = Router::new()
        .route("/experiments/get-by-name", get(experiment_by_name))
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route(
            "/experiments/search",
            get(search_experiments).post(search_experiments),
        )
        .route("/experiments/delete", post(delete_experiment))
        .route("/experiments/restore", post(restore_experiment))
        .route("/experiments/set-experiment-tag", post(set_experiment_tag))
        .route(
            "/experiments/delete-experiment-tag",
            post(delete_experiment_tag),
        )
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/delete", post(delete_run))
        .route("/runs/restore", post(restore_run))
        .route("/runs/search", post(search_runs))
        .route("/runs/log-parameter", post(log_param))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/set-tag", post(set_tag))
        .route("/runs/delete-tag", post(delete_tag))
        .route("/runs/outputs", post(log_outputs))
        .route("/metrics/get-history", get(metric_history))
        .route("/logged-models", post(create_logged_model))
        .route("/logged-models/search", post(search_logged_models))
        .route(
            "/logged-models/{model_id}",
            get(get_logged_model)
                .patch(finalize_logged_model)
                .delete(delete_logged_model),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(set_logged_model_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{key}",
            axum::routing::delete(delete_logged_model_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(log_logged_model_params),
        )
        .route("/registered-models/create", post(create_registered_model))
        .route("/registered-models/get", get(get_registered_model))
        .route("/registered-models/search", get(search_registered_models))
        .route("/registered-models/update", patch(update_registered_model))
        .route(
            "/registered-models/delete",
            axum::routing::delete(delete_registered_model),
        )
        .route("/registered-models/set-tag", post(set_registered_model_tag))
        .route(
            "/registered-models/delete-tag",
            axum::routing::delete(delete_registered_model_tag),
        )
        .route(
            "/registered-models/alias",
            get(version_by_alias).post(set_alias).delete(delete_alias),
        )
        .route(
            "/registered-models/get-latest-versions",
            get(latest_versions).post(latest_versions),
        )
        .route("/model-versions/create", post(create_model_version))
        .route("/model-versions/get", get(get_model_version))
        .route("/model-versions/search", get(search_model_versions))
        .route("/model-versions/update", patch(update_model_version))
        .route(
            "/model-versions/delete",
            axum::routing::delete(delete_model_version),
        )
        .route("/model-versions/set-tag", post(set_model_version_tag))
        .route(
            "/model-versions/delete-tag",
            axum::routing::delete(delete_model_version_tag),
        )
        .route("/model-versions/get-download-uri", get(download_uri));
    let quire = Router::new()
        .route("/registered-models/alias-history", get(alias_history))
        .route(
            "/model-versions/artifact",
            get(crate::artifacts::version_artifact),
        );
    Router::new()
        .nest("/api/2.0/mlflow", mlflow)
        .nest("/api/2.0/quire", quire)
}

fn ok(v: Value) -> ApiResult {
    Ok(Json(v))
}

fn parse_id(what: &str, s: &str) -> Result<i64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::invalid(format!(
            "{what} {s:?} is not a valid id (a decimal integer)"
        ))
    })
}

fn view_type(f: &Fields, key: &str) -> Result<ViewType, ApiError> {
    Ok(match f.str(key)? {
        None | Some("ACTIVE_ONLY") => ViewType::ActiveOnly,
        Some("DELETED_ONLY") => ViewType::DeletedOnly,
        Some("ALL") => ViewType::All,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "{key} {other:?} is not ACTIVE_ONLY, DELETED_ONLY or ALL"
            )));
        }
    })
}

/// Who made a change, for the alias history: the client's `User-Agent`.
fn actor(headers: &HeaderMap) -> String {
    headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map_or_else(|| "rest-api".to_owned(), |s| format!("rest-api ({s})"))
}

/// One page of an in-memory list: the page token is an offset.
fn page<T>(
    items: Vec<T>,
    f: &Fields,
    default_max: i64,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match f.i64("max_results")? {
        None | Some(0) => default_max,
        Some(n) if n > 0 => n,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "max_results {n} must be positive"
            )));
        }
    };
    let offset = match f.str("page_token")? {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("invalid page token {t:?}")))?,
    };
    let total = items.len();
    let end = offset.saturating_add(max as usize).min(total);
    let items: Vec<T> = items
        .into_iter()
        .skip(offset)
        .take(end.saturating_sub(offset))
        .collect();
    Ok((items, (end < total).then(|| end.to_string())))
}

/// Sorts by `order_by` clauses (`field [ASC|DESC]`) over the given sort keys; unknown fields
/// are refused.
fn sort_by_clauses<T>(
    items: &mut [T],
    order_by: &[String],
    key: impl Fn(&T, &str) -> Option<SortKey>,
) -> Result<(), ApiError> {
    let mut clauses = Vec::new();
    for clause in order_by {
        let mut parts = clause.split_whitespace();
        let field = parts.next().unwrap_or_default().to_owned();
        let desc = match parts.next().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "order_by {clause:?}: expected ASC or DESC, found {other:?}"
                )));
            }
        };
        if let Some(first) = items.first()
            && key(first, &field).is_none()
        {
            return Err(ApiError::invalid(format!(
                "order_by {clause:?}: cannot order by {field:?}"
            )));
        }
        clauses.push((field, desc));
    }
    items.sort_by(|a, b| {
        for (field, desc) in &clauses {
            let o = key(a, field).cmp(&key(b, field));
            let o = if *desc { o.reverse() } else { o };
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Int(i64),
    Text(String),
}

fn check_all(conds: &[Condition], get: impl Fn(&str) -> Option<String>) -> bool {
    conds.iter().all(|c| c.matches(get(&c.field).as_deref()))
}

// ---- experiments ----

async fn experiment_by_name(State(app): St, f: Fields) -> ApiResult {
    let e = app
        .registry
        .get_experiment_by_name(f.required("experiment_name")?)
        .await?;
    ok(json!({"experiment": shapes::experiment(&e)}))
}

async fn create_experiment(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    let location = f.str("artifact_location")?.filter(|s| !s.is_empty());
    let tags = f.pairs("tags")?;
    let id = app.registry.create_experiment(name, location).await?;
    for (k, v) in &tags {
        app.registry.set_experiment_tag(id, k, v).await?;
    }
    ok(json!({"experiment_id": id.to_string()}))
}

async fn get_experiment(State(app): St, f: Fields) -> ApiResult {
    let id = parse_id("experiment_id", f.required("experiment_id")?)?;
    let e = app.registry.get_experiment(id).await?;
    ok(json!({"experiment": shapes::experiment(&e)}))
}

async fn search_experiments(State(app): St, f: Fields) -> ApiResult {
    let conds = conditions::parse(f.str("filter")?.unwrap_or(""), &["name"], true)?;
    let mut found: Vec<_> = app
        .registry
        .search_experiments(None, view_type(&f, "view_type")?)
        .await?
        .into_iter()
        .filter(|e| {
            check_all(&conds, |field| match field.strip_prefix("tags.") {
                Some(k) => e.tags.get(k).cloned(),
                None => Some(e.name.clone()),
            })
        })
        .collect();
    let mut order = f.strings("order_by")?;
    if order.is_empty() {
        order = vec!["last_update_time DESC".into(), "experiment_id DESC".into()];
    }
    sort_by_clauses(&mut found, &order, |e, field| {
        Some(match field {
            "name" => SortKey::Text(e.name.clone()),
            "experiment_id" => SortKey::Int(e.experiment_id),
            "creation_time" => SortKey::Int(e.creation_time),
            "last_update_time" => SortKey::Int(e.last_update_time),
            _ => return None,
        })
    })?;
    let (items, token) = page(found, &f, 1000)?;
    let v = json!({"experiments": items.iter().map(shapes::experiment).collect::<Vec<_>>()});
    ok(shapes::with_token(v, token))
}

async fn delete_experiment(State(app): St, f: Fields) -> ApiResult {
    let id = parse_id("experiment_id", f.required("experiment_id")?)?;
    app.registry.set_experiment_lifecycle(id, true).await?;
    ok(json!({}))
}

async fn restore_experiment(State(app): St, f: Fields) -> ApiResult {
    let id = parse_id("experiment_id", f.required("experiment_id")?)?;
    app.registry.set_experiment_lifecycle(id, false).await?;
    ok(json!({}))
}

async fn set_experiment_tag(State(app): St, f: Fields) -> ApiResult {
    let id = parse_id("experiment_id", f.required("experiment_id")?)?;
    app.registry.get_experiment(id).await?;
    app.registry
        .set_experiment_tag(id, f.required("key")?, f.str("value")?.unwrap_or(""))
        .await?;
    ok(json!({}))
}

async fn delete_experiment_tag(State(app): St, f: Fields) -> ApiResult {
    let id = parse_id("experiment_id", f.required("experiment_id")?)?;
    app.registry
        .delete_experiment_tag(id, f.required("key")?)
        .await?;
    ok(json!({}))
}

// ---- runs ----

const RUN_ID: &[&str] = &["run_id", "run_uuid"];

async fn run_json(app: &App, run_id: &str) -> Result<Value, ApiError> {
    let run = app.registry.get_run(run_id).await?;
    let outputs = app.registry.run_outputs(&[run_id.to_owned()]).await?;
    Ok(shapes::run(
        &run,
        outputs.get(run_id).map_or(&[], Vec::as_slice),
    ))
}

async fn create_run(State(app): St, f: Fields) -> ApiResult {
    let experiment_id = parse_id("experiment_id", f.str("experiment_id")?.unwrap_or("0"))?;
    let tags = f.pairs("tags")?;
    let run_name = match f.str("run_name")?.filter(|s| !s.is_empty()) {
        Some(n) => n.to_owned(),
        None => tags
            .iter()
            .find(|(k, _)| k == "mlflow.runName")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    };
    let user_id = match f.str("user_id")?.filter(|s| !s.is_empty()) {
        Some(u) => u.to_owned(),
        None => tags
            .iter()
            .find(|(k, _)| k == "mlflow.user")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    };
    let tags = tags
        .into_iter()
        .filter(|(k, _)| k != "mlflow.runName")
        .collect();
    let run = app
        .registry
        .create_run(NewRun {
            experiment_id,
            run_name,
            user_id,
            start_time: f.i64("start_time")?,
            tags,
            source_config: None,
            git_commit: None,
        })
        .await?;
    ok(json!({"run": shapes::run(&run, &[])}))
}

async fn get_run(State(app): St, f: Fields) -> ApiResult {
    let run = run_json(&app, f.required_any(RUN_ID)?).await?;
    ok(json!({"run": run}))
}

async fn update_run(State(app): St, f: Fields) -> ApiResult {
    let run_id = f.required_any(RUN_ID)?;
    let status: RunStatus = match f.str("status")? {
        Some(s) if !s.is_empty() => s.parse()?,
        _ => app.registry.get_run(run_id).await?.info.status,
    };
    let run_name = f.str("run_name")?.filter(|s| !s.is_empty());
    let info = app
        .registry
        .update_run(run_id, status, f.i64("end_time")?, run_name)
        .await?;
    ok(json!({"run_info": shapes::run_info(&info)}))
}

async fn delete_run(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .set_run_lifecycle(f.required_any(RUN_ID)?, true)
        .await?;
    ok(json!({}))
}

async fn restore_run(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .set_run_lifecycle(f.required_any(RUN_ID)?, false)
        .await?;
    ok(json!({}))
}

fn metric_of(f: &Fields) -> Result<Metric, ApiError> {
    Ok(Metric {
        key: f.required("key")?.to_owned(),
        value: f.required_f64("value")?,
        timestamp: f
            .i64("timestamp")?
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        step: f.i64("step")?.unwrap_or(0),
    })
}

async fn log_param(State(app): St, f: Fields) -> ApiResult {
    let kv = (
        f.required("key")?.to_owned(),
        f.str("value")?.unwrap_or("").to_owned(),
    );
    app.registry
        .log_params(f.required_any(RUN_ID)?, &[kv])
        .await?;
    ok(json!({}))
}

async fn log_metric(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .log_metric(f.required_any(RUN_ID)?, &metric_of(&f)?)
        .await?;
    ok(json!({}))
}

async fn log_batch(State(app): St, f: Fields) -> ApiResult {
    let metrics = f
        .objects("metrics")?
        .iter()
        .map(metric_of)
        .collect::<Result<Vec<_>, _>>()?;
    app.registry
        .log_batch(
            f.required_any(RUN_ID)?,
            &metrics,
            &f.pairs("params")?,
            &f.pairs("tags")?,
        )
        .await?;
    ok(json!({}))
}

async fn set_tag(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .set_tag(
            f.required_any(RUN_ID)?,
            f.required("key")?,
            f.str("value")?.unwrap_or(""),
        )
        .await?;
    ok(json!({}))
}

async fn delete_tag(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .delete_tag(f.required_any(RUN_ID)?, f.required("key")?)
        .await?;
    ok(json!({}))
}

async fn log_outputs(State(app): St, f: Fields) -> ApiResult {
    let outputs = f
        .objects("models")?
        .iter()
        .map(|m| {
            Ok((
                m.required("model_id")?.to_owned(),
                m.i64("step")?.unwrap_or(0),
            ))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    app.registry
        .log_run_outputs(f.required_any(RUN_ID)?, &outputs)
        .await?;
    ok(json!({}))
}

async fn search_runs(State(app): St, f: Fields) -> ApiResult {
    let experiment_ids = f
        .strings("experiment_ids")?
        .iter()
        .map(|s| parse_id("experiment_id", s))
        .collect::<Result<Vec<_>, _>>()?;
    let page = app
        .registry
        .search_runs(&SearchRuns {
            experiment_ids,
            filter: f.str("filter")?.unwrap_or("").to_owned(),
            order_by: f.strings("order_by")?,
            max_results: f.i64("max_results")?.unwrap_or(0),
            page_token: f.str("page_token")?.map(str::to_owned),
            view: view_type(&f, "run_view_type")?,
        })
        .await?;
    let ids: Vec<String> = page.runs.iter().map(|r| r.info.run_id.clone()).collect();
    let outputs = app.registry.run_outputs(&ids).await?;
    let runs: Vec<Value> = page
        .runs
        .iter()
        .map(|r| shapes::run(r, outputs.get(&r.info.run_id).map_or(&[], Vec::as_slice)))
        .collect();
    let v = if runs.is_empty() {
        json!({})
    } else {
        json!({"runs": runs})
    };
    ok(shapes::with_token(v, page.next_page_token))
}

async fn metric_history(State(app): St, f: Fields) -> ApiResult {
    let history = app
        .registry
        .get_metric_history(f.required_any(RUN_ID)?, f.required("metric_key")?)
        .await?;
    let (items, token) = page(history, &f, 25_000)?;
    let v = json!({"metrics": items.iter().map(shapes::metric).collect::<Vec<_>>()});
    ok(shapes::with_token(v, token))
}

// ---- logged models ----

async fn create_logged_model(State(app): St, f: Fields) -> ApiResult {
    let experiment_id = parse_id("experiment_id", f.required("experiment_id")?)?;
    let model = app
        .registry
        .create_logged_model(&NewLoggedModel {
            experiment_id,
            name: f.str("name")?.unwrap_or("").to_owned(),
            model_type: f.str("model_type")?.unwrap_or("").to_owned(),
            source_run_id: f
                .str("source_run_id")?
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            params: f.pairs("params")?,
            tags: f.pairs("tags")?,
        })
        .await?;
    ok(json!({"model": shapes::logged_model(&model)}))
}

async fn get_logged_model(State(app): St, Path(id): Path<String>) -> ApiResult {
    let model = app.registry.get_logged_model(&id).await?;
    ok(json!({"model": shapes::logged_model(&model)}))
}

async fn finalize_logged_model(State(app): St, Path(id): Path<String>, f: Fields) -> ApiResult {
    let model = app
        .registry
        .finalize_logged_model(&id, f.required("status")?)
        .await?;
    ok(json!({"model": shapes::logged_model(&model)}))
}

async fn delete_logged_model(State(app): St, Path(id): Path<String>) -> ApiResult {
    app.registry.delete_logged_model(&id).await?;
    ok(json!({}))
}

async fn set_logged_model_tags(State(app): St, Path(id): Path<String>, f: Fields) -> ApiResult {
    app.registry
        .set_logged_model_tags(&id, &f.pairs("tags")?)
        .await?;
    let model = app.registry.get_logged_model(&id).await?;
    ok(json!({"model": shapes::logged_model(&model)}))
}

async fn delete_logged_model_tag(
    State(app): St,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    app.registry.delete_logged_model_tag(&id, &key).await?;
    ok(json!({}))
}

async fn log_logged_model_params(State(app): St, Path(id): Path<String>, f: Fields) -> ApiResult {
    app.registry
        .log_logged_model_params(&id, &f.pairs("params")?)
        .await?;
    ok(json!({}))
}

async fn search_logged_models(State(app): St, f: Fields) -> ApiResult {
    let conds = conditions::parse(
        f.str("filter")?.unwrap_or(""),
        &["name", "source_run_id", "model_type", "status"],
        false,
    )?;
    let mut search = SearchLoggedModels {
        experiment_ids: f
            .strings("experiment_ids")?
            .iter()
            .map(|s| parse_id("experiment_id", s))
            .collect::<Result<_, _>>()?,
        max_results: f.i64("max_results")?.unwrap_or(0),
        page_token: f.str("page_token")?.map(str::to_owned),
        ..SearchLoggedModels::default()
    };
    for c in conds {
        if c.op != Op::Eq {
            return Err(ApiError::invalid(format!(
                "logged models are searched with = only (field {:?})",
                c.field
            )));
        }
        let slot = match c.field.as_str() {
            "name" => &mut search.name,
            "source_run_id" => &mut search.source_run_id,
            "model_type" => &mut search.model_type,
            _ => &mut search.status,
        };
        *slot = Some(c.value);
    }
    let (models, token) = app.registry.search_logged_models(&search).await?;
    // Proto3 JSON leaves out an empty list: no models answers `{}`.
    let v = if models.is_empty() {
        json!({})
    } else {
        json!({"models": models.iter().map(shapes::logged_model).collect::<Vec<_>>()})
    };
    ok(shapes::with_token(v, token))
}

// ---- registered models ----

async fn version_json(app: &App, name: &str, version: i64) -> Result<Value, ApiError> {
    let mv = app.registry.get_model_version(name, version).await?;
    version_value(app, &mv).await
}

/// `mv` as MLflow's `ModelVersion` (with the logged model it came from, if any).
async fn version_value(app: &App, mv: &ModelVersion) -> Result<Value, ApiError> {
    let ids = app.registry.model_version_model_ids(&mv.name).await?;
    Ok(shapes::model_version(
        mv,
        ids.get(&mv.version).map(String::as_str),
    ))
}

async fn model_json(app: &App, name: &str) -> Result<Value, ApiError> {
    let m = app.registry.get_registered_model(name).await?;
    let latest = app
        .registry
        .search_model_versions(Some(name), None)
        .await?
        .into_iter()
        .max_by_key(|v| v.version);
    let ids = app.registry.model_version_model_ids(name).await?;
    let latest = latest.map(|v| shapes::model_version(&v, ids.get(&v.version).map(String::as_str)));
    Ok(shapes::registered_model(&m, latest))
}

async fn create_registered_model(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    let tags = f.pairs("tags")?;
    app.registry
        .create_registered_model(name, f.str("description")?.unwrap_or(""))
        .await?;
    for (k, v) in &tags {
        app.registry.set_registered_model_tag(name, k, v).await?;
    }
    ok(json!({"registered_model": model_json(&app, name).await?}))
}

async fn get_registered_model(State(app): St, f: Fields) -> ApiResult {
    ok(json!({"registered_model": model_json(&app, f.required("name")?).await?}))
}

async fn search_registered_models(State(app): St, f: Fields) -> ApiResult {
    let conds = conditions::parse(f.str("filter")?.unwrap_or(""), &["name"], true)?;
    let mut found: Vec<_> = app
        .registry
        .search_registered_models(None)
        .await?
        .into_iter()
        .filter(|m| {
            check_all(&conds, |field| match field.strip_prefix("tags.") {
                Some(k) => m.tags.get(k).cloned(),
                None => Some(m.name.clone()),
            })
        })
        .collect();
    sort_by_clauses(&mut found, &f.strings("order_by")?, |m, field| {
        Some(match field {
            "name" => SortKey::Text(m.name.clone()),
            "timestamp" | "last_updated_timestamp" => SortKey::Int(m.last_updated_time),
            "creation_timestamp" => SortKey::Int(m.creation_time),
            _ => return None,
        })
    })?;
    let (items, token) = page(found, &f, 100)?;
    let mut models = Vec::with_capacity(items.len());
    for m in &items {
        models.push(model_json(&app, &m.name).await?);
    }
    let v = if models.is_empty() {
        json!({})
    } else {
        json!({"registered_models": models})
    };
    ok(shapes::with_token(v, token))
}

async fn update_registered_model(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    app.registry
        .update_registered_model(name, f.str("description")?.unwrap_or(""))
        .await?;
    ok(json!({"registered_model": model_json(&app, name).await?}))
}

async fn delete_registered_model(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .delete_registered_model(f.required("name")?)
        .await?;
    ok(json!({}))
}

async fn set_registered_model_tag(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .set_registered_model_tag(
            f.required("name")?,
            f.required("key")?,
            f.str("value")?.unwrap_or(""),
        )
        .await?;
    ok(json!({}))
}

async fn delete_registered_model_tag(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .delete_registered_model_tag(f.required("name")?, f.required("key")?)
        .await?;
    ok(json!({}))
}

fn version_of(f: &Fields) -> Result<i64, ApiError> {
    let v = f.required("version")?;
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::invalid(format!("version {v:?} is not a positive integer")))
}

async fn set_alias(State(app): St, headers: HeaderMap, f: Fields) -> ApiResult {
    app.registry
        .set_alias(
            f.required("name")?,
            f.required("alias")?,
            version_of(&f)?,
            &actor(&headers),
        )
        .await?;
    ok(json!({}))
}

async fn delete_alias(State(app): St, headers: HeaderMap, f: Fields) -> ApiResult {
    app.registry
        .delete_alias(f.required("name")?, f.required("alias")?, &actor(&headers))
        .await?;
    ok(json!({}))
}

async fn version_by_alias(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    let mv = app
        .registry
        .get_version_by_alias(name, f.required("alias")?)
        .await?;
    // The version as read with its alias, not read again: it may be deleted by now.
    ok(json!({"model_version": version_value(&app, &mv).await?}))
}

async fn latest_versions(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    app.registry.get_registered_model(name).await?;
    let stages = f.strings("stages")?;
    let latest = app
        .registry
        .search_model_versions(Some(name), None)
        .await?
        .into_iter()
        .max_by_key(|v| v.version);
    // Versions have no stages here (MLflow deprecated them): all are in stage "None".
    let wanted = stages.is_empty() || stages.iter().any(|s| s.eq_ignore_ascii_case("none"));
    let mut versions = Vec::new();
    if let Some(v) = latest.filter(|_| wanted) {
        versions.push(version_json(&app, name, v.version).await?);
    }
    ok(json!({"model_versions": versions}))
}

/// Where a model version's files are, as an `mlflow-artifacts:` URI the client downloads
/// through the proxy: the source itself, or the logged model's location for `models:/<id>`.
async fn resolve_source(app: &App, source: &str) -> Result<Option<String>, ApiError> {
    if source.starts_with("mlflow-artifacts:") {
        return Ok(Some(source.to_owned()));
    }
    if let Some(id) = source
        .strip_prefix("models:/")
        .filter(|id| id.starts_with("m-"))
    {
        return Ok(Some(app.registry.get_logged_model(id).await?.artifact_uri));
    }
    Ok(None)
}

async fn create_model_version(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    let source = f.required("source")?;
    let run_id = f
        .str("run_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let mut model_id = f
        .str("model_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if model_id.is_none() {
        model_id = source
            .strip_prefix("models:/")
            .filter(|id| id.starts_with("m-"))
            .map(str::to_owned);
    }
    // The version records every file under its source with its digest, so downloads of it
    // are verified like those of Quire's own trainers.
    let artifacts = match resolve_source(&app, source).await? {
        Some(uri) => crate::artifacts::files_under(&app, &uri).await?,
        None => Vec::new(),
    };
    let mv = app
        .registry
        .create_model_version(&NewModelVersion {
            name: name.to_owned(),
            source: source.to_owned(),
            run_id,
            description: f.str("description")?.unwrap_or("").to_owned(),
            artifacts,
            model_id,
            tags: f.pairs("tags")?,
        })
        .await?;
    ok(json!({"model_version": version_json(&app, name, mv.version).await?}))
}

async fn get_model_version(State(app): St, f: Fields) -> ApiResult {
    ok(json!({"model_version": version_json(&app, f.required("name")?, version_of(&f)?).await?}))
}

async fn search_model_versions(State(app): St, f: Fields) -> ApiResult {
    let conds = conditions::parse(
        f.str("filter")?.unwrap_or(""),
        &["name", "run_id", "source_path", "version_number"],
        true,
    )?;
    let exact = |field: &str| {
        conds
            .iter()
            .find(|c| c.field == field && c.op == Op::Eq)
            .map(|c| c.value.clone())
    };
    let (name, run_id) = (exact("name"), exact("run_id"));
    let mut found: Vec<_> = app
        .registry
        .search_model_versions(name.as_deref(), run_id.as_deref())
        .await?
        .into_iter()
        .filter(|v| {
            check_all(&conds, |field| match field.strip_prefix("tags.") {
                Some(k) => v.tags.get(k).cloned(),
                None => match field {
                    "name" => Some(v.name.clone()),
                    "run_id" => v.run_id.clone(),
                    "source_path" => Some(v.source.clone()),
                    _ => Some(v.version.to_string()),
                },
            })
        })
        .collect();
    let mut order = f.strings("order_by")?;
    if order.is_empty() {
        order = vec!["name ASC".into(), "version_number DESC".into()];
    }
    sort_by_clauses(&mut found, &order, |v, field| {
        Some(match field {
            "name" => SortKey::Text(v.name.clone()),
            "version_number" => SortKey::Int(v.version),
            "creation_timestamp" => SortKey::Int(v.creation_time),
            "last_updated_timestamp" => SortKey::Int(v.last_updated_time),
            _ => return None,
        })
    })?;
    let (items, token) = page(found, &f, 10_000)?;
    let mut ids: BTreeMap<String, std::collections::HashMap<i64, String>> = BTreeMap::new();
    let mut versions = Vec::with_capacity(items.len());
    for v in &items {
        if !ids.contains_key(&v.name) {
            let m = app.registry.model_version_model_ids(&v.name).await?;
            ids.insert(v.name.clone(), m);
        }
        let id = ids.get(&v.name).and_then(|m| m.get(&v.version));
        versions.push(shapes::model_version(v, id.map(String::as_str)));
    }
    let v = if versions.is_empty() {
        json!({})
    } else {
        json!({"model_versions": versions})
    };
    ok(shapes::with_token(v, token))
}

async fn update_model_version(State(app): St, f: Fields) -> ApiResult {
    let (name, version) = (f.required("name")?, version_of(&f)?);
    app.registry
        .update_model_version(name, version, f.str("description")?.unwrap_or(""))
        .await?;
    ok(json!({"model_version": version_json(&app, name, version).await?}))
}

async fn delete_model_version(State(app): St, headers: HeaderMap, f: Fields) -> ApiResult {
    app.registry
        .delete_model_version(f.required("name")?, version_of(&f)?, &actor(&headers))
        .await?;
    ok(json!({}))
}

async fn set_model_version_tag(State(app): St, f: Fields) -> ApiResult {
    let (name, version) = (f.required("name")?, version_of(&f)?);
    app.registry.get_model_version(name, version).await?;
    app.registry
        .set_model_version_tag(
            name,
            version,
            f.required("key")?,
            f.str("value")?.unwrap_or(""),
        )
        .await?;
    ok(json!({}))
}

async fn delete_model_version_tag(State(app): St, f: Fields) -> ApiResult {
    app.registry
        .delete_model_version_tag(f.required("name")?, version_of(&f)?, f.required("key")?)
        .await?;
    ok(json!({}))
}

async fn download_uri(State(app): St, f: Fields) -> ApiResult {
    let (name, version) = (f.required("name")?, version_of(&f)?);
    let mv = app.registry.get_model_version(name, version).await?;
    let uri = match resolve_source(&app, &mv.source).await? {
        Some(uri) => uri,
        // A version Quire's trainers registered: its files are served from the version.
        None => crate::artifacts::version_uri(name, version),
    };
    ok(json!({"artifact_uri": uri}))
}

// ---- Quire's extras ----

async fn alias_history(State(app): St, f: Fields) -> ApiResult {
    let name = f.required("name")?;
    app.registry.get_registered_model(name).await?;
    let moves = app
        .registry
        .alias_history(name, f.required("alias")?)
        .await?;
    ok(json!({"moves": moves.iter().map(shapes::alias_move).collect::<Vec<_>>()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Fields {
        match v {
            Value::Object(m) => Fields::from_map(m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn pages_are_offsets_and_the_last_has_no_token() {
        let items: Vec<i32> = (0..5).collect();
        let (p, t) = page(items.clone(), &fields(json!({"max_results": 2})), 100).unwrap();
        assert_eq!((p, t.as_deref()), (vec![0, 1], Some("2")));
        let (p, t) = page(
            items.clone(),
            &fields(json!({"max_results": "2", "page_token": "4"})),
            100,
        )
        .unwrap();
        assert_eq!((p, t), (vec![4], None));
        let (p, t) = page(items.clone(), &fields(json!({})), 100).unwrap();
        assert_eq!((p.len(), t), (5, None));
        assert!(page(items.clone(), &fields(json!({"page_token": "x"})), 100).is_err());
        assert!(page(items, &fields(json!({"max_results": -1})), 100).is_err());
    }

    #[test]
    fn sorting_follows_clauses_and_refuses_unknown_fields() {
        let mut v = vec![("b", 1), ("a", 2), ("c", 2)];
        let key = |x: &(&str, i64), f: &str| match f {
            "name" => Some(SortKey::Text(x.0.into())),
            "n" => Some(SortKey::Int(x.1)),
            _ => None,
        };
        sort_by_clauses(&mut v, &["n DESC".into(), "name".into()], key).unwrap();
        assert_eq!(v, [("a", 2), ("c", 2), ("b", 1)]);
        assert!(sort_by_clauses(&mut v, &["owner".into()], key).is_err());
        assert!(sort_by_clauses(&mut v, &["name SIDEWAYS".into()], key).is_err());
    }
}
