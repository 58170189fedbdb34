"""Interactions as integer rows: the training matrix, the held-out pairs and a BPR triple sampler."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modiste.data import Dataset
from modiste.eval.ranking import HeldOut


@dataclass
class Interactions:
    """A dataset's interactions with users and items as rows (the order of users/items.parquet)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray  # per interaction: user row
    items: np.ndarray  # per interaction: item row
    splits: np.ndarray  # per interaction: train / valid / test

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Interactions:
        df = ds.interactions
        return cls(
            user_ids=ds.users.index.to_numpy(), item_ids=ds.items.index.to_numpy(),
            users=ds.users.index.get_indexer(df["user_id"]).astype(np.int64),
            items=ds.item_rows(df["item_id"].to_numpy()), splits=df["split"].to_numpy(dtype=str),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices): each user's distinct training items, CSR over users."""
        return _csr(self.n_users, self.users[self.splits == "train"], self.items[self.splits == "train"])

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices): every item each user interacted with, in any split."""
        return _csr(self.n_users, self.users, self.items)

    def train_counts(self) -> np.ndarray:
        return np.bincount(self.items[self.splits == "train"], minlength=self.n_items)

    def held_out(self, target: str = "test") -> HeldOut:
        return HeldOut.from_rows(self.n_users, self.n_items, self.users, self.items, self.splits, target=target)

    def user_row(self, user_id: str) -> int:
        rows = np.flatnonzero(self.user_ids == user_id)
        if not len(rows):
            raise KeyError(f"no user {user_id!r}")
        return int(rows[0])


def _csr(n_rows: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = int(cols.max(initial=0)) + 1
    keys = np.unique(rows.astype(np.int64) * width + cols)
    r, c = keys // width, keys % width
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=n_rows), out=indptr[1:])
    return indptr, c.astype(np.int64)


@dataclass
class Triples:
    """A batch of BPR triples (user, positive item, negative item), as row indices; `weights`
    weighs each triple in the loss (None: all alike)."""

    users: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.users), torch.from_numpy(self.positives), torch.from_numpy(self.negatives)


class TripleSampler:
    """BPR triples (user, one of their training items, a uniform negative they never trained on).

    `by="user"`, as the DVBPR paper draws them: a user uniformly (among users with training items),
    then one of their items. `by="interaction"`, as Rendle's LearnBPR (and Cornac) draw them: a
    training pair uniformly, so active users and popular items are drawn more often.

    Vectorised: a batch of any size is a few numpy calls; negatives that hit a positive are
    redrawn together until none is left.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_items: int, seed: int = 0, by: str = "user"):
        if by not in ("user", "interaction"):
            raise ValueError(f"by must be 'user' or 'interaction', got {by!r}")
        self.indptr, self.indices, self.n_items, self.by = indptr, indices, n_items, by
        self.degree = np.diff(indptr)
        self.active = np.flatnonzero(self.degree > 0)
        if not len(self.active):
            raise ValueError("no user has a training interaction")
        self.pair_users = np.repeat(np.arange(len(self.degree)), self.degree)
        self.positive_keys = self.pair_users * n_items + indices  # sorted: CSR is ordered by user then item
        self.rng = np.random.default_rng(seed)

    def sample(self, n: int) -> Triples:
        rng = self.rng
        if self.by == "user":
            users = self.active[rng.integers(len(self.active), size=n)]
            positives = self.indices[self.indptr[users] + (rng.random(n) * self.degree[users]).astype(np.int64)]
        else:
            pairs = rng.integers(len(self.indices), size=n)
            users, positives = self.pair_users[pairs], self.indices[pairs]
        negatives = rng.integers(self.n_items, size=n)
        bad = self._is_positive(users, negatives)
        while bad.any():
            negatives[bad] = rng.integers(self.n_items, size=int(bad.sum()))
            bad[bad] = self._is_positive(users[bad], negatives[bad])
        return Triples(users, positives, negatives)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        at = np.searchsorted(self.positive_keys, keys)
        at = np.minimum(at, len(self.positive_keys) - 1)
        return self.positive_keys[at] == keys


class ItemBlockSampler(TripleSampler):
    """The paper's triples, grouped so that a CNN sees each picture once per step, not once per triple.

    Each step draws a random block of items and returns every training pair (u, i) whose item is
    in the block, with a negative drawn uniformly from the same block, and a weight 1/|I_u|.
    Over the random blocks this has the same expected loss as the paper's sampler: a uniform
    user, one of their items, a uniform negative (a uniform block gives a uniform negative), but
    a block of B pictures now serves about B * n_train / n_items triples. On the default world
    that cuts the CNN work of an epoch by about 17x.

    `sample(n)` sizes the block so that a step holds about n triples on average.
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, n_items: int, seed: int = 0):
        super().__init__(indptr, indices, n_items, seed)
        self.pair_weights = (1.0 / self.degree[self.pair_users]).astype(np.float32)

    def sample(self, n: int) -> Triples:
        rng = self.rng
        size = int(np.clip(round(n * self.n_items / len(self.indices)), 2, self.n_items))
        block = rng.choice(self.n_items, size=size, replace=False)
        in_block = np.zeros(self.n_items, bool)
        in_block[block] = True
        pairs = np.flatnonzero(in_block[self.indices])
        users, positives = self.pair_users[pairs], self.indices[pairs]
        negatives = block[rng.integers(size, size=len(pairs))]
        bad = self._is_positive(users, negatives)
        for _ in range(20):  # a user who owns most of the block keeps a positive as negative: rare, and dropped
            if not bad.any():
                break
            negatives[bad] = block[rng.integers(size, size=int(bad.sum()))]
            bad[bad] = self._is_positive(users[bad], negatives[bad])
        keep = ~bad
        return Triples(users[keep], positives[keep], negatives[keep], self.pair_weights[pairs][keep])
