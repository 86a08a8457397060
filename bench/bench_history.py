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
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
import sqlalchemy as sa

from registrum.client.http import HttpStore
from registrum.store import open_store

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KEY = "train/loss"
BATCHES = 100
MAX_POINTS = 1000
TARGET_WHOLE_S = 1.0
TARGET_DOWNSAMPLED_S = 0.050


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(store_url: str, blobs: Path) -> Iterator[str]:
    """A `registrum server` subprocess; yields its base URL once it answers /health."""
    port = free_port()
    cmd = [sys.executable, "-m", "registrum.cli", "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--store", store_url, "--blobs", str(blobs)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            try:
                with requests.get(f"{url}/api/v1/health", timeout=1) as r:
                    if r.status_code == 200:
                        break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 60 s")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def report(label: str, seconds: float, points: int, target: float) -> None:
    verdict = "ok" if seconds <= target else "MISSED"
    print(
        f"history {label}: {seconds * 1000:,.1f} ms (target <= {target * 1000:,.0f} ms) "
        f"[{verdict}]  {points:,} points returned",
        flush=True,
    )


def measure(name: str, store_url: str, tmp: Path, args: argparse.Namespace) -> None:
    store = open_store(store_url, blobs=tmp / "blobs")
    try:
        began = time.perf_counter()
        run_id = fill(store, args.points)
        took = time.perf_counter() - began
        print(f"{name}: {args.points:,} points of one key logged in {took:.1f} s")
        for label, max_points, target in (
            ("whole", None, TARGET_WHOLE_S),
            (f"max_points={MAX_POINTS}", MAX_POINTS, TARGET_DOWNSAMPLED_S),
        ):

            def direct(max_points: int | None = max_points) -> int:
                return len(store.metric_history(run_id, KEY, max_points=max_points).steps)

            seconds, points = timed(direct, args.repeats)
            report(f"service {name} {label}", seconds, points, target)
    finally:
        store.close()

    with server(store_url, tmp / "blobs") as url:
        client = HttpStore(url)
        session = requests.Session()
        try:
            for label, max_points, target in (
                ("whole", None, TARGET_WHOLE_S),
                (f"max_points={MAX_POINTS}", MAX_POINTS, TARGET_DOWNSAMPLED_S),
            ):

                def via_client(max_points: int | None = max_points) -> int:
                    return len(client.metric_history(run_id, KEY, max_points=max_points).steps)

                def via_requests(max_points: int | None = max_points) -> int:
                    params = {} if max_points is None else {"max_points": max_points}
                    target_url = f"{url}/api/v1/runs/{run_id}/metrics/{KEY}"
                    with session.get(target_url, params=params) as r:
                        r.raise_for_status()
                        return len(orjson.loads(r.content)["steps"])

                seconds, points = timed(via_client, args.repeats)
                report(f"http(HttpStore) {name} {label}", seconds, points, target)
                seconds, points = timed(via_requests, args.repeats)
                report(f"http(requests+orjson) {name} {label}", seconds, points, target)
        finally:
            session.close()
            client.close()


def bench_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="registrum-bench-history-") as tmp:
        measure("sqlite", f"sqlite:///{tmp}/r.db", Path(tmp), args)


def bench_postgres(args: argparse.Namespace) -> None:
    name = args.pg_database
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            with tempfile.TemporaryDirectory(prefix="registrum-bench-history-") as tmp:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                measure("postgres", url, Path(tmp), args)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
    if args.db in ("sqlite", "both"):
        bench_sqlite(args)
    if args.db in ("postgres", "both"):
        bench_postgres(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
