"""Counted collaborative signals for fill-in-the-blank, and their blend with the outfit model.

Where items are bare ids seen once or twice (real Polyvore-U: 107,000 items in 167,000 history
entries), who had an item says more than any embedding a model can learn for it. These are the
classic neighbourhood scores over the users' history sets (training interactions and a release's
own histories, `OutfitData.history`), one column each of `Neighbourhood.question_features`:

- item_cf: the sum over the user's items h of cos(h, c), where an item is the set of users who
  had it (item-based CF, Sarwar et al. 2001);
- context_cf: the same sum over the outfit's other items: people who had these also had c;
- user_cf: the sum over the other users v who had c of cos(u, v), where a user is the set of
  items they had (user-based CF);
- popularity: the number of users who had c.

`Blend` adds them, as log(1 + x), to the outfit model's personalized score, with weights fit on
the validation questions as a conditional logit (a softmax over each question's candidates), so
that each dataset gets the mix it needs: on the synthetic world the model carries the choice, on
Polyvore-U the counts do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from modiste.io import write_json
from modiste.outfit.data import OutfitData, Questions

FEATURES = ("item_cf", "context_cf", "user_cf", "popularity")


class Neighbourhood:
    """The users' history sets as a sparse users x items matrix, and the scores counted over it."""

    def __init__(self, data: OutfitData):
        indptr, items = data.history
        n_cat = len(data.categories)
        owners = np.repeat(np.arange(data.n_users), np.diff(indptr[::n_cat]))
        had = sp.csr_matrix((np.ones(len(items)), (owners, items)), shape=(data.n_users, data.n_items))
        had.data[:] = 1.0  # a set: each (user, item) once
        self.by_user, self.by_item = had, had.tocsc()
        self.item_count = np.asarray(had.sum(0)).ravel()
        self.user_size = np.asarray(had.sum(1)).ravel()

    def items_of(self, user: int) -> np.ndarray:
        return self.by_user.indices[self.by_user.indptr[user]:self.by_user.indptr[user + 1]]

    def item_cf(self, items: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Sum over `items` of the cosine of each to each candidate (an item to itself: 0)."""
        if not len(items):
            return np.zeros(len(candidates))
        shared = (self.by_item[:, items].T @ self.by_item[:, candidates]).toarray()
        shared[items[:, None] == candidates[None, :]] = 0.0
        norm = np.sqrt(np.outer(self.item_count[items], self.item_count[candidates]))
        return (shared / np.maximum(norm, 1.0)).sum(0)

    def similar_users(self, user: int) -> np.ndarray:
        """cos(user, v) for every user v over their history sets (0 for the user)."""
        shared = np.asarray((self.by_user @ self.by_user[user].T).todense()).ravel()
        shared[user] = 0.0
        return shared / np.sqrt(np.maximum(self.user_size[user] * self.user_size, 1.0))

    def user_cf(self, user: int, candidates: np.ndarray, similar: np.ndarray | None = None) -> np.ndarray:
        return self.by_item[:, candidates].T @ (self.similar_users(user) if similar is None else similar)

    def question_features(self, q: Questions) -> np.ndarray:
        """(N, C, len(FEATURES)) raw scores of each candidate of each question (padded ones: 0);
        an unknown user (-1) scores 0 on the personal ones."""
        out = np.zeros(q.candidates.shape + (len(FEATURES),))
        candidates = q.candidates.clip(min=0)
        out[..., FEATURES.index("popularity")] = self.item_count[candidates]
        for n in range(len(q)):
            context = q.context[n]
            out[n, :, FEATURES.index("context_cf")] = self.item_cf(context[context >= 0], candidates[n])
        for user in np.unique(q.users[q.users >= 0]):  # the user's neighbours once for all their questions
            mine, similar = self.items_of(user), self.similar_users(user)
            for n in np.flatnonzero(q.users == user):
                out[n, :, FEATURES.index("item_cf")] = self.item_cf(mine, candidates[n])
                out[n, :, FEATURES.index("user_cf")] = self.user_cf(user, candidates[n], similar)
        return np.where((q.candidates >= 0)[..., None], out, 0.0)


@dataclass
class Blend:
    """score = w_model * (the model's personalized score) + sum_f w_f * log(1 + feature f)."""

    weights: dict[str, float]

    FILE = "blend.json"

    @staticmethod
    def inputs(model_scores: np.ndarray, features: np.ndarray) -> np.ndarray:
        """(N, C, 1 + len(FEATURES)): the model's score, then log(1 + each count)."""
        return np.concatenate([model_scores[..., None], np.log1p(features)], axis=-1)

    def score(self, model_scores: np.ndarray, features: np.ndarray) -> np.ndarray:
        w = np.array([self.weights["model"]] + [self.weights[f] for f in FEATURES])
        return self.inputs(model_scores, features) @ w

    @classmethod
    def fit(cls, model_scores: np.ndarray, features: np.ndarray, answer: np.ndarray, valid: np.ndarray,
            l2: float = 1e-3) -> Blend:
        """Maximum likelihood of the answers under a softmax over each question's candidates
        (`valid`: the candidates that take part), with a little L2 on the weights."""
        x = torch.from_numpy(cls.inputs(np.where(valid, model_scores, 0.0), features))
        mask = torch.from_numpy(valid)
        target = torch.from_numpy(answer)
        w = torch.zeros(x.shape[-1], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            logits = (x @ w).masked_fill(~mask, -torch.inf)
            loss = torch.nn.functional.cross_entropy(logits, target) + l2 * w.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        values = w.detach().numpy()
        return cls({name: round(float(v), 6) for name, v in zip(("model",) + FEATURES, values)})

    def save(self, run_dir: str | Path) -> None:
        write_json(Path(run_dir) / self.FILE, {"weights": self.weights})

    @classmethod
    def load(cls, run_dir: str | Path) -> Blend | None:
        """The run's blend, or None for a run trained before blends existed."""
        path = Path(run_dir) / cls.FILE
        if not path.exists():
            return None
        weights = json.loads(path.read_text())["weights"]
        missing = {"model", *FEATURES} - set(weights)
        if missing:
            raise ValueError(f"{path}: no weight for {', '.join(sorted(missing))}")
        return cls({k: float(weights[k]) for k in ("model", *FEATURES)})
