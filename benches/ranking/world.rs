//! The benchmark's bookstore, model, registry and requests.
//!
//! The catalog is the real goodbooks-10k (`data/goodbooks-10k/books.csv`): titles, authors,
//! years, ratings, series from the titles. Genres, prices, activity and users are drawn from a
//! fixed seed (as the simulator does; its catalog is private to `quire-sim`). Searches are BM25
//! (k1 = 1.2, b = 0.75, OR semantics) over title, author and genre words, written here because
//! the bench needs a retrieval step to produce candidate lists, nothing more; the top 100 hits
//! of a query are its candidates.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use quire_featspec::{
    BookActivity, BookInfo, FEATURE_NAMES, FeatureSpec, FeatureTables, N_FEATURES, OnlineSnapshot,
    Request, ServingTables, UserProfile, assemble, bm25_feature,
};
use quire_lgbm::{Dataset, TrainOptions, train};
use quire_registry::{ArtifactStore, NamedArtifact, NewModelVersion, NewRun, Registry, RunStatus};
use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

/// The simulator's genres: the same catalog coding as the pipeline's books.
use quire_sim::GENRES;
const USERS: usize = 20_000;
const TRAIN_QUERIES: usize = 1500;

/// The registry URL of the benchmark directory.
pub fn registry_url(dir: &Path) -> String {
    format!("sqlite://{}", abs(dir).join("registry.db").display())
}

fn abs(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
}

#[derive(Deserialize)]
struct RawBook {
    book_id: u32,
    authors: String,
    original_publication_year: Option<f64>,
    title: String,
    average_rating: f64,
    ratings_count: u64,
}

/// `"Title (Series Name, #3)"` → the series name and its index.
fn series(title: &str) -> (Option<String>, Option<i64>) {
    let t = title.trim_end();
    let Some(inner) = t
        .strip_suffix(')')
        .and_then(|t| t.rfind('(').map(|i| &t[i + 1..]))
    else {
        return (None, None);
    };
    let first = inner.split(';').next().unwrap_or("");
    let Some(hash) = first.rfind('#') else {
        return (None, None);
    };
    let name = first[..hash].trim().trim_end_matches(',').trim();
    if name.is_empty() {
        return (None, None);
    }
    (Some(name.to_owned()), first[hash + 1..].trim().parse().ok())
}

struct Catalog {
    ids: Vec<String>,
    infos: Vec<BookInfo>,
    popularity: Vec<f64>,
    /// word → (book, term frequency)
    index: HashMap<String, Vec<(u32, u16)>>,
    doc_len: Vec<f64>,
    avg_len: f64,
}

impl Catalog {
    fn load(rng: &mut ChaCha8Rng) -> Result<Self> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/goodbooks-10k/books.csv");
        let mut reader =
            csv::Reader::from_path(&path).with_context(|| format!("opening {}", path.display()))?;
        let (mut ids, mut infos, mut popularity) = (Vec::new(), Vec::new(), Vec::new());
        let mut index: HashMap<String, Vec<(u32, u16)>> = HashMap::new();
        let mut doc_len = Vec::new();
        for row in reader.deserialize::<RawBook>() {
            let raw = row.with_context(|| format!("reading {}", path.display()))?;
            let author = raw
                .authors
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            // A series stays in one genre: the draw is keyed by the series, else the author.
            let (series_name, series_index) = series(&raw.title);
            let key = series_name.clone().unwrap_or_else(|| author.clone());
            let genre = GENRES[(fnv1a(&key) % GENRES.len() as u64) as usize];
            let price = f64::from(rng.gen_range(5u32..=40)) - 0.01;
            let info = BookInfo::new(
                &raw.title,
                &author,
                genre,
                series_name.as_deref(),
                series_index,
                Some(price),
                Some(raw.average_rating),
                Some(raw.ratings_count as i64),
                raw.original_publication_year.map(|y| y as i64),
            );
            let doc = ids.len() as u32;
            let mut words: HashMap<&str, u16> = HashMap::new();
            let all = info
                .title_tokens
                .iter()
                .chain(&info.author_tokens)
                .chain(&info.genre_tokens);
            let mut len = 0.0;
            for w in all {
                *words.entry(w.as_str()).or_default() += 1;
                len += 1.0;
            }
            for (w, tf) in words {
                index.entry(w.to_owned()).or_default().push((doc, tf));
            }
            doc_len.push(len);
            ids.push(format!("bk_{}", raw.book_id));
            popularity.push((raw.ratings_count.max(100) as f64).powf(0.6));
            infos.push(info);
        }
        let avg_len = doc_len.iter().sum::<f64>() / doc_len.len().max(1) as f64;
        Ok(Self {
            ids,
            infos,
            popularity,
            index,
            doc_len,
            avg_len,
        })
    }

    /// BM25 hits of `query`, best first (ties by catalog order).
    fn search(&self, query: &[String]) -> Vec<(u32, f32)> {
        let n = self.ids.len() as f64;
        let mut scores: HashMap<u32, f64> = HashMap::new();
        for (qi, t) in query.iter().enumerate() {
            if query[..qi].contains(t) {
                continue;
            }
            let Some(postings) = self.index.get(t) else {
                continue;
            };
            let df = postings.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(doc, tf) in postings {
                let tf = f64::from(tf);
                let dl = self.doc_len[doc as usize];
                *scores.entry(doc).or_default() +=
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / self.avg_len));
            }
        }
        let mut hits: Vec<(u32, f32)> = scores.into_iter().map(|(d, s)| (d, s as f32)).collect();
        hits.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }
}

