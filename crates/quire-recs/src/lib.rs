//! `quire-recs`: the recommendation batch job. It precomputes top-N lists for every user and
//! every book from an implicit ALS model and co-purchase counts ([`compute_recs`]), and
//! publishes them to Redis ([`publish`]) in the layout of `contracts/recs-redis.md`, which the
//! Recommendation Service reads without doing any inference.
//!
//! It depends on `quire-cf` (the model, the sparse matrix, `top_n`) and on nothing that stores
//! data: the caller (`quire recs publish`) loads the model version from the registry and the
//! purchases from the lake into a [`RecsInput`].
//!
//! # The lists
//! - **Per user** (`user:{user_id}`): the N books with the highest ALS score `u · v`, never a
//!   book the user already bought ([`RecsInput::bought`]). A user whose factors are all zero
//!   (unknown to the model) gets no key: readers use `popular`.
//! - **Similar books** ([`RecSets::similar`]): cosine similarity of the item factors, never the
//!   book itself.
//! - **Bought together** ([`RecSets::bought_together`]): from `c_ab`, the orders containing
//!   both books, `c_a`, `c_b` their orders and `T` all orders. Plain lift `c_ab·T / (c_a·c_b)`
//!   is huge for two rare books bought together once, and raw counts favour bestsellers that
//!   appear in every basket. The score is a **smoothed lift** `(c_ab + α) / (E_ab + α)` with
//!   `E_ab = c_a·c_b / T` the co-occurrences expected by chance and `α` pseudo-orders
//!   ([`RecsConfig::lift_prior`], default 5): a pair needs both many common orders *and* more
//!   than chance before it scores high (`c=2, E≈0` → 1.4; `c=50, E=10` → 3.7; a bestseller
//!   pair `c=500, E=450` → 1.1). Pairs with fewer than [`RecsConfig::min_co_orders`] common
//!   orders (default 2) or a smoothed lift ≤ 1 are dropped.
//! - **Per book, published** (`item:{book_id}`): the contract has one key for "similar" and
//!   "bought together", so the two are **blended** into one score on one scale:
//!   `cosine(a, b) + β · ln(smoothed lift(a, b))`, the log-lift term present only for pairs kept
//!   above (`β` = [`RecsConfig::co_purchase_weight`], default 0.5). A strong co-purchase
//!   (lift 4 → +0.69) outranks a merely similar book, a weak one nudges, books never bought
//!   together rank by similarity alone, and the list stays sorted by the published score.
//!   Candidates are the N most similar books plus all co-purchase partners, which gives the
//!   exact top N of the blend (a book in neither has no bonus and a lower cosine than N others).
//! - **Popular** (`popular`): the N books with the highest [`RecsInput::popularity`] count,
//!   score = share of the total.
//!
//! Every list is sorted by score descending (ties by book index), at most N long, and never
//! holds the key's own book or, for users, a bought book.
//!
//! # Scoring every user against every book
//! The user lists (and the similar books) need the top N of a full dot-product row per user:
//! 100,000 × 10,000 × 64 factors is 1.3·10¹¹ flops, the job's largest cost. Two
//! implementations give the same lists (up to f32 rounding of the scores), both on rayon with
//! results independent of the number of threads:
//! - on CPUs with AVX-512 VNNI (checked at run time), `vnni.rs` quantises the factors to 8 bits,
//!   computes approximate scores with `vpdpbusd` (4× the f32 FMA rate), and uses a proven
//!   bound on the quantisation error to keep exactly the books that can still be in the top N,
//!   which are rescored in f32;
//! - elsewhere, `topk.rs` multiplies blocks of users with cache-sized tiles of books
//!   (`ndarray`'s product) and scans each row against a running threshold, sixteen scores at a
//!   time, instead of offering every score to a heap.
//!
//! `quire_cf::recommend_all_users` and `quire_cf::similar_items` compute the same lists with
//! a full product and a heap per row; on the benchmark they took about 4× longer, which the
//! end-to-end goal (≥ 5× a Python `implicit` peer) could not afford. Both are checked against
//! `quire_cf::top_n` over full rows (property tests in `topk.rs`).
//!
//! # Publishing
//! A set's id is `{yyyymmddThhmm UTC}-{model}-v{version}` (e.g. `20251001T0800-cf-v7`; `-2`,
//! `-3`… when that name is taken). [`publish`] writes every key of the set, then moves
//! `quire:recs:current` in one command (the steps are listed in `publish.rs`). Keys are
//! written 1,000 per `MSET`, 16 pipelines in flight; Redis acknowledges each batch, and the
//! pointer moves only when every key was acknowledged (and, with [`PublishOptions::verify`],
//! counted again with `EXISTS`). Besides the contract's keys it keeps:
//! - `{quire:recs:current}:lock`: a publisher's token with a lease, so two publishes never
//!   interleave (hash-tagged into the pointer's slot, so the pointer moves in one script that
//!   checks the lock);
//! - `quire:recs:sets`: a hash of set id → JSON record (state `building`, `published` or
//!   `retired`, model, version, digest, number of index keys);
//! - `quire:recs:{set}:index:{k}`: the set's `user:…`/`item:…` key suffixes, one per line,
//!   written before any list. With it a dead publish's keys are found and removed, and the
//!   previous set's keys get their TTL, without `SCAN` (which on a cluster would have to visit
//!   every master).
//!
//! **Idempotence.** [`RecSets::digest`] hashes the lists; a publish whose model, version and
//! digest equal the current set's writes nothing (`unchanged: true`), and one that matches a
//! half-written set reuses its id and overwrites its keys.
//!
//! **Cluster.** [`RedisTarget::Cluster`] uses `redis::cluster_async`. Its pipelines must stay
//! within one hash slot (the crate refuses others with `CrossSlot`), and so must a multi-key
//! `MSET` or `EXISTS`, so each batch holds keys of one slot; the keys carry no hash tag and
//! spread over all slots. The pointer still moves last, with one script on the pointer's slot
//! (the lock and the pointer share a hash tag) that moves it only while the lock is ours.
//!
//! A reader: `examples/read_recs.rs`; the `redis-cli` commands: `README.md` beside this crate.

mod compute;
mod error;
mod input;
pub mod layout;
mod publish;
mod topk;
#[cfg(target_arch = "x86_64")]
mod vnni;

pub use compute::{ComputeTimings, RecList, RecSets, RecsConfig, compute_recs};
pub use error::{Error, Result};
pub use input::{CoPurchases, RecsInput};
pub use publish::{
    ModelRef, PublishOptions, PublishProgress, PublishSummary, RedisTarget, check_reachable,
    publish,
};
