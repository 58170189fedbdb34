"""The one interface every recommender has.

    model = MODELS["bpr"](config)          # a dataclass of hyper-parameters
    model.fit(ds, data, trainer)           # data: modiste.rec.data.Interactions
    scores = model.score(user_rows)        # (B, n_items) numpy, higher is better
    items, scores = model.recommend(user_row, k=10, exclude=seen_items)
    model.save(dir); model = load_model(dir)

Weights are stored as safetensors, the configuration as JSON, both written atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from modiste.io import atomic_path, write_json
from modiste.rec.data import Triples, TripleSampler

WEIGHTS, CONFIG = "model.safetensors", "model.json"


@dataclass
class ModelConfig:
    """Hyper-parameters common to every model; each model extends it."""

    seed: int = 0


class Recommender(torch.nn.Module):
    """A ranking model over a fixed catalogue. Subclasses define `score_tensor` and, when trained
    by BPR, either `bpr_loss` (autograd, with `optimizer`) or `train_step` (hand-written updates)."""

    name: ClassVar[str]
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    needs_images: ClassVar[bool] = False
    trained_by_bpr: ClassVar[bool] = True
    # Settings that runs saved before an option existed had (load_model fills them in).
    saved_before: ClassVar[dict[str, Any]] = {}
    sampling: ClassVar[str] = "user"  # how TripleSampler draws positives: "user" (DVBPR) or "interaction" (LearnBPR)

    def __init__(self, config: ModelConfig, n_users: int, n_items: int):
        super().__init__()
        self.config, self.n_users, self.n_items = config, n_users, n_items

    # -- building from data --------------------------------------------------

    @classmethod
    def build(cls, config: ModelConfig, data, ds) -> Recommender:
        """A fresh model for these interactions (and, where needed, the dataset's images)."""
        cls.check_dataset(ds)
        return cls(config, data.n_users, data.n_items)

    @classmethod
    def check_dataset(cls, ds) -> None:
        if cls.needs_images and not ds.has_images:
            raise ValueError(f"{cls.name} learns from item images, and dataset '{ds.name}' has none: "
                             "use pop or bpr on image-free datasets")

    @classmethod
    def from_saved(cls, config: ModelConfig, meta: dict[str, Any]) -> Recommender:
        """An empty model of the saved shape, ready for `load_state_dict`."""
        return cls(config, meta["n_users"], meta["n_items"])

    # -- scoring ---------------------------------------------------------------

    def score_tensor(self, users: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, n_items)
        raise NotImplementedError

    def prepare_for_scoring(self) -> None:
        """Compute caches that scoring reads (e.g. DVBPR's item embeddings); called after
        training and after loading, so serving never runs a CNN per request."""

    @torch.no_grad()
    def score(self, users) -> np.ndarray:
        was_training = self.training
        self.eval()
        out = self.score_tensor(torch.as_tensor(np.asarray(users), dtype=torch.long)).float().numpy()
        self.train(was_training)
        return out

    def score_new_user(self, items: np.ndarray) -> np.ndarray:
        """(n_items,) scores for a shopper the model was not trained on, from the item rows they have."""
        raise ValueError(f"{self.name} learns one vector per training user and cannot score a new shopper from "
                         "their items: use pop, or dvbpr trained with --set users=history")

    def recommend(self, user: int, k: int = 10, exclude=()) -> tuple[np.ndarray, np.ndarray]:
        """The top-k item rows for a user and their scores, leaving out `exclude` (e.g. seen items)."""
        return top_k(self.score([user])[0], k, exclude)

    # -- BPR training -----------------------------------------------------------

    def sampler(self, indptr: np.ndarray, indices: np.ndarray, n_items: int, seed: int) -> TripleSampler:
        """Where training triples come from: each model's paper's sampler (`sampling`)."""
        return TripleSampler(indptr, indices, n_items, seed=seed, by=self.sampling)

    def bpr_loss(self, batch: Triples) -> tuple[torch.Tensor, torch.Tensor]:
        """(the objective to minimise, its -mean ln sigma(x_uij) part) for autograd training;
        models trained by hand-written updates (BPR-MF, VBPR) override `train_step` instead."""
        raise NotImplementedError

    def optimizer(self, lr: float) -> torch.optim.Optimizer | None:
        return torch.optim.Adam(self.parameters(), lr=lr)

    def train_step(self, batch: Triples, optimizer, lr: float) -> float:
        """One minibatch of BPR; returns the BPR loss before the update."""
        loss, bpr = self.bpr_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(bpr.detach())

    # -- storage -----------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """JSON-able facts needed to rebuild the module before loading its weights."""
        return {}

    def save(self, directory: str | Path) -> None:
        self.prepare_for_scoring()
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
            save_file(tensors, str(tmp / WEIGHTS))
            write_json(tmp / CONFIG, {"model": self.name, "config": asdict(self.config), "n_users": self.n_users,
                                      "n_items": self.n_items, **self.extra_state()})


def top_k(scores: np.ndarray, k: int, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """The rows of the k highest scores, best first, and those scores, leaving out `exclude`."""
    scores = scores.copy()
    scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argpartition(-scores, k - 1)[:k] if k else np.array([], np.int64)
    top = top[np.argsort(-scores[top], kind="stable")]
    return top, scores[top]


def load_model(directory: str | Path) -> Recommender:
    """Load a model saved by `Recommender.save` (any registered kind)."""
    from modiste.rec import MODELS

    directory = Path(directory)
    if not (directory / CONFIG).exists():
        raise FileNotFoundError(f"{directory} holds no saved model ({CONFIG} is missing)")
    meta = json.loads((directory / CONFIG).read_text())
    if meta.get("model") not in MODELS:
        raise ValueError(f"{directory} holds no ranking model (train one with `modiste train rec`)")
    cls = MODELS[meta["model"]]
    known = {f.name for f in fields(cls.Config)}
    config = cls.Config(**{**cls.saved_before, **{k: v for k, v in meta["config"].items() if k in known}})
    model = cls.from_saved(config, meta)
    model.load_state_dict(load_file(str(directory / WEIGHTS)))
    model.prepare_for_scoring()
    model.eval()
    return model
