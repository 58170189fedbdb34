"""The DVBPR release (Kang, Fang, Wang, McAuley, ICDM 2017): Amazon Fashion, Amazon Women, Amazon Men, Tradesy.

Each dataset is one file, ``AmazonFashion6ImgPartitioned.npy``, ``AmazonWomenWithImgPartitioned.npy``,
``AmazonMenWithImgPartitioned.npy`` or ``TradesyImgPartitioned.npy``: ``np.save`` under Python 2 of the object
array ``[user_train, user_validation, user_test, Item, usernum, itemnum]``, so a .npy 1.0 header followed by a
protocol 2 pickle in which every Python 2 ``str`` is a byte string::

    user_train       {user index: [review, ...]}     review = {'productid': item index, 'reviewerID': 'A2...',
    user_validation  {user index: [review]}                    'asin': 'B00...', 'overall': 5.0
    user_test        {user index: [review]}                    [, 'reviewTime': '09 13, 2009', 'unixReviewTime': ...]}
    Item             {item index: {'imgs': JPEG bytes, 'asin': 'B00...', 'c': one-hot category vector}}
    usernum, itemnum ints

What becomes what:

- items: one per Item entry, in index order (= images.npy rows); item_id = asin, category = the name of the
  one-hot position of 'c', has_image = whether 'imgs' decodes. Where asins are missing or repeat, every item_id
  is the item index instead ("5768") and a note says why; the same for users.
- users: every user index with at least one review; user_id = reviewerID.
- interactions: every review, split train / valid / test as the release splits them (the paper's leave-one-out:
  a user's latest item in test, the one before in valid). timestamp = unixReviewTime where every review has one,
  else reviewTime ('MM DD, YYYY', UTC midnight), else the review's order: its position in the user's train list,
  then valid, then test (the release's lists are taken as oldest first).
- The rating ('overall') is dropped: the paper treats every review as implicit positive feedback.

Quirks, and how they are met:

- Python 2 pickle: loaded with ``load_npy(path, encoding="bytes")`` (never running code), so keys and text are
  bytes: b'productid'. Text is decoded as UTF-8 (a DatasetError names the user or item and field otherwise);
  str keys (a file re-saved under Python 3) are read as well.
- user_* and Item may be dicts or lists; a held-out user may hold a bare review dict instead of a list of one.
- Categories: 'c' has 6 positions in Amazon Fashion. The release does not name them; the paper lists its six
  categories as men's and women's tops, bottoms and shoes, and this module ASSUMES the vector follows that
  order: Men's Tops, Men's Bottoms, Men's Shoes, Women's Tops, Women's Bottoms, Women's Shoes. Unverified: the
  DVBPR repository's PM/gan_<k>.jpg are designs generated for position k and would settle it, and so would a
  contact sheet of the imported items per category; ``--set categories=a,b,c,d,e,f`` names them otherwise.
  Other files' positions are "category <k>". An item whose 'c' is missing, all zero or has several ones is
  "uncategorized" and counted in a note.
- A missing or undecodable image (users of the release report images PIL cannot open) keeps the item, white,
  with has_image false, counted in the report with examples: an item without an image is still an item for BPR.
- A review of an item index that is not in Item is skipped and counted.

Memory (the files are GBs, nearly all JPEG bytes): the restricted unpickle holds the whole structure (1.25x the
file on a generated 2.2 GB one; bench/import_dvbpr_memory.py). The review dicts are dropped once read into columns,
and each item's JPEG bytes are taken out of its dict as it is decoded, so they are freed one by one; freed heap
pages are handed back to the OS. Images are decoded straight into ``build.image_array``, a file the builder fills
white a chunk at a time; its mapped pages are dropped every few thousand rows (`builder.drop_mapped_pages`), so
the decoded images (n_items x 12 KiB) never come on top of the loaded file in resident memory.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modiste.data.errors import DatasetError
from modiste.data.importers.builder import (RELEASE_EVERY, DatasetBuilder, check_options, decode_image,
                                            drop_mapped_pages)
from modiste.data.safe_pickle import load_npy

KNOWN_OPTIONS = ("name", "categories")
PARTS = ("user_train", "user_validation", "user_test", "Item", "usernum", "itemnum")
SPLIT_OF_PART = {"user_train": "train", "user_validation": "valid", "user_test": "test"}
# file stem -> (dataset name, what it is)
RELEASES = {
    "AmazonFashion6ImgPartitioned": ("amazon-fashion", "Amazon Fashion"),
    "AmazonWomenWithImgPartitioned": ("amazon-women", "Amazon Women"),
    "AmazonMenWithImgPartitioned": ("amazon-men", "Amazon Men"),
    "TradesyImgPartitioned": ("tradesy", "Tradesy"),
}
# ASSUMED order of Amazon Fashion's one-hot 'c' (the paper's list; the release names none): see the docstring.
AMAZON_FASHION_CATEGORIES = ("Men's Tops", "Men's Bottoms", "Men's Shoes",
                             "Women's Tops", "Women's Bottoms", "Women's Shoes")
UNCATEGORIZED = "uncategorized"
_MISSING = object()


def dataset_info(src: Path, **options: Any) -> dict[str, Any]:
    check_options("dvbpr", options, KNOWN_OPTIONS)
    path = _resolve(Path(src))
    name, what = RELEASES.get(path.stem, (f"dvbpr-{_slug(path.stem)}", path.stem))
    owner = "Tradesy data" if name == "tradesy" else "Amazon review data (McAuley et al.)"
    return {
        "name": str(options.get("name") or name),
        "license": f"academic research use only: {owner}, as distributed by UCSD with the DVBPR code",
        "attributes": [],
        "provenance": f"DVBPR release (Kang, Fang, Wang, McAuley, 'Visually-Aware Fashion Recommendation and "
                      f"Design with Generative Image Models', ICDM 2017): {what}, file {path.name}",
    }


def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    check_options("dvbpr", options, KNOWN_OPTIONS)
    path = _resolve(Path(src))
    file = path.name
    build.bar.step(f"reading {file}")
    release = load_npy(path, encoding="bytes")
    if release.dtype != object or release.shape != (len(PARTS),):
        raise DatasetError(file, f"expected an object array of {len(PARTS)} parts [{', '.join(PARTS)}], got "
                           f"{release.dtype} {release.shape}")
    usernum, itemnum = (_count(release[k], file, PARTS[k]) for k in (4, 5))

    items = _read_items(release[3], file, options.get("categories"), build)
    reviews = _read_reviews(release[:3], file)
    release[:3] = None  # the review dicts, now flat columns: freed before the images need room
    users, interactions = _tables(reviews, items, file, build)
    time_source = reviews["time_source"]
    del reviews
    if usernum != len(users):
        build.report.note(f"usernum says {usernum:,} users; {len(users):,} have a review")
    if itemnum != len(items["index"]):
        build.report.note(f"itemnum says {itemnum:,} items; Item holds {len(items['index']):,}")

    has_image = _images(release[3], items["index"], file, build)
    del release
    build.items(pd.DataFrame({"item_id": items["item_id"], "category": items["category"], "has_image": has_image}))
    build.users(users)
    build.interactions(interactions)
    build.manifest(dvbpr={"file": file, "usernum": usernum, "itemnum": itemnum,
                          "category_vector": items["names"], "category_names_assumed": items["assumed"],
                          "timestamps": time_source, "ratings": "dropped (implicit feedback)"})


def _resolve(src: Path) -> Path:
    """The release file: `src` itself, or the one DVBPR .npy file in folder `src`."""
    if not src.is_dir():
        return src
    found = sorted(p for p in src.glob("*.npy") if p.stem in RELEASES) or sorted(src.glob("*ImgPartitioned.npy"))
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or f"none of {', '.join(s + '.npy' for s in RELEASES)}"
        raise DatasetError(str(src), f"expected one DVBPR release file in this folder, found {listed}: "
                           "pass the file itself")
    return found[0]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "release"


def _count(value: Any, file: str, part: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DatasetError(file, f"must be a count (a non-negative int), got {type(value).__name__}", field=part)
    return int(value)


# ---------------------------------------------------------------------------- reading the structure

def _entries(container: Any, file: str, part: str) -> Iterator[tuple[int, Any]]:
    """(index, value) of a dict keyed by int indices, or of a list."""
    if isinstance(container, dict):
        for key, value in container.items():
            if isinstance(key, bool) or not isinstance(key, int | np.integer):
                raise DatasetError(file, f"key {key!r} is not an index (an int)", field=part)
            yield int(key), value
    elif isinstance(container, list | tuple):
        yield from enumerate(container)
    else:
        raise DatasetError(file, f"must be a dict of index -> entry, got {type(container).__name__}", field=part)


def _get(record: dict, name: str) -> Any:
    """A field of a record by its Python 2 (bytes) or Python 3 (str) key; _MISSING where absent."""
    value = record.get(name.encode(), _MISSING)
    return record.get(name, _MISSING) if value is _MISSING else value


def _text(value: Any, file: str, row: int, field: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DatasetError(file, f"not UTF-8 text ({e.reason} at byte {e.start})", row=row, field=field) from None
    if isinstance(value, str):
        return value
    raise DatasetError(file, f"must be text, got {type(value).__name__}", row=row, field=field)


def _read_items(container: Any, file: str, names_option: Any, build: DatasetBuilder) -> dict[str, Any]:
    """Index, id and category of every Item entry, in index order (the JPEG bytes stay where they are)."""
    entries = sorted(_entries(container, file, "Item"), key=lambda e: e[0])
    if not entries:
        raise DatasetError(file, "holds no items", field="Item")
    index = np.array([i for i, _ in entries], dtype=np.int64)  # distinct: dict keys or list positions
    asins: list[str | None] = []
    vectors: list[np.ndarray | None] = []
    for i, entry in entries:
        if not isinstance(entry, dict):
            raise DatasetError(file, f"must be a dict with imgs, asin and c, got {type(entry).__name__}", row=i,
                               field=f"Item[{i}]")
        asin = _get(entry, "asin")
        asins.append(None if asin is _MISSING or asin is None else _text(asin, file, i, f"Item[{i}].asin"))
        c = _get(entry, "c")
        if c is _MISSING or c is None:
            vectors.append(None)
            continue
        try:
            vectors.append(np.asarray(c, dtype=np.float64).ravel())
        except (TypeError, ValueError):
            raise DatasetError(file, "is not a numeric vector", row=i, field=f"Item[{i}].c") from None

    item_ids, reason = _ids(asins, "asin")
    if reason:
        item_ids = [str(i) for i in index]
        build.report.note(f"item_id is the item index, not the asin: {reason}")
    names, assumed, categories = _categories(vectors, index, file, names_option, build)
    return {"index": index, "item_id": item_ids, "category": categories, "names": names, "assumed": assumed}


def _ids(values: list[str | None], field: str) -> tuple[list[str | None], str]:
    """The values as ids, or the reason they cannot be (missing or repeated)."""
    missing = sum(v is None for v in values)
    if missing:
        return values, f"{missing:,} entries have no {field}"
    counts = pd.Series(values).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        return values, f"{len(repeated):,} {field} values repeat (e.g. {repeated.index[0]!r} x{repeated.iloc[0]})"
    return values, ""


def _categories(vectors: list[np.ndarray | None], index: np.ndarray, file: str, names_option: Any,
                build: DatasetBuilder) -> tuple[list[str], bool, list[str]]:
    """The names of the one-hot positions, whether they are assumed, and each item's category."""
    lengths = [(row, len(v)) for row, v in enumerate(vectors) if v is not None]
    k = lengths[0][1] if lengths else 0
    odd = next((row for row, length in lengths if length != k), None)
    if odd is not None:
        i = int(index[odd])
        raise DatasetError(file, f"has {len(vectors[odd])} positions where the first item's has {k}", row=i,
                           field=f"Item[{i}].c")
    assumed = False
    if names_option is not None:
        names = [s.strip() for s in names_option.split(",")] if isinstance(names_option, str) \
            else [str(s) for s in names_option]
        if len(names) != k or len(set(names)) != k or not all(names):
            raise ValueError(f"dvbpr: option categories names {len(names)} categories; the file's vectors have {k} "
                             "positions (give that many distinct names, comma-separated)")
    elif k == len(AMAZON_FASHION_CATEGORIES) and file.startswith("AmazonFashion"):
        names, assumed = list(AMAZON_FASHION_CATEGORIES), True
        build.report.note("category names of Amazon Fashion's 'c' follow the paper's list (men's tops, bottoms, "
                          "shoes, then women's): an assumption; --set categories=... names them otherwise")
    else:
        names = [f"category {j}" for j in range(k)]
    categories, unclear = [], []
    for row, vector in enumerate(vectors):
        hot = np.flatnonzero(vector) if vector is not None else ()
        if len(hot) == 1:
            categories.append(names[hot[0]])
        else:
            categories.append(UNCATEGORIZED)
            unclear.append(int(index[row]))
    if unclear:
        build.report.note(f"{len(unclear):,} items have no single category in 'c' (missing, all zero or several "
                          f"set) and are {UNCATEGORIZED!r}, e.g. items {', '.join(map(str, unclear[:5]))}")
    return names, assumed, categories


