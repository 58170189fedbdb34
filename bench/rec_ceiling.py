"""How high can a picture-only ranker go on a synthetic world? The ceilings behind DVBPR's target.

    python bench/rec_ceiling.py --data data/world-default --out reports/rec-ceiling

DVBPR scores x_ui = theta_u . Phi(image_i). On a synthetic world the oracle knows the true
features that the pictures show (attribute values and the unnamed look) and every user's true
weights on them, so the ceiling of that model class can be measured in steps, on the validation
split (2,000 pairs, AUC over all unseen items, as `modiste.eval.ranking`):

1. the oracle's full interaction logit (utility + popularity exposure): the Bayes-optimal score;
2. the oracle's weights on the features a picture shows (no item quality, no popularity): what
   theta_u . Phi could reach with a perfect Phi AND each user's true theta_u;
3. theta_u learned by BPR over the TRUE features (a perfect Phi), one free vector per user, as
   DVBPR learns it: what ~30 interactions a user allow;
4. the same with theta_u of low rank (theta_u = a_u A, rank 32), which shares taste across users
   (DVBPR with K = 32 does the same, since Phi can absorb A);
5. as 4, plus a learned item bias (popularity, which no picture shows);
6. theta_u computed from the user's history, A (mean of their other training items' features
   - the catalogue's mean) + b, with A and b shared (DVBPR's `users="history"`);
7. as 6, plus a learned item bias.

Writes REPORT/report.json and REPORT/report.md. Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.data.world.oracle import Oracle
from modiste.eval.ranking import HeldOut, evaluate_ranking
from modiste.io import write_json
from modiste.rec.data import Interactions


def learn_taste(features: np.ndarray, held: HeldOut, users: np.ndarray, items: np.ndarray, n_users: int,
                rank: int | None, bias: bool, epochs: int, seed: int = 0, pooled: bool = False) -> dict:
    """BPR over fixed item features: theta_u free (rank None), a_u A, or (pooled) computed from the
    user's other training items; the best validation AUC seen."""
    torch.manual_seed(seed)
    x = torch.from_numpy(features.astype(np.float32))
    n_items, dim = x.shape
    if pooled:
        return _learn_pooled_taste(x, features, held, users, items, n_users, epochs, bias)
    if rank is None:
        a, mix = torch.nn.Parameter(torch.zeros(n_users, dim)), None
        params = [a]
    else:
        a = torch.nn.Parameter(torch.randn(n_users, rank) * 0.1)
        mix = torch.nn.Parameter(torch.randn(rank, dim) * 0.1)
        params = [a, mix]
    beta = torch.nn.Parameter(torch.zeros(n_items), requires_grad=bias)
    opt = torch.optim.Adam(params + ([beta] if bias else []), lr=0.05 if rank is None else 0.02)
    u, i = torch.from_numpy(users), torch.from_numpy(items)
    best = {"auc": 0.0}
    for epoch in range(epochs):
        for step in torch.randperm(len(u)).split(4096):
            uu, ii, jj = u[step], i[step], torch.randint(n_items, (len(step),))
            theta = a[uu] if mix is None else a[uu] @ mix
            score = (theta * (x[ii] - x[jj])).sum(-1) + beta[ii] - beta[jj]
            loss = torch.nn.functional.softplus(-score).mean() + 1e-3 * theta.square().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            taste = (a if mix is None else a @ mix).numpy()
            b = beta.numpy()
        result = evaluate_ranking(lambda rows: taste[rows] @ features.T + b, held)
        if result["auc"] > best["auc"]:
            best = {**result, "epoch": epoch + 1}
    return best


