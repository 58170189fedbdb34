"""What text-augmented fine-tuning changes: `modiste bench text-aug --data DIR --before RUN --after RUN
--out REPORT`, where AFTER is BEFORE after `modiste train dual --stage text-aug`.

Text to image, on descriptions of random catalogue items (the item's true values are what was
asked), in three phrasings:

- "training words": `modiste.design.words` with the lexicon's training half, in new combinations;
- "held-out words": the lexicon's held-out half (synonyms, openings, joins never used in training);
- "the dataset's descriptions": each item's own description in items.parquet (never trained on).

and three ways of reading them (`dual_api.text_to_image`): before, the rule parser's values
("words"); after, the model reading the description ("reading"), and both together. For each, per
attribute: the share the parser read right, the share the model wrote right (its text stream), and
the share the attribute classifier reads right in the picture.

Also: image to text (captions of the same items' real pictures, before and after), and the losses
on the condition stage's examples without a description (the image stream is frozen; what changes
there is what fine-tuning the text branch did to PFITB).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modiste.data import Dataset
from modiste.design.bench import attribute_classifier
from modiste.design.dual import ATTRIBUTES, Conditions
from modiste.design.dual_api import READINGS, load_run, text_to_image
from modiste.design.dual_train import DualExamples
from modiste.design.words import HELD_OUT, TRAIN, Phrasebook
from modiste.io import write_json
from modiste.progress import Progress
from modiste.vision.common import to_unit_range, torch_threads
from modiste.vision.encoder import dataset_features
from modiste.vision.latent import dataset_latents

PHRASINGS = ("training words", "held-out words", "the dataset's descriptions")


@dataclass
class TextBenchConfig:
    """items: catalogue items described; steps, guidance: sampling (guidance on the description);
    loss_examples: condition-stage examples for the loss check; probe_items, probe_epochs: the
    attribute classifier (shared with `bench generate` through its folder)."""

    items: int = 200
    steps: int = 20
    guidance: float = 2.0
    loss_examples: int = 1024
    batch_size: int = 50
    probe_items: int = 10000
    probe_epochs: int = 6
    threads: int = 2
    seed: int = 0


def text_aug_report(data_dir: str | Path, before_run: str | Path, after_run: str | Path, out: str | Path,
                    config: TextBenchConfig | None = None, progress: bool = True) -> dict:
    config = config or TextBenchConfig()
    started, load_start = time.perf_counter(), os.getloadavg()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = Dataset(data_dir)
    models = {}
    for name, run in (("before", before_run), ("after", after_run)):
        model, trained_on = load_run(run)
        if trained_on.name != ds.name:
            raise ValueError(f"{run} was trained on '{trained_on.name}', not on '{ds.name}'")
        models[name] = model
    if not models["after"].reads_descriptions:
        raise ValueError(f"{after_run} has not run the text-aug stage (modiste train dual --stage text-aug)")
    with torch_threads(config.threads), Progress(enabled=progress) as bar:
        bar.step("attribute classifier")
        probe, probe_report = attribute_classifier(ds, out / "probe", config.probe_items, config.probe_epochs,
                                                   config.threads, config.seed)
        rng = np.random.default_rng([config.seed, 5])
        rows = np.sort(rng.choice(len(ds.items), min(config.items, len(ds.items)), replace=False))
        items = ds.items.iloc[rows]
        asked = {a: items[a].astype(str).to_numpy() for a in ATTRIBUTES}
        descriptions = _descriptions(models["after"].vocab, items, config.seed)
        text_rows, made = [], {}
        for phrasing, texts in descriptions.items():
            for how in READINGS:
                bar.step(f"text to image: {phrasing}, {how}")
                model = models["before" if how == "words" else "after"]
                pictures, ids, category, parsed = text_to_image(model, texts, how, config.steps, config.guidance,
                                                         config.seed, config.batch_size)
                written = model.vocab.decode(ids)
                made[phrasing, how] = pictures, model.vocab.caption(ids, category)
                read = probe.predict(pictures)
                text_rows.append({
                    "phrasing": phrasing, "reading": how, "model": "before" if how == "words" else "after",
                    "parsed": {a: float(np.mean([p.get(a) == v for p, v in zip(parsed, asked[a])])) for a in ATTRIBUTES},
                    "written": {a: float(np.mean([w[a] == v for w, v in zip(written, asked[a])])) for a in ATTRIBUTES},
                    "drawn": {a: float(np.mean(np.asarray(read[a]).astype(str) == asked[a])) for a in ATTRIBUTES},
                    "category_drawn": float(np.mean(np.asarray(read["category"]).astype(str)
                                                    == items["category"].astype(str).to_numpy()))})
        bar.step("captions and losses")
        captions = {name: _captions(model, ds, rows, asked, config) for name, model in models.items()}
        losses = _condition_losses(models, ds, config)
        _picture(out / "text-aug.png", ds, rows, descriptions[PHRASINGS[1]], made, PHRASINGS[1])
    for row in text_rows:
        for key in ("parsed", "written", "drawn"):
            row[f"{key}_mean"] = float(np.mean(list(row[key].values())))
    report = {"text_to_image": text_rows, "captions": captions, "condition_losses": losses,
              "examples": {p: t[:5] for p, t in descriptions.items()},
              "classifier": probe_report, "config": asdict(config), "dataset": ds.name,
              "runs": {"before": str(before_run), "after": str(after_run)},
              "training": models["after"].meta.get("history", [])[-1:],
              "machine": {"cpus": os.cpu_count(), "threads": config.threads,
                          "load_start": [round(x, 2) for x in load_start],
                          "load_end": [round(x, 2) for x in os.getloadavg()],
                          "seconds": round(time.perf_counter() - started, 1)}}
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def _descriptions(vocab, items: pd.DataFrame, seed: int) -> dict[str, list[str]]:
    book = Phrasebook(vocab)
    out = {}
    for phrasing, split in zip(PHRASINGS[:2], (TRAIN, HELD_OUT)):
        rng = np.random.default_rng([seed, 6, len(out)])  # not the training descriptions' generator
        out[phrasing] = [book.describe(str(r["category"]), {a: str(r[a]) for a in ATTRIBUTES if not pd.isna(r[a])},
                                       rng, split) for r in items.to_dict("records")]
    out[PHRASINGS[2]] = items["description"].astype(str).tolist()
    return out


def _captions(model, ds: Dataset, rows: np.ndarray, asked: dict[str, np.ndarray], config: TextBenchConfig) -> dict:
    """Image to text on the items' real pictures: the share of each attribute written right."""
    category = torch.tensor([model.vocab.categories.index(str(c)) for c in ds.items["category"].iloc[rows]])
    written = []
    for start in range(0, len(rows), config.batch_size):
        sl = slice(start, start + config.batch_size)
        picture = to_unit_range(torch.from_numpy(np.asarray(ds.images[rows[sl]])))
        written += model.vocab.decode(model.sample(Conditions(category=category[sl]), steps=config.steps, image=picture,
                                                   seed=config.seed + start)[1])
    return {a: float(np.mean([w[a] == v for w, v in zip(written, asked[a])])) for a in ATTRIBUTES}


