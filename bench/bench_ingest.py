"""Metric ingestion through the HTTP API: points per second one client gets into the server.

    python bench/bench_ingest.py                      # 2.5 million points, SQLite and PostgreSQL
    python bench/bench_ingest.py --db sqlite --points 1000000
    python bench/bench_ingest.py --client httpstore   # through registrum.client.http.HttpStore
    python bench/bench_ingest.py --replicas 2         # PostgreSQL: 2 replicas vs 1, the ratio

A real `registrum server` runs as a subprocess on a free loopback port. One
client sends batches of 10,000 points (10 keys x 1,000 steps) back to back.
The default client is a plain `requests.Session` posting bodies serialised
with orjson before the clock starts, so the figure is what the server
sustains; `--client httpstore` includes the client's own serialisation.
PostgreSQL uses its own database (`registrum_bench_ingest`), created and
dropped here; SQLite a temporary file.

`--replicas N` runs N `registrum server` processes on one PostgreSQL database and
`--clients` client processes (default 2 per replica), each with its own run,
client i sending to replica i mod N directly (a proxy in front would spend CPU
that the comparison needs), first with one replica and the same clients, then
with N. It prints both rates, their ratio (target >= 1.6 with 2 replicas when the
database is not the limit) and where the CPU went: the servers, PostgreSQL, the
clients, and how busy the machine was, which tells where the limit is.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import requests
from _common import each_store, print_platform, report, server

TARGET = 300_000  # points/s
KEYS = [f"train/metric_{i}" for i in range(10)]


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
            run_id, target, bodies = prepared_run(session, url, batches, steps_per_key)
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


def prepared_run(
    session: requests.Session, url: str, batches: int, steps_per_key: int
) -> tuple[str, str, list[bytes]]:
    """A new run, the URL its metric batches go to, and the `batches` request bodies (made
    before any timing starts)."""
    with session.post(f"{url}/api/v1/runs", json={"project": "bench"}) as r:
        r.raise_for_status()
        run_id = r.json()["id"]
    bodies = []
    for seq in range(batches):
        cols = batch_columns(seq, steps_per_key)
        lists = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in cols.items()}
        bodies.append(orjson.dumps({"seq": seq, **lists}))
    return run_id, f"{url}/api/v1/runs/{run_id}/metrics", bodies


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


def measure(name: str, store_url: str, folder: Path, args: argparse.Namespace) -> None:
    with server(store_url, folder / "blobs") as url:
        elapsed, stored = ingest(url, args.points, args.batch, args.client)
    expected = args.points // args.batch * args.batch
    if stored != expected:
        raise RuntimeError(f"{name}: {stored} points stored, {expected} sent")
    rate = stored / elapsed
    report(
        f"ingest http {name}",
        f"{rate:,.0f} points/s",
        rate >= TARGET,
        f">= {TARGET:,}",
        f"  {stored:,} points in {elapsed:.2f} s, {args.batch:,}-point batches, "
        f"{elapsed / (stored / args.batch) * 1000:.1f} ms/batch, client={args.client}",
    )


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawTextHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--points", type=int, default=2_500_000, help="points to send")
    parser.add_argument("--batch", type=int, default=10_000, help="points per batch")
    parser.add_argument("--client", choices=["requests", "httpstore"], default="requests")
    parser.add_argument("--pg-database", default="registrum_bench_ingest")
    parser.add_argument("--replicas", type=int, default=0, help="replicas to compare with one")
    parser.add_argument("--clients", type=int, default=0, help="client processes (replica mode)")
    args = parser.parse_args(argv)
    if args.batch < len(KEYS) or args.batch % len(KEYS):
        parser.error(f"--batch must be a multiple of {len(KEYS)}")
    if args.points < args.batch:
        parser.error("--points must be at least --batch")
    print_platform()
    if args.replicas:
        from _replicas import compare_replicas

        if args.replicas < 2:
            parser.error("--replicas compares N >= 2 replicas with one")
        clients = args.clients or 2 * args.replicas
        compare_replicas(args.pg_database, args.replicas, clients, args.points, args.batch)
        return 0
    each_store(args.db, args.pg_database, "registrum-bench-ingest-", partial(measure, args=args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
