//! quire-ranking: the real-time ranking service the Search Service calls on every search
//! (`docs/contracts/ranking-api.md`), started by `quire serve ranking --model NAME@ALIAS
//! --listen ADDR`.
//!
//! # What it does
//! - **Serves one registry alias.** It loads the model version `NAME@ALIAS` points at
//!   (`ltr@production`): the ONNX model (`model.onnx`), the feature spec (`feature_spec.json`)
//!   and the online feature snapshot (`feature_snapshot.json`) registered with that version,
//!   each read through [`quire_registry::ArtifactStore::get`], which refuses bytes whose SHA-256
//!   is not the recorded one. A version is refused, naming why, when the model's feature names
//!   (its `quire.feature_names` metadata) are not [`quire_featspec::FEATURE_NAMES`], when the spec
//!   or the snapshot were computed by other feature code, when the snapshot's spec is not the
//!   version's spec, when the model was trained by another run than the version's, or when it
//!   does not score a warm-up sample with finite numbers.
//! - **Follows the alias.** Every [`RankingOptions::poll_interval`] it asks the registry where
//!   the alias points. When it has moved, the new version is loaded and warmed (every session
//!   scores a sample) on a blocking thread while the old one keeps serving, then swapped in
//!   atomically ([`arc_swap`]): a request holds the version it started with until it answers,
//!   so none fails or waits because of a swap. A version that cannot be loaded (missing,
//!   corrupt or checksum-mismatched artifact, incompatible features) is refused, logged and
//!   counted (`quire_ranking_model_load_failures_total{reason}`); the old version keeps serving
//!   and the refused one is tried again after [`RankingOptions::retry_interval`]. Until a first
//!   version loads the service is up but not ready (`503` on `/v1/rank` and `/health/ready`).
//! - **Ranks.** `POST /v1/rank` computes every candidate's features from the request and the
//!   snapshot of the version being served (unknown users and books are cold-start: `None`) with
//!   [`quire_featspec::ServingTables`]: the snapshot resolved once per loaded version (book ids
//!   to dense rows, each book's request-independent columns precomputed, tokens interned),
//!   ending in [`quire_featspec::assemble_parts`] as [`quire_featspec::assemble`] — the code the
//!   training job used — does, and tested bit for bit against it. It scores all candidates as
//!   one batch on one of [`RankingOptions::session_pool`] dedicated scoring threads (one per
//!   ONNX Runtime session) fed by a channel; parsing, features, scoring, sorting and the
//!   response's JSON all happen there, never on the async runtime. The batch is one ONNX
//!   Runtime call, or, while a core is free, two: its halves scored at once, the second by an
//!   idle scoring thread ([`RankingOptions::split_min_rows`]), each row's score the same as in
//!   the whole batch. `ranked` is sorted by
//!   score, descending; ties keep the input order.
//!
//! # Endpoints
//! | method, path | answer |
//! |---|---|
//! | `POST /v1/rank` | the contract's request → `{"request_id", "model": {"name", "version"}, "ranked": [{"book_id", "score"}]}` |
//! | `POST /v1/features` | the same request → `{"request_id", "model", "feature_names", "candidates": [{"book_id", "features"}]}`: the vectors `/v1/rank` scores (missing values as `null`), to check training/serving parity and explain a ranking |
//! | `GET /health/live` | `200 {"status": "live"}` while the process runs |
//! | `GET /health/ready` | `200 {"status": "ready", "model": …}` once a version is loaded, else `503` |
//! | `GET /metrics` | Prometheus (OpenMetrics text): `quire_ranking_request_duration_seconds{endpoint}`, `quire_ranking_candidates{endpoint}` (per request), `quire_ranking_scoring_duration_seconds`, `quire_ranking_queue_duration_seconds` (a request's wait for a scoring thread), `quire_ranking_requests_total{endpoint,status}`, `quire_ranking_errors_total{endpoint,code}`, `quire_ranking_model_info{name,version,run_id}`, `quire_ranking_model_version`, `quire_ranking_ready`, `quire_ranking_model_swaps_total`, `quire_ranking_model_load_failures_total{reason}`, `quire_ranking_registry_errors_total`, `quire_ranking_split_batches_total{outcome}` (batches split over two scoring threads: `helped`, or `withdrawn` when no thread took the half in time) |
//! | `POST /v2/models/{name}/infer`, `POST /v2/models/{name}/versions/{v}/infer` | Open Inference Protocol (KServe v2 JSON): input `X`, `FP32`, shape `[N, 28]` (row-major, flat or nested; `null` for a missing value) → output `Y`, `FP32`, `[N, 1]`; a path naming a version answers for the version served (404 for another) |
//! | `GET /v2/models/{name}`, `GET /v2/models/{name}/ready` (also under `/versions/{v}`), `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2` | the protocol's model metadata, readiness (`200`, or `400` while no version is loaded: the protocol's 4xx for false) and server metadata |
//!
//! # Errors
//! `/v1/…` errors are `{"error": {"code", "message"}}`; the `x-request-id` header of every
//! `/v1/rank` and `/v1/features` answer carries the request id (the body's `request_id`, else
//! the request's `x-request-id` header, else a generated UUID, which `/v1/rank` also puts in
//! its answer; an id with other than visible ASCII characters, or longer than
//! 256 bytes, is only in the body). `/v2` answers carry the protocol's own `id`.
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `malformed_json` | the body is not JSON |
//! | 400 | `invalid_request` | wrong types, missing fields (`query`, `candidates`, `book_id`, `bm25`) |
//! | 400 | `no_candidates`, `too_many_candidates` | 0 or more than [`RankingOptions::max_candidates`] candidates |
//! | 400 | `non_finite_number` | a `bm25` beyond a double (`1e999`; JSON has no NaN or infinity) |
//! | 413 | `payload_too_large` | a body over [`RankingOptions::max_body_bytes`] |
//! | 503 | `model_not_loaded` | no version loaded yet |
//! | 404, 405 | `not_found`, `method_not_allowed` | another path or method |
//!
//! `/v2/…` errors follow the Open Inference Protocol: `{"error": "message"}` with 400 (bad
//! tensor: name, datatype, shape, values), 404 (another model name or version, another `/v2`
//! path), 405, 413 and 503.
//! No request can get a 5xx by its content, and a bad request only costs its own parsing.
//!
//! # Logs
//! `tracing` events with structured fields: one `debug` event per answered request and an
//! `info` event per rejected one (`request_id`, `endpoint`, `status`, `code`, `candidates`,
//! `micros`), `info` when a version is served, `error` when one is refused (`version`,
//! `reason`, `error`), `warn` when the registry cannot be read. The binary chooses the
//! subscriber.
//!
//! # Use
//! ```no_run
//! # async fn run() -> quire_ranking::Result<()> {
//! use quire_ranking::{RankingOptions, serve};
//! let mut opts = RankingOptions::new("ltr@production".parse()?, "sqlite:///srv/quire/registry.db");
//! opts.listen = "0.0.0.0:8080".parse().expect("an address");
//! opts.artifacts = "/srv/quire/models".into();
//! serve(opts, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
//! [`RankingService::bind`] + [`RankingService::local_addr`] + [`RankingService::run`] do the
//! same in steps (binding port 0 in tests).
//!
//! Architecture Invariant: the ranking service never reads the lake and never builds Polars:
//! its inputs are the registry and the artifacts of the version it serves.

