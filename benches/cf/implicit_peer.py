"""The peer side of the CF benchmark: the Python `implicit` package's CPU ALS.

Reads the prepared split's train.tsv (see prepare.py), builds the users x items CSR of
confidences 1 + alpha * value (what `implicit` 0.7 expects: it uses the matrix's values as
confidences; its own `alpha` is left at 1.0 so they are not scaled again), fits
`implicit.cpu.als.AlternatingLeastSquares` (conjugate gradient, float32, `num_threads`
OpenMP threads) with the loss computed every iteration, as Quire does, and writes:
  --model  the factors in Quire's model format (crates/quire-cf/src/model.rs), so the Rust
           evaluator scores both sides with the same code;
  --stats  JSON: wall and CPU (all threads) time of fit(), per iteration the seconds and loss
           `implicit` reports through its fit callback, and the wall time of the batch
           recommend() / similar_items() calls a recommendation publisher makes.
Run with OPENBLAS_NUM_THREADS=1 (implicit warns otherwise).
"""

import argparse
import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import implicit
from implicit.cpu.als import AlternatingLeastSquares

MAGIC = b"QUIRECF\0"
FORMAT_VERSION = 1


def count_lines(path: Path) -> int:
    with open(path) as f:
        return sum(1 for _ in f)


def read_split(split: Path):
    n_users = count_lines(split / "users.txt")
    n_items = count_lines(split / "items.txt")
    cells = np.loadtxt(split / "train.tsv", delimiter="\t", dtype=np.float64, ndmin=2)
    users = cells[:, 0].astype(np.int32)
    items = cells[:, 1].astype(np.int32)
    values = cells[:, 2].astype(np.float32)
    return n_users, n_items, users, items, values


def write_model(path: Path, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
    users = np.ascontiguousarray(user_factors, dtype="<f4")
    items = np.ascontiguousarray(item_factors, dtype="<f4")
    if users.shape[1] != items.shape[1]:
        raise ValueError("user and item factors differ in width")
    with open(path, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<IIQQ", FORMAT_VERSION, users.shape[1], users.shape[0], items.shape[0]))
        f.write(users.tobytes(order="C"))
        f.write(items.tobytes(order="C"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", type=Path, required=True)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--regularization", type=float, default=0.01)
    p.add_argument("--alpha", type=float, default=1.0, help="confidence = 1 + alpha * value")
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--stats", type=Path, required=True)
    p.add_argument("--top-n", type=int, default=10, help="list length of the timed batch jobs")
    args = p.parse_args()

    n_users, n_items, users, items, values = read_split(args.split)
    confidence = sp.csr_matrix(
        (1.0 + args.alpha * values, (users, items)), shape=(n_users, n_items), dtype=np.float32
    )
    confidence.sum_duplicates()
    confidence.sort_indices()

    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        alpha=1.0,
        dtype=np.float32,
        use_native=True,
        use_cg=True,
        iterations=args.iterations,
        calculate_training_loss=True,
        num_threads=args.threads,
        random_state=args.seed,
    )
    iterations = []

    def on_iteration(iteration, elapsed, loss):
        iterations.append({"iteration": iteration + 1, "seconds": elapsed, "loss": float(loss)})

    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(confidence, show_progress=False, callback=on_iteration)
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start

    # The publisher's batch jobs, as Quire times them: top-N unseen items for every user, the
    # N most similar items for every item (implicit returns the item itself first: ask N + 1).
    start = time.perf_counter()
    model.recommend(
        np.arange(n_users), confidence, N=args.top_n, filter_already_liked_items=True
    )
    recommend_seconds = time.perf_counter() - start
    start = time.perf_counter()
    model.similar_items(np.arange(n_items), N=args.top_n + 1)
    similar_seconds = time.perf_counter() - start

    write_model(args.model, model.user_factors, model.item_factors)
    stats = {
        "side": "implicit",
        "implicit_version": implicit.__version__,
        "numpy_version": np.__version__,
        "threads": args.threads,
        "train_seconds": train_seconds,
        "train_cpu_seconds": cpu_seconds,
        "iterations": iterations,
        "recommend_all_users_seconds": recommend_seconds,
        "similar_items_seconds": similar_seconds,
        "top_n": args.top_n,
        "users": n_users,
        "items": n_items,
        "nnz": int(confidence.nnz),
    }
    args.stats.write_text(json.dumps(stats, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
