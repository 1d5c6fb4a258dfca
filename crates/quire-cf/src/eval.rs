//! Ranking metrics, offline evaluation and the popularity baseline.
//!
//! Relevance is binary: an item is relevant to a user when it is stored in the user's row of
//! the test matrix. With `hits` = relevant items among the first `k` recommended:
//! - precision@k = hits / k (a list shorter than `k` still divides by `k`);
//! - recall@k = hits / |relevant|;
//! - NDCG@k = DCG / IDCG with DCG = Σ_{rank r ≤ k, item relevant} 1 / log2(r + 1) (ranks from 1)
//!   and IDCG the DCG of a perfect list, Σ_{r=1}^{min(k, |relevant|)} 1 / log2(r + 1).
//!
//! Each is 0 when undefined (k = 0, no relevant items).

use ndarray::{Array2, Axis};
use rayon::prelude::*;
use serde::Serialize;

use crate::csr::Csr;
use crate::error::{CfError, Result};
use crate::model::AlsModel;
use crate::recommend::row_top_n;

/// Something that scores every item for a user: a fitted [`AlsModel`], the [`Popularity`]
/// baseline, or any other model evaluated the same way.
pub trait Recommender: Sync {
    /// Number of users it can score (user indices are `0..n_users`).
    fn n_users(&self) -> usize;
    /// Number of items it scores (item indices are `0..n_items`).
    fn n_items(&self) -> usize;
    /// Scores of every item for each of `users` (all `< n_users`), one row per user:
    /// `users.len() × n_items`. Higher is better.
    fn score_users(&self, users: &[usize]) -> Array2<f32>;
    /// False for a user it has no information about; such a user gets no recommendations.
    fn knows_user(&self, _user: usize) -> bool {
        true
    }
    /// Errors when the recommender is internally inconsistent and cannot score.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

impl Recommender for AlsModel {
    fn n_users(&self) -> usize {
        AlsModel::n_users(self)
    }

    fn n_items(&self) -> usize {
        AlsModel::n_items(self)
    }

    fn score_users(&self, users: &[usize]) -> Array2<f32> {
        self.user_factors
            .select(Axis(0), users)
            .dot(&self.item_factors.t())
    }

    /// A user without training interactions has all-zero factors (as in `implicit`).
    fn knows_user(&self, user: usize) -> bool {
        self.user_factors.row(user).iter().any(|&v| v != 0.0)
    }

    fn validate(&self) -> Result<()> {
        self.check()
    }
}

/// The popularity baseline: every user gets the items bought (interacted with) by the most
/// distinct users in training, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Popularity {
    n_users: usize,
    /// Per item: number of training users with a stored interaction.
    counts: Vec<f32>,
}

impl Popularity {
    /// Counts, per item, the users with an interaction in `train` (users × items).
    pub fn fit(train: &Csr) -> Self {
        Self {
            n_users: train.n_rows(),
            counts: train.col_counts().into_iter().map(|c| c as f32).collect(),
        }
    }

    /// Per item: number of training users who interacted with it.
    pub fn scores(&self) -> &[f32] {
        &self.counts
    }
}

impl Recommender for Popularity {
    fn n_users(&self) -> usize {
        self.n_users
    }

    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score_users(&self, users: &[usize]) -> Array2<f32> {
        Array2::from_shape_fn((users.len(), self.counts.len()), |(_, i)| self.counts[i])
    }
}

/// Mean metrics over the evaluated users.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalReport {
    /// The cut-off.
    pub k: usize,
    /// Mean precision@k.
    pub precision: f64,
    /// Mean recall@k.
    pub recall: f64,
    /// Mean NDCG@k.
    pub ndcg: f64,
    /// Users with at least one test item and one training interaction (each counts once in
    /// the means).
    pub users_evaluated: usize,
    /// Users with test items but no training interaction, left out: a collaborative model
    /// knows nothing of them (served, they get the popularity list), so counting them would
    /// score the fallback, not the model, and differently for each recommender.
    pub cold_users: usize,
}

/// Whether `item` is in `relevant`: a binary search when `relevant` is sorted (as CSR rows
/// are), a scan otherwise.
fn contains(relevant: &[u32], sorted: bool, item: u32) -> bool {
    if sorted {
        relevant.binary_search(&item).is_ok()
    } else {
        relevant.contains(&item)
    }
}

/// 1 / log2(rank + 1) for a 1-based rank.
fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 1) as f64).log2()
}

/// Positions (0-based) of the relevant items among the first `k` recommended.
fn hit_positions<'a>(
    recommended: &'a [u32],
    relevant: &'a [u32],
    k: usize,
) -> impl Iterator<Item = usize> + 'a {
    let sorted = relevant.is_sorted();
    recommended
        .iter()
        .take(k)
        .enumerate()
        .filter(move |&(_, &item)| contains(relevant, sorted, item))
        .map(|(pos, _)| pos)
}

