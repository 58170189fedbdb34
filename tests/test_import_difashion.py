"""The DiFashion importer and exporter, on small releases written here in the exact layout of the real files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import export_dataset, import_dataset
from modiste.data.safe_pickle import UnsafePickleError, load_npy

# The real release, where the team keeps it: ../shared beside the repository.
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "polyvore-u"
CATEGORY_NAMES = {0: "skirt", 1: "women's t-shirt", 2: "women's sandal", 3: "crossbody bag", 4: "hat"}
N_ITEMS = 40  # items 1..40, item i in category (i - 1) % 4; "hat" has no items, as some release categories


def save(path: Path, obj) -> None:
    """How the release stores a dict: np.save of a 0-d object array (pickle protocol 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array(obj, dtype=object), allow_pickle=True)


def write_release(root: Path, *, str_category_ids: bool = False, short_outfit: bool = False) -> Path:
    """A 6-user release: 13 training rows (one an exact repeat), 5 valid and 6 test outfits, FITB, histories.

    Users 0..5; oids are global across splits as in Polyvore-U (train 0..11, valid 20.., test 30..); user 5 has
    no valid outfit. With `str_category_ids` the item map holds category ids as strings ("2").
    """
    rng = np.random.default_rng(0)
    by_cat = {c: [i for i in range(1, N_ITEMS + 1) if (i - 1) % 4 == c] for c in range(4)}

    def outfit() -> tuple[list[int], list[int]]:
        cats = [0, 1, 2, 3]
        return [int(rng.choice(by_cat[c])) for c in cats], cats

    train = {"uids": [], "oids": [], "outfits": [], "category": []}
    oid = 0
    for uid in range(6):
        for _ in range(2):
            items, cats = outfit()
            for key, value in zip(train, (uid, oid, items, cats)):
                train[key].append(value)
            oid += 1
    if short_outfit:
        train["outfits"][3], train["category"][3] = train["outfits"][3][:3], train["category"][3][:3]
    for key in train:  # row 12 repeats row 11 exactly, as oids 14630 and 18898 do in Polyvore-U
        train[key].append(train[key][11])
    save(root / "train.npy", train)

    history = {uid: {} for uid in range(6)}
    for uid, items in zip(train["uids"], train["outfits"]):
        for iid in items:
            history[uid].setdefault((iid - 1) % 4, []).append(iid)
    for name in ("train_history.npy", "test_history.npy"):
        save(root / name, history)
    save(root / "valid_history.npy", {uid: history[uid] for uid in range(5)})

    for split, first_oid, users in (("valid", 20, range(5)), ("test", 30, range(6))):
        flat = {"uids": [], "oids": [], "outfits": [], "category": []}
        for n, uid in enumerate(users):
            items, cats = outfit()
            for key, value in zip(flat, (uid, first_oid + n, items, cats)):
                flat[key].append(value)
        save(root / f"{split}_grd_dict.npy", flat)
        save(root / f"{split}_grd.npy", {o: {"outfits": list(i), "category": list(c)}
                                         for o, i, c in zip(flat["oids"], flat["outfits"], flat["category"])})
        fitb = {key: [list(v) if isinstance(v, list) else v for v in values] for key, values in flat.items()}
        blanks, candidates = {}, {}
        for r, (uid, o, items) in enumerate(zip(flat["uids"], flat["oids"], flat["outfits"])):
            blank = (o + r) % 4
            with_blank = list(items)
            with_blank[blank] = 0
            fitb["outfits"][r] = with_blank
            blanks.setdefault(uid, {})[o] = with_blank
            negatives = rng.choice([i for i in range(1, N_ITEMS + 1) if i != items[blank]], 4, replace=False)
            candidates.setdefault(uid, {})[o] = [items[blank]] + [np.int64(n) for n in negatives]
        save(root / f"fitb_{split}.npy", fitb)
        save(root / f"fitb_{split}_dict.npy", blanks)
        save(root / f"fitb_{split}_retrieval_candidates.npy", candidates)

    save(root / "id_cate_dict.npy", CATEGORY_NAMES)
    iid_cate = {i: (i - 1) % 4 for i in range(1, N_ITEMS + 1)}
    save(root / "map/iid_cate_dict.npy", {i: str(c) if str_category_ids else c for i, c in iid_cate.items()})
    save(root / "map/cate_iid_dict.npy", by_cat)
    return root


