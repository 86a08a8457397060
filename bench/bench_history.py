"""Metric history of a long series: whole and downsampled, in-process and over HTTP.

    python bench/bench_history.py                 # 1,000,000 points, SQLite and PostgreSQL
    python bench/bench_history.py --db sqlite --points 200000 --repeats 3

One run holds one key with `--points` points, logged in 100 batches. The
series is then read back, whole and downsampled to 1,000 points, through
`Store.metric_history` (the service layer, in-process) and through a real
`registrum server` subprocess: with `HttpStore.metric_history` (the Python
client: request, JSON parse, arrays) and with a plain `requests` GET parsed by
orjson (what a browser or another client pays). Each figure is the median of
`--repeats` calls after one warm-up call. PostgreSQL uses its own database
(`registrum_bench_history`), created and dropped here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from _common import each_store, report, server

from registrum.client.http import HttpStore
from registrum.store import open_store

KEY = "train/loss"
BATCHES = 100
MAX_POINTS = 1000
TARGET_WHOLE_S = 1.0
TARGET_DOWNSAMPLED_S = 0.050
# The reads timed: (label, max_points, target seconds).
READS: tuple[tuple[str, int | None, float], ...] = (
    ("whole", None, TARGET_WHOLE_S),
    (f"max_points={MAX_POINTS}", MAX_POINTS, TARGET_DOWNSAMPLED_S),
)


def fill(store: Any, points: int) -> str:
    """A run with one key of `points` points (a noisy decaying loss), in 100 batches."""
    run_id: str = store.create_run("bench").id
    rng = np.random.default_rng(3)
    per = -(-points // BATCHES)
    for seq, first in enumerate(range(0, points, per)):
        steps = np.arange(first, min(first + per, points), dtype=np.int64)
        values = 2.0 * np.exp(-steps / (points / 4)) + rng.normal(0, 0.05, len(steps))
        store.log_metrics(
            run_id,
            seq=seq,
            keys=[KEY] * len(steps),
            steps=steps,
            values=values,
            timestamps=1.7e9 + steps * 0.05,
        )
    return run_id


def timed(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Median seconds of `repeats` calls after one warm-up; and the points the call returned."""
    points = fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), points


def report_read(label: str, seconds: float, points: int, target: float) -> None:
    """Prints one timed read: its median against `target` seconds, and the points it returned."""
    report(
        f"history {label}",
        f"{seconds * 1000:,.1f} ms",
        seconds <= target,
        f"<= {target * 1000:,.0f} ms",
        f"  {points:,} points returned",
    )


def measure(name: str, store_url: str, tmp: Path, args: argparse.Namespace) -> None:
    store = open_store(store_url, blobs=tmp / "blobs")
    try:
        began = time.perf_counter()
        run_id = fill(store, args.points)
        took = time.perf_counter() - began
        print(f"{name}: {args.points:,} points of one key logged in {took:.1f} s")
        for label, max_points, target in READS:

            def direct(max_points: int | None = max_points) -> int:
                return len(store.metric_history(run_id, KEY, max_points=max_points).steps)

            seconds, points = timed(direct, args.repeats)
            report_read(f"service {name} {label}", seconds, points, target)
    finally:
        store.close()

    with server(store_url, tmp / "blobs") as url:
        client = HttpStore(url)
        session = requests.Session()
        try:
            for label, max_points, target in READS:

                def via_client(max_points: int | None = max_points) -> int:
                    return len(client.metric_history(run_id, KEY, max_points=max_points).steps)

                def via_requests(max_points: int | None = max_points) -> int:
                    params = {} if max_points is None else {"max_points": max_points}
                    target_url = f"{url}/api/v1/runs/{run_id}/metrics/{KEY}"
                    with session.get(target_url, params=params) as r:
                        r.raise_for_status()
                        return len(orjson.loads(r.content)["steps"])

                seconds, points = timed(via_client, args.repeats)
                report_read(f"http(HttpStore) {name} {label}", seconds, points, target)
                seconds, points = timed(via_requests, args.repeats)
                report_read(f"http(requests+orjson) {name} {label}", seconds, points, target)
        finally:
            session.close()
            client.close()


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawTextHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the series")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per figure")
    parser.add_argument("--pg-database", default="registrum_bench_history")
    args = parser.parse_args(argv)
    if args.points < BATCHES:
        parser.error(f"--points must be at least {BATCHES}")
    each_store(args.db, args.pg_database, "registrum-bench-history-", partial(measure, args=args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
