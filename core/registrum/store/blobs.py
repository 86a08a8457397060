"""Content-addressed blob storage: a backend-neutral interface and the local filesystem backend."""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from registrum import validation
from registrum.entities import BlobInfo
from registrum.errors import (
    BlobNotFound,
    HashMismatch,
    InsufficientStorage,
    InvalidArgument,
    RangeNotSatisfiable,
    StoreError,
)

__all__ = ["BlobStore", "BlobWriter", "LocalBlobStore"]

CHUNK_SIZE = 1 << 20
# Temp files unmodified this long belong to a writer that died (a live one touches its file at
# least every _TOUCH_EVERY seconds, however slowly its content arrives).
PARTIAL_MAX_AGE = 3600.0
_TOUCH_EVERY = 60.0
# What a write answers when the volume (or the writer's quota or file size limit) is full.
_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class BlobWriter(abc.ABC):
    """Streams one blob into a store; nothing is visible until `commit` succeeds.

    As a context manager it aborts on leaving the block without a commit.
    """

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Appends a chunk of content."""

    @abc.abstractmethod
    def commit(self, expected_sha256: str | None = None) -> BlobInfo:
        """Closes the writer and makes the blob visible under its sha256.

        Raises:
            HashMismatch: The content does not hash to `expected_sha256`; nothing is stored.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Drops what was written; calling it again, or after `commit`, does nothing."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.abort()


