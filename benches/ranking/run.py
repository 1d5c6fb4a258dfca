#!/usr/bin/env python3
"""Ranking service benchmark: Quire's service against a FastAPI + onnxruntime peer.

One run does, in order:
  1. `ranking-bench prepare` (once per work dir): the goodbooks-10k bookstore, a 300-tree,
     31-leaf lambdarank model over the 28 features, registered as ltr@production, and
     requests.jsonl (100 BM25 candidates per request);
  2. `ranking-bench floor`: ONNX Runtime scoring the same 100-row matrices in process, one
     single-threaded session, no HTTP (and, for reference, each batch split in two halves
     scored at once on two threads, as the service does while a core is free): calls 2 ms
     apart once, back to back before each repetition of step 3 and after the last (the goal
     takes the fastest); after each repetition, at Quire's half-saturation rate: the floor in
     an open loop (one thread and session per core), HTTP alone (`ranking-bench echo`, the
     load generator against a server answering a fixed answer with no other work), two
     control servers (the same answer after ONNX Runtime's scoring of a prepared matrix, or
     after the floor's time of plain arithmetic), then the machine's own stalls
     (`ranking-bench hiccups`, with both cores and with one kept busy);
  3. for each peer in turn (Quire: `ranking-bench serve`, the library entry point `quire serve
     ranking` runs; Python: `uvicorn python_peer:app --workers 2`), alternating which goes
     first on each repetition: start it, wait until ready, send the first requests and keep the
     answers, then with `ranking-bench load` on loopback: the saturated throughput (closed loop,
     CONNECTIONS connections) and the latency at half of that peer's saturated throughput (open
     loop at a fixed rate); stop it;
  4. checks that both peers gave the same rankings (same books in the same order, scores within
     1e-5): the same model on the same features;
  5. writes benches/results/ranking.md (also printed) and ranking.json (every figure).

Python 3.11 standard library only; the peer runs in the interpreter given by --python.
Exit status: 0 when the peers agree, 1 when they differ, 2 on a failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHECKED = 50  # requests whose answers are compared between the peers
SCORE_TOL = 1e-5
FLOOR_GAP_US = 2000  # idle time between the spaced floor's calls
HICCUP_SECONDS = 10  # each measurement of the machine's own stalls
SPLIT_MIN_ROWS = 32  # quire_ranking::DEFAULT_SPLIT_MIN_ROWS, the service's default


def log(msg: str) -> None:
    print(f"[bench-ranking] {msg}", file=sys.stderr, flush=True)


def run_json(cmd: list[str]) -> dict:
    log(" ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        log(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
        raise SystemExit(2)
    return json.loads(p.stdout)


def histograms(base: str) -> dict[str, dict[float, float]]:
    """Quire's latency histograms from /metrics: name → {upper bound (s): cumulative count}."""
    status, text = http(base + "/metrics")
    if status != 200:
        raise SystemExit(f"GET /metrics answered {status}")
    wanted = {
        'quire_ranking_request_duration_seconds_bucket': 'endpoint="rank"',
        'quire_ranking_scoring_duration_seconds_bucket': "",
        'quire_ranking_queue_duration_seconds_bucket': "",
    }
    out: dict[str, dict[float, float]] = {}
    for line in text.decode().splitlines():
        name, _, rest = line.partition("{")
        if name not in wanted or wanted[name] not in rest:
            continue
        le = rest.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        out.setdefault(name.removesuffix("_bucket"), {})[bound] = float(line.rsplit(" ", 1)[1])
    return out


