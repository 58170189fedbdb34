"""Metrics of generated pictures that every generator of modiste shares: FID and diversity.

FID is torchmetrics' `FrechetInceptionDistance` with a feature extractor that modiste trains
itself (no Inception weights can be downloaded here): the dataset's own `ImageEncoder`
(`modiste.vision.encoder`, a masked autoencoder trained on the catalogue's pictures without any
label), the same one that VBPR and the outfit model read, cached once per dataset. Every
generator (this GAN, later the diffusion models) is measured with the same extractor, so their
numbers compare with each other; they do not compare with Inception-FID figures of papers.

>>> encoder = fid_encoder(ds)                                  # trained once per dataset, then cached
>>> fid(real_images, fake_images, encoder)                     # uint8 (N, 64, 64, 3) each
>>> fid_by_category(real, real_cat, fake, fake_cat, encoder)   # {"overall": ..., "dress": ..., ...}
>>> diversity(features_of_one_users_designs)                   # 1 - mean pairwise cosine

Features and statistics are in double precision. With fewer pictures than feature dimensions
(256) the covariance is singular and FID carries a finite-sample bias: compare FIDs computed on
the same number of pictures (the design benchmark reports real-against-real at the same size,
the floor).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from modiste.vision.common import check_images
from modiste.vision.encoder import ImageEncoder


class EncoderFeatures(nn.Module):
    """torchmetrics' feature extractor: uint8 (N, 3, 64, 64) -> float64 (N, dim) encoder features."""

    def __init__(self, encoder: ImageEncoder):
        super().__init__()
        self.encoder = encoder.eval()
        self.num_features = int(encoder.dim)  # read by FrechetInceptionDistance

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 (N, 3, H, W) pictures, got {images.dtype} {tuple(images.shape)}")
        x = images.float() / 127.5 - 1.0  # the encoder's own scaling (to_unit_range), already channels-first
        return self.encoder.encode_tensor(x).double()


def fid_encoder(ds) -> ImageEncoder:
    """The dataset's image encoder, from the cache that `modiste.vision.encoder.dataset_features`
    fills (trained there on one thread the first time it is needed)."""
    from modiste.cache import dataset_cache
    from modiste.vision.encoder import dataset_features

    directory = dataset_cache(ds, "encoder")
    if not ImageEncoder.is_saved(directory):
        dataset_features(ds)  # trains and saves it there
    return ImageEncoder.load(directory)


def frechet_metric(encoder: ImageEncoder):
    """A torchmetrics FrechetInceptionDistance on the encoder's features (real features kept on reset)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=EncoderFeatures(encoder), reset_real_features=False)


def _update(metric, images: np.ndarray, real: bool, batch_size: int = 512) -> None:
    images = check_images(np.asarray(images))
    for i in range(0, len(images), batch_size):
        metric.update(torch.from_numpy(np.array(images[i:i + batch_size])).permute(0, 3, 1, 2), real=real)


def fid(real: np.ndarray, fake: np.ndarray, encoder: ImageEncoder) -> float:
    """FID between two sets of uint8 (N, 64, 64, 3) pictures (at least 2 each) in the encoder's feature space."""
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"FID needs at least 2 pictures on each side (got {len(real)} real, {len(fake)} generated)")
    metric = frechet_metric(encoder)
    _update(metric, real, True)
    _update(metric, fake, False)
    return max(0.0, float(metric.compute()))


class FIDReference:
    """Real pictures per category, encoded once; then FID of any generated set against them.

    >>> ref = FIDReference(encoder, ds.images, categories)      # categories: (n_items,) names
    >>> ref.score(fake_images, fake_categories)                 # {"overall": ..., "<category>": ...}
    """

    def __init__(self, encoder: ImageEncoder, real: np.ndarray, categories: np.ndarray, max_per_category: int | None = None,
                 seed: int = 0):
        self.encoder = encoder
        categories = np.asarray(categories).astype(str)
        rng = np.random.default_rng(seed)
        self.metrics, rows_all = {}, []
        for c in sorted(set(categories.tolist())):
            rows = np.flatnonzero(categories == c)
            if max_per_category is not None and len(rows) > max_per_category:
                rows = np.sort(rng.choice(rows, max_per_category, replace=False))
            rows_all.append(rows)
            self.metrics[c] = frechet_metric(encoder)
            _update(self.metrics[c], np.asarray(real[rows]), True)
        self.metrics["overall"] = frechet_metric(encoder)
        for c, rows in zip(sorted(set(categories.tolist())), rows_all):
            _update(self.metrics["overall"], np.asarray(real[rows]), True)

    def score(self, fake: np.ndarray, categories: np.ndarray) -> dict[str, float]:
        """FID per category present in `categories` (with at least 2 pictures) and over all of them."""
        categories = np.asarray(categories).astype(str)
        out = {}
        for c in sorted(set(categories.tolist())):
            rows = np.flatnonzero(categories == c)
            if c not in self.metrics or len(rows) < 2:
                continue
            out[c] = self._compute(self.metrics[c], fake[rows])
        out["overall"] = self._compute(self.metrics["overall"], fake)
        return out

    @staticmethod
    def _compute(metric, fake: np.ndarray) -> float:
        metric.reset()  # keeps the real features
        _update(metric, fake, False)
        value = max(0.0, float(metric.compute()))
        metric.reset()
        return value


def encode(encoder: ImageEncoder, images: np.ndarray) -> np.ndarray:
    """Encoder features float64 (N, dim) of uint8 pictures (N, 64, 64, 3), as FID reads them."""
    return encoder.encode(np.asarray(images)).astype(np.float64)


def diversity(features: np.ndarray) -> float:
    """1 - the mean cosine similarity between every pair of rows (N >= 2): 0 when all are alike."""
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        return float("nan")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    sim = f @ f.T
    n = len(f)
    return float(1 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


__all__ = ["EncoderFeatures", "FIDReference", "diversity", "encode", "fid", "fid_encoder",
           "frechet_metric"]
