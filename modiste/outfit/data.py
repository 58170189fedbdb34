"""A dataset's outfits, items, user histories and fill-in-the-blank questions as integer arrays.

Everything is indexed by rows: item rows of items.parquet (and images.npy), user rows of
users.parquet, category codes in the order of `OutfitData.categories`. -1 pads ragged lists.

A user's history is what a personalized model may look at: their training interactions, and a
release's own per-category histories (DiFashion's) where the dataset has them, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import pandas as pd

from modiste.data import Dataset
from modiste.outfit.candidates import questions_for

PAD = -1


@dataclass
class Outfits:
    """Outfits of one split: item rows (n, L) padded with -1, and the owner's user row (-1: none)."""

    items: np.ndarray
    users: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Questions:
    """Fill-in-the-blank questions of one kind and split.

    context: (n, L-1) the outfit without its blank; candidates: (n, C) item rows, -1 padded;
    answer: (n,) the position of the true item among the candidates; category: (n,) the blank's
    category code; users: (n,) user rows (-1: unknown).
    """

    ids: np.ndarray
    users: np.ndarray
    context: np.ndarray
    candidates: np.ndarray
    answer: np.ndarray
    category: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> Questions:
        return Questions(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


class OutfitData:
    def __init__(self, ds: Dataset):
        self.ds = ds
        items = ds.items
        self.n_items = len(items)
        self.n_users = len(ds.users)
        self.categories: list[str] = sorted(items["category"].unique().tolist())
        self.item_category = pd.Index(self.categories).get_indexer(items["category"]).astype(np.int64)
        self.user_index = ds.users.index

    # ------------------------------------------------------------------ items

    @cached_property
    def _attribute_values(self) -> dict[str, pd.Index]:
        items = self.ds.items
        return {a: pd.Index(sorted(items[a].dropna().unique().tolist())) for a in self.ds.attributes}

    @cached_property
    def attributes(self) -> tuple[np.ndarray, list[int]]:
        """(codes (n_items, n_attributes) with 0 for a missing value, vocabulary size per attribute)."""
        items = self.ds.items
        return self.attribute_codes({a: items[a].to_numpy(dtype=object) for a in self.ds.attributes}), \
            [len(v) + 1 for v in self._attribute_values.values()]

    def attribute_codes(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Codes (n, n_attributes) of attribute values given per attribute (as strings, e.g. what a
        classifier reads off a generated picture); a missing or unseen value is 0."""
        n = len(next(iter(values.values()))) if values else 0
        codes = [self._attribute_values[a].get_indexer(pd.Series(values.get(a, [None] * n), dtype=object).fillna("\0")) + 1
                 for a in self.ds.attributes]  # unknown (-1) becomes 0
        if not codes:
            return np.zeros((n, 0), np.int64)
        return np.stack(codes, axis=1).astype(np.int64)

    @cached_property
    def train_counts(self) -> np.ndarray:
        """How often each item occurs in training data: interactions, outfits and histories."""
        counts = np.zeros(self.n_items, np.int64)
        inter = self.ds.interactions
        train = inter[inter["split"] == "train"]
        np.add.at(counts, self.ds.item_rows(train["item_id"].to_numpy()), 1)
        outfits = self.outfits("train").items
        np.add.at(counts, outfits[outfits >= 0], 1)
        hist = self._history_table()
        if hist is not None and len(hist):
            np.add.at(counts, self.ds.item_rows(np.concatenate(hist["item_ids"].to_numpy())), 1)
        return counts

    # ------------------------------------------------------------------ outfits

    def outfits(self, split: str) -> Outfits:
        if split not in self._outfits:
            df = self.ds.outfits[self.ds.outfits["split"] == split]
            self._outfits[split] = Outfits(self._pad_rows(df["item_ids"]), self._user_rows(df["user_id"]),
                                           df["outfit_id"].to_numpy())
        return self._outfits[split]

    @cached_property
    def _outfits(self) -> dict[str, Outfits]:
        return {}

    def _pad_rows(self, lists: pd.Series) -> np.ndarray:
        lengths = lists.map(len).to_numpy()
        out = np.full((len(lists), int(lengths.max(initial=1))), PAD, np.int64)
        if len(lists):
            flat = self.ds.item_rows(np.concatenate(lists.to_numpy()))
            out[np.repeat(np.arange(len(lists)), lengths), _positions(lengths)] = flat
        return out

    def _user_rows(self, user_ids: pd.Series) -> np.ndarray:
        return self.user_index.get_indexer(user_ids.fillna("\0")).astype(np.int64)

    # ------------------------------------------------------------------ histories

    def _history_table(self) -> pd.DataFrame | None:
        hist = self.ds.histories
        return None if hist is None else hist[hist["split"] == "train"]

    @cached_property
    def history(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR over (user, category) keys, key = user * n_categories + category: (indptr, item rows),
        each list oldest first, without repeats."""
        inter = self.ds.interactions
        train = inter[inter["split"] == "train"].sort_values("timestamp", kind="stable")
        users = [self.user_index.get_indexer(train["user_id"])]
        items = [self.ds.item_rows(train["item_id"].to_numpy())]
        hist = self._history_table()
        if hist is not None and len(hist):
            lengths = hist["item_ids"].map(len).to_numpy()
            users.insert(0, np.repeat(self.user_index.get_indexer(hist["user_id"]), lengths))
            items.insert(0, self.ds.item_rows(np.concatenate(hist["item_ids"].to_numpy())))
        users, items = np.concatenate(users).astype(np.int64), np.concatenate(items).astype(np.int64)
        n_cat = len(self.categories)
        keys = users * n_cat + self.item_category[items]
        # Keep each (user, item) once, at its latest position, then order by key, oldest first.
        order = np.arange(len(items))
        pair = users * self.n_items + items
        _, last = np.unique(pair[::-1], return_index=True)
        keep = np.sort(len(items) - 1 - last)
        keys, items, order = keys[keep], items[keep], order[keep]
        by_key = np.lexsort((order, keys))
        indptr = np.zeros(self.n_users * n_cat + 1, np.int64)
        np.cumsum(np.bincount(keys, minlength=self.n_users * n_cat), out=indptr[1:])
        return indptr, items[by_key]

    def user_history(self, users: np.ndarray, categories: np.ndarray, length: int) -> np.ndarray:
        """(n, length) the latest `length` history items of each user in each category, -1 padded.
        Unknown users (-1) get an empty history."""
        indptr, items = self.history
        users, categories = np.asarray(users), np.asarray(categories)
        if not len(items):  # nobody has a history (e.g. Polyvore Outfits has no users)
            return np.full((len(users), length), PAD, np.int64)
        keys = np.where(users >= 0, users * len(self.categories) + categories, 0)
        start, end = indptr[keys], indptr[keys + 1]
        idx = end[:, None] - length + np.arange(length)
        valid = (idx >= start[:, None]) & (users[:, None] >= 0)
        return np.where(valid, items[np.clip(idx, 0, max(len(items) - 1, 0))], PAD)

    def profile(self, users: np.ndarray, length: int) -> np.ndarray:
        """(n, length) a user's history over every category: the latest items of each, interleaved."""
        per = max(1, -(-length // len(self.categories)))
        n_cat = len(self.categories)
        users = np.asarray(users)
        lists = self.user_history(np.repeat(users, n_cat), np.tile(np.arange(n_cat), len(users)), per)
        lists = lists.reshape(len(users), n_cat * per)
        # Move the padding to the end, keep the first `length` items.
        order = np.argsort(lists < 0, axis=1, kind="stable")
        return np.take_along_axis(lists, order, axis=1)[:, :length]

    # ------------------------------------------------------------------ questions

    def questions(self, split: str, kind: str) -> Questions:
        """FITB questions of one kind ('hard', or the dataset's own: 'random' / 'release')."""
        df = questions_for(self.ds, split, kind)
        outfits = self.ds.outfits.set_index("outfit_id")["item_ids"]
        if df.empty:
            return Questions(*(np.zeros((0,) + shape, np.int64) for shape in ((), (), (1,), (1,), (), ())))
        rows = self._pad_rows(outfits.loc[df["outfit_id"]].reset_index(drop=True))
        blank = df["blank_index"].to_numpy(dtype=np.int64)
        keep = np.ones_like(rows, bool)
        keep[np.arange(len(rows)), blank] = False
        context = rows[keep].reshape(len(rows), rows.shape[1] - 1) if len(rows) else rows[:, 1:]
        candidates = self._pad_rows(df["candidates"])
        answer_rows = self.ds.item_rows(df["answer"].to_numpy())
        answer = np.argmax(candidates == answer_rows[:, None], axis=1)
        return Questions(ids=df["question_id"].to_numpy(), users=self._user_rows(df["user_id"]), context=context,
                         candidates=candidates, answer=answer, category=self.item_category[answer_rows])

    def question_kinds(self) -> dict[str, str]:
        """What each evaluation set is: 'fitb' -> the dataset's own kind, 'hard' -> 'hard'."""
        own = [k for k in self.ds.fitb["kind"].unique() if k != "hard"] if self.ds.fitb is not None else []
        kinds = {"hard": "hard"}
        if own:
            kinds["fitb"] = "release" if "release" in own else own[0]
        return kinds


def _positions(lengths: np.ndarray) -> np.ndarray:
    """0..len-1 for each of several lists, concatenated."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(int(lengths.sum())) - starts
