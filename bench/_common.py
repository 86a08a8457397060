"""What the benches share: a `registrum server` subprocess, scratch databases, RSS, result lines,
the time a callback takes inside a fit, and fits run in pairs side by side on one core."""

from __future__ import annotations

import contextlib
import gc
import http.client
import multiprocessing
import multiprocessing.connection
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT_S = 60


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on just now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def healthy(port: int) -> bool:
    """Whether a server on 127.0.0.1:`port` answers `GET /api/v1/health` with 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/api/v1/health")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_server(store_url: str, blobs: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """Starts `registrum server` on a free loopback port: the process, its port, seconds taken."""
    port = free_port()
    cmd = [sys.executable, "-m", "registrum.cli", "server", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--store", store_url, "--blobs", str(blobs)]
    cmd += ["--log-level", "warning"]
    began = time.perf_counter()
    proc = subprocess.Popen(cmd)
    try:
        while not healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode}")
            if time.perf_counter() - began > START_TIMEOUT_S:
                raise RuntimeError(f"server did not become healthy in {START_TIMEOUT_S} s")
            time.sleep(0.005)
    except BaseException:
        stop(proc)
        raise
    return proc, port, time.perf_counter() - began


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminates `proc`; kills it if it has not exited after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def server(store_url: str, blobs: Path) -> Iterator[str]:
    """A `registrum server` subprocess; yields its base URL once it answers /health."""
    proc, port, _ = start_server(store_url, blobs)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database `name`, dropped afterwards; yields its URL."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        _drop_database(admin, name)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            _drop_database(admin, name)
    finally:
        admin.dispose()


def each_store(
    db: str, pg_database: str, prefix: str, measure: Callable[[str, str, Path], None]
) -> None:
    """Calls `measure(name, store_url, folder)` on SQLite and/or PostgreSQL, as `db` says.

    `folder` is a fresh temporary folder (named with `prefix`), deleted afterwards; the
    SQLite store is a file in it, the PostgreSQL store the database `pg_database`.
    """
    if db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            measure("sqlite", f"sqlite:///{tmp}/r.db", Path(tmp))
    if db in ("postgres", "both"):
        with (
            postgres_database(pg_database) as url,
            tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        ):
            measure("postgres", url, Path(tmp))


def rss_mb(pid: int) -> float:
    """The resident memory (VmRSS) of process `pid` in MB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of a sorted, non-empty sample: `fraction` 0.99 for p99."""
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_platform() -> None:
    """Prints the Python version and the CPU count, the first line of a bench's output."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)


def report(label: str, figure: str, ok: bool, target: str, extra: str = "") -> None:
    """Prints `label: figure (target ...) [ok]`, `[MISSED]` where not `ok`, then `extra`."""
    print(f"{label}: {figure} (target {target}) [{'ok' if ok else 'MISSED'}]{extra}", flush=True)


class BackgroundCpu:
    """The CPU seconds taken so far by the threads whose names start with `prefix` (a run's
    writer, its environment capture, dataset fingerprints): those alive read through their
    CPU clocks, those ended by the time they took. Only threads started after it is made
    are counted (it wraps `threading.Thread.run`)."""

    def __init__(self, prefix: str = "registrum") -> None:
        self._lock = threading.Lock()
        self._clocks: dict[int, int] = {}  # thread ident -> its CPU clock, while it runs
        self._ended = 0.0
        original = threading.Thread.run
        tracker = self

        def run(thread: threading.Thread) -> None:
            if not thread.name.startswith(prefix):
                return original(thread)
            ident = threading.get_ident()
            with tracker._lock:
                tracker._clocks[ident] = time.pthread_getcpuclockid(ident)
            try:
                return original(thread)
            finally:
                with tracker._lock:  # the thread still runs: its clock stays valid until now
                    del tracker._clocks[ident]
                    tracker._ended += time.thread_time()

        threading.Thread.run = run  # type: ignore[method-assign, assignment]

    def seconds(self) -> float:
        with self._lock:
            return self._ended + sum(time.clock_gettime(c) for c in self._clocks.values())


def timed_hooks(cls: type, names: Sequence[str], background: BackgroundCpu) -> type:
    """A subclass of the callback class `cls` whose hooks `names` add up, on the instance,
    the seconds they take (`spent`, per hook) and the background CPU seconds that passed
    meanwhile (`background_inside`, already inside the hooks' time when they wait for it)."""

    def timed(name: str) -> Callable[..., Any]:
        hook = getattr(cls, name)

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), background.seconds()
            try:
                return hook(self, *args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - wall
                self.background_inside += background.seconds() - cpu

        return run

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, *args, **kwargs)  # type: ignore[misc]
        self.spent, self.background_inside = {}, 0.0

    members = {name: timed(name) for name in names}
    return type(f"Timed{cls.__name__}", (cls,), {"__init__": init, **members})


def settle() -> None:
    """Before each fit: collects what earlier fits left (TensorFlow keeps the graphs of every
    model it traced), then freezes what the process holds out of the garbage collector's
    reach. A full collection walks every object not frozen; unfrozen, the heap grows by each
    fit, and a full collection, which falls into whichever fit reaches its threshold, takes
    tens of milliseconds. Frozen, the collections in a fit walk what that fit made."""
    gc.collect()
    gc.freeze()


class Fit(NamedTuple):
    """One fit of a callback bench, and where its time went."""

    wall: float  # seconds the fit takes, from the call to its return
    cpu: float  # the process's CPU seconds meanwhile, every thread
    inside: float  # seconds inside the callback's hooks (0 without it)
    background: float  # CPU seconds of the run's threads outside the hooks


