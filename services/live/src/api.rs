//! The HTTP surface: intake, JSON API, dashboard, health and metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use quire_events::Event;
use quire_live::{Appended, Bus, HourFigure, IncomingBadRow, LiveStatus, LiveStore};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::LiveServerOptions;
use crate::dashboard;
use crate::metrics::{Metrics, StatusLabels};

/// Longest range `GET /api/v1/hourly-gmv` answers: 366 days.
const MAX_RANGE_HOURS: i64 = 366 * 24;

pub(crate) struct AppState {
    bus: Bus,
    store: LiveStore,
    token: Option<String>,
    max_batch: usize,
    max_body_bytes: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(opts: &LiveServerOptions, bus: Bus, store: LiveStore) -> Self {
        Self {
            bus,
            store,
            token: opts.token.clone(),
            max_batch: opts.max_batch,
            max_body_bytes: opts.max_body_bytes,
            metrics: Metrics::new(),
        }
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/api/v1/hourly-gmv", get(hourly_gmv))
        .route("/api/v1/today", get(today))
        .route("/api/v1/status", get(status))
        .route("/api/v1/reemitted", get(reemitted))
        .route("/api/v1/dashboard", get(dashboard_data))
        .route("/", get(dashboard::page))
        .route("/assets/dashboard.js", get(dashboard::script))
        .route("/assets/chart.umd.min.js", get(dashboard::chart_js))
        .route(
            "/health/live",
            get(|| async { axum::Json(json!({"status": "live"})) }),
        )
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A refused request: `{"error": {"code", "message"}}` with its status. The one place
/// errors become HTTP answers.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn unavailable(e: &quire_live::Error) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bus_unavailable",
            format!(
                "{e}; send the request again (events that reached the bus before the failure \
                 are then answered duplicate)"
            ),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

/// The answer about one posted event.
#[derive(Debug, Serialize)]
struct EventResult {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct IntakeAnswer {
    request_id: String,
    accepted: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<EventResult>,
}

/// The request's events, validated: the valid ones and their indexes in the request.
struct Checked {
    valid: Vec<Event>,
    valid_index: Vec<usize>,
    bad: Vec<(usize, IncomingBadRow)>,
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Compares the presented token with the configured one in time independent of where they
/// differ (a plain `==` stops at the first difference). Written here: a one-line fold is
/// not worth a dependency.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start());
    match given {
        Some(t) if token_matches(t.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this intake needs the header Authorization: Bearer <token>",
        )),
    }
}

/// A request refused as a whole, with the bad row it leaves when its body is not JSON.
type Refused = Box<(ApiError, Option<IncomingBadRow>)>;

/// Parses and validates a body (CPU work: on the blocking pool).
fn check(body: &[u8], source: &str, max_batch: usize) -> Result<Checked, Refused> {
    // Each event is parsed on its own text (a bad row keeps the text as sent): the body is
    // split into raw JSON values first.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed: Result<Vec<&RawValue>, serde_json::Error> = if first == Some(&b'[') {
        serde_json::from_slice(body)
    } else {
        serde_json::from_slice::<&RawValue>(body).map(|v| vec![v])
    };
    let items = parsed.map_err(|e| {
        let reason = format!("body: not valid JSON ({e})");
        let row = IncomingBadRow {
            line: String::from_utf8_lossy(body).into_owned(),
            source: source.to_owned(),
            line_number: 0,
            reason: reason.clone(),
            rejected_at: Utc::now(),
        };
        Box::new((ApiError::bad_request("malformed_json", reason), Some(row)))
    })?;
    if items.is_empty() {
        return Err(Box::new((
            ApiError::bad_request("empty_batch", "the array holds no event"),
            None,
        )));
    }
    if items.len() > max_batch {
        return Err(Box::new((
            ApiError::bad_request(
                "batch_too_large",
                format!("{} events in one request; at most {max_batch}", items.len()),
            ),
            None,
        )));
    }
    let now = Utc::now();
    let mut checked = Checked {
        valid: Vec::with_capacity(items.len()),
        valid_index: Vec::with_capacity(items.len()),
        bad: Vec::new(),
    };
    for (i, raw) in items.into_iter().enumerate() {
        // The file ingest's own entry point: the same rules, the same reasons.
        match quire_events::parse_line(raw.get()) {
            Ok(event) => {
                checked.valid.push(event);
                checked.valid_index.push(i);
            }
            Err(invalid) => checked.bad.push((
                i,
                IncomingBadRow {
                    line: raw.get().to_owned(),
                    source: source.to_owned(),
                    line_number: i as i64,
                    reason: invalid.reason(),
                    rejected_at: now,
                },
            )),
        }
    }
    Ok(checked)
}

async fn post_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let rid = request_id(&headers);
    let answer = intake(&state, &headers, body, &rid).await;
    let mut resp = match answer {
        Ok(a) => {
            let m = &state.metrics;
            for (status, n) in [
                ("accepted", a.accepted),
                ("duplicate", a.duplicates),
                ("rejected", a.rejected),
            ] {
                m.events
                    .get_or_create(&StatusLabels { status })
                    .inc_by(n as u64);
            }
            axum::Json(a).into_response()
        }
        Err(e) => {
            tracing::info!(request_id = %rid, code = e.code, message = %e.message, "intake request refused");
            e.into_response()
        }
    };
    let status: &'static str = match resp.status().as_u16() {
        200 => "200",
        400 => "400",
        401 => "401",
        413 => "413",
        503 => "503",
        _ => "other",
    };
    state
        .metrics
        .requests
        .get_or_create(&StatusLabels { status })
        .inc();
    state
        .metrics
        .latency
        .observe(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn intake(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    rid: &str,
) -> Result<IntakeAnswer, ApiError> {
    authorize(state, headers)?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is over {} bytes", state.max_body_bytes),
            )
        } else {
            ApiError::bad_request("unreadable_body", format!("request body: {r}"))
        }
    })?;
    let source = format!("http:{rid}");
    let max_batch = state.max_batch;
    let checked = tokio::task::spawn_blocking(move || check(&body, &source, max_batch))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("validation task: {e}"),
            )
        })?;
    let checked = match checked {
        Ok(c) => c,
        Err(refused) => {
            let (err, row) = *refused;
            // A body that is not JSON is a bad row too: keep it, count it, then refuse the
            // request.
            if let Some(row) = row {
                state
                    .bus
                    .append(&[], &[row])
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?;
                state
                    .metrics
                    .events
                    .get_or_create(&StatusLabels { status: "rejected" })
                    .inc();
            }
            return Err(err);
        }
    };
    let bad: Vec<IncomingBadRow> = checked.bad.iter().map(|(_, r)| r.clone()).collect();
    let appended = state
        .bus
        .append(&checked.valid, &bad)
        .await
        .map_err(|e| ApiError::unavailable(&e))?;
    let mut results: Vec<EventResult> = Vec::with_capacity(checked.valid.len() + bad.len());
    let (mut accepted, mut duplicates) = (0, 0);
    for ((i, event), a) in checked
        .valid_index
        .into_iter()
        .zip(checked.valid)
        .zip(appended)
    {
        let status = match a {
            Appended::Accepted(_) => {
                accepted += 1;
                "accepted"
            }
            Appended::Duplicate => {
                duplicates += 1;
                "duplicate"
            }
        };
        results.push(EventResult {
            index: i,
            event_id: Some(event.event_id),
            status,
            reason: None,
        });
    }
    let rejected = checked.bad.len();
    for (i, row) in checked.bad {
        let event_id = serde_json::from_str::<Value>(&row.line)
            .ok()
            .and_then(|v| v.get("event_id").and_then(Value::as_str).map(str::to_owned));
        results.push(EventResult {
            index: i,
            event_id,
            status: "rejected",
            reason: Some(row.reason),
        });
    }
    results.sort_by_key(|r| r.index);
    Ok(IntakeAnswer {
        request_id: rid.to_owned(),
        accepted,
        duplicates,
        rejected,
        results,
    })
}