def _read_reviews(parts: np.ndarray, file: str) -> dict[str, Any]:
    """Every review of the three splits as flat columns (user index, item index, split, order, reviewer, time)."""
    user, item, split, position, order, reviewer, unix, day = [], [], [], [], [], [], [], []
    count_before: dict[int, int] = {}  # reviews of a user in the earlier splits, for the order timestamp
    for part_index, part in enumerate(SPLIT_OF_PART):
        counted: dict[int, int] = {}
        for u, records in _entries(parts[part_index], file, part):
            if isinstance(records, dict):  # a held-out user with a bare review instead of a list of one
                records = [records]
            elif not isinstance(records, list | tuple):
                raise DatasetError(file, f"must be a list of reviews, got {type(records).__name__}", row=u,
                                   field=f"{part}[{u}]")
            start = count_before.get(u, 0)
            for j, record in enumerate(records):
                where = f"{part}[{u}][{j}]"
                if not isinstance(record, dict):
                    raise DatasetError(file, f"must be a review dict, got {type(record).__name__}", row=u, field=where)
                product = _get(record, "productid")
                if isinstance(product, bool) or not isinstance(product, int | np.integer):
                    got = "nothing" if product is _MISSING else type(product).__name__
                    raise DatasetError(file, f"must be an item index (an int), got {got}", row=u,
                                       field=f"{where}.productid")
                name = _get(record, "reviewerID")
                user.append(u)
                item.append(int(product))
                split.append(part_index)
                position.append(j)
                order.append(start + j)
                reviewer.append(None if name is _MISSING or name is None
                                else _text(name, file, u, f"{where}.reviewerID"))
                t = _get(record, "unixReviewTime")
                if t is not _MISSING and (isinstance(t, bool) or not isinstance(t, int | np.integer)):
                    raise DatasetError(file, f"must be an int (seconds), got {type(t).__name__}", row=u,
                                       field=f"{where}.unixReviewTime")
                unix.append(None if t is _MISSING else int(t))
                d = _get(record, "reviewTime")
                day.append(None if d is _MISSING else _text(d, file, u, f"{where}.reviewTime"))
            counted[u] = len(records)
        for u, n in counted.items():
            count_before[u] = count_before.get(u, 0) + n
    if not user:
        raise DatasetError(file, "holds no reviews in user_train, user_validation or user_test", field="user_train")
    reviews = pd.DataFrame({"user": np.array(user, dtype=np.int64), "item": np.array(item, dtype=np.int64),
                            "split": np.array(split, dtype=np.int8), "position": np.array(position, dtype=np.int64),
                            "order": np.array(order, dtype=np.int64),
                            "reviewer": reviewer})
    reviews["timestamp"], time_source = _timestamps(reviews, unix, day, file)
    return {"table": reviews, "time_source": time_source}


