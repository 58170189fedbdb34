"""Train the outfit model into a run directory, with early stopping, checkpoints and resume.

Three stages:

1. collaborative: the taste's free user and item factors alone, as matrix factorisation with a BPR
   loss on the users' histories (an item of theirs over an item of the same category they never
   had), early-stopped on the validation questions; then frozen.
2. joint: each step takes a batch of training outfits, blanks one item of each, and asks the model
   to pick the true item among `negatives` others of the blank's category (the model ranks
   candidates of another category last, since a question names the blank's category): half from
   the whole catalogue, half from the items people used in training, so that only taste and the
   finer points of compatibility tell them apart. The loss is the cross-entropy of that choice,
   scored with the user's taste, plus the BPR loss on histories through the whole taste term.
   Swapping one item of a real outfit is exactly the corruption a compatibility model is trained
   against, so the same loss teaches compatibility.
3. blend: the best model's personalized score and the counted neighbourhood scores
   (`modiste.outfit.neighbours`) are weighed against each other on the validation hard questions,
   into blend.json; the personalized FITB of the run is that blend.

The run directory has the layout of a ranking run: run.json, state.pt (atomic, every epoch and
every `checkpoint_every_s`; a run killed in the short first stage redoes it), best/ (the best
validation accuracy), metrics.json, log.txt, blend.json.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from modiste.config import with_overrides
from modiste.data import Dataset
from modiste.io import atomic_path, write_json
from modiste.outfit.data import OutfitData
from modiste.outfit.evaluate import fitb_accuracy, in_blank_category, model_fitb_scorer
from modiste.outfit.model import CATEGORY_MISMATCH, OutfitConfig, OutfitModel, build_model
from modiste.outfit.neighbours import Blend, Neighbourhood
from modiste.progress import Progress
from modiste.vision.encoder import dataset_features

RUN, STATE, BEST, METRICS, LOG = "run.json", "state.pt", "best", "metrics.json", "log.txt"


@dataclass
class OutfitTrainConfig:
    epochs: int = 40
    batch_size: int = 128
    negatives: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    taste_batch: int = 4096  # history pairs per step for the taste loss (0: none)
    taste_weight: float = 1.0
    taste_epochs: int = 40  # the collaborative stage, before the rest (0: none; it then trains jointly)
    taste_lr: float = 3e-3
    patience: int = 4
    max_minutes: float | None = 20.0
    checkpoint_every_s: float = 60.0
    threads: int | None = 1  # None: every core. One by default: on 2 cores, two collapse under any other load
    seed: int = 0


def train_outfit(data_dir: str | Path, run_dir: str | Path, model_overrides: dict | None = None,
                 train_overrides: dict | None = None, resume: bool = True, progress: bool = True) -> OutfitModel:
    """Train (or resume) the outfit model on a dataset; returns the best model."""
    run_dir = Path(run_dir)
    ds = Dataset(data_dir)
    model_config = with_overrides(OutfitConfig(), model_overrides)
    train_config = with_overrides(OutfitTrainConfig(), train_overrides)
    if (run_dir / RUN).exists() and resume:
        saved = json.loads((run_dir / RUN).read_text())
        if saved.get("task") != "outfit" or saved["data"]["name"] != ds.name:
            raise ValueError(f"{run_dir} is another run ({saved.get('task', saved.get('model'))} on "
                             f"'{saved['data']['name']}'); choose another --out")
        if not model_overrides:
            model_config = OutfitConfig(**{"pairwise": False, **_known(OutfitConfig, saved["model_config"])})
        if not train_overrides:
            train_config = OutfitTrainConfig(**_known(OutfitTrainConfig, saved["train_config"]))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN, {"task": "outfit", "model_config": asdict(model_config),
                               "train_config": asdict(train_config),
                               "data": {"path": str(Path(data_dir).resolve()), "name": ds.name}})
    torch.set_num_threads(train_config.threads or os.cpu_count() or 1)
    torch.manual_seed(train_config.seed)
    data = OutfitData(ds)
    if not len(data.outfits("train")):
        raise ValueError(f"dataset '{ds.name}' has no training outfits")
    features = dataset_features(ds) if model_config.images and ds.has_images else None
    model = build_model(model_config, data, features)
    _Trainer(model, data, train_config, run_dir, progress).run(resume)
    if not (run_dir / BEST).exists():  # no epoch ran (epochs=0): the untrained model is the best there is
        model.save(run_dir / BEST)
    best = OutfitModel.load(run_dir / BEST)
    blend = fit_blend(best, data)
    if blend is not None:
        blend.save(run_dir)
    else:
        (run_dir / Blend.FILE).unlink(missing_ok=True)
    return best


def fit_blend(model: OutfitModel, data: OutfitData) -> Blend | None:
    """The weights of the model's score and the neighbourhood counts, fit on the validation hard
    questions (negatives of the blank's category: where taste decides). None where there is
    nothing to blend: a model without taste, or no user histories, or no such questions."""
    if not model.config.personal or not len(data.history[1]):
        return None
    q = data.questions("valid", "hard")
    if not len(q):
        return None
    considered = in_blank_category(data, q)
    return Blend.fit(model_fitb_scorer(model, data, personal=True)(q), Neighbourhood(data).question_features(q),
                     q.answer, considered)


def _known(config_class, saved: dict) -> dict:
    """The settings of a saved run that this version still has (a run of an older version resumes)."""
    names = {f.name for f in fields(config_class)}
    return {k: v for k, v in saved.items() if k in names}


class _Trainer:
    def __init__(self, model: OutfitModel, data: OutfitData, config: OutfitTrainConfig, run_dir: Path, progress: bool):
        self.model, self.data, self.config, self.run_dir, self.progress = model, data, config, run_dir, progress
        self.rng = np.random.default_rng(config.seed)
        self.train = data.outfits("train")
        # Negatives of a given category come from two pools: the catalogue (uniform) and the items
        # people used in training (outfit slots and history entries: popularity-weighted), so that
        # the model learns to tell a user's item from other used items, not only from unused ones.
        _, history_items = data.history
        used = np.concatenate([self.train.items[self.train.items >= 0], history_items])
        self.catalogue = _CategoryPool(np.arange(data.n_items), data.item_category, len(data.categories))
        self.used = _CategoryPool(used, data.item_category, len(data.categories))
        self.valid = {name: data.questions("valid", kind) for name, kind in data.question_kinds().items()}
        self.history: list[dict] = []
        self.epoch, self.best, self.bad_epochs, self.train_seconds = 0, -math.inf, 0, 0.0

    # ------------------------------------------------------------------ batches

    def _same_category(self, categories: np.ndarray, n: int) -> np.ndarray:
        """n items of each given category -> (len(categories), n): the first half from the
        catalogue, the rest from the items used in training."""
        half = n // 2
        return np.concatenate([self.catalogue.sample(categories, half, self.rng),
                               self.used.sample(categories, n - half, self.rng)], axis=1)

    def _fitb_batch(self, idx: np.ndarray) -> tuple[torch.Tensor, ...]:
        data, cfg, mcfg = self.data, self.config, self.model.config
        rows = self.train.items[idx]
        n, width = rows.shape
        blank = (self.rng.random(n) * (rows >= 0).sum(1)).astype(np.int64)
        answer = rows[np.arange(n), blank]
        keep = np.ones_like(rows, bool)
        keep[np.arange(n), blank] = False
        context = rows[keep].reshape(n, width - 1)
        category = data.item_category[answer]
        negatives = self._same_category(category, cfg.negatives)
        negatives[negatives == answer[:, None]] = -1
        candidates = np.concatenate([answer[:, None], negatives], axis=1)
        users = self.train.users[idx]
        history = data.user_history(users, category, mcfg.history_len)
        profile = data.profile(users, mcfg.profile_len)
        return tuple(torch.from_numpy(a) for a in (context, candidates, category, users, history, profile))

    def _history_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """taste_batch (user, category, (item of theirs, item of that category they never had)),
        the negative half from the catalogue and half from the used items."""
        indptr, items = self.data.history
        if not len(items) or not self.config.taste_batch:
            return None
        n_cat = len(self.data.categories)
        at = self.rng.integers(len(items), size=self.config.taste_batch)
        keys = np.searchsorted(indptr, at, side="right") - 1
        users, category = keys // n_cat, keys % n_cat
        negatives = np.where(self.rng.random(len(at)) < 0.5, self.catalogue.sample(category, 1, self.rng)[:, 0],
                             self.used.sample(category, 1, self.rng)[:, 0])
        return users, category, np.stack([items[at], negatives], axis=1)

    def _taste_loss(self) -> torch.Tensor:
        """BPR on the users' histories through the whole taste term (0 without histories)."""
        drawn = self._history_pairs()
        if drawn is None:
            return torch.zeros(())
        users, category, pairs = drawn
        mcfg = self.model.config
        t, penalty = self.model.taste_terms(
            torch.from_numpy(users), torch.from_numpy(self.data.user_history(users, category, mcfg.history_len)),
            torch.from_numpy(self.data.profile(users, mcfg.profile_len)), torch.from_numpy(pairs))
        return F.softplus(t[:, 1] - t[:, 0]).mean() + mcfg.taste_l2 * penalty / len(t)

    # ------------------------------------------------------------------ loop

    @property
    def collaborative(self) -> bool:
        """Whether the taste's user and item factors are learned first, alone, then frozen."""
        m = self.model.config
        return (self.config.taste_epochs > 0 and m.personal and m.user_ids and m.ids
                and len(self.data.history[1]) > 0 and self.config.taste_batch > 0)

    def run(self, resume: bool) -> None:
        model, config = self.model, self.config
        restored = resume and (self.run_dir / STATE).exists()
        if self.collaborative:
            if not restored:
                self._collaborative_stage()
            for weight in self._collaborative_weights():
                weight.requires_grad_(False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=config.lr, weight_decay=config.weight_decay)
        if restored:
            self._restore(optimizer)
        steps = max(1, math.ceil(len(self.train) / config.batch_size))
        last_checkpoint = time.monotonic()
        with Progress(enabled=self.progress) as bar:
            while (self.epoch < config.epochs and self.bad_epochs < config.patience
                   and not (config.max_minutes and self.train_seconds > 60 * config.max_minutes)):
                start, losses = time.perf_counter(), []
                order = self.rng.permutation(len(self.train))
                model.train()
                for s in bar.track(range(steps), f"epoch {self.epoch + 1}"):
                    batch = self._fitb_batch(order[s * config.batch_size:(s + 1) * config.batch_size])
                    scores = model.fitb(*batch)
                    loss = F.cross_entropy(scores, torch.zeros(len(scores), dtype=torch.long))
                    if model.config.personal:
                        loss = loss + config.taste_weight * self._taste_loss()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    losses.append(float(loss.detach()))
                    if s % 10 == 0:
                        bar.info(f"loss {np.mean(losses):.4f}")
                    if time.monotonic() - last_checkpoint > config.checkpoint_every_s:
                        self._checkpoint(optimizer)
                        last_checkpoint = time.monotonic()
                self.train_seconds += time.perf_counter() - start
                accuracy = self._end_epoch(float(np.mean(losses)), time.perf_counter() - start)
                bar.info(f"loss {np.mean(losses):.4f} · valid accuracy {accuracy:.4f}")
                self.epoch += 1
                self._checkpoint(optimizer)
                last_checkpoint = time.monotonic()

    def _collaborative_weights(self) -> list[torch.nn.Parameter]:
        m = self.model
        return [m.users.weight, m.taste_ids.weight]

    def _collaborative_stage(self) -> None:
        """Matrix factorisation on the users' histories (BPR), alone and early-stopped on the
        validation questions. Trained jointly with the rest, these free factors overfit long before
        compatibility has converged (on Polyvore-U the taste loss fell to 0.2 while validation fell);
        learned first and then frozen, they keep their best."""
        model, config = self.model, self.config
        free = self._collaborative_weights()
        optimizer = torch.optim.Adam(free, lr=config.taste_lr)
        steps = max(1, math.ceil(len(self.data.history[1]) / config.taste_batch))
        best, bad, best_weights = -math.inf, 0, [w.detach().clone() for w in free]
        start = time.perf_counter()
        for epoch in range(config.taste_epochs):
            losses = []
            for _ in range(steps):
                users, _, pairs = self._history_pairs()
                t, penalty = model.collaborative_taste(torch.from_numpy(users), torch.from_numpy(pairs))
                loss = F.softplus(t[:, 1] - t[:, 0]).mean() + model.config.taste_l2 * penalty / len(t)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            accuracies = self._validate_collaborative()
            accuracy = float(np.mean(list(accuracies.values()))) if accuracies else math.nan
            improved = not accuracy <= best  # NaN (no validation questions): keep the latest
            if improved:
                best, bad, best_weights = accuracy, 0, [w.detach().clone() for w in free]
            else:
                bad += 1
            self._log({"stage": "collaborative", "epoch": epoch + 1, "loss": float(np.mean(losses)),
                       "valid_accuracy": accuracy, **{f"valid_{k}": v for k, v in accuracies.items()}, "best": improved,
                       "seconds": round(time.perf_counter() - start, 2)})
            if bad >= config.patience:
                break
        with torch.no_grad():
            for w, b in zip(free, best_weights):
                w.copy_(b)

    def _validate_collaborative(self) -> dict[str, float]:
        model, accuracies = self.model, {}
        with torch.no_grad():
            for name, q in self.valid.items():
                if not len(q):
                    continue
                candidates = torch.from_numpy(q.candidates)
                scores, _ = model.collaborative_taste(torch.from_numpy(q.users), candidates)
                wrong = model.item_category[candidates.clamp(min=0)] != torch.from_numpy(q.category)[:, None]
                accuracies[name] = fitb_accuracy((scores - CATEGORY_MISMATCH * wrong).numpy(), q.candidates, q.answer)
        return accuracies

    def _validate(self) -> dict[str, float]:
        score = model_fitb_scorer(self.model, self.data, personal=self.model.config.personal)
        return {name: fitb_accuracy(score(q), q.candidates, q.answer) for name, q in self.valid.items() if len(q)}

    def _end_epoch(self, loss: float, seconds: float) -> float:
        accuracies = self._validate()
        accuracy = float(np.mean(list(accuracies.values()))) if accuracies else math.nan
        # Without validation questions there is nothing to choose by: the latest model is kept.
        improved = accuracy > self.best or math.isnan(accuracy)
        if improved:
            self.best, self.bad_epochs = (self.best if math.isnan(accuracy) else accuracy), 0
            self.model.save(self.run_dir / BEST)
        else:
            self.bad_epochs += 1
        row = {"stage": "joint", "epoch": self.epoch + 1, "loss": loss, "valid_accuracy": accuracy,
               **{f"valid_{k}": v for k, v in accuracies.items()}, "best": improved,
               "seconds": round(seconds, 2), "train_seconds": round(self.train_seconds, 2)}
        self._log(row)
        return accuracy

    def _log(self, row: dict) -> None:
        self.history.append(row)
        write_json(self.run_dir / METRICS, {"history": self.history, "best_valid_accuracy": self.best})
        with open(self.run_dir / LOG, "a") as log:
            log.write(json.dumps(row) + "\n")

    def _checkpoint(self, optimizer) -> None:
        state = {"model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": json.dumps(self.rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
                 "history": json.dumps(self.history), "epoch": self.epoch, "best": self.best,
                 "bad_epochs": self.bad_epochs, "train_seconds": self.train_seconds}
        with atomic_path(self.run_dir / STATE) as tmp:
            torch.save(state, tmp)

    def _restore(self, optimizer) -> None:
        state = torch.load(self.run_dir / STATE, weights_only=True)  # the restricted unpickler
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.history = json.loads(state["history"])
        self.epoch, self.best, self.bad_epochs = state["epoch"], state["best"], state["bad_epochs"]
        self.train_seconds = state["train_seconds"]


class _CategoryPool:
    """Items (with repeats: a repeat weighs more) grouped by category, to draw per category at once.
    A category absent from the pool draws from nothing: its draws are -1."""

    def __init__(self, items: np.ndarray, item_category: np.ndarray, n_categories: int):
        categories = item_category[items]
        order = np.argsort(categories, kind="stable")
        self.items = items[order]
        self.start = np.searchsorted(categories[order], np.arange(n_categories))
        self.size = np.bincount(categories, minlength=n_categories)

    def sample(self, categories: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        size = self.size[categories, None]
        offset = (rng.random((len(categories), n)) * size).astype(np.int64)
        return np.where(size > 0, self.items[np.minimum(self.start[categories, None] + offset, len(self.items) - 1)], -1)
