//! Ranking metrics of query groups, with LightGBM's definitions, so the baseline and the model
//! are measured alike.

/// NDCG@k of one query: gains 2^label − 1, discount 1 / log2(rank + 1) (rank 1-based), the
/// documents ordered by `scores` descending (ties keep the given order); the ideal DCG orders by
/// label. A query with no relevant document scores 1, as LightGBM scores it.
pub fn ndcg_at_k(labels: &[f32], scores: &[f32], k: usize) -> f64 {
    let gain = |l: f32| 2f64.powf(f64::from(l)) - 1.0;
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let mut order: Vec<usize> = (0..labels.len()).collect();
    // NaN scores rank last.
    order.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (false, false) => y.total_cmp(&x),
            (an, bn) => an.cmp(&bn),
        }
        .then(a.cmp(&b))
    });
    let dcg: f64 = order
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &d)| gain(labels[d]) * discount(i))
        .sum();
    let mut ideal: Vec<f32> = labels.to_vec();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &l)| gain(l) * discount(i))
        .sum();
    if idcg <= 0.0 { 1.0 } else { dcg / idcg }
}

/// Mean NDCG@k over query groups (`groups` = rows per query, contiguous).
pub fn mean_ndcg(labels: &[f32], scores: &[f32], groups: &[usize], k: usize) -> f64 {
    let mut start = 0;
    let mut sum = 0.0;
    for &n in groups {
        sum += ndcg_at_k(&labels[start..start + n], &scores[start..start + n], k);
        start += n;
    }
    if groups.is_empty() {
        0.0
    } else {
        sum / groups.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_values() {
        // Perfect order.
        assert_eq!(ndcg_at_k(&[3.0, 1.0, 0.0], &[3.0, 2.0, 1.0], 3), 1.0);
        // Labels [0, 1, 3] scored in shown order: DCG = 0 + 1/log2(3) + 7/2 = 4.130930,
        // IDCG = 7 + 1/log2(3) = 7.630930.
        let v = ndcg_at_k(&[0.0, 1.0, 3.0], &[3.0, 2.0, 1.0], 3);
        assert!((v - 4.130930 / 7.630930).abs() < 1e-6, "{v}");
        // @1: the top document has gain 0.
        assert_eq!(ndcg_at_k(&[0.0, 1.0, 3.0], &[3.0, 2.0, 1.0], 1), 0.0);
        // Ties keep the given order; NaN ranks last.
        assert_eq!(ndcg_at_k(&[1.0, 0.0], &[5.0, 5.0], 1), 1.0);
        assert_eq!(ndcg_at_k(&[0.0, 1.0], &[f32::NAN, 0.0], 1), 1.0);
        // No relevant document: 1 (LightGBM's convention).
        assert_eq!(ndcg_at_k(&[0.0, 0.0], &[1.0, 2.0], 2), 1.0);
        // Mean over groups.
        let m = mean_ndcg(&[1.0, 0.0, 0.0, 1.0], &[1.0, 0.0, 1.0, 0.0], &[2, 2], 1);
        assert_eq!(m, 0.5);
    }
}
