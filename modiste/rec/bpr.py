"""BPR-MF with item bias (Rendle et al., UAI 2009): x_ui = beta_i + gamma_u . gamma_i.

Trained by the paper's LearnBPR, stochastic gradient ascent on ln sigma(x_uij) with L2
regularisation, done a minibatch at a time: the gradients of all triples of a batch are
computed at once and scattered into the tables with index_add_ (so repeated users or items
add up their updates, as in parallel Hogwild SGD). No autograd, no optimizer state: this is
what makes it as fast as a compiled per-triple loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from modiste.rec.base import ModelConfig, Recommender


@dataclass
class BPRConfig(ModelConfig):
    """factors: latent dimension K; reg: L2 weight on the embeddings and biases touched by a batch."""

    factors: int = 64
    reg: float = 0.05


class BPRMF(Recommender):
    name = "bpr"
    Config = BPRConfig

    def __init__(self, config: BPRConfig, n_users: int, n_items: int):
        super().__init__(config, n_users, n_items)
        g = torch.Generator().manual_seed(config.seed)
        self.user_factors = torch.nn.Parameter(torch.randn(n_users, config.factors, generator=g) * 0.01)
        self.item_factors = torch.nn.Parameter(torch.randn(n_items, config.factors, generator=g) * 0.01)
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))

    def optimizer(self, lr):
        return None  # plain SGD, below

    @torch.no_grad()
    def train_step(self, users, positives, negatives, optimizer, lr):
        reg = self.config.reg
        u = self.user_factors[users]
        items = torch.cat([positives, negatives])
        v, b = self.item_factors[items], self.item_bias[items]
        n = len(users)
        x = b[:n] - b[n:] + (u * (v[:n] - v[n:])).sum(-1)
        g = torch.sigmoid(-x)  # d ln sigma(x) / dx
        sign = torch.cat([g, -g])  # +g for the positive item, -g for the negative
        self.user_factors.index_add_(0, users, lr * (g[:, None] * (v[:n] - v[n:]) - reg * u))
        self.item_factors.index_add_(0, items, lr * (sign[:, None] * u.repeat(2, 1) - reg * v))
        self.item_bias.index_add_(0, items, lr * (sign - reg * b))
        return float(torch.nn.functional.softplus(-x).mean())

    def score_tensor(self, users):
        return self.item_bias[None, :] + self.user_factors[users] @ self.item_factors.T
