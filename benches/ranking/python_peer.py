"""The Python peer of the ranking benchmark: POST /v1/rank of ranking-api.md in FastAPI.

Run by the harness as `uvicorn python_peer:app --workers 2` (one worker per core) with
PEER_MODEL (the same model.onnx Quire serves) and PEER_SNAPSHOT (the same
feature_snapshot.json). It computes the same 28 features as quire_featspec::assemble (a line
by line port, with float32 arithmetic where the Rust code uses f32), scores all candidates in
one onnxruntime call (one single-threaded session per worker, as Quire's sessions) and answers
the same JSON.

Written as a performance-minded Python engineer would: pydantic models validate the request
(FastAPI's way), per-book facts that do not depend on the request are precomputed at start,
the handler is `async def` and runs onnxruntime directly (a worker serves one request at a
time; a thread-pool hop would only add latency), numpy builds the matrix, orjson writes the
answer.
"""

import json
import math
import os
from typing import Optional

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field, field_validator

N_FEATURES = 28
CONVERSION_PRIOR_VIEWS = np.float32(10.0)
CTR_PRIOR_IMPRESSIONS = np.float32(20.0)
NAN = float("nan")
F32 = np.float32


def tokens(text):
    """Lowercase alphanumeric words, each once, in order (quire_featspec::tokens)."""
    out = []
    word = []
    for ch in text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            w = "".join(word).lower()
            if w not in out:
                out.append(w)
            word = []
    if word:
        w = "".join(word).lower()
        if w not in out:
            out.append(w)
    return out


DEVICE = {"desktop": 0.0, "mobile": 1.0, "tablet": 2.0}
DEFAULT_INFO = {
    "title_tokens": [], "author": "", "author_tokens": [], "genre": "", "genre_tokens": [],
    "series": None, "series_index": None, "price": None, "average_rating": None,
    "ratings_count": None, "publication_year": None,
}


def opt(x):
    return NAN if x is None else float(F32(x))


class Book:
    """A book's request-independent facts and features."""

    __slots__ = ("info", "title", "author_toks", "genre_toks", "fixed", "genre", "author",
                 "series", "series_index")

    def __init__(self, info, act, genre_codes):
        if info == DEFAULT_INFO:
            info = None  # the feature job's "seen in events, not in the catalog"
        self.info = info
        act = act or {}
        v30 = act.get("views_30d", 0)
        p30 = act.get("purchases_30d", 0)
        clicks = act.get("search_clicks", 0)
        imps = act.get("search_impressions", 0)
        conversion = float(F32(p30) / (F32(v30) + CONVERSION_PRIOR_VIEWS))
        ctr = float(F32(clicks) / (F32(imps) + CTR_PRIOR_IMPRESSIONS))
        if info is None:
            self.title, self.author_toks, self.genre_toks = set(), set(), set()
            self.genre = self.author = self.series = self.series_index = None
            catalog = [NAN, NAN, NAN, NAN, NAN]
        else:
            self.title = set(info["title_tokens"])
            self.author_toks = set(info["author_tokens"])
            self.genre_toks = set(info["genre_tokens"])
            self.genre = info["genre"]
            self.author = info["author"]
            self.series = info["series"]
            self.series_index = info["series_index"]
            rc = info["ratings_count"]
            year = info["publication_year"]
            code = genre_codes.get(info["genre"])
            catalog = [
                opt(info["price"]),
                opt(info["average_rating"]),
                NAN if rc is None else float(F32(math.log1p(float(max(rc, 0))))),
                NAN if year is None else float(F32(float(year))),
                NAN if code is None else float(code),
            ]
        # Columns 8..19: catalog facts, then activity.
        self.fixed = catalog + [
            float(act.get("views_7d", 0)), float(act.get("purchases_7d", 0)),
            float(v30), float(p30), conversion, ctr, float(act.get("purchases_total", 0)),
        ]


class User:
    __slots__ = ("head", "genre_weight", "total", "author_units", "series_units",
                 "series_indexes", "bought")

    def __init__(self, u):
        orders = u["orders"]
        spend = u["spend"]
        aov = float(F32(spend / orders)) if orders > 0 else NAN
        self.head = [float(orders), float(F32(spend)), aov, float(u["product_views"])]
        self.genre_weight = {g: F32(w) for g, w in u["genre_weight"].items()}
        total = F32(0.0)
        for g in sorted(self.genre_weight):  # BTreeMap order, f32 sums as in Rust
            total = F32(total + self.genre_weight[g])
        self.total = total
        self.author_units = u["author_units"]
        self.series_units = u["series_units"]
        self.series_indexes = {s: set(v) for s, v in u["series_indexes"].items()}
        self.bought = set(u["books_bought"])