fn store_error(e: &quire_live::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e.to_string(),
    )
}

/// Parses `YYYY-MM-DDTHH` (UTC).
fn parse_hour(name: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_parameter",
            format!("{name}: {s:?} is not an hour as YYYY-MM-DDTHH (UTC)"),
        )
    };
    let (d, h) = s.split_once('T').ok_or_else(bad)?;
    let date = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| bad())?;
    let hour: u32 = h.parse().map_err(|_| bad())?;
    let t = date.and_hms_opt(hour, 0, 0).ok_or_else(bad)?;
    Ok(t.and_utc())
}

/// The 24 hours ending at the current hour, when the live KPIs have seen an event.
fn last_day(status: Option<&LiveStatus>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let to = status?.current_hour?;
    Some((to - Duration::hours(23), to))
}

async fn hourly_gmv(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<axum::Json<Vec<HourFigure>>, ApiError> {
    for k in q.keys() {
        if k != "from" && k != "to" {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("unknown parameter {k:?} (known: from, to)"),
            ));
        }
    }
    let range = match (q.get("from"), q.get("to")) {
        (Some(f), Some(t)) => Some((parse_hour("from", f)?, parse_hour("to", t)?)),
        (None, None) => {
            let status = state.store.status().await.map_err(|e| store_error(&e))?;
            last_day(status.as_ref())
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "give both from and to, or neither (the last 24 hours)",
            ));
        }
    };
    let Some((from, to)) = range else {
        return Ok(axum::Json(Vec::new()));
    };
    if from > to {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("from ({from}) is after to ({to})"),
        ));
    }
    if (to - from).num_hours() >= MAX_RANGE_HOURS {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("at most {MAX_RANGE_HOURS} hours per request"),
        ));
    }
    let hours = state
        .store
        .hourly(from, to)
        .await
        .map_err(|e| store_error(&e))?;
    Ok(axum::Json(hours))
}