def splits(base: str) -> dict[str, float]:
    """Quire's split batches so far, from /metrics: outcome → count."""
    status, text = http(base + "/metrics")
    if status != 200:
        raise SystemExit(f"GET /metrics answered {status}")
    out = {"helped": 0.0, "withdrawn": 0.0}
    for line in text.decode().splitlines():
        if line.startswith("quire_ranking_split_batches_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Quantile q (0–1), in ms, of the observations between two scrapes of a cumulative
    histogram, interpolated linearly within its bucket (as Prometheus' histogram_quantile)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for b, c in zip(bounds, counts):
        if c >= rank:
            if b == float("inf"):
                return lower * 1000
            return (lower + (b - lower) * (rank - below) / max(c - below, 1e-12)) * 1000
        lower, below = b, c
    return bounds[-2] * 1000


def http(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(base: str, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before it was ready")
        try:
            if http(base + "/health/ready", timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{base} not ready in {seconds} s")


def tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (uvicorn's workers), KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    return total


def start(peer: str, args, port: int) -> subprocess.Popen:
    if peer == "quire":
        cmd = [args.bin, "serve", "--dir", str(args.dir), "--listen", f"127.0.0.1:{port}"]
        env = dict(os.environ)
        cwd = REPO
    else:
        cmd = [args.python, "-m", "uvicorn", "python_peer:app", "--workers", "2",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
               "--log-level", "warning"]
        env = dict(os.environ, PEER_MODEL=str(args.dir / "model.onnx"),
                   PEER_SNAPSHOT=str(args.dir / "feature_snapshot.json"))
        cwd = HERE
    log(f"starting {peer}: {' '.join(cmd)}")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(peer: str, args, port: int, bodies: list[bytes]) -> dict:
    proc = start(peer, args, port)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        wait_ready(base, proc)
        ready_s = time.monotonic() - t0
        answers = []
        for b in bodies[:CHECKED]:
            status, out = http(base + "/v1/rank", b)
            if status != 200:
                raise SystemExit(f"{peer} answered {status}: {out[:300]!r}")
            answers.append(json.loads(out))
        load = [args.bin, "load", "--url", base + "/v1/rank", "--bodies",
                str(args.dir / "requests.jsonl"), "--warmup", str(args.warmup),
                "--duration", str(args.duration)]
        loadavg = os.getloadavg()[0]
        split0 = splits(base) if peer == "quire" else {}
        saturated = run_json(load + ["--connections", str(args.connections)])
        rate = saturated["throughput_rps"] / 2
        before = histograms(base) if peer == "quire" else {}
        split1 = splits(base) if peer == "quire" else {}
        half = run_json(load + ["--connections", str(args.open_connections), "--rate", f"{rate:.1f}"])
        if peer == "quire":
            # Batches split with an idle scoring thread (warm-up included).
            split2 = splits(base)
            saturated["splits"] = {k: split1[k] - split0[k] for k in split1}
            half["splits"] = {k: split2[k] - split1[k] for k in split2}
            # Where the half-saturation time goes, from the service's own histograms.
            after = histograms(base)
            half["inside_ms"] = {
                what: {f"p{q:g}": quantile(before.get(name, {}), after[name], q / 100)
                       for q in (50, 99)}
                for what, name in (("request", "quire_ranking_request_duration_seconds"),
                                   ("onnx", "quire_ranking_scoring_duration_seconds"),
                                   ("queue", "quire_ranking_queue_duration_seconds"))
            }
        rss = tree_rss_kib(proc.pid)
    finally:
        stop(proc)
    for name, r in (("saturated", saturated), ("half", half)):
        if r["failed"] or r["transport_errors"]:
            raise SystemExit(f"{peer} {name}: {r['failed']} failed requests, "
                             f"{r['transport_errors']} transport errors")
    return {"peer": peer, "ready_seconds": ready_s, "loadavg_1min_before": loadavg,
            "saturated": saturated, "half": half, "rss_mib": rss / 1024, "answers": answers}


def http_alone(args, port: int, rate: float, answer_bytes: int, work: list[str] = (),
               what: str = "HTTP alone") -> dict:
    """The load generator's open loop at `rate` against `ranking-bench echo`: an axum server
    answering each request with a fixed answer of `answer_bytes` after `work` (its options:
    none, a fixed CPU time, or ONNX Runtime scoring a prepared matrix)."""
    cmd = [args.bin, "echo", "--listen", f"127.0.0.1:{port}", "--answer-bytes", str(answer_bytes),
           *work]
    log(f"starting {what}: {' '.join(cmd)}")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        half = run_json([args.bin, "load", "--url", base + "/v1/rank", "--bodies",
                         str(args.dir / "requests.jsonl"), "--warmup", str(args.warmup),
                         "--duration", str(args.duration),
                         "--connections", str(args.open_connections), "--rate", f"{rate:.1f}"])
    finally:
        stop(proc)
    if half["failed"] or half["transport_errors"]:
        raise SystemExit(f"{what}: {half['failed']} failed requests, "
                         f"{half['transport_errors']} transport errors")
    return half


def compare(a: list[dict], b: list[dict]) -> list[str]:
    diffs = []
    for i, (x, y) in enumerate(zip(a, b)):
        rx, ry = x["ranked"], y["ranked"]
        if [r["book_id"] for r in rx] != [r["book_id"] for r in ry]:
            # Equal scores may legitimately be ordered alike only if the scores agree exactly.
            sx = {r["book_id"]: r["score"] for r in rx}
            sy = {r["book_id"]: r["score"] for r in ry}
            worst = max(abs(sx[k] - sy.get(k, float("inf"))) for k in sx)
            diffs.append(f"request {i}: the orders differ (largest score difference {worst:.3g})")
            continue
        worst = max(abs(p["score"] - q["score"]) for p, q in zip(rx, ry))
        if worst > SCORE_TOL:
            diffs.append(f"request {i}: scores differ by up to {worst:.3g}")
    return diffs


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def med(runs: list[dict], *path: str) -> float:
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v[p]
        vals.append(v)
    return statistics.median(vals)


def report(prep: dict, floor: dict, runs: dict, diffs: list[str], args) -> tuple[str, dict]:
    q, p = runs["quire"], runs["python"]
    floor_ms = floor["score_us"]["p50"] / 1000
    q_thr, p_thr = med(q, "saturated", "throughput_rps"), med(p, "saturated", "throughput_rps")
    q50, q99 = med(q, "half", "latency_ms", "p50"), med(q, "half", "latency_ms", "p99")
    p50, p99 = med(p, "half", "latency_ms", "p50"), med(p, "half", "latency_ms", "p99")
    goals = {
        "p50_over_floor": {"value": q50 / floor_ms, "goal": 1.2, "met": q50 / floor_ms <= 1.2},
        "p99_over_p50": {"value": q99 / q50, "goal": 2.0, "met": q99 / q50 <= 2.0},
        "throughput_over_python": {"value": q_thr / p_thr, "goal": 2.0, "met": q_thr / p_thr >= 2.0},
    }
    ok = lambda g: "met" if g["met"] else "**not met**"
    open_floor = floor["open_loop"]
    open_rate = med(open_floor, "rate")
    of50, of99 = med(open_floor, "score_us", "p50") / 1000, med(open_floor, "score_us", "p99") / 1000
    h50, h99 = (med(floor["http_alone"], "latency_ms", "p50"),
                med(floor["http_alone"], "latency_ms", "p99"))
    sf50 = floor["split_us"]["p50"] / 1000
    hic = lambda *path: med(floor["hiccups"], *path)
    loads = ", ".join(f"{r['loadavg_1min_before']:.1f}" for r in q + p)
    info = machine_info()
    lines = [
        "# Ranking service: Quire vs FastAPI + onnxruntime",
        "",
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {info['nproc']} cores "
        f"({info['cpu']}), 1-minute load average before each run: {loads}.",
        "",
        f"Model: {prep['trees']} trees, {prep['mean_leaves']:.1f} leaves on average (at most "
        f"{prep['max_leaves']}), 28 features; requests of {prep['candidates']} BM25 candidates "
        f"from the goodbooks-10k catalog ({prep['books']} books, {prep['users']} users in the "
        f"snapshot). Load: `ranking-bench load` on loopback, one thread; saturated = closed loop, "
        f"{args.connections} connections; half = open loop at half of that peer's saturated "
        f"throughput, {args.open_connections} connections, evenly spaced sends (a pacer thread), "
        f"latency from the scheduled send. "
        f"{args.duration:g} s measured after {args.warmup:g} s of warm-up; medians of {args.reps} "
        f"repetition(s).",
        "",
        "| | Quire (`quire-ranking`) | Python peer (FastAPI, 2 uvicorn workers) |",
        "|---|---:|---:|",
        f"| saturated throughput (req/s) | {q_thr:,.0f} | {p_thr:,.0f} |",
        f"| p50 at half saturation (ms) | {q50:.3f} | {p50:.3f} |",
        f"| p99 at half saturation (ms) | {q99:.3f} | {p99:.3f} |",
        f"| p99 / p50 | {q99 / q50:.2f} | {p99 / p50:.2f} |",
        f"| half-saturation requests timed from their slot (late) | "
        f"{med(q, 'half', 'late'):,.0f} of {med(q, 'half', 'ok'):,.0f} | "
        f"{med(p, 'half', 'late'):,.0f} of {med(p, 'half', 'ok'):,.0f} |",
        f"| p50 under saturation (ms) | {med(q, 'saturated', 'latency_ms', 'p50'):.3f} | "
        f"{med(p, 'saturated', 'latency_ms', 'p50'):.3f} |",
        f"| resident memory after the load (MiB) | {med(q, 'rss_mib'):.0f} | {med(p, 'rss_mib'):.0f} |",
        "",
        f"In-process floor (`OnnxScorer::score`, {floor['rows_per_call']} rows, one "
        f"single-threaded session, no HTTP; the fastest of {len(floor['p50_us_each'])} "
        f"measurements, one before each repetition and one after the last, whose p50s were "
        f"{min(floor['p50_us_each']) / 1000:.3f}–{max(floor['p50_us_each']) / 1000:.3f} ms): "
        f"p50 {floor_ms:.3f} ms, p99 "
        f"{floor['score_us']['p99'] / 1000:.3f} ms (p99 / p50 "
        f"{floor['score_us']['p99'] / floor['score_us']['p50']:.2f}: the machine's own jitter, "
        f"with no HTTP and no other request). Features per request: "
        f"{floor['features_us_per_request']:.1f} µs with the service's `ServingTables` "
        f"(`assemble` per row on the snapshot's maps, as the feature job: "
        f"{floor['assemble_us_per_request']:.1f} µs), bit-identical on all {prep['requests']} "
        f"requests.",
        "",
        "Where Quire's time at half saturation goes (p50, ms; medians over the repetitions; "
        "the service's figures interpolated from its own `/metrics` histograms over the "
        "half-saturation run):",
        "",
        "| | p50 | p99 |",
        "|---|---:|---:|",
        f"| floor, back to back | {floor_ms:.3f} | {floor['score_us']['p99'] / 1000:.3f} |",
        f"| floor, back to back, each batch split in two halves scored at once on two threads "
        f"(as the service splits it while a core is free) | {sf50:.3f} | "
        f"{floor['split_us']['p99'] / 1000:.3f} |",
        f"| floor, one call every {FLOOR_GAP_US / 1000:g} ms | "
        f"{floor['spaced']['p50'] / 1000:.3f} | {floor['spaced']['p99'] / 1000:.3f} |",
        f"| floor, open loop at Quire's half-saturation rate ({open_rate:,.0f} calls/s, "
        f"{open_floor[0]['threads']} threads, timed as the load generator times) | "
        f"{of50:.3f} | {of99:.3f} |",
        f"| HTTP and the load generator alone at that rate (`ranking-bench echo`: a fixed answer "
        f"of Quire's size, no other work) | {h50:.3f} | {h99:.3f} |",
        f"| wait for a scoring thread inside the service (hand-off included) | "
        f"{med(q, 'half', 'inside_ms', 'queue', 'p50'):.3f} | "
        f"{med(q, 'half', 'inside_ms', 'queue', 'p99'):.3f} |",
        f"| ONNX call inside the service | {med(q, 'half', 'inside_ms', 'onnx', 'p50'):.3f} | "
        f"{med(q, 'half', 'inside_ms', 'onnx', 'p99'):.3f} |",
        f"| request inside the service (body read → answer ready) | "
        f"{med(q, 'half', 'inside_ms', 'request', 'p50'):.3f} | "
        f"{med(q, 'half', 'inside_ms', 'request', 'p99'):.3f} |",
        f"| at the load generator | {q50:.3f} | {q99:.3f} |",
        "",
        "| goal | value | target | |",
        "|---|---:|---:|---|",
        f"| Quire p50 at half saturation / floor p50 | {goals['p50_over_floor']['value']:.2f} | ≤ 1.2 | {ok(goals['p50_over_floor'])} |",
        f"| Quire p99 / p50 at half saturation | {goals['p99_over_p50']['value']:.2f} | ≤ 2 | {ok(goals['p99_over_p50'])} |",
        f"| Quire / Python saturated throughput | {goals['throughput_over_python']['value']:.2f} | ≥ 2 | {ok(goals['throughput_over_python'])} |",
        "",
        f"The goal's floor is the issue's: 100 rows on one core. While a core is free the service "
        f"splits a batch of at least {SPLIT_MIN_ROWS} rows over two scoring threads "
        f"(`split_min_rows`; at half saturation {med(q, 'half', 'splits', 'helped'):,.0f} "
        f"batches were split with a helper and {med(q, 'half', 'splits', 'withdrawn'):,.0f} "
        f"offered but scored alone, warm-up included; under saturation "
        f"{med(q, 'saturated', 'splits', 'helped') + med(q, 'saturated', 'splits', 'withdrawn'):,.0f}"
        f" were split). Against the floor that splits the same way, Quire's p50 is "
        f"{q50 / sf50:.2f}× ({sf50:.3f} ms): that is its serving overhead on a split batch.",
        "",
        f"For reference, not a goal: in the open loop at the same rate, with no server and no "
        f"load generator, ONNX Runtime alone takes {of50 / floor_ms:.2f}× the back-to-back "
        f"floor at p50, with p99 / p50 {of99 / of50:.2f} ({med(open_floor, 'late'):,.0f} of "
        f"{med(open_floor, 'calls'):,.0f} calls timed from their slot); Quire's p50 is "
        f"{q50 / of50:.2f}× that floor's. The two references' p50s (measured apart, so an "
        f"estimate: medians do not add exactly) come to {(of50 + h50) / floor_ms:.2f}× the "
        f"back-to-back floor: about what a server doing nothing but the scoring would take here.",
        "",
        "The same open loop at the same rate against control servers (`ranking-bench echo`, "
        "the same answer size; medians): the tail any server doing this work gets on this "
        "machine.",
        "",
        "| server | p50 (ms) | p99 (ms) | p99 / p50 |",
        "|---|---:|---:|---:|",
        f"| Quire | {q50:.3f} | {q99:.3f} | {q99 / q50:.2f} |",
        *(f"| {label} | {med(floor['controls'], key, 'latency_ms', 'p50'):.3f} | "
          f"{med(floor['controls'], key, 'latency_ms', 'p99'):.3f} | "
          f"{med(floor['controls'], key, 'latency_ms', 'p99') / med(floor['controls'], key, 'latency_ms', 'p50'):.2f} |"
          for key, label in (
              ("onnx", "the simplest ONNX server: axum, `spawn_blocking`, ONNX Runtime scoring "
                       "a prepared 100-row matrix (no parsing, no features, no split)"),
              ("arithmetic", "the arithmetic server: the floor's p50 of plain arithmetic on "
                             "`spawn_blocking`, nothing else"))),
        f"| HTTP alone (no work) | {h50:.3f} | {h99:.3f} | {h99 / h50:.2f} |",
        "",
        f"The machine's own stalls (`ranking-bench hiccups`: a thread per busy core that only "
        f"reads the clock, {HICCUP_SECONDS} s after each repetition; medians): with both cores "
        f"kept busy, {hic('busy_2', 'per_thread_per_s', 'over_1ms'):.2f} gaps longer than 1 ms a "
        f"second per thread ({hic('busy_2', 'per_thread_per_s', 'over_2ms'):.2f} longer than 2 ms; the longest "
        f"{max(h['busy_2']['max_ms'] for h in floor['hiccups']):.1f} ms; "
        f"{hic('busy_2', 'lost_fraction') * 100:.2f} % of the time lost); with one core busy, "
        f"{hic('busy_1', 'per_thread_per_s', 'over_1ms'):.2f} a second (the longest "
        f"{max(h['busy_1']['max_ms'] for h in floor['hiccups']):.1f} ms, "
        f"{hic('busy_1', 'lost_fraction') * 100:.2f} % lost).",
        "",
        f"Agreement: the first {CHECKED} requests' rankings "
        + ("are identical (same order, scores within 1e-5)." if not diffs
           else f"differ: {'; '.join(diffs[:5])}"),
        "",
    ]
    data = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(),
        "machine": machine_info(),
        "prepare": prep,
        "floor": floor,
        "runs": {k: [{kk: vv for kk, vv in r.items() if kk != "answers"} for r in v]
                 for k, v in runs.items()},
        "goals": goals,
        "agreement_differences": diffs,
        "settings": {"connections": args.connections, "open_connections": args.open_connections,
                     "duration_s": args.duration, "warmup_s": args.warmup, "reps": args.reps},
    }
    return "\n".join(lines), data


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the ranking-bench binary")
    ap.add_argument("--python", required=True, help="the interpreter with fastapi, uvicorn, onnxruntime")
    ap.add_argument("--dir", type=Path, default=Path(os.environ.get("BENCH_DIR", "/var/tmp/quire-bench-ranking")))
    ap.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "18480")))
    ap.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "16")))
    ap.add_argument("--open-connections", type=int, default=int(os.environ.get("BENCH_OPEN_CONNECTIONS", "32")))
    ap.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "15")))
    ap.add_argument("--warmup", type=float, default=float(os.environ.get("BENCH_WARMUP", "3")))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "2")))
    ap.add_argument("--out", type=Path, default=REPO / "benches" / "results")
    args = ap.parse_args()
    args.dir = args.dir.resolve()

    if (args.dir / "registry.db").exists():
        prep = json.loads((args.dir / "prepare.json").read_text())
        log(f"reusing {args.dir}")
    else:
        prep = run_json([args.bin, "prepare", "--dir", str(args.dir)])
        (args.dir / "prepare.json").write_text(json.dumps(prep))
    # The floor is measured before each repetition and after the last; the goal divides by the
    # fastest of them, so that a slow moment of this shared machine cannot flatter the ratio.
    floors = []
    # The same calls 2 ms apart: idle gaps like those of the service at half saturation (about
    # 1 ms between requests, 2-3 ms between one scoring thread's), caches cooling in between.
    spaced = run_json([args.bin, "floor", "--dir", str(args.dir), "--calls", "2000",
                       "--gap-us", str(FLOOR_GAP_US)])["score_us"]
    bodies = [l.encode() for l in (args.dir / "requests.jsonl").read_text().splitlines() if l.strip()]

    runs: dict[str, list[dict]] = {"quire": [], "python": []}
    open_floors: list[dict] = []
    http_alones: list[dict] = []
    controls: list[dict] = []
    hiccups: list[dict] = []
    for rep in range(args.reps):
        floors.append(run_json([args.bin, "floor", "--dir", str(args.dir)]))
        order = ["quire", "python"] if rep % 2 == 0 else ["python", "quire"]
        for peer in order:
            runs[peer].append(measure(peer, args, args.port, bodies))
        # The floor in Quire's half-saturation open loop: same rate, same length, same timing.
        rate = runs["quire"][-1]["saturated"]["throughput_rps"] / 2
        open_floors.append(run_json([args.bin, "floor", "--dir", str(args.dir), "--rate",
                                     f"{rate:.1f}", "--calls", str(int(rate * args.duration))]))
        # HTTP and the load generator alone, at that rate, with answers of Quire's size.
        answer_bytes = len(json.dumps(runs["quire"][-1]["answers"][0], separators=(",", ":")))
        http_alones.append(http_alone(args, args.port, rate, answer_bytes))
        # Two control servers at that rate (the tail any server doing this work gets here):
        # the simplest server around ONNX Runtime (axum, `spawn_blocking`, the scoring of a
        # prepared matrix: no parsing, no features, no split), and one whose only work is the
        # floor's time of plain arithmetic (no memory traffic: the least a stall can cost).
        controls.append({
            "onnx": http_alone(args, args.port, rate, answer_bytes,
                               ["--score-dir", str(args.dir)], "the simplest ONNX server"),
            "arithmetic": http_alone(args, args.port, rate, answer_bytes,
                                     ["--work-us", f"{floors[-1]['score_us']['p50']:.0f}"],
                                     "the arithmetic server"),
        })
        # The machine's own stalls, with both cores and with one core kept busy (last: the
        # spinning must not warm or slow the machine before the floor).
        hiccups.append({f"busy_{n}": run_json([args.bin, "hiccups", "--seconds", str(HICCUP_SECONDS),
                                               "--threads", str(n)])
                        for n in (2, 1)})
    floors.append(run_json([args.bin, "floor", "--dir", str(args.dir)]))
    floor = min(floors, key=lambda f: f["score_us"]["p50"])
    floor["spaced"] = spaced
    floor["p50_us_each"] = [f["score_us"]["p50"] for f in floors]
    floor["open_loop"] = open_floors
    floor["http_alone"] = http_alones
    floor["controls"] = controls
    floor["hiccups"] = hiccups
    diffs = compare(runs["quire"][0]["answers"], runs["python"][0]["answers"])
    md, data = report(prep, floor, runs, diffs, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ranking.md").write_text(md)
    (args.out / "ranking.json").write_text(json.dumps(data, indent=2))
    print(md)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
