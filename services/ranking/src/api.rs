//! The HTTP layer: state, routes, the `/v1` and health handlers, and [`ApiError`], the one place
//! `/v1` errors become responses.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwapOption;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tracing::{debug, error, info};

use crate::RankingOptions;
use crate::metrics::{EndpointLabels, ErrorLabels, Metrics, StatusLabels};
use crate::model::{Scoring, ServedModel};
use crate::oip;
use crate::rank::{self, Answer, Refusal};
use crate::scoring::ScoringPool;

/// The request-id header, read and written.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    /// The version served; `None` until one loads. Requests take their own `Arc`.
    pub model: ArcSwapOption<ServedModel>,
    /// The registered model name (the `/v2/models/{name}` the service answers to).
    pub name: String,
    /// Most candidates (rows) per request.
    pub max_candidates: usize,
    /// Most request body bytes.
    pub max_body_bytes: usize,
    /// The scoring threads, one per ONNX Runtime session: requests scored at once; the rest
    /// wait in its queue.
    pub scoring: ScoringPool,
    pub metrics: Metrics,
}

impl AppState {
    /// # Errors
    /// When the scoring threads cannot be started.
    pub fn new(opts: &RankingOptions) -> std::io::Result<Self> {
        let metrics = Metrics::new();
        Ok(Self {
            model: ArcSwapOption::empty(),
            name: opts.model.name.clone(),
            max_candidates: opts.max_candidates,
            max_body_bytes: opts.max_body_bytes,
            scoring: ScoringPool::new(
                opts.session_pool,
                std::thread::available_parallelism().map_or(1, usize::from),
                opts.split_min_rows,
                &metrics,
            )?,
            metrics,
        })
    }

    /// Runs `work` on the served model on a scoring thread.
    pub async fn on_model<T, F>(&self, work: F) -> Result<T, Refusal>
    where
        T: Send + 'static,
        F: FnOnce(&Scoring<'_>) -> Result<T, Refusal> + Send + 'static,
    {
        let model = self.model.load_full().ok_or_else(ApiError::not_ready)?;
        self.scoring
            .run(move |helpers| {
                work(&Scoring {
                    model: &model,
                    helpers,
                })
            })
            .await
            .map_err(|_| ApiError::internal("the scoring task failed".to_owned()))?
    }

    /// Counts an answer: status, latency, and the error code of a refusal.
    pub fn record(&self, endpoint: &'static str, status: StatusCode, started: Instant) {
        let m = &self.metrics;
        m.requests
            .get_or_create(&StatusLabels {
                endpoint,
                status: status.as_u16(),
            })
            .inc();
        m.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a refusal by its code.
    pub fn record_error(&self, endpoint: &'static str, error: &ApiError) {
        self.metrics
            .errors
            .get_or_create(&ErrorLabels {
                endpoint,
                code: error.code,
            })
            .inc();
    }
}

/// The service's routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/rank", post(rank))
        .route("/v1/features", post(features))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(oip::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A refused request: status, stable code, message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
        }
    }

    /// A body serde_json could not read: not JSON at all, JSON of the wrong shape, or a number
    /// beyond a double's range (JSON allows `1e999`; serde_json reports it as a syntax error,
    /// told apart only by its message).
    pub fn from_json(e: serde_json::Error) -> Self {
        let code = if e.is_data() {
            "invalid_request"
        } else if e.to_string().starts_with("number out of range") {
            "non_finite_number"
        } else {
            "malformed_json"
        };
        Self::bad_request(code, format!("request body: {e}"))
    }

