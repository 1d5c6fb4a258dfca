//! The Open Inference Protocol endpoints: raw feature tensors scored like the model does, model
//! metadata and readiness, the protocol's error shape.

use quire_featspec::{FEATURE_NAMES, N_FEATURES};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::harness::{Fixture, Variant, local_scorer, world};

/// NaN as `null`, the protocol's JSON having no NaN.
fn cell(x: f32) -> Value {
    if x.is_nan() { Value::Null } else { json!(x) }
}

#[tokio::test]
async fn infer_scores_raw_tensors_as_the_model_does() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;
    let scorer = local_scorer(&v1.onnx);

    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let req = world().random_request(&mut rng, 30);
    let rows = world().training_features(&req);
    let n = req.candidates.len();
    let expected = scorer.score(&rows, n, N_FEATURES).unwrap();

    let flat: Vec<Value> = rows.iter().map(|&x| cell(x)).collect();
    let nested: Vec<Value> = rows
        .chunks_exact(N_FEATURES)
        .map(|r| Value::Array(r.iter().map(|&x| cell(x)).collect()))
        .collect();
    for data in [Value::Array(flat), Value::Array(nested)] {
        let body = json!({
            "id": "t-1",
            "inputs": [{"name": "X", "shape": [n, N_FEATURES], "datatype": "FP32", "data": data}],
            "outputs": [{"name": "Y"}],
        });
        let a = svc.post_json("/v2/models/ltr/infer", &body).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["model_name"], "ltr");
        assert_eq!(a.body["model_version"], "1");
        assert_eq!(a.body["id"], "t-1");
        let out = &a.body["outputs"][0];
        assert_eq!(out["name"], "Y");
        assert_eq!(out["datatype"], "FP32");
        assert_eq!(out["shape"], json!([n, 1]));
        let got: Vec<f32> = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got, expected);
        // The protocol's path naming the version served gives the same answer.
        let a = svc
            .post_json("/v2/models/ltr/versions/1/infer", &body)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body["outputs"][0]["data"].as_array().unwrap().len(), n);
    }

    // Metadata and readiness.
    let a = svc.get("/v2/models/ltr").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["name"], "ltr");
    assert_eq!(a.body["versions"], json!(["1"]));
    assert_eq!(
        a.body["inputs"],
        json!([{"name": "X", "datatype": "FP32", "shape": [-1, N_FEATURES]}])
    );
    assert_eq!(
        a.body["outputs"],
        json!([{"name": "Y", "datatype": "FP32", "shape": [-1, 1]}])
    );
    assert_eq!(a.body["parameters"]["feature_names"], json!(FEATURE_NAMES));
    assert_eq!(a.body["parameters"]["run_id"], v1.run_id);
    assert_eq!(svc.get("/v2/models/ltr/ready").await.status, 200);
    assert_eq!(svc.get("/v2/health/live").await.status, 200);
    assert_eq!(
        svc.get("/v2/health/ready").await.body,
        json!({"ready": true})
    );
    assert_eq!(svc.get("/v2").await.body["name"], "quire-ranking");

    // Errors: `{"error": "message"}`.
    let row: Vec<f32> = vec![1.0; N_FEATURES];
    let cases = [
        (
            "/v2/models/other/infer",
            json!({"inputs": [{"name": "X", "shape": [1, N_FEATURES], "datatype": "FP32", "data": row}]}),
            404,
        ),
        (
            "/v2/models/ltr/infer",
            json!({"inputs": [{"name": "X", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}),
            400,
        ),
        (
            "/v2/models/ltr/infer",
            json!({"inputs": [{"name": "X", "shape": [2, N_FEATURES], "datatype": "FP32", "data": row}]}),
            400,
        ),
        (
            "/v2/models/ltr/infer",
            json!({"inputs": [{"name": "X", "shape": [1, N_FEATURES], "datatype": "INT64", "data": row}]}),
            400,
        ),
        ("/v2/models/ltr/infer", json!({"inputs": []}), 400),
        ("/v2/models/ltr/infer", json!({"outputs": []}), 400),
    ];
    for (path, body, status) in cases {
        let a = svc.post_json(path, &body).await;
        assert_eq!(a.status, status, "{path} {body}: {}", a.body);
        assert!(
            a.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            a.body
        );
        assert_eq!(a.body.as_object().unwrap().len(), 1);
    }
    let a = svc.post("/v2/models/ltr/infer", "{not json").await;
    assert_eq!(a.status, 400);
    // Another `/v2` path or method: the protocol's shape too (the `/v1` one elsewhere).
    for (a, status) in [
        (svc.get("/v2/models/ltr/explain").await, 404),
        (svc.get("/v2/repository/index").await, 404),
        (svc.get("/v2/models/ltr/infer").await, 405),
        (svc.post("/v2/health/ready", "{}").await, 405),
    ] {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.body["error"].is_string(), "{}", a.body);
        assert_eq!(a.body.as_object().unwrap().len(), 1);
    }
    assert_eq!(svc.get("/v2x").await.body["error"]["code"], "not_found");
    assert_eq!(svc.get("/v2/models/other").await.status, 404);
    assert_eq!(svc.get("/v2/models/other/ready").await.status, 404);

    // Versioned paths: the version served answers, another is the protocol's 404.
    assert_eq!(
        svc.get("/v2/models/ltr/versions/1").await.body["versions"],
        json!(["1"])
    );
    assert_eq!(svc.get("/v2/models/ltr/versions/1/ready").await.status, 200);
    for path in [
        "/v2/models/ltr/versions/2",
        "/v2/models/ltr/versions/2/ready",
    ] {
        let a = svc.get(path).await;
        assert_eq!(a.status, 404, "{path}");
        assert!(
            a.body["error"].as_str().unwrap().contains("\"2\""),
            "{}",
            a.body
        );
    }
    let one: Vec<f32> = vec![1.0; N_FEATURES];
    let body = json!({"inputs": [{"name": "X", "shape": [1, N_FEATURES], "datatype": "FP32", "data": one}]});
    let a = svc
        .post_json("/v2/models/ltr/versions/7/infer", &body)
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.body.as_object().unwrap().len(), 1, "{}", a.body);
}
