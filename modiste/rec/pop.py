"""PopRank: every user gets the most popular items (training interactions per item)."""

from __future__ import annotations

import numpy as np
import torch

from modiste.rec.base import Recommender


class PopRank(Recommender):
    name = "pop"
    trained_by_bpr = False

    def __init__(self, config, n_users: int, n_items: int):
        super().__init__(config, n_users, n_items)
        self.register_buffer("counts", torch.zeros(n_items))

    def fit_counts(self, counts: np.ndarray) -> None:
        self.counts.copy_(torch.as_tensor(counts, dtype=torch.float32))

    def score_tensor(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(len(users), -1)

    def score_new_user(self, items: np.ndarray) -> np.ndarray:
        return self.counts.numpy().copy()
