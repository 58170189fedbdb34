"""DiFashion's processed release of Polyvore-U and iFashion (Xu et al., SIGIR 2024), and an export back to it.

The release is a folder of Python dicts pickled into .npy files (``np.save(f, np.array(d))``; protocol 3):

    train.npy                          {'uids': [u], 'oids': [o], 'outfits': [[i1..i4]], 'category': [[c1..c4]]}
    valid_grd_dict.npy, test_grd_dict.npy   the held-out outfits, the same flat layout as train.npy
    valid_grd.npy, test_grd.npy        {oid: {'outfits': [i1..i4], 'category': [c1..c4]}}  (no users)
    fitb_valid.npy, fitb_test.npy      the flat layout again, one item of each outfit replaced by 0 (the blank)
    fitb_{valid,test}_dict.npy         {uid: {oid: [i1, 0, i3, i4]}}
    fitb_{valid,test}_retrieval_candidates.npy   {uid: {oid: [true item, 4 negatives]}} (negatives numpy int64)
    {train,valid,test}_history.npy     {uid: {cat id: [up to 10 item ids]}}
    id_cate_dict.npy                   {cat id: name}; the repository's scripts read it as new_id_cate_dict.npy
    map/iid_cate_dict.npy              {item id: cat id} (iFashion: map/mapped_iid_cate_dict.npy)
    map/cate_iid_dict.npy              {cat id: [item ids]}

What becomes what:

- items: every item of map/iid_cate_dict (else of map/cate_iid_dict inverted, else the items the outfits list,
  with the category their outfit gives them), item_id = str(int id), category = the name from id_cate_dict
  ("cat<id>" without it); no images. Item id 0 is the FITB blank, never an item.
- users: every uid any file names; outfits: train.npy rows (split train), then {valid,test}_grd_dict rows in file
  order (the same outfits as {valid,test}_grd.npy, which is used where the dict is missing); outfit_id = str(oid).
  Where an oid occurs in more than one split (not so on Polyvore-U), every outfit id gets its split as a prefix
  ("valid-41") so that ids stay unique; a note says so.
- interactions: one row per (user, item) of each outfit, timestamp = the outfit's position in the order train rows,
  valid rows, test rows (the release has no times), split = the outfit's split.
- fitb: the release's own questions, one per fitb_{valid,test}_dict entry, kind "release": its blank, the
  retrieval candidates [true item, 4 negatives] and the true item as the answer; a question whose answer or other
  items disagree with the held-out outfit is skipped and counted.
- histories: {train,valid,test}_history.npy as rows (user, category name, item ids, split).

Quirks of the files (measured on Polyvore-U, commit 1fce108 of YiyanXu/DiFashion):

- train.npy has 26,921 rows but 26,919 distinct oids: oids 14630 and 18898 each appear on two consecutive, identical
  rows. DiFashion trains on both copies, so both are kept, the repeat as outfit "14630#2" (a note lists them) and
  the counts stay the papers'; a repeated oid with different content is an error.
- Category ids are ints in some files and may be strings ("5") in others: both are read as the same id.
- train_history.npy is byte-identical to test_history.npy (a note says so).
- Only about 7% of the retrieval negatives share the answer's category (a note gives the share).
- A map file may be cut short in a download: an unreadable optional file is reported (`report.lack`, with what it
  rules out) and the import goes on without it; only train.npy is required. A pickle that asks for anything beyond
  plain containers, numbers and numpy arrays stops the import (`safe_pickle`).

`export(ds, out)` writes any modiste dataset in this layout; see its docstring.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modiste.data import schema
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers.builder import DatasetBuilder, ImportReport, caption, check_options
from modiste.data.safe_pickle import UnsafePickleError, load_npy

HELD_OUT = ("valid", "test")
BLANK = 0
ID_MAP_FILE = "map/modiste_ids.json"  # written by `export` where modiste's ids are not DiFashion's ints
KNOWN_OPTIONS = ("name",)
FLAT_KEYS = ("uids", "oids", "outfits", "category")
_CANONICAL_INT = re.compile(r"(0|[1-9][0-9]*)\Z")


def dataset_info(src: Path, **options: Any) -> dict[str, Any]:
    check_options("difashion", options, KNOWN_OPTIONS)
    name = options.get("name") or Path(src).resolve().name.lower() or "difashion"
    return {
        "name": str(name),
        "license": "research use only (DiFashion release; Polyvore-U from Lu et al. 2019, iFashion from Alibaba POG)",
        "attributes": [],
        "provenance": "DiFashion's processed release (Xu et al., 'Diffusion Models for Generative Outfit "
                      "Recommendation', SIGIR 2024), repository YiyanXu/DiFashion, folder datasets/",
    }


# ---------------------------------------------------------------------------- reading the files

class _Release:
    """The release folder: loads each file safely once, and reports a missing or unreadable one."""

    def __init__(self, src: Path, report: ImportReport):
        self.src, self.report = src, report
        self.present: list[str] = []
        self.unusable: dict[str, str] = {}  # file -> why (missing, or the load error)

    def load(self, *names: str) -> tuple[str, dict | None]:
        """The first of `names` (alternative names of one file) that exists, as a dict; None where unusable."""
        for name in names:
            path = self.src / name
            if path.is_file():
                break
        else:
            self.unusable[names[0]] = "missing"
            return names[0], None
        try:
            array = load_npy(path, source=name)
        except UnsafePickleError:
            raise
        except DatasetError as e:  # a truncated or corrupt file: unusable, reported, not fatal
            self.unusable[name] = e.message
            return name, None
        if array.shape != () or array.dtype != object or not isinstance(array.item(), dict):
            raise DatasetError(name, f"expected a pickled dict saved with numpy (a 0-d object array), got an array "
                               f"of shape {array.shape} and dtype {array.dtype}")
        self.present.append(name)
        return name, array.item()

    def lack(self, file: str, rules_out: str) -> None:
        """Report an unusable file (only if it is unusable) with what that rules out."""
        why = self.unusable.get(file)
        if why is None:
            return
        self.report.lack(file, rules_out)
        if why != "missing":
            self.report.note(f"{file} is unusable and was left out: {why}")


def _id_key(value: Any, file: str, field: str, row: int | None = None) -> int | str:
    """A user, outfit or category id as the release writes it (int, numpy int or string), normalised."""
    if type(value) is int:  # the common case, fast
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, str):
        return int(value) if _CANONICAL_INT.match(value) else value
    raise DatasetError(file, f"an id must be an int or a string, got {type(value).__name__} {value!r}",
                       row=row, field=field)


def _item_id(value: Any, file: str, field: str, row: int | None = None) -> int:
    """An item id: an int (numpy ints too), 0 being the blank."""
    key = _id_key(value, file, field, row)
    if not isinstance(key, int) or key < 0:
        raise DatasetError(file, f"an item id must be a non-negative int, got {value!r}", row=row, field=field)
    return key


def _item_list(value: Any, file: str, field: str, row: int | None) -> list[int]:
    if not isinstance(value, (list, tuple, np.ndarray)):
        raise DatasetError(file, f"expected a list of item ids, got {type(value).__name__}", row=row, field=field)
    if all(type(v) is int and v >= 0 for v in value):  # the common case, fast
        return list(value)
    return [_item_id(v, file, field, row) for v in value]


def _flat_rows(data: dict, file: str, need_category: bool = True) -> list[tuple[Any, Any, list[int], list]]:
    """Rows (uid, oid, items, categories) of a file in train.npy's flat layout; errors name the row and key."""
    keys = FLAT_KEYS if need_category else FLAT_KEYS[:3]
    for key in keys:
        if key not in data:
            raise DatasetError(file, f"required key is missing (the dict has {sorted(map(str, data))})", field=key)
        if not isinstance(data[key], (list, tuple, np.ndarray)):
            raise DatasetError(file, f"expected a list, got {type(data[key]).__name__}", field=key)
    n = len(data["uids"])
    for key in keys:
        if len(data[key]) != n:
            raise DatasetError(file, f"holds {len(data[key])} entries but 'uids' holds {n}", field=key)
    categories = data.get("category") if need_category else None
    rows = []
    for r in range(n):
        items = _item_list(data["outfits"][r], file, "outfits", r)
        cats = None
        if categories is not None:
            cats = categories[r]
            if not isinstance(cats, (list, tuple, np.ndarray)) or len(cats) != len(items):
                raise DatasetError(file, f"expected {len(items)} category ids, one per item, got {cats!r}",
                                   row=r, field="category")
            cats = list(cats) if all(type(c) is int for c in cats) else [_id_key(c, file, "category", r) for c in cats]
        rows.append((_id_key(data["uids"][r], file, "uids", r), _id_key(data["oids"][r], file, "oids", r),
                     items, cats))
    return rows


