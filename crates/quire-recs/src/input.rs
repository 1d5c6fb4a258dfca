//! What the batch job reads: ids, the ALS model, purchases, co-purchase and popularity counts.
//!
//! Plain data, independent of how the registry or the lake store it: the caller maps its ids
//! to dense indices (row `u` of the user factors is `user_ids[u]`, row `i` of the item factors
//! is `book_ids[i]`) and fills these structures.

use std::collections::HashSet;

use quire_cf::{AlsModel, Csr};

use crate::{Error, Result};

/// Everything [`crate::compute_recs`] needs.
#[derive(Debug, Clone)]
pub struct RecsInput {
    /// User ids in row order of `model.user_factors` and `bought` (e.g. `"usr_42"`).
    pub user_ids: Vec<String>,
    /// Book ids in row order of `model.item_factors`, column order of `bought` (e.g. `"bk_3"`).
    pub book_ids: Vec<String>,
    /// The trained implicit ALS model.
    pub model: AlsModel,
    /// What each user bought (users × books; any stored entry excludes the book from the
    /// user's list, whatever its value).
    pub bought: Csr,
    /// Orders in which two books were bought together.
    pub co_purchases: CoPurchases,
    /// Popularity per book (e.g. units sold in the recent window), for the fallback list.
    pub popularity: Vec<u64>,
}

/// Co-purchase counts over a set of orders: the input of the "bought together" lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoPurchases {
    /// `(a, b, orders containing both a and b)`, book indices, `a != b`. Each unordered pair
    /// appears once, in either orientation.
    pub pairs: Vec<(u32, u32, u32)>,
    /// Per book: orders containing it.
    pub item_orders: Vec<u32>,
    /// Orders counted.
    pub total_orders: u64,
}

impl CoPurchases {
    /// Counts co-purchases from orders given as lists of book indices (duplicates within an
    /// order count once). Every index must be below `n_books`.
    pub fn from_orders<'a>(
        n_books: usize,
        orders: impl IntoIterator<Item = &'a [u32]>,
    ) -> Result<CoPurchases> {
        let mut item_orders = vec![0u32; n_books];
        let mut pairs = std::collections::HashMap::<(u32, u32), u32>::new();
        let mut total_orders = 0u64;
        let mut basket = Vec::new();
        for (o, order) in orders.into_iter().enumerate() {
            basket.clear();
            basket.extend_from_slice(order);
            basket.sort_unstable();
            basket.dedup();
            if let Some(&bad) = basket.iter().find(|&&b| b as usize >= n_books) {
                return Err(Error::input(format!(
                    "order {o}: book index {bad} is outside the {n_books} books"
                )));
            }
            total_orders += 1;
            for (k, &a) in basket.iter().enumerate() {
                item_orders[a as usize] += 1;
                for &b in &basket[k + 1..] {
                    *pairs.entry((a, b)).or_insert(0) += 1;
                }
            }
        }
        let mut pairs: Vec<(u32, u32, u32)> =
            pairs.into_iter().map(|((a, b), c)| (a, b, c)).collect();
        pairs.sort_unstable();
        Ok(CoPurchases {
            pairs,
            item_orders,
            total_orders,
        })
    }

    /// Checks indices and counts against `n_books`: each pair's count at most each book's
    /// order count, each book's count at most the total, no self-pair, no pair twice.
    pub(crate) fn validate(&self, n_books: usize) -> Result<()> {
        if self.item_orders.len() != n_books {
            return Err(Error::input(format!(
                "co_purchases.item_orders has {} entries for {n_books} books",
                self.item_orders.len()
            )));
        }
        if let Some((i, &c)) = self
            .item_orders
            .iter()
            .enumerate()
            .find(|&(_, &c)| u64::from(c) > self.total_orders)
        {
            return Err(Error::input(format!(
                "co_purchases.item_orders[{i}] = {c} exceeds total_orders {}",
                self.total_orders
            )));
        }
        let mut seen = HashSet::with_capacity(self.pairs.len());
        for (k, &(a, b, c)) in self.pairs.iter().enumerate() {
            if a as usize >= n_books || b as usize >= n_books {
                return Err(Error::input(format!(
                    "co_purchases.pairs[{k}] = ({a}, {b}) is outside the {n_books} books"
                )));
            }
            if a == b {
                return Err(Error::input(format!(
                    "co_purchases.pairs[{k}] pairs book {a} with itself"
                )));
            }
            if c > self.item_orders[a as usize] || c > self.item_orders[b as usize] {
                return Err(Error::input(format!(
                    "co_purchases.pairs[{k}]: {c} orders with books {a} and {b}, more than \
                     the orders of either ({} and {})",
                    self.item_orders[a as usize], self.item_orders[b as usize]
                )));
            }
            if !seen.insert((a.min(b), a.max(b))) {
                return Err(Error::input(format!(
                    "co_purchases.pairs[{k}]: the pair ({a}, {b}) appears twice"
                )));
            }
        }
        Ok(())
    }
}

