"""Run-search latency: fills a store with N runs and prints the median ms per query.

    python bench/bench_search.py                  # 100,000 runs, SQLite and PostgreSQL
    python bench/bench_search.py --runs 20000 --db sqlite
    python bench/bench_search.py --keep           # keep the databases to rerun with --reuse

Each run has 10 params and 10 metrics (and 1-3 tags), inserted straight into
the tables. PostgreSQL uses its own database (`registrum_bench` by default),
created and dropped here; SQLite a temporary file.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from registrum.store import schema as t
from registrum.store.db import make_engine, migrate
from registrum.store.search.query import search_run_ids

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

PARAMS: dict[str, Any] = {
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "batch_size": [32, 64, 128, 256],
    "optimizer": ["adam", "adamw", "sgd"],
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.5],
    "epochs": [10, 20, 50, 100],
    "weight_decay": [0.0, 1e-4, 1e-2],
    "model.depth": [18, 34, 50, 101],
    "model.arch": ["resnet", "vit", "convnext", "efficientnet"],
    "use_amp": [True, False],
    "seed": None,  # random integer
}
METRICS = [
    "val_loss",
    "val_acc",
    "train/loss",
    "train/acc",
    "test_acc",
    "f1",
    "precision",
    "recall",
    "epoch_time",
    "lr_final",
]
TEAMS = ["vision", "nlp", "speech", "recsys"]
STATUSES = ["finished"] * 16 + ["failed"] * 2 + ["running", "crashed"]

NESTED = (
    "(params.optimizer in ('adam', 'adamw') or params.use_amp = true) "
    "and not (metrics.f1 < 0.5 or status != 'finished')"
)
QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        "the target: metric and param filter, by metric desc",
        {"filter": "metrics.val_loss < 0.3 and params.lr = 0.001", "order_by": "-metrics.val_acc"},
    ),
    (
        "or: text param or metric, default order",
        {"filter": "params.optimizer = 'sgd' or metrics.val_acc > 0.95"},
    ),
    (
        "tag and attribute filter, by metric asc",
        {"filter": "tags.team = 'vision' and status = 'finished'", "order_by": "metrics.val_loss"},
    ),
    (
        "attribute order (end_time desc), param filter",
        {
            "filter": "params.batch_size >= 128 and not params.model.arch like 'vi%'",
            "order_by": "-end_time",
        },
    ),
    (
        "attribute order (name), tag filter",
        {"filter": "tags.stage = 'tune'", "order_by": "name"},
    ),
    (
        "by a param with 5 values (ties), metric filter",
        {"filter": "metrics.val_acc > 0.8", "order_by": "-params.lr"},
    ),
    ("nested and/or/not, by metric desc", {"filter": NESTED, "order_by": "-metrics.f1"}),
    (
        "nested, by two keys (the first with 5 values)",
        {"filter": NESTED, "order_by": "-params.lr, metrics.val_loss"},
    ),
    (
        "selective filter (~10 runs), by metric desc",
        {"filter": "params.seed = 4242 and metrics.val_acc > 0.1", "order_by": "-metrics.val_acc"},
    ),
]
# Outside the target, measured so its cost is known: with no index on tag
# values, ordering by a tag sorts every run that has the tag.
SLOW_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("by a tag (no index on tag values)", {"order_by": "tags.team"}),
]


def _run_rows(n: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    start = 1_700_000_000.0
    for i in range(n):
        status = rng.choice(STATUSES)
        began = start + i * 37.0 + rng.random() * 30
        yield {
            "id": f"{rng.getrandbits(128):032x}",
            "project_id": 1,
            "name": f"{rng.choice(['brisk', 'calm', 'eager', 'lucid', 'sunny'])}-"
            f"{rng.choice(['otter', 'falcon', 'maple', 'river', 'comet'])}-{i}",
            "status": status,
            "job_type": "train" if rng.random() < 0.9 else "evaluation",
            "parent_id": None,
            "user": f"user{rng.randrange(20)}",
            "host": f"gpu-{rng.randrange(50):02d}",
            "start_time": began,
            "end_time": None if status == "running" else began + rng.uniform(60, 36_000),
            "heartbeat_at": began,
            "created_at": began,
        }


def fill(engine: sa.Engine, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with engine.begin() as conn:
        conn.execute(t.projects.insert(), [{"id": 1, "name": "bench", "created_at": 0.0}])
        names = list(PARAMS) + METRICS
        conn.execute(t.keys.insert(), [{"project_id": 1, "name": k} for k in names])
        key_id = {name: kid for name, kid in conn.execute(sa.select(t.keys.c.name, t.keys.c.id))}
    batch = 5000
    rows = _run_rows(n, rng)
    for offset in range(0, n, batch):
        runs = [next(rows) for _ in range(min(batch, n - offset))]
        params, summaries, tags = [], [], []
        for run in runs:
            rid, now = run["id"], run["start_time"]
            for key, choices in PARAMS.items():
                value = rng.randrange(10_000) if choices is None else rng.choice(choices)
                params.append(_param(rid, key_id[key], value, now))
            for key in METRICS:
                # A few runs never logged val_acc (crashed early); a few diverged (NaN).
                if key == "val_acc" and rng.random() < 0.03:
                    continue
                value = None if rng.random() < 0.002 else rng.random()
                summaries.append(
                    {
                        "run_id": rid,
                        "key_id": key_id[key],
                        "last_value": value,
                        "last_step": 1000,
                        "last_time": now,
                        "min_value": 0.0,
                        "max_value": 1.0,
                        "points": 1000,
                    }
                )
            tags.append({"run_id": rid, "key": "team", "value": rng.choice(TEAMS)})
            if rng.random() < 0.5:
                tags.append({"run_id": rid, "key": "stage", "value": rng.choice(["base", "tune"])})
        with engine.begin() as conn:
            conn.execute(t.runs.insert(), runs)
            conn.execute(t.params.insert(), params)
            conn.execute(t.metric_summaries.insert(), summaries)
            conn.execute(t.run_tags.insert(), tags)
    analyze(engine)


def analyze(engine: sa.Engine) -> None:
    # Planner statistics, and on PostgreSQL the visibility map that lets
    # index-only scans skip the heap: what autovacuum gives a store at rest.
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
            conn.commit()


def _param(run_id: str, key_id: int, value: Any, now: float) -> dict[str, Any]:
    if isinstance(value, bool):
        num, text, kind = float(value), "true" if value else "false", "bool"
    elif isinstance(value, (int, float)):
        num, text, kind = float(value), repr(value), type(value).__name__
    else:
        num, text, kind = None, value, "str"
    return {
        "run_id": run_id,
        "key_id": key_id,
        "value_type": kind,
        "value_json": text if kind != "str" else f'"{text}"',
        "value_num": num,
        "value_str": text,
        "updated_at": now,
    }


def measure(
    engine: sa.Engine, queries: list[tuple[str, dict[str, Any]]], repeats: int
) -> list[tuple[str, dict[str, Any], float, float, int]]:
    """Median ms of the first page and of the second (through the cursor), per query."""
    results = []
    for label, query in queries:
        first, second = [], []
        for i in range(repeats + 2):
            with engine.connect() as conn:
                began = time.perf_counter()
                ids, cursor = search_run_ids(conn, 1, limit=100, **query)
                elapsed = time.perf_counter() - began
                conn.rollback()
            if cursor is not None:
                with engine.connect() as conn:
                    began = time.perf_counter()
                    search_run_ids(conn, 1, limit=100, cursor=cursor, **query)
                    paged = time.perf_counter() - began
                    conn.rollback()
            if i >= 2:  # the first two warm the caches
                first.append(elapsed)
                if cursor is not None:
                    second.append(paged)
        page2 = statistics.median(second) * 1000 if second else float("nan")
        results.append((label, query, statistics.median(first) * 1000, page2, len(ids)))
    return results


def report(name: str, engine: sa.Engine, args: argparse.Namespace, load_s: float | None) -> None:
    loaded = "reused" if load_s is None else f"loaded in {load_s:.1f} s"
    print(f"\n{name} ({loaded}): median ms per call, limit 100, {args.repeats} calls each")
    print(f"  {'page 1':>8} {'page 2':>8} {'rows':>5}  query")
    for title, queries in (("", QUERIES), ("outside the target:", SLOW_QUERIES)):
        if title:
            print(f"  {title}")
        for label, query, first, second, rows in measure(engine, queries, args.repeats):
            print(f"  {first:8.1f} {second:8.1f} {rows:5d}  {label}")
            print(f"  {'':24}filter={query.get('filter')!r} order_by={query.get('order_by')!r}")


def _count_runs(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar_one())
    except sa.exc.DBAPIError:
        return -1


def bench_sqlite(args: argparse.Namespace) -> None:
    if args.sqlite_path is None:
        with tempfile.TemporaryDirectory(prefix="registrum-bench-") as folder:
            args.sqlite_path = str(Path(folder) / "s.db")
            bench_sqlite(args)
        return
    path = Path(args.sqlite_path)
    engine = make_engine(f"sqlite:///{path}")
    load_s = None
    if not (args.reuse and _count_runs(engine) == args.runs):
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
        migrate(engine)
        began = time.perf_counter()
        fill(engine, args.runs)
        load_s = time.perf_counter() - began
    try:
        report(f"SQLite {path}, {args.runs:,} runs", engine, args, load_s)
    finally:
        engine.dispose()
        if not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def bench_postgres(args: argparse.Namespace) -> None:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = args.pg_database
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
    engine = make_engine(url)
    load_s = None
    if not (args.reuse and exists and _count_runs(engine) == args.runs):
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine = make_engine(url)
        migrate(engine)
        began = time.perf_counter()
        fill(engine, args.runs)
        load_s = time.perf_counter() - began
    try:
        report(f"PostgreSQL database {name}, {args.runs:,} runs", engine, args, load_s)
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="runs to create (default 100000)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per query")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--sqlite-path", help="SQLite file to use (default: a temporary file)")
    parser.add_argument("--pg-database", default="registrum_bench")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse kept databases of the same size"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.db in ("sqlite", "both"):
        bench_sqlite(args)
    if args.db in ("postgres", "both"):
        bench_postgres(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
