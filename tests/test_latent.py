"""The latent codec on the tiny world: training lowers the reconstruction error, the latent is
standardised, save/load keeps every output, and a dataset's latents are computed once and cached."""

from __future__ import annotations

import numpy as np
import pytest

from modiste.data import Dataset
from modiste.vision.latent import CodecConfig, LatentCodec, dataset_codec, dataset_latents

FAST = CodecConfig(epochs=3, batch_size=32, threads=1, max_minutes=None)


@pytest.fixture(scope="module")
def ds(tiny_world):
    return Dataset(tiny_world)


def _mse(codec: LatentCodec, images: np.ndarray) -> float:
    back = codec.decode(codec.encode(images)).astype(np.float32)
    return float(np.mean((back - images.astype(np.float32)) ** 2))


def test_training_lowers_the_error_and_standardises_the_latent(ds, tmp_path):
    images = np.asarray(ds.images[:64])
    codec = LatentCodec(width=16)
    before = _mse(codec, images)
    history = codec.fit(ds.images, FAST)
    assert history["steps"] > 0 and history["pictures"] == history["steps"] * 32
    assert _mse(codec, images) < 0.5 * before
    z = codec.encode(np.asarray(ds.images))
    assert z.shape == (len(ds.items), 4, 16, 16)
    assert np.allclose(z.mean(axis=(0, 2, 3)), 0, atol=0.25) and np.allclose(z.std(axis=(0, 2, 3)), 1, atol=0.25)
    loaded = LatentCodec.load(codec.save(tmp_path / "codec"))
    assert np.array_equal(loaded.encode(images), codec.encode(images))
    assert np.array_equal(loaded.decode(z[:4]), codec.decode(z[:4]))
    with pytest.raises(FileNotFoundError, match="holds no latent codec"):
        LatentCodec.load(tmp_path / "nothing")


def test_a_datasets_latents_are_cached_with_its_codec(ds, monkeypatch, tmp_path):
    monkeypatch.setenv("MODISTE_CACHE", str(tmp_path))
    latents = dataset_latents(ds, CodecConfig(epochs=1, batch_size=32, threads=1, width=16))
    assert latents.dtype == np.float16 and latents.shape == (len(ds.items), 4, 16, 16)
    codec = dataset_codec(ds)  # now loaded, not trained again
    assert codec.width == 16
    assert np.allclose(latents[:8], codec.encode(np.asarray(ds.images[:8])), atol=1e-2)
    assert dataset_latents(ds) is not latents and np.array_equal(dataset_latents(ds), latents)
