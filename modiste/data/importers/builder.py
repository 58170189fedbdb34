"""What every importer shares: checking options, building a dataset in a temp directory, fitting and loading
images, reporting skips, splitting interactions.

An importer reads its source files and hands tables to a `DatasetBuilder`; the builder writes
them with the exact column types of `modiste.data.schema`, fills the manifest (counts, splits,
the import report), validates the result with `Dataset.validate()` and only then renames the
temp directory to the output. A failed import leaves no output behind and an old one untouched.

>>> with DatasetBuilder(out, name="polyvore-u", source="...", license="...") as build:
...     build.items(items_df); build.users(users_df); build.outfits(outfits_df)
...     build.report.skip("outfit with an unknown item", file="train.npy", row=12)
"""

from __future__ import annotations

import gc
import json
import mmap
import os
import resource
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, ImageOps, UnidentifiedImageError

from modiste.data import schema
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.schema import Column
from modiste.io import atomic_path, write_json
from modiste.progress import Progress

WHITE = 255
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
RELEASE_EVERY = 4096  # image rows written between two drops of the image file's mapped pages (48 MiB)
_ARROW_KINDS = {"string": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "string_list": pa.list_(pa.string())}
_EXAMPLES_KEPT = 5
_SPLIT_NAMES = np.array(schema.SPLITS, dtype=object)  # train, valid, test: leave_one_out's codes 0, 1, 2


# ---------------------------------------------------------------------------- options

