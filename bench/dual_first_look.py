"""A first look at a dual-model run: does it draw what it writes, and write what it sees?

    python bench/dual_first_look.py --run data/runs/dual-default --probe reports/design-default/probe/model \\
        --out reports/dual-first-look

Read by the attribute classifier of `modiste bench design` (`--probe`, trained on real items):

- joint samples (picture and text together, only the category given): the classifier's category
  accuracy, and how often its reading of each attribute agrees with the text the model wrote
  (text-image alignment);
- text to image (the full text of random real items given): the classifier's agreement with it;
- image to text (captions of random real items): accuracy per attribute against the truth, beside
  the classifier's own accuracy on the same pictures.

Writes REPORT/report.json, REPORT/report.md and REPORT/samples.png (joint samples, one row per
category, each with what the model wrote). Not run in CI; the full benchmark of the issue
(`modiste bench generate`) is still to come.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from modiste.design.dual import ATTRIBUTES, Conditions
from modiste.design.dual_api import load_run
from modiste.io import write_json
from modiste.viz import contact_sheet, save_png
from modiste.vision.common import to_uint8, to_unit_range
from modiste.vision.probe import AttributeProbe


def agreement(probe_reading: dict[str, np.ndarray], written: list[dict], attributes=ATTRIBUTES) -> dict[str, float]:
    """Per attribute, the share of pictures where the classifier reads the value that was written."""
    return {a: float(np.mean([str(p) == str(w[a]) for p, w in zip(probe_reading[a], written)]))
            for a in attributes if a in probe_reading}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--probe", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("reports/dual-first-look"))
    parser.add_argument("--per-category", type=int, default=16)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    model, ds = load_run(args.run)
    probe = AttributeProbe.load(args.probe)
    vocab, cats = model.vocab, model.vocab.categories
    rng = np.random.default_rng(args.seed)
    report: dict = {"run": str(args.run), "dataset": ds.name, "steps": args.steps,
                    "history": model.meta.get("history", [])}

    # Joint samples: only the category given.
    category = torch.arange(len(cats)).repeat_interleave(args.per_category)
    pictures, ids = model.sample(Conditions(category=category), steps=args.steps, seed=args.seed)
    images, written = to_uint8(pictures), vocab.decode(ids)
    reading = probe.predict(images)
    report["joint"] = {"category_accuracy": float(np.mean(reading["category"] == np.array(cats)[category.numpy()])),
                       "text_image_agreement": agreement(reading, written)}
    captions = vocab.caption(ids, category)
    keep = np.concatenate([np.arange(c * args.per_category, c * args.per_category + 8) for c in range(len(cats))])
    save_png(contact_sheet([images[k] for k in keep], [captions[k] for k in keep], columns=8, label_lines=3,
                           title=f"dual model: joint samples, one row per category ({args.steps} steps)"),
             args.out / "samples.png")

    # Text to image: the full text of random real items.
    rows = np.sort(rng.choice(len(ds.items), args.items, replace=False))
    items = ds.items.iloc[rows]
    text = vocab.encode(items[list(ATTRIBUTES)].to_dict("records"))
    item_category = torch.tensor([cats.index(c) for c in items["category"]])
    drawn, _ = model.sample(Conditions(category=item_category), steps=args.steps, text=text, seed=args.seed)
    reading = probe.predict(to_uint8(drawn))
    truth = items[list(ATTRIBUTES)].to_dict("records")
    report["text_to_image"] = {"category_accuracy": float(np.mean(reading["category"] == items["category"].to_numpy())),
                               "agreement": agreement(reading, truth)}

    # Image to text: captions of the same real items.
    real = np.array(ds.images[rows])
    _, caption_ids = model.sample(Conditions(category=item_category), steps=args.steps,
                                  image=to_unit_range(torch.from_numpy(real)), seed=args.seed)
    report["image_to_text"] = {"accuracy": agreement({a: np.array([w[a] for w in vocab.decode(caption_ids)])
                                                      for a in ATTRIBUTES}, truth),
                               "classifier_accuracy": agreement(probe.predict(real), truth)}
    report["seconds"], report["load"] = round(time.perf_counter() - start, 1), os.getloadavg()
    write_json(args.out / "report.json", report)

    shown = [a for a in ATTRIBUTES if a in report["joint"]["text_image_agreement"]]
    lines = [f"Run `{args.run}` on `{ds.name}`, {args.steps} sampling steps, read by the attribute classifier.", "",
             "| | category | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown),
             f"| joint samples: classifier agrees with the written text | {report['joint']['category_accuracy']:.3f} | "
             + " | ".join(f"{report['joint']['text_image_agreement'][a]:.3f}" for a in shown) + " |",
             f"| text to image: classifier agrees with the given text | {report['text_to_image']['category_accuracy']:.3f} | "
             + " | ".join(f"{report['text_to_image']['agreement'][a]:.3f}" for a in shown) + " |",
             "| image to text: written = true | given | "
             + " | ".join(f"{report['image_to_text']['accuracy'][a]:.3f}" for a in shown) + " |",
             "| (the classifier itself on the same real pictures) | | "
             + " | ".join(f"{report['image_to_text']['classifier_accuracy'][a]:.3f}" for a in shown) + " |"]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
