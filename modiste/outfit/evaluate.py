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
from modiste.outfit.model import CATEGORY_MISMATCH, OutfitModel
from modiste.outfit.neighbours import Blend, Neighbourhood

# questions -> (n, C) scores; padded candidates (-1) are ignored whatever their score
FitbScorer = Callable[[Questions], np.ndarray]


def fitb_accuracy(scores: np.ndarray, candidates: np.ndarray, answer: np.ndarray) -> float:
    """Share of questions whose answer scores highest, ties split evenly."""
    return float(np.mean(fitb_hits(scores, candidates, answer))) if len(scores) else float("nan")


def fitb_hits(scores: np.ndarray, candidates: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Per question: 1 if the answer alone scores highest, 1/k if it ties with k-1 others, else 0."""
    scores = np.where(candidates >= 0, scores, -np.inf)
    if np.isnan(scores).any():
        raise ValueError("a scorer returned NaN")
    top = scores == scores.max(axis=1, keepdims=True)
    return top[np.arange(len(answer)), answer] / top.sum(axis=1)


def paired_margin(hits: np.ndarray, reference: np.ndarray, draws: int = 2000, seed: int = 0) -> dict:
    """Mean of hits - reference over the same questions, with a 95% bootstrap interval."""
    diff = np.asarray(hits, np.float64) - np.asarray(reference, np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(len(diff), size=(draws, len(diff)))].mean(axis=1)
    return {"margin": round(float(diff.mean()), 4),
            "ci95": [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]}


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


def blended_fitb_scorer(model: OutfitModel, data: OutfitData, blend: Blend, neighbourhood: Neighbourhood) -> FitbScorer:
    """The model's personalized score blended with the counted neighbourhood scores
    (`modiste.outfit.neighbours`); candidates of another category than the blank's rank last."""
    personal = model_fitb_scorer(model, data, personal=True)

    def score(q: Questions) -> np.ndarray:
        considered = in_blank_category(data, q)
        blended = blend.score(np.where(considered, personal(q), 0.0), neighbourhood.question_features(q))
        return np.where(considered, blended, np.where(q.candidates >= 0, -CATEGORY_MISMATCH, -np.inf))

    return score


def in_blank_category(data: OutfitData, q: Questions) -> np.ndarray:
    """(N, C) whether each candidate is a real item of the blank's category."""
    return (q.candidates >= 0) & (data.item_category[q.candidates.clip(min=0)] == q.category[:, None])


def model_compatibility(model: OutfitModel, outfits: np.ndarray, batch: int = 1024) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.compatibility(torch.from_numpy(outfits[s:s + batch])).numpy()
                               for s in range(0, len(outfits), batch)] or [np.zeros(0)])


def compatibility_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels).astype(bool)
    return auc_score(scores[labels], scores[~labels])
