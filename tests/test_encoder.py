"""The image encoder: it learns from pixels alone, its features separate items, and it saves and loads exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modiste.data import Dataset
from modiste.vision.encoder import META, WEIGHTS, EncoderConfig, ImageEncoder, features_for

# Small and quick: a narrow network and one thread, so the whole file runs in seconds.
FAST = EncoderConfig(epochs=4, batch_size=32, lr=3e-3, dim=64, width=16, threads=1, seed=0)


@pytest.fixture(scope="module")
def dataset(tiny_world) -> Dataset:
    return Dataset(tiny_world)


@pytest.fixture(scope="module")
def trained(dataset) -> tuple[ImageEncoder, dict]:
    enc = ImageEncoder()
    history = enc.fit(dataset.images, FAST)
    return enc, history


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))


def test_training_lowers_the_reconstruction_loss(dataset, trained):
    enc, history = trained
    assert len(history["loss"]) == FAST.epochs and history["seconds"] > 0
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    images = np.asarray(dataset.images[:200])
    torch.manual_seed(0)
    untrained = ImageEncoder(FAST.dim, FAST.width).eval()
    assert mse(enc.reconstruct(images), images) < 0.5 * mse(untrained.reconstruct(images), images)


def test_encode_gives_float32_features_in_batches_without_touching_the_model(dataset, trained):
    enc, _ = trained
    enc.train()  # encode must switch to eval mode for the call and back afterwards
    feats = enc.encode(dataset.images)  # the memory map itself, read batch by batch
    assert enc.training
    enc.eval()
    assert feats.shape == (len(dataset.items), FAST.dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    np.testing.assert_allclose(enc.encode(dataset.images[:50], batch_size=7), feats[:50], rtol=1e-4, atol=1e-5)
    assert enc.encode(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, FAST.dim)
    recon = enc.reconstruct(np.asarray(dataset.images[:5]))
    assert recon.shape == (5, 64, 64, 3) and recon.dtype == np.uint8
    with pytest.raises(ValueError, match="uint8"):
        enc.encode(np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="64, 64, 3"):
        enc.encode(np.zeros((2, 32, 32, 3), np.uint8))


def test_nearest_neighbour_shares_the_category_far_more_often_than_chance(dataset, trained):
    enc, _ = trained
    feats = enc.encode(dataset.images)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    sims = feats @ feats.T
    np.fill_diagonal(sims, -np.inf)
    category = dataset.items["category"].to_numpy()
    same = np.mean(category[sims.argmax(1)] == category)
    shares = dataset.items["category"].value_counts(normalize=True).to_numpy()
    chance = float(np.sum(shares ** 2))  # a random other item has the same category
    assert same > max(3 * chance, 0.5), (same, chance)


def test_save_and_load_give_identical_features(dataset, trained, tmp_path):
    enc, history = trained
    enc.save(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == sorted([META, WEIGHTS])
    assert [p.name for p in tmp_path.iterdir()] == ["enc"]  # no temporary left behind
    again = ImageEncoder.load(tmp_path / "enc")
    assert not again.training and (again.dim, again.width) == (FAST.dim, FAST.width)
    assert again.config == FAST and again.history["loss"] == history["loss"]
    images = np.asarray(dataset.images[:64])
    np.testing.assert_array_equal(again.encode(images), enc.encode(images))
    np.testing.assert_array_equal(again.reconstruct(images), enc.reconstruct(images))
    enc.save(tmp_path / "enc")  # saving over an existing encoder replaces it
    assert ImageEncoder.is_saved(tmp_path / "enc")


def test_same_seed_same_training_other_seed_other_weights(dataset):
    images = np.asarray(dataset.images[:96])
    config = EncoderConfig(epochs=1, batch_size=32, dim=16, width=8, threads=1, seed=3)
    a, b, c = ImageEncoder(), ImageEncoder(), ImageEncoder()
    assert a.fit(images, config)["loss"] == b.fit(images, config)["loss"]
    c.fit(images, EncoderConfig(**{**config.__dict__, "seed": 4}))
    np.testing.assert_array_equal(a.encode(images), b.encode(images))
    assert not np.array_equal(a.encode(images), c.encode(images))


def test_fit_leaves_torch_threads_as_they_were(dataset):
    before = torch.get_num_threads()
    ImageEncoder().fit(np.asarray(dataset.images[:32]), EncoderConfig(epochs=1, batch_size=32, dim=8, width=8,
                                                                        threads=1 if before != 1 else 2))
    assert torch.get_num_threads() == before


def test_features_for_trains_once_then_loads(dataset, tmp_path, monkeypatch):
    config = EncoderConfig(epochs=1, batch_size=64, dim=32, width=8, threads=1)
    directory = tmp_path / "encoder"
    first = features_for(dataset, directory, config)
    assert first.shape == (len(dataset.items), 32) and first.dtype == np.float32
    assert ImageEncoder.is_saved(directory)
    stamp = (directory / WEIGHTS).stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("features_for retrained although an encoder was saved")

    monkeypatch.setattr(ImageEncoder, "fit", no_training)
    second = features_for(dataset, directory, config)
    np.testing.assert_array_equal(second, first)
    assert (directory / WEIGHTS).stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="retrained"):
        features_for(dataset, None, config)  # without a directory it must train
