"""The baselines every outfit result is reported against, as FITB scorers and compatibility scorers.

- random: uniform scores (seeded): accuracy 1/C, AUC 0.5, up to noise.
- popularity: how often the candidate occurs in training data.
- category match: 1 if the candidate has the blank's category, else 0 (ties split evenly).
- history similarity: cosine between the candidate and the mean of the user's history in the
  blank's category, over item features (image features where there are images).
- user-based CF: the summed cosine similarity (over the sets of items in their histories) to the
  user of the other users who had the candidate, among candidates of the blank's category:
  collaborative filtering with no training.
- item-based CF: the summed cosine similarity (over the sets of users who had them) of the
  candidate to each item of the user's history (Sarwar et al. 2001).
- oracle (synthetic world only): the score with which the world's users filled the blank.
"""

from __future__ import annotations

import numpy as np

from modiste.outfit.data import OutfitData, Questions
from modiste.outfit.evaluate import FitbScorer
from modiste.outfit.neighbours import Neighbourhood


def random_scorer(seed: int = 0) -> FitbScorer:
    rng = np.random.default_rng(seed)
    return lambda q: rng.random(q.candidates.shape)


def popularity_scorer(data: OutfitData) -> FitbScorer:
    counts = data.train_counts.astype(np.float64)
    return lambda q: counts[q.candidates.clip(min=0)]


def category_scorer(data: OutfitData) -> FitbScorer:
    return lambda q: (data.item_category[q.candidates.clip(min=0)] == q.category[:, None]).astype(np.float64)


def history_scorer(data: OutfitData, features: np.ndarray, length: int = 10) -> FitbScorer:
    """Cosine of each candidate to the mean of the user's `length` latest items in the blank's category."""
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)

    def score(q: Questions) -> np.ndarray:
        history = data.user_history(q.users, q.category, length)
        mean = np.where((history >= 0)[..., None], unit[history.clip(min=0)], 0.0).sum(1)
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
        return np.einsum("ncd,nd->nc", unit[q.candidates.clip(min=0)], mean)

    return score


def user_cf_scorer(data: OutfitData) -> FitbScorer:
    """User-based collaborative filtering over the users' histories (every category)."""
    return _neighbourhood_scorer(data, lambda nb, user, q, n: nb.user_cf(user, q.candidates[n].clip(min=0)))


def item_cf_scorer(data: OutfitData) -> FitbScorer:
    """Item-based collaborative filtering: the candidate's similarity to the user's items."""
    return _neighbourhood_scorer(data, lambda nb, user, q, n: nb.item_cf(nb.items_of(user), q.candidates[n].clip(min=0)))


def _neighbourhood_scorer(data: OutfitData, one) -> FitbScorer:
    """A scorer from one of `Neighbourhood`'s scores; unknown users score 0, and since the blank's
    category is known, a candidate of another one ranks last (-1)."""
    neighbourhood = Neighbourhood(data)

    def score(q: Questions) -> np.ndarray:
        out = np.zeros(q.candidates.shape)
        for n, user in enumerate(q.users):
            if user >= 0:
                out[n] = one(neighbourhood, int(user), q, n)
        return np.where(data.item_category[q.candidates.clip(min=0)] == q.category[:, None], out, -1.0)

    return score


def oracle_scorer(oracle, personal: bool) -> FitbScorer:
    """The world's own choice rule (Oracle.fitb_scores), personalized or compatibility only."""

    def score(q: Questions) -> np.ndarray:
        out = np.full(q.candidates.shape, -np.inf)
        for n in range(len(q)):
            cand = q.candidates[n][q.candidates[n] >= 0]
            context = q.context[n][q.context[n] >= 0]
            user = int(q.users[n]) if personal and q.users[n] >= 0 else None
            out[n, :len(cand)] = oracle.fitb_scores(user, context, cand)
        return out

    return score


# ---------------------------------------------------------------------------- compatibility

def random_compatibility(outfits: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(len(outfits))


def popularity_compatibility(data: OutfitData, outfits: np.ndarray) -> np.ndarray:
    """Mean log-popularity of an outfit's items: real outfits are made of items people use."""
    logs = np.log1p(data.train_counts)[outfits.clip(min=0)]
    return np.where(outfits >= 0, logs, 0).sum(1) / np.maximum((outfits >= 0).sum(1), 1)


def oracle_compatibility(oracle, outfits: np.ndarray) -> np.ndarray:
    return np.array([oracle.compatibility(o[o >= 0]) for o in outfits])
