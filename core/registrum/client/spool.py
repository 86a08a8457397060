"""The per-run spool: each event is on local disk before it is sent, and removed once delivered.

`$REGISTRUM_HOME/spool/<run_id>/<writer>/` is the spool of one process writing
the run (several processes, on one machine too, may write one run: ranks, sweep
workers). It holds `meta.json` (where the run goes), `events/<n>.json` (one
file per event, written atomically, replayed in order), `points.<n>.bin` (the
metric points, written through shared memory as `run.log` returns: see
`registrum.client.points`) and a `lock` file that the writing process holds:
`registrum sync` delivers only spools whose lock it can take, that is, whose
process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from registrum.client.points import (
    BATCH_POINTS,
    PointsFile,
    SeqClock,
    file_name,
    file_number,
    log_metrics_args,
    points_files,
)
from registrum.entities import encode_floats

_EVENT = "{:012d}.json"


@dataclass
class PointsBatch:
    """Points `start` to `end` of a points file, sent as one batch under `seq`."""

    file: PointsFile
    start: int
    end: int
    seq: int

    def event(self, run_id: str) -> dict[str, Any]:
        """The batch as a spooled `log_metrics` event."""
        args = log_metrics_args(run_id, self.seq, self.file.read(self.start, self.end))
        args["values"] = encode_floats(args["values"])
        return {"op": "log_metrics", "args": args}

    def sent(self) -> None:
        """The store has the batch; a file fully sent and no longer written is removed."""
        self.file.delivered(self.end)
        if self.file.sealed and self.end >= self.file.count:
            self.file.remove()


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

    def _make_folders(self) -> None:
        for _ in range(3):  # another writer of the run may remove the run's folder meanwhile
            try:
                self.events.mkdir(parents=True, exist_ok=True)
                return
            except FileNotFoundError:
                continue

    def create(self, meta: dict[str, Any]) -> None:
        self._make_folders()
        self._write(self.path / "meta.json", _dumps(meta))
        self._next = self._last_number() + 1

    def meta(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.path / "meta.json").read_bytes())
        return data

    def lock(self) -> bool:
        """Takes the spool for this process; False if a live process holds it."""
        self._make_folders()
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

    def new_points(self) -> PointsFile:
        """The next points file of this writer (its blocks allocated, mapped)."""
        taken = points_files(self.path)
        number = file_number(taken[-1]) + 1 if taken else 0
        return PointsFile.create(self.path / file_name(number))

    def append(self, event: dict[str, Any]) -> Path:
        """Writes the next event; once this returns, a crash of the process cannot lose it."""
        path = self.events / _EVENT.format(self._next)
        self._next += 1
        self._write(path, _dumps(event))
        return path

    def pending(self) -> Iterator[tuple[Path | PointsBatch, dict[str, Any]]]:
        """What is not yet delivered, oldest first: the events, with the metric points of
        the points files before the run's end (`finish_run`), or last.

        Call `done` or `reject` on each item before taking the next one: a points batch is
        named in its file when it is yielded, as a writer names it before sending it.
        """
        points = True
        for path in sorted(self.events.glob("*.json")) if self.events.exists() else []:
            try:
                event = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # a torn write of a crashed process: it never reached `append`'s return
            if points and isinstance(event, dict) and event.get("op") == "finish_run":
                points = False
                yield from self._pending_points()
            yield path, event
        if points:
            yield from self._pending_points()

    def _pending_points(self) -> Iterator[tuple[PointsBatch, dict[str, Any]]]:
        clock = SeqClock()
        for path in points_files(self.path):
            try:
                file = PointsFile.open(path)
            except ValueError:
                # Its writer died while creating it: points go in only once it is whole.
                path.unlink(missing_ok=True)
                continue
            except OSError:
                continue  # unreadable now: left for the next sync
            file.sealed = True  # its writer is gone
            try:
                if file.done >= file.count:
                    file.remove()
                    continue
                for start, end, seq in file.batches(BATCH_POINTS, clock):
                    file.begin(end, seq)
                    batch = PointsBatch(file, start, end, seq)
                    yield batch, batch.event(self.run_id)
            finally:
                file.close()

    def count(self) -> int:
        """Events not yet delivered, each points file counted as one."""
        events = sum(1 for _ in self.events.glob("*.json")) if self.events.exists() else 0
        return events + len(points_files(self.path))

    @staticmethod
    def done(item: Path | PointsBatch) -> None:
        if isinstance(item, PointsBatch):
            item.sent()
        else:
            item.unlink(missing_ok=True)

    def reject(self, item: Path | PointsBatch, reason: str) -> None:
        """Keeps an event the store refused, with why, out of the way of the others."""
        rejected = self.path / "rejected"
        rejected.mkdir(exist_ok=True)
        if isinstance(item, PointsBatch):
            # A refused batch of points becomes a spooled event like any other refused one.
            name = _EVENT.format(self._next)
            self._next += 1
            self._write(rejected / name, _dumps(item.event(self.run_id)))
            item.sent()
            path = rejected / name
        else:
            path = rejected / item.name
            os.replace(item, path)
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
        # Refused events keep their numbers (they may be put back among the pending ones).
        names = [p.stem for p in self.events.glob("*.json")] if self.events.exists() else []
        names += [p.stem for p in (self.path / "rejected").glob("*.json")]
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
