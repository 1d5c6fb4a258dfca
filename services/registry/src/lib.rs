//! quire-registry-server: the registry over HTTP, started by `quire serve registry --listen
//! ADDR` on the same registry database and artifact store as `quire train`.
//!
//! # What it serves
//! - **MLflow's REST API 2.0** under `/api/2.0/mlflow/…`, enough for the real `mlflow` client's
//!   everyday workflow, unchanged: experiments (`get-by-name`, `create`, `get`, `search`,
//!   delete/restore, tags), runs (`create`, `get`, `update`, `search` with filters on
//!   metrics/params/tags/attributes, `order_by` and page tokens, `log-parameter`, `log-metric`,
//!   `log-batch`, `set-tag`/`delete-tag`, `outputs`), `metrics/get-history`, MLflow 3's logged
//!   models (`POST logged-models`, `GET/PATCH/DELETE logged-models/{id}`, tags, params,
//!   `search`), registered models (`create`, `get`, `search`, `update`, `delete`, tags,
//!   `alias` set/get/delete, `get-latest-versions`) and model versions (`create`, `get`,
//!   `search`, `update`, `delete`, tags, `get-download-uri`).
//! - **The artifact proxy** under `/api/2.0/mlflow-artifacts/artifacts/<path>`: `PUT` stores
//!   one file in the content-addressed store and records its SHA-256, `GET` downloads it
//!   verified, `GET ?path=<dir>` lists a directory. Runs' `artifact_uri` is
//!   `mlflow-artifacts:/<experiment>/<run>/artifacts`.
//! - **Quire's extras**: a model version's JSON carries `quire_artifacts` (every file with its
//!   SHA-256; a version registered through the API records the files under its source);
//!   `GET /api/2.0/quire/registered-models/alias-history?name&alias` (every move of an alias);
//!   `GET /api/2.0/quire/model-versions/artifact?name&version&artifact` (one named artifact,
//!   e.g. the ONNX export or the online feature snapshot, verified); versions Quire's trainers
//!   registered download through the proxy too, under `mlflow-artifacts:/_quire/model-versions/<name>/<version>`.
//! - **A web UI** under `/ui` (`/` redirects there): experiments and their runs, a run's
//!   params, metrics, tags, metric charts over steps (server-rendered SVG) and artifacts, a run
//!   comparison, registered models with versions, aliases and alias history. No script, no
//!   external resource.
//!
//! # The client's rules, kept
//! Ids (`experiment_id`, `run_id`, `version`) are JSON strings; GETs read their fields from the
//! query string (repeated keys for lists), other methods from a JSON body, and integers may come
//! as numbers or strings; `run_id` and `run_uuid` are both accepted; `next_page_token` is left
//! out on the last page; versions are created `READY`; params are immutable and metrics
//! append-only. Errors are `{"error_code", "message"}` with a 4xx status
//! (`RESOURCE_DOES_NOT_EXIST` 404, `RESOURCE_ALREADY_EXISTS` and `INVALID_PARAMETER_VALUE`
//! 400, an unknown endpoint `ENDPOINT_NOT_FOUND` 404); only a failing database or disk is a 5xx,
//! because the client retries 5xx for minutes.
//!
//! Architecture Invariant: all state is in the registry database and the artifact store; the
//! server holds none, so several servers and `quire train` may share one registry.

mod api;
mod artifacts;
mod conditions;
mod error;
mod req;
mod shapes;
mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use quire_registry::{ArtifactStore, Registry};
use tokio::net::TcpListener;
use tracing::info;

pub use error::{ApiError, Error, Result};

/// Default [`RegistryServerOptions::listen`] (MLflow's port), for command lines.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5000";
/// Default [`RegistryServerOptions::max_body_bytes`]: 1 GiB, the largest artifact one `PUT`
/// may upload (it is held in memory while it is hashed and stored).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 30;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct RegistryServerOptions {
    pub listen: SocketAddr,
    /// `sqlite:///path/registry.db` or `postgres://…`.
    pub registry_url: String,
    /// The artifact store's root directory.
    pub artifacts: PathBuf,
    /// The largest request body (an artifact upload), in bytes.
    pub max_body_bytes: usize,
}

impl RegistryServerOptions {
    pub fn new(registry_url: impl Into<String>, artifacts: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            registry_url: registry_url.into(),
            artifacts: artifacts.into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What every handler shares: the registry and the artifact store.
pub(crate) struct App {
    pub registry: Registry,
    pub store: ArtifactStore,
}

/// A bound server, not yet serving (bind port 0, read [`RegistryServer::local_addr`], run).
pub struct RegistryServer {
    listener: TcpListener,
    router: Router,
    registry: Registry,
}

impl std::fmt::Debug for RegistryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl RegistryServer {
    /// Opens the registry (migrating it, and creating MLflow's `Default` experiment 0) and the
    /// artifact store, and binds the address.
    pub async fn bind(opts: RegistryServerOptions) -> Result<Self> {
        let registry = Registry::connect(&opts.registry_url)
            .await
            .map_err(|source| Error::Registry {
                url: quire_registry::redacted_url(&opts.registry_url),
                source,
            })?;
        registry
            .ensure_default_experiment()
            .await
            .map_err(|source| Error::Registry {
                url: quire_registry::redacted_url(&opts.registry_url),
                source,
            })?;
        let store = ArtifactStore::open(&opts.artifacts)
            .await
            .map_err(|source| Error::Artifacts {
                path: opts.artifacts.display().to_string(),
                source,
            })?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let app = Arc::new(App {
            registry: registry.clone(),
            store,
        });
        Ok(Self {
            listener,
            router: router(app, opts.max_body_bytes),
            registry,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight (for at most
    /// [`quire_http::DEFAULT_DRAIN`]).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        info!(addr = ?self.listener.local_addr().ok(), "registry server listening");
        quire_http::serve(self.listener, self.router, shutdown).await;
        self.registry.close().await;
        Ok(())
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn serve(
    opts: RegistryServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    RegistryServer::bind(opts).await?.run(shutdown).await
}

fn router(app: Arc<App>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/api/2.0/mlflow-artifacts/artifacts", get(artifacts::list))
        .route(
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            get(artifacts::download).put(artifacts::upload),
        )
        .merge(api::routes())
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::no_endpoint(method.as_str(), uri.path()).into_response()
    } else {
        ui::not_found(uri.path()).into_response()
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "ENDPOINT_NOT_FOUND",
        message: format!("{} does not answer {method}", uri.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_listen_is_the_options_default() {
        let opts = RegistryServerOptions::new("sqlite:///r.db", "/a");
        assert_eq!(opts.listen.to_string(), DEFAULT_LISTEN);
    }
}
