//! The lists: per user, per book (similar, bought together, the blend published), popular.
//!
//! Scoring and top-N selection of the ALS parts come from `quire-cf`
//! ([`quire_cf::recommend_all_users`], [`quire_cf::similar_items`], [`quire_cf::top_n`]):
//! blocked matrix products on rayon and bounded-heap partial selection. This module adds the
//! co-purchase statistics and the blend.

use std::time::Instant;

use ndarray::{Array2, Axis};
use quire_cf::top_n;
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::topk::top_n_dot;
use crate::{Error, RecsInput, Result};

/// One list: `(book index, score)`, best first.
pub type RecList = Vec<(u32, f32)>;

/// How the lists are computed. Every field has a default ([`RecsConfig::new`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecsConfig {
    /// Length of every list (N).
    pub n: usize,
    /// A pair of books needs at least this many common orders to count as bought together.
    pub min_co_orders: u32,
    /// Pseudo-orders `α` of the smoothed lift `(c_ab + α) / (E_ab + α)` (see the crate docs).
    pub lift_prior: f64,
    /// Weight `β` of `ln(smoothed lift)` added to the cosine in the published book lists.
    pub co_purchase_weight: f32,
}

impl RecsConfig {
    /// The defaults for lists of length `n`: at least 2 common orders,
    /// `α = 5`, `β = 0.5`.
    pub fn new(n: usize) -> RecsConfig {
        RecsConfig {
            n,
            min_co_orders: 2,
            lift_prior: 5.0,
            co_purchase_weight: 0.5,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.n == 0 {
            return Err(Error::config("n", "must be at least 1"));
        }
        if !(self.lift_prior.is_finite() && self.lift_prior > 0.0) {
            return Err(Error::config(
                "lift_prior",
                format!("must be finite and > 0, got {}", self.lift_prior),
            ));
        }
        if !(self.co_purchase_weight.is_finite() && self.co_purchase_weight >= 0.0) {
            return Err(Error::config(
                "co_purchase_weight",
                format!("must be finite and >= 0, got {}", self.co_purchase_weight),
            ));
        }
        Ok(())
    }
}

impl Default for RecsConfig {
    fn default() -> Self {
        RecsConfig::new(50)
    }
}

/// Every list of one recommendation set, indexed like the input's ids.
#[derive(Debug, Clone)]
pub struct RecSets {
    /// The input's user ids (row `u` of [`RecSets::users`] is `user_ids[u]`).
    pub user_ids: Vec<String>,
    /// The input's book ids (book index `i` is `book_ids[i]`).
    pub book_ids: Vec<String>,
    /// The N the lists were computed for.
    pub n: usize,
    /// Per user: top-N books by ALS score, never a book the user bought. Empty for a user the
    /// model knows nothing about (all-zero factors): no key is written, readers fall back to
    /// the popular list.
    pub users: Vec<RecList>,
    /// Per book: top-N other books by cosine similarity of the ALS item factors.
    pub similar: Vec<RecList>,
    /// Per book: top-N books bought together, by smoothed lift (only pairs with at least
    /// [`RecsConfig::min_co_orders`] common orders and a smoothed lift above 1).
    pub bought_together: Vec<RecList>,
    /// Per book: the published list, the blend of the two above (see the crate docs).
    pub items: Vec<RecList>,
    /// The fallback list: most popular books, score = share of the popularity total.
    pub popular: RecList,
    /// SHA-256 (hex) over N, the ids and every published list: equal digests mean equal sets.
    pub digest: String,
    /// Wall time of [`compute_recs`].
    pub compute_seconds: f64,
    /// Where that time went.
    pub timings: ComputeTimings,
}

/// Seconds per phase of [`compute_recs`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ComputeTimings {
    /// User lists (scoring every user against every book).
    pub users: f64,
    /// Similar books (every book against every book).
    pub similar: f64,
    /// Co-purchase lifts, bought-together lists and the blend.
    pub items: f64,
    /// Popular list, checks and the digest.
    pub finish: f64,
}

impl RecSets {
    /// Users with a non-empty list (the `user:` keys a publish writes).
    pub fn users_with_lists(&self) -> usize {
        self.users.iter().filter(|l| !l.is_empty()).count()
    }

    /// Books with a non-empty published list (the `item:` keys a publish writes).
    pub fn items_with_lists(&self) -> usize {
        self.items.iter().filter(|l| !l.is_empty()).count()
    }
}

