"""Ranking metrics against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from modiste.eval.ranking import HeldOut, auc_score, evaluate_ranking


def brute_force(scores, seen, pairs, k=10):
    aucs, hits, ndcgs = {}, {}, {}
    for u, target in pairs:
        negatives = [j for j in range(scores.shape[1]) if j not in seen[u]]
        s = scores[u, target]
        auc = np.mean([1.0 if s > scores[u, j] else 0.5 if s == scores[u, j] else 0.0 for j in negatives])
        # Every tie order equally likely: average over the target's possible positions.
        greater = sum(scores[u, j] > s for j in negatives)
        ties = sum(scores[u, j] == s for j in negatives)
        positions = range(greater, greater + ties + 1)
        hit = np.mean([p < k for p in positions])
        ndcg = np.mean([1 / np.log2(p + 2) if p < k else 0.0 for p in positions])
        for d, v in ((aucs, auc), (hits, hit), (ndcgs, ndcg)):
            d.setdefault(u, []).append(v)
    mean = lambda d: np.mean([np.mean(v) for v in d.values()])  # noqa: E731
    return mean(aucs), mean(hits), mean(ndcgs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 7, 40
    scores = rng.integers(0, 6, (n_users, n_items)).astype(float)  # many ties
    users, items, splits = [], [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=rng.integers(3, 9), replace=False)
        users += [u] * len(chosen)
        items += list(chosen)
        splits += ["train"] * (len(chosen) - 2) + ["valid", "test"]
    users, items, splits = np.array(users), np.array(items), np.array(splits)
    seen = {u: set(items[users == u]) for u in range(n_users)}
    held = HeldOut.from_rows(n_users, n_items, users, items, splits)
    got = evaluate_ranking(lambda u: scores[u], held, ks=(10,), batch_size=3)
    pairs = list(zip(users[splits == "test"], items[splits == "test"]))
    auc, hit, ndcg = brute_force(scores, seen, pairs)
    assert got["auc"] == pytest.approx(auc)
    assert got["recall@10"] == pytest.approx(hit)
    assert got["ndcg@10"] == pytest.approx(ndcg)


def test_perfect_and_reversed_scores():
    n_users, n_items = 4, 30
    users = np.repeat(np.arange(n_users), 3)
    items = np.tile([0, 1, 2], n_users) + np.repeat(np.arange(n_users), 3) * 3
    splits = np.tile(["train", "valid", "test"], n_users)
    held = HeldOut.from_rows(n_users, n_items, users, items, splits)
    targets = items[splits == "test"]

    def perfect(u):
        s = np.zeros((len(u), n_items))
        s[np.arange(len(u)), targets[u]] = 1
        return s

    assert evaluate_ranking(perfect, held)["auc"] == 1.0
    assert evaluate_ranking(perfect, held)["ndcg@10"] == 1.0
    assert evaluate_ranking(lambda u: -perfect(u), held)["auc"] == 0.0


def test_cold_auc_counts_only_cold_targets():
    # Item 5 is trained on by 6 users (warm); item 9 by none (cold).
    users = np.array([0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 7])
    items = np.array([1, 5, 2, 9, 5, 5, 5, 5, 5, 3, 4])
    splits = np.array(["train", "test", "train", "test", "train", "train", "train", "train", "train", "train", "test"])
    held = HeldOut.from_rows(8, 12, users, items, splits)
    got = evaluate_ranking(lambda u: np.tile(np.arange(12.0), (len(u), 1)), held)
    assert got["cold_users"] == 2  # users 1 (item 9, no training use) and 7 (item 4)
    assert got["users"] == 3


def test_auc_score_with_ties():
    assert auc_score(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx((1 + 1 + 1 + 0.5) / 4)


def test_nan_scores_are_refused_not_rewarded():
    users, items, splits = np.array([0, 0]), np.array([1, 2]), np.array(["train", "test"])
    held = HeldOut.from_rows(1, 5, users, items, splits)
    with pytest.raises(ValueError, match="NaN"):
        evaluate_ranking(lambda u: np.full((len(u), 5), np.nan), held)
