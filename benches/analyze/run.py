"""Analytics benchmark harness: every `quire analyze` question over a large simulated store, and
FP-growth / PrefixSpan against their Python peers on the same input.

Run by scripts/bench-analyze.sh (which makes the peers' venv and builds the release binary).

1. Simulates the store (`quire simulate`), ingests it and loads the books dimension, unless the
   work directory already holds a finished lake for the same days, users and seed.
2. Runs each analysis (`quire analyze <question> --lake L --json`) once, measuring wall time and
   peak resident memory of the process (os.wait4), and `quire analyze report`.
3. Exports the lake's order transactions (`basket --transactions-out`) and purchase sequences
   (`sequences --sequences-out`, flattened to one item per purchase, in time order, for the peer,
   which handles sequences of single items only), then times on those same files:
   Quire's FP-growth + rules (`basket --transactions FILE`) against mlxtend's fpgrowth +
   association_rules (peer_fpgrowth.py), and Quire's PrefixSpan (`sequences --spmf FILE`)
   against the `prefixspan` package (peer_prefixspan.py); both sides report the mining time
   (Quire through its `QUIRE_LOG=info` line) and their process's wall time and peak memory, and
   the harness checks that both found the same number of rules / patterns.
4. Writes RESULTS/analyze.md and RESULTS/analyze.json (analyze-small.* for a quick check).

Standard library only.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

ANALYSES = [
    ["segments"],
    ["top-customers", "--pct", "10"],
    ["time-to-purchase"],
    ["paths"],
    ["after-abandon"],
    ["devices"],
    ["basket", "--min-support", "0.0005", "--min-confidence", "0.2"],
    ["sequences"],
]


def measured(cmd, env=None, stdout=None):
    """Runs cmd; returns (seconds, peak RSS in MB, stderr text)."""
    print("+", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    start = time.perf_counter()
    p = subprocess.Popen([str(c) for c in cmd], env=env, stdout=stdout or subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    err = p.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{err}")
    return seconds, usage.ru_maxrss / 1024.0, err


def quire_seconds(stderr, message):
    """The `seconds=` of Quire's info line `message`."""
    for line in stderr.splitlines():
        if message in line:
            m = re.search(r"seconds=([0-9.eE+-]+)", line)
            if m:
                return float(m.group(1))
    sys.exit(f"no '{message}' timing in Quire's log:\n{stderr}")


