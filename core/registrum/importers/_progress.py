"""What every importer shows and answers: a progress bar per source project, and the report.

An importer fills one `ImportReport` (counting only what it newly copied, so a repeated
import reports zeros), shows a `ProgressBar` while it walks each project, and the command
prints `report.render()` and exits with `report.exit_code()`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TextIO


@dataclass(frozen=True)
class Skipped:
    """Something an import left out on purpose, and why (not a failure)."""

    what: str
    why: str


@dataclass(frozen=True)
class Failure:
    """Something an import could not copy; the import exits non-zero and resumes there."""

    what: str
    error: str


@dataclass
class ImportReport:
    """What one import copied (new this time), left out and failed on.

    Attributes:
        source: what was imported, as the report's first line names it ("neptune", "mlflow").
        projects: projects (experiments) visited.
        runs: runs copied or completed this time.
        runs_unchanged: runs found complete from an earlier import and left as they were.
        points: metric points newly stored (a batch stored before counts 0).
        artifacts: artifact versions newly made.
        bytes: bytes uploaded (content the store had already is not sent, not counted).
        models: registered models newly made.
        versions: model versions newly registered.
    """

    source: str
    projects: int = 0
    runs: int = 0
    runs_unchanged: int = 0
    points: int = 0
    artifacts: int = 0
    bytes: int = 0
    models: int = 0
    versions: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.skipped.append(Skipped(what, why))

    def fail(self, what: str, error: str) -> None:
        self.failures.append(Failure(what, error))

    @property
    def ok(self) -> bool:
        return not self.failures

    def exit_code(self) -> int:
        """0 when everything was copied, 1 when anything failed."""
        return 0 if self.ok else 1

    def render(self) -> str:
        """The printed report: counts, then each skip and each failure on its own line."""
        lines = [
            f"imported from {self.source}: {self.projects} project(s), {self.runs} run(s) "
            f"({self.runs_unchanged} already complete), {self.points:,} metric point(s), "
            f"{self.artifacts} artifact(s) ({human_bytes(self.bytes)} sent), "
            f"{self.models} model(s), {self.versions} version(s)"
        ]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s.what}: {s.why}" for s in self.skipped]
        if self.failures:
            lines.append(f"FAILED {len(self.failures)}:")
            lines += [f"  {f.what}: {f.error}" for f in self.failures]
            lines.append("fix what failed, then run the same command again: it resumes there")
        return "\n".join(lines)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """One line on stderr for one project: `label [#####     ] 12/40 note`.

    Drawn only on a terminal (a log file gets no carriage returns), at most every 0.1 s;
    use as a context manager so the line is ended.
    """

    WIDTH = 24

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._drawn = 0.0

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self._draw(note, force=self.done >= self.total)

    def _draw(self, note: str, *, force: bool = False) -> None:
        if not self._enabled or (not force and time.monotonic() - self._drawn < 0.1):
            return
        self._drawn = time.monotonic()
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "#" * filled + " " * (self.WIDTH - filled)
        self._stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {note[:40]:<40}")
        self._stream.flush()

    def __enter__(self) -> ProgressBar:
        self._draw("", force=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._enabled:
            self._draw("", force=True)
            self._stream.write("\n")
            self._stream.flush()
