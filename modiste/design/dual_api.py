"""What the command line asks of a trained dual model: caption an item, draw a description.

>>> caption_item("runs/dual", "i00042")          # {"caption": ..., "generated": {...}, "true": {...}}
>>> draw_description("runs/dual", "a red striped casual shirt", n=4)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modiste.data import Dataset
from modiste.design.dual import ATTRIBUTES, Conditions, DualDiT, TextVocabulary
from modiste.vision.common import to_uint8, to_unit_range


@dataclass
class Drawn:
    """Pictures generated for one description, with what the model wrote for each."""

    description: str
    category: str
    given: dict[str, str]  # the attribute values read from the description
    images: np.ndarray  # uint8 (n, 64, 64, 3)
    attributes: list[dict[str, str | None]]
    captions: list[str]


def load_run(run: str | Path) -> tuple[DualDiT, Dataset]:
    run = Path(run)
    if not (run / "run.json").exists():
        raise FileNotFoundError(f"{run} is not a dual-model run (no run.json): train one with `modiste train dual`")
    saved = json.loads((run / "run.json").read_text())
    if saved.get("task") != "dual":
        raise ValueError(f"{run} is a {saved.get('task', saved.get('model'))} run, not a dual-model run")
    return DualDiT.load(run / "model"), Dataset(saved["data"]["path"])


def caption_item(run: str | Path, item_id: str, steps: int = 20, seed: int = 0) -> dict:
    """The model's attribute text for a catalogue item's picture (image to text), beside the truth."""
    model, ds = load_run(run)
    row = int(ds.item_rows(np.array([item_id]))[0]) if item_id in set(ds.items["item_id"]) else None
    if row is None:
        raise KeyError(f"no item {item_id!r} in dataset '{ds.name}'")
    item = ds.items.iloc[row]
    category = model.vocab.categories.index(str(item["category"]))
    picture = to_unit_range(torch.from_numpy(np.array(ds.images[row:row + 1])))
    _, ids = model.sample(Conditions(category=torch.tensor([category])), steps=steps, image=picture, seed=seed)
    return {"item_id": item_id, "category": str(item["category"]),
            "caption": model.vocab.caption(ids, [category])[0],
            "generated": model.vocab.decode(ids)[0],
            "true": {a: (None if pd.isna(item[a]) else str(item[a])) for a in ATTRIBUTES}}


# Words people use for the world's pattern names.
_SYNONYMS = {"striped": "stripes", "stripe": "stripes", "pinstriped": "stripes", "checked": "checks",
             "checkered": "checks", "plaid": "checks", "tartan": "checks", "dotted": "dots", "polka dot": "dots",
             "polka-dot": "dots", "spotted": "dots", "flowered": "floral", "flowery": "floral", "plain": "solid"}


def parse_description(vocab: TextVocabulary, description: str) -> tuple[int, torch.Tensor, dict[str, str]]:
    """(category index, (6,) ids with [MASK] for attributes the words do not name, the values named).

    Words are matched to the vocabulary's values, longest first ("light blue" before "blue"); the
    category must be named ("a red striped casual shirt")."""
    words = " " + re.sub(r"[^a-z0-9\- ]+", " ", description.lower()) + " "
    category = next((k for k, c in sorted(enumerate(vocab.categories), key=lambda kc: -len(kc[1]))
                     if f" {c} " in words or f" {c}s " in words), None)
    if category is None:
        raise ValueError(f"the description names no category; say one of: {', '.join(vocab.categories)}")
    words = words.replace(f" {vocab.categories[category]} ", " ")
    for said, value in sorted(_SYNONYMS.items(), key=lambda kv: -len(kv[0])):
        words = words.replace(f" {said} ", f" {value} ")
    ids, given = vocab.masks.clone(), {}
    candidates = sorted(((v, k, a) for k, a in enumerate(ATTRIBUTES) for v in vocab.values[a]),
                        key=lambda t: -len(t[0]))
    for value, k, attribute in candidates:
        if attribute not in given and f" {value} " in words:
            given[attribute] = value
            ids[k] = vocab.values[attribute].index(value)
            words = words.replace(f" {value} ", " ", 1)
    return category, ids, given


def draw_description(run: str | Path, description: str, n: int = 4, steps: int = 20, seed: int = 0) -> Drawn:
    """Text to image: n pictures of the described item; attributes the words leave open are drawn too."""
    model, _ = load_run(run)
    category, ids, given = parse_description(model.vocab, description)
    cond = Conditions(category=torch.full((n,), category))
    images, out = model.sample(cond, steps=steps, text=ids.expand(n, -1), seed=seed)
    return Drawn(description=description, category=model.vocab.categories[category], given=given,
                 images=to_uint8(images), attributes=model.vocab.decode(out),
                 captions=model.vocab.caption(out, [category] * n))
