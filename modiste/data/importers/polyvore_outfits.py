"""Polyvore Outfits (Vasileva et al., ECCV 2018, "Learning Type-Aware Embeddings for Fashion Compatibility").

The release, as it unpacks::

    polyvore_item_metadata.json   {item_id: {url_name, description, catgeories, title, related, category_id,
                                   semantic_category}}
    polyvore_outfit_titles.json   optional: {set_id: {url_name, title}}
    categories.csv                optional: the fine categories' names
    images/<item_id>.jpg
    nondisjoint/ and disjoint/    two versions of the splits, each with
        train.json valid.json test.json   [{"set_id": "...", "items": [{"item_id": "...", "index": 1}, ...]}]
        fill_in_blank_<split>.json        [{"question": ["<set_id>_<index>", ...], "answers": [4 refs],
                                            "blank_position": 1-based}]
        compatibility_<split>.txt         "<label 0/1> <set_id>_<index> <set_id>_<index> ..."
        typespaces.p                      the type pairs the paper's model uses (a pickle)

What becomes what (options: ``version=nondisjoint|disjoint``, default nondisjoint; ``images=DIR`` instead of
<src>/images; ``workers=N`` threads decoding images, default up to 4):

- items: the items the chosen version references (its outfits, FITB questions and compatibility questions),
  in the metadata's order. Not the whole metadata: it covers both versions, and the disjoint version uses
  only ~150k of its ~250k items, so importing all of it would add images that no outfit or question uses.
  category = ``semantic_category`` (the ~11 coarse types); description = title, else description, else
  url_name, else the category; no attributes.
- outfits: every outfit of {train,valid,test}.json with its split; no users (user_id null), so users and
  interactions are empty.
- fitb.parquet: the release's questions (kind "release"). References are "<set_id>_<index>" and resolve,
  each through its own set_id, to the item ids of that split's outfits. The true answer is the candidate
  whose set_id is the question's: the answers list does not always put it first. The question's outfit is
  the held-out outfit of that set_id; blank_index is the answer's place in it, which is blank_position - 1
  when the question items with the answer inserted there give the outfit exactly (counted in the manifest
  when only the order differs, skipped when the items differ).
- compatibility.parquet (question_id, item_ids, label, split): the outfit compatibility questions, written
  beside the builder's tables because the schema has no table for them yet.

Quirks: the metadata spells "catgeories" (not needed here: semantic_category is used). Duplicate item ids in
the metadata's JSON object would be silently collapsed by a plain json.load: they are detected and refused.
typespaces.p is a pickle this importer never needs and never loads; polyvore_outfit_titles.json (outfit
titles) and categories.csv have no place in the schema and are not read. A missing image or one that does
not decode leaves the item white with has_image false, counted in the report.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from modiste.data import schema
from modiste.data.errors import DatasetError
from modiste.data.importers.builder import (DatasetBuilder, caption, check_options, gc_paused, load_images, read_utf8,
                                            workers_option)

VERSIONS = ("nondisjoint", "disjoint")
SPLITS = ("train", "valid", "test")
METADATA = "polyvore_item_metadata.json"
_KNOWN_OPTIONS = ("version", "images", "workers")
# The metadata fields this importer uses; the rest (related, catgeories, ...) is dropped while parsing.
_KEPT_FIELDS = ("semantic_category", "title", "description", "url_name")


class _DuplicateKey(Exception):
    def __init__(self, key: str, position: int, first: int, in_record: bool):
        self.key, self.position, self.first, self.in_record = key, position, first, in_record


def _options(options: dict[str, Any]) -> tuple[str, Path | None, int]:
    check_options("polyvore-outfits", options, _KNOWN_OPTIONS)
    version = str(options.get("version", "nondisjoint"))
    if version not in VERSIONS:
        raise ValueError(f"polyvore-outfits: version must be one of {', '.join(VERSIONS)}, got {version!r}")
    images = options.get("images")
    return version, (Path(images) if images is not None else None), workers_option(options, "polyvore-outfits")


def dataset_info(src: Path, **options: Any) -> dict:
    version, _, _ = _options(options)
    return {
        "name": f"polyvore-outfits-{version}",
        "license": "research use only (Polyvore content; see the release's terms)",
        "attributes": [],
        "provenance": f"Polyvore Outfits, {version} splits (Vasileva et al., ECCV 2018, "
                      "'Learning Type-Aware Embeddings for Fashion Compatibility')",
    }


# ---------------------------------------------------------------------------- reading

def _read_json(path: Path, file: str, object_pairs_hook=None) -> Any:
    """Parse a JSON file; errors name the file and say where (byte for bad UTF-8, line and column for JSON)."""
    if not path.is_file():
        raise DatasetError(file, f"missing: {path} does not exist")
    text = read_utf8(path, file)
    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as e:
        raise DatasetError(file, f"not valid JSON (corrupt or truncated?): {e.msg} at line {e.lineno}, "
                                 f"column {e.colno}") from None


def _metadata_pairs(pairs: list[tuple[str, Any]]) -> dict:
    """object_pairs_hook: refuse repeated keys (json.load would keep the last), trim item records."""
    record = dict(pairs)
    in_record = "semantic_category" in record  # an item's record, not the top-level object of item ids
    if len(record) != len(pairs):
        seen: dict[str, int] = {}
        for position, (key, _) in enumerate(pairs):
            if key in seen:
                raise _DuplicateKey(key, position, seen[key], in_record)
            seen[key] = position
    if in_record:
        return {k: record[k] for k in _KEPT_FIELDS if k in record}
    return record


def _read_metadata(src: Path) -> dict[str, dict]:
    try:
        metadata = _read_json(src / METADATA, METADATA, object_pairs_hook=_metadata_pairs)
    except _DuplicateKey as e:
        if e.in_record:
            raise DatasetError(METADATA, f"an item's record has the key {e.key!r} twice", field=e.key) from None
        raise DatasetError(METADATA, f"duplicate item id {e.key!r} (entries {e.first} and {e.position} of the "
                                     "object)", row=e.position, field="item_id") from None
    if not isinstance(metadata, dict):
        raise DatasetError(METADATA, f"must hold a JSON object of item id -> record, not a {type(metadata).__name__}")
    return metadata


def _id(value: Any) -> str | None:
    """A source id as a string ("123" or 123 -> "123"); None for anything else."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _read_outfits(path: Path, file: str) -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    """A split file: its outfits (set_id, item ids in order) and the map "<set_id>_<index>" -> item id."""
    data = _read_json(path, file)
    if not isinstance(data, list):
        raise DatasetError(file, f"must hold a JSON array of outfits, not a {type(data).__name__}")
    outfits, refs, rows_of_set = [], {}, {}
    for row, outfit in enumerate(data):
        if not isinstance(outfit, dict):
            raise DatasetError(file, "an outfit must be a JSON object", row=row)
        set_id = _id(outfit.get("set_id"))
        if set_id is None:
            raise DatasetError(file, f"set_id must be a non-empty string, got {outfit.get('set_id')!r}",
                               row=row, field="set_id")
        if set_id in rows_of_set:
            raise DatasetError(file, f"duplicate set_id {set_id!r} (also at row {rows_of_set[set_id]})",
                               row=row, field="set_id")
        rows_of_set[set_id] = row
        entries = outfit.get("items")
        if not isinstance(entries, list):
            raise DatasetError(file, "items must be a JSON array", row=row, field="items")
        item_ids = []
        for k, entry in enumerate(entries):
            item_id = _id(entry.get("item_id")) if isinstance(entry, dict) else None
            index = entry.get("index") if isinstance(entry, dict) else None
            if item_id is None:
                raise DatasetError(file, "item_id must be a non-empty string", row=row, field=f"items[{k}].item_id")
            if isinstance(index, str) and index.isdigit():
                index = int(index)
            if not isinstance(index, int) or isinstance(index, bool):
                raise DatasetError(file, f"index must be an integer, got {index!r}", row=row,
                                   field=f"items[{k}].index")
            ref = f"{set_id}_{index}"
            if ref in refs:
                raise DatasetError(file, f"reference {ref!r} is ambiguous: outfit {set_id} has index {index} "
                                         "twice", row=row, field=f"items[{k}].index")
            refs[ref] = item_id
            item_ids.append(item_id)
        outfits.append((set_id, item_ids))
    return outfits, refs


def _set_id(ref: str) -> str:
    return ref.rsplit("_", 1)[0]


# ---------------------------------------------------------------------------- questions

def _fitb(path: Path, file: str, split: str, refs: dict[str, str], kept: dict[str, list[str]],
          known_item, build: DatasetBuilder) -> tuple[list[dict], int]:
    """The FITB questions of one split file; returns the rows and how many needed the outfit's own order."""
    data = _read_json(path, file)
    if not isinstance(data, list):
        raise DatasetError(file, f"must hold a JSON array of questions, not a {type(data).__name__}")
    rows, reordered = [], 0
    skip = build.report.skip
    for r, q in enumerate(data):
        if not isinstance(q, dict):
            raise DatasetError(file, "a question must be a JSON object", row=r)
        for key in ("question", "answers"):
            refs_in = q.get(key)
            if not isinstance(refs_in, list) or not refs_in or not all(isinstance(x, str) for x in refs_in):
                raise DatasetError(file, "must be a non-empty JSON array of '<set_id>_<index>' strings",
                                   row=r, field=key)
        position = q.get("blank_position")
        if not isinstance(position, int) or isinstance(position, bool):
            raise DatasetError(file, f"must be an integer, got {position!r}", row=r, field="blank_position")
        question, answers = q["question"], q["answers"]
        set_id = _set_id(question[0])
        if any(_set_id(ref) != set_id for ref in question):
            skip("FITB question mixes items of several outfits", file=file, row=r, detail=", ".join(question))
            continue
        truths = [ref for ref in answers if _set_id(ref) == set_id]
        if len(truths) != 1:
            skip("FITB question without exactly one answer from the question's outfit", file=file, row=r,
                 detail=f"{len(truths)} of {', '.join(answers)}")
            continue
        unresolved = [ref for ref in question + answers if ref not in refs]
        if unresolved:
            skip(f"FITB reference to no item of {split}.json", file=file, row=r, detail=unresolved[0])
            continue
        context = [refs[ref] for ref in question]
        candidates = [refs[ref] for ref in answers]
        answer = refs[truths[0]]
        outfit = kept.get(set_id)
        if outfit is None:
            skip("FITB question on an outfit that was skipped", file=file, row=r, detail=set_id)
            continue
        if len(set(candidates)) != len(candidates):
            skip("FITB candidates repeat an item", file=file, row=r, detail=", ".join(candidates))
            continue
        if not all(known_item(i) for i in candidates):
            skip("FITB question with a candidate missing from the metadata", file=file, row=r)
            continue
        blank = min(max(position - 1, 0), len(context))
        built = context[:blank] + [answer] + context[blank:]
        if built != outfit:
            if Counter(built) != Counter(outfit):
                skip("FITB question plus its answer is not the held-out outfit", file=file, row=r, detail=set_id)
                continue
            blank = outfit.index(answer)  # same items, other order: the blank follows the outfit's order
            reordered += 1
        rows.append({"question_id": f"fitb-{split}-{r}", "outfit_id": set_id, "user_id": None,
                     "blank_index": blank, "candidates": candidates, "answer": answer, "kind": "release",
                     "split": split})
    return rows, reordered


