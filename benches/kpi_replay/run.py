#!/usr/bin/env python3
"""KPI replay benchmark: Quire against DuckDB on the same lake, plus ingest and simulator speed.

One run does, in order:
  1. `quire simulate` of about BENCH_EVENTS events (10 million by default; the number of users
     is calibrated with a small simulation unless given) → simulator events/s;
  2. `quire ingest --json` of the simulated file into a fresh lake → ingest events/s;
  3. `quire dims load` of the simulator's books, users and marketing spend;
  4. the KPI replay, `quire kpis --lake L --json` and `python duckdb_kpis.py --lake L OUT`, each a
     child process, REPS times in alternating order, measuring wall time and peak RSS
     (`os.wait4` → `ru_maxrss`); medians are reported;
  5. a field-by-field comparison of the two reports (floats within 1e-6 relative);
  6. a Markdown table of the figures, written to the results file and printed.

Python 3.11 standard library only; DuckDB runs in the interpreter given by --duckdb-python.
Exit status: 0 when every step ran and the reports agree, 1 when they differ, 2 on a failure.
Usage: see `benches/README.md` (normally through `scripts/bench.sh`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = HERE.parent

REL_TOL = 1e-6
ABS_TOL = 1e-9  # sums that cancel to ~0 differ by rounding noise only


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Measured:
    """One child process: wall seconds, peak RSS (bytes), its stdout (when captured)."""
    seconds: float
    max_rss: int
    stdout: str = ""


class StepFailed(RuntimeError):
    pass


def run_measured(cmd: list[str], *, stdout_path: Path | None = None, log_path: Path,
                 env: dict[str, str] | None = None) -> Measured:
    """Runs `cmd`, waits with os.wait4 and returns its wall time and peak RSS.

    `ru_maxrss` from wait4 is the child's high-water resident set (kilobytes on Linux), of the
    process itself only (the programs measured here do not fork helpers).
    """
    out_f = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    with open(log_path, "ab") as err_f:
        err_f.write(f"$ {' '.join(cmd)}\n".encode())
        err_f.flush()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, env=env)
        captured = b""
        if out_f is subprocess.PIPE:
            captured = p.stdout.read()  # type: ignore[union-attr]
        _, status, ru = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    if stdout_path:
        out_f.close()  # type: ignore[union-attr]
    if p.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise StepFailed(f"{cmd[0]} exited with {p.returncode}: {' '.join(cmd)}\n"
                         + "\n".join("    " + line for line in tail))
    return Measured(seconds, ru.ru_maxrss * 1024, captured.decode())


def human_bytes(n: float) -> str:
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def num(x) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def rate(n: float, s: float) -> str:
    return f"{n / s:,.0f}/s" if s > 0 else "n/a"


# ---------------------------------------------------------------------------------------------
# Comparing the two reports

def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(a: float, b: float) -> bool:
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


def compare(a, b, path: str, diffs: list[str], counter: list[int],
            names: tuple[str, str] = ("quire", "duckdb")) -> None:
    """Appends to `diffs` every leaf where `a` and `b` (named `names`) disagree."""
    na, nb = names
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                diffs.append(f"{path}.{k}: missing in {na} ({nb}={json.dumps(b[k])})")
            elif k not in b:
                diffs.append(f"{path}.{k}: missing in {nb} ({na}={json.dumps(a[k])})")
            else:
                compare(a[k], b[k], f"{path}.{k}", diffs, counter, names)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{path}: {len(a)} entries in {na}, {len(b)} in {nb}")
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{path}[{i}]", diffs, counter, names)
        return
    counter[0] += 1
    if _num(a) and _num(b):
        if not _close(a, b):
            rel = abs(a - b) / max(abs(a), abs(b))
            diffs.append(f"{path}: {na}={a!r} {nb}={b!r} (rel diff {rel:.3g})")
    elif a != b:
        diffs.append(f"{path}: {na}={json.dumps(a)} {nb}={json.dumps(b)}")


def keyed(rows: list[dict], key: str) -> dict:
    return {r.get(key): r for r in rows}


def compare_reports(q: dict, d: dict,
                    names: tuple[str, str] = ("quire", "duckdb")) -> tuple[list[str], int]:
    """Field-by-field comparison; daily rows matched by date and hourly rows by hour, so a
    missing day is reported as such rather than as a shift of every later row."""
    na, nb = names
    diffs: list[str] = []
    counter = [0]
    for top in sorted(set(q) | set(d)):
        if top not in q or top not in d:
            diffs.append(f"{top}: present only in {na if top in q else nb}")
            continue
        if top in ("daily", "hourly_gmv"):
            key = "date" if top == "daily" else "hour"
            qa, da = keyed(q[top], key), keyed(d[top], key)
            for k in sorted(set(qa) | set(da), key=str):
                if k not in qa:
                    diffs.append(f"{top}[{k}]: only in {nb}")
                elif k not in da:
                    diffs.append(f"{top}[{k}]: only in {na}")
                else:
                    compare(qa[k], da[k], f"{top}[{k}]", diffs, counter, names)
            qk, dk = [r.get(key) for r in q[top]], [r.get(key) for r in d[top]]
            if set(qk) == set(dk) and qk != dk:
                diffs.append(f"{top}: same {key}s in a different order")
        else:
            compare(q[top], d[top], top, diffs, counter, names)
    return diffs, counter[0]


# ---------------------------------------------------------------------------------------------
# The run

@dataclass
class Figures:
    machine: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    simulate: dict = field(default_factory=dict)
    ingest: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)
    lake: dict = field(default_factory=dict)
    replay: dict = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)


def machine_info() -> dict:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "memory": human_bytes(mem_kib * 1024),
        "cpu": cpu,
        "kernel": platform.release(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": os.getloadavg()[0],
    }


def dir_stats(d: Path) -> tuple[int, int]:
    files, size = 0, 0
    for p in d.rglob("*.parquet"):
        files += 1
        size += p.stat().st_size
    return files, size


def simulate(args, fig: Figures, work: Path, logs: Path) -> Path:
    """Simulates about args.events events; returns the simulation directory."""
    users = args.users
    if not users:
        cal_users = args.calibration_users
        cal_dir = work / "calibration"
        shutil.rmtree(cal_dir, ignore_errors=True)
        m = run_measured([args.quire, "simulate", "--days", str(args.days), "--users",
                          str(cal_users), "--seed", str(args.seed), "--out", str(cal_dir),
                          "--json"], log_path=logs / "simulate.log")
        cal = json.loads(m.stdout)
        shutil.rmtree(cal_dir, ignore_errors=True)
        per_user = cal["events"] / cal_users
        users = max(1, round(args.events / per_user))
        log(f"calibration: {cal['events']:,} events for {cal_users:,} users over {args.days} "
            f"days → {users:,} users for ~{args.events:,} events")
    sim_dir = work / "sim"
    shutil.rmtree(sim_dir, ignore_errors=True)
    log(f"simulate: --days {args.days} --users {users} --seed {args.seed}")
    m = run_measured([args.quire, "simulate", "--days", str(args.days), "--users", str(users),
                      "--seed", str(args.seed), "--out", str(sim_dir), "--json"],
                     log_path=logs / "simulate.log")
    s = json.loads(m.stdout)
    events_file = Path(s.get("events_path") or sim_dir / "events.jsonl")
    fig.config.update(days=args.days, users=users, seed=args.seed)
    fig.simulate = {
        "lines": s["lines"], "events": s["events"], "malformed": s.get("malformed"),
        "duplicates": s.get("duplicates"), "test_events": s.get("test_events"),
        "orders": s.get("orders"), "wall_seconds": m.seconds,
        "reported_seconds": s.get("seconds"), "max_rss": m.max_rss,
        "file_bytes": events_file.stat().st_size,
        "events_per_second": s["events"] / m.seconds,
    }
    log(f"simulate: {s['events']:,} events ({s['lines']:,} lines) in {m.seconds:.1f}s "
        f"= {rate(s['events'], m.seconds)}")
    return sim_dir


def ingest(args, fig: Figures, sim_dir: Path, lake: Path, logs: Path) -> None:
    shutil.rmtree(lake, ignore_errors=True)
    events_file = sim_dir / "events.jsonl"
    log(f"ingest: {events_file} → {lake}")
    m = run_measured([args.quire, "ingest", "--lake", str(lake), str(events_file), "--json"],
                     log_path=logs / "ingest.log")
    r = json.loads(m.stdout)
    fig.ingest = {**r, "wall_seconds": m.seconds, "max_rss": m.max_rss,
                  "lines_per_second": r["lines"] / m.seconds,
                  "valid_per_second": r["valid"] / m.seconds}
    log(f"ingest: {r} in {m.seconds:.1f}s = {rate(r['lines'], m.seconds)} lines")
    files, size = dir_stats(lake / "events")
    fig.lake = {"event_files": files, "event_bytes": size}

    m = run_measured([args.quire, "dims", "load", "--lake", str(lake),
                      "--books", str(sim_dir / "books.csv"),
                      "--users", str(sim_dir / "users.csv"),
                      "--marketing-spend", str(sim_dir / "marketing_spend.csv"), "--json"],
                     log_path=logs / "dims.log")
    fig.dims = {**json.loads(m.stdout), "wall_seconds": m.seconds}
    log(f"dims load: {fig.dims}")


def replay(args, fig: Figures, lake: Path, work: Path, logs: Path) -> Path:
    out = work / "reports"
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[Measured]] = {"quire": [], "duckdb": []}
    env = dict(os.environ)
    env.pop("QUIRE_LOG", None)

    def one(tool: str, rep: int) -> Path:
        path = out / f"{tool}-{rep}.json"
        if tool == "quire":
            cmd = [args.quire, "kpis", "--lake", str(lake), "--json"]
            m = run_measured(cmd, stdout_path=path, log_path=logs / "replay-quire.log", env=env)
        else:
            cmd = [args.duckdb_python, str(HERE / "duckdb_kpis.py"), "--lake", str(lake),
                   str(path)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            m = run_measured(cmd, log_path=logs / "replay-duckdb.log", env=env)
        runs[tool].append(m)
        log(f"replay {rep + 1}/{args.reps} {tool}: {m.seconds:.2f}s, "
            f"peak RSS {human_bytes(m.max_rss)}")
        return path

    for rep in range(args.reps):
        order = ["quire", "duckdb"] if rep % 2 == 0 else ["duckdb", "quire"]
        for tool in order:
            one(tool, rep)

    for tool, ms in runs.items():
        fig.replay[tool] = {
            "wall_seconds": [m.seconds for m in ms],
            "max_rss": [m.max_rss for m in ms],
            "median_seconds": statistics.median(m.seconds for m in ms),
            "median_max_rss": statistics.median(m.max_rss for m in ms),
        }
    return out


def check_agreement(args, fig: Figures, out: Path) -> list[str]:
    reports = {t: [json.loads((out / f"{t}-{r}.json").read_text()) for r in range(args.reps)]
               for t in ("quire", "duckdb")}
    # Each tool must give the same report every time.
    notes = []
    for t, reps in reports.items():
        for r in range(1, len(reps)):
            d, _ = compare_reports(reps[0], reps[r])
            if d:
                notes.append(f"{t} repetition {r + 1} differs from repetition 1 "
                             f"({len(d)} fields, e.g. {d[0]})")
    q, d = reports["quire"][0], reports["duckdb"][0]
    diffs, compared = compare_reports(q, d)
    shutil.copyfile(out / "quire-0.json", out / "quire.json")
    shutil.copyfile(out / "duckdb-0.json", out / "duckdb.json")
    fig.agreement = {
        "fields_compared": compared,
        "differences": diffs,
        "nondeterminism": notes,
        "days": len(q.get("daily", [])),
        "hours": len(q.get("hourly_gmv", [])),
    }
    events = fig.simulate.get("events") or 0
    if diffs and events <= args.referee_max:
        # A third, plain-Python implementation of kpis.md says which side is wrong.
        ref_path = out / "reference.json"
        log("the reports differ: running the plain-Python referee (reference_kpis.py)")
        try:
            m = run_measured([args.duckdb_python, str(HERE / "reference_kpis.py"), "--lake",
                              str(lake_of(args)), str(ref_path)],
                             log_path=out.parent / "logs" / "referee.log")
        except StepFailed as e:
            log(f"the referee failed: {e}")
            return diffs + notes
        ref = json.loads(ref_path.read_text())
        fig.agreement["referee"] = {
            "seconds": m.seconds,
            "quire_vs_reference": compare_reports(q, ref, ("quire", "reference"))[0],
            "duckdb_vs_reference": compare_reports(d, ref, ("duckdb", "reference"))[0],
        }
    return diffs + notes


def lake_of(args) -> Path:
    return args.dir.resolve() / "lake"


def markdown(fig: Figures) -> str:
    m, c, s, i, r, a = fig.machine, fig.config, fig.simulate, fig.ingest, fig.replay, fig.agreement
    lines = [
        "# KPI replay: Quire vs DuckDB",
        "",
        f"Machine: {m.get('nproc')} CPUs ({m.get('cpu')}), {m.get('memory')} RAM, "
        f"Linux {m.get('kernel')}; run {m.get('date')}; 1-minute load average "
        f"{m.get('loadavg_at_start', 0):.1f} at the start, "
        f"{m.get('loadavg_before_replay', 0):.1f} before the replay, "
        f"{m.get('loadavg_at_end', 0):.1f} at the end (other work on the machine skews times).",
        f"Versions: {c.get('quire_version')} (source tree {c.get('source_commit')}), "
        f"DuckDB {c.get('duckdb_version')} "
        f"(Python package, {c.get('duckdb_threads')} threads), Python {c.get('python')}.",
        f"Data: `quire simulate --days {c.get('days')} --users {num(c.get('users'))} "
        f"--seed {c.get('seed')}` → {num(s.get('events'))} events "
        f"({num(s.get('lines'))} lines, {human_bytes(s.get('file_bytes', 0))} JSONL); lake: "
        f"{num(fig.lake.get('event_files'))} Parquet files, "
        f"{human_bytes(fig.lake.get('event_bytes', 0))}.",
        "",
        "## Ingest and simulator",
        "",
        "| step | items | wall time | events/s | peak RSS | goal |",
        "|---|---:|---:|---:|---:|---|",
    ]
    if s:
        lines.append(f"| `quire simulate` | {s['events']:,} events | {s['wall_seconds']:.1f} s | "
                     f"{s['events'] / s['wall_seconds']:,.0f} | "
                     f"{human_bytes(s['max_rss'])} | — |")
    if i:
        ok = i["lines_per_second"] >= 200_000
        lines.append(f"| `quire ingest` | {i['lines']:,} lines ({i['valid']:,} valid) | "
                     f"{i['wall_seconds']:.1f} s | {i['lines'] / i['wall_seconds']:,.0f} "
                     f"| {human_bytes(i['max_rss'])} | ≥ 200,000/s: "
                     f"{'**met**' if ok else '**not met**'} |")
    if fig.dims:
        lines.append(f"| `quire dims load` | {fig.dims.get('books')} books, "
                     f"{fig.dims.get('users')} users, {fig.dims.get('marketing_spend')} spend "
                     f"rows | {fig.dims['wall_seconds']:.1f} s | — | — | — |")
    if r:
        q, d = r["quire"], r["duckdb"]
        t_ok = q["median_seconds"] <= d["median_seconds"]
        m_ok = q["median_max_rss"] <= 2 * d["median_max_rss"]
        reps = len(q["wall_seconds"])
        lines += [
            "",
            f"## KPI replay ({reps} runs each, alternating order; medians)",
            "",
            "| | wall time (median) | runs | peak RSS (median) | runs |",
            "|---|---:|---|---:|---|",
        ]
        for name, x in (("Quire `quire kpis --json`", q), ("DuckDB `duckdb_kpis.py`", d)):
            lines.append(
                f"| {name} | {x['median_seconds']:.2f} s | "
                f"{', '.join(f'{v:.2f}' for v in x['wall_seconds'])} | "
                f"{human_bytes(x['median_max_rss'])} | "
                f"{', '.join(human_bytes(v) for v in x['max_rss'])} |")
        lines += [
            "",
            f"- Time: Quire / DuckDB = {q['median_seconds'] / d['median_seconds']:.2f}× "
            f"(goal ≤ 1×: {'**met**' if t_ok else '**not met**'}).",
            f"- Peak memory: Quire / DuckDB = {q['median_max_rss'] / d['median_max_rss']:.2f}× "
            f"(goal ≤ 2×: {'**met**' if m_ok else '**not met**'}).",
        ]
    if a:
        lines += ["", "## Do the reports agree?", ""]
        if not a["differences"] and not a["nondeterminism"]:
            lines.append(f"Yes: {a['fields_compared']:,} fields compared ({a['days']} days, "
                         f"{a['hours']} hours), floats within {REL_TOL:g} relative.")
        else:
            lines.append(f"**No**: {len(a['differences'])} differences in "
                         f"{a['fields_compared']:,} fields compared "
                         f"(floats within {REL_TOL:g} relative).")
            lines.append("")
            shown = a["differences"][:40]
            lines += [f"- `{x}`" for x in shown]
            if len(a["differences"]) > len(shown):
                lines.append(f"- … and {len(a['differences']) - len(shown)} more "
                             "(all in the JSON results file)")
            lines += [f"- {x}" for x in a["nondeterminism"]]
            ref = a.get("referee")
            if ref:
                lines += ["", "Referee (`reference_kpis.py`, plain Python over the same lake):", ""]
                for side in ("quire", "duckdb"):
                    dd = ref[f"{side}_vs_reference"]
                    lines.append(f"- {side} vs reference: "
                                 + (f"{len(dd)} differences" if dd else "agree"))
                    lines += [f"  - `{x}`" for x in dd[:20]]
    lines += [
        "",
        "Peak RSS is `ru_maxrss` of each child process from `os.wait4` (the DuckDB figure "
        "includes its Python interpreter). Reproduce: `make bench` (see benches/README.md).",
    ]
    return "\n".join(lines) + "\n"


def versions(args, fig: Figures) -> None:
    try:
        fig.config["quire_version"] = subprocess.run(
            [args.quire, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        fig.config["quire_version"] = "quire (version unknown)"
    try:  # read-only: which source tree the run belongs to
        rev = subprocess.run(["git", "-C", str(BENCHES), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "unknown"
    fig.config["source_commit"] = rev
    probe = ("import duckdb, os; c = duckdb.connect(); "
             + (f"c.execute('SET threads = {args.threads}'); " if args.threads else "")
             + "print(duckdb.__version__, c.execute(\"SELECT current_setting('threads')\")"
               ".fetchone()[0])")
    out = subprocess.run([args.duckdb_python, "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        raise StepFailed(f"duckdb is not importable by {args.duckdb_python}: "
                         f"{out.stderr.strip().splitlines()[-1:]}")
    ver, threads = out.stdout.split()
    fig.config.update(duckdb_version=ver, duckdb_threads=int(threads),
                      python=platform.python_version())


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "").replace("_", "")
    return int(v) if v else default


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quire", default=os.environ.get("QUIRE_BIN", "quire"),
                    help="the quire binary (env QUIRE_BIN)")
    ap.add_argument("--duckdb-python", default=os.environ.get("BENCH_PYTHON", sys.executable),
                    help="a Python with the duckdb package (env BENCH_PYTHON)")
    ap.add_argument("--dir", type=Path,
                    default=Path(os.environ.get("BENCH_DIR", "/var/tmp/quire-bench")),
                    help="data directory: simulation, lake, reports, logs (env BENCH_DIR)")
    ap.add_argument("--events", type=int, default=env_int("BENCH_EVENTS", 10_000_000),
                    help="events to simulate, approximately (env BENCH_EVENTS)")
    ap.add_argument("--days", type=int, default=env_int("BENCH_DAYS", 30),
                    help="simulated days (env BENCH_DAYS)")
    ap.add_argument("--users", type=int, default=env_int("BENCH_USERS", 0),
                    help="simulated users; 0 = calibrate for --events (env BENCH_USERS)")
    ap.add_argument("--calibration-users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=env_int("BENCH_SEED", 42),
                    help="simulation seed (env BENCH_SEED)")
    ap.add_argument("--reps", type=int, default=env_int("BENCH_REPS", 5),
                    help="replay repetitions per tool (env BENCH_REPS)")
    ap.add_argument("--threads", type=int, default=env_int("BENCH_DUCKDB_THREADS", 0),
                    help="DuckDB threads; 0 = DuckDB's default, all cores "
                         "(env BENCH_DUCKDB_THREADS)")
    ap.add_argument("--referee-max", type=int, default=env_int("BENCH_REFEREE_MAX", 1_000_000),
                    help="when the reports differ and the run has at most this many events, "
                         "run the plain-Python referee (env BENCH_REFEREE_MAX)")
    ap.add_argument("--results", type=Path, default=None,
                    help="Markdown results file (default benches/results/kpi_replay.md, or "
                         "kpi_replay-small.md below 10M events)")
    ap.add_argument("--skip-generate", action="store_true",
                    help="reuse the lake in --dir from a previous run (replay and compare only)")
    args = ap.parse_args()

    if args.results is None:
        name = "kpi_replay.md" if args.events >= 10_000_000 else "kpi_replay-small.md"
        args.results = BENCHES / "results" / name
    quire = shutil.which(args.quire) or args.quire
    if not Path(quire).is_file():
        log(f"quire binary not found: {args.quire} (build it: cargo build --release -p quire)")
        return 2
    args.quire = str(Path(quire).resolve())

    work = args.dir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for f in logs.glob("*.log"):
        f.unlink()
    lake = lake_of(args)
    fig = Figures(machine=machine_info())
    fig.config["target_events"] = args.events
    status = 0
    try:
        versions(args, fig)
        state = work / "figures.json"
        if args.skip_generate:
            prev = json.loads(state.read_text())
            for k in ("simulate", "ingest", "dims", "lake"):
                setattr(fig, k, prev.get(k, {}))
            fig.config.update({k: prev["config"][k] for k in ("days", "users", "seed")})
        else:
            sim_dir = simulate(args, fig, work, logs)
            ingest(args, fig, sim_dir, lake, logs)
        state.write_text(json.dumps(fig.__dict__, indent=1))
        fig.machine["loadavg_before_replay"] = os.getloadavg()[0]
        out = replay(args, fig, lake, work, logs)
        fig.machine["loadavg_at_end"] = os.getloadavg()[0]
        problems = check_agreement(args, fig, out)
        if problems:
            status = 1
            log(f"the reports DIFFER: {len(problems)} differences; see {args.results}")
        else:
            log(f"the reports agree ({fig.agreement['fields_compared']:,} fields)")
    except StepFailed as e:
        log(f"FAILED: {e}")
        fig.agreement.setdefault("differences", [])
        status = 2
    except (OSError, json.JSONDecodeError, KeyError) as e:
        log(f"FAILED: {type(e).__name__}: {e}")
        status = 2

    md = markdown(fig)
    if status == 2:
        md += "\n**The run did not finish**; see the logs in " + str(logs) + ".\n"
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(md)
    args.results.with_suffix(".json").write_text(json.dumps(fig.__dict__, indent=1) + "\n")
    print(md)
    log(f"results: {args.results} (and {args.results.with_suffix('.json').name}); "
        f"reports and logs under {work}")
    return status


if __name__ == "__main__":
    sys.exit(main())