def flatten_spmf(src, dst):
    """SPMF sessions → one item per itemset (each user's purchases in time order)."""
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            if line.startswith("@"):
                out.write(line)
                continue
            items = [t for t in line.split() if t not in ("-1", "-2")]
            out.write("".join(f"{i} -1 " for i in items) + "-2\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quire", required=True)
    ap.add_argument("--peer-python", required=True)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--users", type=int, default=46000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--fp-min-support", default="0.0005")
    ap.add_argument("--fp-min-confidence", default="0.2")
    ap.add_argument("--ps-min-support", default="0.002")
    ap.add_argument("--ps-max-items", default="3")
    a = ap.parse_args()

    q = a.quire
    work = a.work / f"{a.days}d-{a.users}u-s{a.seed}"
    lake, sim = work / "lake", work / "sim"
    done = work / "READY"
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    figures = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, shared with other builds and benchmarks",
               "days": a.days, "users": a.users, "seed": a.seed}
    if not done.exists():
        sec, mb, _ = measured([q, "simulate", "--days", a.days, "--users", a.users, "--seed", a.seed,
                               "--out", sim, "--json"])
        figures["simulate_seconds"] = sec
        sec, mb, _ = measured([q, "ingest", "--lake", lake, sim / "events.jsonl", "--json"])
        figures["ingest_seconds"] = sec
        measured([q, "dims", "load", "--lake", lake, "--books", sim / "books.csv"])
        done.write_text("ok\n")
    truth = json.loads((sim / "truth.json").read_text())
    figures["events"] = truth["volumes"]["events"]

    env = dict(os.environ, QUIRE_LOG="info")
    rows = []
    for args in ANALYSES:
        path = out / f"{args[0]}.json"
        with open(path, "w") as f:
            sec, mb, _ = measured([q, "analyze", *args, "--lake", lake, "--json"], env=env, stdout=f)
        rows.append({"analysis": args[0], "args": " ".join(args[1:]), "seconds": sec, "peak_mb": mb})
    sec, mb, _ = measured([q, "analyze", "report", "--lake", lake, "--out", out / "report"], env=env)
    rows.append({"analysis": "report (all eight)", "args": "", "seconds": sec, "peak_mb": mb})
    figures["analyses"] = rows

    # FP-growth on the lake's transactions.
    tx = out / "transactions.csv"
    measured([q, "analyze", "basket", "--lake", lake, "--transactions-out", tx, "--min-support", "1",
              "--min-confidence", "1", "--json"])
    fp = {"min_support": a.fp_min_support, "min_confidence": a.fp_min_confidence,
          "transactions": sum(1 for _ in open(tx))}
    with open(out / "fp_quire.json", "w") as f:
        sec, mb, err = measured([q, "analyze", "basket", "--transactions", tx, "--min-support", a.fp_min_support,
                                 "--min-confidence", a.fp_min_confidence, "--max-len", "0", "--json"],
                                env=env, stdout=f)
    quire_rules = len(json.loads((out / "fp_quire.json").read_text())["rules"])
    fp["quire"] = {"mining_seconds": quire_seconds(err, "fp-growth and rules"), "process_seconds": sec,
                   "peak_mb": mb, "rules": quire_rules}
    with open(out / "fp_peer.json", "w") as f:
        sec, mb, _ = measured([a.peer_python, HERE / "peer_fpgrowth.py", tx, a.fp_min_support, a.fp_min_confidence],
                              stdout=f)
    peer = json.loads((out / "fp_peer.json").read_text())
    fp["mlxtend"] = {**peer, "process_seconds": sec, "peak_mb": mb}
    figures["fpgrowth"] = fp

    # PrefixSpan on the lake's purchase sequences, one item per purchase.
    seqs, flat = out / "sequences.spmf", out / "sequences-flat.spmf"
    measured([q, "analyze", "sequences", "--lake", lake, "--sequences-out", seqs, "--json"])
    flatten_spmf(seqs, flat)
    ps = {"min_support": a.ps_min_support, "max_items": a.ps_max_items}
    with open(out / "ps_quire.json", "w") as f:
        sec, mb, err = measured([q, "analyze", "sequences", "--spmf", flat, "--min-support", a.ps_min_support,
                                 "--max-items", a.ps_max_items, "--json"], env=env, stdout=f)
    qj = json.loads((out / "ps_quire.json").read_text())
    ps["sequences"] = qj["users"]
    ps["quire"] = {"mining_seconds": quire_seconds(err, "prefixspan"), "process_seconds": sec, "peak_mb": mb,
                   "patterns": qj["pattern_count"], "min_count": qj["prefixspan_min_count"]}
    with open(out / "ps_peer.json", "w") as f:
        sec, mb, _ = measured([a.peer_python, HERE / "peer_prefixspan.py", flat, str(qj["prefixspan_min_count"]),
                               a.ps_max_items], stdout=f)
    peer = json.loads((out / "ps_peer.json").read_text())
    ps["prefixspan"] = {**peer, "process_seconds": sec, "peak_mb": mb}
    figures["prefixspan"] = ps

    same_rules = fp["quire"]["rules"] == fp["mlxtend"]["rules"]
    same_patterns = ps["quire"]["patterns"] == ps["prefixspan"]["patterns"]
    figures["agree"] = {"rules": same_rules, "patterns": same_patterns}

    suffix = "-small" if a.small else ""
    results = ROOT / "benches" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"analyze{suffix}.json").write_text(json.dumps(figures, indent=2) + "\n")
    md = [f"# quire analyze: {figures['events']:,} simulated events ({a.days} days, {a.users:,} users, seed {a.seed})",
          "",
          f"Run {figures['started']} on {figures['machine']}: one run each, release build; "
          "other helpers were building and benchmarking on the same 2 cores, so times are upper bounds.",
          "",
          "| analysis | args | wall s | peak MB |", "|---|---|---:|---:|"]
    for r in rows:
        md.append(f"| {r['analysis']} | {r['args']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} |")
    md += ["", "Each analysis is one process: open the lake, stage and sessionize it (quire-kpi), analyze, print JSON.",
           "", f"## FP-growth: {fp['transactions']:,} order transactions, support ≥ {fp['min_support']}, "
           f"confidence ≥ {fp['min_confidence']}, one-item consequents",
           "", "| | mining s | process wall s | peak MB | rules |", "|---|---:|---:|---:|---:|",
           f"| Quire (FP-growth + rules) | {fp['quire']['mining_seconds']:.3f} | {fp['quire']['process_seconds']:.2f} | "
           f"{fp['quire']['peak_mb']:.0f} | {fp['quire']['rules']} |",
           f"| mlxtend 0.25.0 fpgrowth + association_rules | {fp['mlxtend']['mining_seconds']:.3f} | "
           f"{fp['mlxtend']['process_seconds']:.2f} | {fp['mlxtend']['peak_mb']:.0f} | {fp['mlxtend']['rules']} |",
           "", "mlxtend's mining time excludes reading and one-hot encoding (reported separately in analyze.json as "
           "`encode_seconds`); it compares thresholds in floating point, Quire exactly.",
           "", f"## PrefixSpan: {ps['sequences']:,} purchase sequences (one item per purchase), "
           f"support ≥ {ps['min_support']} (≥ {ps['quire']['min_count']} sequences), at most {ps['max_items']} items",
           "", "| | mining s | process wall s | peak MB | patterns |", "|---|---:|---:|---:|---:|",
           f"| Quire | {ps['quire']['mining_seconds']:.3f} | {ps['quire']['process_seconds']:.2f} | "
           f"{ps['quire']['peak_mb']:.0f} | {ps['quire']['patterns']} |",
           f"| prefixspan 0.5.2 | {ps['prefixspan']['mining_seconds']:.3f} | {ps['prefixspan']['process_seconds']:.2f} | "
           f"{ps['prefixspan']['peak_mb']:.0f} | {ps['prefixspan']['patterns']} |",
           "", f"Same number of rules: {same_rules}; same number of patterns: {same_patterns}."]
    text = "\n".join(md) + "\n"
    (results / f"analyze{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
