"""Approximate top-k on a million-item catalogue: recall@10 against exact search, latency, memory and
build time of the app's `ItemIndex` kinds (flat, hnsw, ivf), with and without a filter.

    python bench/ann_recall.py [--run data/runs/bpr-default] [--items 1000000] [--queries 1000] \
        [--out reports/ann-recall]

The catalogue resembles a trained factor model's: the item vectors of a ranking run in the app's
inner-product form (`factor_form`: factors plus the bias column) are resampled by a smoothed
bootstrap to `--items` vectors. Each new vector is a real one plus Gaussian noise drawn with the real
vectors' covariance scaled by H^2, shrunk towards the mean by 1/sqrt(1 + H^2): the mean and the
covariance of the real vectors are kept, and each real item becomes a small cluster of look-alikes
(popular regions of the space stay dense, as in a real catalogue). The queries are `--queries` real
user vectors of the run, drawn without replacement.

Every index is searched one query at a time on ONE faiss thread (`faiss.omp_set_num_threads(1)`):
latency p50/p99 per query, throughput = 1 / mean latency. Building uses `--build-threads` (2 by
default: HNSW on a million items takes many minutes on one). Recall@10 is the share of the exact top
10 (flat search, the same filter) that an index returns. The filtered rows use a random mask that
allows `--allowed` of the items (the app's IDSelectorBitmap path). Memory is the serialised index.

Writes REPORT/report.json, REPORT/report.md (the table) and REPORT/recall-latency.png, and prints
the table. Not run in CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from modiste.app.index import IndexSpec, ItemIndex
from modiste.app.recommend import factor_form
from modiste.io import atomic_path, write_json
from modiste.rec.base import load_model
from modiste.rec.train import BEST

H = 0.5  # the bootstrap's noise, relative to the real vectors' spread
K = 10
SETTINGS = [("flat", {}), *[("hnsw", {"ef_search": e}) for e in (16, 32, 64, 128, 256)],
            *[("ivf", {"nprobe": p}) for p in (4, 8, 16, 32, 64)]]


def synthetic_items(real: np.ndarray, n: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """n vectors with the mean and covariance of `real`, each near one real vector (smoothed bootstrap)."""
    mean = real.mean(0)
    chol = np.linalg.cholesky(np.cov(real, rowvar=False) + 1e-8 * np.eye(real.shape[1]))
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        base = real[rng.integers(len(real), size=m)] - mean
        noise = rng.standard_normal((m, real.shape[1])) @ chol.T
        out[start:start + m] = mean + (base + H * noise) / np.sqrt(1 + H ** 2)
    return out


def index_bytes(index: faiss.Index) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "index")
        faiss.write_index(index, path)
        return os.path.getsize(path)


def timed_search(index: ItemIndex, queries: np.ndarray, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Top-K rows of each query, searched one at a time, and each search's seconds."""
    rows = np.empty((len(queries), K), np.int64)
    seconds = np.empty(len(queries))
    for q, query in enumerate(queries):
        start = time.perf_counter()
        rows[q] = index.search(query[None, :], K, allowed)[0][0]
        seconds[q] = time.perf_counter() - start
    return rows, seconds


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f[f >= 0], e)) / K for f, e in zip(found, exact)]))


