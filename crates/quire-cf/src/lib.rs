//! Implicit-feedback collaborative filtering for Quire: ALS factorisation, top-N lists,
//! item–item similarity and ranking metrics, on `ndarray` + `rayon`.
//!
//! The model is the one of Hu, Koren & Volinsky, *Collaborative Filtering for Implicit Feedback
//! Datasets* (ICDM 2008), fitted by alternating least squares where each user's (item's) least
//! squares problem is solved approximately by a few conjugate-gradient steps warm-started from
//! the previous factors (Takács, Pilászy & Tikk, *Applications of the Conjugate Gradient Method
//! for Implicit Feedback Collaborative Filtering*, RecSys 2011). It is the algorithm of the
//! Python `implicit` package's CPU `AlternatingLeastSquares` (version 0.7, `use_cg=True`), step
//! for step, so the two can be compared on the same data (`benches/cf/`, `scripts/bench-cf.sh`).
//!
//! # API sketch
//!
//! ```text
//! Csr::from_triplets(n_rows, n_cols, &[(row: u32, col: u32, value: f32)]) -> Result<Csr>
//!     rows = users, cols = items; duplicates summed; .transpose() .nnz() .row(r) .shape()
//! AlsConfig { factors: 64, regularization: 0.01, alpha: 1.0, iterations: 15, cg_steps: 3, seed: 42 }
//!     serde-deserialisable (unknown fields are an error); confidence = 1 + alpha * value
//! train_als(&interactions, &config, |stats: IterationStats| ..) -> Result<AlsModel>
//!     IterationStats { iteration, loss, seconds }
//! AlsModel { user_factors: Array2<f32>, item_factors: Array2<f32> }
//!     .write_to(w) / AlsModel::read_from(r)   (format: see `model` below)
//!     .loss(&interactions, &config)            (the loss `implicit` reports)
//! top_n(&scores, n, |item| excluded) -> Vec<(u32, f32)>         best first, ties by index
//! recommend_all_users(&recommender, n, &exclude, block_rows) -> Vec<Vec<(u32, f32)>>
//! similar_items(&model, n, block_rows) -> Result<Vec<Vec<(u32, f32)>>>   cosine, never itself
//! precision_at_k / recall_at_k / ndcg_at_k(&recommended, &relevant, k) -> f64
//! evaluate(&recommender, &train, &test, k) -> Result<EvalReport { precision, recall, ndcg, users_evaluated, cold_users, k }>
//! Popularity::fit(&train)   the baseline; implements `Recommender` like `AlsModel`
//! ```
//!
//! ```
//! use quire_cf::{AlsConfig, AlsModel, Csr, Popularity, evaluate, recommend_all_users, train_als};
//!
//! // 3 users × 4 items; values are e.g. purchase counts.
//! let train = Csr::from_triplets(3, 4, &[(0, 0, 2.0), (0, 1, 1.0), (1, 1, 1.0), (2, 3, 1.0)])?;
//! let test = Csr::from_triplets(3, 4, &[(1, 0, 1.0)])?;
//! let config = AlsConfig { factors: 2, iterations: 5, ..AlsConfig::default() };
//! let model = train_als(&train, &config, |s| println!("{}: loss {:.4}", s.iteration, s.loss))?;
//!
//! let lists = recommend_all_users(&model, 2, &train, 256)?; // never an item already bought
//! assert!(lists[0].iter().all(|&(item, _)| item > 1));
//! let report = evaluate(&model, &train, &test, 2)?;
//! let baseline = evaluate(&Popularity::fit(&train), &train, &test, 2)?;
//! assert_eq!((report.users_evaluated, baseline.users_evaluated), (1, 1));
//!
//! let mut bytes = Vec::new();
//! model.write_to(&mut bytes)?;
//! assert_eq!(AlsModel::read_from(&bytes[..])?, model);
//! # Ok::<(), quire_cf::CfError>(())
//! ```
//!
//! Every index is a dense `u32` position: callers keep their own maps from user and item ids
//! to rows and columns. Work is spread over the current rayon thread pool; run inside
//! `ThreadPool::install` to choose the number of threads. Results do not depend on the number of
//! threads: training is deterministic for a given [`AlsConfig::seed`] on a given kind of CPU
//! (the solvers pick the widest SIMD instructions available at run time, and a different vector
//! width rounds sums differently in the last bits).
//!
//! # Why not a crate
//!
//! The crates found for implicit ALS (`discorec` 0.3, the most complete) are single-threaded,
//! fix the number of CG steps, report no implicit loss and keep factors in their own matrix
//! type; none offers blocked batch scoring. The sparse matrix needed here is a plain CSR with
//! two operations (build from triplets, transpose), about 100 lines, so `sprs` would add a
//! dependency for little; `ndarray`'s matrix product (the `matrixmultiply` kernels, with
//! run-time AVX/FMA detection) does the dense work.

mod csr;
mod error;
mod eval;
mod kernels;
mod model;
mod recommend;
mod train;

pub use csr::Csr;
pub use error::{CfError, Result};
pub use eval::{
    EvalReport, Popularity, Recommender, evaluate, ndcg_at_k, precision_at_k, recall_at_k,
};
pub use model::AlsModel;
pub use recommend::{recommend_all_users, similar_items, top_n};
pub use train::{AlsConfig, IterationStats, train_als};
