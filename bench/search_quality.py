"""Catalogue search, keyword against sentence embeddings: how well a query that names a colour, a
pattern and a category finds the items that have all three, and what it costs.

    python bench/search_quality.py --data data/world-default --out reports/search-quality [--queries 20]

Queries are drawn from the dataset's own vocabulary: `--queries` (colour, pattern, category) triples
that at least 10 items share, each phrased twice, with the vocabulary's words ("red stripes shirt")
and as a shopper would say it ("red striped shirt"). An item is relevant when it has all three
values. For each matcher (keyword: every word literally, catalogue order; sentence-cosine: by
meaning alone; sentence: the app's default, meaning plus a nudge for the literal words) it reports
precision@10 (a short answer counts its missing places as misses), the share of the relevant items
the search matches at all (recall), how many items match, and the latency of one uncached search
(`Catalogue.search`, first page). It also times the model's load and the embedding of the whole
catalogue on `--threads` torch threads: embedded afresh into the app's cache (so that the next
`modiste serve` of the dataset starts at once), then read back from it.

Writes REPORT/report.json and REPORT/report.md and prints the table. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from modiste.app.catalogue import Catalogue, KeywordMatcher
from modiste.app.textsearch import SentenceMatcher, item_texts
from modiste.cache import cache_root
from modiste.data import Dataset
from modiste.io import write_json
from modiste.sentences import embedding_key, shared_encoder

CACHE = cache_root() / "text-embeddings"  # the app's: a run leaves the dataset's embeddings there for `modiste serve`
MIN_RELEVANT = 10  # so that a perfect search fills its first page with relevant items
SAID = {"stripes": "striped", "checks": "checked", "dots": "polka-dot", "solid": "plain"}  # else the word itself


def queries(ds: Dataset, n: int, seed: int) -> list[dict]:
    """n (colour, pattern, category) triples that at least MIN_RELEVANT items share, in both phrasings."""
    counts = ds.items.groupby(["color", "pattern", "category"]).size()
    counts = counts[counts >= MIN_RELEVANT]
    if len(counts) < n:
        raise SystemExit(f"only {len(counts)} (colour, pattern, category) triples have {MIN_RELEVANT} items: "
                         "ask for fewer --queries or use a larger dataset")
    picked = counts.sample(n, random_state=seed)
    out = []
    for (color, pattern, category), _ in picked.items():
        out.append({"phrasing": "vocabulary", "text": f"{color} {pattern} {category}",
                    "values": (color, pattern, category)})
        out.append({"phrasing": "natural", "text": f"{color} {SAID.get(pattern, pattern)} {category}",
                    "values": (color, pattern, category)})
    return out


def evaluate(catalogue: Catalogue, qs: list[dict], relevant: dict) -> dict:
    """Per phrasing: mean precision@10, recall of the matched set, matched count, latency ms p50/p99."""
    results = {}
    for phrasing in ("vocabulary", "natural"):
        precision, recall, matched, latency = [], [], [], []
        for q in (q for q in qs if q["phrasing"] == phrasing):
            rel = relevant[q["values"]]
            catalogue.matcher.scores.cache_clear()
            start = time.perf_counter()
            page = catalogue.search(text=q["text"], limit=10)
            latency.append((time.perf_counter() - start) * 1000)
            all_matched = catalogue.search(text=q["text"], limit=len(catalogue)).rows
            precision.append(rel[page.rows].sum() / 10)
            recall.append(rel[all_matched].sum() / rel.sum())
            matched.append(page.total)
        results[phrasing] = {"precision_at_10": round(float(np.mean(precision)), 3),
                             "recall": round(float(np.mean(recall)), 3),
                             "matched_median": int(np.median(matched)),
                             "latency_ms": {"p50": round(float(np.percentile(latency, 50)), 2),
                                            "p99": round(float(np.percentile(latency, 99)), 2)}}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/world-default"))
    parser.add_argument("--out", type=Path, default=Path("reports/search-quality"))
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    ds = Dataset(args.data)
    texts = item_texts(ds.items)

    start = time.perf_counter()
    encoder = shared_encoder()
    model_load_s = time.perf_counter() - start

    (CACHE / f"{embedding_key(texts, encoder.name)}.npy").unlink(missing_ok=True)  # embed afresh, timed
    start = time.perf_counter()
    sentence = SentenceMatcher(texts, encoder=encoder, cache_dir=CACHE, progress=True)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    cosine_only = SentenceMatcher(texts, encoder=encoder, cache_dir=CACHE, lexical_weight=0.0)
    cache_read_s = time.perf_counter() - start
    keyword = KeywordMatcher(ds.items["caption"] + " " + ds.items["description"])

    qs = queries(ds, args.queries, args.seed)
    items = ds.items
    relevant = {q["values"]: ((items["color"] == q["values"][0]) & (items["pattern"] == q["values"][1])
                              & (items["category"] == q["values"][2])).to_numpy() for q in qs}
    matchers = {"keyword": keyword, "sentence-cosine": cosine_only, "sentence": sentence}
    results = {name: evaluate(Catalogue(ds, m), qs, relevant) for name, m in matchers.items()}

    report = {
        "dataset": ds.name, "items": len(texts), "queries": len(qs) // 2, "threads": args.threads,
        "model": encoder.name, "model_load_s": round(model_load_s, 2),
        "catalogue_embedding_s": round(embed_s, 1), "items_per_s": round(len(texts) / embed_s, 1),
        "cache_read_s": round(cache_read_s, 2), "results": results,
        "example_queries": [q["text"] for q in qs[:6]],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    write_json(args.out / "report.json", report)
    rows = "".join(
        f"| {name} | {phrasing} | {r['precision_at_10']:.3f} | {r['recall']:.3f} | {r['matched_median']} | "
        f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} |\n"
        for name, by_phrasing in results.items() for phrasing, r in by_phrasing.items())
    md = (f"Search on '{ds.name}' ({len(texts)} items), {len(qs) // 2} colour + pattern + category queries, "
          f"{args.threads} torch thread(s).\n\n"
          "| matcher | phrasing | precision@10 | recall | matched (median) | latency p50 ms | p99 ms |\n"
          "|---|---|---|---|---|---|---|\n" + rows +
          f"\nModel {encoder.name}: load {model_load_s:.1f} s; the whole catalogue embedded in {embed_s:.0f} s "
          f"({len(texts) / embed_s:.0f} items/s), read back from the cache in {cache_read_s:.1f} s.\n"
          f"Load average before/after: {report['machine']['load_before']} / {report['machine']['load_after']}.\n")
    (args.out / "report.md").write_text(md, encoding="utf-8")
    print(md)
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
