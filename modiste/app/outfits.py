"""Outfit completion and composition for a shopper, through `modiste.outfit.api`, minus the items a
shopper must not be offered (hidden by an admin, or disliked by them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.outfit import api
from modiste.outfit.compose import compose_outfit


class Outfits:
    def __init__(self, run: str | Path, ds: Dataset):
        self.run = Path(run)
        api.load_run(self.run, ds.path)  # loads it once, and checks it is a run of this dataset

    def complete(self, item_ids: list[str], category: str, user_id: str, k: int, banned: np.ndarray) -> list[dict]:
        """The k best items of `category` to go with `item_ids`; `banned` is a mask over item rows."""
        r = api.load_run(self.run)
        # api.complete ranks the whole category: ask for as many more as could be banned, then drop them.
        extra = int((banned & (r.data.item_category == r.category_code(category))).sum())
        found = api.complete(self.run, item_ids, category, user_id, k + extra)
        return [item for item in found if not banned[r.ds.item_row(item["item_id"])]][:k]

    def compose(self, categories: list[str], user_id: str, banned: np.ndarray) -> dict:
        """A whole outfit over `categories` from items the shopper neither has nor may not see.

        api.compose cannot leave out more than the shopper's own items yet, so this calls the
        composer it wraps with the wider exclusion."""
        r = api.load_run(self.run)
        codes = [r.category_code(c) for c in categories]
        inter = r.ds.interactions
        owned = r.ds.item_rows(inter.loc[inter["user_id"] == user_id, "item_id"].to_numpy())
        exclude = np.union1d(owned, np.flatnonzero(banned))
        result = compose_outfit(r.model, r.data, r.user_row(user_id), codes, exclude=exclude)
        return {"compatibility": result.compatibility, "score": result.score,
                "items": [r.describe(row, taste=taste) for row, taste in zip(result.items, result.taste)]}
