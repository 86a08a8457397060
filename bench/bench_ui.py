"""Web UI load times in headless Chromium: the runs table of a 100,000-run project, and the
run page's chart of a 1,000,000-point series.

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
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
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
TARGET_S = 1.0
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
        page.wait_for_function("window.__readyAt !== null", timeout=60_000)
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
                warm <= TARGET_S,
                f"<= {TARGET_S:g} s",
            )
            if not RUN_PAGE.exists():
                print("run page chart: SKIPPED, pages/run.js is not written yet", flush=True)
                return
            cold, warm = loads(context, f"{root}/#/runs/{run_id}", "#charts canvas", args.repeats)
            report(
                f"run page chart, {args.points:,}-point series",
                f"{warm * 1000:.0f} ms median of {args.repeats} (first load {cold * 1000:.0f} ms;"
                f" the downsampled series API alone {history_ms:.1f} ms)",
                warm <= TARGET_S,
                f"<= {TARGET_S:g} s",
            )
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the project")
    parser.add_argument("--points", type=int, default=1_000_000, help="points in the series")
    parser.add_argument("--repeats", type=int, default=5, help="timed loads per page")
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