def _condition_losses(models: dict, ds: Dataset, config: TextBenchConfig) -> dict:
    """Image and text loss of each model on the same condition-stage examples, same noise and times."""
    vocab = models["before"].vocab
    examples = DualExamples(ds, vocab, dataset_features(ds), dataset_latents(ds))
    rows = np.random.default_rng([config.seed, 7]).choice(examples.count("condition"),
                                                           min(config.loss_examples, examples.count("condition")),
                                                           replace=False)
    out = {}
    for name, model in models.items():
        parts = []
        for start in range(0, len(rows), 256):
            latents, text, cond = examples.batch("condition", rows[start:start + 256])
            with torch.no_grad():
                _, p = model.loss(latents, text, cond, torch.Generator().manual_seed(config.seed + start))
            parts.append(p)
        out[name] = {k: float(np.mean([p[k] for p in parts])) for k in ("image", "text")}
    return out


def _picture(path: Path, ds: Dataset, rows: np.ndarray, texts: list[str], made: dict, phrasing: str,
             count: int = 8) -> None:
    """Per item: the real item with its description, then what each reading drew, with its words."""
    from modiste.viz import contact_sheet, save_png

    tiles, labels = [], []
    for k in range(min(count, len(rows))):
        tiles.append(np.asarray(ds.images[rows[k]]))
        labels.append(f"asked: {texts[k]}")
        for how in READINGS:
            pictures, captions = made[phrasing, how]
            tiles.append(pictures[k])
            labels.append(f"{how} ({'before' if how == 'words' else 'after'}): {captions[k]}")
    save_png(contact_sheet(tiles, labels, columns=1 + len(READINGS), label_lines=5,
                           title=f"Text to image from {phrasing}: the real item, then each reading"), path)


def markdown(report: dict) -> str:
    lines = ["| phrasing | reading | parser right | written right | drawn right (classifier) |",
             "|---|---|---|---|---|"]
    for row in report["text_to_image"]:
        parsed = f"{row['parsed_mean']:.3f}" if row["reading"] != "reading" else "—"
        lines.append(f"| {row['phrasing']} | {row['reading']} ({row['model']}) | {parsed} | "
                     f"{row['written_mean']:.3f} | {row['drawn_mean']:.3f} |")
    caps = report["captions"]
    lines += ["", "| captions of real pictures | " + " | ".join(ATTRIBUTES) + " |",
              "|---|" + "---|" * len(ATTRIBUTES)]
    for name in ("before", "after"):
        lines.append(f"| {name} | " + " | ".join(f"{caps[name][a]:.3f}" for a in ATTRIBUTES) + " |")
    loss = report["condition_losses"]
    lines += ["", "Condition-stage losses without a description (PFITB's setting): image "
                  f"{loss['before']['image']:.4f} before, {loss['after']['image']:.4f} after; text "
                  f"{loss['before']['text']:.4f} before, {loss['after']['text']:.4f} after."]
    return "\n".join(lines) + "\n"