class BlobStore(abc.ABC):
    """Blobs addressed by the sha256 of their content, written and read as streams."""

    @abc.abstractmethod
    def begin(self) -> BlobWriter:
        """Starts writing a new blob."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""

    @abc.abstractmethod
    def size(self, sha256: str) -> int:
        """The blob's size in bytes; raises BlobNotFound if it is not stored."""

    @abc.abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """Opens the blob for reading; raises BlobNotFound if it is not stored."""

    @abc.abstractmethod
    def delete(self, sha256: str) -> None:
        """Removes the blob; removing one that is not stored does nothing."""

    def cleanup_temp(self, older_than_seconds: float = PARTIAL_MAX_AGE) -> int:
        """Removes partial uploads left by writers that died, and returns how many went (a
        backend that keeps none has nothing to do)."""
        return 0

    def stored(self) -> Iterator[tuple[str, int, float]]:
        """Every blob stored, as (sha256, size as listed, when written), in no set order,
        streamed: what garbage collection compares with the database (a backend that cannot
        list yields nothing, and its unrecorded blobs stay)."""
        return iter(())

    def sweep_unpublished(
        self, older_than_seconds: float, *, dry_run: bool = False
    ) -> tuple[int, int]:
        """Removes the bytes of finished uploads that no blob came to use (a server that
        died between finishing an upload and publishing it); returns how many and their
        bytes. A backend that publishes by renaming has none."""
        return 0, 0

    def put(
        self, stream: BinaryIO | Iterable[bytes], expected_sha256: str | None = None
    ) -> BlobInfo:
        """Stores the content of a readable binary stream or an iterable of chunks.

        Raises:
            HashMismatch: The content does not hash to `expected_sha256`; nothing was stored.
        """
        if expected_sha256 is not None:
            validation.sha256(expected_sha256)
        if isinstance(stream, bytes | bytearray | memoryview):
            raise InvalidArgument("put takes a binary stream or an iterable of chunks, not bytes")
        chunks: Iterable[bytes] = stream
        if hasattr(stream, "read"):
            read = stream.read
            chunks = iter(lambda: read(CHUNK_SIZE), b"")
        with self.begin() as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit(expected_sha256)

    def put_file(
        self, path: str | os.PathLike[str], expected_sha256: str | None = None
    ) -> BlobInfo:
        """Stores a file's content, streamed; see `put`."""
        with open(path, "rb") as f:
            return self.put(f, expected_sha256)

    def iter_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Streams bytes `start` to `end` (inclusive, as in HTTP Range; None: the last byte).

        The blob and the range are checked on the call, before the first chunk.

        Raises:
            BlobNotFound: The blob is not stored.
            RangeNotSatisfiable: The range does not lie within the blob.
        """
        if chunk_size < 1:
            raise InvalidArgument(f"chunk_size must be at least 1, got {chunk_size}")
        size = self.size(sha256)
        if size == 0 and start == 0 and end is None:
            return iter(())
        last = size - 1 if end is None else end
        if not 0 <= start <= last < size:
            raise RangeNotSatisfiable(
                f"bytes {start}-{last} are outside blob {sha256} of {size} bytes", size=size
            )
        return self._iter(sha256, start, last - start + 1, chunk_size)

    def _iter(self, sha256: str, start: int, length: int, chunk_size: int) -> Iterator[bytes]:
        # Opened lazily so that a generator never started leaves no file open.
        with self.open(sha256) as f:
            f.seek(start)
            yield from read_span(f, length, chunk_size)


_DIRECT_BLOCK = 4 << 20  # the aligned buffer of a writer; blobs larger than this bypass the cache
_ALIGN = 4096


class _LocalBlobWriter(BlobWriter):
    """Writes a temp file. Content passes through aligned buffers; once a blob outgrows one,
    the file is written with O_DIRECT where the file system allows it, so a large checkpoint
    costs no page-cache churn and little CPU, and its final fsync has little left to do. A full
    buffer is written on a thread of its own while the next one fills (and is hashed)."""

    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        # A random name, not mkstemp: O_EXCL keeps writers apart and the umask sets the mode.
        self._temp = store.temp_dir / f"{secrets.token_hex(16)}.part"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        try:
            store.temp_dir.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(self._temp, flags, 0o644)
        except OSError as exc:
            raise _storage_error(exc) from None
        self._touched = time.monotonic()
        self._buffer = mmap.mmap(-1, _DIRECT_BLOCK)  # page-aligned, as O_DIRECT needs
        self._spare: mmap.mmap | None = None  # the buffer being written, once there is one
        self._filled = 0
        self._blocks = 0  # full blocks written
        self._direct = False
        self._writing: Future[None] | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _open_fd(self) -> int:
        if self._fd is None:
            raise InvalidArgument("this blob writer is already committed or aborted")
        return self._fd

    def write(self, data: bytes) -> None:
        fd = self._open_fd()
        try:
            self._write(fd, data)
        except OSError as exc:
            self.abort()  # a failed writer keeps nothing: its partial file goes at once
            raise _storage_error(exc) from None

    def _write(self, fd: int, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        view = memoryview(data)
        while view:
            n = min(len(view), _DIRECT_BLOCK - self._filled)
            self._buffer[self._filled : self._filled + n] = view[:n]
            self._filled += n
            view = view[n:]
            if self._filled == _DIRECT_BLOCK:
                self._write_block(fd)
        if time.monotonic() - self._touched > _TOUCH_EVERY:
            # Content trickling into the buffer does not reach the file; keep its time fresh
            # so that the sweep of dead writers' files never takes a live one.
            os.utime(fd if os.utime in os.supports_fd else self._temp)
            self._touched = time.monotonic()

    def _write_block(self, fd: int) -> None:
        """Hands the full buffer to the writing thread and goes on with the other one."""
        if not self._blocks:  # the first full block: the blob is a large one
            self._direct = _set_direct(fd, True)
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="registrum-blob")
            self._spare = mmap.mmap(-1, _DIRECT_BLOCK)
        self._blocks += 1
        self._wait()
        assert self._pool is not None and self._spare is not None
        full, self._buffer, self._spare = self._buffer, self._spare, self._buffer
        self._writing = self._pool.submit(self._write_direct, fd, full)
        self._filled = 0

    def _write_direct(self, fd: int, block: mmap.mmap) -> None:
        try:
            _write_all(fd, memoryview(block))
        except OSError as exc:
            if not (self._direct and exc.errno == errno.EINVAL):
                raise
            self._direct = _set_direct(fd, False)  # a file system that refuses direct writes
            _write_all(fd, memoryview(block))

    def _wait(self) -> None:
        """Waits for the block being written; its failure is raised here."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def _flush_tail(self, fd: int) -> None:
        """Writes what the buffer holds: padded to the alignment under O_DIRECT, then cut."""
        self._wait()
        if not self._filled:
            return
        if self._direct:
            padded = -(-self._filled // _ALIGN) * _ALIGN
            _write_all(fd, memoryview(self._buffer)[:padded])
            os.ftruncate(fd, self._size)
        else:
            _write_all(fd, memoryview(self._buffer)[: self._filled])
        self._filled = 0

    def commit(self, expected_sha256: str | None = None) -> BlobInfo:
        fd = self._open_fd()
        try:
            if expected_sha256 is not None:
                validation.sha256(expected_sha256)
            self._flush_tail(fd)
            os.fsync(fd)
            digest = self._hash.hexdigest()
            check_digest(digest, expected_sha256)
            final = self._store.path(digest)
            if not final.exists():
                created = not final.parent.is_dir()
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(self._temp, final)
                _fsync_dir(final.parent)
                if created:
                    _fsync_dir(final.parent.parent)
                    _fsync_dir(self._store.root)
            return BlobInfo(digest, self._size)
        except OSError as exc:
            raise _storage_error(exc) from None
        finally:
            self.abort()

    def abort(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(Exception):  # a failed write was raised already, or moot
                self._wait()
            if self._pool is not None:
                self._pool.shutdown()
            with contextlib.suppress(OSError):  # a close may report a failed write again
                os.close(fd)
        finally:
            # The partial file goes first, whatever else fails: left behind, it would hold
            # the space of a full disk until someone removed it by hand.
            self._temp.unlink(missing_ok=True)
            for buffer in (self._buffer, self._spare):
                # A failed write's traceback may still hold a view of a buffer; then the
                # buffer is freed with that view instead.
                with contextlib.suppress(BufferError):
                    if buffer is not None:
                        buffer.close()


def _set_direct(fd: int, on: bool) -> bool:
    """Switches O_DIRECT on or off for a file; whether it is on now (never where the platform
    or the file system has none)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | direct if on else flags & ~direct)
    except OSError:
        return False
    return on


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


class LocalBlobStore(BlobStore):
    """Blobs as files under `root/ab/cd/<sha256>`, temp files under `root/tmp/`.

    Writers in threads and processes each write their own temp file and an atomic rename
    publishes it, so equal content written at once is stored intact. `root` is created on
    the first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.temp_dir = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        """The file that holds (or would hold) the blob."""
        validation.sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def begin(self) -> BlobWriter:
        return _LocalBlobWriter(self)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise _not_found(sha256) from None

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise _not_found(sha256) from None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def stored(self) -> Iterator[tuple[str, int, float]]:
        for first in _subfolders(self.root):
            if len(first.name) != 2:
                continue  # tmp/ and anything else that is not a blob folder
            for second in _subfolders(Path(first.path)):
                try:
                    entries = list(os.scandir(second.path))
                except FileNotFoundError:
                    continue
                for entry in entries:
                    if len(entry.name) != 64 or not entry.name.startswith(first.name + second.name):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield entry.name, info.st_size, info.st_mtime

    def cleanup_temp(self, older_than_seconds: float = PARTIAL_MAX_AGE) -> int:
        """Removes temp files left by crashed writers and returns how many went.

        Args:
            older_than_seconds: Only files unmodified this long go; keep it above the
                longest pause a live upload may take between two chunks.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        try:
            entries = list(os.scandir(self.temp_dir))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                pass  # committed, aborted or removed by another cleaner meanwhile
        return removed


def _subfolders(path: str | os.PathLike[str]) -> list[os.DirEntry[str]]:
    try:
        return [e for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def read_span(f: BinaryIO, length: int, chunk_size: int) -> Iterator[bytes]:
    """Up to `length` bytes of `f` from where it stands, `chunk_size` at a time."""
    while length > 0:
        chunk = f.read(min(chunk_size, length))
        if not chunk:
            break
        length -= len(chunk)
        yield chunk


def check_digest(digest: str, expected_sha256: str | None) -> None:
    """Raises HashMismatch when content hashing to `digest` was declared as another hash."""
    if expected_sha256 is not None and digest != expected_sha256:
        raise HashMismatch(
            f"content hashes to sha256 {digest}, but {expected_sha256} was expected; "
            "send the content again or correct the declared digest",
            expected=expected_sha256,
            actual=digest,
        )


def _storage_error(exc: OSError) -> StoreError:
    """What a failed write of the blob folder means to the caller: a full volume is a 507
    that says what to do; anything else a plain store error."""
    if exc.errno in _FULL:
        return InsufficientStorage(
            "the blob store has no space left for this upload "
            f"({os.strerror(exc.errno or 0)}); nothing was kept. Free space on the volume that "
            "holds the blobs (or raise its quota), then upload again"
        )
    return StoreError(f"could not write to the blob store: {exc.strerror}")


def _not_found(sha256: str) -> BlobNotFound:
    return BlobNotFound(f"blob {sha256} is not stored", sha256=sha256)


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; Windows cannot open a directory, and NTFS journals renames.
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
