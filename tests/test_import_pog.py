"""The POG importer on a small copy of the release's layout: item_data.txt, outfit_data.txt and
user_data.txt without headers, Chinese UTF-8 titles, and a local picture folder named by item_id."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import import_dataset


def hid(kind: str, i: int | str) -> str:
    """A 32-hex id, as the release's anonymised ids look."""
    return hashlib.md5(f"{kind} {i}".encode()).hexdigest()


I = [hid("item", i) for i in range(10)]
O = [hid("outfit", i) for i in range(5)]
U = [hid("user", i) for i in range(3)]
UNKNOWN_ITEM = hid("item", "gone")
CATES = ["50010850", "162104", "50000671", "50011740", "50010850", "162104", "50012027", "50000671", "50011740",
         "50010850"]
TITLES = ["2019夏季新款韩版碎花连衣裙", "白色衬衫女长袖,宽松百搭", '纯棉短袖T恤"ins"风', "小白鞋女百搭",
          "法式复古方领连衣裙", "条纹衬衫", "高腰阔腿牛仔裤", "", "帆布鞋", "吊带裙"]


def write_release(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    items = [f"{I[k]},{CATES[k]},http://img.alicdn.com/bao/uploaded/i{k % 4}/TB2item{k}.jpg,{TITLES[k]}"
             for k in range(10)]
    (root / "item_data.txt").write_text("\n".join(items) + "\n", encoding="utf-8")
    outfits = [
        f"{O[0]},{I[0]};{I[1]};{I[2]}",
        f"{O[1]},{I[3]};{I[4]}",
        f"{O[2]},{I[5]};{UNKNOWN_ITEM}",  # an item that is not in item_data: skipped
        f"{O[3]},{I[6]}",                 # one item is no outfit: skipped
        f"{O[4]},{I[7]};{I[8]};{I[9]}",
    ]
    (root / "outfit_data.txt").write_text("\n".join(outfits) + "\n", encoding="utf-8")
    users = [
        f"{U[0]},{I[0]};{I[1]};{I[2]};{I[3]};{I[1]},{O[0]}",  # clicks i1 twice
        f"{U[1]},{I[4]};{I[5]},{O[1]}",
        f"{U[2]},{I[6]};{UNKNOWN_ITEM};{I[7]};{I[8]},{O[2]}",  # an unknown item; an outfit that was skipped
        "",
        f"{U[0]},{I[9]};{I[0]},{O[4]};{O[1]}",  # the same user again, two outfits on one line
    ]
    (root / "user_data.txt").write_text("\n".join(users) + "\n", encoding="utf-8")
    return root


def write_pictures(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 80), (220, 20, 30)).save(folder / f"{I[0]}.jpg", quality=95)
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((20, 40, 200, 255), (16, 16, 48, 48))
    rgba.save(folder / f"{I[1]}.png")
    (folder / "more").mkdir(exist_ok=True)
    Image.new("RGB", (80, 40), (30, 160, 60)).save(folder / "more" / f"{I[2]}.jpg", quality=95)
    (folder / "notes.txt").write_text("not a picture")
    return folder


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Dataset:
    base = tmp_path_factory.mktemp("pog")
    root = write_release(base / "pog")
    import_dataset("pog", root, base / "out", images=write_pictures(base / "pictures"))
    return Dataset(base / "out").validate()


def test_items_keep_ids_categories_and_chinese_titles(imported):
    items = imported.items
    assert list(items.index) == I
    assert items.loc[I[0], "category"] == "50010850"
    assert items.loc[I[1], "description"] == "白色衬衫女长袖,宽松百搭"  # a comma inside the title
    assert items.loc[I[2], "description"] == '纯棉短袖T恤"ins"风'
    assert items.loc[I[7], "description"] == "50000671"  # no title: the category
    assert json.loads(items.loc[I[3], "caption"])["Category"] == "50011740"
    assert sorted(imported.manifest["categories"]) == sorted(set(CATES))


def test_pictures_are_fitted_and_missing_ones_counted(imported):
    has = imported.items["has_image"]
    assert list(has[has].index) == I[:3]
    assert imported.manifest["items_without_image"] == 7
    missing = imported.manifest["import"]["skipped"]["item image missing (left white)"]
    assert missing["count"] == 7 and missing["examples"][0] == f"pictures/: item {I[3]}"
    red = imported.images[0]
    assert red[32, 32, 0] > 180 and red[32, 32, 1] < 70 and (red[32, 2] == 255).all()
    png = imported.images[1]
    assert (png[4, 4] == 255).all() and png[32, 32, 2] > 160  # transparent corner on white
    green = imported.images[2]
    assert green[32, 32, 1] > 120 and (green[3, 32] == 255).all()  # found in a sub-folder
    assert (imported.images[5] == 255).all()


