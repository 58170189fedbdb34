"""VBPR (He & McAuley, AAAI 2016): BPR-MF plus a visual term over frozen image features.

    x_ui = beta_i + beta' . f_i + gamma_u . gamma_i + theta_u . (E f_i)

Trained like BPR-MF (`modiste.rec.bpr`): hand-written minibatch SGD on ln sigma(x_uij), the
per-triple updates of the user and item rows scattered with index_add_, and the shared E and
beta' moved by the batch's mean gradient. (Adam over the whole tables drifts rows that are not in
the batch with its momentum, and validation AUC peaked below PopRank's on the default world.)

f_i are the item's features from `modiste.vision.encoder.ImageEncoder`, an autoencoder that
modiste trains on the catalogue's pictures alone (no recommendation signal, no attribute
labels): the stand-in for the paper's ImageNet CNN features, which cannot be downloaded here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from modiste.rec.base import ModelConfig, Recommender


@dataclass
class VBPRConfig(ModelConfig):
    """factors: K of gamma; visual_factors: K' of theta and E; reg: L2 on gamma, beta and theta;
    reg_visual: L2 on E and beta'; visual_lr_scale: the step of E and beta' relative to the rows'."""

    factors: int = 32
    visual_factors: int = 32
    reg: float = 0.05
    reg_visual: float = 1e-3
    visual_lr_scale: float = 0.1


class VBPR(Recommender):
    name = "vbpr"
    Config = VBPRConfig
    needs_images = True

    def __init__(self, config: VBPRConfig, n_users: int, n_items: int, features: np.ndarray | None = None,
                 feature_dim: int | None = None):
        super().__init__(config, n_users, n_items)
        dim = features.shape[1] if features is not None else feature_dim
        g = torch.Generator().manual_seed(config.seed)
        self.user_factors = torch.nn.Parameter(torch.randn(n_users, config.factors, generator=g) * 0.01)
        self.item_factors = torch.nn.Parameter(torch.randn(n_items, config.factors, generator=g) * 0.01)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))
        self.user_visual = torch.nn.Parameter(torch.randn(n_users, config.visual_factors, generator=g) * 0.01)
        self.embedding = torch.nn.Parameter(torch.randn(dim, config.visual_factors, generator=g) * 0.01)  # E
        self.visual_bias = torch.nn.Parameter(torch.zeros(dim))  # beta'
        self.register_buffer("features", torch.zeros(n_items, dim) if features is None
                             else torch.as_tensor(_standardize(features)))

    @classmethod
    def build(cls, config, data, ds):
        cls.check_dataset(ds)
        return cls(config, data.n_users, data.n_items, features=image_features(ds))

    @classmethod
    def from_saved(cls, config, meta):
        return cls(config, meta["n_users"], meta["n_items"], feature_dim=meta["feature_dim"])

    def extra_state(self):
        return {"feature_dim": int(self.features.shape[1])}

    def optimizer(self, lr):
        return None  # plain SGD, below

    @torch.no_grad()
    def train_step(self, batch, optimizer, lr):
        c = self.config
        users, positives, negatives = batch.tensors()
        n = len(users)
        items = torch.cat([positives, negatives])
        gu, tu = self.user_factors[users], self.user_visual[users]
        gv, b = self.item_factors[items], self.item_bias[items]
        df = self.features[positives] - self.features[negatives]  # (n, D)
        visual = df @ self.embedding  # (n, K')
        x = b[:n] - b[n:] + df @ self.visual_bias + (gu * (gv[:n] - gv[n:])).sum(-1) + (tu * visual).sum(-1)
        g = torch.sigmoid(-x)  # d ln sigma(x) / dx
        sign = torch.cat([g, -g])
        self.user_factors.index_add_(0, users, lr * (g[:, None] * (gv[:n] - gv[n:]) - c.reg * gu))
        self.user_visual.index_add_(0, users, lr * (g[:, None] * visual - c.reg * tu))
        self.item_factors.index_add_(0, items, lr * (sign[:, None] * gu.repeat(2, 1) - c.reg * gv))
        self.item_bias.index_add_(0, items, lr * (sign - c.reg * b))
        shared_lr = lr * c.visual_lr_scale
        self.embedding += shared_lr * ((df * g[:, None]).T @ tu / n - c.reg_visual * self.embedding)
        self.visual_bias += shared_lr * ((df * g[:, None]).mean(0) - c.reg_visual * self.visual_bias)
        return float(torch.nn.functional.softplus(-x).mean())

    def score_tensor(self, users):
        visual_items = self.features @ self.embedding  # (n_items, K')
        return (self.item_bias + self.features @ self.visual_bias)[None, :] \
            + self.user_factors[users] @ self.item_factors.T + self.user_visual[users] @ visual_items.T


def image_features(ds) -> np.ndarray:
    """The dataset's frozen item features: the encoder is trained once per dataset and cached."""
    from modiste.cache import dataset_cache
    from modiste.vision.encoder import EncoderConfig, features_for

    # One thread: two collapse when anything else competes for the cores.
    return features_for(ds, dataset_cache(ds, "encoder"), EncoderConfig(threads=1))


def _standardize(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per dimension: the scale of f_i then does not depend on the encoder."""
    f = np.asarray(features, np.float32)
    return (f - f.mean(0)) / (f.std(0) + 1e-6)
