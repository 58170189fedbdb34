"""Tests of the attribute probe (modiste.vision.probe): attributes are visible in the world's pictures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modiste.data import Dataset
from modiste.vision.probe import AttributeProbe, ProbeConfig, train_probe

# About 35 s on 2 idle cores (800 training images, 20 epochs); the whole file takes about 60 s.
CONFIG = ProbeConfig(epochs=20, threads=2, seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_world) -> Dataset:
    return Dataset(tiny_world)


@pytest.fixture(scope="session")
def trained(tiny):
    """A probe trained on 80% of the tiny world's items (seeded split), and its report."""
    return train_probe(tiny, CONFIG)


@pytest.mark.slow
def test_attributes_are_recovered_from_pixels(trained):
    probe, report = trained
    acc, chance = report["accuracy"], report["chance"]
    assert report["n_train"] == 800 and report["n_test"] == 200
    assert set(acc) == {"category", "color", "pattern", "material", "silhouette", "design", "style"}
    # Measured with seeds 0 and 1 (20 epochs): category 0.885 / 0.875, colour 0.815 / 0.815. 800 pictures
    # are too few for 0.9 / 0.8 with margin (the small world's 6,400 reach that, see bench/attribute_recovery.py).
    assert acc["category"] >= 0.8, report
    assert acc["color"] >= 0.7, report
    # Every attribute is learned, well above always answering the commonest value (measured margins:
    # shapes and colour +0.7, pattern +0.3, style +0.35, material +0.17; material is the hardest to see).
    margins = {"category": 0.5, "color": 0.5, "silhouette": 0.5, "design": 0.5, "pattern": 0.15, "style": 0.2,
               "material": 0.05}
    for attribute, margin in margins.items():
        assert acc[attribute] >= chance[attribute] + margin, (attribute, report)


@pytest.mark.slow
def test_predictions_are_vocabulary_values_and_probabilities(trained, tiny):
    probe, _ = trained
    images = tiny.images[:37]
    pred, proba = probe.predict(images), probe.predict_proba(images)
    for attribute, vocab in probe.vocabularies.items():
        assert vocab == sorted(tiny.items[attribute].unique())
        assert proba[attribute].shape == (37, len(vocab))
        np.testing.assert_allclose(proba[attribute].sum(1), 1.0, rtol=1e-5)
        assert set(pred[attribute]) <= set(vocab)
        assert list(pred[attribute]) == [vocab[i] for i in proba[attribute].argmax(1)]
    assert probe.embed(images).shape == (37, probe.dim)
    assert probe.embed(images[:0]).shape == (0, probe.dim)


@pytest.mark.slow
def test_save_load_round_trip(trained, tiny, tmp_path):
    probe, _ = trained
    images = np.asarray(tiny.images[:64])
    path = probe.save(tmp_path / "probe")
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "probe.json"]
    assert not list(tmp_path.glob(".*"))  # no temporary left behind
    loaded = AttributeProbe.load(path)
    assert loaded.attributes == probe.attributes and loaded.vocabularies == probe.vocabularies
    for attribute, p in loaded.predict_proba(images).items():
        np.testing.assert_array_equal(p, probe.predict_proba(images)[attribute])
    np.testing.assert_array_equal(loaded.embed(images), probe.embed(images))


@pytest.mark.slow
def test_shuffled_labels_give_chance_accuracy(tiny):
    """With labels shuffled across items the pictures carry no information: held-out accuracy is chance."""
    items = tiny.items
    rng = np.random.default_rng(0)
    shuffled = items.copy()
    for attribute in ("category", "color"):
        shuffled[attribute] = rng.permutation(items[attribute].to_numpy())
    fake = _WithItems(tiny, shuffled)
    _, report = train_probe(fake, ProbeConfig(epochs=6, threads=2, seed=0, attributes=("category", "color")))
    for attribute in ("category", "color"):
        assert report["accuracy"][attribute] <= report["chance"][attribute] + 0.08, report


def test_fit_is_deterministic_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 64, 64, 3), dtype=np.uint8)
    labels = {"color": rng.choice(["red", "blue", None], 48)}
    config = ProbeConfig(epochs=1, batch_size=16, width=8, dim=16, threads=2, seed=3)
    a, b = AttributeProbe(), AttributeProbe()
    history = a.fit(images, labels, config)
    b.fit(images, labels, config)
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    assert a.vocabularies == {"color": ["blue", "red"]}  # missing labels are no class
    np.testing.assert_array_equal(a.embed(images), b.embed(images))
    with pytest.raises(ValueError, match="uint8"):
        a.predict(images.astype(np.float32))
    with pytest.raises(ValueError, match="expected 48 values"):
        a.fit(images, {"color": labels["color"][:10]}, config)


class _WithItems:
    """A dataset whose items table is replaced (the images stay)."""

    def __init__(self, dataset: Dataset, items: pd.DataFrame):
        self.items, self.images, self.attributes = items, dataset.images, dataset.attributes
