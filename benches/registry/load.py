"""Load generator for the registry benchmark: the same requests, in the same order, against
any server speaking MLflow's REST API (Quire's `quire serve registry` or a real `mlflow server`).

    python load.py --url http://127.0.0.1:PORT --runs 10000 --metrics 20 --workers 4 \
        --searches 100 --out result.json

1. creates an experiment and RUNS runs (`runs/create`, WORKERS processes);
2. logs one `runs/log-batch` per run: METRICS metrics (`m0`…) and 2 params (`lr`, `depth`),
   values derived from the run's index so both servers hold the same data — timed: throughput;
3. sends SEARCHES sequential `runs/search` requests of each kind (newest 100; a metric filter
   with a metric order; a param filter), each page of 100 runs with full data — timed: p50/p99.
Standard library only (http.client, keep-alive connections), so the client costs the same for
both servers.
"""

import argparse
import http.client
import json
import multiprocessing as mp
import random
import statistics
import sys
import time
import urllib.parse

API = "/api/2.0/mlflow"


class Client:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        for attempt in range(2):
            try:
                self.conn.request(method, API + path, body=data, headers=headers)
                resp = self.conn.getresponse()
                text = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # A server may close an idle keep-alive connection: reconnect once.
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        if resp.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {text[:300]!r}")
        return json.loads(text) if text.strip() else {}


def values(i, metrics):
    rng = random.Random(i)
    return [round(rng.random(), 6) for _ in range(metrics)]


def batch(run_id, i, metrics, now):
    return {
        "run_id": run_id,
        "metrics": [{"key": f"m{k}", "value": v, "timestamp": now, "step": 0}
                    for k, v in enumerate(values(i, metrics))],
        "params": [{"key": "lr", "value": str(0.01 * (1 + i % 10))},
                   {"key": "depth", "value": str(3 + i % 8)}],
    }


def create_runs(args):
    url, exp_id, indices = args
    c = Client(url)
    out = []
    for i in indices:
        r = c.call("POST", "/runs/create", {"experiment_id": exp_id, "run_name": f"run-{i}",
                                             "start_time": 1_700_000_000_000 + i})
        out.append((i, r["run"]["info"]["run_id"]))
    return out


def log_batches(args):
    url, work, metrics = args
    c = Client(url)
    now = int(time.time() * 1000)
    latencies = []
    for i, run_id in work:
        t = time.perf_counter()
        c.call("POST", "/runs/log-batch", batch(run_id, i, metrics, now))
        latencies.append(time.perf_counter() - t)
    return latencies


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def timed_pool(fn, jobs, workers):
    with mp.Pool(workers) as pool:
        t = time.perf_counter()
        results = pool.map(fn, jobs)
        return time.perf_counter() - t, results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--metrics", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--searches", type=int, default=100)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    c = Client(a.url)
    exp_id = c.call("POST", "/experiments/create", {"name": f"bench-{time.time_ns()}"})["experiment_id"]
    slices = [range(w, a.runs, a.workers) for w in range(a.workers)]
    create_s, created = timed_pool(create_runs, [(a.url, exp_id, s) for s in slices], a.workers)
    runs = [r for part in created for r in part]
    print(f"load: {a.runs} runs created in {create_s:.1f} s", file=sys.stderr)

    work = [(a.url, runs[w::a.workers], a.metrics) for w in range(a.workers)]
    batch_s, lat = timed_pool(log_batches, work, a.workers)
    lat = [x for part in lat for x in part]
    print(f"load: {len(lat)} log-batch requests in {batch_s:.1f} s", file=sys.stderr)

    kinds = {
        "newest 100": {"experiment_ids": [exp_id], "max_results": 100},
        "metric filter + metric order": {"experiment_ids": [exp_id], "max_results": 100,
                                         "filter": "metrics.m0 > 0.5",
                                         "order_by": ["metrics.m1 DESC"]},
        "param filter": {"experiment_ids": [exp_id], "max_results": 100,
                         "filter": "params.depth = '7'"},
    }
    searches = {}
    for name, body in kinds.items():
        times = []
        for _ in range(a.searches):
            t = time.perf_counter()
            res = c.call("POST", "/runs/search", body)
            times.append(time.perf_counter() - t)
        got = res.get("runs", [])
        first = [{m["key"]: m["value"] for m in r["data"]["metrics"]}.get("m1") for r in got[:10]]
        searches[name] = {"n": len(times), "p50_ms": 1000 * pct(times, 50), "p99_ms": 1000 * pct(times, 99),
                          "runs_returned": len(got), "has_next_page": "next_page_token" in res,
                          "first_m1": first}
        print(f"load: search {name!r}: p50 {searches[name]['p50_ms']:.1f} ms, "
              f"p99 {searches[name]['p99_ms']:.1f} ms", file=sys.stderr)

    all_search = [t for s in searches.values() for t in [s["p99_ms"]]]
    result = {
        "runs": a.runs, "metrics_per_run": a.metrics, "workers": a.workers,
        "create_seconds": create_s, "create_per_s": a.runs / create_s,
        "log_batch_seconds": batch_s, "log_batch_per_s": len(lat) / batch_s,
        "metrics_per_s": len(lat) * a.metrics / batch_s,
        "log_batch_p50_ms": 1000 * pct(lat, 50), "log_batch_p99_ms": 1000 * pct(lat, 99),
        "search": searches, "search_worst_p99_ms": max(all_search),
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
