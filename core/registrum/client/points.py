"""Points files: metric points written through shared memory, so a killed process loses none.

`run.log` appends each point to `points.<n>.bin` in the writer's spool folder,
a file of fixed size mapped into memory (`mmap`, shared). A store into that
memory is a store into the kernel's page cache: when the process dies, even by
SIGKILL, the kernel keeps the pages and writes them to the file. (A power loss
or a kernel crash is another matter: nothing is fsynced.)

A file is a 64-byte header, a key table and the points:

    header   magic, key table size, point capacity, then five counters (int64):
             keys    bytes of the key table in use
             count   points committed
             done    points the store has acknowledged
             sending where the batch being sent ends (== done when none is)
             seq     that batch's sequence number
    keys     one record per metric key: uint16 length, UTF-8 bytes; key id = its index
    points   `<iqdd`: key id, step, value, wall time (28 bytes each)

A writer writes a point's key first (when the file has not seen it), then the
points of one `run.log` call, and only then raises `count`: what lies past
`count` (a record torn by the process dying mid-write) is never read, and a
call's points are kept all or none. A batch is sent only after
`sending`/`seq` name it, and `done` moves once the store has it, so whoever
delivers a dead process's file (`registrum sync`) resends exactly the batch that
may have arrived, under its own `seq`, which the store then stores once.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAGIC = b"RGPOINT1"
_HEADER = struct.Struct("<8sqq")  # magic, key table size, point capacity
_KEYS, _COUNT, _DONE, _SENDING, _SEQ = 24, 32, 40, 48, 56
HEADER_SIZE = 64
POINT = struct.Struct("<iqdd")
_NAME = struct.Struct("<H")
_INT = struct.Struct("<q")
BATCH_POINTS = 10_000  # points in one batch sent to the store, at most
FILE_BYTES = 4 << 20  # ~150,000 points a file
KEY_BYTES = 64 << 10
PATTERN = "points.*.bin"


def file_name(number: int) -> str:
    return f"points.{number:08d}.bin"


def file_number(path: Path) -> int:
    return int(path.name.split(".")[1])


class SeqClock:
    """Batch sequence numbers, unique per run across its writers: microseconds, then the low
    bits of a random salt (several processes may write one run)."""

    def __init__(self) -> None:
        self._last_us = 0
        self._salt = int.from_bytes(os.urandom(1), "little")

    def next(self) -> int:
        self._last_us = max(self._last_us + 1, time.time_ns() // 1000)
        return self._last_us << 8 | self._salt


class PointsFile:
    """One points file, mapped into memory; `append` under the writer's lock."""

    def __init__(self, path: Path, mm: mmap.mmap) -> None:
        self.path = path
        self._mm = mm
        magic, self.key_bytes, self.capacity = _HEADER.unpack_from(mm, 0)
        if magic != MAGIC:
            raise ValueError(f"{path} is not a points file")
        self._points_at = HEADER_SIZE + self.key_bytes
        if len(mm) < self._points_at + self.capacity * POINT.size:
            raise ValueError(f"{path} is shorter than its header says")
        self.keys_used = min(self._get(_KEYS), self.key_bytes)
        self.count = min(self._get(_COUNT), self.capacity)
        self.names: list[str] = []
        self.ids: dict[str, int] = {}
        at, end = HEADER_SIZE, HEADER_SIZE + self.keys_used
        while at < end:
            (size,) = _NAME.unpack_from(mm, at)
            self._name(bytes(mm[at + 2 : at + 2 + size]).decode("utf-8", "surrogatepass"))
            at += 2 + size
        self.queued = self.done  # points turned into batches by this process's writer
        self.sealed = False  # no more points will be appended (its writer rotated)
        self.closed = False

    @classmethod
    def create(
        cls, path: Path, *, size: int | None = None, key_bytes: int | None = None
    ) -> PointsFile:
        """A new, empty file (`size` bytes, FILE_BYTES by default) whose blocks are allocated
        now: writing to a mapped page of a sparse file on a full disk would kill the process
        with SIGBUS."""
        size = FILE_BYTES if size is None else size
        key_bytes = KEY_BYTES if key_bytes is None else key_bytes
        capacity = (size - HEADER_SIZE - key_bytes) // POINT.size
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            total = HEADER_SIZE + key_bytes + capacity * POINT.size
            _allocate(fd, total)
            os.pwrite(fd, _HEADER.pack(MAGIC, key_bytes, capacity), 0)
            mm = mmap.mmap(fd, total)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)  # the mapping keeps the file
        return cls(path, mm)

    @classmethod
    def open(cls, path: Path) -> PointsFile:
        """A file a dead process left, to deliver what it holds."""
        fd = os.open(path, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        try:
            if len(mm) < HEADER_SIZE:
                raise ValueError(f"{path} is not a points file")
            return cls(path, mm)
        except ValueError:
            mm.close()
            raise

    # -- the counters in the header ----------------------------------------

    def _get(self, at: int) -> int:
        value: int = _INT.unpack_from(self._mm, at)[0]
        return value

    @property
    def done(self) -> int:
        return self._get(_DONE)

    @property
    def sending(self) -> tuple[int, int]:
        """The batch being sent: where it ends and its seq (ends at `done` when none is)."""
        return self._get(_SENDING), self._get(_SEQ)

    def begin(self, end: int, seq: int) -> None:
        """Names the batch from `done` to `end` before it is sent: the seq first, so that a
        process dying between the two stores leaves no batch named."""
        _INT.pack_into(self._mm, _SEQ, seq)
        _INT.pack_into(self._mm, _SENDING, end)

    def delivered(self, end: int) -> None:
        _INT.pack_into(self._mm, _DONE, end)

    # -- writing -----------------------------------------------------------

    def _name(self, key: str) -> int:
        self.ids[key] = len(self.names)
        self.names.append(key)
        return len(self.names) - 1

    def append(self, points: list[tuple[str, int, float, float]], start: int = 0) -> int:
        """Appends `points[start:]`; returns the index of the first point not taken
        (len(points) when all were). They are committed together: if they do not all fit,
        none is taken, unless the file is empty (a call bigger than a file is split)."""
        mm, ids, pack, size = self._mm, self.ids, POINT.pack_into, POINT.size
        count, capacity, n = self.count, self.capacity, len(points)
        empty = count == 0
        at = self._points_at + count * size
        i = start
        while i < n and count < capacity:
            key, step, value, wall = points[i]
            k = ids.get(key)
            if k is None:
                k = self._add_key(key)
                if k < 0:
                    break  # the key table is full: the rest goes to the next file
            pack(mm, at, k, step, value, wall)
            at += size
            count += 1
            i += 1
        if i < n and not empty:
            return start  # the next file takes them all: a kill never keeps half a call
        # Only now are the new points part of the file.
        self.count = count
        _INT.pack_into(mm, _COUNT, count)
        return i

    def _add_key(self, key: str) -> int:
        """Writes a key into the key table (durable before any point names it); -1 if full."""
        data = key.encode("utf-8", "surrogatepass")
        if len(data) > 0xFFFF:
            raise ValueError(f"metric key of {len(data)} bytes is too long")
        at = HEADER_SIZE + self.keys_used
        if self.keys_used + 2 + len(data) > self.key_bytes:
            return -1
        _NAME.pack_into(self._mm, at, len(data))
        self._mm[at + 2 : at + 2 + len(data)] = data
        self.keys_used += 2 + len(data)
        _INT.pack_into(self._mm, _KEYS, self.keys_used)
        return self._name(key)

    # -- reading -----------------------------------------------------------

    def read(self, start: int, end: int) -> tuple[list[str], list[int], list[float], list[float]]:
        """Points `start` to `end` as columns: keys, steps, values, wall times."""
        if end <= start:
            return [], [], [], []
        base = self._points_at
        raw = self._mm[base + start * POINT.size : base + end * POINT.size]
        ids, steps, values, times = zip(*POINT.iter_unpack(raw), strict=True)
        names = self.names
        return [names[k] for k in ids], list(steps), list(values), list(times)

    def batches(self, size: int, clock: SeqClock) -> Iterable[tuple[int, int, int]]:
        """What is left to send, as (start, end, seq): first the batch that may have reached
        the store already, under its own seq, then new ones."""
        start = self.done
        sending, seq = self.sending
        if sending > start:
            yield start, min(sending, self.count), seq
            start = sending
        while start < self.count:
            end = min(self.count, start + size)
            yield start, end, clock.next()
            start = end

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(BufferError, ValueError):
            self._mm.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _allocate(fd: int, size: int) -> None:
    """Gives the file `size` bytes of blocks on disk (not a sparse file)."""
    reserve = getattr(os, "posix_fallocate", None)  # not on macOS
    if reserve is not None:
        try:
            reserve(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    # Where the file system cannot reserve blocks, writing zeros allocates them.
    zeros = bytes(1 << 20)
    for at in range(0, size, len(zeros)):
        os.pwrite(fd, zeros[: size - at], at)


def points_files(folder: Path) -> list[Path]:
    """The points files of one writer's spool, oldest first."""
    if not folder.exists():
        return []
    return sorted(folder.glob(PATTERN), key=file_number)


def log_metrics_args(
    run_id: str, seq: int, columns: tuple[list[str], list[int], list[float], list[float]]
) -> dict[str, Any]:
    keys, steps, values, times = columns
    return {
        "run_id": run_id,
        "seq": seq,
        "keys": keys,
        "steps": steps,
        "values": values,
        "timestamps": times,
    }
