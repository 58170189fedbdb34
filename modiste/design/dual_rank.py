"""Generate, then rank: make a pool of items for each request and keep the ones the user's learned
models like best. Two judges, either or both:

- taste: a DVBPR run, theta_u . Phi(picture), the user's taste learned from pixels (design I's
  preference score);
- fit: an outfit run's model, the completed outfit's score for the user, the new item read as its
  category, the words the dual model wrote for it and the encoder's feature of its picture
  (`OutfitModel.with_new_items`). Only the model: the run's neighbourhood counts know no new item.

Each judge's scores are standardised within a request's pool and the two added, so neither's scale
rules. Nothing here reads the benchmark's judges (the attribute classifier, the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modiste.design.dual import ATTRIBUTES


@dataclass
class Judges:
    """taste: a DVBPR model (`modiste.rec`), or None; fit: an outfit run (`modiste.outfit.api.OutfitRun`),
    or None."""

    taste: object | None = None
    fit: object | None = None

    @classmethod
    def load(cls, rec_run: str | Path | None, outfit_run: str | Path | None, dataset_name: str) -> Judges:
        from modiste.design.pm import check_dvbpr
        from modiste.outfit.api import load_run as load_outfit_run
        from modiste.rec.base import load_model
        from modiste.rec.evaluate import run_dataset
        from modiste.rec.train import BEST

        taste = fit = None
        if rec_run is not None:
            if run_dataset(rec_run).name != dataset_name:
                raise ValueError(f"{rec_run} was trained on another dataset than '{dataset_name}'")
            taste = load_model(Path(rec_run) / BEST)
            check_dvbpr(taste)
        if outfit_run is not None:
            fit = load_outfit_run(outfit_run)
            if fit.ds.name != dataset_name:
                raise ValueError(f"{outfit_run} was trained on '{fit.ds.name}', not on '{dataset_name}'")
        if taste is None and fit is None:
            raise ValueError("ranking a pool needs a judge: a DVBPR run (--rec-run) and/or an outfit run (--outfit-run)")
        return cls(taste, fit)

    def scores(self, users: np.ndarray, context: np.ndarray, category: np.ndarray, pictures: np.ndarray,
               written: list[dict[str, str | None]], features: np.ndarray, pool: int) -> np.ndarray:
        """(N,) the judges' standardised scores summed, for N = requests x pool generated items in
        consecutive pools: users (N,), the outfit's other items (N, L) -1 padded, category codes (N,),
        pictures uint8 (N, 64, 64, 3), the words written for them, their encoder features (N, f)."""
        total = np.zeros(len(users))
        if self.taste is not None:
            from modiste.design.pm import preference_scores

            total += _standardised(preference_scores(self.taste, users, pictures), pool)
        if self.fit is not None:
            total += _standardised(self._fit(users, context, category, written, features), pool)
        return total

    def _fit(self, users, context, category, written, features) -> np.ndarray:
        from modiste.outfit.data import Questions
        from modiste.outfit.evaluate import model_fitb_scorer

        data = self.fit.data
        values = {a: np.array([w.get(a) for w in written], dtype=object) for a in ATTRIBUTES}
        view, rows = self.fit.model.with_new_items(category, data.attribute_codes(values), features)
        questions = Questions(ids=np.arange(len(users)), users=np.asarray(users), context=np.asarray(context),
                              candidates=rows[:, None], answer=np.zeros(len(users), np.int64),
                              category=np.asarray(category))
        with torch.no_grad():
            return model_fitb_scorer(view, data)(questions)[:, 0]


def best_of_pools(scores: np.ndarray, pool: int, keep: int) -> np.ndarray:
    """Row indices of the `keep` best of each consecutive pool of `pool` scores, best first."""
    grouped = scores.reshape(-1, pool)
    order = np.argsort(-grouped, axis=1, kind="stable")[:, :keep]
    return (order + np.arange(len(grouped))[:, None] * pool).ravel()


def _standardised(x: np.ndarray, pool: int) -> np.ndarray:
    grouped = np.asarray(x, np.float64).reshape(-1, pool)
    z = (grouped - grouped.mean(1, keepdims=True)) / (grouped.std(1, keepdims=True) + 1e-9)
    return z.ravel()


def sample_ranked(model, examples, users: np.ndarray, blanks: np.ndarray, context: np.ndarray, judges: Judges,
                  pool: int, keep: int = 1, steps: int = 20, guidance: dict[str, float] | None = None, seed: int = 0,
                  batch_size: int = 128, words: str = "written", temperature: float | None = None
                  ) -> tuple[np.ndarray, torch.Tensor]:
    """PFITB by generate-then-rank for R requests (users (R,), the blank items (R,), which only
    give the category and leave the history; context (R, L)): `pool` items made per request
    (`modiste.design.dual_api.sample_blanks`, with `words` and `temperature`), the `keep` best kept.
    Returns pictures uint8 (R, keep, 64, 64, 3) and attribute ids (R, keep, 6)."""
    from modiste.cache import dataset_cache
    from modiste.design.dual_api import sample_blanks
    from modiste.vision.encoder import ImageEncoder

    if not 1 <= keep <= pool:
        raise ValueError(f"keep {keep} of a pool of {pool}: need 1 <= keep <= pool")
    repeat = np.repeat(np.arange(len(users)), pool)
    pictures, ids = sample_blanks(model, examples, users[repeat], blanks[repeat], context[repeat], steps, guidance,
                                  seed, words, temperature, batch_size)
    features = ImageEncoder.load(dataset_cache(examples.ds, "encoder")).encode(pictures)
    category = examples.data.item_category[blanks[repeat]]
    scores = judges.scores(users[repeat], context[repeat], category, pictures, model.vocab.decode(ids), features, pool)
    best = best_of_pools(scores, pool, keep)
    return pictures[best].reshape(len(users), keep, 64, 64, 3), ids[best].reshape(len(users), keep, -1)