/// Computes every list of a set from `input`: see the crate docs for what each list holds.
///
/// Runs on the current rayon pool (use `ThreadPool::install` to pick the threads); the result
/// does not depend on the number of threads.
pub fn compute_recs(input: &RecsInput, config: &RecsConfig) -> Result<RecSets> {
    let start = Instant::now();
    config.validate()?;
    input.validate()?;
    let n = config.n;
    let model = &input.model;

    let mut timings = ComputeTimings::default();
    let mut phase = Instant::now();
    let mut lap = || {
        let secs = phase.elapsed().as_secs_f64();
        phase = Instant::now();
        secs
    };
    let bought = &input.bought;
    let users = top_n_dot(
        model.user_factors.view(),
        model.item_factors.view(),
        n,
        |u| model.user_factors.row(u).iter().all(|&x| x == 0.0),
        |u, buf| buf.extend_from_slice(bought.row(u).0),
    );
    timings.users = lap();
    let normed = unit_rows(&model.item_factors);
    let unseen: Vec<u32> = (0..normed.nrows() as u32)
        .filter(|&i| normed.row(i as usize).iter().all(|&x| x == 0.0))
        .collect();
    let similar = top_n_dot(
        normed.view(),
        normed.view(),
        n,
        |i| unseen.binary_search(&(i as u32)).is_ok(),
        |i, buf| {
            buf.push(i as u32);
            buf.extend_from_slice(&unseen);
        },
    );
    timings.similar = lap();
    let co = CoGraph::new(input, config);
    let (bought_together, items): (Vec<RecList>, Vec<RecList>) = (0..input.book_ids.len())
        .into_par_iter()
        .map(|i| {
            let bt = co.bought_together(i, n);
            let blend = co.blend(i, &similar[i], &normed, config.co_purchase_weight, n);
            (bt, blend)
        })
        .unzip();
    timings.items = lap();
    let popular = popular(&input.popularity, n);

    for (what, lists) in [("user", &users), ("item", &items)] {
        if let Some(k) = lists
            .iter()
            .position(|l| l.iter().any(|(_, s)| !s.is_finite()))
        {
            return Err(Error::input(format!(
                "{what} list {k} has a non-finite score (factors too large?)"
            )));
        }
    }

    let mut sets = RecSets {
        user_ids: input.user_ids.clone(),
        book_ids: input.book_ids.clone(),
        n,
        users,
        similar,
        bought_together,
        items,
        popular,
        digest: String::new(),
        compute_seconds: 0.0,
        timings,
    };
    sets.digest = digest(&sets);
    sets.timings.finish = lap();
    sets.compute_seconds = start.elapsed().as_secs_f64();
    Ok(sets)
}

