"""Train the category-conditional GAN into a run directory, with checkpoints and resume.

A run directory holds (the layout of the ranking and outfit runs):

    run.json            the networks' and the training's settings and the dataset
    state.pt            the latest training state (G, D, the averaged G, both optimizers, the random
                        states, epoch and step), written atomically every `checkpoint_every_s`
                        seconds and after every epoch, so a run killed at any moment resumes from it
    model/              the GAN to use (averaged generator + discriminator, safetensors + JSON),
                        written after every epoch and at the end
    samples-epoch-NN.png  a contact sheet after every epoch: one row per category, fixed z
    metrics.json, log.txt   one row per epoch: losses, seconds, images per second

`state.pt` is read with torch's restricted unpickler (weights_only=True).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from modiste.config import with_overrides
from modiste.data import Dataset
from modiste.design.gan import (CategoryGAN, GANConfig, lsgan_d_loss, lsgan_g_loss, recompute_batch_norm,
                                update_average)
from modiste.io import atomic_path, write_json
from modiste.training import EpochLoop
from modiste.vision.common import to_unit_range

RUN, STATE, MODEL, METRICS, LOG = "run.json", "state.pt", "model", "metrics.json", "log.txt"


@dataclass
class GANTrainConfig:
    """How to train.

    Attributes
    ----------
    epochs : at most this many passes over the pictures.
    batch_size : pictures per step (the same number of fakes).
    lr_g, lr_d, beta1 : Adam (beta2 = 0.999) for the generator and the discriminator.
    ema : decay of the generator's weight average, after a warm-up (0: no average, the live weights are saved).
    max_minutes : stop after this much training time (None: no limit).
    checkpoint_every_s : seconds between mid-epoch checkpoints.
    threads : torch CPU threads (None: every core). Two, the issue's budget: the wide D needs both
        (135 pictures/s on 2 idle cores); on a core shared with other work, one is faster.
    mirror : mirror real pictures left-right at random.
    max_images : train on a seeded random subset of at most this many pictures (None: all).
    sheet_columns : samples per category in each epoch's contact sheet.
    seed : batches, z and mirroring.
    """

    epochs: int = 40
    batch_size: int = 64
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    ema: float = 0.999
    max_minutes: float | None = 30.0
    checkpoint_every_s: float = 60.0
    threads: int | None = 2
    mirror: bool = True
    max_images: int | None = None
    sheet_columns: int = 8
    seed: int = 0


def train_gan(data_dir: str | Path, run_dir: str | Path, model_overrides: dict | None = None,
              train_overrides: dict | None = None, resume: bool = True, progress: bool = True) -> CategoryGAN:
    """Train (or resume) the GAN on a dataset's pictures; returns the trained GAN (eval mode)."""
    run_dir = Path(run_dir)
    ds = Dataset(data_dir)
    if not ds.has_images:
        raise ValueError(f"dataset '{ds.name}' has no images to learn from")
    model_config = with_overrides(GANConfig(), model_overrides)
    train_config = with_overrides(GANTrainConfig(), train_overrides)
    if (run_dir / RUN).exists() and resume:
        saved = json.loads((run_dir / RUN).read_text())
        if saved.get("task") != "gan" or saved["data"]["name"] != ds.name:
            raise ValueError(f"{run_dir} is another run ({saved.get('task', saved.get('model'))} on "
                             f"'{saved['data']['name']}'); choose another --out")
        if not model_overrides:
            model_config = GANConfig(**saved["model_config"])
        if not train_overrides:
            train_config = GANTrainConfig(**saved["train_config"])
    categories = sorted(ds.items["category"].astype(str).unique())
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN, {"task": "gan", "model_config": asdict(model_config), "train_config": asdict(train_config),
                               "categories": categories,
                               "data": {"path": str(Path(data_dir).resolve()), "name": ds.name}})
    torch.set_num_threads(train_config.threads or os.cpu_count() or 1)
    gan = CategoryGAN(categories, model_config)
    labels = np.searchsorted(categories, ds.items["category"].astype(str).to_numpy())
    _Trainer(gan, ds.images, labels, train_config, run_dir).run(resume, progress)
    return CategoryGAN.load(run_dir / MODEL)


