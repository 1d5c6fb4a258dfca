//! The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/…`): uploads go into the
//! content-addressed store and are recorded with their SHA-256; downloads are verified
//! against it; listings give bare names, `is_dir` and `file_size`.
//!
//! Versions that Quire's trainers registered keep their files as named artifacts of the
//! version; they are served under `_quire/model-versions/<name>/<version>/`, which is what
//! `get-download-uri` answers for them, so `mlflow.artifacts.download_artifacts(
//! "models:/ltr@production")` works for those too.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use quire_registry::{ArtifactFile, ArtifactRef, NamedArtifact, check_artifact_path};
use serde_json::{Value, json};

use crate::App;
use crate::error::ApiError;
use crate::req::Fields;
use crate::shapes;

type St = State<Arc<App>>;

/// Where the files of a version registered by Quire's trainers are served.
const VERSIONS_ROOT: &str = "_quire/model-versions";

/// The `mlflow-artifacts:` URI of a trainer-registered version's files.
pub fn version_uri(name: &str, version: i64) -> String {
    format!("mlflow-artifacts:/{VERSIONS_ROOT}/{name}/{version}")
}

/// The proxy path of an `mlflow-artifacts:` URI ([`quire_registry::proxy_path`]).
fn proxy_path(uri: &str) -> Result<String, ApiError> {
    quire_registry::proxy_path(uri)
        .ok_or_else(|| ApiError::invalid(format!("{uri:?} is not an mlflow-artifacts: URI")))
}

/// Every file under an `mlflow-artifacts:` URI, named by its path below it.
pub async fn files_under(app: &App, uri: &str) -> Result<Vec<NamedArtifact>, ApiError> {
    let root = proxy_path(uri)?;
    let files = app.registry.list_artifact_files(&root).await?;
    Ok(files
        .into_iter()
        .map(|f| NamedArtifact {
            name: f.path[root.len()..].trim_start_matches('/').to_owned(),
            artifact: f.artifact,
        })
        .collect())
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "json" => "application/json",
        "txt" | "yaml" | "yml" | "md" | "csv" | "py" | "log" => "text/plain; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "png" => "image/png",
        _ if path.ends_with("MLmodel") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn bytes_response(path: &str, bytes: Vec<u8>) -> Response {
    ([(CONTENT_TYPE, content_type(path))], bytes).into_response()
}

/// A trainer-registered version's path: `<name>/<version>` and the artifact below it.
fn split_version_path(rest: &str) -> Result<(&str, i64, Option<&str>), ApiError> {
    let mut parts = rest.splitn(3, '/');
    let name = parts.next().filter(|s| !s.is_empty());
    let version = parts.next().and_then(|v| v.parse().ok());
    match (name, version) {
        (Some(name), Some(version)) => Ok((name, version, parts.next())),
        _ => Err(ApiError::not_found(format!(
            "{VERSIONS_ROOT}/{rest} names no model version (expected <name>/<version>)"
        ))),
    }
}

async fn version_file(
    app: &App,
    name: &str,
    version: i64,
    artifact: &str,
) -> Result<(ArtifactRef, String), ApiError> {
    let mv = app.registry.get_model_version(name, version).await?;
    mv.artifacts
        .into_iter()
        .find(|a| a.name == artifact)
        .map(|a| (a.artifact, a.name))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "model version {name}/{version} has no artifact {artifact:?}"
            ))
        })
}

/// `PUT …/artifacts/<path>`: one file per call; a file at the same path is replaced.
pub async fn upload(
    State(app): St,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_artifact_path(&path)?;
    if path.starts_with(VERSIONS_ROOT) {
        return Err(ApiError::invalid(format!(
            "{VERSIONS_ROOT}/ is read-only: it serves the files of registered model versions"
        )));
    }
    let artifact = app.store.put(&body).await?;
    app.registry.put_artifact_file(&path, &artifact).await?;
    Ok(Json(json!({})))
}