mod api;
mod error;
mod follow;
mod metrics;
mod model;
mod oip;
mod rank;
mod scoring;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

pub use error::{Error, Result};
pub use model::LoadError;

/// A registered model and one of its aliases: `ltr@production`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelAlias {
    /// The registered model's name (`ltr`).
    pub name: String,
    /// The alias followed (`production`).
    pub alias: String,
}

impl FromStr for ModelAlias {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('@') {
            Some((name, alias))
                if !name.trim().is_empty() && !alias.trim().is_empty() && !alias.contains('@') =>
            {
                Ok(Self {
                    name: name.to_owned(),
                    alias: alias.to_owned(),
                })
            }
            _ => Err(Error::ModelAlias(s.to_owned())),
        }
    }
}

impl fmt::Display for ModelAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.alias)
    }
}

/// Default [`RankingOptions::listen`].
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default [`RankingOptions::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default [`RankingOptions::retry_interval`].
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Default [`RankingOptions::max_body_bytes`]: 1 MiB (1,000 candidates take about 60 kB; a
/// `[1000, 28]` tensor about 400 kB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// Default [`RankingOptions::max_candidates`] (the contract's limit).
pub const DEFAULT_MAX_CANDIDATES: usize = 1000;
/// Default [`RankingOptions::split_min_rows`].
pub const DEFAULT_SPLIT_MIN_ROWS: usize = 32;

/// How the service runs.
#[derive(Debug, Clone)]
pub struct RankingOptions {
    /// The alias to serve and follow.
    pub model: ModelAlias,
    /// Address to listen on (port 0: any free port, see [`RankingService::local_addr`]).
    pub listen: SocketAddr,
    /// The registry's URL (`sqlite:///abs/registry.db` or `postgres://…`).
    pub registry_url: String,
    /// Root of the artifact store (artifacts are read through their `file://` URIs, which the
    /// registry records; the root is opened as the store's).
    pub artifacts: PathBuf,
    /// How often the registry is asked where the alias points.
    pub poll_interval: Duration,
    /// How long a version that failed to load waits before it is tried again (a new alias
    /// target is tried at once).
    pub retry_interval: Duration,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Most candidates (and `/v2` rows) per request (400 above).
    pub max_candidates: usize,
    /// ONNX Runtime sessions per model, each single-threaded; also the number of scoring
    /// threads, so of requests scored at once. Default: [`default_scoring_threads`].
    pub session_pool: usize,
    /// Fewest rows (candidates) a request needs for its batch to be split in two halves scored
    /// at once by its scoring thread and an idle one, while fewer threads score than the
    /// machine has cores; 0 never splits (a batch of one row is never split).
    /// Default: [`DEFAULT_SPLIT_MIN_ROWS`].
    pub split_min_rows: usize,
}

