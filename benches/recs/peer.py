"""The peer side of the recommendation batch benchmark: the same job in Python.

Reads the input of gen_data.py and publishes the same lists in the same Redis layout as
`recs-bench` (contracts/recs-redis.md):
- user lists: `implicit`'s batch `recommend` over every user with
  `filter_already_liked_items=True` (its CPU `topk`: blocked BLAS products and a heap per row,
  on `--threads` threads), the model being an `implicit.cpu.als.AlternatingLeastSquares` whose
  factors are set to the input's;
- similar books: `implicit`'s batch `similar_items` (cosine), the book itself dropped;
- bought together and the published book lists: co-purchase counts `O^T O` with scipy, the
  smoothed lift `(c + 5) / (c_a c_b / T + 5)` on pairs with at least 2 common orders and a
  lift above 1, the blend `cosine + 0.5 ln(lift)` over the similar books and the partners, top
  N per book — vectorised numpy (lexsort and group ranks), no Python loop over books;
- popular: the N books in most orders, score = share of all order lines;
- publish: `json.dumps` of each list, redis-py pipelines (`transaction=False`) of 1,000 SETs,
  then the meta and `SET quire:recs:current`.

Prints one JSON object: seconds of load, compute and write (JSON encoding + Redis), the set id.
Usage: python peer.py --data DIR --redis URL [--n 50 --threads 2 --version 1]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import redis  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from implicit.cpu.als import AlternatingLeastSquares  # noqa: E402

MIN_CO_ORDERS = 2
LIFT_PRIOR = 5.0
CO_WEIGHT = 0.5


def group_top(group: np.ndarray, score: np.ndarray, other: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best rows per group: score descending, `other` ascending."""
    order = np.lexsort((other, -score, group))
    g = group[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    rank = np.arange(len(g)) - first
    return order[rank < n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--redis", required=True)
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--version", type=int, default=1)
    a = ap.parse_args()
    n = a.n

    t = time.perf_counter()
    meta = json.loads((a.data / "meta.json").read_text())
    users, books, k = meta["users"], meta["books"], meta["factors"]
    uf = np.fromfile(a.data / "user_factors.f32", dtype="<f4").reshape(users, k)
    itf = np.fromfile(a.data / "item_factors.f32", dtype="<f4").reshape(books, k)
    b_ptr = np.fromfile(a.data / "bought.indptr.i64", dtype="<i8")
    b_idx = np.fromfile(a.data / "bought.indices.i32", dtype="<i4")
    o_ptr = np.fromfile(a.data / "orders.indptr.i64", dtype="<i8")
    o_idx = np.fromfile(a.data / "orders.indices.i32", dtype="<i4")
    user_items = sp.csr_matrix(
        (np.ones(len(b_idx), dtype=np.float32), b_idx, b_ptr), shape=(users, books)
    )
    load_seconds = time.perf_counter() - t

    t = time.perf_counter()
    model = AlternatingLeastSquares(factors=k, num_threads=a.threads, random_state=0)
    model.user_factors = uf
    model.item_factors = itf
    user_ids, user_scores = model.recommend(
        np.arange(users), user_items, N=n, filter_already_liked_items=True
    )

    sim_ids, sim_scores = model.similar_items(np.arange(books), N=n + 1)
    self_hit = sim_ids == np.arange(books)[:, None]
    masked = np.where(self_hit, -np.inf, sim_scores)
    keep = np.argsort(-masked, axis=1, kind="stable")[:, :n]
    sim_ids = np.take_along_axis(sim_ids, keep, axis=1)
    sim_scores = np.take_along_axis(sim_scores, keep, axis=1)

    n_orders = len(o_ptr) - 1
    orders = sp.csr_matrix(
        (np.ones(len(o_idx), dtype=np.float32), o_idx, o_ptr), shape=(n_orders, books)
    )
    orders.sum_duplicates()
    orders.data[:] = 1.0
    item_orders = np.asarray(orders.sum(axis=0)).ravel()
    co = (orders.T @ orders).tocoo()
    pa, pb, c = co.row, co.col, co.data
    ok = (pa != pb) & (c >= MIN_CO_ORDERS)
    pa, pb, c = pa[ok], pb[ok], c[ok].astype(np.float64)
    expected = item_orders[pa].astype(np.float64) * item_orders[pb] / n_orders
    lift = (c + LIFT_PRIOR) / (expected + LIFT_PRIOR)
    ok = lift > 1.0
    pa, pb, lift = pa[ok], pb[ok], lift[ok]

    norms = np.linalg.norm(itf, axis=1)
    unit = itf / np.where(norms > 0, norms, 1.0)[:, None]
    co_cos = np.einsum("ij,ij->i", unit[pa], unit[pb])
    cand_i = np.concatenate([np.repeat(np.arange(books), n), pa])
    cand_j = np.concatenate([sim_ids.ravel(), pb])
    cand_s = np.concatenate(
        [sim_scores.ravel(), co_cos + CO_WEIGHT * np.log(lift)]
    ).astype(np.float32)
    # One row per (book, candidate): the co-purchase one, which carries the bonus, wins.
    key = cand_i.astype(np.int64) * books + cand_j
    order = np.lexsort((-cand_s, key))
    first = order[np.r_[True, key[order][1:] != key[order][:-1]]]
    cand_i, cand_j, cand_s = cand_i[first], cand_j[first], cand_s[first]
    top = group_top(cand_i, cand_s, cand_j, n)
    item_i, item_j, item_s = cand_i[top], cand_j[top], cand_s[top]
    item_bounds = np.searchsorted(item_i, np.arange(books + 1))

    counts = item_orders
    pop = np.lexsort((np.arange(books), -counts))[:n]
    pop = pop[counts[pop] > 0]
    pop_share = counts[pop] / counts.sum()
    compute_seconds = time.perf_counter() - t

    t = time.perf_counter()
    r = redis.Redis.from_url(a.redis)
    set_id = time.strftime("%Y%m%dT%H%M", time.gmtime()) + f"-implicit-v{a.version}"
    prefix = f"quire:recs:{set_id}"
    book_ids = [f"bk_{j}" for j in range(books)]

    def value(ids, scores) -> str:
        return json.dumps(
            {
                "items": [
                    {"book_id": book_ids[j], "score": round(s, 6)}
                    for j, s in zip(ids, scores)
                    if j >= 0
                ]
            },
            separators=(",", ":"),
        )

    pipe = r.pipeline(transaction=False)
    keys = 0

    def put(key: str, val: str) -> None:
        nonlocal keys
        pipe.set(key, val)
        keys += 1
        if len(pipe) >= 1000:
            pipe.execute()

    for u, (ids, scores) in enumerate(zip(user_ids.tolist(), user_scores.tolist())):
        put(f"{prefix}:user:usr_{u}", value(ids, scores))
    item_i_list, item_s_list = item_j.tolist(), item_s.tolist()
    for b in range(books):
        lo, hi = item_bounds[b], item_bounds[b + 1]
        if hi > lo:
            put(f"{prefix}:item:bk_{b}", value(item_i_list[lo:hi], item_s_list[lo:hi]))
    put(f"{prefix}:popular", value(pop.tolist(), pop_share.tolist()))
    meta_value = {
        "set": set_id, "model": "implicit", "version": a.version, "run_id": "bench",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "users": users, "items": int((np.diff(item_bounds) > 0).sum()), "n": n,
    }
    put(f"{prefix}:meta", json.dumps(meta_value))
    pipe.execute()
    r.set("quire:recs:current", set_id)
    write_seconds = time.perf_counter() - t

    print(json.dumps({
        "side": "implicit",
        "load_seconds": load_seconds,
        "compute_seconds": compute_seconds,
        "write_seconds": write_seconds,
        "seconds_in_process": time.perf_counter() - T0,
        "set": set_id,
        "users": users,
        "items": meta_value["items"],
        "keys": keys,
        "threads": a.threads,
        "n": n,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
