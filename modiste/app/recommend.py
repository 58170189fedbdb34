"""Recommendations from a trained ranking run, reshaped by a shopper's feedback without retraining.

Every ranking model of `modiste.rec` scores by an inner product once its biases are folded in
(`factor_form`), so the top-k is a maximum-inner-product search over fixed item vectors
(`modiste.app.index`). Feedback moves only the shopper's own vector: `refit` finds the vector that
best explains their likes, buys and dislikes against the fixed item vectors (BPR's log-likelihood
over pairs) while staying near the vector training gave them (a Gaussian prior), by Newton's method:

    maximise  sum_pairs w * ln sigma(u . (x_better - x_worse))  -  prior / 2 * |u - u_trained|^2

The pairs: each liked or bought item above a sample of items the shopper never touched, and each
item of their history (and each like) above each disliked item. With no feedback the vector is the
trained one, unchanged. The objective is concave, so a few Newton steps converge; the same events
always give the same vector (the negatives' sampling is seeded by the user).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modiste.app.index import IndexSpec, ItemIndex
from modiste.data import Dataset
from modiste.rec.base import Recommender, load_model
from modiste.rec.data import Interactions
from modiste.rec.evaluate import run_dataset, run_spec
from modiste.rec.train import BEST

POSITIVE, NEGATIVE = ("like", "buy"), ("dislike",)
SHORTLIST = 200  # a shopper's best items kept in memory (rows + scores: 1.6 kB)


@dataclass(frozen=True)
class Shortlist:
    """A user's best items, best first; complete: it holds every item they could be offered."""

    rows: np.ndarray
    scores: np.ndarray
    complete: bool


@dataclass(frozen=True)
class RefitConfig:
    """prior: how firmly the vector stays at the trained one (precision of the prior); negatives:
    items sampled as the ones a like must beat; weights: the total weight of one event of each kind;
    steps: Newton steps (at most)."""

    prior: float = 0.5
    negatives: int = 256
    like: float = 1.0
    buy: float = 2.0
    dislike: float = 1.0
    steps: int = 12

    def weight(self, kind: str) -> float:
        return {"like": self.like, "buy": self.buy, "dislike": self.dislike}[kind]


def factor_form(model: Recommender) -> tuple[np.ndarray, np.ndarray]:
    """(user vectors, item vectors), float32, with model.score(u)[i] == users[u] @ items[i].

    The last user column is the constant 1 that meets the item's bias; the refit leaves it alone."""
    def t(x) -> np.ndarray:
        return x.detach().float().numpy()

    ones = np.ones((model.n_users, 1), np.float32)
    with torch.no_grad():
        if model.name == "bpr":
            users, items = [t(model.user_factors)], [t(model.item_factors)]
            bias = t(model.item_bias)
        elif model.name == "vbpr":
            users = [t(model.user_factors), t(model.user_visual)]
            items = [t(model.item_factors), t(model.features @ model.embedding)]
            bias = t(model.item_bias + model.features @ model.visual_bias)
        elif model.name == "dvbpr":
            users, items, bias = [t(model.user_vectors)], [t(model.item_embeddings)], t(model.item_bias)
        elif model.name == "pop":
            users, items, bias = [], [], t(model.counts).reshape(-1)
        else:
            raise ValueError(f"the app cannot serve a {model.name!r} run: use bpr, vbpr, dvbpr or pop")
    return (np.hstack(users + [ones]).astype(np.float32),
            np.hstack(items + [bias[:, None]]).astype(np.float32))


def refit(items: np.ndarray, trained: np.ndarray, better: np.ndarray, worse: np.ndarray, weights: np.ndarray,
          prior: float, steps: int) -> np.ndarray:
    """The MAP user vector (last coordinate fixed at 1) for pairs better[p] > worse[p] of item rows."""
    diff = items[better] - items[worse]
    d, offset = diff[:, :-1].astype(np.float64), diff[:, -1].astype(np.float64)
    u0 = trained[:-1].astype(np.float64)
    u = u0.copy()
    eye = np.eye(len(u))
    for _ in range(steps):
        x = d @ u + offset
        p = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigma(x), without overflow
        grad = d.T @ (weights * (1.0 - p)) - prior * (u - u0)
        hess = (d * (weights * p * (1.0 - p))[:, None]).T @ d + prior * eye  # minus the Hessian
        step = np.linalg.solve(hess, grad)
        u += step
        if np.abs(step).max() < 1e-6:
            break
    return np.append(u, 1.0).astype(np.float32)


