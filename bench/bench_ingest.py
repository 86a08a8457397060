"""Metric ingestion through the HTTP API: points per second one client gets into the server.

    python bench/bench_ingest.py                      # 2.5 million points, SQLite and PostgreSQL
    python bench/bench_ingest.py --db sqlite --points 1000000
    python bench/bench_ingest.py --client httpstore   # through registrum.client.http.HttpStore

A real `registrum server` runs as a subprocess on a free loopback port. One
client sends batches of 10,000 points (10 keys x 1,000 steps) back to back.
The default client is a plain `requests.Session` posting bodies serialised
with orjson before the clock starts, so the figure is what the server
sustains; `--client httpstore` includes the client's own serialisation.
PostgreSQL uses its own database (`registrum_bench_ingest`), created and
dropped here; SQLite a temporary file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET = 300_000  # points/s
KEYS = [f"train/metric_{i}" for i in range(10)]


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


def batch_columns(seq: int, steps_per_key: int) -> dict[str, Any]:
    """Batch `seq`: every key at `steps_per_key` consecutive steps, key-major."""
    first = seq * steps_per_key
    steps = np.arange(first, first + steps_per_key, dtype=np.int64)
    rng = np.random.default_rng(seq)
    n = len(KEYS) * steps_per_key
    return {
        "keys": [k for k in KEYS for _ in range(steps_per_key)],
        "steps": np.tile(steps, len(KEYS)),
        "values": rng.random(n),
        "timestamps": 1.7e9 + np.tile(steps, len(KEYS)) * 0.01,
    }


def ingest(url: str, points: int, batch: int, client: str) -> tuple[float, int]:
    """Sends `points` points in batches of `batch`; returns (seconds, points stored)."""
    steps_per_key = batch // len(KEYS)
    batches = points // batch
    if client == "requests":
        with requests.Session() as session:
            with session.post(f"{url}/api/v1/runs", json={"project": "bench"}) as r:
                r.raise_for_status()
                run_id = r.json()["id"]
            bodies = []
            for seq in range(batches):
                cols = batch_columns(seq, steps_per_key)
                lists = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in cols.items()}
                bodies.append(orjson.dumps({"seq": seq, **lists}))
            target = f"{url}/api/v1/runs/{run_id}/metrics"
            headers = {"content-type": "application/json"}
            _warm(session, url, run_id)
            began = time.perf_counter()
            for body in bodies:
                with session.post(target, data=body, headers=headers) as r:
                    if r.status_code != 200:
                        raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:300]}")
            elapsed = time.perf_counter() - began
            stored = _stored(session, url, run_id)
    else:
        from registrum.client.http import HttpStore

        store = HttpStore(url)
        try:
            run_id = store.create_run("bench").id
            _warm(store.session, url, run_id)
            columns = [batch_columns(seq, steps_per_key) for seq in range(batches)]
            began = time.perf_counter()
            for seq, cols in enumerate(columns):
                store.log_metrics(run_id, seq=seq, **cols)
            elapsed = time.perf_counter() - began
            stored = _stored(store.session, url, run_id)
        finally:
            store.close()
    return elapsed, stored


def _warm(session: requests.Session, url: str, run_id: str) -> None:
    # One small batch under another key first, so connection setup and the first
    # request's imports are not timed.
    body = {"seq": 10**9, "keys": ["warmup"], "steps": [0], "values": [0.0]}
    with session.post(f"{url}/api/v1/runs/{run_id}/metrics", json=body) as r:
        r.raise_for_status()


def _stored(session: requests.Session, url: str, run_id: str) -> int:
    with session.get(f"{url}/api/v1/runs/{run_id}/metrics") as r:
        r.raise_for_status()
        return sum(m["count"] for k, m in r.json().items() if k != "warmup")


def measure(name: str, store_url: str, blobs: Path, args: argparse.Namespace) -> None:
    with server(store_url, blobs) as url:
        elapsed, stored = ingest(url, args.points, args.batch, args.client)
    expected = args.points // args.batch * args.batch
    if stored != expected:
        raise RuntimeError(f"{name}: {stored} points stored, {expected} sent")
    rate = stored / elapsed
    verdict = "ok" if rate >= TARGET else "MISSED"
    print(
        f"ingest http {name}: {rate:,.0f} points/s (target >= {TARGET:,}) [{verdict}]  "
        f"{stored:,} points in {elapsed:.2f} s, {args.batch:,}-point batches, "
        f"{elapsed / (stored / args.batch) * 1000:.1f} ms/batch, client={args.client}",
        flush=True,
    )


def bench_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="registrum-bench-ingest-") as tmp:
        measure("sqlite", f"sqlite:///{tmp}/r.db", Path(tmp) / "blobs", args)


def bench_postgres(args: argparse.Namespace) -> None:
    name = args.pg_database
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            with tempfile.TemporaryDirectory(prefix="registrum-bench-ingest-") as tmp:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                measure("postgres", url, Path(tmp) / "blobs", args)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawTextHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--points", type=int, default=2_500_000, help="points to send")
    parser.add_argument("--batch", type=int, default=10_000, help="points per batch")
    parser.add_argument("--client", choices=["requests", "httpstore"], default="requests")
    parser.add_argument("--pg-database", default="registrum_bench_ingest")
    args = parser.parse_args(argv)
    if args.batch < len(KEYS) or args.batch % len(KEYS):
        parser.error(f"--batch must be a multiple of {len(KEYS)}")
    if args.points < args.batch:
        parser.error("--points must be at least --batch")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    if args.db in ("sqlite", "both"):
        bench_sqlite(args)
    if args.db in ("postgres", "both"):
        bench_postgres(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
