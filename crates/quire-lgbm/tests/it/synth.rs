//! Small synthetic ranking data and a reference NDCG written from its definition.

use quire_lgbm::Dataset;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Features per row: x0, x1, x2 carry the relevance, x3 and x4 are noise.
pub const N_FEATURES: usize = 5;

/// Common parameters: small trees, one thread, deterministic, quiet.
pub const PARAMS: &str = "objective=lambdarank metric=ndcg eval_at=5,1,3 num_leaves=7 \
    min_data_in_leaf=5 learning_rate=0.2 deterministic=true num_threads=1 seed=7 verbosity=-1";

/// Queries of documents stored query by query.
pub struct Ltr {
    pub x: Vec<f32>,
    pub labels: Vec<f32>,
    pub groups: Vec<i32>,
}

impl Ltr {
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// A LightGBM dataset of these rows (a validation set when `reference` is given).
    pub fn dataset(&self, params: &str, reference: Option<&Dataset>) -> Dataset {
        Dataset::from_dense(
            &self.x,
            self.n_rows(),
            N_FEATURES,
            &self.labels,
            Some(&self.groups),
            params,
            reference,
        )
        .unwrap()
    }
}

/// `queries` × `docs` rows with features uniform in [0, 1) and a grade 0..=3 from
/// `2·x0 + x1 − x2 + noise·u` (u uniform in [−1, 1)).
pub fn ltr(seed: u64, queries: usize, docs: usize, noise: f32) -> Ltr {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(queries * docs * N_FEATURES);
    let mut labels = Vec::with_capacity(queries * docs);
    for _ in 0..queries * docs {
        let row: Vec<f32> = (0..N_FEATURES).map(|_| rng.r#gen::<f32>()).collect();
        let s = 2.0 * row[0] + row[1] - row[2] + noise * rng.gen_range(-1.0f32..1.0);
        labels.push(match s {
            s if s < 0.5 => 0.0,
            s if s < 1.2 => 1.0,
            s if s < 1.8 => 2.0,
            _ => 3.0,
        });
        x.extend(row);
    }
    let groups = vec![i32::try_from(docs).unwrap(); queries];
    Ltr { x, labels, groups }
}

/// NDCG@k averaged over queries, LightGBM's convention: gain 2^label − 1, discount
/// 1 / log2(rank + 1), documents ordered by score (ties keep row order), and a query without
/// any relevant document scores 1.
pub fn ndcg_at(scores: &[f64], labels: &[f32], groups: &[i32], k: usize) -> f64 {
    let dcg = |grades: &[f32]| -> f64 {
        grades
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, &l)| (2f64.powf(f64::from(l)) - 1.0) / ((i + 2) as f64).log2())
            .sum()
    };
    let mut start = 0;
    let mut total = 0.0;
    for &size in groups {
        let end = start + usize::try_from(size).unwrap();
        let mut order: Vec<usize> = (start..end).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let ranked: Vec<f32> = order.iter().map(|&i| labels[i]).collect();
        let mut ideal = labels[start..end].to_vec();
        ideal.sort_by(|a, b| b.total_cmp(a));
        let best = dcg(&ideal);
        total += if best == 0.0 {
            1.0
        } else {
            dcg(&ranked) / best
        };
        start = end;
    }
    total / groups.len() as f64
}

#[test]
fn reference_ndcg_on_hand_computed_cases() {
    // One query ranked [label 0, label 1, label 2]:
    // DCG@3 = 0 + 1/log2(3) + 3/log2(4) = 2.130930; ideal = 3 + 1/log2(3) = 3.630930.
    let (scores, labels) = ([3.0, 2.0, 1.0], [0.0, 1.0, 2.0]);
    assert!((ndcg_at(&scores, &labels, &[3], 3) - 2.130930 / 3.630930).abs() < 1e-6);
    // @1: the top document has gain 0.
    assert_eq!(ndcg_at(&scores, &labels, &[3], 1), 0.0);
    // Ties keep row order; a query of zeros scores 1; the mean is over queries.
    let (scores, labels) = ([1.0, 1.0, 5.0, 0.0], [0.0, 1.0, 0.0, 0.0]);
    let first = 1.0 / 3f64.log2(); // label 1 at rank 2 of its query
    assert!((ndcg_at(&scores, &labels, &[2, 2], 2) - (first + 1.0) / 2.0).abs() < 1e-12);
}
