//! The tests' world (a small bookstore's feature tables), models trained on it, a registry in a
//! temporary directory, and the service started on it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use quire_featspec::{
    BookActivity, BookInfo, FEATURE_NAMES, FeatureSpec, FeatureTables, N_FEATURES, OnlineSnapshot,
    Request, UserProfile, assemble, bm25_feature,
};
use quire_lgbm::{Dataset, TrainOptions, train};
use quire_onnx::{ExportMeta, OnnxScorer, export};
use quire_ranking::{RankingOptions, RankingService};
use quire_registry::{ArtifactStore, NamedArtifact, NewModelVersion, NewRun, Registry};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tempfile::TempDir;

pub const MODEL: &str = "ltr";
pub const ALIAS: &str = "production";

/// The feature job's view of a small bookstore at the end of its events: the catalog, each
/// book's activity (including books seen in events but not in the catalog, `ev_*`) and each
/// user's history.
pub struct World {
    pub spec: FeatureSpec,
    pub catalog: BTreeMap<String, BookInfo>,
    pub activity: BTreeMap<String, BookActivity>,
    pub users: BTreeMap<String, UserProfile>,
}

const GENRES: [&str; 4] = ["Fantasy", "History", "Romance", "Science Fiction"];
const AUTHORS: [&str; 6] = [
    "Ursula Le Guin",
    "Mary Beard",
    "Jane Austen",
    "Iain Banks",
    "Robin Hobb",
    "Hilary Mantel",
];
pub const WORDS: [&str; 12] = [
    "dragon", "empire", "love", "star", "sea", "night", "queen", "war", "garden", "machine",
    "city", "winter",
];
/// Books in the catalog: `bk_0` … `bk_39`.
pub const CATALOG_BOOKS: usize = 40;
/// Users with a history: `usr_0` … `usr_8`; `usr_9` was seen but did nothing.
pub const USERS: usize = 10;

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::new)
}

