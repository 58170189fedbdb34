"""The evaluation sets of the outfit tasks, reproducible to the byte.

- `questions_for(ds, split, kind)`: fill-in-the-blank questions. A dataset's own questions are
  used as they are (DiFashion's 'release' sets, the world's 'random' and 'hard' sets). Where a
  dataset has no 'hard' set, modiste builds one from the same blanks: 4 negatives of the blank's
  category drawn uniformly from the items of the other outfits of the same split (topped up
  from the whole category where those are too few; never an item of the outfit). Negatives
  from that population are as new, as popular and as personal as true answers are: on real
  Polyvore-U, negatives drawn from the whole catalogue are items seen in training far more
  often than answers, so "prefer the unseen candidate" alone would score 0.45 there.
  Where a dataset has no questions at all, the blanks themselves are drawn from its held-out
  outfits.
- `compatibility_for(ds, split)`: real outfits (label 1) against the same outfits with one item
  swapped for a random item of its category (label 0), unless the dataset ships its own.

Every random draw comes from a generator seeded by SEED and the question's (or outfit's) id, so
a set does not depend on the order of the files or on which other questions exist.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from modiste.data import Dataset

SEED = 20240714  # part of the definition of the sets: changing it changes every published figure
N_NEGATIVES = 4


def _rng(key: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(purpose.encode()), zlib.crc32(key.encode())])


def questions_for(ds: Dataset, split: str, kind: str) -> pd.DataFrame:
    """FITB questions (the columns of fitb.parquet) of one split and kind, own or built."""
    own = ds.fitb
    if own is not None and kind in set(own["kind"]):
        return own[(own["kind"] == kind) & (own["split"] == split)].reset_index(drop=True)
    if kind == "hard":
        return hard_questions(ds, _base_questions(ds, split))
    if kind == "random" and (own is None or own.empty):
        return _random_questions(ds, split)
    raise ValueError(f"dataset '{ds.name}' has no FITB questions of kind {kind!r}")


def _base_questions(ds: Dataset, split: str) -> pd.DataFrame:
    """The blanks to build a hard set on: the dataset's own questions (one kind), else drawn ones."""
    own = ds.fitb
    if own is None or own.empty:
        return _random_questions(ds, split)
    kind = "release" if "release" in set(own["kind"]) else sorted(set(own["kind"]) - {"hard"})[0]
    return own[(own["kind"] == kind) & (own["split"] == split)].reset_index(drop=True)


def hard_questions(ds: Dataset, base: pd.DataFrame) -> pd.DataFrame:
    """The same blanks, answers and users as `base`, with negatives of the blank's category.

    A blank whose category has no other item is dropped (there is nothing to choose).
    """
    categories = ds.items["category"]
    catalogue = {c: ids.to_numpy() for c, ids in categories.groupby(categories).groups.items()}
    outfits = ds.outfits.set_index("outfit_id")["item_ids"]
    in_split = {}
    for split in base["split"].unique():
        items = np.unique(np.concatenate(ds.outfits.loc[ds.outfits["split"] == split, "item_ids"].to_numpy()))
        of = categories[items].to_numpy()
        in_split[split] = {c: items[of == c] for c in np.unique(of)}
    rows = []
    for q in base.itertuples(index=False):
        category = categories[q.answer]
        taken = set(outfits[q.outfit_id]) | {q.answer}
        rng = _rng(q.question_id, "hard")
        negatives = _draw_distinct(in_split[q.split].get(category, np.array([], object)), taken, N_NEGATIVES, rng)
        if len(negatives) < N_NEGATIVES:
            negatives += _draw_distinct(catalogue[category], taken | set(negatives), N_NEGATIVES - len(negatives), rng)
        if not negatives:
            continue
        candidates = [q.answer] + negatives
        rows.append({"question_id": f"{q.question_id}-hard", "outfit_id": q.outfit_id, "user_id": q.user_id,
                     "blank_index": q.blank_index, "candidates": [candidates[k] for k in rng.permutation(len(candidates))],
                     "answer": q.answer, "kind": "hard", "split": q.split})
    return pd.DataFrame(rows, columns=base.columns)


def _random_questions(ds: Dataset, split: str) -> pd.DataFrame:
    """A blank per held-out outfit and 4 negatives from the whole catalogue (DiFashion's way)."""
    items = ds.items.index.to_numpy()
    outfits = ds.outfits[ds.outfits["split"] == split]
    rows = []
    for o in outfits.itertuples(index=False):
        rng = _rng(o.outfit_id, "blank")
        blank = int(rng.integers(len(o.item_ids)))
        answer = o.item_ids[blank]
        negatives = _draw_distinct(items, set(o.item_ids), N_NEGATIVES, rng)
        candidates = [answer] + negatives
        rows.append({"question_id": f"{o.outfit_id}-fitb", "outfit_id": o.outfit_id, "user_id": o.user_id,
                     "blank_index": blank, "candidates": [candidates[k] for k in rng.permutation(len(candidates))],
                     "answer": answer, "kind": "random", "split": split})
    return pd.DataFrame(rows, columns=["question_id", "outfit_id", "user_id", "blank_index", "candidates",
                                       "answer", "kind", "split"])


def _draw_distinct(pool: np.ndarray, taken: set, n: int, rng: np.random.Generator) -> list:
    """n distinct members of pool outside `taken` (fewer when the pool runs out)."""
    if len(pool) <= n + len(taken):  # a small pool: choose among what is left
        left = [p for p in pool if p not in taken]
        return [left[k] for k in rng.permutation(len(left))[:n]]
    picked: list = []
    while len(picked) < n:
        pick = pool[rng.integers(len(pool))]
        if pick not in taken and pick not in picked:
            picked.append(pick)
    return picked


def compatibility_for(ds: Dataset, split: str) -> pd.DataFrame:
    """Compatibility questions (question_id, item_ids, label): the dataset's own, else built."""
    own = ds.compatibility
    if own is not None and split in set(own["split"]):
        return own[own["split"] == split].reset_index(drop=True)
    categories = ds.items["category"]
    pools = {c: ids.to_numpy() for c, ids in categories.groupby(categories).groups.items()}
    rows = []
    for o in ds.outfits[ds.outfits["split"] == split].itertuples(index=False):
        rng = _rng(o.outfit_id, "compatibility")
        k = int(rng.integers(len(o.item_ids)))
        swap = _draw_distinct(pools[categories[o.item_ids[k]]], set(o.item_ids), 1, rng)
        if not swap:
            continue
        fake = list(o.item_ids)
        fake[k] = swap[0]
        rows.append({"question_id": f"{o.outfit_id}-real", "item_ids": list(o.item_ids), "label": 1, "split": split})
        rows.append({"question_id": f"{o.outfit_id}-swapped", "item_ids": fake, "label": 0, "split": split})
    return pd.DataFrame(rows, columns=["question_id", "item_ids", "label", "split"])
