#!/usr/bin/env python3
"""Recommendation batch benchmark: Quire's `recs-bench` against the Python peer (`peer.py`:
`implicit` + numpy/scipy + redis-py), on the same input and the same Redis server.

One run does, in order:
  1. writes the input once (gen_data.py: factors of rank FACTORS, purchases, orders), reused
     while its parameters match;
  2. starts its own redis-server on a free loopback port (no persistence);
  3. an untimed agreement round: Quire publishes, the peer publishes, compare.py checks the
     two sets list by list (a sample of users, every book, popular);
  4. REPS timed rounds in alternating order, FLUSHALL before each run: wall time of each child
     process (start to exit: loading the files, computing, writing), the phases each reports,
     peak RSS (`os.wait4`); right before each Quire run, `redis-benchmark -P 16 -t set` with
     the mean size of a published value (the ceiling its write phase is compared with, at the
     same moment);
  5. a Markdown table (printed and written to the results directory) and a JSON file.

Python 3.11 standard library only; the peer, the generator and compare.py run in the
interpreter given by --python (the venv scripts/bench-recs.sh fills).
Exit status: 0 when every step ran and the sets agree, 1 when they disagree, 2 on a failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = HERE.parent


def log(msg: str) -> None:
    print(f"[bench-recs] {msg}", file=sys.stderr, flush=True)


class StepFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_measured(cmd: list[str], env: dict[str, str], log_path: Path) -> tuple[float, int, dict]:
    """Runs a child to completion: (wall seconds, peak RSS bytes, its JSON stdout)."""
    start = time.perf_counter()
    with open(log_path, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
        out = proc.stdout.read() if proc.stdout else b""
        _, status, rusage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise StepFailed(f"{cmd[0]} exited with status {status >> 8}; see {log_path}")
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as e:
        raise StepFailed(f"{cmd[0]} printed no JSON report ({e}); see {log_path}") from e
    return seconds, rusage.ru_maxrss * 1024, report


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def load_avg() -> float:
    return os.getloadavg()[0]


def fmt_s(x: float) -> str:
    return f"{x:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quire", required=True, help="the recs-bench binary")
    ap.add_argument("--python", required=True, help="interpreter with implicit, redis, numpy")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/var/tmp/quire-bench-recs")))
    ap.add_argument("--users", type=int, default=int(os.environ.get("BENCH_USERS", 100_000)))
    ap.add_argument("--books", type=int, default=int(os.environ.get("BENCH_BOOKS", 10_000)))
    ap.add_argument("--factors", type=int, default=int(os.environ.get("BENCH_FACTORS", 64)))
    ap.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", 50)))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", 3)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED", 42)))
    ap.add_argument("--results", type=Path, default=BENCHES / "results")
    a = ap.parse_args()

    a.dir.mkdir(parents=True, exist_ok=True)
    data = a.dir / "data"
    logs = a.dir / "logs"
    logs.mkdir(exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    load_start = load_avg()

    # 1. Input, once.
    want = {"users": a.users, "books": a.books, "factors": a.factors, "seed": a.seed}
    meta_path = data / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if any(meta.get(k) != v for k, v in want.items()):
        log(f"writing the input to {data}")
        subprocess.run(
            [a.python, str(HERE / "gen_data.py"), "--out", str(data),
             "--users", str(a.users), "--books", str(a.books),
             "--factors", str(a.factors), "--seed", str(a.seed)],
            check=True, stdout=subprocess.DEVNULL,
        )
        meta = json.loads(meta_path.read_text())

    # 2. Redis.
    port = free_port()
    rdir = Path(tempfile.mkdtemp(prefix="redis-", dir=a.dir))
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(rdir)],
        stdout=open(logs / "redis.log", "wb"), stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(200):
            try:
                if redis_cli(port, "ping") == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        else:
            raise StepFailed("redis-server did not answer PING")
        redis_version = redis_cli(port, "info", "server").split("redis_version:")[1].split()[0]
        url = f"redis://127.0.0.1:{port}"
        env = dict(os.environ)
        # implicit asks for a single-threaded BLAS: its own threads call it.
        env["OPENBLAS_NUM_THREADS"] = "1"
        env["MKL_NUM_THREADS"] = "1"
        common = ["--data", str(data), "--redis", url, "--n", str(a.n), "--threads", str(a.threads)]
        tools = {
            "quire": [a.quire, *common],
            "peer": [a.python, str(HERE / "peer.py"), *common],
        }

        # 3. Agreement round (untimed; also warms the page cache for both).
        log("agreement round: both publish, then compare.py")
        redis_cli(port, "flushall")
        _, _, q = run_measured(tools["quire"], env, logs / "quire.log")
        _, _, p = run_measured(tools["peer"], env, logs / "peer.log")
        cmp = subprocess.run(
            [a.python, str(HERE / "compare.py"), "--redis", url, "--quire", q["set"],
             "--peer", p["set"], "--users", str(a.users), "--books", str(a.books)],
            capture_output=True, text=True,
        )
        agreement = json.loads(cmp.stdout.strip().splitlines()[-1]) if cmp.stdout.strip() else {
            "ok": False, "error": cmp.stderr[-2000:]}
        value_bytes = round(q["mean_value_bytes"])

        # 4. The write ceiling, measured right before each Quire run (the machine's load
        # varies, so each run is compared with the server's rate at that moment).
        def set_rate() -> float:
            redis_cli(port, "flushall")
            out = subprocess.run(
                ["redis-benchmark", "-p", str(port), "-t", "set", "-P", "16",
                 "-d", str(value_bytes), "-n", "300000", "-r", "100000", "--csv"],
                check=True, capture_output=True, text=True,
            ).stdout
            line = [x for x in out.splitlines() if x.startswith('"SET"')][0]
            return float(line.split(",")[1].strip('"'))

        # 5. Timed rounds.
        runs: dict[str, list[dict]] = {"quire": [], "peer": []}
        for rep in range(a.reps):
            order = ["quire", "peer"] if rep % 2 == 0 else ["peer", "quire"]
            for name in order:
                rb_now = set_rate() if name == "quire" else None
                redis_cli(port, "flushall")
                seconds, rss, report = run_measured(tools[name], env, logs / f"{name}.log")
                report.update(wall_seconds=seconds, max_rss=rss, load=load_avg())
                if rb_now is not None:
                    report.update(redis_benchmark_set_per_second=rb_now,
                                  write_share=report["keys"] / report["write_seconds"] / rb_now)
                runs[name].append(report)
                log(f"rep {rep + 1}/{a.reps} {name}: {seconds:.2f} s "
                    f"(compute {report['compute_seconds']:.2f}, write {report['write_seconds']:.2f})")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(rdir, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary = {
        name: {k: med(name, k) for k in ("wall_seconds", "compute_seconds", "write_seconds",
                                          "load_seconds", "max_rss")}
        for name in runs
    }
    ratio = summary["peer"]["wall_seconds"] / summary["quire"]["wall_seconds"]
    keys = runs["quire"][0]["keys"]
    write_rate = keys / summary["quire"]["write_seconds"]
    peer_rate = runs["peer"][0]["keys"] / summary["peer"]["write_seconds"]
    rb_rps = statistics.median(r["redis_benchmark_set_per_second"] for r in runs["quire"])
    write_share = statistics.median(r["write_share"] for r in runs["quire"])
    shares = ", ".join(f"{100 * r['write_share']:.0f}%" for r in runs["quire"])
    phases = {k: statistics.median(r["compute_phases"][k] for r in runs["quire"])
              for k in runs["quire"][0]["compute_phases"]}
    load_end = load_avg()

    small = a.users < 100_000
    stem = "recs-small" if small else "recs"
    versions = {
        "quire": subprocess.run(["git", "-C", str(BENCHES.parent), "describe", "--always", "--dirty"],
                                capture_output=True, text=True).stdout.strip(),
        "redis": redis_version,
        "python": platform.python_version(),
        "peer": subprocess.run([a.python, "-c", "import implicit, redis, numpy, scipy; "
                                "print(f'implicit {implicit.__version__}, redis-py {redis.__version__}, "
                                "numpy {numpy.__version__}, scipy {scipy.__version__}')"],
                               capture_output=True, text=True).stdout.strip(),
    }
    result = {
        "started": started.isoformat(), "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average": {"start": load_start, "end": load_end}, "versions": versions,
        "data": meta, "n": a.n, "threads": a.threads, "reps": a.reps,
        "agreement": agreement, "redis_benchmark": {"value_bytes": value_bytes, "pipeline": 16,
                                                    "set_per_second_median": rb_rps},
        "summary": summary, "end_to_end_ratio": ratio,
        "write": {"quire_keys_per_second": write_rate, "peer_keys_per_second": peer_rate,
                  "share_of_redis_benchmark": write_share},
        "quire_compute_phases": phases, "runs": runs,
    }

    rows = []
    for name, label in (("quire", "Quire `recs-bench`"), ("peer", "Python peer `peer.py`")):
        s = summary[name]
        rows.append(
            f"| {label} | {fmt_s(s['wall_seconds'])} s | {fmt_s(s['compute_seconds'])} s | "
            f"{fmt_s(s['write_seconds'])} s | {fmt_s(s['load_seconds'])} s | "
            f"{', '.join(fmt_s(r['wall_seconds']) for r in runs[name])} | "
            f"{s['max_rss'] / 2**20:.0f} MiB |"
        )
    met = lambda ok: "**met**" if ok else "**not met**"  # noqa: E731
    md = f"""# Recommendation batch: Quire vs implicit + redis-py