impl World {
    fn new() -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut catalog = BTreeMap::new();
        for b in 0..CATALOG_BOOKS {
            let title: Vec<&str> = WORDS
                .choose_multiple(&mut rng, 2 + b % 2)
                .copied()
                .collect();
            let series = (b % 4 == 0).then(|| format!("Saga {}", b % 3));
            let info = BookInfo::new(
                &title.join(" "),
                AUTHORS[rng.gen_range(0..AUTHORS.len())],
                GENRES[rng.gen_range(0..GENRES.len())],
                series.as_deref(),
                series.as_ref().map(|_| (b / 4 % 3) as i64 + 1),
                rng.gen_bool(0.9)
                    .then(|| f64::from(rng.gen_range(500u32..3000)) / 100.0),
                rng.gen_bool(0.8)
                    .then(|| f64::from(rng.gen_range(30u32..50)) / 10.0),
                rng.gen_bool(0.8).then(|| rng.gen_range(0..5000)),
                Some(rng.gen_range(1950..2025)),
            );
            catalog.insert(format!("bk_{b}"), info);
        }
        let mut activity = BTreeMap::new();
        let active: Vec<String> = (0..30)
            .map(|b| format!("bk_{b}"))
            .chain(["ev_0".to_owned(), "ev_1".to_owned()])
            .collect();
        for id in &active {
            let views_30d = rng.gen_range(0..200);
            let purchases_30d = rng.gen_range(0..=views_30d / 10);
            activity.insert(
                id.clone(),
                BookActivity {
                    views_7d: rng.gen_range(0..=views_30d / 3),
                    purchases_7d: rng.gen_range(0..=purchases_30d / 2),
                    views_30d,
                    purchases_30d,
                    purchases_total: purchases_30d + rng.gen_range(0..20),
                    search_clicks: rng.gen_range(0..30),
                    search_impressions: rng.gen_range(30..300),
                },
            );
        }
        let mut users = BTreeMap::new();
        for u in 0..USERS {
            let mut profile = UserProfile::default();
            if u + 1 < USERS {
                for _ in 0..rng.gen_range(1..15) {
                    let book = &active[rng.gen_range(0..active.len())];
                    profile.record_view(catalog.get(book).map(|b: &BookInfo| b.genre.as_str()));
                }
                for _ in 0..rng.gen_range(0..4) {
                    profile.record_order(f64::from(rng.gen_range(1000u32..9000)) / 100.0);
                    let book = &active[rng.gen_range(0..active.len())];
                    profile.record_units(book, catalog.get(book), rng.gen_range(1..3));
                }
            }
            users.insert(format!("usr_{u}"), profile);
        }
        let spec = FeatureSpec::new(catalog.values().map(|b| b.genre.clone()).collect());
        Self {
            spec,
            catalog,
            activity,
            users,
        }
    }

    /// The online snapshot as the feature job writes it: every book of the catalog or the
    /// events, with `BookInfo::default()` for books the catalog lacks.
    pub fn snapshot(&self) -> OnlineSnapshot {
        let mut tables = FeatureTables::default();
        for id in self.catalog.keys().chain(self.activity.keys()) {
            tables.books.insert(
                id.clone(),
                (
                    self.catalog.get(id).cloned().unwrap_or_default(),
                    self.activity.get(id).copied().unwrap_or_default(),
                ),
            );
        }
        tables.users = self.users.clone();
        OnlineSnapshot::new(self.spec.clone(), tables, 1_764_000_000_000).expect("a snapshot")
    }

    /// The feature vectors the training job computes for a search (as
    /// `quire_features::ltr::build_ltr` calls `assemble`: catalog facts from the catalog, the
    /// searching user's profile, empty for a user without history).
    pub fn training_features(&self, req: &Req) -> Vec<f32> {
        let bm25 = req
            .candidates
            .iter()
            .map(|(_, s)| bm25_feature(*s))
            .collect();
        let request = Request::new(&req.query, req.device.as_deref(), bm25);
        let empty = UserProfile::default();
        let user = req
            .user_id
            .as_ref()
            .map(|u| self.users.get(u).unwrap_or(&empty))
            .unwrap_or(&empty);
        let mut rows = Vec::with_capacity(req.candidates.len() * N_FEATURES);
        for (i, (book, _)) in req.candidates.iter().enumerate() {
            rows.extend(assemble(
                &self.spec,
                &request,
                i,
                book,
                self.catalog.get(book),
                self.activity.get(book),
                Some(user),
            ));
        }
        rows
    }

    /// A random search: 1..=`max_n` candidates from the catalog, the event-only books and
    /// unknown ids; a known, unknown or no user; any device.
    pub fn random_request(&self, rng: &mut ChaCha8Rng, max_n: usize) -> Req {
        let n = rng.gen_range(1..=max_n);
        let mut pool: Vec<String> = self.catalog.keys().cloned().collect();
        pool.extend(["ev_0", "ev_1"].map(String::from));
        pool.extend((0..5).map(|i| format!("unknown_{i}")));
        pool.shuffle(rng);
        let n_words = rng.gen_range(0..4);
        let query: Vec<&str> = WORDS.choose_multiple(rng, n_words).copied().collect();
        let user_id = match rng.gen_range(0..10) {
            0 => None,
            1 => Some("usr_unknown".to_owned()),
            _ => Some(format!("usr_{}", rng.gen_range(0..USERS))),
        };
        let device = ["mobile", "desktop", "tablet", "fridge"]
            .choose(rng)
            .map(|d| (*d).to_owned())
            .filter(|_| rng.gen_bool(0.9));
        Req {
            request_id: None,
            query: query.join(" "),
            user_id,
            device,
            candidates: pool
                .into_iter()
                .take(n)
                .map(|b| (b, f64::from(rng.gen_range(0u32..2000)) / 100.0))
                .collect(),
            top_k: None,
        }
    }
}

/// A ranking request of the tests.
#[derive(Clone, Debug)]
pub struct Req {
    pub request_id: Option<String>,
    pub query: String,
    pub user_id: Option<String>,
    pub device: Option<String>,
    pub candidates: Vec<(String, f64)>,
    pub top_k: Option<usize>,
}

