"""Whole-outfit recommendation, the retrieval form of Generative Outfit Recommendation.

For a user and a list of categories, compose an outfit from the catalogue that maximises

    compatibility(outfit) + sum of taste(user, item)

by iterative filling: each category gets a pool of the items the user likes most in it; the
outfit starts from a greedy fill (each slot the best given the slots filled so far) and then
each slot in turn is replaced by the best item of its pool given all the others, until a full
sweep changes nothing. Every step scores whole outfits of the requested length, the shape the
compatibility model was trained on (except during the greedy start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modiste.outfit.data import OutfitData
from modiste.outfit.model import OutfitModel


@dataclass
class Composed:
    items: np.ndarray  # item rows, one per requested category
    compatibility: float
    taste: np.ndarray  # per item
    sweeps: int

    @property
    def score(self) -> float:
        return self.compatibility + float(self.taste.sum())


def taste_for(model: OutfitModel, data: OutfitData, user: int, items: np.ndarray, category: int) -> np.ndarray:
    """taste(user, item) for many items of one category (user -1: nobody in particular -> zeros)."""
    if user < 0 or not model.config.personal:
        return np.zeros(len(items))
    cfg = model.config
    users = np.array([user])
    with torch.no_grad():
        return model.taste(torch.from_numpy(users),
                           torch.from_numpy(data.user_history(users, np.array([category]), cfg.history_len)),
                           torch.from_numpy(data.profile(users, cfg.profile_len)),
                           torch.from_numpy(np.asarray(items, np.int64)[None, :]))[0].numpy()


def compose_outfit(model: OutfitModel, data: OutfitData, user: int, categories: list[int], pool: int = 64,
                   max_sweeps: int = 5, exclude: np.ndarray | None = None, fixed: dict[int, int] | None = None) -> Composed:
    """Compose an outfit for a user row (-1: anyone) over category codes.

    `exclude`: item rows never to use (e.g. what the user already has); `fixed`: slot -> item row
    kept as given (complete an outfit around items).
    """
    model.eval()
    fixed = dict(fixed or {})
    banned = np.zeros(data.n_items, bool)
    if exclude is not None:
        banned[np.asarray(exclude, np.int64)] = True
    pools, tastes = [], []
    for slot, category in enumerate(categories):
        if slot in fixed:
            items = np.array([fixed[slot]])
        else:
            items = np.flatnonzero((data.item_category == category) & ~banned)
            if not len(items):
                raise ValueError(f"no item of category {data.categories[category]!r} left to choose")
        taste = taste_for(model, data, user, items, category)
        if user < 0:  # nobody's taste: prefer items people use
            taste_rank = np.log1p(data.train_counts[items])
        else:
            taste_rank = taste
        top = np.argsort(-taste_rank, kind="stable")[:pool]
        pools.append(items[top])
        tastes.append(taste[top])

    chosen = np.full(len(categories), -1, np.int64)
    with torch.no_grad():
        for slot in range(len(categories)):  # greedy start
            chosen[slot] = pools[slot][np.argmax(_slot_scores(model, chosen[:slot + 1], slot, pools, tastes))]
        sweeps = 0
        for sweeps in range(1, max_sweeps + 1):
            changed = False
            for slot in range(len(categories)):
                best = pools[slot][np.argmax(_slot_scores(model, chosen, slot, pools, tastes))]
                changed |= bool(best != chosen[slot])
                chosen[slot] = best
            if not changed:
                break
        compat = float(model.compatibility(torch.from_numpy(chosen[None, :]))[0])
    taste = np.array([tastes[s][np.flatnonzero(pools[s] == chosen[s])[0]] for s in range(len(categories))])
    return Composed(chosen, compat, taste, sweeps)


def _slot_scores(model: OutfitModel, outfit: np.ndarray, slot: int, pools, tastes) -> np.ndarray:
    """Score of the outfit with `slot` set to each item of its pool (an item already in another
    slot is not a choice: two slots of one category get two items)."""
    trial = np.repeat(outfit[None, :], len(pools[slot]), axis=0)
    trial[:, slot] = pools[slot]
    scores = model.compatibility(torch.from_numpy(trial)).numpy() + tastes[slot]
    taken = np.isin(pools[slot], np.delete(outfit, slot))
    return np.where(taken, -np.inf, scores)
