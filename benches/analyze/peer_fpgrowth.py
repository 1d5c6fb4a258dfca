"""mlxtend's FP-growth + association rules on a basket file; prints one JSON object.

Usage: peer_fpgrowth.py TRANSACTIONS.csv MIN_SUPPORT MIN_CONFIDENCE
Rules are kept as Quire defines them: one-item consequents (mlxtend also returns larger ones).
Only items frequent on their own are one-hot encoded (FP-growth drops the others first anyway;
a dense matrix of every book would not fit in memory).
"""

import json
import sys
import time
from collections import Counter

import pandas as pd
from mlxtend.frequent_patterns import association_rules, fpgrowth

path, min_support, min_confidence = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
t0 = time.perf_counter()
tx = [line.rstrip("\n").split(",") for line in open(path) if line.strip()]
n = len(tx)
counts = Counter(i for t in tx for i in set(t))
items = sorted(i for i, c in counts.items() if c / n >= min_support)
index = {i: k for k, i in enumerate(items)}
rows = [[False] * len(items) for _ in tx]
for r, t in zip(rows, tx):
    for i in t:
        k = index.get(i)
        if k is not None:
            r[k] = True
df = pd.DataFrame(rows, columns=items, dtype=bool)
t1 = time.perf_counter()
sets = fpgrowth(df, min_support=min_support, use_colnames=True)
rules = association_rules(sets, num_itemsets=n, metric="confidence", min_threshold=min_confidence) if len(sets) else []
single = int((rules["consequents"].apply(len) == 1).sum()) if len(sets) else 0
t2 = time.perf_counter()
print(json.dumps({"encode_seconds": t1 - t0, "mining_seconds": t2 - t1, "itemsets": len(sets), "rules": single}))
