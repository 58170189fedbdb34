"""`modiste bench design`: personalized design against real items, in one run (DVBPR, section V-F).

For a seeded sample of users and every category of the GAN, four rows give n pictures per
(user, category):

- "preference maximisation": the n best designs of `maximise_preference` (n x restarts starts);
- "GAN random samples": n pictures of the category from random z (what PM starts from);
- "top-1 recommended real item": the DVBPR's best-scored catalogue item of the category that the
  user does not have (preference and utility are the top-1's, as in the paper; diversity and FID
  read the top-n list);
- "random real items": n random catalogue items of the category.

Metrics, each averaged over (user, category) pairs:

- preference: theta_u . Phi(picture), the objective PM maximises (on the uint8 pictures);
- oracle utility: the synthetic world's true taste of the user for the item, read through an
  attribute classifier (`modiste.vision.probe`, trained here on real items; its held-out accuracy
  is reported): the predicted attributes become the world's one-hot item features and the
  oracle's user weights (taste + body suitability) score them. A generated item has no known
  "look" and no "quality", so those two parts of the utility are left out for every row alike;
  for real items the same utility from their true attributes is reported beside it;
- category accuracy: share of pictures the classifier reads as the asked category;
- realism: (D(picture, c) - 1)^2, the GAN discriminator's term of the PM objective;
- diversity: 1 - mean pairwise cosine of the n pictures' encoder features (the FID features);
- FID per category and overall, against all real items of the category, with the dataset's own
  encoder as the feature extractor (`modiste.design.metrics`); every row has the same number of
  pictures per category, so the FIDs compare (the random-real row is the finite-sample floor).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.data.world import rules
from modiste.data.world.oracle import Oracle
from modiste.design.api import load_runs, top_real_items
from modiste.design.metrics import FIDReference, diversity, encode, fid_encoder
from modiste.design.pm import PMConfig, maximise_preference, preference_scores, realism, tailor
from modiste.io import write_json
from modiste.progress import Progress
from modiste.vision.common import torch_threads
from modiste.vision.probe import AttributeProbe, ProbeConfig, split_rows, train_probe

ROWS = ("preference maximisation", "GAN random samples", "top-1 recommended real item", "random real items")


@dataclass
class BenchConfig:
    """users: size of the seeded user sample (every GAN category for each); n: pictures per (user,
    category); steps, lr, eta, restarts: preference maximisation; probe_epochs, probe_items: the
    attribute classifier (trained on at most probe_items real items, tested on 2,000 held-out ones);
    threads: torch threads; seed: users, starts and samples."""

    users: int = 30
    n: int = 8
    steps: int = 100
    lr: float = 0.05
    eta: float = 1.0
    restarts: int = 2
    probe_epochs: int = 6
    probe_items: int = 10000
    threads: int = 1
    seed: int = 0


def design_report(data_dir: str | Path, rec_run: str | Path, gan_run: str | Path, out: str | Path,
                  config: BenchConfig | None = None, progress: bool = True) -> dict:
    config = config or BenchConfig()
    out = Path(out)
    with torch_threads(config.threads):
        return _report(Path(data_dir), rec_run, gan_run, out, config, progress)


def _report(data_dir: Path, rec_run, gan_run, out: Path, config: BenchConfig, progress: bool) -> dict:
    started, load_start = time.perf_counter(), os.getloadavg()
    ds = Dataset(data_dir)
    runs = load_runs(rec_run, gan_run)
    if runs.ds.name != ds.name:
        raise ValueError(f"the runs were trained on '{runs.ds.name}', not on '{ds.name}'")
    oracle = Oracle.load(data_dir)
    gan, rec = runs.gan, runs.rec
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    with Progress(enabled=progress) as bar:
        t = time.perf_counter()
        bar.step("attribute classifier")
        probe, probe_report = attribute_classifier(ds, out / "probe", config.probe_items, config.probe_epochs,
                                                   config.threads, config.seed)
        timings["classifier_s"] = time.perf_counter() - t

        t = time.perf_counter()
        bar.step("FID features of the real items")
        encoder = fid_encoder(ds)
        categories = ds.items["category"].astype(str).to_numpy()
        reference = FIDReference(encoder, ds.images, categories)
        timings["fid_reference_s"] = time.perf_counter() - t

        users = _sample_users(ds, config)
        cats = [c for c in gan.categories if (categories == c).any()]
        pair_users = np.repeat(users, len(cats))
        pair_cats = np.array(cats * len(users), dtype=object)
        labels = np.array([gan.label(c) for c in pair_cats])
        m, n = len(pair_users), config.n
        pictures, items = {}, {}

        t = time.perf_counter()
        pm_config = PMConfig(steps=config.steps, lr=config.lr, eta=config.eta, restarts=config.restarts, seed=config.seed)
        chunks = []
        for s in bar.track(range(0, m, len(cats)), "preference maximisation", total=len(users)):
            chunks.append(maximise_preference(gan, rec, pair_users[s:s + len(cats)], list(pair_cats[s:s + len(cats)]), n=n,
                                              config=pm_config, batch_pairs=len(cats)))
        pictures[ROWS[0]] = np.concatenate([d.images for d in chunks])
        start_scores = np.concatenate([d.start_scores for d in chunks])
        timings["pm_s"] = time.perf_counter() - t
        timings["pm_designs"] = int(m * n)

        pictures[ROWS[1]] = np.stack([gan.sample(n, int(c), seed=config.seed * 100_003 + i) for i, c in enumerate(labels)])

        top_rows = np.zeros((m, n), np.int64)
        for i, (u, c) in enumerate(zip(pair_users, pair_cats)):
            rows, _ = top_real_items(runs, int(u), c, n)
            top_rows[i] = np.resize(rows, n)  # a category with fewer unseen items than n repeats them
        items[ROWS[2]] = top_rows
        rng = np.random.default_rng([config.seed, 5])
        items[ROWS[3]] = np.stack([rng.choice(np.flatnonzero(categories == c), n, replace=(categories == c).sum() < n)
                                   for c in pair_cats])
        for name, rows in items.items():
            pictures[name] = np.asarray(ds.images[rows.ravel()]).reshape(m, n, 64, 64, 3)

        t = time.perf_counter()
        bar.step("metrics")
        result_rows, fids = [], {}
        for name in ROWS:
            imgs = pictures[name]  # (m, n, 64, 64, 3)
            flat = imgs.reshape(-1, 64, 64, 3)
            u_flat = np.repeat(pair_users, n)
            c_flat = np.repeat(pair_cats, n).astype(str)
            pref = preference_scores(rec, u_flat, flat).reshape(m, n)
            predicted = probe.predict(flat)
            util = oracle_utility(oracle, u_flat, predicted).reshape(m, n)
            cat_ok = (predicted["category"].astype(str) == c_flat).reshape(m, n)
            real_term = realism(gan, flat, np.repeat(labels, n)).reshape(m, n)
            feats = encode(encoder, flat).reshape(m, n, -1)
            div = np.array([diversity(f) for f in feats])
            fid = reference.score(flat, c_flat)
            fids[name] = fid
            pick = (lambda a: a[:, 0]) if name == ROWS[2] else (lambda a: a)  # top-1: the first item only
            row = {"model": name, "preference": float(pick(pref).mean()), "oracle_utility_probe": float(pick(util).mean()),
                   "category_accuracy": float(pick(cat_ok).mean()), "realism": float(pick(real_term).mean()),
                   "diversity": float(np.nanmean(div)), "fid": fid["overall"]}
            if name in items:
                true = (oracle.weights[pair_users[:, None]] * oracle.t["item_features"][items[name]]).sum(-1)
                row["oracle_utility_true_attributes"] = float(pick(true).mean())
            if name == ROWS[0]:
                row["preference_at_start"] = float(start_scores.mean())
                best_real = preference_scores(rec, pair_users, pictures[ROWS[2]][:, 0])
                row["share_best_design_above_top1_real"] = float(np.mean(pref[:, 0] > best_real))
            result_rows.append(row)
        timings["metrics_s"] = time.perf_counter() - t

        bar.step("pictures")
        _pictures(out, ds, runs, probe, pictures, pair_users, pair_cats, cats, config)

    report = {
        "rows": result_rows,
        "fid_per_category": fids,
        "classifier": probe_report,
        "config": asdict(config),
        "dataset": ds.name,
        "users": [str(ds.users.index[u]) for u in users],
        "categories": cats,
        "pairs": int(m),
        "gan": {"run": str(gan_run), "train_seconds": gan.history.get("train_seconds"),
                "images_seen": gan.history.get("images_seen"), "config": asdict(gan.config)},
        "rec_run": str(rec_run),
        "timings_s": {k: round(v, 1) if isinstance(v, float) else v for k, v in timings.items()},
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                    "load_start": [round(x, 2) for x in load_start], "load_end": [round(x, 2) for x in os.getloadavg()],
                    "seconds": round(time.perf_counter() - started, 1)},
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def attribute_classifier(ds: Dataset, directory: Path, items: int = 10000, epochs: int = 6, threads: int = 1,
                         seed: int = 0) -> tuple[AttributeProbe, dict]:
    """The attribute classifier that judges generated pictures, trained on at most `items` real
    items and tested on 2,000 held-out ones (reused from `directory` when saved there)."""
    report_path = directory / "report.json"
    if report_path.exists() and (directory / "model").exists():
        return AttributeProbe.load(directory / "model"), json.loads(report_path.read_text())
    train, test = split_rows(len(ds.items), seed, 0.2)
    rng = np.random.default_rng([seed, 11])
    train = np.sort(rng.choice(train, min(items, len(train)), replace=False))
    test = np.sort(rng.choice(test, min(2000, len(test)), replace=False))
    probe, report = train_probe(ds, ProbeConfig(epochs=epochs, threads=threads, seed=seed),
                                train_rows=train, test_rows=test)
    probe.save(directory / "model")
    report = {k: report[k] for k in ("accuracy", "chance", "train_seconds", "n_train", "n_test")}
    write_json(report_path, report)
    return probe, report


def _sample_users(ds: Dataset, config: BenchConfig) -> np.ndarray:
    inter = ds.interactions
    active = ds.users.index.get_indexer(inter.loc[inter["split"] == "train", "user_id"].unique())
    active = np.sort(active[active >= 0])
    rng = np.random.default_rng([config.seed, 17])
    return np.sort(rng.choice(active, min(config.users, len(active)), replace=False))


def oracle_utility(oracle: Oracle, users: np.ndarray, predicted: dict[str, np.ndarray]) -> np.ndarray:
    """The oracle's taste + suitability of each user for the item the classifier reads (no look, no quality)."""
    features = rules.item_features({a: np.asarray(v).astype(str) for a, v in predicted.items()})
    return (oracle.weights[users] * features).sum(-1)


