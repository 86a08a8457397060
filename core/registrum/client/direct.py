"""Direct transfers: a file goes straight to the server's object store through presigned URLs
(one PUT up to a part size, parts in parallel above it, each with its CRC32, which the
bucket checks), and downloads follow the server's redirect to a presigned GET. The server
only hands out URLs and checks what arrived.

A multipart upload is resumable: its token is kept under `REGISTRUM_HOME/uploads/`, keyed by
the server and the file's identity (device, inode, size, modification time), so a process
killed half-way and started again sends only the parts the server does not list. Requests
to the bucket never carry the client's `Authorization` header: they go through a session of
their own.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import itertools
import json
import os
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from registrum.entities import BlobInfo
from registrum.errors import (
    HashMismatch,
    NotFound,
    RegistrumError,
    StoreError,
    StoreUnavailable,
)

WORKERS = 8  # parts in flight at once
_READ = 1 << 20  # bytes per read of a part as it is sent
_HASH_READ = 8 << 20
_PART_ATTEMPTS = 3
_URL_BATCH = 2 * WORKERS  # part URLs asked for in one request
_BATCHES_AHEAD = 3
_POLLS = (0.02, 0.05, 0.1, 0.2, 0.25)  # pauses while the server checks an upload

Progress = Callable[[int], None]


class _Slice(io.RawIOBase):
    """Bytes `offset`..`offset + length` of a file, read for an upload in 1 MiB blocks (the
    HTTP client asks for less; answering more sends with fewer calls), counted for the
    progress line. It tells its length, so the PUT carries a Content-Length."""

    def __init__(self, source: Path, offset: int, length: int, progress: Progress) -> None:
        self._file = open(source, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        self._offset, self._left, self._length = offset, length, length
        self._progress = progress

    def __len__(self) -> int:
        return self._left

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._length - self._left

    def seek(self, position: int, whence: int = 0) -> int:
        # A retried request rewinds its body to the start.
        if (position, whence) != (0, 0):
            raise OSError("a part can only be rewound to its start")
        self._file.seek(self._offset)
        self._left = self._length
        return 0

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(max(size, _READ), self._left)
        data = self._file.read(want)
        self._left -= len(data)
        self._progress(len(data))
        return data

    def close(self) -> None:
        self._file.close()
        super().close()


def _crc32(source: Path, offset: int, length: int) -> str:
    """A part's CRC32 as S3 spells it (4 big-endian bytes, base64); read from the page cache
    just before the part is sent."""
    crc = 0
    with open(source, "rb") as f:
        f.seek(offset)
        while length > 0:
            block = f.read(min(_HASH_READ, length))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            length -= len(block)
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def resume_path(server: str, stat: os.stat_result) -> Path:
    """Where the token of an upload of this file to this server is kept."""
    home = Path(os.environ.get("REGISTRUM_HOME") or Path.home() / ".registrum").expanduser()
    identity = f"{server}|{stat.st_dev}|{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}"
    return home / "uploads" / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.json"


class DirectTransfers:
    """The client's side of direct transfers, for one server connection (`conn`: an
    `HttpStore`, whose `_json`/`_call` speak to the server)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.available: bool | None = None  # None: not asked yet
        self.parts_sent = 0  # parts this client sent to the bucket (tests, benchmarks)
        # Seconds the last upload spent sending, and then waiting for the server's check.
        self.last_timing: dict[str, float] = {}
        self._bucket = requests.Session()  # no Authorization header, ever
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=2 * WORKERS)
        self._bucket.mount("http://", adapter)
        self._bucket.mount("https://", adapter)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._bucket.close()

    # -- uploads ----------------------------------------------------------------------

    def upload(
        self, source: Path, *, sha256: str | None, progress: Progress = lambda _: None
    ) -> BlobInfo | None:
        """Sends a file straight to the bucket; None when the server takes bytes itself
        (no bucket, or --proxy-blobs), which it says once per connection."""
        if self.available is False:
            return None
        stat = source.stat()
        size = stat.st_size
        keep = resume_path(self._conn.url, stat)
        state = self._resumed(keep)
        if state is None:
            try:
                state = self._conn._json(
                    "POST", "/blobs/uploads", body={"sha256": sha256, "size": size}
                )
            except RegistrumError as exc:
                if getattr(exc, "status", None) not in (404, 405):
                    raise
                state = {"mode": "proxy"}  # a server from before direct transfers
            self.available = state["mode"] == "direct"
            if not self.available:
                return None
            if state["present"]:
                progress(size)
                return BlobInfo(sha256=state["sha256"], size=size)
            if "missing" in state:  # a multipart upload: kept, to resume after a kill
                keep.parent.mkdir(parents=True, exist_ok=True)
                keep.write_text(json.dumps({"upload": state["upload"]}))
        # A file of unknown digest is not hashed here: the server reads a multipart upload
        # back to check it anyway, and says what it hashes to (the client reads it once).
        began = time.perf_counter()
        if state["state"] == "uploading":
            self._send(source, size, state, progress)
        sent = time.perf_counter()
        info = self._complete(state["upload"], sha256, size)
        self.last_timing = {"send": sent - began, "check": time.perf_counter() - sent}
        keep.unlink(missing_ok=True)
        return info

    def _resumed(self, keep: Path) -> dict[str, Any] | None:
        """The state of a kept upload, or None (none kept, or the server forgot it)."""
        try:
            token = json.loads(keep.read_text())["upload"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        try:
            state: dict[str, Any] = self._conn._json("GET", f"/blobs/uploads/{token}")
        except NotFound:
            keep.unlink(missing_ok=True)
            return None
        self.available = True
        return state

    def _send(self, source: Path, size: int, state: dict[str, Any], progress: Progress) -> None:
        if "url" in state:
            self._put(state["url"], source, 0, size, progress, state.get("headers", {}))
            return
        part_size = state["part_size"]
        progress(sum(p["size"] for p in state["parts"]))  # what arrived before a kill

        def signed(numbers: list[int]) -> dict[int, tuple[str, str]]:
            """Each part's presigned URL and CRC32: one request for a batch of parts."""
            crc32 = {}
            for n in numbers:
                offset = (n - 1) * part_size
                crc32[str(n)] = _crc32(source, offset, min(part_size, size - offset))
            urls = self._conn._json(
                "POST", f"/blobs/uploads/{state['upload']}/parts", body={"crc32": crc32}
            )["urls"]
            return {n: (urls[str(n)], crc32[str(n)]) for n in numbers}

        def send(number: int, url: str, checksum: str) -> None:
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            headers = {"x-amz-checksum-crc32": checksum}
            self._put(url, source, offset, length, progress, headers)

        # URLs are asked for a batch at a time while earlier parts are sent, at most a few
        # batches ahead (a URL is valid for an hour, and a failure stops the rest soon).
        missing = list(state["missing"])
        batches = [missing[i : i + _URL_BATCH] for i in range(0, len(missing), _URL_BATCH)]
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="registrum-part") as pool:
            sending: list[list[Future[None]]] = []
            for batch in batches:
                if len(sending) >= _BATCHES_AHEAD:
                    for future in sending.pop(0):
                        future.result()
                sending.append([pool.submit(send, n, *at) for n, at in signed(batch).items()])
            for futures in sending:
                for future in futures:
                    future.result()

    def _put(
        self,
        url: str,
        source: Path,
        offset: int,
        length: int,
        progress: Progress,
        headers: dict[str, str],
    ) -> None:
        for attempt in range(_PART_ATTEMPTS):
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                progress(n)

            try:
                with _Slice(source, offset, length, count) as body:
                    answer = self._bucket.put(url, data=body, headers=headers, timeout=300)
            except requests.RequestException as exc:
                progress(-sent)
                if attempt == _PART_ATTEMPTS - 1:
                    raise StoreUnavailable(
                        f"cannot reach the object store: {type(exc).__name__}"
                    ) from None
                continue
            if answer.status_code < 300:
                with self._lock:
                    self.parts_sent += 1
                return
            progress(-sent)
            if answer.status_code < 500 or attempt == _PART_ATTEMPTS - 1:
                # The URL is not shown: it carries a signature.
                raise StoreError(
                    f"the object store refused an upload ({answer.status_code}): "
                    f"{answer.text[:300]}"
                )

    def _complete(self, token: str, sha256: str | None, size: int) -> BlobInfo:
        state = self._conn._json(
            "POST", f"/blobs/uploads/{token}/complete", body={"sha256": sha256, "size": size}
        )
        # The server reads a large upload back before it counts: that takes a while.
        for pause in itertools.chain(_POLLS, itertools.repeat(_POLLS[-1])):
            if state["state"] == "done":
                return BlobInfo(sha256=state["sha256"], size=size)
            if state["state"] == "rejected":
                raise HashMismatch(state.get("reason", "the server rejected the upload"))
            time.sleep(pause)
            state = self._conn._json("GET", f"/blobs/uploads/{token}")
        raise AssertionError("unreachable")

    # -- downloads --------------------------------------------------------------------

    def get(self, url: str, headers: dict[str, str]) -> requests.Response:
        """A presigned GET, streamed, without the client's credentials."""
        try:
            answer = self._bucket.get(url, headers=headers, stream=True, timeout=300)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"cannot reach the object store: {type(exc).__name__}") from None
        if answer.status_code >= 300:
            with contextlib.suppress(Exception):
                answer.close()
            raise StoreError(f"the object store refused a download ({answer.status_code})")
        return answer
