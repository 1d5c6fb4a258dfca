"""Latency probe of the live path (scripts/bench-live.sh): posts one `order_placed` at a
time to the intake and measures the time from the intake's `accepted` answer to the live
hourly GMV showing it (GET /api/v1/hourly-gmv, polled every millisecond or so).

The probe's orders are in 2025-10-01 hour 11, which the load (hour 12) never touches, so the
hour's GMV changes only by the probe's own order (each +1.00). Standard library only.
Prints one JSON object: {"samples", "p50_ms", "p99_ms", "max_ms", "post_p50_ms", "timeouts"}.
"""

import argparse
import http.client
import json
import statistics
import time


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True, help="seconds to probe")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    ap.add_argument("--run", required=True, help="unique run id (event ids)")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--samples", help="also write each sample here, a line each: unix time of the "
                    "intake's answer (s), latency (ms)")
    a = ap.parse_args()

    post = http.client.HTTPConnection(a.host, a.port, timeout=30)
    get = http.client.HTTPConnection(a.host, a.port, timeout=30)
    path = "/api/v1/hourly-gmv?from=2025-10-01T11&to=2025-10-01T11"

    def gmv():
        get.request("GET", path)
        r = get.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"probe: GET {path}: HTTP {r.status}: {body[:200]!r}")
        rows = json.loads(body)
        return rows[0]["gmv"] if rows else 0.0

    lat, post_lat, timeouts, at = [], [], 0, []
    end = time.monotonic() + a.duration
    i = 0
    while time.monotonic() < end:
        i += 1
        before = gmv()
        event = {
            "event_id": f"probe-{a.run}-{i}", "event_type": "order_placed",
            "event_timestamp": "2025-10-01T11:30:00Z", "user_id": "usr_probe",
            "device": "desktop", "order_id": f"probe-{a.run}-{i}",
            "items": [{"book_id": "bk_1", "quantity": 1, "unit_price": 1.0}], "total_price": 1.0,
        }
        t0 = time.monotonic()
        post.request("POST", "/v1/events", json.dumps(event), {"Content-Type": "application/json"})
        r = post.getresponse()
        answer = json.loads(r.read())
        t_acc = time.monotonic()
        wall = time.time()
        if r.status != 200 or answer.get("accepted") != 1:
            raise SystemExit(f"probe: the intake did not accept the probe order: {r.status} {answer}")
        post_lat.append(t_acc - t0)
        while True:
            if gmv() >= before + 1.0 - 1e-9:
                lat.append(time.monotonic() - t_acc)
                at.append(wall)
                break
            if time.monotonic() - t_acc > a.timeout:
                timeouts += 1
                break
            time.sleep(0.001)
        time.sleep(a.interval)

    if a.samples:
        with open(a.samples, "w") as f:
            f.writelines(f"{t:.3f} {1000 * x:.1f}\n" for t, x in zip(at, lat))
    ms = lambda x: None if x is None else round(1000 * x, 1)
    print(json.dumps({
        "samples": len(lat),
        "p50_ms": ms(percentile(lat, 0.5)),
        "p99_ms": ms(percentile(lat, 0.99)),
        "max_ms": ms(max(lat) if lat else None),
        "mean_ms": ms(statistics.fmean(lat) if lat else None),
        "post_p50_ms": ms(percentile(post_lat, 0.5)),
        "timeouts": timeouts,
    }))


if __name__ == "__main__":
    main()
