"""Writes benches/results/live.md from live.json (scripts/bench-live.sh)."""

import json
import pathlib
import sys


def main():
    src, dst = sys.argv[1:3]
    out = json.loads(pathlib.Path(src).read_text())
    runs, idle = out["runs"], out["idle_probe"]
    worst = min(r["events_per_s"] for r in runs)
    worst_p99 = max(r["probe"]["p99_ms"] for r in runs)
    lines = [
        "# Live path: intake throughput and order → live GMV latency",
        "",
        f"Measured {out['date']} by `scripts/bench-live.sh` (`make bench`) on this machine: {out['cores']} cores; "
        f"load average before the runs {out.get('load_average_before', 'not recorded')}, after "
        f"{out['load_average_after']}." + (f" {out['note']}" if out.get("note") else ""),
        "",
        f"- Throughput goal ≥ 50,000 events/s: **{'met in every run' if worst >= 50_000 else 'not met in every run'}** "
        f"(worst run {worst:,} events/s).",
        f"- Latency goal p99 ≤ 1 s: idle **{'met' if idle['p99_ms'] <= 1000 else 'not met'}** "
        f"(p99 {idle['p99_ms']} ms); under load **{'met' if worst_p99 <= 1000 else 'not met in every run'}** "
        f"(worst run p99 {worst_p99} ms).",
        "",
        "Setup: one `quire serve live` (release build: intake, archiver, live KPIs, dashboard in one",
        "process), a Redis 7 of its own with the append-only file fsynced on every write",
        "(`appendfsync always`, so an accepted event survives a crash of Redis), the load generator",
        f"`wrk` (1 thread, {out['connections']} keep-alive connections, `benches/live/load.lua`: JSON arrays of",
        f"{out['batch']} distinct valid events: 60 % page views, 25 % book views, 10 % cart adds, 5 % orders)",
        "and the latency probe (`benches/live/probe.py`), all on loopback, all on the same cores.",
        "",
        "## Throughput (goal ≥ 50,000 events/s)",
        "",
        "| run | events/s accepted | requests/s | request p99 | non-2xx | archiver backlog at end | drained in |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r['events_per_s']:,} | {r['requests_per_s']} | {r['request_p99']} | {r['non_2xx']} | "
            f"{r['archiver_backlog']:,} entries | {float(r['drain_s']):.1f} s |"
        )
    lines += [
        "",
        "Events/s accepted = the service's own counter (`quire_live_intake_events_total{status=\"accepted\"}`)",
        f"over the {out['duration_s']:.0f} s of load: each event validated by `quire_events::parse_line` and on",
        "the bus (in Redis' fsynced AOF) before its answer. The archiver writes the lake meanwhile; its",
        "backlog at the end of the load (in bus entries: a request's events share one) and the time it",
        "took to catch up are shown.",
        "",
        "## Latency: accepted `order_placed` → live GMV changed (goal p99 ≤ 1 s)",
        "",
        "Time from the intake's `accepted` answer to `GET /api/v1/hourly-gmv` showing the order's amount",
        "(polled every ~1 ms). The probe's orders fall in an hour the load does not touch (a closed",
        "one: they are late orders, recomputed and re-emitted by the same code as the open hour).",
        "",
        "| when | samples | p50 | p99 | max | timeouts (10 s) |",
        "|---|---|---|---|---|---|",
        f"| idle | {idle['samples']} | {idle['p50_ms']} ms | {idle['p99_ms']} ms | {idle['max_ms']} ms | {idle['timeouts']} |",
    ]
    for i, r in enumerate(runs, 1):
        p = r["probe"]
        lines.append(
            f"| under load, run {i} | {p['samples']} | {p['p50_ms']} ms | {p['p99_ms']} ms | {p['max_ms']} ms | {p['timeouts']} |"
        )
    lines += [
        "",
        f"Raw outputs: `{out['raw_outputs']}/` (wrk, probe, service and Redis logs); machine-readable:",
        "`benches/results/live.json`. Where the time goes: `benches/README.md`.",
        "",
    ]
    pathlib.Path(dst).write_text("\n".join(lines))


if __name__ == "__main__":
    main()
