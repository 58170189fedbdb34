"""What the importers of delimited text releases (pog, hm) share: finding a table, reading it, checking it.

A table is found by the option that names it or by the release's own file names (`find_table`), read in
chunks of rows with a progress bar (`read_chunks`), and a pandas parse error becomes a `DatasetError` naming
the 0-based data row (`parse_error`). Text is read with ``encoding_errors="surrogateescape"``, so that bytes
which are not UTF-8 survive the read and `check_utf8` can name the row and field they stand in; `check_filled`
and `check_unique` refuse empty and repeated ids the same way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modiste.data.errors import DatasetError
from modiste.data.importers.builder import DatasetBuilder

NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape turns undecodable bytes into


def find_table(folder: Path, name: str | os.PathLike | None, candidates: tuple[str, ...], option: str,
               required: bool) -> Path | None:
    """The file option `option` names (relative to `folder` unless absolute), else the first of the release's
    names present in the folder; None where there is none and the table is optional."""
    if name is not None:
        path = Path(name) if Path(name).is_absolute() else folder / name
        if not path.is_file():
            raise DatasetError(str(name), f"missing: {path} does not exist (named by option {option})")
        return path
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    if required:
        lacks = f"no {candidates[0]}" if len(candidates) == 1 else f"none of {', '.join(candidates)}"
        raise DatasetError(candidates[0], f"missing: {folder} has {lacks}; name the file with --set {option}=NAME")
    return None


def estimate_chunks(path: Path, chunksize: int) -> int:
    """How many chunks a file makes, from the line length of its first MiB (for the progress bar)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    line_bytes = len(head) / max(head.count(b"\n"), 1)
    return max(1, math.ceil(size / max(line_bytes, 1) / chunksize))


def parse_error(file: str, e: Exception, header_lines: int = 0) -> DatasetError:
    """pandas' parse error as a DatasetError naming the 0-based data row (after `header_lines` header lines)."""
    message = str(e).split("C error: ")[-1].strip()
    row = None
    if m := re.search(r"line (\d+)", message):  # 1-based line of the file
        row = int(m.group(1)) - 1 - header_lines
    elif m := re.search(r"row (\d+)", message):  # 0-based line of the file
        row = int(m.group(1)) - header_lines
    return DatasetError(file, f"does not parse ({message}): is the file truncated or corrupt?", row=row)


def read_chunks(path: Path, build: DatasetBuilder, description: str, chunksize: int, *, header_lines: int = 0,
                **read: Any) -> Iterator[pd.DataFrame]:
    """pandas chunks of `path` (``pd.read_csv(path, chunksize=chunksize, **read)``) with a progress bar; an empty
    file has no chunks, and a parse error names the file and its row."""
    try:
        with pd.read_csv(path, chunksize=chunksize, **read) as reader:
            yield from build.bar.track(reader, description, total=estimate_chunks(path, chunksize))
    except pd.errors.EmptyDataError:
        return  # an empty file is a file with no lines
    except pd.errors.ParserError as e:
        raise parse_error(path.name, e, header_lines) from None


def check_utf8(values: pd.Series, file: str, field: str) -> None:
    """Refuse text read with surrogateescape that held bytes which are not UTF-8 (the Series index is the row)."""
    bad = values.str.contains(NOT_UTF8, na=False).to_numpy()
    if bad.any():
        r = int(np.argmax(bad))
        raw = values.iloc[r].encode("utf-8", "surrogateescape")
        raise DatasetError(file, f"is not UTF-8 text: {raw[:60]!r}", row=int(values.index[r]), field=field)


def check_filled(values: pd.Series, file: str, field: str, message: str = "is empty") -> None:
    """Refuse an empty or blank value (the Series index is the row)."""
    empty = (values.str.strip() == "").to_numpy()
    if empty.any():
        raise DatasetError(file, message, row=int(values.index[np.argmax(empty)]), field=field)


def check_unique(ids: np.ndarray, rows: np.ndarray, file: str, field: str) -> None:
    """Refuse a repeated id, naming the row of its second use and of its first (`rows`: each id's row)."""
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        second = int(np.argmax(duplicated))
        first = int(np.flatnonzero(ids == ids[second])[0])
        raise DatasetError(file, f"duplicate {field} {ids[second]!r} (also at row {rows[first]})",
                           row=int(rows[second]), field=field)
