"""Import time and peak memory of the pog and hm importers on large synthetic inputs in the releases' layouts.

    python bench/import_large.py                                   # both formats, the default sizes
    python bench/import_large.py --formats hm --hm-transactions 31000000 --hm-customers 1370000

Writes, under --work, a synthetic H&M release (articles.csv with the real 25 columns, customers.csv,
transactions_train.csv with article ids stripped of their leading zero, images/0XX/0XXXXXXXXX.jpg for
some articles) and a synthetic POG release (item_data.txt with Chinese titles, outfit_data.txt,
user_data.txt with users on several lines, a picture folder named by item_id), each with a few unknown
ids so that the skip paths run. Then imports each in a fresh process under `/usr/bin/time -v` and
reports wall time, the maximum resident set size, and the importer's own report (seconds, peak memory,
counts, skips), with the machine's load. Writes --out/import_large.json. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from modiste.data.importers.hm import ARTICLE_COLUMNS

ARTICLES_HEADER = ",".join(ARTICLE_COLUMNS)  # the real file's 25 columns, in order
TYPES = [("Trousers", "Garment Lower body"), ("Sweater", "Garment Upper body"), ("Dress", "Garment Full body"),
         ("Vest top", "Garment Upper body"), ("Sneakers", "Shoes"), ("Bag", "Accessories"), ("Bra", "Underwear"),
         ("Shorts", "Garment Lower body"), ("Jacket", "Garment Upper body"), ("Skirt", "Garment Lower body")]
COLOURS = [("09", "Black"), ("10", "White"), ("73", "Dark Blue"), ("42", "Red"), ("13", "Beige"), ("-1", "Unknown")]
PATTERNS = [("1010016", "Solid"), ("1010017", "Stripe"), ("1010001", "All over pattern"), ("1010010", "Melange")]
HANZI = "韩版宽松百搭显瘦高腰阔腿牛仔裤女夏季新款碎花连衣裙法式复古方领条纹衬衫长袖短袖纯棉恤小白鞋帆布鞋吊带裙针织开衫外套"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--formats", nargs="+", default=["hm", "pog"], choices=["hm", "pog"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/modiste-import-bench"), help="where inputs and outputs go")
    ap.add_argument("--out", type=Path, default=Path("reports/import_large"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=3000, help="pictures per format")
    ap.add_argument("--image-size", type=int, nargs=2, default=(350, 525), help="width height of each picture")
    ap.add_argument("--hm-articles", type=int, default=50_000)
    ap.add_argument("--hm-customers", type=int, default=300_000)
    ap.add_argument("--hm-transactions", type=int, default=2_000_000)
    ap.add_argument("--pog-items", type=int, default=400_000)
    ap.add_argument("--pog-outfits", type=int, default=150_000)
    ap.add_argument("--pog-users", type=int, default=200_000)
    ap.add_argument("--pog-clicks", type=int, default=30, help="mean clicked items per user line")
    ap.add_argument("--keep", action="store_true", help="keep the synthetic inputs and the imported datasets")
    args = ap.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "load_before": os.getloadavg()}, "runs": {}}
    for name in args.formats:
        rng = np.random.default_rng(args.seed)
        src = args.work / f"{name}-src"
        shutil.rmtree(src, ignore_errors=True)
        start = time.perf_counter()
        sizes, options = (write_hm if name == "hm" else write_pog)(src, rng, args)
        made = time.perf_counter() - start
        print(f"{name}: wrote the synthetic release in {made:.0f} s: {sizes}", flush=True)
        run = timed_import(name, src, args.work / f"{name}-out", options)
        run.update(input=sizes, input_mib=round(du(src) / 2**20, 1), generate_seconds=round(made, 1))
        results["runs"][name] = run
        print(summary(name, run), flush=True)
        if not args.keep:
            shutil.rmtree(src, ignore_errors=True)
            shutil.rmtree(args.work / f"{name}-out", ignore_errors=True)
    results["machine"]["load_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "import_large.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'import_large.json'}")
    return results


# ---------------------------------------------------------------------------- H&M

def write_hm(root: Path, rng: np.random.Generator, args) -> tuple[dict, dict]:
    root.mkdir(parents=True)
    n_art, n_cust, n_tx = args.hm_articles, args.hm_customers, args.hm_transactions
    codes = np.sort(rng.choice(np.arange(100_000, 960_000), size=n_art // 3 + 1, replace=False))
    product = codes[np.arange(n_art) // 3]
    article = product * 1000 + 1 + np.arange(n_art) % 3
    t = rng.integers(0, len(TYPES), n_art)
    c = rng.integers(0, len(COLOURS), n_art)
    p = rng.integers(0, len(PATTERNS), n_art)
    df = pd.DataFrame({
        "article_id": [f"{a:010d}" for a in article], "product_code": [f"{a:07d}" for a in product],
        "prod_name": [f"Item {a}" for a in product], "product_type_no": 250 + t,
        "product_type_name": [TYPES[k][0] for k in t], "product_group_name": [TYPES[k][1] for k in t],
        "graphical_appearance_no": [PATTERNS[k][0] for k in p],
        "graphical_appearance_name": [PATTERNS[k][1] for k in p],
        "colour_group_code": [COLOURS[k][0] for k in c], "colour_group_name": [COLOURS[k][1] for k in c],
        "perceived_colour_value_id": 4, "perceived_colour_value_name": "Dark", "perceived_colour_master_id": 5,
        "perceived_colour_master_name": "Black", "department_no": 1676, "department_name": "Jersey Basic",
        "index_code": "A", "index_name": "Ladieswear", "index_group_no": 1, "index_group_name": "Ladieswear",
        "section_no": 16, "section_name": "Womens Everyday Basics", "garment_group_no": 1002,
        "garment_group_name": "Jersey Basic",
        "detail_desc": np.where(rng.random(n_art) < 0.004, "", "Soft jersey top, narrow straps and a rounded hem."),
    })
    assert ",".join(df.columns) == ARTICLES_HEADER
    df.to_csv(root / "articles.csv", index=False)

    customers = np.array([os.urandom(32).hex() for _ in range(n_cust)], dtype=object)
    pd.DataFrame({"customer_id": customers, "FN": "", "Active": "", "club_member_status": "ACTIVE",
                  "fashion_news_frequency": "NONE", "age": rng.integers(16, 90, n_cust),
                  "postal_code": customers}).to_csv(root / "customers.csv", index=False)

    # Skewed customers and articles, days in two years, sorted by day as the release is.
    who = np.minimum((rng.pareto(1.2, n_tx) * n_cust / 20).astype(np.int64), n_cust - 1)
    what = np.minimum((rng.pareto(1.0, n_tx) * n_art / 30).astype(np.int64), n_art - 1)
    day = np.sort(rng.integers(0, 734, n_tx))
    ids = article[what].astype(object)
    ids[rng.random(n_tx) < 1e-4] = 999_999_999  # unknown articles: skipped and counted
    dates = (np.datetime64("2018-09-20") + day).astype(str)
    tx = pd.DataFrame({"t_dat": dates, "customer_id": customers[who], "article_id": ids,
                       "price": np.round(rng.random(n_tx) * 0.1, 6), "sales_channel_id": 1 + (rng.random(n_tx) < 0.7)})
    tx.to_csv(root / "transactions_train.csv", index=False)

    with_photo = rng.choice(n_art, size=min(args.images, n_art), replace=False)
    for k in with_photo:
        folder = root / "images" / f"{article[k]:010d}"[:3]
        folder.mkdir(parents=True, exist_ok=True)
        picture(rng, args.image_size).save(folder / f"{article[k]:010d}.jpg", quality=90)
    return {"articles": n_art, "customers": n_cust, "transactions": n_tx, "images": len(with_photo)}, {}


# ---------------------------------------------------------------------------- POG

def write_pog(root: Path, rng: np.random.Generator, args) -> tuple[dict, dict]:
    root.mkdir(parents=True)
    n_items, n_outfits, n_users = args.pog_items, args.pog_outfits, args.pog_users
    items = np.array([os.urandom(16).hex() for _ in range(n_items)], dtype=object)
    cates = rng.choice(np.arange(50_010_000, 50_010_075), n_items).astype(str)
    glyphs = np.array(list(HANZI), dtype=object)
    title_len = rng.integers(8, 30, n_items)
    chars = glyphs[rng.integers(0, len(glyphs), int(title_len.sum()))]
    cuts = np.cumsum(title_len)[:-1]
    with open(root / "item_data.txt", "w", encoding="utf-8") as f:
        for i, (item, cate, title) in enumerate(zip(items, cates, np.split(chars, cuts))):
            comma = "," if i % 7 == 0 else ""  # some titles hold a comma
            f.write(f"{item},{cate},http://img.alicdn.com/bao/uploaded/i{i % 4}/TB2{item[:20]}.jpg,"
                    f"{''.join(title[:5])}{comma}{''.join(title[5:])}\n")

    outfits = np.array([os.urandom(16).hex() for _ in range(n_outfits)], dtype=object)
    sizes = rng.integers(3, 6, n_outfits)
    members = items[rng.integers(0, n_items, int(sizes.sum()))]
    members[rng.random(len(members)) < 1e-4] = "f" * 32  # unknown items: the outfit is skipped
    with open(root / "outfit_data.txt", "w", encoding="utf-8") as f:
        for outfit, its in zip(outfits, np.split(members, np.cumsum(sizes)[:-1])):
            f.write(f"{outfit},{';'.join(its)}\n")

    # A user per line, a tenth of them on a second line; clicks skewed to popular items.
    users = np.array([os.urandom(16).hex() for _ in range(n_users)], dtype=object)
    lines = np.concatenate([np.arange(n_users), rng.choice(n_users, n_users // 10, replace=False)])
    counts = np.maximum(1, rng.poisson(args.pog_clicks, len(lines)))
    clicked = items[np.minimum((rng.pareto(1.0, int(counts.sum())) * n_items / 50).astype(np.int64), n_items - 1)]
    clicked[rng.random(len(clicked)) < 1e-4] = "e" * 32
    outfit_of_line = outfits[rng.integers(0, n_outfits, len(lines))]
    with open(root / "user_data.txt", "w", encoding="utf-8") as f:
        for user, its, outfit in zip(users[lines], np.split(clicked, np.cumsum(counts)[:-1]), outfit_of_line):
            f.write(f"{user},{';'.join(its)},{outfit}\n")

    pictures = root / "pictures"
    pictures.mkdir()
    for k in rng.choice(n_items, size=min(args.images, n_items), replace=False):
        picture(rng, args.image_size).save(pictures / f"{items[k]}.jpg", quality=90)
    return ({"items": n_items, "outfits": n_outfits, "user_lines": len(lines), "clicks": int(counts.sum()),
             "images": min(args.images, n_items)}, {"images": str(pictures)})


def picture(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A garment-like photo: a coloured block with a little noise on a light background."""
    w, h = size
    array = np.full((h, w, 3), 235, np.uint8)
    array[h // 8: -h // 8, w // 5: -w // 5] = rng.integers(0, 256, 3)
    array = np.clip(array + rng.integers(-12, 12, array.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


# ---------------------------------------------------------------------------- measuring

def timed_import(name: str, src: Path, out: Path, options: dict) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    code = ("import json, sys; from modiste.data.importers import import_dataset; "
            f"r = import_dataset({name!r}, {str(src)!r}, {str(out)!r}, **{options!r}); "
            "print('REPORT ' + json.dumps(r.to_dict()))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], capture_output=True, text=True,
                          env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{name} import failed:\n{proc.stderr[-3000:]}")
    report = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT "))[7:])
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", proc.stderr).group(1)
    seconds = sum(float(x) * 60 ** k for k, x in enumerate(reversed(wall.split(":"))))
    return {"wall_seconds": round(seconds, 1), "max_rss_mib": round(rss_kib / 1024, 1),
            "report_seconds": report["seconds"], "report_peak_memory_mib": report["peak_memory_mib"],
            "counts": report["counts"], "skipped": {k: v["count"] for k, v in report["skipped"].items()},
            "output_mib": round(du(out) / 2**20, 1), "load_after": os.getloadavg()}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def summary(name: str, run: dict) -> str:
    lines = [f"{name}: {run['input']} ({run['input_mib']} MiB in, {run['output_mib']} MiB out)",
             f"  /usr/bin/time: {run['wall_seconds']} s wall, max RSS {run['max_rss_mib']} MiB",
             f"  import report: {run['report_seconds']} s, peak memory {run['report_peak_memory_mib']} MiB",
             f"  counts {run['counts']}", f"  skipped {run['skipped']}", f"  load after {run['load_after']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
