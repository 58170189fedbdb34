"""The Polyvore Outfits importer, on a small release written in the real layout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from modiste.cli import app
from modiste.data.dataset import Dataset
from modiste.data.errors import DatasetError
from modiste.data.importers import import_dataset

# item id -> (semantic_category, title, description, url_name); "999" is in the metadata but no outfit uses it
ITEMS = {
    "11": ("tops", "silk blouse", "", "silk-blouse"),
    "12": ("bottoms", "", "wide leg trousers", "trousers"),
    "13": ("shoes", "", "", "red-pumps"),
    "14": ("bags", "tote", "", ""),
    "21": ("tops", "tee", "", ""),
    "22": ("bottoms", "jeans", "", ""),
    "23": ("shoes", "sneakers", "", ""),
    "31": ("all-body", "slip dress", "", ""),
    "32": ("shoes", "sandals", "", ""),
    "33": ("jewellery", "hoops", "", ""),
    "41": ("outerwear", "trench", "", ""),
    "42": ("bottoms", "skirt", "", ""),
    "43": ("shoes", "boots", "", ""),
    "51": ("tops", "knit", "", ""),
    "52": ("bottoms", "chinos", "", ""),
    "53": ("hats", "beret", "", ""),
    "61": ("tops", "shirt", "", ""),
    "62": ("bottoms", "shorts", "", ""),
    "999": ("scarves", "unused scarf", "", ""),
}
# the nondisjoint splits: set_id -> [(item_id, index)]; indices need not be 1..n
NONDISJOINT = {
    "train": {"100": [("11", 1), ("12", 2), ("13", 3)], "101": [("21", 1), ("22", 2), ("14", 4)]},
    "valid": {"200": [("31", 1), ("32", 2), ("33", 3)], "201": [("23", 1), ("14", 2), ("53", 3)]},
    "test": {"300": [("41", 1), ("42", 2), ("43", 3)], "301": [("51", 1), ("52", 2), ("53", 3)],
             "302": [("61", 1), ("62", 2), ("11", 3)]},
}
DISJOINT = {
    "train": {"900": [("11", 1), ("12", 2)]},
    "valid": {"901": [("21", 1), ("22", 2)]},
    "test": {"902": [("31", 1), ("32", 2)], "903": [("41", 1), ("42", 2)]},
}


def jpeg(color, size=(40, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def write_metadata(root: Path, items=ITEMS) -> None:
    metadata = {i: {"url_name": url, "description": desc, "catgeories": ["Women's Fashion", "Clothing"],
                    "title": title, "related": ["a", "b"], "category_id": "104", "semantic_category": category}
                for i, (category, title, desc, url) in items.items()}
    (root / "polyvore_item_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")


def write_release(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_metadata(root)
    (root / "polyvore_outfit_titles.json").write_text(json.dumps({"100": {"url_name": "x", "title": "y"}}))
    for version, splits in (("nondisjoint", NONDISJOINT), ("disjoint", DISJOINT)):
        folder = root / version
        folder.mkdir()
        for split, outfits in splits.items():
            data = [{"items": [{"item_id": i, "index": k} for i, k in items], "set_id": s}
                    for s, items in outfits.items()]
            (folder / f"{split}.json").write_text(json.dumps(data))
        # would blow up if anything tried to unpickle it
        (folder / "typespaces.p").write_bytes(b"cos\nsystem\n(S'echo never'\ntR.")
    fitb_test = [
        # truth (300_2) is not the first answer; the blank goes back at position 2
        {"question": ["300_1", "300_3"], "answers": ["301_2", "300_2", "302_2", "301_1"], "blank_position": 2},
        # truth first, the blank at the end
        {"question": ["301_1", "301_2"], "answers": ["301_3", "300_1", "302_1", "300_3"], "blank_position": 3},
        # blank_position past the end: clamped; and the question lists the items in another order than the outfit
        {"question": ["302_2", "302_1"], "answers": ["300_1", "302_3", "301_1", "301_3"], "blank_position": 9},
        # no answer from the question's outfit: skipped
        {"question": ["300_1", "300_2"], "answers": ["301_1", "301_2", "302_1", "302_2"], "blank_position": 3},
    ]
    fitb_valid = [{"question": ["200_2", "200_3"], "answers": ["200_1", "201_1", "201_2", "201_3"],
                   "blank_position": 1}]
    (root / "nondisjoint" / "fill_in_blank_test.json").write_text(json.dumps(fitb_test))
    (root / "nondisjoint" / "fill_in_blank_valid.json").write_text(json.dumps(fitb_valid))
    (root / "nondisjoint" / "compatibility_test.txt").write_text(
        "1 300_1 300_2 300_3\n0 300_1 301_2 302_3\n1 302_1 302_2 302_3\n")
    (root / "nondisjoint" / "compatibility_valid.txt").write_text("1 200_1 200_2 200_3\n0 200_1 999_1\n")
    images = root / "images"
    images.mkdir()
    for i in ITEMS:
        if i not in ("13", "22"):
            (images / f"{i}.jpg").write_bytes(jpeg((255, 0, 0)))
    (images / "22.jpg").write_bytes(jpeg((0, 0, 255))[:300])  # truncated download; 13.jpg is missing
    return root


@pytest.fixture
def release(tmp_path) -> Path:
    return write_release(tmp_path / "polyvore_outfits")


def test_nondisjoint_release_becomes_a_valid_dataset(release, tmp_path):
    out = tmp_path / "out"
    report = import_dataset("polyvore-outfits", release, out)
    ds = Dataset(out).validate()
    assert ds.name == "polyvore-outfits-nondisjoint"

    # items: only what the version references (not "999"), in the metadata's order, semantic categories
    expected_ids = [i for i in ITEMS if i != "999"]
    assert list(ds.items.index) == expected_ids
    assert ds.items.loc["41", "category"] == "outerwear" and ds.items.loc["31", "category"] == "all-body"
    assert ds.items.loc["11", "description"] == "silk blouse"  # title
    assert ds.items.loc["12", "description"] == "wide leg trousers"  # then description
    assert ds.items.loc["13", "description"] == "red-pumps"  # then url_name
    assert json.loads(ds.items.loc["14", "caption"])["Category"] == "bags"
    assert ds.attributes == []

    # outfits with their splits, no users
    outfits = ds.outfits.set_index("outfit_id")
    assert sorted(outfits.index) == ["100", "101", "200", "201", "300", "301", "302"]
    assert list(outfits.loc["101", "item_ids"]) == ["21", "22", "14"]
    assert list(outfits.loc["101", "categories"]) == ["tops", "bottoms", "bags"]
    assert outfits.loc["200", "split"] == "valid" and outfits.loc["302", "split"] == "test"
    assert outfits["user_id"].isna().all()
    assert len(ds.users) == 0 and len(ds.interactions) == 0
    assert ds.manifest["splits"]["outfits"] == {"train": 2, "valid": 2, "test": 3}

    # FITB: the truth is the answer of the question's own outfit, wherever it stands in the list
    fitb = ds.fitb.set_index("question_id")
    assert list(fitb.index) == ["fitb-valid-0", "fitb-test-0", "fitb-test-1", "fitb-test-2"]
    q = fitb.loc["fitb-test-0"]
    assert q["answer"] == "42" and list(q["candidates"]) == ["52", "42", "62", "51"]
    assert q["outfit_id"] == "300" and q["blank_index"] == 1 and q["kind"] == "release" and q["split"] == "test"
    assert fitb.loc["fitb-test-1", "answer"] == "53" and fitb.loc["fitb-test-1", "blank_index"] == 2
    assert fitb.loc["fitb-valid-0", "answer"] == "31" and fitb.loc["fitb-valid-0", "blank_index"] == 0
    # the outfit holds the answer at blank_index, and the rest is the question's items
    for _, q in fitb.iterrows():
        outfit = list(outfits.loc[q["outfit_id"], "item_ids"])
        assert outfit[q["blank_index"]] == q["answer"]
    # question 2 lists 302's items as 62, 61 with blank_position 9 (clamped to the end): the outfit is
    # 61, 62, 11, so the blank follows the outfit's order and the reorder is counted
    assert fitb.loc["fitb-test-2", "answer"] == "11" and fitb.loc["fitb-test-2", "blank_index"] == 2
    assert ds.manifest["fitb_reordered"] == 1
    skipped = ds.manifest["import"]["skipped"]
    assert skipped["FITB question without exactly one answer from the question's outfit"]["count"] == 1

    # compatibility questions, resolved; the one with an unknown reference is skipped and counted
    compat = pq.read_table(out / "compatibility.parquet").to_pandas()
    assert list(compat["question_id"]) == ["compat-valid-0", "compat-test-0", "compat-test-1", "compat-test-2"]
    assert [list(x) for x in compat["item_ids"]][2] == ["41", "52", "11"]
    assert list(compat["label"]) == [1, 1, 0, 1] and list(compat["split"]) == ["valid", "test", "test", "test"]
    assert skipped["compatibility reference to no item of valid.json"]["count"] == 1
    assert ds.manifest["compatibility"]["questions"] == {"train": 0, "valid": 1, "test": 3}

    # images: fitted on white; missing and corrupt ones left white and counted
    red = ds.images[ds.item_row("11")]
    assert red[32, 32, 0] > 200 and red[32, 32, 1] < 60  # red in the middle
    assert (red[32, 2] > 240).all()  # a tall image leaves white margins left and right
    assert not ds.items.loc["13", "has_image"] and not ds.items.loc["22", "has_image"]
    assert ds.items["has_image"].sum() == len(expected_ids) - 2
    assert (ds.images[ds.item_row("22")] == 255).all()
    assert skipped["item image missing (left white)"]["count"] == 1
    corrupt = skipped["item image does not decode (left white)"]
    assert corrupt["count"] == 1 and "22.jpg" in corrupt["examples"][0]

    notes = " ".join(report.notes)
    assert "typespaces.p" in notes and "polyvore_outfit_titles.json" in notes
    assert report.counts["fitb"] == 4


def test_disjoint_version(release, tmp_path):
    out = tmp_path / "out"
    import_dataset("polyvore-outfits", release, out, version="disjoint", images=release / "images")
    ds = Dataset(out).validate()
    assert ds.name == "polyvore-outfits-disjoint"
    assert sorted(ds.outfits["outfit_id"]) == ["900", "901", "902", "903"]
    assert sorted(ds.items.index) == ["11", "12", "21", "22", "31", "32", "41", "42"]
    assert ds.fitb is None and not (out / "compatibility.parquet").exists()
    lacking = {m["file"] for m in ds.manifest["import"]["missing"]}
    assert "disjoint/fill_in_blank_test.json" in lacking and "disjoint/compatibility_valid.txt" in lacking


def test_outfit_with_an_item_missing_from_metadata_is_skipped_with_its_questions(release, tmp_path):
    write_metadata(release, {k: v for k, v in ITEMS.items() if k != "43"})  # outfit 300 loses an item
    out = tmp_path / "out"
    import_dataset("polyvore-outfits", release, out, workers=1)
    ds = Dataset(out).validate()
    assert "300" not in set(ds.outfits["outfit_id"]) and "43" not in ds.items.index
    skipped = ds.manifest["import"]["skipped"]
    assert skipped["outfit with an item missing from the metadata"]["count"] == 1
    assert "set 300, item 43" in skipped["outfit with an item missing from the metadata"]["examples"][0]
    assert skipped["FITB question on an outfit that was skipped"]["count"] == 1  # fitb-test-0
    assert skipped["compatibility outfit with an item missing from the metadata"]["count"] == 1
    assert "fitb-test-0" not in set(ds.fitb["question_id"])


def test_question_whose_items_are_not_the_outfit_is_skipped(release, tmp_path):
    path = release / "nondisjoint" / "fill_in_blank_test.json"
    questions = json.loads(path.read_text())
    questions[0]["question"] = ["300_1"]  # 300 has three items: the question drops one besides the blank
    path.write_text(json.dumps(questions))
    out = tmp_path / "out"
    import_dataset("polyvore-outfits", release, out)
    skipped = Dataset(out).validate().manifest["import"]["skipped"]
    assert skipped["FITB question plus its answer is not the held-out outfit"]["count"] == 1


def _corrupt(release: Path, name: str, content: bytes) -> None:
    (release / name).write_bytes(content)


BAD_INPUTS = [
    # (file to write, content, file named in the error, row, field, words in the message)
    ("nondisjoint/train.json", b'[{"set_id": "100", "items": [{"item_id": "11", "ind',
     "nondisjoint/train.json", None, None, "line 1"),
    ("polyvore_item_metadata.json",
     b'{"11": {"semantic_category": "tops", "title": "a"},\n "12": {"semantic_category": "bottoms"},\n'
     b' "11": {"semantic_category": "shoes"}}',
     "polyvore_item_metadata.json", 2, "item_id", "duplicate item id '11'"),
    ("polyvore_item_metadata.json", b'{"11": {"semantic_category": "tops", "title": "caf\xe9"}}',
     "polyvore_item_metadata.json", None, None, "not UTF-8"),
    ("nondisjoint/valid.json", b'[{"set_id": "200", "items": [{"item_id": "31", "index": "x"}]}]',
     "nondisjoint/valid.json", 0, "items[0].index", "integer"),
    ("nondisjoint/test.json", json.dumps([{"set_id": "300", "items": [{"item_id": "41", "index": 1}]},
                                          {"set_id": "300", "items": [{"item_id": "42", "index": 2}]}]).encode(),
     "nondisjoint/test.json", 1, "set_id", "duplicate set_id '300'"),
    ("nondisjoint/compatibility_test.txt", b"1 300_1 300_2\nyes 300_1 300_3\n",
     "nondisjoint/compatibility_test.txt", 1, "label", "0 or 1"),
    ("nondisjoint/fill_in_blank_test.json", b'[{"question": ["300_1"], "answers": ["300_2"], "blank_position": null}]',
     "nondisjoint/fill_in_blank_test.json", 0, "blank_position", "integer"),
]


@pytest.mark.parametrize("name, content, file, row, field, words", BAD_INPUTS,
                         ids=["truncated-json", "duplicate-item-id", "not-utf8", "bad-index", "duplicate-set",
                              "bad-label", "bad-blank-position"])
def test_bad_input_names_file_row_field_and_writes_nothing(release, tmp_path, name, content, file, row, field,
                                                           words):
    _corrupt(release, name, content)
    out = tmp_path / "out"
    with pytest.raises(DatasetError) as caught:
        import_dataset("polyvore-outfits", release, out)
    error = caught.value
    assert (error.file, error.row, error.field) == (file, row, field)
    assert words in str(error)
    assert not out.exists() and list(tmp_path.iterdir()) == [release]


def test_missing_split_file_or_category_is_an_error_and_an_old_output_survives(release, tmp_path):
    out = tmp_path / "out"
    import_dataset("polyvore-outfits", release, out)
    before = (out / "manifest.json").read_bytes()

    (release / "nondisjoint" / "valid.json").unlink()
    with pytest.raises(DatasetError, match="missing") as caught:
        import_dataset("polyvore-outfits", release, out)
    assert caught.value.file == "nondisjoint/valid.json"

    write_release(tmp_path / "again")
    metadata = json.loads((tmp_path / "again" / "polyvore_item_metadata.json").read_text())
    del metadata["42"]["semantic_category"]
    metadata["42"]["title"] = "no type"
    (tmp_path / "again" / "polyvore_item_metadata.json").write_text(json.dumps(metadata))
    # without semantic_category the record is not trimmed, and the error names the entry and field
    with pytest.raises(DatasetError) as caught:
        import_dataset("polyvore-outfits", tmp_path / "again", out)
    assert (caught.value.row, caught.value.field) == (list(ITEMS).index("42"), "semantic_category")
    assert (out / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "out", "polyvore_outfits"]


def test_options_are_checked(release, tmp_path):
    with pytest.raises(TypeError, match="'split'.*version, images, workers"):
        import_dataset("polyvore-outfits", release, tmp_path / "out", split="disjoint")
    with pytest.raises(ValueError, match="nondisjoint, disjoint"):
        import_dataset("polyvore-outfits", release, tmp_path / "out", version="both")
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        import_dataset("polyvore-outfits", release, tmp_path / "out", workers=0)
    with pytest.raises(DatasetError, match="image folder does not exist"):
        import_dataset("polyvore-outfits", release, tmp_path / "out", images=tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def test_cli(release, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["import", "polyvore-outfits", str(release), "--out", str(out), "--quiet",
                                      "--set", "version=disjoint"])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "4 outfits" in output and "typespaces.p" in output
    assert Dataset(out).validate().name == "polyvore-outfits-disjoint"
