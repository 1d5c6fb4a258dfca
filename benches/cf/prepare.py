"""Prepares the time-split user x item matrices of the CF benchmark (benches/README.md, "CF").

Reads the UCI Online Retail invoice lines (data/online-retail-uci/) and writes, into OUT:
  train.tsv, test.tsv  `user<TAB>item<TAB>value` with 0-based dense indices, sorted
  users.txt, items.txt the CustomerID / StockCode of each index, one per line
  split.json           the rules and the counts below
Standard library only, so both sides of the benchmark read exactly the same files.

Rules (also written to split.json):
- a line counts as a purchase when CustomerID is present, InvoiceNo does not start with "C"
  (cancellation), Quantity > 0 and StockCode starts with five digits (products; this drops
  POST, D, M, DOT, BANK CHARGES, AMAZONFEE, gift vouchers and other non-product codes);
  StockCode is upper-cased (the data has e.g. both 85049a and 85049A);
- split by time: lines dated before CUTOFF are training, lines on or after it are test;
- users and items are those with at least one training purchase, indexed in sorted order;
- train value = number of distinct invoices in which the user bought the item before CUTOFF;
- test = the (user, item) pairs bought on or after CUTOFF by a training user, of a training
  item, that the user had NOT bought before CUTOFF (value 1): the new purchases to predict.
"""

import argparse
import csv
import gzip
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

CUTOFF = "2011-11-09 00:00:00"
PRODUCT = re.compile(r"^[0-9]{5}")


def prepare(data: Path, out: Path, cutoff: str = CUTOFF) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    train_invoices = defaultdict(set)  # (customer, stock) -> invoices before the cutoff
    test_pairs = set()
    lines = kept = 0
    first = last = None
    with gzip.open(data, "rt", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            lines += 1
            customer = row["CustomerID"].strip()
            invoice = row["InvoiceNo"].strip()
            stock = row["StockCode"].strip().upper()
            if not customer or invoice.startswith("C") or not PRODUCT.match(stock):
                continue
            if int(row["Quantity"]) <= 0:
                continue
            kept += 1
            when = row["InvoiceDate"]
            first = when if first is None or when < first else first
            last = when if last is None or when > last else last
            customer = str(int(float(customer)))
            if when < cutoff:
                train_invoices[(customer, stock)].add(invoice)
            else:
                test_pairs.add((customer, stock))

    users = sorted({c for c, _ in train_invoices}, key=int)
    items = sorted({s for _, s in train_invoices})
    user_index = {c: i for i, c in enumerate(users)}
    item_index = {s: i for i, s in enumerate(items)}
    train = sorted(
        (user_index[c], item_index[s], len(inv)) for (c, s), inv in train_invoices.items()
    )
    test = sorted(
        (user_index[c], item_index[s], 1)
        for c, s in test_pairs
        if c in user_index and s in item_index and (c, s) not in train_invoices
    )
    for name, cells in (("train.tsv", train), ("test.tsv", test)):
        with open(out / name, "w") as f:
            f.writelines(f"{u}\t{i}\t{v}\n" for u, i, v in cells)
    (out / "users.txt").write_text("".join(f"{c}\n" for c in users))
    (out / "items.txt").write_text("".join(f"{s}\n" for s in items))
    summary = {
        "source": str(data),
        "cutoff": cutoff,
        "lines_read": lines,
        "purchase_lines": kept,
        "first_purchase": first,
        "last_purchase": last,
        "users": len(users),
        "items": len(items),
        "train_cells": len(train),
        "train_purchases": sum(v for _, _, v in train),
        "test_cells": len(test),
        "test_users": len({u for u, _, _ in test}),
        "test_pairs_all": len(test_pairs),
        "rules": __doc__.split("Rules (also written to split.json):")[1].strip(),
    }
    (out / "split.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="online_retail_by_day_concat.csv.gz")
    p.add_argument("--out", type=Path, required=True, help="directory for the split")
    p.add_argument("--cutoff", default=CUTOFF, help=f"first test timestamp (default {CUTOFF})")
    args = p.parse_args()
    summary = prepare(args.data, args.out, args.cutoff)
    print(json.dumps({k: v for k, v in summary.items() if k != "rules"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
