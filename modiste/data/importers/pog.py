"""Alibaba POG / iFashion (Chen et al., "POG: Personalized Outfit Generation for Fashion
Recommendation at Alibaba iFashion", KDD 2019): three header-less text files, pictures optional.

The release (file names as shipped; each can be renamed with an option)::

    item_data.txt    item_id,cate_id,pic_url,title             ~4.7M items, 75 leaf categories
    outfit_data.txt  outfit_id,item_id;item_id;...             ~1.0M outfits composed by Taobao experts
    user_data.txt    user_id,item_id;item_id;...,outfit_id     ~3.6M users: the items they clicked, in
                                                               order, then an outfit they clicked

Quirks and what this importer does with them:

- No header, no quoting. Titles are Chinese UTF-8 and may hold commas or quotes: an item line is
  split at its first three commas only and nothing is unquoted. Bytes that are not UTF-8 are a
  `DatasetError` naming the file, the 0-based line and the field.
- Categories are bare numbers (cate_id) with no names in the release: category = cate_id as a
  string; the caption has only its Category; description = title (the category where empty).
- The release has no times. A click's timestamp is its position in user_data.txt, so a user's
  list keeps its order; a user on several lines keeps file order across them.
- A user who clicked the same item again: one interaction at the latest position (option
  ``repeats="all"`` keeps every click). So the held-out item of a user is never also one of
  their training items.
- Split of the clicks: leave-one-out per user by order: the latest item to test, the one before
  to valid, the rest to train, for users with at least 3 (distinct) items; users with fewer
  have all their items in train.
- Outfits are shared (an expert made one, many users clicked it): user_id is null and all are
  train, for the release has no split and any random cut would be ours, not the paper's.
  Users' outfit clicks are counted in the report (and the manifest's ``user_outfit_clicks``);
  option ``user_outfits=true`` adds one row per (user, outfit) click: outfit_id
  ``<outfit_id>@<user_id>``, that user, the outfit's items, split leave-one-out per user by order
  as for the items. The third field of user_data.txt may also list several outfits (``a;b``).
- Outfits or clicks that name an item missing from item_data.txt are skipped and counted, as are
  outfits of fewer than 2 items and clicks on outfits missing from outfit_data.txt. A duplicate
  item_id or outfit_id is a `DatasetError` naming both lines.
- pic_url points at Alibaba's CDN; nothing is fetched. Option ``images=DIR``: a folder holding
  pictures named by item_id (``DIR/<item_id>.jpg``, .jpeg, .png or .webp, in any sub-folder),
  decoded by ``workers`` threads (default up to 4). Items without one, or whose picture does not
  decode, get ``has_image`` false and a white picture, counted in the report with examples; no
  folder, no images.

Real size: every file is read in chunks, lists are split with Arrow kernels and ids looked up
per chunk's distinct values, so a click costs 12 bytes of numpy until the tables are written.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modiste.data.errors import DatasetError
from modiste.data.importers.builder import (DatasetBuilder, caption, check_options, concat, latest_of_pairs,
                                            leave_one_out, load_images_by_id, positive_int_option, workers_option)
from modiste.data.importers.csv_tables import check_filled, check_unique, check_utf8, find_table, read_chunks

ITEM_FILES = ("item_data.txt", "item_info.txt", "item_data.csv")
OUTFIT_FILES = ("outfit_data.txt", "outfit_info.txt", "outfit_data.csv")
USER_FILES = ("user_data.txt", "user_info.txt", "user_data.csv")
ITEM_FIELDS = ("item_id", "cate_id", "pic_url", "title")

OPTIONS: dict[str, Any] = {
    "images": None,        # folder of pictures named by item_id
    "item_file": None,     # file names (relative to the source folder) other than the release's
    "outfit_file": None,
    "user_file": None,
    "chunksize": 200_000,  # lines per chunk (a user line can hold hundreds of ids)
    "repeats": "latest",   # "latest": a (user, item) pair once, at its latest click; "all": every click
    "user_outfits": False,  # add one outfit row per (user, outfit) click
    "workers": None,       # threads decoding pictures (default: up to 4, no more than the CPUs)
}

_READ = dict(header=None, dtype=object, quoting=csv.QUOTE_NONE, na_filter=False, skip_blank_lines=False,
             encoding="utf-8", encoding_errors="surrogateescape")


def dataset_info(src: Path, **options: Any) -> dict[str, Any]:
    _options(options)
    return {
        "name": "pog",
        "license": "Alibaba POG / iFashion release: research use under the terms of its publishers",
        "attributes": [],
        "provenance": "Alibaba iFashion POG release (Chen et al., KDD 2019): item_data, outfit_data and user_data "
                      "of Taobao's iFashion app",
    }


def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    opts = _options(options)
    src = Path(src)
    folder = src.parent if src.is_file() else src
    item_path = find_table(folder, opts["item_file"], ITEM_FILES, "item_file", required=True)
    outfit_path = find_table(folder, opts["outfit_file"], OUTFIT_FILES, "outfit_file", required=False)
    user_path = find_table(folder, opts["user_file"], USER_FILES, "user_file", required=False)
    chunksize = opts["chunksize"]

    items = _read_items(item_path, build, chunksize)
    index = pd.Index(items["item_id"])
    categories = items["category"]

    if outfit_path is None:
        build.report.lack(OUTFIT_FILES[0], "outfits: compatibility, fill-in-the-blank and outfit generation")
        outfits = _empty_outfits()
        outfit_index = pd.Index([], dtype=object)
    else:
        outfits = _read_outfits(outfit_path, build, chunksize, index, item_path.name, items["item_id"], categories)
        outfit_index = pd.Index(outfits["outfit_id"])

    if user_path is None:
        build.report.lack(USER_FILES[0], "users and their clicks: every personalised task")
    else:
        users, interactions, personal = _read_users(user_path, build, opts, index, item_path.name, items["item_id"],
                                                    outfits, outfit_index)
        build.users(users)
        build.interactions(interactions)
        if personal is not None:
            outfits = pd.concat([outfits, personal], ignore_index=True)
    build.outfits(outfits)

    if opts["images"] is not None:
        items["has_image"] = load_images_by_id(build, Path(opts["images"]), items["item_id"], opts["workers"])
    else:
        build.report.lack("images", "pictures: visual models and image generation (item_data's pic_url links them "
                                    "online; save them as DIR/<item_id>.jpg and pass --images DIR)")
    # dtype kept: object columns stay pointers to the strings already read, not a second copy as Arrow text.
    build.items(pd.DataFrame({key: pd.Series(values, dtype=values.dtype) for key, values in items.items()}))


# ---------------------------------------------------------------------------- options and files

def _options(options: dict[str, Any]) -> dict[str, Any]:
    check_options("pog", options, OPTIONS)
    opts = {**OPTIONS, **options}
    if opts["repeats"] not in ("latest", "all"):
        raise ValueError(f"pog: repeats must be 'latest' or 'all', not {opts['repeats']!r}")
    opts["chunksize"] = positive_int_option(opts, "chunksize", "pog", OPTIONS["chunksize"])
    if not isinstance(opts["user_outfits"], bool):
        raise ValueError(f"pog: user_outfits must be true or false, not {opts['user_outfits']!r}")
    opts["workers"] = workers_option(options, "pog")
    return opts


def _lines_with_ids(chunk: pd.DataFrame, file: str, id_field: str, list_field: str) -> tuple[pd.DataFrame, int]:
    """The chunk without its blank lines (`id_field` and `list_field` both empty), and how many there were; the
    ids of the lines kept must be UTF-8 and not empty."""
    blank = ((chunk[id_field] == "") & (chunk[list_field] == "")).to_numpy()
    chunk = chunk[~blank]
    check_utf8(chunk[id_field], file, id_field)
    check_filled(chunk[id_field], file, id_field)
    return chunk, int(blank.sum())


def _split_lists(values: pd.Series, file: str, field: str) -> tuple[pa.Array, np.ndarray]:
    """Split 'a;b;c' cells into one flat Arrow array of ids and the position of each id's cell."""
    try:
        cells = pa.array(values.to_numpy(dtype=object), type=pa.string())
    except (UnicodeEncodeError, pa.ArrowException):
        check_utf8(values, file, field)
        raise
    lists = pc.split_pattern(cells, ";")
    flat, parents = pc.list_flatten(lists), pc.list_parent_indices(lists)
    present = pc.not_equal(flat, "")  # 'a;b;' or an empty cell: no id there
    return pc.filter(flat, present), pc.filter(parents, present).to_numpy().astype(np.int64)


