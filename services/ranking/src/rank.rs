//! `/v1/rank` and `/v1/features` without HTTP: the request, its checks, the feature vectors,
//! the order and the answer's JSON. Everything here runs on a scoring thread.

use std::borrow::Cow;
use std::cmp::Ordering;

use quire_featspec::{FEATURE_NAMES, N_FEATURES, Request, ServingTables, bm25_feature};
use serde::{Deserialize, Serialize};

use crate::api::ApiError;
use crate::model::Scoring;

/// The contract's request. Unknown fields are ignored, so the Search Service can add some.
/// Text borrows from the body unless it has escapes (no allocation per candidate).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RankRequest<'a> {
    #[serde(default, borrow)]
    pub request_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub query: Cow<'a, str>,
    #[serde(default, borrow)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub device: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    pub top_k: Option<usize>,
}

/// One candidate from the search engine.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Candidate<'a> {
    #[serde(borrow)]
    pub book_id: Cow<'a, str>,
    pub bm25: f64,
}

/// `{"name", "version"}` of the answer.
#[derive(Debug, Serialize)]
pub(crate) struct ModelRef<'a> {
    pub name: &'a str,
    pub version: i64,
}

#[derive(Serialize)]
struct RankResponse<'a> {
    request_id: &'a str,
    model: ModelRef<'a>,
    ranked: Vec<Ranked<'a>>,
}

#[derive(Serialize)]
struct Ranked<'a> {
    book_id: &'a str,
    score: f32,
}

#[derive(Serialize)]
struct FeaturesResponse<'a> {
    request_id: &'a str,
    model: ModelRef<'a>,
    feature_names: &'a [&'a str],
    candidates: Vec<CandidateFeatures<'a>>,
}

#[derive(Serialize)]
struct CandidateFeatures<'a> {
    book_id: &'a str,
    /// NaN (missing) is written `null` by serde_json.
    features: &'a [f32],
}

/// An answer's JSON and what the metrics and logs need of it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub request_id: String,
    pub body: Vec<u8>,
    pub candidates: usize,
    /// The ONNX Runtime call (none for `/v1/features`).
    pub scoring: Option<std::time::Duration>,
}

/// A failed request, with the request id when the body gave one.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub request_id: Option<String>,
    pub error: ApiError,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            request_id: None,
            error,
        }
    }
}

/// Parses and checks a `/v1/rank` body.
pub(crate) fn parse(body: &[u8], max_candidates: usize) -> Result<RankRequest<'_>, Refusal> {
    let req: RankRequest<'_> = serde_json::from_slice(body).map_err(ApiError::from_json)?;
    check(&req, max_candidates).map_err(|error| Refusal {
        request_id: req.request_id.as_deref().map(str::to_owned),
        error,
    })?;
    Ok(req)
}

fn check(req: &RankRequest<'_>, max_candidates: usize) -> Result<(), ApiError> {
    let n = req.candidates.len();
    if n == 0 {
        return Err(ApiError::bad_request(
            "no_candidates",
            "`candidates` is empty; send 1 or more".to_owned(),
        ));
    }
    if n > max_candidates {
        return Err(ApiError::bad_request(
            "too_many_candidates",
            format!("{n} candidates; at most {max_candidates} per request"),
        ));
    }
    // Any finite double is a valid `bm25` (JSON carries no NaN or infinity; `1e999` is refused
    // by the parser as `non_finite_number`); one beyond `f32` saturates in the features
    // (`bm25_feature`), as in the training job.
    Ok(())
}

/// The candidates' feature vectors, row after row ([`FEATURE_NAMES`] order), computed from the
/// request and the served version's snapshot by [`ServingTables::features`] — what
/// [`quire_featspec::assemble`], the training job's code, gives; unknown users and books are
/// cold-start.
pub(crate) fn features(tables: &ServingTables, req: &RankRequest<'_>) -> Vec<f32> {
    let bm25 = req
        .candidates
        .iter()
        .map(|c| bm25_feature(c.bm25))
        .collect();
    let request = Request::new(&req.query, req.device.as_deref(), bm25);
    let mut rows = Vec::with_capacity(req.candidates.len() * N_FEATURES);
    tables.features(
        &request,
        req.user_id.as_deref(),
        req.candidates.iter().map(|c| &*c.book_id),
        &mut rows,
    );
    rows
}