def _timestamps(reviews: pd.DataFrame, unix: list, day: list, file: str) -> tuple[np.ndarray, str]:
    if all(t is not None for t in unix):
        return np.array(unix, dtype=np.int64), "unixReviewTime"
    if all(d is not None for d in day):
        parsed = pd.to_datetime(pd.Series(day), format="%m %d, %Y", errors="coerce", utc=True)
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            r = int(bad[0])
            raise DatasetError(file, f"reviewTime {day[r]!r} is not a date like '09 13, 2009'",
                               row=int(reviews["user"].iloc[r]), field=f"{_where(reviews, r)}.reviewTime")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)  # whatever unit pandas parsed in
        return seconds.to_numpy(dtype=np.int64), "reviewTime"
    return reviews["order"].to_numpy(), "order"


def _where(reviews: pd.DataFrame, r: int) -> str:
    """Where review `r` of the flat table sits in the release: user_train[u][j]."""
    return f"{PARTS[int(reviews['split'].iloc[r])]}[{reviews['user'].iloc[r]}][{reviews['position'].iloc[r]}]"


def _tables(reviews: dict[str, Any], items: dict[str, Any], file: str,
            build: DatasetBuilder) -> tuple[pd.DataFrame, pd.DataFrame]:
    table = reviews["table"]
    if reviews["time_source"] == "order":
        build.report.note("the reviews have no reviewTime / unixReviewTime: timestamp = the review's position in "
                          "the user's lists (train, then valid, then test)")
    # Reviews of an item that is not in Item: skipped and counted.
    index = items["index"]
    row_of = np.full(int(index.max()) + 1, -1, dtype=np.int64)
    row_of[index] = np.arange(len(index))
    product = table["item"].to_numpy()
    rows = np.where((product >= 0) & (product < len(row_of)), row_of[np.clip(product, 0, len(row_of) - 1)], -1)
    dangling = np.flatnonzero(rows < 0)
    if dangling.size:
        examples = [f"{_where(table, r)}: productid {product[r]}" for r in dangling[:5]]
        build.report.skip_many("review of an item index that is not in Item", int(dangling.size), file=file,
                               examples=examples)
        keep = rows >= 0
        table, rows = table[keep].reset_index(drop=True), rows[keep]

    user_ids = _user_ids(table, build)
    users = pd.DataFrame({"user_id": user_ids.to_numpy()})

    interactions = pd.DataFrame({
        "user_id": user_ids.reindex(table["user"].to_numpy()).to_numpy(),
        "item_id": np.asarray(items["item_id"], dtype=object)[rows],
        "timestamp": table["timestamp"].to_numpy(dtype=np.int64),
        "split": np.array(list(SPLIT_OF_PART.values()))[table["split"].to_numpy()],
    })
    repeats = int(interactions.duplicated(["user_id", "item_id", "split"]).sum())
    if repeats:
        build.report.note(f"{repeats:,} reviews repeat a (user, item) pair within a split: kept, as the release "
                          "has them")
    return users, interactions


