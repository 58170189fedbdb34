"""Open a modiste dataset directory lazily, and refuse bad content with one clear error.

>>> ds = Dataset("data/tiny")          # reads and checks manifest.json only
>>> ds.items                           # items.parquet, checked on first use
>>> ds.images[ds.item_row("i000042")]  # a (64, 64, 3) uint8 view of the memory-mapped array
>>> ds.validate()                      # everything, eagerly, cross-references included

Every problem is a `DatasetError` naming the file, the 0-based row and the field. Nothing is
repaired silently: a dataset either opens as written or does not open.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from modiste.data import schema
from modiste.data.errors import DatasetError
from modiste.data.schema import Column


class Dataset:
    """A dataset directory in the modiste format (see `modiste.data.schema`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DatasetError(str(self.path), "not a dataset directory (it does not exist or is a file)")
        self.manifest = self._read_manifest()

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, name={self.name!r})"

    # ------------------------------------------------------------------ manifest

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def attributes(self) -> list[str]:
        """The item attribute columns, in caption order (e.g. color, pattern, ...)."""
        return list(self.manifest["attributes"])

    @property
    def has_images(self) -> bool:
        return bool(self.manifest["has_images"])

    @property
    def has_persons(self) -> bool:
        return (self.path / schema.PERSONS).exists()

    def _read_manifest(self) -> dict[str, Any]:
        file = schema.MANIFEST
        path = self.path / file
        if not path.exists():
            raise DatasetError(file, f"missing: {self.path} has no {file}")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise DatasetError(file, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        except json.JSONDecodeError as e:
            raise DatasetError(file, f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
        if not isinstance(manifest, dict):
            raise DatasetError(file, "must hold a JSON object")
        for key in schema.MANIFEST_REQUIRED:
            if key not in manifest:
                raise DatasetError(file, "required key is missing", field=key)
        if manifest["schema_version"] != schema.SCHEMA_VERSION:
            raise DatasetError(
                file,
                f"schema version {manifest['schema_version']!r} is not supported "
                f"(this modiste reads version {schema.SCHEMA_VERSION})",
                field="schema_version",
            )
        for key, kind in (("name", str), ("source", str), ("license", str), ("counts", dict), ("splits", dict),
                          ("has_images", bool), ("attributes", list)):
            if not isinstance(manifest[key], kind):
                raise DatasetError(file, f"must be a JSON {_json_kind(kind)}", field=key)
        for i, attribute in enumerate(manifest["attributes"]):
            if not isinstance(attribute, str) or not attribute.isidentifier():
                raise DatasetError(file, f"attribute {i} must be a column name, got {attribute!r}", field="attributes")
        return manifest

    # ------------------------------------------------------------------ tables

    @cached_property
    def items(self) -> pd.DataFrame:
        columns = schema.ITEM_COLUMNS + tuple(Column(a, "string", nullable=True) for a in self.attributes)
        table = self._read_table(schema.ITEMS, columns)
        if self.has_images and "has_image" in table.column_names:
            _check_type(schema.ITEMS, table, Column("has_image", "bool"))
        ids = _unique_ids(schema.ITEMS, table, "item_id")
        self._check_captions(table)
        df = table.to_pandas()
        df.index = pd.Index(ids, name="item_id")  # the row order is the image order
        return df

    @cached_property
    def users(self) -> pd.DataFrame:
        table = self._read_table(schema.USERS, schema.USER_COLUMNS)
        ids = _unique_ids(schema.USERS, table, "user_id")
        df = table.to_pandas()
        for field in schema.BODY_FIELDS:
            if field not in df:
                df[field] = None
        df.index = pd.Index(ids, name="user_id")
        return df

    @cached_property
    def interactions(self) -> pd.DataFrame:
        file = schema.INTERACTIONS
        table = self._read_table(file, schema.INTERACTION_COLUMNS)
        _check_splits(file, table)
        _check_refs(file, table, "user_id", self.users.index, "users.parquet")
        _check_refs(file, table, "item_id", self.items.index, "items.parquet")
        return table.to_pandas()

    @cached_property
    def outfits(self) -> pd.DataFrame:
        file = schema.OUTFITS
        table = self._read_table(file, schema.OUTFIT_COLUMNS)
        _unique_ids(file, table, "outfit_id")
        _check_splits(file, table)
        _check_refs(file, table, "user_id", self.users.index, "users.parquet")
        lengths = pc.list_value_length(table["item_ids"]).to_numpy(zero_copy_only=False)
        cat_lengths = pc.list_value_length(table["categories"]).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != cat_lengths)
        if bad.size:
            r = int(bad[0])
            raise DatasetError(file, f"has {cat_lengths[r]} categories for {lengths[r]} items", row=r, field="categories")
        bad = np.flatnonzero(lengths < 2)
        if bad.size:
            raise DatasetError(file, "an outfit needs at least 2 items", row=int(bad[0]), field="item_ids")
        rows = _check_list_refs(file, table, "item_ids", self.items.index, "items.parquet")
        # Each listed category must be the item's own: a mismatch is a data error, not something to repair.
        listed = pc.list_flatten(table["categories"]).to_numpy(zero_copy_only=False)
        actual = self.items["category"].to_numpy()[rows]
        bad = np.flatnonzero(listed != actual)
        if bad.size:
            flat = int(bad[0])
            r = int(np.searchsorted(np.cumsum(lengths), flat, side="right"))
            raise DatasetError(
                file, f"category {listed[flat]!r} does not match item {self.items.index[rows[flat]]!r}, "
                f"whose category is {actual[flat]!r}", row=r, field="categories")
        return table.to_pandas()

    @cached_property
    def fitb(self) -> pd.DataFrame | None:
        """Fill-in-the-blank questions, or None where the dataset has none."""
        file = schema.FITB
        if not (self.path / file).exists():
            return None
        table = self._read_table(file, schema.FITB_COLUMNS)
        _unique_ids(file, table, "question_id")
        _check_splits(file, table)
        _check_refs(file, table, "outfit_id", pd.Index(self.outfits["outfit_id"]), "outfits.parquet")
        _check_refs(file, table, "answer", self.items.index, "items.parquet")
        _check_list_refs(file, table, "candidates", self.items.index, "items.parquet")
        df = table.to_pandas()
        for r, (answer, candidates) in enumerate(zip(df["answer"], df["candidates"])):
            if answer not in candidates:
                raise DatasetError(file, f"answer {answer!r} is not among the candidates", row=r, field="answer")
        return df

    @cached_property
    def histories(self) -> pd.DataFrame | None:
        """A release's own per-user, per-category histories, or None where the dataset has none."""
        file = schema.HISTORIES
        if not (self.path / file).exists():
            return None
        table = self._read_table(file, schema.HISTORY_COLUMNS)
        _check_splits(file, table)
        _check_refs(file, table, "user_id", self.users.index, "users.parquet")
        _check_list_refs(file, table, "item_ids", self.items.index, "items.parquet")
        return table.to_pandas()

    @cached_property
    def compatibility(self) -> pd.DataFrame | None:
        """Outfit compatibility questions (item_ids, label 1 = a real outfit, 0 = a random one), or None."""
        file = schema.COMPATIBILITY
        if not (self.path / file).exists():
            return None
        table = self._read_table(file, schema.COMPATIBILITY_COLUMNS)
        _unique_ids(file, table, "question_id")
        _check_splits(file, table)
        _check_list_refs(file, table, "item_ids", self.items.index, "items.parquet")
        labels = table["label"].to_numpy(zero_copy_only=False)
        bad = np.flatnonzero((labels != 0) & (labels != 1))
        if bad.size:
            raise DatasetError(file, f"label must be 0 or 1, got {labels[bad[0]]}", row=int(bad[0]), field="label")
        return table.to_pandas()

    @cached_property
    def persons(self) -> pd.DataFrame | None:
        """People with body attributes, or None where the dataset has none."""
        file = schema.PERSONS
        if not (self.path / file).exists():
            return None
        table = self._read_table(file, schema.PERSON_COLUMNS)
        ids = _unique_ids(file, table, "person_id")
        if "user_id" in table.column_names:
            _check_refs(file, table, "user_id", self.users.index, "users.parquet")
        df = table.to_pandas()
        df.index = pd.Index(ids, name="person_id")
        return df

    # ------------------------------------------------------------------ arrays

    @cached_property
    def images(self) -> np.ndarray:
        """All item images as one read-only memory map, uint8 (n_items, 64, 64, 3), in items.parquet order."""
        if not self.has_images:
            raise DatasetError(schema.IMAGES, f"dataset '{self.name}' has no images (manifest has_images is false)")
        size = schema.IMAGE_SIZE
        return self._read_array(schema.IMAGES, (len(self.items), size, size, 3))

    @cached_property
    def person_images(self) -> np.ndarray:
        """Front-view avatars, uint8 (n_persons, 128, 64, 3), in persons.parquet order."""
        return self._read_array(schema.PERSON_IMAGES, self._person_shape + (3,))

    @cached_property
    def person_masks(self) -> np.ndarray:
        """Parse masks, uint8 (n_persons, 128, 64), pixel values index `schema.MASK_LABELS`."""
        masks = self._read_array(schema.PERSON_MASKS, self._person_shape)
        n_labels = len(schema.MASK_LABELS)
        for start in range(0, len(masks), 4096):  # chunk by chunk: the array need not fit in memory
            chunk = masks[start:start + 4096]
            bad = np.flatnonzero((chunk >= n_labels).any(axis=(1, 2)))
            if bad.size:
                raise DatasetError(schema.PERSON_MASKS, f"label {int(chunk[bad[0]].max())} is not one of the "
                                   f"{n_labels} mask labels", row=start + int(bad[0]), field="label")
        return masks

    @property
    def _person_shape(self) -> tuple[int, int, int]:
        if self.persons is None:
            raise DatasetError(schema.PERSONS, f"dataset '{self.name}' has no persons")
        return (len(self.persons), schema.AVATAR_HEIGHT, schema.AVATAR_WIDTH)

    # ------------------------------------------------------------------ lookups

    @cached_property
    def _item_rows(self) -> pd.Series:
        return pd.Series(np.arange(len(self.items)), index=self.items.index)

    def item_row(self, item_id: str) -> int:
        """The row of an item in items.parquet and images.npy."""
        try:
            return int(self._item_rows[item_id])
        except KeyError:
            raise KeyError(f"no item {item_id!r} in dataset '{self.name}'") from None

    def item_rows(self, item_ids) -> np.ndarray:
        """Rows of many items at once (KeyError naming the first unknown id)."""
        rows = self._item_rows.reindex(np.asarray(item_ids, dtype=object))
        if rows.isna().any():
            raise KeyError(f"no item {rows.index[rows.isna().to_numpy()][0]!r} in dataset '{self.name}'")
        return rows.to_numpy(dtype=np.int64)

    def history(self, user_id: str, category: str | None = None, split: str = "train") -> list[str]:
        """The items a user interacted with in a split, oldest first, optionally in one category."""
        df = self.interactions
        mine = df[(df["user_id"] == user_id) & (df["split"] == split)].sort_values("timestamp", kind="stable")
        ids = mine["item_id"].tolist()
        if category is not None:
            categories = self.items["category"]
            ids = [i for i in ids if categories[i] == category]
        return ids

    # ------------------------------------------------------------------ checks

    def validate(self) -> Dataset:
        """Read and check every file and every cross-reference now; returns self."""
        self.items, self.users, self.interactions, self.outfits, self.fitb, self.histories  # noqa: B018
        self.compatibility, self.persons  # noqa: B018
        if self.has_images:
            self.images  # noqa: B018
        elif (self.path / schema.IMAGES).exists():
            raise DatasetError(schema.MANIFEST, f"{schema.IMAGES} exists but has_images is false", field="has_images")
        if self.persons is not None:
            self.person_images, self.person_masks  # noqa: B018
        self._check_counts()
        return self

    def _check_counts(self) -> None:
        counts = self.manifest["counts"]
        actual = {"items": len(self.items), "users": len(self.users), "interactions": len(self.interactions),
                  "outfits": len(self.outfits)}
        if self.persons is not None:
            actual["persons"] = len(self.persons)
        for key, n in actual.items():
            if key in counts and counts[key] != n:
                raise DatasetError(schema.MANIFEST, f"says {counts[key]} but the dataset has {n}", field=f"counts.{key}")

    def _check_captions(self, table: pa.Table) -> None:
        file = schema.ITEMS
        captions = table["caption"].to_pylist()
        categories = table["category"].to_pylist()
        expected = set(schema.CAPTION_KEYS)
        for r, text in enumerate(captions):
            try:
                caption = json.loads(text)
            except json.JSONDecodeError as e:
                raise DatasetError(file, f"caption is not valid JSON ({e.msg})", row=r, field="caption") from None
            if not isinstance(caption, dict) or set(caption) != expected:
                got = sorted(caption) if isinstance(caption, dict) else type(caption).__name__
                raise DatasetError(file, f"caption must be a JSON object with exactly the keys "
                                   f"{', '.join(schema.CAPTION_KEYS)}; got {got}", row=r, field="caption")
            bad = [k for k, v in caption.items() if v is not None and not isinstance(v, str)]
            if bad:
                raise DatasetError(file, f"caption value of {bad[0]!r} must be a string or null", row=r, field="caption")
            if caption["Category"] != categories[r]:
                raise DatasetError(file, f"caption Category {caption['Category']!r} differs from the item's category "
                                   f"{categories[r]!r}", row=r, field="caption")

    def _read_table(self, file: str, columns: tuple[Column, ...]) -> pa.Table:
        path = self.path / file
        if not path.exists():
            raise DatasetError(file, f"missing: {self.path} has no {file}")
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as e:
            raise DatasetError(file, f"not a readable Parquet file ({e})") from None
        optional = schema.OPTIONAL_COLUMNS.get(file, set())
        for column in columns:
            if column.name not in table.column_names:
                if column.name in optional:
                    continue
                raise DatasetError(file, "required column is missing", field=column.name)
            _check_type(file, table, column)
        return table

    def _read_array(self, file: str, shape: tuple[int, ...]) -> np.ndarray:
        path = self.path / file
        if not path.exists():
            raise DatasetError(file, f"missing: {self.path} has no {file}")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DatasetError(file, f"does not decode as a .npy array ({e})") from None
        if array.dtype != np.uint8:
            raise DatasetError(file, f"dtype is {array.dtype}, expected uint8", field="dtype")
        if array.shape[1:] != shape[1:]:
            raise DatasetError(file, f"each image has shape {array.shape[1:]}, expected {shape[1:]}", field="shape")
        if array.shape[0] != shape[0]:
            raise DatasetError(file, f"holds {array.shape[0]} images for {shape[0]} rows", field="shape")
        return array


# ---------------------------------------------------------------------- column checks

def _json_kind(kind: type) -> str:
    return {str: "string", dict: "object", list: "array", bool: "boolean"}[kind]


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


_KIND_CHECKS = {
    "string": (_is_string, "string"),
    "int": (pa.types.is_integer, "integer"),
    "bool": (pa.types.is_boolean, "boolean"),
    "string_list": (lambda t: (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_string(t.value_type),
                    "list of strings"),
}


def _check_type(file: str, table: pa.Table, column: Column) -> None:
    data = table[column.name]
    test, expected = _KIND_CHECKS[column.kind]
    if not (test(data.type) or (column.nullable and pa.types.is_null(data.type))):
        raise DatasetError(file, f"has type {data.type}, expected {expected}", field=column.name)
    if not column.nullable and data.null_count:
        r = int(pc.index(pc.is_null(data), True).as_py())
        raise DatasetError(file, "is empty (null), but a value is required", row=r, field=column.name)
    if column.kind == "string_list":
        flat = pc.list_flatten(data)
        if flat.null_count:
            first = pc.index(pc.is_null(flat), True).as_py()
            r = int(pc.list_parent_indices(data).to_numpy()[first])
            raise DatasetError(file, "holds an empty (null) entry", row=r, field=column.name)


def _unique_ids(file: str, table: pa.Table, field: str) -> np.ndarray:
    ids = table[field].to_numpy(zero_copy_only=False).astype(object)
    codes, uniques = pd.factorize(ids)
    if len(uniques) != len(ids):
        counts = np.bincount(codes)
        dup_rows = np.flatnonzero(counts[codes] > 1)
        first, second = int(dup_rows[0]), int(dup_rows[codes[dup_rows] == codes[dup_rows[0]]][1])
        raise DatasetError(file, f"duplicate id {ids[second]!r} (also at row {first})", row=second, field=field)
    return ids


def _check_splits(file: str, table: pa.Table) -> None:
    if table.num_rows == 0:
        return
    valid = pc.is_in(table["split"], value_set=pa.array(schema.SPLITS))
    if not pc.all(valid).as_py():
        r = int(pc.index(valid, False).as_py())
        raise DatasetError(file, f"split {table['split'][r].as_py()!r} is not one of {', '.join(schema.SPLITS)}",
                           row=r, field="split")


def _check_refs(file: str, table: pa.Table, field: str, known: pd.Index, target: str) -> None:
    # In Arrow: turning 31M ids into Python strings would cost gigabytes.
    column = table[field]
    if len(column) == 0 or pa.types.is_null(column.type):  # nothing, or only nulls, to look up
        return
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    found = pc.is_in(column, value_set=pa.array(known.to_numpy(dtype=object), type=column.type))
    bad = pc.and_(pc.is_valid(column), pc.invert(found))
    if pc.any(bad).as_py():
        r = int(pc.index(bad, True).as_py())
        raise DatasetError(file, f"{column[r].as_py()!r} is not in {target}", row=r, field=field)


def _check_list_refs(file: str, table: pa.Table, field: str, known: pd.Index, target: str) -> np.ndarray:
    """Check every id in a list column; return the row of each flattened entry in `known`."""
    flat = pc.list_flatten(table[field]).to_numpy(zero_copy_only=False).astype(object)
    rows = known.get_indexer(flat)
    bad = np.flatnonzero(rows < 0)
    if bad.size:
        parents = pc.list_parent_indices(table[field]).to_numpy()
        raise DatasetError(file, f"{flat[bad[0]]!r} is not in {target}", row=int(parents[bad[0]]), field=field)
    return rows