/// Rows scaled to unit length (all-zero rows stay zero), for cosines.
fn unit_rows(factors: &Array2<f32>) -> Array2<f32> {
    let mut normed = factors.to_owned();
    for mut row in normed.axis_iter_mut(Axis(0)) {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    normed
}

/// Books bought together, as adjacency lists of `(other book, smoothed lift)` restricted to
/// pairs with enough support and a smoothed lift above 1; each list sorted by book index.
struct CoGraph {
    offsets: Vec<usize>,
    neighbours: Vec<(u32, f64)>,
}

impl CoGraph {
    fn new(input: &RecsInput, config: &RecsConfig) -> CoGraph {
        let co = &input.co_purchases;
        let n_books = input.book_ids.len();
        let total = co.total_orders as f64;
        let alpha = config.lift_prior;
        let kept: Vec<(u32, u32, f64)> = co
            .pairs
            .par_iter()
            .filter(|&&(_, _, c)| c >= config.min_co_orders)
            .filter_map(|&(a, b, c)| {
                let expected = f64::from(co.item_orders[a as usize])
                    * f64::from(co.item_orders[b as usize])
                    / total;
                let lift = (f64::from(c) + alpha) / (expected + alpha);
                (lift > 1.0).then_some((a, b, lift))
            })
            .collect();
        let mut offsets = vec![0usize; n_books + 1];
        for &(a, b, _) in &kept {
            offsets[a as usize + 1] += 1;
            offsets[b as usize + 1] += 1;
        }
        for i in 0..n_books {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut neighbours = vec![(0u32, 0f64); offsets[n_books]];
        for &(a, b, lift) in &kept {
            neighbours[next[a as usize]] = (b, lift);
            next[a as usize] += 1;
            neighbours[next[b as usize]] = (a, lift);
            next[b as usize] += 1;
        }
        let mut graph = CoGraph {
            offsets,
            neighbours,
        };
        graph.sort_rows();
        graph
    }

    fn sort_rows(&mut self) {
        let offsets = &self.offsets;
        let mut rows: Vec<&mut [(u32, f64)]> = Vec::with_capacity(offsets.len() - 1);
        let mut rest = self.neighbours.as_mut_slice();
        for w in offsets.windows(2) {
            let (row, tail) = rest.split_at_mut(w[1] - w[0]);
            rows.push(row);
            rest = tail;
        }
        rows.par_iter_mut()
            .for_each(|row| row.sort_unstable_by_key(|&(j, _)| j));
    }

    fn row(&self, i: usize) -> &[(u32, f64)] {
        &self.neighbours[self.offsets[i]..self.offsets[i + 1]]
    }

    /// Book `i`'s top-`n` partners by smoothed lift (ties by index).
    fn bought_together(&self, i: usize, n: usize) -> RecList {
        let row = self.row(i);
        let scores: Vec<f32> = row.iter().map(|&(_, lift)| lift as f32).collect();
        top_n(&scores, n, |_| false)
            .into_iter()
            .map(|(k, s)| (row[k as usize].0, s))
            .collect()
    }

    /// Book `i`'s published list: the top `n` of `cosine + β·ln(smoothed lift)` over the
    /// union of its `similar` list and all its co-purchase partners. Exact: a book in neither
    /// has no lift bonus and a cosine below the `n` similar books', so it cannot rank higher.
    fn blend(
        &self,
        i: usize,
        similar: &[(u32, f32)],
        normed: &Array2<f32>,
        beta: f32,
        n: usize,
    ) -> RecList {
        let row = self.row(i);
        let own = normed.row(i);
        let mut candidates: Vec<(u32, f32)> = Vec::with_capacity(similar.len() + row.len());
        for &(j, lift) in row {
            let cosine = own.dot(&normed.row(j as usize));
            candidates.push((j, cosine + beta * lift.ln() as f32));
        }
        for &(j, _) in similar {
            if row.binary_search_by_key(&j, |&(k, _)| k).is_err() {
                candidates.push((j, own.dot(&normed.row(j as usize))));
            }
        }
        // `top_n` breaks ties by position: order candidates by book index first.
        candidates.sort_unstable_by_key(|&(j, _)| j);
        let scores: Vec<f32> = candidates.iter().map(|&(_, s)| s).collect();
        top_n(&scores, n, |_| false)
            .into_iter()
            .map(|(k, s)| (candidates[k as usize].0, s))
            .collect()
    }
}

/// The `n` books with the highest popularity count (none with 0), score = share of the total.
fn popular(counts: &[u64], n: usize) -> RecList {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let shares: Vec<f32> = counts
        .iter()
        .map(|&c| (c as f64 / total as f64) as f32)
        .collect();
    top_n(&shares, n, |i| counts[i] == 0)
}

/// SHA-256 over N, the ids and the published lists, hashed in fixed chunks in parallel (the
/// result does not depend on the number of threads).
fn digest(sets: &RecSets) -> String {
    const CHUNK: usize = 4096;
    fn hash_lists(ids: &[String], lists: &[RecList]) -> Vec<[u8; 32]> {
        ids.par_chunks(CHUNK)
            .zip(lists.par_chunks(CHUNK))
            .map(|(ids, lists)| {
                let mut h = Sha256::new();
                for (id, list) in ids.iter().zip(lists) {
                    h.update((id.len() as u64).to_le_bytes());
                    h.update(id.as_bytes());
                    h.update((list.len() as u64).to_le_bytes());
                    for &(j, s) in list {
                        h.update(j.to_le_bytes());
                        h.update(s.to_bits().to_le_bytes());
                    }
                }
                h.finalize().into()
            })
            .collect()
    }
    let mut h = Sha256::new();
    h.update(b"quire-recs/1");
    h.update((sets.n as u64).to_le_bytes());
    for part in [
        hash_lists(&sets.user_ids, &sets.users),
        hash_lists(&sets.book_ids, &sets.items),
        hash_lists(
            &["popular".to_string()],
            std::slice::from_ref(&sets.popular),
        ),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        for d in part {
            h.update(d);
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use ndarray::array;
    use quire_cf::{AlsModel, Csr};

    use super::*;
    use crate::CoPurchases;

    /// Four books, two users; every expected figure below is worked out by hand.
    fn small_input() -> RecsInput {
        RecsInput {
            user_ids: vec!["usr_0".into(), "usr_1".into(), "usr_2".into()],
            book_ids: (0..4).map(|i| format!("bk_{i}")).collect(),
            model: AlsModel {
                // usr_2 has all-zero factors: the model knows nothing about them.
                user_factors: array![[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]],
                item_factors: array![[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [3.0, 0.0]],
            },
            bought: Csr::from_triplets(3, 4, &[(0, 3, 1.0)]).unwrap(),
            co_purchases: CoPurchases {
                pairs: vec![(0, 1, 6), (1, 2, 8), (2, 3, 1), (0, 3, 3)],
                item_orders: vec![50, 10, 10, 4],
                total_orders: 100,
            },
            popularity: vec![5, 0, 3, 2],
        }
    }

    fn assert_list(got: &[(u32, f32)], want: &[(u32, f32)]) {
        let ids: Vec<u32> = got.iter().map(|&(j, _)| j).collect();
        let want_ids: Vec<u32> = want.iter().map(|&(j, _)| j).collect();
        assert_eq!(ids, want_ids, "got {got:?}, want {want:?}");
        for (&(_, g), &(_, w)) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn hand_computed_lists() {
        let sets = compute_recs(&small_input(), &RecsConfig::new(2)).unwrap();
        // usr_0 scores 1, 0, 1, 3 but bought bk_3; tie 1 = 1 broken by index.
        assert_list(&sets.users[0], &[(0, 1.0), (2, 1.0)]);
        assert_list(&sets.users[1], &[(1, 2.0), (2, 1.0)]);
        assert!(sets.users[2].is_empty(), "unknown user gets no list");

        // Smoothed lift (c + 5) / (c_a c_b / T + 5):
        // (0,1): 11/10 = 1.1; (1,2): 13/6; (0,3): 8/7; (2,3) has 1 order < 2: dropped
        // (its plain lift, 1·100/(10·4) = 2.5, would have ranked it first for bk_3).
        assert_list(&sets.bought_together[0], &[(3, 8.0 / 7.0), (1, 1.1)]);
        assert_list(&sets.bought_together[1], &[(2, 13.0 / 6.0), (0, 1.1)]);
        assert_list(&sets.bought_together[2], &[(1, 13.0 / 6.0)]);
        assert_list(&sets.bought_together[3], &[(0, 8.0 / 7.0)]);

        // Unit item factors: bk_0 = bk_3 = (1, 0), bk_1 = (0, 1), bk_2 = (1, 1)/√2.
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert_list(&sets.similar[0], &[(3, 1.0), (2, r)]);
        assert_list(&sets.similar[1], &[(2, r), (0, 0.0)]);

        // Blend: cosine + 0.5 ln(smoothed lift).
        let bonus = |lift: f64| 0.5 * lift.ln() as f32;
        assert_list(&sets.items[0], &[(3, 1.0 + bonus(8.0 / 7.0)), (2, r)]);
        // bk_2 is bought with bk_1 far more than chance: it outranks the similar bk_0.
        assert_list(
            &sets.items[1],
            &[(2, r + bonus(13.0 / 6.0)), (0, bonus(1.1))],
        );
        assert_list(&sets.items[2], &[(1, r + bonus(13.0 / 6.0)), (0, r)]);
        assert_list(&sets.items[3], &[(0, 1.0 + bonus(8.0 / 7.0)), (2, r)]);

        // Popularity shares of 10; bk_1 sold nothing and never appears.
        assert_list(&sets.popular, &[(0, 0.5), (2, 0.3)]);
        let all = compute_recs(&small_input(), &RecsConfig::new(10)).unwrap();
        assert_list(&all.popular, &[(0, 0.5), (2, 0.3), (3, 0.2)]);
        assert_eq!(sets.users_with_lists(), 2);
        assert_eq!(sets.items_with_lists(), 4);
    }

    #[test]
    fn zero_weight_publishes_pure_similarity() {
        let config = RecsConfig {
            co_purchase_weight: 0.0,
            ..RecsConfig::new(2)
        };
        let sets = compute_recs(&small_input(), &config).unwrap();
        for (blend, similar) in sets.items.iter().zip(&sets.similar) {
            assert_list(blend, similar);
        }
    }

    #[test]
    fn digest_depends_on_lists_not_threads() {
        let input = small_input();
        let config = RecsConfig::new(2);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = one.install(|| compute_recs(&input, &config)).unwrap();
        let b = compute_recs(&input, &config).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.digest.len(), 64);
        let c = compute_recs(&input, &RecsConfig::new(3)).unwrap();
        assert_ne!(a.digest, c.digest);
        let mut other = input.clone();
        other.popularity[3] = 9;
        assert_ne!(compute_recs(&other, &config).unwrap().digest, a.digest);
    }

    #[test]
    fn bad_input_and_config_are_refused() {
        let mut input = small_input();
        input.popularity.pop();
        let err = compute_recs(&input, &RecsConfig::new(2)).unwrap_err();
        assert!(
            err.to_string().contains("popularity has 3 entries"),
            "{err}"
        );

        let mut input = small_input();
        input.model.item_factors[[1, 1]] = f32::NAN;
        let err = compute_recs(&input, &RecsConfig::new(2)).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");

        let mut input = small_input();
        input.user_ids[2] = "usr_0".into();
        let err = compute_recs(&input, &RecsConfig::new(2)).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");

        let err = compute_recs(&small_input(), &RecsConfig::new(0)).unwrap_err();
        assert!(err.to_string().contains("n must be at least 1"), "{err}");
        let config = RecsConfig {
            lift_prior: 0.0,
            ..RecsConfig::new(2)
        };
        let err = compute_recs(&small_input(), &config).unwrap_err();
        assert!(err.to_string().contains("lift_prior"), "{err}");
    }
}
