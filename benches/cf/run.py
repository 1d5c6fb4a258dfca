"""CF benchmark harness: Quire's ALS against the Python `implicit` package's ALS.

Run by scripts/bench-cf.sh (which makes the venv and builds cf-bench); see benches/README.md, "CF".

1. prepare.py turns the UCI Online Retail invoices into one time-split user x item matrix
   pair (train.tsv / test.tsv), which both sides read.
2. For each seed 1..SEEDS, in alternating order, `implicit_peer.py` and `cf-bench train` fit
   ALS with the same factors, regularization, confidence (1 + alpha * value), iterations and
   threads; each writes its factors in Quire's model format and its timings. The peer runs
   under both OpenMP wait policies and its faster run counts (see below).
3. `cf-bench eval` is the one evaluator: it scores every model (and the popularity baseline)
   with quire_cf::evaluate (precision/recall/NDCG@k, train items excluded) and recomputes
   each model's training loss with Quire's loss code, which must match the loss `implicit`
   reported for its own factors.
4. Writes RESULTS/cf.md and RESULTS/cf.json (figures of every run) and prints the Markdown.

Standard library only.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def run(cmd, env=None):
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in cmd], check=True, env=env)


def hyper_args(a):
    return [
        "--factors", a.factors, "--regularization", a.regularization, "--alpha", a.alpha,
        "--iterations", a.iterations, "--seed",
    ]


def load(path):
    return json.loads(Path(path).read_text())


def summary(values):
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def git_describe():
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peer_versions(python):
    code = (
        "import json, sys, implicit, numpy, scipy;"
        "print(json.dumps({'implicit': implicit.__version__, 'numpy': numpy.__version__,"
        " 'scipy': scipy.__version__, 'python': sys.version.split()[0]}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "system": platform.platform()}


def fmt(x, digits=4):
    return f"{x:.{digits}f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cf-bench", type=Path, required=True, help="the cf-bench binary")
    p.add_argument("--peer-python", type=Path, required=True, help="python with implicit")
    p.add_argument("--data", type=Path,
                   default=ROOT / "data/online-retail-uci/online_retail_by_day_concat.csv.gz")
    p.add_argument("--work", type=Path, default=Path("/var/tmp/quire-bench-cf"))
    p.add_argument("--results", type=Path, default=ROOT / "benches/results")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--regularization", type=float, default=0.01)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--k", type=int, default=10)
    a = p.parse_args()

    split = a.work / "split"
    runs = a.work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    started = datetime.now(timezone.utc)

    run([sys.executable, HERE / "prepare.py", "--data", a.data, "--out", split])
    split_info = load(split / "split.json")

    # implicit's OpenMP threads spin at barriers by default (OMP_WAIT_POLICY=active), which
    # costs it dearly when other processes share the cores; "passive" sleeps instead. Each seed
    # runs the peer under both policies and keeps its faster run, so the peer is measured at its
    # best whatever the load. Quire's rayon threads spin briefly, then sleep.
    base_env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    base_env["OPENBLAS_NUM_THREADS"] = "1"
    peer_envs = {"active": dict(base_env), "passive": dict(base_env, OMP_WAIT_POLICY="PASSIVE")}
    stats = {"quire": [], "implicit": []}
    peer_all = []
    for seed in range(1, a.seeds + 1):
        quire = [
            a.cf_bench, "train", "--split", split, *hyper_args(a), seed, "--threads", a.threads,
            "--model", runs / f"quire-{seed}.qcf", "--stats", runs / f"quire-{seed}.json",
        ]
        order = [("quire", "", quire, None)]
        for policy, env in peer_envs.items():
            peer = [
                a.peer_python, HERE / "implicit_peer.py", "--split", split, *hyper_args(a), seed,
                "--threads", a.threads, "--model", runs / f"implicit-{seed}-{policy}.qcf",
                "--stats", runs / f"implicit-{seed}-{policy}.json",
            ]
            order.append(("implicit", policy, peer, env))
        if seed % 2 == 1:
            order.reverse()
        peer_runs = {}
        for side, policy, cmd, env in order:
            run(cmd, env)
            if side == "quire":
                stats["quire"].append(load(runs / f"quire-{seed}.json"))
            else:
                peer_runs[policy] = dict(load(runs / f"implicit-{seed}-{policy}.json"),
                                         omp_wait_policy=policy)
        peer_all += peer_runs.values()
        best = min(
            peer_runs.values(),
            key=lambda s: statistics.median(it["seconds"] for it in s["iterations"]),
        )
        stats["implicit"].append(best)
        (runs / f"implicit-{seed}.qcf").write_bytes(
            (runs / f"implicit-{seed}-{best['omp_wait_policy']}.qcf").read_bytes()
        )

    eval_json = runs / "eval.json"
    models = []
    for seed in range(1, a.seeds + 1):
        for side in ("quire", "implicit"):
            models += ["--model", f"{side}-{seed}={runs / f'{side}-{seed}.qcf'}"]
    run([
        a.cf_bench, "eval", "--split", split, *hyper_args(a), 0, "--k", a.k,
        "--threads", a.threads, *models, "--out", eval_json,
    ])
    evaluation = load(eval_json)
    load_end = os.getloadavg()[0]

    sides = {}
    for side in ("quire", "implicit"):
        per_seed = [evaluation[f"{side}-{seed}"] for seed in range(1, a.seeds + 1)]
        iteration_seconds = [it["seconds"] for s in stats[side] for it in s["iterations"]]
        sides[side] = {
            "precision": summary([m["metrics"]["precision"] for m in per_seed]),
            "recall": summary([m["metrics"]["recall"] for m in per_seed]),
            "ndcg": summary([m["metrics"]["ndcg"] for m in per_seed]),
            "users_evaluated": per_seed[0]["metrics"]["users_evaluated"],
            "seconds_per_iteration_median": statistics.median(iteration_seconds),
            "seconds_per_iteration_all": iteration_seconds,
            "train_seconds": summary([s["train_seconds"] for s in stats[side]]),
            "cpu_seconds_per_iteration": summary(
                [s["train_cpu_seconds"] / len(s["iterations"]) for s in stats[side]]
            ),
            "recommend_all_users_seconds": summary(
                [s["recommend_all_users_seconds"] for s in stats[side]]
            ),
            "similar_items_seconds": summary([s["similar_items_seconds"] for s in stats[side]]),
            "final_loss_reported": [s["iterations"][-1]["loss"] for s in stats[side]],
            "final_loss_by_quire_code": [m["loss"] for m in per_seed],
            "threads": a.threads,
        }
    sides["implicit"]["omp_wait_policy_kept"] = [s["omp_wait_policy"] for s in stats["implicit"]]
    sides["implicit"]["every_run"] = [
        {
            "omp_wait_policy": s["omp_wait_policy"],
            "seconds_per_iteration_median": statistics.median(
                it["seconds"] for it in s["iterations"]
            ),
            "train_seconds": s["train_seconds"],
        }
        for s in peer_all
    ]
    pop = evaluation["popularity"]["metrics"]
    loss_gap = max(
        abs(r - q) / abs(r)
        for r, q in zip(sides["implicit"]["final_loss_reported"],
                        sides["implicit"]["final_loss_by_quire_code"])
    )
    q, i = sides["quire"], sides["implicit"]
    goals = {
        "precision_at_k": q["precision"]["mean"] >= i["precision"]["mean"],
        "ndcg_at_k": q["ndcg"]["mean"] >= i["ndcg"]["mean"],
        "seconds_per_iteration": q["seconds_per_iteration_median"]
        <= i["seconds_per_iteration_median"],
    }
    noisy = [
        name for name in ("precision", "recall", "ndcg")
        if abs(q[name]["mean"] - i[name]["mean"]) > max(q[name]["std"], i[name]["std"])
    ]
    if noisy:
        noise_note = (
            "Differences larger than one seed-to-seed standard deviation: "
            + ", ".join(noisy) + "."
        )
    else:
        noise_note = (
            "Every accuracy difference is smaller than one seed-to-seed standard deviation: "
            "the two are equally accurate, as expected of the same algorithm and loss."
        )
    versions = peer_versions(a.peer_python)
    result = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min": {"start": load_start, "end": load_end},
        "quire_source": git_describe(),
        "peer": versions,
        "config": {
            "factors": a.factors, "regularization": a.regularization, "alpha": a.alpha,
            "confidence": "1 + alpha * value", "iterations": a.iterations, "cg_steps": 3,
            "threads": a.threads, "seeds": list(range(1, a.seeds + 1)), "k": a.k,
        },
        "split": {k: v for k, v in split_info.items() if k != "source"},
        "quire": q,
        "implicit": i,
        "popularity": pop,
        "implicit_loss_recomputed_max_relative_difference": loss_gap,
        "goals_met": goals,
    }
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / "cf.json").write_text(json.dumps(result, indent=2) + "\n")

    k = a.k
    met = lambda ok: "**met**" if ok else "**not met**"

    def row(name, s):
        return (
            f"| {name} | {fmt(s['precision']['mean'])} ± {fmt(s['precision']['std'])} "
            f"| {fmt(s['recall']['mean'])} ± {fmt(s['recall']['std'])} "
            f"| {fmt(s['ndcg']['mean'])} ± {fmt(s['ndcg']['std'])} "
            f"| {fmt(s['seconds_per_iteration_median'], 3)} "
            f"| {fmt(s['cpu_seconds_per_iteration']['mean'], 3)} "
            f"| {fmt(s['train_seconds']['mean'], 2)} | {s['threads']} |"
        )

    per_seed_rows = "\n".join(
        f"| {seed} | {fmt(q['precision']['runs'][n])} | {fmt(i['precision']['runs'][n])} "
        f"| {fmt(q['ndcg']['runs'][n])} | {fmt(i['ndcg']['runs'][n])} "
        f"| {fmt(q['train_seconds']['runs'][n], 2)} | {fmt(i['train_seconds']['runs'][n], 2)} |"
        for n, seed in enumerate(range(1, a.seeds + 1))
    )
    m = result["machine"]
    md = f"""# CF: Quire's ALS vs `implicit`'s ALS on real purchases

