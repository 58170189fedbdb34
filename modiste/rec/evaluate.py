"""Use a finished training run: evaluate it as the DVBPR paper does, and recommend from it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.eval.ranking import evaluate_ranking
from modiste.io import write_json
from modiste.rec.base import Recommender, load_model, top_k
from modiste.rec.data import Interactions
from modiste.rec.train import BEST, RUN


def run_spec(run: str | Path) -> dict:
    path = Path(run) / RUN
    if not path.exists():
        raise FileNotFoundError(f"{run} is not a training run ({RUN} is missing)")
    return json.loads(path.read_text())


def run_dataset(run: str | Path, data: str | Path | None = None) -> Dataset:
    """The dataset a run was trained on (or `data`, which must be the same dataset)."""
    spec = run_spec(run)
    ds = Dataset(data or spec["data"]["path"])
    if ds.name != spec["data"]["name"]:
        raise ValueError(f"{run} was trained on '{spec['data']['name']}', not on '{ds.name}'")
    return ds


def evaluate_run(run: str | Path, data: str | Path | None = None, split: str = "test") -> dict:
    """Metrics of the run's best model on a split (written to RUN/eval-SPLIT.json too)."""
    ds = run_dataset(run, data)
    model = load_model(Path(run) / BEST)
    start = time.perf_counter()
    metrics = evaluate_ranking(model.score, Interactions.from_dataset(ds).held_out(split))
    report = {"model": model.name, "dataset": ds.name, "split": split, "metrics": metrics,
              "eval_seconds": round(time.perf_counter() - start, 2)}
    oracle = ds.manifest.get("oracle", {}).get("ranking")
    if oracle and split == "test":
        report["oracle"] = oracle
    write_json(Path(run) / f"eval-{split}.json", report)
    return report


def recommend_for(run: str | Path, user_id: str, k: int = 10, model: Recommender | None = None) -> list[dict]:
    """The user's top-k, leaving out every item they already interacted with."""
    ds = run_dataset(run)
    model = model or load_model(Path(run) / BEST)
    data = Interactions.from_dataset(ds)
    if user_id not in set(data.user_ids):
        raise KeyError(f"no user {user_id!r} in dataset '{ds.name}'")
    row = data.user_row(user_id)
    seen = np.unique(data.items[data.users == row])
    return _described(ds, *model.recommend(row, k=k, exclude=seen))


def recommend_for_items(run: str | Path, item_ids: list[str], k: int = 10) -> list[dict]:
    """The top-k for a shopper the run was not trained on, from the items they have (left out of
    the top-k): DVBPR with users="history" pools their taste from those items; PopRank ranks by
    popularity; other models refuse."""
    ds = run_dataset(run)
    rows = ds.item_rows(item_ids)
    model = load_model(Path(run) / BEST)
    return _described(ds, *top_k(model.score_new_user(rows), k, exclude=rows))


def _described(ds: Dataset, rows: np.ndarray, scores: np.ndarray) -> list[dict]:
    table = ds.items
    return [{"item_id": str(table.index[i]), "score": float(s), "category": table["category"].iat[i],
             "description": table["description"].iat[i]} for i, s in zip(rows, scores)]