def _nested(data: dict, file: str) -> Iterable[tuple[int | str, int | str, Any]]:
    """(uid, oid, value) of a {uid: {oid: value}} file."""
    for uid, by_outfit in data.items():
        if not isinstance(by_outfit, dict):
            raise DatasetError(file, f"user {uid!r} maps to a {type(by_outfit).__name__}, expected a dict",
                               field=f"[{uid!r}]")
        u = _id_key(uid, file, f"[{uid!r}]")
        for oid, value in by_outfit.items():
            yield u, _id_key(oid, file, f"[{uid!r}][{oid!r}]"), value


# ---------------------------------------------------------------------------- import

def run(src: Path, build: DatasetBuilder, **options: Any) -> None:
    check_options("difashion", options, KNOWN_OPTIONS)
    src = Path(src)
    report = build.report
    release = _Release(src, report)
    if not (src / "train.npy").is_file():
        raise DatasetError("train.npy", f"missing: {src} has no train.npy; the training outfits are the one file "
                           "a DiFashion release cannot do without")
    ids = _IdNames.read(src)
    if (src / ID_MAP_FILE).is_file():
        release.present.append(ID_MAP_FILE)

    # -- categories and the item -> category map
    names_file, id_names = release.load("id_cate_dict.npy", "new_id_cate_dict.npy")
    category_names = _category_names(id_names or {}, names_file)
    map_file, iid_cate = release.load("map/iid_cate_dict.npy", "map/mapped_iid_cate_dict.npy")
    inverse_file, cate_iid = release.load("map/cate_iid_dict.npy")
    item_cat: dict[int, int | str] = {}
    if iid_cate is not None:
        for key, cid in iid_cate.items():
            item_cat[_item_id(key, map_file, f"[{key!r}]")] = _id_key(cid, map_file, f"[{key!r}]")
    elif cate_iid is not None:
        for cid, members in cate_iid.items():
            c = _id_key(cid, inverse_file, f"[{cid!r}]")
            for iid in _item_list(members, inverse_file, f"[{cid!r}]", None):
                item_cat[iid] = c
    if item_cat.pop(BLANK, None) is not None:
        report.note(f"{map_file} lists item 0, the FITB blank: it is not imported as an item")
    map_usable = bool(item_cat)

    # -- outfits
    build.bar.step("reading the release")
    _, train = release.load("train.npy")
    if train is None:
        raise DatasetError("train.npy", f"unreadable: {release.unusable['train.npy']}; the training outfits are the "
                           "one file a DiFashion release cannot do without")
    rows: list[tuple[str, Any, Any, list[int], list, str, int]] = []  # split, uid, oid, items, cats, file, row
    rows += [("train", u, o, items, cats, "train.npy", r) for r, (u, o, items, cats) in
             enumerate(_flat_rows(train, "train.npy"))]
    for split in HELD_OUT:
        rows += _held_out_rows(split, release)

    outfit_rows, collisions = _dedupe_outfits(rows, report)
    if not outfit_rows:
        raise DatasetError("train.npy", "holds no outfits, and neither do the held-out files: there is nothing to "
                           "import", field="outfits")
    if collisions:
        report.note(f"{collisions:,} oids occur in more than one split: every outfit id is prefixed with its split "
                    "(e.g. 'valid-41') so that ids stay unique")

    def outfit_id(split: str, oid: Any) -> str:
        return ids.outfit(f"{split}-{oid}" if collisions else str(oid))

    # Items: the map's, plus those only the outfits name (with the category their outfit lists).
    disagree = added = 0
    for _, _, _, items, cats, _, _ in outfit_rows:
        for iid, cid in zip(items, cats):
            known = item_cat.get(iid)
            if known is None:
                item_cat[iid] = cid
                added += 1
            elif known != cid:
                disagree += 1
    if map_usable and added:
        report.note(f"{added:,} outfit items are not in the item map: imported with the category "
                    "their outfit lists")
    if disagree:
        report.note(f"{disagree:,} outfit positions list a category other than the item map's: the map's is kept "
                    "(an outfit's categories are always its items' own)")
    if not map_usable:
        rules = ("the catalogue beyond the outfits: only items that outfits name are imported, so FITB candidates "
                 "and history items outside them are skipped")
        release.lack(map_file, rules)
        release.lack(inverse_file, rules)
    else:
        release.lack(map_file, f"nothing: {inverse_file} holds the same item categories")
        release.lack(inverse_file, f"nothing: {map_file} holds the same item categories")
    release.lack(names_file, "category names: categories are named cat<id>")

    names = {cid: category_names.get(cid, f"cat{cid}") for cid in set(item_cat.values())}
    by_name: dict[str, list] = {}
    for cid, name in names.items():
        by_name.setdefault(name, []).append(cid)
    clash = next((cids for cids in by_name.values() if len(cids) > 1), None)
    if clash:
        raise DatasetError(names_file, f"category ids {sorted(clash, key=_sort_key)} share the name "
                           f"{names[clash[0]]!r}: their items could not be told apart", field=f"[{clash[1]!r}]")

    # -- tables
    item_ids = sorted(item_cat)
    item_names = [names[item_cat[i]] for i in item_ids]
    captions = {name: caption(name) for name in set(item_names)}
    build.items(pd.DataFrame({"item_id": [ids.item(i) for i in item_ids], "category": item_names,
                              "caption": [captions[n] for n in item_names], "description": item_names}))

    outfits = pd.DataFrame({
        "outfit_id": [outfit_id(split, oid) for split, _, oid, *_ in outfit_rows],
        "user_id": [None if u is None else ids.user(u) for _, u, *_ in outfit_rows],
        "item_ids": [[ids.item(i) for i in items] for _, _, _, items, *_ in outfit_rows],
        "categories": [[names[item_cat[i]] for i in items] for _, _, _, items, *_ in outfit_rows],
        "split": [split for split, *_ in outfit_rows],
    })
    build.outfits(outfits)
    build.interactions(_interactions(outfits))

    fitb_users: set = set()
    fitb = _fitb(release, outfit_rows, outfit_id, item_cat, ids, report, fitb_users)
    if fitb is not None:
        same = fitb["_same_category"].sum() / max(1, fitb["_negatives"].sum())
        report.note(f"{same:.1%} of the release's FITB negatives share the answer's category: matching the blank's "
                    "category alone already scores high")
        build.fitb(fitb.drop(columns=["_same_category", "_negatives"]))
    history_users: set = set()
    histories = _histories(release, item_cat, lambda c: category_names.get(c, f"cat{c}"), ids, report,
                           history_users)
    if histories is not None:
        build.histories(histories)

    users = {u for _, u, *_ in outfit_rows if u is not None} | fitb_users | history_users
    build.users(pd.DataFrame({"user_id": [ids.user(u) for u in sorted(users, key=_sort_key)]}))

    release_ids = sorted(category_names, key=_sort_key)
    build.manifest(release={"files": sorted(release.present),
                            "category_ids": {str(cid): category_names[cid] for cid in release_ids}})


