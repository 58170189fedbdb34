"""Ranking metrics as the DVBPR paper defines them, computed exactly and in chunks.

For each held-out (user, item) pair, the held-out item is compared with EVERY item the user
never interacted with (no sampled negatives):

- AUC: the share of those items scored below it (ties count one half);
- cold AUC: the same, over pairs whose item had fewer than `cold_threshold` training interactions;
- Recall@k: the chance it ranks in the top k (ties broken at random, in expectation);
- NDCG@k: 1 / log2(rank + 2) in the top k, likewise in expectation over ties.

Every metric is a mean over users of the mean over that user's held-out pairs. A score of NaN
is never produced by the metric itself: items are excluded by masking, not by their score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]  # user rows (B,) -> scores (B, n_items)


@dataclass
class HeldOut:
    """Who interacted with what, as rows, and which pairs are held out for evaluation."""

    n_users: int
    n_items: int
    seen_indptr: np.ndarray  # CSR over users: every item the user interacted with, in any split
    seen_items: np.ndarray
    pair_users: np.ndarray  # held-out pairs
    pair_items: np.ndarray
    train_counts: np.ndarray  # (n_items,) training interactions per item

    @classmethod
    def from_rows(cls, n_users: int, n_items: int, users: np.ndarray, items: np.ndarray, splits: np.ndarray,
                  target: str = "test") -> HeldOut:
        """Build from interaction rows and their split names; pairs are those whose split is `target`."""
        order = np.lexsort((items, users))
        users_sorted, items_sorted = users[order], items[order]
        keep = np.ones(len(order), bool)  # drop repeated (user, item) pairs
        keep[1:] = (users_sorted[1:] != users_sorted[:-1]) | (items_sorted[1:] != items_sorted[:-1])
        users_sorted, items_sorted = users_sorted[keep], items_sorted[keep]
        indptr = np.zeros(n_users + 1, np.int64)
        np.cumsum(np.bincount(users_sorted, minlength=n_users), out=indptr[1:])
        is_target = splits == target
        train = splits == "train"
        return cls(
            n_users=n_users, n_items=n_items, seen_indptr=indptr, seen_items=items_sorted.astype(np.int64),
            pair_users=users[is_target].astype(np.int64), pair_items=items[is_target].astype(np.int64),
            train_counts=np.bincount(items[train], minlength=n_items),
        )

    def seen_count(self, users: np.ndarray) -> np.ndarray:
        return self.seen_indptr[users + 1] - self.seen_indptr[users]


def evaluate_ranking(score: ScoreFn, held_out: HeldOut, ks: tuple[int, ...] = (10, 50), ndcg_k: int = 10,
                     cold_threshold: int = 5, batch_size: int = 256) -> dict[str, float]:
    """AUC, cold AUC, Recall@k and NDCG@k of a scoring function over the held-out pairs."""
    h = held_out
    n_pairs = len(h.pair_users)
    auc = np.empty(n_pairs)
    recall = {k: np.empty(n_pairs) for k in ks}
    ndcg = np.empty(n_pairs)
    discounts = 1.0 / np.log2(np.arange(ndcg_k) + 2.0)
    for start in range(0, n_pairs, batch_size):
        users = h.pair_users[start:start + batch_size]
        targets = h.pair_items[start:start + batch_size]
        b = len(users)
        scores = np.array(score(users), dtype=np.float64, copy=True)
        if scores.shape != (b, h.n_items):
            raise ValueError(f"score() returned shape {scores.shape}, expected {(b, h.n_items)}")
        if np.isnan(scores).any():  # NaN compares neither above nor below: it would look perfect
            raise ValueError("score() returned NaN (has the model diverged?)")
        target_scores = scores[np.arange(b), targets]
        # Mask every item the user has seen (the target too) so it counts neither above nor below.
        counts = h.seen_count(users)
        rows = np.repeat(np.arange(b), counts)
        cols = np.concatenate([h.seen_items[h.seen_indptr[u]:h.seen_indptr[u + 1]] for u in users])
        scores[rows, cols] = np.nan
        greater = (scores > target_scores[:, None]).sum(axis=1)
        ties = (scores == target_scores[:, None]).sum(axis=1)
        negatives = h.n_items - counts
        sl = slice(start, start + b)
        auc[sl] = (negatives - greater - 0.5 * ties) / np.maximum(negatives, 1)
        # The target lands uniformly on one of positions greater .. greater + ties.
        for k in ks:
            recall[k][sl] = np.clip((k - greater) / (ties + 1), 0, 1)
        positions = np.arange(ndcg_k)[None, :]
        on = (positions >= greater[:, None]) & (positions <= (greater + ties)[:, None])
        ndcg[sl] = (on * discounts).sum(axis=1) / (ties + 1)

    cold = h.train_counts[h.pair_items] < cold_threshold
    result = {"auc": _user_mean(auc, h.pair_users), "auc_cold": _user_mean(auc[cold], h.pair_users[cold])}
    result |= {f"recall@{k}": _user_mean(recall[k], h.pair_users) for k in ks}
    result[f"ndcg@{ndcg_k}"] = _user_mean(ndcg, h.pair_users)
    result["users"] = int(len(np.unique(h.pair_users)))
    result["cold_users"] = int(len(np.unique(h.pair_users[cold])))
    return result


def _user_mean(values: np.ndarray, users: np.ndarray) -> float:
    """Mean over users of the mean over each user's pairs (NaN where there are none)."""
    if len(values) == 0:
        return float("nan")
    codes = np.unique(users, return_inverse=True)[1]
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes)
    return float(np.mean(sums / counts))


def auc_score(positive: np.ndarray, negative: np.ndarray) -> float:
    """AUC of positive against negative scores (ties count one half), e.g. for compatibility."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    both = np.concatenate([positive, negative])
    ranks = _average_ranks(both)
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    ranks = np.empty(len(x))
    ranks[order] = avg[group]
    return ranks
