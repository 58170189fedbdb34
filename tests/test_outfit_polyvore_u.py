"""The outfit tasks on a slice of the real Polyvore-U (DiFashion's release in ../shared, when present).

The slice keeps the first 60 users and everything of theirs, written back in the release's exact
layout, so the importer and the outfit code see real ids, real categories and real histories.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modiste.data import Dataset, safe_pickle
from modiste.data.importers import import_dataset
from modiste.outfit.baselines import category_scorer, random_scorer
from modiste.outfit.candidates import questions_for
from modiste.outfit.data import OutfitData
from modiste.outfit.evaluate import fitb_accuracy, model_fitb_scorer
from modiste.outfit.train import train_outfit

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "polyvore-u"
N_USERS = 60

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="the real Polyvore-U release is not in ../shared/data/polyvore-u")


def _save(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array(obj, dtype=object), allow_pickle=True)


def slice_release(src: Path, dst: Path, users: set[int]) -> Path:
    """The release restricted to `users`, file by file, in the release's own layout."""
    load = lambda name: safe_pickle.load_npy(src / name).item()  # noqa: E731
    oids = set()
    for name in ("train.npy", "valid_grd_dict.npy", "test_grd_dict.npy", "fitb_valid.npy", "fitb_test.npy"):
        flat = load(name)  # {'uids': [...], 'oids': [...], 'outfits': [...], 'category': [...]}
        keep = [r for r, u in enumerate(flat["uids"]) if u in users]
        oids |= {flat["oids"][r] for r in keep}
        _save(dst / name, {key: [values[r] for r in keep] for key, values in flat.items()})
    for split in ("valid", "test"):
        grd = load(f"{split}_grd.npy")
        _save(dst / f"{split}_grd.npy", {o: v for o, v in grd.items() if o in oids})
        for name in (f"fitb_{split}_dict.npy", f"fitb_{split}_retrieval_candidates.npy"):
            _save(dst / name, {u: v for u, v in load(name).items() if u in users})
    for name in ("train_history.npy", "valid_history.npy", "test_history.npy"):
        _save(dst / name, {u: v for u, v in load(name).items() if u in users})
    for name in ("id_cate_dict.npy", "map/iid_cate_dict.npy", "map/cate_iid_dict.npy"):
        _save(dst / name, load(name))
    return dst


@pytest.fixture(scope="module")
def polyvore_slice(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("polyvore-u")
    src = slice_release(REAL, root / "release", set(range(N_USERS)))
    import_dataset("difashion", src, root / "dataset")
    return root / "dataset"


def test_the_slice_keeps_the_releases_shape(polyvore_slice):
    ds = Dataset(polyvore_slice).validate()
    assert len(ds.users) == N_USERS
    assert set(ds.fitb["kind"]) == {"release"}
    assert ds.histories is not None and len(ds.histories)


def test_hard_sets_are_reproducible_and_share_the_blanks_category(polyvore_slice):
    ds = Dataset(polyvore_slice)
    hard = questions_for(ds, "test", "hard")
    again = questions_for(Dataset(polyvore_slice), "test", "hard")
    assert hard.equals(again)
    release = questions_for(ds, "test", "release").set_index("question_id")
    assert len(hard) == len(release)  # every category of the slice has more than one item
    category = ds.items["category"]
    test_items = set(np.concatenate(ds.outfits.loc[ds.outfits["split"] == "test", "item_ids"].to_numpy()))
    for q in hard.itertuples():
        own = release.loc[q.question_id.removesuffix("-hard")]
        assert (q.answer, q.blank_index, q.user_id) == (own.answer, own.blank_index, own.user_id)
        negatives = [c for c in q.candidates if c != q.answer]
        assert len(negatives) == 4 and len(set(negatives)) == 4
        assert all(category[c] == category[q.answer] for c in negatives)
        outfit = ds.outfits.set_index("outfit_id").at[q.outfit_id, "item_ids"]
        assert not set(negatives) & set(outfit)
        # Drawn from the other test outfits' items; from the whole category only where those run out.
        available = {i for i in test_items if category[i] == category[q.answer]} - set(outfit)
        assert sum(c in test_items for c in negatives) == min(4, len(available))


def test_the_model_trains_on_real_ids_and_beats_chance(polyvore_slice, tmp_path):
    model = train_outfit(polyvore_slice, tmp_path / "run", train_overrides={"epochs": 3, "threads": 1}, progress=False)
    data = OutfitData(Dataset(polyvore_slice))
    q = data.questions("test", "release")
    mine = fitb_accuracy(model_fitb_scorer(model, data)(q), q.candidates, q.answer)
    chance = fitb_accuracy(random_scorer()(q), q.candidates, q.answer)
    category = fitb_accuracy(category_scorer(data)(q), q.candidates, q.answer)
    # Only 7% of the release's negatives share the blank's category: the model must learn that much.
    assert mine > chance + 0.4
    assert mine > category - 0.05
