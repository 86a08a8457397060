"""Where a client test sends its runs, how it reads them back, and running an example."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Target:
    store: str | None  # what `registrum.init(store=...)` gets
    reader: Any  # a Store or HttpStore over the same data
    home: Path


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, target: Target, *, timeout: float = 300) -> str:
    """Runs `examples/<name>` as a user would: the embedded store under the target's home, or
    `REGISTRUM_URL` set to its server. Returns what it printed; a failure raises."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRUM_")}
    env["REGISTRUM_HOME"] = str(target.home)
    if target.store is not None:
        env["REGISTRUM_URL"] = target.store
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return done.stdout


def sync(home: Path) -> subprocess.CompletedProcess[str]:
    """`registrum sync` in a process of its own, over the spools under `home`; a failure raises."""
    return subprocess.run(
        [sys.executable, "-m", "registrum.cli", "sync"],
        env={**os.environ, "REGISTRUM_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
