"""The dataset format: a good dataset opens; each kind of bad input gives one clear error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modiste.data import Dataset, DatasetError


def read(path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def write(df: pd.DataFrame, path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def error(path) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        Dataset(path).validate()
    return info.value


def test_the_tiny_world_opens_and_matches_its_manifest(tiny_world):
    ds = Dataset(tiny_world).validate()
    counts = ds.manifest["counts"]
    assert (len(ds.items), len(ds.users), len(ds.interactions), len(ds.outfits)) == (
        counts["items"], counts["users"], counts["interactions"], counts["outfits"])
    assert ds.images.shape == (len(ds.items), 64, 64, 3) and ds.images.dtype == np.uint8
    assert ds.person_images.shape == (len(ds.persons), 128, 64, 3)
    assert ds.person_masks.shape == (len(ds.persons), 128, 64)
    assert set(ds.attributes) == {"color", "pattern", "material", "silhouette", "design", "style"}
    caption = json.loads(ds.items["caption"].iat[0])
    assert list(caption) == ["Category", "Color", "Pattern", "Material", "Silhouette", "Design", "Style"]


def test_lookups(tiny_world):
    ds = Dataset(tiny_world)
    item = ds.items.index[7]
    assert ds.item_row(item) == 7
    assert list(ds.item_rows([ds.items.index[3], item])) == [3, 7]
    with pytest.raises(KeyError, match="no item 'nope'"):
        ds.item_row("nope")
    user = ds.users.index[0]
    history = ds.history(user)
    assert history and all(ds.items.loc[i, "category"] for i in history)
    tops = ds.history(user, category="top")
    assert set(tops) <= set(history) and all(ds.items.loc[i, "category"] == "top" for i in tops)


def test_opening_is_lazy(world_copy):
    (world_copy / "items.parquet").write_bytes(b"not parquet")
    ds = Dataset(world_copy)  # only the manifest is read here
    with pytest.raises(DatasetError, match="items.parquet: not a readable Parquet file"):
        ds.items


def test_a_dataset_without_images_is_valid(world_copy):
    (world_copy / "images.npy").unlink()
    manifest = json.loads((world_copy / "manifest.json").read_text())
    manifest["has_images"] = False
    (world_copy / "manifest.json").write_text(json.dumps(manifest))
    ds = Dataset(world_copy).validate()
    with pytest.raises(DatasetError, match="has no images"):
        ds.images


def test_missing_file(world_copy):
    (world_copy / "users.parquet").unlink()
    e = error(world_copy)
    assert e.file == "users.parquet" and "missing" in str(e)


def test_missing_directory(tmp_path):
    with pytest.raises(DatasetError, match="not a dataset directory"):
        Dataset(tmp_path / "nothing-here")


def test_missing_column(world_copy):
    path = world_copy / "items.parquet"
    write(read(path).drop(columns=["category"]), path)
    e = error(world_copy)
    assert (e.file, e.field) == ("items.parquet", "category") and "missing" in e.message


def test_missing_attribute_column(world_copy):
    path = world_copy / "items.parquet"
    write(read(path).drop(columns=["style"]), path)
    assert error(world_copy).field == "style"


def test_wrong_dtype(world_copy):
    path = world_copy / "interactions.parquet"
    df = read(path)
    df["timestamp"] = df["timestamp"].astype(str)
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.field) == ("interactions.parquet", "timestamp") and "expected integer" in e.message


def test_duplicate_id(world_copy):
    path = world_copy / "items.parquet"
    df = read(path)
    df.loc[5, "item_id"] = df.loc[2, "item_id"]
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("items.parquet", 5, "item_id")
    assert "duplicate" in e.message and "row 2" in e.message


def test_interaction_with_an_unknown_item(world_copy):
    path = world_copy / "interactions.parquet"
    df = read(path)
    df.loc[17, "item_id"] = "i99999"
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("interactions.parquet", 17, "item_id") and "'i99999'" in e.message


def test_interaction_with_an_unknown_user(world_copy):
    path = world_copy / "interactions.parquet"
    df = read(path)
    df.loc[3, "user_id"] = "stranger"
    write(df, path)
    assert (error(world_copy).row, error(world_copy).field) == (3, "user_id")


def test_outfit_with_an_unknown_item(world_copy):
    path = world_copy / "outfits.parquet"
    df = read(path)
    df.at[9, "item_ids"] = [df.at[9, "item_ids"][0], "ghost", *df.at[9, "item_ids"][2:]]
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("outfits.parquet", 9, "item_ids") and "'ghost'" in e.message


def test_outfit_category_that_is_not_the_items(world_copy):
    path = world_copy / "outfits.parquet"
    df = read(path)
    cats = list(df.at[4, "categories"])
    cats[1] = "dress" if cats[1] != "dress" else "top"
    df.at[4, "categories"] = cats
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("outfits.parquet", 4, "categories")


def test_bad_split(world_copy):
    path = world_copy / "interactions.parquet"
    df = read(path)
    df.loc[11, "split"] = "holdout"
    write(df, path)
    e = error(world_copy)
    assert (e.row, e.field) == (11, "split") and "'holdout'" in e.message


def test_null_in_a_required_column(world_copy):
    path = world_copy / "items.parquet"
    df = read(path)
    df["category"] = df["category"].astype(object)
    df.loc[6, "category"] = None
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("items.parquet", 6, "category")


@pytest.mark.parametrize("caption, fragment", [
    ("{not json", "not valid JSON"),
    ('{"Category": "top"}', "exactly the keys"),
    ('["top"]', "exactly the keys"),
])
def test_bad_caption(world_copy, caption, fragment):
    path = world_copy / "items.parquet"
    df = read(path)
    df.loc[8, "caption"] = caption
    write(df, path)
    e = error(world_copy)
    assert (e.row, e.field) == (8, "caption") and fragment in e.message


def test_corrupt_parquet(world_copy):
    (world_copy / "outfits.parquet").write_bytes(b"PAR1 garbage")
    e = error(world_copy)
    assert e.file == "outfits.parquet" and "not a readable Parquet file" in e.message


def test_images_of_the_wrong_shape(world_copy):
    n = len(read(world_copy / "items.parquet"))
    np.save(world_copy / "images.npy", np.zeros((n, 32, 32, 3), np.uint8))
    e = error(world_copy)
    assert (e.file, e.field) == ("images.npy", "shape") and "(32, 32, 3)" in e.message


def test_images_of_the_wrong_count(world_copy):
    np.save(world_copy / "images.npy", np.zeros((3, 64, 64, 3), np.uint8))
    e = error(world_copy)
    assert (e.file, e.field) == ("images.npy", "shape") and "3 images" in e.message


def test_images_of_the_wrong_dtype(world_copy):
    n = len(read(world_copy / "items.parquet"))
    np.save(world_copy / "images.npy", np.zeros((n, 64, 64, 3), np.float32))
    e = error(world_copy)
    assert (e.file, e.field) == ("images.npy", "dtype")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_images_that_do_not_decode(world_copy, damage):
    path = world_copy / "images.npy"
    if damage == "garbage":
        path.write_bytes(b"\x00\x01 this is not an array")
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    e = error(world_copy)
    assert e.file == "images.npy" and "does not decode" in e.message


def test_mask_with_an_unknown_label(world_copy):
    masks = np.load(world_copy / "person_masks.npy")
    masks[4, 10, 10] = 42
    np.save(world_copy / "person_masks.npy", masks)
    e = error(world_copy)
    assert (e.file, e.row) == ("person_masks.npy", 4) and "42" in e.message


def test_manifest_that_is_not_json(world_copy):
    (world_copy / "manifest.json").write_text('{"name": "x",\n  oops}')
    e = error(world_copy)
    assert e.file == "manifest.json" and "line 2" in e.message


def test_manifest_without_a_required_key(world_copy):
    manifest = json.loads((world_copy / "manifest.json").read_text())
    del manifest["license"]
    (world_copy / "manifest.json").write_text(json.dumps(manifest))
    assert (error(world_copy).file, error(world_copy).field) == ("manifest.json", "license")


def test_manifest_of_a_future_schema(world_copy):
    manifest = json.loads((world_copy / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (world_copy / "manifest.json").write_text(json.dumps(manifest))
    assert "not supported" in error(world_copy).message


def test_manifest_counts_that_disagree(world_copy):
    manifest = json.loads((world_copy / "manifest.json").read_text())
    manifest["counts"]["items"] += 1
    (world_copy / "manifest.json").write_text(json.dumps(manifest))
    e = error(world_copy)
    assert (e.file, e.field) == ("manifest.json", "counts.items")


def test_fitb_answer_not_among_candidates(world_copy):
    path = world_copy / "fitb.parquet"
    df = read(path)
    answer = df.at[2, "answer"]
    other = next(a for a in df["answer"] if a != answer)
    df.at[2, "candidates"] = [c for c in df.at[2, "candidates"] if c != answer] + [other]
    write(df, path)
    e = error(world_copy)
    assert (e.file, e.row, e.field) == ("fitb.parquet", 2, "answer")


def test_errors_name_file_row_and_field_in_their_text(world_copy):
    path = world_copy / "items.parquet"
    df = read(path)
    df.loc[5, "item_id"] = df.loc[2, "item_id"]
    write(df, path)
    assert str(error(world_copy)).startswith("items.parquet, row 5, field 'item_id': duplicate id")
