"""Load on the app: concurrent shoppers asking for their top 10, against a real `modiste serve`.

    python bench/app_load.py --data data/world-default --rec-run data/runs/bpr-default \
        --out reports/app-load [--clients 16] [--users 256] [--seconds 30]

Starts `modiste serve` on loopback (its own SQLite file in the report folder, so the dataset's
database is left alone) and issues tokens to `--users` distinct users. The load comes from wrk
(`apt-get install wrk`), a C client that costs the 2 cores far less than a Python one would:
`--clients` keep-alive connections call GET /me/recommendations?k=10 back to back, each request
signed by the next user in turn, so the server sees many shoppers, not one. A warm-up pass comes
first (every user's first request reads their state from the database).

Besides wrk's latency percentiles and throughput, the report gives the server's own CPU time per
request (from /proc), which noise from other processes on the machine barely moves.

Writes REPORT/report.json ({"clients", "users", "requests", "throughput_rps", "latency_ms": {p50,
p90, p99, max}, "server_cpu_ms_per_request", "errors", "machine": {cpus, load}}) and
REPORT/report.md. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from modiste.app.auth import issue_shopper_token
from modiste.app.db import Database
from modiste.data import Dataset
from modiste.io import write_json

# Each request takes the next token; done() prints wrk's exact percentiles as one JSON line.
WRK_SCRIPT = """
local tokens, i = {}, 0
for line in io.lines("%(tokens)s") do tokens[#tokens + 1] = line end
request = function()
  i = i + 1
  return wrk.format("GET", "/me/recommendations?k=10", {["Authorization"] = "Bearer " .. tokens[(i %% #tokens) + 1]})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('REPORT {"requests": %%d, "seconds": %%.3f, "p50": %%d, "p90": %%d, "p99": %%d, "max": %%d, '
    .. '"errors": %%d}\\n', summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, rec_run: Path, db: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "modiste.cli", "serve", "--data", str(data), "--rec-run", str(rec_run),
                             "--db", db, "--port", str(port), "--search", "keyword"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
            return proc
        except httpx2.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer within 300 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, clients: int, seconds: float) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s", "-s", str(script), url],
                         check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("REPORT "))
    return json.loads(line.removeprefix("REPORT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--rec-run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--users", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark drives the server with wrk: apt-get install wrk")

    args.out.mkdir(parents=True, exist_ok=True)
    db_file = args.out / "app.sqlite"
    db_file.unlink(missing_ok=True)
    db_url = f"sqlite:///{db_file.resolve()}"
    ds = Dataset(args.data)
    db = Database(db_url)
    db.upgrade()
    tokens = [issue_shopper_token(db, ds, user) for user in ds.users.index[:args.users]]
    db.close()
    (args.out / "tokens.txt").write_text("\n".join(tokens) + "\n")
    script = args.out / "load.lua"
    script.write_text(WRK_SCRIPT % {"tokens": (args.out / "tokens.txt").resolve()})

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args.data, args.rec_run, db_url, port)
    try:
        wrk(url, script, args.clients, max(3.0, len(tokens) / 100))  # warm-up: every user's state read once
        load_before, cpu_before = os.getloadavg(), cpu_seconds(server.pid)
        result = wrk(url, script, args.clients, args.seconds)
        cpu = cpu_seconds(server.pid) - cpu_before
    finally:
        server.kill()
        server.wait()
        (args.out / "tokens.txt").unlink()
    report = {
        "clients": args.clients, "users": len(tokens), "seconds": result["seconds"], "requests": result["requests"],
        "throughput_rps": round(result["requests"] / result["seconds"], 1),
        "latency_ms": {k: round(result[k] / 1000, 2) for k in ("p50", "p90", "p99", "max")},
        "server_cpu_ms_per_request": round(1000 * cpu / max(result["requests"], 1), 3),
        "errors": result["errors"], "endpoint": "GET /me/recommendations?k=10", "run": str(args.rec_run),
        "client": "wrk, 1 thread",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
    }
    write_json(args.out / "report.json", report)
    lat = report["latency_ms"]
    md = ("| clients | users | requests | throughput (req/s) | p50 ms | p90 ms | p99 ms | max ms | server CPU ms/req | errors |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {args.clients} | {len(tokens)} | {result['requests']} | {report['throughput_rps']} | {lat['p50']} | "
          f"{lat['p90']} | {lat['p99']} | {lat['max']} | {report['server_cpu_ms_per_request']} | {result['errors']} |\n")
    (args.out / "report.md").write_text(md, encoding="utf-8")
    print(md)
    print(json.dumps(report["machine"]))


if __name__ == "__main__":
    main()
