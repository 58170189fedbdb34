"""Train a recommender into a run directory, with early stopping, checkpoints and resume.

A run directory holds:

    run.json        the model, its hyper-parameters, the training settings and the dataset
    state.pt        the latest training state (weights, optimizer, sampler position), written
                    atomically every `checkpoint_every_s` seconds and after every epoch, so a
                    run killed at any moment (even by SIGKILL) resumes from it
    best/           the weights with the best validation AUC so far (safetensors + JSON)
    metrics.json    one row per epoch: loss, validation AUC, seconds
    log.txt         the same, as text

`state.pt` is loaded with torch's restricted unpickler (weights_only=True).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.eval.ranking import evaluate_ranking
from modiste.config import with_overrides
from modiste.io import atomic_path, write_json
from modiste.progress import Progress
from modiste.rec import MODELS
from modiste.rec.base import Recommender, load_model
from modiste.rec.data import Interactions, TripleSampler

RUN, STATE, BEST, METRICS, LOG = "run.json", "state.pt", "best", "metrics.json", "log.txt"
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """epochs: at most this many passes of n_train triples; patience: epochs without a better
    validation AUC before stopping; eval_users: validate on this many users (None: all);
    max_minutes: stop after this much training time (None: no limit); threads: CPU threads for torch
    (None: every core); lr_schedule: "constant", or "cosine", which anneals the learning rate to 0
    over the budget, whichever of `epochs` and `max_minutes` runs out first."""

    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-3
    patience: int = 3
    eval_users: int | None = None
    checkpoint_every_s: float = 60.0
    max_minutes: float | None = None
    threads: int | None = None
    lr_schedule: str = "constant"
    seed: int = 0

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")


# Settings that work per model (found on the small and default worlds; see bench/rec.py).
DEFAULT_TRAINING = {
    "pop": TrainConfig(epochs=0),
    # The per-triple loops of BPR-MF and VBPR run on one thread; the CNN uses every core.
    "bpr": TrainConfig(epochs=200, batch_size=65_536, lr=0.1, patience=8, eval_users=2000, threads=1),
    "vbpr": TrainConfig(epochs=200, batch_size=16_384, lr=0.1, patience=8, eval_users=2000, threads=1),
    # batch_size counts triples: the block sampler picks about 2048 * n_items / n_train pictures a step.
    # 512 triples a step: 4x the steps of 2048 for the same CNN work an epoch (1.6x faster to the same AUC).
    "dvbpr": TrainConfig(epochs=100, batch_size=512, lr=3e-3, patience=6, eval_users=2000, max_minutes=18),
}


def train_recommender(model: str, data_dir: str | Path, run_dir: str | Path, model_overrides: dict | None = None,
                      train_overrides: dict | None = None, resume: bool = True, progress: bool = True) -> Recommender:
    """Train (or resume training) `model` on a dataset; returns the best model, ready to score."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    run_dir = Path(run_dir)
    ds = Dataset(data_dir)
    cls = MODELS[model]
    model_config = with_overrides(cls.Config(), model_overrides)
    train_config = with_overrides(DEFAULT_TRAINING[model], train_overrides)
    spec = {"model": model, "model_config": asdict(model_config), "train_config": asdict(train_config),
            "data": {"path": str(Path(data_dir).resolve()), "name": ds.name}}
    if (run_dir / RUN).exists() and resume:
        saved = json.loads((run_dir / RUN).read_text())
        if (saved["model"], saved["data"]["name"]) != (model, ds.name):
            raise ValueError(f"{run_dir} is a run of {saved['model']} on '{saved['data']['name']}'; "
                             f"choose another --out to train {model} on '{ds.name}'")
        # Resuming keeps the run's own settings unless new ones were given.
        if not model_overrides:
            model_config = cls.Config(**saved["model_config"])
        if not train_overrides:
            train_config = TrainConfig(**saved["train_config"])
        spec.update(model_config=asdict(model_config), train_config=asdict(train_config))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN, spec)
    # Torch's thread count is per process: set it every time, or a run after a one-thread run stays on one.
    torch.set_num_threads(train_config.threads or os.cpu_count() or 1)

    data = Interactions.from_dataset(ds)
    net = cls.build(model_config, data, ds)
    trainer = _Trainer(net, data, train_config, run_dir, progress)
    trainer.run(resume)
    return load_model(run_dir / BEST)


