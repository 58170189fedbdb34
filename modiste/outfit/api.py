"""Use a trained outfit run with ids, not rows: complete an outfit, compose one, answer a question.

Every function takes the run directory (which knows its dataset) and returns plain dicts, ready
for JSON, the CLI and the app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.outfit.compose import compose_outfit
from modiste.outfit.data import OutfitData, Questions
from modiste.outfit.evaluate import FitbScorer, blended_fitb_scorer, model_fitb_scorer
from modiste.outfit.model import OutfitModel
from modiste.outfit.neighbours import Blend, Neighbourhood
from modiste.outfit.train import BEST, RUN


@dataclass
class OutfitRun:
    model: OutfitModel
    data: OutfitData
    blend: Blend | None = None  # None: a run trained before blends, or one with nothing to blend

    @property
    def ds(self) -> Dataset:
        return self.data.ds

    @cached_property
    def fitb_scorer(self) -> FitbScorer:
        """How the run fills a blank for a user: the blend where the run has one, else the model."""
        if self.blend is None:
            return model_fitb_scorer(self.model, self.data, personal=True)
        return blended_fitb_scorer(self.model, self.data, self.blend, Neighbourhood(self.data))

    def user_row(self, user_id: str | None) -> int:
        if user_id is None:
            return -1
        row = self.data.user_index.get_indexer([user_id])[0]
        if row < 0:
            raise KeyError(f"no user {user_id!r} in dataset '{self.ds.name}'")
        return int(row)

    def category_code(self, name: str) -> int:
        if name not in self.data.categories:
            raise KeyError(f"no category {name!r} in dataset '{self.ds.name}'; "
                           f"its categories: {', '.join(self.data.categories)}")
        return self.data.categories.index(name)

    def describe(self, row: int, **values: float) -> dict:
        """An item as a dict, with extra rounded numbers (score=..., taste=...)."""
        items = self.ds.items
        return {"item_id": str(items.index[row]), "category": str(items["category"].iat[row]),
                "description": str(items["description"].iat[row]), **{k: round(float(v), 4) for k, v in values.items()}}


@lru_cache(maxsize=4)
def _load(run: str, data: str | None, mtimes: tuple[int, int]) -> OutfitRun:
    spec_path = Path(run) / RUN
    if not spec_path.exists():
        raise FileNotFoundError(f"{run} is not a training run ({RUN} is missing)")
    spec = json.loads(spec_path.read_text())
    if spec.get("task") != "outfit":
        raise ValueError(f"{run} is not an outfit run (train one with `modiste train outfit`)")
    ds = Dataset(data or spec["data"]["path"])
    if ds.name != spec["data"]["name"]:
        raise ValueError(f"{run} was trained on '{spec['data']['name']}', not on '{ds.name}'")
    return OutfitRun(OutfitModel.load(Path(run) / BEST), OutfitData(ds), Blend.load(run))


def load_run(run: str | Path, data: str | Path | None = None) -> OutfitRun:
    """The run's best model, blend and dataset, cached until the model or the blend changes."""
    files = (Path(run) / BEST / "model.safetensors", Path(run) / Blend.FILE)
    mtimes = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)
    return _load(str(Path(run).resolve()), None if data is None else str(Path(data).resolve()), mtimes)


def complete(run: str | Path, item_ids: list[str], category: str, user_id: str | None = None, k: int = 5) -> list[dict]:
    """The k best items of `category` to complete an outfit of `item_ids` (for a user, if given)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    r = load_run(run)
    context = np.array(r.ds.item_rows(item_ids))  # writable, for torch
    code = r.category_code(category)
    user = r.user_row(user_id)
    candidates = np.setdiff1d(np.flatnonzero(r.data.item_category == code), context)
    scores = _fitb_scores(r, user, context, candidates, code)
    top = np.argsort(-scores, kind="stable")[:k]
    return [r.describe(candidates[t], score=scores[t]) for t in top]


def compose(run: str | Path, categories: list[str], user_id: str | None = None, exclude_owned: bool = True) -> dict:
    """A whole outfit over `categories` for a user (leaving out what they already have)."""
    r = load_run(run)
    codes = [r.category_code(c) for c in categories]
    user = r.user_row(user_id)
    exclude = None
    if exclude_owned and user >= 0:
        inter = r.ds.interactions
        exclude = r.ds.item_rows(inter.loc[inter["user_id"] == user_id, "item_id"].to_numpy())
    result = compose_outfit(r.model, r.data, user, codes, exclude=exclude)
    return {"user_id": user_id, "compatibility": round(result.compatibility, 4), "score": round(result.score, 4),
            "items": [r.describe(row, taste=taste) for row, taste in zip(result.items, result.taste)]}


def question(run: str | Path, question_id: str, personal: bool = True) -> dict:
    """A FITB question of the dataset (any split and kind) with the model's score per candidate."""
    r = load_run(run)
    for kind in r.data.question_kinds().values():
        for split in ("test", "valid"):
            q = r.data.questions(split, kind)
            at = np.flatnonzero(q.ids == question_id)
            if len(at):
                sub = q.take(at[:1])
                scorer = r.fitb_scorer if personal else model_fitb_scorer(r.model, r.data, personal=False)
                scores = scorer(sub)[0]
                cands = sub.candidates[0]
                return {"question_id": question_id, "user_id": None if sub.users[0] < 0 else str(r.data.user_index[sub.users[0]]),
                        "context": [r.describe(row) for row in sub.context[0] if row >= 0],
                        "category": r.data.categories[sub.category[0]],
                        "answer": r.describe(cands[sub.answer[0]]),
                        "candidates": [r.describe(c, score=s) for c, s in zip(cands, scores) if c >= 0]}
    raise KeyError(f"no FITB question {question_id!r} in dataset '{r.ds.name}'")


def _fitb_scores(r: OutfitRun, user: int, context: np.ndarray, candidates: np.ndarray, category: int) -> np.ndarray:
    one = Questions(ids=np.array(["complete"]), users=np.array([user]), context=context[None, :],
                    candidates=candidates[None, :], answer=np.zeros(1, np.int64), category=np.array([category]))
    scorer = r.fitb_scorer if user >= 0 else model_fitb_scorer(r.model, r.data, personal=False)
    return scorer(one)[0]
