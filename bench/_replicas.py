"""`bench_ingest.py --replicas N`: ingest through N server replicas on one PostgreSQL database
against one replica, with the CPU each part used (servers, PostgreSQL, clients, the machine).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from contextlib import ExitStack
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import requests
from _common import postgres_database, report, start_server, stop

TARGET_RATIO = 1.6
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def _postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the database's CPU, background work too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _machine() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / TICK, sum(ticks) / TICK


def _client(url: str, batches: int, batch: int, ready: Any, go: Event, done: Any) -> None:
    """One trainer-like client: its own run, `batches` pre-serialised batches sent back to
    back once `go` is set; puts the points stored on `done`."""
    from bench_ingest import KEYS, prepared_run

    steps_per_key = batch // len(KEYS)
    with requests.Session() as session:
        run_id, target, bodies = prepared_run(session, url, batches, steps_per_key)
        headers = {"content-type": "application/json"}
        warm = {"seq": 10**9, "keys": ["warmup"], "steps": [0], "values": [0.0]}
        with session.post(target, json=warm) as r:
            r.raise_for_status()
        ready.put(os.getpid())
        go.wait()
        for body in bodies:
            with session.post(target, data=body, headers=headers) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"ingest failed: {r.status_code} {r.text[:300]}")
        with session.get(f"{url}/api/v1/runs/{run_id}/metrics") as r:
            r.raise_for_status()
            done.put(sum(m["count"] for k, m in r.json().items() if k != "warmup"))


def _run(database: str, replicas: int, clients: int, points: int, batch: int) -> dict[str, float]:
    """Ingests `points` points (spread over the clients) through `replicas` servers: the
    rate, and the CPU seconds used per part while the clock ran."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="registrum-rep-")))
        servers = []
        for _ in range(replicas):
            proc, port, _ = start_server(database, folder / "blobs")
            stack.callback(stop, proc)
            servers.append((proc, f"http://127.0.0.1:{port}"))
        context = multiprocessing.get_context("fork")
        ready, done, go = context.Queue(), context.Queue(), context.Event()
        per_client = max(1, points // batch // clients)
        procs = [
            context.Process(
                target=_client,
                args=(servers[i % replicas][1], per_client, batch, ready, go, done),
            )
            for i in range(clients)
        ]
        for p in procs:
            p.start()
        client_pids = [ready.get(timeout=300) for _ in procs]
        watched = {
            "servers": [proc.pid for proc, _ in servers],
            "postgres": _postgres_pids(),
            "clients": client_pids,
        }
        before = {part: sum(map(_cpu_seconds, pids)) for part, pids in watched.items()}
        machine_before = _machine()
        began = time.perf_counter()
        go.set()
        stored = sum(done.get(timeout=600) for _ in procs)
        elapsed = time.perf_counter() - began
        after = {part: sum(map(_cpu_seconds, pids)) for part, pids in watched.items()}
        machine_after = _machine()
        for p in procs:
            p.join(30)
        expected = per_client * clients * batch
        if stored != expected:
            raise RuntimeError(f"{stored} points stored, {expected} sent")
        busy = machine_after[0] - machine_before[0]
        total = machine_after[1] - machine_before[1]
        return {
            "rate": stored / elapsed,
            "seconds": elapsed,
            "points": stored,
            **{part: after[part] - before[part] for part in watched},
            "busy": busy / total if total else 0.0,
        }


def _describe(name: str, r: dict[str, float]) -> str:
    cores = os.cpu_count() or 1
    per = {p: r[p] / r["seconds"] for p in ("servers", "postgres", "clients")}
    return (
        f"  {name}: {r['points']:,.0f} points in {r['seconds']:.2f} s; CPU cores busy: "
        f"servers {per['servers']:.2f}, PostgreSQL {per['postgres']:.2f}, "
        f"clients {per['clients']:.2f}; machine {r['busy'] * 100:.0f}% of {cores} cores"
    )


def compare_replicas(
    pg_database: str, replicas: int, clients: int, points: int, batch: int
) -> None:
    """Prints the ingest rate with one replica and with `replicas`, the ratio, and where the
    CPU went in each."""
    with postgres_database(pg_database) as database:
        one = _run(database, 1, clients, points, batch)
    with postgres_database(pg_database) as database:
        many = _run(database, replicas, clients, points, batch)
    ratio = many["rate"] / one["rate"]
    cores = os.cpu_count() or 1
    limit = (
        "CPU: the machine was busy "
        f"{many['busy'] * 100:.0f}% of {cores} cores with {replicas} replicas"
        if many["busy"] > 0.9
        else "not the machine's CPU (it had idle cores): the database or the clients"
    )
    report(
        f"ingest {replicas} replicas / 1 (postgres, {clients} clients)",
        f"{ratio:.2f}x ({many['rate']:,.0f} vs {one['rate']:,.0f} points/s)",
        ratio >= TARGET_RATIO,
        f">= {TARGET_RATIO}x when the database is not the limit",
        "\n"
        + "\n".join(
            [
                _describe("1 replica", one),
                _describe(f"{replicas} replicas", many),
                f"  the limit: {limit}",
            ]
        ),
    )