def check_options(format: str, options: dict[str, Any], known: Iterable[str]) -> None:
    """A TypeError naming an option that importer `format` does not know, and listing those it does."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{format}: unknown option {unknown[0]!r}; known options: {', '.join(known)}")


def positive_int_option(options: dict[str, Any], key: str, format: str, default: int) -> int:
    """Option `key`, a positive integer (`default` where it is not given)."""
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{format}: {key} must be a positive integer, got {value!r}")
    return value


def workers_option(options: dict[str, Any], format: str) -> int:
    """The `workers` option: threads decoding images (default: up to 4, no more than the CPUs)."""
    return positive_int_option(options, "workers", format, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------- images

def fit_image(image: Image.Image) -> np.ndarray:
    """An image fitted into 64x64 on white, aspect kept and centred: uint8 (64, 64, 3)."""
    size = schema.IMAGE_SIZE
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (WHITE, WHITE, WHITE))
        image.paste(rgba, mask=rgba.getchannel("A"))
    image = ImageOps.contain(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (size, size), (WHITE, WHITE, WHITE))
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def decode_image(data: bytes | str | Path, *, source: str, row: int | None = None) -> np.ndarray:
    """Decode a JPEG/PNG/... (bytes or a path) and fit it to 64x64; a clear error if it does not decode."""
    try:
        with Image.open(BytesIO(data) if isinstance(data, bytes | bytearray) else data) as image:
            # JPEGs decode at a reduced scale straight from the DCT: several times faster for big photos.
            image.draft("RGB", (schema.IMAGE_SIZE * 2, schema.IMAGE_SIZE * 2))
            return fit_image(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(source, f"image does not decode ({e})", row=row, field="image") from None


def find_pictures(folder: Path, item_ids: Sequence[str], build: DatasetBuilder) -> list[Path | None]:
    """Each item's picture in `folder` or any sub-folder, named by its id (<item_id>.jpg, .jpeg, .png or .webp);
    None where it has none. The first file found for an id is taken."""
    if not folder.is_dir():
        raise DatasetError(str(folder), "the image folder does not exist")
    build.bar.step("listing pictures")
    files: dict[str, str] = {}
    for root, _, names in os.walk(folder):
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix.lower() in IMAGE_SUFFIXES:
                files.setdefault(stem, os.path.join(root, name))
    stems = pd.Index(list(files), dtype=object)
    found = list(files.values())
    where = stems.get_indexer(pd.Index(item_ids, dtype=object)) if len(stems) else np.full(len(item_ids), -1)
    return [Path(found[w]) if w >= 0 else None for w in where]


def load_images_by_id(build: DatasetBuilder, folder: Path, item_ids: Sequence[str], workers: int) -> np.ndarray:
    """`load_images` of a folder of pictures named by item id (see `find_pictures`); has_image per item. The
    manifest gets items_without_image."""
    has_image = load_images(build, find_pictures(folder, item_ids, build), workers, label=f"{folder.name}/",
                            ids=item_ids)
    build.manifest(items_without_image=int((~has_image).sum()))
    return has_image


def load_images(build: DatasetBuilder, paths: Sequence[Path | None], workers: int, label: str = "images/",
                ids: Sequence[str] | None = None) -> np.ndarray:
    """Decode one picture per item (None or an absent file: no picture) into the builder's image array.

    Returns has_image per item; a missing or undecodable picture leaves the item white and is counted in
    the report with an example (an item without a path is named by its id in `ids`, else by its row).
    Threads decode in parallel (Pillow releases the GIL while decoding); chunks bound what is in flight,
    so memory does not grow with the catalogue, and the written pages of the image file are dropped from
    resident memory as it goes.
    """
    images = build.image_array(len(paths))
    has_image = np.zeros(len(paths), dtype=bool)

    def one(i: int):
        path = paths[i]
        if not path.is_file():
            return None, "missing"
        try:
            return decode_image(path, source=f"{label}{path.name}"), None
        except DatasetError as e:
            return None, e.message

    chunk = 512
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in build.bar.track(range(0, len(paths), chunk), "decoding images", total=-(-len(paths) // chunk)):
            rows = range(start, min(start + chunk, len(paths)))
            # Items without a path are settled here: no thread for nothing to decode.
            decoded = pool.map(one, [i for i in rows if paths[i] is not None])
            for i in rows:
                image, problem = next(decoded) if paths[i] is not None else (None, "missing")
                if image is not None:
                    images[i] = image
                    has_image[i] = True
                elif problem == "missing":
                    if paths[i] is not None:
                        name = paths[i].name
                    else:
                        name = f"item {ids[i]}" if ids is not None else f"item row {i}"
                    build.report.skip("item image missing (left white)", file=label, detail=name)
                else:
                    build.report.skip("item image does not decode (left white)", file=f"{label}{paths[i].name}",
                                      detail=problem)
            if (start + chunk) % RELEASE_EVERY == 0:
                drop_mapped_pages(images)
    drop_mapped_pages(images)
    return has_image


def drop_mapped_pages(array: np.ndarray) -> None:
    """Take a file-backed array's pages out of this process's resident memory.

    For a shared file mapping (np.memmap, np.lib.format.open_memmap), MADV_DONTNEED unmaps the pages only:
    written data stays in the page cache and reaches the file, and a later read maps it back. Linux only;
    elsewhere, and for an array that is not a memmap, a no-op.
    """
    mapped = getattr(array, "_mmap", None)
    if mapped is not None and sys.platform.startswith("linux") and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def caption(category: str, **attributes: str | None) -> str:
    """The structured caption JSON (all 7 keys; unknown ones null)."""
    values = {key: None for key in schema.CAPTION_KEYS}
    values["Category"] = category
    for key, value in attributes.items():
        name = key.capitalize()
        if name not in values:
            raise KeyError(f"{key!r} is not a caption key ({', '.join(schema.CAPTION_KEYS)})")
        values[name] = value
    return json.dumps(values)


# ---------------------------------------------------------------------------- reading

def read_utf8(path: Path, file: str) -> str:
    """A whole file's text, which must be UTF-8: a DatasetError naming `file` and the first bad byte otherwise."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(file, f"not UTF-8 text ({e.reason} at byte {e.start})") from None


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a while: parsing builds millions of small acyclic objects, and the
    collector would rescan them over and over (a third of the import time at a release's size)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------- interactions

def concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    """The arrays of a chunked read end to end (an empty array of `dtype` when there were none)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def latest_of_pairs(user: np.ndarray, item: np.ndarray, n_items: int) -> np.ndarray:
    """Which rows to keep so that each (user, item) pair stays once, at its last row."""
    if len(user) == 0:
        return np.zeros(0, bool)
    key = user.astype(np.int64) * np.int64(n_items) + item.astype(np.int64)
    _, last_from_end = np.unique(key[::-1], return_index=True)
    keep = np.zeros(len(key), bool)
    keep[len(key) - 1 - last_from_end] = True
    return keep


def leave_one_out(user: np.ndarray) -> np.ndarray:
    """The split ("train", "valid" or "test", an object array) of rows grouped by user and in time order within
    a user: a user's last row to test, the one before to valid, for users with at least 3 rows; the rest train."""
    n = len(user)
    split = np.zeros(n, np.int64)
    if n:
        starts = np.r_[0, np.flatnonzero(user[1:] != user[:-1]) + 1]
        counts = np.diff(np.r_[starts, n])
        from_end = np.repeat(starts + counts, counts) - 1 - np.arange(n)
        eligible = np.repeat(counts >= 3, counts)
        split[eligible & (from_end == 1)] = 1
        split[eligible & (from_end == 0)] = 2
    return _SPLIT_NAMES[split]


# ---------------------------------------------------------------------------- report

@dataclass
class ImportReport:
    """What an import did: what it skipped and why (counted, with examples) and what the source lacked."""

    format: str
    source: str
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    peak_memory_mib: float = 0.0

    def skip(self, reason: str, *, file: str, row: int | str | None = None, detail: str = "") -> None:
        """Count one skipped record; the first few are kept as examples."""
        entry = self.skipped.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < _EXAMPLES_KEPT:
            where = file if row is None else f"{file} row {row}"
            entry["examples"].append(f"{where}{': ' + detail if detail else ''}")

    def skip_many(self, reason: str, count: int, *, file: str, examples: list[str] = ()) -> None:
        if count <= 0:
            return
        entry = self.skipped.setdefault(reason, {"count": 0, "examples": []})
        entry["count"] += int(count)
        entry["examples"].extend(f"{file}: {e}" for e in examples[: _EXAMPLES_KEPT - len(entry["examples"])])

    def lack(self, file: str, rules_out: str) -> None:
        """A source file is missing or unusable: say which tasks that rules out."""
        self.missing.append({"file": file, "rules_out": rules_out})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "source": self.source, "skipped": self.skipped, "missing": self.missing,
                "notes": self.notes, "counts": self.counts, "seconds": round(self.seconds, 2),
                "peak_memory_mib": round(self.peak_memory_mib, 1)}

    def lines(self) -> list[str]:
        """The report as short lines for a terminal."""
        out = [f"{self.format} from {self.source}: " + ", ".join(f"{n:,} {k}" for k, n in self.counts.items()),
               f"took {self.seconds:.1f} s, peak memory {self.peak_memory_mib:.0f} MiB"]
        for reason, entry in self.skipped.items():
            out.append(f"skipped {entry['count']:,}: {reason} (e.g. {entry['examples'][0]})"
                       if entry["examples"] else f"skipped {entry['count']:,}: {reason}")
        for m in self.missing:
            out.append(f"missing {m['file']}: rules out {m['rules_out']}")
        out.extend(self.notes)
        return out