Machine: {m['cpus']} CPUs ({m['cpu']}), {m['system']}; run {started.strftime('%Y-%m-%d %H:%M')} UTC; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end (other work on the machine skews times).
Versions: quire {result['quire_source']} (`cf-bench`, release), implicit {versions['implicit']} (numpy {versions['numpy']}, scipy {versions['scipy']}, Python {versions['python']}).
Data: UCI Online Retail (`data/online-retail-uci/`), purchases before {split_info['cutoff'][:10]} = train, from then to {split_info['last_purchase'][:10]} = test: {split_info['users']:,} customers x {split_info['items']:,} stock codes, {split_info['train_cells']:,} train cells ({split_info['train_purchases']:,} purchases), {split_info['test_cells']:,} new test purchases of {split_info['test_users']:,} customers (rules in `benches/cf/prepare.py`).
Both sides: {a.factors} factors, regularization {a.regularization}, confidence 1 + {a.alpha} x (invoices with the item), {a.iterations} iterations, 3 CG steps, float32, {a.threads} threads, loss computed every iteration; seeds 1..{a.seeds} (the initial factors differ between the two libraries). implicit runs twice per seed, with OpenMP's default (spinning) and passive wait policy, and its faster run is kept (kept: {", ".join(i["omp_wait_policy_kept"])}).

