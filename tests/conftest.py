"""Shared fixtures: one tiny synthetic world per test session, and writable copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from modiste.data.world.generate import generate_world


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Caches (e.g. trained image encoders) go to a temporary folder, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MODISTE_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Torch on one thread in every test module, as modiste trains by default: on 2 cores, two
    threads collapse under any other load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    """The tiny preset, seed 0. Read-only: copy it (`world_copy`) before changing anything."""
    return generate_world(tmp_path_factory.mktemp("worlds") / "tiny", preset="tiny", seed=0, progress=False)


@pytest.fixture
def world_copy(tiny_world, tmp_path) -> Path:
    """A private copy of the tiny world that a test may break."""
    return Path(shutil.copytree(tiny_world, tmp_path / "tiny"))


@pytest.fixture(scope="session")
def app_runs(tiny_world, tmp_path_factory) -> tuple[Path, Path]:
    """(a BPR run, an outfit run) on the tiny world for the app's tests: a few epochs each, one thread,
    trained once per session."""
    from modiste.outfit.train import train_outfit
    from modiste.rec.train import train_recommender

    root = tmp_path_factory.mktemp("app-runs")
    train_recommender("bpr", tiny_world, root / "bpr", train_overrides={"epochs": 10, "threads": 1, "eval_users": None},
                      progress=False)
    train_outfit(tiny_world, root / "outfit", model_overrides={"images": False},
                 train_overrides={"epochs": 1, "taste_epochs": 0, "taste_batch": 512, "threads": 1}, progress=False)
    return root / "bpr", root / "outfit"
