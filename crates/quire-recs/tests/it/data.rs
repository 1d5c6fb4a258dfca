//! Small synthetic inputs: random factors, purchases and the orders they came in.

use ndarray::Array2;
use quire_cf::{AlsModel, Csr};
use quire_recs::{CoPurchases, RecSets, RecsConfig, RecsInput, compute_recs};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const USERS: usize = 240;
pub const BOOKS: usize = 60;
pub const N: usize = 10;

/// A bookstore of [`USERS`] users and [`BOOKS`] books; every 20th user has all-zero factors
/// (unknown to the model). Different seeds give different lists.
pub fn input(seed: u64) -> RecsInput {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let rank = 8;
    let mut user_factors = Array2::<f32>::zeros((USERS, rank));
    for (u, mut row) in user_factors.outer_iter_mut().enumerate() {
        if u % 20 != 7 {
            row.mapv_inplace(|_| rng.gen_range(-1.0..1.0));
        }
    }
    let item_factors = Array2::from_shape_fn((BOOKS, rank), |_| rng.gen_range(-1.0f32..1.0));
    let mut triplets = Vec::new();
    let mut orders: Vec<Vec<u32>> = Vec::new();
    for u in 0..USERS as u32 {
        let mut order = Vec::new();
        for _ in 0..rng.gen_range(1..8) {
            // Books 0..10 sell far more: a few bestsellers.
            let b = if rng.gen_bool(0.4) {
                rng.gen_range(0..10)
            } else {
                rng.gen_range(0..BOOKS as u32)
            };
            triplets.push((u, b, 1.0));
            order.push(b);
            if order.len() >= 3 {
                orders.push(std::mem::take(&mut order));
            }
        }
        orders.push(order);
    }
    let co_purchases =
        CoPurchases::from_orders(BOOKS, orders.iter().map(Vec::as_slice)).expect("orders");
    let popularity = co_purchases
        .item_orders
        .iter()
        .map(|&c| u64::from(c))
        .collect();
    RecsInput {
        user_ids: (0..USERS).map(|u| format!("usr_{u}")).collect(),
        book_ids: (0..BOOKS).map(|b| format!("bk_{b}")).collect(),
        model: AlsModel {
            user_factors,
            item_factors,
        },
        bought: Csr::from_triplets(USERS, BOOKS, &triplets).expect("bought"),
        co_purchases,
        popularity,
    }
}

/// The lists of [`input`]`(seed)` with N = [`N`].
pub fn sets(seed: u64) -> (RecsInput, RecSets) {
    let input = input(seed);
    let sets = compute_recs(&input, &RecsConfig::new(N)).expect("compute");
    (input, sets)
}