def measure(fit: Callable[[], object], timed: Any, background: BackgroundCpu) -> Fit:
    """Runs `fit` after `settle` and tells where its time went. `timed` is the callback it
    fits with, made by `timed_hooks` with `background`, or None for a fit without one."""
    settle()
    wall, cpu, before = time.perf_counter(), time.process_time(), background.seconds()
    fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    threads = background.seconds() - before
    if timed is None:
        return Fit(wall, cpu, 0.0, threads)
    return Fit(wall, cpu, sum(timed.spent.values()), threads - timed.background_inside)


def _fit_worker(
    setup: Callable[[], None],
    fit: Callable[[str], Fit],
    home: str,
    core: int,
    conn: multiprocessing.connection.Connection,
    barrier: Any,
) -> None:
    """Runs the fits it is sent, each when the other worker is ready to run its own."""
    os.sched_setaffinity(0, {core})
    os.environ["REGISTRUM_HOME"] = home
    setup()
    while (arm := conn.recv()) is not None:
        barrier.wait()
        conn.send(fit(arm))


class SideBySide:
    """Two worker processes on one core, each with a store of its own, that run the two fits
    of a pair at the same time: whatever the machine's speed does meanwhile, it does to both.
    Each fit is timed by its process's CPU time, which counts every thread, so the run's
    background threads count in full, as if the training waited for all of them.

    Fits run one after the other on a shared machine differ by more than a callback costs
    (two fits of the same work, seconds apart, by up to 50% either way on a 2-core VM);
    fits run side by side on one core, by a point or two.

    `setup` runs once in each worker and `fit(arm)` runs a fit and returns its `Fit`; both
    are importable functions (the workers are spawned)."""

    def __init__(
        self,
        setup: Callable[[], None],
        fit: Callable[[str], Fit],
        folder: Path,
        core: int = 0,
    ) -> None:
        context = multiprocessing.get_context("spawn")  # the frameworks' threads do not fork
        # Held here: a worker that starts after the parent dropped it finds no semaphores.
        self._barrier = barrier = context.Barrier(2)
        self._conns = []
        self._workers = []
        for i in range(2):
            ours, theirs = context.Pipe()
            home = str(folder / f"home-{i}")
            worker = context.Process(
                target=_fit_worker,
                args=(setup, fit, home, core, theirs, barrier),
                daemon=True,
            )
            worker.start()
            self._conns.append(ours)
            self._workers.append(worker)

    def pairs(self, arm: str, count: int, label: str = "") -> list[tuple[Fit, Fit]]:
        """`count` pairs of a fit without and a fit with `arm`, side by side (which worker runs
        `arm` alternates), after two warm-up pairs, in which each worker runs each arm once.
        Prints each pair."""
        samples = []
        for i in range(count + 2):
            arms = (arm, "without") if i % 2 else ("without", arm)
            for conn, a in zip(self._conns, arms, strict=True):
                conn.send(a)
            fits = dict(zip(arms, (conn.recv() for conn in self._conns), strict=True))
            without, with_ = fits["without"], fits[arm]
            if i >= 2:
                samples.append((without, with_))
            inside = (
                f" (inside its hooks {with_.inside * 1000:.0f} ms, "
                f"its threads {with_.background * 1000:.0f} ms)"
                if with_.inside
                else ""
            )
            print(
                f"  {label}{'pair ' + str(i - 1) if i >= 2 else 'warm-up'}: CPU time without "
                f"{without.cpu:.2f} s, {arm} {with_.cpu:.2f} s, "
                f"{(with_.cpu / without.cpu - 1) * 100:+.1f}%{inside}",
                flush=True,
            )
        return samples

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for worker in self._workers:
            worker.join(timeout=30)

    def __enter__(self) -> SideBySide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def added(
    samples: Sequence[tuple[Fit, Fit]], *, threads: bool = True
) -> tuple[float, float, float]:
    """The median, lowest and highest, over pairs, of the CPU time of the fit with relative to
    the fit without. With `threads` False, the fit with counts without its run's threads'
    CPU time outside the hooks: what it adds where those threads have a core of their own.
    Their work that the training waits for inside the hooks still counts; the training's
    waits for the interpreter's lock while they hold it do not."""
    ratios = sorted((w.cpu - (0.0 if threads else w.background)) / o.cpu - 1 for o, w in samples)
    return statistics.median(ratios), ratios[0], ratios[-1]


def report_overhead(label: str, samples: Sequence[tuple[Fit, Fit]]) -> None:
    """Prints a callback's overhead (`added`) against the 3% target, with the spread of the
    pairs, the fit without, and where the time with the callback went."""
    ratio, low, high = added(samples)
    report(
        label,
        f"{ratio * 100:+.1f}%",
        ratio <= 0.03,
        "<= 3%",
        f"  (median of {len(samples)} pairs side by side, from {low * 100:+.1f}% to "
        f"{high * 100:+.1f}%; median fit {statistics.median(o.cpu for o, _ in samples):.2f} s "
        f"of CPU without; with it, "
        f"{statistics.median(w.inside for _, w in samples) * 1000:.0f} ms inside its hooks "
        f"and {statistics.median(w.background for _, w in samples) * 1000:.0f} ms of its "
        "threads' CPU outside them; with those threads on a core of their own, "
        f"{added(samples, threads=False)[0] * 100:+.1f}%)",
    )
