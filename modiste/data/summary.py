"""What `modiste info` reports about a dataset."""

from __future__ import annotations

from typing import Any

import numpy as np

from modiste.data.dataset import Dataset
from modiste.data.schema import SPLITS

COLD_THRESHOLD = 5  # an item with fewer training interactions is cold (as in the DVBPR paper)


def summarize(ds: Dataset) -> dict[str, Any]:
    """Counts, splits, the category histogram, cold-item shares and the oracle's figures."""
    interactions = ds.interactions
    train = interactions[interactions["split"] == "train"]
    counts = train["item_id"].value_counts().reindex(ds.items.index, fill_value=0).to_numpy()
    test_items = interactions.loc[interactions["split"] == "test", "item_id"]
    test_counts = counts[ds.item_rows(test_items.to_numpy())] if len(test_items) else np.array([])
    tables = {"interactions": interactions, "outfits": ds.outfits}
    if ds.fitb is not None:
        tables["fitb"] = ds.fitb
    summary = {
        "name": ds.name,
        "source": ds.manifest["source"],
        "license": ds.manifest["license"],
        "counts": {"items": len(ds.items), "users": len(ds.users), "interactions": len(interactions),
                   "outfits": len(ds.outfits)},
        "split_names": list(SPLITS),
        "splits": {name: df["split"].value_counts().reindex(SPLITS, fill_value=0).astype(int).to_dict()
                   for name, df in tables.items()},
        "categories": ds.items["category"].value_counts().sort_index().astype(int).to_dict(),
        "cold_items_share": float((counts < COLD_THRESHOLD).mean()) if len(counts) else 0.0,
        "cold_test_share": float((test_counts < COLD_THRESHOLD).mean()) if len(test_counts) else 0.0,
        "has_images": ds.has_images,
    }
    if ds.fitb is not None:
        summary["counts"]["fitb"] = len(ds.fitb)
    if ds.persons is not None:
        summary["counts"]["persons"] = len(ds.persons)
    if "oracle" in ds.manifest:
        summary["oracle"] = ds.manifest["oracle"]
    return summary