    pub fn not_ready() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "model_not_loaded",
            message: "no model version is loaded yet; retry shortly".to_owned(),
        }
    }

    pub fn internal(message: String) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message,
        }
    }

    /// The body could not be read: too large (413) or broken off (400).
    pub fn from_body(rejection: &BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "payload_too_large",
                message: format!("request body over {limit} bytes"),
            }
        } else {
            Self::bad_request("unreadable_body", format!("request body: {rejection}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            json!({"error": {"code": self.code, "message": self.message}}).to_string(),
        )
    }
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Most bytes of a request id copied into the `x-request-id` answer header: a longer id (the
/// body's `request_id` has no limit of its own) would make a header line clients refuse to
/// read. Such an id is echoed in the body only.
pub(crate) const MAX_HEADER_ID_BYTES: usize = 256;

fn with_request_id(mut response: Response, id: &str) -> Response {
    // Visible ASCII only: header values are bytes, and clients decode others differently.
    let visible = id.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if visible
        && id.len() <= MAX_HEADER_ID_BYTES
        && let Ok(value) = HeaderValue::from_str(id)
    {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The request's `x-request-id` header, if it is UTF-8 text.
pub(crate) fn header_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::to_owned)
}

type Work = fn(&Scoring<'_>, &[u8], Option<String>, usize) -> Result<Answer, Refusal>;

/// `/v1/rank` and `/v1/features`: the body to a scoring thread, the answer or the refusal
/// back, counted and logged.
async fn answer(
    state: Arc<AppState>,
    endpoint: &'static str,
    work: Work,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let header_id = header_request_id(&headers);
    let outcome = match body {
        Ok(body) => {
            let max = state.max_candidates;
            let id = header_id.clone();
            state
                .on_model(move |model| work(model, &body, id, max))
                .await
        }
        Err(rejection) => Err(ApiError::from_body(&rejection, state.max_body_bytes).into()),
    };
    match outcome {
        Ok(answer) => {
            state.record(endpoint, StatusCode::OK, started);
            let m = &state.metrics;
            m.candidates
                .get_or_create(&EndpointLabels { endpoint })
                .observe(answer.candidates as f64);
            if let Some(scoring) = answer.scoring {
                m.scoring.observe(scoring.as_secs_f64());
            }
            debug!(
                request_id = %answer.request_id,
                endpoint,
                status = 200,
                candidates = answer.candidates,
                micros = started.elapsed().as_micros() as u64,
                "answered"
            );
            with_request_id(
                json_response(StatusCode::OK, answer.body),
                &answer.request_id,
            )
        }
        Err(Refusal { request_id, error }) => {
            let id = request_id
                .or(header_id)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            refuse(&state, endpoint, &id, error, started)
        }
    }
}

/// Counts, logs and answers a refusal.
fn refuse(
    state: &AppState,
    endpoint: &'static str,
    request_id: &str,
    error: ApiError,
    started: Instant,
) -> Response {
    state.record(endpoint, error.status, started);
    state.record_error(endpoint, &error);
    log_refusal(endpoint, request_id, &error);
    with_request_id(error.into_response(), request_id)
}

pub(crate) fn log_refusal(endpoint: &'static str, request_id: &str, error: &ApiError) {
    if error.status.is_server_error() {
        error!(request_id, endpoint, status = error.status.as_u16(), code = error.code, message = %error.message, "request failed");
    } else {
        info!(request_id, endpoint, status = error.status.as_u16(), code = error.code, message = %error.message, "request refused");
    }
}

async fn rank(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(state, "rank", rank::rank, headers, body).await
}

async fn features(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(state, "features", rank::explain, headers, body).await
}

async fn live() -> Response {
    json_response(StatusCode::OK, json!({"status": "live"}).to_string())
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.model.load().as_ref() {
        Some(m) => json_response(
            StatusCode::OK,
            json!({"status": "ready", "model": {"name": m.name, "version": m.version}}).to_string(),
        ),
        None => ApiError::not_ready().into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => {
            let mut response = Response::new(Body::from(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(e) => ApiError::internal(format!("encoding the metrics: {e}")).into_response(),
    }
}

/// Another path: a `/v2` one in the Open Inference Protocol's shape, as its other errors.
async fn not_found(uri: Uri) -> Response {
    let error = ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: if oip::is_oip_path(uri.path()) {
            format!(
                "no such endpoint: {}; see POST /v2/models/{{name}}/infer",
                uri.path()
            )
        } else {
            "no such endpoint; see POST /v1/rank".to_owned()
        },
    };
    oip::answer_for(&uri, error)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: format!("{} does not take {method}", uri.path()),
    };
    oip::answer_for(&uri, error)
}