impl RecsInput {
    /// Checks that the parts fit together: shapes, unique ids usable in Redis keys, finite
    /// factors, consistent counts.
    pub(crate) fn validate(&self) -> Result<()> {
        let (n_users, n_books) = (self.user_ids.len(), self.book_ids.len());
        let uf = &self.model.user_factors;
        let itf = &self.model.item_factors;
        if uf.nrows() != n_users || itf.nrows() != n_books {
            return Err(Error::input(format!(
                "model has {} user and {} item rows for {n_users} user ids and {n_books} book ids",
                uf.nrows(),
                itf.nrows()
            )));
        }
        if uf.ncols() != itf.ncols() {
            return Err(Error::input(format!(
                "model rank differs: users {} factors, items {}",
                uf.ncols(),
                itf.ncols()
            )));
        }
        if self.bought.shape() != (n_users, n_books) {
            let (r, c) = self.bought.shape();
            return Err(Error::input(format!(
                "bought matrix is {r} x {c}, expected {n_users} users x {n_books} books"
            )));
        }
        if self.popularity.len() != n_books {
            return Err(Error::input(format!(
                "popularity has {} entries for {n_books} books",
                self.popularity.len()
            )));
        }
        if !uf.iter().chain(itf.iter()).all(|x| x.is_finite()) {
            return Err(Error::input("model factors contain NaN or infinite values"));
        }
        check_ids("user_ids", &self.user_ids)?;
        check_ids("book_ids", &self.book_ids)?;
        self.co_purchases.validate(n_books)
    }
}

/// Ids become part of Redis keys and of the set index (one id per line): non-empty, no
/// whitespace or control characters, unique.
fn check_ids(field: &str, ids: &[String]) -> Result<()> {
    let mut seen = HashSet::with_capacity(ids.len());
    for (k, id) in ids.iter().enumerate() {
        if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::input(format!(
                "{field}[{k}] = {id:?}: ids must be non-empty without whitespace or control characters"
            )));
        }
        if !seen.insert(id.as_str()) {
            return Err(Error::input(format!("{field}[{k}] = {id:?} appears twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_orders_counts_pairs_once_per_order() {
        let orders: Vec<Vec<u32>> = vec![vec![0, 1, 2], vec![1, 0, 0], vec![2], vec![]];
        let co = CoPurchases::from_orders(4, orders.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(co.total_orders, 4);
        assert_eq!(co.item_orders, vec![2, 2, 2, 0]);
        assert_eq!(co.pairs, vec![(0, 1, 2), (0, 2, 1), (1, 2, 1)]);
        co.validate(4).unwrap();
    }

    #[test]
    fn from_orders_refuses_unknown_books() {
        let orders = [vec![0u32, 5]];
        let err = CoPurchases::from_orders(3, orders.iter().map(Vec::as_slice)).unwrap_err();
        assert!(err.to_string().contains("order 0: book index 5"), "{err}");
    }

    #[test]
    fn validate_refuses_inconsistent_counts() {
        let base = CoPurchases {
            pairs: vec![(0, 1, 2)],
            item_orders: vec![2, 3],
            total_orders: 3,
        };
        base.validate(2).unwrap();
        let cases = [
            (
                CoPurchases {
                    pairs: vec![(0, 1, 3)],
                    ..base.clone()
                },
                "more than the orders",
            ),
            (
                CoPurchases {
                    pairs: vec![(1, 1, 1)],
                    ..base.clone()
                },
                "with itself",
            ),
            (
                CoPurchases {
                    pairs: vec![(0, 1, 1), (1, 0, 1)],
                    ..base.clone()
                },
                "appears twice",
            ),
            (
                CoPurchases {
                    total_orders: 2,
                    ..base.clone()
                },
                "exceeds total_orders",
            ),
            (
                CoPurchases {
                    pairs: vec![(0, 2, 1)],
                    ..base.clone()
                },
                "outside the 2 books",
            ),
        ];
        for (co, needle) in cases {
            let err = co.validate(2).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn ids_must_be_unique_and_key_safe() {
        check_ids("user_ids", &["usr_1".into(), "usr_2".into()]).unwrap();
        let err = check_ids("user_ids", &["usr_1".into(), "usr_1".into()]).unwrap_err();
        assert!(err.to_string().contains("user_ids[1]"), "{err}");
        let err = check_ids("book_ids", &["bk 1".into()]).unwrap_err();
        assert!(err.to_string().contains("whitespace"), "{err}");
        let err = check_ids("book_ids", &[String::new()]).unwrap_err();
        assert!(err.to_string().contains("non-empty"), "{err}");
    }
}
