"""The oracle: the synthetic world's ground truth, and the best score any model can reach on it.

It holds each user's hidden taste (weights over attribute values, a taste for the items' unnamed
"look", a body) and each item's true features, and answers:

- `utility(users, items)`: how much a user truly likes an item;
- `interaction_logits(users, items)`: the log-odds with which the generator drew interactions
  (utility plus popularity exposure), the Bayes-optimal ranking score;
- `compatibility(outfit)`: how well items go together (colour, style, pattern, formality, slots);
- `suitability(body, outfit)`: how well an outfit suits a body;
- `fitb_scores(user, context, candidates)`: the score with which users filled an outfit's slot.

Rows index the dataset's items.parquet and users.parquet. It is stored in `<dataset>/oracle/` as
safetensors + JSON, and loaded with `Oracle.load(dataset_dir)`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from modiste.data.schema import ORACLE_DIR
from modiste.data.world import rules
from modiste.data.world import taxonomy as T
from modiste.io import atomic_path, write_json

_TENSORS = "oracle.safetensors"
_PARAMS = "oracle.json"


@dataclass(frozen=True)
class OracleParams:
    temperature: float = 1.0  # utility -> interaction logit scale (lower: more deterministic users)
    pop_alpha: float = 0.7  # exposure: weight of log-popularity in the interaction logit
    suit_weight: float = 0.6  # how much a body's suitability enters a user's utility
    outfit_compat_weight: float = 2.5  # weight of compatibility against taste when users build outfits
    outfit_temperature: float = 1.5  # utility scale when users fill an outfit slot


class Oracle:
    def __init__(self, params: OracleParams, tensors: dict[str, np.ndarray]):
        self.params = params
        self.t = tensors
        self.rules = rules.CompatibilityRules()
        self.codes = {k.removeprefix("code_"): v for k, v in tensors.items() if k.startswith("code_")}
        # A user's effective weight on each item feature: taste plus what suits their body.
        self.weights = tensors["user_weights"] + params.suit_weight * tensors["user_body"] @ tensors["suit_rules"]

    @property
    def n_users(self) -> int:
        return len(self.t["user_weights"])

    @property
    def n_items(self) -> int:
        return len(self.t["item_features"])

    # -------------------------------------------------------------- ranking

    def utility(self, users, items=None) -> np.ndarray:
        """(len(users), len(items)) true utility; items=None means the whole catalogue."""
        users = np.atleast_1d(np.asarray(users))
        sl = slice(None) if items is None else np.asarray(items)
        t = self.t
        return (self.weights[users] @ t["item_features"][sl].T
                + t["user_look"][users] @ t["item_look"][sl].T
                + t["item_quality"][sl][None, :])

    def interaction_logits(self, users, items=None) -> np.ndarray:
        """The log-odds with which the world drew interactions: the ceiling for ranking."""
        sl = slice(None) if items is None else np.asarray(items)
        return self.utility(users, items) / self.params.temperature + self.params.pop_alpha * self.t["item_log_pop"][sl]

    # -------------------------------------------------------------- outfits and bodies

    def compatibility(self, outfit) -> float:
        """Ground-truth compatibility of an outfit (item rows); higher is better, about -3..1."""
        return self.rules.outfit(self.codes, outfit)

    def fitb_scores(self, user: int | None, context, candidates) -> np.ndarray:
        """How strongly the world's users pick each candidate for the blank of an outfit.

        The generator fills outfit slots by sampling from exactly this score (plus Gumbel noise),
        so its argmax is the best possible fill-in-the-blank answer. With user=None only
        compatibility counts (the non-personalized task).
        """
        context, candidates = np.asarray(context), np.asarray(candidates)
        compat = self.rules.pair(self.codes, candidates[:, None], context[None, :]).sum(axis=1)
        clashes = np.array([self.rules.slot_clashes(self.codes, np.append(context, c)) for c in candidates])
        score = self.params.outfit_compat_weight * (compat - self.rules.SLOT_PENALTY * clashes)
        if user is not None:
            score = score + self.utility(user, candidates)[0] / self.params.outfit_temperature
        return score

    def item_suitability(self, body_onehot: np.ndarray, items=None) -> np.ndarray:
        """(n_bodies, n_items) suitability of single items for one-hot bodies (see rules.body_features)."""
        sl = slice(None) if items is None else np.asarray(items)
        return np.atleast_2d(body_onehot) @ self.t["suit_rules"] @ self.t["item_features"][sl].T

    def suitability(self, body: dict[str, str], outfit) -> float:
        """How well an outfit suits a body: its items' suitability, and the outfit's lightness
        contrast against the person's colour contrast."""
        rows = np.asarray(outfit)
        onehot = rules.body_features({k: [v] for k, v in body.items() if k in T.BODY_VALUES})
        items = float(self.item_suitability(onehot, rows).mean())
        spread = float(np.std(self.codes["lightness"][rows]))
        target = rules.CONTRAST_TARGET[body["color_contrast"]]
        return items - rules.CONTRAST_WEIGHT * abs(spread - target)

    # -------------------------------------------------------------- storage

    def save(self, dataset_dir: str | Path) -> None:
        with atomic_path(Path(dataset_dir) / ORACLE_DIR) as tmp:
            tmp.mkdir()
            save_file({k: np.ascontiguousarray(v) for k, v in self.t.items()}, str(tmp / _TENSORS))
            write_json(tmp / _PARAMS, {"params": asdict(self.params),
                                       "item_features": [f"{a}={v}" for a, v in rules.feature_vocabulary()],
                                       "body_features": [f"{a}={v}" for a, v in rules.body_vocabulary()]})

    @classmethod
    def load(cls, dataset_dir: str | Path) -> Oracle:
        folder = Path(dataset_dir) / ORACLE_DIR
        if not (folder / _TENSORS).exists():
            raise FileNotFoundError(f"{dataset_dir} has no oracle (only synthetic worlds have one)")
        meta = json.loads((folder / _PARAMS).read_text())
        return cls(OracleParams(**meta["params"]), load_file(str(folder / _TENSORS)))