@pytest.fixture
def release(tmp_path) -> Path:
    return write_release(tmp_path / "release")


def do_import(src: Path, out: Path, **options):
    report = import_dataset("difashion", src, out, **options)
    return Dataset(out).validate(), report


def missing(ds: Dataset) -> dict[str, str]:
    return {m["file"]: m["rules_out"] for m in ds.manifest["import"]["missing"]}


# ---------------------------------------------------------------------------- import

@pytest.mark.parametrize("str_category_ids", [False, True])
def test_import_counts_splits_fitb_histories(tmp_path, str_category_ids):
    src = write_release(tmp_path / "release", str_category_ids=str_category_ids)
    ds, report = do_import(src, tmp_path / "out")
    assert len(ds.items) == N_ITEMS and ds.items.index[0] == "1" and not ds.has_images
    assert ds.items.loc["3", "category"] == "women's sandal"
    assert json.loads(ds.items.loc["3", "caption"])["Category"] == "women's sandal"
    assert ds.manifest["attributes"] == [] and ds.manifest["release"]["category_ids"]["4"] == "hat"
    assert list(ds.users.index) == [str(u) for u in range(6)]

    outfits = ds.outfits
    assert outfits["split"].value_counts().to_dict() == {"train": 13, "test": 6, "valid": 5}
    assert outfits["outfit_id"].tolist()[:3] == ["0", "1", "2"] and "20" in set(outfits["outfit_id"])
    assert any("repeat an earlier row exactly" in note for note in ds.manifest["import"]["notes"])
    repeat = outfits[outfits["outfit_id"].str.endswith("#2")]
    assert len(repeat) == 1 and repeat["split"].item() == "train"
    train = load_npy(src / "train.npy").item()
    assert outfits["item_ids"].iloc[0].tolist() == [str(i) for i in train["outfits"][0]]
    assert outfits["categories"].iloc[0].tolist() == ["skirt", "women's t-shirt", "women's sandal", "crossbody bag"]

    inter = ds.interactions
    assert len(inter) == 4 * len(outfits)
    assert inter["split"].value_counts().to_dict() == {"train": 52, "test": 24, "valid": 20}
    assert (np.diff(inter["timestamp"].to_numpy()) >= 0).all()  # train, then valid, then test
    assert inter["timestamp"].iloc[-1] == len(outfits) - 1

    fitb = ds.fitb
    assert fitb["split"].value_counts().to_dict() == {"test": 6, "valid": 5} and set(fitb["kind"]) == {"release"}
    blanks = load_npy(src / "fitb_test_dict.npy").item()
    candidates = load_npy(src / "fitb_test_retrieval_candidates.npy").item()
    q = fitb[fitb["outfit_id"] == "31"].iloc[0]
    assert q["user_id"] == "1" and q["split"] == "test"
    assert q["blank_index"] == blanks[1][31].index(0)
    assert q["candidates"].tolist() == [str(int(c)) for c in candidates[1][31]]
    assert q["answer"] == q["candidates"][0]
    truth = outfits.set_index("outfit_id").loc["31", "item_ids"]
    assert truth[q["blank_index"]] == q["answer"]

    hist = ds.histories
    assert set(hist["split"]) == {"train", "valid", "test"}
    assert (hist["split"] == "valid").sum() < (hist["split"] == "train").sum()  # user 5 has no valid history
    row = hist[(hist["user_id"] == "0") & (hist["category"] == "skirt") & (hist["split"] == "train")].iloc[0]
    assert row["item_ids"].tolist() == [str(i) for i in load_npy(src / "train_history.npy").item()[0][0]]
    notes = " ".join(report.notes)
    assert "byte-identical" in notes and "share the answer's category" in notes
    assert ds.manifest["import"]["missing"] == []
    assert "map/cate_iid_dict.npy" in ds.manifest["release"]["files"]


