"""The loop the generator trainers share (the GAN, the dual model): epochs of steps, a checkpoint
every so many seconds and after every epoch, a budget of training time, and counters that let a
resumed run go on exactly where it stopped, mid-epoch included.

A trainer subclasses `EpochLoop` and fills in the hooks; `run()` does the rest:

    order(epoch)           the example rows of an epoch, in training order (seeded by the epoch)
    train_step(rows)       one optimizer step on those rows -> its losses, {name: float}
    end_epoch(losses, seconds, partial)   record and save after an epoch (partial: cut by the budget)
    checkpoint(), restore()               write / read the training state
    finish()               after the loop, e.g. save an untrained model when there were no epochs
"""

from __future__ import annotations

import time

import numpy as np

from modiste.progress import Progress


class EpochLoop:
    label = "training"
    state_path = None  # where checkpoint() writes; run() restores from it when it exists

    def __init__(self, epochs: int, batch_size: int, max_minutes: float | None, checkpoint_every_s: float):
        self.epochs, self.batch_size = epochs, batch_size
        self.max_minutes, self.checkpoint_every_s = max_minutes, checkpoint_every_s
        self.epoch, self.step, self.train_seconds = 0, 0, 0.0

    # ------------------------------------------------------------------ hooks

    def order(self, epoch: int) -> np.ndarray:
        raise NotImplementedError

    def train_step(self, rows: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self, losses: list[dict[str, float]], seconds: float, partial: bool) -> None:
        raise NotImplementedError

    def checkpoint(self) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    # ------------------------------------------------------------------ the loop

    def run(self, resume: bool, progress: bool) -> None:
        if resume and self.state_path is not None and self.state_path.exists():
            self.restore()
        last_checkpoint = time.monotonic()
        with Progress(enabled=progress) as bar:
            while self.epoch < self.epochs and not self.out_of_time():
                order = self.order(self.epoch)
                bs = min(self.batch_size, len(order))
                steps = max(1, len(order) // bs)
                start, before, losses = time.perf_counter(), self.train_seconds, []
                for _ in bar.track(range(self.step, steps), f"{self.label} epoch {self.epoch + 1}",
                                   total=steps - self.step):
                    losses.append(self.train_step(order[self.step * bs:(self.step + 1) * bs]))
                    self.step += 1
                    if len(losses) % 20 == 0:
                        bar.info(" ".join(f"{k} {np.mean([l[k] for l in losses[-20:]]):.3f}" for k in losses[-1]))
                    if time.monotonic() - last_checkpoint > self.checkpoint_every_s:
                        self.train_seconds += time.perf_counter() - start
                        start = time.perf_counter()
                        self.checkpoint()
                        last_checkpoint = time.monotonic()
                    if self.out_of_time(time.perf_counter() - start):
                        break
                self.train_seconds += time.perf_counter() - start
                finished = self.step >= steps
                self.end_epoch(losses, self.train_seconds - before, partial=not finished)
                if finished:
                    self.epoch, self.step = self.epoch + 1, 0
                self.checkpoint()
                last_checkpoint = time.monotonic()
        self.finish()

    def out_of_time(self, extra: float = 0.0) -> bool:
        return self.max_minutes is not None and self.train_seconds + extra > 60 * self.max_minutes
