//! The Open Inference Protocol (KServe v2, JSON over HTTP) for raw feature tensors, so standard
//! clients and load tools can score rows the service did not assemble.
//!
//! Only the model's own tensors exist: input `X` (`FP32`, `[N, 28]`, row-major, given flat or
//! nested; `null` stands for a missing value, which JSON cannot write as NaN) and output `Y`
//! (`FP32`, `[N, 1]`). Errors are the protocol's `{"error": "message"}`.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use quire_featspec::N_FEATURES;
use quire_onnx::{INPUT_NAME, OUTPUT_NAME};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;

use crate::api::{ApiError, AppState, header_request_id, log_refusal};
use crate::metrics::EndpointLabels;
use crate::model::{Scoring, ServedModel};
use crate::rank::Refusal;

const ENDPOINT: &str = "infer";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        // The protocol's paths naming a version: answered for the version served, 404 else.
        .route(
            "/v2/models/{name}/versions/{version}",
            get(version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(version_infer),
        )
}

fn version_not_served(version: &str, served: Option<i64>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "model_not_found",
        message: match served {
            Some(v) => format!("version {version:?} is not served here; this service serves {v}"),
            None => format!("version {version:?} is not served here; no version is loaded yet"),
        },
    }
}

/// `answer` for model `name` and the version served, when the path's `version` is that one
/// (or `name` is not served: its 404 comes from `answer`), else the protocol's 404. The
/// version is loaded once, so a swap in between cannot answer for another.
fn for_version(
    state: &AppState,
    (name, version): (String, String),
    answer: fn(&AppState, &str, Option<&ServedModel>) -> Response,
) -> Response {
    let served = state.model.load();
    let served = served.as_deref();
    let current = served.map(|m| m.version);
    if name == state.name && current.map(|v| v.to_string()).as_deref() != Some(version.as_str()) {
        return OipError(version_not_served(&version, current)).into_response();
    }
    answer(state, &name, served)
}

async fn version_metadata(
    State(state): State<Arc<AppState>>,
    Path(path): Path<(String, String)>,
) -> Response {
    for_version(&state, path, metadata_of)
}

async fn version_ready(
    State(state): State<Arc<AppState>>,
    Path(path): Path<(String, String)>,
) -> Response {
    for_version(&state, path, ready_of)
}

async fn version_infer(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_version(state, name, Some(version), headers, body).await
}

/// True for the protocol's paths (`/v2` and below), whose errors take its shape.
pub(crate) fn is_oip_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// `error` in the protocol's shape for a `/v2` path, else in the `/v1` shape.
pub(crate) fn answer_for(uri: &Uri, error: ApiError) -> Response {
    if is_oip_path(uri.path()) {
        OipError(error).into_response()
    } else {
        error.into_response()
    }
}

/// An [`ApiError`] answered in the protocol's shape.
struct OipError(ApiError);

impl IntoResponse for OipError {
    fn into_response(self) -> Response {
        json_response(self.0.status, json!({"error": self.0.message}).to_string())
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

fn model_not_found(name: &str, served: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "model_not_found",
        message: format!("model {name:?} is not served here; this service serves {served:?}"),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_tensor", message)
}

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    inputs: Vec<InferInput>,
    #[serde(default)]
    outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Deserialize)]
struct InferInput {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: FlatData,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: [Output; 1],
}

#[derive(Serialize)]
struct Output {
    name: &'static str,
    datatype: &'static str,
    shape: [usize; 2],
    data: Vec<f32>,
}

/// A tensor's `data`, flat or nested arrays of numbers (`null`: NaN), flattened row-major,
/// with the length of each nested row (none when flat): a nested row must match the shape,
/// or its values would shift into the next row's features.
///
/// Written by hand because serde's untagged enums would buffer every value; this reads the
/// arrays in one pass.
struct FlatData {
    values: Vec<f32>,
    row_lengths: Vec<usize>,
}

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut data = FlatData {
            values: Vec::new(),
            row_lengths: Vec::new(),
        };
        Flatten {
            data: &mut data,
            depth: 0,
        }
        .deserialize(deserializer)?;
        Ok(data)
    }
}