def _pictures(out: Path, ds: Dataset, runs, probe: AttributeProbe, pictures: dict, pair_users, pair_cats, cats,
              config: BenchConfig) -> None:
    from modiste.viz import contact_sheet, save_png, stack

    gan, rec = runs.gan, runs.rec
    # 1. the GAN's samples: one row per category, labelled with what the classifier reads.
    tiles, labels = [], []
    for c in cats:
        imgs = gan.sample(8, c, seed=config.seed + 7)
        pred = probe.predict(imgs)
        tiles.extend(imgs)
        labels.extend(f"{pred['category'][i]} · {pred['color'][i]} {pred['pattern'][i]} · {pred['silhouette'][i]}"
                      for i in range(len(imgs)))
    save_png(contact_sheet(tiles, labels, columns=8, label_lines=2,
                           title="GAN samples, one row per asked category (labels: what the attribute classifier reads)"),
             out / "gan-samples.png")
    # 2. preference maximisation for three users, four categories: designs beside the best real items.
    sheets = []
    users = list(dict.fromkeys(pair_users.tolist()))[:3]
    for u in users:
        for c in cats[:10:3]:
            i = int(np.flatnonzero((pair_users == u) & (pair_cats == c))[0])
            pm, real = pictures[ROWS[0]][i], pictures[ROWS[2]][i]
            s_pm = preference_scores(rec, np.full(len(pm), u), pm)
            s_real = preference_scores(rec, np.full(len(real), u), real)
            uid = str(ds.users.index[u])
            sheets.append(contact_sheet(list(pm[:6]) + list(real[:4]),
                                        [f"design {s:.2f}" for s in s_pm[:6]] + [f"real {s:.2f}" for s in s_real[:4]],
                                        columns=10, label_lines=1,
                                        title=f"{uid}, {c}: 6 designs, then the 4 best-scored real items (preference theta.Phi)"))
    save_png(stack(sheets), out / "pm-examples.png")
    # 3. tailoring: the user's top real item of a category, moved toward their taste.
    u, c = users[0], cats[2 % len(cats)]
    rows, _ = top_real_items(runs, u, c, 20)
    item = int(rows[-1])  # a good but not the best item: room to move
    result = tailor(gan, rec, u, np.asarray(ds.images[item]), c,
                    PMConfig(steps=config.steps, lr=config.lr, eta=config.eta, seed=config.seed))
    tiles = [np.asarray(ds.images[item])] + [s["image"] for s in result["steps"]]
    labels = [f"item {result['item_score']:.2f}"] + [f"step {s['step']}: {s['score']:.2f}" for s in result["steps"]]
    save_png(contact_sheet(tiles, labels, columns=len(tiles), label_lines=1,
                           title=f"tailoring {ds.items.index[item]} ({c}) to {ds.users.index[u]}: preference theta.Phi along the search"),
             out / "tailor.png")


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# Personalized design on '{report['dataset']}'", "",
             f"{len(report['users'])} users x {len(report['categories'])} categories = {report['pairs']} pairs, "
             f"{report['config']['n']} pictures each; PM: {report['config']['steps']} Adam steps (lr "
             f"{report['config']['lr']}), eta {report['config']['eta']}, {report['config']['restarts']} starts per design. "
             f"{m['cpus']} CPUs, {m['threads']} torch thread(s), load average {m['load_start'][0]} at the start, "
             f"{m['load_end'][0]} at the end; {m['seconds']:.0f} s in all.", "",
             "| row | preference θ·Φ | oracle utility (classifier) | utility (true attributes) | category accuracy | "
             "realism (D-1)² | diversity | FID |",
             "|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        true = r.get("oracle_utility_true_attributes")
        lines.append(f"| {r['model']} | {r['preference']:.3f} | {r['oracle_utility_probe']:.3f} | "
                     f"{'' if true is None else f'{true:.3f}'} | {r['category_accuracy']:.3f} | {r['realism']:.3f} | "
                     f"{r['diversity']:.3f} | {r['fid']:.2f} |")
    pm = report["rows"][0]
    lines += ["", f"Preference maximisation raised θ·Φ from {pm['preference_at_start']:.3f} (the random starts) to "
                  f"{pm['preference']:.3f}; the best design beats the user's top-1 real item in "
                  f"{pm['share_best_design_above_top1_real']:.0%} of the pairs.", ""]
    cats = report["categories"]
    lines += ["FID per category (same number of pictures per row):", "",
              "| row | " + " | ".join(cats) + " | overall |", "|---|" + "---|" * (len(cats) + 1)]
    for name, fid in report["fid_per_category"].items():
        lines.append(f"| {name} | " + " | ".join(f"{fid.get(c, float('nan')):.1f}" for c in cats) + f" | {fid['overall']:.1f} |")
    acc = report["classifier"]["accuracy"]
    lines += ["", f"Attribute classifier (trained on {report['classifier']['n_train']} real items, held-out "
                  f"{report['classifier']['n_test']}): " + ", ".join(f"{a} {v:.3f}" for a, v in acc.items()), ""]
    return "\n".join(lines)
