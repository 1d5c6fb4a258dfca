"""The `prefixspan` package's PrefixSpan on an SPMF file of one-item itemsets; prints JSON.

Usage: peer_prefixspan.py SEQUENCES.spmf MIN_COUNT MAX_ITEMS
"""

import json
import sys
import time

from prefixspan import PrefixSpan

path, min_count, max_items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = []
for line in open(path):
    if line.startswith("@") or not line.strip():
        continue
    db.append([int(t) for t in line.split() if t not in ("-1", "-2")])
t0 = time.perf_counter()
ps = PrefixSpan(db)
ps.maxlen = max_items
patterns = ps.frequent(min_count)
t1 = time.perf_counter()
print(json.dumps({"mining_seconds": t1 - t0, "patterns": len(patterns)}))
