"""The same MLflow client work against `mlflow server` and `registrum server`, side by side.

    python bench/bench_mlflow_compat.py               # every figure, 10,000 runs, 1 GiB artifact
    python bench/bench_mlflow_compat.py --runs 2000 --artifact-mib 256   # a quicker pass

Both servers run here as subprocesses on loopback with a SQLite store (`mlflow server` with
its default workers and `--artifacts-destination`); the client is the unchanged `mlflow`
package. Each figure is measured on both in this one invocation and printed as a ratio
(MLflow's time over Registrum's). Targets: log_batch ingest ≥ 5×, search_runs ordered by a
metric over 10,000 runs ≥ 20×, get_metric_history of 100,000 points ≥ 5×,
create_model_version ≥ 2×, a 1 GiB log_artifact at least as fast with flat server memory,
and `registrum import mlflow` copying ≥ 50,000 metric points per second (measured reading
histories from the MLflow server's database, `--backend-store-uri`, and through the server).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests
from _common import free_port, print_platform, report, server, stop

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

from mlflow import MlflowClient
from mlflow.entities import Metric, Param


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, int]]:
    """`mlflow server` (SQLite, default workers, proxied artifacts); yields its URL and pid."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
    cmd += ["--artifacts-destination", str(folder / "artifacts")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with code {proc.returncode}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not answer /health in 120 s")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        stop(proc)


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (MLflow's workers), in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return float(sum(p.memory_info().rss for p in procs)) / 2**20
    except psutil.Error:
        return 0.0


@contextlib.contextmanager
def peak_rss(pid: int) -> Iterator[list[float]]:
    """Samples the process tree's RSS every 50 ms; yields [baseline, peak] (filled on exit)."""
    found = [tree_rss_mib(pid), 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            found[1] = max(found[1], tree_rss_mib(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        done.set()
        thread.join()


def timed(work: Callable[[], Any]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


class Target:
    def __init__(self, name: str, url: str, pid: int) -> None:
        self.name, self.url, self.pid = name, url, pid
        self.client = MlflowClient(tracking_uri=url, registry_uri=url)

    def experiment(self, name: str) -> str:
        return self.client.create_experiment(name)


def ingest(target: Target, batches: int) -> float:
    """Seconds to log `batches` log_batch calls of 1000 metric points into one run."""
    run = target.client.create_run(target.experiment("ingest"))
    now = int(time.time() * 1000)

    def send() -> None:
        for b in range(batches):
            metrics = [
                Metric(f"m{i % 10}", i * 0.5, now + i, b * 100 + i // 10) for i in range(1000)
            ]
            target.client.log_batch(run.info.run_id, metrics=metrics)

    return timed(send)


def seed_runs(target: Target, runs: int) -> str:
    """`runs` runs with a param and 3 metrics each (8 client threads); the experiment id."""
    experiment = target.experiment("search")
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run = target.client.create_run(experiment, run_name=f"r{i}")
        metrics = [
            Metric("loss", (i * 7919 % runs) / runs, now, 0),
            Metric("acc", i / runs, now, 0),
        ]
        metrics.append(Metric("epoch", float(i % 10), now, 0))
        target.client.log_batch(run.info.run_id, metrics=metrics, params=[Param("lr", str(i % 5))])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(runs)))
    return experiment


def search(target: Target, experiment: str, repeats: int = 5) -> float:
    """Median seconds of search_runs ordered by a metric, first page of 100."""
    times = []
    for _ in range(repeats):
        times.append(
            timed(
                lambda: target.client.search_runs(
                    [experiment], "params.lr = '3'", order_by=["metrics.loss ASC"], max_results=100
                )
            )
        )
    return sorted(times)[len(times) // 2]


def history(target: Target, points: int) -> tuple[float, str]:
    """Seconds for get_metric_history of `points` points (logged first, not timed)."""
    run = target.client.create_run(target.experiment("history"))
    now = int(time.time() * 1000)
    for start in range(0, points, 1000):
        metrics = [Metric("loss", 1.0 / (s + 1), now + s, s) for s in range(start, start + 1000)]
        target.client.log_batch(run.info.run_id, metrics=metrics)
    got: list[Any] = []
    seconds = timed(lambda: got.extend(target.client.get_metric_history(run.info.run_id, "loss")))
    assert len(got) == points, f"{target.name} answered {len(got)} of {points} points"
    return seconds, run.info.run_id


def client_parse_seconds(points: int) -> float:
    """Seconds the unchanged `mlflow` client spends turning `points` metric points of
    get-history answers (pages of 25,000, as it asks) into `Metric` objects, with no server:
    the least any server's get_metric_history can take."""
    import json

    from mlflow.entities import Metric as MlflowMetric
    from mlflow.protos.service_pb2 import GetMetricHistory
    from mlflow.utils.proto_json_utils import parse_dict

    page = 25_000
    texts = [
        json.dumps(
            {
                "metrics": [
                    {
                        "key": "loss",
                        "value": 1.0 / (s + 1),
                        "timestamp": 1_790_000_000_000 + s,
                        "step": s,
                    }
                    for s in range(start, min(start + page, points))
                ]
            }
        )
        for start in range(0, points, page)
    ]
    began = time.perf_counter()
    for text in texts:
        message = GetMetricHistory.Response()
        parse_dict(json.loads(text), message)  # type: ignore[no-untyped-call]
        [MlflowMetric.from_proto(p) for p in message.metrics]
    return time.perf_counter() - began


def versions(target: Target, count: int, folder: Path, blocks: int = 5) -> float:
    """Seconds for `count` create_model_version calls (one registered model, one run): the
    median of `blocks` timed blocks (after a warm-up block), times the number of blocks, so
    one stall of the shared machine does not decide the figure."""
    run = target.client.create_run(target.experiment("registry"))
    model_file = folder / f"model-{target.name}" / "MLmodel"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_text("flavors: {}\n")
    target.client.log_artifacts(run.info.run_id, str(model_file.parent), "model")
    target.client.create_registered_model("bench-model")
    source = f"runs:/{run.info.run_id}/model"
    per_block = max(1, count // blocks)

    def block() -> float:
        return timed(
            lambda: [
                target.client.create_model_version("bench-model", source, run.info.run_id)
                for _ in range(per_block)
            ]
        )

    block()  # warm-up: the first calls of a fresh server
    times = sorted(block() for _ in range(blocks))
    return times[len(times) // 2] * count / per_block


def artifact(target: Target, path: Path) -> tuple[float, float]:
    """Seconds to log_artifact the file at `path`, and the server's RSS growth in MiB."""
    run = target.client.create_run(target.experiment("artifact"))
    with peak_rss(target.pid) as rss:
        seconds = timed(lambda: target.client.log_artifact(run.info.run_id, str(path)))
    return seconds, max(0.0, rss[1] - rss[0])


def import_rate(
    source_url: str,
    folder: Path,
    points: int,
    experiments: Sequence[str],
    database: str | None = None,
) -> float:
    """Points per second `registrum import mlflow` copies from `source_url`: the experiments
    that hold the points ("ingest", "history"), into a fresh embedded store; with `database`
    (the MLflow server's --backend-store-uri), histories are read from it."""
    into = folder / ("imported-db" if database else "imported-rest")
    store = f"sqlite:///{into}.db"
    cmd = [sys.executable, "-m", "registrum.cli", "import", "mlflow", "--from", source_url]
    cmd += ["--store", store]
    for name in experiments:
        cmd += ["--experiment", name]
    if database:
        cmd += ["--backend-store-uri", database]
    env = {**os.environ, "REGISTRUM_HOME": str(into) + "-home"}
    began = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return points / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--artifact-mib", type=int, default=1024)
    parser.add_argument(
        "--only",
        type=_figures,
        default=FIGURES,
        help=f"comma-separated figures to measure (of {','.join(FIGURES)}; default: all)",
    )
    args = parser.parse_args()
    only: tuple[str, ...] = args.only
    print_platform()
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        folder = Path(tmp)
        (folder / "mlflow").mkdir()
        (folder / "registrum").mkdir()
        big = folder / "big.bin"
        with big.open("wb") as f:
            chunk = os.urandom(2**20)
            for _ in range(args.artifact_mib if "artifact" in only else 0):
                f.write(chunk)
        with (
            mlflow_server(folder / "mlflow") as (m_url, m_pid),
            server(f"sqlite:///{folder}/registrum/r.db", folder / "registrum" / "blobs") as r_url,
        ):
            r_pid = _pid_listening(r_url)
            targets = [Target("mlflow", m_url, m_pid), Target("registrum", r_url, r_pid)]
            figures: dict[str, dict[str, float]] = {t.name: {} for t in targets}
            for t in targets:
                print(f"-- {t.name}: measuring", flush=True)
                found = figures[t.name]
                if "ingest" in only:
                    found["ingest"] = ingest(t, args.batches)
                if "history" in only:
                    found["history"], _ = history(t, args.points)
                if "versions" in only:
                    found["versions"] = versions(t, args.versions, folder)
                if "artifact" in only:
                    found["artifact"], found["artifact_rss"] = artifact(t, big)
                if "search" in only:
                    found["search"] = search(t, seed_runs(t, args.runs))
            rates = None
            if "import" in only:
                points = args.points * ("history" in only)
                points += args.batches * 1000 * ("ingest" in only)
                measured = [name for name in ("ingest", "history") if name in only]
                database = f"sqlite:///{folder}/mlflow/mlflow.db"  # mlflow_server's store
                rates = (
                    import_rate(m_url, folder, points, measured, database),
                    import_rate(m_url, folder, points, measured),
                )
        summarize(figures, args)
        if rates is not None:
            direct, rest = rates
            report(
                "registrum import mlflow --backend-store-uri",
                f"{direct:,.0f} points/s",
                direct >= 50_000,
                "≥ 50,000/s",
            )
            served = ""
            if "history" in figures["mlflow"]:
                served = (
                    f"; the MLflow server itself serves get-history at "
                    f"{args.points / figures['mlflow']['history']:,.0f} points/s"
                )
            print(
                f"registrum import mlflow (histories through the server): {rest:,.0f} points/s"
                f"{served}"
            )


FIGURES = ("ingest", "history", "versions", "artifact", "search", "import")


def _figures(text: str) -> tuple[str, ...]:
    """The figures named in `--only` (comma-separated), refused when one is unknown."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FIGURES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown figure(s) {', '.join(unknown) or '(none)'}: use some of {', '.join(FIGURES)}"
        )
    return names


def summarize(figures: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    """One line per measured figure (those left out by `--only` print nothing)."""
    m, r = figures["mlflow"], figures["registrum"]
    if "ingest" in r:
        points = args.batches * 1000
        rates = f"{points / r['ingest']:,.0f} vs {points / m['ingest']:,.0f} points/s"
        _ratio("log_batch ingest", m["ingest"], r["ingest"], 5, rates)
    if "search" in r:
        ms = f"{r['search'] * 1000:.1f} vs {m['search'] * 1000:.1f} ms"
        _ratio(f"search_runs by a metric, {args.runs:,} runs", m["search"], r["search"], 20, ms)
    if "history" in r:
        took = f"{r['history']:.2f} vs {m['history']:.2f} s"
        _ratio(f"get_metric_history, {args.points:,} points", m["history"], r["history"], 5, took)
        parse = client_parse_seconds(args.points)
        print(
            f"  the mlflow client's own parse of those points takes {parse:.2f} s here: no "
            f"server can be more than {m['history'] / parse:.1f}× faster than MLflow's"
        )
    if "versions" in r:
        r_each, m_each = (x["versions"] / args.versions * 1000 for x in (r, m))
        each = f"{r_each:.1f} vs {m_each:.1f} ms each"
        _ratio("create_model_version", m["versions"], r["versions"], 2, each)
    if "artifact" not in r:
        return
    took = f"{r['artifact']:.1f} vs {m['artifact']:.1f} s"
    _ratio(f"{args.artifact_mib} MiB log_artifact", m["artifact"], r["artifact"], 1, took)
    grown = r["artifact_rss"]
    report(
        "server memory during that upload",
        f"+{grown:.0f} MiB (MLflow +{m['artifact_rss']:.0f} MiB)",
        grown < 128,
        "flat: < 128 MiB",
    )


def _ratio(label: str, mlflow_s: float, registrum_s: float, target: float, extra: str) -> None:
    ratio = mlflow_s / registrum_s if registrum_s > 0 else float("inf")
    report(label, f"{ratio:.1f}× faster", ratio >= target, f"≥ {target:g}×", f" ({extra})")


def _pid_listening(url: str) -> int:
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return int(conn.pid or 0)
    raise RuntimeError(f"no process listens on port {port}")


if __name__ == "__main__":
    main()
