"""Load on the app: concurrent shoppers asking for their top 10, against a real `modiste serve`.

    python bench/app_load.py --data data/world-default --rec-run data/runs/bpr-default \
        --out reports/app-load [--clients 16] [--seconds 30]

Starts `modiste serve` on loopback (its own SQLite file in the report folder, so the dataset's
database is left alone), issues one token per client for distinct users, then runs `--clients`
concurrent clients (asyncio, one keep-alive connection each) that call
GET /me/recommendations?k=10 back to back for `--seconds` after a short warm-up. The client runs
in this process, so it shares the machine's 2 cores with the server: the figures include that.

Writes REPORT/report.json ({"clients", "requests", "throughput_rps", "latency_ms": {p50, p90, p99,
max}, "errors", "machine": {cpus, load}}) and REPORT/report.md. Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import numpy as np

from modiste.data import Dataset
from modiste.io import write_json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def modiste(*args: str) -> list[str]:
    return [sys.executable, "-m", "modiste.cli", *args]


def start_server(data: Path, rec_run: Path, db: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(modiste("serve", "--data", str(data), "--rec-run", str(rec_run), "--db", db,
                                    "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return proc
        except httpx2.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer within 120 s")


async def client(url: str, token: str, until: float, warm_until: float, latencies: list[float],
                 errors: list[int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        while (now := time.perf_counter()) < until:
            answer = await http.get("/me/recommendations", params={"k": 10})
            done = time.perf_counter()
            if answer.status_code != 200:
                errors.append(answer.status_code)
            elif now >= warm_until:
                latencies.append(done - now)


async def drive(url: str, tokens: list[str], seconds: float, warmup: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    warm_until, until = start + warmup, start + warmup + seconds
    await asyncio.gather(*(client(url, t, until, warm_until, latencies, errors) for t in tokens))
    return latencies, errors, time.perf_counter() - warm_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rec-run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{(args.out / 'app.sqlite').resolve()}"
    users = Dataset(args.data).users.index[:args.clients]
    tokens = [subprocess.run(modiste("serve", "--data", str(args.data), "--db", db, "--issue-token", u),
                             check=True, capture_output=True, text=True).stdout.strip() for u in users]
    port = free_port()
    server = start_server(args.data, args.rec_run, db, port)
    try:
        load_before = os.getloadavg()
        latencies, errors, elapsed = asyncio.run(drive(f"http://127.0.0.1:{port}", tokens, args.seconds, args.warmup))
    finally:
        server.kill()
        server.wait()
    ms = np.array(latencies) * 1000
    report = {
        "clients": args.clients, "seconds": round(elapsed, 1), "requests": len(ms),
        "throughput_rps": round(len(ms) / elapsed, 1),
        "latency_ms": {f"p{q}": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)}
        | {"max": round(float(ms.max()), 2)},
        "errors": len(errors), "endpoint": "GET /me/recommendations?k=10", "run": str(args.rec_run),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    write_json(args.out / "report.json", report)
    lat = report["latency_ms"]
    md = ("| clients | requests | throughput (req/s) | p50 ms | p90 ms | p99 ms | max ms | errors |\n"
          "|---|---|---|---|---|---|---|---|\n"
          f"| {args.clients} | {len(ms)} | {report['throughput_rps']} | {lat['p50']} | {lat['p90']} | {lat['p99']} | "
          f"{lat['max']} | {len(errors)} |\n")
    (args.out / "report.md").write_text(md, encoding="utf-8")
    print(md)
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
