"""The DVBPR importer on small files written exactly as the release was: np.save under Python 2."""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import dvbpr, import_dataset
from modiste.data.safe_pickle import UnsafePickleError

FASHION = "AmazonFashion6ImgPartitioned.npy"
CATEGORIES = ["Men's Tops", "Men's Bottoms", "Men's Shoes", "Women's Tops", "Women's Bottoms", "Women's Shoes"]


# ---------------------------------------------------------------------------- the release's writer

class Py2Pickler(pickle._Pickler):
    """Pickle protocol 2 as Python 2 wrote it (cPickle, and so np.save).

    A Python 2 ``str`` is a byte string, written as SHORT_BINSTRING / BINSTRING and memoized by id (so an interned
    key such as 'asin' is written once and then fetched by BINGET); Python 3 reads it back as ``bytes`` with
    encoding="bytes". Python 3's own protocol 2 writes bytes as ``_codecs.encode(...)`` instead, and numpy 2
    names ``numpy._core`` where numpy 1.x under Python 2 named ``numpy.core``: both are undone here.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, file):
        super().__init__(file, protocol=2)

    def save_bytes(self, obj):
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256
                   else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj):  # numpy's reduce strings ('b', 'O8', '|'): Python 2 str too
        self.save_bytes(obj.encode("utf-8"))

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def write_release(path, user_train, user_validation, user_test, items, usernum, itemnum, pickler=Py2Pickler):
    """Write a DVBPR release file exactly as np.save did under Python 2: .npy 1.0 header, protocol 2 pickle."""
    array = np.empty(6, dtype=object)
    for k, part in enumerate((user_train, user_validation, user_test, items, usernum, itemnum)):
        array[k] = part
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (6,)})
        pickler(f).dump(array)


# ---------------------------------------------------------------------------- a small release

def jpeg(color, size=(40, 40), quality=95) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def review(u, item, day=None, **extra) -> dict:
    """A review as the release stores it; day -> unixReviewTime and reviewTime, as the Amazon data has them."""
    record = {b"productid": item, b"reviewerID": b"A%dXYZ" % u, b"asin": b"B%09d" % item, b"overall": 4.0}
    if day is not None:
        record[b"unixReviewTime"] = 1_400_000_000 + 86400 * day
        record[b"reviewTime"] = b"05 %02d, 2014" % (13 + day)  # 2014-05-13 is day 0 (1399939200)
    return {**record, **extra}


def release(times=True):
    """5 users, 12 items: item 0 a wide red JPEG; 9 garbage bytes, 10 a truncated JPEG, 11 without imgs."""
    one_hot = np.eye(6)
    items = {i: {b"imgs": jpeg((20 * i, 100, 255 - 20 * i), size=(30 + 5 * i, 40)), b"asin": b"B%09d" % i,
                 b"c": one_hot[i % 6].copy()} for i in range(12)}
    items[0][b"imgs"] = jpeg((255, 0, 0), size=(120, 60))  # fitted: 64 x 32, white bands above and below
    items[9][b"imgs"] = b"this is not a JPEG"
    items[10][b"imgs"] = jpeg((0, 0, 255), size=(200, 200), quality=80)[:400]
    del items[11][b"imgs"]
    items[7][b"c"] = [0, 0, 0, 0, 0, 0]  # no category; a plain list, as 'c' may be
    items[8][b"c"] = [0, 0, 1, 0, 0, 0]
    d = (lambda k: k) if times else (lambda k: None)
    train = {0: [review(0, 0, d(0)), review(0, 1, d(1)), review(0, 2, d(2))],
             1: [review(1, 3, d(0)), review(1, 4, d(3))],
             2: [review(2, 5, d(1)), review(2, 0, d(2)), review(2, 99, d(3))],  # item 99 is not in Item
             3: [review(3, 6, d(0))],
             4: [review(4, 7, d(0)), review(4, 8, d(1))]}
    valid = {u: [review(u, 9 + u % 3, d(5 + u))] for u in range(5)}
    test = {u: [review(u, 11 - u, d(10 + u))] for u in range(4)}
    test[4] = review(4, 1, d(14))  # a bare dict, not a list of one
    return train, valid, test, items, 5, 12


def write(path: Path, parts=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_release(path, *(parts or release()))
    return path


# ---------------------------------------------------------------------------- the fixture is a Python 2 file

def test_fixture_is_what_python_2_np_save_wrote(tmp_path):
    src = write(tmp_path / FASHION)
    with open(src, "rb") as f:
        assert np.lib.format.read_magic(f) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        assert (shape, fortran, dtype) == ((6,), False, np.dtype(object))
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(f)]
    names = {name for name, _ in ops}
    assert ops[0] == ("PROTO", 2) and {"BINSTRING", "SHORT_BINSTRING"} <= names
    assert not names & {"BINUNICODE", "SHORT_BINBYTES", "BINBYTES", "FRAME"}  # no Python 3 str or bytes
    assert ("GLOBAL", "numpy.core.multiarray _reconstruct") in ops and ("GLOBAL", "_codecs encode") not in ops
    loaded = np.load(src, allow_pickle=True, encoding="bytes")  # numpy's reading of it, for this test only
    assert sorted(loaded[3][0]) == [b"asin", b"c", b"imgs"] and loaded[0][0][0][b"reviewerID"] == b"A0XYZ"


# ---------------------------------------------------------------------------- what becomes what

def test_amazon_fashion_release(tmp_path):
    out = tmp_path / "out"
    report = import_dataset("dvbpr", write(tmp_path / FASHION), out)
    ds = Dataset(out).validate()
    assert ds.name == "amazon-fashion" and ds.has_images

    items = ds.items
    assert list(items.index) == [f"B{i:09d}" for i in range(12)]  # item_id = asin, in index order
    assert items["category"].tolist() == [CATEGORIES[i % 6] for i in range(7)] + ["uncategorized", "Men's Shoes",
                                                                                   "Women's Tops", "Women's Bottoms",
                                                                                   "Women's Shoes"]
    assert items["has_image"].tolist() == [True] * 9 + [False] * 3
    assert json.loads(items["caption"].iloc[3])["Category"] == "Women's Tops"

    images = ds.images
    assert images.shape == (12, 64, 64, 3)
    red = images[0].astype(int)
    assert red[32, 32, 0] > 240 and red[32, 32, 1:].max() < 15  # red in the middle
    assert red[:14].min() > 245 and red[50:].min() > 245  # white bands: 120 x 60 fitted to 64 x 32
    assert images[9:].min() == 255  # garbage, truncated and missing bytes: white
    colour = images[4].astype(int)[32, 32]
    assert abs(colour - [80, 100, 175]).max() < 12  # 50 x 40 scaled to 64 x 51: full width, white bands
    assert images[4][:5].min() > 245 and images[4][32, :2].max() < 200

    assert list(ds.users.index) == [f"A{u}XYZ" for u in range(5)]  # user_id = reviewerID
    inter = ds.interactions
    assert len(inter) == 10 + 5 + 5 and ds.manifest["splits"]["interactions"] == {"train": 10, "valid": 5, "test": 5}
    first = inter[inter.user_id == "A0XYZ"].sort_values("timestamp")
    assert first["item_id"].tolist() == ["B000000000", "B000000001", "B000000002", "B000000009", "B000000011"]
    assert first["split"].tolist() == ["train"] * 3 + ["valid", "test"]
    assert first["timestamp"].iloc[0] == 1_400_000_000  # unixReviewTime
    assert ds.history("A4XYZ", split="test") == ["B000000001"]  # the bare dict

    skipped = ds.manifest["import"]["skipped"]
    assert skipped["review of an item index that is not in Item"]["count"] == 1
    assert "user_train[2][2]: productid 99" in skipped["review of an item index that is not in Item"]["examples"][0]
    undecodable = skipped["item image does not decode: kept, white, has_image false"]
    assert undecodable["count"] == 2 and "row 9" in undecodable["examples"][0] and "0x" not in str(undecodable)
    assert skipped["item without image bytes: kept, white, has_image false"]["count"] == 1
    notes = " ".join(report.notes)
    assert "assumption" in notes and "1 items have no single category" in notes
    assert ds.manifest["dvbpr"]["category_names_assumed"] is True
    assert ds.manifest["dvbpr"]["timestamps"] == "unixReviewTime"


def test_each_jpeg_is_released_from_the_loaded_release(tmp_path, monkeypatch):
    loaded, load_npy = [], dvbpr.load_npy

    def load_and_keep(path, **kwargs):
        loaded.append(load_npy(path, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(dvbpr, "load_npy", load_and_keep)
    import_dataset("dvbpr", write(tmp_path / FASHION), tmp_path / "out")
    items = loaded[0][3]
    assert len(items) == 12 and not any(b"imgs" in entry for entry in items.values())
    assert items[0][b"asin"] == b"B000000000"  # the rest of the entry stays


def test_timestamps_without_unix_time(tmp_path):
    parts = release()
    for split in parts[:3]:
        for records in split.values():
            for r in records if isinstance(records, list) else [records]:
                del r[b"unixReviewTime"]
    import_dataset("dvbpr", write(tmp_path / FASHION, parts), tmp_path / "dates")
    inter = Dataset(tmp_path / "dates").interactions
    assert inter["timestamp"].min() == 1399939200  # '05 13, 2014' at UTC midnight
    assert Dataset(tmp_path / "dates").manifest["dvbpr"]["timestamps"] == "reviewTime"

    report = import_dataset("dvbpr", write(tmp_path / "none" / FASHION, release(times=False)), tmp_path / "order")
    ds = Dataset(tmp_path / "order")
    assert ds.manifest["dvbpr"]["timestamps"] == "order" and any("position" in n for n in report.notes)
    mine = ds.interactions[ds.interactions.user_id == "A1XYZ"]
    assert mine["timestamp"].tolist() == [0, 1, 2, 3] and mine["split"].tolist() == ["train", "train", "valid", "test"]


def test_repeated_asins_and_reviewer_ids_fall_back_to_indexes(tmp_path):
    train, valid, test, items, usernum, itemnum = release()
    items[5][b"asin"] = b"B000000004"
    for records in (train[3], valid[3], test[3]):
        for r in records:
            r[b"reviewerID"] = b"A1XYZ"  # user 3 now shares user 1's reviewerID
    report = import_dataset("dvbpr", write(tmp_path / FASHION, (train, valid, test, items, usernum, itemnum)),
                            tmp_path / "out")
    ds = Dataset(tmp_path / "out").validate()
    assert list(ds.items.index) == [str(i) for i in range(12)] and list(ds.users.index) == ["0", "1", "2", "3", "4"]
    notes = " ".join(report.notes)
    assert "'B000000004' x2" in notes and "reviewerID 'A1XYZ' names user indexes 1, 3" in notes
    assert ds.history("3", split="train") == ["6"]


@pytest.mark.parametrize("change, reason", [
    (lambda train: train[2][1].pop(b"reviewerID"), "1 reviews have no reviewerID"),
    (lambda train: train[2][1].__setitem__(b"reviewerID", b"OTHER"), "user index 2 has several reviewerIDs"),
])
def test_reviewer_ids_that_do_not_name_a_user_fall_back_to_indexes(tmp_path, change, reason):
    parts = release()
    change(parts[0])
    report = import_dataset("dvbpr", write(tmp_path / FASHION, parts), tmp_path / "out")
    assert list(Dataset(tmp_path / "out").validate().users.index) == ["0", "1", "2", "3", "4"]
    assert any(reason in note for note in report.notes)


def test_other_files_name_positions_and_options(tmp_path):
    src = write(tmp_path / "TradesyImgPartitioned.npy")
    import_dataset("dvbpr", src, tmp_path / "tradesy")
    ds = Dataset(tmp_path / "tradesy")
    assert ds.name == "tradesy" and ds.items["category"].iloc[2] == "category 2"
    assert ds.manifest["dvbpr"]["category_names_assumed"] is False

    names = "a,b,c,d,e,f"
    import_dataset("dvbpr", tmp_path, tmp_path / "named", categories=names, name="mine")  # a folder with one file
    named = Dataset(tmp_path / "named")
    assert named.name == "mine" and named.items["category"].iloc[3] == "d"
    with pytest.raises(ValueError, match="6 positions"):
        import_dataset("dvbpr", src, tmp_path / "x", categories="a,b")
    with pytest.raises(TypeError, match="known options: name, categories"):
        import_dataset("dvbpr", src, tmp_path / "x", images="pics")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------- bad files

def test_truncated_file_names_the_file_and_writes_nothing(tmp_path):
    src = write(tmp_path / FASHION)
    data = src.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    for cut in (len(data) // 2, 60):  # in the pickle; in the .npy header
        src.write_bytes(data[:cut])
        with pytest.raises(DatasetError) as e:
            import_dataset("dvbpr", src, out)
        assert e.value.file == FASHION and ("truncated" in e.value.message or "not a .npy" in e.value.message)
        assert (out / "old.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [FASHION, "out"]


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    command = f"touch {marker}".encode()
    payload = (pickle.PROTO + b"\x02" + pickle.GLOBAL + b"os\nsystem\n" + pickle.SHORT_BINSTRING
               + bytes([len(command)]) + command + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)
    pickle.loads(payload, encoding="bytes")  # the payload is live: a plain unpickle runs it
    assert marker.exists()
    marker.unlink()

    src = tmp_path / FASHION
    with open(src, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (6,)})
        f.write(payload)
    with pytest.raises(UnsafePickleError, match="os.system"):
        import_dataset("dvbpr", src, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FASHION]


@pytest.mark.parametrize("break_it, field", [
    (lambda p: p[0][1][0].__setitem__(b"reviewerID", b"\xff\xfeA1"), "user_train[1][0].reviewerID"),
    (lambda p: p[1][2][0].pop(b"productid"), "user_validation[2][0].productid"),
    (lambda p: p[3].__setitem__(4, b"not a dict"), "Item[4]"),
    (lambda p: p[3][6].__setitem__(b"c", np.ones(5)), "Item[6].c"),
    (lambda p: p[0][3][0].__setitem__(b"unixReviewTime", "yesterday"), "user_train[3][0].unixReviewTime"),
])
def test_bad_content_names_file_row_and_field(tmp_path, break_it, field):
    parts = list(release())
    break_it(parts)
    with pytest.raises(DatasetError) as e:
        import_dataset("dvbpr", write(tmp_path / FASHION, parts), tmp_path / "out")
    assert e.value.file == FASHION and e.value.field == field and e.value.row is not None
    assert not (tmp_path / "out").exists()


def test_wrong_top_level_layout(tmp_path):
    parts = release()
    src = tmp_path / FASHION
    array = np.empty(5, dtype=object)
    array[:] = [parts[0], parts[1], parts[2], parts[3], 5]
    with open(src, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": (5,)})
        Py2Pickler(f).dump(array)
    with pytest.raises(DatasetError, match="user_train, user_validation, user_test, Item, usernum, itemnum"):
        import_dataset("dvbpr", src, tmp_path / "out")


# ---------------------------------------------------------------------------- the command line

def test_cli_import(tmp_path):
    src, out = write(tmp_path / FASHION), tmp_path / "ds"
    runner = CliRunner()
    result = runner.invoke(app, ["import", "dvbpr", str(src), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "12 items" in result.output and "skipped 2: item image does not decode" in result.output
    assert Dataset(out).validate().manifest["counts"]["interactions"] == 20
    again = runner.invoke(app, ["import", "dvbpr", str(src), "--out", str(out), "--quiet"])
    assert again.exit_code == 2 and "--force" in again.output