## Accuracy and speed (mean ± std over {a.seeds} seeds)

| | precision@{k} | recall@{k} | NDCG@{k} | s / iteration (median) | CPU s / iteration | train s (fit) | threads |
|---|---:|---:|---:|---:|---:|---:|---:|
{row('Quire `train_als`', q)}
{row('implicit `AlternatingLeastSquares`', i)}
| popularity baseline | {fmt(pop['precision'])} | {fmt(pop['recall'])} | {fmt(pop['ndcg'])} | — | — | — | — |

- precision@{k} ≥ implicit's (mean): {met(goals['precision_at_k'])} ({fmt(q['precision']['mean'])} vs {fmt(i['precision']['mean'])}; seed-to-seed std {fmt(q['precision']['std'])} / {fmt(i['precision']['std'])}).
- NDCG@{k} ≥ implicit's (mean): {met(goals['ndcg_at_k'])} ({fmt(q['ndcg']['mean'])} vs {fmt(i['ndcg']['mean'])}).
- {noise_note}
- Time per iteration ≤ implicit's on {a.threads} threads: {met(goals['seconds_per_iteration'])} ({fmt(q['seconds_per_iteration_median'], 3)} s vs {fmt(i['seconds_per_iteration_median'], 3)} s, median of all {a.seeds * a.iterations} iterations; Quire / implicit = {q['seconds_per_iteration_median'] / i['seconds_per_iteration_median']:.2f}x).
- Same loss code: Quire's `AlsModel::loss` on implicit's factors matches the loss implicit reported for them within {loss_gap:.1e} (relative), so both minimise the same objective. Final training loss: Quire {statistics.fmean(q['final_loss_reported']):.6f}, implicit {statistics.fmean(i['final_loss_reported']):.6f} (means).
- {q['users_evaluated']:,} customers evaluated (at least one new purchase in the test month); items bought in training are never recommended; one evaluator (`quire_cf::evaluate`, Rust) scores both sides' factors and the popularity baseline.

## Per seed

| seed | Quire precision@{k} | implicit precision@{k} | Quire NDCG@{k} | implicit NDCG@{k} | Quire train s | implicit train s |
|---:|---:|---:|---:|---:|---:|---:|
{per_seed_rows}

## Batch jobs of the recommendation publisher (mean wall time)

| | top-{k} unseen items for all {split_info['users']:,} users | {k} similar items for all {split_info['items']:,} items |
|---|---:|---:|
| Quire `recommend_all_users` / `similar_items` (blocks of 256) | {fmt(q['recommend_all_users_seconds']['mean'], 3)} s | {fmt(q['similar_items_seconds']['mean'], 3)} s |
| implicit `recommend` / `similar_items` (batch) | {fmt(i['recommend_all_users_seconds']['mean'], 3)} s | {fmt(i['similar_items_seconds']['mean'], 3)} s |

Timings: s / iteration is the wall time of one ALS iteration (users half-sweep, items half-sweep, loss) as each library reports it (Quire's `IterationStats::seconds`, implicit's fit callback); train s is the wall time of the whole fit call (confidence matrix transpose, initialisation, iterations); CPU s is the process CPU time of the fit (all threads) / iterations. Every figure of every run is in `cf.json`. Reproduce: `scripts/bench-cf.sh` (see benches/README.md).
"""
    (a.results / "cf.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