/// Reads one value of `data` at `depth`: 0 the tensor, 1 a value or a row, 2 a row's value.
struct Flatten<'a> {
    data: &'a mut FlatData,
    depth: usize,
}

impl Flatten<'_> {
    fn push<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        if self.depth == 0 {
            return Err(E::custom("data must be an array"));
        }
        let x = v as f32;
        if !x.is_finite() {
            return Err(E::custom(format_args!(
                "data[{}] = {v:e} is not a finite 32-bit number",
                self.data.values.len()
            )));
        }
        self.data.values.push(x);
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("numbers, nulls or arrays of them")
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.push(v)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.push(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.push(v as f64)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        if self.depth == 0 {
            return Err(E::custom("data must be an array"));
        }
        self.data.values.push(f32::NAN);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 2 {
            return Err(serde::de::Error::custom(format_args!(
                "data is nested deeper than [N, {N_FEATURES}]"
            )));
        }
        let before = self.data.values.len();
        let data = self.data;
        while seq
            .next_element_seed(Flatten {
                data: &mut *data,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        if self.depth == 1 {
            data.row_lengths.push(data.values.len() - before);
        }
        Ok(())
    }
}

/// Parses and checks an inference request: one `X` of `[N, 28]` FP32 values, `Y` asked for.
fn parse(body: &[u8], max_rows: usize) -> Result<(Option<String>, usize, Vec<f32>), ApiError> {
    let req: InferRequest = serde_json::from_slice(body).map_err(ApiError::from_json)?;
    let [input] = <[InferInput; 1]>::try_from(req.inputs).map_err(|inputs| {
        invalid(format!(
            "{} inputs given; the model takes one, `{INPUT_NAME}`",
            inputs.len()
        ))
    })?;
    if input.name != INPUT_NAME {
        return Err(invalid(format!(
            "input {:?}: the model's input is `{INPUT_NAME}`",
            input.name
        )));
    }
    if input.datatype != "FP32" {
        return Err(invalid(format!(
            "input `{INPUT_NAME}` has datatype {:?}; the model takes FP32",
            input.datatype
        )));
    }
    let rows = match input.shape[..] {
        [n, f] if f == N_FEATURES as i64 && n >= 1 && n <= max_rows as i64 => n as usize,
        _ => {
            return Err(invalid(format!(
                "input `{INPUT_NAME}` has shape {:?}; expected [N, {N_FEATURES}] with 1 <= N <= {max_rows}",
                input.shape
            )));
        }
    };
    let FlatData {
        values,
        row_lengths,
    } = input.data;
    if values.len() != rows * N_FEATURES {
        return Err(invalid(format!(
            "input `{INPUT_NAME}` of shape [{rows}, {N_FEATURES}] has {} values, not {}",
            values.len(),
            rows * N_FEATURES
        )));
    }
    if !row_lengths.is_empty() {
        if row_lengths.iter().sum::<usize>() != values.len() {
            return Err(invalid(format!(
                "input `{INPUT_NAME}`: data mixes values and rows; give [N, {N_FEATURES}] nested or flat"
            )));
        }
        if let Some((i, n)) = row_lengths
            .iter()
            .enumerate()
            .find(|(_, n)| **n != N_FEATURES)
        {
            return Err(invalid(format!(
                "input `{INPUT_NAME}`: data row {i} has {n} values; shape [{rows}, {N_FEATURES}] needs {N_FEATURES}"
            )));
        }
    }
    if let Some(bad) = req.outputs.iter().flatten().find(|o| o.name != OUTPUT_NAME) {
        return Err(invalid(format!(
            "output {:?} asked for; the model's output is `{OUTPUT_NAME}`",
            bad.name
        )));
    }
    Ok((req.id, rows, values))
}

/// Scores the request's rows and writes the answer (on a scoring thread).
fn score(scoring: &Scoring<'_>, body: &[u8], max_rows: usize) -> Result<(Vec<u8>, usize), Refusal> {
    let (id, rows, data) = parse(body, max_rows)?;
    let model = scoring.model;
    let scores = scoring
        .score(&data, rows)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let body = serde_json::to_vec(&InferResponse {
        model_name: &model.name,
        model_version: model.version.to_string(),
        id: id.as_deref(),
        outputs: [Output {
            name: OUTPUT_NAME,
            datatype: "FP32",
            shape: [rows, 1],
            data: scores,
        }],
    })
    .map_err(|e| ApiError::internal(format!("writing the answer: {e}")))?;
    Ok((body, rows))
}

async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_version(state, name, None, headers, body).await
}