class _IdNames:
    """modiste's own ids of an exported dataset (map/modiste_ids.json), so that an export imports back unchanged."""

    def __init__(self, tables: dict[str, dict[str, int]]):
        self._back = {kind: {int(v): k for k, v in table.items()} for kind, table in tables.items()}
        self._items = self._back.get("items")

    @classmethod
    def read(cls, src: Path) -> _IdNames:
        path = src / ID_MAP_FILE
        if not path.is_file():
            return cls({})
        try:
            tables = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(ID_MAP_FILE, f"not valid UTF-8 JSON ({e})") from None
        if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
            raise DatasetError(ID_MAP_FILE, "expected {kind: {modiste id: int}}")
        return cls({k: t for k, t in tables.items() if k in ("items", "users", "outfits")})

    def _name(self, kind: str, key: Any) -> str:
        back = self._back.get(kind)
        if back is None or not isinstance(key, int):
            return str(key)
        return back.get(key, str(key))

    def item(self, iid: int) -> str:
        return str(iid) if self._items is None else self._items.get(iid, str(iid))

    def user(self, uid: Any) -> str:
        return self._name("users", uid)

    def outfit(self, oid: str) -> str:
        return self._name("outfits", int(oid)) if _CANONICAL_INT.match(oid) else oid


def _sort_key(key: int | str) -> tuple[int, int | str]:
    return (0, key) if isinstance(key, int) else (1, key)


