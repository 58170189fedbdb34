"""`modiste bench outfit`: the outfit model against every baseline, on one dataset, in one run.

Writes REPORT/report.json:

    {"rows": [{"model", "task", "fitb_acc", "fitb_acc_hard", "compat_auc"}, ...],
     "outfits": [{"method", "compat_oracle", "compat_model", "personalization", "utility_oracle"}, ...],
     "hard_margin": {"model", "baseline", "margin", "ci95"},
     "sets": {...sizes and checksums of the candidate sets...}, "training": {..., "blend"}, "machine": {...}}

and REPORT/report.md with both tables. `task` is FITB (no user) or PFITB (the user and their
history); `fitb_acc` is on the dataset's own candidate sets (DiFashion's release sets, the
world's random ones), `fitb_acc_hard` on sets whose negatives share the blank's category.
`hard_margin` is modiste's last row against the best baseline on the hard sets, question by
question, with a 95% paired bootstrap interval.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.io import write_json
from modiste.outfit import baselines as B
from modiste.outfit.candidates import compatibility_for
from modiste.outfit.compose import compose_outfit
from modiste.outfit.data import OutfitData
from modiste.outfit.evaluate import (blended_fitb_scorer, compatibility_auc, fitb_hits, model_compatibility,
                                     model_fitb_scorer, paired_margin)
from modiste.outfit.model import OutfitModel
from modiste.outfit.neighbours import Blend, Neighbourhood
from modiste.outfit.train import METRICS, train_outfit
from modiste.vision.encoder import dataset_features


def outfit_report(data_dir: str | Path, out: str | Path, run_dir: str | Path | None = None,
                  train_overrides: dict | None = None, model_overrides: dict | None = None,
                  outfit_users: int = 300, progress: bool = True) -> dict:
    out = Path(out)
    ds = Dataset(data_dir).validate()
    data = OutfitData(ds)
    run_dir = Path(run_dir) if run_dir else out / "runs" / "outfit"
    start = time.perf_counter()
    model = train_outfit(data_dir, run_dir, model_overrides, train_overrides, progress=progress)
    wall = time.perf_counter() - start
    metrics = _read_json(run_dir / METRICS)
    oracle = _oracle(ds)

    tests = {name: data.questions("test", kind) for name, kind in data.question_kinds().items()}
    compat = compatibility_for(ds, "test")
    compat_outfits = data._pad_rows(compat["item_ids"])
    labels = compat["label"].to_numpy()

    features = dataset_features(ds) if ds.has_images else _item_embeddings(model, data.n_items)
    feature_name = "image features" if ds.has_images else "the model's item embeddings"

    hard_hits: dict[str, np.ndarray] = {}  # per hard question, for the margins

    def row(name: str, task: str, scorer, compat_scores: np.ndarray | None) -> dict:
        r = {"model": name, "task": task}
        for key, q in (("fitb_acc", tests.get("fitb")), ("fitb_acc_hard", tests.get("hard"))):
            if q is None or not len(q):
                r[key] = None
                continue
            hits = fitb_hits(scorer(q), q.candidates, q.answer)
            r[key] = round(float(hits.mean()), 4)
            if key == "fitb_acc_hard":
                hard_hits[f"{name} ({task})"] = hits
        r["compat_auc"] = None if compat_scores is None else round(compatibility_auc(compat_scores, labels), 4)
        return r

    rows = [
        row("random", "FITB", B.random_scorer(), B.random_compatibility(compat_outfits)),
        row("popularity", "FITB", B.popularity_scorer(data), B.popularity_compatibility(data, compat_outfits)),
        row("category match", "FITB", B.category_scorer(data), None),
        row(f"history similarity ({feature_name})", "PFITB", B.history_scorer(data, features), None),
        row("user-based CF", "PFITB", B.user_cf_scorer(data), None),
        row("item-based CF", "PFITB", B.item_cf_scorer(data), None),
    ]
    n_baselines = len(rows)
    if oracle is not None:
        oracle_compat = B.oracle_compatibility(oracle, compat_outfits)
        rows += [row("oracle", "FITB", B.oracle_scorer(oracle, personal=False), oracle_compat),
                 row("oracle", "PFITB", B.oracle_scorer(oracle, personal=True), oracle_compat)]
    model_compat = model_compatibility(model, compat_outfits)
    rows += [row("modiste outfit model", "FITB", model_fitb_scorer(model, data, personal=False), model_compat),
             row("modiste outfit model", "PFITB", model_fitb_scorer(model, data, personal=True), model_compat)]
    blend = Blend.load(run_dir)
    if blend is not None:
        rows.append(row("modiste outfit model + neighbourhood", "PFITB",
                        blended_fitb_scorer(model, data, blend, Neighbourhood(data)), model_compat))

    margin = _margin_over_baselines(hard_hits, n_baselines)
    outfits = outfit_table(model, data, oracle, features, outfit_users)
    log = metrics.get("history", [])
    collaborative = [r for r in log if r.get("stage") == "collaborative"]
    joint = [r for r in log if r.get("stage", "joint") == "joint"]
    report = {
        "dataset": ds.name, "rows": rows, "outfits": outfits, "hard_margin": margin,
        "sets": {name: {"questions": len(q), "kind": kind, "sha256": _checksum(q.candidates)}
                 for (name, kind), q in zip(data.question_kinds().items(), tests.values())}
        | {"compatibility": {"questions": len(compat), "sha256": _checksum(compat_outfits)}},
        "personalization_features": feature_name,
        "training": {"wall_s": round(wall, 1), "train_s": joint[-1]["train_seconds"] if joint else None,
                     "collaborative_s": collaborative[-1]["seconds"] if collaborative else None,
                     "collaborative_epochs": len(collaborative), "epochs": len(joint),
                     "best_valid_accuracy": metrics.get("best_valid_accuracy"), "run": str(run_dir),
                     "blend": None if blend is None else blend.weights},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load": [round(x, 2) for x in os.getloadavg()]},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def outfit_table(model: OutfitModel, data: OutfitData, oracle, features: np.ndarray, n_users: int) -> list[dict]:
    """Whole outfits for the owners of test outfits, over those outfits' categories: modiste's
    composition against random and popularity-based outfits (and the real outfit)."""
    test = data.outfits("test")
    pick = np.random.default_rng(0).permutation(len(test))[:n_users]
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(1)
    by_category = [np.flatnonzero(data.item_category == c) for c in range(len(data.categories))]
    popular = [items[np.argsort(-data.train_counts[items], kind="stable")[:20]] for items in by_category]
    methods: dict[str, list] = {"modiste (compose)": [], "random": [], "popularity": [], "the real outfit": []}
    users = []
    for k in pick:
        real, user = test.items[k][test.items[k] >= 0], int(test.users[k])
        categories = data.item_category[real].tolist()
        users.append(user)
        methods["the real outfit"].append(real)
        methods["random"].append(np.array([rng.choice(by_category[c]) for c in categories]))
        methods["popularity"].append(np.array([rng.choice(popular[c]) for c in categories]))
        methods["modiste (compose)"].append(compose_outfit(model, data, user, categories).items)
    table = []
    for name, outfits in methods.items():
        width = max(len(o) for o in outfits)
        padded = np.array([np.pad(o, (0, width - len(o)), constant_values=-1) for o in outfits])
        r = {"method": name,
             "compat_model": round(float(model_compatibility(model, padded).mean()), 4),
             "personalization": round(float(np.mean([_history_similarity(data, unit, u, o)
                                                     for u, o in zip(users, outfits)])), 4)}
        if oracle is not None:
            r["compat_oracle"] = round(float(np.mean([oracle.compatibility(o) for o in outfits])), 4)
            r["utility_oracle"] = round(float(np.mean([oracle.utility(u, o).mean() for u, o in zip(users, outfits)])), 4)
        table.append(r)
    return table


def _history_similarity(data: OutfitData, unit: np.ndarray, user: int, outfit: np.ndarray) -> float:
    """Mean over the outfit's items of the cosine to the user's history in the item's category."""
    history = data.user_history(np.full(len(outfit), user), data.item_category[outfit], 10)
    sims = []
    for item, hist in zip(outfit, history):
        hist = hist[hist >= 0]
        if len(hist):
            mean = unit[hist].mean(0)
            sims.append(float(unit[item] @ mean / max(np.linalg.norm(mean), 1e-12)))
    return float(np.mean(sims)) if sims else 0.0