def table_row(r: dict) -> str:
    index = f"{r['kind']} M=32" if r["kind"] == "hnsw" else r["kind"]
    knob = f"{r['knob']}={r['param']}" if r["knob"] else "-"
    return (f"| {index} | {knob} | {'yes' if r['filtered'] else 'no'} | {r['recall_at_10']:.3f} | "
            f"{r['latency_ms']['p50']} | {r['latency_ms']['p99']} | {r['throughput_qps']} | {r['build_s']} | "
            f"{r['index_mib']} | {'-' if r['disallowed_returned'] is None else r['disallowed_returned']} |\n")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kind, color in (("hnsw", "tab:blue"), ("ivf", "tab:orange"), ("flat", "black")):
        for filtered, style in ((False, "-o"), (True, "--s")):
            rs = [r for r in results if r["kind"] == kind and r["filtered"] == filtered]
            ax.plot([r["latency_ms"]["p50"] for r in rs], [r["recall_at_10"] for r in rs], style, color=color,
                    label=f"{kind}{' (95% allowed)' if filtered else ''}", markersize=4)
            for r in rs:
                if r["param"] is not None and not filtered:
                    ax.annotate(str(r["param"]), (r["latency_ms"]["p50"], r["recall_at_10"]), fontsize=7,
                                textcoords="offset points", xytext=(3, -9))
    ax.set_xscale("log")
    ax.set_xlabel("latency per query, p50 (ms, one thread, log scale)")
    ax.set_ylabel("recall@10 against exact search")
    ax.set_title(f"Top-10 by inner product over {results[0]['items']:,} items (labels: efSearch / nprobe)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("data/runs/bpr-default"))
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--allowed", type=float, default=0.95)
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/ann-recall"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    rng = np.random.default_rng(args.seed)
    users, real_items = factor_form(load_model(args.run / BEST))
    items = synthetic_items(real_items, args.items, rng)
    queries = users[rng.choice(len(users), size=min(args.queries, len(users)), replace=False)]
    masks = {False: None, True: rng.random(args.items) < args.allowed}
    print(f"{args.items:,} items x {items.shape[1]} dims from {len(real_items):,} real ones "
          f"({items.nbytes / 2**20:.0f} MiB), {len(queries)} queries", flush=True)

    results, exact, built, shape = [], {}, {}, {"hnsw_m": 32}
    for kind, knobs in SETTINGS:
        if kind not in built:
            built.clear()  # one index alive at a time: a million vectors are 260 MB, HNSW's graph as much again
            faiss.omp_set_num_threads(args.build_threads)
            start = time.perf_counter()
            built[kind] = ItemIndex(items, IndexSpec(kind=kind, hnsw_m=32))
            build_s = time.perf_counter() - start
            size = index_bytes(built[kind].index)
            print(f"{kind}: built in {build_s:.0f} s on {args.build_threads} thread(s), {size / 2**20:.0f} MiB", flush=True)
            if kind == "hnsw":
                shape["hnsw_ef_construction"] = built[kind].index.hnsw.efConstruction
            if kind == "ivf":
                shape["ivf_nlist"] = built[kind].index.nlist
        index = built[kind]
        index.spec = dataclasses.replace(index.spec, **knobs)
        faiss.omp_set_num_threads(1)
        for filtered, allowed in masks.items():
            rows, seconds = timed_search(index, queries, allowed)
            if kind == "flat":
                exact[filtered] = rows
            returned = rows[rows >= 0]
            disallowed = int((~allowed[returned]).sum()) if filtered else None  # must be 0: the selector's proof
            ms = seconds * 1000
            results.append({
                "kind": kind, "param": next(iter(knobs.values()), None), "knob": next(iter(knobs), None),
                "filtered": filtered, "items": args.items, "recall_at_10": round(recall(rows, exact[filtered]), 4),
                "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3)},
                "throughput_qps": round(1000 / float(ms.mean()), 1), "build_s": round(build_s, 1),
                "index_mib": round(size / 2**20, 1), "disallowed_returned": disallowed,
            })
            r = results[-1]
            print(f"  {kind} {knobs} filtered={filtered}: recall@10 {r['recall_at_10']:.3f}, "
                  f"p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms", flush=True)

    report = {
        "items": args.items, "dims": int(items.shape[1]), "queries": len(queries), "k": K,
        "catalogue": f"smoothed bootstrap (H={H}) of the {len(real_items):,} item vectors of {args.run}, "
                     "bias column included; queries: real user vectors of the run",
        "allowed_share": args.allowed, "build_threads": args.build_threads, "search_threads": 1,
        **shape, "faiss": faiss.__version__, "results": results,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    write_json(args.out / "report.json", report)
    plot(results, args.out / "recall-latency.png")
    md = (f"Top-{K} by inner product over {args.items:,} items ({items.shape[1]} dims: {report['catalogue']}), "
          f"{len(queries)} queries, one at a time on one faiss thread; built on {args.build_threads} thread(s). "
          f"Filtered: {args.allowed:.0%} of the items allowed (IDSelectorBitmap); 'disallowed' counts returned "
          f"items outside the mask. HNSW: M=32, efConstruction={shape.get('hnsw_ef_construction')}; IVF: "
          f"nlist={shape.get('ivf_nlist')}. faiss {faiss.__version__}.\n\n"
          "| index | knob | filtered | recall@10 | p50 ms | p99 ms | queries/s | build s | size MiB | disallowed |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n"
          + "".join(map(table_row, results))
          + f"\nLoad average before/after: {report['machine']['load_before']} / {report['machine']['load_after']}.\n")
    (args.out / "report.md").write_text(md, encoding="utf-8")
    print(md)
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
