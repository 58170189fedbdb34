"""Attribute recovery: how well a small CNN reads each item attribute from the world's pictures.

    python bench/attribute_recovery.py --preset small --seed 0 --epochs 12
    python bench/attribute_recovery.py --data data/world-small --out reports/attribute_recovery

Trains `modiste.vision.probe.AttributeProbe` on 80% of the items and writes, under --out:
report.json (everything), report.md (held-out accuracy per attribute beside chance, the most
common confusions, training time, machine load and torch threads), errors.png (held-out items
the probe gets wrong) and probe/ (the trained probe, reusable as an attribute classifier).
An attribute far below its neighbours points at a drawing bug in the world: check its confusions.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from modiste.data import Dataset
from modiste.data.world.generate import generate_world
from modiste.io import atomic_path, write_json
from modiste.viz import contact_sheet, save_png
from modiste.vision.probe import ProbeConfig, split_rows, train_probe


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="small", help="world preset to generate (tiny, small, default)")
    ap.add_argument("--seed", type=int, default=0, help="world seed and probe seed")
    ap.add_argument("--data", type=Path, help="reuse this dataset directory instead of generating a world")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--out", type=Path, default=Path("reports/attribute_recovery"))
    args = ap.parse_args(argv)

    data = args.data or Path("data") / f"world-{args.preset}-seed{args.seed}"
    if not (data / "manifest.json").exists():
        print(f"generating the {args.preset} world (seed {args.seed}) into {data}", file=sys.stderr)
        generate_world(data, preset=args.preset, seed=args.seed, progress=True)
    ds = Dataset(data)
    config = ProbeConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width,
                         seed=args.seed, threads=args.threads, device=args.device)

    load_before = os.getloadavg()
    start = time.perf_counter()
    train_rows, test_rows = split_rows(len(ds.items), config.seed)
    probe, report = train_probe(ds, config, train_rows, test_rows, progress=True)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()

    # Held-out predictions again, for confusions and per-value accuracy.
    images = np.asarray(ds.images[test_rows])
    pred = probe.predict(images)
    truth = {a: ds.items[a].to_numpy(dtype=object)[test_rows] for a in probe.attributes}
    confusions, per_value = {}, {}
    for a in probe.attributes:
        wrong = collections.Counter((t, p) for t, p in zip(truth[a], pred[a]) if t != p)
        confusions[a] = [{"true": t, "predicted": p, "count": n} for (t, p), n in wrong.most_common(6)]
        per_value[a] = {v: float(np.mean(pred[a][truth[a] == v] == v)) for v in probe.vocabularies[a]
                        if (truth[a] == v).any()}

    report.update({
        "dataset": str(data), "name": ds.name, "n_items": len(ds.items), "wall_seconds": wall,
        "images_per_second": report["n_train"] * config.epochs / report["train_seconds"],
        "loadavg_before": load_before, "loadavg_after": load_after, "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "machine": platform.machine(), "device": str(probe.device),
        "confusions": confusions, "per_value_accuracy": per_value, "config": asdict(config),
    })
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "report.json", report)
    with atomic_path(args.out / "report.md") as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")
    probe.save(args.out / "probe")
    save_png(error_sheet(images, truth, pred, probe.attributes), args.out / "errors.png")
    print(markdown(report))
    return report


def markdown(r: dict) -> str:
    c = r["config"]
    lines = [
        f"# Attribute recovery on `{r['name']}` ({r['n_items']} items)", "",
        f"A {c['width']}-wide 4-block CNN trained on {r['n_train']} item pictures for {c['epochs']} epochs "
        f"(batch {c['batch_size']}, lr {c['lr']}, seed {c['seed']}), measured on {r['n_test']} held-out items. "
        "Chance: always answering the training set's commonest value.", "",
        "| attribute | values | held-out accuracy | chance | most common confusions (true → predicted ×n) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for a, acc in r["accuracy"].items():
        conf = ", ".join(f"{x['true']} → {x['predicted']} ×{x['count']}" for x in r["confusions"][a][:3])
        lines.append(f"| {a} | {len(r['per_value_accuracy'][a])} | {acc:.3f} | {r['chance'][a]:.3f} | {conf} |")
    load = lambda xs: " / ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines += [
        "", f"Training: {r['train_seconds']:.1f} s ({r['images_per_second']:.0f} images/s), "
        f"{r['wall_seconds']:.1f} s with evaluation; torch {r['torch']} on {r['device']}, "
        f"{r['threads']} threads of {r['cpu_count']} CPUs.",
        f"Load average (1/5/15 min) before: {load(r['loadavg_before'])}, after: {load(r['loadavg_after'])}.", "",
        "Accuracy per value, worst five per attribute:", "",
    ]
    for a, values in r["per_value_accuracy"].items():
        worst = sorted(values.items(), key=lambda kv: kv[1])[:5]
        lines.append(f"- {a}: " + ", ".join(f"{v} {x:.2f}" for v, x in worst))
    return "\n".join(lines) + "\n"


def error_sheet(images, truth, pred, attributes, n: int = 48):
    """Held-out items with at least one wrong attribute, captioned `attribute: true -> predicted`."""
    tiles, labels = [], []
    for i in range(len(images)):
        wrong = [f"{a}: {truth[a][i]} -> {pred[a][i]}" for a in attributes if truth[a][i] != pred[a][i]]
        if wrong:
            tiles.append(images[i])
            labels.append("; ".join(wrong))
        if len(tiles) == n:
            break
    if not tiles:
        tiles, labels = [images[0]], ["no errors"]
    return contact_sheet(tiles, labels, columns=8, scale=2, label_lines=4, title="held-out items with errors")


if __name__ == "__main__":
    main()