def _category_names(data: dict, file: str) -> dict[int | str, str]:
    names = {}
    for cid, name in data.items():
        key = _id_key(cid, file, f"[{cid!r}]")
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(file, f"category {cid!r} has no name ({name!r})", field=f"[{cid!r}]")
        names[key] = name.strip()
    return names


def _held_out_rows(split: str, release: _Release) -> list:
    """Rows of a held-out split: {split}_grd_dict.npy (with users), else {split}_grd.npy (users from the FITB)."""
    dict_file, flat = release.load(f"{split}_grd_dict.npy")
    grd_file, grd = release.load(f"{split}_grd.npy")
    rows = []
    if flat is not None:
        rows = [(split, u, o, items, cats, dict_file, r) for r, (u, o, items, cats) in
                enumerate(_flat_rows(flat, dict_file))]
    if grd is not None:
        by_oid = {}
        for oid, entry in grd.items():
            o = _id_key(oid, grd_file, f"[{oid!r}]")
            if not isinstance(entry, dict) or "outfits" not in entry or "category" not in entry:
                raise DatasetError(grd_file, "expected {'outfits': [items], 'category': [category ids]}",
                                   field=f"[{oid!r}]")
            items = _item_list(entry["outfits"], grd_file, f"[{oid!r}]['outfits']", None)
            cats = entry["category"]
            if not isinstance(cats, (list, tuple, np.ndarray)) or len(cats) != len(items):
                raise DatasetError(grd_file, f"expected {len(items)} category ids, got {cats!r}",
                                   field=f"[{oid!r}]['category']")
            by_oid[o] = (items, [_id_key(c, grd_file, f"[{oid!r}]['category']") for c in cats])
        if flat is not None:
            for _, _, o, items, _, _, r in rows:
                if o in by_oid and by_oid[o][0] != items:
                    raise DatasetError(dict_file, f"outfit {o!r} lists items {items}, but {grd_file} lists "
                                       f"{by_oid[o][0]}", row=r, field="outfits")
            listed = {o for _, _, o, *_ in rows}
            extra = [o for o in by_oid if o not in listed]
        else:
            extra = list(by_oid)
        if extra:  # outfits without a row in the dict: their users come from the FITB files where they can
            owners = _fitb_owners(split, release)
            rows += [(split, owners.get(o), o, *by_oid[o], grd_file, None) for o in extra]
    if flat is None and grd is None:
        lost = f"the {split} split: its outfits, interactions and FITB questions"
        release.lack(dict_file, lost)
        release.lack(grd_file, lost)
        return rows
    without_user = sum(u is None for _, u, *_ in rows)
    release.lack(dict_file, f"the users of {without_user:,} {split} outfits, so their interactions" if without_user
                 else f"nothing: {grd_file} holds the {split} outfits, and the FITB files their users")
    release.lack(grd_file, f"nothing: {dict_file} holds the same outfits")
    return rows


