"""`registrum server`: start-up time, idle memory, small-request latency on a kept-alive connection.

    python bench/bench_server.py
    python bench/bench_server.py --starts 5 --requests 1000

Start-up: from process start to the first 200 from `GET /api/v1/health`, with
a fresh, empty SQLite store each time (so the figure includes creating the
schema); the median of `--starts`. Idle memory: VmRSS of the server process
(/proc/<pid>/status) after start-up and a few requests. Latency: `--requests`
small GETs (`/api/v1/health` and `GET /api/v1/runs/{id}`, alternating) on one
reused `http.client.HTTPConnection`; median and p99 per request. A p99 near
40 ms would mean a Nagle/delayed-ACK stall on the kept-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import percentile, print_platform, report, rss_mb, start_server, stop

TARGET_START_S = 2.0
TARGET_RSS_MB = 200
TARGET_LATENCY_MS = 5.0


def start(folder: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """Starts a server on a fresh SQLite store in `folder`: the process, its port, seconds taken."""
    return start_server(f"sqlite:///{folder}/r.db", folder / "blobs")


def call(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> bytes:
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return data


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawTextHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--starts", type=int, default=3, help="server starts to time (default 3)")
    parser.add_argument("--requests", type=int, default=200, help="timed GETs (default 200)")
    args = parser.parse_args(argv)
    if args.starts < 1 or args.requests < 2:
        parser.error("--starts must be at least 1 and --requests at least 2")
    print_platform()

    with tempfile.TemporaryDirectory(prefix="registrum-bench-server-") as tmp:
        starts = []
        for i in range(args.starts):
            proc, _, seconds = start(Path(tmp) / f"start{i}")
            stop(proc)
            starts.append(seconds)
        median = statistics.median(starts)
        shown = ", ".join(f"{s:.2f}" for s in starts)
        report(
            "server start to healthy",
            f"{median:.2f} s median",
            median <= TARGET_START_S,
            f"<= {TARGET_START_S:.0f} s",
            f"  starts: {shown} s",
        )

        proc, port, _ = start(Path(tmp) / "serve")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                run = json.loads(call(conn, "POST", "/api/v1/runs", b'{"project": "bench"}'))
                paths = ["/api/v1/health", f"/api/v1/runs/{run['id']}"]
                for i in range(10):  # warm both routes
                    call(conn, "GET", paths[i % 2])
                idle = rss_mb(proc.pid)
                report(
                    "server idle RSS",
                    f"{idle:.0f} MB",
                    idle <= TARGET_RSS_MB,
                    f"<= {TARGET_RSS_MB} MB",
                )

                times: list[list[float]] = [[], []]
                for i in range(args.requests):
                    began = time.perf_counter()
                    call(conn, "GET", paths[i % 2])
                    times[i % 2].append((time.perf_counter() - began) * 1000)
            finally:
                conn.close()
        finally:
            stop(proc)

    every = sorted(times[0] + times[1])
    for label, sample in (("health", times[0]), ("get run", times[1]), ("all", every)):
        ordered = sorted(sample)
        median = statistics.median(ordered)
        p99 = percentile(ordered, 0.99)
        report(
            f"server keep-alive latency {label} ({len(ordered)} GETs)",
            f"median {median:.2f} ms, p99 {p99:.2f} ms",
            p99 <= TARGET_LATENCY_MS,
            f"<= {TARGET_LATENCY_MS:.0f} ms",
            f"  max {ordered[-1]:.2f} ms",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