Machine: {os.cpu_count()} CPUs, {platform.platform()}; run {started:%Y-%m-%d %H:%M} UTC; 1-minute load average {load_start:.1f} at the start, {load_end:.1f} at the end (other work on the machine skews times).
Versions: quire {versions['quire']}, Redis {versions['redis']}, Python {versions['python']} with {versions['peer']}.
Data (`gen_data.py`, seed {meta['seed']}): {meta['users']:,} users, {meta['books']:,} books, rank {meta['factors']}, {meta['purchases']:,} purchases in {meta['orders']:,} orders; N = {a.n}; {a.threads} threads each; {keys:,} keys per set.

## End to end ({a.reps} runs each, alternating order, FLUSHALL before each; medians)

| | wall time | compute | write (JSON + Redis) | load input | runs (wall) | peak RSS |
|---|---:|---:|---:|---:|---|---:|
{rows[0]}
{rows[1]}

- End to end: Quire is **{ratio:.1f}×** faster than the peer (goal ≥ 5×: {met(ratio >= 5)}).
- Write phase: Quire {write_rate:,.0f} keys/s (JSON encoding, the lock, the set index, the EXISTS check of every key, the meta and the pointer move included). `redis-benchmark -P 16 -t set -d {value_bytes}` on the same server, run right before each Quire run: {rb_rps:,.0f} SET/s (median). Quire's rate as a share of it, run by run: {shares}; median **{100 * write_share:.0f}%** (goal ≥ 50%: {met(write_share >= 0.5)}). The peer: {peer_rate:,.0f} keys/s.
- Quire's compute, by phase (medians): co-purchase counts {phases['co_purchase_counts']:.2f} s, user lists {phases['users']:.2f} s, similar books {phases['similar']:.2f} s, bought-together + blend {phases['items']:.2f} s, popular + digest {phases['finish']:.2f} s.

## Do the two sets agree?

{"Yes" if agreement.get("ok") else "**No**"}: {agreement.get('lists', 0):,} lists compared (a sample of user lists, every book list, popular), {agreement.get('identical', 0):,} with identical book ids in identical order, {agreement.get('tie_differences', 0):,} differing only at tied scores, {agreement.get('disagree_count', 0)} disagreeing, {len(agreement.get('missing', []))} missing. Scores within 1e-4 relative.

Reproduce: `scripts/bench-recs.sh` (see benches/recs/README.md).
"""
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"{stem}.md").write_text(md)
    (a.results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(md)
    return 0 if agreement.get("ok") else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (StepFailed, subprocess.CalledProcessError) as e:
        log(f"failed: {e}")
        sys.exit(2)
