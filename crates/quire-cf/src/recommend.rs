//! Top-N selection and batch scoring: per-user lists and item–item similarity.
//!
//! Batch work is blocked: a block of `block_rows` users (or items) is scored against every
//! item with one matrix product (`ndarray`'s `dot`), the blocks run in parallel on rayon, and
//! each row of a block is reduced to its top N by a bounded heap — no row is ever fully sorted.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ndarray::{Array1, Array2, ArrayView1, Axis};
use rayon::prelude::*;

use crate::csr::Csr;
use crate::error::{CfError, Result};
use crate::eval::Recommender;
use crate::model::AlsModel;

/// A candidate in the heap, ordered so that "greater" means "ranks higher": a higher score,
/// or the same score and a lower index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    score: f32,
    index: u32,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.index.cmp(&self.index))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `n` best `(index, score)` pairs of `scores`, skipping indices for which `exclude`
/// returns true and NaN scores; sorted by score descending, ties by index ascending.
///
/// A bounded min-heap of `n` entries: `O(len · log n)`, and `exclude` is asked only about
/// indices that would enter the current top `n`.
pub fn top_n(scores: &[f32], n: usize, exclude: impl Fn(usize) -> bool) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Candidate>> =
        BinaryHeap::with_capacity(n.min(scores.len()) + 1);
    for (i, &score) in scores.iter().enumerate() {
        if score.is_nan() {
            continue;
        }
        let candidate = Candidate {
            score,
            index: i as u32,
        };
        if heap.len() == n {
            // Indices arrive in increasing order, so an equal score never ranks higher.
            match heap.peek() {
                Some(Reverse(worst)) if candidate > *worst => {}
                _ => continue,
            }
        }
        if exclude(i) {
            continue;
        }
        heap.push(Reverse(candidate));
        if heap.len() > n {
            heap.pop();
        }
    }
    // Ascending order of `Reverse` is descending order of rank.
    heap.into_sorted_vec()
        .into_iter()
        .map(|Reverse(c)| (c.index, c.score))
        .collect()
}

/// [`top_n`] of a row of scores (a block's rows are contiguous; others are copied first).
pub(crate) fn row_top_n(
    row: ArrayView1<f32>,
    n: usize,
    exclude: impl Fn(usize) -> bool,
) -> Vec<(u32, f32)> {
    match row.as_slice() {
        Some(scores) => top_n(scores, n, exclude),
        None => top_n(&row.to_vec(), n, exclude),
    }
}