def test_outfits_are_shared_and_bad_ones_skipped(imported):
    outfits = imported.outfits
    assert list(outfits["outfit_id"]) == [O[0], O[1], O[4]]
    assert outfits["user_id"].isna().all() and set(outfits["split"]) == {"train"}
    assert list(outfits.iloc[0]["item_ids"]) == I[:3]
    assert list(outfits.iloc[0]["categories"]) == CATES[:3]
    skipped = imported.manifest["import"]["skipped"]
    assert skipped["outfit with an item not in item_data.txt"]["count"] == 1
    assert skipped["outfit with an item not in item_data.txt"]["examples"] == [
        f"outfit_data.txt: row 2: item_id {UNKNOWN_ITEM}"]
    assert skipped["outfit with fewer than 2 items"]["count"] == 1
    assert imported.manifest["user_outfit_clicks"] == 4  # the click on a skipped outfit is not one


def test_clicks_become_leave_one_out_interactions(imported):
    df = imported.interactions
    assert list(imported.users.index) == U
    skipped = imported.manifest["import"]["skipped"]
    assert skipped["click on an item not in item_data.txt"]["count"] == 1
    assert skipped["click on an item not in item_data.txt"]["examples"] == [
        f"user_data.txt: row 2: item_id {UNKNOWN_ITEM}"]
    assert skipped["repeated click on an item by the same user (kept once, at its latest click)"]["count"] == 2
    assert skipped["click on an outfit not kept from the outfit file"]["count"] == 1
    assert skipped["blank line"]["count"] == 1
    # User 0, over two lines: i0 i1 i2 i3 i1 | i9 i0 -> distinct at their latest: i2 i3 i1 i9 i0.
    u0 = df[df.user_id == U[0]].sort_values("timestamp")
    assert list(u0["item_id"]) == [I[2], I[3], I[1], I[9], I[0]]
    assert list(u0["split"]) == ["train", "train", "train", "valid", "test"]
    u2 = df[df.user_id == U[2]].sort_values("timestamp")
    assert list(u2["item_id"]) == [I[6], I[7], I[8]] and list(u2["split"]) == ["train", "valid", "test"]
    assert set(df[df.user_id == U[1]]["split"]) == {"train"}  # two items: all train
    assert len(df) == 10 and imported.manifest["splits"]["interactions"] == {"train": 6, "valid": 2, "test": 2}
    assert imported.history(U[0]) == [I[2], I[3], I[1]]


def test_user_outfits_option_adds_personal_rows(tmp_path):
    root = write_release(tmp_path / "src")
    import_dataset("pog", root, tmp_path / "out", user_outfits=True, repeats="all")
    ds = Dataset(tmp_path / "out").validate()
    personal = ds.outfits[ds.outfits["user_id"].notna()]
    assert list(personal["outfit_id"]) == [f"{O[0]}@{U[0]}", f"{O[4]}@{U[0]}", f"{O[1]}@{U[0]}", f"{O[1]}@{U[1]}"]
    assert list(personal["split"]) == ["train", "valid", "test", "train"]
    assert list(personal.iloc[1]["item_ids"]) == I[7:10]
    assert len(ds.interactions) == 12  # repeats="all": every known click
    assert not ds.has_images and ds.manifest["import"]["missing"][0]["file"] == "images"


def test_other_file_names_and_missing_optional_files(tmp_path):
    root = write_release(tmp_path / "src")
    (root / "item_data.txt").rename(root / "item_info.txt")
    (root / "user_data.txt").rename(root / "clicks.txt")
    import_dataset("pog", root, tmp_path / "a", user_file="clicks.txt")
    assert len(Dataset(tmp_path / "a").validate().interactions) == 10
    (root / "clicks.txt").unlink()
    (root / "outfit_data.txt").unlink()
    import_dataset("pog", root, tmp_path / "b")
    ds = Dataset(tmp_path / "b").validate()
    assert len(ds.items) == 10 and len(ds.users) == 0 and len(ds.outfits) == 0
    assert [m["file"] for m in ds.manifest["import"]["missing"]] == ["outfit_data.txt", "user_data.txt", "images"]


def _fails(root: Path, out: Path, **options) -> DatasetError:
    with pytest.raises(DatasetError) as e:
        import_dataset("pog", root, out, **options)
    return e.value


