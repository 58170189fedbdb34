"""Generate a synthetic fashion world: items, users with hidden tastes, interactions, outfits, persons.

The world is drawn in this order, each stage from its own seeded random stream (so a stage's
output does not depend on how many numbers another stage drew):

1. items: attributes, an unnamed continuous "look", popularity and quality; a picture each;
2. users: taste weights over attribute values (a few strong likes and dislikes), a taste for
   the look, category affinities, and a body profile whose suitability enters their utility;
3. interactions: each user draws their items without replacement from softmax(interaction
   logits) by the Gumbel-top-k trick, in random order over time; the latest goes to test,
   the one before to valid (leave-one-out, as in the DVBPR paper);
4. outfits: a user fills a 4-slot template from popularity-sampled candidates, by Gibbs sampling
   from exp(compatibility weight x pair compatibility + utility / temperature);
5. fill-in-the-blank questions over valid and test outfits, with random and same-category
   negatives; persons (avatars with parse masks) for a subset of users;
6. the oracle's own figures on the test split, written into the manifest as the ceiling.

Same preset and seed, same bytes.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.lib.format import open_memmap

from modiste.data import schema
from modiste.data.dataset import Dataset
from modiste.data.world import rules
from modiste.data.world import taxonomy as T
from modiste.data.world.avatar import draw_avatar
from modiste.data.world.describe import caption, description
from modiste.data.world.draw import LOOK_DIM, ItemSpec, draw_item
from modiste.data.world.oracle import Oracle, OracleParams
from modiste.eval.ranking import HeldOut, auc_score, evaluate_ranking
from modiste.io import atomic_path, write_json
from modiste.progress import Progress


@dataclass(frozen=True)
class WorldConfig:
    n_users: int
    n_items: int
    n_outfits: int
    n_persons: int
    median_interactions: float = 22.0  # per user, before the minimum of 4 is added
    tribes: int = 16  # style tribes: users of a tribe share much of their taste
    outfit_pool: int = 200  # candidates a user considers per outfit slot


PRESETS = {
    "tiny": WorldConfig(n_users=200, n_items=1_000, n_outfits=800, n_persons=100),
    "small": WorldConfig(n_users=2_000, n_items=8_000, n_outfits=5_000, n_persons=500),
    "default": WorldConfig(n_users=10_000, n_items=40_000, n_outfits=22_000, n_persons=2_000),
}

_STREAMS = {"items": 1, "users": 2, "interactions": 3, "outfits": 4, "fitb": 5, "persons": 6, "images": 7}
_COLOR_SHARE = {"black": 0.12, "white": 0.10, "grey": 0.08, "navy": 0.08, "beige": 0.07}
_PATTERN_SHARE = (0.45, 0.15, 0.13, 0.12, 0.15)
_STYLE_SHARE = (0.32, 0.18, 0.17, 0.17, 0.16)
_HEIGHT_SHARE = (0.25, 0.5, 0.25)
_EPOCH = 1_672_531_200  # 2023-01-01, the world's first day


def generate_world(out: str | Path, preset: str = "default", seed: int = 0, progress: bool = True,
                   processes: int | None = None) -> Path:
    """Write the world of a preset and seed to `out` (replaced atomically if it exists)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    out = Path(out)

    def rng(stream: str) -> np.random.Generator:
        return np.random.default_rng([seed, _STREAMS[stream]])

    with Progress(enabled=progress) as bar, atomic_path(out) as tmp:
        tmp.mkdir()
        attrs, look = _draw_item_attributes(cfg, rng("items"))
        oracle, bodies = _draw_truth(cfg, attrs, look, rng("items"), rng("users"))
        interactions = _draw_interactions(cfg, oracle, rng("interactions"), bar)
        outfits = _compose_outfits(cfg, oracle, attrs, interactions, rng("outfits"), bar)
        fitb = _fitb_questions(outfits, attrs, rng("fitb"))
        items = _items_table(attrs)
        users = pd.DataFrame({"user_id": _ids("u", cfg.n_users), **bodies})
        persons = users.iloc[: cfg.n_persons].rename_axis(None).copy()
        persons.insert(0, "person_id", _ids("p", cfg.n_persons))

        _draw_images(tmp / schema.IMAGES, attrs, look, seed, bar, processes)
        _draw_avatars(tmp, persons, seed, bar)
        figures = _oracle_figures(oracle, interactions, outfits, fitb, items, attrs, rng("fitb"), bar)

        tables = {schema.ITEMS: items, schema.USERS: users, schema.INTERACTIONS: _named(interactions, items, users),
                  schema.OUTFITS: outfits, schema.FITB: fitb, schema.PERSONS: persons}
        for name, df in tables.items():
            _write_parquet(tmp / name, df)
        oracle.save(tmp)
        write_json(tmp / schema.MANIFEST, _manifest(preset, seed, cfg, tables, figures))
        bar.step("checking the dataset")
        Dataset(tmp).validate()
    return out