/// The top-`n` items for every user of `recommender`, never an item stored in that user's row
/// of `exclude` (users × items; e.g. what they already bought). Users the recommender knows
/// nothing about ([`Recommender::knows_user`]) get an empty list; callers fall back to a
/// popularity list for them.
///
/// Users are scored in blocks of `block_rows` (at least 1) against all items, blocks in
/// parallel; memory is about `threads × block_rows × n_items × 4` bytes.
pub fn recommend_all_users<R: Recommender + ?Sized>(
    recommender: &R,
    n: usize,
    exclude: &Csr,
    block_rows: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    recommender.validate()?;
    let (n_users, n_items) = (recommender.n_users(), recommender.n_items());
    if exclude.shape() != (n_users, n_items) {
        return Err(CfError::Shape(format!(
            "exclusion matrix is {} x {}, the recommender has {n_users} users and {n_items} items",
            exclude.n_rows(),
            exclude.n_cols()
        )));
    }
    let users: Vec<usize> = (0..n_users).collect();
    Ok(users
        .par_chunks(block_rows.max(1))
        .map(|block| {
            let scores = recommender.score_users(block);
            block
                .iter()
                .zip(scores.outer_iter())
                .map(|(&u, row)| {
                    if !recommender.knows_user(u) {
                        return Vec::new();
                    }
                    let (seen, _) = exclude.row(u);
                    row_top_n(row, n, |i| seen.binary_search(&(i as u32)).is_ok())
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect())
}

/// For every item, the `n` most similar other items by cosine similarity of their factors,
/// best first (ties by index). Items whose factors are all zero (never seen in training) get
/// an empty list and appear in no list.
///
/// Items are scored in blocks of `block_rows` (at least 1) against all items, in parallel.
pub fn similar_items(
    model: &AlsModel,
    n: usize,
    block_rows: usize,
) -> Result<Vec<Vec<(u32, f32)>>> {
    model.check()?;
    let norms: Array1<f32> = model
        .item_factors
        .map_axis(Axis(1), |row| row.dot(&row).sqrt());
    let mut normed: Array2<f32> = model.item_factors.to_owned();
    for (mut row, &norm) in normed.outer_iter_mut().zip(norms.iter()) {
        if norm > 0.0 {
            row /= norm;
        }
    }
    let items: Vec<usize> = (0..model.n_items()).collect();
    let normed_t = normed.t();
    Ok(items
        .par_chunks(block_rows.max(1))
        .map(|block| {
            let sims = normed.select(Axis(0), block).dot(&normed_t);
            block
                .iter()
                .zip(sims.outer_iter())
                .map(|(&i, row)| {
                    if norms[i] == 0.0 {
                        return Vec::new();
                    }
                    row_top_n(row, n, |j| j == i || norms[j] == 0.0)
                })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn top_n_orders_by_score_then_index_and_skips() {
        let scores = [0.5, 0.9, f32::NAN, 0.5, 0.9, -1.0, 0.7];
        assert_eq!(
            top_n(&scores, 3, |_| false),
            vec![(1, 0.9), (4, 0.9), (6, 0.7)]
        );
        assert_eq!(
            top_n(&scores, 4, |i| i == 1 || i == 6),
            vec![(4, 0.9), (0, 0.5), (3, 0.5), (5, -1.0)]
        );
        // More wanted than available: every non-NaN, non-excluded index, sorted.
        assert_eq!(
            top_n(&scores, 10, |i| i != 0 && i != 5),
            vec![(0, 0.5), (5, -1.0)]
        );
        assert!(top_n(&scores, 0, |_| false).is_empty());
        assert_eq!(top_n(&scores, usize::MAX, |_| false).len(), 6);
        assert!(top_n(&[], 3, |_| false).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn top_n_equals_a_full_sort(
            scores in proptest::collection::vec(-4i8..4, 0..60),
            n in 0usize..12,
            excluded in proptest::collection::vec(0usize..60, 0..10),
        ) {
            let scores: Vec<f32> = scores.into_iter().map(|s| f32::from(s) / 2.0).collect();
            let mut all: Vec<(u32, f32)> = scores
                .iter()
                .enumerate()
                .filter(|(i, _)| !excluded.contains(i))
                .map(|(i, &s)| (i as u32, s))
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            all.truncate(n);
            proptest::prop_assert_eq!(top_n(&scores, n, |i| excluded.contains(&i)), all);
        }
    }

    fn model() -> AlsModel {
        AlsModel {
            user_factors: array![[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]],
            item_factors: array![[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0], [0.0, 0.0]],
        }
    }

    #[test]
    fn recommends_per_user_without_excluded_items_in_any_block_size() {
        let m = model();
        let bought = Csr::from_triplets(4, 5, &[(0, 1, 1.0), (3, 2, 1.0), (3, 1, 1.0)]).unwrap();
        let expected = vec![
            // User 0 scores [1, 2, 0, 1, 0]; item 1 bought.
            vec![(0, 1.0), (3, 1.0)],
            // User 1 scores [0, 0, 3, 1, 0].
            vec![(2, 3.0), (3, 1.0)],
            // User 2 has zero factors: unknown, no list.
            vec![],
            // User 3 scores [1, 2, 3, 2, 0]; items 1 and 2 bought.
            vec![(3, 2.0), (0, 1.0)],
        ];
        for block in [1, 2, 3, 100] {
            assert_eq!(
                recommend_all_users(&m, 2, &bought, block).unwrap(),
                expected,
                "block {block}"
            );
        }
        let wrong = Csr::from_triplets(4, 4, &[]).unwrap();
        assert!(matches!(
            recommend_all_users(&m, 2, &wrong, 8),
            Err(CfError::Shape(_))
        ));
        let broken = AlsModel {
            user_factors: Array2::zeros((4, 3)),
            item_factors: m.item_factors.clone(),
        };
        assert!(matches!(
            recommend_all_users(&broken, 2, &bought, 8),
            Err(CfError::Shape(_))
        ));
    }

    #[test]
    fn similar_items_by_cosine_never_self_nor_unseen_items() {
        let m = model();
        let s = 0.5f32.sqrt();
        let expected = vec![
            vec![(1, 1.0), (3, s)],
            vec![(0, 1.0), (3, s)],
            vec![(3, s), (0, 0.0)],
            vec![(0, s), (1, s)],
            vec![],
        ];
        for block in [1, 2, 5] {
            let got = similar_items(&m, 2, block).unwrap();
            assert_eq!(got.len(), 5);
            for (g, e) in got.iter().zip(&expected) {
                assert_eq!(g.len(), e.len());
                for (a, b) in g.iter().zip(e) {
                    assert_eq!(a.0, b.0, "block {block}: {got:?}");
                    assert!((a.1 - b.1).abs() < 1e-6);
                }
            }
        }
    }
}
