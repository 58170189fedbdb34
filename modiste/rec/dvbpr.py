"""DVBPR (Kang, Fang, Wang, McAuley, ICDM 2017): x_ui = theta_u . Phi(image_i), with the CNN Phi
learned end-to-end from the pixels by BPR.

The paper's objective, per minibatch of B triples (u, i, j):

    sum_b ln sigma(x_ui - x_uj) - lambda_theta/2 sum_b ||theta_u||^2 - lambda_cnn/2 ||W||^2

with lambda_theta = 1 on the user vectors and lambda_cnn = 1e-3 on the CNN weights; here it is
averaged over the batch (so the learning rate does not depend on the batch size) and minimised
negated, with Adam. K = 100.

Triples. The paper draws a user uniformly, one of their items, then a uniform negative, and runs
the CNN on both pictures of every triple: 680k pictures an epoch on the default world, 160 s
on 2 cores. `modiste.rec.data.ItemBlockSampler` draws a random block of items instead and takes
every training pair whose item is in it, each weighted 1/|I_u|, with a negative from the same
block: the same expected objective (users count equally, their items equally, negatives are
uniform), but the CNN sees each picture of the block once, about 17x less work an epoch
(about 10 s). Pictures are mirrored left-right at random while training (a mirrored garment is
the same garment), which keeps the CNN from memorising items by their exact pixels.

What is scaled, and why. The paper's Phi is CNN-F (five conv layers up to 256 channels, two
4096-wide FC layers) on 224x224 crops: on 2 CPU cores a CNN-F-like net at 64x64 trains at about
200 images a second, and an epoch of the default world (340k triples, 680k images) would take
an hour. Here Phi keeps CNN-F's shape but is small enough for 2 cores: the 64x64 picture is
averaged down to 32x32 (the worlds' attributes and looks survive it), then three stride-2 conv
blocks (`width`, 2x, 4x channels, each with batch norm) and one hidden FC layer of 256 before the
K outputs; ReLU throughout, no dropout. Batch norm is not in CNN-F: it trains Phi about twice as
fast here (validation AUC 0.727 against 0.687 after 4-5 minutes on the default world). It trains
at thousands of images a second on 2 cores. Item embeddings Phi(image_i) are cached after
training (and saved), so serving never runs the CNN per request.

Beyond the paper, `users="history"` replaces the free theta_u by one computed from the user's
training items: theta_u = A (mean_j Phi(image_j) - mean over the catalogue) + b, with A and b
shared by every user. About 30 interactions a user are too few to learn 100 free numbers well;
a shared map from what the user bought to what they like learns from everyone at once (and
gives a new shopper a taste from the items they have without retraining: `score_new_user`).
The mean is taken from the embedding cache, which training keeps fresh, not through the CNN;
centring it keeps A from amplifying the cache's drift (without it validation AUC jumped between
0.45 and 0.68 from epoch to epoch). With `uniform_users=false`, `item_bias` and the trainer's cosine schedule it is the
best DVBPR on the default world: test AUC 0.847 against the paper's 0.746 (README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from modiste.rec.base import ModelConfig, Recommender
from modiste.rec.data import ItemBlockSampler
from modiste.vision.common import to_unit_range


USER_MODELS = ("free", "history")


@dataclass
class DVBPRConfig(ModelConfig):
    """factors: K; reg_user: lambda on the free theta_u; reg_cnn: lambda on the CNN weights (and on
    A); width: channels of the first conv block (later blocks double it up to 4x);
    embedding_lr_scale: the learning rate of the per-user and per-item rows relative to the CNN's;
    mirror: random left-right flips;
    batch_norm: batch norm after each conv (not in the paper's CNN-F; it trains Phi about 2x faster
    to the same validation AUC); uniform_users: weigh each training pair 1/|I_u|, the paper's
    uniform users (False: every pair alike, as LearnBPR draws them).

    Beyond the paper, off by default: item_bias adds a learned beta_i (popularity, which no
    picture shows; it costs cold AUC, since rarely bought items get low biases: on the default
    world AUC 0.78 and cold 0.40 with free users, 0.839 and 0.570 with users="history" and
    uniform_users=false); item_offsets adds a free per-item vector epsilon_i to
    Phi(image_i) (L2 weight reg_offset), a collaborative correction that is zero for an item
    nobody bought; users="history" computes theta_u from the user's training items instead of
    learning it free (`DVBPR.history_users`)."""

    factors: int = 100
    reg_user: float = 1.0
    reg_cnn: float = 1e-3
    width: int = 16
    hidden: int = 256
    item_bias: bool = False
    item_offsets: bool = False
    reg_offset: float = 1.0
    embedding_lr_scale: float = 1.0
    mirror: bool = True
    batch_norm: bool = True
    uniform_users: bool = True
    users: str = "free"

    def __post_init__(self):
        if self.users not in USER_MODELS:
            raise ValueError(f"users={self.users!r}: choose one of {', '.join(USER_MODELS)}")


class ItemCNN(nn.Module):
    """Phi: a uint8 (B, 64, 64, 3) picture -> a K-dimensional item embedding."""

    def __init__(self, k: int, width: int = 16, hidden: int = 256, batch_norm: bool = False):
        super().__init__()
        w = width

        def block(c_in, c_out):
            conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=not batch_norm)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            nn.AvgPool2d(2),  # 64 -> 32
            *block(3, w), *block(w, 2 * w), *block(2 * w, 4 * w),  # 16x16, 8x8, 4x4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * 16, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, k))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(to_unit_range(images)))


class DVBPR(Recommender):
    name = "dvbpr"
    Config = DVBPRConfig
    needs_images = True
    saved_before = {"batch_norm": False}

    def __init__(self, config: DVBPRConfig, n_users: int, n_items: int, images: np.ndarray | None = None):
        super().__init__(config, n_users, n_items)
        torch.manual_seed(config.seed)
        self.cnn = ItemCNN(config.factors, config.width, config.hidden, config.batch_norm)
        self.user_vectors = nn.Parameter(torch.randn(n_users, config.factors) * 0.1)  # theta_u
        self.item_bias = nn.Parameter(torch.zeros(n_items), requires_grad=config.item_bias)
        # epsilon_i: a free per-item correction of the picture's embedding, learned only from the item's own
        # interactions (regularised towards 0, so an item nobody touched is its picture alone).
        self.item_offsets = nn.Parameter(torch.zeros(n_items if config.item_offsets else 0, config.factors))
        self.register_buffer("item_embeddings", torch.zeros(n_items, config.factors))  # the serving cache
        # users="history": theta_u = mean of the user's items' embeddings, mapped by a learned A, b.
        self.user_map = nn.Linear(config.factors, config.factors) if config.users == "history" else None
        if self.user_map is not None:
            nn.init.eye_(self.user_map.weight)
            nn.init.zeros_(self.user_map.bias)
            self.user_vectors.requires_grad_(False)  # derived: written by prepare_for_scoring
        # users="history": (n_users, n_items) sparse, row u = 1/|I_u| on u's training items; and |I_u|.
        self.history = self.history_degree = None
        # The pictures, in memory as uint8 (40,000 items: 490 MB); absent after loading.
        self.images = None if images is None else torch.from_numpy(np.ascontiguousarray(images))

    @classmethod
    def build(cls, config, data, ds, **_):
        cls.check_dataset(ds)
        model = cls(config, data.n_users, data.n_items, images=np.array(ds.images))  # into memory
        if config.users == "history":
            model.set_history(*data.train())
            model.prepare_for_scoring()  # a first cache of Phi, from the untrained CNN
        return model

    def set_history(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        """The training items each user's theta_u is pooled from (CSR rows of item indices)."""
        degree = np.diff(indptr)
        values = np.repeat(1.0 / np.maximum(degree, 1), degree).astype(np.float32)
        rows = np.repeat(np.arange(self.n_users), degree)
        self.history = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, indices]).astype(np.int64)),
                                               torch.from_numpy(values), size=(self.n_users, self.n_items),
                                               check_invariants=True).coalesce()
        self.history_degree = torch.from_numpy(degree.astype(np.float32))

    def history_users(self, users: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """theta_u = A (mean_j Phi(image_j) - mean_i Phi(image_i)) + b, j over the user's training
        items other than the positive being scored, i over the catalogue (beyond the paper,
        `users="history"`).

        Phi comes from the embedding cache, not through the CNN: each step refreshes the rows of
        the pictures it embeds, and each epoch ends with a full refresh, so the cache is less than
        an epoch old and no user's history passes the CNN. The positive is left out of its own
        pooling, as it will be for a held-out item, or the model would learn to find the user's
        own items in their mean. Sharing A across users is what helps: with the world's true
        features in place of Phi, BPR reaches validation AUC 0.877 this way against 0.823 with
        free user vectors (`bench/rec_ceiling.py`, no item bias)."""
        cache = self.item_embeddings
        n = self.history_degree[users][:, None]
        pooled = torch.sparse.mm(self.history, cache)[users] * n
        pooled = (pooled - cache[positives]) / (n - 1).clamp(min=1)
        return self.user_map(pooled - cache.mean(0))

    def sampler(self, indptr, indices, n_items, seed):
        sampler = ItemBlockSampler(indptr, indices, n_items, seed=seed)
        if not self.config.uniform_users:
            sampler.pair_weights[:] = 1.0
        return sampler

    def bpr_loss(self, batch):
        users, positives, negatives = batch.tensors()
        weights = torch.from_numpy(batch.weights) if batch.weights is not None else torch.ones(len(users))
        weights = weights / weights.sum()
        # One CNN pass per distinct item of the batch (with the block sampler: the block).
        unique, inverse = torch.unique(torch.cat([positives, negatives]), return_inverse=True)
        phi = self.cnn(self._augment(self.images[unique]))[inverse]
        items = torch.cat([positives, negatives])
        if self.config.item_offsets:
            offsets = self.item_offsets[items]
            phi = phi + offsets
        if self.user_map is not None:
            theta = self.history_users(users, positives)
            self._refresh_cache(unique)
        else:
            theta = self.user_vectors[users]
        x = (theta * (phi[: len(users)] - phi[len(users):])).sum(-1) \
            + self.item_bias[positives] - self.item_bias[negatives]
        bpr = (weights * nn.functional.softplus(-x)).sum()
        c = self.config
        # With users="history", theta_u is no parameter: A is a shared weight, regularised as the CNN's are.
        shared = [self.cnn] + ([self.user_map] if self.user_map is not None else [])
        weights_l2 = sum(p.square().sum() for m in shared for name, p in m.named_parameters()
                         if name.endswith("weight"))
        reg_user = c.reg_user if self.user_map is None else 0.0
        reg = (reg_user * (weights * theta.square().sum(-1)).sum() + c.reg_cnn * weights_l2 / len(users)) / 2
        if c.item_offsets:
            reg = reg + c.reg_offset * (weights.repeat(2) * offsets.square().sum(-1)).sum() / 2
        return bpr + reg, bpr

    @torch.no_grad()
    def _refresh_cache(self, items: torch.Tensor) -> None:
        """Re-embed these items' pictures into the cache as scoring will (batch norm's running
        statistics, no mirroring), so that the pooled histories mean the same in training and
        in scoring."""
        self.cnn.eval()
        self.item_embeddings[items] = self.cnn(self.images[items])
        if self.config.item_offsets:
            self.item_embeddings[items] += self.item_offsets[items]
        self.cnn.train()

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """Mirror half the pictures left-right: a garment's mirror image is the same garment, and
        the CNN can no longer memorise an item by its exact pixels."""
        if not self.config.mirror:
            return images
        flip = torch.rand(len(images)) < 0.5
        images = images.clone()
        images[flip] = images[flip].flip(2)  # (B, H, W, C): W is axis 2
        return images

    def optimizer(self, lr):
        # User vectors and biases each get a gradient only when their row is in a batch: they
        # learn faster with a larger step than the shared CNN. (Adagrad on them, which has no
        # momentum to move absent rows, overfitted more: valid AUC 0.765 against 0.774 on small.)
        shared = list(self.cnn.parameters()) + (list(self.user_map.parameters()) if self.user_map is not None else [])
        return torch.optim.Adam([{"params": shared},
                                 {"params": [self.user_vectors, self.item_bias, self.item_offsets], "lr": lr * self.config.embedding_lr_scale}],
                                lr=lr)

    @torch.no_grad()
    def prepare_for_scoring(self, batch_size: int = 1024) -> None:
        if self.images is None:
            return  # loaded from disk: the saved cache is what we have
        was_training = self.training
        self.eval()
        for start in range(0, self.n_items, batch_size):
            self.item_embeddings[start:start + batch_size] = self.cnn(self.images[start:start + batch_size])
        if self.config.item_offsets:
            self.item_embeddings += self.item_offsets
        if self.user_map is not None and self.history is not None:
            pooled = torch.sparse.mm(self.history, self.item_embeddings)
            self.user_vectors.copy_(self.user_map(pooled - self.item_embeddings.mean(0)))
        self.train(was_training)

    def score_tensor(self, users):
        return self.item_bias[None, :] + self.user_vectors[users] @ self.item_embeddings.T

    @torch.no_grad()
    def score_new_user(self, items: np.ndarray) -> np.ndarray:
        """With users="history", a new shopper's theta is pooled from their items as a training
        user's is, from the saved embedding cache: no retraining, no CNN."""
        if self.user_map is None:
            return super().score_new_user(items)
        if len(items) == 0:
            raise ValueError("a new shopper's taste is pooled from their items: give at least one")
        cache = self.item_embeddings
        theta = self.user_map(cache[torch.as_tensor(np.asarray(items), dtype=torch.long)].mean(0) - cache.mean(0))
        return (self.item_bias + cache @ theta).numpy()
