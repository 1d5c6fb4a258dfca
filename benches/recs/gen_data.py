"""Input of the recommendation benchmark, written once and read by both sides.

A bookstore of USERS users and BOOKS books with planted structure:
- books come in series of 5 whose item factors share a centre (so "similar" means something),
  and sell by a Zipf law over a shuffled ranking (a few bestsellers);
- each user buys 1 + Poisson(7) books drawn by popularity, in orders of 1–4 books; with
  probability 0.3 an order also gets another book of the same series (planted "bought
  together" pairs that lift, not raw counts, should find);
- user and item factors are Gaussian of rank FACTORS (the lists do not depend on a fit).

Files (little-endian, row-major), in OUT:
  meta.json                         shapes, seed, counts
  user_factors.f32, item_factors.f32
  bought.indptr.i64, bought.indices.i32   users x books, sorted unique columns per row
  orders.indptr.i64, orders.indices.i32   one row per order: the books in it

Needs numpy. Usage: python gen_data.py --out DIR [--users N --books N --factors K --seed S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--books", type=int, default=10_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    users, books, k = a.users, a.books, a.factors
    series = np.arange(books) // 5

    centres = rng.standard_normal((series.max() + 1, k)).astype(np.float32)
    item_factors = (centres[series] + 0.6 * rng.standard_normal((books, k))).astype(np.float32)
    item_factors /= np.sqrt(k)
    user_factors = (rng.standard_normal((users, k)) / np.sqrt(k)).astype(np.float32)

    ranks = rng.permutation(books)
    popularity = 1.0 / (ranks + 10.0)
    popularity /= popularity.sum()

    counts = 1 + rng.poisson(7, size=users)
    draws = rng.choice(books, size=int(counts.sum()), p=popularity)
    bought_rows: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    start = 0
    for u in range(users):
        picks = draws[start:start + counts[u]]
        start += counts[u]
        _, first = np.unique(picks, return_index=True)
        picks = picks[np.sort(first)]
        user_books = []
        i = 0
        while i < len(picks):
            size = int(rng.integers(1, 5))
            order = list(picks[i:i + size])
            i += size
            if rng.random() < 0.3:
                mate = series[order[0]] * 5 + int(rng.integers(0, 5))
                if mate < books and mate not in order:
                    order.append(mate)
            orders.append(np.array(order, dtype=np.int32))
            user_books.extend(order)
        bought_rows.append(np.unique(np.array(user_books, dtype=np.int32)))

    def csr(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r) for r in rows])
        return indptr, np.concatenate(rows).astype(np.int32)

    a.out.mkdir(parents=True, exist_ok=True)
    user_factors.tofile(a.out / "user_factors.f32")
    item_factors.tofile(a.out / "item_factors.f32")
    b_ptr, b_idx = csr(bought_rows)
    o_ptr, o_idx = csr(orders)
    b_ptr.tofile(a.out / "bought.indptr.i64")
    b_idx.tofile(a.out / "bought.indices.i32")
    o_ptr.tofile(a.out / "orders.indptr.i64")
    o_idx.tofile(a.out / "orders.indices.i32")
    meta = {
        "users": users,
        "books": books,
        "factors": k,
        "seed": a.seed,
        "purchases": int(len(b_idx)),
        "orders": len(orders),
        "order_lines": int(len(o_idx)),
        "user_ids": "usr_{index}",
        "book_ids": "bk_{index}",
    }
    (a.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
