"""Web UI load times in headless Chromium: the runs table of a 100,000-run project, the run
page's chart of a 1,000,000-point series and a model version's page; and the browser's CPU
while the page of a running run follows a metric logged at 100 points a second.

    python bench/bench_ui.py                       # 100,000 runs, 1,000,000 points
    python bench/bench_ui.py --runs 20000 --points 200000 --repeats 3

The store is a temporary SQLite file: the runs (10 params, 10 metric summaries and 1-2
tags each) are inserted straight into the tables as `bench_search.py` does, and the series
is logged through the service layer in 100 batches as `bench_history.py` does. A
`registrum server` subprocess serves it; Debian's Chromium (Playwright, `--chromium` to
point elsewhere) opens each page in a fresh tab of one browser context, so the UI's files
come from the HTTP cache as they would for a user coming back. Each figure is the median of
`--repeats` loads after one warm-up load, timed inside the page: from navigation start
(`performance.timeOrigin`) to the first frame painted after the page said it was ready
(`main[data-ready=true]`, set once the table has its rows or the charts have drawn). The
first, cold load is printed too, and the API calls behind each page, timed alone.

The live figure: a run left running, a client logging 10 points every 0.1 s for
`--live-seconds`, the run page open meanwhile; the page's main-thread task time (Chrome's
`Performance.getMetrics` TaskDuration) over that wall time is the share of one core it used.
Targets: runs table <= 300 ms, chart <= 500 ms, version page <= 200 ms, live < 5% of a core.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import requests
from _common import print_platform, report, server
from bench_history import KEY
from bench_history import fill as fill_series
from bench_search import fill as fill_runs

from registrum.store import open_store
from registrum.store.db import make_engine, migrate

PROJECT = "bench"  # the project bench_search.fill makes
TABLE_TARGET_S = 0.3
CHART_TARGET_S = 0.5
VERSION_TARGET_S = 0.2
LIVE_TARGET = 0.05  # of one core
MODEL = "bench-model"
PAGE_SIZE = 50
RUN_PAGE = Path(__file__).resolve().parents[1] / "core/registrum/server/ui/static/js/pages/run.js"

# Records, inside the page, when it first painted a frame after it said it was ready and
# `window.__benchReadySelector` matches inside <main>.
READY_SCRIPT = """
window.__readyAt = null;
new MutationObserver(() => {
  if (window.__readyAt !== null || window.__armed) return;
  const main = document.querySelector("main#page[data-ready=true]");
  if (!main || !main.querySelector(window.__benchReadySelector || "*")) return;
  window.__armed = true;
  requestAnimationFrame(() => setTimeout(() => { window.__readyAt = performance.now(); }, 0));
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-ready"] });
"""


def build(folder: Path, runs: int, points: int) -> tuple[str, str]:
    """The store: `runs` runs, then one run with a `points`-point series. Its URL, that run."""
    url = f"sqlite:///{folder}/r.db"
    engine = make_engine(url)
    migrate(engine)
    began = time.perf_counter()
    fill_runs(engine, runs)
    engine.dispose()
    print(f"{runs:,} runs inserted in {time.perf_counter() - began:.1f} s", flush=True)
    began = time.perf_counter()
    store = open_store(url, blobs=folder / "blobs")
    try:
        run_id = fill_series(store, points)
        # A version with a signature, params, metrics and files, registered from that run.
        blob = store.put_blob(io.BytesIO(b"weights" * 1000))
        files = [{"path": "model.bin", "sha256": blob.sha256, "size": blob.size}]
        store.log_params(run_id, {f"p{i}": i for i in range(20)})
        store.register_model_version(
            MODEL,
            project=PROJECT,
            run_id=run_id,
            files=files,
            metrics={f"m{i}": i / 10 for i in range(10)},
            signature={"inputs": [{"name": f"f{i}", "dtype": "float64"} for i in range(20)]},
        )
    finally:
        store.close()
    print(f"{points:,}-point series logged in {time.perf_counter() - began:.1f} s", flush=True)
    return url, run_id


def load(context: Any, url: str, selector: str) -> float:
    """Seconds from navigation start to the first frame painted once `selector` is ready."""
    page = context.new_page()
    try:
        page.add_init_script(f"window.__benchReadySelector = {orjson.dumps(selector).decode()};")
        page.goto(url)
        page.wait_for_function("() => window.__readyAt !== null", timeout=60_000)
        ms: float = page.evaluate("window.__readyAt")
        if not page.locator(f"main#page {selector}").count():
            raise RuntimeError(f"{url}: the page said it was ready without {selector}")
        return ms / 1000
    finally:
        page.close()


def loads(context: Any, url: str, selector: str, repeats: int) -> tuple[float, float]:
    """The first (cold) load and the median of `repeats` more, in seconds."""
    cold = load(context, url, selector)
    return cold, statistics.median(load(context, url, selector) for _ in range(repeats))


def api_ms(call: Any, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def measure(root: str, run_id: str, args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    api = f"{root}/api/v1"
    with requests.Session() as http:
        search_ms = api_ms(
            lambda: http.post(
                f"{api}/projects/{PROJECT}/runs/search", json={"limit": PAGE_SIZE}
            ).raise_for_status(),
            args.repeats,
        )
        history_ms = api_ms(
            lambda: http.get(
                f"{api}/metrics/histories",
                params={"run_id": run_id, "key": KEY, "max_points": 1000},
            ).raise_for_status(),
            args.repeats,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            headless=True,
        )
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(READY_SCRIPT)
        try:
            cold, warm = loads(
                context, f"{root}/#/projects/{PROJECT}", "table#runs tbody tr", args.repeats
            )
            report(
                f"runs table, {args.runs:,} runs, {PAGE_SIZE} a page",
                f"{warm * 1000:.0f} ms median of {args.repeats} (first load {cold * 1000:.0f} ms;"
                f" the search API alone {search_ms:.1f} ms)",
                warm <= TABLE_TARGET_S,
                f"<= {TABLE_TARGET_S * 1000:.0f} ms",
            )
            if not RUN_PAGE.exists():
                print("run page chart: SKIPPED, pages/run.js is not written yet", flush=True)
                return
            cold, warm = loads(context, f"{root}/#/runs/{run_id}", "#charts canvas", args.repeats)
            report(
                f"run page chart, {args.points:,}-point series",
                f"{warm * 1000:.0f} ms median of {args.repeats} (first load {cold * 1000:.0f} ms;"
                f" the downsampled series API alone {history_ms:.1f} ms)",
                warm <= CHART_TARGET_S,
                f"<= {CHART_TARGET_S * 1000:.0f} ms",
            )
            cold, warm = loads(
                context, f"{root}/#/models/{MODEL}/versions/1", ".version-header", args.repeats
            )
            report(
                "model version page",
                f"{warm * 1000:.0f} ms median of {args.repeats} (first load {cold * 1000:.0f} ms)",
                warm <= VERSION_TARGET_S,
                f"<= {VERSION_TARGET_S * 1000:.0f} ms",
            )
            share, grown, rate = live_cpu(context, root, args.live_seconds)
            report(
                "a live chart fed 100 points/s",
                f"{share * 100:.1f}% of one core in the browser over {args.live_seconds:g} s "
                f"({rate:.0f} points/s logged; the chart grew by {grown:,} points)",
                share < LIVE_TARGET and grown > 0,
                f"< {LIVE_TARGET * 100:.0f}% of a core",
            )
        finally:
            browser.close()


def live_cpu(context: Any, root: str, seconds: float) -> tuple[float, int, float]:
    """The share of one core the run page's main thread used while following a running run
    that logs 100 points a second, how many points its chart gained meanwhile, and the
    rate the points were in fact logged at."""
    from registrum.client.http import HttpStore

    client = HttpStore(root)
    run = client.create_run(PROJECT, name="live")
    client.log_metrics(run.id, seq=0, keys=["loss"], steps=[0], values=[1.0])
    stop = threading.Event()
    fed = [0]

    def feed() -> None:  # 10 points every 0.1 s, on a schedule (a slow call is caught up)
        seq, step, due = 1, 1, time.perf_counter()
        while not stop.is_set():
            steps = list(range(step, step + 10))
            client.log_metrics(
                run.id, seq=seq, keys=["loss"] * 10, steps=steps, values=[1 / s for s in steps]
            )
            seq, step, fed[0] = seq + 1, step + 10, fed[0] + 10
            due += 0.1
            stop.wait(max(0.0, due - time.perf_counter()))

    page = context.new_page()
    try:
        page.add_init_script("window.__benchReadySelector = '#charts canvas';")
        page.goto(f"{root}/#/runs/{run.id}")
        page.wait_for_function("() => window.__readyAt !== null", timeout=60_000)
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")

        def task_seconds() -> float:
            metrics = cdp.send("Performance.getMetrics")["metrics"]
            return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))

        before_points = int(page.get_attribute(".chart-box[data-key='loss']", "data-points") or 0)
        began, busy, sent = time.perf_counter(), task_seconds(), fed[0]
        time.sleep(seconds)
        busy, wall = task_seconds() - busy, time.perf_counter() - began
        rate = (fed[0] - sent) / wall
        after_points = int(page.get_attribute(".chart-box[data-key='loss']", "data-points") or 0)
        stop.set()
        feeder.join()
        return busy / wall, after_points - before_points, rate
    finally:
        stop.set()
        page.close()
        client.set_run_status(run.id, "finished")
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the project")
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the series")
    parser.add_argument("--repeats", type=int, default=5, help="timed loads per page")
    parser.add_argument(
        "--live-seconds", type=float, default=20.0, help="how long the live chart is fed"
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.points < 1 or args.repeats < 1:
        parser.error("--runs, --points and --repeats must be at least 1")
    if not Path(args.chromium).exists():
        parser.error(f"no Chromium at {args.chromium} (apt-get install chromium)")
    print_platform()
    with tempfile.TemporaryDirectory(prefix="registrum-bench-ui-") as tmp:
        folder = Path(tmp)
        url, run_id = build(folder, args.runs, args.points)
        with server(url, folder / "blobs") as root:
            measure(root, run_id, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