impl Req {
    pub fn json(&self) -> Value {
        let mut v = json!({
            "query": self.query,
            "candidates": self.candidates.iter()
                .map(|(b, s)| json!({"book_id": b, "bm25": s}))
                .collect::<Vec<_>>(),
        });
        let obj = v.as_object_mut().expect("an object");
        if let Some(id) = &self.request_id {
            obj.insert("request_id".into(), json!(id));
        }
        if let Some(u) = &self.user_id {
            obj.insert("user_id".into(), json!(u));
        }
        if let Some(d) = &self.device {
            obj.insert("device".into(), json!(d));
        }
        if let Some(k) = self.top_k {
            obj.insert("top_k".into(), json!(k));
        }
        v
    }
}

/// Which model to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Relevance from the query's overlap, affinity, sales and series.
    A,
    /// Another relevance (ratings, price, author), so its ranking differs from A's.
    B,
    /// Like A, but trained without feature names (LightGBM's `Column_0`…).
    Unnamed,
}

fn feature(row: &[f32], name: &str) -> f64 {
    let i = FEATURE_NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a feature");
    let v = f64::from(row[i]);
    if v.is_nan() { 0.0 } else { v }
}

fn relevance(variant: Variant, row: &[f32], rng: &mut ChaCha8Rng) -> f64 {
    let f = |name| feature(row, name);
    let noise = 0.3 * (rng.r#gen::<f64>() - 0.5);
    match variant {
        Variant::A | Variant::Unnamed => {
            2.0 * f("title_overlap")
                + f("genre_affinity")
                + 0.15 * f("purchases_30d")
                + 1.5 * f("series_next")
                - f("already_bought")
                + 0.05 * f("bm25")
                + noise
        }
        Variant::B => {
            1.5 * f("average_rating") - 0.05 * f("price")
                + 2.0 * f("author_overlap")
                + 0.1 * f("views_7d")
                + f("user_aov") / 100.0
                + noise
        }
    }
}

/// LightGBM's JSON dump of a small lambdarank model trained on random searches of the world.
pub fn model_dump(variant: Variant) -> &'static str {
    static DUMPS: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match variant {
        Variant::A => &DUMPS[0],
        Variant::B => &DUMPS[1],
        Variant::Unnamed => &DUMPS[2],
    };
    slot.get_or_init(|| train_dump(variant))
}

fn train_dump(variant: Variant) -> String {
    let w = world();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut rows, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..300 {
        let mut req = w.random_request(&mut rng, 12);
        if req.candidates.len() < 4 {
            continue;
        }
        req.user_id.get_or_insert_with(|| "usr_0".to_owned());
        let x = w.training_features(&req);
        let r: Vec<f64> = x
            .chunks_exact(N_FEATURES)
            .map(|row| relevance(variant, row, &mut rng))
            .collect();
        // Graded labels by rank within the search: 3 for the best, 2 for the next two, 1 for
        // the next three, 0 for the rest.
        let mut by_rel: Vec<usize> = (0..r.len()).collect();
        by_rel.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
        let mut grade = vec![0.0f32; r.len()];
        for (rank, &i) in by_rel.iter().enumerate() {
            grade[i] = match rank {
                0 => 3.0,
                1 | 2 => 2.0,
                3..=5 => 1.0,
                _ => 0.0,
            };
        }
        groups.push(r.len() as i32);
        labels.extend(grade);
        rows.extend(x);
    }
    let params = "objective=lambdarank metric=ndcg eval_at=5 num_leaves=15 min_data_in_leaf=10 \
                  learning_rate=0.1 num_threads=1 deterministic=true force_row_wise=true verbosity=-1";
    let n = labels.len();
    let mut data = Dataset::from_dense(&rows, n, N_FEATURES, &labels, Some(&groups), params, None)
        .expect("a dataset");
    if variant != Variant::Unnamed {
        data.set_feature_names(&FEATURE_NAMES)
            .expect("feature names");
    }
    let options = TrainOptions {
        num_boost_round: 30,
        early_stopping: None,
    };
    let booster = train(params, &data, &[], &options, |_| {}).expect("training");
    booster.dump_model_json().expect("a dump")
}

