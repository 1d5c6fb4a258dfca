//! The recommendation batch's input from the registry: a CF model version → `RecsInput`, and
//! its publish to Redis (used by `quire recs publish` and by the pipeline's `publish recs` step).

use quire_cf::Csr;
use quire_recs::{
    CoPurchases, ModelRef, PublishOptions, PublishProgress, PublishSummary, RecsConfig, RecsInput,
    RedisTarget,
};
use quire_registry::{ArtifactStore, Registry};

/// Errors of the recommendation batch.
#[derive(Debug, thiserror::Error)]
pub enum RecsError {
    #[error("loading the CF model {model}: {source}")]
    Load {
        model: String,
        #[source]
        source: quire_train::Error,
    },
    #[error("registry: {0}")]
    Registry(#[from] quire_registry::Error),
    #[error("the model's purchases: {0}")]
    Matrix(#[from] quire_cf::CfError),
    #[error("the lake's purchases: {0}")]
    Lake(#[from] quire_lake::Error),
    #[error("the lake's purchases: {0}")]
    Purchases(#[from] quire_features::Error),
    #[error(transparent)]
    Recs(#[from] quire_recs::Error),
}

/// One publish: which model, from which registry, to which Redis.
#[derive(Debug, Clone, Copy)]
pub struct RecsJob<'a> {
    pub registry: &'a str,
    pub artifacts: &'a std::path::Path,
    /// `NAME[@ALIAS]`.
    pub model: &'a str,
    pub target: &'a RedisTarget,
    /// List length.
    pub n: usize,
    pub opts: &'a PublishOptions,
    /// A lake whose purchases are excluded from the users' lists too, besides those the model
    /// was trained on: a publish some time after training then leaves out what was bought
    /// since.
    pub lake: Option<&'a std::path::Path>,
}

/// Checks that `job.target` answers, loads the CF model version `job.model` (checksums
/// verified), computes its top-N lists and publishes them to `job.target`. `on_stage` hears `purchases` (with a lake), `compute`, then
/// `publish`.
pub async fn publish_recs(
    job: &RecsJob<'_>,
    on_stage: impl Fn(&str),
    progress: impl FnMut(PublishProgress) + Send,
) -> Result<(ModelRef, PublishSummary), RecsError> {
    // An unreachable Redis is said at once, not after the model is loaded and every list
    // computed.
    quire_recs::check_reachable(job.target, job.opts).await?;
    let model = job.model;
    let reg = Registry::connect(job.registry).await?;
    let store = ArtifactStore::open(job.artifacts).await?;
    let cf = quire_train::load::load_cf(&reg, &store, model)
        .await
        .map_err(|source| RecsError::Load {
            model: model.to_string(),
            source,
        })?;
    reg.close().await;
    let idx = &cf.index;
    let (nu, nb) = (idx.user_ids.len(), idx.book_ids.len());
    let mut bought: std::collections::BTreeSet<(u32, u32)> = idx.bought.iter().copied().collect();
    if let Some(lake) = job.lake {
        on_stage("purchases");
        let raw = quire_lake::Lake::open_existing(lake)?.scan_events()?;
        let pos = |ids: &[String]| -> std::collections::HashMap<String, u32> {
            ids.iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect()
        };
        let (users, books) = (pos(&idx.user_ids), pos(&idx.book_ids));
        // Users and books the model does not know get no list and are in none.
        bought.extend(
            quire_features::cf::bought_pairs(raw)?
                .iter()
                .filter_map(|(u, b)| Some((*users.get(u)?, *books.get(b)?))),
        );
    }
    let bought: Vec<(u32, u32, f32)> = bought.into_iter().map(|(u, b)| (u, b, 1.0)).collect();
    let input = RecsInput {
        user_ids: idx.user_ids.clone(),
        book_ids: idx.book_ids.clone(),
        bought: Csr::from_triplets(nu, nb, &bought)?,
        co_purchases: CoPurchases {
            pairs: idx.cooccurrence.clone(),
            item_orders: idx.book_orders.clone(),
            total_orders: u64::from(idx.orders),
        },
        popularity: idx.book_orders.iter().map(|&c| u64::from(c)).collect(),
        model: cf.model,
    };
    on_stage("compute");
    let sets = quire_recs::compute_recs(&input, &RecsConfig::new(job.n))?;
    on_stage("publish");
    let model_ref = ModelRef {
        name: cf.name,
        version: cf.version.max(0) as u64,
        run_id: cf.run_id,
    };
    let summary = quire_recs::publish(job.target, &sets, &model_ref, job.opts, progress).await?;
    Ok((model_ref, summary))
}
