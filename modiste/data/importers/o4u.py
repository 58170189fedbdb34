"""Outfit4You (O4U), the body-aware outfit dataset of the FCN paper (BMVC 2022).

The release is a list of JSON records, as one JSON array or as JSON Lines (both are accepted; the first
character decides). Each record::

    {"id": 17, "score": 4,
     "item_1": "U1234", "item_2": "B88", ..., "item_9": "",      type-prefixed item ids; slots may be empty
     "body_figure": "hourglass,pear", "skin_color": "fair", "hair_style": ..., "hair_color": ...,
     "height": ..., "breasts": ..., "color_contrast": ...}        comma-separated multi-labels, often missing

Item prefixes: U top, B bottom, G bag, S shoes, A accessory; any other is an error (the file, the record and
the slot are named). An item id keeps its prefix ("U1234"): the prefix is part of the release's id.

What becomes what, and why:

- A record is one outfit (outfit_id = id) worn or rated for one person, and the only thing that describes that
  person is the record's body labels. So each record is its own user, "o4u-<id>", with the body fields of
  `schema.BODY_FIELDS`; multi-labels are normalised (trimmed, de-duplicated, sorted, comma-joined; missing,
  null or "" -> null). "breasts" is not a schema body field: it is dropped (its label counts go to the
  manifest) unless the schema gains it, in which case it is kept with no change here.
- interactions: the record's user with each item of the outfit, timestamp = the record's position in the file
  (the release has no time).
- split: by outfit, a seeded random 80/10/10 (option seed, default 0); an outfit's interactions share its
  split. Every user has one outfit, so valid/test users are new users: this is a body-conditioned outfit
  dataset, not a history-based one.
- score: the outfits table has no column for it, so only its distribution goes to the manifest
  (``o4u.score``); no score is turned into a filter or a label.
- A record with fewer than 2 distinct items cannot be an outfit: it is skipped and counted, and an item listed
  twice in one record is kept once (counted).
- Images: none, unless option images=DIR holds <item_id>.jpg (missing or undecodable ones are left white with
  has_image false, counted).

Options: file (the records' file inside a src folder; default the folder's only .json/.jsonl/.ndjson file),
images, seed, workers (threads decoding images).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modiste.data import schema
from modiste.data.errors import DatasetError
from modiste.data.importers.builder import (DatasetBuilder, caption, check_options, gc_paused, load_images, read_utf8,
                                            workers_option)

CATEGORIES = {"U": "top", "B": "bottom", "G": "bag", "S": "shoes", "A": "accessory"}
# The record's body labels, in the release's order; those in schema.BODY_FIELDS are kept.
RECORD_BODY_FIELDS = ("body_figure", "skin_color", "hair_style", "hair_color", "height", "breasts", "color_contrast")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
_KNOWN_OPTIONS = ("file", "images", "seed", "workers")
_ITEM_KEY = re.compile(r"item_(\d+)$")
_SUFFIXES = (".json", ".jsonl", ".ndjson")


class _Record(dict):
    """A parsed JSON object that remembers a key it saw twice (json.loads would keep only the last)."""

    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Record:
    record = _Record(pairs)
    if len(record) != len(pairs):
        counts = Counter(k for k, _ in pairs)
        record.duplicate = next(k for k, _ in pairs if counts[k] > 1)
    return record


def _options(options: dict[str, Any]) -> dict[str, Any]:
    check_options("o4u", options, _KNOWN_OPTIONS)
    seed = options.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"o4u: seed must be an integer, got {seed!r}")
    return {"file": options.get("file"), "images": None if options.get("images") is None else Path(options["images"]),
            "seed": seed, "workers": workers_option(options, "o4u")}


def dataset_info(src: Path, **options: Any) -> dict:
    _options(options)
    return {
        "name": "o4u",
        "license": "research use only (see the Outfit4You release's terms)",
        "attributes": [],
        "provenance": "Outfit4You (O4U): outfits with the body labels of the person they suit, from the FCN "
                      "paper (BMVC 2022)",
    }


# ---------------------------------------------------------------------------- reading

def _records_file(src: Path, name: str | None) -> Path:
    if src.is_file():
        if name is not None:
            raise DatasetError(str(src), "is a file; the file option names a file inside a source folder")
        return src
    if name is not None:
        path = src / str(name)
        if not path.is_file():
            raise DatasetError(str(name), f"missing: {path} does not exist")
        return path
    found = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in _SUFFIXES)
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise DatasetError(str(src), f"holds {len(found)} JSON files ({listed}): name the records' file with "
                                     "--set file=NAME")
    return found[0]


def _read_records(path: Path, file: str) -> list[tuple[int, Any]]:
    """(row, record) pairs: row is the record's index in a JSON array, or its 0-based line in JSON Lines."""
    text = read_utf8(path, file).removeprefix("\ufeff")
    head = text.lstrip()[:1]
    if head == "[":
        try:
            records = json.loads(text, object_pairs_hook=_pairs)
        except json.JSONDecodeError as e:
            raise DatasetError(file, f"not valid JSON (corrupt or truncated?): {e.msg} at line {e.lineno}, "
                                     f"column {e.colno}") from None
        return list(enumerate(records))
    if head != "{":
        raise DatasetError(file, "must hold a JSON array of records or JSON Lines (one record per line)")
    records = []
    for row, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            records.append((row, json.loads(line, object_pairs_hook=_pairs)))
        except json.JSONDecodeError as e:
            raise DatasetError(file, f"not valid JSON on this line: {e.msg} at column {e.colno}", row=row) from None
    return records


