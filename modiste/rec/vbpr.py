"""VBPR (He & McAuley, AAAI 2016): BPR-MF plus a visual term over frozen image features.

    x_ui = beta_i + beta' . f_i + gamma_u . gamma_i + theta_u . (E f_i)

Trained like BPR-MF (`modiste.rec.bpr`): the paper's SGD on ln sigma(x_uij), the per-user and
per-item rows one triple at a time in a numba loop, and the shared E and beta' moved once per
batch by the batch's mean gradient (per-triple updates of the D x K' matrix E would cost 30x
more). Earlier versions lost to this: Adam over the whole tables drifted rows that were not in
the batch with its momentum, and batched SGD sat at PopRank's AUC for the first ten epochs of
the default world.

f_i are the item's features from `modiste.vision.encoder.ImageEncoder`, an autoencoder that
modiste trains on the catalogue's pictures alone (no recommendation signal, no attribute
labels): the stand-in for the paper's ImageNet CNN features, which cannot be downloaded here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from modiste.rec.base import ModelConfig, Recommender
from modiste.vision.encoder import dataset_features


@dataclass
class VBPRConfig(ModelConfig):
    """factors: K of gamma; visual_factors: K' of theta and E; reg: L2 on gamma, beta and theta;
    reg_visual: L2 on E and beta'; visual_lr_scale: the step of E and beta' relative to the rows'."""

    factors: int = 32
    visual_factors: int = 32
    reg: float = 0.05
    reg_visual: float = 1e-3
    visual_lr_scale: float = 0.02


class VBPR(Recommender):
    name = "vbpr"
    Config = VBPRConfig
    sampling = "interaction"  # as in BPR-MF
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
        return cls(config, data.n_users, data.n_items, features=dataset_features(ds))

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
        # The visual side of each triple from the batch's E (E and beta' move once per batch) ...
        df = self.features[positives] - self.features[negatives]  # (n, D)
        visual, visual_bias = df @ self.embedding, df @ self.visual_bias
        g_theta = torch.empty_like(visual)
        g = torch.empty(len(users))
        # ... then LearnBPR triple by triple for the per-user and per-item rows, as in BPR-MF.
        loss = _learn_vbpr(*(t.detach().numpy() for t in (self.user_factors, self.item_factors, self.item_bias,
                                                          self.user_visual)),
                           batch.users, batch.positives, batch.negatives, visual.numpy(), visual_bias.numpy(),
                           g.numpy(), g_theta.numpy(), np.float32(lr), np.float32(c.reg))
        shared_lr = lr * c.visual_lr_scale
        self.embedding += shared_lr * (df.T @ g_theta / len(users) - c.reg_visual * self.embedding)
        self.visual_bias += shared_lr * (df.T @ g / len(users) - c.reg_visual * self.visual_bias)
        return loss

    def score_tensor(self, users):
        visual_items = self.features @ self.embedding  # (n_items, K')
        return (self.item_bias + self.features @ self.visual_bias)[None, :] \
            + self.user_factors[users] @ self.item_factors.T + self.user_visual[users] @ visual_items.T


@numba.njit(cache=True, nogil=True)
def _learn_vbpr(user_factors, item_factors, item_bias, user_visual, users, positives, negatives, visual,
                visual_bias, g_out, g_theta_out, lr, reg):
    """LearnBPR for the rows of VBPR, one triple at a time, in place. `visual[t]` = E^T (f_i - f_j) and
    `visual_bias[t]` = beta' . (f_i - f_j) of triple t; writes d ln sigma / dx (g_out) and g * theta_u
    (g_theta_out) for the batch's gradient of E and beta'. Returns the mean -ln sigma(x_uij)."""
    k, kv = user_factors.shape[1], user_visual.shape[1]
    total = 0.0
    for t in range(users.shape[0]):
        u, i, j = users[t], positives[t], negatives[t]
        x = item_bias[i] - item_bias[j] + visual_bias[t]
        for f in range(k):
            x += user_factors[u, f] * (item_factors[i, f] - item_factors[j, f])
        for f in range(kv):
            x += user_visual[u, f] * visual[t, f]
        g = 1.0 / (1.0 + math.exp(x))
        total += max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
        g_out[t] = g
        for f in range(k):
            wu, wi, wj = user_factors[u, f], item_factors[i, f], item_factors[j, f]
            user_factors[u, f] += lr * (g * (wi - wj) - reg * wu)
            item_factors[i, f] += lr * (g * wu - reg * wi)
            item_factors[j, f] += lr * (-g * wu - reg * wj)
        for f in range(kv):
            theta = user_visual[u, f]
            g_theta_out[t, f] = g * theta
            user_visual[u, f] += lr * (g * visual[t, f] - reg * theta)
        item_bias[i] += lr * (g - reg * item_bias[i])
        item_bias[j] += lr * (-g - reg * item_bias[j])
    return total / max(users.shape[0], 1)


def _standardize(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per dimension: the scale of f_i then does not depend on the encoder."""
    f = np.asarray(features, np.float32)
    return (f - f.mean(0)) / (f.std(0) + 1e-6)
