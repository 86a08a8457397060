"""Client costs: `run.log` in the caller's thread, `import registrum`, points end to end, and
what a trainer killed by SIGKILL keeps (points logged before the kill, stored after sync).

The checkpoint upload has its own script, `bench_upload.py`.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_platform, report, server

import registrum


def log_cost(calls: int) -> None:
    """Median and p99 cost of one `run.log({"loss": x}, step=i)` in the caller's thread."""
    with tempfile.TemporaryDirectory() as home:
        os.environ["REGISTRUM_HOME"] = home
        run = registrum.init(project="bench", mode="offline")
        samples = []
        clock = time.perf_counter_ns
        for i in range(calls):
            began = clock()
            run.log({"loss": 0.5}, step=i)
            samples.append(clock() - began)
        run.finish(timeout=0)
    samples.sort()
    median = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    report("run.log median", f"{median:.2f} µs", median <= 5, "<= 5 µs", f"  p99 {p99:.2f} µs")


def import_cost() -> None:
    """Time and memory of `import registrum` in a fresh interpreter (median of 5)."""
    # VmRSS before and after, in the child: ru_maxrss would carry the parent's peak over exec.
    code = (
        "import re, time\n"
        "def rss():\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
        "before = rss(); t = time.perf_counter(); import registrum\n"
        "print(time.perf_counter() - t, (rss() - before) / 1024)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(5)
    ]
    seconds = statistics.median(float(r.stdout.split()[0]) for r in runs)
    added = statistics.median(float(r.stdout.split()[1]) for r in runs)
    report("import registrum", f"{seconds:.3f} s", seconds <= 0.15, "<= 0.15 s")
    report("import registrum memory", f"{added:.0f} MB", added <= 40, "<= 40 MB")


def end_to_end(points: int) -> None:
    """`points` logged by one run, delivered to a real `registrum server` over HTTP."""
    with (
        tempfile.TemporaryDirectory() as folder,
        server(f"sqlite:///{folder}/r.db", Path(folder) / "blobs") as url,
    ):
        os.environ["REGISTRUM_HOME"] = str(Path(folder) / "home")
        began = time.perf_counter()
        run = registrum.init(project="bench", store=url)
        for i in range(points):
            run.log({"loss": 1.0 / (i + 1)}, step=i)
        run.finish()
        seconds = time.perf_counter() - began
    report(
        f"{points:,} points end to end over HTTP",
        f"{seconds:.2f} s",
        seconds <= 5,
        "<= 5 s",
        f"  {points / seconds:,.0f} points/s",
    )


KILLED_TRAINER = """
import sys, registrum
run = registrum.init(project="bench", name="killed", store=sys.argv[1])
print(run.id, flush=True)
for i in range(1 << 40):
    run.log({"loss": 1.0 / (i + 1)}, step=i)
    print(i, flush=True)  # this `log` has returned
"""


def killed_trainer(steps: int) -> None:
    """A trainer logging to a real server is SIGKILLed after `steps` steps, then `registrum
    sync` runs: every point whose `log` returned must be stored, once."""
    with (
        tempfile.TemporaryDirectory() as folder,
        server(f"sqlite:///{folder}/r.db", Path(folder) / "blobs") as url,
    ):
        script = Path(folder) / "train.py"
        script.write_text(KILLED_TRAINER)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
        env["REGISTRUM_HOME"] = str(Path(folder) / "home")
        with subprocess.Popen(
            [sys.executable, str(script), url], env=env, stdout=subprocess.PIPE, text=True
        ) as trainer:
            assert trainer.stdout is not None
            run_id = trainer.stdout.readline().strip()
            for line in trainer.stdout:
                if int(line) >= steps:
                    break
            trainer.send_signal(signal.SIGKILL)
            printed = [line, *trainer.stdout.read().split()]
            trainer.wait()
        # Whole lines only; the step being logged when the signal came may be stored as well.
        logged = int(next(p for p in reversed(printed) if p.strip().isdigit())) + 1
        subprocess.run(
            [sys.executable, "-m", "registrum.cli", "sync"],
            env=env,
            check=True,
            capture_output=True,
        )
        from registrum.client.http import HttpStore

        reader = HttpStore(url)
        history = reader.metric_history(run_id, "loss")
        reader.close()
    stored, distinct = len(history.steps), len(set(history.steps))
    contiguous = list(history.steps) == list(range(stored))
    report(
        "SIGKILL of the trainer",
        f"{logged:,} points logged before the kill, {stored:,} stored after sync",
        stored in (logged, logged + 1) and distinct == stored and contiguous,
        "all logged points stored, none twice",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1_000_000, help="run.log calls to time")
    parser.add_argument("--points", type=int, default=1_000_000, help="points sent end to end")
    parser.add_argument("--kill-at", type=int, default=100_000, help="steps before the SIGKILL")
    args = parser.parse_args()
    print_platform()
    log_cost(args.calls)
    import_cost()
    end_to_end(args.points)
    killed_trainer(args.kill_at)


if __name__ == "__main__":
    main()