def _labels(value: Any, file: str, row: int, field: str) -> str | None:
    """A comma-separated multi-label, normalised: trimmed, de-duplicated, sorted, comma-joined; None if empty."""
    if value is None:
        return None
    if isinstance(value, str):
        if "," not in value:
            return value.strip() or None
        parts = [value]
    elif isinstance(value, list):
        parts = value
    else:
        parts = [value]
    labels = set()
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, str | int | float):
            raise DatasetError(file, f"must be a comma-separated string of labels, got {value!r}", row=row,
                               field=field)
        labels.update(s.strip() for s in str(part).split(","))
    labels.discard("")
    return ",".join(sorted(labels)) or None


def _score(value: Any, file: str, row: int) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DatasetError(file, f"must be a number, got {value!r}", row=row, field="score") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(file, f"must be a number, got {value!r}", row=row, field="score")
    return None if np.isnan(value) else float(value)


class _Layout:
    """What a record's keys are, worked out once per distinct key order (records mostly share one)."""

    def __init__(self, keys: tuple[str, ...], known: set[str]):
        slots = sorted((int(m.group(1)), key) for key in keys if (m := _ITEM_KEY.match(key)))
        self.item_keys = [key for _, key in slots]  # item_1, item_2, ..., any number, in slot order
        self.other_keys = [key for key in keys if key not in known and not _ITEM_KEY.match(key)]


def _outfit_items(record: dict, item_keys: list[str], file: str, row: int) -> list[str]:
    """The record's item ids, slot by slot, empty slots left out."""
    items = []
    for key in item_keys:
        value = record[key]
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise DatasetError(file, f"must be a type-prefixed item id string, got {value!r}", row=row, field=key)
        item_id = value.strip()
        if not item_id:
            continue
        if item_id[0] not in CATEGORIES:
            known = ", ".join(f"{p} {c}" for p, c in CATEGORIES.items())
            raise DatasetError(file, f"item {item_id!r} has an unknown type prefix {item_id[0]!r} (known: {known})",
                               row=row, field=key)
        items.append(item_id)
    return items


# ---------------------------------------------------------------------------- run

def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    with gc_paused():  # parsing makes millions of small acyclic objects
        _run(src, build, **options)