def _replace_line(path: Path, k: int, line: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[k] = line
    path.write_bytes(b"\n".join(lines))


def test_non_utf8_title_names_file_row_and_field_and_leaves_no_output(tmp_path):
    root = write_release(tmp_path / "src")
    _replace_line(root / "item_data.txt", 4, f"{I[4]},{CATES[4]},http://x/4.jpg,".encode() + "连衣裙".encode("gbk"))
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("item_data.txt", 4, "title") and "not UTF-8" in str(e)
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_non_utf8_in_a_click_list(tmp_path):
    root = write_release(tmp_path / "src")
    _replace_line(root / "user_data.txt", 1, f"{U[1]},{I[4]};".encode() + b"\xb0\xa1" + f",{O[1]}".encode())
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("user_data.txt", 1, "item_ids")


def test_duplicate_ids_name_both_rows(tmp_path):
    root = write_release(tmp_path / "src")
    _replace_line(root / "item_data.txt", 6, f"{I[2]},{CATES[6]},http://x/6.jpg,重复".encode())
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("item_data.txt", 6, "item_id") and "also at row 2" in str(e)
    root = write_release(tmp_path / "src2")
    _replace_line(root / "outfit_data.txt", 4, f"{O[1]},{I[7]};{I[8]}".encode())
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("outfit_data.txt", 4, "outfit_id") and "also at row 1" in str(e)


def test_a_line_without_a_user(tmp_path):
    root = write_release(tmp_path / "src")
    _replace_line(root / "user_data.txt", 1, f",{I[4]};{I[5]},{O[1]}".encode())
    e = _fails(root, tmp_path / "out")
    assert (e.file, e.row, e.field) == ("user_data.txt", 1, "user_id")


def test_truncated_files_name_the_row_and_leave_an_old_output_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("the previous import")
    root = write_release(tmp_path / "src")
    data = (root / "item_data.txt").read_bytes()
    (root / "item_data.txt").write_bytes(data[: data.index(I[9].encode()) + 40])  # cut in the last line's cate_id
    e = _fails(root, out)
    assert (e.file, e.row, e.field) == ("item_data.txt", 9, "pic_url") and "truncated" in str(e)
    root = write_release(tmp_path / "src2")
    _replace_line(root / "user_data.txt", 2, f"{U[2]},{I[6]},{O[2]},{I[7]}".encode())  # a fourth field
    e = _fails(root, out)
    assert (e.file, e.row) == ("user_data.txt", 2)
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_missing_item_file_missing_picture_folder_and_unknown_option(tmp_path):
    root = write_release(tmp_path / "src")
    e = _fails(root, tmp_path / "out", images=tmp_path / "nowhere")
    assert e.file == str(tmp_path / "nowhere")
    (root / "item_data.txt").unlink()
    e = _fails(root, tmp_path / "out")
    assert e.file == "item_data.txt" and "missing" in str(e)
    with pytest.raises(TypeError, match="known options: images, item_file"):
        import_dataset("pog", root, tmp_path / "out", image_dir="x")


def test_broken_picture_is_left_white_and_counted(tmp_path):
    root = write_release(tmp_path / "src")
    pictures = write_pictures(tmp_path / "pictures")
    (pictures / f"{I[1]}.png").write_bytes(b"\x89PNG cut short")
    import_dataset("pog", root, tmp_path / "out", images=pictures, workers=2)
    ds = Dataset(tmp_path / "out").validate()
    broken = ds.manifest["import"]["skipped"]["item image does not decode (left white)"]
    assert broken["count"] == 1 and broken["examples"][0].startswith(f"pictures/{I[1]}.png: ")
    assert list(ds.items["has_image"][ds.items["has_image"]].index) == [I[0], I[2]]
    assert (ds.images[1] == 255).all() and ds.manifest["items_without_image"] == 8
    with pytest.raises(TypeError, match="unknown option 'bad_images'"):
        import_dataset("pog", root, tmp_path / "out2", images=pictures, bad_images="skip")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        import_dataset("pog", root, tmp_path / "out2", images=pictures, workers=0)


def test_cli_imports_once(tmp_path):
    root = write_release(tmp_path / "src")
    pictures = write_pictures(tmp_path / "pictures")
    result = CliRunner().invoke(app, ["import", "pog", str(root), "--out", str(tmp_path / "out"), "--quiet",
                                      "--images", str(pictures), "--set", "user_outfits=true"])
    assert result.exit_code == 0, result.output
    assert "10 items, 3 users, 10 interactions, 7 outfits" in " ".join(result.output.split())  # rich wraps lines
    ds = Dataset(tmp_path / "out").validate()
    assert ds.has_images and pd.Series(ds.outfits["user_id"]).notna().sum() == 4