# ---------------------------------------------------------------------------- builder

class DatasetBuilder:
    """Collects the tables of an import in a temp directory; on a clean exit validates and renames it to `out`."""

    def __init__(self, out: str | Path, *, format: str, source: str | Path, name: str, license: str,
                 attributes: list[str] | tuple[str, ...] = (), progress: Progress | None = None,
                 provenance: str = ""):
        self.out = Path(out)
        self.name, self.license, self.provenance = name, license, provenance
        self.attributes = list(attributes)
        self.report = ImportReport(format=format, source=str(source))
        self.bar = progress or Progress(enabled=False)
        self._tables: dict[str, pa.Table] = {}
        self._images: np.memmap | None = None
        self._manifest_extra: dict[str, Any] = {}
        self._start = time.perf_counter()

    def __enter__(self) -> DatasetBuilder:
        self._atomic = atomic_path(self.out)
        self.tmp = self._atomic.__enter__()
        self.tmp.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        self._atomic.__exit__(exc_type, exc, tb)
        return False

    # -- tables

    def items(self, df: pd.DataFrame) -> None:
        """item_id, category, caption (filled from category and attributes when absent), description."""
        df = df.copy()
        if "caption" not in df:
            attrs = [a for a in self.attributes if a in df]
            df["caption"] = [caption(c, **{a: (None if pd.isna(v) else str(v)) for a, v in zip(attrs, vals)})
                             for c, *vals in zip(df["category"], *(df[a] for a in attrs))]
        if "description" not in df:
            df["description"] = df["category"]
        columns = schema.ITEM_COLUMNS + tuple(Column(a, "string", nullable=True) for a in self.attributes)
        if "has_image" in df:
            columns += (Column("has_image", "bool"),)
        self._table(schema.ITEMS, df, columns)

    def users(self, df: pd.DataFrame) -> None:
        self._table(schema.USERS, df, schema.USER_COLUMNS, optional=set(schema.BODY_FIELDS))

    def interactions(self, df: pd.DataFrame) -> None:
        self._table(schema.INTERACTIONS, df, schema.INTERACTION_COLUMNS)

    def outfits(self, df: pd.DataFrame) -> None:
        self._table(schema.OUTFITS, df, schema.OUTFIT_COLUMNS)

    def fitb(self, df: pd.DataFrame) -> None:
        self._table(schema.FITB, df, schema.FITB_COLUMNS)

    def histories(self, df: pd.DataFrame) -> None:
        self._table(schema.HISTORIES, df, schema.HISTORY_COLUMNS)

    def compatibility(self, df: pd.DataFrame) -> None:
        """question_id, item_ids, label (1 = a real outfit, 0 = a random one), split."""
        self._table(schema.COMPATIBILITY, df, schema.COMPATIBILITY_COLUMNS)

    def image_array(self, n_items: int) -> np.memmap:
        """The (n_items, 64, 64, 3) uint8 image file, all white, written in place (never all in memory).

        It is filled white a chunk of rows at a time, dropping the mapped pages after each chunk: filling it at
        once would make all n_items x 12 KiB resident. Writers of many rows should `drop_mapped_pages` too.
        """
        size = schema.IMAGE_SIZE
        self._images = np.lib.format.open_memmap(self.tmp / schema.IMAGES, mode="w+", dtype=np.uint8,
                                                 shape=(n_items, size, size, 3))
        for start in range(0, n_items, RELEASE_EVERY):
            self._images[start:start + RELEASE_EVERY] = WHITE
            drop_mapped_pages(self._images)
        return self._images

    def manifest(self, **extra: Any) -> None:
        """Extra manifest keys (e.g. categories, the release's own names)."""
        self._manifest_extra.update(extra)

    def _table(self, file: str, df: pd.DataFrame, columns: tuple[Column, ...], optional: set[str] = frozenset()):
        arrays, fields = [], []
        for column in columns:
            if column.name not in df:
                if column.name in optional:
                    continue
                raise KeyError(f"{file}: the importer did not provide column {column.name!r}")
            kind = _ARROW_KINDS[column.kind]
            arrays.append(_arrow_column(df[column.name], column.kind))
            fields.append(pa.field(column.name, kind, nullable=column.nullable))
        self._tables[file] = pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    # -- finish

    def _finish(self) -> None:
        for file, columns in ((schema.USERS, schema.USER_COLUMNS), (schema.INTERACTIONS, schema.INTERACTION_COLUMNS),
                              (schema.OUTFITS, schema.OUTFIT_COLUMNS)):
            if file not in self._tables:  # a source without users, interactions or outfits: an empty table
                self._table(file, pd.DataFrame({c.name: [] for c in columns}), columns,
                            optional=set(schema.BODY_FIELDS))
        if schema.ITEMS not in self._tables:
            raise KeyError("the importer wrote no items")
        self.bar.step("writing the dataset")
        for file, table in self._tables.items():
            pq.write_table(table, self.tmp / file, compression="zstd")
        if self._images is not None:
            self._images.flush()
            self._images = None
        self.report.counts = {"items": self._tables[schema.ITEMS].num_rows, "users": self._tables[schema.USERS].num_rows,
                              "interactions": self._tables[schema.INTERACTIONS].num_rows,
                              "outfits": self._tables[schema.OUTFITS].num_rows}
        for file, key in ((schema.FITB, "fitb"), (schema.HISTORIES, "histories"),
                          (schema.COMPATIBILITY, "compatibility")):
            if file in self._tables:
                self.report.counts[key] = self._tables[file].num_rows
        self.report.seconds = time.perf_counter() - self._start
        self.report.peak_memory_mib = peak_memory_mib()
        write_json(self.tmp / schema.MANIFEST, self._manifest())
        self.bar.step("checking the dataset")
        Dataset(self.tmp).validate()

    def _manifest(self) -> dict[str, Any]:
        splits = {}
        for key, file in (("interactions", schema.INTERACTIONS), ("outfits", schema.OUTFITS), ("fitb", schema.FITB),
                          ("compatibility", schema.COMPATIBILITY)):
            if file in self._tables:
                counts = pd.Series(self._tables[file]["split"].to_numpy(zero_copy_only=False)).value_counts()
                splits[key] = {s: int(counts.get(s, 0)) for s in schema.SPLITS}
        items = self._tables[schema.ITEMS]
        categories = sorted(set(items["category"].to_pylist()))
        return {
            "schema_version": schema.SCHEMA_VERSION,
            "name": self.name,
            "source": self.report.format,
            "license": self.license,
            "provenance": self.provenance or f"modiste import {self.report.format} {self.report.source}",
            "counts": dict(self.report.counts),
            "splits": splits,
            "has_images": (self.tmp / schema.IMAGES).exists(),
            "attributes": self.attributes,
            "categories": categories,
            **self._manifest_extra,
            "import": self.report.to_dict(),
        }


def _arrow_column(values: pd.Series, kind: str) -> pa.Array:
    """A column as Arrow, converted whole where it can be (element by element costs seconds per million)."""
    if kind == "string_list":
        return pa.array([list(v) for v in values], type=_ARROW_KINDS[kind])
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects: one at a time
        array = pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values])
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if kind == "string" and not (pa.types.is_string(array.type) or pa.types.is_null(array.type)):
        if pa.types.is_large_string(array.type) or pa.types.is_string_view(array.type) \
                or pa.types.is_integer(array.type):
            return pc.cast(array, pa.string())
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], type=pa.string())
    return pc.cast(array, _ARROW_KINDS[kind]) if len(array) else pa.array([], type=_ARROW_KINDS[kind])


def peak_memory_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
