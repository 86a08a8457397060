"""Files to and from the store: hashing, deduplicated parallel upload, verified download.

A small file is hashed before it is sent, so content the store has is never sent again. A
large one (`STREAM_MIN` and up) is read once: it is sent as it is read and the store hashes
it on arrival, unless this process already knows its digest (a file it sent or hashed before,
unchanged since: same inode, size and modification time, as with a hard-linked snapshot).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registrum.capture.fingerprint import hash_file
from registrum.client.transport import Transport
from registrum.errors import BlobNotFound, HashMismatch, InvalidArgument

_CHUNK = 1 << 20
STREAM_MIN = 64 << 20  # files this large are hashed by the store on the way in
_KNOWN_MAX = 4096

log = logging.getLogger("registrum")
_known: dict[tuple[int, int, int, int], str] = {}  # (device, inode, size, mtime) -> sha256
_known_lock = threading.Lock()


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _remember(stat: os.stat_result, sha256: str) -> None:
    with _known_lock:
        if len(_known) >= _KNOWN_MAX:
            _known.pop(next(iter(_known)))
        _known[_identity(stat)] = sha256


@dataclass(frozen=True)
class LocalFile:
    path: str  # inside the artifact, with `/`
    source: Path
    sha256: str | None  # None: a large file, hashed by the store as it arrives
    size: int


def local_file(path: str, source: Path) -> LocalFile:
    """A file to upload, hashed now if it is small and its digest is not known already."""
    stat = source.stat()
    with _known_lock:
        sha: str | None = _known.get(_identity(stat))
    if sha is None and stat.st_size < STREAM_MIN:
        sha, _ = hash_file(source)
        _remember(stat, sha)
    return LocalFile(path, source, sha, stat.st_size)


def listing(path: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """The files of a file or a folder (recursively) as (path inside the artifact, source),
    unread; a missing path or an empty folder raises at once."""
    root = Path(path)
    if not root.exists():
        raise InvalidArgument(f"{root} does not exist: nothing to log")
    if root.is_file():
        return [(root.name, root)]
    pairs = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    if not pairs:
        raise InvalidArgument(f"{root} is an empty folder: nothing to log")
    return pairs


def collect(path: str | os.PathLike[str]) -> list[LocalFile]:
    """The files of a file or a folder (recursively); a missing path raises at once."""
    return [local_file(rel, source) for rel, source in listing(path)]


class Progress:
    """A one-line byte counter on stderr, shown only on a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        self._shown = 0.0
        self.enabled = sys.stderr.isatty() and total > 8 * _CHUNK

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self.enabled and (time.monotonic() - self._shown > 0.2 or self.done >= self.total):
                self._shown = time.monotonic()
                percent = 100 * self.done / max(self.total, 1)
                sys.stderr.write(
                    f"\rregistrum: {self.label} {self.done / 2**20:,.1f}/"
                    f"{self.total / 2**20:,.1f} MiB ({percent:.0f}%)"
                )
                if self.done >= self.total:
                    sys.stderr.write("\n")
                sys.stderr.flush()


class _Counted(io.RawIOBase):
    """A file read for upload, counting bytes for the progress line; it tells its
    length, so the upload carries a Content-Length instead of chunked framing."""

    def __init__(self, source: Path, progress: Progress) -> None:
        self._file = open(source, "rb")  # noqa: SIM115 - closed by close()
        self._size = os.fstat(self._file.fileno()).st_size
        self._progress = progress

    def __len__(self) -> int:
        return self._size - self._file.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(max(size, _CHUNK) if size != -1 else -1)
        self._progress.add(len(data))
        return data

    def close(self) -> None:
        self._file.close()
        super().close()


