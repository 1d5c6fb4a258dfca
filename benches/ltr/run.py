#!/usr/bin/env python3
"""LTR benchmark: LightGBM lambdarank through Quire (`ltr-bench`) against the Python package.

Data: LightGBM's lambdarank example (a Yahoo LTR sample) in data/lightgbm-lambdarank, trained
as its train.conf says. One run does, in order:
  1. unpacks rank.train.gz / rank.test.gz (and copies the .query side files) into the work dir;
  2. turns train.conf into one LightGBM parameter string: every `key = value` line except the
     CLI's own (task, data and model files, the machine list), `num_trees` becoming the number
     of rounds; adds `num_threads=T verbosity=-1`;
  3. for each thread count, runs `ltr-bench` and `python_ltr.py` REPS times each, alternating
     which goes first, each a child process printing a JSON report (load seconds, training
     seconds, NDCG on rank.test after every iteration, SHA-256 of the trees);
  4. checks that all runs agree: the same trees (hash) and the same NDCG at every iteration
     (within 1e-12) between the tools and between repetitions;
  5. writes benches/results/ltr.md (also printed) and ltr.json (every figure, every run).

Python 3.11 standard library only; the peer runs in the interpreter given by --python.
Exit status: 0 when the runs agree, 1 when they differ, 2 on a failure.
Usage: see benches/README.md (normally through scripts/bench-ltr.sh).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = HERE.parent
REPO = BENCHES.parent

# train.conf keys that only the LightGBM CLI reads: the task, files, the network.
CLI_ONLY = {"task", "data", "valid_data", "output_model", "input_model", "output_result",
            "num_machines", "local_listen_port", "machine_list_file"}
# Issue figures: NDCG@1/3/5 on rank.test at 100 trees with the Python package.
ISSUE_NDCG = {"ndcg@1": 0.5775, "ndcg@3": 0.6190, "ndcg@5": 0.6546}
GOAL_RATIO = 1.05
TOL = 1e-12


def log(msg: str) -> None:
    print(f"[bench-ltr] {msg}", file=sys.stderr, flush=True)


def conf_params(conf: Path, threads: int) -> tuple[str, int]:
    """train.conf → (LightGBM parameter string, rounds)."""
    params, rounds = [], None
    for line in conf.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if key in CLI_ONLY:
            continue
        if key == "num_trees":
            rounds = int(value)
            continue
        params.append(f"{key}={value}")
    if rounds is None:
        raise SystemExit(f"{conf}: no num_trees")
    params += [f"num_threads={threads}", "verbosity=-1"]
    return " ".join(params), rounds


def unpack(data: Path, work: Path) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("rank.train", "rank.test"):
        target = work / name
        with gzip.open(data / f"{name}.gz", "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        shutil.copyfile(data / f"{name}.query", work / f"{name}.query")
        out.append(target)
    return out[0], out[1]


def run_one(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        log(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
        raise SystemExit(2)
    report = json.loads(p.stdout)
    report["wall_seconds"] = wall
    report["loadavg_1min"] = os.getloadavg()[0]
    return report


def max_diff(a: list[list[float]], b: list[list[float]]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)), default=0.0)


def machine_info() -> dict:
    mem_kib, cpu = 0, platform.processor() or ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 2),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": os.getloadavg()[0],
    }


def summarize(runs: list[dict]) -> dict:
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    return {
        "train_seconds": med("train_seconds"),
        "load_seconds": med("load_seconds"),
        "wall_seconds": med("wall_seconds"),
        "train_fastest": min(r["train_seconds"] for r in runs),
        "train_runs": [r["train_seconds"] for r in runs],
    }


def markdown(res: dict) -> str:
    m, c = res["machine"], res["config"]
    out = [
        "# LTR: LightGBM lambdarank through Quire vs the Python `lightgbm` package",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux "
        f"{m['kernel']}; run {m['date']}; 1-minute load average {m['loadavg_at_start']:.1f} at "
        f"the start, {m['loadavg_at_end']:.1f} at the end (other work on the machine skews "
        "times, and OpenMP threads suffer most when the cores are busy).",
        f"LightGBM on both sides: Quire `ltr-bench` runs {c['quire_lightgbm']}; the peer runs "
        f"the Python package {c['python_lightgbm']} on Python {c['python']}.",
        f"Data: `data/lightgbm-lambdarank` (LightGBM's lambdarank example, a Yahoo LTR sample): "
        f"rank.train {c['train_rows']:,} rows / {c['train_queries']} queries, rank.test "
        f"{c['test_rows']:,} rows / {c['test_queries']} queries, {c['features']} features.",
        f"Parameters (from `train.conf`, {c['rounds']} rounds): `{c['params_template']}`.",
        f"OpenMP: `OMP_WAIT_POLICY` {c['omp_wait_policy']} for both tools (both load the "
        "system's libgomp).",
        "",
        f"## Training time (medians of {c['reps']} runs per tool and thread count, alternating)",
        "",
        "Training = the boosting loop (all rounds, each followed by the evaluation of the test "
        "set, and of the training set since train.conf asks for training metrics), timed inside "
        "each process; loading = both files parsed and binned; process wall = the whole child "
        "process, including starting Python and importing `lightgbm` for the peer.",
        "",
        "| threads | tool | training (median) | fastest | runs | loading (median) | process wall (median) |",
        "|---:|---|---:|---:|---|---:|---:|",
    ]
    for t in res["threads"]:
        for tool in ("quire", "python"):
            s = t[tool]
            runs = ", ".join(f"{x:.3f}" for x in s["train_runs"])
            out.append(f"| {t['threads']} | {t[tool + '_name']} | {s['train_seconds']:.3f} s | "
                       f"{s['train_fastest']:.3f} s | {runs} "
                       f"| {s['load_seconds']:.3f} s | {s['wall_seconds']:.3f} s |")
    out.append("")
    for t in res["threads"]:
        ratio = t["ratio"]
        verdict = "**met**" if ratio <= GOAL_RATIO else "**not met**"
        fastest = t["quire"]["train_fastest"] / t["python"]["train_fastest"]
        out.append(f"- {t['threads']} thread{'s' if t['threads'] > 1 else ''}: Quire / Python "
                   f"training time = {ratio:.3f}× (goal ≤ {GOAL_RATIO}×: {verdict}); fastest "
                   f"runs: {fastest:.3f}×.")
    busiest = max(r["loadavg_1min"] for r in res["runs"])
    if busiest > m["nproc"] - 0.5:
        busy = (f"**The machine was busy** (1-minute load average up to {busiest:.1f} on "
                f"{m['nproc']} CPUs during the runs): the times include waiting for a core")
        if os.environ.get("OMP_WAIT_POLICY", "").lower() == "passive":
            busy += ("; with passive OpenMP waiting both tools lose about equally. Rerun on an "
                     "idle machine for clean absolute figures.")
        else:
            busy += (", and a run with more threads than idle cores spins at every OpenMP "
                     "barrier for a descheduled thread, so multi-threaded times measure the "
                     "other work more than LightGBM. Rerun with `OMP_WAIT_POLICY=passive` or "
                     "on an idle machine.")
        out += ["", busy]
    out += ["", "## NDCG on rank.test", ""]
    out.append("| threads | tool | NDCG@1 | NDCG@3 | NDCG@5 | trees (SHA-256) |")
    out.append("|---:|---|---:|---:|---:|---|")
    for t in res["threads"]:
        for tool in ("quire", "python"):
            n = t[tool + "_ndcg"]
            out.append(f"| {t['threads']} | {t[tool + '_name']} | {n['ndcg@1']:.10f} | "
                       f"{n['ndcg@3']:.10f} | {n['ndcg@5']:.10f} | `{t[tool + '_trees'][:16]}…` |")
    out.append("")
    issue = ", ".join(f"{k} {v:.4f}" for k, v in ISSUE_NDCG.items())
    out.append(f"Issue figures (Python, 100 trees): {issue}; rounded to 4 decimals the runs give "
               f"{res['rounded']} ({'equal' if res['issue_match'] else '**different**'}).")
    out.append("")
    if res["agree"]:
        out.append(f"Agreement: **yes**. Every run of both tools built the same trees (same "
                   f"SHA-256 of the model's tree section) and the same NDCG at every one of the "
                   f"{c['rounds']} iterations (largest difference between tools "
                   f"{res['max_tool_diff']:.1e}, within {TOL:g}).")
    else:
        out.append("Agreement: **no**:")
        out += [f"- {d}" for d in res["disagreements"]]
    out += ["", "Reproduce: `scripts/bench-ltr.sh` (see benches/README.md)."]
    return "\n".join(out) + "\n"


def count_lines(path: Path) -> int:
    return sum(1 for _ in open(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the ltr-bench binary")
    ap.add_argument("--python", required=True, help="interpreter with lightgbm installed")
    ap.add_argument("--data", default=str(REPO / "data" / "lightgbm-lambdarank"))
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", "/var/tmp/quire-bench-ltr"))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "7")))
    ap.add_argument("--threads", default=os.environ.get("BENCH_LTR_THREADS", "2,1"),
                    help="comma-separated thread counts")
    ap.add_argument("--out", default=str(BENCHES / "results" / "ltr"))
    args = ap.parse_args()

    data = Path(args.data)
    machine = machine_info()
    train, test = unpack(data, Path(args.work))
    peer = str(HERE / "python_ltr.py")
    threads_res, disagreements, all_runs = [], [], []
    max_tool_diff = 0.0
    config: dict = {}
    for threads in (int(t) for t in args.threads.split(",")):
        params, rounds = conf_params(data / "train.conf", threads)
        common = ["--train", str(train), "--test", str(test), "--params", params,
                  "--rounds", str(rounds)]
        cmds = {"quire": [args.bin, *common], "python": [args.python, peer, *common]}
        runs: dict[str, list[dict]] = {"quire": [], "python": []}
        for rep in range(args.reps):
            order = ("quire", "python") if rep % 2 == 0 else ("python", "quire")
            for tool in order:
                r = run_one(cmds[tool])
                runs[tool].append(r)
                log(f"threads={threads} rep={rep + 1}/{args.reps} {tool}: train "
                    f"{r['train_seconds']:.3f} s, load {r['load_seconds']:.3f} s")
        ref = runs["python"][0]
        for tool in ("quire", "python"):
            for i, r in enumerate(runs[tool]):
                d = max_diff(r["history"], ref["history"])
                if tool == "quire":
                    max_tool_diff = max(max_tool_diff, d)
                if d > TOL or r["trees_sha256"] != ref["trees_sha256"] or r["metrics"] != ref["metrics"]:
                    disagreements.append(
                        f"threads={threads} {tool} run {i + 1}: NDCG history differs by {d:.3g} from "
                        f"Python run 1, trees {r['trees_sha256'][:16]} vs {ref['trees_sha256'][:16]}")
        q, p = summarize(runs["quire"]), summarize(runs["python"])
        threads_res.append({
            "threads": threads, "params": params,
            "quire": q, "python": p, "ratio": q["train_seconds"] / p["train_seconds"],
            "quire_name": "Quire `ltr-bench`", "python_name": "Python `lightgbm`",
            "quire_ndcg": runs["quire"][0]["ndcg"], "python_ndcg": ref["ndcg"],
            "quire_trees": runs["quire"][0]["trees_sha256"], "python_trees": ref["trees_sha256"],
            # Every run's history was compared above; one copy is kept.
            "metrics": ref["metrics"], "ndcg_history": runs["quire"][0]["history"],
        })
        all_runs += [{"threads": threads, **{k: v for k, v in r.items() if k != "history"}}
                     for tool in runs for r in runs[tool]]
        config = {
            "rounds": rounds, "reps": args.reps,
            "params_template": params.replace(f"num_threads={threads}", "num_threads=T"),
            "quire_lightgbm": runs["quire"][0]["lightgbm"],
            "python_lightgbm": ref["lightgbm"],
            "train_rows": ref["train_rows"], "test_rows": ref["test_rows"],
            "train_queries": count_lines(data / "rank.train.query"),
            "test_queries": count_lines(data / "rank.test.query"),
            "features": ref["features"],
        }
    machine["loadavg_at_end"] = os.getloadavg()[0]
    py = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                        capture_output=True, text=True).stdout.strip()
    config["python"] = py
    policy = os.environ.get("OMP_WAIT_POLICY")
    config["omp_wait_policy"] = f"= `{policy}`" if policy else "unset (libgomp's default: spin, then sleep)"
    final = threads_res[0]["python_ndcg"]
    rounded = {k: round(v, 4) for k, v in final.items()}
    res = {
        "machine": machine, "config": config, "threads": threads_res,
        "rounded": ", ".join(f"{k} {v:.4f}" for k, v in rounded.items()),
        "issue_match": rounded == ISSUE_NDCG,
        "agree": not disagreements, "disagreements": disagreements,
        "max_tool_diff": max_tool_diff, "runs": all_runs,
    }
    md = markdown(res)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    print(md)
    return 0 if res["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
