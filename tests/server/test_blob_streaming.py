"""Blobs through a real `registrum server` process: hash checks, Range requests, bounded memory."""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from serving import ServerProcess, server_process

MiB = 1 << 20
CONTENT = bytes(range(256)) * 4 + b"registrum"  # 1033 bytes
CONTENT_SHA = hashlib.sha256(CONTENT).hexdigest()


Server = ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with server_process(tmp_path_factory.mktemp("blob-server")) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture(scope="module")
def stored(server: Server) -> str:
    with requests.put(f"{server.url}/blobs/{CONTENT_SHA}", data=CONTENT) as r:
        assert r.status_code in (200, 201), r.text
    return CONTENT_SHA


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


# -- hash check -------------------------------------------------------------------


def test_upload_then_head_and_download(server: Server, session: requests.Session) -> None:
    body = b"small blob " * 100
    sha = hashlib.sha256(body).hexdigest()
    with session.put(f"{server.url}/blobs/{sha}", data=body) as r:
        assert r.status_code == 201, r.text
        assert r.json() == {"sha256": sha, "size": len(body), "created": True}
    with session.put(f"{server.url}/blobs/{sha}", data=body) as r:
        assert r.status_code == 200 and r.json()["created"] is False
    with session.head(f"{server.url}/blobs/{sha}") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(body))
    with session.get(f"{server.url}/blobs/{sha}") as r:
        assert r.status_code == 200 and r.content == body


def test_content_that_does_not_match_the_digest_is_rejected_and_not_stored(
    server: Server, session: requests.Session
) -> None:
    declared = hashlib.sha256(b"what the client meant to send").hexdigest()
    with session.put(f"{server.url}/blobs/{declared}", data=iter([b"something ", b"else"])) as r:
        assert r.status_code == 400, r.text
        assert error_code(r) == "hash_mismatch"
        assert declared in r.json()["error"]["message"]
    with session.head(f"{server.url}/blobs/{declared}") as r:
        assert r.status_code == 404
    actual = hashlib.sha256(b"something else").hexdigest()
    with session.head(f"{server.url}/blobs/{actual}") as r:
        assert r.status_code == 404
    temp = server.blobs / "tmp"
    assert not temp.exists() or not any(temp.iterdir())


def test_a_malformed_digest_is_rejected(server: Server, session: requests.Session) -> None:
    with session.put(f"{server.url}/blobs/not-a-digest", data=b"x") as r:
        assert r.status_code == 400 and error_code(r) == "invalid_argument"


# -- Range ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=-5", len(CONTENT) - 5, len(CONTENT) - 1),
        ("bytes=10-", 10, len(CONTENT) - 1),
        ("bytes=1000-99999", 1000, len(CONTENT) - 1),  # the end is clamped to the blob
    ],
)
def test_range_requests_get_206_with_the_right_bytes(
    server: Server, session: requests.Session, stored: str, header: str, first: int, last: int
) -> None:
    with session.get(f"{server.url}/blobs/{stored}", headers={"range": header}) as r:
        assert r.status_code == 206
        assert r.content == CONTENT[first : last + 1]
        assert r.headers["content-range"] == f"bytes {first}-{last}/{len(CONTENT)}"
        assert r.headers["content-length"] == str(last - first + 1)
        assert r.headers["accept-ranges"] == "bytes"


def test_a_whole_download_says_it_accepts_ranges(
    server: Server, session: requests.Session, stored: str
) -> None:
    with session.get(f"{server.url}/blobs/{stored}") as r:
        assert r.status_code == 200
        assert r.content == CONTENT
        assert r.headers["accept-ranges"] == "bytes"
        assert r.headers["content-length"] == str(len(CONTENT))


@pytest.mark.parametrize("header", [f"bytes={len(CONTENT)}-", "bytes=5000-6000", "bytes=-0"])
def test_an_unsatisfiable_range_gets_416(
    server: Server, session: requests.Session, stored: str, header: str
) -> None:
    with session.get(f"{server.url}/blobs/{stored}", headers={"range": header}) as r:
        assert r.status_code == 416
        assert error_code(r) == "range_not_satisfiable"
        assert r.headers["content-range"] == f"bytes */{len(CONTENT)}"


def test_a_missing_blob_is_404(server: Server, session: requests.Session) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    with session.get(f"{server.url}/blobs/{missing}") as r:
        assert r.status_code == 404 and error_code(r) == "blob_not_found"
    with session.get(f"{server.url}/blobs/{missing}", headers={"range": "bytes=0-9"}) as r:
        assert r.status_code == 404


# -- 2 GiB through the server, memory bounded ---------------------------------------

BIG_CHUNKS = 2048  # x 1 MiB = 2 GiB
RSS_LIMIT = 100 * MiB


def big_content() -> Iterator[bytes]:
    """2 GiB of deterministic content, made 1 MiB at a time: a random block, rotated and stamped."""
    block = np.random.default_rng(20240607).bytes(MiB)
    for i in range(BIG_CHUNKS):
        k = (i * 7919) % MiB
        yield i.to_bytes(8, "big") + (block[k:] + block[:k])[8:]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RssSampler:
    """Samples a process's RSS every 50 ms in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


@pytest.fixture
def big_server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own; its 2 GiB of blobs are deleted afterwards, not left in pytest's temp."""
    try:
        with server_process(tmp_path) as running:
            yield running
    finally:
        shutil.rmtree(tmp_path / "blobs", ignore_errors=True)


@pytest.mark.slow
def test_a_2_gib_blob_streams_through_the_server_in_bounded_memory(big_server: Server) -> None:
    digest = hashlib.sha256()
    for chunk in big_content():
        digest.update(chunk)
    sha = digest.hexdigest()
    size = BIG_CHUNKS * MiB

    with requests.Session() as session:
        for _ in range(5):  # settle the idle baseline: imports and first-request allocations
            with session.get(f"{big_server.url}/health") as r:
                assert r.status_code == 200
        with session.head(f"{big_server.url}/blobs/{CONTENT_SHA}") as r:
            assert r.status_code == 404
        baseline = rss_bytes(big_server.pid)

        put = f"{big_server.url}/blobs/{sha}"
        with (
            RssSampler(big_server.pid) as upload,
            session.put(put, data=big_content(), timeout=600) as r,
        ):
            assert r.status_code == 201, r.text
            assert r.json() == {"sha256": sha, "size": size, "created": True}
        stored = big_server.blobs / sha[:2] / sha[2:4] / sha
        assert stored.stat().st_size == size
        assert not any((big_server.blobs / "tmp").iterdir())

        with RssSampler(big_server.pid) as download:
            received, check = 0, hashlib.sha256()
            with session.get(f"{big_server.url}/blobs/{sha}", stream=True, timeout=600) as r:
                assert r.status_code == 200
                assert r.headers["content-length"] == str(size)
                for chunk in r.iter_content(MiB):
                    check.update(chunk)
                    received += len(chunk)
        assert received == size
        assert check.hexdigest() == sha

    for phase, sampler in (("upload", upload), ("download", download)):
        growth = sampler.peak - baseline
        assert sampler.samples > 10, f"{phase}: too few RSS samples ({sampler.samples})"
        assert growth < RSS_LIMIT, (
            f"{phase}: server RSS grew by {growth / MiB:.0f} MiB over its idle "
            f"{baseline / MiB:.0f} MiB (limit {RSS_LIMIT / MiB:.0f} MiB)"
        )