impl RankingOptions {
    /// Options with the defaults for everything but the alias and the registry.
    pub fn new(model: ModelAlias, registry_url: impl Into<String>) -> Self {
        Self {
            model,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            registry_url: registry_url.into(),
            artifacts: PathBuf::from("models"),
            poll_interval: DEFAULT_POLL_INTERVAL,
            retry_interval: DEFAULT_RETRY_INTERVAL,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_candidates: DEFAULT_MAX_CANDIDATES,
            session_pool: default_scoring_threads(),
            split_min_rows: DEFAULT_SPLIT_MIN_ROWS,
        }
    }
}

/// One scoring thread more than the machine has cores.
///
/// With one per core, a request that arrives while every core scores waits in the channel for
/// a whole scoring (~0.7 ms for 100 candidates) before its own starts; with one more, its
/// thread starts at once and shares the cores with the running ones. Measured on 2 cores at
/// half of saturation (benches/results/ranking.md): p99 3.57 ms against 3.81 ms (medians of
/// six runs each), the same saturated throughput.
pub fn default_scoring_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) + 1
}

/// A bound, not yet running service.
#[derive(Debug)]
pub struct RankingService {
    listener: TcpListener,
    state: Arc<api::AppState>,
    follower: follow::Follower,
}

impl RankingService {
    /// Starts ONNX Runtime, connects to the registry, opens the artifact store and binds the
    /// address. No version is loaded yet: that starts with [`Self::run`].
    ///
    /// # Errors
    /// [`Error::Runtime`] when `ORT_DYLIB_PATH` names no library or one ONNX Runtime cannot
    /// start from (a host's fault, not a model version's), [`Error::Registry`] when the
    /// registry or the store cannot be opened, [`Error::Bind`] when the address is taken.
    pub async fn bind(opts: RankingOptions) -> Result<Self> {
        quire_onnx::start_runtime()?;
        // A registry that exists: a SQLite path given wrong (or the service started in
        // another directory) is an error naming it, not a new empty registry waited on forever.
        let registry = quire_registry::Registry::connect_existing(&opts.registry_url).await?;
        let store = quire_registry::ArtifactStore::open(&opts.artifacts).await?;
        let listener = TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let state = Arc::new(api::AppState::new(&opts).map_err(Error::Threads)?);
        let follower = follow::Follower::new(registry, store, &opts, state.clone());
        Ok(Self {
            listener,
            state,
            follower,
        })
    }

    /// The address the service listens on.
    ///
    /// # Errors
    /// [`Error::Serve`] if the socket cannot tell (it can once bound).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(Error::Serve)
    }

    /// Serves until `shutdown` completes, following the alias meanwhile; then stops accepting
    /// connections, lets the requests in flight finish (for at most
    /// [`quire_http::DEFAULT_DRAIN`]) and returns.
    ///
    /// # Errors
    /// [`Error::Serve`] if the socket cannot tell its address.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let follower = tokio::spawn(self.follower.run(stopped));
        info!(%addr, "ranking service listening");
        quire_http::serve(self.listener, api::router(self.state), shutdown).await;
        // The follower may be loading a version: tell it to stop and wait for it.
        let _ = stop.send(true);
        if let Err(e) = follower.await {
            tracing::error!(error = %e, "the alias follower failed");
        }
        info!(%addr, "ranking service stopped");
        Ok(())
    }
}

/// Binds, then serves until `shutdown` completes: [`RankingService::bind`] then
/// [`RankingService::run`].
///
/// # Errors
/// Those of [`RankingService::bind`] and [`RankingService::run`].
pub async fn serve(
    opts: RankingOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    RankingService::bind(opts).await?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_alias_parses_name_at_alias() {
        let m: ModelAlias = "ltr@production".parse().unwrap();
        assert_eq!(m.name, "ltr");
        assert_eq!(m.alias, "production");
        assert_eq!(m.to_string(), "ltr@production");
        for bad in ["ltr", "@production", "ltr@", "a@b@c", " @x", ""] {
            let err = bad.parse::<ModelAlias>().unwrap_err();
            assert!(err.to_string().contains("NAME@ALIAS"), "{bad}: {err}");
        }
    }

    #[test]
    fn default_listen_matches_the_constant() {
        let o = RankingOptions::new("ltr@production".parse().unwrap(), "sqlite:///x.db");
        assert_eq!(o.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(o.session_pool, default_scoring_threads());
        assert!(o.session_pool >= 2);
    }
}
