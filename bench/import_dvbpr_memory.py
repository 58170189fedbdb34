"""Peak memory of `modiste import dvbpr` on a generated release file of at least 2 GB.

    python bench/import_dvbpr_memory.py                 # ~2.1 GB file in /tmp, deleted at the end
    python bench/import_dvbpr_memory.py --gb 3 --dir /data/scratch --json report.json

The file has the exact layout of the DVBPR release (np.save of [user_train, user_validation,
user_test, Item, usernum, itemnum] pickled by Python 2, protocol 2, str as byte strings): the
same writer as tests/test_import_dvbpr.py. Its JPEGs are a few hundred distinct product-like
pictures (a coloured shape with a noisy texture on white, 150..300 px a side, quality 75..95,
about 13 KB each, like the release's thumbnails) encoded once and written again for every item.
Each item's bytes are one object in the loaded file, as in the real one.

It runs `modiste import dvbpr FILE --out DIR --quiet` under `/usr/bin/time -v` and reports the
file size, wall time, peak resident memory (which counts the pages of images.npy that are
mapped, not only the heap) and peak / file size; the goal is at most 1.5. It also measures, for
reference, the peak of the restricted unpickle alone (`load_npy`). Both files are deleted at
the end unless --keep. Not run in CI.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
FILE_NAME = "AmazonFashion6ImgPartitioned.npy"
N_CATEGORIES = 6
BIG_BYTES = 1024  # bytes objects above this (the JPEGs) are not kept in the pickler's memo


def _release_writer():
    """tests/test_import_dvbpr.py's Python 2 pickler and release writer: one definition of the layout."""
    spec = importlib.util.spec_from_file_location("_dvbpr_layout", ROOT / "tests" / "test_import_dvbpr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Py2Pickler, module.write_release


def jpeg_corpus(n: int, rng: np.random.Generator) -> list[bytes]:
    """`n` distinct product-like JPEGs of varied size."""
    corpus = []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(150, 301, 2))
        image = Image.new("RGB", (w, h), "white")
        x0, y0 = (int(v) for v in rng.integers(5, 40, 2))
        ImageDraw.Draw(image).rounded_rectangle([x0, y0, w - x0, h - y0], radius=int(rng.integers(5, 40)),
                                                fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        pixels = np.asarray(image).astype(np.int16)
        texture = rng.normal(0, rng.uniform(4, 30), pixels.shape) * (pixels.sum(2, keepdims=True) < 760)
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels + texture, 0, 255).astype(np.uint8)).save(
            buffer, "JPEG", quality=int(rng.integers(75, 96)))
        corpus.append(buffer.getvalue())
    return corpus


def generate(path: Path, target_bytes: int, seed: int) -> dict:
    """Write a release file of at least `target_bytes`; returns what it holds."""
    py2_pickler, write_release = _release_writer()

    class Writer(py2_pickler):
        """Writes every item's JPEG again (a fresh BINSTRING) though the generator reuses a few hundred objects."""

        def memoize(self, obj):
            if isinstance(obj, bytes) and len(obj) > BIG_BYTES:
                self.write(self.put(len(self.memo)))  # a PUT as Python 2 wrote it, but never fetched again
                return
            super().memoize(obj)

    rng = np.random.default_rng(seed)
    corpus = jpeg_corpus(300, rng)
    sizes = np.array([len(c) for c in corpus])
    # Enough items that the JPEG bytes alone reach the target.
    cycles, rest = divmod(target_bytes, int(sizes.sum()))
    n_items = cycles * len(corpus) + int(np.searchsorted(np.cumsum(sizes), rest)) + 1
    one_hot = np.eye(N_CATEGORIES)
    items = {i: {b"imgs": corpus[i % len(corpus)], b"asin": b"B%09d" % i,
                 b"c": one_hot[int(rng.integers(N_CATEGORIES))].copy()} for i in range(n_items)}

    # About as many users and reviews per item as Amazon Fashion (45k users, 166k items, 358k train reviews).
    n_users = n_items // 4
    train, valid, test = {}, {}, {}
    day = 86400
    for u in range(n_users):
        picks = rng.integers(0, n_items, int(rng.integers(3, 13)) + 2)
        start = 1_300_000_000 + int(rng.integers(0, 2000)) * day
        records = []
        for k, item in enumerate(picks.tolist()):
            t = start + k * day
            records.append({b"productid": item, b"reviewerID": b"A%013d" % u, b"asin": b"B%09d" % item,
                            b"overall": float(rng.integers(1, 6)), b"unixReviewTime": t,
                            b"reviewTime": time.strftime("%m %d, %Y", time.gmtime(t)).encode()})
        train[u], valid[u], test[u] = records[:-2], records[-2:-1], records[-1:]
    write_release(path, train, valid, test, items, n_users, n_items, pickler=Writer)
    return {"items": n_items, "users": n_users, "reviews": sum(len(r) for r in train.values()) + 2 * n_users,
            "distinct_jpegs": len(corpus), "mean_jpeg_bytes": round(float(sizes.mean()))}


def timed(command: list[str]) -> dict:
    """Run `command` under /usr/bin/time -v: wall seconds, peak RSS, exit code and the output's tail."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return {"rc": done.returncode, "wall_s": round(wall, 1),
            "peak_rss_bytes": int(peak.group(1)) * 1024 if peak else None,
            "tail": (done.stdout + done.stderr)[-3000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.1, help="file size to reach, in GB (10^9 bytes)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated file and the output")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dvbpr-bench-", dir=args.dir))
    try:
        src, out = work / FILE_NAME, work / "dataset"
        started = time.perf_counter()
        held = generate(src, int(args.gb * 1e9), args.seed)
        generate_s = time.perf_counter() - started
        size = src.stat().st_size
        print(f"generated {src} ({size / 1e9:.2f} GB) in {generate_s:.0f} s: {held}", flush=True)

        load_only = timed([sys.executable, "-c", "import sys; from modiste.data.safe_pickle import load_npy; "
                           "load_npy(sys.argv[1], encoding='bytes')", str(src)])
        modiste = Path(sys.executable).with_name("modiste")
        cli = [str(modiste)] if modiste.exists() else [sys.executable, "-c", "from modiste.cli import app; app()"]
        run = timed([*cli, "import", "dvbpr", str(src), "--out", str(out), "--quiet"])
        if run["rc"] != 0:
            sys.exit(f"the import failed:\n{run['tail']}")
        manifest = json.loads((out / "manifest.json").read_text())
        report = {
            "file": FILE_NAME, "file_bytes": size, "holds": held, "generate_s": round(generate_s),
            "load_npy_only": {"wall_s": load_only["wall_s"], "peak_rss_bytes": load_only["peak_rss_bytes"],
                              "ratio": round(load_only["peak_rss_bytes"] / size, 3)},
            "import": {"wall_s": run["wall_s"], "peak_rss_bytes": run["peak_rss_bytes"],
                       "ratio": round(run["peak_rss_bytes"] / size, 3),
                       "images_npy_bytes": (out / "images.npy").stat().st_size,
                       "report": manifest["import"]},
            "machine": f"{platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()}",
        }
        print(json.dumps(report, indent=2))
        print(f"\nfile {size / 2**30:.2f} GiB | import {run['wall_s']:.0f} s | peak RSS "
              f"{run['peak_rss_bytes'] / 2**30:.2f} GiB | peak / file = {report['import']['ratio']:.2f} "
              f"(load_npy alone: {report['load_npy_only']['ratio']:.2f})")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