/// Scores a request for model `name` (and `version`, when the path names one: checked against
/// the version that scores it, so a swap in between cannot score with another).
async fn infer_version(
    state: Arc<AppState>,
    name: String,
    version: Option<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let outcome = if name != state.name {
        Err(model_not_found(&name, &state.name))
    } else {
        match body {
            Ok(body) => {
                let max = state.max_candidates;
                state
                    .on_model(move |scoring| {
                        let served = scoring.model.version;
                        match version {
                            Some(v) if v != served.to_string() => {
                                Err(version_not_served(&v, Some(served)).into())
                            }
                            _ => score(scoring, &body, max),
                        }
                    })
                    .await
                    .map_err(|r| r.error)
            }
            Err(rejection) => Err(ApiError::from_body(&rejection, state.max_body_bytes)),
        }
    };
    match outcome {
        Ok((body, rows)) => {
            state.record(ENDPOINT, StatusCode::OK, started);
            state
                .metrics
                .candidates
                .get_or_create(&EndpointLabels { endpoint: ENDPOINT })
                .observe(rows as f64);
            json_response(StatusCode::OK, body)
        }
        Err(error) => {
            state.record(ENDPOINT, error.status, started);
            state.record_error(ENDPOINT, &error);
            let id = header_request_id(&headers).unwrap_or_default();
            log_refusal(ENDPOINT, &id, &error);
            OipError(error).into_response()
        }
    }
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        json!({"name": "quire-ranking", "version": env!("CARGO_PKG_VERSION"), "extensions": []})
            .to_string(),
    )
}

async fn live() -> Response {
    json_response(StatusCode::OK, json!({"live": true}).to_string())
}

/// The protocol's readiness answers: "a 200 status code indicating true and a 4xx status code
/// indicating false" (not a 5xx, which clients take for a failing server): 400, as Triton.
const NOT_READY: StatusCode = StatusCode::BAD_REQUEST;

async fn server_ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.model.load().is_some();
    let status = if ready { StatusCode::OK } else { NOT_READY };
    json_response(status, json!({"ready": ready}).to_string())
}

async fn model_ready(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    ready_of(&state, &name, state.model.load().as_deref())
}

async fn model_metadata(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    metadata_of(&state, &name, state.model.load().as_deref())
}

/// The protocol's readiness of model `name`, `served` being the version loaded.
fn ready_of(state: &AppState, name: &str, served: Option<&ServedModel>) -> Response {
    if name != state.name {
        return OipError(model_not_found(name, &state.name)).into_response();
    }
    match served {
        Some(m) => json_response(
            StatusCode::OK,
            json!({"name": m.name, "version": m.version.to_string(), "ready": true}).to_string(),
        ),
        None => json_response(NOT_READY, json!({"name": name, "ready": false}).to_string()),
    }
}