/// `GET …/artifacts/<path>`: the file's bytes, verified against their recorded SHA-256.
pub async fn download(State(app): St, Path(path): Path<String>) -> Result<Response, ApiError> {
    if let Some(rest) = path
        .strip_prefix(VERSIONS_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    {
        let (name, version, artifact) = split_version_path(rest)?;
        let artifact = artifact.ok_or_else(|| {
            ApiError::invalid(format!("{path:?} is a directory; list it with ?path="))
        })?;
        let (r, name) = version_file(&app, name, version, artifact).await?;
        return Ok(bytes_response(&name, app.store.get(&r).await?));
    }
    let file = app.registry.get_artifact_file(&path).await?;
    Ok(bytes_response(&path, app.store.get(&file.artifact).await?))
}

/// `GET …/artifacts?path=<dir>`: the directory's entries (bare names), files with sizes.
pub async fn list(State(app): St, f: Fields) -> Result<Json<Value>, ApiError> {
    let dir = f.str("path")?.unwrap_or("").trim_matches('/').to_owned();
    let entries: Vec<Value> = if let Some(rest) = dir
        .strip_prefix(VERSIONS_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    {
        match split_version_path(rest) {
            Ok((name, version, None)) => {
                let mv = app.registry.get_model_version(name, version).await?;
                mv.artifacts
                    .iter()
                    .map(|a| json!({"path": a.name, "is_dir": false, "file_size": a.artifact.size}))
                    .collect()
            }
            _ => Vec::new(),
        }
    } else {
        let files = app.registry.list_artifact_files(&dir).await?;
        children(&dir, &files)
            .into_iter()
            .map(|(name, file)| shapes::file_entry(&name, file))
            .collect()
    };
    Ok(Json(if entries.is_empty() {
        json!({})
    } else {
        json!({"files": entries})
    }))
}

/// The direct children of `dir` among `files` (all below it): name → the file, or `None` for
/// a subdirectory.
fn children<'a>(
    dir: &str,
    files: &'a [ArtifactFile],
) -> BTreeMap<String, Option<&'a ArtifactFile>> {
    let skip = if dir.is_empty() { 0 } else { dir.len() + 1 };
    let mut out = BTreeMap::new();
    for f in files {
        let rel = &f.path[skip..];
        match rel.split_once('/') {
            Some((sub, _)) => {
                out.entry(sub.to_owned()).or_insert(None);
            }
            None => {
                out.insert(rel.to_owned(), Some(f));
            }
        }
    }
    out
}

/// `GET /api/2.0/quire/model-versions/artifact?name&version&artifact`: one named artifact of
/// a version (`model.onnx`, `feature_snapshot.json`…), verified against its SHA-256.
pub async fn version_artifact(State(app): St, f: Fields) -> Result<Response, ApiError> {
    let name = f.required("name")?;
    let version = f.required_i64("version")?;
    let (r, artifact) = version_file(&app, name, version, f.required("artifact")?).await?;
    Ok(bytes_response(&artifact, app.store.get(&r).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: i64) -> ArtifactFile {
        ArtifactFile {
            path: path.into(),
            artifact: ArtifactRef {
                uri: format!("file:///store/{path}"),
                sha256: "0".repeat(64),
                size,
            },
            created_at: 0,
        }
    }

    #[test]
    fn listing_gives_direct_children_with_bare_names() {
        let files = [
            file("1/r/artifacts/a.txt", 3),
            file("1/r/artifacts/model/MLmodel", 10),
            file("1/r/artifacts/model/data/x.bin", 5),
        ];
        let top = children("1/r/artifacts", &files);
        let summary: Vec<(&str, Option<i64>)> = top
            .iter()
            .map(|(n, f)| (n.as_str(), f.map(|f| f.artifact.size)))
            .collect();
        assert_eq!(summary, [("a.txt", Some(3)), ("model", None)]);
        let model = children("1/r/artifacts/model", &files[1..]);
        assert_eq!(model.keys().collect::<Vec<_>>(), ["MLmodel", "data"]);
        assert_eq!(children("", &files).keys().collect::<Vec<_>>(), ["1"]);
    }

    #[test]
    fn proxy_paths_of_uris() {
        assert_eq!(
            proxy_path("mlflow-artifacts:/1/r/artifacts").unwrap(),
            "1/r/artifacts"
        );
        assert_eq!(proxy_path("mlflow-artifacts://h:5000/1/r").unwrap(), "1/r");
        assert!(proxy_path("s3://b/k").is_err());
    }

    #[test]
    fn version_paths() {
        assert_eq!(split_version_path("ltr/3").unwrap(), ("ltr", 3, None));
        assert_eq!(
            split_version_path("ltr/3/model.onnx").unwrap(),
            ("ltr", 3, Some("model.onnx"))
        );
        assert!(split_version_path("ltr").is_err());
        assert!(split_version_path("ltr/x").is_err());
    }
}
