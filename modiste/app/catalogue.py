"""The catalogue as the app shows it: the dataset's items, filters over category and attribute
values, keyword search, pictures as PNG, and the items an admin has hidden.

Free-text search is a seam: a `Catalogue` is built with a `TextMatcher`, which turns the text into
a score per item (NaN: no match). The one here keeps the items whose caption and description hold
every word; `modiste.app.textsearch.SentenceMatcher` ranks them by meaning through a sentence-embedding
model (`Settings.search` picks one).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
from PIL import Image

from modiste.data import Dataset
from modiste.data.schema import BODY_FIELDS


class TextMatcher(Protocol):
    def scores(self, text: str) -> np.ndarray:
        """One float per catalogue row, higher is better; NaN where the item does not match."""


class KeywordMatcher:
    """Items whose caption or description holds every word of the query (any order, any case), all
    scored alike so they keep catalogue order: a literal filter, with no model to load."""

    def __init__(self, texts: Iterable[str]):
        self.texts = np.char.lower(np.asarray(list(texts), dtype=str))
        self.scores = lru_cache(maxsize=64)(self._scores)  # paging through one search scans once

    def _scores(self, text: str) -> np.ndarray:
        matched = np.ones(len(self.texts), bool)
        for word in re.findall(r"\w+", text.lower()):
            matched &= np.char.find(self.texts, word) >= 0
        return np.where(matched, 0.0, np.nan)


@dataclass(frozen=True)
class Page:
    rows: np.ndarray
    total: int


class Catalogue:
    """Read-only items of one dataset, plus the hidden set (owned by the database, mirrored here)."""

    def __init__(self, ds: Dataset, matcher: TextMatcher | None = None):
        self.ds = ds
        items = ds.items
        self.ids = items.index.to_numpy(dtype=str)
        self.categories = sorted(items["category"].unique().tolist())
        self.category = items["category"].to_numpy(dtype=str)
        self.descriptions = items["description"].to_numpy(dtype=object)  # a pandas lookup per item costs ~40 us
        self.attributes = {a: sorted(items[a].dropna().unique().tolist()) for a in ds.attributes}
        self.values = {a: np.array([v if isinstance(v, str) else None for v in items[a]], dtype=object)
                       for a in ds.attributes}  # missing values as None, whatever pandas read them as
        self.matcher = matcher or KeywordMatcher(items["caption"] + " " + items["description"])
        self.hidden = np.zeros(len(self.ids), bool)

    def __len__(self) -> int:
        return len(self.ids)

    # -- lookups --------------------------------------------------------------------

    def row(self, item_id: str) -> int | None:
        """The item's row, or None when there is no such item."""
        try:
            return self.ds.item_row(item_id)
        except KeyError:
            return None

    def visible_row(self, item_id: str) -> int | None:
        """The item's row, or None when there is no such item or it is hidden: what a shopper may see."""
        row = self.row(item_id)
        return None if row is None or self.hidden[row] else row

    def set_hidden(self, item_ids: Iterable[str]) -> None:
        hidden = np.zeros(len(self.ids), bool)
        rows = [r for r in map(self.row, item_ids) if r is not None]
        hidden[rows] = True
        self.hidden = hidden

    def summary(self, row: int) -> dict:
        item_id = self.ids[row]
        return {"item_id": item_id, "category": self.category[row], "description": self.descriptions[row],
                "image_url": f"/items/{item_id}/image.png" if self.ds.has_images and not self.hidden[row] else None}

    def page_data(self, row: int) -> dict:
        items = self.ds.items
        return {**self.summary(row), "caption": json.loads(items["caption"].iat[row]),
                "attributes": {a: self.values[a][row] for a in self.values}, "hidden": bool(self.hidden[row])}

    def png(self, row: int) -> bytes | None:
        """The item's picture as PNG (None: the dataset has no pictures)."""
        if not self.ds.has_images:
            return None
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(self.ds.images[row])).save(buffer, format="PNG")
        return buffer.getvalue()

    # -- browse and search ------------------------------------------------------------

    def search(self, category: str | None = None, attributes: dict[str, str] | None = None, text: str | None = None,
               offset: int = 0, limit: int = 24) -> Page:
        """Visible items matching every filter: by text score when there is text, else in catalogue order."""
        keep = ~self.hidden
        if category is not None:
            keep &= self.category == category
        for name, value in (attributes or {}).items():
            keep &= self.values[name] == value
        rows = np.flatnonzero(keep)
        if text:
            scores = self.matcher.scores(text)[rows]
            matched = ~np.isnan(scores)
            rows = rows[matched][np.argsort(-scores[matched], kind="stable")]
        return Page(rows[offset:offset + limit], len(rows))


class Histories:
    """Each user's training interactions, grouped once: a scan of the table per request would cost
    tens of milliseconds on the default world."""

    def __init__(self, ds: Dataset):
        train = ds.interactions[ds.interactions["split"] == "train"]
        self.items, self.times = train["item_id"].to_numpy(dtype=str), train["timestamp"].to_numpy()
        self.rows = train.groupby("user_id", sort=False).indices

    def of(self, user_id: str) -> list[tuple[str, int]]:
        """(item id, timestamp), oldest first."""
        rows = self.rows.get(user_id, np.array([], np.int64))
        rows = rows[np.argsort(self.times[rows], kind="stable")]
        return [(self.items[r], int(self.times[r])) for r in rows]


def body_profile(ds: Dataset, user_id: str) -> dict[str, str] | None:
    """A user's body labels, or None when the dataset has none for them."""
    row = ds.users.loc[user_id]
    body = {f: row[f] for f in BODY_FIELDS if isinstance(row.get(f), str)}
    return body or None
