"""Do Quire's and the peer's published sets agree? Reads both from Redis with redis-py.

Lists are compared as the Recommendation Service sees them: for each key, the scores position
by position must agree within TOL (relative), and a book in only one of the two lists must sit
at the boundary (its score within TOL of that list's last score: a tie decided differently by
two float32 matrix products). Compared: a sample of user lists, every book list, popular.
Prints a JSON report; exit status 1 when any list disagrees.

Usage: python compare.py --redis URL --quire SET --peer SET --users U --books B [--sample K]
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import redis

TOL = 1e-4


def agree(a: list[dict], b: list[dict]) -> str | None:
    if len(a) != len(b):
        return f"lengths {len(a)} != {len(b)}"
    for k, (x, y) in enumerate(zip(a, b)):
        if abs(x["score"] - y["score"]) > TOL * max(1.0, abs(x["score"])):
            return f"position {k}: score {x['score']} != {y['score']}"
    sa = {x["book_id"]: x["score"] for x in a}
    sb = {y["book_id"]: y["score"] for y in b}
    for one, other, last in ((sa, sb, a[-1]["score"] if a else 0), (sb, sa, b[-1]["score"] if b else 0)):
        for book, score in one.items():
            if book in other:
                if abs(score - other[book]) > TOL * max(1.0, abs(score)):
                    return f"{book}: {score} != {other[book]}"
            elif abs(score - last) > TOL * max(1.0, abs(score)):
                return f"{book} (score {score}) is in one list only and not at a tie"
    return None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", required=True)
    ap.add_argument("--quire", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--books", type=int, required=True)
    ap.add_argument("--sample", type=int, default=5000)
    a = ap.parse_args()
    r = redis.Redis.from_url(a.redis)
    rng = random.Random(7)
    suffixes = [f"user:usr_{u}" for u in rng.sample(range(a.users), min(a.sample, a.users))]
    suffixes += [f"item:bk_{b}" for b in range(a.books)] + ["popular"]
    report = {"lists": 0, "identical": 0, "tie_differences": 0, "missing": [], "disagree": []}
    for start in range(0, len(suffixes), 1000):
        chunk = suffixes[start:start + 1000]
        mine = r.mget([f"quire:recs:{a.quire}:{s}" for s in chunk])
        peer = r.mget([f"quire:recs:{a.peer}:{s}" for s in chunk])
        for s, x, y in zip(chunk, mine, peer):
            if x is None or y is None:
                report["missing"].append({"key": s, "quire": x is not None, "peer": y is not None})
                continue
            xa, ya = json.loads(x)["items"], json.loads(y)["items"]
            report["lists"] += 1
            if [i["book_id"] for i in xa] == [i["book_id"] for i in ya]:
                report["identical"] += 1
            problem = agree(xa, ya)
            if problem is None:
                if [i["book_id"] for i in xa] != [i["book_id"] for i in ya]:
                    report["tie_differences"] += 1
            elif len(report["disagree"]) < 20:
                report["disagree"].append({"key": s, "problem": problem})
            else:
                report["disagree"].append({"key": s, "problem": "…"})
    report["disagree_count"] = len(report["disagree"])
    report["disagree"] = report["disagree"][:20]
    report["missing"] = report["missing"][:20]
    report["ok"] = report["disagree_count"] == 0 and not report["missing"]
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