class _Trainer(EpochLoop):
    label = "GAN"

    def __init__(self, gan: CategoryGAN, images: np.ndarray, labels: np.ndarray, config: GANTrainConfig,
                 run_dir: Path):
        super().__init__(config.epochs, config.batch_size, config.max_minutes, config.checkpoint_every_s)
        self.gan, self.images, self.labels, self.config, self.run_dir = gan, images, labels, config, run_dir
        self.state_path = run_dir / STATE
        rows = np.arange(len(images))
        if config.max_images is not None and config.max_images < len(rows):
            rows = np.sort(np.random.default_rng([config.seed, 3]).choice(rows, config.max_images, replace=False))
        self.rows = rows
        self.G, self.D = gan.generator, gan.discriminator
        self.average = CategoryGAN(gan.categories, gan.config).generator  # the weight average, what is sampled
        self.average.load_state_dict(self.G.state_dict())
        betas = (config.beta1, 0.999)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        self.random = torch.Generator().manual_seed(config.seed)  # z and mirroring
        self.history: list[dict] = []
        self.images_seen = 0
        # The fixed z of every epoch's contact sheet: the same tiles, epoch after epoch.
        self.sheet_z = CategoryGAN.random_z(config.sheet_columns, gan.z_dim, torch.Generator().manual_seed(1234))

    def order(self, epoch: int) -> np.ndarray:
        return self.rows[np.random.default_rng([self.config.seed, epoch]).permutation(len(self.rows))]

    def finish(self) -> None:
        if not (self.run_dir / MODEL).exists():  # epochs=0: the untrained GAN is what there is
            self._save_model()

    def train_step(self, rows: np.ndarray) -> dict[str, float]:
        cfg = self.config
        idx = np.sort(rows)  # sorted: sequential memmap reads
        self.G.train()
        self.D.train()
        real = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        if cfg.mirror:
            flip = torch.rand(len(real), generator=self.random) < 0.5
            real[flip] = real[flip].flip(2)  # (B, H, W, C): W is axis 2
        x = to_unit_range(real)
        c = torch.from_numpy(self.labels[idx]).long()
        z = CategoryGAN.random_z(len(idx), self.gan.z_dim, self.random)
        fake = self.G(z, c)
        d_loss = lsgan_d_loss(self.D(x, c), self.D(fake.detach(), c))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        g_loss = lsgan_g_loss(self.D(fake, c))
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        # A warm-up of the average's decay, (1 + t) / (10 + t) up to `ema`, so that short runs average recent weights.
        t = self.images_seen // max(1, len(idx))
        update_average(self.average, self.G, min(cfg.ema, (1 + t) / (10 + t)))
        self.images_seen += len(idx)
        return {"D": float(d_loss.detach()), "G": float(g_loss.detach())}

    # ------------------------------------------------------------------ saving

    def _save_model(self) -> CategoryGAN:
        """The averaged generator (batch norm recomputed for its weights) with D, into run/model."""
        out = CategoryGAN(self.gan.categories, self.gan.config)
        out.generator.load_state_dict(self.average.state_dict() if self.config.ema > 0 else self.G.state_dict())
        recompute_batch_norm(out.generator, len(out.categories), out.z_dim, seed=self.config.seed)
        out.discriminator.load_state_dict(self.D.state_dict())
        out.history = {"epochs": self.history, "train_seconds": round(self.train_seconds, 1),
                       "images_seen": self.images_seen, "threads": torch.get_num_threads()}
        out.save(self.run_dir / MODEL)
        return out.eval()

    def end_epoch(self, losses: list[dict[str, float]], seconds: float, partial: bool) -> None:
        row = {"epoch": self.epoch + 1, "partial": partial,
               "d_loss": float(np.mean([l["D"] for l in losses])) if losses else None,
               "g_loss": float(np.mean([l["G"] for l in losses])) if losses else None, "seconds": round(seconds, 2),
               "train_seconds": round(self.train_seconds, 2), "images_seen": self.images_seen,
               "images_per_second": round(len(losses) * min(self.config.batch_size, len(self.rows)) / max(seconds, 1e-9), 1)}
        self.history.append(row)
        gan = self._save_model()
        self._sheet(gan)
        write_json(self.run_dir / METRICS, {"history": self.history, "train_seconds": self.train_seconds,
                                            "images_seen": self.images_seen})
        with open(self.run_dir / LOG, "a") as log:
            log.write(json.dumps(row) + "\n")

    def _sheet(self, gan: CategoryGAN) -> None:
        from modiste.viz import contact_sheet, save_png

        tiles, names = [], []
        for category in gan.categories:
            tiles.extend(gan.sample(len(self.sheet_z), category, z=self.sheet_z))
            names.extend([category] * len(self.sheet_z))
        save_png(contact_sheet(tiles, names, columns=len(self.sheet_z), label_lines=1,
                               title=f"GAN samples after epoch {self.epoch + 1} ({self.images_seen:,} pictures seen)"),
                 self.run_dir / f"samples-epoch-{self.epoch + 1:02d}.png")

    def checkpoint(self) -> None:
        state = {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "average": self.average.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "random": self.random.get_state(),
            "history": json.dumps(self.history), "epoch": self.epoch, "step": self.step,
            "train_seconds": self.train_seconds, "images_seen": self.images_seen,
        }
        with atomic_path(self.run_dir / STATE) as tmp:
            torch.save(state, tmp)

    def restore(self) -> None:
        state = torch.load(self.run_dir / STATE, weights_only=True)  # the restricted unpickler
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.average.load_state_dict(state["average"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.random.set_state(state["random"])
        self.history = json.loads(state["history"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.train_seconds, self.images_seen = state["train_seconds"], state["images_seen"]