async fn today(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let t = state.store.today().await.map_err(|e| store_error(&e))?;
    Ok(axum::Json(t).into_response())
}

async fn status(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let s = state.store.status().await.map_err(|e| store_error(&e))?;
    Ok(axum::Json(s).into_response())
}

async fn reemitted(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let r = state.store.reemitted().await.map_err(|e| store_error(&e))?;
    Ok(axum::Json(r).into_response())
}

/// One bar of the dashboard's hourly chart: every hour of the 24, with or without orders.
#[derive(Debug, Serialize)]
struct Bar {
    hour: String,
    /// `gmv` for a live hour, the reconciled `net_gmv` for a closed one.
    value: f64,
    gmv: f64,
    net_gmv: f64,
    live: bool,
}

async fn dashboard_data(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = &state.store;
    let status = store.status().await.map_err(|e| store_error(&e))?;
    let mut bars = Vec::new();
    if let Some((from, to)) = last_day(status.as_ref()) {
        let figures = store.hourly(from, to).await.map_err(|e| store_error(&e))?;
        let watermark = status.as_ref().and_then(|s| s.watermark);
        let mut h = from;
        while h <= to {
            let f = figures.iter().find(|f| f.hour == h);
            let live = f.map_or_else(
                || watermark.is_none_or(|w| h + Duration::hours(1) > w),
                |f| f.live,
            );
            let (gmv, net) = f.map_or((0.0, 0.0), |f| (f.gmv, f.net_gmv));
            bars.push(Bar {
                hour: h.format("%Y-%m-%dT%H:00:00Z").to_string(),
                value: if live { gmv } else { net },
                gmv,
                net_gmv: net,
                live,
            });
            h += Duration::hours(1);
        }
    }
    let today = store.today().await.map_err(|e| store_error(&e))?;
    let reemitted = store.reemitted().await.map_err(|e| store_error(&e))?;
    Ok(axum::Json(json!({
        "status": status,
        "hours": bars,
        "today": today,
        "reemitted": reemitted.into_iter().take(10).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    match state.bus.ping().await {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", e.to_string())
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_parse_as_utc_and_bad_ones_name_the_parameter() {
        let t = parse_hour("from", "2025-10-01T07").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-10-01T07:00:00+00:00");
        for bad in [
            "2025-10-01",
            "2025-10-01T24",
            "2025-13-01T00",
            "x",
            "2025-10-01T7a",
        ] {
            let e = parse_hour("to", bad).unwrap_err();
            assert_eq!(e.code, "invalid_parameter");
            assert!(e.message.starts_with("to: "), "{}", e.message);
        }
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret1", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }

    #[test]
    fn a_body_is_checked_event_by_event() {
        let ok = r#"{"event_id":"e1","event_type":"page_view","event_timestamp":"2025-10-01T07:00:00Z","user_id":"u","device":"mobile","page":"home"}"#;
        let body = format!(r#"[{ok}, {{"event_id":"e2"}}, 3]"#);
        let c = check(body.as_bytes(), "http:r1", 10).unwrap();
        assert_eq!(c.valid.len(), 1);
        assert_eq!(c.valid[0].event_id, "e1");
        assert_eq!(c.valid_index, [0]);
        let bad: Vec<(usize, &str)> = c.bad.iter().map(|(i, r)| (*i, r.reason.as_str())).collect();
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, 1);
        assert!(bad[0].1.contains("event_type"), "{}", bad[0].1);
        assert_eq!(bad[1], (2, "line: must be a JSON object"));
        assert!(c.bad.iter().all(|(_, r)| r.source == "http:r1"));

        let (e, row) = *check(b"{not json", "http:r2", 10).err().unwrap();
        assert_eq!(e.code, "malformed_json");
        assert_eq!(row.unwrap().line, "{not json");
        let (e, _) = *check(b"[]", "http:r3", 10).err().unwrap();
        assert_eq!(e.code, "empty_batch");
        let (e, _) = *check(format!("[{ok},{ok}]").as_bytes(), "http:r4", 1)
            .err()
            .unwrap();
        assert_eq!(e.code, "batch_too_large");
    }
}