/// The ONNX export of `variant` for `run_id`, with the metadata the trainer writes.
pub fn onnx(variant: Variant, run_id: &str, snapshot: &OnlineSnapshot) -> Vec<u8> {
    export(
        model_dump(variant),
        &ExportMeta {
            run_id: run_id.to_owned(),
            model_name: MODEL.to_owned(),
            model_version: None,
            extra: vec![
                (
                    "quire.features_version".into(),
                    snapshot.spec.version.clone(),
                ),
                ("quire.snapshot_version".into(), snapshot.version.clone()),
            ],
        },
    )
    .expect("an export")
}

/// An ONNX scorer of `onnx`, outside the service.
pub fn local_scorer(onnx: &[u8]) -> OnnxScorer {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, onnx).expect("writing the model");
    OnnxScorer::load(&path, 1).unwrap_or_else(|e| panic!("{e}"))
}

/// A registered version: its number, run and ONNX bytes.
#[derive(Clone, Debug)]
pub struct Registered {
    pub version: i64,
    pub run_id: String,
    pub onnx: Vec<u8>,
}

/// A registry and artifact store in a temporary directory, with the `ltr` model created.
pub struct Fixture {
    pub dir: TempDir,
    pub url: String,
    pub registry: Registry,
    pub store: ArtifactStore,
    experiment: i64,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("registry.db").display());
        let registry = Registry::connect(&url).await.expect("a registry");
        let store = ArtifactStore::open(dir.path().join("models"))
            .await
            .expect("a store");
        let experiment = registry
            .create_experiment("ltr", None)
            .await
            .expect("an experiment");
        registry
            .create_registered_model(MODEL, "test ranker")
            .await
            .expect("a model");
        Self {
            dir,
            url,
            registry,
            store,
            experiment,
        }
    }

    pub async fn new_run(&self) -> String {
        self.registry
            .create_run(NewRun {
                experiment_id: self.experiment,
                ..NewRun::default()
            })
            .await
            .expect("a run")
            .info
            .run_id
    }

    /// The artifacts quire-train registers for `variant` trained by `run_id`.
    pub fn artifacts(variant: Variant, run_id: &str) -> Vec<(&'static str, Vec<u8>)> {
        Self::artifacts_with(variant, run_id, &world().snapshot())
    }

    /// The artifacts of `variant` trained by `run_id` on `snapshot`.
    pub fn artifacts_with(
        variant: Variant,
        run_id: &str,
        snapshot: &OnlineSnapshot,
    ) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("model.onnx", onnx(variant, run_id, snapshot)),
            (
                "feature_spec.json",
                serde_json::to_vec(&snapshot.spec).expect("json"),
            ),
            (
                "feature_snapshot.json",
                serde_json::to_vec(snapshot).expect("json"),
            ),
        ]
    }

    /// Registers a version of `variant` whose snapshot also holds `extra_users` users no test
    /// request names: the same features for the tests' requests, a larger file to load.
    pub async fn register_large(&self, variant: Variant, extra_users: usize) -> Registered {
        let base = world().snapshot();
        let mut tables = base.tables.clone();
        for u in 0..extra_users {
            let mut profile = UserProfile::default();
            for g in GENRES.iter().take(1 + u % GENRES.len()) {
                profile.record_view(Some(g));
            }
            profile.record_order(12.5);
            tables.users.insert(format!("pad_{u}"), profile);
        }
        let snapshot =
            OnlineSnapshot::new(base.spec.clone(), tables, base.as_of_ms).expect("a snapshot");
        let run_id = self.new_run().await;
        let artifacts = Self::artifacts_with(variant, &run_id, &snapshot);
        self.register_artifacts(&run_id, artifacts).await
    }

    /// Registers a version of `variant` with its standard artifacts.
    pub async fn register(&self, variant: Variant) -> Registered {
        let run_id = self.new_run().await;
        let artifacts = Self::artifacts(variant, &run_id);
        self.register_artifacts(&run_id, artifacts).await
    }

    /// Registers a version made of `artifacts`, trained by `run_id`.
    pub async fn register_artifacts(
        &self,
        run_id: &str,
        artifacts: Vec<(&'static str, Vec<u8>)>,
    ) -> Registered {
        let onnx = artifacts
            .iter()
            .find(|(n, _)| *n == "model.onnx")
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        let mut named = Vec::new();
        for (name, bytes) in artifacts {
            let artifact = self.store.put(&bytes).await.expect("stored");
            named.push(NamedArtifact {
                name: name.to_owned(),
                artifact,
            });
        }
        let mv = self
            .registry
            .create_model_version(&NewModelVersion {
                name: MODEL.to_owned(),
                source: named[0].artifact.uri.clone(),
                run_id: Some(run_id.to_owned()),
                description: String::new(),
                artifacts: named,
                ..Default::default()
            })
            .await
            .expect("a version");
        Registered {
            version: mv.version,
            run_id: run_id.to_owned(),
            onnx,
        }
    }

    /// Points `ltr@production` at `version`.
    pub async fn promote(&self, version: i64) {
        self.registry
            .set_alias(MODEL, ALIAS, version, "test")
            .await
            .expect("alias set");
    }

    /// Options for a service on this registry, port 0, polling every 50 ms.
    pub fn options(&self) -> RankingOptions {
        let mut opts = RankingOptions::new(
            format!("{MODEL}@{ALIAS}").parse().expect("an alias"),
            self.url.clone(),
        );
        opts.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        opts.artifacts = self.dir.path().join("models");
        opts.poll_interval = Duration::from_millis(50);
        opts.retry_interval = Duration::from_millis(300);
        opts.session_pool = 2;
        opts
    }

    pub async fn start(&self) -> Service {
        Service::start(self.options()).await
    }

    /// A service with [`Self::options`] changed by `edit`.
    pub async fn start_with(&self, edit: impl FnOnce(&mut RankingOptions)) -> Service {
        let mut opts = self.options();
        edit(&mut opts);
        Service::start(opts).await
    }
}