/// Precision@k of a ranking (`recommended`, best first, no repeats) against the distinct
/// `relevant` items: hits in the first `k` / `k`.
pub fn precision_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hit_positions(recommended, relevant, k).count() as f64 / k as f64
}

/// Recall@k: hits in the first `k` / number of relevant items (0 when there are none).
pub fn recall_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    hit_positions(recommended, relevant, k).count() as f64 / relevant.len() as f64
}

/// NDCG@k with binary relevance (see the module docs); 0 when there is nothing relevant or
/// `k` is 0.
pub fn ndcg_at_k(recommended: &[u32], relevant: &[u32], k: usize) -> f64 {
    let ideal: f64 = (1..=k.min(relevant.len())).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = hit_positions(recommended, relevant, k)
        .map(|pos| discount(pos + 1))
        .sum();
    dcg / ideal
}

/// Users scored per block in [`evaluate`].
const EVAL_BLOCK_ROWS: usize = 256;

/// Evaluates `recommender` on every user with at least one item in `test` and one in `train`
/// (the others are counted in [`EvalReport::cold_users`]): its top `k` items, never one stored
/// in the user's `train` row, against the user's `test` row; the metrics are averaged over
/// those users, the same for every recommender. Test items the user also has in `train` stay relevant (and can
/// never be hit): drop them from `test` when building the split if that is not wanted.
pub fn evaluate<R: Recommender + ?Sized>(
    recommender: &R,
    train: &Csr,
    test: &Csr,
    k: usize,
) -> Result<EvalReport> {
    recommender.validate()?;
    let shape = (recommender.n_users(), recommender.n_items());
    if train.shape() != shape || test.shape() != shape {
        return Err(CfError::Shape(format!(
            "train is {:?} and test {:?}; the recommender has {} users and {} items",
            train.shape(),
            test.shape(),
            shape.0,
            shape.1
        )));
    }
    let with_test: Vec<usize> = (0..test.n_rows())
        .filter(|&u| !test.row(u).0.is_empty())
        .collect();
    let users: Vec<usize> = with_test
        .iter()
        .copied()
        .filter(|&u| !train.row(u).0.is_empty())
        .collect();
    let cold_users = with_test.len() - users.len();
    let per_user: Vec<[f64; 3]> = users
        .par_chunks(EVAL_BLOCK_ROWS)
        .map(|block| {
            let scores = recommender.score_users(block);
            block
                .iter()
                .zip(scores.outer_iter())
                .map(|(&u, row)| {
                    let ranked: Vec<u32> = if recommender.knows_user(u) {
                        let (seen, _) = train.row(u);
                        row_top_n(row, k, |i| seen.binary_search(&(i as u32)).is_ok())
                            .into_iter()
                            .map(|(i, _)| i)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let (relevant, _) = test.row(u);
                    [
                        precision_at_k(&ranked, relevant, k),
                        recall_at_k(&ranked, relevant, k),
                        ndcg_at_k(&ranked, relevant, k),
                    ]
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    // Summed in user order, so the means do not depend on the number of threads.
    let mut sums = [0f64; 3];
    for m in &per_user {
        for (s, v) in sums.iter_mut().zip(m) {
            *s += v;
        }
    }
    let n = per_user.len();
    let mean = |s: f64| if n == 0 { 0.0 } else { s / n as f64 };
    Ok(EvalReport {
        k,
        precision: mean(sums[0]),
        recall: mean(sums[1]),
        ndcg: mean(sums[2]),
        users_evaluated: n,
        cold_users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn metrics_match_hand_values() {
        // Hits at ranks 2 and 5 of 5; three relevant items, one never recommended.
        let rec = [1, 2, 3, 4, 5];
        let rel = [2, 5, 9];
        assert!(close(precision_at_k(&rec, &rel, 5), 0.4));
        assert!(close(recall_at_k(&rec, &rel, 5), 2.0 / 3.0));
        // (1/log2 3 + 1/log2 6) / (1 + 1/log2 3 + 1/log2 4)
        assert!(close(ndcg_at_k(&rec, &rel, 5), 0.4776237035032179));
        // Only the first three count: one hit at rank 2; IDCG over min(3, 3) ranks.
        assert!(close(precision_at_k(&rec, &rel, 3), 1.0 / 3.0));
        assert!(close(recall_at_k(&rec, &rel, 3), 1.0 / 3.0));
        assert!(close(ndcg_at_k(&rec, &rel, 3), 0.2960819109658652));
        // IDCG over min(k, |relevant|): one relevant item at rank 1 is perfect.
        assert!(close(ndcg_at_k(&[7, 1], &[7], 2), 1.0));
        // At rank 2 with one relevant item: 1/log2 3.
        assert!(close(ndcg_at_k(&[1, 7], &[7], 2), 0.6309297535714575));
        // A list shorter than k still divides precision by k.
        assert!(close(precision_at_k(&[7], &[7], 10), 0.1));
        // Unsorted `relevant` works the same.
        assert!(close(recall_at_k(&rec, &[9, 5, 2], 5), 2.0 / 3.0));
        assert!(close(ndcg_at_k(&rec, &[9, 5, 2], 5), 0.4776237035032179));
        // Undefined cases are 0.
        assert_eq!(precision_at_k(&rec, &rel, 0), 0.0);
        assert_eq!(recall_at_k(&rec, &[], 5), 0.0);
        assert_eq!(ndcg_at_k(&rec, &[], 5), 0.0);
        assert_eq!(ndcg_at_k(&rec, &rel, 0), 0.0);
    }

    /// Scores item `i` for user `u` as `table[u][i]`.
    struct Fixed(Vec<Vec<f32>>);

    impl Recommender for Fixed {
        fn n_users(&self) -> usize {
            self.0.len()
        }
        fn n_items(&self) -> usize {
            self.0[0].len()
        }
        fn score_users(&self, users: &[usize]) -> Array2<f32> {
            Array2::from_shape_fn((users.len(), self.n_items()), |(r, i)| self.0[users[r]][i])
        }
    }

    #[test]
    fn evaluate_excludes_train_items_and_averages_over_test_users() {
        let fixed = Fixed(vec![
            vec![0.9, 0.8, 0.7, 0.1],
            vec![0.1, 0.2, 0.3, 0.4],
            vec![0.5, 0.5, 0.5, 0.5],
        ]);
        // User 0 bought item 0 (excluded), so the top 2 is [1, 2]; user 1 bought item 1:
        // [3, 2]; user 2 has no test items and is not evaluated.
        let train = Csr::from_triplets(3, 4, &[(0, 0, 1.0), (1, 1, 1.0), (2, 1, 1.0)]).unwrap();
        let test = Csr::from_triplets(3, 4, &[(0, 2, 1.0), (1, 0, 1.0), (1, 2, 1.0)]).unwrap();
        let report = evaluate(&fixed, &train, &test, 2).unwrap();
        assert_eq!((report.users_evaluated, report.cold_users), (2, 0));
        // User 0: hit at rank 2 of 1 relevant. User 1: hit at rank 2 of 2 relevant.
        assert!(close(report.precision, (0.5 + 0.5) / 2.0));
        assert!(close(report.recall, (1.0 + 0.5) / 2.0));
        let u0 = 0.6309297535714575;
        let u1 = 0.6309297535714575 / (1.0 + 0.6309297535714575);
        assert!(close(report.ndcg, (u0 + u1) / 2.0));

        let wrong = Csr::from_triplets(3, 5, &[]).unwrap();
        assert!(matches!(
            evaluate(&fixed, &wrong, &test, 2),
            Err(CfError::Shape(_))
        ));
        let empty = Csr::from_triplets(3, 4, &[]).unwrap();
        let none = evaluate(&fixed, &train, &empty, 2).unwrap();
        assert_eq!((none.users_evaluated, none.precision), (0, 0.0));
        // Without training interactions user 1 is cold: left out, counted; user 0 alone.
        let train0 = Csr::from_triplets(3, 4, &[(0, 0, 1.0)]).unwrap();
        let warm = evaluate(&fixed, &train0, &test, 2).unwrap();
        assert_eq!((warm.users_evaluated, warm.cold_users), (1, 1));
        assert!(close(warm.ndcg, u0));
    }

    #[test]
    fn popularity_ranks_by_distinct_training_users() {
        // Item 2: 3 users, item 0: 2 users (one with a large value), item 1: 1, item 3: 0.
        let train = Csr::from_triplets(
            4,
            4,
            &[
                (0, 2, 1.0),
                (1, 2, 1.0),
                (2, 2, 1.0),
                (0, 0, 9.0),
                (3, 0, 1.0),
                (1, 1, 1.0),
            ],
        )
        .unwrap();
        let pop = Popularity::fit(&train);
        assert_eq!(pop.scores(), &[2.0, 1.0, 3.0, 0.0]);
        let test = Csr::from_triplets(4, 4, &[(0, 1, 1.0), (2, 0, 1.0), (3, 3, 1.0)]).unwrap();
        let report = evaluate(&pop, &train, &test, 1).unwrap();
        // Top 1 after exclusions: user 0 → 1 (hit), user 2 → 0 (hit), user 3 → 2 (miss).
        assert_eq!(report.users_evaluated, 3);
        assert!(close(report.precision, 2.0 / 3.0));
        assert!(close(report.recall, 2.0 / 3.0));
        assert!(close(report.ndcg, 2.0 / 3.0));
    }
}
