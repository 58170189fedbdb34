"""Where modiste keeps what it can recompute (e.g. the image encoder of a dataset)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """$MODISTE_CACHE, else ~/.cache/modiste."""
    return Path(os.environ.get("MODISTE_CACHE") or Path.home() / ".cache" / "modiste")


def dataset_cache(ds, *parts: str) -> Path:
    """A folder for things derived from one dataset, keyed by its name and manifest bytes, so that
    a regenerated or edited dataset never reads a stale cache."""
    digest = hashlib.sha256((ds.path / "manifest.json").read_bytes()).hexdigest()[:12]
    return cache_root().joinpath(f"{ds.name}-{digest}", *parts)