def markdown(report: dict) -> str:
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    lines = [f"### {report['dataset']}", "",
             "| model | task | FITB accuracy | hard FITB accuracy | compatibility AUC |", "|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['model']} | {r['task']} | {fmt(r['fitb_acc'])} | {fmt(r['fitb_acc_hard'])} | {fmt(r['compat_auc'])} |")
    lines += ["", "| outfit for a user | compatibility (oracle) | compatibility (model) | personalization | utility (oracle) |",
              "|---|---|---|---|---|"]
    for r in report["outfits"]:
        lines.append(f"| {r['method']} | {fmt(r.get('compat_oracle'))} | {fmt(r['compat_model'])} | "
                     f"{fmt(r['personalization'])} | {fmt(r.get('utility_oracle'))} |")
    m = report.get("hard_margin")
    if m:
        lines += ["", f"Hard sets: {m['model']} against the best baseline, {m['baseline']}: {m['margin']:+.4f} "
                      f"(95% paired bootstrap interval {m['ci95'][0]:+.4f} to {m['ci95'][1]:+.4f})."]
    sets = ", ".join(f"{k}: {v['questions']} questions" for k, v in report["sets"].items())
    lines += ["", f"Test sets: {sets}. Personalization: cosine to the user's history in the item's category, "
                  f"over {report['personalization_features']}. Training: {report['training']['collaborative_epochs']} "
                  f"epochs of collaborative taste ({report['training']['collaborative_s']} s), then "
                  f"{report['training']['epochs']} joint epochs ({report['training']['train_s']} s)."
                  + _blend_note(report['training'].get('blend')) + f" Load average {report['machine']['load']}.", ""]
    return "\n".join(lines)


def _margin_over_baselines(hard_hits: dict[str, np.ndarray], n_baselines: int) -> dict | None:
    """modiste's personalized result (the last row) against the best baseline on the hard sets,
    question by question: the margin and its 95% bootstrap interval."""
    if len(hard_hits) <= n_baselines:
        return None
    names = list(hard_hits)
    best = max(names[:n_baselines], key=lambda name: hard_hits[name].mean())
    return {"model": names[-1], "baseline": best, **paired_margin(hard_hits[names[-1]], hard_hits[best])}


def _blend_note(weights: dict | None) -> str:
    if not weights:
        return ""
    terms = ", ".join(f"{name} {value:+.3f}" for name, value in weights.items())
    return (f" Blend weights (on the model's score and log(1 + each count), fit on the validation hard "
            f"questions): {terms}.")


def _item_embeddings(model: OutfitModel, n_items: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([model.encode(torch.arange(s, min(s + 4096, n_items))).numpy()
                               for s in range(0, n_items, 4096)])


def _checksum(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def _oracle(ds: Dataset):
    from modiste.data.world.oracle import Oracle

    try:
        return Oracle.load(ds.path)
    except FileNotFoundError:
        return None


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.exists() else {}
