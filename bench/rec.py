"""Benchmark the ranking models side by side with Cornac and implicit, and against the oracle.

    pip install -e '.[bench]'
    python bench/rec.py --data data/world-default --out reports/rec

Every model sees the identical split (the dataset's leave-one-out) and, for the visual ones, the
identical image features (modiste's encoder, cached per dataset). Every model is evaluated by the
same code: AUC over all unseen items, cold AUC, Recall@50, NDCG@10 (`modiste.eval.ranking`).

Fair tuning: each peer gets a small grid of its own main knobs, and the setting with the best
validation AUC is reported on test. modiste's models use their defaults with early stopping on
validation AUC. Fit time is the training loop alone, without validation, for every model; for
modiste, the epochs up to the best one (the extra `patience` epochs are not counted, as the
peers' grids are not). Cornac's VBPR has no early stopping or resume: it is trained in chunks
of epochs warm-started from the previous chunk (init_params) until validation AUC stops
improving; its Adam state restarts with each chunk.

Writes REPORT/report.json, REPORT/report.md and REPORT/auc_vs_time.png. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.eval.ranking import evaluate_ranking
from modiste.io import write_json
from modiste.rec.data import Interactions
from modiste.rec.evaluate import evaluate_run
from modiste.rec.train import train_recommender
from modiste.vision.encoder import dataset_features

COLUMNS = ("auc", "auc_cold", "recall@10", "recall@50", "ndcg@10")


# Variants beyond the papers: a row name -> (the model, its settings, training settings).
_HISTORY_PAIRS = {"users": "history", "uniform_users": False}
VARIANTS = {"dvbpr-history": ("dvbpr", {"users": "history"}, {}),
            "dvbpr-history-pairs": ("dvbpr", _HISTORY_PAIRS, {}),
            # The cosine schedule anneals to 0 at the time limit, so the best epoch comes last: 19
            # minutes keep the epoch that crosses the limit inside the 20 the issue allows.
            "dvbpr-history-pairs-bias-cosine": ("dvbpr", {**_HISTORY_PAIRS, "item_bias": True},
                                                {"lr_schedule": "cosine", "max_minutes": 19.0})}


def modiste_row(name: str, data_dir: Path, out: Path, minutes: float | None) -> dict:
    """A modiste model with its default settings (threads included: see DEFAULT_TRAINING), or a
    named variant of one."""
    run = out / "runs" / name
    model, settings, train_settings = VARIANTS.get(name, (name, None, {}))
    overrides = {"max_minutes": minutes} if minutes is not None else {}
    overrides.update(train_settings)
    start = time.perf_counter()
    train_recommender(model, data_dir, run, model_overrides=settings, train_overrides=overrides or None,
                      resume=False, progress=True)
    wall = time.perf_counter() - start
    history = json.loads((run / "metrics.json").read_text())["history"]
    best = max(history, key=lambda r: r["valid_auc"])
    report = evaluate_run(run)
    epochs = best["epoch"]
    return {"model": f"modiste {name}", **report["metrics"], "fit_s": round(best["train_seconds"], 2),
            "epochs": epochs, "s_per_epoch": round(best["train_seconds"] / max(epochs, 1), 3),
            "wall_s_with_validation": round(wall, 1), "valid_auc": best["valid_auc"]}


def cornac_sets(data: Interactions, features: np.ndarray | None = None):
    """A Cornac training set whose user and item indices are modiste's rows."""
    from cornac.data import Dataset as CornacDataset
    from cornac.data import ImageModality

    train = data.splits == "train"
    uid_map = OrderedDict((str(u), k) for k, u in enumerate(data.user_ids))
    iid_map = OrderedDict((str(i), k) for k, i in enumerate(data.item_ids))
    triples = [(str(data.user_ids[u]), str(data.item_ids[i]), 1.0) for u, i in zip(data.users[train], data.items[train])]
    train_set = CornacDataset.build(triples, fmt="UIR", global_uid_map=uid_map, global_iid_map=iid_map, seed=0)
    if features is not None:
        modality = ImageModality(features=features, ids=[str(i) for i in data.item_ids], normalized=True)
        modality.build(id_map=iid_map)
        train_set.add_modalities(item_image=modality)
    return train_set


def score_cornac(model):
    def score(users):
        return np.stack([model.score(int(u)) for u in users])
    return score