def _compatibility(path: Path, file: str, split: str, refs: dict[str, str], known_item,
                   build: DatasetBuilder) -> list[dict]:
    text = read_utf8(path, file)
    rows = []
    for r, line in enumerate(text.splitlines()):
        tokens = line.split()
        if not tokens:
            continue
        if tokens[0] not in ("0", "1"):
            raise DatasetError(file, f"label must be 0 or 1, got {tokens[0]!r}", row=r, field="label")
        unresolved = [ref for ref in tokens[1:] if ref not in refs]
        if unresolved:
            build.report.skip(f"compatibility reference to no item of {split}.json", file=file, row=r,
                              detail=unresolved[0])
            continue
        item_ids = [refs[ref] for ref in tokens[1:]]
        if len(item_ids) < 2:
            build.report.skip("compatibility outfit with fewer than 2 items", file=file, row=r)
            continue
        if not all(known_item(i) for i in item_ids):
            build.report.skip("compatibility outfit with an item missing from the metadata", file=file, row=r)
            continue
        rows.append({"question_id": f"compat-{split}-{r}", "item_ids": item_ids, "label": int(tokens[0]),
                     "split": split})
    return rows


# ---------------------------------------------------------------------------- run

def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    with gc_paused():  # parsing builds millions of small acyclic objects
        _run(src, build, **options)