def _lookup(flat: pa.Array, index: pd.Index) -> np.ndarray:
    """Positions of the ids in `index` (-1 where unknown), looking each distinct id up once."""
    if len(flat) == 0:
        return np.zeros(0, np.int64)
    encoded = pc.dictionary_encode(flat)
    found = index.get_indexer(encoded.dictionary.to_numpy(zero_copy_only=False))
    return found[encoded.indices.to_numpy()]


def _known_ids(values: pd.Series, rows: np.ndarray, index: pd.Index, file: str, field: str, id_field: str,
               examples: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Split a chunk's 'a;b;c' cells and look the ids up in `index`: (the chunk position of each known id's cell,
    its position in `index`, how many ids are unknown). The first few unknown ids are added to `examples`."""
    flat, parents = _split_lists(values, file, field)
    found = _lookup(flat, index)
    bad = found < 0
    if bad.any() and len(examples) < 5:
        examples += _examples(rows, parents, flat, bad, id_field)[: 5 - len(examples)]
    return parents[~bad], found[~bad], int(bad.sum())


def _examples(rows: np.ndarray, parents: np.ndarray, ids: pa.Array, where: np.ndarray, field: str) -> list[str]:
    """'row R: field id' for the first few flat ids where `where` holds (R: the file row of the id's cell)."""
    return [f"row {int(rows[parents[p]])}: {field} {ids[int(p)]}" for p in np.flatnonzero(where)[:5]]


# ---------------------------------------------------------------------------- items

def _read_items(path: Path, build: DatasetBuilder, chunksize: int) -> dict[str, np.ndarray]:
    file = path.name
    ids, cates, titles, rows = [], [], [], []
    blank = 0
    for chunk in read_chunks(path, build, "items", chunksize, names=["line"], sep="\x1f", **_READ):
        lines = chunk["line"]
        empty = (lines == "").to_numpy()
        blank += int(empty.sum())
        lines = lines[~empty]
        if lines.empty:
            continue
        parts = lines.str.split(",", n=3, expand=True).reindex(columns=range(4))
        parts.columns = list(ITEM_FIELDS)
        missing = parts["title"].isna().to_numpy()
        if missing.any():
            r = int(np.argmax(missing))
            n_fields = int(parts.iloc[r].notna().sum())
            raise DatasetError(file, f"has {n_fields} of the 4 fields {','.join(ITEM_FIELDS)}: a truncated line?",
                               row=int(parts.index[r]), field=ITEM_FIELDS[n_fields])
        for field in ITEM_FIELDS:
            check_utf8(parts[field], file, field)
        for field in ("item_id", "cate_id"):
            check_filled(parts[field], file, field)
        ids.append(parts["item_id"].str.strip().to_numpy(dtype=object))
        cates.append(parts["cate_id"].str.strip().to_numpy(dtype=object))
        titles.append(parts["title"].str.strip().to_numpy(dtype=object))
        rows.append(parts.index.to_numpy(dtype=np.int64))
    if blank:
        build.report.skip_many("blank line", blank, file=file)
    item_ids = concat(ids, object)
    check_unique(item_ids, concat(rows, np.int64), file, "item_id")
    category, title = concat(cates, object), concat(titles, object)
    description = np.where(title == "", category, title)
    # Captions depend on the category only: one json.dumps per category, not per item.
    captions = pd.Series(category, dtype=object).map({c: caption(c) for c in pd.unique(category)})
    return {"item_id": item_ids, "category": category, "caption": captions.to_numpy(dtype=object),
            "description": description}


# ---------------------------------------------------------------------------- outfits

def _empty_outfits() -> pd.DataFrame:
    return pd.DataFrame({"outfit_id": pd.Series([], dtype=object), "user_id": pd.Series([], dtype=object),
                         "item_ids": pd.Series([], dtype=object), "categories": pd.Series([], dtype=object),
                         "split": pd.Series([], dtype=object)})


def _read_outfits(path: Path, build: DatasetBuilder, chunksize: int, index: pd.Index, item_file: str,
                  item_ids: np.ndarray, categories: np.ndarray) -> pd.DataFrame:
    file = path.name
    ids, codes, lengths, rows_kept = [], [], [], []
    unknown = short = blank = 0
    unknown_examples: list[str] = []
    for chunk in read_chunks(path, build, "outfits", chunksize, names=["outfit_id", "item_ids"], sep=",", **_READ):
        chunk, n_blank = _lines_with_ids(chunk, file, "outfit_id", "item_ids")
        blank += n_blank
        if chunk.empty:
            continue
        rows = chunk.index.to_numpy(dtype=np.int64)
        flat, parents = _split_lists(chunk["item_ids"], file, "item_ids")
        found = _lookup(flat, index)
        n = len(chunk)
        size = np.bincount(parents, minlength=n)
        bad_items = np.bincount(parents[found < 0], minlength=n) > 0
        if bad_items.any():
            unknown += int(bad_items.sum())
            if len(unknown_examples) < 5:
                unknown_examples += _examples(rows, parents, flat, found < 0, "item_id")[: 5 - len(unknown_examples)]
        too_small = ~bad_items & (size < 2)
        short += int(too_small.sum())
        keep = ~bad_items & ~too_small
        ids.append(chunk["outfit_id"].str.strip().to_numpy(dtype=object)[keep])
        rows_kept.append(rows[keep])
        codes.append(found[keep[parents]].astype(np.int64))
        lengths.append(size[keep])
    if blank:
        build.report.skip_many("blank line", blank, file=file)
    build.report.skip_many(f"outfit with an item not in {item_file}", unknown, file=file, examples=unknown_examples)
    build.report.skip_many("outfit with fewer than 2 items", short, file=file)
    outfit_ids = concat(ids, object)
    check_unique(outfit_ids, concat(rows_kept, np.int64), file, "outfit_id")
    flat, sizes = concat(codes, np.int64), concat(lengths, np.int64)
    n = len(outfit_ids)
    return pd.DataFrame({
        "outfit_id": pd.Series(outfit_ids, dtype=object),
        "user_id": pd.Series([None] * n, dtype=object),
        "item_ids": _ragged(item_ids[flat], sizes),
        "categories": _ragged(categories[flat], sizes),
        "split": pd.Series(np.full(n, "train", dtype=object), dtype=object),
    })


def _ragged(flat: np.ndarray, sizes: np.ndarray) -> pd.Series:
    """A Series of arrays: `flat` cut into consecutive pieces of the given sizes."""
    cells = np.empty(len(sizes), dtype=object)
    for i, piece in enumerate(np.split(flat, np.cumsum(sizes)[:-1])):
        cells[i] = piece
    return pd.Series(cells, dtype=object)


# ---------------------------------------------------------------------------- users and clicks

def _read_users(path: Path, build: DatasetBuilder, opts: dict[str, Any], index: pd.Index, item_file: str,
                item_ids: np.ndarray, outfits: pd.DataFrame, outfit_index: pd.Index):
    file = path.name
    line_users: list[np.ndarray] = []
    click_lines, click_items, link_lines, link_outfits = [], [], [], []
    unknown_items = unknown_outfits = blank = 0
    item_examples: list[str] = []
    outfit_examples: list[str] = []
    n_lines = 0
    for chunk in read_chunks(path, build, "users", opts["chunksize"], names=["user_id", "item_ids", "outfit_ids"],
                             sep=",", **_READ):
        chunk, n_blank = _lines_with_ids(chunk, file, "user_id", "item_ids")
        blank += n_blank
        if chunk.empty:
            continue
        rows = chunk.index.to_numpy()
        base = n_lines  # the user lines read so far: a click points at its line by this running number
        n_lines += len(chunk)
        line_users.append(chunk["user_id"].str.strip().to_numpy(dtype=object))

        cells, found, unknown = _known_ids(chunk["item_ids"], rows, index, file, "item_ids", "item_id", item_examples)
        unknown_items += unknown
        click_lines.append((cells + base).astype(np.int64))
        click_items.append(found.astype(np.int32))
        cells, found, unknown = _known_ids(chunk["outfit_ids"], rows, outfit_index, file, "outfit_ids", "outfit_id",
                                           outfit_examples)
        unknown_outfits += unknown
        link_lines.append((cells + base).astype(np.int64))
        link_outfits.append(found.astype(np.int64))
    if blank:
        build.report.skip_many("blank line", blank, file=file)
    build.report.skip_many(f"click on an item not in {item_file}", unknown_items, file=file,
                           examples=item_examples)
    build.report.skip_many("click on an outfit not kept from the outfit file", unknown_outfits, file=file,
                           examples=outfit_examples)

    lines = concat(line_users, object)
    user_of_line, user_ids = pd.factorize(lines)
    user_ids = np.asarray(user_ids, dtype=object)
    if len(user_ids) < len(lines):
        build.report.note(f"{len(lines) - len(user_ids):,} lines of {file} repeat a user: their clicks are "
                          "taken in file order")
    users = pd.DataFrame({"user_id": pd.Series(user_ids, dtype=object)})

    # Clicks: grouped by user, file order kept within a user (stable sort), position = timestamp.
    lines_of_click, items = concat(click_lines, np.int64), concat(click_items, np.int32)
    clicks_user = user_of_line[lines_of_click]
    order = np.argsort(clicks_user, kind="stable")
    user, item, position = clicks_user[order], items[order], order.astype(np.int64)
    if opts["repeats"] == "latest":
        keep = latest_of_pairs(user, item, len(item_ids))
        build.report.skip_many("repeated click on an item by the same user (kept once, at its latest click)",
                               int((~keep).sum()), file=file)
        user, item, position = user[keep], item[keep], position[keep]
    interactions = pd.DataFrame({
        "user_id": pd.Series(user_ids[user], dtype=object),
        "item_id": pd.Series(item_ids[item], dtype=object),
        "timestamp": position,
        "split": pd.Series(leave_one_out(user), dtype=object),
    })

    lines_of_link, linked = concat(link_lines, np.int64), concat(link_outfits, np.int64)
    build.manifest(user_outfit_clicks=int(len(linked)))
    if not opts["user_outfits"]:
        if len(linked):
            build.report.note(f"{len(linked):,} user-outfit clicks in {file} are not outfit rows (outfits are shared, "
                              "user_id null); --set user_outfits=true adds one row per click")
        return users, interactions, None
    link_user = user_of_line[lines_of_link]
    order = np.argsort(link_user, kind="stable")
    link_user, linked = link_user[order], linked[order]
    keep = latest_of_pairs(link_user, linked, max(len(outfit_index), 1))
    build.report.skip_many("repeated click on an outfit by the same user (kept once, at its latest click)",
                           int((~keep).sum()), file=file)
    link_user, linked = link_user[keep], linked[keep]
    outfit_ids = outfits["outfit_id"].to_numpy(dtype=object)
    personal = pd.DataFrame({
        "outfit_id": pd.Series(outfit_ids[linked], dtype=object) + "@" + pd.Series(user_ids[link_user], dtype=object),
        "user_id": pd.Series(user_ids[link_user], dtype=object),
        "item_ids": outfits["item_ids"].to_numpy(dtype=object)[linked],
        "categories": outfits["categories"].to_numpy(dtype=object)[linked],
        "split": pd.Series(leave_one_out(link_user), dtype=object),
    })
    return users, interactions, personal