def test_fitb_answer_that_disagrees_with_the_outfit_is_skipped(release, tmp_path):
    candidates = load_npy(release / "fitb_valid_retrieval_candidates.npy").item()
    uid, oid = 2, 22
    candidates[uid][oid][0] = (candidates[uid][oid][0] % N_ITEMS) + 1  # no longer the outfit's item at the blank
    save(release / "fitb_valid_retrieval_candidates.npy", candidates)
    ds, _ = do_import(release, tmp_path / "out")
    skipped = ds.manifest["import"]["skipped"]
    entry = skipped["a FITB question whose answer or other items disagree with its held-out outfit"]
    assert entry["count"] == 1 and "oid 22" in entry["examples"][0]
    assert "22" not in set(ds.fitb["outfit_id"]) and len(ds.fitb) == 10


def test_missing_files_are_reported_with_what_they_rule_out(release, tmp_path):
    (release / "fitb_test_retrieval_candidates.npy").unlink()
    (release / "valid_grd_dict.npy").unlink()  # valid_grd.npy has the outfits, the FITB dict their users
    (release / "id_cate_dict.npy").unlink()
    ds, _ = do_import(release, tmp_path / "out")
    lacks = missing(ds)
    assert lacks["fitb_test_retrieval_candidates.npy"] == "FITB on the test split (release candidates)"
    assert lacks["valid_grd_dict.npy"].startswith("nothing")
    assert lacks["id_cate_dict.npy"] == "category names: categories are named cat<id>"
    assert set(ds.fitb["split"]) == {"valid"}
    valid = ds.outfits[ds.outfits["split"] == "valid"]
    assert len(valid) == 5 and valid["user_id"].notna().all()
    assert set(ds.items["category"]) == {"cat0", "cat1", "cat2", "cat3"}