# ---------------------------------------------------------------------------- items

def _draw_item_attributes(cfg: WorldConfig, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = cfg.n_items
    shares = np.array([T.CATEGORY_SHARE[c] for c in T.CATEGORIES])
    category = np.array(T.CATEGORIES)[rng.choice(len(T.CATEGORIES), size=n, p=shares / shares.sum())]
    color_p = np.array([_COLOR_SHARE.get(c, 0.0) for c in T.COLORS])
    rest = [i for i, c in enumerate(T.COLORS) if c not in _COLOR_SHARE]
    color_p[rest] = (1 - color_p.sum()) / len(rest)
    attrs = {
        "category": category,
        "color": np.array(T.COLORS)[rng.choice(len(T.COLORS), size=n, p=color_p)],
        "pattern": np.array(T.PATTERNS)[rng.choice(len(T.PATTERNS), size=n, p=_PATTERN_SHARE)],
        "material": np.array(T.MATERIALS)[rng.integers(len(T.MATERIALS), size=n)],
        "style": np.array(T.STYLES)[rng.choice(len(T.STYLES), size=n, p=_STYLE_SHARE)],
    }
    silhouette = np.empty(n, dtype=object)
    design = np.empty(n, dtype=object)
    for c in T.CATEGORIES:
        rows = np.flatnonzero(category == c)
        silhouette[rows] = np.array(T.SILHOUETTES[c])[rng.integers(len(T.SILHOUETTES[c]), size=len(rows))]
        design[rows] = np.array(T.DESIGNS[c])[rng.integers(len(T.DESIGNS[c]), size=len(rows))]
    attrs["silhouette"], attrs["design"] = silhouette.astype(str), design.astype(str)
    look = np.clip(rng.normal(size=(n, LOOK_DIM)), -2.5, 2.5).astype(np.float32)
    return attrs, look


def _items_table(attrs: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(attrs["category"])
    per_item = [{a: attrs[a][i] for a in T.ATTRIBUTES} for i in range(n)]
    cats = attrs["category"]
    return pd.DataFrame({
        "item_id": _ids("i", n),
        "category": cats,
        **{a: attrs[a] for a in T.ATTRIBUTES},
        "caption": [caption(cats[i], per_item[i]) for i in range(n)],
        "description": [description(cats[i], per_item[i], variant=i * 7919 % 3) for i in range(n)],
    })


# ---------------------------------------------------------------------------- users

def _draw_truth(cfg, attrs, look, item_rng, user_rng) -> tuple[Oracle, dict[str, np.ndarray]]:
    """Users' hidden tastes: a shared trend, the taste of their style tribe, and their own."""
    n = cfg.n_users
    tribes = user_rng.integers(cfg.tribes, size=n)
    trend = _taste_weights(1, user_rng, scale=0.3, likes=0.0)[0]
    weights = (trend + _taste_weights(cfg.tribes, user_rng, scale=1.0, likes=1.0)[tribes]
               + _taste_weights(n, user_rng, scale=0.5, likes=0.6))
    tribe_look = user_rng.normal(0, 0.45, (cfg.tribes, LOOK_DIM))
    user_look = (tribe_look[tribes] + user_rng.normal(0, 0.25, (n, LOOK_DIM))).astype(np.float32)

    bodies = {}
    for field, values in T.BODY_VALUES.items():
        p = _HEIGHT_SHARE if field == "height" else None
        bodies[field] = np.array(values)[user_rng.choice(len(values), size=n, p=p)]

    tensors = {
        "user_weights": weights,
        "user_look": user_look,
        "user_body": rules.body_features(bodies),
        "suit_rules": rules.suitability_rules(),
        "item_features": rules.item_features(attrs),
        "item_look": look,
        "item_quality": item_rng.normal(0, 0.3, cfg.n_items).astype(np.float32),
        "item_log_pop": item_rng.normal(0, 1.0, cfg.n_items).astype(np.float32),
    }
    tensors |= {f"code_{k}": v for k, v in rules.item_codes(attrs).items()}
    return Oracle(OracleParams(), tensors), bodies


def _taste_weights(n: int, rng: np.random.Generator, scale: float, likes: float) -> np.ndarray:
    """(n, n_features) weights over attribute values: random preferences of each attribute's
    typical spread, times `scale`, plus strong likes and dislikes times `likes` (two favourite
    colours, one hated colour, one favourite style)."""
    vocab = rules.feature_vocabulary()
    spread = {"category": 0.7, "color": 0.5, "pattern": 0.6, "material": 0.4, "silhouette": 0.5, "design": 0.5,
              "style": 0.4}
    weights = np.zeros((n, len(vocab)), np.float32)
    columns = {a: np.array([j for j, (attr, _) in enumerate(vocab) if attr == a]) for a in spread}
    for a, cols in columns.items():
        weights[:, cols] = rng.normal(0, scale * spread[a], (n, len(cols)))
    rows = np.arange(n)
    picks = np.argsort(rng.random((n, len(columns["color"]))), axis=1)
    weights[rows, columns["color"][picks[:, 0]]] += 1.3 * likes
    weights[rows, columns["color"][picks[:, 1]]] += 1.0 * likes
    weights[rows, columns["color"][picks[:, 2]]] -= 1.5 * likes
    weights[rows, columns["style"][rng.integers(len(columns["style"]), size=n)]] += 1.3 * likes
    return weights


# ---------------------------------------------------------------------------- interactions

def _draw_interactions(cfg: WorldConfig, oracle: Oracle, rng: np.random.Generator, bar: Progress) -> pd.DataFrame:
    """Rows (user, item, timestamp, split) as integer rows, leave-one-out by time."""
    n = cfg.n_users
    counts = 4 + np.round(rng.lognormal(np.log(cfg.median_interactions), 0.8, n)).astype(np.int64)
    counts = np.minimum(counts, cfg.n_items // 4)
    users, items = [], []
    chunk = 256
    for start in bar.track(range(0, n, chunk), "drawing interactions", total=-(-n // chunk)):
        rows = np.arange(start, min(start + chunk, n))
        logits = oracle.interaction_logits(rows)
        keys = logits + rng.gumbel(size=logits.shape)  # Gumbel-top-k: sampling without replacement
        k = int(counts[rows].max())
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
        for r, u in enumerate(rows):
            chosen = top[r][np.argsort(-keys[r, top[r]])][: counts[u]]
            users.append(np.full(len(chosen), u))
            items.append(rng.permutation(chosen))  # the order in which the user met them
    users, items = np.concatenate(users), np.concatenate(items)
    # Timestamps: each user starts on some day of two years and returns every few days.
    starts = rng.integers(0, 2 * 365 * 86_400, n)
    gaps = rng.exponential(3 * 86_400, len(users)).astype(np.int64) + 60
    first = np.cumsum(counts) - counts  # where each user's run of interactions begins
    running = np.cumsum(gaps)
    offsets = running - np.repeat(running[first] - gaps[first], counts)  # the user's own gaps, summed
    timestamps = _EPOCH + starts[users] + offsets
    position_from_end = np.repeat(counts - 1, counts) - (np.arange(len(users)) - np.repeat(first, counts))
    split = np.where(position_from_end == 0, "test", np.where(position_from_end == 1, "valid", "train"))
    return pd.DataFrame({"user": users, "item": items, "timestamp": timestamps, "split": split})


def _named(interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": users["user_id"].to_numpy()[interactions["user"].to_numpy()],
        "item_id": items["item_id"].to_numpy()[interactions["item"].to_numpy()],
        "timestamp": interactions["timestamp"].astype(np.int64),
        "split": interactions["split"],
    })


# ---------------------------------------------------------------------------- outfits

def _compose_outfits(cfg, oracle: Oracle, attrs, interactions: pd.DataFrame, rng, bar: Progress) -> pd.DataFrame:
    params = oracle.params
    category = attrs["category"]
    slot_items = {s: np.flatnonzero(np.isin(category, [c for c in T.CATEGORIES if T.SLOT[c] == s]))
                  for s in set(T.SLOT.values())}
    # Candidates come by exposure: popularity-weighted, as in the interactions.
    pop = np.exp(params.pop_alpha * oracle.t["item_log_pop"].astype(np.float64))
    slot_cdf = {s: np.cumsum(pop[rows]) / pop[rows].sum() for s, rows in slot_items.items()}
    # Heavier users make more outfits.
    activity = np.bincount(interactions["user"].to_numpy(), minlength=cfg.n_users).astype(np.float64) ** 0.7
    owners = rng.choice(cfg.n_users, size=cfg.n_outfits, p=activity / activity.sum())
    templates = rng.integers(len(T.OUTFIT_TEMPLATES), size=cfg.n_outfits)

    outfits = np.empty((cfg.n_outfits, 4), np.int64)
    for o in bar.track(range(cfg.n_outfits), "composing outfits"):
        user, slots = owners[o], T.OUTFIT_TEMPLATES[templates[o]]
        pools = [slot_items[s][np.minimum(np.searchsorted(slot_cdf[s], rng.random(cfg.outfit_pool)),
                                          len(slot_items[s]) - 1)] for s in slots]
        taste = [oracle.utility(user, pool)[0] / params.outfit_temperature for pool in pools]
        chosen = np.full(4, -1)
        for sweep in range(3):  # a first pass in random order, then two Gibbs sweeps
            for k in rng.permutation(4) if sweep == 0 else range(4):
                others = chosen[(chosen >= 0) & (np.arange(4) != k)]
                score = taste[k].copy()
                if len(others):
                    score += params.outfit_compat_weight * oracle.rules.pair(
                        oracle.codes, pools[k][:, None], others[None, :]).sum(axis=1)
                chosen[k] = pools[k][np.argmax(score + rng.gumbel(size=len(score)))]
        outfits[o] = chosen
    split = np.array(["train", "valid", "test"])[rng.choice(3, size=cfg.n_outfits, p=(0.8, 0.1, 0.1))]
    item_ids = _ids("i", len(category))
    return pd.DataFrame({
        "outfit_id": _ids("o", cfg.n_outfits),
        "user_id": _ids("u", cfg.n_users)[owners],
        "item_ids": [list(item_ids[row]) for row in outfits],
        "categories": [list(category[row]) for row in outfits],
        "split": split,
        "_rows": list(outfits),  # dropped before writing
    })


def _fitb_questions(outfits: pd.DataFrame, attrs, rng) -> pd.DataFrame:
    """For each valid/test outfit: one blank, with 4 random negatives ('random', as DiFashion
    draws them) and with 4 negatives of the blank's category ('hard')."""
    category = attrs["category"]
    n_items = len(category)
    by_category = {c: np.flatnonzero(category == c) for c in T.CATEGORIES}
    item_ids = _ids("i", n_items)
    rows = []
    held = outfits[outfits["split"] != "train"]
    for outfit_id, user_id, split, outfit in zip(held["outfit_id"], held["user_id"], held["split"], held["_rows"]):
        blank = int(rng.integers(len(outfit)))
        answer = outfit[blank]
        for kind in ("random", "hard"):
            pool = by_category[category[answer]] if kind == "hard" else np.arange(n_items)
            negatives = []
            while len(negatives) < 4:
                pick = int(pool[rng.integers(len(pool))])
                if pick not in outfit and pick not in negatives:
                    negatives.append(pick)
            candidates = rng.permutation([answer] + negatives)
            rows.append({"question_id": f"q{len(rows):06d}", "outfit_id": outfit_id, "user_id": user_id,
                         "blank_index": blank, "candidates": list(item_ids[candidates]), "answer": item_ids[answer],
                         "kind": kind, "split": split, "_candidates": candidates})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- pictures

def _draw_images(path: Path, attrs, look, seed: int, bar: Progress, processes: int | None) -> None:
    n = len(attrs["category"])
    images = open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, schema.IMAGE_SIZE, schema.IMAGE_SIZE, 3))
    chunk = 500
    jobs = [(start, min(start + chunk, n), seed) for start in range(0, n, chunk)]
    global _SPECS  # read by the worker processes, which inherit it by fork
    _SPECS = (attrs, look)
    processes = processes or min(os.cpu_count() or 1, 8)
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for start, block in bar.track(pool.imap(_draw_chunk, jobs), "drawing items", total=len(jobs)):
                images[start:start + len(block)] = block
    else:
        for start, block in bar.track(map(_draw_chunk, jobs), "drawing items", total=len(jobs)):
            images[start:start + len(block)] = block
    images.flush()
    del images


_SPECS = None


def _draw_chunk(job: tuple[int, int, int]) -> tuple[int, np.ndarray]:
    start, end, seed = job
    attrs, look = _SPECS
    block = np.empty((end - start, schema.IMAGE_SIZE, schema.IMAGE_SIZE, 3), np.uint8)
    for i in range(start, end):
        spec = ItemSpec(attrs["category"][i], *(attrs[a][i] for a in T.ATTRIBUTES), look=tuple(look[i]))
        block[i - start] = draw_item(spec, np.random.default_rng([seed, _STREAMS["images"], i]))
    return start, block


def _draw_avatars(folder: Path, persons: pd.DataFrame, seed: int, bar: Progress) -> None:
    n = len(persons)
    images = open_memmap(folder / schema.PERSON_IMAGES, mode="w+", dtype=np.uint8,
                         shape=(n, schema.AVATAR_HEIGHT, schema.AVATAR_WIDTH, 3))
    masks = open_memmap(folder / schema.PERSON_MASKS, mode="w+", dtype=np.uint8,
                        shape=(n, schema.AVATAR_HEIGHT, schema.AVATAR_WIDTH))
    records = persons[list(schema.BODY_FIELDS)].to_dict("records")
    for p in bar.track(range(n), "drawing persons"):
        images[p], masks[p] = draw_avatar(records[p], np.random.default_rng([seed, _STREAMS["persons"], p]))
    images.flush()
    masks.flush()
    del images, masks


# ---------------------------------------------------------------------------- the ceiling

def _oracle_figures(oracle: Oracle, interactions, outfits, fitb, items, attrs, rng, bar: Progress) -> dict:
    bar.step("measuring the oracle")
    held = HeldOut.from_rows(oracle.n_users, oracle.n_items, interactions["user"].to_numpy(),
                             interactions["item"].to_numpy(), interactions["split"].to_numpy())
    ranking = evaluate_ranking(oracle.interaction_logits, held)

    user_rows = {u: i for i, u in enumerate(_ids("u", oracle.n_users))}
    rows_by_outfit = dict(zip(outfits["outfit_id"], outfits["_rows"]))
    fitb_acc = {}
    test = fitb[fitb["split"] == "test"]
    for kind in ("random", "hard"):
        for personal in (True, False):
            q = test[test["kind"] == kind]
            hits = []
            for outfit_id, user_id, blank, candidates, answer in zip(
                    q["outfit_id"], q["user_id"], q["blank_index"], q["_candidates"], q["answer"]):
                context = np.delete(rows_by_outfit[outfit_id], blank)
                scores = oracle.fitb_scores(user_rows[user_id] if personal else None, context, candidates)
                hits.append(items["item_id"].iat[candidates[int(np.argmax(scores))]] == answer)
            fitb_acc[f"{'p' if personal else ''}fitb_{kind}"] = float(np.mean(hits))

    # Compatibility: true test outfits against the same outfits with one item swapped for
    # another of its category.
    category = attrs["category"]
    by_category = {c: np.flatnonzero(category == c) for c in T.CATEGORIES}
    true_scores, fake_scores = [], []
    for outfit in outfits.loc[outfits["split"] == "test", "_rows"]:
        fake = outfit.copy()
        k = rng.integers(len(outfit))
        pool = by_category[category[outfit[k]]]
        fake[k] = pool[rng.integers(len(pool))]
        true_scores.append(oracle.compatibility(outfit))
        fake_scores.append(oracle.compatibility(fake))
    return {
        "ranking": {k: round(v, 4) if isinstance(v, float) else v for k, v in ranking.items()},
        "fitb": {k: round(v, 4) for k, v in fitb_acc.items()},
        "compatibility_auc": round(auc_score(np.array(true_scores), np.array(fake_scores)), 4),
    }


# ---------------------------------------------------------------------------- writing

def _manifest(preset: str, seed: int, cfg: WorldConfig, tables: dict[str, pd.DataFrame], figures: dict) -> dict:
    items, interactions, outfits = tables[schema.ITEMS], tables[schema.INTERACTIONS], tables[schema.OUTFITS]
    train_counts = interactions.loc[interactions["split"] == "train", "item_id"].value_counts()
    test_items = interactions.loc[interactions["split"] == "test", "item_id"]
    cold_share = float((train_counts.reindex(test_items).fillna(0).to_numpy() < 5).mean())
    return {
        "schema_version": schema.SCHEMA_VERSION,
        "name": f"world-{preset}-seed{seed}",
        "source": "synthetic",
        "license": "CC0-1.0: generated by modiste, no real people or products",
        "provenance": f"modiste world --preset {preset} --seed {seed}; config {asdict(cfg)}",
        "counts": {"items": len(items), "users": len(tables[schema.USERS]), "interactions": len(interactions),
                   "outfits": len(outfits), "fitb": len(tables[schema.FITB]), "persons": len(tables[schema.PERSONS])},
        "splits": {name: tables[file]["split"].value_counts().reindex(schema.SPLITS, fill_value=0).astype(int).to_dict()
                   for name, file in (("interactions", schema.INTERACTIONS), ("outfits", schema.OUTFITS),
                                      ("fitb", schema.FITB))},
        "has_images": True,
        "attributes": list(T.ATTRIBUTES),
        "categories": list(T.CATEGORIES),
        "cold_test_share": round(cold_share, 4),
        "oracle": figures,
    }


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    df = df[[c for c in df.columns if not c.startswith("_")]]
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(5, len(str(n - 1)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)])