def load_tables():
    with open(os.environ["PEER_SNAPSHOT"], "rb") as f:
        snap = orjson.loads(f.read())
    genres = snap["spec"]["genres"]
    codes = {g: i for i, g in enumerate(genres)}
    books = {bid: Book(info, act, codes) for bid, (info, act) in snap["tables"]["books"].items()}
    users = {uid: User(u) for uid, u in snap["tables"]["users"].items()}
    return books, users


BOOKS, USERS = load_tables()
EMPTY_BOOK = Book(None, None, {})
_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
SESSION = ort.InferenceSession(os.environ["PEER_MODEL"], _options, providers=["CPUExecutionProvider"])


class Candidate(BaseModel):
    book_id: str
    bm25: float

    @field_validator("bm25")
    @classmethod
    def finite(cls, v):
        if not math.isfinite(float(F32(v))):
            raise ValueError("bm25 must be a finite 32-bit number")
        return v


class RankRequest(BaseModel):
    request_id: Optional[str] = None
    query: str
    user_id: Optional[str] = None
    device: Optional[str] = None
    candidates: list[Candidate] = Field(min_length=1, max_length=1000)
    top_k: Optional[int] = Field(default=None, ge=0)


def features(req):
    n = len(req.candidates)
    bm25 = [float(F32(c.bm25)) for c in req.candidates]
    order = sorted(range(n), key=lambda i: (-bm25[i], i))
    ranks = [0] * n
    for r, i in enumerate(order):
        ranks[i] = r + 1
    max_bm25 = max(bm25)
    q = tokens(req.query)
    nq = len(q)
    device = DEVICE.get(req.device, NAN)
    user = USERS.get(req.user_id) if req.user_id is not None else None
    if user is None:
        user_head = [0.0, 0.0, NAN, 0.0]
    else:
        user_head = user.head
    rows = np.empty((n, N_FEATURES), dtype=np.float32)
    for i, c in enumerate(req.candidates):
        b = BOOKS.get(c.book_id, EMPTY_BOOK)
        if nq:
            title = sum(1 for t in q if t in b.title) / nq
            author = sum(1 for t in q if t in b.author_toks) / nq
            genre = sum(1 for t in q if t in b.genre_toks) / nq
        else:
            title = author = genre = 0.0
        if user is None:
            pair = [NAN, 0.0, 0.0, 0.0, 0.0]
        else:
            if b.info is not None and user.total > 0:
                affinity = float(user.genre_weight.get(b.genre, F32(0.0)) / user.total)
            else:
                affinity = NAN
            a_units = float(user.author_units.get(b.author, 0)) if b.info is not None else 0.0
            s_units = float(user.series_units.get(b.series, 0)) if b.series is not None else 0.0
            nxt = 0.0
            if b.series is not None and b.series_index is not None:
                nxt = 1.0 if (b.series_index - 1) in user.series_indexes.get(b.series, ()) else 0.0
            pair = [affinity, a_units, s_units, nxt, 1.0 if c.book_id in user.bought else 0.0]
        rows[i] = [
            bm25[i], float(ranks[i]),
            float(F32(bm25[i]) / F32(max_bm25)) if max_bm25 > 0 else NAN,
            device, title, author, genre,
        ] + b.fixed + user_head + pair
    return rows


app = FastAPI()


@app.get("/health/ready")
async def ready():
    return {"status": "ready"}


@app.post("/v1/rank")
async def rank(req: RankRequest):
    rows = features(req)
    scores = SESSION.run(["Y"], {"X": rows})[0][:, 0]
    order = np.argsort(-scores, kind="stable")
    if req.top_k is not None:
        order = order[: req.top_k]
    ranked = [{"book_id": req.candidates[i].book_id, "score": float(scores[i])} for i in order]
    body = {
        "request_id": req.request_id or "",
        "model": {"name": "ltr", "version": 1},
        "ranked": ranked,
    }
    return Response(orjson.dumps(body), media_type="application/json")


if __name__ == "__main__":  # a quick self-check: python python_peer.py < body.json
    import sys

    r = RankRequest(**json.load(sys.stdin))
    print(features(r).tolist())
