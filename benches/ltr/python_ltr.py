#!/usr/bin/env python3
"""The Python peer of `ltr-bench`: the same training with the `lightgbm` package.

Loads the training and test files with LightGBM's loader (`lgb.Dataset(path)`, which reads the
`.query` side files), constructs both datasets (timed as loading), then runs `lgb.train` for
`--rounds` rounds with the test set as validation set (timed as training), and prints the same
JSON object as `ltr-bench`: timings, the test metrics after every iteration, and a SHA-256 of
the model's trees. Like `ltr-bench`, it evaluates the training data after each iteration too
when the parameters ask for training metrics (`is_provide_training_metric` or an alias).

Usage: python_ltr.py --train rank.train --test rank.test --params "k=v k=v" --rounds 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import lightgbm as lgb

TRAINING_METRIC = ("is_provide_training_metric", "training_metric", "is_training_metric",
                   "train_metric")


def parse_params(text: str) -> dict[str, str]:
    """`k=v k=v` → dict, the form the C API takes; LightGBM parses the values itself."""
    params = {}
    for piece in text.split():
        key, value = piece.split("=", 1)
        params[key] = value
    return params


def trees_sha256(model: str) -> str:
    """SHA-256 of the model text from `Tree=0` to `end of trees` (the trees alone)."""
    start, end = model.index("Tree=0"), model.index("end of trees")
    return hashlib.sha256(model[start:end].encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    args = ap.parse_args()
    params = parse_params(args.params)

    t0 = time.perf_counter()
    train_set = lgb.Dataset(args.train, params=params, free_raw_data=False)
    test_set = lgb.Dataset(args.test, reference=train_set, params=params, free_raw_data=False)
    train_set.construct()
    test_set.construct()
    load_seconds = time.perf_counter() - t0

    train_metric = any(params.get(k, "").lower() in ("true", "+") for k in TRAINING_METRIC)
    valid_sets, valid_names = [test_set], ["test"]
    if train_metric:
        valid_sets, valid_names = [train_set, test_set], ["train", "test"]
    evals: dict = {}
    t1 = time.perf_counter()
    booster = lgb.train(params, train_set, num_boost_round=args.rounds, valid_sets=valid_sets,
                        valid_names=valid_names, callbacks=[lgb.record_evaluation(evals)])
    train_seconds = time.perf_counter() - t1

    names = list(evals["test"].keys())
    history = [list(values) for values in zip(*(evals["test"][n] for n in names))]
    print(json.dumps({
        "tool": "python-lightgbm",
        "lightgbm": f"lightgbm {lgb.__version__} (PyPI wheel)",
        "train_rows": train_set.num_data(),
        "test_rows": test_set.num_data(),
        "features": train_set.num_feature(),
        "load_seconds": load_seconds,
        "train_seconds": train_seconds,
        "iterations": booster.current_iteration(),
        "metrics": names,
        "ndcg": {n: history[-1][i] for i, n in enumerate(names)},
        "history": history,
        "trees_sha256": trees_sha256(booster.model_to_string()),
    }))


if __name__ == "__main__":
    main()