def upload(
    transport: Transport, files: list[LocalFile], *, label: str, workers: int = 4
) -> list[dict[str, Any]]:
    """Sends what the store lacks (each content once), in parallel, with a progress line, and
    returns the manifest (path, sha256, size) of `files`."""
    hashed = [f for f in files if f.sha256 is not None]
    missing = (
        set(transport.missing_blobs([f.sha256 for f in hashed if f.sha256 is not None]))
        if hashed
        else set()
    )
    todo = list({f.sha256: f for f in hashed if f.sha256 in missing}.values())
    todo += [f for f in files if f.sha256 is None]
    progress = Progress(label, sum(f.size for f in todo))
    sent: dict[Path, tuple[str, int]] = {}

    direct = getattr(transport, "upload_direct", None)  # a server with an object store

    def send(f: LocalFile) -> None:
        stat = f.source.stat()
        info = None if direct is None else direct(f.source, sha256=f.sha256, progress=progress.add)
        if info is None:
            with _Counted(f.source, progress) as body:
                info = transport.put_blob(body, sha256=f.sha256)
        if f.sha256 is None:
            if _identity(f.source.stat()) == _identity(stat):
                _remember(stat, info.sha256)
            sent[f.source] = (info.sha256, info.size)

    if len(todo) <= 1:
        for f in todo:
            send(f)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(send, f) for f in todo]:
                future.result()
    manifest = []
    for f in files:
        sha, size = (f.sha256, f.size) if f.sha256 is not None else sent[f.source]
        manifest.append({"path": f.path, "sha256": sha, "size": size})
    return manifest


def download(transport: Transport, files: list[dict[str, Any]], dest: Path, *, label: str) -> Path:
    """Fetches an artifact's files into `dest`, verifying each sha256; files already there
    with the right content are kept. Writes go to a temporary name first."""
    dest.mkdir(parents=True, exist_ok=True)
    todo = []
    for f in files:
        target = dest / f["path"]
        if (
            target.is_file()
            and target.stat().st_size == f["size"]
            and hash_file(target)[0] == f["sha256"]
        ):
            continue
        todo.append((f, target))
    progress = Progress(label, sum(f["size"] for f, _ in todo))
    for f, target in todo:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        h = hashlib.sha256()
        with open(tmp, "wb") as out:
            for chunk in transport.read_blob(f["sha256"]):
                h.update(chunk)
                out.write(chunk)
                progress.add(len(chunk))
        if h.hexdigest() != f["sha256"]:
            tmp.unlink(missing_ok=True)
            raise HashMismatch(f"downloaded {f['path']} does not match its sha256 {f['sha256']}")
        os.replace(tmp, target)
    return dest


def snapshot(source: Path, into: Path) -> dict[str, Any]:
    """A stable reference to a file for a later upload, taken at once whatever its size: a hard
    link when possible (it survives the trainer deleting the file), else a copy. The file's size
    and modification time are kept, so a file rewritten in place before its upload is noticed."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / f"{time.time_ns()}-{source.name}"
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    stat = target.stat()
    return {"source": str(target), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _snapshotted(f: dict[str, Any]) -> LocalFile:
    """A snapshot to upload; warns when its file changed since the snapshot was taken."""
    source = Path(f["source"])
    stat = source.stat()
    if "mtime_ns" in f and (stat.st_size, stat.st_mtime_ns) != (f["size"], f["mtime_ns"]):
        log.warning(
            "registrum: %s was rewritten in place after it was logged; its current content "
            "is uploaded",
            f["path"],
        )
    return local_file(f["path"], source)


def upload_then(
    transport: Transport,
    files: list[LocalFile],
    record: Callable[[list[dict[str, Any]]], Any],
    *,
    label: str,
) -> Any:
    """Uploads what the store lacks, then `record`s the manifest. A blob that a garbage
    collection removed between the two (nothing referenced it yet) is refused by the store:
    it is uploaded again and recorded once more (docs/lifecycle.md)."""
    for attempt in range(2):
        manifest = upload(transport, files, label=label)
        try:
            return record(manifest)
        except BlobNotFound:
            if attempt:
                raise
    raise AssertionError("unreachable")


def deliver_artifact(transport: Transport, args: dict[str, Any]) -> Any:
    """The writer's side of a background artifact (a checkpoint): upload the snapshots the
    store lacks, record the artifact (the same files again give the same version), then drop
    the snapshots, unless the event keeps them for a registration still to come."""
    files = [_snapshotted(f) for f in args["files"]]
    artifact = upload_then(
        transport,
        files,
        lambda manifest: transport.create_artifact(
            args["project"],
            args["name"],
            type=args["type"],
            files=manifest,
            run_id=args["run_id"],
            metadata=args.get("metadata"),
        ),
        label=f"uploading {args['name']}",
    )
    if not args.get("keep"):
        for f in files:
            f.source.unlink(missing_ok=True)
    return artifact