class _Trainer:
    def __init__(self, model: Recommender, data: Interactions, config: TrainConfig, run_dir: Path, progress: bool):
        self.model, self.data, self.config, self.run_dir, self.progress = model, data, config, run_dir, progress
        self.valid = data.held_out("valid")
        if config.eval_users and len(np.unique(self.valid.pair_users)) > config.eval_users:
            self.valid = _subsample(self.valid, config.eval_users, config.seed)
        self.history: list[dict] = []
        self.epoch, self.step, self.best_auc, self.bad_epochs = 0, 0, -math.inf, 0
        self.train_seconds = 0.0

    def run(self, resume: bool) -> None:
        model, config = self.model, self.config
        if not model.trained_by_bpr:  # PopRank: count, and that is all
            model.fit_counts(self.data.train_counts())
            self._end_epoch(loss=float("nan"), seconds=0.0)
            return
        indptr, indices = self.data.train()
        sampler = model.sampler(indptr, indices, self.data.n_items, seed=config.seed)
        optimizer = model.optimizer(config.lr)
        if resume and (self.run_dir / STATE).exists():
            self._restore(optimizer, sampler)
        n_train = int(np.diff(indptr).sum())
        steps = max(1, math.ceil(n_train / config.batch_size))
        last_checkpoint = time.monotonic()
        with Progress(enabled=self.progress) as bar:
            while self.epoch < config.epochs and self.bad_epochs < config.patience and not self._out_of_time():
                start, losses, before = time.perf_counter(), [], self.train_seconds
                model.train()
                for _ in bar.track(range(self.step, steps), f"{model.name} epoch {self.epoch + 1}", total=steps - self.step):
                    lr = self._learning_rate(optimizer, steps, self.train_seconds + time.perf_counter() - start)
                    losses.append(model.train_step(sampler.sample(config.batch_size), optimizer, lr))
                    self.step += 1
                    if len(losses) % 20 == 0:
                        bar.info(f"loss {np.mean(losses[-20:]):.4f}")
                    if time.monotonic() - last_checkpoint > config.checkpoint_every_s:
                        self.train_seconds += time.perf_counter() - start
                        start = time.perf_counter()
                        self._checkpoint(optimizer, sampler)
                        last_checkpoint = time.monotonic()
                self.train_seconds += time.perf_counter() - start
                auc = self._end_epoch(float(np.mean(losses)) if losses else float("nan"), self.train_seconds - before)
                bar.info(f"validation AUC {auc:.4f}")
                self.epoch, self.step = self.epoch + 1, 0
                self._checkpoint(optimizer, sampler)
                last_checkpoint = time.monotonic()

    def _end_epoch(self, loss: float, seconds: float) -> float:
        """Validate, keep the best weights, log."""
        self.model.prepare_for_scoring()
        auc = evaluate_ranking(self.model.score, self.valid)["auc"]
        improved = auc > self.best_auc
        if improved:
            self.best_auc, self.bad_epochs = auc, 0
            self.model.save(self.run_dir / BEST)
        else:
            self.bad_epochs += 1
        row = {"epoch": self.epoch + 1, "loss": loss, "valid_auc": auc, "best": improved,
               "seconds": round(seconds, 2), "train_seconds": round(self.train_seconds, 2)}
        self.history.append(row)
        write_json(self.run_dir / METRICS, {"history": self.history, "best_valid_auc": self.best_auc})
        with open(self.run_dir / LOG, "a") as log:
            log.write(json.dumps(row) + "\n")
        return auc

    def _learning_rate(self, optimizer, steps: int, seconds: float) -> float:
        """The step's learning rate, set on every parameter group (each keeps its ratio to the base)."""
        scale = learning_rate_scale(self.config, self.epoch + self.step / steps, seconds)
        if scale != 1.0 and optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * scale
        return self.config.lr * scale

    def _out_of_time(self) -> bool:
        return self.config.max_minutes is not None and self.train_seconds > 60 * self.config.max_minutes

    def _checkpoint(self, optimizer, sampler: TripleSampler) -> None:
        state = {
            "model": self.model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else {},
            "sampler": json.dumps(sampler.rng.bit_generator.state), "history": json.dumps(self.history),
            "epoch": self.epoch, "step": self.step, "best_auc": self.best_auc, "bad_epochs": self.bad_epochs,
            "train_seconds": self.train_seconds,
        }
        with atomic_path(self.run_dir / STATE) as tmp:
            torch.save(state, tmp)

    def _restore(self, optimizer, sampler: TripleSampler) -> None:
        state = torch.load(self.run_dir / STATE, weights_only=True)  # the restricted unpickler
        self.model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        sampler.rng.bit_generator.state = json.loads(state["sampler"])
        self.history = json.loads(state["history"])
        self.epoch, self.step, self.best_auc = state["epoch"], state["step"], state["best_auc"]
        self.bad_epochs, self.train_seconds = state["bad_epochs"], state["train_seconds"]


def learning_rate_scale(config: TrainConfig, epochs_done: float, seconds: float) -> float:
    """The factor on the base learning rate after `epochs_done` epochs and `seconds` of training."""
    if config.lr_schedule == "constant":
        return 1.0
    done = epochs_done / config.epochs if config.epochs else 1.0
    if config.max_minutes:
        done = max(done, seconds / (60 * config.max_minutes))
    return 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def _subsample(held, n_users: int, seed: int):
    """The held-out pairs of a random subset of users (for cheaper validation)."""
    users = np.unique(held.pair_users)
    keep = np.isin(held.pair_users, np.random.default_rng(seed).choice(users, size=n_users, replace=False))
    held.pair_users, held.pair_items = held.pair_users[keep], held.pair_items[keep]
    return held
