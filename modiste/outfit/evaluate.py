"""Scoring fill-in-the-blank and compatibility questions, with any scorer, and their metrics.

A scorer maps a batch of questions to one score per candidate; accuracy counts ties in
expectation (a tie of the answer with k others scores 1/(k+1)), so a constant scorer gets
exactly 1/C and no scorer profits from the order of the candidates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from modiste.eval.ranking import auc_score
from modiste.outfit.data import OutfitData, Questions
from modiste.outfit.model import OutfitModel

# questions -> (n, C) scores; padded candidates (-1) are ignored whatever their score
FitbScorer = Callable[[Questions], np.ndarray]


def fitb_accuracy(scores: np.ndarray, candidates: np.ndarray, answer: np.ndarray) -> float:
    """Share of questions whose answer scores highest, ties split evenly."""
    if not len(scores):
        return float("nan")
    scores = np.where(candidates >= 0, scores, -np.inf)
    if np.isnan(scores).any():
        raise ValueError("a scorer returned NaN")
    best = scores.max(axis=1, keepdims=True)
    top = scores == best
    hit = top[np.arange(len(answer)), answer]
    return float(np.mean(hit / top.sum(axis=1)))


def model_fitb_scorer(model: OutfitModel, data: OutfitData, personal: bool = True, batch: int = 256) -> FitbScorer:
    """The model as a FITB scorer (with personal=False: compatibility alone)."""
    cfg = model.config

    def score(q: Questions) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(q), batch):
                sl = slice(s, s + batch)
                context, candidates = torch.from_numpy(q.context[sl]), torch.from_numpy(q.candidates[sl])
                category = torch.from_numpy(q.category[sl])
                if personal:
                    users = q.users[sl]
                    out.append(model.fitb(context, candidates, category, torch.from_numpy(users),
                                          torch.from_numpy(data.user_history(users, q.category[sl], cfg.history_len)),
                                          torch.from_numpy(data.profile(users, cfg.profile_len))).numpy())
                else:
                    out.append(model.fitb(context, candidates, category).numpy())
        return np.concatenate(out) if out else np.zeros(q.candidates.shape)

    return score


def model_compatibility(model: OutfitModel, outfits: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.compatibility(torch.from_numpy(outfits[s:s + batch])).numpy()
                               for s in range(0, len(outfits), batch)] or [np.zeros(0)])


def compatibility_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels).astype(bool)
    return auc_score(scores[labels], scores[~labels])