def _run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    version, images_dir, workers = _options(options)
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(str(src), "must be the folder of the Polyvore Outfits release (with "
                                     f"{METADATA} and {', '.join(VERSIONS)}/)")
    build.bar.step("reading the item metadata")
    metadata = _read_metadata(src)

    def known_item(item_id: str) -> bool:
        return item_id in metadata

    # -- outfits
    outfit_rows, refs_by_split, kept_by_split = [], {}, {}
    seen_sets: dict[str, str] = {}
    for split in SPLITS:
        file = f"{version}/{split}.json"
        outfits, refs = _read_outfits(src / version / f"{split}.json", file)
        refs_by_split[split] = refs
        kept = kept_by_split[split] = {}
        for row, (set_id, item_ids) in enumerate(outfits):
            if set_id in seen_sets:
                raise DatasetError(file, f"duplicate set_id {set_id!r} (also in {seen_sets[set_id]})",
                                   row=row, field="set_id")
            seen_sets[set_id] = file
            missing = [i for i in item_ids if i not in metadata]
            if missing:
                build.report.skip("outfit with an item missing from the metadata", file=file, row=row,
                                  detail=f"set {set_id}, item {missing[0]}")
                continue
            if len(item_ids) < 2:
                build.report.skip("outfit with fewer than 2 items", file=file, row=row, detail=set_id)
                continue
            kept[set_id] = item_ids
            outfit_rows.append((set_id, item_ids, split))
    if not outfit_rows:
        raise DatasetError(f"{version}/train.json", "no outfit could be imported (see the skipped items: "
                                                    f"is {METADATA} the release's own?)")

    # -- questions
    fitb_rows, compat_rows, reordered = [], [], 0
    for split in SPLITS:  # the release has valid and test; some mirrors add train
        name = f"fill_in_blank_{split}.json"
        if (src / version / name).is_file():
            rows, n = _fitb(src / version / name, f"{version}/{name}", split, refs_by_split[split],
                            kept_by_split[split], known_item, build)
            fitb_rows += rows
            reordered += n
        elif split != "train":
            build.report.lack(f"{version}/{name}", f"fill-in-the-blank evaluation on {split}")
        name = f"compatibility_{split}.txt"
        if (src / version / name).is_file():
            compat_rows += _compatibility(src / version / name, f"{version}/{name}", split, refs_by_split[split],
                                          known_item, build)
        elif split != "train":
            build.report.lack(f"{version}/{name}", f"outfit compatibility evaluation on {split}")

    # -- items: what the version references, in the metadata's order
    used = {i for _, item_ids, _ in outfit_rows for i in item_ids}
    used.update(i for q in fitb_rows for i in q["candidates"])
    used.update(i for q in compat_rows for i in q["item_ids"])
    item_ids = [i for i in metadata if i in used]
    categories, descriptions = [], []
    for i in item_ids:
        record = metadata[i]
        if not isinstance(record, dict):
            raise DatasetError(METADATA, f"item {i}: the record must be a JSON object", row=_row_of(metadata, i),
                               field=i)
        category = record.get("semantic_category")
        if not isinstance(category, str) or not category.strip():
            raise DatasetError(METADATA, f"item {i}: semantic_category must be a non-empty string, got "
                                         f"{category!r}", row=_row_of(metadata, i), field="semantic_category")
        category = category.strip()
        description = next((v.strip() for v in (record.get(k) for k in ("title", "description", "url_name"))
                            if isinstance(v, str) and v.strip()), category)
        categories.append(category)
        descriptions.append(description)
    category_of = dict(zip(item_ids, categories))
    items = pd.DataFrame({"item_id": item_ids, "category": categories, "description": descriptions})
    captions = {c: caption(c) for c in set(categories)}  # ~11 coarse types: one caption each
    items["caption"] = [captions[c] for c in categories]

    folder = images_dir if images_dir is not None else src / "images"
    if folder.is_dir():
        items["has_image"] = load_images(build, [folder / f"{i}.jpg" for i in item_ids], workers,
                                          label=f"{folder.name}/")
    elif images_dir is not None:
        raise DatasetError(str(images_dir), "the image folder does not exist")
    else:
        build.report.lack("images/", "item images (image-based models, pictures)")
    build.items(items)

    build.outfits(pd.DataFrame({
        "outfit_id": [o for o, _, _ in outfit_rows],
        "user_id": [None] * len(outfit_rows),
        "item_ids": [ids for _, ids, _ in outfit_rows],
        "categories": [[category_of[i] for i in ids] for _, ids, _ in outfit_rows],
        "split": [s for _, _, s in outfit_rows],
    }))
    if fitb_rows:
        build.fitb(pd.DataFrame({c: [q[c] for q in fitb_rows] for c in fitb_rows[0]}))
    if compat_rows:
        build.compatibility(pd.DataFrame({c: [q[c] for q in compat_rows] for c in ("question_id", "item_ids", "label",
                                                                                  "split")}))

    # -- what was left out, on purpose
    if (src / version / "typespaces.p").exists():
        build.report.note(f"{version}/typespaces.p (a pickle of the type pairs) is not needed and was not loaded")
    for name, why in (("polyvore_outfit_titles.json", "outfit titles have no column in the schema"),
                      ("categories.csv", "semantic_category in the metadata gives the category")):
        if (src / name).exists():
            build.report.note(f"{name} not read: {why}")
    if reordered:
        build.report.note(f"{reordered} FITB questions list their items in another order than the outfit: "
                          "blank_index follows the outfit")
    compat_splits = Counter(q["split"] for q in compat_rows)
    build.manifest(
        version=version,
        fitb_reordered=reordered,
        compatibility={"file": schema.COMPATIBILITY if compat_rows else None,
                       "questions": {s: compat_splits.get(s, 0) for s in SPLITS},
                       "compatible": sum(q["label"] for q in compat_rows)},
    )


def _row_of(mapping: dict, key: str) -> int:
    """The 0-based position of a key in a JSON object (for errors only: linear)."""
    return next(n for n, k in enumerate(mapping) if k == key)
