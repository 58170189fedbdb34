"""Designs with ids: what `modiste design` (and later the app) calls.

>>> result = design(rec_run, gan_run, "u00042", "dress", n=8)        # designs + the best real items
>>> result = design(rec_run, gan_run, "u00042", "dress", item="i01234")   # tailor an item, step by step
>>> picture(result).save("designs.png")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.design.gan import CategoryGAN
from modiste.design.pm import PMConfig, check_dvbpr, maximise_preference, preference_scores, tailor
from modiste.design.train import MODEL, RUN


@dataclass
class DesignRuns:
    ds: Dataset
    rec: object
    gan: CategoryGAN
    user_ids: np.ndarray


def load_runs(rec_run: str | Path, gan_run: str | Path) -> DesignRuns:
    """The DVBPR model, the GAN and their dataset; a ValueError / FileNotFoundError that says what is wrong."""
    from modiste.rec.base import load_model
    from modiste.rec.evaluate import run_dataset, run_spec
    from modiste.rec.train import BEST

    spec = run_spec(rec_run)
    if spec.get("model") != "dvbpr":
        raise ValueError(f"{rec_run} is a run of {spec.get('model') or spec.get('task')!r}; design needs a DVBPR run "
                         "(modiste train rec --model dvbpr)")
    ds = run_dataset(rec_run)
    gan_run = Path(gan_run)
    if not (gan_run / RUN).is_file():
        raise FileNotFoundError(f"{gan_run} is not a GAN run ({RUN} is missing): train one with modiste train gan")
    gan_spec = json.loads((gan_run / RUN).read_text())
    if gan_spec.get("task") != "gan":
        raise ValueError(f"{gan_run} is not a GAN run")
    if gan_spec["data"]["name"] != ds.name:
        raise ValueError(f"the GAN was trained on '{gan_spec['data']['name']}' and the DVBPR run on '{ds.name}'")
    gan = CategoryGAN.load(gan_run / MODEL)
    rec = load_model(Path(rec_run) / BEST)
    check_dvbpr(rec)
    return DesignRuns(ds, rec, gan, ds.users.index.to_numpy())


def user_row(runs: DesignRuns, user_id: str) -> int:
    rows = np.flatnonzero(runs.user_ids == user_id)
    if not len(rows):
        raise KeyError(f"no user {user_id!r} in dataset '{runs.ds.name}'")
    return int(rows[0])


def top_real_items(runs: DesignRuns, user: int, category: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's k best-scored catalogue items of a category (θ_u·Φ), leaving out what they have."""
    ds = runs.ds
    rows = np.flatnonzero(ds.items["category"].to_numpy() == category)
    seen = set(ds.item_rows(ds.interactions.loc[ds.interactions["user_id"] == runs.user_ids[user], "item_id"].to_numpy()).tolist())
    rows = np.array([r for r in rows if r not in seen], dtype=np.int64)
    scores = runs.rec.score([user])[0][rows]
    order = np.argsort(-scores, kind="stable")[:k]
    return rows[order], scores[order]


def design(rec_run: str | Path, gan_run: str | Path, user_id: str, category: str, n: int = 8,
           config: PMConfig | None = None, item: str | None = None, runs: DesignRuns | None = None,
           fit_steps: int = 200) -> dict:
    """New items of a category for a user (or, with `item`, that item tailored to them).

    Returns a dict: user, category, designs (score, realism, objective, start_score each, best
    first) with their `images` (uint8, n x 64 x 64 x 3) beside, the user's best real items of the
    category (`real`), their history in it, and with `item` the tailoring steps.
    """
    runs = runs or load_runs(rec_run, gan_run)
    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    u = user_row(runs, user_id)
    runs.gan.label(category)  # a KeyError naming the known categories
    config = config or PMConfig()
    ds = runs.ds
    out: dict = {"user": user_id, "category": category, "dataset": ds.name, "eta": config.eta, "steps": config.steps}
    if item is not None:
        if item not in ds.items.index:
            raise KeyError(f"no item {item!r} in dataset '{ds.name}'")
        if ds.items.at[item, "category"] != category:
            raise ValueError(f"item {item!r} is a {ds.items.at[item, 'category']}, not a {category}")
        result = tailor(runs.gan, runs.rec, u, np.asarray(ds.images[ds.item_row(item)]), category, config,
                        fit_steps=fit_steps)
        out["tailor"] = {"item_id": item, "item_score": result["item_score"], "fit_loss": result["fit_loss"],
                         "steps": [{k: v for k, v in s.items() if k != "image"} for s in result["steps"]]}
        out["tailor_images"] = np.stack([s["image"] for s in result["steps"]])
        out["item_image"] = np.asarray(ds.images[ds.item_row(item)])
    else:
        d = maximise_preference(runs.gan, runs.rec, [u], [category], n=n, config=config)
        out["designs"] = [{"rank": i + 1, "score": float(d.scores[0, i]), "realism": float(d.realism[0, i]),
                           "objective": float(d.objective[0, i]), "start_score": float(d.start_scores[0, i])}
                          for i in range(n)]
        out["images"] = d.images[0]
    rows, _ = top_real_items(runs, u, category, n)
    real_images = np.asarray(ds.images[rows])
    real_scores = preference_scores(runs.rec, np.full(len(rows), u), real_images)
    out["real"] = [{"item_id": str(ds.items.index[r]), "score": float(s), "description": str(ds.items["description"].iat[r])}
                   for r, s in zip(rows, real_scores)]
    out["real_images"] = real_images
    out["history"] = ds.history(user_id, category)[-10:]
    return out


def to_json(result: dict) -> dict:
    """The result without its pictures."""
    return {k: v for k, v in result.items() if not k.endswith("images") and k != "item_image"}


def picture(result: dict, ds: Dataset):
    """A PIL picture: the designs (or the tailoring steps), the user's best real items, their history."""
    from modiste.viz import contact_sheet, stack

    user, category = result["user"], result["category"]
    sheets = []
    if "tailor" in result:
        t = result["tailor"]
        tiles = [result["item_image"], *result["tailor_images"]]
        labels = [f"catalogue {t['item_id']}: {t['item_score']:.2f}"] + [
            f"step {s['step']}: {s['score']:.2f} (D {s['realism']:.2f})" for s in t["steps"]]
        sheets.append(contact_sheet(tiles, labels, columns=max(len(tiles), 6), label_lines=2,
                                    title=f"{t['item_id']} tailored to {user}: preference theta.Phi at each step of the search "
                                          f"(first tile: the item; step 0: the GAN's closest picture)"))
    else:
        sheets.append(contact_sheet(list(result["images"]),
                                    [f"{d['score']:.2f} (from {d['start_score']:.2f}), D {d['realism']:.2f}"
                                     for d in result["designs"]], columns=max(len(result["images"]), 6), label_lines=2,
                                    title=f"new {category} designs for {user}: preference theta.Phi (at the random start), "
                                          f"realism (D-1)^2"))
    if result.get("real"):
        sheets.append(contact_sheet(list(result["real_images"]), [f"{r['score']:.2f} {r['item_id']}" for r in result["real"]],
                                    columns=max(len(result["real"]), 6), label_lines=2,
                                    title=f"{user}'s best-scored real {category} items (not yet theirs)"))
    history = result.get("history") or []
    if history:
        sheets.append(contact_sheet([ds.images[ds.item_row(i)] for i in history], [str(i) for i in history],
                                    columns=max(len(history), 6), label_lines=1,
                                    title=f"{user}'s latest {len(history)} training {category} items"))
    return stack(sheets)
