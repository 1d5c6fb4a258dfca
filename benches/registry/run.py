"""The registry benchmark (`scripts/bench-registry.sh`): `quire serve registry` against a real
`mlflow server` (SQLite backend, its default 4 workers), both on SQLite files on this machine,
driven by the same load generator (load.py) one after the other. Writes
benches/results/registry.md and registry.json.
"""

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, what, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench-registry: {what} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"bench-registry: {what} did not answer within {timeout} s")


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def rss_mib(pid):
    """Resident memory of a process and its children (the peer's workers), MiB."""
    out = subprocess.run(["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)],
                         capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split()) / 1024


def load_avg():
    return round(os.getloadavg()[0], 1)


def measure(name, cmd, env, args, workdir):
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    log = open(os.path.join(workdir, f"{name}.log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, name)
        load_before = load_avg()
        out = os.path.join(workdir, f"{name}.json")
        subprocess.run([sys.executable, os.path.join(HERE, "load.py"), "--url", url,
                        "--runs", str(args.runs), "--metrics", str(args.metrics),
                        "--workers", str(args.workers), "--searches", str(args.searches),
                        "--out", out], check=True)
        with open(out) as f:
            result = json.load(f)
        result["load_average_before"] = load_before
        result["rss_mib_after"] = round(rss_mib(proc.pid))
        return result
    finally:
        stop(proc)


def fmt(x, digits=1):
    return f"{x:,.{digits}f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quire", required=True, help="the quire binary")
    p.add_argument("--quire-profile", default="release")
    p.add_argument("--mlflow-venv", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--metrics", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--searches", type=int, default=100)
    p.add_argument("--results", default=os.path.join(ROOT, "benches", "results"))
    a = p.parse_args()

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    work = os.path.join(a.dir, stamp)
    os.makedirs(os.path.join(work, "quire"))
    os.makedirs(os.path.join(work, "mlflow"))
    env = dict(os.environ, QUIRE_LOG="warn")

    quire = measure("quire", [a.quire, "serve", "registry", "--listen", "127.0.0.1:{port}",
                              "--registry", f"sqlite://{work}/quire/registry.db",
                              "--artifacts", f"{work}/quire/artifacts"], env, a, work)
    mlflow_bin = os.path.join(a.mlflow_venv, "bin", "mlflow")
    version = subprocess.run([mlflow_bin, "--version"], capture_output=True, text=True).stdout.strip()
    mlflow = measure("mlflow", [mlflow_bin, "server", "--host", "127.0.0.1", "--port", "{port}",
                                "--backend-store-uri", f"sqlite:///{work}/mlflow/mlflow.db",
                                "--artifacts-destination", f"{work}/mlflow/artifacts"], env, a, work)

    agree = all(quire["search"][k]["runs_returned"] == mlflow["search"][k]["runs_returned"]
                and quire["search"][k]["has_next_page"] == mlflow["search"][k]["has_next_page"]
                for k in quire["search"])
    same_order = quire["search"]["metric filter + metric order"]["first_m1"] == \
        mlflow["search"]["metric filter + metric order"]["first_m1"]
    ratio = quire["log_batch_per_s"] / mlflow["log_batch_per_s"]
    worst_p99 = quire["search_worst_p99_ms"]
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    result = {"when": stamp, "cpus": os.cpu_count(), "cpu": cpu, "mlflow_version": version,
              "quire_profile": a.quire_profile, "quire": quire, "mlflow": mlflow,
              "throughput_ratio": ratio, "results_agree": agree, "metric_order_agrees": same_order}
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "registry.json"), "w") as f:
        json.dump(result, f, indent=1)

    rows = [
        ("runs/create throughput (runs/s)", fmt(quire["create_per_s"]), fmt(mlflow["create_per_s"])),
        (f"runs/log-batch throughput (req/s; {a.metrics} metrics + 2 params each)",
         fmt(quire["log_batch_per_s"]), fmt(mlflow["log_batch_per_s"])),
        ("metrics written per second", fmt(quire["metrics_per_s"], 0), fmt(mlflow["metrics_per_s"], 0)),
        ("log-batch latency p50 / p99 (ms)",
         f"{fmt(quire['log_batch_p50_ms'])} / {fmt(quire['log_batch_p99_ms'])}",
         f"{fmt(mlflow['log_batch_p50_ms'])} / {fmt(mlflow['log_batch_p99_ms'])}"),
    ]
    for k in quire["search"]:
        q, m = quire["search"][k], mlflow["search"][k]
        rows.append((f"runs/search p50 / p99 (ms): {k}",
                     f"{fmt(q['p50_ms'])} / {fmt(q['p99_ms'])}", f"{fmt(m['p50_ms'])} / {fmt(m['p99_ms'])}"))
    rows.append(("resident memory after the load (MiB)", fmt(quire["rss_mib_after"], 0),
                 fmt(mlflow["rss_mib_after"], 0)))
    rows.append(("1-minute load average before the load", fmt(quire["load_average_before"]),
                 fmt(mlflow["load_average_before"])))
    lines = [
        "# Registry server: Quire vs MLflow's tracking server",
        "",
        f"{stamp} UTC, {os.cpu_count()} cores ({cpu}). **The machine was shared** with other builds and "
        "benchmarks while this ran (see the load averages): absolute figures are pessimistic for both, "
        "and both ran under the same conditions one after the other.",
        "",
        f"Data: {a.runs:,} runs in one experiment; one `runs/log-batch` per run with {a.metrics} metrics "
        f"and 2 params ({a.runs * a.metrics:,} metric values), sent by {a.workers} client processes "
        "(`benches/registry/load.py`, keep-alive connections, standard library only); then "
        f"{a.searches} sequential `runs/search` requests of each kind, 100 runs per page with their data. "
        f"Quire: `quire serve registry` ({a.quire_profile} build), SQLite (WAL). Peer: `mlflow server` "
        f"({version}, pip `mlflow`, uvicorn with its default 4 workers), SQLite backend.",
        "",
        "| | Quire | MLflow |",
        "|---|---:|---:|",
    ] + [f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows] + [
        "",
        "| goal | value | target | |",
        "|---|---:|---:|---|",
        f"| log-batch throughput, Quire / MLflow | {ratio:.1f}× | ≥ 10× | {'met' if ratio >= 10 else '**not met**'} |",
        f"| worst runs/search p99 (Quire) | {worst_p99:.1f} ms | ≤ 50 ms | {'met' if worst_p99 <= 50 else '**not met**'} |",
        "",
        f"Agreement: every search kind returned the same number of runs and the same paging on both "
        f"servers: {'yes' if agree else '**no**'}; the metric-ordered page starts with the same values: "
        f"{'yes' if same_order else '**no**'}.",
    ]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(a.results, "registry.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
