//! Versions that must not be served — corrupt or checksum-mismatched artifacts, models that do
//! not fit the feature code — are refused, counted by reason, and the old version keeps serving.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quire_featspec::{FeatureSpec, OnlineSnapshot};
use serde_json::json;

use crate::harness::{Fixture, Registered, Variant, metric, onnx, world};

/// The stored file of `version`'s artifact `name`.
async fn stored_file(fx: &Fixture, version: i64, name: &str) -> PathBuf {
    let mv = fx.registry.get_model_version("ltr", version).await.unwrap();
    let a = mv.artifacts.iter().find(|a| a.name == name).unwrap();
    quire_registry::local_path(&a.artifact.uri).unwrap()
}

fn failures(reason: &str) -> String {
    format!("quire_ranking_model_load_failures_total{{reason=\"{reason}\"}}")
}

async fn assert_serving(svc: &crate::harness::Service, version: i64) {
    let a = svc.get("/health/ready").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["model"]["version"], version);
    let mut rng = rand::SeedableRng::seed_from_u64(5);
    let req = world().random_request(&mut rng, 20);
    assert_eq!(svc.rank(&req).await["model"]["version"], version);
}

#[tokio::test]
async fn a_checksum_mismatch_is_refused_and_the_old_version_keeps_serving() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    // Version 2's model file is altered on disk after registration.
    let v2 = fx.register(Variant::B).await;
    let path = stored_file(&fx, v2.version, "model.onnx").await;
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    fx.promote(v2.version).await;
    svc.wait_for_metric(&failures("checksum_mismatch"), 1.0)
        .await;
    assert_serving(&svc, v1.version).await;

    // The next good version is served.
    let v3 = fx.register(Variant::B).await;
    fx.promote(v3.version).await;
    svc.wait_for_version(v3.version).await;
    assert_serving(&svc, v3.version).await;
    let text = svc.metrics().await;
    assert_eq!(metric(&text, "quire_ranking_model_swaps_total"), Some(1.0));
}

/// What is wrong with a version.
#[derive(Clone, Copy, Debug)]
enum Bad {
    NotOnnx,
    UnnamedFeatures,
    OtherRun,
    SnapshotOfOtherGenres,
    TrainedOnOtherSnapshot,
    OlderFeatureCode,
    FutureSnapshotFormat,
    SpecNotASpec,
    NoSnapshot,
}

impl Bad {
    fn reason(self) -> &'static str {
        match self {
            Bad::NotOnnx => "invalid_model",
            Bad::FutureSnapshotFormat => "invalid_snapshot",
            Bad::SpecNotASpec => "invalid_spec",
            Bad::NoSnapshot => "missing_artifact",
            Bad::UnnamedFeatures
            | Bad::OtherRun
            | Bad::SnapshotOfOtherGenres
            | Bad::TrainedOnOtherSnapshot
            | Bad::OlderFeatureCode => "incompatible",
        }
    }

    /// The version's artifacts, trained by `run`.
    fn artifacts(self, run: &str) -> Vec<(&'static str, Vec<u8>)> {
        let snapshot = world().snapshot();
        let mut model = onnx(Variant::A, run, &snapshot);
        let mut spec = serde_json::to_vec(&snapshot.spec).unwrap();
        let mut snap = snapshot.clone();
        match self {
            Bad::NotOnnx => model = b"this is not onnx".to_vec(),
            Bad::UnnamedFeatures => model = onnx(Variant::Unnamed, run, &snapshot),
            Bad::OtherRun => {
                model = onnx(Variant::A, "0123456789abcdef0123456789abcdef", &snapshot)
            }
            Bad::SnapshotOfOtherGenres => snap.spec = FeatureSpec::new(vec!["Poetry".into()]),
            Bad::TrainedOnOtherSnapshot => {
                let other =
                    OnlineSnapshot::new(snapshot.spec.clone(), Default::default(), 0).unwrap();
                model = onnx(Variant::A, run, &other);
            }
            Bad::OlderFeatureCode => {
                let mut old = snapshot.spec.clone();
                old.version = "ltr-features.0".to_owned();
                spec = serde_json::to_vec(&old).unwrap();
            }
            Bad::FutureSnapshotFormat => snap.format += 1,
            Bad::SpecNotASpec => spec = json!({"names": 3}).to_string().into_bytes(),
            Bad::NoSnapshot => {}
        }
        let mut artifacts = vec![("model.onnx", model), ("feature_spec.json", spec)];
        if !matches!(self, Bad::NoSnapshot) {
            artifacts.push(("feature_snapshot.json", serde_json::to_vec(&snap).unwrap()));
        }
        artifacts
    }
}

#[tokio::test]
async fn corrupt_and_incompatible_versions_are_refused_by_reason() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    fx.promote(v1.version).await;
    let svc = fx.start().await;
    svc.wait_for_version(v1.version).await;

    let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
    for bad in [
        Bad::NotOnnx,
        Bad::UnnamedFeatures,
        Bad::OtherRun,
        Bad::SnapshotOfOtherGenres,
        Bad::TrainedOnOtherSnapshot,
        Bad::OlderFeatureCode,
        Bad::FutureSnapshotFormat,
        Bad::SpecNotASpec,
        Bad::NoSnapshot,
    ] {
        let run = fx.new_run().await;
        let Registered { version, .. } = fx.register_artifacts(&run, bad.artifacts(&run)).await;
        fx.promote(version).await;
        let n = expected.entry(bad.reason()).or_default();
        *n += 1.0;
        svc.wait_for_metric(&failures(bad.reason()), *n).await;
        let text = svc.metrics().await;
        assert_eq!(metric(&text, &failures(bad.reason())), Some(*n), "{bad:?}");
        assert_serving(&svc, v1.version).await;
    }
    let text = svc.metrics().await;
    assert_eq!(metric(&text, "quire_ranking_model_swaps_total"), Some(0.0));
    assert_eq!(metric(&text, "quire_ranking_model_version"), Some(1.0));
}

#[tokio::test]
async fn without_a_loadable_version_the_service_is_not_ready_and_retries() {
    let fx = Fixture::new().await;
    let v1 = fx.register(Variant::A).await;
    let path = stored_file(&fx, v1.version, "model.onnx").await;
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"truncated").unwrap();
    fx.promote(v1.version).await;

    let svc = fx.start().await;
    svc.wait_for_metric(&failures("checksum_mismatch"), 1.0)
        .await;
    assert_eq!(svc.get("/health/ready").await.status, 503);
    assert_eq!(svc.get("/health/live").await.status, 200);
    let mut rng = rand::SeedableRng::seed_from_u64(9);
    let req = world().random_request(&mut rng, 10);
    let a = svc.post_json("/v1/rank", &req.json()).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.body["error"]["code"], "model_not_loaded");

    // The file is repaired: the same version loads at its next try.
    std::fs::write(&path, &good).unwrap();
    svc.wait_for_version(v1.version).await;
    assert_serving(&svc, v1.version).await;
}