def _learn_pooled_taste(x: torch.Tensor, features: np.ndarray, held: HeldOut, users: np.ndarray, items: np.ndarray,
                        n_users: int, epochs: int, bias: bool) -> dict:
    """theta_u = A (mean of u's training items' features, the scored positive left out, minus the
    catalogue's mean) + b, as DVBPR's users="history" pools Phi; with `bias`, plus a learned item bias."""
    dim = x.shape[1]
    u, i = torch.from_numpy(users), torch.from_numpy(items)
    sums = torch.zeros(n_users, dim).index_add_(0, u, x[i])
    counts = torch.bincount(u, minlength=n_users).float()[:, None]
    centre = x.mean(0)
    user_map = torch.nn.Linear(dim, dim)
    torch.nn.init.eye_(user_map.weight)
    torch.nn.init.zeros_(user_map.bias)
    beta = torch.nn.Parameter(torch.zeros(len(x)), requires_grad=bias)
    opt = torch.optim.Adam(list(user_map.parameters()) + ([beta] if bias else []), lr=0.01)
    best = {"auc": 0.0}
    for epoch in range(epochs):
        for step in torch.randperm(len(u)).split(4096):
            uu, ii, jj = u[step], i[step], torch.randint(len(x), (len(step),))
            theta = user_map((sums[uu] - x[ii]) / (counts[uu] - 1).clamp(min=1) - centre)
            score = (theta * (x[ii] - x[jj])).sum(-1) + beta[ii] - beta[jj]
            loss = torch.nn.functional.softplus(-score).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            taste = user_map(sums / counts.clamp(min=1) - centre).numpy()
            b = beta.numpy()
        result = evaluate_ranking(lambda rows: taste[rows] @ features.T + b, held)
        if result["auc"] > best["auc"]:
            best = {**result, "epoch": epoch + 1}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/world-default"))
    parser.add_argument("--out", type=Path, default=Path("reports/rec-ceiling"))
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)

    ds = Dataset(args.data).validate()
    oracle = Oracle.load(args.data)
    data = Interactions.from_dataset(ds)
    held = data.held_out("valid")
    pick = np.random.default_rng(0).choice(len(held.pair_users), min(args.pairs, len(held.pair_users)), replace=False)
    held.pair_users, held.pair_items = held.pair_users[pick], held.pair_items[pick]
    t = oracle.t
    shown = np.hstack([t["item_features"], t["item_look"]])  # what a picture shows
    true_taste = np.hstack([oracle.weights, t["user_look"]])
    train = data.splits == "train"
    users, items = data.users[train].astype(np.int64), data.items[train].astype(np.int64)

    rows, start = [], time.perf_counter()

    def add(name, result):
        rows.append({"score": name, **{k: result[k] for k in ("auc", "auc_cold")}, "epoch": result.get("epoch")})
        print(rows[-1], flush=True)

    add("oracle: utility + popularity", evaluate_ranking(oracle.interaction_logits, held))
    add("oracle: true taste . true picture features", evaluate_ranking(lambda r: true_taste[r] @ shown.T, held))
    common = dict(features=shown, held=held, users=users, items=items, n_users=data.n_users, epochs=args.epochs)
    add("learned theta_u (free) . true picture features", learn_taste(rank=None, bias=False, **common))
    add("learned theta_u (rank 32) . true picture features", learn_taste(rank=32, bias=False, **common))
    add("learned theta_u (rank 32) . true picture features + item bias", learn_taste(rank=32, bias=True, **common))
    add("theta_u pooled from the user's history (shared A) . true picture features",
        learn_taste(rank=None, bias=False, pooled=True, **common))
    add("the same plus a learned item bias", learn_taste(rank=None, bias=True, pooled=True, **common))

    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "report.json", {"dataset": ds.name, "split": "valid", "pairs": len(pick), "rows": rows,
                                          "seconds": round(time.perf_counter() - start, 1),
                                          "load": os.getloadavg()})
    lines = [f"Dataset `{ds.name}`, validation split, {len(pick)} pairs, AUC over all unseen items.", "",
             "| score | AUC | cold AUC |", "|---|---|---|"]
    lines += [f"| {r['score']} | {r['auc']:.4f} | {r['auc_cold']:.4f} |" for r in rows]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