def _run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    opts = _options(options)
    src = Path(src)
    path = _records_file(src, opts["file"])
    file = path.name
    build.bar.step(f"reading {file}")
    records = _read_records(path, file)

    kept_fields = [f for f in RECORD_BODY_FIELDS if f in schema.BODY_FIELDS]
    dropped_fields = [f for f in RECORD_BODY_FIELDS if f not in schema.BODY_FIELDS]
    known_keys = {"id", "score", *RECORD_BODY_FIELDS}
    other_keys: Counter[str] = Counter()
    layouts: dict[tuple[str, ...], _Layout] = {}
    first_row: dict[str, int] = {}
    outfits, users, scores, missing_scores = [], [], [], 0
    label_counts = {f: Counter() for f in RECORD_BODY_FIELDS}
    with_labels = Counter()
    block = 4096  # progress per block of records: a bar update per record would cost more than the record
    for start in build.bar.track(range(0, len(records), block), "reading records",
                                 total=(len(records) + block - 1) // block):
        for row, record in records[start:start + block]:
            if not isinstance(record, dict):
                raise DatasetError(file, f"a record must be a JSON object, not {type(record).__name__}", row=row)
            if record.duplicate is not None:
                raise DatasetError(file, f"the record has the key {record.duplicate!r} twice", row=row,
                                   field=record.duplicate)
            raw_id = record.get("id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
                raise DatasetError(file, f"id must be a non-empty string or integer, got {raw_id!r}", row=row,
                                   field="id")
            outfit_id = str(raw_id).strip()
            if outfit_id in first_row:
                raise DatasetError(file, f"duplicate id {outfit_id!r} (also at row {first_row[outfit_id]})",
                                   row=row, field="id")
            first_row[outfit_id] = row
            keys = tuple(record)
            layout = layouts.get(keys)
            if layout is None:
                layout = layouts[keys] = _Layout(keys, known_keys)
            other_keys.update(layout.other_keys)
            score = _score(record.get("score"), file, row)
            labels = {f: _labels(record.get(f), file, row, f) for f in RECORD_BODY_FIELDS}
            listed = _outfit_items(record, layout.item_keys, file, row)
            outfit_items = list(dict.fromkeys(listed))
            if len(outfit_items) < len(listed):
                build.report.skip("item listed twice in one record (kept once)", file=file, row=row,
                                  detail=f"id {outfit_id}")
            if len(outfit_items) < 2:
                build.report.skip("record with fewer than 2 items (no outfit)", file=file, row=row,
                                  detail=f"id {outfit_id}")
                continue
            if score is None:
                missing_scores += 1
            else:
                scores.append(score)
            for f, value in labels.items():
                if value is not None:
                    with_labels[f] += 1
                    label_counts[f].update(value.split(","))
            user_id = f"o4u-{outfit_id}"
            users.append((user_id, *(labels[f] for f in kept_fields)))
            outfits.append((outfit_id, user_id, outfit_items, row))
    if not outfits:
        raise DatasetError(file, "no record has an outfit of 2 or more items")

    # -- split by outfit: a seeded permutation, cut 80/10/10
    n = len(outfits)
    order = np.random.default_rng(opts["seed"]).permutation(n)
    n_train, n_valid = round(SPLIT_FRACTIONS[0] * n), round(SPLIT_FRACTIONS[1] * n)
    split = np.empty(n, dtype=object)
    split[order[:n_train]] = "train"
    split[order[n_train:n_train + n_valid]] = "valid"
    split[order[n_train + n_valid:]] = "test"

    # -- items, in order of first appearance
    item_ids = list(dict.fromkeys(i for _, _, ids, _ in outfits for i in ids))
    categories = [CATEGORIES[i[0]] for i in item_ids]
    captions = {c: caption(c) for c in CATEGORIES.values()}
    items = pd.DataFrame({"item_id": item_ids, "category": categories, "description": categories,
                          "caption": [captions[c] for c in categories]})
    if opts["images"] is not None:
        if not opts["images"].is_dir():
            raise DatasetError(str(opts["images"]), "the image folder does not exist")
        folder = opts["images"]
        items["has_image"] = load_images(build, [folder / f"{i}.jpg" for i in item_ids], opts["workers"],
                                         label=f"{folder.name}/")
    else:
        build.report.note("no item images: O4U ships ids only; pass --images DIR holding <item_id>.jpg")
    build.items(items)
    build.users(pd.DataFrame(users, columns=["user_id", *kept_fields], dtype=object))

    lengths = np.array([len(ids) for _, _, ids, _ in outfits])
    build.interactions(pd.DataFrame({
        "user_id": np.repeat(np.array([u for _, u, _, _ in outfits], dtype=object), lengths),
        "item_id": [i for _, _, ids, _ in outfits for i in ids],
        "timestamp": np.repeat([row for _, _, _, row in outfits], lengths).astype(np.int64),
        "split": np.repeat(split, lengths),
    }))
    build.outfits(pd.DataFrame({
        "outfit_id": [o for o, _, _, _ in outfits],
        "user_id": [u for _, u, _, _ in outfits],
        "item_ids": [ids for _, _, ids, _ in outfits],
        "categories": [[CATEGORIES[i[0]] for i in ids] for _, _, ids, _ in outfits],
        "split": split,
    }))

    for f in dropped_fields:
        build.report.note(f"body label {f!r} ({with_labels[f]} records) is not a schema body field: dropped "
                          "(its label counts are in the manifest)")
    if other_keys:
        build.report.note("record keys not imported: " + ", ".join(f"{k} ({n})" for k, n in sorted(other_keys.items())))
    build.manifest(o4u={
        "score": _score_summary(scores, missing_scores),
        "body_labels": {f: {"records": with_labels[f], "labels": dict(sorted(label_counts[f].items())),
                            "kept": f in kept_fields} for f in RECORD_BODY_FIELDS},
        "split": {"by": "outfit", "seed": opts["seed"], "fractions": list(SPLIT_FRACTIONS)},
        "file": file,
    })


def _score_summary(scores: list[float], missing: int) -> dict[str, Any]:
    """count, missing, min/max/mean/median and the distribution (per value when few, else 10 bins)."""
    summary: dict[str, Any] = {"count": len(scores), "missing": missing}
    if not scores:
        return summary
    values = np.asarray(scores)
    summary.update(min=float(values.min()), max=float(values.max()), mean=round(float(values.mean()), 4),
                   median=float(np.median(values)))
    distinct, counts = np.unique(values, return_counts=True)
    if len(distinct) <= 20:
        summary["values"] = {f"{v:g}": int(c) for v, c in zip(distinct, counts)}
    else:
        counts, edges = np.histogram(values, bins=10)
        summary["histogram"] = {"edges": [round(float(e), 4) for e in edges], "counts": counts.tolist()}
    return summary