class FactorRecommender:
    """A ranking run served through a faiss index: per-user vectors, exclusions, refits."""

    def __init__(self, run: str | Path, ds: Dataset, spec: IndexSpec = IndexSpec(),
                 config: RefitConfig = RefitConfig()):
        run = Path(run)
        if "model" not in run_spec(run):
            raise ValueError(f"{run} is not a ranking run (train one with `modiste train rec`)")
        run_dataset(run, ds.path)  # the run must be of this dataset (a ValueError naming both)
        model = load_model(run / BEST)
        self.name, self.config = model.name, config
        self.users, self.items = factor_form(model)
        self.index = ItemIndex(self.items, spec)
        weights = run / BEST / "model.safetensors"
        settings = hashlib.sha256(repr(config).encode()).hexdigest()[:16]
        self.fingerprint = f"{model.name}:{weights.stat().st_mtime_ns}:{settings}"  # what a cached refit depends on
        data = Interactions.from_dataset(ds)
        self.user_index = ds.users.index
        self.seen_ptr, self.seen = data.seen()  # every item of a user, any split: never recommended
        self.train_ptr, self.train = data.train()  # their history: what a disliked item must rank below

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_row(self, user_id: str) -> int:
        return int(self.user_index.get_loc(user_id))

    def seen_rows(self, user: int) -> np.ndarray:
        return self.seen[self.seen_ptr[user]:self.seen_ptr[user + 1]]

    def vector(self, user: int, opinions: dict[int, str]) -> np.ndarray:
        """The user's vector given their opinions (item row -> like | buy | dislike)."""
        trained = self.users[user]
        if not opinions or len(trained) == 1:  # nothing to fit, or nothing to fit it with (PopRank)
            return trained
        cfg = self.config
        liked = np.array([r for r, kind in opinions.items() if kind in POSITIVE], np.int64)
        disliked = np.array([r for r, kind in opinions.items() if kind in NEGATIVE], np.int64)
        history = np.setdiff1d(self.train[self.train_ptr[user]:self.train_ptr[user + 1]], disliked)
        better, worse, weights = [], [], []
        if len(liked):
            negatives = self._negatives(user, np.union1d(self.seen_rows(user), list(opinions)))
            for row in liked:
                better.append(np.full(len(negatives), row))
                worse.append(negatives)
                weights.append(np.full(len(negatives), cfg.weight(opinions[int(row)]) / max(len(negatives), 1)))
        above = np.union1d(history, liked)
        for row in disliked:
            if len(above):
                better.append(above)
                worse.append(np.full(len(above), row))
                weights.append(np.full(len(above), cfg.dislike / len(above)))
        if not better:
            return trained
        return refit(self.items, trained, np.concatenate(better), np.concatenate(worse), np.concatenate(weights),
                     cfg.prior, cfg.steps)

    def shortlist(self, user_id: str, vector: np.ndarray, left_out: Iterable[int] = ()) -> Shortlist:
        """The `SHORTLIST` best items for `vector` over the whole catalogue, leaving out the user's own
        and `left_out` (rows): computed once per taste, then filtered per request (`recommend`)."""
        allowed = np.ones(self.n_items, bool)
        allowed[self.seen_rows(self.user_row(user_id))] = False
        allowed[list(left_out)] = False
        rows, scores = self.index.top_k(vector, SHORTLIST, allowed)
        return Shortlist(rows.astype(np.int32), scores, complete=len(rows) < SHORTLIST)

    def recommend(self, user_id: str, vector: np.ndarray, k: int, allowed: np.ndarray,
                  shortlist: Shortlist | None = None):
        """(item rows, scores) of the k best `allowed` items (a mask) for `vector`, leaving out the user's own.

        With the user's shortlist, exact without a search whenever k of it are allowed: every allowed
        item off the list scores below all of the list."""
        if shortlist is not None:
            keep = allowed[shortlist.rows]
            if shortlist.complete or keep.sum() >= k:
                return shortlist.rows[keep][:k].astype(np.int64), shortlist.scores[keep][:k]
        allowed = allowed.copy()
        allowed[self.seen_rows(self.user_row(user_id))] = False
        return self.index.top_k(vector, k, allowed)

    def _negatives(self, user: int, taken: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([user, 0x5EED])
        pool = np.setdiff1d(np.arange(self.n_items), taken)
        return rng.choice(pool, size=min(self.config.negatives, len(pool)), replace=False)
