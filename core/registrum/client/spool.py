"""The per-run spool: each event is on local disk before it is sent, and removed once delivered.

`$REGISTRUM_HOME/spool/<run_id>/<writer>/` is the spool of one process writing
the run (several processes, on one machine too, may write one run: ranks, sweep
workers). It holds `meta.json` (where the run goes), `events/<n>.json` (one
file per event, written atomically, replayed in order) and a `lock` file that
the writing process holds: `registrum sync` delivers only spools whose lock it
can take, that is, whose process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_EVENT = "{:012d}.json"


def _dumps(value: Any) -> bytes:
    try:
        import orjson

        return orjson.dumps(value)
    except ImportError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


class Spool:
    """The spool folder of one run."""

    def __init__(self, root: Path, run_id: str, writer: str | None = None) -> None:
        self.run_id = run_id
        self.path = root / run_id / (writer or uuid.uuid4().hex[:12])
        self.events = self.path / "events"
        self._lock: IO[bytes] | None = None
        self._next = 0

    def create(self, meta: dict[str, Any]) -> None:
        for _ in range(3):  # another writer of the run may remove the run's folder meanwhile
            try:
                self.events.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                continue
        self._write(self.path / "meta.json", _dumps(meta))
        self._next = self._last_number() + 1

    def meta(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "meta.json").read_bytes())
        return data

    def lock(self) -> bool:
        """Takes the spool for this process; False if a live process holds it."""
        self.events.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / "lock", "ab")  # noqa: SIM115 - held for the run's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock = handle
        self._next = self._last_number() + 1
        return True

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def append(self, event: dict[str, Any]) -> Path:
        """Writes the next event; once this returns, a crash of the process cannot lose it."""
        path = self.events / _EVENT.format(self._next)
        self._next += 1
        self._write(path, _dumps(event))
        return path

    def pending(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """The events not yet delivered, oldest first."""
        for path in sorted(self.events.glob("*.json")):
            try:
                yield path, json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # a torn write of a crashed process: it never reached `append`'s return

    def count(self) -> int:
        return sum(1 for _ in self.events.glob("*.json")) if self.events.exists() else 0

    @staticmethod
    def done(path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """Keeps an event the store refused, with why, out of the way of the others."""
        rejected = self.path / "rejected"
        rejected.mkdir(exist_ok=True)
        os.replace(path, rejected / path.name)
        (rejected / f"{path.stem}.reason.txt").write_text(reason)

    def remove(self) -> None:
        """Deletes the spool of a fully delivered run (kept if anything was rejected)."""
        if (self.path / "rejected").exists():
            return
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):  # another writer of the run still has its spool
            self.path.parent.rmdir()

    def _last_number(self) -> int:
        names = [p.stem for p in self.events.glob("*.json")] if self.events.exists() else []
        return max((int(n) for n in names if n.isdigit()), default=-1)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


def spools(root: Path) -> list[Spool]:
    """Every spool under `root`, run by run."""
    if not root.exists():
        return []
    return [
        Spool(root, run.name, p.name)
        for run in sorted(root.iterdir())
        if run.is_dir()
        for p in sorted(run.iterdir())
        if (p / "meta.json").exists()
    ]