def _user_ids(table: pd.DataFrame, build: DatasetBuilder) -> pd.Series:
    """user index -> user_id: the reviewerID where it names each user index one to one, else the index."""
    users = np.sort(table["user"].unique())
    pairs = table[["user", "reviewer"]].drop_duplicates()
    reason = ""
    if pairs["reviewer"].isna().any():
        reason = f"{int(table['reviewer'].isna().sum()):,} reviews have no reviewerID"
    elif (several := pairs.loc[pairs["user"].duplicated(), "user"]).size:
        names = pairs.loc[pairs["user"] == several.iloc[0], "reviewer"]
        reason = f"user index {several.iloc[0]} has several reviewerIDs ({', '.join(map(repr, names))})"
    elif (shared := pairs.loc[pairs["reviewer"].duplicated(), "reviewer"]).size:
        owners = pairs.loc[pairs["reviewer"] == shared.iloc[0], "user"]
        reason = f"reviewerID {shared.iloc[0]!r} names user indexes {', '.join(map(str, owners))}"
    if reason:
        build.report.note(f"user_id is the user index, not the reviewerID: {reason}")
        return pd.Series(users.astype(str), index=users)
    return pairs.set_index("user")["reviewer"].reindex(users)


# ---------------------------------------------------------------------------- images