def test_a_truncated_map_file_is_unusable_not_fatal(release, tmp_path):
    data = (release / "map/iid_cate_dict.npy").read_bytes()
    (release / "map/iid_cate_dict.npy").write_bytes(data[: len(data) // 2])
    ds, report = do_import(release, tmp_path / "out")
    assert missing(ds) == {"map/iid_cate_dict.npy": "nothing: map/cate_iid_dict.npy holds the same item categories"}
    assert any("map/iid_cate_dict.npy is unusable" in n and "truncated" in n for n in report.notes)
    assert len(ds.items) == N_ITEMS  # from the other map

    (release / "map/cate_iid_dict.npy").unlink()
    ds, _ = do_import(release, tmp_path / "out2")
    lacks = missing(ds)
    assert set(lacks) == {"map/iid_cate_dict.npy", "map/cate_iid_dict.npy"}
    assert "only items that outfits name" in lacks["map/iid_cate_dict.npy"]
    in_outfits = {i for items in ds.outfits["item_ids"] for i in items}
    assert set(ds.items.index) == in_outfits and len(in_outfits) < N_ITEMS
    assert ds.manifest["import"]["skipped"]  # FITB candidates and history items outside the outfits are counted


def test_train_npy_is_required(release, tmp_path):
    out = tmp_path / "out"
    data = (release / "train.npy").read_bytes()
    (release / "train.npy").write_bytes(data[:-100])
    with pytest.raises(DatasetError, match="truncated") as e:
        import_dataset("difashion", release, out)
    assert e.value.file == "train.npy" and not out.exists()
    (release / "train.npy").unlink()
    with pytest.raises(DatasetError, match="missing") as e:
        import_dataset("difashion", release, out)
    assert e.value.file == "train.npy" and not out.exists()
    save(release / "train.npy", {"uids": [], "oids": [], "outfits": [], "category": []})
    for split in ("valid", "test"):
        (release / f"{split}_grd.npy").unlink()
        (release / f"{split}_grd_dict.npy").unlink()
    with pytest.raises(DatasetError, match="no outfits") as e:
        import_dataset("difashion", release, out)
    assert (e.value.file, e.value.field) == ("train.npy", "outfits") and not out.exists()


class OpensAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsACommand:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("payload", [OpensAFile, RunsACommand])
def test_a_pickle_that_runs_code_stops_the_import(release, tmp_path, payload):
    victim = tmp_path / "written-by-the-pickle"
    save(release / "valid_history.npy", {0: {0: payload(str(victim))}})
    out = tmp_path / "out"
    with pytest.raises(UnsafePickleError, match="refused to load") as e:
        import_dataset("difashion", release, out)
    assert e.value.file == "valid_history.npy"
    assert not victim.exists() and not out.exists()

    do_import(write_release(tmp_path / "good"), out)  # an old output stays as it was
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(UnsafePickleError):
        import_dataset("difashion", release, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not victim.exists()


def test_bad_layouts_name_file_row_and_field(release, tmp_path):
    out = tmp_path / "out"
    train = load_npy(release / "train.npy").item()
    broken = dict(train)
    del broken["category"]
    save(release / "train.npy", broken)
    with pytest.raises(DatasetError) as e:
        import_dataset("difashion", release, out)
    assert (e.value.file, e.value.field) == ("train.npy", "category")

    broken = {k: list(v) for k, v in train.items()}
    broken["outfits"][5] = [1, 2, "a sock", 4]
    save(release / "train.npy", broken)
    with pytest.raises(DatasetError) as e:
        import_dataset("difashion", release, out)
    assert (e.value.file, e.value.row, e.value.field) == ("train.npy", 5, "outfits")

    broken = {k: list(v) for k, v in train.items()}
    broken["oids"][7] = broken["oids"][2]  # the same oid for another outfit
    save(release / "train.npy", broken)
    with pytest.raises(DatasetError, match="already used") as e:
        import_dataset("difashion", release, out)
    assert (e.value.file, e.value.row, e.value.field) == ("train.npy", 7, "oids")
    assert not out.exists()
    with pytest.raises(TypeError, match="unknown option 'colour'.*name"):
        import_dataset("difashion", release, out, colour="red")


def test_oids_shared_across_splits_get_a_split_prefix(release, tmp_path):
    for name in ("valid_grd_dict.npy", "fitb_valid.npy"):
        flat = load_npy(release / name).item()
        flat["oids"] = [o - 20 for o in flat["oids"]]  # valid oids 0..4, as train's
        save(release / name, flat)
    grd = load_npy(release / "valid_grd.npy").item()
    save(release / "valid_grd.npy", {o - 20: v for o, v in grd.items()})
    for name in ("fitb_valid_dict.npy", "fitb_valid_retrieval_candidates.npy"):
        nested = load_npy(release / name).item()
        save(release / name, {u: {o - 20: v for o, v in d.items()} for u, d in nested.items()})
    ds, report = do_import(release, tmp_path / "out")
    assert {"train-0", "valid-0", "test-30"} <= set(ds.outfits["outfit_id"])
    assert set(ds.fitb.loc[ds.fitb["split"] == "valid", "outfit_id"]) == {f"valid-{o}" for o in range(5)}
    assert any("prefixed with its split" in n for n in report.notes)


# ---------------------------------------------------------------------------- export

def tables(ds: Dataset) -> dict[str, pd.DataFrame]:
    return {t: getattr(ds, t).reset_index(drop=True) for t in
            ("items", "users", "interactions", "outfits", "fitb", "histories")}


def test_round_trip_import_export_import_is_identical(tmp_path):
    src = write_release(tmp_path / "release", short_outfit=True)  # one 3-item outfit: lengths are kept
    first, _ = do_import(src, tmp_path / "first")
    export_dataset("difashion", first, tmp_path / "exported")
    exported = tmp_path / "exported"
    assert not (exported / "map/modiste_ids.json").exists()  # decimal ids are kept as they are
    assert load_npy(exported / "id_cate_dict.npy").item() == CATEGORY_NAMES
    assert load_npy(exported / "new_id_cate_dict.npy").item() == CATEGORY_NAMES
    original = load_npy(src / "fitb_valid_retrieval_candidates.npy").item()
    assert load_npy(exported / "fitb_valid_retrieval_candidates.npy").item() == original
    assert load_npy(exported / "test_grd.npy").item() == load_npy(src / "test_grd.npy").item()
    second, _ = do_import(exported, tmp_path / "second")
    assert min(map(len, second.outfits["item_ids"])) == 3
    for name, table in tables(first).items():
        pd.testing.assert_frame_equal(table, tables(second)[name], obj=name)


def test_export_of_the_synthetic_world_imports_back(tiny_world, tmp_path):
    world = Dataset(tiny_world)
    out = tmp_path / "exported"
    export_dataset("difashion", world, out)
    ids = json.loads((out / "map/modiste_ids.json").read_text())
    assert set(ids) == {"items", "users", "outfits", "categories"} and min(ids["items"].values()) == 1
    train = load_npy(out / "train.npy").item()
    assert len(train["oids"]) == (world.outfits["split"] == "train").sum()
    assert all(isinstance(v, int) for v in train["outfits"][0])
    assert (out / "fitb_test_hard_retrieval_candidates.npy").exists()  # the hard questions, beside the random ones

    back, _ = do_import(out, tmp_path / "back")
    assert list(back.items.index) == list(world.items.index)  # modiste's ids come back from modiste_ids.json
    assert (back.items["category"] == world.items["category"]).all()
    by_id = world.outfits.set_index("outfit_id")
    got = back.outfits.set_index("outfit_id")
    assert set(got.index) == set(by_id.index)
    assert (got["split"] == by_id.loc[got.index, "split"]).all()
    assert all(list(a) == list(b) for a, b in zip(got["item_ids"], by_id.loc[got.index, "item_ids"]))
    random = world.fitb[world.fitb["kind"] == "random"]
    assert len(back.fitb) == len(random)
    q = random.iloc[0]
    mine = back.fitb[back.fitb["outfit_id"] == q["outfit_id"]].iloc[0]
    assert (mine["answer"], mine["blank_index"]) == (q["answer"], q["blank_index"])
    assert sorted(mine["candidates"]) == sorted(q["candidates"])
    # histories derived from the interactions: at most 10 per (user, category), all the user's own items
    hist = back.histories
    assert hist["item_ids"].map(len).max() == 10
    row = hist[hist["split"] == "train"].iloc[0]
    own = set(world.interactions.query("user_id == @row.user_id and split == 'train'")["item_id"])
    assert set(row["item_ids"]) <= own
    assert (world.items.loc[list(row["item_ids"]), "category"] == row["category"]).all()


def test_cli_import_and_export(release, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["import", "difashion", str(release), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "repeat an earlier row exactly" in result.output and "wrote" in result.output
    result = runner.invoke(app, ["export", str(out), "--format", "difashion", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x/train.npy").exists() and (tmp_path / "x/map/iid_cate_dict.npy").exists()
    shutil.rmtree(release / "map")
    result = runner.invoke(app, ["import", "difashion", str(release), "--out", str(out), "--quiet", "--force"])
    assert result.exit_code == 0 and "missing map/iid_cate_dict.npy" in result.output


# ---------------------------------------------------------------------------- the real release

@pytest.mark.skipif(not REAL.is_dir(), reason="the real Polyvore-U release is not in ../shared/data/polyvore-u")
def test_real_polyvore_u(tmp_path):
    report = import_dataset("difashion", REAL, tmp_path / "pu")  # validated by the builder before it is renamed
    ds = Dataset(tmp_path / "pu")
    assert ds.manifest["counts"]["users"] == 517 and ds.manifest["counts"]["items"] == 119_202
    # train.npy has 26,921 rows; two repeat the row before exactly (oids 14630 and 18898): kept as 14630#2, 18898#2
    splits = ds.manifest["splits"]
    assert splits["outfits"] == {"train": 26_921, "valid": 3_356, "test": 3_631}
    assert report.skipped == {}
    assert {"14630#2", "18898#2"} <= set(ds.outfits["outfit_id"])
    assert splits["fitb"] == {"train": 0, "valid": 3_356, "test": 3_631}
    assert report.missing == [] and any("byte-identical" in n for n in report.notes)
    assert len(ds.manifest["release"]["category_ids"]) == 50 and len(ds.manifest["categories"]) == 43
    assert ds.manifest["counts"]["interactions"] == 4 * (26_921 + 3_356 + 3_631)
