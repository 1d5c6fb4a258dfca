//! The CF trainer: implicit ALS on the CF matrices, evaluated on the last days against a
//! popularity baseline, refitted on all days for the registered model.

use quire_cf::{AlsConfig, AlsModel, Csr, Popularity, evaluate, train_als};
use quire_features::{CfData, build_cf};
use serde::{Deserialize, Serialize};

use crate::config::{CfConfig, TrainConfig};
use crate::run::Trained;
use crate::train_ltr::to_json;
use crate::{Error, Locations, Progress, Result, artifact};

/// The `cf_index.json` artifact: what the recommendation batch needs beside the factors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CfIndex {
    /// `user_ids[u]` is row `u` of the user factors.
    pub user_ids: Vec<String>,
    /// `book_ids[i]` is row `i` of the item factors.
    pub book_ids: Vec<String>,
    /// (user, book) pairs bought, ever: never recommended back.
    pub bought: Vec<(u32, u32)>,
    /// (book a, book b, orders with both), a < b.
    pub cooccurrence: Vec<(u32, u32, u32)>,
    /// Orders containing each book.
    pub book_orders: Vec<u32>,
    /// Orders counted.
    pub orders: u32,
    /// The data's instant (epoch ms, one past the last event).
    pub as_of_ms: i64,
}

fn csr(n_users: usize, n_books: usize, triplets: &[(u32, u32, f32)]) -> Result<Csr> {
    Ok(Csr::from_triplets(n_users, n_books, triplets)?)
}

pub(crate) fn run(cfg: &TrainConfig, loc: &Locations, progress: &dyn Progress) -> Result<Trained> {
    let Some(c) = cfg.cf.as_ref() else {
        return Err(Error::Config("has no [cf] table".into()));
    };
    progress.stage("features");
    let raw = crate::train_ltr::lake_events_in_window(cfg, loc)?;
    let data: CfData = build_cf(raw, c.weights, c.test_days)?;
    let (nu, nb) = (data.users.len(), data.books.len());
    if data.train.is_empty() || data.test.is_empty() {
        return Err(Error::Data(format!(
            "the CF split has {} training and {} test interactions: need both \
             (more days of events than cf.test_days = {})",
            data.train.len(),
            data.test.len(),
            c.test_days
        )));
    }
    let train = csr(nu, nb, &data.train)?;
    let test = csr(nu, nb, &data.test)?;
    let als = als_config(c);

    progress.stage("train");
    let mut history = Vec::new();
    let iterations = als.iterations as u64;
    let model = train_als(&train, &als, |s| {
        history.push(("train_loss".to_string(), s.iteration as i64, s.loss));
        progress.iteration(s.iteration as u64, iterations, "loss", s.loss);
    })?;

    progress.stage("evaluate");
    let m = evaluate(&model, &train, &test, c.k)?;
    let p = evaluate(&Popularity::fit(&train), &train, &test, c.k)?;
    let k = c.k;
    let metrics = vec![
        (format!("precision_at_{k}"), m.precision),
        (format!("recall_at_{k}"), m.recall),
        (format!("ndcg_at_{k}"), m.ndcg),
        (format!("popularity_precision_at_{k}"), p.precision),
        (format!("popularity_recall_at_{k}"), p.recall),
        (format!("popularity_ndcg_at_{k}"), p.ndcg),
        ("users_evaluated".to_string(), m.users_evaluated as f64),
        ("cold_users".to_string(), m.cold_users as f64),
    ];
    let summary = vec![
        (
            format!("precision@{k}: ALS / popularity"),
            format!("{:.4} / {:.4}", m.precision, p.precision),
        ),
        (
            format!("recall@{k}: ALS / popularity"),
            format!("{:.4} / {:.4}", m.recall, p.recall),
        ),
        (
            format!("NDCG@{k}: ALS / popularity"),
            format!("{:.4} / {:.4}", m.ndcg, p.ndcg),
        ),
        (
            "users evaluated (cold, left out)".into(),
            format!("{} ({})", m.users_evaluated, m.cold_users),
        ),
    ];
    let published: AlsModel = if c.refit_on_all_data {
        progress.stage("refit");
        let full = csr(nu, nb, &data.full)?;
        train_als(&full, &als, |s| {
            progress.iteration(s.iteration as u64, iterations, "loss", s.loss)
        })?
    } else {
        model
    };
    let mut model_bytes = Vec::new();
    published.write_to(&mut model_bytes)?;
    let params = vec![
        ("data.users".to_string(), nu.to_string()),
        ("data.books".to_string(), nb.to_string()),
        (
            "data.train_interactions".to_string(),
            data.train.len().to_string(),
        ),
        (
            "data.test_purchases".to_string(),
            data.test.len().to_string(),
        ),
        ("data.split_at_ms".to_string(), data.split_at_ms.to_string()),
    ];
    let index = CfIndex {
        user_ids: data.users,
        book_ids: data.books,
        bought: data.bought,
        cooccurrence: data.cooccurrence,
        book_orders: data.book_orders,
        orders: data.orders,
        as_of_ms: data.as_of_ms,
    };
    let artifacts = vec![
        (artifact::CF_MODEL.to_string(), model_bytes),
        (artifact::CF_INDEX.to_string(), to_json(&index)?),
    ];
    Ok(Trained {
        metrics,
        history,
        params,
        artifacts,
        summary,
    })
}

fn als_config(c: &CfConfig) -> AlsConfig {
    AlsConfig {
        factors: c.factors,
        regularization: c.regularization as f32,
        alpha: c.alpha as f32,
        iterations: c.iterations,
        cg_steps: c.cg_steps,
        seed: c.seed,
    }
}
