"""The outfit model: type-aware item embeddings, a set transformer over the outfit, and a user's taste.

    score(user, outfit) = compatibility(outfit) + sum over its items of taste(user, item)

- An item's embedding adds what is known of it: its category (always), its attribute values, a
  projection of its image features (modiste's own image encoder), and an id embedding for items
  seen at least `min_count` times in training. Cold items fall back on the rest, and the id part
  is dropped at random in training so that the model learns to do without it.
- compatibility: a transformer encoder without positions (the outfit is a set) reads the items
  and a learned summary token; a linear head on that token gives the score. Attention between
  items whose embeddings carry their category makes every pairwise judgement type-aware.
  Beside it, a small MLP scores each pair of items (symmetric: it reads a*b and a+b), and the
  mean over the outfit's pairs is added: how well two things go together is most of what makes an
  outfit, and this term learns it directly where the transformer has to find it.
- taste(user, item): <u, W item>, with u = a learned user embedding (where the user is known)
  + A · mean of the user's history in the item's category (DiFashion's personal condition)
  + B · mean of their history over all categories. The item being scored is left out of those
  means, so that training on an item the user already has teaches nothing false.

Fill-in-the-blank ranks candidates c by score(user, context + c): the terms of the context cancel.
The blank's category is part of the question, so candidates of another category rank last.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modiste.io import atomic_path, write_json

WEIGHTS, CONFIG = "model.safetensors", "model.json"
CATEGORY_MISMATCH = 1e4  # far beyond any score the model gives


@dataclass
class OutfitConfig:
    dim: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    pairwise: bool = True  # add the mean of a learned score of each pair of items to the transformer's
    images: bool = True  # use image features where the dataset has images
    attributes: bool = True  # use attribute values where the dataset has them
    ids: bool = True  # an id embedding for items seen at least min_count times in training
    min_count: int = 1
    id_dropout: float = 0.1
    personal: bool = True
    user_ids: bool = True  # a learned embedding per user, beside their history
    history_len: int = 10  # the latest items of a user's history in the blank's category
    profile_len: int = 30  # the latest items of a user's history over all categories
    taste_l2: float = 1e-4  # L2 on the user and item embeddings of the taste term, per example


class OutfitModel(nn.Module):
    def __init__(self, config: OutfitConfig, *, n_users: int, n_categories: int, item_category: torch.Tensor,
                 item_attributes: torch.Tensor, attribute_sizes: list[int], image_features: torch.Tensor | None,
                 id_slot: torch.Tensor, meta: dict[str, Any] | None = None):
        super().__init__()
        self.config, self.n_users, self.meta = config, n_users, dict(meta or {})
        self.attribute_sizes = list(attribute_sizes)
        d = config.dim
        self.register_buffer("item_category", item_category.long())
        self.register_buffer("item_attributes", item_attributes.long())
        self.register_buffer("id_slot", id_slot.long())  # item row -> id embedding row (0: none)
        self.category = nn.Embedding(n_categories, d)
        self.attribute = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n in attribute_sizes)
        if image_features is not None:
            self.register_buffer("image_features", image_features.float())
            self.image = nn.Sequential(nn.LayerNorm(image_features.shape[1]), nn.Linear(image_features.shape[1], d))
        else:
            self.image_features, self.image = None, None
        self.ids = nn.Embedding(int(id_slot.max()) + 1, d, padding_idx=0)
        nn.init.normal_(self.ids.weight, std=0.02)
        with torch.no_grad():
            self.ids.weight[0].zero_()
        self.norm = nn.LayerNorm(d)

        layer = nn.TransformerEncoderLayer(d, config.heads, 4 * d, config.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.summary = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.compat_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1))
        if config.pairwise:
            self.pair = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))

        self.users = nn.Embedding(n_users + 1, d, padding_idx=0)  # row 0: an unknown user
        nn.init.normal_(self.users.weight, std=0.02)
        with torch.no_grad():
            self.users.weight[0].zero_()
        self.from_history = nn.Linear(d, d, bias=False)
        self.from_profile = nn.Linear(d, d, bias=False)
        self.taste_item = nn.Linear(d, d)
        # The taste side of a known item, as in matrix factorisation: free of the layer norm, so
        # that who-likes-what is not squeezed into the same vector as what-goes-with-what.
        self.taste_ids = nn.Embedding(self.ids.num_embeddings, d, padding_idx=0)
        nn.init.normal_(self.taste_ids.weight, std=0.01)
        with torch.no_grad():
            self.taste_ids.weight[0].zero_()

    # ------------------------------------------------------------------ items

    def encode(self, rows: torch.Tensor) -> torch.Tensor:
        """(..., dim) embeddings of item rows; -1 (padding) gives zeros."""
        r = rows.clamp(min=0)
        e = self.category(self.item_category[r])
        if self.config.attributes:
            for a, table in enumerate(self.attribute):
                e = e + table(self.item_attributes[r, a])
        if self.image is not None and self.config.images:
            e = e + self.image(self.image_features[r])
        if self.config.ids:
            slot = self.id_slot[r]
            if self.training and self.config.id_dropout > 0:
                slot = torch.where(torch.rand(slot.shape) < self.config.id_dropout, 0, slot)
            e = e + self.ids(slot)
        return self.norm(e) * (rows >= 0).unsqueeze(-1)

    def with_new_items(self, category: np.ndarray, attributes: np.ndarray,
                       image_features: np.ndarray | None) -> tuple[OutfitModel, np.ndarray]:
        """A view of this model that also knows items the catalogue lacks (generated ones), from
        their category codes (n,), attribute codes (n, n_attributes; `OutfitData.attribute_codes`)
        and image features (n, f), with no id: (the view, their item rows). Weights are shared."""
        view = copy.copy(self)
        view._buffers = dict(self._buffers)  # new buffers for the view; the parameters stay shared
        start = len(self.item_category)
        view.item_category = torch.cat([self.item_category, torch.as_tensor(category, dtype=torch.long)])
        view.item_attributes = torch.cat([self.item_attributes, torch.as_tensor(attributes, dtype=torch.long)])
        view.id_slot = torch.cat([self.id_slot, torch.zeros(len(category), dtype=torch.long)])
        if self.image_features is not None:
            view.image_features = torch.cat([self.image_features, torch.as_tensor(image_features, dtype=torch.float32)])
        return view, np.arange(start, start + len(category))

    # ------------------------------------------------------------------ scores

    def compatibility(self, outfits: torch.Tensor) -> torch.Tensor:
        """(N, L) item rows, -1 padded -> (N,) compatibility."""
        items = self.encode(outfits)
        x = torch.cat([self.summary.expand(len(items), 1, -1), items], dim=1)
        pad = torch.cat([torch.zeros(len(x), 1, dtype=torch.bool), outfits < 0], dim=1)
        score = self.compat_head(self.encoder(x, src_key_padding_mask=pad)[:, 0]).squeeze(-1)
        if self.config.pairwise:
            score = score + self._pair_scores(items, outfits >= 0)
        return score

    def _pair_scores(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The mean over an outfit's pairs of items of a learned, symmetric pair score: (N, L, d) -> (N,)."""
        i, j = torch.triu_indices(x.shape[1], x.shape[1], offset=1)
        a, b = x[:, i], x[:, j]
        pair = self.pair(torch.cat([a * b, a + b], dim=-1)).squeeze(-1)
        real = (present[:, i] & present[:, j]).float()
        return (pair * real).sum(1) / real.sum(1).clamp(min=1)

    def taste(self, users: torch.Tensor, history: torch.Tensor, profile: torch.Tensor,
              items: torch.Tensor) -> torch.Tensor:
        """How much each user likes each of their items: users (N,), history (N, H) of the items'
        category, profile (N, P), items (N, C) -> (N, C). Unknown users are -1."""
        if not self.config.personal:
            return torch.zeros(items.shape)
        return self.taste_terms(users, history, profile, items)[0]

    def taste_terms(self, users: torch.Tensor, history: torch.Tensor, profile: torch.Tensor,
                    items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(taste (N, C), squared norm of the free embeddings used, for their L2 penalty)."""
        u = self.from_history(_mean_without(self.encode(history), history, items))
        u = u + self.from_profile(_mean_without(self.encode(profile), profile, items))
        item = self.taste_item(self.encode(items))
        free_user, free_item, penalty = self._free_factors(users, items)
        return ((u + free_user) * (item + free_item)).sum(-1) * (items >= 0), penalty

    def collaborative_taste(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrix-factorisation part of the taste alone: users (N,) x items (N, C) -> ((N, C),
        squared norm of the embeddings used). Training learns it first, on its own."""
        free_user, free_item, penalty = self._free_factors(users, items)
        return (free_user * free_item).sum(-1) * (items >= 0), penalty

    def _free_factors(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(user factors (N, 1, d), item factors (N, C, d), their squared norm); zeros where the
        model has none (user_ids or ids off)."""
        user, item, penalty = torch.zeros(len(users), 1, self.config.dim), torch.zeros(()), torch.zeros(())
        if self.config.user_ids:
            user = self.users(users + 1)[:, None, :]
            penalty = penalty + user.pow(2).sum()
        if self.config.ids:
            item = self.taste_ids(self.id_slot[items.clamp(min=0)])
            penalty = penalty + item.pow(2).sum()
        return user, item, penalty

    def fitb(self, context: torch.Tensor, candidates: torch.Tensor, category: torch.Tensor,
             users: torch.Tensor | None = None, history: torch.Tensor | None = None,
             profile: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (N, C) of each candidate for the blank of an outfit: context (N, L-1), candidates
        (N, C), the blank's category (N,); with users (and their history in the blank's category),
        personalized."""
        n, c = candidates.shape
        outfits = torch.cat([context[:, None, :].expand(n, c, -1), candidates[:, :, None]], dim=2)
        scores = self.compatibility(outfits.reshape(n * c, -1)).reshape(n, c)
        # The blank's category is given: a candidate of another category ranks below every one of it.
        scores = scores - CATEGORY_MISMATCH * (self.item_category[candidates.clamp(min=0)] != category[:, None])
        if users is not None:
            scores = scores + self.taste(users, history, profile, candidates)
        return scores.masked_fill(candidates < 0, -torch.inf)

    # ------------------------------------------------------------------ storage

    def save(self, directory: str | Path) -> None:
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS))
            write_json(tmp / CONFIG, {"config": asdict(self.config), "n_users": self.n_users,
                                      "n_categories": self.category.num_embeddings,
                                      "attribute_sizes": self.attribute_sizes, "meta": self.meta})

    @classmethod
    def load(cls, directory: str | Path) -> OutfitModel:
        directory = Path(directory)
        if not (directory / CONFIG).exists():
            raise FileNotFoundError(f"{directory} holds no saved outfit model ({CONFIG} is missing)")
        saved = json.loads((directory / CONFIG).read_text())
        known = {f.name for f in fields(OutfitConfig)}
        # Models saved before the pair term existed have none.
        config = OutfitConfig(**{"pairwise": False, **{k: v for k, v in saved["config"].items() if k in known}})
        tensors = load_file(str(directory / WEIGHTS))
        model = cls(config, n_users=saved["n_users"], n_categories=saved["n_categories"],
                    item_category=tensors["item_category"], item_attributes=tensors["item_attributes"],
                    attribute_sizes=saved["attribute_sizes"], image_features=tensors.get("image_features"),
                    id_slot=tensors["id_slot"], meta=saved["meta"])
        model.load_state_dict(tensors)
        return model.eval()


def _mean_without(encoded: torch.Tensor, rows: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Per item of `items` (N, C), the mean of `encoded` (N, H, d) over the rows (N, H) that are
    neither padding nor that item -> (N, C, d)."""
    keep = ((rows[:, None, :] >= 0) & (rows[:, None, :] != items[:, :, None])).float()
    return torch.einsum("nch,nhd->ncd", keep, encoded) / keep.sum(-1, keepdim=True).clamp(min=1)


def build_model(config: OutfitConfig, data, image_features: np.ndarray | None) -> OutfitModel:
    """A fresh model for a dataset (`data`: an OutfitData)."""
    codes, sizes = data.attributes
    warm = data.train_counts >= config.min_count
    slot = np.zeros(data.n_items, np.int64)
    slot[warm] = np.arange(1, int(warm.sum()) + 1)
    meta = {"dataset": data.ds.name, "categories": data.categories}
    return OutfitModel(config, n_users=data.n_users, n_categories=len(data.categories),
                       item_category=torch.from_numpy(data.item_category), item_attributes=torch.from_numpy(codes),
                       attribute_sizes=sizes,
                       image_features=None if image_features is None else torch.from_numpy(image_features),
                       id_slot=torch.from_numpy(slot), meta=meta)