/// Indices of `scores` by score, descending; ties keep their input order, NaN goes last.
pub(crate) fn order(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // A stable sort: equal scores keep the input order.
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (false, false) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
            (x_nan, y_nan) => x_nan.cmp(&y_nan),
        }
    });
    idx
}

fn request_id(req: &RankRequest<'_>, header_id: Option<String>) -> String {
    req.request_id
        .as_deref()
        .map(str::to_owned)
        .or(header_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal(format!("writing the answer: {e}")))
}

/// `/v1/rank`: parse, features, the batch scored (split with an idle scoring thread while a core
/// is free), order, `top_k`, JSON.
pub(crate) fn rank(
    scoring: &Scoring<'_>,
    body: &[u8],
    header_id: Option<String>,
    max_candidates: usize,
) -> Result<Answer, Refusal> {
    let req = parse(body, max_candidates)?;
    let request_id = request_id(&req, header_id);
    let refusal = |error| Refusal {
        request_id: Some(request_id.clone()),
        error,
    };
    let model = scoring.model;
    let rows = features(&model.features, &req);
    let n = req.candidates.len();
    let started = std::time::Instant::now();
    let scores = scoring
        .score(&rows, n)
        .map_err(|e| refusal(ApiError::internal(e.to_string())))?;
    let scoring = started.elapsed();
    let mut ranked: Vec<Ranked<'_>> = order(&scores)
        .into_iter()
        .map(|i| Ranked {
            book_id: &req.candidates[i].book_id,
            score: scores[i],
        })
        .collect();
    ranked.truncate(req.top_k.unwrap_or(n));
    let body = to_json(&RankResponse {
        request_id: &request_id,
        model: ModelRef {
            name: &model.name,
            version: model.version,
        },
        ranked,
    })
    .map_err(refusal)?;
    Ok(Answer {
        request_id,
        body,
        candidates: n,
        scoring: Some(scoring),
    })
}

