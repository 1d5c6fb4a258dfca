//! Top-N by dot product for many queries at once, with the matrix product and the selection
//! fused per cache-sized tile.
//!
//! `quire_cf::recommend_all_users` scores a block of users against every item, then walks
//! each row of scores with a bounded heap that compares every score with the heap's minimum.
//! On the benchmark's 100,000 × 10,000 users × books that selection costs as much as the
//! matrix product itself. Here a block of queries is multiplied with one tile of items at a
//! time (the scores stay in the L2 cache), and each row is scanned sixteen scores at a time
//! against a running threshold — the N-th best score so far — with a branch-free comparison
//! the compiler vectorises; only the rare scores above it reach the candidate buffer, which is
//! cut back to the best N (`select_nth_unstable_by`) when it fills. Results are the same as
//! `quire_cf::top_n` over a full row: best first, ties by lower index, NaN never selected.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::RecList;

/// Queries per block (rows of one tile product).
const QUERY_BLOCK: usize = 128;
/// Items per tile: `QUERY_BLOCK × ITEM_TILE` scores (512 KiB) stay in L2.
const ITEM_TILE: usize = 1024;
/// Scores compared per step of the threshold scan.
const LANES: usize = 16;

/// The best `n` items of one query: an unordered buffer of candidates above `threshold`.
struct Best {
    n: usize,
    threshold: f32,
    cands: Vec<(u32, f32)>,
}

/// "Ranks higher": higher score, then lower index.
fn rank_order(a: &(u32, f32), b: &(u32, f32)) -> std::cmp::Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

impl Best {
    fn new(n: usize) -> Best {
        Best {
            n,
            threshold: f32::NEG_INFINITY,
            cands: Vec::with_capacity(2 * n + LANES),
        }
    }

    /// Keeps the best `n` candidates and raises the threshold to the worst of them.
    fn prune(&mut self) {
        if self.cands.len() > self.n {
            self.cands.select_nth_unstable_by(self.n - 1, rank_order);
            self.cands.truncate(self.n);
        }
        if self.cands.len() == self.n {
            self.threshold = self.cands.iter().map(|c| c.1).fold(f32::INFINITY, f32::min);
        }
    }

    /// Offers `scores[i]` for items `first + i`. Items arrive in increasing index order, so a
    /// score equal to the threshold never ranks higher than the candidates holding it.
    fn scan(&mut self, scores: &[f32], first: u32, skip: &impl Fn(u32) -> bool) {
        let (chunks, tail) = scores.as_chunks::<LANES>();
        for (c, chunk) in chunks.iter().enumerate() {
            let t = self.threshold;
            let mut hit = false;
            for &x in chunk {
                hit |= x > t;
            }
            if hit {
                let base = first + (c * LANES) as u32;
                for (l, &x) in chunk.iter().enumerate() {
                    if x > self.threshold && !skip(base + l as u32) {
                        self.push(base + l as u32, x);
                    }
                }
            }
        }
        let base = first + (chunks.len() * LANES) as u32;
        for (l, &x) in tail.iter().enumerate() {
            if x > self.threshold && !skip(base + l as u32) {
                self.push(base + l as u32, x);
            }
        }
    }

    fn push(&mut self, item: u32, score: f32) {
        self.cands.push((item, score));
        if self.cands.len() >= 2 * self.n {
            self.prune();
        }
    }

    fn finish(mut self) -> RecList {
        self.prune();
        self.cands.sort_unstable_by(rank_order);
        self.cands
    }
}

/// For each row `q` of `queries`, the `n` rows `j` of `items` with the highest `q · items[j]`,
/// best first (ties by lower `j`), never a `j` that `excluded(q, buf)` puts into `buf` (an
/// empty buffer it fills with item indices, in any order); rows with `ignore(q)` get an empty
/// list. Blocks of queries run in parallel on the current rayon pool; the result does not
/// depend on the number of threads.
///
/// On CPUs with AVX-512 VNNI the int8 candidate generation of [`crate::vnni`] does the
/// scanning (same lists, up to f32 rounding of the scores); elsewhere the f32 tiles below.
pub(crate) fn top_n_dot(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    n: usize,
    ignore: impl Fn(usize) -> bool + Sync,
    excluded: impl Fn(usize, &mut Vec<u32>) + Sync,
) -> Vec<RecList> {
    #[cfg(target_arch = "x86_64")]
    if crate::vnni::available() {
        return crate::vnni::top_n_dot(queries, items, n, ignore, excluded);
    }
    top_n_dot_f32(queries, items, n, ignore, excluded)
}

