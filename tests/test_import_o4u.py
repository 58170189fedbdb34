"""The Outfit4You (O4U) importer, on small record files written as the release writes them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import import_dataset


def record(id, score, items, **labels) -> dict:
    slots = {f"item_{k + 1}": items[k] if k < len(items) else "" for k in range(9)}
    return {"id": id, "score": score, **slots, **labels}


RECORDS = [
    record(1, 4, ["U10", "B20", "S30"], body_figure=" pear , hourglass", skin_color="fair", breasts="medium",
           height="tall"),
    record(2, 5, ["U11", "B20", "G40", "A50"], body_figure="apple", hair_color=None, color_contrast=""),
    record(3, 1, ["U10", "B21"]),  # no labels at all
    record(4, None, ["U12", "S31"], hair_style="long,straight,long"),
    record(5, 3, ["U13", "U13", "B22"]),  # U13 twice: kept once
    {**record(6, 2, ["S32"]), "gender": "female"},  # one item: no outfit; a key the importer does not know
    *(record(10 + k, k % 5 + 1, [f"U{100 + k}", f"B{100 + k}"], skin_color="dark") for k in range(14)),
]


def write_array(path: Path, records=RECORDS) -> Path:
    # the release writes one JSON array; absent labels are simply missing keys
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


def write_lines(path: Path, records=RECORDS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_records_become_outfits_of_one_user_each(tmp_path):
    src = write_array(tmp_path / "o4u" / "o4u.json")
    out = tmp_path / "out"
    report = import_dataset("o4u", src.parent, out)
    ds = Dataset(out).validate()

    kept = [r for r in RECORDS if r["id"] != 6]
    assert len(ds.outfits) == len(ds.users) == len(kept) == 19
    outfits = ds.outfits.set_index("outfit_id")
    assert list(outfits.loc["2", "item_ids"]) == ["U11", "B20", "G40", "A50"]
    assert list(outfits.loc["2", "categories"]) == ["top", "bottom", "bag", "accessory"]
    assert list(outfits.loc["5", "item_ids"]) == ["U13", "B22"]
    assert outfits.loc["1", "user_id"] == "o4u-1"
    assert ds.items.loc["S30", "category"] == "shoes" and ds.items.loc["G40", "category"] == "bag"
    assert "S32" not in ds.items.index  # only in the skipped one-item record
    assert "has_image" not in ds.items and not ds.has_images

    # body labels, normalised; breasts is not a schema field and is dropped (noted, counted in the manifest)
    users = ds.users
    assert users.loc["o4u-1", "body_figure"] == "hourglass,pear"
    assert users.loc["o4u-1", "skin_color"] == "fair" and users.loc["o4u-1", "height"] == "tall"
    assert users.loc["o4u-4", "hair_style"] == "long,straight"
    assert pd.isna(users.loc["o4u-2", "hair_color"]) and pd.isna(users.loc["o4u-2", "color_contrast"])
    assert users.loc["o4u-3"][["body_figure", "skin_color", "hair_style"]].isna().all()
    assert "breasts" not in users.columns
    body = ds.manifest["o4u"]["body_labels"]
    assert body["breasts"] == {"records": 1, "labels": {"medium": 1}, "kept": False}
    assert body["skin_color"]["labels"] == {"dark": 14, "fair": 1}
    assert any("'breasts'" in n for n in report.notes)
    assert "record keys not imported: gender (1)" in report.notes

    # interactions: the record's user with each of its items, at the record's position, in its outfit's split
    inter = ds.interactions
    assert len(inter) == sum(len(ids) for ids in ds.outfits["item_ids"]) == 3 + 4 + 2 + 2 + 2 + 28
    mine = inter[inter["user_id"] == "o4u-2"]
    assert list(mine["item_id"]) == ["U11", "B20", "G40", "A50"] and set(mine["timestamp"]) == {1}
    split_of = dict(zip(ds.outfits["user_id"], ds.outfits["split"]))
    assert (inter["split"] == inter["user_id"].map(split_of)).all()
    assert ds.manifest["splits"]["outfits"] == {"train": 15, "valid": 2, "test": 2}  # 80/10/10 of 19

    # the scores' distribution, with the record without one counted
    score = ds.manifest["o4u"]["score"]
    assert score["count"] == 18 and score["missing"] == 1 and score["min"] == 1 and score["max"] == 5
    assert sum(score["values"].values()) == 18 and score["values"]["5"] == 1 + 2

    skipped = ds.manifest["import"]["skipped"]
    assert skipped["record with fewer than 2 items (no outfit)"]["count"] == 1
    assert "o4u.json row 5" in skipped["record with fewer than 2 items (no outfit)"]["examples"][0]
    assert skipped["item listed twice in one record (kept once)"]["count"] == 1


def test_json_lines_give_the_same_dataset_and_the_split_follows_the_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    import_dataset("o4u", write_array(tmp_path / "array.json"), a)
    import_dataset("o4u", write_lines(tmp_path / "lines" / "records.jsonl"), b)
    import_dataset("o4u", tmp_path / "lines", c, file="records.jsonl", seed=7)
    da, db, dc = (Dataset(p).validate() for p in (a, b, c))
    assert da.outfits.equals(db.outfits) and da.users.equals(db.users)
    assert list(da.outfits["split"]) != list(dc.outfits["split"])
    assert dc.manifest["o4u"]["split"]["seed"] == 7


def test_images_from_a_folder(tmp_path):
    src = write_array(tmp_path / "o4u.json", RECORDS[:3])
    images = tmp_path / "images"
    images.mkdir()
    for item in ("U10", "B20", "S30", "U11", "G40", "A50"):
        buffer = io.BytesIO()
        Image.new("RGB", (80, 40), (0, 160, 0)).save(buffer, "JPEG")
        (images / f"{item}.jpg").write_bytes(buffer.getvalue())
    (images / "A50.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    import_dataset("o4u", src, out, images=images)
    ds = Dataset(out).validate()
    green = ds.images[ds.item_row("U10")]
    assert green[32, 32, 1] > 120 and green[32, 32, 0] < 60 and (green[2, 32] > 240).all()  # wide: white top
    assert list(ds.items.loc[~ds.items["has_image"]].index) == ["A50", "B21"]
    skipped = ds.manifest["import"]["skipped"]
    assert skipped["item image missing (left white)"]["count"] == 1  # B21
    assert "A50.jpg" in skipped["item image does not decode (left white)"]["examples"][0]


BAD = [
    # (text of the file, row, field, words)
    ('[{"id": 1, "item_1": "U1", "item_2": "B1"},\n {"id": 2, "item_1": "U2", "item_2": ',
     None, None, "line 2"),
    ('{"id": 1, "item_1": "U1", "item_2": "B1"}\n\n{"id": 2, "item_1": "U2" "item_2": "B2"}\n', 2, None, "column"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1"}, {"id": 2, "item_1": "U2", "item_2": "X9"}]', 1, "item_2",
     "unknown type prefix 'X'"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1"}, {"id": 1, "item_1": "U2", "item_2": "B2"}]', 1, "id",
     "duplicate id '1' (also at row 0)"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1", "item_1": "U3"}]', 0, "item_1", "twice"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1", "score": "great"}]', 0, "score", "number"),
    ('[{"id": 1, "item_1": "U1", "item_2": 7}]', 0, "item_2", "string"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1", "height": {"cm": 170}}]', 0, "height", "labels"),
    ('[{"item_1": "U1", "item_2": "B1"}]', 0, "id", "id must be"),
    ('[{"id": 1, "item_1": "U1", "item_2": "B1"}, [1, 2]]', 1, None, "JSON object"),
]


@pytest.mark.parametrize("text, row, field, words", BAD, ids=["truncated", "bad-line", "prefix", "duplicate-id",
                                                              "duplicate-key", "score", "item-type", "label-type",
                                                              "no-id", "not-object"])
def test_bad_records_name_file_row_field_and_write_nothing(tmp_path, text, row, field, words):
    src = tmp_path / "o4u.json"
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as caught:
        import_dataset("o4u", src, out)
    assert (caught.value.file, caught.value.row, caught.value.field) == ("o4u.json", row, field)
    assert words in str(caught.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["o4u.json"]


def test_not_utf8_and_an_old_output_survives(tmp_path):
    out = tmp_path / "out"
    import_dataset("o4u", write_array(tmp_path / "good" / "o4u.json"), out)
    before = (out / "outfits.parquet").read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'[{"id": 1, "item_1": "U1", "item_2": "B1", "hair_color": "bl\xe9"}]')
    with pytest.raises(DatasetError, match="not UTF-8") as caught:
        import_dataset("o4u", bad, out)
    assert caught.value.file == "bad.json"
    assert (out / "outfits.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "good", "out"]


def test_source_folder_and_options(tmp_path):
    folder = tmp_path / "src"
    write_array(folder / "a.json")
    write_lines(folder / "b.jsonl")
    with pytest.raises(DatasetError, match="a.json, b.jsonl.*--set file=NAME"):
        import_dataset("o4u", folder, tmp_path / "out")
    with pytest.raises(DatasetError, match="missing"):
        import_dataset("o4u", folder, tmp_path / "out", file="c.json")
    with pytest.raises(TypeError, match="'version'.*file, images, seed, workers"):
        import_dataset("o4u", folder, tmp_path / "out", version="x")
    only_singles = [record(1, 3, ["U1"]), record(2, 3, ["B1"])]
    with pytest.raises(DatasetError, match="no record has an outfit"):
        import_dataset("o4u", write_array(tmp_path / "singles.json", only_singles), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path):
    src = write_lines(tmp_path / "o4u" / "o4u.jsonl")
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["import", "o4u", str(src.parent), "--out", str(out), "--quiet",
                                      "--set", "seed=3"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "19 users" in output and "19 outfits" in output and "breasts" in output
    assert Dataset(out).validate().manifest["o4u"]["split"]["seed"] == 3

    bad = CliRunner().invoke(app, ["import", "o4u", str(src.parent), "--out", str(tmp_path / "x"), "--quiet",
                                   "--set", "file=nope.json"])
    assert bad.exit_code == 2 and "nope.json" in bad.output and not (tmp_path / "x").exists()