/// `/v1/features`: the vectors `/v1/rank` would score for the same body.
pub(crate) fn explain(
    scoring: &Scoring<'_>,
    body: &[u8],
    header_id: Option<String>,
    max_candidates: usize,
) -> Result<Answer, Refusal> {
    let model = scoring.model;
    let req = parse(body, max_candidates)?;
    let request_id = request_id(&req, header_id);
    let rows = features(&model.features, &req);
    let candidates = req
        .candidates
        .iter()
        .zip(rows.chunks_exact(N_FEATURES))
        .map(|(c, features)| CandidateFeatures {
            book_id: &c.book_id,
            features,
        })
        .collect();
    let body = to_json(&FeaturesResponse {
        request_id: &request_id,
        model: ModelRef {
            name: &model.name,
            version: model.version,
        },
        feature_names: &FEATURE_NAMES,
        candidates,
    })
    .map_err(|error| Refusal {
        request_id: Some(request_id.clone()),
        error,
    })?;
    Ok(Answer {
        request_id,
        body,
        candidates: req.candidates.len(),
        scoring: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        parse(body.as_bytes(), 3).unwrap_err().error.code
    }

    #[test]
    fn order_is_descending_with_ties_in_input_order_and_nan_last() {
        assert_eq!(order(&[1.0, 3.0, 2.0]), [1, 2, 0]);
        assert_eq!(order(&[0.5, 0.7, 0.5, 0.7, 0.5]), [1, 3, 0, 2, 4]);
        assert_eq!(order(&[f32::NAN, -1.0, f32::NAN, 2.0]), [3, 1, 0, 2]);
        // 0.0 and -0.0 are equal scores: input order.
        assert_eq!(order(&[-0.0, 0.0]), [0, 1]);
        assert!(order(&[]).is_empty());
    }

    #[test]
    fn parse_accepts_the_contract_example_and_ignores_unknown_fields() {
        let body = r#"{"request_id": "r1", "query": "dragon fantasy", "user_id": "usr_42",
            "device": "mobile", "candidates": [{"book_id": "bk_17", "bm25": 12.7},
            {"book_id": "bk_3", "bm25": 9}], "top_k": 20, "trace": {"x": 1}}"#;
        let req = parse(body.as_bytes(), 1000).unwrap();
        assert_eq!(req.request_id.as_deref(), Some("r1"));
        assert_eq!(req.candidates.len(), 2);
        assert_eq!(req.candidates[1].bm25, 9.0);
        assert_eq!(req.top_k, Some(20));
        // Escaped text is unescaped (owned), the rest borrowed from the body.
        let escaped =
            r#"{"query": "a \"b\"", "candidates": [{"book_id": "bk\u005f1", "bm25": 1}]}"#;
        let req = parse(escaped.as_bytes(), 1).unwrap();
        assert_eq!(req.query, "a \"b\"");
        assert_eq!(req.candidates[0].book_id, "bk_1");
        let minimal = r#"{"query": "", "candidates": [{"book_id": "b", "bm25": -1.5}]}"#;
        let req = parse(minimal.as_bytes(), 1).unwrap();
        assert!(req.user_id.is_none() && req.device.is_none() && req.top_k.is_none());
    }

    #[test]
    fn parse_names_each_kind_of_bad_request() {
        assert_eq!(code("{"), "malformed_json");
        assert_eq!(code(""), "malformed_json");
        assert_eq!(code(r#"{"query": "x", "candidates": [{"#), "malformed_json");
        assert_eq!(code("[]"), "invalid_request");
        assert_eq!(code(r#"{"candidates": []}"#), "invalid_request"); // no query
        assert_eq!(code(r#"{"query": 1, "candidates": []}"#), "invalid_request");
        let c = |cands: &str| format!(r#"{{"query": "q", "candidates": {cands}}}"#);
        assert_eq!(code(&c("[]")), "no_candidates");
        let four = r#"[{"book_id":"a","bm25":1},{"book_id":"b","bm25":1},{"book_id":"c","bm25":1},{"book_id":"d","bm25":1}]"#;
        assert_eq!(code(&c(four)), "too_many_candidates");
        assert_eq!(
            code(&c(r#"[{"book_id": "a", "bm25": "1"}]"#)),
            "invalid_request"
        );
        assert_eq!(
            code(&c(r#"[{"book_id": 7, "bm25": 1}]"#)),
            "invalid_request"
        );
        assert_eq!(code(&c(r#"[{"book_id": "a"}]"#)), "invalid_request");
        assert_eq!(
            code(&c(r#"[{"book_id": "a", "bm25": null}]"#)),
            "invalid_request"
        );
        // Finite doubles beyond f32 are numbers the contract accepts.
        for huge in ["1e39", "-3.5e38"] {
            let body = c(&format!(r#"[{{"book_id": "a", "bm25": {huge}}}]"#));
            assert!(parse(body.as_bytes(), 3).is_ok(), "{body}");
        }
        assert_eq!(
            code(&c(r#"[{"book_id": "a", "bm25": 1e999}]"#)),
            "non_finite_number"
        );
        let with_top_k = |k: &str| {
            format!(
                r#"{{"query": "q", "candidates": [{{"book_id": "a", "bm25": 1}}], "top_k": {k}}}"#
            )
        };
        // Optional, default all: 0 is well-formed (the best none).
        assert!(parse(with_top_k("0").as_bytes(), 3).is_ok());
        assert_eq!(code(&with_top_k("-1")), "invalid_request");
        assert_eq!(code(&with_top_k("1.5")), "invalid_request");
        assert!(parse(with_top_k("null").as_bytes(), 3).is_ok());
    }

    #[test]
    fn refusals_after_parsing_keep_the_request_id() {
        let body = r#"{"request_id": "abc", "query": "q", "candidates": []}"#;
        let refusal = parse(body.as_bytes(), 3).unwrap_err();
        assert_eq!(refusal.request_id.as_deref(), Some("abc"));
        assert_eq!(refusal.error.status.as_u16(), 400);
    }
}