def _fitb_owners(split: str, release: _Release) -> dict:
    """oid -> uid from the FITB files of a split (for outfits that only {split}_grd.npy lists)."""
    owners = {}
    for name in (f"fitb_{split}_dict.npy", f"fitb_{split}_retrieval_candidates.npy"):
        path = release.src / name
        if path.is_file():
            try:
                data = load_npy(path, source=name).item()
            except UnsafePickleError:
                raise
            except (DatasetError, ValueError):
                continue
            if isinstance(data, dict):
                for u, o, _ in _nested(data, name):
                    owners.setdefault(o, u)
    return owners


def _dedupe_outfits(rows: list, report: ImportReport) -> tuple[list, int]:
    """Rename exact repeats, refuse a repeated oid with other content, count oids shared across splits."""
    kept, seen, splits_of, copies, repeated = [], {}, {}, {}, []
    for row in rows:
        split, u, o, items, cats, file, r = row
        where = f"row {r}" if r is not None else f"oid {o!r}"
        if BLANK in items:
            report.skip("an outfit holds item 0, the FITB blank", file=file, row=r, detail=f"oid {o!r}")
            continue
        if len(items) < 2:
            report.skip("an outfit with fewer than 2 items", file=file, row=r, detail=f"oid {o!r}")
            continue
        first = seen.get((split, o))
        if first is not None:
            if first[1:4] == (u, items, cats):
                # Kept, as DiFashion trains on it, under an id of its own: the counts stay the papers'.
                copies[(split, o)] = copies.get((split, o), 1) + 1
                repeated.append(f"{file} {where}: oid {o!r} as at {first[0]}")
                o = f"{o}#{copies[(split, o)]}"
                row = (split, u, o, items, cats, file, r)
                kept.append(row)
                continue
            raise DatasetError(file, f"oid {o!r} is already used at {first[0]} for another outfit",
                               row=r, field="oids")
        seen[(split, o)] = (where, u, items, cats)
        splits_of.setdefault(o, set()).add(split)
        kept.append(row)
    if repeated:
        report.note(f"{len(repeated)} outfit row(s) repeat an earlier row exactly; kept (DiFashion trains on them) "
                    f"with ids '<oid>#2', ...: {'; '.join(repeated[:5])}")
    return kept, sum(len(s) > 1 for s in splits_of.values())


def _interactions(outfits: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, item) of each outfit with a user; the outfit's position is the timestamp."""
    has_user = outfits["user_id"].notna().to_numpy()
    mine = outfits[has_user]
    lengths = mine["item_ids"].map(len).to_numpy()
    order = np.flatnonzero(has_user)
    return pd.DataFrame({
        "user_id": np.repeat(mine["user_id"].to_numpy(dtype=object), lengths),
        "item_id": np.concatenate([np.asarray(v, dtype=object) for v in mine["item_ids"]]) if len(mine) else [],
        "timestamp": np.repeat(order.astype(np.int64), lengths),
        "split": np.repeat(mine["split"].to_numpy(dtype=object), lengths),
    })


