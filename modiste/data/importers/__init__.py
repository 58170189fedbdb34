"""Importers: the public fashion datasets people have, turned into modiste datasets.

Each format is one module with ``run(src, build, **options)`` that reads the source and fills a
`DatasetBuilder`; `import_dataset` wraps it so that the output appears whole or not at all.

>>> report = import_dataset("difashion", "../shared/data/polyvore-u", "data/polyvore-u")
>>> print("\\n".join(report.lines()))
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from modiste.data.errors import DatasetError
from modiste.data.importers.builder import DatasetBuilder, ImportReport
from modiste.progress import Progress

# format name -> (module, what it reads)
FORMATS: dict[str, tuple[str, str]] = {
    "difashion": ("modiste.data.importers.difashion", "DiFashion's Polyvore-U / iFashion release (pickled .npy)"),
    "pog": ("modiste.data.importers.pog", "Alibaba POG / iFashion CSVs, optional image folder"),
    "dvbpr": ("modiste.data.importers.dvbpr", "the DVBPR Amazon / Tradesy .npy files"),
    "hm": ("modiste.data.importers.hm", "H&M Personalized Fashion Recommendations (CSV + images)"),
    "polyvore-outfits": ("modiste.data.importers.polyvore_outfits", "Polyvore Outfits (Vasileva et al. 2018)"),
    "o4u": ("modiste.data.importers.o4u", "Outfit4You labels (JSON records)"),
}

# format name -> module with ``export(ds, out)``
EXPORTERS: dict[str, str] = {"difashion": "modiste.data.importers.difashion"}


def import_dataset(format: str, src: str | Path, out: str | Path, *, progress: bool = False,
                   **options: Any) -> ImportReport:
    """Import `src` in `format` into a modiste dataset at `out` (replaced whole, only on success)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(FORMATS)}")
    src = Path(src)
    if not src.exists():
        raise DatasetError(str(src), "the source does not exist")
    module = importlib.import_module(FORMATS[format][0])
    with Progress(enabled=progress) as bar:
        with DatasetBuilder(out, format=format, source=src, progress=bar, **module.dataset_info(src, **options)) as build:
            module.run(src, build, **options)
    return build.report


def export_dataset(format: str, ds, out: str | Path) -> Path:
    """Write dataset `ds` at `out` in another layout (written in a temp directory, renamed at the end)."""
    if format not in EXPORTERS:
        raise ValueError(f"unknown export format {format!r}: choose one of {', '.join(EXPORTERS)}")
    from modiste.io import atomic_path

    with atomic_path(out) as tmp:
        tmp.mkdir()
        importlib.import_module(EXPORTERS[format]).export(ds, tmp)
    return Path(out)


__all__ = ["EXPORTERS", "FORMATS", "DatasetBuilder", "ImportReport", "export_dataset", "import_dataset"]