/// The protocol's metadata of model `name`, `served` being the version loaded.
fn metadata_of(state: &AppState, name: &str, served: Option<&ServedModel>) -> Response {
    if name != state.name {
        return OipError(model_not_found(name, &state.name)).into_response();
    }
    let Some(m) = served else {
        return OipError(ApiError::not_ready()).into_response();
    };
    json_response(
        StatusCode::OK,
        json!({
            "name": m.name,
            "versions": [m.version.to_string()],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, N_FEATURES]}],
            "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, 1]}],
            "parameters": {"run_id": m.run_id, "feature_names": m.scorer.info().feature_names},
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: f32) -> String {
        let vals: Vec<String> = (0..N_FEATURES)
            .map(|i| format!("{}", v + i as f32))
            .collect();
        vals.join(",")
    }

    #[test]
    fn data_may_be_flat_or_nested_with_null_as_missing() {
        let flat = format!(
            r#"{{"id": "a", "inputs": [{{"name": "X", "shape": [2, {N_FEATURES}], "datatype": "FP32", "data": [{}, {}]}}]}}"#,
            row(0.0),
            row(100.0)
        );
        let (id, rows, data) = parse(flat.as_bytes(), 10).unwrap();
        assert_eq!(
            (id.as_deref(), rows, data.len()),
            (Some("a"), 2, 2 * N_FEATURES)
        );
        assert_eq!((data[1], data[N_FEATURES]), (1.0, 100.0));
        let nested = format!(
            r#"{{"inputs": [{{"name": "X", "shape": [2, {N_FEATURES}], "datatype": "FP32", "data": [[{}], [null, {}]]}}], "outputs": [{{"name": "Y"}}]}}"#,
            row(0.0),
            row(1.0).split_once(',').unwrap().1
        );
        let (_, rows, data) = parse(nested.as_bytes(), 10).unwrap();
        assert_eq!(rows, 2);
        assert!(data[N_FEATURES].is_nan());
        assert_eq!(data[N_FEATURES + 1], 2.0);
    }

    #[test]
    fn bad_tensors_are_named() {
        let body = |name: &str, dtype: &str, shape: &str, data: &str, outputs: &str| {
            format!(
                r#"{{"inputs": [{{"name": "{name}", "shape": {shape}, "datatype": "{dtype}", "data": {data}}}]{outputs}}}"#
            )
        };
        let good = format!("[{}]", row(0.0));
        let shape = format!("[1, {N_FEATURES}]");
        let msg = |b: String| parse(b.as_bytes(), 10).unwrap_err().message;
        assert!(msg(body("Z", "FP32", &shape, &good, "")).contains("input \"Z\""));
        assert!(msg(body("X", "FP64", &shape, &good, "")).contains("FP64"));
        assert!(msg(body("X", "FP32", "[1, 3]", &good, "")).contains("[1, 3]"));
        assert!(
            msg(body("X", "FP32", &format!("[11, {N_FEATURES}]"), &good, "")).contains("N <= 10")
        );
        assert!(
            msg(body("X", "FP32", &format!("[2, {N_FEATURES}]"), &good, ""))
                .contains("has 28 values, not 56")
        );
        assert!(msg(body("X", "FP32", &shape, "[1e39]", "")).contains("data[0] = 1e39"));
        assert!(msg(body("X", "FP32", &shape, "[\"1\"]", "")).contains("numbers, nulls or arrays"));
        // Nested rows must match the shape, not just the count: 29 + 27 values are 2 × 28.
        let two = format!("[2, {N_FEATURES}]");
        let uneven = format!(
            "[[{}, 5], [{}]]",
            row(0.0),
            row(0.0).split_once(',').unwrap().1
        );
        assert!(
            msg(body("X", "FP32", &two, &uneven, "")).contains("data row 0 has 29 values"),
            "{}",
            msg(body("X", "FP32", &two, &uneven, ""))
        );
        let mixed = format!("[[{}], {}]", row(0.0), row(0.0));
        assert!(msg(body("X", "FP32", &two, &mixed, "")).contains("mixes values and rows"));
        let deep = format!("[[[{}]]]", row(0.0));
        assert!(msg(body("X", "FP32", &shape, &deep, "")).contains("nested deeper"));
        assert!(msg(body("X", "FP32", &shape, "null", "")).contains("must be an array"));
        let outputs = r#", "outputs": [{"name": "scores"}]"#;
        assert!(msg(body("X", "FP32", &shape, &good, outputs)).contains("\"scores\""));
        let two = format!(
            r#"{{"inputs": [{{"name": "X", "shape": {shape}, "datatype": "FP32", "data": {good}}}, {{"name": "X", "shape": {shape}, "datatype": "FP32", "data": {good}}}]}}"#
        );
        assert!(msg(two).contains("2 inputs"));
    }
}