def _fitb(release: _Release, outfit_rows: list, outfit_id: Callable, item_cat: dict, ids: _IdNames,
          report: ImportReport, users: set) -> pd.DataFrame | None:
    """The release's own FITB questions (kind 'release'), checked against the held-out outfits."""
    held = {(split, o): (u, items) for split, u, o, items, *_ in outfit_rows if split in HELD_OUT}
    records = []
    for split in HELD_OUT:
        dict_file, blanks = release.load(f"fitb_{split}_dict.npy")
        flat_file, flat = release.load(f"fitb_{split}.npy")
        cand_file, candidates = release.load(f"fitb_{split}_retrieval_candidates.npy")
        lost = f"FITB on the {split} split (the release's blanks)"
        release.lack(dict_file, lost if flat is None else f"nothing: {flat_file} holds the same blanks")
        release.lack(flat_file, lost if blanks is None else f"nothing: {dict_file} holds the same blanks")
        release.lack(cand_file, f"FITB on the {split} split (release candidates)")
        if candidates is None or (blanks is None and flat is None):
            continue
        if blanks is not None:
            questions = [(u, o, _item_list(v, dict_file, f"[{u!r}][{o!r}]", None), dict_file, None)
                         for u, o, v in _nested(blanks, dict_file)]
        else:
            questions = [(u, o, items, flat_file, r) for r, (u, o, items, _) in
                         enumerate(_flat_rows(flat, flat_file, need_category=False))]
        options = {(u, o): v for u, o, v in _nested(candidates, cand_file)}
        asked = {}
        for u, o, items, file, r in questions:
            where = dict(file=file, row=r) if r is not None else dict(file=file)
            detail = f"user {u!r}, oid {o!r}"
            if o in asked:
                raise DatasetError(file, f"a second question on oid {o!r} (the first is for user {asked[o]!r})",
                                   row=r, field="oids" if r is not None else f"[{u!r}][{o!r}]")
            asked[o] = u
            if items.count(BLANK) != 1:
                report.skip("a FITB question without exactly one blank (item 0)", **where, detail=detail)
                continue
            blank = items.index(BLANK)
            if (u, o) not in options:
                report.skip(f"a FITB question without retrieval candidates in {cand_file}", **where, detail=detail)
                continue
            cands = _item_list(options[(u, o)], cand_file, f"[{u!r}][{o!r}]", None)
            outfit = held.get((split, o))
            if not cands or outfit is None:
                report.skip("a FITB question on no held-out outfit of its split (or without candidates)",
                            **where, detail=detail)
                continue
            answer = cands[0]
            truth = outfit[1]
            if (outfit[0] != u or len(truth) != len(items) or truth[blank] != answer
                    or any(a != b for k, (a, b) in enumerate(zip(items, truth)) if k != blank)):
                report.skip("a FITB question whose answer or other items disagree with its held-out outfit",
                            **where, detail=detail)
                continue
            unknown = [c for c in cands if c not in item_cat]
            if unknown:
                report.skip("a FITB question with a candidate outside the catalogue", **where,
                            detail=f"{detail}: item {unknown[0]}")
                continue
            users.add(u)
            records.append({
                "question_id": f"{split}-{o}", "outfit_id": outfit_id(split, o), "user_id": ids.user(u),
                "blank_index": blank, "candidates": [ids.item(c) for c in cands], "answer": ids.item(answer),
                "kind": "release", "split": split,
                "_same_category": sum(item_cat[c] == item_cat[answer] for c in cands[1:]),
                "_negatives": len(cands) - 1,
            })
    if not records:
        return None
    return pd.DataFrame.from_records(records)


def _histories(release: _Release, item_cat: dict, category_name: Callable, ids: _IdNames, report: ImportReport,
               users: set) -> pd.DataFrame | None:
    records, digests = [], {}
    for split in schema.SPLITS:
        file, data = release.load(f"{split}_history.npy")
        release.lack(file, f"the release's {split} histories (history-conditioned PFITB/GOR on the {split} split)")
        if data is None:
            continue
        digests[split] = hashlib.sha256((release.src / file).read_bytes()).hexdigest()
        mismatched = 0
        for uid, by_cat in data.items():
            u = _id_key(uid, file, f"[{uid!r}]")
            if not isinstance(by_cat, dict):
                raise DatasetError(file, f"user {uid!r} maps to a {type(by_cat).__name__}, expected "
                                   "{category id: [item ids]}", field=f"[{uid!r}]")
            for cid, members in by_cat.items():
                c = _id_key(cid, file, f"[{uid!r}][{cid!r}]")
                items = _item_list(members, file, f"[{uid!r}][{cid!r}]", None)
                unknown = [i for i in items if i not in item_cat]
                if unknown:
                    report.skip_many("a history item outside the catalogue (dropped from its history)",
                                     len(unknown), file=file, examples=[f"user {uid!r}, item {unknown[0]}"])
                    items = [i for i in items if i in item_cat]
                mismatched += sum(item_cat[i] != c for i in items)
                users.add(u)
                records.append({"user_id": ids.user(u), "category": category_name(c),
                                "item_ids": [ids.item(i) for i in items], "split": split})
        if mismatched:
            report.note(f"{file}: {mismatched:,} history items belong to another category than the one they are "
                        "listed under (kept as listed)")
    if digests.get("train") is not None and digests.get("train") == digests.get("test"):
        report.note("train_history.npy is byte-identical to test_history.npy (a quirk of the release): the test "
                    "histories are the training ones")
    if not records:
        return None
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------------------- export

