//! The registry server against the real `mlflow` client (mlflow-skinny 3.17, from PyPI) on
//! SQLite and on PostgreSQL, and its UI pages in headless Chromium.

mod harness;

use harness::{TestServer, chromium};
use quire_registry::{ArtifactStore, NamedArtifact, NewModelVersion, Registry};

const WORKFLOW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mlflow_workflow.py");

/// Runs the workflow script; returns the ids it printed.
fn run_workflow(server: &TestServer) -> serde_json::Value {
    let out = server.python(&[WORKFLOW]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the mlflow workflow failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("workflow: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let passed: usize = summary
        .trim_start_matches("workflow: ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable summary {summary:?}"));
    assert!(
        summary.ends_with("passed, 0 failed") && passed >= 80,
        "{summary}"
    );
    let ids = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no ids line in:\n{stdout}"));
    serde_json::from_str(ids).expect("the ids line is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_workflow_on_postgres() {
    let server = TestServer::postgres().await;
    run_workflow(&server);
}

/// The workflow on SQLite, then what only Quire has: a version registered by Quire's own
/// trainers downloads through the `mlflow` client, a corrupted artifact is refused, and the
/// UI shows all of it in a real browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_client_workflow_then_quire_versions_and_ui_on_sqlite() {
    let server = TestServer::sqlite().await;
    let ids = run_workflow(&server);
    let run_id = ids["run_id"].as_str().expect("run id");

    // A version as `quire train` registers it: named artifacts in the content-addressed store.
    let registry = Registry::connect(&server.registry_url)
        .await
        .expect("second handle");
    let store = ArtifactStore::open(&server.artifacts)
        .await
        .expect("artifact store");
    let onnx = store
        .put(b"onnx-model-bytes")
        .await
        .expect("store model.onnx");
    let snapshot = store
        .put(b"{\"features\": 29}")
        .await
        .expect("store snapshot");
    registry
        .create_registered_model("ltr-trained", "")
        .await
        .expect("model");
    let v = registry
        .create_model_version(&NewModelVersion {
            name: "ltr-trained".into(),
            source: onnx.uri.clone(),
            artifacts: vec![
                NamedArtifact {
                    name: "model.onnx".into(),
                    artifact: onnx.clone(),
                },
                NamedArtifact {
                    name: "feature_snapshot.json".into(),
                    artifact: snapshot,
                },
            ],
            ..NewModelVersion::default()
        })
        .await
        .expect("version");
    registry
        .set_alias("ltr-trained", "production", v.version, "quire train")
        .await
        .expect("alias");
    let out = server.python(&[
        "-c",
        "import mlflow, pathlib, sys\n\
         d = pathlib.Path(mlflow.artifacts.download_artifacts('models:/ltr-trained@production', dst_path=sys.argv[1] + '/d'))\n\
         print(sorted(p.name for p in d.iterdir()), (d / 'model.onnx').read_text())",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "['feature_snapshot.json', 'model.onnx'] onnx-model-bytes"
    );

    // Bytes that no longer match their digest are refused, with a status the client does not
    // retry.
    let url = format!(
        "{}/api/2.0/quire/model-versions/artifact?name=ltr-trained&version={}&artifact=model.onnx",
        server.url, v.version
    );
    let good = reqwest::get(&url).await.expect("download");
    assert_eq!(good.status(), 200);
    assert_eq!(good.text().await.expect("body"), "onnx-model-bytes");
    let blob = quire_registry::local_path(&onnx.uri).expect("local path");
    std::fs::write(&blob, b"tampered").expect("corrupt the stored bytes");
    let bad = reqwest::get(&url).await.expect("download");
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value =
        serde_json::from_str(&bad.text().await.expect("body")).expect("json");
    assert_eq!(body["error_code"], "DATA_LOSS");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&onnx.sha256)
    );

    // The UI, in headless Chromium: every page renders what the client wrote, with no console
    // message.
    let runs = registry
        .search_runs(&quire_registry::SearchRuns {
            filter: "attributes.run_name = 'sweep-1'".into(),
            ..Default::default()
        })
        .await
        .expect("search");
    let sweep = &runs.runs[0].info.run_id;
    let notes_sha = sha256_hex(b"lambdarank on 29 features\n");
    let pages: Vec<(String, Vec<String>)> = vec![
        (
            "/ui/".into(),
            vec!["bookstore-ranking".into(), "Default".into()],
        ),
        (
            "/ui/experiments/1".into(),
            vec![
                "ltr-baseline".into(),
                "sweep-2".into(),
                "metrics.ndcg_5".into(),
                "0.72".into(),
            ],
        ),
        (
            format!("/ui/runs/{run_id}"),
            vec![
                "<svg".into(),
                "ndcg_5".into(),
                "lambdarank".into(),
                "notes.txt".into(),
                notes_sha,
            ],
        ),
        (
            format!("/ui/compare?run={run_id}&run={sweep}"),
            vec![
                "ltr-baseline".into(),
                "sweep-1".into(),
                "class=\"diff\"".into(),
                "<polyline".into(),
            ],
        ),
        (
            "/ui/models".into(),
            vec!["recs-als".into(), "ltr-trained".into()],
        ),
        (
            "/ui/models/recs-als".into(),
            vec![
                "Alias history".into(),
                "staging".into(),
                "deleted".into(),
                "dataset=2026-11".into(),
            ],
        ),
        (
            "/ui/models/ltr-trained".into(),
            vec!["model.onnx".into(), "feature_snapshot.json".into()],
        ),
    ];
    for (path, wanted) in &pages {
        let (dom, console) = chromium(&format!("{}{path}", server.url));
        assert!(console.is_empty(), "{path}: console messages {console:?}");
        for w in wanted {
            assert!(
                dom.contains(w.as_str()),
                "{path}: {w:?} missing from the page:\n{dom}"
            );
        }
    }
    let missing = reqwest::get(format!("{}/ui/runs/nope", server.url))
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    registry.close().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