def _images(container: Any, index: np.ndarray, file: str, build: DatasetBuilder) -> np.ndarray:
    """Decode every item's JPEG into images.npy, freeing each JPEG as it goes; returns has_image per row."""
    n = len(index)
    has_image = np.zeros(n, dtype=bool)
    images = build.image_array(n)  # all white: an item without a decodable image stays so
    for row in build.bar.track(range(n), "decoding images", total=n):
        i = int(index[row])
        entry = container[i]
        # Out of the dict first: once decoded, nothing holds these bytes and they are freed.
        data = entry.pop(b"imgs", _MISSING)
        if data is _MISSING:
            data = entry.pop("imgs", None)
        if not isinstance(data, bytes | bytearray) or not data:
            build.report.skip("item without image bytes: kept, white, has_image false", file=file, row=i,
                              detail=f"Item[{i}].imgs is {'missing' if data is None else repr(data)[:40]}")
        else:
            try:
                images[row] = decode_image(data, source=file, row=i)
                has_image[row] = True
            except DatasetError as e:
                build.report.skip("item image does not decode: kept, white, has_image false", file=file, row=i,
                                  detail=re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", e.message))
        del data
        if (row + 1) % RELEASE_EVERY == 0:
            drop_mapped_pages(images)
        if (row + 1) % (8 * RELEASE_EVERY) == 0:
            _return_freed_heap()
    drop_mapped_pages(images)
    _return_freed_heap()
    return has_image


def _return_freed_heap() -> None:
    """Hand the freed JPEG bytes' heap pages back to the OS (glibc keeps them otherwise); a no-op elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
