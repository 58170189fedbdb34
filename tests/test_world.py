"""The synthetic world: deterministic, internally consistent, and its oracle far above chance."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from modiste.data import Dataset
from modiste.data.world import rules
from modiste.data.world import taxonomy as T
from modiste.data.world.describe import description
from modiste.data.world.generate import PRESETS, generate_world
from modiste.data.world.oracle import Oracle
from modiste.eval.ranking import HeldOut, evaluate_ranking


def digests(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_world(tiny_world, tmp_path):
    again = generate_world(tmp_path / "again", preset="tiny", seed=0, progress=False, processes=2)
    assert digests(again) == digests(tiny_world)  # also with the drawing split over processes
    other = generate_world(tmp_path / "other", preset="tiny", seed=1, progress=False)
    differ = {k for k, v in digests(other).items() if digests(tiny_world)[k] != v}
    assert {"items.parquet", "images.npy", "interactions.parquet"} <= differ


def test_presets_have_the_promised_sizes():
    assert PRESETS["tiny"].n_users == 200 and PRESETS["tiny"].n_items == 1_000
    assert PRESETS["small"].n_users == 2_000 and PRESETS["small"].n_items == 8_000
    assert PRESETS["default"].n_users == 10_000 and PRESETS["default"].n_items == 40_000
    assert PRESETS["default"].n_outfits >= 20_000


def test_items_cover_the_vocabulary(tiny_world):
    items = Dataset(tiny_world).items
    assert set(items["category"]) == set(T.CATEGORIES)
    assert len(set(items["color"])) >= 12
    assert set(items["pattern"]) == set(T.PATTERNS) and set(items["style"]) == set(T.STYLES)
    for cat, group in items.groupby("category"):
        assert set(group["silhouette"]) <= set(T.SILHOUETTES[cat]) and set(group["design"]) <= set(T.DESIGNS[cat])


def test_pictures_are_items_on_white(tiny_world):
    images = Dataset(tiny_world).images
    corners = images[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners > 240).all()  # white background
    drawn = (images < 235).any(axis=3).mean(axis=(1, 2))
    assert drawn.min() > 0.02  # every picture shows something
    assert len({hashlib.md5(im.tobytes()).digest() for im in images}) == len(images)  # no two alike


def test_descriptions_say_what_the_caption_says(tiny_world):
    items = Dataset(tiny_world).items
    for row in items.head(50).itertuples():
        caption = json.loads(row.caption)
        assert caption["Color"] in row.description.lower() and caption["Style"] in row.description.lower()
    for cat in T.CATEGORIES:  # every design value of every category can be phrased
        for design in T.DESIGNS[cat]:
            attrs = {"color": "red", "pattern": "dots", "material": "silk", "silhouette": T.SILHOUETTES[cat][0],
                     "design": design, "style": "boho"}
            assert description(cat, attrs, 0)


def test_leave_one_out_by_time(tiny_world):
    df = Dataset(tiny_world).interactions
    per_user = df.groupby("user_id")["split"].value_counts().unstack(fill_value=0)
    assert (per_user["test"] == 1).all() and (per_user["valid"] == 1).all() and (per_user["train"] >= 2).all()
    for _, group in df.groupby("user_id"):
        latest = group.sort_values("timestamp")["split"].tolist()
        assert latest[-2:] == ["valid", "test"]
    assert not df.duplicated(["user_id", "item_id"]).any()


def test_cold_items_exist_but_are_not_everything(tiny_world):
    share = Dataset(tiny_world).manifest["cold_test_share"]
    assert 0.05 < share < 0.6


def test_outfits_take_one_item_per_slot(tiny_world):
    ds = Dataset(tiny_world)
    compat = rules.CompatibilityRules()
    codes = rules.item_codes({k: ds.items[k].to_numpy() for k in ("category",) + T.ATTRIBUTES})
    outfits = ds.outfits
    assert (outfits["item_ids"].map(len) == 4).all()
    clashes = [compat.slot_clashes(codes, ds.item_rows(ids)) for ids in outfits["item_ids"]]
    assert np.mean(np.array(clashes) == 0) > 0.99


def test_the_oracle_beats_chance_by_a_wide_margin(tiny_world):
    figures = Dataset(tiny_world).manifest["oracle"]
    assert figures["ranking"]["auc"] > 0.85  # chance: 0.5
    assert figures["ranking"]["recall@50"] > 0.5  # chance: 50 / 1000
    assert figures["fitb"]["pfitb_hard"] > 0.7 and figures["fitb"]["fitb_random"] > 0.7  # chance: 0.2
    assert figures["compatibility_auc"] > 0.85


def test_the_saved_oracle_gives_the_manifests_figures(tiny_world):
    ds = Dataset(tiny_world)
    oracle = Oracle.load(tiny_world)
    df = ds.interactions
    users = ds.users.index.get_indexer(df["user_id"])
    held = HeldOut.from_rows(len(ds.users), len(ds.items), users, ds.item_rows(df["item_id"]), df["split"].to_numpy())
    assert evaluate_ranking(oracle.interaction_logits, held)["auc"] == pytest.approx(
        ds.manifest["oracle"]["ranking"]["auc"], abs=1e-4)
    random_auc = evaluate_ranking(lambda u: np.random.default_rng(0).random((len(u), len(ds.items))), held)["auc"]
    assert abs(random_auc - 0.5) < 0.05


def test_users_like_what_they_chose(tiny_world):
    ds = Dataset(tiny_world)
    oracle = Oracle.load(tiny_world)
    user = 0
    mine = ds.item_rows(ds.history(ds.users.index[user]))
    utility = oracle.utility(user)[0]
    assert utility[mine].mean() > utility.mean() + 1.0


def test_compatibility_prefers_real_outfits_to_clashing_ones(tiny_world):
    ds = Dataset(tiny_world)
    oracle = Oracle.load(tiny_world)
    real = ds.item_rows(ds.outfits["item_ids"].iat[0])
    two_pairs_of_shoes = np.array(real)
    shoes = ds.item_rows(ds.items.index[ds.items["category"] == "shoes"][:2])
    two_pairs_of_shoes[:2] = shoes
    assert oracle.compatibility(real) > oracle.compatibility(two_pairs_of_shoes) + 2


def test_suitability_follows_the_body_rules(tiny_world):
    ds = Dataset(tiny_world)
    oracle = Oracle.load(tiny_world)
    items = ds.items
    body = {"body_figure": "hourglass", "skin_color": "medium", "hair_style": "bob", "hair_color": "brown",
            "height": "middle", "color_contrast": "medium"}
    fitted = ds.item_rows(items.index[(items["silhouette"] == "fitted") & (items["color"] == "grey")][:1])
    oversized = ds.item_rows(items.index[(items["silhouette"] == "oversized") & (items["color"] == "grey")][:1])
    assert oracle.suitability(body, fitted) > oracle.suitability(body, oversized)
    tonal = ds.item_rows(items.index[items["color"] == "grey"][:4])
    contrasted = ds.item_rows(np.r_[items.index[items["color"] == "black"][:2], items.index[items["color"] == "white"][:2]])
    high = {**body, "color_contrast": "high"}
    low = {**body, "color_contrast": "low"}
    assert oracle.suitability(high, contrasted) > oracle.suitability(high, tonal)
    assert oracle.suitability(low, tonal) > oracle.suitability(low, contrasted)


def test_persons_have_avatars_with_masks_of_every_part(tiny_world):
    ds = Dataset(tiny_world)
    assert ds.persons["user_id"].isin(ds.users.index).all()
    masks = ds.person_masks
    for p in range(0, len(masks), 17):
        assert set(np.unique(masks[p])) == set(range(7))
    white = (ds.person_images == 255).all(axis=3)
    assert (white == (masks == 0)).mean() > 0.999
    user = ds.users.loc[ds.persons["user_id"].iat[0]]
    assert user["body_figure"] == ds.persons["body_figure"].iat[0]