def tune(fits, valid, label: str) -> tuple[dict, object, float]:
    """Fit each candidate setting; keep the one with the best validation AUC."""
    best = None
    for setting, fit in fits:
        start = time.perf_counter()
        model, score = fit()
        seconds = time.perf_counter() - start
        auc = evaluate_ranking(score, valid)["auc"]
        print(f"  {label} {setting}: valid AUC {auc:.4f}, fit {seconds:.1f} s", flush=True)
        if best is None or auc > best[3]:
            best = (setting, model, score, auc, seconds)
    return best


def cornac_bpr_row(data: Interactions, threads: int) -> dict:
    import cornac

    train_set = cornac_sets(data)
    valid, test = data.held_out("valid"), data.held_out("test")

    def fit(lr, iters):
        model = cornac.models.BPR(k=64, max_iter=iters, learning_rate=lr, lambda_reg=0.01, seed=0, verbose=False)
        model.fit(train_set)
        return model, score_cornac(model)

    grid = [((lr, it), (lambda lr=lr, it=it: fit(lr, it))) for lr in (0.01, 0.05) for it in (25, 50, 100, 200)]
    setting, model, score, valid_auc, seconds = tune(grid, valid, "cornac BPR")
    return {"model": "cornac BPR", **evaluate_ranking(score, test), "fit_s": round(seconds, 2), "epochs": setting[1],
            "s_per_epoch": round(seconds / setting[1], 3), "setting": f"lr={setting[0]}, max_iter={setting[1]}",
            "valid_auc": valid_auc}


def implicit_bpr_row(data: Interactions, threads: int) -> dict:
    import scipy.sparse as sp
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    indptr, indices = data.train()
    matrix = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(data.n_users, data.n_items))
    valid, test = data.held_out("valid"), data.held_out("test")

    def fit(lr, iters):
        model = BayesianPersonalizedRanking(factors=63, learning_rate=lr, regularization=0.01, iterations=iters,
                                            num_threads=threads, random_state=0)
        model.fit(matrix, show_progress=False)
        users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return model, (lambda u: users[u] @ items.T)

    grid = [((lr, it), (lambda lr=lr, it=it: fit(lr, it))) for lr in (0.01, 0.05) for it in (50, 100, 200)]
    setting, model, score, valid_auc, seconds = tune(grid, valid, "implicit BPR")
    return {"model": "implicit BPR", **evaluate_ranking(score, test), "fit_s": round(seconds, 2), "epochs": setting[1],
            "s_per_epoch": round(seconds / setting[1], 3), "setting": f"lr={setting[0]}, iterations={setting[1]}",
            "valid_auc": valid_auc}


def cornac_vbpr_row(data: Interactions, features: np.ndarray, chunk: int, max_epochs: int, patience: int = 1) -> dict:
    import cornac

    train_set = cornac_sets(data, features)
    valid, test = data.held_out("valid"), data.held_out("test")
    params, best, epochs, seconds, bad = None, None, 0, 0.0, 0
    while epochs < max_epochs and bad <= patience:
        model = cornac.models.VBPR(k=32, k2=32, n_epochs=chunk, batch_size=100, learning_rate=0.005,
                                   lambda_w=0.01, lambda_b=0.01, lambda_e=0.0, seed=0, verbose=False,
                                   init_params=params)
        start = time.perf_counter()
        model.fit(train_set)
        seconds += time.perf_counter() - start
        epochs += chunk
        params = {"Bi": model.beta_item, "Gu": model.gamma_user, "Gi": model.gamma_item, "Tu": model.theta_user,
                  "E": model.emb_matrix, "Bp": model.beta_prime}
        auc = evaluate_ranking(score_cornac(model), valid)["auc"]
        print(f"  cornac VBPR after {epochs} epochs ({seconds:.0f} s): valid AUC {auc:.4f}", flush=True)
        if best is None or auc > best[0]:
            best, bad = (auc, epochs, seconds, evaluate_ranking(score_cornac(model), test)), 0
        else:
            bad += 1
    auc, epochs, seconds, metrics = best
    return {"model": "cornac VBPR", **metrics, "fit_s": round(seconds, 2), "epochs": epochs,
            "s_per_epoch": round(seconds / epochs, 3), "setting": f"k=k2=32, lr=0.005, batch 100, chunks of {chunk}",
            "valid_auc": auc}