/// The portable path of [`top_n_dot`]: f32 tile products and a threshold scan.
pub(crate) fn top_n_dot_f32(
    queries: ArrayView2<f32>,
    items: ArrayView2<f32>,
    n: usize,
    ignore: impl Fn(usize) -> bool + Sync,
    excluded: impl Fn(usize, &mut Vec<u32>) + Sync,
) -> Vec<RecList> {
    let n_items = items.nrows();
    // A list holds at most every item: a larger `n` (a user's `--n`) must not size the buffers.
    let n = n.min(n_items);
    let starts: Vec<usize> = (0..queries.nrows()).step_by(QUERY_BLOCK).collect();
    starts
        .par_iter()
        .flat_map_iter(|&q0| {
            let q1 = (q0 + QUERY_BLOCK).min(queries.nrows());
            let block = queries.slice(s![q0..q1, ..]);
            let mut best: Vec<Best> = (q0..q1).map(|_| Best::new(n)).collect();
            let skips: Vec<Vec<u32>> = (q0..q1)
                .map(|q| {
                    let mut buf = Vec::new();
                    excluded(q, &mut buf);
                    buf.sort_unstable();
                    buf
                })
                .collect();
            let mut scores = Array2::<f32>::zeros((q1 - q0, ITEM_TILE.min(n_items)));
            if n > 0 {
                for i0 in (0..n_items).step_by(ITEM_TILE) {
                    let i1 = (i0 + ITEM_TILE).min(n_items);
                    let tile = items.slice(s![i0..i1, ..]);
                    let mut out = scores.slice_mut(s![.., ..i1 - i0]);
                    general_mat_mul(1.0, &block, &tile.t(), 0.0, &mut out);
                    for (r, row) in out.axis_iter(Axis(0)).enumerate() {
                        let q = q0 + r;
                        if ignore(q) {
                            continue;
                        }
                        let row = row.to_slice().unwrap_or_default();
                        let skip = &skips[r];
                        best[r].scan(row, i0 as u32, &|j| skip.binary_search(&j).is_ok());
                    }
                }
            }
            best.into_iter()
                .enumerate()
                .map(|(r, b)| {
                    if ignore(q0 + r) {
                        Vec::new()
                    } else {
                        b.finish()
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use proptest::prelude::*;
    use quire_cf::top_n;

    use super::*;

    /// The test predicates as exclusion lists.
    fn listed(
        skip: impl Fn(usize, u32) -> bool + Sync,
        cols: usize,
    ) -> impl Fn(usize, &mut Vec<u32>) + Sync {
        move |q, buf| buf.extend((0..cols as u32).filter(|&j| skip(q, j)))
    }

    fn reference(
        q: &Array2<f32>,
        items: &Array2<f32>,
        n: usize,
        skip: impl Fn(usize, u32) -> bool,
    ) -> Vec<RecList> {
        let scores = q.dot(&items.t());
        scores
            .outer_iter()
            .enumerate()
            .map(|(r, row)| top_n(&row.to_vec(), n, |j| skip(r, j as u32)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Same lists as `quire_cf::top_n` over full rows, for shapes around the tile and
        /// lane sizes, with ties (small integer factors) and exclusions.
        #[test]
        fn matches_full_row_top_n(
            rows in 1usize..300,
            cols in 1usize..2100,
            k in 1usize..6,
            n in 0usize..40,
            seed in any::<u64>(),
        ) {
            let mut x = seed | 1;
            let mut next = || {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                (x % 5) as f32 - 2.0
            };
            let q = Array2::from_shape_fn((rows, k), |_| next());
            let items = Array2::from_shape_fn((cols, k), |_| next());
            let skip = |r: usize, j: u32| (r + j as usize).is_multiple_of(7);
            let want = reference(&q, &items, n, skip);
            let got = top_n_dot_f32(q.view(), items.view(), n, |_| false, listed(skip, cols));
            prop_assert_eq!(&got, &want);
            #[cfg(target_arch = "x86_64")]
            if crate::vnni::available() {
                let got = crate::vnni::top_n_dot(q.view(), items.view(), n, |_| false, listed(skip, cols));
                prop_assert_eq!(&got, &want);
            }
        }

        /// The int8 path on real-valued factors: the same lists as an exhaustive ranking with
        /// the same f32 dot product (the error bound must keep every true top-N item).
        #[test]
        fn int8_candidates_lose_nothing(
            rows in 1usize..40,
            cols in 1usize..700,
            k in 1usize..70,
            n in 1usize..60,
            spread in 0.01f32..100.0,
            seed in any::<u64>(),
        ) {
            #[cfg(target_arch = "x86_64")]
            if crate::vnni::available() {
                let mut x = seed | 1;
                let mut next = || {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    ((x >> 11) as f32 / (1u64 << 53) as f32 - 0.5) * spread
                };
                let q = Array2::from_shape_fn((rows, k), |_| next());
                // Items of very different norms, as ALS gives popular and rare books.
                let items = Array2::from_shape_fn((cols, k), |(j, _)| next() * (1 + j % 9) as f32);
                let skip = |r: usize, j: u32| (r * 3 + j as usize).is_multiple_of(11);
                let got =
                    crate::vnni::top_n_dot(q.view(), items.view(), n, |r| r == 1, listed(skip, cols));
                for (r, list) in got.iter().enumerate() {
                    if r == 1 {
                        prop_assert!(list.is_empty());
                        continue;
                    }
                    let row = q.row(r);
                    let scores: Vec<f32> = items
                        .outer_iter()
                        .map(|it| crate::vnni::exact_dot(row.as_slice(), it.as_slice()))
                        .collect();
                    prop_assert_eq!(list, &top_n(&scores, n, |j| skip(r, j as u32)));
                }
            }
        }
    }

    #[test]
    fn an_n_beyond_the_items_lists_every_item() {
        let q = Array2::from_shape_vec((1, 1), vec![1.0]).unwrap();
        let items = Array2::from_shape_vec((3, 1), vec![1.0, 3.0, 2.0]).unwrap();
        // Buffers sized by n would need terabytes here.
        let got = top_n_dot_f32(q.view(), items.view(), 1 << 40, |_| false, |_, _| {});
        assert_eq!(got, vec![vec![(1, 3.0), (2, 2.0), (0, 1.0)]]);
    }

    #[test]
    fn ignored_rows_get_empty_lists_and_nan_is_never_chosen() {
        let q = Array2::from_shape_vec((2, 1), vec![1.0, 1.0]).unwrap();
        let items = Array2::from_shape_vec((3, 1), vec![f32::NAN, 2.0, 1.0]).unwrap();
        let got = top_n_dot_f32(q.view(), items.view(), 3, |r| r == 1, |_, _| {});
        assert_eq!(got, vec![vec![(1, 2.0), (2, 1.0)], vec![]]);
    }
}