def export(ds: Dataset, out: Path) -> None:
    """Write dataset `ds` in DiFashion's layout into the (empty, temporary) folder `out`.

    The same files and nesting as the release (pickled dicts saved with ``np.save``), so that the repository's
    scripts read modiste's splits:

    - ids: DiFashion indexes with ints. Item, user and outfit ids that are all decimal ("5768") are kept; otherwise
      that kind is numbered in table order (items 1..N, 0 being the blank; users and outfits 0..N-1) and
      map/modiste_ids.json gives {kind: {modiste id: int}} (the importer reads it back, restoring modiste's ids).
      A repeated release row ("14630#2") is written as the release has it: oid 14630 again.
      Category ids are the release's own where the dataset came from a DiFashion release (manifest "release"),
      the names themselves where they are decimal, else 0..C-1 in name order ("categories" in modiste_ids.json).
    - outfits: train.npy and {valid,test}_grd_dict.npy (flat lists) and {valid,test}_grd.npy ({oid: ...}); an
      outfit keeps its length: DiFashion's are all 4 items and its DataLoader stacks them into batches, so a
      dataset whose outfits vary in length is written as it is but needs equal lengths before DiFashion trains on
      it. Outfits without a user have no place in these files and are left out. Interactions that are not part
      of an outfit have no file of their own either: they only feed the derived histories below.
    - FITB: per held-out split, one kind of question fills fitb_{split}.npy, fitb_{split}_dict.npy and
      fitb_{split}_retrieval_candidates.npy (candidates reordered to [answer, negatives...]): "release" where
      present, else "random" (random negatives, like the release's), else the first kind by name; every other kind
      goes to fitb_{split}_{kind}_dict.npy and fitb_{split}_{kind}_retrieval_candidates.npy. DiFashion holds one
      question per (user, outfit) and kind: further ones are left out.
    - histories: the dataset's own; without them, derived from the interactions: a user's up to 10 most recent
      items per category (oldest first) among the training interactions for train_history.npy and
      valid_history.npy, among training and validation interactions for test_history.npy.
    - id_cate_dict.npy (and new_id_cate_dict.npy, the name the repository's scripts read), map/iid_cate_dict.npy
      and map/cate_iid_dict.npy. Images are not exported (DiFashion reads image files through its own path list).
    """
    out = Path(out)
    (out / "map").mkdir(parents=True, exist_ok=True)
    items, users, outfits = ds.items, ds.users, ds.outfits
    id_tables: dict[str, dict[str, int]] = {}

    item_ids = items.index.to_numpy(dtype=object)
    if all(_CANONICAL_INT.match(i) and i != "0" for i in item_ids):
        item_int = {i: int(i) for i in item_ids}
    else:
        item_int = {i: n for n, i in enumerate(item_ids, start=1)}
        id_tables["items"] = item_int
    user_int = _int_ids(users.index, "users", id_tables)
    outfit_int = _int_ids(outfits["outfit_id"], "outfits", id_tables)

    categories = sorted(set(items["category"]))
    cat_int = _category_ids(ds, categories, id_tables)
    id_names = {cid: name for name, cid in cat_int.items()}
    item_cat = {item_int[i]: cat_int[c] for i, c in zip(item_ids, items["category"])}
    cate_iid: dict[int, list[int]] = {}
    for iid, cid in item_cat.items():
        cate_iid.setdefault(cid, []).append(iid)

    _save(out / "id_cate_dict.npy", dict(sorted(id_names.items())))
    _save(out / "new_id_cate_dict.npy", dict(sorted(id_names.items())))
    _save(out / "map/iid_cate_dict.npy", item_cat)
    _save(out / "map/cate_iid_dict.npy", {cid: cate_iid[cid] for cid in sorted(cate_iid)})

    # -- outfits
    rows: dict[str, dict[str, list]] = {s: {k: [] for k in FLAT_KEYS} for s in schema.SPLITS}
    outfit_of: dict[str, tuple[int, int, list[int], list[int]]] = {}
    for oid, uid, members, split in zip(outfits["outfit_id"], outfits["user_id"], outfits["item_ids"],
                                        outfits["split"]):
        if pd.isna(uid):
            continue
        iids = [item_int[i] for i in members]
        cids = [item_cat[i] for i in iids]
        entry = (user_int[uid], outfit_int[oid], iids, cids)
        outfit_of[oid] = entry
        for key, value in zip(FLAT_KEYS, entry):
            rows[split][key].append(value)
    _save(out / "train.npy", rows["train"])
    for split in HELD_OUT:
        flat = rows[split]
        _save(out / f"{split}_grd_dict.npy", flat)
        _save(out / f"{split}_grd.npy", {o: {"outfits": list(i), "category": list(c)}
                                         for o, i, c in zip(flat["oids"], flat["outfits"], flat["category"])})

    # -- FITB
    fitb = ds.fitb
    if fitb is not None:
        for split in HELD_OUT:
            mine = fitb[fitb["split"] == split]
            kinds = sorted(set(mine["kind"]))
            if not kinds:
                continue
            main = "release" if "release" in kinds else "random" if "random" in kinds else kinds[0]
            for kind in [main] + [k for k in kinds if k != main]:
                stem = f"fitb_{split}" if kind == main else f"fitb_{split}_{re.sub(r'[^A-Za-z0-9]+', '_', kind)}"
                _export_fitb(out, stem, mine[mine["kind"] == kind], outfit_of, item_int, write_flat=kind == main)

    # -- histories
    for split, by_user in _export_histories(ds, user_int, item_int, cat_int).items():
        _save(out / f"{split}_history.npy", by_user)

    if id_tables:
        (out / ID_MAP_FILE).write_text(json.dumps(id_tables, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _save(path: Path, obj: dict) -> None:
    """A dict as the release stores it: a 0-d object array, pickled by np.save."""
    array = np.empty((), dtype=object)
    array[()] = obj
    np.save(path, array, allow_pickle=True)


def _int_ids(ids: Iterable[str], kind: str, id_tables: dict) -> dict[str, int]:
    ids = list(ids)
    if all(_CANONICAL_INT.match(i) for i in ids):
        return {i: int(i) for i in ids}
    if kind == "outfits" and all(_CANONICAL_INT.match(i.split("#")[0]) for i in ids):
        return {i: int(i.split("#")[0]) for i in ids}  # "14630#2", a repeated release row, is 14630 again
    id_tables[kind] = {i: n for n, i in enumerate(ids)}
    return id_tables[kind]


def _category_ids(ds: Dataset, categories: list[str], id_tables: dict) -> dict[str, int]:
    """The release's category ids where the dataset came from one, else the decimal names, else 0..C-1."""
    release = ds.manifest.get("release", {}).get("category_ids") if isinstance(ds.manifest.get("release"),
                                                                               dict) else None
    if isinstance(release, dict) and all(_CANONICAL_INT.match(str(k)) for k in release):
        by_name = {name: int(cid) for cid, name in release.items()}
        if len(by_name) == len(release) and all(c in by_name for c in categories):
            return dict(sorted(by_name.items(), key=lambda kv: kv[1]))
    if all(_CANONICAL_INT.match(c) for c in categories):
        return {c: int(c) for c in categories}
    id_tables["categories"] = {c: n for n, c in enumerate(categories)}
    return id_tables["categories"]


def _export_fitb(out: Path, stem: str, questions: pd.DataFrame, outfit_of: dict, item_int: dict,
                 write_flat: bool) -> None:
    blanks: dict[int, dict[int, list[int]]] = {}
    candidates: dict[int, dict[int, list[int]]] = {}
    flat: dict[str, list] = {k: [] for k in FLAT_KEYS}
    for oid, blank, cands, answer in zip(questions["outfit_id"], questions["blank_index"], questions["candidates"],
                                         questions["answer"]):
        entry = outfit_of.get(oid)
        if entry is None:  # an outfit without a user: not exported
            continue
        uid, o, iids, cids = entry
        if o in blanks.get(uid, {}):  # one question per (user, outfit) and kind
            continue
        with_blank = list(iids)
        with_blank[int(blank)] = BLANK
        blanks.setdefault(uid, {})[o] = with_blank
        ordered = [answer] + [c for c in cands if c != answer]
        candidates.setdefault(uid, {})[o] = [item_int[c] for c in ordered]
        for key, value in zip(FLAT_KEYS, (uid, o, with_blank, list(cids))):
            flat[key].append(value)
    _save(out / f"{stem}_dict.npy", blanks)
    _save(out / f"{stem}_retrieval_candidates.npy", candidates)
    if write_flat:
        _save(out / f"{stem}.npy", flat)


def _export_histories(ds: Dataset, user_int: dict, item_int: dict, cat_int: dict) -> dict[str, dict]:
    """{split: {uid: {cid: [iids]}}}: the dataset's own histories, else derived from its interactions."""
    histories = ds.histories
    result: dict[str, dict] = {}
    if histories is not None:
        for uid, category, members, split in zip(histories["user_id"], histories["category"],
                                                 histories["item_ids"], histories["split"]):
            cid = cat_int.get(category)
            if cid is None:  # a history category no item has: there is no id for it
                continue
            result.setdefault(split, {}).setdefault(user_int[uid], {})[cid] = [item_int[i] for i in members]
        return result
    inter = ds.interactions
    users = _codes(inter["user_id"], user_int)
    items = _codes(inter["item_id"], item_int)
    item_cat_int = {i: cat_int[c] for i, c in zip(ds.items.index, ds.items["category"])}
    cats = _codes(inter["item_id"], item_cat_int)
    times = inter["timestamp"].to_numpy()
    splits = inter["split"].to_numpy(dtype=object)
    for split, known in (("train", ("train",)), ("valid", ("train",)), ("test", ("train", "valid"))):
        rows = np.flatnonzero(np.isin(splits, known))
        # by user, category, time (file order breaks ties); keep the last 10 of each (user, category)
        rows = rows[np.lexsort((rows, times[rows], cats[rows], users[rows]))]
        u, c = users[rows], cats[rows]
        starts = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (c[1:] != c[:-1])])
        ends = np.r_[starts[1:], len(rows)]
        by_user: dict[int, dict[int, list[int]]] = {}
        for start, end in zip(starts.tolist(), ends.tolist()):
            by_user.setdefault(int(u[start]), {})[int(c[start])] = items[rows[max(start, end - 10):end]].tolist()
        result[split] = by_user
    return result


def _codes(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    """The ints of many string ids at once."""
    keys = pd.Index(list(mapping))
    return np.asarray(list(mapping.values()), dtype=np.int64)[keys.get_indexer(values.to_numpy(dtype=object))]