def plot(rows: list[dict], oracle_auc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    placed = []
    for row in rows:
        if row.get("fit_s") is None:
            continue
        own = row["model"].startswith("modiste")
        x, y = max(row["fit_s"], 0.01), row["auc"]
        ax.scatter(x, y, marker="o" if own else "s", s=60, color="tab:blue" if own else "tab:gray")
        # A label beside an earlier point's goes below its dot instead of over the other label.
        crowded = any(abs(np.log10(x / px)) < 0.6 and abs(y - py) < 0.01 for px, py in placed)
        ax.annotate(row["model"], (x, y), textcoords="offset points", xytext=(6, -12 if crowded else 4), fontsize=8)
        placed.append((x, y))
    ax.axhline(oracle_auc, color="tab:red", linestyle="--", label=f"oracle {oracle_auc:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel("fit time (s, log scale, 2 CPU cores)")
    ax.set_ylabel("test AUC (all unseen items)")
    ax.legend(loc="center left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # "tight": labels that run past the axes stay in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/world-default"))
    parser.add_argument("--out", type=Path, default=Path("reports/rec"))
    parser.add_argument("--models", nargs="+", default=["pop", "bpr", "vbpr", "dvbpr"],
                        help=f"modiste's models, or variants: {', '.join(VARIANTS)}")
    parser.add_argument("--peers", nargs="*", default=["cornac-bpr", "implicit-bpr", "cornac-vbpr"])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for the peers")
    parser.add_argument("--dvbpr-minutes", type=float, default=20.0)
    parser.add_argument("--vbpr-chunk", type=int, default=5)
    parser.add_argument("--vbpr-max-epochs", type=int, default=40)
    parser.add_argument("--update", action="store_true",
                        help="keep the other rows of an existing REPORT/report.json and replace only the rows run now")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    ds = Dataset(args.data).validate()
    data = Interactions.from_dataset(ds)
    load_before = os.getloadavg()
    rows = []
    features = None
    if "vbpr" in args.models or "cornac-vbpr" in args.peers:
        start = time.perf_counter()
        features = dataset_features(ds)
        print(f"image features {features.shape} ready in {time.perf_counter() - start:.0f} s", flush=True)

    for name in args.models:
        print(f"modiste {name}", flush=True)
        dvbpr = VARIANTS.get(name, (name,))[0] == "dvbpr"
        rows.append(modiste_row(name, args.data, args.out, args.dvbpr_minutes if dvbpr else None))
        print(json.dumps(rows[-1]), flush=True)
    peers = {"cornac-bpr": lambda: cornac_bpr_row(data, args.threads),
             "implicit-bpr": lambda: implicit_bpr_row(data, args.threads),
             "cornac-vbpr": lambda: cornac_vbpr_row(data, features, args.vbpr_chunk, args.vbpr_max_epochs)}
    for peer in args.peers:
        print(peer, flush=True)
        rows.append(peers[peer]())
        print(json.dumps(rows[-1]), flush=True)

    if args.update and (args.out / "report.json").exists():
        earlier = json.loads((args.out / "report.json").read_text())
        now = {r["model"]: r for r in rows}
        kept = [now.pop(r["model"], r) for r in earlier["rows"]]  # in their places
        rows = kept + list(now.values())
    oracle = ds.manifest.get("oracle", {}).get("ranking", {})
    machine = {"cpus": os.cpu_count(), "threads": args.threads, "load_before": load_before,
               "load_after": os.getloadavg(), "python": platform.python_version(), "platform": platform.platform()}
    write_json(args.out / "report.json", {"dataset": ds.name, "rows": rows, "oracle": oracle, "machine": machine})
    lines = [f"Dataset `{ds.name}`; {machine['cpus']} CPUs, {args.threads} threads; load average "
             f"{load_before[0]:.2f} before, {machine['load_after'][0]:.2f} after.", "",
             "| model | AUC | cold AUC | Recall@10 | Recall@50 | NDCG@10 | fit (s) | epochs | s/epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | " + " | ".join(f"{r[c]:.4f}" for c in COLUMNS)
                     + f" | {r['fit_s']} | {r['epochs']} | {r['s_per_epoch']} |")
    if oracle:
        lines.append("| **oracle** | " + " | ".join(f"{oracle[c]:.4f}" for c in COLUMNS) + " | | | |")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    if oracle:
        plot(rows, oracle["auc"], args.out / "auc_vs_time.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
