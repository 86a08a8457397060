"""`registrum serve` against `mlflow models serve --env-manager local`, the same scikit-learn
model on the same machine, in one invocation.

    python bench/bench_serve.py                 # every figure
    python bench/bench_serve.py --seconds 5     # a quicker pass

Printed for each server: requests per second and p50/p99 latency with 8 concurrent clients
for single-row and 100-row `dataframe_split` requests, the time from starting the process to
its first answer, and its resident memory after the load. Then, for `registrum serve`, an
alias switch under load: how many requests failed, and the time from the approval to the
first answer from the new version. Targets: throughput ≥ 3× MLflow's; cold start ≤ 1 s plus
the framework's import time; 0 failed requests and ≤ 5 s to switch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import requests
from _common import free_port, percentile, print_platform, report, stop

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

CLIENTS = 8
FEATURES = 8


def _data(seed: int) -> tuple[Any, Any]:
    """A frame of named features and a binary label."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, FEATURES))
    y = (x @ rng.normal(size=FEATURES) > 0).astype(int)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)]), y


def _wait(url: str, proc: subprocess.Popen[bytes], began: float) -> float:
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).ok:
                return time.perf_counter() - began
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        if time.perf_counter() - began > 120:
            raise RuntimeError("the server did not answer within 120 s")
        time.sleep(0.02)


def _load(url: str, rows: int, seconds: float) -> tuple[float, float, float, int]:
    """8 clients sending `rows`-row requests for `seconds`: rps, p50 ms, p99 ms, failures.
    The clients run in a process of their own (plain `http.client`, the body encoded once),
    so that what is measured is the server, not the client's share of the CPU."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_clients, args=(url, rows, seconds, send))
    worker.start()
    took, latencies, failures = receive.recv()
    worker.join()
    ordered = sorted(latencies)
    return (
        len(ordered) / took,
        percentile(ordered, 0.5) * 1e3,
        percentile(ordered, 0.99) * 1e3,
        failures,
    )


def _clients(url: str, rows: int, seconds: float, send: Any) -> None:
    import http.client
    import json
    from urllib.parse import urlsplit

    rng = np.random.default_rng(1)
    body = json.dumps(
        {
            "dataframe_split": {
                "columns": [f"f{i}" for i in range(FEATURES)],
                "data": rng.normal(size=(rows, FEATURES)).tolist(),
            }
        }
    ).encode()
    where = urlsplit(url)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        mine: list[float] = []
        bad = 0
        conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                answer = conn.getresponse()
                answer.read()
                bad += answer.status != 200
            except OSError:
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
            mine.append(time.perf_counter() - began)
        conn.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    send.send((time.perf_counter() - began, latencies, failures[0]))


def _import_time(statement: str) -> float:
    """Seconds a fresh interpreter takes to run `statement` (an import), beyond starting."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def measure(
    label: str, start: Callable[[int], subprocess.Popen[bytes]], seconds: float
) -> dict[str, float]:
    port = free_port()
    began = time.perf_counter()
    proc = start(port)
    url = f"http://127.0.0.1:{port}"
    try:
        cold = _wait(url, proc, began)
        figures: dict[str, float] = {"cold": cold}
        for rows in (1, 100):
            rps, p50, p99, bad = _load(url, rows, seconds)
            figures[f"rps{rows}"] = rps
            print(
                f"{label}: {rows:>3}-row requests, {CLIENTS} clients: {rps:,.0f}/s, "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {bad} failed",
                flush=True,
            )
        root = psutil.Process(proc.pid)
        rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        print(
            f"{label}: first answer {cold:.2f} s after start; RSS {rss / 2**20:.0f} MiB", flush=True
        )
        return figures
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per load (default 10)")
    args = parser.parse_args()
    print_platform()
    import mlflow.sklearn
    from registrum_sklearn import TrackedEstimator
    from sklearn.linear_model import LogisticRegression

    import registrum

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        home = folder / "home"
        os.environ["REGISTRUM_HOME"] = str(home)
        store = f"sqlite:///{folder / 'r.db'}"
        # The same model for both servers: version 1, and version 2 to switch to.
        fitted = []
        for seed in (0, 1):
            frame, y = _data(seed)
            tracked = TrackedEstimator(
                LogisticRegression(max_iter=500),
                project="bench",
                register_as="served",
                store=store,
                capture_environment=False,
            )
            fitted.append(tracked.fit(frame, y).estimator_)
        mlflow_dir = folder / "mlflow-model"
        mlflow.sklearn.save_model(fitted[0], str(mlflow_dir), input_example=_data(0)[0].head(2))
        with registrum.Client(store) as client:
            client.set_alias("served", "production", 1)

        def registrum_serve(port: int) -> subprocess.Popen[bytes]:
            command = [sys.executable, "-m", "registrum.cli", "serve", "served@production"]
            command += ["--port", str(port), "--store", store, "--poll-interval", "1"]
            return subprocess.Popen(command, stdout=subprocess.DEVNULL)

        def mlflow_serve(port: int) -> subprocess.Popen[bytes]:
            command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir)]
            command += ["--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
            # It starts `uvicorn` by name: the environment's scripts must be on PATH.
            path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
            env = {**os.environ, "PATH": path}
            return subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )

        framework = _import_time("import sklearn.linear_model, skops.io, pandas")
        print(f"the framework's import time (sklearn, skops, pandas): {framework:.2f} s")

        ours = measure("registrum serve", registrum_serve, args.seconds)
        theirs = measure("mlflow models serve", mlflow_serve, args.seconds)
        report(
            "cold start to the first answer",
            f"{ours['cold']:.2f} s, {ours['cold'] - framework:.2f} s beyond the framework's import "
            f"(MLflow: {theirs['cold']:.2f} s)",
            ours["cold"] - framework <= 1.0,
            "<= 1 s plus the framework's import time",
        )
        for rows in (1, 100):
            ratio = ours[f"rps{rows}"] / theirs[f"rps{rows}"]
            report(
                f"throughput, {rows}-row requests", f"{ratio:.1f}x MLflow's", ratio >= 3, ">= 3x"
            )

        # An alias switch under load.
        port = free_port()
        proc = registrum_serve(port)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait(url, proc, time.perf_counter())
            outcome: dict[str, Any] = {}

            def switch() -> None:
                time.sleep(args.seconds / 3)
                with registrum.Client(store) as client:
                    client.set_alias("served", "production", 2)
                approved = time.perf_counter()
                while requests.get(f"{url}/version", timeout=10).json()["version"] != 2:
                    time.sleep(0.01)
                outcome["switch"] = time.perf_counter() - approved

            mover = threading.Thread(target=switch)
            mover.start()
            _, _, _, bad = _load(url, 1, args.seconds)
            mover.join()
        finally:
            stop(proc)
        report(
            "alias switch under load",
            f"{bad} failed, first answer from the new version {outcome['switch']:.2f} s "
            "after the move",
            bad == 0 and outcome["switch"] <= 5,
            "0 failed, <= 5 s",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