/// A running service and a client for it.
pub struct Service {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<quire_ranking::Result<()>>,
}

/// An answer: status, headers, body as JSON (or `Value::String` of the text when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Service {
    pub async fn start(opts: RankingOptions) -> Self {
        let service = RankingService::bind(opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = service.local_addr().expect("an address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(service.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: client(),
            shutdown: Some(tx),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("an answer");
        answer(response).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.post(path, body.to_string()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("an answer");
        answer(response).await
    }

    /// `/v1/rank` of `req`, which must answer 200.
    pub async fn rank(&self, req: &Req) -> Value {
        let a = self.post_json("/v1/rank", &req.json()).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }

    /// Waits (up to 30 s) until `/health/ready` reports `version`.
    pub async fn wait_for_version(&self, version: i64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let a = self.get("/health/ready").await;
            if a.status == 200 && a.body["model"]["version"] == version {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "version {version} not served in 30 s: {} {}",
                a.status,
                a.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let a = self.get("/metrics").await;
        assert_eq!(a.status, 200);
        a.body.as_str().expect("metrics text").to_owned()
    }

    /// Waits (up to 30 s) until the metric line `series` (name and labels) reaches `at_least`.
    pub async fn wait_for_metric(&self, series: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.metrics().await;
            if metric(&text, series).is_some_and(|v| v >= at_least) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} did not reach {at_least} in 30 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Waits for the service to return after [`Self::signal_shutdown`].
    pub async fn join(self) -> quire_ranking::Result<()> {
        self.handle.await.expect("the service task")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client")
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// The value of the metric line starting with `series` (`name{labels}` or `name`).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Scores as the answer's JSON gives them (f32 written shortest, read back exactly).
pub fn score(v: &Value) -> f32 {
    v.as_f64().expect("a numeric score") as f32
}