fn fnv1a(s: &str) -> u64 {
    // FNV-1a: a stable hash (std's is seeded per process), for a fixed genre per series.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

struct Store {
    catalog: Catalog,
    snapshot: OnlineSnapshot,
    users: Vec<String>,
}

fn build_store(rng: &mut ChaCha8Rng) -> Result<Store> {
    let catalog = Catalog::load(rng)?;
    let spec = FeatureSpec::new(GENRES.iter().map(|g| (*g).to_owned()).collect());
    let pop = WeightedIndex::new(&catalog.popularity).context("popularity weights")?;
    let mean_pop = catalog.popularity.iter().sum::<f64>() / catalog.popularity.len() as f64;
    let mut tables = FeatureTables::default();
    for (i, id) in catalog.ids.iter().enumerate() {
        let scale = catalog.popularity[i] / mean_pop;
        let views_30d = (scale * rng.gen_range(5.0..40.0)) as u32;
        let purchases_30d = (f64::from(views_30d) * rng.gen_range(0.0..0.12)) as u32;
        let activity = BookActivity {
            views_7d: views_30d / 4 + rng.gen_range(0..3),
            purchases_7d: purchases_30d / 4,
            views_30d,
            purchases_30d,
            purchases_total: purchases_30d * rng.gen_range(1..6),
            search_clicks: (f64::from(views_30d) * rng.gen_range(0.0..0.3)) as u32,
            search_impressions: views_30d * rng.gen_range(2..8),
        };
        tables
            .books
            .insert(id.clone(), (catalog.infos[i].clone(), activity));
    }
    let mut users = Vec::with_capacity(USERS);
    for u in 0..USERS {
        let mut profile = UserProfile::default();
        for _ in 0..rng.gen_range(0..30) {
            let b = pop.sample(rng);
            profile.record_view(Some(&catalog.infos[b].genre));
        }
        for _ in 0..rng.gen_range(0..4) {
            let mut total = 0.0;
            for _ in 0..rng.gen_range(1..4) {
                let b = pop.sample(rng);
                total += catalog.infos[b].price.unwrap_or(10.0);
                profile.record_units(&catalog.ids[b], Some(&catalog.infos[b]), 1);
            }
            profile.record_order(total);
        }
        let id = format!("usr_{u}");
        tables.users.insert(id.clone(), profile);
        users.push(id);
    }
    let snapshot = OnlineSnapshot::new(spec, tables, 1_764_000_000_000)?;
    Ok(Store {
        catalog,
        snapshot,
        users,
    })
}

/// A search of the store: a query from a popular book's words, its top-`n` BM25 hits as
/// candidates, a user (known 80%, unknown 10%, none 10%) and a device.
fn search(store: &Store, rng: &mut ChaCha8Rng, n: usize) -> Value {
    let pop = WeightedIndex::new(&store.catalog.popularity).expect("positive weights");
    loop {
        let b = pop.sample(rng);
        let info = &store.catalog.infos[b];
        let mut words: Vec<String> = info
            .title_tokens
            .iter()
            .chain(&info.author_tokens)
            .cloned()
            .collect();
        words.shuffle(rng);
        words.truncate(rng.gen_range(1..=3));
        if rng.gen_bool(0.3) {
            words.extend(info.genre_tokens.iter().cloned());
        }
        let hits = store.catalog.search(&words);
        if hits.len() < n {
            continue;
        }
        let user = match rng.gen_range(0..10) {
            0 => Value::Null,
            1 => json!(format!("visitor_{}", rng.r#gen::<u32>())),
            _ => json!(store.users[rng.gen_range(0..store.users.len())]),
        };
        let device = ["mobile", "desktop", "tablet"][rng.gen_range(0..3)];
        let mut body = json!({
            "query": words.join(" "),
            "device": device,
            "candidates": hits[..n].iter()
                .map(|&(d, s)| json!({"book_id": store.catalog.ids[d as usize], "bm25": s}))
                .collect::<Vec<_>>(),
        });
        if !user.is_null() {
            body["user_id"] = user;
        }
        return body;
    }
}

/// A request body's fields.
#[derive(Deserialize)]
pub struct Body {
    query: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    device: Option<String>,
    candidates: Vec<Candidate>,
}

#[derive(Deserialize)]
struct Candidate {
    book_id: String,
    bm25: f64,
}

impl Body {
    /// The fields of a request body.
    pub fn parse(body: &Value) -> Result<Self> {
        serde_json::from_value(body.clone()).context("a request body")
    }

    fn request(&self) -> Request {
        let bm25 = self
            .candidates
            .iter()
            .map(|c| bm25_feature(c.bm25))
            .collect();
        Request::new(&self.query, self.device.as_deref(), bm25)
    }
}

/// The feature matrix of a request body as the service computes it (`ServingTables`, the
/// snapshot resolved once), and the number of candidates.
pub fn serving_features(tables: &ServingTables, b: &Body) -> (Vec<f32>, usize) {
    let mut rows = Vec::with_capacity(b.candidates.len() * N_FEATURES);
    tables.features(
        &b.request(),
        b.user_id.as_deref(),
        b.candidates.iter().map(|c| c.book_id.as_str()),
        &mut rows,
    );
    (rows, b.candidates.len())
}

/// The feature matrix of a request body as the feature job computes it (`assemble` per
/// candidate on the snapshot's tables), and the number of candidates.
pub fn features(snapshot: &OnlineSnapshot, b: &Body) -> (Vec<f32>, usize) {
    let req = b.request();
    let t = &snapshot.tables;
    let user = b.user_id.as_ref().and_then(|u| t.users.get(u));
    let default = BookInfo::default();
    let mut rows = Vec::with_capacity(b.candidates.len() * N_FEATURES);
    for (i, c) in b.candidates.iter().enumerate() {
        let (info, act) = match t.books.get(&c.book_id) {
            Some((info, act)) => ((*info != default).then_some(info), Some(act)),
            None => (None, None),
        };
        rows.extend(assemble(
            &snapshot.spec,
            &req,
            i,
            &c.book_id,
            info,
            act,
            user,
        ));
    }
    (rows, b.candidates.len())
}

fn feature(row: &[f32], name: &str) -> f64 {
    let v = row[FEATURE_NAMES.iter().position(|n| *n == name).unwrap_or(0)];
    if v.is_nan() { 0.0 } else { f64::from(v) }
}

/// What a shopper would make of a candidate: the training target (before grading).
fn utility(row: &[f32], rng: &mut ChaCha8Rng) -> f64 {
    let f = |name| feature(row, name);
    2.0 * f("title_overlap")
        + f("author_overlap")
        + 1.5 * f("genre_affinity")
        + 0.5 * f("purchases_30d").ln_1p()
        + (f("average_rating") - 4.0)
        + 1.5 * f("series_next")
        - 2.0 * f("already_bought")
        - f("price") / 40.0
        + f("bm25_ratio")
        + 0.3 * f("author_prior_units")
        + 5.0 * f("search_ctr")
        + 0.7 * (rng.r#gen::<f64>() - 0.5)
}

/// Builds everything under `dir`; returns a JSON report.
pub fn prepare(
    dir: &Path,
    trees: usize,
    leaves: usize,
    n_requests: usize,
    n_candidates: usize,
) -> Result<Value> {
    let dir = abs(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join("registry.db").exists() {
        bail!(
            "{} already holds a registry; remove the directory first",
            dir.display()
        );
    }
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let store = build_store(&mut rng)?;

    // Training searches, graded 3/2/1/0 by utility within each: the best, the next 2, the
    // next 7, the rest.
    let (mut x, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TRAIN_QUERIES {
        let body = search(&store, &mut rng, n_candidates);
        let (rows, n) = features(&store.snapshot, &Body::parse(&body)?);
        let u: Vec<f64> = rows
            .chunks_exact(N_FEATURES)
            .map(|r| utility(r, &mut rng))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| u[b].total_cmp(&u[a]));
        let mut grade = vec![0f32; n];
        for (rank, &i) in order.iter().enumerate() {
            grade[i] = match rank {
                0 => 3.0,
                1..=2 => 2.0,
                3..=9 => 1.0,
                _ => 0.0,
            };
        }
        x.extend(rows);
        labels.extend(grade);
        groups.push(n as i32);
    }
    let params = format!(
        "objective=lambdarank metric=ndcg eval_at=10 num_leaves={leaves} min_data_in_leaf=20 \
         learning_rate=0.05 num_threads=2 deterministic=true force_row_wise=true verbosity=-1"
    );
    let mut data = Dataset::from_dense(
        &x,
        labels.len(),
        N_FEATURES,
        &labels,
        Some(&groups),
        &params,
        None,
    )?;
    data.set_feature_names(&FEATURE_NAMES)?;
    let t1 = Instant::now();
    let booster = train(
        &params,
        &data,
        &[],
        &TrainOptions {
            num_boost_round: trees,
            early_stopping: None,
        },
        |_| {},
    )?;
    let train_seconds = t1.elapsed().as_secs_f64();
    let dump = booster.dump_model_json()?;
    let dumped: Value = serde_json::from_str(&dump)?;
    let tree_leaves: Vec<u64> = dumped["tree_info"]
        .as_array()
        .context("tree_info")?
        .iter()
        .map(|t| t["num_leaves"].as_u64().unwrap_or(0))
        .collect();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (version, run_id, onnx) = rt.block_on(async {
        let registry = Registry::connect(&registry_url(&dir)).await?;
        let store_dir = dir.join("models");
        let artifacts = ArtifactStore::open(&store_dir).await?;
        let experiment = registry.create_experiment("ltr-bench", None).await?;
        let run = registry
            .create_run(NewRun {
                experiment_id: experiment,
                run_name: "ranking-bench".into(),
                ..NewRun::default()
            })
            .await?;
        let run_id = run.info.run_id;
        // The run ends FAILED if anything after its start fails, FINISHED otherwise.
        let registered = async {
            let onnx = quire_onnx::export(
                &dump,
                &quire_onnx::ExportMeta {
                    run_id: run_id.clone(),
                    model_name: "ltr".into(),
                    model_version: None,
                    extra: vec![
                        (
                            "quire.features_version".into(),
                            store.snapshot.spec.version.clone(),
                        ),
                        (
                            "quire.snapshot_version".into(),
                            store.snapshot.version.clone(),
                        ),
                    ],
                },
            )?;
            let files = [
                ("model.txt", booster.save_model_string(None)?.into_bytes()),
                ("model.onnx", onnx.clone()),
                (
                    "feature_spec.json",
                    serde_json::to_vec(&store.snapshot.spec)?,
                ),
                (
                    "feature_snapshot.json",
                    serde_json::to_vec(&store.snapshot)?,
                ),
            ];
            let mut named = Vec::new();
            for (name, bytes) in files {
                named.push(NamedArtifact {
                    name: name.into(),
                    artifact: artifacts.put(&bytes).await?,
                });
            }
            registry
                .create_registered_model("ltr", "benchmark ranker")
                .await?;
            let mv = registry
                .create_model_version(&NewModelVersion {
                    name: "ltr".into(),
                    source: named[0].artifact.uri.clone(),
                    run_id: Some(run_id.clone()),
                    description: String::new(),
                    artifacts: named,
                    ..Default::default()
                })
                .await?;
            registry
                .set_alias("ltr", "production", mv.version, "bench")
                .await?;
            anyhow::Ok((mv.version, onnx))
        }
        .await;
        let ended = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis();
        let status = match registered {
            Ok(_) => RunStatus::Finished,
            Err(_) => RunStatus::Failed,
        };
        registry
            .update_run(&run_id, status, Some(i64::try_from(ended)?), None)
            .await?;
        let (version, onnx) = registered?;
        registry.close().await;
        anyhow::Ok((version, run_id, onnx))
    })?;
    std::fs::write(dir.join("model.onnx"), &onnx)?;
    store.snapshot.write(&dir.join("feature_snapshot.json"))?;

    let mut lines = String::new();
    for _ in 0..n_requests {
        lines.push_str(&search(&store, &mut rng, n_candidates).to_string());
        lines.push('\n');
    }
    std::fs::write(dir.join("requests.jsonl"), lines)?;
    Ok(json!({
        "dir": dir,
        "books": store.catalog.ids.len(),
        "users": store.users.len(),
        "train_queries": groups.len(),
        "train_rows": labels.len(),
        "train_seconds": train_seconds,
        "trees": tree_leaves.len(),
        "mean_leaves": tree_leaves.iter().sum::<u64>() as f64 / tree_leaves.len().max(1) as f64,
        "max_leaves": tree_leaves.iter().max(),
        "onnx_bytes": onnx.len(),
        "snapshot_bytes": std::fs::metadata(dir.join("feature_snapshot.json"))?.len(),
        "model": {"name": "ltr", "version": version, "run_id": run_id},
        "requests": n_requests,
        "candidates": n_candidates,
        "seconds": t0.elapsed().as_secs_f64(),
    }))
}

/// The request bodies of `requests.jsonl`.
pub fn read_requests(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("a line of {}", path.display())))
        .collect()
}
