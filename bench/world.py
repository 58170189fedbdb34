"""Benchmark the synthetic world: generation time and size per preset, and image read speed.

    python bench/world.py --presets tiny small default --out reports/world

Writes REPORT/report.json and REPORT/report.md. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from modiste.data import Dataset
from modiste.data.world.generate import generate_world
from modiste.io import write_json


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def read_speed(ds: Dataset, n: int = 10_000, repeats: int = 3) -> dict:
    """Seconds to read n random images into one array, from a freshly opened memory map."""
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats):
        rows = np.sort(rng.choice(len(ds.items), size=min(n, len(ds.items)), replace=False))
        fresh = Dataset(ds.path)
        start = time.perf_counter()
        batch = np.asarray(fresh.images[rows])
        times.append(time.perf_counter() - start)
        assert batch.shape[0] == len(rows)
    return {"images": int(len(rows)), "seconds_best": min(times), "seconds_all": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "default"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/world"))
    parser.add_argument("--keep", type=Path, help="keep the generated worlds under this folder")
    args = parser.parse_args()

    load_before = os.getloadavg()
    rows = []
    work = Path(tempfile.mkdtemp(prefix="modiste-world-bench-"))
    try:
        for preset in args.presets:
            out = (args.keep or work) / f"world-{preset}"
            start = time.perf_counter()
            generate_world(out, preset=preset, seed=args.seed, progress=True)
            seconds = time.perf_counter() - start
            ds = Dataset(out).validate()
            rows.append({
                "preset": preset, "generate_s": round(seconds, 1), "size_mib": round(folder_size(out) / 2**20, 1),
                "items": len(ds.items), "users": len(ds.users), "interactions": len(ds.interactions),
                "outfits": len(ds.outfits), "persons": len(ds.persons), "cold_test_share": ds.manifest["cold_test_share"],
                "read_10k_images_s": round(read_speed(ds)["seconds_best"], 3), "oracle": ds.manifest["oracle"],
            })
            print(json.dumps(rows[-1]))
            if not args.keep:
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    machine = {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
               "python": platform.python_version(), "platform": platform.platform()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "report.json", {"rows": rows, "machine": machine})
    lines = ["| preset | items | users | interactions | outfits | generate (s) | size (MiB) | read 10k images (s) "
             "| cold test share | oracle AUC | oracle cold AUC | oracle PFITB (hard) | oracle compat AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["oracle"]
        lines.append(f"| {r['preset']} | {r['items']:,} | {r['users']:,} | {r['interactions']:,} | {r['outfits']:,} "
                     f"| {r['generate_s']} | {r['size_mib']} | {r['read_10k_images_s']} | {r['cold_test_share']:.3f} "
                     f"| {o['ranking']['auc']:.4f} | {o['ranking']['auc_cold']:.4f} | {o['fitb']['pfitb_hard']:.4f} "
                     f"| {o['compatibility_auc']:.4f} |")
    lines.append(f"\nMachine: {machine['cpus']} CPUs, load average before {load_before[0]:.2f}, "
                 f"after {machine['load_after'][0]:.2f}.")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
